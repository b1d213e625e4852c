"""The flight record's writer: ``run.mcap``, an MCAP file of JSON-Schema channels (issue 12).

:class:`FlightRecorder` wraps the ``mcap`` library's :class:`mcap.writer.Writer`. Every
channel carries JSON messages (``message_encoding = "json"``) described by a JSON Schema
(``schema encoding = "jsonschema"``), the form Foxglove, Lichtblick and PlotJuggler read
without plugins for the encoding. Times are nanoseconds on the run clock (run time 0 is
the first tick); ``publish_time`` equals ``log_time``.

Two modes
---------
* Lockstep (``realtime=False``): :meth:`FlightRecorder.write` encodes and writes in the
  caller, synchronously. The file is a pure function of the calls made.
* Real time (``realtime=True``): :meth:`FlightRecorder.write` only appends the tuple
  ``(channel_id, log_time_ns, message)`` to a bounded queue (a C ``queue.SimpleQueue``:
  never blocks, never encodes JSON in the caller); a writer thread encodes and writes,
  in the control thread's idle time between ticks (:meth:`FlightRecorder.idle`,
  :class:`~controller.record.flight_queue.IdleGate`).
  When the queue holds ``queue_capacity`` items the message is dropped and counted; at
  the next write that finds room again, a message ``{first_dropped_ns, last_dropped_ns,
  count}`` is queued on the ``/record/dropouts`` channel first. A full queue is a
  dropout, never a stall (PX4's ULog marks dropouts the same way). The capacity is a soft
  bound: control items (channels, attachments, metadata, the dropout message, the
  close marker) are never refused.

Chunking and crash safety
-------------------------
Messages go into zstd-compressed chunks. The open chunk is closed -- written to the file
and flushed to the operating system -- before a message whose log time is
``chunk_period_s`` or more after the open chunk's first message (and when
:meth:`FlightRecorder.advance` reports such a time). Hence at any moment every message
whose log time is ``chunk_period_s`` or more before the newest one written is in a
closed chunk in the file, and a SIGKILL loses at most the open chunk (plus, in real
time, what sits in the queue, see ``stats.queue_high_water``). With ``fsync`` (the
default in real time) the file is also ``os.fsync``-ed after each closed chunk, from
the writer thread, so a power cut loses no more. A chunk also closes when its
uncompressed size passes ``chunk_size_bytes`` (the ``mcap`` writer's own trigger).

Threading
---------
:meth:`~FlightRecorder.write`, :meth:`~FlightRecorder.advance`,
:meth:`~FlightRecorder.channel`, :meth:`~FlightRecorder.attach`,
:meth:`~FlightRecorder.metadata` and :meth:`~FlightRecorder.close` are called from one
thread (the tick's). The recorder takes ownership of a message dict passed to
:meth:`~FlightRecorder.write`: in real time it is encoded later, on the writer thread, so
the caller must not change it afterwards. An exception on the writer thread (a message
that does not encode, a full disk) is counted, logged (the first of each kind with its
traceback) and reported by :meth:`~FlightRecorder.close` in :attr:`RecordStats.errors`;
the thread goes on with the next item.

Encoding and layout
-------------------
Messages are compact JSON; a NaN or infinity is written as ``null`` and counted in
:attr:`RecordStats.nonfinite_replaced`. This module is the public API (the names below
are re-exported here). The writing side -- file, ``mcap`` writer, chunk closing, JSON
encoding, the writer thread's loop, the counters, :class:`RecordStats` -- is
:mod:`controller.record.flight_writer` (it also says what it relies on in ``mcap``); the
real-time queue, drops and dropout runs are :mod:`controller.record.flight_queue`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, TypeVar

from controller.record.flight_queue import IdleGate, RecordQueue
from controller.record.flight_writer import (
    COMPRESSIONS,
    MCAP_LIBRARY,
    MCAP_PROFILE,
    ChannelTable,
    ControlItem,
    JsonMessage,
    RecordStats,
    RecordWriter,
    row_record,
)

__all__ = [
    "DROPOUT_SCHEMA",
    "DROPOUT_TOPIC",
    "FlightRecorder",
    "RecordStats",
    "RecorderClosedError",
    "JsonMessage",
    "MCAP_LIBRARY",
    "MCAP_PROFILE",
]

log = logging.getLogger(__name__)

#: Topic of the dropout messages (real time only).
DROPOUT_TOPIC = "/record/dropouts"

#: JSON Schema of a dropout message: the log times (ns) of the first and last message
#: dropped in a run of drops, and how many were dropped.
DROPOUT_SCHEMA: dict[str, object] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "qiki.record.Dropout",
    "description": "Messages dropped because the recorder's queue was full (real time only).",
    "type": "object",
    "properties": {
        "first_dropped_ns": {"type": "integer", "description": "log time of the first dropped message (ns)"},
        "last_dropped_ns": {"type": "integer", "description": "log time of the last dropped message (ns)"},
        "count": {"type": "integer", "minimum": 1, "description": "messages dropped"},
    },
    "required": ["first_dropped_ns", "last_dropped_ns", "count"],
    "additionalProperties": False,
}

_MiB = 1024 * 1024


class RecorderClosedError(RuntimeError):
    """A write or registration on a :class:`FlightRecorder` that was closed."""


_R = TypeVar("_R", bound="RecorderEnds")


class RecorderEnds:
    """What both recorders (:class:`FlightRecorder`, ``flight_proc.ProcessRecorder``) share at their ends.

    A context manager that closes the recorder on exit (an exception included: the file is
    finished, nothing recorded is lost), and the closed-state check of every write.
    Subclasses set ``path`` and ``_closed`` and implement ``close``.
    """

    path: Path
    _closed: bool

    def close(self) -> RecordStats:
        """Finish the file and return the final counters (see the subclasses)."""
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecorderClosedError(f"{self.path}: recorder is closed")


class FlightRecorder(RecorderEnds):
    """Writer of one MCAP flight record (see the module docstring for the guarantees).

    Parameters
    ----------
    path : Path
        File to create (truncated if it exists). The parent folder must exist.
    realtime : bool
        True: writes go through a bounded queue to a writer thread; False (lockstep):
        writes are synchronous in the caller.
    chunk_period_s : float, optional
        Longest stretch of log time (s) an open chunk may span before it is closed and
        flushed (default 0.5, issue 12: "chunks are closed at least every 0.5 s of run
        time"). Must be > 0.
    queue_capacity : int, optional
        Items the real-time queue holds before writes are dropped (default 65536).
    chunk_size_bytes : int, optional
        Uncompressed chunk size (bytes) at which the ``mcap`` writer closes a chunk on its
        own (default 1 MiB).
    compression : {"zstd", "lz4", "none"}, optional
        Chunk compression (default ``"zstd"``).
    fsync : bool or None, optional
        ``os.fsync`` the file after each closed chunk and at close (default: in real time
        only -- off the tick, on the writer thread; in lockstep an fsync per 0.5 s of
        run time would dominate a fast run).
    writer_gate : threading.Event or None, optional
        Tests only: the writer thread waits for this event before taking each item off
        the queue, so a test can hold it and fill the queue deterministically.

    Raises
    ------
    ValueError
        A non-positive period, capacity or chunk size; an unknown compression.
    OSError
        The file cannot be created.
    """

    def __init__(
        self,
        path: Path,
        *,
        realtime: bool,
        chunk_period_s: float = 0.5,
        queue_capacity: int = 65536,
        chunk_size_bytes: int = _MiB,
        compression: str = "zstd",
        fsync: bool | None = None,
        writer_gate: threading.Event | None = None,
    ) -> None:
        if not chunk_period_s > 0.0 or not math.isfinite(chunk_period_s):
            raise ValueError(f"chunk_period_s must be > 0, got {chunk_period_s!r}")
        if queue_capacity < 1:
            raise ValueError(f"queue_capacity must be >= 1, got {queue_capacity!r}")
        if chunk_size_bytes < 1:
            raise ValueError(f"chunk_size_bytes must be >= 1, got {chunk_size_bytes!r}")
        comp = COMPRESSIONS.get(compression)
        if comp is None:
            raise ValueError(f"compression must be zstd, lz4 or none, got {compression!r}")
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_period_s = float(chunk_period_s)
        self.queue_capacity = int(queue_capacity)
        self._fsync = realtime if fsync is None else fsync
        # the writing side (runs on the writer thread in real time, in the caller in lockstep)
        self._w = RecordWriter(self.path, period_ns=max(1, round(chunk_period_s * 1e9)),
                               chunk_size_bytes=chunk_size_bytes, compression=comp, fsync=self._fsync)
        self._file: IO[bytes] = self._w.file
        self._channels = ChannelTable(self.path)
        self._closed = False
        self._final: RecordStats | None = None
        # the caller side in real time: queue, drops, writer thread (None in lockstep)
        self._queue = RecordQueue(self._w, self.queue_capacity, writer_gate, IdleGate()) if realtime else None
        # registered in both modes, so a lockstep and a real-time file have the same layout
        self._dropout_channel = self.channel(DROPOUT_TOPIC, "qiki.record.Dropout", DROPOUT_SCHEMA)
        if self._queue is not None:
            self._queue.dropout_channel = self._dropout_channel
        log.debug("%s: flight record opened (%s, chunk period %g s)", self.path,
                  "real time" if realtime else "lockstep", chunk_period_s)

    # ------------------------------------------------------------------ public API
    def channel(self, topic: str, schema_name: str, schema: Mapping[str, object], *, finite: bool = False) -> int:
        """Register a channel of JSON messages described by a JSON Schema.

        Parameters
        ----------
        topic : str
            Channel topic (``/tick``, ``/radar/radar_lr/tracks``); unique in the file.
        schema_name : str
            Schema name (``qiki.Tick``); schemas with the same name and text are shared.
        schema : mapping
            The JSON Schema (JSON-ready).
        finite : bool, optional
            The producer never puts a NaN or an infinity in a message (it writes such
            values as text, as the taps do): the writer does not look for one in a
            message with a ``null`` (a walk over the message), and
            :attr:`RecordStats.nonfinite_replaced` does not count this channel's messages.

        Returns
        -------
        int
            Channel id for :meth:`write`.

        Raises
        ------
        ValueError
            The topic is already registered.
        RecorderClosedError
            After :meth:`close`.
        """
        self._check_open()
        data, schema_id, new_schema, channel_id = self._channels.add(topic, schema_name, schema)
        if finite:
            self._w.finite_channels.add(channel_id)  # before any message of the channel is queued

        def register() -> None:
            if new_schema:
                got = self._w.mcap.register_schema(name=schema_name, encoding="jsonschema", data=data)
                assert got == schema_id, (got, schema_id)
            got_c = self._w.mcap.register_channel(topic=topic, message_encoding="json", schema_id=schema_id)
            assert got_c == channel_id, (got_c, channel_id)

        self._control(f"channel {topic}", register)
        return channel_id

    def write(self, channel_id: int, log_time_ns: int, message: JsonMessage) -> None:
        """Record one message (publish time = log time).

        Parameters
        ----------
        channel_id : int
            From :meth:`channel`.
        log_time_ns : int
            Run-clock time of the message in nanoseconds (non-negative).
        message : mapping
            JSON-ready message; owned by the recorder from here on (do not mutate it).

        Raises
        ------
        RecorderClosedError
            After :meth:`close`.

        Notes
        -----
        In real time this never blocks and never encodes: a full queue drops the message
        and counts it (see the module docstring).
        """
        if self._closed:
            raise RecorderClosedError(f"{self.path}: write after close")
        q = self._queue
        if q is None:
            self._w.put_message(channel_id, log_time_ns, message)
        else:
            q.offer(channel_id, log_time_ns, message)

    def write_row(self, channel_id: int, log_time_ns: int, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Record the message :func:`~controller.record.taps.row_record` ``(keys, values)`` (as :meth:`write`)."""
        self.write(channel_id, log_time_ns, row_record(keys, values))

    def advance(self, log_time_ns: int) -> None:
        """Tell the recorder the run clock reached ``log_time_ns`` (closes a due chunk).

        A run that goes quiet (no message for longer than the chunk period) keeps its
        last messages in the open chunk; calling this once per tick bounds their age the
        same way a message would. In real time it queues the time (dropped, uncounted,
        when the queue is full: the next message does the same job).

        Parameters
        ----------
        log_time_ns : int
            Run-clock time in nanoseconds.
        """
        if self._closed:
            raise RecorderClosedError(f"{self.path}: advance after close")
        q = self._queue
        if q is None:
            self._w.maybe_close_chunk(log_time_ns)
        else:
            q.offer_advance(log_time_ns)

    def attach(self, name: str, data: bytes, media_type: str, *, log_time_ns: int | None = None) -> None:
        """Add an attachment (a file as loaded: ``rig.yaml``, ``mission.yaml``, a DBC).

        Parameters
        ----------
        name : str
            Attachment name.
        data : bytes
            Its bytes.
        media_type : str
            ``application/yaml``, ``text/plain``, ...
        log_time_ns : int or None, optional
            Its log time (default: the newest log time written so far, 0 at the start).
        """
        self._check_open()
        t = self._w.newest_ns if log_time_ns is None else int(log_time_ns)
        blob = bytes(data)
        self._control(f"attachment {name}", lambda: self._w.mcap.add_attachment(
            create_time=t, log_time=t, name=name, media_type=media_type, data=blob))

    def metadata(self, name: str, data: Mapping[str, str]) -> None:
        """Add a metadata record (string keys and values: seed, versions, settings).

        Parameters
        ----------
        name : str
            Record name (``run``, ``versions``).
        data : mapping of str to str
            Its entries.

        Raises
        ------
        TypeError
            A key or value that is not a string.
        """
        self._check_open()
        entries = dict(data)
        for k, v in entries.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata {name!r}: {k!r}: keys and values must be str")
        self._control(f"metadata {name}", lambda: self._w.mcap.add_metadata(name=name, data=entries))

    def idle(self, remaining_s: float) -> None:
        """Tell the writer thread the control thread sleeps ``remaining_s`` (s) from now.

        Real time: the writer works in such idle windows only, up to
        :attr:`IdleGate.margin_s <controller.record.flight_queue.IdleGate>` before the
        next tick (see :mod:`controller.record.flight_queue`); called before each sleep
        of the loop by :meth:`controller.record.taps.TapClock.sleep_until`. Nothing in
        lockstep or after :meth:`close`.

        Parameters
        ----------
        remaining_s : float
            Time until the next tick is due (s; <= 0: no idle time).
        """
        q = self._queue
        if q is not None and q.idle is not None and not self._closed:
            q.idle.idle(remaining_s)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until the writer thread has handled everything queued so far.

        Parameters
        ----------
        timeout_s : float or None, optional
            Longest wait in seconds (None: no limit).

        Returns
        -------
        bool
            True when drained (always True in lockstep), False on timeout.
        """
        if self._queue is None or self._closed:
            return True
        item = ControlItem("drain", lambda: None)
        idle = self._queue.idle
        if idle is not None:
            idle.force(True)  # the caller waits: no idle window is coming from it
        try:
            self._queue.put(item)
            return item.done.wait(timeout_s)
        finally:
            if idle is not None:
                idle.force(False)

    @property
    def stats(self) -> RecordStats:
        """Counters so far (a snapshot; the final ones after :meth:`close`)."""
        if self._final is not None:
            return self._final
        q = self._queue
        return self._w.stats(0 if q is None else q.dropped, 0 if q is None else q.high_water)

    def close(self, timeout_s: float | None = None) -> RecordStats:
        """Write what is queued, finish the file (summary, indexes, footer) and close it.

        Idempotent. Pending dropouts are written first.

        Parameters
        ----------
        timeout_s : float or None, optional
            Longest wait for the writer thread (None: no limit). On timeout the file is
            closed unfinished (:func:`controller.record.recover.recover` finishes it) and
            the timeout is counted as an error.

        Returns
        -------
        RecordStats
            The final counters; ``errors`` > 0 means something was not recorded.
        """
        if self._final is not None:
            return self._final
        if self._queue is not None:
            self._queue.queue_dropout()  # a pending run of drops (lockstep never drops)
        self._closed = True
        finished = True
        if self._queue is not None and not self._queue.stop(timeout_s):
            finished = False
            self._w.error("close", TimeoutError(f"writer thread busy after {timeout_s} s; file left unfinished"))
        chunks, size = self._w.close(finished)
        self._final = replace(self.stats, chunks=chunks, bytes=size)
        self._final.log_warnings(self.path)
        return self._final

    # ------------------------------------------------------------------ internals
    def _control(self, what: str, fn: Callable[[], None]) -> None:
        item = ControlItem(what, fn)
        if self._queue is None:
            self._w.run_control(item)
        else:
            self._queue.put(item)
