"""Replay ports: the recorded inputs handed back to the same calls of the same ticks.

The counterpart of :mod:`controller.record.taps`. A replayed run is built with these in
place of the buses, links, pollers and clock the composition room would open; there is no
emulator and no world. Each port looks its call up by ``(tick, call)`` in
:class:`ReplayInputs` and returns what the recorded run received there (a frame, bytes, a
snapshot, an error), or "nothing" when the recorded call returned nothing. Outputs go to
the replay's own sink through the same taps, so the two records compare channel by
channel (:mod:`controller.record.replay`).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import can
import orjson

from controller.record.taps import (
    IngressSink,
    Record,
    TickCursor,
    frame_fields,
)
from hal.errors import BusError

#: Exception classes a replay port can raise again, by recorded ``error_type``.
_ERRORS: Mapping[str, type[Exception]] = MappingProxyType({
    "CanError": can.CanError, "CanOperationError": can.CanOperationError, "OSError": OSError,
    "BusError": BusError, "NotImplementedError": NotImplementedError,
})


#: Topic prefixes of what a replay feeds back: inputs, and the outcome of each send.
_INDEXED = ("/in/", "/out/")


class ReplayDivergence(Exception):
    """The replayed controller asked for something the recorded one never did."""


def _raise(rec: Record) -> None:
    cls = _ERRORS.get(str(rec.get("error_type")), RuntimeError)
    raise cls(str(rec.get("error", "")))


class _Sticky:
    """One sticky topic's records in ``(tick, call)`` order, and where the last look-up landed."""

    __slots__ = ("keys", "recs", "i")

    def __init__(self, table: Mapping[tuple[int, int], Record]) -> None:
        self.keys = sorted(table)
        self.recs = [table[k] for k in self.keys]
        #: index of the last answer (-1: before the first record)
        self.i = -1


@dataclass
class ReplayInputs:
    """The recorded inputs of one run, indexed by topic and ``(tick, call)``.

    Built once before the replay starts (:meth:`from_records`, :meth:`from_json`); the
    ports only look records up.
    """

    by_topic: dict[str, dict[tuple[int, int], Record]] = field(default_factory=lambda: defaultdict(dict))
    #: sticky topics (bus state, Modbus snapshots): per topic the sorted keys, for "the last at or before"
    _sticky: dict[str, _Sticky] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, Record]]) -> ReplayInputs:
        """Index ``(topic, record)`` pairs whose topic starts with ``/in/`` or ``/out/``."""
        out = cls()
        by_topic = out.by_topic
        for topic, rec in records:
            if topic.startswith(_INDEXED):
                by_topic[topic][(int(rec["tick"]), int(rec["call"]))] = rec  # type: ignore[arg-type]
        return out

    @classmethod
    def from_json(cls, raw: Iterable[tuple[str, bytes]], loads: Callable[[bytes], Record]) -> ReplayInputs:
        """Index the encoded messages of the ``/in/`` and ``/out/`` topics, decoding only those.

        Parameters
        ----------
        raw : iterable of (topic, bytes)
            Messages as a record holds them: one JSON object each, in file order.
        loads : callable
            Decodes one message (``bytes`` -> record); used when a topic's messages do not
            decode as one JSON array.

        Notes
        -----
        The same index as :meth:`from_records` over the decoded messages. Each topic's
        messages are decoded together, as one JSON array (``orjson``: one call per topic
        instead of one per message); a topic that ``orjson`` refuses that way (an
        integer beyond 64 bits) is decoded message by message with ``loads``.
        """
        wanted: dict[str, list[bytes] | None] = {}  # per topic its messages, None: not indexed
        for topic, data in raw:
            if topic in wanted:
                lst = wanted[topic]
            else:
                lst = wanted[topic] = [] if topic.startswith(_INDEXED) else None
            if lst is not None:
                lst.append(data)
        out = cls()
        for topic, datas in wanted.items():
            if datas is None:
                continue
            try:
                recs = orjson.loads(b"[" + b",".join(datas) + b"]")
            except orjson.JSONDecodeError:
                recs = None
            if not isinstance(recs, list) or len(recs) != len(datas):  # not one object per message
                recs = [loads(d) for d in datas]
            table = out.by_topic[topic]
            for rec in recs:
                table[(int(rec["tick"]), int(rec["call"]))] = rec
        return out

    def at(self, topic: str, tick: int, call: int) -> Record | None:
        """Return the record of this call, or None."""
        d = self.by_topic.get(topic)
        return None if d is None else d.get((tick, call))

    def last_at_or_before(self, topic: str, tick: int, call: int) -> Record | None:
        """Return the newest record at or before ``(tick, call)`` (sticky values), or None.

        The look-ups of a replay come in ``(tick, call)`` order, so each starts where the
        last one of the topic landed (usually no search at all); an earlier key (a replay
        from a snapshot seeks back) searches the records before it.
        """
        s = self._sticky.get(topic)
        if s is None:
            d = self.by_topic.get(topic)
            if not d:
                return None
            s = self._sticky[topic] = _Sticky(d)
        key = (tick, call)
        keys = s.keys
        i = s.i
        if i + 1 < len(keys) and keys[i + 1] <= key:  # later than the last answer: forward
            i = bisect.bisect_right(keys, key, i + 1) - 1
        elif i >= 0 and keys[i] > key:  # earlier than the last answer: back
            i = bisect.bisect_right(keys, key, 0, i) - 1
        s.i = i
        return None if i < 0 else s.recs[i]

    def topics(self, prefix: str) -> list[str]:
        """Topics starting with ``prefix``."""
        return sorted(t for t in self.by_topic if t.startswith(prefix))


def frame_from(rec: Record) -> can.Message:
    """Rebuild the CAN frame of a record made by :func:`controller.record.taps.frame_fields`."""
    return can.Message(arbitration_id=int(rec["id"]), is_extended_id=bool(rec["ext"]),  # type: ignore[arg-type]
                       is_remote_frame=bool(rec["rtr"]), is_error_frame=bool(rec["err"]), is_fd=bool(rec["fd"]),
                       bitrate_switch=bool(rec["brs"]), error_state_indicator=bool(rec["esi"]),
                       dlc=int(rec["dlc"]), data=bytes.fromhex(str(rec["data"])), check=False)  # type: ignore[arg-type]


class ReplayBus(can.BusABC):
    """A python-can bus that receives the recorded frames of each tick and sends nowhere.

    A send fails exactly where the recorded one failed; every send is recorded as an
    output (``/out/can/<name>``) in the replay's own sink.
    """

    def __init__(self, name: str, cursor: TickCursor, inputs: ReplayInputs, sink: IngressSink) -> None:
        self._name = name
        self._cursor = cursor
        self._inputs = inputs
        self._sink = sink
        self._rx = f"/in/can/{name}"
        self._tx = f"/out/can/{name}"
        self._flush = f"/in/can/{name}/flush"
        self._state = f"/in/can/{name}/state"
        # the recorded calls of each direction by (tick, call): the inputs are complete
        # before the replay starts, so the tables are looked up once here
        self._rx_calls = inputs.by_topic.get(self._rx) or {}
        self._tx_calls = inputs.by_topic.get(self._tx) or {}
        self._calls = cursor.live_calls  # the same dict for the cursor's life (as the taps)
        self.channel_info = f"replay of {name}"
        self._is_shutdown = False

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Return the frame the recorded run received at this call, or None."""
        c = self._cursor
        calls = self._calls  # c.call("rx") inlined: the controller drains a bus until recv says None
        n = calls.get("rx", 0)
        calls["rx"] = n + 1
        rec = self._rx_calls.get((c.tick, n))
        if rec is None:
            return None
        if "error_type" in rec:
            _raise(rec)
        msg = frame_from(rec)
        c.feed(msg.arbitration_id.to_bytes(4, "little") + bytes(msg.data))
        return msg

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Record the frame; raise the recorded error if the recorded send failed here."""
        c = self._cursor
        calls = self._calls  # c.call("tx") inlined
        n = calls.get("tx", 0)
        calls["tx"] = n + 1
        rec = self._tx_calls.get((c.tick, n))
        fields = frame_fields(msg)
        if rec is not None and rec.get("ok") is False:
            self._sink.put(self._tx, {"tick": c.tick, "call": n, **fields, "ok": False,
                                      "error_type": rec.get("error_type"), "error": rec.get("error")})
            _raise(rec)
        self._sink.put(self._tx, {"tick": c.tick, "call": n, **fields, "ok": True})

    def flush_tx_buffer(self) -> None:
        """Succeed or fail as the recorded flush did."""
        c = self._cursor
        rec = self._inputs.at(self._flush, c.tick, c.call("flush"))
        if rec is not None and rec.get("ok") is False:
            _raise(rec)

    @property
    def state(self) -> can.BusState:
        """The bus state the recorded run read last at or before this call."""
        c = self._cursor
        calls = self._calls  # c.call("state") inlined: read every tick
        n = calls.get("state", 0)
        calls["state"] = n + 1
        rec = self._inputs.last_at_or_before(self._state, c.tick, n)
        if rec is None or rec.get("state") is None:
            if rec is not None and "error_type" in rec and (int(rec["tick"]), int(rec["call"])) == (c.tick, n):  # type: ignore[arg-type]
                _raise(rec)
            return can.BusState.ACTIVE
        return can.BusState[str(rec["state"])]

    @state.setter
    def state(self, new_state: can.BusState) -> None:
        del new_state  # a replay has no bus to set

    def shutdown(self) -> None:
        """Nothing to release."""
        self._is_shutdown = True


class ReplayLink:
    """A serial link that reads the recorded bytes of each call and writes nowhere."""

    def __init__(self, name: str, cursor: TickCursor, inputs: ReplayInputs, sink: IngressSink) -> None:
        self.name = name
        self._cursor = cursor
        self._inputs = inputs
        self._sink = sink
        self._rx = f"/in/serial/{name}"
        self._tx = f"/out/serial/{name}"
        self._rx_calls = inputs.by_topic.get(self._rx) or {}  # as ReplayBus: complete before the replay
        self._tx_calls = inputs.by_topic.get(self._tx) or {}
        self._calls = cursor.live_calls  # the same dict for the cursor's life (as the taps)
        self._open = True

    @property
    def is_open(self) -> bool:
        """True until closed."""
        return self._open

    def read(self, max_bytes: int = 4096) -> bytes:
        """Return the bytes the recorded run read at this call (b"" when none)."""
        c = self._cursor
        calls = self._calls  # c.call("rx") inlined: read several times a tick
        n = calls.get("rx", 0)
        calls["rx"] = n + 1
        rec = self._rx_calls.get((c.tick, n))
        if rec is None:
            return b""
        if "error_type" in rec:
            _raise(rec)
        data = bytes.fromhex(str(rec["data"]))
        if data:
            c.feed(data)
        return data

    def write(self, data: bytes) -> int:
        """Record the bytes; return the recorded count accepted (or raise the recorded error)."""
        c = self._cursor
        n = c.call("tx")
        rec = self._tx_calls.get((c.tick, n))
        if rec is not None and "error_type" in rec:
            self._sink.put(self._tx, {"tick": c.tick, "call": n, "data": bytes(data).hex(),
                                      "error_type": rec["error_type"], "error": rec.get("error")})
            _raise(rec)
        accepted = len(data) if rec is None or rec.get("n") is None else int(rec["n"])  # type: ignore[arg-type]
        self._sink.put(self._tx, {"tick": c.tick, "call": n, "data": bytes(data).hex(), "n": accepted})
        return accepted

    def close(self) -> None:
        """Mark closed."""
        self._open = False


# --------------------------------------------------------------------------- clock


class ReplayClock:
    """The run clock of a real-time run, read back: each control-thread reading in order."""

    def __init__(self, cursor: TickCursor, inputs: ReplayInputs, sink: IngressSink | None = None) -> None:
        self._cursor = cursor
        self._inputs = inputs
        self._sink = sink
        self.started = True
        #: Set for a record that ends early (see :class:`~controller.record.session.FlightSession`).
        self.last_tick: int | None = None
        self._last: float | int = 0

    def _next(self, kind: str) -> float | int:
        c = self._cursor
        n = c.call("clock")
        rec = self._inputs.at("/in/clock", c.tick, n)
        if rec is None and self.last_tick is not None and c.tick >= self.last_tick:
            # past the end of a record that ends early: the last reading again (the run
            # stops at its next tick)
            return self._last
        if rec is None or kind not in rec:
            raise ReplayDivergence(f"tick {c.tick}: clock read {n} ({kind}) was not recorded")
        v = rec[kind]
        if self._sink is not None:
            self._sink.put("/in/clock", {"tick": c.tick, "call": n, kind: v})
        self._last = v  # type: ignore[assignment]
        return v  # type: ignore[return-value]

    def now_s(self) -> float:
        """Return the recorded reading of this call (s)."""
        return float(self._next("s"))

    def now_ns(self) -> int:
        """Return the recorded reading of this call (ns)."""
        return int(self._next("ns"))

    def start(self) -> None:
        """Nothing: the recorded readings already start at tick 0."""

    def sleep_until(self, deadline_s: float) -> None:
        """Never sleeps: a replay runs as fast as it can."""


