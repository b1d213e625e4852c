"""Lockstep speed of the main job: simulated seconds per wall second (issue 16: >= 100x, >= 50x with --lr-replay).

Runs the default mission on the default virtual rig in lockstep a few times and prints
one JSON object: per run the sim time, wall time and speed factor, plus their median.
``--lr-replay LOG`` replays an ARS408 CAN log as the long-range radar (as ``qiki run
--lr-replay``; ``--lr-replay default`` takes the log of ``bench/behaviour_digest.py``).
``--profile`` adds one run under cProfile and the split of its time: the emulated far
end (``Simulation.advance``: emulators, world, their bus traffic) against the rest (the
control tick, its record and logs), as fractions of the profiled run. cProfile charges
every Python call about the same overhead, which inflates call-heavy code; ``--split``
adds one run without a profiler where only ``Simulation.advance`` is timed (two clock
reads per tick), and gives the far end's fraction of that run's wall time.

Usage: ``python bench/lockstep.py [--runs N] [--lr-replay LOG|default] [--profile] [--split]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.run import RunOptions, run_main_job  # noqa: E402

LR_LOG = (ROOT.parent / "shared").resolve() / "data" / "real" / "can" / "ars408" / "candump-2026-06-24_154259.log"


def _options(seed: int, tmp: str, lr_replay: str | None) -> RunOptions:
    return RunOptions(rig=str(ROOT / "rigs/virtual.yaml"), mission=str(ROOT / "missions/square.yaml"),
                      seed=seed, runs_dir=tmp, progress=False, lr_replay=lr_replay)


def _profile_split(tmp: str, lr_replay: str | None) -> dict[str, float]:
    """Fractions of one profiled run spent in the far end and in the tick (cumulative times)."""
    prof = cProfile.Profile()
    prof.enable()
    run_main_job(_options(0, tmp, lr_replay))
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    far = tick = 0.0
    for (path, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == "advance" and path.endswith("emulation/sim.py"):
            far += ct
        elif func == "tick" and path.endswith("controller/run.py"):
            tick += ct
    return {"profiled_s": round(total, 3), "far_end_fraction": round(far / total, 3),
            "tick_fraction": round(tick / total, 3)}


def _far_end_split(tmp: str, lr_replay: str | None) -> dict[str, float]:
    """Far-end fraction of one unprofiled run: wall time inside ``Simulation.advance`` over the run's."""
    from firmware_bridge.emulation.sim import Simulation

    advance = Simulation.advance
    spent = [0.0]
    clock = time.perf_counter

    def timed(self: Simulation, t0_s: float, t1_s: float) -> None:
        c0 = clock()
        try:
            advance(self, t0_s, t1_s)
        finally:
            spent[0] += clock() - c0

    Simulation.advance = timed  # type: ignore[method-assign]
    try:
        c0 = clock()
        run_main_job(_options(0, tmp, lr_replay))
        total = clock() - c0
    finally:
        Simulation.advance = advance  # type: ignore[method-assign]
    return {"run_wall_s": round(total, 3), "far_end_wall_s": round(spent[0], 3),
            "far_end_fraction": round(spent[0] / total, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lr-replay", default=None, help="ARS408 CAN log to replay ('default': the digest's log)")
    ap.add_argument("--profile", action="store_true", help="add the far-end/tick split of one profiled run")
    ap.add_argument("--split", action="store_true", help="add the far-end fraction of one unprofiled run")
    args = ap.parse_args()
    lr = str(LR_LOG) if args.lr_replay == "default" else args.lr_replay
    runs = []
    out: dict[str, object] = {"bench": "lockstep_main_job", "lr_replay": lr}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.runs):
            status, s, _ = run_main_job(_options(seed, tmp, lr))
            runs.append({"seed": seed, "result": s["result"], "sim_time_s": s["sim_time_s"],
                         "wall_time_s": s["loop"]["wall_time_s"], "sim_speed_factor": s["loop"]["sim_speed_factor"],
                         "max_hold_error_m": s["max_hold_error_m"]})
        if args.profile:
            out["profile"] = _profile_split(tmp, lr)
        if args.split:
            out["split"] = _far_end_split(tmp, lr)
    out["runs"] = runs
    out["median_sim_speed_factor"] = statistics.median(r["sim_speed_factor"] for r in runs)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
