"""``qiki safety run|soak``: the safety campaign of SAFETY.md, judged from the bus (issue 15).

``qiki safety run [--seeds N] [--phases boot,idle,armed,active] [--ids B01,D04,...]
[--out DIR] [--workers N] [--resume]`` runs every emulated id x applicable phase x seed in lockstep
(:mod:`controller.safety.campaign`), each judged by an independent monitor (a python-can
node decoding with plain cantools, and the emulated valves), and writes
``DIR/safety.json`` and ``DIR/safety.md`` (default ``DIR``: ``runs/safety``): per id, runs,
unsafe frames, false trips, time to safe p50/p99/max in ticks, pass/fail; ids a flight
cannot show are listed with the reason. Every run is appended to ``DIR/runs.jsonl`` as it
ends (seed-major order); ``--resume`` keeps those and runs the rest.

``qiki safety soak KIND [--minutes M] [--seed S]`` flies one long nominal run under a
benign fault (``babble``: 300 frames per tick; ``loss``: 1 % VB_Status loss; ``loss3``:
three consecutive losses, which must trip) and prints whether it tripped.

Exit status: 0 every row passed (soak: as expected), 1 a row failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from controller.errors import ConfigError

__all__ = ["add_parser"]


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from controller.rig import build_rig
    from controller.safety.campaign import RunResult, markdown, plan_runs, run_campaign, table, to_json

    try:
        runs = plan_runs(_split(args.ids), _split(args.phases), args.seeds)
    except ValueError as exc:
        raise ConfigError("qiki safety run", "", str(exc)) from None
    runs.sort(key=lambda r: r[2])  # seed-major: an interrupted campaign has every id at fewer seeds
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done: list[RunResult] = []
    if args.resume and log.exists():
        for line in log.read_text().splitlines():
            try:
                done.append(RunResult(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line an interruption cut
        have = {(r.id, r.phase, r.seed) for r in done}
        runs = [r for r in runs if r not in have]
    elif log.exists():
        log.unlink()
    t0 = time.monotonic()
    with log.open("a") as f:
        def keep(res: RunResult) -> None:
            f.write(json.dumps(asdict(res)) + "\n")
            f.flush()

        results = done + run_campaign(runs, build_rig, workers=args.workers, on_result=keep)
    rows = table(results, _split(args.ids))
    doc = to_json(rows, results)
    doc["command"] = {"seeds": args.seeds, "phases": args.phases, "ids": args.ids, "runs": len(results),
                      "wall_s": round(time.monotonic() - t0, 1)}
    (out / "safety.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(rows)
    (out / "safety.md").write_text(md)
    print(md, end="")
    print(f"{len(results)} runs; table in {out / 'safety.md'} and {out / 'safety.json'}")
    return 0 if all(r.passed is not False for r in rows) else 1


def _cmd_soak(args: argparse.Namespace) -> int:
    from controller.rig import build_rig
    from controller.safety.campaign import run_soak

    try:
        res = run_soak(args.kind, args.minutes, build_rig, args.seed)
    except ValueError as exc:
        raise ConfigError("qiki safety soak", "", str(exc)) from None
    print(json.dumps({"kind": args.kind, "minutes": args.minutes, "seed": args.seed, "tripped": res.tripped,
                      "first_fault": res.first_fault, "final_state": res.final_state,
                      "unsafe_frames": res.unsafe_frames, "false_trip": res.false_trip, "crashed": res.crashed,
                      "note": res.why}))
    return 0 if res.ok else 1  # no false trip (loss3: a trip), no unsafe frame, no crash


def add_parser(subparsers: Any) -> None:
    """Add ``qiki safety`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    p = subparsers.add_parser("safety", help="the SAFETY.md campaign, judged from the bus",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="safety_command", required=True)
    r = sub.add_parser("run", help="every id x seeds x phases, judged by an independent monitor")
    r.add_argument("--seeds", type=int, default=5, metavar="N", help="seeds per id and phase (default 5)")
    r.add_argument("--phases", default=None, metavar="LIST", help="comma-separated: boot,idle,armed,active")
    r.add_argument("--ids", default=None, metavar="LIST", help="comma-separated SAFETY.md ids (default: all)")
    r.add_argument("--out", default="runs/safety", metavar="DIR", help="table folder (default runs/safety)")
    r.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default 2)")
    r.add_argument("--resume", action="store_true", help="keep the runs already in DIR/runs.jsonl, run the rest")
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("soak", help="one long nominal run under a benign fault")
    s.add_argument("kind", choices=("babble", "loss", "loss3"))
    s.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (default 10)")
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=_cmd_soak)
