"""Digest of the main job's behaviour: lockstep runs of seeds 0-4, with and without --lr-replay.

Prints one JSON object: per run, the SHA-256 of ``summary.json`` (wall-clock keys removed)
and of ``events.jsonl``, and the raw CAN log's frame count. Two commits whose digests are
equal flew bit for bit the same (a refactoring that changes no behaviour); ``--out DIR``
keeps the normalised files for a diff when they are not.

Usage::

    .venv/bin/python bench/behaviour_digest.py [--seeds 0 1 2 3 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.run import WALL_CLOCK_KEYS, RunOptions, run_main_job  # noqa: E402

LR_LOG = (ROOT.parent / "shared").resolve() / "data" / "real" / "can" / "ars408" / "candump-2026-06-24_154259.log"


def _strip(summary: dict, dotted: str) -> None:
    parts = dotted.split(".")
    node = summary
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def normalised_summary(summary: dict) -> str:
    """The summary as canonical JSON without the wall-clock keys."""
    s = json.loads(json.dumps(summary))
    for key in (*WALL_CLOCK_KEYS, "realtime_knobs.effective"):
        _strip(s, key)
    return json.dumps(s, sort_keys=True, indent=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", default=None, help="keep the normalised summaries and events here")
    args = ap.parse_args()
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for replay in (False, True):
                if replay and not LR_LOG.exists():
                    continue
                key = f"seed{seed}" + ("-lr_replay" if replay else "")
                opts = RunOptions(seed=seed, runs_dir=str(Path(tmp) / key), progress=False,
                                  rig=str(ROOT / "rigs" / "virtual.yaml"),
                                  mission=str(ROOT / "missions" / "square.yaml"),
                                  lr_replay=str(LR_LOG) if replay else None)
                status, summary, folder = run_main_job(opts)
                summ = normalised_summary(summary)
                events = (folder / "events.jsonl").read_text()
                asc = [line for line in (folder / "can0.asc").read_text().splitlines() if " d " in line]
                out[key] = {
                    "status": status,
                    "result": summary["result"],
                    "summary_sha256": hashlib.sha256(summ.encode()).hexdigest(),
                    "events_sha256": hashlib.sha256(events.encode()).hexdigest(),
                    "can_frames": len(asc),
                    "can_sha256": hashlib.sha256("\n".join(asc).encode()).hexdigest(),
                }
                if args.out:
                    d = Path(args.out) / key
                    d.mkdir(parents=True, exist_ok=True)
                    (d / "summary.json").write_text(summ)
                    (d / "events.jsonl").write_text(events)
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
