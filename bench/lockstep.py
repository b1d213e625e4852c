"""Lockstep speed of the main job: simulated seconds per wall second (issue 2: >= 20x).

Runs the default mission on the default virtual rig in lockstep a few times and prints
one JSON object: per run the sim time, wall time and speed factor, plus their median.
Usage: ``python bench/lockstep.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.run import RunOptions, run_main_job  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.runs):
            opts = RunOptions(rig=str(ROOT / "rigs/virtual.yaml"), mission=str(ROOT / "missions/square.yaml"),
                              seed=seed, runs_dir=tmp, progress=False)
            status, s, _ = run_main_job(opts)
            runs.append({"seed": seed, "result": s["result"], "sim_time_s": s["sim_time_s"],
                         "wall_time_s": s["loop"]["wall_time_s"], "sim_speed_factor": s["loop"]["sim_speed_factor"],
                         "max_hold_error_m": s["max_hold_error_m"]})
    print(json.dumps({"bench": "lockstep_main_job", "runs": runs,
                      "median_sim_speed_factor": statistics.median(r["sim_speed_factor"] for r in runs)}, indent=2))


if __name__ == "__main__":
    main()
