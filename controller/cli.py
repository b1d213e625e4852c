"""The ``qiki`` command.

Bad input (a rig, mission, FSM or DBC file that fails its checks) prints ONE line,
``PATH: key.path: what is wrong``, on stderr and exits with status 2; never a traceback
(SAFETY.md K01-K06).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from hal.errors import one_line

EXIT_BAD_INPUT = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from controller.errors import ControllerError
    from firmware_bridge.errors import ProtocolError
    from hal.errors import BusConfigError

    return (ControllerError, BusConfigError, ProtocolError)


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from controller.run import RunOptions, run_main_job
    from controller.summary_view import print_summary

    console = Console(stderr=True)
    opts = RunOptions(
        rig=args.rig,
        mission=args.mission,
        realtime=args.realtime,
        duration_s=args.duration,
        seed=args.seed,
        summary_json=args.summary_json,
        runs_dir=args.runs_dir,
        progress=not args.no_progress,
        lr_replay=args.lr_replay,
        sr_replay=args.sr_replay,
        arm=not args.no_arm,
    )
    status, summary, folder = run_main_job(opts, console=console)
    print_summary(summary, Console())
    return status


def _cmd_rig_check(args: argparse.Namespace) -> int:
    # The same load_rig + check_rig as `qiki run` (build_rig calls check_rig first), so a
    # rig run refuses is refused here with the same line; no port is opened.
    from controller.config import load_rig
    from controller.rig import check_rig

    rig, path = load_rig(args.file)
    checked = check_rig(rig, path)
    print(f"{args.file}: ok ({checked.describe()})")
    return 0


def _cmd_fsm_check(args: argparse.Namespace) -> int:
    from controller.fsm import load_fsm

    model = load_fsm(args.file)
    print(f"{args.file}: ok ({len(model.states)} states, {len(model.transitions)} transitions)")
    return 0


def _cmd_fsm_graph(args: argparse.Namespace) -> int:
    from controller.fsm import load_fsm
    from controller.fsm.graph import to_dot, to_mermaid

    model = load_fsm(args.file)
    print(to_mermaid(model) if args.format == "mermaid" else to_dot(model))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``qiki``."""
    p = argparse.ArgumentParser(prog="qiki", description="QIKI hardware-in-the-loop controller stack")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the main job: boot, POST, arm, fly the mission, disarm")
    r.add_argument("--rig", default="rigs/virtual.yaml", help="rig YAML (default: rigs/virtual.yaml)")
    r.add_argument("--mission", default="missions/square.yaml", help="mission YAML (default: missions/square.yaml)")
    r.add_argument("--realtime", action="store_true", help="run against the monotonic clock (emulators on a thread, MCU over a pty)")
    r.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of run time")
    r.add_argument("--seed", type=int, default=0, help="seed of every random source in the emulation")
    r.add_argument("--summary-json", default=None, metavar="PATH", help="also write summary.json here")
    r.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs/)")
    r.add_argument("--no-progress", action="store_true", help="no live progress line")
    r.add_argument("--no-arm", action="store_true",
                   help="never arm: boot, POST and stay idle watching the buses (needs --duration)")
    r.add_argument("--lr-replay", default=None, metavar="FILE", help="long-range radar replays this CAN log (candump, ASC, BLF, TRC)")
    r.add_argument("--sr-replay", default=None, metavar="FILE", help="short-range radar replays this UART capture (.dat)")
    r.set_defaults(func=_cmd_run)

    rig = sub.add_parser("rig", help="rig files").add_subparsers(dest="rig_command", required=True)
    rc = rig.add_parser("check", help="validate a rig without running it")
    rc.add_argument("file")
    rc.set_defaults(func=_cmd_rig_check)

    fsm = sub.add_parser("fsm", help="state machine files").add_subparsers(dest="fsm_command", required=True)
    fc = fsm.add_parser("check", help="validate a state machine file")
    fc.add_argument("file")
    fc.set_defaults(func=_cmd_fsm_check)
    fg = fsm.add_parser("graph", help="print the state machine as a Mermaid (or Graphviz) diagram")
    fg.add_argument("file")
    fg.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    fg.set_defaults(func=_cmd_fsm_graph)
    # Subcommands contributed by subsystems: each module has add_parser(subparsers).
    from controller.optional import import_optional

    for module_name in ("controller.cli_radar", "controller.cli_modbus"):
        module = import_optional(module_name)
        if module is None:
            continue
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qiki`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        # str(ConfigError) is already its one_line(); other errors are squeezed to one line
        print(one_line(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
