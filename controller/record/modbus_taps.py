"""The Modbus side of the flight record: pollers tapped and replayed.

A Modbus device reaches the tick through a :class:`~hal.modbus.poller.PollerPort`: the
snapshots it publishes and the results of queued writes. :class:`TapPoller` records each
new snapshot the tick read and each write result when the tick first saw it done;
:class:`ReplayPoller` serves them back at the same ``(tick, call)`` with no bus (see
:mod:`controller.record.taps` and :mod:`controller.record.replay_ports` for the CAN,
serial and clock counterparts). Values are recorded exactly: floats as ``{"f": x}``
(non-finite as text), maps as ``{"map": ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from controller.record.replay_ports import ReplayDivergence, ReplayInputs
from controller.record.taps import Field, IngressSink, Record, TickCursor, dec_float, enc_float
from hal.clock import Clock
from hal.modbus.link import ModbusFailure
from hal.modbus.poller import DeviceSnapshot, ModbusPoller, WriteTicket

# --------------------------------------------------------------------------- encoding


#: ``json.dumps(x, sort_keys=True)`` without building an encoder per call (the same
#: text): the generic writer of :class:`SortedText`, and the replay's.
_SORTED_JSON = json.JSONEncoder(sort_keys=True).encode
_crc32 = zlib.crc32
_isfinite = math.isfinite
_is = operator.is_
_encode_str = json.encoder.encode_basestring_ascii  # what json's C encoder writes for a str (ensure_ascii)


def encode_value(v: object) -> Field:
    """Return a Modbus value for JSON, exactly: floats as ``{"f": ...}``, maps as ``{"map": ...}``.

    Inlined for exact finite floats, bools and ints in :func:`values_fields`, and for
    bools in a map's values here (the call is the cost there).
    """
    if type(v) is float:  # the usual value, first (a float subclass takes the isinstance test below)
        return {"f": v if math.isfinite(v) else repr(v)}  # enc_float inlined
    if isinstance(v, bool) or isinstance(v, int) or isinstance(v, str):
        return v
    if isinstance(v, float):
        return {"f": enc_float(v)}
    if isinstance(v, Mapping):  # flag maps: bools, written as they are without a call
        return {"map": {k if type(k) is str else str(k): x if type(x) is bool else encode_value(x)
                        for k, x in v.items()}}
    return {"repr": repr(v)}


def _failure(f: ModbusFailure | None) -> Field:
    return None if f is None else {"kind": f.kind, "exception_code": f.exception_code, "detail": f.detail}


def values_fields(s: DeviceSnapshot) -> dict[str, object]:
    """Return ``{k: encode_value(v)}`` over a snapshot's values (its ``values`` field).

    :func:`encode_value`'s cases of an exact finite float, bool or int are written inline
    (a snapshot holds tens of them: the call is the cost).

    Parameters
    ----------
    s : DeviceSnapshot
        A Modbus device snapshot (:class:`hal.modbus.poller.DeviceSnapshot`); its values
        are in the units of the device profile (V, A, %, degC...).

    Returns
    -------
    dict
        Quantity name -> JSON-ready value, in ``s.values``' order: a float as
        ``{"f": x}`` (``{"f": "nan"}``-style text when not finite), a map as
        ``{"map": ...}``, a bool, int or str as it is, anything else as ``{"repr": ...}``.
    """
    return {k: {"f": v} if type(v) is float and _isfinite(v) else v if type(v) is bool or type(v) is int
            else encode_value(v) for k, v in s.values.items()}


def counter_fields(s: DeviceSnapshot) -> Record:
    """Return every field of a snapshot but ``values``, in :func:`snapshot_fields`' order.

    Parameters
    ----------
    s : DeviceSnapshot
        A Modbus device snapshot.

    Returns
    -------
    dict
        ``sample_time_s`` (run clock, s; None before the first poll) and
        ``stale_after_s`` (s) as exact floats (:func:`enc_float`), the poll and
        transaction counters, ``failures_by_kind`` and ``last_failure`` (None or its
        kind, exception code and detail).
    """
    return {
        "sample_time_s": None if s.sample_time_s is None else enc_float(s.sample_time_s),
        "stale_after_s": enc_float(s.stale_after_s), "stale_after_polls": s.stale_after_polls,
        "polls_ok": s.polls_ok, "polls_failed": s.polls_failed, "consecutive_failures": s.consecutive_failures,
        "deadline_misses": s.deadline_misses, "transactions": s.transactions,
        "failures_by_kind": dict(s.failures_by_kind), "last_failure": _failure(s.last_failure),
    }


def snapshot_fields(s: DeviceSnapshot) -> Record:
    """Return every field of a Modbus device snapshot, floats exact (see :func:`enc_float`).

    ``values`` first (:func:`values_fields`), then :func:`counter_fields`: the record of
    ``/in/modbus/<device>`` (with the tick and call added) and, as
    ``json.dumps(..., sort_keys=True)`` text, what the tick's ingress CRC is folded from.

    Parameters
    ----------
    s : DeviceSnapshot
        A Modbus device snapshot.

    Returns
    -------
    dict
        ``{"values": values_fields(s), **counter_fields(s)}``; :func:`snapshot_from`
        rebuilds the snapshot from it.
    """
    return {"values": values_fields(s), **counter_fields(s)}


# --------------------------------------------------------------------------- the CRC text

#: A non-finite float's ``repr`` and its text: wrapped (``{"f": "nan"}``, encode_value's) or bare (json's).
_NONFINITE_WRAPPED: Mapping[str, str] = MappingProxyType({"nan": '"nan"', "inf": '"inf"', "-inf": '"-inf"'})
_NONFINITE_BARE: Mapping[str, str] = MappingProxyType({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"})
_NONFINITE = frozenset(_NONFINITE_BARE)


#: A plan's slots of one kind: (the value's place in key order, its slot in ``parts``).
_Slots = tuple[tuple[int, int], ...]


@dataclasses.dataclass(slots=True)
class _Plan:
    """How to write one layout of a map: keys in order, and the type of each value.

    ``parts`` holds the constant text (``{``, each ``"key": ``, ``{"f": `` and ``}`` around
    a wrapped float, the separators, ``}``) with a slot between each two; ``order``
    puts the values in sorted-key order (None: they are); the slots of values whose
    ``repr`` is not their text are listed by kind.
    """

    keys: tuple[object, ...]
    order: Callable[[tuple[object, ...]], tuple[object, ...]] | None
    parts: list[str]
    floats: _Slots
    ints: _Slots
    bools: _Slots
    others: _Slots


class SortedText:
    """``json.dumps(x, sort_keys=True)`` of a snapshot's record, written from the snapshot.

    The text a tick's ingress CRC is folded from (:attr:`TickCursor.crc32
    <controller.record.taps.TickCursor>`): exactly ``json.dumps(snapshot_fields(s),
    sort_keys=True)``, the bytes a replay feeds (:meth:`ReplayPoller.snapshot`), but
    without json's encoder walking a dict per value. A map's layout (its keys in order
    with their types, and the type of each value) is planned once: the keys sorted, each
    key's text written, the constant text between the values kept. A snapshot then costs
    one ``repr`` per number (exact ``float`` and ``int``: their ``repr`` is json's text)
    in C (``map``), ``true``/``false`` per bool, an exact ``str`` by
    ``json.encoder.encode_basestring_ascii`` (what json's encoder writes for it),
    ``None`` as a constant, and json's own encoder only for what is rare (other types,
    maps whose keys are not all ``str``).

    The plans are keyed on the keys, their types and the values' types (never on a
    value), so nothing a plan says can go stale; at most ``max_plans_n`` are kept (then
    the memo starts again). One instance per poller (the control thread only).

    Parameters
    ----------
    max_plans_n : int
        Plans kept (a device has one or two layouts: its values and its counters).
    max_reprs_n : int
        Float texts memoised by value (exact, finite, non-zero floats); the memo starts
        again when it holds this many.

    Notes
    -----
    Why json's encoder is slow here: a value is written ``{"f": x}``, so json's C encoder
    sorts and walks one dict per value (its items list, their sort, its accumulators):
    about 420 k instructions for a BMS snapshot of 2400 characters (CPython 3.11), of
    which the float ``repr`` is about 13 %.
    """

    def __init__(self, max_plans_n: int = 64, max_reprs_n: int = 4096) -> None:
        self.max_plans_n = max_plans_n
        self.max_reprs_n = max_reprs_n
        self._plans: dict[tuple[bool, tuple[object, ...]], _Plan] = {}
        #: ``repr`` of exact, finite, non-zero floats by value: equal such floats have the
        #: same bits, so the same text (0.0 and -0.0 compare equal but differ, NaN never
        #: equals itself: neither is kept). Looked up with exact floats only (a plan's
        #: float slots), never with an int (1 == 1.0).
        self._reprs: dict[object, str] = {}

    def snapshot_text(self, s: DeviceSnapshot, values: dict[str, object], counters: Record) -> str:
        """Return ``json.dumps({"values": values, **counters}, sort_keys=True)``.

        Parameters
        ----------
        s : DeviceSnapshot
            The snapshot.
        values : dict
            ``values_fields(s)`` (written by json's encoder when ``s.values`` cannot be planned).
        counters : dict
            ``counter_fields(s)``.

        Returns
        -------
        str
            The text; ``values`` sorts after every key of ``counters``, so it is the last item.
        """
        head = self._text(counters, False)
        if head is None:
            head = _SORTED_JSON(counters)
        body = self._text(s.values, True)
        if body is None:
            body = _SORTED_JSON(values)
        return f'{head[:-1]}, "values": {body}}}'

    def _text(self, m: Mapping[str, object], wrap: bool) -> str | None:
        """Return the text of ``m`` (``wrap``: of ``{k: encode_value(v)}``), or None when it cannot be planned."""
        tm = type(m)
        if tm is not dict and tm is not MappingProxyType:
            return None
        keys = tuple(m)
        if not keys:
            return "{}"
        vals = tuple(m.values())
        plan = self._plans.get((wrap, keys))
        if plan is not None and (all(map(_is, keys, plan.keys)) or all(type(k) is str for k in keys)):
            text = self._fill(plan, vals, wrap)  # None: a value's type is not the planned one
            if text is not None:
                return text
        plan = _plan(keys, vals, wrap)
        if plan is None:
            return None
        if len(self._plans) >= self.max_plans_n:
            self._plans.clear()
        self._plans[wrap, keys] = plan
        return self._fill(plan, vals, wrap)

    def _fill(self, plan: _Plan, vals: tuple[object, ...], wrap: bool) -> str | None:
        """Return the text of ``vals`` (the map's order) by ``plan``; None if a value's type is not the planned one."""
        src = vals if plan.order is None else plan.order(vals)
        parts = plan.parts.copy()
        reprs = self._reprs
        for i, k in plan.floats:  # i: the value's place in key order, k: its slot in parts
            v = src[i]
            if type(v) is not float:
                return None
            p = reprs.get(v)  # never a zero or a non-finite value (see __init__)
            if p is None:
                p = repr(v)
                if p in _NONFINITE:
                    p = (_NONFINITE_WRAPPED if wrap else _NONFINITE_BARE)[p]
                elif v:
                    if len(reprs) >= self.max_reprs_n:
                        reprs.clear()
                    reprs[v] = p
            parts[k] = p
        for i, k in plan.ints:
            v = src[i]
            if type(v) is not int:
                return None
            parts[k] = repr(v)
        for i, k in plan.bools:
            v = src[i]
            if type(v) is not bool:
                return None
            parts[k] = "true" if v else "false"
        for i, k in plan.others:
            v = src[i]
            t = type(v)
            if t is float or t is int or t is bool:
                return None
            parts[k] = self._other(v, wrap)
        return "".join(parts)

    def _other(self, v: object, wrap: bool) -> str:
        """Return the text of one value that is not an exact float, int or bool (``wrap``: of ``encode_value(v)``)."""
        if type(v) is str:
            return _encode_str(v)
        t = type(v)
        if v is None:
            return '{"repr": "None"}' if wrap else "null"
        if t is dict and not v and not wrap:
            return "{}"  # an empty failures_by_kind
        if wrap and (t is dict or t is MappingProxyType):
            inner = self._text(v, True)  # type: ignore[arg-type]  # keys checked by the plan (str only)
            if inner is not None:
                return f'{{"map": {inner}}}'
        return _SORTED_JSON(encode_value(v) if wrap else v)


def _plan(keys: tuple[object, ...], vals: tuple[object, ...], wrap: bool) -> _Plan | None:
    """Plan a map's layout (see :class:`_Plan`); None when a key is not an exact ``str``."""
    names = [k for k in keys if type(k) is str]
    if len(names) != len(keys):
        return None
    order = sorted(range(len(names)), key=names.__getitem__)
    slots: dict[type, list[tuple[int, int]]] = {float: [], int: [], bool: [], object: []}
    parts: list[str] = []  # constant, slot, constant, ..., slot, constant
    const = "{"
    for j, i in enumerate(order):
        t = type(vals[i])
        boxed = wrap and t is float
        if j:
            const += ", "
        parts.append(const + _encode_str(names[i]) + (': {"f": ' if boxed else ": "))
        slots[t if t in slots else object].append((j, len(parts)))
        parts.append("")  # the value's slot
        const = "}" if boxed else ""
    parts.append(const + "}")
    get = None if order == list(range(len(order))) else operator.itemgetter(*order)
    return _Plan(keys, get, parts, tuple(slots[float]), tuple(slots[int]), tuple(slots[bool]), tuple(slots[object]))


# --------------------------------------------------------------------------- Modbus


class _TapDone:
    """``ticket.done`` seen through a tap: the first ``is_set()`` that says True is recorded."""

    def __init__(self, tap: TapPoller, ticket: WriteTicket, seq: int) -> None:
        self._tap = tap
        self._ticket = ticket
        self._seq = seq
        self._seen = False

    def _observe(self) -> bool:
        if self._seen:
            return True
        if not self._tap.cursor.recording:
            return self._ticket.done.is_set()
        if not self._ticket.done.is_set():
            return False
        self._seen = True
        t = self._ticket
        c = self._tap.cursor
        self._tap.sink.put(f"/in/modbus/{t.device}/ticket", {
            "tick": c.tick, "call": c.call(f"ticket/{t.device}"), "seq": self._seq, "ok": bool(t.ok),
            "reason": t.reason, "readback": encode_value(t.readback), "failure": _failure(t.failure)})
        return True

    def is_set(self) -> bool:
        """Whether the write finished (recorded the first time it says so)."""
        if self._seen:  # _observe's first test inlined: a component asks every tick until it acts
            return True
        return self._observe()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the write like ``threading.Event.wait``; the outcome is recorded."""
        self._ticket.done.wait(timeout)
        return self._observe()


class TapTicket:
    """A :class:`~hal.modbus.poller.WriteTicket` seen through a :class:`TapPoller`."""

    def __init__(self, tap: TapPoller, ticket: WriteTicket, seq: int) -> None:
        self._ticket = ticket
        self.device = ticket.device
        self.quantity = ticket.quantity
        self.value = ticket.value
        self.done = _TapDone(tap, ticket, seq)

    @property
    def ok(self) -> bool:
        """True when the write was confirmed by its read-back."""
        return self._ticket.ok

    @property
    def reason(self) -> str:
        """Why not (one line), "" when ok."""
        return self._ticket.reason

    @property
    def readback(self) -> object:
        """Value read back."""
        return self._ticket.readback

    @property
    def failure(self) -> ModbusFailure | None:
        """The failed transaction, if any."""
        return self._ticket.failure


class TapPoller:
    """A :class:`~hal.modbus.poller.ModbusPoller` whose snapshots and write results are recorded.

    A snapshot is recorded when the tick reads one that differs from the last it read for
    that device (the poller makes a new object per poll); a write request is an output,
    its result is recorded when the tick first sees it done.

    Parameters
    ----------
    inner : ModbusPoller
    cursor : TickCursor
    sink : IngressSink
    """

    def __init__(self, inner: ModbusPoller, cursor: TickCursor, sink: IngressSink, clock: Clock | None = None) -> None:
        self.inner = inner
        self.cursor = cursor
        self.sink = sink
        self._clock = clock if clock is not None else inner.clock
        self._calls = cursor.live_calls  # the same dict for the cursor's life
        #: per device: its call-counter key and the snapshot the tick read last
        self._seen: dict[str, tuple[str, DeviceSnapshot | None]] = {}
        self._seq = 0
        self._text = SortedText()

    @property
    def clock(self) -> Clock:
        """The run clock as the tick reads it (tapped in real time), not the worker's."""
        return self._clock

    @property
    def devices(self) -> list[str]:
        """Device names on this poller."""
        return self.inner.devices

    def snapshot(self, device: str) -> DeviceSnapshot:
        """Return the inner poller's snapshot; a new one is recorded."""
        s = self.inner.snapshot(device)
        if not self.cursor.recording:
            return s
        seen = self._seen.get(device)
        if seen is None:
            seen = self._seen[device] = (f"snap/{device}", None)
        key, last = seen
        calls = self._calls  # c.call(key) inlined: read several times a tick
        n = calls.get(key, 0)
        calls[key] = n + 1
        if last is not s:
            self._seen[device] = (key, s)
            c = self.cursor
            values = values_fields(s)
            counters = counter_fields(s)
            text = self._text.snapshot_text(s, values, counters)  # json.dumps(snapshot_fields(s), sort_keys=True)
            c.crc32 = _crc32(text.encode(), c.crc32)  # c.feed inlined
            self.sink.put(f"/in/modbus/{device}", {"tick": c.tick, "call": n, "values": values, **counters})
        return s

    def submit_write(self, device: str, quantity: str, value: object) -> TapTicket:
        """Queue a write on the inner poller; the request is recorded as an output."""
        t = self.inner.submit_write(device, quantity, value)
        seq = self._seq
        self._seq += 1
        c = self.cursor
        self.sink.put(f"/out/modbus/{device}", {"tick": c.tick, "call": c.call(f"write/{device}"), "seq": seq,
                                                 "quantity": quantity, "value": encode_value(value)})
        return TapTicket(self, t, seq)

    # step, align_to_grid, start, stop: no input of a tick (what they do reaches the tick
    # only through the snapshots and tickets above)
    def step(self, now_s: float | None = None) -> None:
        """Lockstep: run the inner poller's due polls."""
        self.inner.step(now_s)

    def align_to_grid(self, origin_s: float, period_s: float) -> None:
        """Real time: align the inner poller's worker to the control grid."""
        self.inner.align_to_grid(origin_s, period_s)

    def start(self) -> TapPoller:
        """Start the inner poller's worker."""
        self.inner.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the inner poller's worker."""
        return self.inner.stop(timeout_s)

    @property
    def worker_alive(self) -> bool:
        """Whether the inner poller's worker runs."""
        return self.inner.worker_alive


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
        self._cache: dict[str, tuple[Record, DeviceSnapshot]] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # per device: call-counter key, topic
        self._calls = cursor.live_calls  # the same dict for the cursor's life (as the taps)
        self._seek_tick = -1

    def snapshot(self, device: str) -> DeviceSnapshot:
        """Return the snapshot the recorded run read last at or before this call."""
        c = self.cursor
        keys = self._keys.get(device)
        if keys is None:
            keys = self._keys[device] = (f"snap/{device}", f"/in/modbus/{device}")
        calls = self._calls  # c.call(keys[0]) inlined: read every tick
        n = calls.get(keys[0], 0)
        calls[keys[0]] = n + 1
        rec = self.inputs.last_at_or_before(keys[1], c.tick, n)
        if rec is None:
            return self._empty[device]
        cache = self._cache.get(device)
        if cache is None or cache[0] is not rec:  # one record object per recorded (tick, call)
            cache = (rec, snapshot_from(device, rec))
            self._cache[device] = cache
            fields = {k: v for k, v in rec.items() if k not in ("tick", "call")}
            c.feed(_SORTED_JSON(fields).encode())
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
                self._cache[d] = (rec, snapshot_from(d, rec))

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


