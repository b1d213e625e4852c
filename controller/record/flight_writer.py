"""The writing side of the flight recorder: MCAP writer, chunk closing, JSON encoding, counters.

:class:`RecordWriter` is what :class:`controller.record.flight.FlightRecorder` hands its
messages to. It owns the file and the ``mcap`` library's :class:`mcap.writer.Writer`,
encodes each message to JSON, closes the open chunk when it is due, and counts what it
wrote and what failed. In lockstep the recorder calls it in the caller; in real time its
:meth:`RecordWriter.run` is the writer thread's loop over the queue of
:class:`controller.record.flight_queue.RecordQueue`; a run's ``run.mcap`` is written by
one in a child process (:mod:`controller.record.flight_proc`, through
:meth:`RecordWriter.put_encoded`). Either way one thread calls it at a time. The
guarantees it implements (chunk period, fsync) are described in
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
Compact JSON by ``orjson`` (:func:`encode_message`; 10 to 25 times faster than the
standard library's encoder on these messages, bench/record.py); a message ``orjson``
refuses (a key that is not a string, an integer beyond 64 bits) is encoded by the
standard library's ``json`` instead. A non-finite float (NaN, inf) is not JSON: it is
written as ``null`` and the message is counted in :attr:`RecordStats.nonfinite_replaced`
(schemas of fields that can be non-finite allow ``null``). NumPy scalars and arrays are
converted with ``.item()`` / ``.tolist()``. Floats are written in their shortest form
that reads back to the same double (``orjson`` and ``repr`` alike), so a replay reads
back exactly the values the run recorded.

Adding a message
----------------
The ``mcap`` writer's :meth:`~mcap.writer.Writer.add_message` spends about 5 us of
Python per message (a dataclass, five ``struct.pack`` and two ``seek`` calls).
:class:`ChunkAppender` does the same work with one ``struct.pack`` on the writer's own
chunk builder and statistics, giving byte-identical files (``tests/unit/
test_flight_record.py`` compares them); it relies on the private attributes of mcap
1.x's ``Writer`` and ``ChunkBuilder`` listed in :data:`ChunkAppender.NEEDS`, checked
when the file is opened: with any of them missing, the public ``add_message`` is used.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import queue
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO, Any, Protocol, SupportsFloat

import orjson
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import MessageIndex, Statistics
from mcap.writer import CompressionType, Writer

__all__ = [
    "COMPRESSIONS",
    "MAX_ERROR_TEXTS",
    "MCAP_LIBRARY",
    "MCAP_PROFILE",
    "NumberKeys",
    "STOP",
    "ControlItem",
    "IdleGateLike",
    "JsonMessage",
    "RecordStats",
    "RecordWriter",
    "WriterCounters",
    "ChunkAppender",
    "chunk_count",
    "encode_json",
    "encode_message",
    "finite",
    "has_nonfinite",
    "row_record",
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
_NOTHING = object()


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

    def log_warnings(self, path: Path) -> None:
        """Log, once at close, the errors and the dropped messages of the record at ``path``."""
        if self.errors:
            log.warning("%s: flight record closed with %d error(s); first: %s", path, self.errors,
                        self.error_texts[0] if self.error_texts else "?")
        if self.messages_dropped:
            log.warning("%s: %d message(s) dropped in %d dropout(s) (queue full)", path,
                        self.messages_dropped, self.dropouts)

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


#: ``orjson`` options: dataclasses and datetimes go to ``default`` (and fail there), as
#: with the standard library's encoder.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_orjson_dumps = orjson.dumps


@dataclass
class ChannelTable:
    """Schema and channel ids of a record, numbered as the mcap writer will number them.

    The mcap writer numbers schemas and channels 1, 2, ... in registration order, so a
    recorder that registers in order (on its writer thread or in its writer process)
    knows the ids at once. Shared by :class:`~controller.record.flight.FlightRecorder`
    and :class:`~controller.record.flight_proc.ProcessRecorder`.
    """

    path: Path
    schemas: dict[tuple[str, str], int] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)

    def add(self, topic: str, schema_name: str, schema: Mapping[str, object]) -> tuple[bytes, int, bool, int]:
        """Give a new channel its schema and channel ids.

        Returns
        -------
        (bytes, int, bool, int)
            The schema as compact JSON (sorted keys), its schema id, whether the schema is
            new (to register before the channel), and the channel id.

        Raises
        ------
        ValueError
            The topic is already registered.
        """
        if topic in self.topics:
            raise ValueError(f"{self.path}: topic {topic!r} registered twice")
        data = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
        key = (schema_name, data.decode())
        schema_id = self.schemas.get(key)
        new_schema = schema_id is None
        if schema_id is None:
            schema_id = self.schemas[key] = len(self.schemas) + 1
        channel_id = self.topics[topic] = len(self.topics) + 1
        return data, schema_id, new_schema, channel_id


def clean_number(x: SupportsFloat | None) -> float | None:
    """Return a telemetry number for JSON: None for None, NaN or an infinity, else ``float(x)``.

    Raises
    ------
    TypeError
        ``x`` is not a real number (nor None).
    """
    if x is None:
        return None
    f = float(x)  # a real number by the row's layout
    return f if math.isfinite(f) else None


class NumberKeys(tuple[str, ...]):
    """A row layout whose values at :attr:`numbers` are handed raw and cleaned by whoever builds the record.

    The tick hands such a row's numbers as they are (a float, None, or a NaN on a fault);
    :func:`row_record` -- in the writer process for ``run.mcap``, off the tick -- makes
    each one :func:`clean_number` of it, so the record holds a float or None (JSON
    ``null``), as if the tick had cleaned them. Made once per layout (``/tick``); sent to
    the writer process once, then named by a number
    (:meth:`controller.record.flight_proc.ProcessRecorder.row_appender`).

    Parameters
    ----------
    keys : iterable of str
        The record's keys, in order.
    numbers : iterable of int
        Indices of the values to clean.

    Raises
    ------
    IndexError
        An index outside the keys.
    """

    numbers: tuple[int, ...]

    def __new__(cls, keys: Iterable[str], numbers: Iterable[int]) -> NumberKeys:
        """Make the layout (see the class)."""
        self = super().__new__(cls, keys)
        self.numbers = tuple(numbers)
        for i in self.numbers:
            self[i]  # noqa: B018 - IndexError for an index outside the keys
        return self

    def __reduce__(self) -> tuple[object, ...]:
        return (NumberKeys, (tuple(self), self.numbers))

    def clean(self, values: tuple[object, ...]) -> tuple[object, ...]:
        """Return ``values`` with each value at :attr:`numbers` as :func:`clean_number` of it."""
        out = list(values)
        for i in self.numbers:
            x = out[i]
            if x.__class__ is not float or x - x != 0.0:  # a plain finite float stays
                out[i] = clean_number(x)  # type: ignore[arg-type]  # a number or None by the layout
        return tuple(out)


def row_record(keys: tuple[str, ...], values: tuple[object, ...]) -> dict[str, object]:
    """Return the record of a row: ``dict(zip(keys, values))``, bytes values as lowercase hex.

    A tap hands its record as a row (a fixed layout of keys and a tuple of values, see
    :class:`controller.record.taps.IngressSink`) so the tick builds no dict; whoever
    writes it builds this record, the one the tap used to build itself. A
    :class:`NumberKeys` layout's numbers are cleaned here (:meth:`NumberKeys.clean`).

    Parameters
    ----------
    keys : tuple of str
        The row's layout (fixed per call site, e.g. :data:`controller.record.taps.CAN_RX_KEYS`).
    values : tuple
        One value per key (JSON scalars, or bytes).

    Returns
    -------
    dict
        Same keys, order and values; each bytes value as its ``.hex()``.

    Raises
    ------
    ValueError
        ``keys`` and ``values`` differ in length.
    """
    if keys.__class__ is NumberKeys:
        values = keys.clean(values)
    rec = dict(zip(keys, values, strict=True))
    if bytes in map(type, values):  # a tap's frame or chunk; telemetry rows hold none
        for k, v in zip(keys, values, strict=True):
            if type(v) is bytes:
                rec[k] = v.hex()
    return rec


def encode_message(message: JsonMessage, *, check_nonfinite: bool = True) -> tuple[bytes, bool]:
    """Encode one message as compact JSON.

    Parameters
    ----------
    message : mapping
        A JSON-ready message (NumPy scalars and arrays allowed).
    check_nonfinite : bool, optional
        Look for a NaN or an infinity written as ``null`` (default True). False for a
        channel registered ``finite=True``, whose messages hold none by contract.

    Returns
    -------
    bytes
        The JSON text (UTF-8), non-finite floats as ``null``.
    bool
        True when a non-finite float was written as ``null``.

    Raises
    ------
    TypeError
        A value that is not JSON (after ``.tolist()`` / ``.item()``).
    """
    try:
        data = _orjson_dumps(message, default=_json_default, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, an int beyond 64 bits, ... -> as before
        try:
            return encode_json(message).encode(), False
        except ValueError:
            return encode_json(finite(message)).encode(), True
    # orjson writes NaN and infinities as null: only a message with a null can hold one
    if check_nonfinite and b"null" in data and has_nonfinite(message):
        return data, True
    return data, False


def has_nonfinite(obj: object) -> bool:
    """Return True when ``obj`` holds a NaN or an infinity (recursively, as :func:`finite` walks it).

    Iterative, with exact-type tests first: it runs on every message whose JSON has a
    ``null`` (a Modbus snapshot's ``last_failure``, a ``/tick`` before the first pose).
    """
    stack: list[Any] = [obj]  # internal: any JSON-ready value
    pop, extend = stack.pop, stack.extend
    while stack:
        o = pop()
        t = type(o)
        if t is float:
            if o - o != 0.0:  # NaN and +-inf give NaN; every finite float gives 0.0
                return True
        elif t is dict:
            extend(o.values())
        elif t is list or t is tuple:
            extend(o)
        elif t in _PLAIN:
            continue
        elif isinstance(o, float):
            if not math.isfinite(o):
                return True
        elif isinstance(o, Mapping):
            extend(o.values())
        elif isinstance(o, (list, tuple)):
            extend(o)
        elif hasattr(o, "tolist") or hasattr(o, "item"):
            try:
                extend([_json_default(o)])
            except TypeError:
                continue
    return False


#: Types :func:`has_nonfinite` skips at once.
_PLAIN = frozenset({str, int, bool, type(None)})


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


#: An MCAP message record's opcode, length and fixed fields: opcode (u8), record length
#: (u64), channel id (u16), sequence (u32), log time (u64), publish time (u64).
_MESSAGE_HEAD = struct.Struct("<BQHIQQ")
_MESSAGE_FIXED_BYTES = 22  # the record's length counts the fields after the length
_OP_MESSAGE = int(Opcode.MESSAGE)
#: A message index record's fixed fields: channel id (u16), length of the records (u32).
_INDEX_HEAD = struct.Struct("<HI")


class _MessageIndex(MessageIndex):
    """A chunk's message index for one channel, written with one ``struct.pack`` (same bytes)."""

    def write(self, stream: RecordBuilder) -> None:
        """Write the record as :meth:`mcap.records.MessageIndex.write` does."""
        records = self.records
        stream.start_record(Opcode.MESSAGE_INDEX)
        stream.write(_INDEX_HEAD.pack(self.channel_id, len(records) * 16))
        stream.write(struct.pack(f"<{2 * len(records)}Q", *chain.from_iterable(records)))
        stream.finish_record()


class ChunkAppender:
    """Add messages to an ``mcap`` writer's open chunk with one ``struct.pack`` each.

    Does what :meth:`mcap.writer.Writer.add_message` does for a chunked writer --
    statistics (message count, first and last log time, count per channel), the chunk
    builder's times, message index and message count, the message record, and the
    chunk-size trigger -- with the record written in one piece; the chunk's message
    indexes are written with one ``struct.pack`` each when the writer closes the chunk. The file is byte for
    byte the one ``add_message`` writes. Built by :meth:`attach`, which returns None
    when the writer lacks one of :data:`NEEDS` (another ``mcap`` version).

    Parameters
    ----------
    writer : mcap.writer.Writer
        A started, chunked writer.
    chunk_size_bytes : int
        The writer's ``chunk_size`` (bytes).
    """

    #: The private names of ``mcap`` 1.x this relies on (``mcap/writer.py``, ``_chunk_builder.py``,
    #: ``data_stream.py``).
    NEEDS = ("_Writer__statistics", "_Writer__chunk_builder", "_Writer__finalize_chunk")

    __slots__ = ("_stats", "_counts", "_chunk", "_indices", "_builder", "_finalize", "_chunk_size")

    def __init__(self, writer: Writer, chunk_size_bytes: int) -> None:
        self._stats: Statistics = writer._Writer__statistics  # type: ignore[attr-defined]
        self._counts = self._stats.channel_message_counts
        self._chunk = writer._Writer__chunk_builder  # type: ignore[attr-defined]
        self._indices: dict[int, MessageIndex] = self._chunk.message_indices
        self._builder = self._chunk.record_writer
        self._finalize: Callable[[], None] = writer._Writer__finalize_chunk  # type: ignore[attr-defined]
        self._chunk_size = chunk_size_bytes

    @classmethod
    def attach(cls, writer: Writer, chunk_size_bytes: int) -> ChunkAppender | None:
        """Return an appender for ``writer``, or None when its internals are not the expected ones."""
        try:
            if not all(hasattr(writer, n) for n in cls.NEEDS):
                return None
            stats = writer._Writer__statistics  # type: ignore[attr-defined]
            chunk = writer._Writer__chunk_builder  # type: ignore[attr-defined]
            ok = (isinstance(stats, Statistics) and chunk is not None
                  and isinstance(getattr(chunk, "message_indices", None), dict)
                  and isinstance(getattr(getattr(chunk, "record_writer", None), "_buffer", None), io.BytesIO)
                  and all(hasattr(chunk, n) for n in ("num_messages", "message_start_time", "message_end_time")))
        except Exception:  # noqa: BLE001 - any surprise: use the public path
            return None
        return cls(writer, chunk_size_bytes) if ok else None

    def add(self, channel_id: int, log_time_ns: int, data: bytes) -> None:
        """Add one message (publish time = log time, sequence 0) to the open chunk."""
        st = self._stats
        if st.message_count == 0 or log_time_ns < st.message_start_time:
            st.message_start_time = log_time_ns
        if log_time_ns > st.message_end_time:
            st.message_end_time = log_time_ns
        self._counts[channel_id] += 1
        st.message_count += 1
        cb = self._chunk
        if cb.num_messages == 0 or log_time_ns < cb.message_start_time:
            cb.message_start_time = log_time_ns
        if log_time_ns > cb.message_end_time:
            cb.message_end_time = log_time_ns
        index = self._indices.get(channel_id)
        if index is None:
            index = self._indices[channel_id] = _MessageIndex(channel_id=channel_id, records=[])
        buf = self._builder._buffer  # a new BytesIO after each chunk
        offset = buf.tell()
        index.records.append((log_time_ns, offset))
        cb.num_messages += 1
        buf.write(_MESSAGE_HEAD.pack(_OP_MESSAGE, _MESSAGE_FIXED_BYTES + len(data), channel_id, 0, log_time_ns,
                                     log_time_ns))
        buf.write(data)
        if offset + 31 + len(data) > self._chunk_size:
            self._finalize()


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
    file : binary file or None, optional
        ``path`` already opened for writing, truncated (the writer process gets the
        file its parent opened); None: open ``path`` here.

    Raises
    ------
    OSError
        The file cannot be created.
    """

    def __init__(self, path: Path, *, period_ns: int, chunk_size_bytes: int, compression: CompressionType,
                 fsync: bool, file: IO[bytes] | None = None) -> None:
        self.path = path
        self.period_ns = period_ns
        self.fsync = fsync
        # closed by FlightRecorder.close() (or the writer process, controller.record.flight_proc)
        self.file: IO[bytes] = open(path, "wb") if file is None else file  # noqa: SIM115
        self.mcap = Writer(self.file, chunk_size=chunk_size_bytes, compression=compression)
        self.mcap.start(profile=MCAP_PROFILE, library=MCAP_LIBRARY)
        #: Channels whose messages hold no NaN or infinity by construction (no check).
        self.finite_channels: set[int] = set()
        #: The fast path of :meth:`put_message` (None: the public ``add_message``).
        self.appender = ChunkAppender.attach(self.mcap, chunk_size_bytes)
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
            data, replaced = encode_message(message, check_nonfinite=channel_id not in self.finite_channels)
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self.error(f"message on channel {channel_id}", exc)
            return
        self.put_encoded(channel_id, log_time_ns, data, replaced)

    def put_encoded(self, channel_id: int, log_time_ns: int, data: bytes, replaced: bool) -> None:
        """Add one message already encoded (:func:`encode_message`), closing the open chunk first when due.

        ``replaced``: the encoding wrote a NaN or an infinity as ``null`` (counted). A
        failure is counted (:meth:`error`), never raised.
        """
        try:
            if replaced:
                self.counters.nonfinite_replaced += 1
            first = self.chunk_first_ns
            if first is None:
                self.chunk_first_ns = log_time_ns
            elif log_time_ns - first >= self.period_ns:
                self.flush_chunk()
                self.chunk_first_ns = log_time_ns
            appender = self.appender
            if appender is not None:
                appender.add(channel_id, log_time_ns, data)
            else:
                self.mcap.add_message(channel_id=channel_id, log_time=log_time_ns, data=data,
                                      publish_time=log_time_ns)
        except Exception as exc:  # noqa: BLE001 - counted and reported by close()
            self.error(f"message on channel {channel_id}", exc)
            return
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

    def run(self, q: queue.SimpleQueue[object], gate: threading.Event | None, idle: IdleGateLike | None = None,
            pressure_n: int = 1 << 62) -> None:
        """Take items off ``q`` until :data:`STOP` (the writer thread's loop).

        Parameters
        ----------
        q : queue.SimpleQueue
            The recorder's queue (see the module docstring for the items).
        gate : threading.Event or None
            Tests only: wait for it before taking each item.
        idle : IdleGate or None, optional
            While it is gated, take items only in the control thread's idle windows
            (:class:`controller.record.flight_queue.IdleGate`), and whenever the queue
            holds ``pressure_n`` items or more.
        pressure_n : int, optional
            See ``idle``.
        """
        held: object = _NOTHING  # an item taken while free, kept for the next window once gated
        while True:
            if idle is not None and idle.gated():
                while idle.window_open() or q.qsize() >= pressure_n:
                    if held is not _NOTHING:
                        item, held = held, _NOTHING
                    else:
                        if gate is not None:
                            gate.wait()
                        try:
                            item = q.get_nowait()
                        except queue.Empty:
                            break
                    if self.handle(item):
                        return
                idle.wait()
                continue
            if held is not _NOTHING:
                item, held = held, _NOTHING
            else:
                if gate is not None:
                    gate.wait()
                item = q.get()  # blocks: no item, no work
                if idle is not None and idle.gated() and not idle.window_open():
                    held = item  # the loop started signalling while this thread waited: wait for a window
                    continue
            if self.handle(item):
                return

    def handle(self, item: object) -> bool:
        """Handle one queue item; return True for :data:`STOP`."""
        if item is STOP:
            return True
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
        return False


class IdleGateLike(Protocol):
    """What :meth:`RecordWriter.run` needs of :class:`controller.record.flight_queue.IdleGate`."""

    def gated(self) -> bool:
        """Whether to keep to the idle windows."""
        ...

    def window_open(self) -> bool:
        """Whether the current idle window is open."""
        ...

    def wait(self) -> None:
        """Block until the next idle signal."""
        ...


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
