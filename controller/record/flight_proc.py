"""The flight record written by a separate process: the tick only encodes and appends bytes.

:class:`ProcessRecorder` has the API of :class:`controller.record.flight.FlightRecorder`
(``channel``, ``write``, ``attach``, ``metadata``, ``idle``, ``drain``, ``stats``,
``close``) and writes the same bytes, but the MCAP side -- message records, chunk
indexes, zstd compression, the file, ``fsync`` -- runs in a child Python process
(``python -m controller.record.flight_proc``, a :class:`~controller.record.flight_writer.RecordWriter`).
A run's ``run.mcap`` is written this way (:func:`open_recorder`); the event files of a
triggered record and the monitor keep the in-process recorder.

Why a process: a writer thread shares the interpreter lock with the tick (it can hold it
for up to ``sys.getswitchinterval()``, 5 ms) and, in lockstep, its work is the tick's
work. The child runs on the other core and never takes the tick's lock.

What the caller's thread does per message (:meth:`ProcessRecorder.write`): append the
tuple ``(channel_id, log_time_ns, message)`` to a list -- no JSON, no packing. A row
(:meth:`ProcessRecorder.write_row`, :meth:`ProcessRecorder.row_appender`) carries its
layout's number instead of its keys: each layout (a keys tuple, or a
:class:`~controller.record.flight_writer.NumberKeys`) is sent to the child once, the
first time it is used. When the list is handed over, it is pickled in one call (the
recorder's own :class:`pickle.Pickler`, its memo off, replaced by a fresh one after a
call that failed) into one batch
record of a ``bytearray``; the child builds each message's JSON exactly as the
in-process recorder does (:func:`~controller.record.flight_writer.encode_message`: a
NaN or infinity as ``null``, counted), so the file is the same bytes. The buffer goes to
the child's standard input (a pipe):

* lockstep: when a chunk is due (a message ``chunk_period_s`` or more after the open
  chunk's first one; the buffer then ends with an ``advance`` telling the child to close
  the chunk before that message) and at :meth:`~ProcessRecorder.close`; the write
  blocks when the child is behind (back-pressure: the file stays a pure function of the
  calls made);
* real time: in :meth:`~ProcessRecorder.idle` (the control thread is about to sleep
  until the next tick), with a non-blocking write; what the pipe does not take waits for
  the next idle call. When ``queue_capacity`` messages wait, a message is dropped and
  counted, and the first message that finds room again is preceded by the dropout
  message of that run (``/record/dropouts``), as in the thread recorder.

Wire format (parent to child): records ``<B op><I length><payload>``; op 3 a batch of
messages (``pickle`` of a list of ``(channel, log time ns, message)``: message None is
an advance; or ``(channel, log time ns, layout, values)``, a row the child turns into its
record with :func:`~controller.record.flight_writer.row_record` -- ``layout`` the number
of a layout sent before, or the keys themselves (a layout that is not registered: see
:data:`MAX_LAYOUTS`); or ``(channel, log time ns, JSON bytes, replaced)``, a message the
parent had to encode itself), op 2 a control tuple (pickled too: ``channel``,
``layout``, ``attach``, ``metadata``, ``advance``, ``dropout``, ``drain``, ``close``).
The child answers ``drain`` and ``close`` with one JSON line on its standard output
(``close``: its counters, the chunk count and the file size).

Crash safety: the file is opened by the parent (an error is raised at once) and handed
to the child as a file descriptor. When the parent dies (SIGKILL), the child reads the
end of its input, closes the open chunk, leaves the file unfinished (no summary:
``qiki runs recover`` finishes it) and exits; it is started in its own session and
ignores SIGINT, so a Ctrl-C of the run reaches the run (which closes the record) and not
the writer. The child drops a real-time parent's scheduling policy (``SCHED_OTHER``).

``QIKI_FLIGHT_WRITER=thread`` in the environment makes :func:`open_recorder` use the
in-process :class:`~controller.record.flight.FlightRecorder` (comparisons); when the
child cannot be started it does so too, with a warning.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from controller.record.flight import DROPOUT_SCHEMA, DROPOUT_TOPIC, FlightRecorder, RecorderClosedError, RecorderEnds
from controller.record.flight_writer import (
    COMPRESSIONS,
    MAX_ERROR_TEXTS,
    ChannelTable,
    JsonMessage,
    NumberKeys,
    RecordStats,
    RecordWriter,
    encode_message,
    row_record,
)

__all__ = ["ProcessRecorder", "open_recorder", "main"]

log = logging.getLogger(__name__)

_MiB = 1024 * 1024
#: A wire record's head: op (u8), payload length (u32).
_REC = struct.Struct("<BI")
#: Bytes the pipe to the writer process is asked to hold (``F_SETPIPE_SZ``): room for
#: several lockstep batches, so a batch's write does not wait for the child.
PIPE_BYTES = _MiB
OP_CONTROL = 2
#: A batch of messages: ``pickle`` of a list of ``(channel, log time ns, message)``
#: (message None: an advance; bytes: JSON encoded by the parent, then ``replaced``; an
#: int or a keys tuple: a row's layout, then its values).
OP_BATCH = 3
#: Row layouts a recorder registers with the writer process, at most; a row of any
#: further layout carries its keys (pickled once per batch, as all rows did before).
MAX_LAYOUTS = 1024
#: Environment variable that selects the writer of ``run.mcap`` (``process``, the default, or ``thread``).
WRITER_ENV = "QIKI_FLIGHT_WRITER"

#: A message item of a batch: ``(channel, log time ns, message)`` (message None: an
#: advance), ``(channel, log time ns, layout, values)`` (a row; the layout's number, or
#: its keys), or ``(channel, log time ns, JSON bytes, replaced)`` (encoded by the parent).
_Item = tuple[int, int, object] | tuple[int, int, object, object]

_pickle_dumps = pickle.dumps
_PROTOCOL = pickle.HIGHEST_PROTOCOL


#: ``append(keys, values)`` of :meth:`ProcessRecorder.row_appender` (the same type as
#: :data:`controller.record.taps.RowAppender`; not imported: the child does not import the taps).
RowAppender = Callable[[tuple[str, ...], tuple[object, ...]], None]


class _LogClock(Protocol):
    """Gives the log time of the rows (the run's tick cursor)."""

    @property
    def now_ns(self) -> int:
        """The current log time (ns)."""
        ...


#: No chunk open yet: every log time is at or after it (the first message takes the slow path).
_NEVER_NS = -(1 << 63)


class ProcessRecorder(RecorderEnds):
    """A flight recorder whose MCAP writing runs in a child process (same file as :class:`FlightRecorder`).

    Parameters
    ----------
    path : Path
        File to create (truncated). The parent folder must exist.
    realtime : bool
        Real time: the buffer goes to the child in :meth:`idle`, never blocking; messages
        are dropped (counted) when ``queue_capacity`` wait. Lockstep: at every due chunk,
        blocking.
    chunk_period_s : float, optional
        Longest run time (s) an open chunk spans before it is closed (default 0.5).
    queue_capacity : int, optional
        Messages that may wait in the caller before new ones are dropped (real time;
        default 65536).
    chunk_size_bytes : int, optional
        Uncompressed chunk size (bytes) at which a chunk closes (default 1 MiB).
    compression : str, optional
        ``zstd`` (default), ``lz4`` or ``none``.
    fsync : bool or None, optional
        ``os.fsync`` after each closed chunk (default: in real time).

    Raises
    ------
    ValueError
        A non-positive period, capacity or chunk size; an unknown compression.
    OSError
        The file cannot be created, or the child cannot be started.
    """

    def __init__(self, path: Path, *, realtime: bool, chunk_period_s: float = 0.5, queue_capacity: int = 65536,
                 chunk_size_bytes: int = _MiB, compression: str = "zstd", fsync: bool | None = None) -> None:
        if not chunk_period_s > 0.0 or not math.isfinite(chunk_period_s):
            raise ValueError(f"chunk_period_s must be > 0, got {chunk_period_s!r}")
        if queue_capacity < 1:
            raise ValueError(f"queue_capacity must be >= 1, got {queue_capacity!r}")
        if chunk_size_bytes < 1:
            raise ValueError(f"chunk_size_bytes must be >= 1, got {chunk_size_bytes!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be zstd, lz4 or none, got {compression!r}")
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_period_s = float(chunk_period_s)
        self.queue_capacity = int(queue_capacity)
        self._period_ns = max(1, round(chunk_period_s * 1e9))
        do_fsync = realtime if fsync is None else fsync
        with open(self.path, "wb") as f:  # created and truncated here: an error is the caller's at once
            fd = f.fileno()
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])  # the checkout holding ``controller``
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "controller.record.flight_proc", str(fd), str(self.path),
                 str(self._period_ns), str(int(chunk_size_bytes)), compression, "1" if do_fsync else "0"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(fd,), env=env, start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._out: IO[bytes] = self._proc.stdout
        self._fd = self._in.fileno()
        _grow_pipe(self._fd)
        if realtime:
            os.set_blocking(self._fd, False)
        self._items: list[_Item] = []  # messages not yet pickled into _buf
        # one pickler for every batch (memo off: a row's layout goes once, by number)
        self._pickle_file = io.BytesIO()
        self._pickler = _batch_pickler(self._pickle_file)
        self._layout_ids: dict[int, int] = {}         # id(keys) -> the layout's number
        self._layouts: list[tuple[str, ...]] = []    # by number; keeps each one alive, so its id() stays its own
        self._layout_lock = threading.Lock()          # numbers a layout once, even from two threads
        # the pickler, its BytesIO, _buf and _pending are one state: packing and handing
        # over take this lock (a control record may come from another thread -- a first
        # channel of the emulator's fault events -- while the control thread is in idle)
        self._pack_lock = threading.Lock()
        self._buf = bytearray()      # records not yet handed to the pipe
        self._pending = bytearray()  # real time: frames the pipe did not take yet
        self._waiting_n = 0          # messages in _buf and _pending
        self._dead = False           # the pipe broke: nothing more is sent
        self._channels = ChannelTable(self.path)
        self._chunk_first_ns: int | None = None
        # the fast path of write/write_row: a message goes straight into _items while
        # fewer than _room wait and its log time is before _chunk_due_ns; anything else
        # (the first message, a chunk due, a full queue, a dropout to report, closed)
        # takes _hand. _room is 0 while a dropout waits to be reported or once closed.
        self._chunk_due_ns = _NEVER_NS
        self._room = self.queue_capacity
        self._newest_ns = 0
        self._closed = False
        self._final: RecordStats | None = None
        # caller-side counters (the child counts what it writes)
        self._handed = 0             # messages handed over and no longer waiting (see _settle)
        self._errors = 0
        self._error_texts: list[str] = []
        self._error_kinds: set[str] = set()
        self._nonfinite = 0
        self._dropped = 0
        self._high_water = 0
        self._drop_first_ns: int | None = None
        self._drop_last_ns = 0
        self._drop_count = 0
        self._dropout_channel = self.channel(DROPOUT_TOPIC, "qiki.record.Dropout", DROPOUT_SCHEMA)
        log.debug("%s: flight record opened (writer process %d, %s)", self.path, self._proc.pid,
                  "real time" if realtime else "lockstep")

    # ------------------------------------------------------------------ public API (as FlightRecorder)
    def channel(self, topic: str, schema_name: str, schema: Mapping[str, object], *, finite: bool = False) -> int:
        """Register a JSON channel; return its id (as :meth:`FlightRecorder.channel`).

        Raises
        ------
        ValueError
            The topic is already registered.
        RecorderClosedError
            After :meth:`close`.
        """
        self._check_open()
        data, schema_id, new_schema, channel_id = self._channels.add(topic, schema_name, schema)
        self._control(("channel", topic, schema_name, data, schema_id, new_schema, channel_id, finite))
        return channel_id

    def write(self, channel_id: int, log_time_ns: int, message: JsonMessage) -> None:
        """Hand one message to the writer process (publish time = log time); it encodes it.

        The caller's thread only appends ``(channel_id, log_time_ns, message)`` to a list;
        the list is pickled in one call when it is handed to the pipe (real time:
        :meth:`idle`; lockstep: a due chunk, :meth:`drain`, :meth:`close`) and the child
        encodes each message (:func:`~controller.record.flight_writer.encode_message`).
        The message is owned by the recorder from here on: do not mutate it.

        Real time: never blocks; dropped and counted when ``queue_capacity`` messages wait.

        Raises
        ------
        RecorderClosedError
            After :meth:`close`.
        """
        n = self._waiting_n
        if n < self._room and log_time_ns < self._chunk_due_ns:  # the common case, inline (see __init__)
            self._items.append((channel_id, log_time_ns, message))
            self._waiting_n = n + 1
            if log_time_ns > self._newest_ns:
                self._newest_ns = log_time_ns
            return
        self._hand(log_time_ns, (channel_id, log_time_ns, message))

    def write_row(self, channel_id: int, log_time_ns: int, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Hand the message :func:`~controller.record.flight_writer.row_record` ``(keys, values)`` over as a tuple.

        The child builds the record and encodes it: the same bytes as :meth:`write` of
        that record, with no dict built on the caller's thread. The row carries the
        number of its layout (:meth:`_layout`: ``keys`` is sent to the child the first
        time). Otherwise as :meth:`write`.

        Raises
        ------
        RecorderClosedError
            After :meth:`close`.
        """
        layout = self._layout(keys)
        n = self._waiting_n
        if n < self._room and log_time_ns < self._chunk_due_ns:  # as in write
            self._items.append((channel_id, log_time_ns, layout, values))
            self._waiting_n = n + 1
            if log_time_ns > self._newest_ns:
                self._newest_ns = log_time_ns
            return
        self._hand(log_time_ns, (channel_id, log_time_ns, layout, values))

    def row_appender(self, channel: Callable[[], int], clock: _LogClock) -> RowAppender:
        """Return ``append(keys, values)``: :meth:`write_row` on one channel at ``clock.now_ns``, inlined.

        For a tap that hands rows of one topic every tick: the common case of
        :meth:`write_row` (no chunk due, room in the queue, nothing to report) runs in
        the returned function itself, one Python call a row; the rest goes through
        :meth:`_hand` as :meth:`write_row`'s does. The same messages, in the same order.
        The appender keeps the layout of its previous row and its number: a row of the
        same keys object costs one identity test; another layout is looked up
        (:meth:`_layout`).

        Parameters
        ----------
        channel : callable
            Returns the channel id; called once, on the first row (the channel is
            registered then, as on a first :meth:`write_row`).
        clock : object with ``now_ns``
            The log time of each row (ns; the run's :class:`~controller.record.taps.TickCursor`).
        """
        ch = -1  # registered on the first row
        bound: tuple[str, ...] | None = None  # the previous row's keys
        layout: int | tuple[str, ...] = 0      # and their layout (see _layout)

        def append(keys: tuple[str, ...], values: tuple[object, ...]) -> None:
            nonlocal ch, bound, layout
            if keys is not bound:  # the first row, or another layout
                if ch < 0:
                    ch = channel()
                layout = self._layout(keys)
                bound = keys
            t = clock.now_ns
            n = self._waiting_n
            if n < self._room and t < self._chunk_due_ns:  # as in write_row
                self._items.append((ch, t, layout, values))
                self._waiting_n = n + 1
                if t > self._newest_ns:
                    self._newest_ns = t
                return
            self._hand(t, (ch, t, layout, values))
        return append

    def _layout(self, keys: tuple[str, ...]) -> int | tuple[str, ...]:
        """Return the number of the row layout ``keys``, registering it with the child the first time.

        A layout is known by its identity (``id``; the recorder keeps every registered
        one alive, so an id cannot be taken by another object): two equal keys tuples are
        two layouts, and a :class:`~controller.record.flight_writer.NumberKeys` is never
        confused with a plain tuple of the same keys. Its first use sends a ``layout``
        control record (the messages waiting are packed before it, so the order on the
        wire is the order of the calls); the child keeps the keys and builds the rows of
        that number with them. A layout must not change once used (a tuple cannot; a
        ``NumberKeys``' ``numbers`` must not be reassigned). Registering takes a lock (a
        row may come from another thread), and queuing its control record takes the
        recorder's packing lock (see :meth:`_control`); finding a known layout takes
        neither.

        Returns
        -------
        int or tuple of str
            The layout's number; or ``keys`` itself, which the row then carries, when it
            is not a plain tuple of str or a ``NumberKeys`` (the child might not rebuild
            it) or :data:`MAX_LAYOUTS` are registered already.
        """
        n = self._layout_ids.get(id(keys))
        if n is not None:
            return n
        kind = keys.__class__
        if (kind is not tuple and kind is not NumberKeys) or not all(k.__class__ is str for k in keys):
            return keys
        with self._layout_lock:
            n = self._layout_ids.get(id(keys))
            if n is not None:  # another thread registered it meanwhile
                return n
            if len(self._layouts) >= MAX_LAYOUTS or self._closed:
                return keys
            n = len(self._layouts)
            self._control(("layout", n, keys))
            self._layouts.append(keys)
            self._layout_ids[id(keys)] = n  # last: another thread uses the number once the record is queued
        return n

    def _hand(self, log_time_ns: int, item: _Item) -> None:
        """Append one message item: the slow path of :meth:`write` and :meth:`write_row`.

        Drops, the dropout message and the chunk advance as :meth:`write` says.
        """
        if self._closed:
            raise RecorderClosedError(f"{self.path}: write after close")
        if self._waiting_n >= self.queue_capacity:
            self._drop(log_time_ns)
            return
        if self._drop_first_ns is not None:
            self._queue_dropout()
        first = self._chunk_first_ns
        if first is None:
            self._chunk_first_ns = log_time_ns
            self._chunk_due_ns = log_time_ns + self._period_ns
        elif log_time_ns - first >= self._period_ns:
            # the writer closes the open chunk before this message: tell it now, so the
            # closed chunk reaches the file without waiting for the next one
            self._chunk_first_ns = log_time_ns
            self._chunk_due_ns = log_time_ns + self._period_ns
            self._items.append((0, log_time_ns, None))
            if not self.realtime:
                self._send(block=True)
        self._items.append(item)
        self._waiting_n += 1
        if log_time_ns > self._newest_ns:
            self._newest_ns = log_time_ns

    def _settle(self) -> None:
        """Count the messages waiting as handed over (they went to the pipe, or were lost with it).

        The queue's high-water mark is taken here: the count waiting only grows between
        two settles.
        """
        n = self._waiting_n
        self._handed += n
        if n > self._high_water:
            self._high_water = n
        self._waiting_n = 0

    def attach(self, name: str, data: bytes, media_type: str, *, log_time_ns: int | None = None) -> None:
        """Add an attachment (log time: ``log_time_ns``, default the newest log time handed so far)."""
        self._check_open()
        t = self._newest_ns if log_time_ns is None else int(log_time_ns)
        self._control(("attach", name, media_type, t, bytes(data)))

    def metadata(self, name: str, data: Mapping[str, str]) -> None:
        """Add a metadata record.

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
        self._control(("metadata", name, entries))

    def idle(self, remaining_s: float) -> None:
        """Real time: the control thread is about to sleep; hand the buffer to the pipe (never blocks)."""
        if self.realtime and not self._closed:
            self._send(block=False)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Hand everything to the child and wait until it has written it (True; False on timeout)."""
        if self._closed or self._dead:
            return not self._dead
        self._control(("drain",))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._send(block=True, deadline=deadline):
            return False
        return self._reply(deadline) is not None

    @property
    def stats(self) -> RecordStats:
        """Counters so far (before :meth:`close`: the caller's side; ``messages_written`` = handed over)."""
        if self._final is not None:
            return self._final
        handed = self._handed + self._waiting_n
        return RecordStats(messages_written=handed, messages_dropped=self._dropped, errors=self._errors,
                           error_texts=tuple(self._error_texts), nonfinite_replaced=self._nonfinite,
                           queue_high_water=max(self._high_water, self._waiting_n),
                           last_log_time_ns=self._newest_ns if handed else None)

    def close(self, timeout_s: float | None = None) -> RecordStats:
        """Hand everything over, let the child finish the file, and return the final counters (idempotent).

        On timeout (or a child that died) the child is killed, the file is left unfinished
        (``qiki runs recover`` finishes it) and an error is counted.
        """
        if self._final is not None:
            return self._final
        if self._drop_first_ns is not None:
            self._queue_dropout()
        self._closed = True
        self._room = 0  # every later write takes _hand, which refuses it
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._control(("close",))
        reply = self._reply(deadline) if self._send(block=True, deadline=deadline) else None
        try:
            self._in.close()
        except OSError:
            pass
        if reply is None:
            self._proc.kill()
            self._error("close", TimeoutError(f"writer process did not finish within {timeout_s} s "
                                              f"(exit {self._proc.poll()}); file left unfinished"))
            reply = {}
        self._proc.wait()
        self._out.close()
        def num(key: str, default: int = 0) -> int:
            v = reply.get(key)
            return int(v) if isinstance(v, int) else default

        child_texts = reply.get("error_texts")
        texts = (self._error_texts + [str(t) for t in (child_texts if isinstance(child_texts, list) else [])])
        last = reply.get("last_log_time_ns")
        self._final = RecordStats(
            messages_written=num("messages_written"), messages_dropped=self._dropped, dropouts=num("dropouts"),
            chunk_flushes=num("chunk_flushes"), chunks=num("chunks"), errors=self._errors + num("errors"),
            error_texts=tuple(texts[:MAX_ERROR_TEXTS]), nonfinite_replaced=num("nonfinite_replaced", self._nonfinite),
            queue_high_water=max(self._high_water, self._waiting_n),
            bytes=num("bytes", self.path.stat().st_size if self.path.exists() else 0),
            last_log_time_ns=last if isinstance(last, int) else None)
        self._final.log_warnings(self.path)
        return self._final

    # ------------------------------------------------------------------ internals
    def _control(self, item: tuple[object, ...]) -> None:
        """Queue one control record after the messages waiting (any thread: under the packing lock)."""
        payload = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        with self._pack_lock:
            if self._items:
                self._pack_items()  # the messages before it, in order
            self._buf += _REC.pack(OP_CONTROL, len(payload))
            self._buf += payload

    def _pack_items(self) -> None:
        """Append the messages waiting in :attr:`_items` to the buffer as one batch record.

        One pickling for the whole list, by the recorder's own :class:`pickle.Pickler`
        (:func:`_batch_pickler`: memo off): the child gets the very values (types
        included: a NumPy scalar stays one), so its JSON is the in-process recorder's.
        (``marshal`` costs about the same here and turns any object with the buffer
        protocol, a NumPy scalar among them, into bytes.) A batch holding something the
        pickler refuses (or a cycle, which it does not follow with its memo off) is
        packed item by item with ``pickle.dumps``; a message that does not pickle is
        encoded here (:func:`encode_message`, as the child would) and sent as its JSON;
        one that does not encode either is counted as an error.

        The caller holds the packing lock (:meth:`_control`, :meth:`_send`). The list
        :attr:`_items` is kept, its packed head deleted: a message another thread
        appends meanwhile (without the lock) stays in it for the next batch.
        """
        waiting = self._items
        items = waiting[:]
        del waiting[:len(items)]
        f = self._pickle_file
        f.seek(0)
        try:
            self._pickler.dump(items)
        except Exception:  # noqa: BLE001 - PicklingError, TypeError, AttributeError...: item by item
            self._pickler = _batch_pickler(f)  # a fresh one: nothing of the failed call is kept
            payload = self._pack_one_by_one(items)
            self._buf += _REC.pack(OP_BATCH, len(payload))
            self._buf += payload
            return
        n = f.tell()
        self._buf += _REC.pack(OP_BATCH, n)
        with f.getbuffer() as view:
            self._buf += view[:n]

    def _pack_one_by_one(self, items: list[_Item]) -> bytes:
        """Return the batch of ``items`` pickled item by item (see :meth:`_pack_items`)."""
        safe: list[_Item] = []
        for item in items:
            try:
                _pickle_dumps(item, _PROTOCOL)
            except Exception:  # noqa: BLE001 - see _pack_items
                ch, t = item[0], item[1]
                try:
                    if len(item) == 3:
                        message = item[2]
                    else:
                        keys = self._layouts[item[2]] if item[2].__class__ is int else item[2]
                        message = row_record(keys, item[3])  # type: ignore[arg-type]  # a row: keys, values
                    data, replaced = encode_message(message)  # type: ignore[arg-type]  # a message
                except Exception as exc:  # noqa: BLE001 - counted and reported by close()
                    self._error(f"message on channel {ch}", exc)
                    continue
                safe.append((ch, t, data, replaced))
            else:
                safe.append(item)
        return _pickle_dumps(safe, _PROTOCOL)

    def _drop(self, log_time_ns: int) -> None:
        self._room = 0  # the next message takes _hand, which reports the dropout first
        self._dropped += 1
        if self._drop_first_ns is None:
            self._drop_first_ns = log_time_ns
            self._drop_count = 0
        self._drop_last_ns = log_time_ns
        self._drop_count += 1

    def _queue_dropout(self) -> None:
        first, last, count = self._drop_first_ns, self._drop_last_ns, self._drop_count
        self._drop_first_ns = None
        self._drop_count = 0
        if not self._closed:
            self._room = self.queue_capacity
        self._control(("dropout", self._dropout_channel, first, last, count))

    def _send(self, block: bool, deadline: float | None = None) -> bool:
        """Hand the buffer to the pipe; True when all of it went (``block``: wait, up to ``deadline``).

        Runs under the packing lock (see :meth:`_control`): another thread's control
        record waits until the buffer is handed over.
        """
        with self._pack_lock:
            return self._send_locked(block, deadline)

    def _send_locked(self, block: bool, deadline: float | None) -> bool:
        """:meth:`_send`, the packing lock held."""
        if self._items:
            self._pack_items()
        if self._buf:
            if self._pending:
                self._pending += self._buf
            else:
                self._pending = self._buf
            self._buf = bytearray()
        if self._dead:
            self._pending.clear()
            self._settle()
            return False
        pending = self._pending
        while pending:
            try:
                n = os.write(self._fd, pending)
            except BlockingIOError:
                if not block:
                    return False
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return False
                select.select([], [self._fd], [], wait)
                continue
            except OSError as exc:  # the child died: nothing more can be recorded
                self._dead = True
                self._error("pipe", exc)
                pending.clear()
                self._settle()
                return False
            del pending[:n]
        self._settle()
        return True

    def _reply(self, deadline: float | None) -> dict[str, object] | None:
        """Read the child's next JSON line (None on timeout, end of output or garbage)."""
        fd = self._out.fileno()
        line = bytearray()
        while not line.endswith(b"\n"):
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            line += chunk
        try:
            out = json.loads(bytes(line))
        except ValueError:
            return None
        return out if isinstance(out, dict) else None

    def _error(self, what: str, exc: BaseException) -> None:
        self._errors += 1
        text = f"{what}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if len(self._error_texts) < MAX_ERROR_TEXTS:
            self._error_texts.append(text)
        kind = f"{what.split()[0]}:{type(exc).__name__}"
        if kind not in self._error_kinds:
            self._error_kinds.add(kind)
            log.error("%s: flight record: %s", self.path, text, exc_info=exc)


def _batch_pickler(file: io.BytesIO) -> pickle.Pickler:
    """Return the pickler of a recorder's batches: highest protocol, writing to ``file``, memo off.

    With its memo off (``fast``) the pickler keeps no table of the objects it wrote:
    about a tenth fewer instructions for a batch of rows (measured with callgrind on a
    lockstep batch of about 290 messages), and a row's layout is not in the batch (it
    goes once, by number: :meth:`ProcessRecorder._layout`). What the memo did otherwise
    -- an object met twice is written once -- is not needed: the child builds the same
    JSON from two copies. A cycle, which only the memo can write, makes the pickler
    raise; the batch then goes item by item (:meth:`ProcessRecorder._pack_items`).
    """
    p = pickle.Pickler(file, _PROTOCOL)
    p.fast = True
    return p


def _grow_pipe(fd: int) -> None:
    """Make the pipe ``fd`` hold :data:`PIPE_BYTES` (Linux ``F_SETPIPE_SZ``; else, or refused, left as it is).

    With the default 64 KiB a lockstep batch (about 40 to 75 kB per 0.5 s chunk on the
    virtual rig) often does not fit while the child still reads the previous one, and the
    tick's ``os.write`` waits for the child (about 1.6 ms a batch, 5 % of the loop's wall
    time, measured on the 2-core VM). A pipe larger than the system's
    ``/proc/sys/fs/pipe-max-size`` (1 MiB by default) is refused for an unprivileged user:
    the size is then capped to it.
    """
    setsz = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsz is None:
        return
    size_n = PIPE_BYTES
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            size_n = min(size_n, int(f.read()))
    except (OSError, ValueError):
        pass
    try:
        fcntl.fcntl(fd, setsz, size_n)
    except OSError as exc:
        log.debug("pipe size %d refused: %s", size_n, exc)


def open_recorder(path: Path, *, realtime: bool) -> ProcessRecorder | FlightRecorder:
    """Return the recorder of a run's ``run.mcap``: a :class:`ProcessRecorder` (or the in-process one).

    The in-process :class:`~controller.record.flight.FlightRecorder` when
    ``QIKI_FLIGHT_WRITER=thread`` is set, or when the child cannot be started (logged).

    Raises
    ------
    OSError
        The file cannot be created.
    """
    if os.environ.get(WRITER_ENV, "process") != "thread":
        try:
            return ProcessRecorder(path, realtime=realtime)
        except (OSError, subprocess.SubprocessError) as exc:
            if not Path(path).parent.is_dir():
                raise
            log.warning("%s: writer process not started (%s); writing in-process", path, exc)
    return FlightRecorder(path, realtime=realtime)


# --------------------------------------------------------------------------- the child


def _serve_batch(w: RecordWriter, payload: bytes, layouts: Sequence[tuple[str, ...]]) -> None:
    """Write the messages of one batch record (see :meth:`ProcessRecorder._pack_items`).

    A row's layout is a number into ``layouts`` (the ``layout`` control records so far)
    or the keys themselves.
    """
    try:
        items = pickle.loads(payload)  # noqa: S301 - our own parent's pipe
    except Exception as exc:  # noqa: BLE001 - a class the child cannot import: counted, the batch is lost
        w.error("batch", exc)
        return
    put_message, put_encoded = w.put_message, w.put_encoded
    for item in items:
        ch, t, message = item[0], item[1], item[2]
        if message is None:  # an advance: close the open chunk when due
            try:
                w.maybe_close_chunk(t)
            except Exception as exc:  # noqa: BLE001 - counted and reported at close
                w.error("advance", exc)
        elif len(item) == 4:
            if type(message) is bytes:  # encoded by the parent (it did not pickle)
                put_encoded(ch, t, message, bool(item[3]))
            else:  # a row: (layout, values)
                try:
                    rec = row_record(layouts[message] if message.__class__ is int else message, item[3])
                except Exception as exc:  # noqa: BLE001 - counted and reported at close
                    w.error(f"message on channel {ch}", exc)
                    continue
                put_message(ch, t, rec)
        else:
            put_message(ch, t, message)


def _serve(w: RecordWriter, inp: IO[bytes], out: IO[bytes]) -> bool:
    """Handle the parent's records until ``close`` (True) or the end of the input (False)."""
    read = inp.read
    rec_unpack = _REC.unpack
    layouts: list[tuple[str, ...]] = []  # the row layouts, by number
    while True:
        head = read(5)
        if len(head) < 5:
            return False
        op, n = rec_unpack(head)
        payload = read(n)
        if len(payload) < n:
            return False
        if op == OP_BATCH:
            _serve_batch(w, payload, layouts)
            continue
        item = pickle.loads(payload)  # noqa: S301 - our own parent's pipe
        what = str(item[0])
        try:
            if what == "close":
                return True
            if what == "advance":
                w.maybe_close_chunk(int(item[1]))
            elif what == "channel":
                _, topic, schema_name, data, schema_id, new_schema, channel_id, finite = item
                if finite:
                    w.finite_channels.add(int(channel_id))
                if new_schema:
                    got = w.mcap.register_schema(name=schema_name, encoding="jsonschema", data=data)
                    assert got == schema_id, (got, schema_id)
                got_c = w.mcap.register_channel(topic=topic, message_encoding="json", schema_id=schema_id)
                assert got_c == channel_id, (got_c, channel_id)
            elif what == "layout":
                _, number, keys = item
                if number != len(layouts):
                    raise ValueError(f"layout {number} after {len(layouts)} layouts")
                layouts.append(keys)
            elif what == "attach":
                _, name, media_type, t, blob = item
                w.mcap.add_attachment(create_time=t, log_time=t, name=name, media_type=media_type, data=blob)
            elif what == "metadata":
                w.mcap.add_metadata(name=item[1], data=item[2])
            elif what == "dropout":
                w.write_dropout(item[1], item[2], item[3], item[4])
            elif what == "drain":
                out.write(b'{"drained": true}\n')
                out.flush()
        except Exception as exc:  # noqa: BLE001 - counted and reported at close
            w.error(f"{what} {item[1] if len(item) > 1 and what in ('channel', 'attach', 'metadata') else ''}".strip(),
                    exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the writer process (``python -m controller.record.flight_proc FD PATH PERIOD_NS CHUNK COMPRESSION FSYNC``).

    Returns
    -------
    int
        0 (the file was finished or, after the parent's end, closed unfinished).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    fd, path, period_ns, chunk_size, compression, fsync = args
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # a real-time parent's SCHED_FIFO is inherited: the writer must not compete with the tick
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    f = os.fdopen(int(fd), "wb")
    w = RecordWriter(Path(path), period_ns=int(period_ns), chunk_size_bytes=int(chunk_size),
                     compression=COMPRESSIONS[compression], fsync=fsync == "1", file=f)
    inp = os.fdopen(sys.stdin.fileno(), "rb", buffering=_MiB, closefd=False)
    out = sys.stdout.buffer
    if _serve(w, inp, out):
        chunks, size = w.close(True)
        st = w.stats(0, 0).as_dict()
        st.update(chunks=chunks, bytes=size)
        out.write(json.dumps(st).encode() + b"\n")
        out.flush()
        return 0
    # the parent is gone (killed): keep what was handed over, leave the file unfinished
    try:
        w.flush_chunk()
    except Exception as exc:  # noqa: BLE001 - nothing left to report to
        w.error("chunk flush", exc)
    w.close(False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
