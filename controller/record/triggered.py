"""Event-triggered flight records: a rolling window in memory, a file around every trigger (issue 12, part 5).

For field runs too long to record whole, a rig's ``record: {mode: triggered}``
(:class:`controller.config.RecordCfg`) replaces ``run.mcap`` with :class:`TriggeredLog`,
a sink with the same ``put(topic, record)`` as :class:`~controller.record.flight_log.FlightLog`:

* every record goes into a ring buffer of ``(topic, log_time_ns, record)`` that covers
  the last ``pre_s`` seconds of run time (and at most ``buffer_max_n`` messages: the
  memory bound; the oldest go first);
* a trigger event -- by default every fault raised (an ``/events`` record of kind
  ``fault`` with a reason), else every event whose code is in ``trigger_codes`` (on
  ``/events`` or ``/emulation/events``) -- opens
  ``<run folder>/event-<NNN>-<code>-<t_s>.mcap`` (``NNN`` from 001, ``code`` the trigger's
  event code, ``t_s`` its run time with 3 decimals), writes the ring buffer (the
  pre-window, trigger included) and then every record up to ``post_s`` seconds after the
  trigger, then finishes the file. A trigger inside a post-window extends it to
  ``post_s`` after that trigger: one file. After ``max_files`` files, further triggers
  are counted, not written.

An event file is written with :class:`~controller.record.flight.FlightRecorder` like
``run.mcap``: the same JSON-Schema channels (every topic seen in the run so far is
registered first, in the order of first use, so channel ids match), the same
attachments and metadata (:class:`RecordHeader`), plus an ``event`` metadata record (the
triggers, the window, messages dropped). While written it is ``<name>.part``; it is
renamed once finished, so an ``event-*.mcap`` is always finished.

Real time
---------
The tick never encodes, opens a file or waits. :meth:`TriggeredLog.put` appends to the
ring (:class:`controller.record.ring.RingBuffer`) in O(1) (amortized: a ``list.append``
into the newest block of a deque of fixed-size blocks; trimming the front drops whole
blocks), and on a trigger takes a
snapshot of the ring in O(n / block size) -- the blocks are never changed except by
appending to the newest one, so a snapshot is the tuple of blocks plus the newest
block's length -- and queues it. A writer thread of its own opens the file, writes the
pre-window and the post-window records queued after it, and finishes the file (fsync
after each chunk, as ``run.mcap`` in real time). When ``queue_capacity`` items wait,
post-window records are dropped and counted (a dropout, never a stall), in the file's
``event`` metadata and :meth:`TriggeredLog.close`'s statistics. In lockstep the same
work runs in the caller: an event file is a pure function of the run.

Threads: :meth:`~TriggeredLog.put` may be called from the tick's thread and (for
``/emulation/events``) the emulator's; a lock keeps the ring consistent.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from controller.record.flight import FlightRecorder
from controller.record.flight_log import SCHEMAS, schema_key
from controller.record.ring import Item, RingBuffer
from controller.record.taps import TickCursor

if TYPE_CHECKING:
    from controller.record.flight_proc import ProcessRecorder

__all__ = ["EVENT_FILE_GLOB", "EventFile", "RecordHeader", "TriggeredLog", "event_file_name", "event_files",
           "is_trigger"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Glob of the finished event files in a run folder.
EVENT_FILE_GLOB = "event-*.mcap"
#: Topics whose records can trigger.
EVENT_TOPICS = frozenset({"/events", "/emulation/events"})
#: Real time: the writer thread releases the GIL after this many pre-window messages
#: (about 0.3 ms of encoding), so a burst of them does not hold up the tick.
YIELD_EVERY_N = 32

def event_file_name(index: int, code: int, t_ns: int) -> str:
    """Return ``event-<NNN>-<code>-<t_s>.mcap`` (``t_s`` in s with 3 decimals)."""
    return f"event-{index:03d}-{code}-{t_ns * 1e-9:.3f}.mcap"


def is_trigger(topic: str, record: Mapping[str, object], codes: frozenset[int] | None) -> bool:
    """Return True when ``record`` on ``topic`` triggers an event file.

    Parameters
    ----------
    topic : str
        The record's topic (only ``/events`` and ``/emulation/events`` trigger).
    record : mapping
        The event record (``code``, ``kind``, ``reason``, ...).
    codes : frozenset of int or None
        The trigger codes; None: a fault raised (``/events``, kind ``fault``, a reason
        that is not None -- a fault clearing does not trigger).
    """
    if topic not in EVENT_TOPICS:
        return False
    if codes is None:
        return topic == "/events" and record.get("kind") == "fault" and record.get("reason") is not None
    return record.get("code") in codes


@dataclass(frozen=True)
class RecordHeader:
    """What every flight record file of a run carries besides its messages.

    Attributes
    ----------
    attachments : tuple of (name, data, media_type)
        The files the run was built from, as loaded (read once, at the start).
    metadata : tuple of (name, mapping of str to str)
        ``run_options``, ``versions``, ``input_recordings``.
    """

    attachments: tuple[tuple[str, bytes, str], ...] = ()
    metadata: tuple[tuple[str, Mapping[str, str]], ...] = ()

    def write(self, recorder: FlightRecorder | ProcessRecorder) -> None:
        """Add the attachments and metadata to ``recorder``."""
        for name, data, media_type in self.attachments:
            recorder.attach(name, data, media_type)
        for mname, entries in self.metadata:
            recorder.metadata(mname, entries)


@dataclass
class EventFile:
    """One event file of a run (tick side).

    Attributes
    ----------
    path : Path
        The finished file (``<path>.part`` while written).
    index : int
        1, 2, ... in the run.
    code : int
        Event code of the first trigger.
    trigger_ns : int
        Log time of the first trigger (ns, run clock).
    end_ns : int
        End of the post-window (ns): ``post_s`` after the last trigger.
    triggers : list of dict
        Every trigger in the file: ``code``, ``kind``, ``tick``, ``t_s``, ``text``.
    dropped_n : int
        Post-window records dropped (real-time queue full).
    """

    path: Path
    index: int
    code: int
    trigger_ns: int
    end_ns: int
    triggers: list[dict[str, object]] = field(default_factory=list)
    dropped_n: int = 0


#: Marker that stops the writer thread.
_STOP = object()


class _Writer:
    """Writes event files, one at a time (the writer thread's side, or the caller's in lockstep)."""

    def __init__(self, header: RecordHeader, realtime: bool) -> None:
        self.header = header
        self.realtime = realtime
        self.recorder: FlightRecorder | None = None
        self.part: Path | None = None
        self.channels: dict[str, int] = {}
        self.errors = 0
        self.error_texts: list[str] = []
        self.messages_n = 0
        self.bytes_n = 0

    def error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        text = f"{what}: {type(exc).__name__}: {exc}"
        if len(self.error_texts) < 20:
            self.error_texts.append(text)
        if self.errors == 1:
            _log.error("event-triggered record: %s", text, exc_info=exc)

    def open(self, ev: EventFile, topics: tuple[str, ...], items: Iterable[Item]) -> None:
        part = ev.path.with_name(ev.path.name + ".part")
        try:
            rec = FlightRecorder(part, realtime=False, fsync=self.realtime)
        except Exception as exc:  # noqa: BLE001 - counted; the run goes on without this file
            self.error(f"{part.name}: open", exc)
            return
        self.recorder, self.part, self.channels = rec, part, {}
        try:
            for topic in topics:
                self._channel(rec, topic)
            self.header.write(rec)
            for i, (topic, t_ns, record) in enumerate(items):
                self.write(topic, t_ns, record)
                if self.realtime and i % YIELD_EVERY_N == YIELD_EVERY_N - 1:
                    time.sleep(0)  # let the tick thread have the GIL (else it may wait a switch interval, 5 ms)
        except Exception as exc:  # noqa: BLE001
            self.error(f"{part.name}: pre-window", exc)

    def _channel(self, rec: FlightRecorder, topic: str) -> int:
        ch = self.channels.get(topic)
        if ch is None:
            name, schema = SCHEMAS[schema_key(topic)]
            ch = self.channels[topic] = rec.channel(topic, name, schema)
        return ch

    def write(self, topic: str, t_ns: int, record: Mapping[str, object]) -> None:
        rec = self.recorder
        if rec is None:
            return
        try:
            rec.write(self._channel(rec, topic), t_ns, record)
        except Exception as exc:  # noqa: BLE001
            self.error(f"{topic}: write", exc)

    def close(self, ev: EventFile, meta: Mapping[str, str]) -> None:
        rec, part = self.recorder, self.part
        self.recorder = self.part = None
        if rec is None or part is None:
            return
        try:
            rec.metadata("event", meta)
            st = rec.close()
            self.messages_n += st.messages_written
            self.bytes_n += st.bytes
            for t in st.error_texts:
                self.error(part.name, RuntimeError(t))
            os.replace(part, ev.path)
        except Exception as exc:  # noqa: BLE001
            self.error(f"{part.name}: finish", exc)

    def handle(self, op: tuple[object, ...]) -> None:
        kind = op[0]
        if kind == "msg":
            self.write(op[1], op[2], op[3])  # type: ignore[arg-type]
        elif kind == "open":
            self.open(op[1], op[2], RingBuffer.items(op[3]))  # type: ignore[arg-type]
        elif kind == "close":
            self.close(op[1], op[2])  # type: ignore[arg-type]


class TriggeredLog:
    """Sink of a run in triggered mode: a ring buffer, and an MCAP file around every trigger.

    Parameters
    ----------
    folder : Path
        The run folder (event files go there).
    cursor : TickCursor
        Gives the log time of each record (the tick's start on the run clock).
    header : RecordHeader
        Attachments and metadata of every event file.
    realtime : bool
        True: files are opened and written on a writer thread (never on the tick).
    pre_s, post_s : float
        Seconds of run time kept before a trigger and written after the last one (>= 0).
    trigger_codes : iterable of int or None
        Event codes that trigger; None: every fault raised (:func:`is_trigger`).
    max_files : int
        Most event files (>= 1); later triggers are counted in ``skipped_triggers``.
    buffer_max_n : int
        Most records the ring buffer holds (>= 1).
    queue_capacity : int, optional
        Real time: items waiting for the writer thread before post-window records are
        dropped (default 65536).

    Raises
    ------
    ValueError
        A negative window, or a non-positive count.
    """

    def __init__(self, folder: Path, cursor: TickCursor, header: RecordHeader, *, realtime: bool,
                 pre_s: float, post_s: float, trigger_codes: Iterable[int] | None, max_files: int,
                 buffer_max_n: int, queue_capacity: int = 65536) -> None:
        if pre_s < 0 or post_s < 0:
            raise ValueError(f"pre_s and post_s must be >= 0, got {pre_s!r}, {post_s!r}")
        if max_files < 1 or buffer_max_n < 1 or queue_capacity < 1:
            raise ValueError("max_files, buffer_max_n and queue_capacity must be >= 1")
        self.folder = Path(folder)
        self.cursor = cursor
        self.realtime = realtime
        self.pre_ns = round(pre_s * 1e9)
        self.post_ns = round(post_s * 1e9)
        self.codes = None if trigger_codes is None else frozenset(trigger_codes)
        self.max_files = max_files
        self.queue_capacity = queue_capacity
        self.files: list[EventFile] = []
        self.triggers_n = 0
        self.skipped_triggers = 0
        self._ring = RingBuffer(buffer_max_n)
        self._topics: dict[str, None] = {}
        self._active: EventFile | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._stats: dict[str, object] | None = None
        self._writer = _Writer(header, realtime)
        self._queue: queue.SimpleQueue[object] | None = None
        self._thread: threading.Thread | None = None
        if realtime:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="qiki-event-record", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ tick side
    @property
    def buffered_n(self) -> int:
        """Records in the ring buffer now."""
        return self._ring.n

    @property
    def buffer_high_water_n(self) -> int:
        """Most records the ring buffer held at once."""
        return self._ring.high_water_n

    def put(self, topic: str, record: Mapping[str, object]) -> None:
        """Buffer ``record`` at the current tick's time; write it too inside a post-window; trigger.

        The caller hands ``record`` over (it may be written later, on another thread):
        it must not change it afterwards, as with :meth:`FlightRecorder.write`.
        """
        t_ns = self.cursor.now_ns
        with self._lock:
            if self._closed:
                return
            if topic not in self._topics:
                self._topics[topic] = None
            item = (topic, t_ns, record)
            self._ring.append(item, t_ns - self.pre_ns)
            ev = self._active
            if ev is not None:
                if t_ns > ev.end_ns:
                    self._finish(ev)
                else:
                    self._submit(("msg", topic, t_ns, record), ev)
            if topic in EVENT_TOPICS and is_trigger(topic, record, self.codes):
                self._trigger(t_ns, record)

    def _trigger(self, t_ns: int, record: Mapping[str, object]) -> None:
        self.triggers_n += 1
        code = record.get("code")
        code_n = code if isinstance(code, int) else 0
        info = {"code": code_n, "kind": record.get("kind"), "tick": record.get("tick"), "t_s": record.get("t_s"),
                "text": record.get("text")}
        ev = self._active
        if ev is not None:
            ev.end_ns = max(ev.end_ns, t_ns + self.post_ns)
            ev.triggers.append(info)
            return
        if len(self.files) >= self.max_files:
            if self.skipped_triggers == 0:
                _log.warning("%s: %d event files written (record.max_files): later triggers are not recorded",
                             self.folder, self.max_files)
            self.skipped_triggers += 1
            return
        index = len(self.files) + 1
        ev = EventFile(self.folder / event_file_name(index, code_n, t_ns), index, code_n, t_ns, t_ns + self.post_ns,
                       [info])
        self.files.append(ev)
        self._active = ev
        self._submit(("open", ev, tuple(self._topics), self._ring.snapshot()), None)

    def _finish(self, ev: EventFile) -> None:
        self._active = None
        meta = {
            "index": str(ev.index), "code": str(ev.code), "trigger_ns": str(ev.trigger_ns),
            "window_start_ns": str(max(0, ev.trigger_ns - self.pre_ns)), "window_end_ns": str(ev.end_ns),
            "pre_s": repr(self.pre_ns * 1e-9), "post_s": repr(self.post_ns * 1e-9),
            "triggers": json.dumps(ev.triggers, separators=(",", ":"), default=str),
            "messages_dropped": str(ev.dropped_n),
        }
        self._submit(("close", ev, meta), None)

    def _submit(self, op: tuple[object, ...], ev: EventFile | None) -> None:
        """Run ``op`` now (lockstep) or queue it; a post-window record (``ev`` given) may be dropped."""
        q = self._queue
        if q is None:
            self._writer.handle(op)
            return
        if ev is not None and q.qsize() >= self.queue_capacity:
            ev.dropped_n += 1
            return
        q.put(op)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        q = self._queue
        assert q is not None
        while True:
            op = q.get()
            if op is _STOP:
                return
            try:
                self._writer.handle(op)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - never let the thread die
                self._writer.error("writer thread", exc)

    # ------------------------------------------------------------------ end
    def close(self, timeout_s: float | None = 30.0) -> dict[str, object]:
        """Finish the open event file (its post-window ends with the run); stop the writer. Safe twice.

        Returns
        -------
        dict
            ``mode``, ``triggers``, ``files`` (names), ``skipped_triggers``,
            ``messages_written``, ``messages_dropped``, ``bytes``, ``buffer_high_water``,
            ``errors``, ``error_texts``.
        """
        with self._lock:
            if self._stats is not None:
                return self._stats
            self._closed = True
            if self._active is not None:
                self._finish(self._active)
        if self._thread is not None and self._queue is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._writer.error("close", TimeoutError(f"writer thread busy after {timeout_s} s"))
        w = self._writer
        self._stats = {
            "mode": "triggered", "triggers": self.triggers_n, "files": [ev.path.name for ev in self.files],
            "skipped_triggers": self.skipped_triggers, "messages_written": w.messages_n,
            "messages_dropped": sum(ev.dropped_n for ev in self.files), "bytes": w.bytes_n,
            "buffer_high_water": self._ring.high_water_n, "errors": w.errors, "error_texts": list(w.error_texts),
        }
        return self._stats


def event_files(folder: Path) -> list[Path]:
    """Return the event files of a run folder, finished (``event-*.mcap``) and not (``.part``), in order."""
    def index(p: Path) -> tuple[int, str]:
        head = p.name.split("-")[1] if p.name.count("-") >= 2 else ""
        return (int(head) if head.isdigit() else 0, p.name)

    return sorted((p for p in Path(folder).glob("event-*.mcap*")
                   if p.is_file() and (p.suffix == ".mcap" or p.name.endswith(".mcap.part"))), key=index)
