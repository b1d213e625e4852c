"""Recording taps at the ingress boundary: every input the tick consumes, with its tick.

QIKI records what crossed into the controller where it crossed (issue 12): each tap wraps
one port the composition room opened and tells an :class:`IngressSink` about every value
the controller *received* from it — a CAN frame returned by ``recv``, the bytes returned by
a serial ``read``, a Modbus snapshot or write result the tick looked at, a clock reading —
and every output it sent. Each record carries the index of the tick that consumed it and
its call number within that tick (``call``: the n-th call of that kind on that port in
that tick, from 0), so :mod:`controller.record.replay_ports` can hand the same values back
to the same calls with no emulator and no world: that is what makes a replay bit-exact.

Only calls that return something are recorded (a ``recv`` returning None, a ``read``
returning ``b""``): a replay port returns "nothing" to any call that has no record.

The taps are used from the control thread only; the recording clock ignores reads from
other threads (the Modbus worker, the emulator runner), which a replay does not have.

Topics (the flight record's channels, :mod:`controller.record.flight_log`):
``/in/can/<bus>``, ``/in/can/<bus>/state``, ``/out/can/<bus>``, ``/in/serial/<link>``,
``/out/serial/<link>``, ``/in/modbus/<device>``, ``/in/modbus/<device>/ticket``,
``/out/modbus/<device>``, ``/in/clock``, ``/in/stop``.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

import can

from controller.record.flight_writer import row_record
from hal.clock import Clock
from hal.serial.link import SerialLink

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

_crc32 = zlib.crc32
_get_ident = threading.get_ident

#: JSON-safe scalar of a record field.
Field = bool | int | float | str | None | list[object] | dict[str, object]
Record = dict[str, Field]


class IngressSink(Protocol):
    """Where the taps put what they saw (the flight log, or a list in tests).

    A sink may also have ``row(topic, keys, values)``: the record ``dict(zip(keys,
    values))`` with every bytes value as lowercase hex
    (:func:`~controller.record.flight_writer.row_record`), handed as
    a tuple so the tick builds no dict (the flight log's writer process builds it). The
    taps call :meth:`put` with :func:`row_record` on a sink without one.
    """

    def put(self, topic: str, record: Mapping[str, object]) -> None:
        """Store one record of ``topic`` (``record`` holds ``tick`` and ``call``)."""


#: ``append(keys, values)``: hand one row of a topic bound beforehand (:func:`row_appender`).
RowAppender = Callable[[tuple[str, ...], tuple[object, ...]], None]


def row_appender(sink: IngressSink, topic: str) -> RowAppender:
    """Return a callable that hands ``sink`` a row of ``topic``: ``append(keys, values)``.

    ``sink.appender(topic)`` when the sink has one (the flight log: the row goes straight
    into the writer's list, one Python call a row instead of two); otherwise the sink's
    ``row`` with ``topic`` bound, or (a sink with ``put`` only) ``put`` of
    :func:`~controller.record.flight_writer.row_record`. Either way the sink gets the same
    rows in the same order as from ``row(topic, keys, values)``. Made once per tap and
    topic, not per call.

    Parameters
    ----------
    sink : IngressSink
        The flight log, a :class:`~controller.record.flight_log.MemorySink`, the
        triggered log or any sink with ``put`` (and optionally ``row``/``appender``).
    topic : str
        The MCAP topic the rows go to (e.g. ``"/in/can/can0"``).

    Returns
    -------
    RowAppender
        ``append(keys, values)``: ``keys`` the row layout (e.g. :data:`CAN_RX_KEYS`),
        ``values`` a tuple of the same length. A length mismatch raises ``ValueError``
        where the sink turns the row into a record.
    """
    make = getattr(sink, "appender", None)
    if callable(make):
        append: RowAppender = make(topic)
        return append
    row = getattr(sink, "row", None)
    if callable(row):
        def put_row(keys: tuple[str, ...], values: tuple[object, ...]) -> None:
            row(topic, keys, values)
        return put_row
    put_record = sink.put  # a sink with put() only (the triggered log): one call less a row

    def put(keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        put_record(topic, row_record(keys, values))
    return put


#: Row layouts of the taps (the fields of their records, in order).
CAN_RX_KEYS = ("tick", "call", "id", "ext", "rtr", "err", "fd", "brs", "esi", "dlc", "data")
CAN_TX_KEYS = (*CAN_RX_KEYS, "ok")
SERIAL_RX_KEYS = ("tick", "call", "data")
SERIAL_TX_KEYS = ("tick", "call", "data", "n")
CLOCK_S_KEYS = ("tick", "call", "s")
CLOCK_NS_KEYS = ("tick", "call", "ns")


class TickCursor:
    """The tick being run, and per-port call counters within it.

    The run's tick function calls :meth:`begin` before each tick; the build runs at tick
    -1 and the teardown after the loop at the index one past the last tick.
    """

    __slots__ = ("tick", "now_ns", "_calls", "crc32", "recording")

    def __init__(self) -> None:
        self.tick = -1
        #: False: the taps and the tick build no record at all (bench/record.py measures the
        #: cost of recording with it); a run with ticks not recorded cannot be replayed.
        self.recording = True
        self.now_ns = 0
        self._calls: dict[str, int] = {}
        #: CRC-32 (zlib) over every input handed to the controller in this tick, in order:
        #: the taps and the replay ports feed the same bytes, so a replay that consumed a
        #: different input shows it in the ``/tick`` record of that very tick.
        self.crc32 = 0

    def begin(self, tick: int, now_ns: int) -> None:
        """Start tick ``tick`` at ``now_ns`` (run clock, ns): every call counter restarts."""
        self.tick = tick
        self.now_ns = now_ns
        self._calls.clear()
        self.crc32 = 0

    def feed(self, data: bytes) -> None:
        """Fold one input's bytes into this tick's :attr:`crc32`."""
        self.crc32 = zlib.crc32(data, self.crc32)

    def call(self, key: str) -> int:
        """Return the number of earlier ``key`` calls in this tick, and count this one."""
        n = self._calls.get(key, 0)
        self._calls[key] = n + 1
        return n

    @property
    def live_calls(self) -> dict[str, int]:
        """The call counters of this tick by key, live (the hottest taps count in it directly, as :meth:`call`).

        The same dict object for the cursor's whole life (:meth:`begin` clears it,
        :meth:`resume` fills it): a tap may keep it.
        """
        return self._calls

    def calls(self) -> dict[str, int]:
        """Return the calls counted so far in this tick, by key (a snapshot between ticks)."""
        return dict(self._calls)

    def resume(self, tick: int, now_ns: int, calls: Mapping[str, int]) -> None:
        """Stand where :meth:`calls` was read in tick ``tick`` (a replay from a snapshot)."""
        self.begin(tick, now_ns)
        self._calls.update(calls)


class _FromInner:
    """An attribute of the tapped object (``obj.inner``), read through; AttributeError when it has none.

    The taps name what they pass through instead of defining ``__getattr__``: a class
    with ``__getattr__`` takes CPython's slow attribute path for *every* attribute of
    its instances (its own ``read``, ``_cursor``, ... included; about 1.5 k instructions
    a tapped serial read, measured with callgrind on CPython 3.11).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> object:
        if obj is None:
            return self
        return getattr(obj.inner, self.name)  # type: ignore[attr-defined]  # TapLink, TapClock


# --------------------------------------------------------------------------- encoding


def enc_float(x: float) -> float | str:
    """Return ``x`` for JSON: finite floats as themselves (repr round-trips), else ``"nan"``/``"inf"``/``"-inf"``."""
    return x if math.isfinite(x) else repr(x)


def dec_float(x: object) -> float:
    """Invert :func:`enc_float`."""
    return float(x)  # type: ignore[arg-type]  # a float or one of the three strings


def frame_fields(msg: can.Message) -> Record:
    """Return the fields of one CAN frame (arbitration ID, flags, DLC, data as hex)."""
    return {"id": msg.arbitration_id, "ext": bool(msg.is_extended_id), "rtr": bool(msg.is_remote_frame),
            "err": bool(msg.is_error_frame), "fd": bool(msg.is_fd), "brs": bool(msg.bitrate_switch),
            "esi": bool(msg.error_state_indicator), "dlc": msg.dlc, "data": bytes(msg.data).hex()}


def error_fields(exc: BaseException) -> Record:
    """Return ``error_type`` (the class name) and ``error`` (its text) of an exception."""
    return {"error_type": type(exc).__name__, "error": str(exc)}


# --------------------------------------------------------------------------- CAN


class TapBus(can.BusABC):
    """A python-can bus that records what the controller receives and sends through it.

    Parameters
    ----------
    inner : can.BusABC
        The opened bus.
    name : str
        The rig's bus name (``can0``): topics ``/in/can/<name>``, ``/out/can/<name>``.
    cursor : TickCursor
    sink : IngressSink
    """

    def __init__(self, inner: can.BusABC, name: str, cursor: TickCursor, sink: IngressSink) -> None:
        self._inner = inner
        self._name = name
        self._cursor = cursor
        self._calls = cursor.live_calls  # the same dict for the cursor's life
        self._sink = sink
        self._rx_topic = f"/in/can/{name}"
        self._tx_topic = f"/out/can/{name}"
        self._state_topic = f"/in/can/{name}/state"
        self._rx_append = row_appender(sink, self._rx_topic)
        self._tx_append = row_appender(sink, self._tx_topic)
        self._last_state: str | None = None
        #: The state object read last (a ``can.BusState`` member): the same object, the same name.
        self._last_state_obj: object = None
        self.channel_info = getattr(inner, "channel_info", name)
        self._is_shutdown = False

    def _rec(self, topic: str, key: str, fields: Record) -> None:
        c = self._cursor
        if not c.recording:
            return
        self._sink.put(topic, {"tick": c.tick, "call": c.call(key), **fields})

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Receive from the inner bus; a frame or an error is recorded, None is not."""
        c = self._cursor
        try:
            msg = self._inner.recv(timeout)
        except (can.CanError, OSError) as exc:
            self._sink.put(self._rx_topic, {"tick": c.tick, "call": c.call("rx"), **error_fields(exc)})
            raise
        if not c.recording:
            return msg
        calls = self._calls  # c.call("rx") inlined: the controller drains a bus until recv says None
        n = calls.get("rx", 0)
        calls["rx"] = n + 1
        if msg is not None:
            data = bytes(msg.data)
            c.crc32 = _crc32(msg.arbitration_id.to_bytes(4, "little") + data, c.crc32)  # c.feed inlined
            # the fields of frame_fields() as a row (no dict on the tick; "True if x else False"
            # is bool(x) without a call)
            self._rx_append(CAN_RX_KEYS, (
                c.tick, n, msg.arbitration_id, True if msg.is_extended_id else False,
                True if msg.is_remote_frame else False, True if msg.is_error_frame else False,
                True if msg.is_fd else False, True if msg.bitrate_switch else False,
                True if msg.error_state_indicator else False, msg.dlc, data))
        return msg

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Send on the inner bus; the frame is recorded with its outcome."""
        try:
            self._inner.send(msg, timeout)
        except (can.CanError, OSError) as exc:
            self._rec(self._tx_topic, "tx", {**frame_fields(msg), "ok": False, **error_fields(exc)})
            raise
        c = self._cursor
        if c.recording:  # the fields of frame_fields() and ok, as a row
            calls = self._calls  # c.call("tx") inlined
            n = calls.get("tx", 0)
            calls["tx"] = n + 1
            self._tx_append(CAN_TX_KEYS, (
                c.tick, n, msg.arbitration_id, True if msg.is_extended_id else False,
                True if msg.is_remote_frame else False, True if msg.is_error_frame else False,
                True if msg.is_fd else False, True if msg.bitrate_switch else False,
                True if msg.error_state_indicator else False, msg.dlc, bytes(msg.data), True))

    def flush_tx_buffer(self) -> None:
        """Flush the inner bus's TX buffer; a refusal is recorded (it decides a count)."""
        try:
            self._inner.flush_tx_buffer()
        except (NotImplementedError, can.CanError, OSError) as exc:
            self._rec(f"/in/can/{self._name}/flush", "flush", {"ok": False, **error_fields(exc)})
            raise
        self._rec(f"/in/can/{self._name}/flush", "flush", {"ok": True})

    @property
    def state(self) -> can.BusState:
        """The inner bus's state; recorded when it differs from the last one read."""
        try:
            st = self._inner.state
        except Exception as exc:  # noqa: BLE001 - replayed as 'cannot report'
            self._rec(self._state_topic, "state", {"state": None, **error_fields(exc)})
            self._last_state = None
            self._last_state_obj = None
            raise
        if not self._cursor.recording:
            return st
        calls = self._calls  # self._cursor.call("state") inlined: read every tick
        n = calls.get("state", 0)
        calls["state"] = n + 1
        if st is self._last_state_obj:  # the state read last time: its name is recorded already
            return st
        self._last_state_obj = st
        name = st.name if isinstance(st, can.BusState) else None
        if name != self._last_state:
            self._last_state = name
            self._sink.put(self._state_topic, {"tick": self._cursor.tick, "call": n, "state": name})
        return st

    @state.setter
    def state(self, new_state: can.BusState) -> None:
        self._inner.state = new_state

    def shutdown(self) -> None:
        """Shut the inner bus down (once)."""
        if self._is_shutdown:
            return
        self._is_shutdown = True
        self._inner.shutdown()


# --------------------------------------------------------------------------- serial


class TapLink:
    """A :class:`~hal.serial.link.SerialLink` that records the bytes read and written.

    Parameters
    ----------
    inner : SerialLink
    name : str
        The rig's bus name: topics ``/in/serial/<name>``, ``/out/serial/<name>``.
    cursor : TickCursor
    sink : IngressSink
    """

    def __init__(self, inner: SerialLink, name: str, cursor: TickCursor, sink: IngressSink) -> None:
        self.inner = inner
        self.name = name
        self._cursor = cursor
        self._calls = cursor.live_calls  # the same dict for the cursor's life
        self._sink = sink
        self._rx = f"/in/serial/{name}"
        self._tx = f"/out/serial/{name}"
        self._rx_append = row_appender(sink, self._rx)
        self._tx_append = row_appender(sink, self._tx)

    @property
    def is_open(self) -> bool:
        """Whether the inner link is open."""
        return self.inner.is_open

    def read(self, max_bytes: int = 4096) -> bytes:
        """Read from the inner link; non-empty data or an error is recorded."""
        c = self._cursor
        if not c.recording:
            return self.inner.read(max_bytes)
        calls = self._calls  # c.call("rx") inlined: read several times a tick
        n = calls.get("rx", 0)
        calls["rx"] = n + 1
        try:
            data = self.inner.read(max_bytes)
        except Exception as exc:
            self._sink.put(self._rx, {"tick": c.tick, "call": n, **error_fields(exc)})
            raise
        if data:
            b = bytes(data)
            c.crc32 = _crc32(b, c.crc32)  # c.feed inlined
            self._rx_append(SERIAL_RX_KEYS, (c.tick, n, b))
        return data

    def write(self, data: bytes) -> int:
        """Write to the inner link; the bytes are recorded with the count accepted or the error."""
        c = self._cursor
        if not c.recording:
            return self.inner.write(data)
        n = c.call("tx")
        try:
            accepted = self.inner.write(data)
        except Exception as exc:
            self._sink.put(self._tx, {"tick": c.tick, "call": n, "data": bytes(data).hex(), **error_fields(exc)})
            raise
        self._tx_append(SERIAL_TX_KEYS, (c.tick, n, bytes(data), accepted))
        return accepted

    def close(self) -> None:
        """Close the inner link."""
        self.inner.close()

    # The link backends' other attributes (hal.serial.link: counters for the summary,
    # reopen and the fault plans' unplug; never inputs of a tick), read through.
    reopen = _FromInner()
    pending = _FromInner()
    pair = _FromInner()
    simulate_unplug = _FromInner()
    simulate_replug = _FromInner()
    tx_queued_bytes = _FromInner()
    tx_overflows = _FromInner()
    tx_dropped_bytes = _FromInner()
    bytes_rx = _FromInner()
    bytes_tx = _FromInner()
    failures = _FromInner()
    rx_overflow_bytes = _FromInner()
    write_timeouts = _FromInner()
    capacity_bytes = _FromInner()
    tx_buffer_bytes = _FromInner()
    url = _FromInner()
    baudrate = _FromInner()
    fd = _FromInner()
    write_timeout_s = _FromInner()


# --------------------------------------------------------------------------- clock


class TapClock:
    """A run clock whose readings in the control thread are recorded (``/in/clock``).

    Parameters
    ----------
    inner : Clock
        The run's :class:`~controller.clock.MonotonicClock` (a lockstep ``SimClock`` is
        deterministic and is not tapped).
    cursor : TickCursor
    sink : IngressSink
    """

    def __init__(self, inner: Clock, cursor: TickCursor, sink: IngressSink) -> None:
        self.inner = inner
        self._cursor = cursor
        self._calls = cursor.live_calls  # the same dict for the cursor's life
        self._sink = sink
        self._main = threading.get_ident()
        self._append = row_appender(sink, "/in/clock")
        #: The sink's ``idle(remaining_s)``, if it has one (the flight log's writer works then).
        self._idle: Callable[[float], None] | None = getattr(sink, "idle", None)

    def now_s(self) -> float:
        """Return the inner clock's seconds; recorded in the control thread."""
        t = self.inner.now_s()
        c = self._cursor
        if c.recording and _get_ident() == self._main:
            calls = self._calls  # c.call("clock") inlined: read a few times a tick
            n = calls.get("clock", 0)
            calls["clock"] = n + 1
            self._append(CLOCK_S_KEYS, (c.tick, n, t))
        return t

    def now_ns(self) -> int:
        """Return the inner clock's nanoseconds; recorded in the control thread."""
        t = self.inner.now_ns()
        c = self._cursor
        if c.recording and _get_ident() == self._main:
            calls = self._calls  # c.call("clock") inlined
            n = calls.get("clock", 0)
            calls["clock"] = n + 1
            self._append(CLOCK_NS_KEYS, (c.tick, n, t))
        return t

    def sleep_until(self, deadline_s: float) -> None:
        """Sleep as the inner clock does; in the control thread, first tell the sink how long.

        The control thread sleeps here between ticks: the flight record's writer thread
        works in that time (:class:`controller.record.flight_queue.IdleGate`). The time
        left is read from the inner clock (not a recorded reading: a replay reads none).
        """
        idle = self._idle
        if idle is not None and threading.get_ident() == self._main:
            idle(deadline_s - self.inner.now_s())
        self.inner.sleep_until(deadline_s)  # type: ignore[attr-defined]  # the run clocks have it (controller.clock)

    # the run clocks' other attributes (controller.clock.MonotonicClock), read through
    start = _FromInner()
    started = _FromInner()
    spin_s = _FromInner()
    advance = _FromInner()
