"""Record the replay corpus: a handful of short runs whose ``run.mcap`` the tests replay.

``tests/emulated/test_replay_corpus.py`` replays every record in this folder with the
current code and fails at the first output that differs (tick, channel, recorded vs
replayed). When a change of behaviour is intended, re-record the corpus and commit it::

    make corpus            # or: .venv/bin/python tests/replay_corpus/record.py

A record also refuses to replay when a file it was built from (rig, mission, FSM, DBC,
profile) changed since it was recorded: re-record then too. The ``lr_replay`` case needs
the real ARS408 recording in ``../shared/data/real`` when it is recorded (not when it is
replayed: its frames are in the record); without it that case is skipped.

Cases (name: options):

* ``nominal``: the virtual rig, seed 0, 10 s of the square mission, lockstep
* ``faults``: ``rigs/faults.yaml`` (BMS silent 2.5-4 s, valve board silent from 4.5 s), 7 s
* ``seed7``: the virtual rig, seed 7, 6 s
* ``lr_replay``: the virtual rig with the real ARS408 recording on the long-range radar, 6 s
* ``realtime``: the virtual rig in real time, 3 s
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LR_LOG = (ROOT.parent / "shared").resolve() / "data" / "real" / "can" / "ars408" / "candump-2026-06-24_154259.log"

#: name -> run options (paths relative to the checkout, which is the working directory).
CASES: dict[str, dict[str, object]] = {
    "nominal": {"rig": "rigs/virtual.yaml", "seed": 0, "duration_s": 10.0},
    "faults": {"rig": "tests/replay_corpus/rigs/faults.yaml", "seed": 1, "duration_s": 7.0},
    "seed7": {"rig": "rigs/virtual.yaml", "seed": 7, "duration_s": 6.0},
    "lr_replay": {"rig": "rigs/virtual.yaml", "seed": 0, "duration_s": 6.0, "lr_replay": str(LR_LOG)},
    "realtime": {"rig": "rigs/virtual.yaml", "seed": 0, "duration_s": 3.0, "realtime": True},
}


def record(name: str) -> Path | None:
    """Record case ``name`` into ``tests/replay_corpus/<name>.mcap``; None when skipped."""
    from controller.run import RunOptions, run_main_job

    opts_d = dict(CASES[name])
    if "lr_replay" in opts_d and not LR_LOG.is_file():
        print(f"{name}: skipped ({LR_LOG} not found)", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="qiki-corpus-") as tmp:
        opts = RunOptions(mission="missions/square.yaml", runs_dir=tmp, progress=False, **opts_d)  # type: ignore[arg-type]
        status, summary, folder = run_main_job(opts)
        out = HERE / f"{name}.mcap"
        shutil.copyfile(folder / "run.mcap", out)
    print(f"{name}: {out.relative_to(ROOT)} ({out.stat().st_size} bytes; {summary['result']}, exit {status})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"cases to record (default all: {list(CASES)})")
    args = ap.parse_args()
    os.chdir(ROOT)  # attachments are named relative to the checkout
    sys.path.insert(0, str(ROOT))
    for name in args.cases:
        if name not in CASES:
            print(f"unknown case {name!r}; known: {list(CASES)}", file=sys.stderr)
            return 2
        record(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
