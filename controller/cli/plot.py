"""``qiki plot RUN [--out DIR]``: PNG figures of a run's flight record (issue 12).

``RUN`` as for ``qiki runs`` (:func:`controller.cli.runs.resolve_run`). The figures
(:mod:`controller.record.plot`) go to ``DIR`` (default ``<run folder>/plots``); a figure
whose data the record lacks is skipped with a note. An unfinished record
(``run.mcap.part``) is read tolerantly. ``RUN`` may be an event file of a triggered-mode
run (``event-<NNN>-<code>-<t_s>.mcap``: figures in ``<run folder>/plots/<file stem>``); a
run folder without ``run.mcap`` plots each of its event files so.

Exit status: 0 at least one figure written; 1 none (the record holds no plottable data);
2 bad input (no such run, no record, not an MCAP file), one line on stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.cli.runs import find_record, resolve_run
from controller.errors import ConfigError

__all__ = ["add_parser"]


def _cmd_plot(args: argparse.Namespace) -> int:
    from controller.record.plot import plot_run
    from controller.record.triggered import event_files

    folder = resolve_run(args.run, args.runs)
    arg = Path(args.run)
    record = arg if arg.is_file() else find_record(folder)
    records = [record] if record is not None else [p for p in event_files(folder) if p.suffix == ".mcap"]
    if not records:
        raise ConfigError(str(folder), "", "no flight record (run.mcap, run.mcap.part or event-*.mcap) in this folder")
    written = 0
    for rec in records:
        event = rec.name.startswith("event-")
        out = Path(args.out) if args.out else folder / "plots"
        report = plot_run(rec, out / rec.stem if event else out,
                          title=f"{folder.name} {rec.stem}" if event else folder.name)
        for p in report.written:
            print(p)
        for name, why in report.skipped.items():
            print(f"skipped {name}: {why}")
        written += len(report.written)
    return 0 if written else 1


def add_parser(subparsers: Any) -> None:
    """Add ``qiki plot`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    p = subparsers.add_parser("plot", help="PNG figures of a run's flight record",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder, its name under --runs, 'latest', or a .mcap file")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the PNGs (default: <run folder>/plots)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs/)")
    p.set_defaults(func=_cmd_plot)
