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
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import can

from controller.record.taps import (
    IngressSink,
    Record,
    TapBus,
    TapClock,
    TapLink,
    TapPoller,
    TickCursor,
    dec_float,
    encode_value,
    frame_fields,
)
from hal.clock import Clock
from hal.errors import BusError
from hal.modbus.link import ModbusFailure
from hal.modbus.poller import DeviceSnapshot, ModbusPoller
from hal.serial.link import SerialLink

#: Exception classes a replay port can raise again, by recorded ``error_type``.
_ERRORS: Mapping[str, type[Exception]] = MappingProxyType({
    "CanError": can.CanError, "CanOperationError": can.CanOperationError, "OSError": OSError,
    "BusError": BusError, "NotImplementedError": NotImplementedError,
})


class ReplayDivergence(Exception):
    """The replayed controller asked for something the recorded one never did."""


def _raise(rec: Record) -> None:
    cls = _ERRORS.get(str(rec.get("error_type")), RuntimeError)
    raise cls(str(rec.get("error", "")))


@dataclass
class ReplayInputs:
    """The recorded inputs of one run, indexed by topic and ``(tick, call)``."""

    by_topic: dict[str, dict[tuple[int, int], Record]] = field(default_factory=lambda: defaultdict(dict))
    #: sticky topics (bus state): per topic the sorted keys, for "the last at or before"
    _sticky: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, Record]]) -> ReplayInputs:
        """Index ``(topic, record)`` pairs whose topic starts with ``/in/`` or ``/out/``."""
        out = cls()
        for topic, rec in records:
            if topic.startswith(("/in/", "/out/")):
                out.by_topic[topic][(int(rec["tick"]), int(rec["call"]))] = rec  # type: ignore[arg-type]
        return out

    def at(self, topic: str, tick: int, call: int) -> Record | None:
        """Return the record of this call, or None."""
        d = self.by_topic.get(topic)
        return None if d is None else d.get((tick, call))

    def last_at_or_before(self, topic: str, tick: int, call: int) -> Record | None:
        """Return the newest record at or before ``(tick, call)`` (sticky values), or None."""
        d = self.by_topic.get(topic)
        if not d:
            return None
        keys = self._sticky.get(topic)
        if keys is None:
            keys = self._sticky[topic] = sorted(d)
        i = bisect.bisect_right(keys, (tick, call)) - 1
        return None if i < 0 else d[keys[i]]

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
        self.channel_info = f"replay of {name}"
        self._is_shutdown = False

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Return the frame the recorded run received at this call, or None."""
        c = self._cursor
        rec = self._inputs.at(self._rx, c.tick, c.call("rx"))
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
        n = c.call("tx")
        rec = self._inputs.at(self._tx, c.tick, n)
        fields = frame_fields(msg)
        if rec is not None and rec.get("ok") is False:
            self._sink.put(self._tx, {"tick": c.tick, "call": n, **fields, "ok": False,
                                      "error_type": rec.get("error_type"), "error": rec.get("error")})
            _raise(rec)
        self._sink.put(self._tx, {"tick": c.tick, "call": n, **fields, "ok": True})

    def flush_tx_buffer(self) -> None:
        """Succeed or fail as the recorded flush did."""
        c = self._cursor
        rec = self._inputs.at(f"/in/can/{self._name}/flush", c.tick, c.call("flush"))
        if rec is not None and rec.get("ok") is False:
            _raise(rec)

    @property
    def state(self) -> can.BusState:
        """The bus state the recorded run read last at or before this call."""
        c = self._cursor
        n = c.call("state")
        rec = self._inputs.last_at_or_before(f"/in/can/{self._name}/state", c.tick, n)
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
        self._open = True

    @property
    def is_open(self) -> bool:
        """True until closed."""
        return self._open

    def read(self, max_bytes: int = 4096) -> bytes:
        """Return the bytes the recorded run read at this call (b"" when none)."""
        c = self._cursor
        rec = self._inputs.at(self._rx, c.tick, c.call("rx"))
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
        rec = self._inputs.at(self._tx, c.tick, n)
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


# --------------------------------------------------------------------------- Modbus


def _value_from(v: object) -> object:
    if isinstance(v, dict):
        if "f" in v:
            return dec_float(v["f"])
        if "map" in v:
            return {k: _value_from(x) for k, x in v["map"].items()}
        return v.get("repr")
    return v


def _failure_from(v: object) -> ModbusFailure | None:
    if not isinstance(v, dict):
        return None
    return ModbusFailure(v["kind"], int(v["exception_code"]), str(v["detail"]))


def snapshot_from(device: str, rec: Record) -> DeviceSnapshot:
    """Rebuild a device snapshot recorded by :func:`controller.record.taps.snapshot_fields`."""
    values = rec["values"]
    assert isinstance(values, dict)  # written by snapshot_fields
    fbk = rec["failures_by_kind"]
    assert isinstance(fbk, dict)
    st = rec["sample_time_s"]
    return DeviceSnapshot(
        device=device,
        values=MappingProxyType({k: _value_from(v) for k, v in values.items()}),  # type: ignore[misc]
        sample_time_s=None if st is None else dec_float(st),
        stale_after_s=dec_float(rec["stale_after_s"]), stale_after_polls=int(rec["stale_after_polls"]),  # type: ignore[arg-type]
        polls_ok=int(rec["polls_ok"]), polls_failed=int(rec["polls_failed"]),  # type: ignore[arg-type]
        consecutive_failures=int(rec["consecutive_failures"]),  # type: ignore[arg-type]
        deadline_misses=int(rec["deadline_misses"]), transactions=int(rec["transactions"]),  # type: ignore[arg-type]
        failures_by_kind=MappingProxyType({str(k): int(v) for k, v in fbk.items()}),  # type: ignore[call-overload]
        last_failure=_failure_from(rec["last_failure"]),
    )


class _ReplayDone:
    def __init__(self, ticket: ReplayTicket) -> None:
        self._t = ticket

    def is_set(self) -> bool:
        return self._t.observe()

    def wait(self, timeout: float | None = None) -> bool:
        return self._t.observe()


class ReplayTicket:
    """A write ticket whose result appears at the call where the recorded run first saw it."""

    def __init__(self, poller: ReplayPoller, device: str, quantity: str, value: object, seq: int) -> None:
        self._poller = poller
        self.device = device
        self.quantity = quantity
        self.value = value
        self.seq = seq
        self.done = _ReplayDone(self)
        self.ok = False
        self.reason = ""
        self.readback: object = None
        self.failure: ModbusFailure | None = None
        self._seen = False

    def observe(self) -> bool:
        """Return True once the recorded run saw this write done (at the recorded call)."""
        if self._seen:
            return True
        p = self._poller
        c = p.cursor
        rec = p.inputs.at(f"/in/modbus/{self.device}/ticket", c.tick, c.call(f"ticket/{self.device}"))
        if rec is None or int(rec["seq"]) != self.seq:  # type: ignore[arg-type]
            return False
        self.seen_as(rec)
        return True

    def seen_as(self, rec: Record) -> None:
        """Take the recorded result ``rec`` (``/in/modbus/<device>/ticket``) as seen."""
        self._seen = True
        self.ok = bool(rec["ok"])
        self.reason = str(rec["reason"])
        self.readback = _value_from(rec["readback"])
        self.failure = _failure_from(rec["failure"])


class ReplayPoller:
    """A Modbus poller that serves the recorded snapshots and write results; no bus."""

    def __init__(self, devices: list[str], clock: Clock, cursor: TickCursor, inputs: ReplayInputs,
                 sink: IngressSink) -> None:
        self.devices = list(devices)
        self.clock = clock
        self.cursor = cursor
        self.inputs = inputs
        self.sink = sink
        self._seq = 0
        self._empty = {d: DeviceSnapshot(d) for d in devices}
        self._cache: dict[str, tuple[tuple[int, int], DeviceSnapshot]] = {}
        self._seek_tick = -1

    def snapshot(self, device: str) -> DeviceSnapshot:
        """Return the snapshot the recorded run read last at or before this call."""
        c = self.cursor
        n = c.call(f"snap/{device}")
        rec = self.inputs.last_at_or_before(f"/in/modbus/{device}", c.tick, n)
        if rec is None:
            return self._empty[device]
        key = (int(rec["tick"]), int(rec["call"]))  # type: ignore[arg-type]
        cache = self._cache.get(device)
        if cache is None or cache[0] != key:
            cache = (key, snapshot_from(device, rec))
            self._cache[device] = cache
            fields = {k: v for k, v in rec.items() if k not in ("tick", "call")}
            c.feed(json.dumps(fields, sort_keys=True).encode())
        return cache[1]

    def submit_write(self, device: str, quantity: str, value: object) -> ReplayTicket:
        """Record the write request; its result comes from the record."""
        seq = self._seq
        self._seq += 1
        c = self.cursor
        self.sink.put(f"/out/modbus/{device}", {"tick": c.tick, "call": c.call(f"write/{device}"), "seq": seq,
                                                 "quantity": quantity, "value": encode_value(value)})
        return ReplayTicket(self, device, quantity, value, seq)

    def seek(self, tick: int) -> None:
        """Start after ``tick`` (a replay from a snapshot, issue 12 part 4).

        Read back from the record what the recorded poller held at the end of ``tick``:
        the next write's sequence number and, per device, the last snapshot the tick read
        (so the next tick does not take it for a new one).
        """
        end = (tick, 1 << 62)
        self._seek_tick = tick
        seqs = [int(r["seq"]) for d in self.devices  # type: ignore[arg-type]
                for k, r in self.inputs.by_topic.get(f"/out/modbus/{d}", {}).items() if k <= end]
        self._seq = max(seqs, default=-1) + 1
        self._cache.clear()
        for d in self.devices:
            rec = self.inputs.last_at_or_before(f"/in/modbus/{d}", *end)
            if rec is not None:
                self._cache[d] = ((int(rec["tick"]), int(rec["call"])), snapshot_from(d, rec))  # type: ignore[arg-type]

    def resume_write(self, device: str, quantity: str, value: object) -> ReplayTicket:
        """Return the ticket of the last write to ``device`` before the seek (a snapshot's pending write).

        Its result is the recorded one: already seen if the recorded run saw it by then,
        else it appears at the call where the recorded run first saw it.

        Raises
        ------
        ReplayDivergence
            When the record holds no such write before the seek.
        """
        writes = self.inputs.by_topic.get(f"/out/modbus/{device}", {})
        before = [k for k, r in writes.items() if int(r["seq"]) < self._seq  # type: ignore[arg-type]
                  and r.get("quantity") == quantity]
        if not before:
            raise ReplayDivergence(f"no recorded write of {device}.{quantity} to resume")
        seq = int(writes[max(before)]["seq"])  # type: ignore[arg-type]
        t = ReplayTicket(self, device, quantity, value, seq)
        for k, rec in self.inputs.by_topic.get(f"/in/modbus/{device}/ticket", {}).items():
            if int(rec["seq"]) == seq and k[0] <= self._seek_tick:  # type: ignore[arg-type]
                t.seen_as(rec)
        return t

    def step(self, now_s: float | None = None) -> None:
        """Nothing to poll."""

    def align_to_grid(self, origin_s: float, period_s: float) -> None:
        """Nothing to align."""

    def start(self) -> ReplayPoller:
        """Nothing to start."""
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Nothing to stop."""
        return True

    @property
    def worker_alive(self) -> bool:
        """No worker."""
        return False


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


# --------------------------------------------------------------------------- what the composition room gets


@dataclass(frozen=True)
class Ingress:
    """How the composition room opens ports for a recorded or a replayed run.

    Attributes
    ----------
    cursor : TickCursor
        The run's tick cursor.
    sink : IngressSink
        Where taps (recording) or replay ports (their outputs) write.
    replay : ReplayInputs or None
        None: open the real (or emulated) ports and tap them. Set: open replay ports
        over these inputs instead, and build no emulator and no world.
    """

    cursor: TickCursor
    sink: IngressSink
    replay: ReplayInputs | None = None
    #: A replay of a record that ends early: its last tick.
    last_tick: int | None = None
    #: A replay from a snapshot: the tick after which it starts (the pollers seek there).
    resume_tick: int | None = None

    @property
    def replaying(self) -> bool:
        """True for a replay."""
        return self.replay is not None

    def can_bus(self, name: str, open_bus: Callable[[], can.BusABC]) -> can.BusABC:
        """Return the host side of CAN bus ``name``: a replay bus, or the opened bus tapped."""
        if self.replay is not None:
            return ReplayBus(name, self.cursor, self.replay, self.sink)
        return TapBus(open_bus(), name, self.cursor, self.sink)

    def serial_link(self, name: str, link: SerialLink) -> SerialLink:
        """Return the host side of serial bus ``name`` tapped (recording only)."""
        return TapLink(link, name, self.cursor, self.sink)

    def replay_link(self, name: str) -> ReplayLink:
        """Return the replay link of serial bus ``name``."""
        assert self.replay is not None  # only while replaying
        return ReplayLink(name, self.cursor, self.replay, self.sink)

    def poller(self, poller: ModbusPoller, run_clock: Clock) -> TapPoller:
        """Return a poller as the components see it, tapped (recording only); its ``clock`` is ``run_clock``."""
        return TapPoller(poller, self.cursor, self.sink, run_clock)

    def replay_poller(self, devices: list[str], clock: Clock) -> ReplayPoller:
        """Return the replay poller of these devices (no bus)."""
        assert self.replay is not None  # only while replaying
        poller = ReplayPoller(devices, clock, self.cursor, self.replay, self.sink)
        if self.resume_tick is not None:
            poller.seek(self.resume_tick)
        return poller

    def clock(self, clock: Clock, realtime: bool) -> Clock:
        """Return the run clock: a lockstep SimClock as is; real time tapped or replayed."""
        if not realtime:
            return clock
        if self.replay is not None:
            rc = ReplayClock(self.cursor, self.replay, self.sink)
            rc.last_tick = self.last_tick
            return rc
        return TapClock(clock, self.cursor, self.sink)
