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
  never blocks, never encodes JSON in the caller); a writer thread encodes and writes.
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

What this relies on in ``mcap`` (checked against mcap 1.6.0, ``mcap/writer.py``):
:meth:`mcap.writer.Writer.flush` is public API ("Finishes the chunk in progress, if any,
writes everything buffered so far to the output stream, and flushes the stream. This
does not fsync the underlying file."); it writes the chunk and its message indexes and
calls ``flush()`` on the stream we hand it (a ``BufferedWriter`` of our own, whose
``fileno()`` we ``fsync``). The chunk-size trigger is the constructor's ``chunk_size``.
A file whose :meth:`close` never ran has no summary and no footer;
:func:`controller.record.reader.recover` rewrites it into a finished one.

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

Encoding
--------
``json.dumps`` with compact separators. A non-finite float (NaN, inf) is not JSON: the
message is encoded with ``null`` in its place and counted in
:attr:`RecordStats.nonfinite_replaced` (schemas of fields that can be non-finite allow
``null``). NumPy scalars and arrays are converted with ``.item()`` / ``.tolist()``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from mcap.writer import CompressionType, Writer

__all__ = [
    "DROPOUT_SCHEMA",
    "DROPOUT_TOPIC",
    "FlightRecorder",
    "RecordStats",
    "RecorderClosedError",
    "JsonMessage",
]

log = logging.getLogger(__name__)

#: A message as handed to :meth:`FlightRecorder.write`: a JSON-ready mapping.
JsonMessage = Mapping[str, object]

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

#: Profile string of the MCAP header (empty: no ROS profile).
MCAP_PROFILE = ""
#: Library string of the MCAP header.
MCAP_LIBRARY = "qiki-flight-record/1"

_MiB = 1024 * 1024
#: How many error texts :class:`RecordStats` keeps (the count is always exact).
_MAX_ERROR_TEXTS = 20


class RecorderClosedError(RuntimeError):
    """A write or registration on a :class:`FlightRecorder` that was closed."""


@dataclass(frozen=True)
class RecordStats:
    """What a :class:`FlightRecorder` did.

    Attributes
    ----------
    messages_written : int
        Messages handed to the MCAP writer (the dropout messages included).
    messages_dropped : int
        Messages refused because the queue was full (real time only).
    dropouts : int
        Dropout messages written on ``/record/dropouts`` (one per run of drops).
    chunk_flushes : int
        Chunks closed by the recorder (period, :meth:`FlightRecorder.advance`, close).
    chunks : int
        Chunks in the finished file (from its statistics; includes the chunks the
        writer's size trigger closed); 0 until :meth:`FlightRecorder.close`.
    errors : int
        Exceptions caught while encoding or writing (each item that failed counts once).
    error_texts : tuple of str
        The first :data:`_MAX_ERROR_TEXTS` of them, one line each.
    nonfinite_replaced : int
        Messages in which a NaN or infinity was written as ``null``.
    queue_high_water : int
        Most items seen in the queue by a write (real time only).
    bytes : int
        Size of the file in bytes after :meth:`FlightRecorder.close` (0 before).
    last_log_time_ns : int or None
        Newest log time written.
    """

    messages_written: int = 0
    messages_dropped: int = 0
    dropouts: int = 0
    chunk_flushes: int = 0
    chunks: int = 0
    errors: int = 0
    error_texts: tuple[str, ...] = ()
    nonfinite_replaced: int = 0
    queue_high_water: int = 0
    bytes: int = 0
    last_log_time_ns: int | None = None

    def as_dict(self) -> dict[str, object]:
        """Return the stats as a JSON-ready dict (for ``summary.json``)."""
        return {
            "messages_written": self.messages_written,
            "messages_dropped": self.messages_dropped,
            "dropouts": self.dropouts,
            "chunk_flushes": self.chunk_flushes,
            "chunks": self.chunks,
            "errors": self.errors,
            "error_texts": list(self.error_texts),
            "nonfinite_replaced": self.nonfinite_replaced,
            "queue_high_water": self.queue_high_water,
            "bytes": self.bytes,
            "last_log_time_ns": self.last_log_time_ns,
        }


@dataclass
class _Counters:
    """Mutable counters behind :class:`RecordStats` (writer side)."""

    messages_written: int = 0
    dropouts: int = 0
    chunk_flushes: int = 0
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)
    error_kinds_logged: set[str] = field(default_factory=set)
    nonfinite_replaced: int = 0
    last_log_time_ns: int | None = None


class _Control:
    """A queued non-message item: run ``fn`` on the writer thread, then set ``done``."""

    __slots__ = ("fn", "done", "what")

    def __init__(self, what: str, fn: Callable[[], None]) -> None:
        self.what = what
        self.fn = fn
        self.done = threading.Event()


_STOP = object()


def _json_default(obj: object) -> object:
    """``json.dumps`` fallback: NumPy scalars and arrays (``.item()``, ``.tolist()``)."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


#: One encoder for every message (``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_json_default).encode


def _finite(obj: object) -> object:
    """Return ``obj`` with every non-finite float replaced by None (recursively)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") or hasattr(obj, "item"):
        return _finite(_json_default(obj))
    return obj


class FlightRecorder:
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
        comp = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}.get(compression)
        if comp is None:
            raise ValueError(f"compression must be zstd, lz4 or none, got {compression!r}")
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_period_s = float(chunk_period_s)
        self.queue_capacity = int(queue_capacity)
        self._period_ns = max(1, round(chunk_period_s * 1e9))
        self._fsync = realtime if fsync is None else fsync
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._writer = Writer(self._file, chunk_size=chunk_size_bytes, compression=comp)
        self._writer.start(profile=MCAP_PROFILE, library=MCAP_LIBRARY)
        self._file.flush()  # the magic and header reach the OS at once: a killed run leaves an MCAP file
        self._schemas: dict[tuple[str, str], int] = {}
        self._topics: dict[str, int] = {}
        self._chunk_first_ns: int | None = None
        self._c = _Counters()
        self._closed = False
        self._final: RecordStats | None = None
        # caller-side state (real time)
        self._dropped = 0
        self._pending_first_ns: int | None = None
        self._pending_last_ns = 0
        self._pending_count = 0
        self._high_water = 0
        self._newest_ns = 0
        self._queue: queue.SimpleQueue[object] | None = None
        self._thread: threading.Thread | None = None
        self._gate = writer_gate
        if realtime:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="qiki-flight-record", daemon=True)
            self._thread.start()
        # registered in both modes, so a lockstep and a real-time file have the same layout
        self._dropout_channel = self.channel(DROPOUT_TOPIC, "qiki.record.Dropout", DROPOUT_SCHEMA)
        log.debug("%s: flight record opened (%s, chunk period %g s)", self.path,
                  "real time" if realtime else "lockstep", chunk_period_s)

    # ------------------------------------------------------------------ public API
    def channel(self, topic: str, schema_name: str, schema: Mapping[str, object]) -> int:
        """Register a channel of JSON messages described by a JSON Schema.

        Parameters
        ----------
        topic : str
            Channel topic (``/tick``, ``/radar/radar_lr/tracks``); unique in the file.
        schema_name : str
            Schema name (``qiki.Tick``); schemas with the same name and text are shared.
        schema : mapping
            The JSON Schema (JSON-ready).

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
        if topic in self._topics:
            raise ValueError(f"{self.path}: topic {topic!r} registered twice")
        data = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
        # The mcap writer numbers schemas and channels 1, 2, ... in registration order;
        # registrations run in order on the writing thread, so the ids are known here.
        schema_key = (schema_name, data.decode())
        schema_id = self._schemas.get(schema_key)
        new_schema = schema_id is None
        if schema_id is None:
            schema_id = len(self._schemas) + 1
            self._schemas[schema_key] = schema_id
        channel_id = len(self._topics) + 1
        self._topics[topic] = channel_id

        def register() -> None:
            if new_schema:
                got = self._writer.register_schema(name=schema_name, encoding="jsonschema", data=data)
                assert got == schema_id, (got, schema_id)
            got_c = self._writer.register_channel(topic=topic, message_encoding="json", schema_id=schema_id)
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
            self._put_message(channel_id, log_time_ns, message)
            return
        n = q.qsize()
        if n >= self.queue_capacity:
            self._dropped += 1
            if self._pending_first_ns is None:
                self._pending_first_ns = log_time_ns
                self._pending_count = 0
            self._pending_last_ns = log_time_ns
            self._pending_count += 1
            return
        if n > self._high_water:
            self._high_water = n
        if self._pending_first_ns is not None:
            self._queue_dropout()
        q.put((channel_id, log_time_ns, message))

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
            self._maybe_close_chunk(log_time_ns)
        elif q.qsize() < self.queue_capacity:
            q.put((0, log_time_ns, None))

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
        t = self._newest_ns if log_time_ns is None else int(log_time_ns)
        blob = bytes(data)
        self._control(f"attachment {name}", lambda: self._writer.add_attachment(
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
        self._control(f"metadata {name}", lambda: self._writer.add_metadata(name=name, data=entries))

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
        item = _Control("drain", lambda: None)
        self._queue.put(item)
        return item.done.wait(timeout_s)

    @property
    def stats(self) -> RecordStats:
        """Counters so far (a snapshot; the final ones after :meth:`close`)."""
        if self._final is not None:
            return self._final
        c = self._c
        return RecordStats(
            messages_written=c.messages_written,
            messages_dropped=self._dropped,
            dropouts=c.dropouts,
            chunk_flushes=c.chunk_flushes,
            errors=c.errors,
            error_texts=tuple(c.error_texts),
            nonfinite_replaced=c.nonfinite_replaced,
            queue_high_water=self._high_water,
            last_log_time_ns=c.last_log_time_ns,
        )

    def close(self, timeout_s: float | None = None) -> RecordStats:
        """Write what is queued, finish the file (summary, indexes, footer) and close it.

        Idempotent. Pending dropouts are written first.

        Parameters
        ----------
        timeout_s : float or None, optional
            Longest wait for the writer thread (None: no limit). On timeout the file is
            closed unfinished (:func:`controller.record.reader.recover` finishes it) and
            the timeout is counted as an error.

        Returns
        -------
        RecordStats
            The final counters; ``errors`` > 0 means something was not recorded.
        """
        if self._final is not None:
            return self._final
        if self._queue is not None and self._pending_first_ns is not None:
            self._queue_dropout()
        elif self._queue is None and self._pending_first_ns is not None:  # pragma: no cover - lockstep never drops
            self._write_dropout(self._pending_first_ns, self._pending_last_ns, self._pending_count)
        self._closed = True
        finished = True
        if self._thread is not None and self._queue is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                finished = False
                self._error("close", TimeoutError(f"writer thread busy after {timeout_s} s; file left unfinished"))
        if finished:
            try:
                self._writer.finish()
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
            except Exception as exc:  # noqa: BLE001 - counted and reported, the file is closed anyway
                self._error("finish", exc)
        chunks = 0
        try:
            self._file.close()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self._error("close", exc)
        size = self.path.stat().st_size if self.path.exists() else 0
        if finished:
            chunks = _chunk_count(self.path)
        self._final = replace(self.stats, chunks=chunks, bytes=size)
        if self._final.errors:
            log.warning("%s: flight record closed with %d error(s); first: %s", self.path, self._final.errors,
                        self._final.error_texts[0] if self._final.error_texts else "?")
        if self._final.messages_dropped:
            log.warning("%s: %d message(s) dropped in %d dropout(s) (queue full)", self.path,
                        self._final.messages_dropped, self._final.dropouts)
        return self._final

    def __enter__(self) -> FlightRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RecorderClosedError(f"{self.path}: recorder is closed")

    def _control(self, what: str, fn: Callable[[], None]) -> None:
        item = _Control(what, fn)
        if self._queue is None:
            self._run_control(item)
        else:
            self._queue.put(item)

    def _run_control(self, item: _Control) -> None:
        try:
            item.fn()
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self._error(item.what, exc)
        finally:
            item.done.set()

    def _queue_dropout(self) -> None:
        assert self._queue is not None and self._pending_first_ns is not None
        first, last, count = self._pending_first_ns, self._pending_last_ns, self._pending_count
        self._pending_first_ns = None
        self._pending_count = 0
        self._queue.put(_Control("dropout", lambda: self._write_dropout(first, last, count)))

    def _write_dropout(self, first_ns: int, last_ns: int, count: int) -> None:
        self._c.dropouts += 1
        self._put_message(self._dropout_channel, last_ns,
                          {"first_dropped_ns": first_ns, "last_dropped_ns": last_ns, "count": count})

    def _maybe_close_chunk(self, log_time_ns: int) -> None:
        first = self._chunk_first_ns
        if first is not None and log_time_ns - first >= self._period_ns:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        self._chunk_first_ns = None
        self._writer.flush()  # public: finishes the open chunk, writes it, flushes the stream
        if self._fsync:
            os.fsync(self._file.fileno())
        self._c.chunk_flushes += 1

    def _put_message(self, channel_id: int, log_time_ns: int, message: JsonMessage) -> None:
        """Encode and add one message, closing the open chunk first when it is due."""
        try:
            try:
                data = _encode(message).encode()
            except ValueError:
                data = _encode(_finite(message)).encode()
                self._c.nonfinite_replaced += 1
            self._maybe_close_chunk(log_time_ns)
            self._writer.add_message(channel_id=channel_id, log_time=log_time_ns, data=data,
                                     publish_time=log_time_ns)
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self._error(f"message on channel {channel_id}", exc)
            return
        if self._chunk_first_ns is None:
            self._chunk_first_ns = log_time_ns
        c = self._c
        c.messages_written += 1
        if c.last_log_time_ns is None or log_time_ns > c.last_log_time_ns:
            c.last_log_time_ns = log_time_ns
            self._newest_ns = log_time_ns

    def _error(self, what: str, exc: BaseException) -> None:
        c = self._c
        c.errors += 1
        text = f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if len(c.error_texts) < _MAX_ERROR_TEXTS:
            c.error_texts.append(text)
        kind = f"{what.split()[0]}:{type(exc).__name__}"
        if kind not in c.error_kinds_logged:
            c.error_kinds_logged.add(kind)
            log.error("%s: flight record: %s", self.path, text, exc_info=exc)

    def _run(self) -> None:
        """Take items off the queue until the stop marker (the writer thread)."""
        q = self._queue
        assert q is not None
        gate = self._gate
        while True:
            if gate is not None:
                gate.wait()
            item = q.get()
            if item is _STOP:
                return
            if type(item) is tuple:
                channel_id, log_time_ns, message = item
                if message is None:
                    try:
                        self._maybe_close_chunk(log_time_ns)
                    except Exception as exc:  # noqa: BLE001 - counted and reported by close()
                        self._error("chunk flush", exc)
                else:
                    self._put_message(channel_id, log_time_ns, message)
            elif isinstance(item, _Control):
                self._run_control(item)


def _chunk_count(path: Path) -> int:
    """Chunks in a finished MCAP file, from its summary statistics (0 when unreadable)."""
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as f:
            summary = make_reader(f).get_summary()
    except Exception:  # noqa: BLE001 - stats only
        return 0
    if summary is None or summary.statistics is None:
        return 0
    return int(summary.statistics.chunk_count)
