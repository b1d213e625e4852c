"""The run record: the event log, the raw CAN log and the summary of one run.

Layout of a run folder ``runs/<timestamp>/``::

    events.jsonl   one JSON object per line: every FSM transition, refusal, fault and
                   POST result, with ``tick`` and ``time_s``; flushed line by line so a
                   power cut loses at most the line being written (SAFETY.md T05)
    <bus>.asc      raw CAN log of both directions in Vector ASC, written by python-can's
                   ``ASCWriter`` with timestamps on the run clock (the measurement starts
                   at run time 0, so ASC times and ``events.jsonl`` times are one clock);
                   the ASC channel number is the bus's own number plus one (``can0`` ->
                   1, ``can1`` -> 2; ASC counts channels from 1, python-can's readers
                   give back ``msg.channel`` 0 for ``can0``); flushed to the OS at least
                   every :data:`CAN_LOG_FLUSH_PERIOD_S` of run time, so a SIGKILL loses
                   at most that much of the log
    summary.json   written once at the end, atomically (temp file + rename)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

#: Longest stretch of run time (s) the raw CAN log stays in the process's buffers.
CAN_LOG_FLUSH_PERIOD_S = 0.1


def asc_channel(bus_name: str, default: int = 1) -> int:
    """ASC channel number (1-based) of a rig bus: the digits ending its name, plus one.

    Parameters
    ----------
    bus_name : str
        Rig bus key (``can0``, ``can1``, ``vehicle``).
    default : int, optional
        Channel for a name that ends in no digits (default 1).

    Returns
    -------
    int
        ``can0`` -> 1, ``can1`` -> 2, ``vehicle`` -> ``default`` (Vector ASC numbers
        channels from 1; python-can's readers return ``msg.channel`` = ASC channel - 1).
    """
    m = re.search(r"(\d+)$", bus_name)
    return int(m.group(1)) + 1 if m else default


class RunRecord:
    """Writer of one run folder.

    Parameters
    ----------
    folder : Path
        Run folder; created if missing.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._events = open(self.folder / "events.jsonl", "w", encoding="utf-8")
        self._can_writers: dict[str, can.ASCWriter] = {}
        self.events_written = 0

    def event(self, tick: int, time_s: float, kind: str, **fields: Any) -> None:
        """Append one event line (flushed at once)."""
        rec = {"tick": tick, "time_s": round(time_s, 6), "kind": kind}
        rec.update(fields)
        self._events.write(json.dumps(rec, sort_keys=True) + "\n")
        self._events.flush()
        self.events_written += 1

    def can_logger(self, bus_name: str) -> Callable[[can.Message, float, bool], None]:
        """Return a callback ``(msg, now_s, is_rx)`` that logs frames of ``bus_name``.

        The ASC measurement starts at run time 0 (a first event is written at once), so
        frame times are run-clock times, as in ``events.jsonl``. The file is flushed to
        the OS when a frame comes :data:`CAN_LOG_FLUSH_PERIOD_S` or more after the last
        flush (and by :meth:`flush`/:meth:`close`).
        """
        channel = asc_channel(bus_name)
        writer = can.ASCWriter(str(self.folder / f"{bus_name}.asc"), channel=channel)
        writer.log_event(f"Start of measurement: QIKI bus {bus_name} on channel {channel}", 0.0)
        writer.file.flush()
        self._can_writers[bus_name] = writer
        last_flush = [0.0]

        write = writer.file.write
        # the line python-can's ASCWriter.on_message_received writes for a classic frame
        # (channel, ID, direction, d/r and DLC, data bytes), formatted here from the frame
        # itself instead of a copy of it (issue 16 part 3); the measurement started at run
        # time 0, so a frame's time is its run time
        prefix = f"{channel}  "

        def log(msg: can.Message, now_s: float, is_rx: bool) -> None:
            if msg.is_error_frame:
                write(f"{now_s: 9.6f} {prefix}ErrorFrame\n")
            else:
                arb = f"{msg.arbitration_id:X}x" if msg.is_extended_id else f"{msg.arbitration_id:X}"
                if msg.is_remote_frame:
                    body = f"r {msg.dlc:x} "
                else:
                    body = f"d {msg.dlc:x} {bytes(msg.data).hex(' ').upper()}"
                write(f"{now_s: 9.6f} {prefix}{arb:<15} {'Rx  ' if is_rx else 'Tx  '} {body}\n")
            if now_s - last_flush[0] >= CAN_LOG_FLUSH_PERIOD_S:
                writer.file.flush()
                last_flush[0] = now_s

        return log

    def flush(self) -> None:
        """Push every open log to the OS (no fsync; cheap, for a stop in progress)."""
        if not self._events.closed:
            self._events.flush()
        for w in self._can_writers.values():
            if not w.file.closed:
                w.file.flush()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` atomically and return its path."""
        path = self.folder / "summary.json"
        write_json_atomic(path, summary)
        return path

    def close(self) -> None:
        """Flush and close every file (safe to call twice)."""
        if not self._events.closed:
            self._events.flush()
            os.fsync(self._events.fileno())
            self._events.close()
        for w in self._can_writers.values():
            if not w.file.closed:
                w.file.write("End TriggerBlock\n")
                w.file.flush()
                os.fsync(w.file.fileno())
                w.file.close()
        self._can_writers.clear()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temp file and ``os.replace`` (SAFETY.md T05)."""
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
