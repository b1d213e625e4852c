"""The ``qiki`` command: its parser, the verbs ``run``, ``rig check``, ``fsm check|graph``, and :func:`main`.

The device verbs live beside it (:mod:`controller.cli.radar`,
:mod:`controller.cli.modbus`); the libraries behind them in :mod:`controller.tools`.

Bad input (a rig, mission, FSM or DBC file, or an option, that fails its checks) prints
ONE line, ``PATH: key.path: what is wrong``, on stderr and exits with status 2; a port or
adapter that cannot be opened prints one line and exits 3; never a traceback (SAFETY.md
K01-K06). Every exit status is listed in :mod:`controller.exit_codes` and ``qiki --help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from controller.cli import console as console_cli
from controller.cli import doctor as doctor_cli
from controller.cli import emulate, modbus, monitor, radar, replay
from controller.cli import install as install_cli
from controller.cli import plot as plot_cli
from controller.cli import runs as runs_cli
from controller.cli import safety as safety_cli
from controller.exit_codes import EXIT_BAD_INPUT, EXIT_HARDWARE_UNAVAILABLE, HELP_TEXT
from hal.errors import one_line

if TYPE_CHECKING:
    from controller.stop import StopRequest

#: Exit status of a bug (an exception no check foresaw), sysexits.h EX_SOFTWARE.
EXIT_INTERNAL_ERROR = 70


def _user_errors() -> tuple[type[BaseException], ...]:
    from controller.errors import ControllerError
    from firmware_bridge.errors import ProtocolError
    from hal.errors import BusConfigError
    from hal.fileio import FileRefusedError

    return (ControllerError, BusConfigError, ProtocolError, FileRefusedError)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("qiki")
    except Exception:  # noqa: BLE001 - not installed as a distribution (a bare checkout)
        return "unknown"


class _LazyVersionAction(argparse._VersionAction):
    """``--version``: looks QIKI's version up only when asked (not on every start)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None, option_string: str | None = None) -> None:
        self.version = f"qiki {_version()}"
        super().__call__(parser, namespace, values, option_string)


def _verb_adders() -> dict[str, Callable[[argparse._SubParsersAction], None]]:
    """Return the verbs of the device and tool modules, each with its module's ``add_parser``, in help order."""
    return {"radar": radar.add_parser, "modbus": modbus.add_parser, "replay": replay.add_parser,
            "runs": runs_cli.add_parser, "plot": plot_cli.add_parser, "monitor": monitor.add_parser,
            "doctor": doctor_cli.add_parser, "install": install_cli.add_parser, "emulate": emulate.add_parser,
            "console": console_cli.add_parser, "safety": safety_cli.add_parser}


def _verb_of(argv: Sequence[str]) -> str | None:
    """Return the module verb ``argv`` names (its first word not starting with ``-``), or None.

    None (no verb, a ``run``/``rig``/``fsm``, or a word that is no verb, such as a
    ``--log-level`` value) makes :func:`main` build every verb's parser.
    """
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in _verb_adders() else None


def _cmd_run(args: argparse.Namespace) -> int:
    from controller.stop import StopRequest

    # handlers first, before the slow imports: a SIGTERM from here on is a safe stop
    with StopRequest() as stop:
        return _run_with(args, stop)


def _run_with(args: argparse.Namespace, stop: StopRequest) -> int:
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
        serve=args.serve,
        listen=args.listen,
    )
    status, summary, _folder = run_main_job(opts, console=console, stop=stop)
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of ``qiki``.

    Parameters
    ----------
    only : str, optional
        Of the module verbs (:func:`_verb_adders`), add this one only (:func:`main`, once
        it knows the verb: the others' parsers import what their defaults come from, such
        as the doctor and the console). Default: every verb.
    """
    p = argparse.ArgumentParser(prog="qiki", description="QIKI hardware-in-the-loop controller stack",
                                epilog=HELP_TEXT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_LazyVersionAction, version="qiki")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                   help="log messages of this level and above on stderr (default: warning)")
    p.add_argument("--debug", action="store_true", help="same as --log-level debug")
    # with one module verb only, the usage of an error still names every verb
    every = None if only is None else "{" + ",".join(("run", "rig", "fsm", *_verb_adders())) + "}"
    sub = p.add_subparsers(dest="command", required=True, metavar=every)

    r = sub.add_parser("run", help="run the main job: boot, POST, arm, fly the mission, disarm",
                       description="Run the main job: boot, POST, arm, fly the mission, disarm. SIGINT, "
                                   "SIGTERM and SIGHUP stop it safely (zero commands, disarm, valve rail "
                                   "open, logs closed, summary written); a second signal forces the exit.",
                       epilog=HELP_TEXT, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--rig", default="rigs/virtual.yaml", help="rig YAML (default: rigs/virtual.yaml)")
    r.add_argument("--mission", default="missions/square.yaml", help="mission YAML (default: missions/square.yaml)")
    r.add_argument("--realtime", action="store_true",
                   help="run against the monotonic clock (emulators on a thread, MCU over a pty)")
    r.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of run time")
    r.add_argument("--seed", type=int, default=0, help="seed of every random source in the emulation")
    r.add_argument("--summary-json", default=None, metavar="PATH", help="also write summary.json here")
    r.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs/)")
    r.add_argument("--no-progress", action="store_true", help="no live progress line")
    r.add_argument("--no-arm", action="store_true",
                   help="never arm: boot, POST and stay idle watching the buses (needs --duration)")
    r.add_argument("--lr-replay", default=None, metavar="FILE",
                   help="long-range radar replays this CAN log (candump, ASC, BLF, TRC)")
    r.add_argument("--sr-replay", default=None, metavar="FILE",
                   help="short-range radar replays this UART capture (.dat)")
    r.add_argument("--serve", action="store_true",
                   help="serve the operator console (docs/console-gateway.md): boot, pass POST and wait for "
                        "commands from a console instead of flying the mission; lockstep is paced to real time")
    r.add_argument("--listen", default=None, metavar="HOST:PORT",
                   help="console gateway address with --serve (default 127.0.0.1:8765; any other host needs "
                        "a token in $QIKI_CONSOLE_TOKEN or the rig's console.token_env)")
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
    # The device verbs, each module with its add_parser(subparsers).
    for verb, add in _verb_adders().items():
        if only is None or verb == only:
            add(sub)
    return p


def configure_logging(level_name: str) -> None:
    """Set up the CLI's logging: one stderr handler on the root logger (library code only logs).

    Third-party libraries that log their own parse warnings at WARNING (cantools, when a
    DBC redefines a frame ID; pymodbus, per dropped frame) are shown from ERROR on
    unless debugging: QIKI reports those conditions itself, in one line.
    """
    level = getattr(logging, level_name.upper())
    root = logging.getLogger()
    if not any(getattr(h, "_qiki", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("qiki: %(levelname)s: %(name)s: %(message)s"))
        handler._qiki = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("cantools", "pymodbus", "can"):
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else max(level, logging.ERROR))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qiki`` console script; returns the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_verb_of(words))
    args = parser.parse_args(words)
    configure_logging("debug" if args.debug else args.log_level)
    from hal.errors import DeviceUnavailableError

    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        # str(ConfigError) is already its one_line(); other errors are squeezed to one line
        print(one_line(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except DeviceUnavailableError as exc:
        print(one_line(exc), file=sys.stderr)
        return EXIT_HARDWARE_UNAVAILABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`qiki radar decode ... | head`): not an error
        # of ours; silence the interpreter's own flush at exit and end like SIGPIPE would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except RecursionError:
        print("qiki: input nested too deeply (recursion limit)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only on request
        if os.environ.get("QIKI_TRACEBACK"):
            traceback.print_exc()
        print(f"qiki: internal error: {type(exc).__name__}: {one_line(exc)} (QIKI_TRACEBACK=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR

