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

By default neither run arms (``RunOptions.arm=False``): the healthy run stays idle and the
silent one goes idle -> safe_mode, two states with the same tick work, so the only
difference between the runs is the BMS. ``--fly`` flies the square mission instead.

The runs alternate (healthy, silent, healthy, ...) and every tick's period error (tick
start minus its deadline) is pooled per case, so one noisy run cannot decide the figure.
Prints one JSON object: per transport the per-run digests (ticks, overruns, final state,
first fault, BMS failures), pooled percentiles of the period error over all ticks and over
the ticks after the BMS went silent (``--silent-at`` + 1 s on), and ``p99_ratio`` = silent
p99 / healthy p99 (target: within 10 %, i.e. <= 1.10). Rigs are written to a temporary
folder; nothing is left behind.

Usage: ``python bench/power_tick.py [--duration S] [--transport tcp|rtu|both]
[--silent-at S] [--repeat N]`` (default: 10 s, both, 2 s, 3 pairs: about two minutes).
Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import controller.run as run_mod  # noqa: E402
from controller.loop import percentiles  # noqa: E402
from controller.run import RunOptions, run_main_job  # noqa: E402

RIGS = {"tcp": "virtual.yaml", "rtu": "virtual_rtu.yaml"}


def _write_rig(folder: Path, src: str, faults: list[dict], radars: bool = True) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / src).read_text())
    data["emulation"]["power_faults"] = faults
    if not radars:
        for name in [n for n, d in data["devices"].items() if d["driver"] in ("ars408", "iwr6843")]:
            del data["devices"][name]
    rigs = folder / "rigs"
    rigs.mkdir(exist_ok=True)
    path = rigs / f"{Path(src).stem}-{len(list(rigs.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _one_run(folder: Path, rig: Path, duration_s: float, window_from_s: float, fly: bool) -> tuple[dict, list[float], list[float]]:
    """One real-time run; returns its digest, every tick's period error (us) and those of
    the ticks that started at or after ``window_from_s``."""
    captured: dict = {}
    opts = RunOptions(rig=str(rig), mission=str(ROOT / "missions/square.yaml"), realtime=True,
                      duration_s=duration_s, runs_dir=str(folder / "runs"), progress=False, arm=fly,
                      on_loop_stats=lambda st: captured.setdefault("stats", st))
    status, s, _ = run_main_job(opts)
    loop = s["loop"]
    st = captured["stats"]
    window = [e for e, t in zip(st.period_errors_us, st.tick_starts_s) if t >= window_from_s]
    safe_t = next((t[0] for t in s["transitions"] if t[3] == "safe_mode"), None)
    digest = {
        "ticks": loop["ticks"], "overruns": loop["overruns"],
        "period_error_us": loop["period_error_us"], "tick_duration_us": loop["tick_duration_us"],
        "final_state": s["final_state"], "first_fault": (s["faults"] or [None])[0],
        "safe_mode_at_s": safe_t,
        "bms_failures_by_kind": s["power"]["devices"]["bms"]["failures_by_kind"],
        "transport": s["power"]["buses"]["power"]["transport"],
    }
    return digest, list(st.period_errors_us), window


def _pooled(values: list[float]) -> dict:
    """Nearest-rank percentiles (us) of pooled period errors."""
    return {"n": len(values), **percentiles(values, (0.5, 0.9, 0.99, 0.999))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, metavar="S", help="run length (s), default 10")
    ap.add_argument("--transport", choices=("tcp", "rtu", "both"), default="both")
    ap.add_argument("--silent-at", type=float, default=2.0, metavar="S", help="BMS goes silent at S s (default 2)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="pairs of runs per transport, interleaved (default 3; the medians are compared)")
    ap.add_argument("--fly", action="store_true",
                    help="fly the square mission (the healthy run is then active while the silent one sits in "
                         "safe_mode: different tick work); default: both runs stay unarmed (idle vs safe_mode)")
    ap.add_argument("--no-radars", dest="radars", action="store_false",
                    help="leave the emulated radars out (their frame bursts are the loudest other thread)")
    args = ap.parse_args(argv)

    run_mod.LINGER_S = float("inf")  # keep ticking in safe_mode: same run length for both cases
    transports = ["tcp", "rtu"] if args.transport == "both" else [args.transport]
    out: dict = {"duration_s": args.duration, "silent_at_s": args.silent_at, "radars": args.radars, "fly": args.fly,
                 "rate_hz": None, "results": {}}
    with tempfile.TemporaryDirectory(prefix="qiki-bench-power-") as tmp:
        folder = Path(tmp)
        for tr in transports:
            healthy_rig = _write_rig(folder, RIGS[tr], [], args.radars)
            silent_rig = _write_rig(folder, RIGS[tr], [{"device": "bms", "kind": "silent", "start_s": args.silent_at}],
                                    args.radars)
            runs: dict[str, list[dict]] = {"healthy": [], "silent_bms": []}
            pooled: dict[str, list[float]] = {"healthy": [], "silent_bms": []}
            windowed: dict[str, list[float]] = {"healthy": [], "silent_bms": []}
            window_from = args.silent_at + 1.0  # BMS silent and its polls timing out
            for _ in range(args.repeat):  # interleaved, so slow drifts of the machine hit both
                for case, rig in (("healthy", healthy_rig), ("silent_bms", silent_rig)):
                    digest, errs, win = _one_run(folder, rig, args.duration, window_from, args.fly)
                    runs[case].append(digest)
                    pooled[case] += errs
                    windowed[case] += win
            all_ticks = {k: _pooled(v) for k, v in pooled.items()}
            after = {k: _pooled(v) for k, v in windowed.items()}

            def ratio(d: dict, key: str) -> float | None:
                h, q = d["healthy"].get(key), d["silent_bms"].get(key)
                return round(q / h, 3) if h else None

            out["results"][tr] = {
                "runs": runs,
                "pooled_period_error_us": all_ticks,
                "pooled_period_error_us_after_silence": {"from_s": window_from, **after},
                "p99_ratio": ratio(all_ticks, "p99"),
                "p99_ratio_after_silence": ratio(after, "p99"),
                "p50_ratio": ratio(all_ticks, "p50"),
                "per_run_p99_us": {k: [r["period_error_us"]["p99"] for r in v] for k, v in runs.items()},
            }
    out["rate_hz"] = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())["controller"]["rate_hz"]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
