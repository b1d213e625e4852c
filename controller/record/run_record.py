"""The run record: the event log, the raw CAN log and the summary of one run.

Layout of a run folder ``runs/<timestamp>/``::

    events.jsonl   one JSON object per line: every FSM transition, refusal, fault and
                   POST result, with ``tick`` and ``time_s``; flushed line by line so a
                   power cut loses at most the line being written (SAFETY.md T05)
    <bus>.asc      raw CAN log of both directions in Vector ASC, written by python-can's
                   ``ASCWriter`` with timestamps on the run clock; ``can.LogReader`` reads
                   it back
    summary.json   written once at the end, atomically (temp file + rename)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import can


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

    def can_logger(self, bus_name: str):
        """Return a callback ``(msg, now_s, is_rx)`` that logs frames of ``bus_name``."""
        writer = can.ASCWriter(str(self.folder / f"{bus_name}.asc"), channel=1)
        self._can_writers[bus_name] = writer

        def log(msg: can.Message, now_s: float, is_rx: bool) -> None:
            writer.on_message_received(
                can.Message(
                    timestamp=now_s,
                    arbitration_id=msg.arbitration_id,
                    is_extended_id=msg.is_extended_id,
                    is_remote_frame=msg.is_remote_frame,
                    is_error_frame=msg.is_error_frame,
                    dlc=msg.dlc,
                    data=msg.data,
                    is_rx=is_rx,
                    channel=1,
                    check=False,
                )
            )

        return log

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
            w.stop()
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
