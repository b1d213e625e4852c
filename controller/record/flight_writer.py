"""The writing side of the flight recorder: MCAP writer, chunk closing, JSON encoding, counters.

:class:`RecordWriter` is what :class:`controller.record.flight.FlightRecorder` hands its
messages to. It owns the file and the ``mcap`` library's :class:`mcap.writer.Writer`,
encodes each message to JSON, closes the open chunk when it is due, and counts what it
wrote and what failed. In lockstep the recorder calls it in the caller; in real time its
:meth:`RecordWriter.run` is the writer thread's loop over the queue of
:class:`controller.record.flight_queue.RecordQueue`. Either way one thread calls it at a
time. The guarantees it implements (chunk period, fsync) are described in
:mod:`controller.record.flight`.

Queue items (real time): a tuple ``(channel_id, log_time_ns, message)``; the same tuple
with ``message`` None is an :meth:`~controller.record.flight.FlightRecorder.advance`; a
:class:`ControlItem` runs a function (registration, attachment, metadata, dropout,
drain); :data:`STOP` ends the loop.

What this relies on in ``mcap`` (checked against mcap 1.6.0, ``mcap/writer.py``):
:meth:`mcap.writer.Writer.flush` is public API ("Finishes the chunk in progress, if any,
writes everything buffered so far to the output stream, and flushes the stream. This
does not fsync the underlying file."); it writes the chunk and its message indexes and
calls ``flush()`` on the stream we hand it (a ``BufferedWriter`` of our own, whose
``fileno()`` we ``fsync``). The chunk-size trigger is the constructor's ``chunk_size``.
A file whose :meth:`~controller.record.flight.FlightRecorder.close` never ran has no
summary and no footer; :func:`controller.record.recover.recover` rewrites it into a
finished one.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mcap.writer import CompressionType, Writer

__all__ = [
    "COMPRESSIONS",
    "MAX_ERROR_TEXTS",
    "MCAP_LIBRARY",
    "MCAP_PROFILE",
    "STOP",
    "ControlItem",
    "JsonMessage",
    "RecordStats",
    "RecordWriter",
    "WriterCounters",
    "chunk_count",
    "encode_json",
    "finite",
]

log = logging.getLogger(__name__)

#: A message as handed to :meth:`~controller.record.flight.FlightRecorder.write`: a JSON-ready mapping.
JsonMessage = Mapping[str, object]

#: Profile string of the MCAP header (empty: no ROS profile).
MCAP_PROFILE = ""
#: Library string of the MCAP header.
MCAP_LIBRARY = "qiki-flight-record/1"

#: Chunk compressions by name (the ``compression`` argument of the recorder).
COMPRESSIONS: dict[str, CompressionType] = {
    "zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE,
}

#: How many error texts :class:`RecordStats` keeps (the count is always exact).
MAX_ERROR_TEXTS = 20

#: The queue item that ends :meth:`RecordWriter.run`.
STOP = object()


@dataclass(frozen=True)
class RecordStats:
    """What a :class:`~controller.record.flight.FlightRecorder` did.

    Attributes
    ----------
    messages_written : int
        Messages handed to the MCAP writer (the dropout messages included).
    messages_dropped : int
        Messages refused because the queue was full (real time only).
    dropouts : int
        Dropout messages written on ``/record/dropouts`` (one per run of drops).
    chunk_flushes : int
        Chunks closed by the recorder (period, :meth:`~controller.record.flight.FlightRecorder.advance`, close).
    chunks : int
        Chunks in the finished file (from its statistics; includes the chunks the
        writer's size trigger closed); 0 until :meth:`~controller.record.flight.FlightRecorder.close`.
    errors : int
        Exceptions caught while encoding or writing (each item that failed counts once).
    error_texts : tuple of str
        The first :data:`MAX_ERROR_TEXTS` of them, one line each.
    nonfinite_replaced : int
        Messages in which a NaN or infinity was written as ``null``.
    queue_high_water : int
        Most items seen in the queue by a write (real time only).
    bytes : int
        Size of the file in bytes after :meth:`~controller.record.flight.FlightRecorder.close` (0 before).
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
class WriterCounters:
    """Mutable counters behind :class:`RecordStats` (writer side).

    Attributes
    ----------
    messages_written, dropouts, chunk_flushes, errors, nonfinite_replaced : int
        As in :class:`RecordStats`.
    error_texts : list of str
        The first :data:`MAX_ERROR_TEXTS` error lines.
    error_kinds_logged : set of str
        ``what:ExceptionName`` kinds already logged with a traceback.
    last_log_time_ns : int or None
        Newest log time written (ns).
    """

    messages_written: int = 0
    dropouts: int = 0
    chunk_flushes: int = 0
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)
    error_kinds_logged: set[str] = field(default_factory=set)
    nonfinite_replaced: int = 0
    last_log_time_ns: int | None = None


class ControlItem:
    """A queued non-message item: run ``fn`` on the writer thread, then set ``done``.

    Parameters
    ----------
    what : str
        What it does, for the error text (``channel /tick``, ``metadata run``).
    fn : callable
        The work; an exception it raises is counted by :meth:`RecordWriter.run_control`.
    """

    __slots__ = ("fn", "done", "what")

    def __init__(self, what: str, fn: Callable[[], None]) -> None:
        self.what = what
        self.fn = fn
        self.done = threading.Event()


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
#: Compact separators, ``allow_nan=False`` (a non-finite float raises ValueError), NumPy
#: scalars and arrays through ``.item()`` / ``.tolist()``.
encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_json_default).encode


def finite(obj: object) -> object:
    """Return ``obj`` with every non-finite float replaced by None (recursively).

    Parameters
    ----------
    obj : object
        A JSON-ready value (mappings, lists, tuples, NumPy scalars and arrays inside).

    Returns
    -------
    object
        The same structure (mappings as dicts, sequences as lists) with NaN and
        infinities as None.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "tolist") or hasattr(obj, "item"):
        return finite(_json_default(obj))
    return obj


class RecordWriter:
    """The file, the MCAP writer and the writer-side state of one flight record.

    Opens ``path`` (truncating it), writes the MCAP magic and header and flushes them to
    the operating system at once, so a killed run leaves an MCAP file.

    Parameters
    ----------
    path : Path
        File to create. The parent folder must exist.
    period_ns : int
        Longest stretch of log time (ns) an open chunk may span before it is closed.
    chunk_size_bytes : int
        Uncompressed chunk size (bytes) at which the ``mcap`` writer closes a chunk itself.
    compression : mcap.writer.CompressionType
        Chunk compression.
    fsync : bool
        ``os.fsync`` the file after each closed chunk.

    Raises
    ------
    OSError
        The file cannot be created.
    """

    def __init__(self, path: Path, *, period_ns: int, chunk_size_bytes: int, compression: CompressionType,
                 fsync: bool) -> None:
        self.path = path
        self.period_ns = period_ns
        self.fsync = fsync
        self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by FlightRecorder.close()
        self.mcap = Writer(self.file, chunk_size=chunk_size_bytes, compression=compression)
        self.mcap.start(profile=MCAP_PROFILE, library=MCAP_LIBRARY)
        self.file.flush()  # the magic and header reach the OS at once: a killed run leaves an MCAP file
        self.chunk_first_ns: int | None = None
        self.counters = WriterCounters()
        #: Newest log time written (0 at the start); read by the recorder for attachments.
        self.newest_ns = 0

    def close(self, finish: bool) -> tuple[int, int]:
        """Finish the file (summary, indexes, footer) when ``finish``, then close it.

        A failure is counted (:meth:`error`); the file is closed anyway.

        Parameters
        ----------
        finish : bool
            False leaves the file unfinished (the writer thread did not stop in time).

        Returns
        -------
        tuple of int
            Chunks in the finished file (0 when not finished) and its size in bytes.
        """
        if finish:
            try:
                self.mcap.finish()
                self.file.flush()
                if self.fsync:
                    os.fsync(self.file.fileno())
            except Exception as exc:  # noqa: BLE001 - counted and reported, the file is closed anyway
                self.error("finish", exc)
        chunks = 0
        try:
            self.file.close()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self.error("close", exc)
        size = self.path.stat().st_size if self.path.exists() else 0
        if finish:
            chunks = chunk_count(self.path)
        return chunks, size

    def stats(self, dropped: int, high_water: int) -> RecordStats:
        """Return the counters so far, with the caller side's drop count and queue high water."""
        c = self.counters
        return RecordStats(
            messages_written=c.messages_written,
            messages_dropped=dropped,
            dropouts=c.dropouts,
            chunk_flushes=c.chunk_flushes,
            errors=c.errors,
            error_texts=tuple(c.error_texts),
            nonfinite_replaced=c.nonfinite_replaced,
            queue_high_water=high_water,
            last_log_time_ns=c.last_log_time_ns,
        )

    def run_control(self, item: ControlItem) -> None:
        """Run a control item, counting an exception, and set its ``done`` event."""
        try:
            item.fn()
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self.error(item.what, exc)
        finally:
            item.done.set()

    def write_dropout(self, channel_id: int, first_ns: int, last_ns: int, count: int) -> None:
        """Write one dropout message (log time: the last dropped message's) and count it."""
        self.counters.dropouts += 1
        self.put_message(channel_id, last_ns,
                         {"first_dropped_ns": first_ns, "last_dropped_ns": last_ns, "count": count})

    def maybe_close_chunk(self, log_time_ns: int) -> None:
        """Close the open chunk when ``log_time_ns`` is a period or more after its first message."""
        first = self.chunk_first_ns
        if first is not None and log_time_ns - first >= self.period_ns:
            self.flush_chunk()

    def flush_chunk(self) -> None:
        """Close the open chunk: write it, flush the stream and (with ``fsync``) sync the file."""
        self.chunk_first_ns = None
        self.mcap.flush()  # public: finishes the open chunk, writes it, flushes the stream
        if self.fsync:
            os.fsync(self.file.fileno())
        self.counters.chunk_flushes += 1

    def put_message(self, channel_id: int, log_time_ns: int, message: JsonMessage) -> None:
        """Encode and add one message, closing the open chunk first when it is due.

        A failure is counted (:meth:`error`), never raised.
        """
        try:
            try:
                data = encode_json(message).encode()
            except ValueError:
                data = encode_json(finite(message)).encode()
                self.counters.nonfinite_replaced += 1
            self.maybe_close_chunk(log_time_ns)
            self.mcap.add_message(channel_id=channel_id, log_time=log_time_ns, data=data,
                                  publish_time=log_time_ns)
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self.error(f"message on channel {channel_id}", exc)
            return
        if self.chunk_first_ns is None:
            self.chunk_first_ns = log_time_ns
        c = self.counters
        c.messages_written += 1
        if c.last_log_time_ns is None or log_time_ns > c.last_log_time_ns:
            c.last_log_time_ns = log_time_ns
            self.newest_ns = log_time_ns

    def error(self, what: str, exc: BaseException) -> None:
        """Count an exception, keep its text, log the first of each kind with its traceback."""
        c = self.counters
        c.errors += 1
        text = f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if len(c.error_texts) < MAX_ERROR_TEXTS:
            c.error_texts.append(text)
        kind = f"{what.split()[0]}:{type(exc).__name__}"
        if kind not in c.error_kinds_logged:
            c.error_kinds_logged.add(kind)
            log.error("%s: flight record: %s", self.path, text, exc_info=exc)

    def run(self, q: queue.SimpleQueue[object], gate: threading.Event | None) -> None:
        """Take items off ``q`` until :data:`STOP` (the writer thread's loop).

        Parameters
        ----------
        q : queue.SimpleQueue
            The recorder's queue (see the module docstring for the items).
        gate : threading.Event or None
            Tests only: wait for it before taking each item.
        """
        while True:
            if gate is not None:
                gate.wait()
            item = q.get()
            if item is STOP:
                return
            if type(item) is tuple:
                channel_id, log_time_ns, message = item
                if message is None:
                    try:
                        self.maybe_close_chunk(log_time_ns)
                    except Exception as exc:  # noqa: BLE001 - counted and reported by close()
                        self.error("chunk flush", exc)
                else:
                    self.put_message(channel_id, log_time_ns, message)
            elif isinstance(item, ControlItem):
                self.run_control(item)


def chunk_count(path: Path) -> int:
    """Return the chunks in a finished MCAP file, from its summary statistics (0 when unreadable)."""
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as f:
            summary = make_reader(f).get_summary()
    except Exception:  # noqa: BLE001 - stats only
        return 0
    if summary is None or summary.statistics is None:
        return 0
    return int(summary.statistics.chunk_count)
