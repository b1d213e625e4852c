"""``qiki replay RUN [--check] [--from T] [--until T] [--allow-drift]``: a recorded run through the real controller.

Rebuilds the controller from the record (``RUN`` is a run folder or its ``run.mcap``), feeds
every recorded input to the tick that consumed it, with no emulator and no world, and
compares every output, event and telemetry record with the recorded ones
(:mod:`controller.record.replay`). ``--from T`` starts at the newest snapshot taken at or
before T s of run time and compares the ticks after it.

Exit status: 0 identical (or, without ``--check``, the replay ran), 1 a divergence (the
first is printed: tick, channel, recorded vs replayed; then a count per channel), 2 bad
input (no record, an unfinished one, the checkout differs from the record without
``--allow-drift``).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import TYPE_CHECKING

from controller.exit_codes import EXIT_OK, EXIT_STOPPED

if TYPE_CHECKING:
    from controller.record.replay import RecordedRun


def _last_tick_s(run: RecordedRun) -> float:
    """Return the run time (s) of the record's last ``/tick`` (0.0: none), decoding that message only.

    Ticks are recorded in order, so the last ``/tick`` in the file is the latest.
    """
    from controller.record.replay import _loads

    for topic, data in reversed(run.raw):
        if topic == "/tick":
            t_s = _loads(data).get("t_s")
            return float(t_s) if isinstance(t_s, (int, float)) else 0.0
    return 0.0


def _cmd_replay(args: argparse.Namespace) -> int:
    from controller.record.replay import read_record
    from controller.run_replay import replay_run

    run = read_record(args.run)
    # The record's messages (about 100,000 objects for a 75 s run) live to the end and hold
    # no cycles: kept out of the collector's full passes, which otherwise walk them again
    # and again while the replay allocates (about 5 % of the command). Unfrozen after.
    gc.freeze()
    try:
        t0 = time.perf_counter()
        result = replay_run(run, allow_drift=args.allow_drift, until_s=args.until, from_s=args.from_s)
        wall_s = time.perf_counter() - t0
    finally:
        gc.unfreeze()
    run_s = _last_tick_s(run)
    if args.json:
        rp = result.resumed
        out = {"identical": result.report.identical, "ticks": result.ticks, "wall_s": round(wall_s, 3),
               "from_snapshot": None if rp is None else {"tick": rp.tick, "t_s": rp.t_s, "reason": rp.reason},
               "per_channel": result.report.per_topic,
               "first_divergence": None if result.report.first is None else vars(result.report.first)}
        print(json.dumps(out, indent=1, sort_keys=True))
    else:
        if args.from_s is not None:
            rp = result.resumed
            print(f"from the snapshot after tick {rp.tick} (t={rp.t_s:.3f} s, {rp.reason}): ticks after it compared"
                  if rp is not None else "no snapshot that early: replayed from tick 0")
        for line in result.report.lines():
            print(line)
        print(f"{result.ticks} ticks replayed in {wall_s:.2f} s ({run_s / max(wall_s, 1e-9):.0f}x real time)",
              file=sys.stderr)
    if args.check and not result.report.identical:
        return EXIT_STOPPED
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``replay`` to the ``qiki`` verbs."""
    r = sub.add_parser("replay", help="replay a recorded run through the controller and compare",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    r.add_argument("run", help="run folder or its run.mcap")
    r.add_argument("--check", action="store_true", help="exit 1 unless every output is identical")
    r.add_argument("--from", dest="from_s", type=float, default=None, metavar="T",
                   help="start at the newest snapshot at or before T s of run time; compare the ticks after it")
    r.add_argument("--until", type=float, default=None, metavar="T", help="compare ticks up to T s of run time")
    r.add_argument("--allow-drift", action="store_true",
                   help="replay even if QIKI's version or a file the run was built from changed")
    r.add_argument("--json", action="store_true", help="print the comparison as JSON")
    r.set_defaults(func=_cmd_replay)
