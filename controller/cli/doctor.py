"""``qiki doctor --rig RIG [--json]``: tell whether this machine is ready to run a rig.

Prints one line per check -- status (pass, warn, fail, skip), what was checked, what was
found and how to fix it -- as a table or, with ``--json``, as one JSON object
(:meth:`controller.doctor.DoctorReport.as_dict`). Checks and rules: docs/doctor.md.

Exit status: 0 when no check failed (pass, warn, skip), 1 when one did, 2 bad input (a
rig refused, a bad option or host tree: one line on stderr).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _cmd_doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from controller.doctor import host_from_tree, run_doctor
    from controller.errors import ConfigError

    host = None
    if args.host_root is not None:
        if not Path(args.host_root).is_dir():
            raise ConfigError("qiki doctor", "--host-root", f"{args.host_root}: not a folder")
        try:
            host = host_from_tree(args.host_root)
        except ValueError as exc:
            raise ConfigError("qiki doctor", "--host-root", str(exc)) from None
    report = run_doctor(args.rig, host=host, probe_s=args.probe_s, runs_dir=args.runs_dir,
                        apply_knobs=not args.no_knobs)
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"qiki doctor: {report.rig} ({report.rig_path})", title_justify="left")
        for col in ("status", "check", "detail", "fix"):
            table.add_column(col, overflow="fold")
        for v in report.verdicts:
            table.add_row(f"[{STYLE[v.status]}]{v.status}[/]", v.name, v.detail, v.hint)
        console = Console()
        console.print(table)
        n = {s: sum(v.status == s for v in report.verdicts) for s in STYLE}
        console.print(f"[{STYLE[report.status]}]{report.status}[/]: {n['pass']} pass, {n['warn']} warn, "
                      f"{n['fail']} fail, {n['skip']} skip")
    return 0 if report.passed else 1


def add_parser(subparsers: Any) -> None:
    """Add ``qiki doctor`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    from controller.doctor import DEFAULT_PROBE_S

    d = subparsers.add_parser(
        "doctor", help="check this machine against a rig: buses, devices, real time, disk, clock",
        description="Check this machine against a rig: every bus up at the right bitrate, serial devices "
                    "present and writable, the MCU and the Modbus devices answering, the real-time kernel and "
                    "limits, CPU governor, throttling and isolation, the loop's timer jitter, free disk, clock "
                    "sync. Exit 0 when nothing failed, 1 when a check failed, 2 bad input.")
    d.add_argument("--rig", default="rigs/virtual.yaml", help="rig YAML (default: rigs/virtual.yaml)")
    d.add_argument("--json", action="store_true", help="print the report as one JSON object")
    d.add_argument("--probe-s", type=float, default=DEFAULT_PROBE_S, metavar="S",
                   help=f"length of the timer-jitter probe in s (default {DEFAULT_PROBE_S:g}; 0 skips it)")
    d.add_argument("--runs-dir", default="runs", help="where run folders go, for the free-disk check (default runs/)")
    d.add_argument("--no-knobs", action="store_true",
                   help="probe the timer without the rig's real-time knobs (SCHED_FIFO, affinity, mlockall)")
    d.add_argument("--host-root", default=None, metavar="DIR",
                   help="read a recorded host tree (sys/, proc/, dev/, ip-link.json, ...) instead of this "
                        "machine; see docs/doctor.md")
    d.set_defaults(func=_cmd_doctor)
