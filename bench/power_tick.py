"""Benchmark: real-time tick period error with a healthy BMS versus a silent one.

SAFETY.md D10 says a silent Modbus device must never block the tick. This runs the real
main job (:func:`controller.run.run_main_job`, ``realtime=True``) on the virtual rig with
the power bus over Modbus TCP on 127.0.0.1 (``rigs/virtual.yaml``) and/or Modbus RTU over a
pty (``rigs/virtual_rtu.yaml``), twice per transport and for the same run length:

* ``healthy`` -- no power fault;
* ``silent_bms`` -- the BMS stops answering at ``--silent-at`` seconds; the poller worker
  then spends a full link timeout on every BMS poll, the battery data goes stale and the
  vehicle goes to ``safe_mode``. The run keeps ticking to the end (the main job's linger
  after a safe state is lifted for the bench), so both runs measure the same number of
  ticks.

Prints one JSON object: per transport and case the loop's ``period_error_us``
(p50/p99/max: tick start minus its deadline), ``tick_duration_us``, ticks, overruns, the
final state and first fault, and ``p99_ratio`` = silent p99 / healthy p99 (target: within
10 %, i.e. <= 1.10; on a shared machine repeat and compare the spread). Rigs are written to
a temporary folder; nothing is left behind.

Usage: ``python bench/power_tick.py [--duration S] [--transport tcp|rtu|both]
[--silent-at S] [--repeat N]`` (default: 10 s, both, 2 s, 3 pairs: about two minutes).
Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import controller.run as run_mod  # noqa: E402
from controller.run import RunOptions, run_main_job  # noqa: E402

RIGS = {"tcp": "virtual.yaml", "rtu": "virtual_rtu.yaml"}


def _write_rig(folder: Path, src: str, faults: list[dict]) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / src).read_text())
    data["emulation"]["power_faults"] = faults
    rigs = folder / "rigs"
    rigs.mkdir(exist_ok=True)
    path = rigs / f"{Path(src).stem}-{len(list(rigs.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _one_run(folder: Path, rig: Path, duration_s: float) -> dict:
    opts = RunOptions(rig=str(rig), mission=str(ROOT / "missions/square.yaml"), realtime=True,
                      duration_s=duration_s, runs_dir=str(folder / "runs"), progress=False)
    status, s, _ = run_main_job(opts)
    loop = s["loop"]
    safe_t = next((t[0] for t in s["transitions"] if t[3] == "safe_mode"), None)
    return {
        "ticks": loop["ticks"], "overruns": loop["overruns"],
        "period_error_us": loop["period_error_us"], "tick_duration_us": loop["tick_duration_us"],
        "final_state": s["final_state"], "first_fault": (s["faults"] or [None])[0],
        "safe_mode_at_s": safe_t,
        "bms_failures_by_kind": s["power"]["devices"]["bms"]["failures_by_kind"],
        "transport": s["power"]["buses"]["power"]["transport"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, metavar="S", help="run length (s), default 10")
    ap.add_argument("--transport", choices=("tcp", "rtu", "both"), default="both")
    ap.add_argument("--silent-at", type=float, default=2.0, metavar="S", help="BMS goes silent at S s (default 2)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="pairs of runs per transport, interleaved (default 3; the medians are compared)")
    args = ap.parse_args(argv)

    run_mod.LINGER_S = float("inf")  # keep ticking in safe_mode: same run length for both cases
    transports = ["tcp", "rtu"] if args.transport == "both" else [args.transport]
    out: dict = {"duration_s": args.duration, "silent_at_s": args.silent_at, "rate_hz": None, "results": {}}
    with tempfile.TemporaryDirectory(prefix="qiki-bench-power-") as tmp:
        folder = Path(tmp)
        for tr in transports:
            healthy_rig = _write_rig(folder, RIGS[tr], [])
            silent_rig = _write_rig(folder, RIGS[tr], [{"device": "bms", "kind": "silent", "start_s": args.silent_at}])
            runs: dict[str, list[dict]] = {"healthy": [], "silent_bms": []}
            for _ in range(args.repeat):
                runs["healthy"].append(_one_run(folder, healthy_rig, args.duration))
                runs["silent_bms"].append(_one_run(folder, silent_rig, args.duration))
            p99 = {k: statistics.median(r["period_error_us"]["p99"] for r in v) for k, v in runs.items()}
            p50 = {k: statistics.median(r["period_error_us"]["p50"] for r in v) for k, v in runs.items()}
            out["results"][tr] = {
                "healthy": runs["healthy"] if args.repeat > 1 else runs["healthy"][0],
                "silent_bms": runs["silent_bms"] if args.repeat > 1 else runs["silent_bms"][0],
                "period_error_p50_us": p50,
                "period_error_p99_us": p99,
                "p99_ratio": round(p99["silent_bms"] / p99["healthy"], 3) if p99["healthy"] > 0 else None,
            }
    out["rate_hz"] = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())["controller"]["rate_hz"]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
