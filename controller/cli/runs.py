"""``qiki runs list|show|recover``: the run folders and their flight records (issue 12).

``RUN`` names a run: a run folder (``runs/20261206-140753-365841``), its name under
``--runs`` (default ``runs/``), ``latest`` (the newest folder there), or a ``.mcap`` file
(its folder is the run).

Record file naming
------------------
``run.mcap`` is the finished flight record. A recording in progress, or one a crash
(SIGKILL, power cut) interrupted, is ``run.mcap.part``: the recorder renames it to
``run.mcap`` only once the summary and footer are written, so a ``run.mcap`` is always
finished (the convention; a run that writes ``run.mcap`` directly is handled too: an
unfinished ``run.mcap`` is recovered in place). ``qiki runs recover RUN`` reads
``run.mcap.part`` (or an unfinished ``run.mcap``) tolerantly, writes the finished ``run.mcap`` (all
complete chunks: everything up to at most one chunk period, 0.5 s, before the cut) and
keeps the original bytes as ``run.mcap.unfinished``.

A run whose rig says ``record: {mode: triggered}`` has no ``run.mcap`` but event files
``event-<NNN>-<code>-<t_s>.mcap`` (``.part`` while written), each a window around a
trigger (:mod:`controller.record.triggered`): ``show`` lists them, ``recover`` finishes
the unfinished ones (keeping the originals as ``<name>.unfinished``).

Exit status of ``recover``: 0 a finished ``run.mcap`` holding messages exists (recovered,
or it already was finished); 1 the recovered file holds no message (nothing before the
cut survived; the file is written all the same); 2 bad input (no such run, no record in
it, not an MCAP file), one line on stderr. ``list`` and ``show`` exit 0, or 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from controller.errors import ConfigError

__all__ = ["RECORD", "RECORD_PART", "RECORD_UNFINISHED", "add_parser", "find_record", "resolve_run"]

#: The finished flight record of a run folder.
RECORD = "run.mcap"
#: The record while it is written (or after a crash interrupted it).
RECORD_PART = "run.mcap.part"
#: The original bytes of a recovered record.
RECORD_UNFINISHED = "run.mcap.unfinished"


_RECOVER_HELP = """Finish an interrupted flight record.

Reads run.mcap.part (or an unfinished run.mcap) up to the cut, writes the finished
run.mcap (every complete chunk: all but at most the last 0.5 s of log time) and keeps
the original bytes as run.mcap.unfinished.

exit status: 0 finished run.mcap with messages (or already finished); 1 recovered file
holds no message; 2 bad input (no such run or record, not an MCAP file)."""


def resolve_run(run: str, runs_dir: str = "runs") -> Path:
    """Return the run folder ``run`` names (see the module docstring).

    Raises
    ------
    ConfigError
        No such run folder or file.
    """
    p = Path(run)
    if p.is_file():
        return p.resolve().parent
    if p.is_dir():
        return p
    base = Path(runs_dir)
    if run == "latest":
        folders = _run_folders(base)
        if not folders:
            raise ConfigError(str(base), "", "no run folders")
        return folders[-1]
    if (base / run).is_dir():
        return base / run
    raise ConfigError(run, "", f"no such run (not a folder, a file, or a run under {base}/)")


def find_record(folder: Path) -> Path | None:
    """Return the flight record of a run folder: ``run.mcap``, else ``run.mcap.part``, else None."""
    for name in (RECORD, RECORD_PART):
        if (folder / name).is_file():
            return folder / name
    return None


def _run_folders(base: Path) -> list[Path]:
    if not base.is_dir():
        raise ConfigError(str(base), "", "no such folder")
    return sorted(p for p in base.iterdir() if p.is_dir() and (
        (p / "summary.json").is_file() or (p / "events.jsonl").is_file() or find_record(p) is not None
        or _event_files(p)))


def _event_files(folder: Path) -> list[Path]:
    from controller.record.triggered import event_files

    return event_files(folder)


def _summary(folder: Path) -> dict[str, Any] | None:
    from controller.record.reader import RecordFileError

    path = folder / "summary.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordFileError(path, f"not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RecordFileError(path, "not a JSON object")
    return data


def _record_state(folder: Path) -> str:
    from controller.record.reader import FlightRecord, RecordFileError

    rec = find_record(folder)
    if rec is None:
        events = _event_files(folder)
        parts = sum(1 for p in events if p.name.endswith(".part"))
        return (f"{len(events)} event file(s)" + (f", {parts} part (recover)" if parts else "")) if events else "-"
    if rec.name == RECORD_PART:
        return "part (recover)"
    try:
        return "finished" if FlightRecord(rec).finished else "unfinished (recover)"
    except RecordFileError:
        return "unreadable"


def _fmt_s(v: object) -> str:
    return f"{v:.2f} s" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from controller.record.reader import RecordFileError

    folders = _run_folders(Path(args.runs))
    console = Console()
    if not folders:
        console.print(f"no runs in {args.runs}")
        return 0
    t = Table(title=f"runs in {args.runs}")
    t.add_column("run", no_wrap=True)
    for col in ("result", "exit", "run time", "ticks", "faults", "record"):
        t.add_column(col)
    for f in folders:
        try:
            s = _summary(f) or {}
        except RecordFileError:
            s = {"result": "summary.json unreadable"}
        loop = s.get("loop")
        loop = loop if isinstance(loop, dict) else {}
        t.add_row(f.name, str(s.get("result", "no summary (interrupted?)")), str(s.get("exit_status", "-")),
                  _fmt_s(s.get("sim_time_s")), str(loop.get("ticks", "-")), str(len(s.get("faults", []) or [])),
                  _record_state(f))
    console.print(t)
    return 0


def _record_rows(path: Path) -> list[tuple[str, str]]:
    from controller.record.reader import FlightRecord

    rec = FlightRecord(path)
    st = rec.statistics()
    rows = [("record", f"{path.name}: {'finished' if rec.finished else 'NOT finished (qiki runs recover)'}, "
                       f"{path.stat().st_size} bytes, {st['messages']} messages, {st['chunks']} chunks, "
                       f"{st['attachments']} attachments")]
    if st["start_ns"] is not None and st["end_ns"] is not None:
        rows.append(("record span", f"{st['start_ns'] * 1e-9:.3f} .. {st['end_ns'] * 1e-9:.3f} s (log time)"))
    chans = rec.channels()
    topics = ", ".join(f"{t} {c.message_count}" for t, c in sorted(chans.items()) if c.message_count)
    rows.append(("topics", topics or "-"))
    drop = chans.get("/record/dropouts")
    if drop is not None and drop.message_count:
        lost = sum(int(m.data.get("count", 0)) for m in rec.messages(["/record/dropouts"]))  # type: ignore[call-overload]
        rows.append(("dropouts", f"{drop.message_count} dropouts, {lost} messages lost"))
    return rows


def _event_rows(path: Path) -> list[tuple[str, str]]:
    """Rows of one event file: name, state, span, messages, triggers."""
    from controller.record.reader import FlightRecord, RecordFileError

    try:
        rec = FlightRecord(path)
        st = rec.statistics()
        meta = rec.metadata().get("event", {})
    except RecordFileError as exc:
        return [("event file", f"{path.name}: unreadable: {exc}")]
    state = "finished" if rec.finished else "NOT finished (qiki runs recover)"
    span = ("-" if st["start_ns"] is None or st["end_ns"] is None
            else f"{st['start_ns'] * 1e-9:.3f} .. {st['end_ns'] * 1e-9:.3f} s")
    rows = [("event file", f"{path.name}: {state}, {st['messages']} messages, {span}")]
    try:
        triggers = json.loads(meta.get("triggers", "[]"))
    except ValueError:
        triggers = []
    for trig in triggers if isinstance(triggers, list) else []:
        if isinstance(trig, dict):
            rows.append(("", f"trigger {trig.get('code')} at {_fmt_s(trig.get('t_s'))}: {trig.get('text')}"))
    dropped = meta.get("messages_dropped", "0")
    if dropped not in ("", "0"):
        rows.append(("", f"{dropped} messages dropped (writer queue full)"))
    return rows


def _cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from controller.record.reader import RecordFileError

    folder = resolve_run(args.run, args.runs)
    s = _summary(folder)
    rec = find_record(folder)
    events = _event_files(folder)
    if s is None and rec is None and not events:
        raise ConfigError(str(folder), "", "neither summary.json nor a flight record (run.mcap) in this folder")
    t = Table(title=f"run {folder.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    if s is None:
        t.add_row("summary", "no summary.json (the run did not end normally)")
    else:
        t.add_row("result", str(s.get("result", "-")))
        t.add_row("exit status", str(s.get("exit_status", "-")))
        t.add_row("final state", str(s.get("final_state", "-")))
        t.add_row("rig / mission", f"{s.get('rig', '-')} / {s.get('mission', '-')}")
        t.add_row("run time", _fmt_s(s.get("sim_time_s")))
        loop = s.get("loop")
        loop = loop if isinstance(loop, dict) else {}
        if loop:
            text = f"{loop.get('ticks', '-')} ticks, {loop.get('overruns', '-')} overruns"
            pe = loop.get("period_error_us")
            if isinstance(pe, dict):
                text += f", period error p50/p99/max {pe.get('p50')}/{pe.get('p99')}/{pe.get('max')} us"
            if loop.get("realtime"):
                text += ", real time"
            else:
                text += f", lockstep at {loop.get('sim_speed_factor', '-')}x"
            t.add_row("loop", text)
        if "waypoints_total" in s:
            t.add_row("waypoints", f"{s.get('waypoints_reached')}/{s.get('waypoints_total')}")
        faults = s.get("faults") or []
        t.add_row("faults", str(len(faults)) if faults else "none")
        for f in faults:
            t.add_row("", str(f))
    if rec is not None:
        try:
            for k, v in _record_rows(rec):
                t.add_row(k, v)
        except RecordFileError as exc:
            t.add_row("record", f"unreadable: {exc}")
    elif events:
        t.add_row("record", f"no run.mcap (event-triggered): {len(events)} event file(s)")
    else:
        t.add_row("record", "no run.mcap")
    for p in events:
        for k, v in _event_rows(p):
            t.add_row(k, v)
    Console().print(t)
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    from controller.record.reader import FlightRecord, recover

    folder = resolve_run(args.run, args.runs)
    final = folder / RECORD
    part = folder / RECORD_PART
    if part.is_file():
        if final.is_file():
            raise ConfigError(str(folder), "", f"both {RECORD} and {RECORD_PART} exist; move one away first")
        src = part
    elif final.is_file():
        if FlightRecord(final).finished:
            print(f"{final}: already finished, nothing to recover")
            return 0
        src = final
    elif _event_files(folder):
        return _recover_events(folder)
    else:
        raise ConfigError(str(folder), "", f"no {RECORD_PART} or {RECORD} to recover")
    keep = folder / RECORD_UNFINISHED
    tmp = folder / (RECORD + ".recovering")
    report = recover(src, tmp)
    src.replace(keep)
    tmp.replace(final)
    last = "-" if report.last_log_time_ns is None else f"{report.last_log_time_ns * 1e-9:.3f} s"
    print(f"{final}: recovered from {src.name} ({report.messages_kept} messages up to {last} of log time, "
          f"{report.chunks_kept} chunks, {report.attachments} attachments; {report.bytes_used} of "
          f"{report.bytes_total} bytes used: {report.stop_reason}); original kept as {keep.name}")
    return 0 if report.messages_kept else 1


def _recover_events(folder: Path) -> int:
    """Finish every unfinished event file of a triggered-mode run (``<name>.part`` -> ``<name>``)."""
    from controller.record.reader import recover

    parts = [p for p in _event_files(folder) if p.name.endswith(".part")]
    if not parts:
        print(f"{folder}: every event file is finished, nothing to recover")
        return 0
    kept = 0
    for src in parts:
        final = src.with_name(src.name.removesuffix(".part"))
        tmp = src.with_name(final.name + ".recovering")
        report = recover(src, tmp)
        src.replace(final.with_name(final.name + ".unfinished"))
        tmp.replace(final)
        kept += report.messages_kept
        print(f"{final}: recovered from {src.name} ({report.messages_kept} messages, {report.chunks_kept} chunks: "
              f"{report.stop_reason})")
    return 0 if kept else 1


def add_parser(subparsers: Any) -> None:
    """Add ``qiki runs list|show|recover`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    runs = subparsers.add_parser("runs", help="run folders: list, show, recover a flight record").add_subparsers(
        dest="runs_command", required=True)
    ls = runs.add_parser("list", help="list the run folders with their result and record state")
    ls.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs/)")
    ls.set_defaults(func=_cmd_list)
    sh = runs.add_parser("show", help="summary table of one run (summary.json and run.mcap)")
    sh.add_argument("run", metavar="RUN", help="run folder, its name under --runs, 'latest', or a .mcap file")
    sh.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs/)")
    sh.set_defaults(func=_cmd_show)
    rc = runs.add_parser("recover", help="finish an interrupted flight record (run.mcap.part -> run.mcap)",
                         description=_RECOVER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.add_argument("run", metavar="RUN", help="run folder, its name under --runs, 'latest', or a .mcap file")
    rc.add_argument("--runs", default="runs", metavar="DIR", help="folder of run folders (default: runs/)")
    rc.set_defaults(func=_cmd_recover)
