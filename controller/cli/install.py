"""``qiki install --rig RIG [--print | --dest DIR]``: the systemd unit, udev rules and networkd files of a rig.

The rig is loaded and checked first (``qiki rig check``: no port is opened), then the
files of :mod:`controller.service.units` are printed (``--print``) or written under
``DIR`` at their install paths (``DIR/etc/systemd/system/qiki.service``, ...); with
``--dest /`` they land in place (as root). Nothing is enabled or started:
docs/deployment.md gives the ``systemctl`` and ``udevadm`` steps.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
from pathlib import Path

from controller.exit_codes import EXIT_BAD_INPUT, EXIT_OK

__all__ = ["add_parser"]


def _qiki_executable() -> str:
    """Return the absolute path of the ``qiki`` script beside this interpreter, else on PATH, else ``python -m``."""
    beside = Path(sys.executable).parent / "qiki"
    if beside.is_file():
        return str(beside)
    found = shutil.which("qiki")
    return str(Path(found).resolve()) if found else f"{sys.executable} -m controller.cli"


def _cmd_install(args: argparse.Namespace) -> int:
    from controller.config import load_rig
    from controller.paths import resolve_data_path
    from controller.rig import check_rig
    from controller.run import SHUTDOWN_TIMEOUT_S
    from controller.service.units import ServiceOptions, render_service_files

    if not args.print and args.dest is None:
        print("qiki install: give --print or --dest DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    for key, value in (("--watchdog", args.watchdog), ("--start-timeout", args.start_timeout)):
        if not 0.0 < value <= 3600.0:
            print(f"qiki install: {key}: must be in (0, 3600] s (got {value})", file=sys.stderr)
            return EXIT_BAD_INPUT
    rig, rig_path = load_rig(args.rig)
    check_rig(rig, rig_path)
    mission = resolve_data_path(args.mission)
    if not mission.is_file():
        print(f"qiki install: --mission: {args.mission}: file not found", file=sys.stderr)
        return EXIT_BAD_INPUT
    user = None if args.user in ("", "root") else args.user
    opts = ServiceOptions(rig_path=rig_path.resolve(), qiki=args.qiki or _qiki_executable(),
                          mission=mission.resolve(), user=user, watchdog_s=args.watchdog,
                          start_timeout_s=args.start_timeout, safe_stop_bound_s=SHUTDOWN_TIMEOUT_S)
    files = render_service_files(rig, opts)
    if args.print:
        for rel, text in files.items():
            print(f"# ---- /{rel}")
            print(text, end="" if text.endswith("\n") else "\n")
        return EXIT_OK
    dest = Path(args.dest)
    for rel, text in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(target)
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``install`` to the ``qiki`` verbs."""
    i = sub.add_parser("install", help="write the systemd unit, udev rules and networkd files of a rig",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    i.add_argument("--rig", required=True, help="rig YAML (e.g. rigs/qiki1_pi.yaml)")
    where = i.add_mutually_exclusive_group()
    where.add_argument("--print", action="store_true", help="print the files on stdout")
    where.add_argument("--dest", default=None, metavar="DIR", help="write the files under DIR (/ to install)")
    i.add_argument("--mission", default="missions/square.yaml", help="mission the service flies")
    i.add_argument("--user", default=getpass.getuser(), help="User= of the service ('root' or '' for none; "
                   "default: you)")
    i.add_argument("--qiki", default=None, metavar="PATH", help="the qiki executable (default: this one)")
    i.add_argument("--watchdog", type=float, default=2.0, metavar="S", help="WatchdogSec (default 2 s)")
    i.add_argument("--start-timeout", type=float, default=60.0, metavar="S",
                   help="TimeoutStartSec: build, doctor and POST before READY (default 60 s)")
    i.set_defaults(func=_cmd_install)
