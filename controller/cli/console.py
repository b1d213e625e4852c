"""``qiki console [URL | RUN]``: the terminal operator console (issue 14, docs/console.md).

With a ``ws://`` or ``wss://`` URL (default ``ws://127.0.0.1:8765/ws``, the gateway of
``qiki run --serve``) it is live: telemetry, the arming checklist, faults, power, the map,
and commands by key. With a ``run.mcap`` (or a run folder holding one) it shows the same
panels read-only with a time slider.

The token (needed when the gateway listens on a non-loopback address) comes from
``--token`` or the environment variable ``QIKI_CONSOLE_TOKEN``; it is never printed.

exit status: 0 quit; 2 bad input (not a URL, not a readable flight record).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from controller.exit_codes import EXIT_BAD_INPUT

__all__ = ["TOKEN_ENV", "add_parser"]

#: Environment variable holding the gateway token.
TOKEN_ENV = "QIKI_CONSOLE_TOKEN"


def add_parser(subparsers: Any) -> None:
    """Add ``qiki console`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    from controller.console.tui.live import DEFAULT_URL

    p = subparsers.add_parser("console", help="terminal operator console (live gateway or a recorded run.mcap)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", default=DEFAULT_URL, metavar="URL|RUN",
                   help=f"gateway WebSocket URL (default {DEFAULT_URL}) or a run.mcap / run folder")
    p.add_argument("--token", default=None, help=f"gateway token (default: ${TOKEN_ENV})")
    p.add_argument("--name", default="tui", help="console name shown as the control holder (default: tui)")
    p.set_defaults(func=_cmd_console)


def _cmd_console(args: argparse.Namespace) -> int:
    from controller.console.tui.app import open_console

    target: str = args.target
    if target.startswith(("ws://", "wss://")):
        from controller.console.tui.live import LiveLink

        token = args.token or os.environ.get(TOKEN_ENV) or None
        app = open_console(link=LiveLink(target, token=token, client_name=args.name))
    else:
        from controller.console.tui.record_view import RecordTimeline
        from controller.record.reader import RecordFileError

        try:
            timeline = RecordTimeline(target)
        except RecordFileError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_BAD_INPUT
        app = open_console(timeline=timeline)
    result = app.run()
    return int(result or 0)
