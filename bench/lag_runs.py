"""Benchmark: N real-time runs of the two-process rig, counting "system lagging" trips.

Issue 16 judges "0 'system lagging' trips in 10 runs of 60 s with the rig's real-time
knobs on". Each run: ``qiki emulate rigs/virtual.yaml`` in its own process (knobs on) and
``qiki run --rig <copy of rigs/bench_two_process.yaml> --realtime --duration D`` at its
100 Hz with the rig's real-time knobs (SCHED_FIFO 50, GC freeze), flying the square
mission, as in :mod:`bench.two_process_rt` (docs/two-process.md). A run counts as a lag
trip when its summary lists a fault whose text says "system lagging" (event 801,
``Vehicle._monitor``: more than ``controller.safety.max_overruns_per_s`` overruns in 1 s).

Per run: result, final state, first fault, overruns, tick wall time p50/p99 and period
error p99 (``/loop`` of ``run.mcap``). Totals: ``lag_trips`` (target 0), ``safe_mode_runs``,
``overruns_total``. Prints one JSON object.

Usage: ``python bench/lag_runs.py [--runs 10] [--duration 60] [--seed 0] [--out FILE]``
(about runs x (duration + 8) s). Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.tick import _loop_rows  # noqa: E402
from bench.two_process_rt import (  # noqa: E402
    _start_controller,
    _start_emulator,
    _stop,
    _summary_us,
    _write_rig,
    emit_json,
)

LAG_TEXT = "system lagging"


def one_run(folder: Path, seed: int, duration_s: float) -> dict[str, object]:
    """One two-process real-time run with the knobs on; its result and timing figures."""
    folder.mkdir(parents=True, exist_ok=True)  # --keep may name a folder of an earlier bench
    out: dict[str, object] = {"seed": seed}
    emu = ctl = None
    try:
        emu, endpoints = _start_emulator(folder, True, seed)
        rig, _prio = _write_rig(folder, endpoints, True)
        summary_path = folder / "summary.json"
        ctl = _start_controller(folder, rig, duration_s, seed, summary_path)
        ctl.wait(timeout=duration_s + 90)
        out["exit_code"] = ctl.returncode
        s = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        out["result"], out["final_state"] = s.get("result"), s.get("final_state")
        faults = s.get("faults") or []  # summary.json: the latched faults, else the first fault
        out["first_fault"] = faults[0] if faults else None
        loop = s.get("loop") if isinstance(s.get("loop"), dict) else {}
        out["ticks"], out["overruns"] = loop.get("ticks"), loop.get("overruns")  # type: ignore[union-attr]
        out["lag_trip"] = any(LAG_TEXT in str(f) for f in faults)
        dur, err = _loop_rows(folder / "runs")
        out["tick_us"] = _summary_us(dur)
        out["period_error_us"] = _summary_us(err)
    except Exception as exc:  # a bench: report the failure of this run and go on
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _stop(ctl, signal.SIGTERM, 20.0)
        _stop(emu, signal.SIGTERM)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ``--runs`` runs one after another and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="number of runs (default 10)")
    ap.add_argument("--duration", type=float, default=60.0, metavar="S", help="run time of each run (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first run (run i uses seed + i)")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep every file here (default: temporary)")
    ap.add_argument("--out", default=None, metavar="FILE", help="also write the JSON here")
    args = ap.parse_args(argv)
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="qiki-lag-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        runs = [one_run(base / f"run-{i}", args.seed + i, args.duration) for i in range(args.runs)]
    doc = {"bench": "lag_runs", "runs_n": args.runs, "duration_s": args.duration,
           "lag_trips": sum(1 for r in runs if r.get("lag_trip")),
           "safe_mode_runs": sum(1 for r in runs if r.get("final_state") == "safe_mode"),
           "errors": sum(1 for r in runs if "error" in r),
           "overruns_total": sum(o for r in runs if isinstance(o := r.get("overruns"), int)),
           "target_lag_trips": 0, "cpus": os.cpu_count(), "loadavg_start": load_start,
           "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "wall_s": round(time.monotonic() - started, 1), "runs": runs}
    emit_json(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
