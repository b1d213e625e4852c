"""The monitor's checks: every frame of one bus against its DBCs and protocols (no I/O).

:class:`BusChecker` takes each received frame with its time and keeps, per arbitration
ID, a :class:`MessageStats` (count, rate, gaps against the cycle time) and counts every
violation in a :class:`ViolationTally` with its first and last time, as Vector's
background checks do (CANoe Test Service Library: cycle time, DLC, counter, CRC,
unknown message). It never sends, never sleeps and never reads a clock: the caller gives
the times (a frame's timestamp, or a recorded one on replay).

Checks, per frame, in this order; unlike the controller's ingress
(:class:`hal.can.ingress.IngressChecker`, which stops at the first failed check and holds
a stream invalid after repeated counter errors, as a consumer must), each check here is
counted on its own, so one bad frame may show a checksum *and* a counter violation:

=================  =====================================================================
kind               rule
=================  =====================================================================
``error_frame``    an error frame (any ID)
``unknown_id``     an ID (or ID format) no DBC of the bus defines at the rig's offsets
``remote_frame``   a remote frame on a known ID
``dlc``            DLC differs from the DBC message length (the frame is not decoded)
``checksum``       the E2E checksum signal differs from the protocol's function
                   (valve board: CRC-8 SAE J1850 over data ID + bytes 0..6)
``counter``        the alive counter did not advance by exactly 1 (repeat or skip); the
                   first frame, and the first after a silence of ``stale_after_periods``
                   cycles, resynchronise without a violation
``range``          a physical value outside the DBC ``[min|max]``
``enum``           a raw value of a signal with a VAL_ table that the table lacks
``cycle_late``     the gap since the previous frame of the ID is above
                   ``(1 + tolerance) x`` the cycle time
``cycle_early``    the gap is below ``(1 - tolerance) x`` the cycle time
``timeout``        no frame for ``stale_after_periods`` cycle times (checked by
                   :meth:`BusChecker.check_timeouts`; once per silence)
``decode``         the frame has the right length but the DBC cannot decode it
=================  =====================================================================

The cycle time of a message is the DBC ``GenMsgCycleTime`` (or the protocol's period when
the rig's device gives one). List messages, sent many times per cycle (ARS408
``ObjGeneral``/``ObjQuality``/``ObjExtended``), have no per-frame cycle time: their
cycle is the ``ObjStatus`` that opens each list, checked like any other message, and the
list's consistency is judged by :class:`controller.monitor.vehicle.VehicleView`
(``radar_cycle``). A DBC message never seen on the bus is listed, not a violation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import can

from controller.monitor.spec import MessageSpec, signal_bounds, signal_choices
from hal.can.codec import Decoded

__all__ = [
    "VIOLATION_KINDS", "MessageSpec", "MessageStats", "Violation", "ViolationTally", "BusChecker",
    "signal_bounds", "signal_choices",
]

#: Every violation kind, in display order.
VIOLATION_KINDS = ("error_frame", "unknown_id", "remote_frame", "dlc", "checksum", "counter", "range",
                   "enum", "decode", "cycle_late", "cycle_early", "timeout", "radar_cycle")



@dataclass
class Violation:
    """One kind of violation on one subject, counted with its first and last time.

    Attributes
    ----------
    kind : str
        One of :data:`VIOLATION_KINDS`.
    subject : str
        What it happened on: a message label (``0x181 VB_Status``), ``Msg.Signal`` for
        range/enum, an ID for unknown IDs.
    count : int
        Occurrences.
    first_s, last_s : float
        Times of the first and last occurrence, s since the monitor's first frame.
    detail : str
        What the last occurrence looked like (``counter 3 -> 5``).
    """

    kind: str
    subject: str
    count: int
    first_s: float
    last_s: float
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (times rounded to the microsecond)."""
        return {"kind": self.kind, "subject": self.subject, "count": self.count,
                "first_s": round(self.first_s, 6), "last_s": round(self.last_s, 6), "detail": self.detail}


class ViolationTally:
    """Violations by ``(kind, subject)``, each with its count and first/last time."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Violation] = {}

    def add(self, kind: str, subject: str, t_s: float, detail: str = "") -> None:
        """Count one occurrence of ``kind`` on ``subject`` at ``t_s`` (s since the start)."""
        v = self._items.get((kind, subject))
        if v is None:
            self._items[(kind, subject)] = Violation(kind, subject, 1, t_s, t_s, detail)
            return
        v.count += 1
        v.last_s = t_s
        v.detail = detail

    @property
    def total(self) -> int:
        """Occurrences of every kind."""
        return sum(v.count for v in self._items.values())

    def by_kind(self) -> dict[str, int]:
        """Occurrences per kind (kinds with none are left out)."""
        out: dict[str, int] = {}
        for v in self._items.values():
            out[v.kind] = out.get(v.kind, 0) + v.count
        return out

    def items(self) -> list[Violation]:
        """Every tally, ordered by kind (:data:`VIOLATION_KINDS`) then subject."""
        order = {k: i for i, k in enumerate(VIOLATION_KINDS)}
        return sorted(self._items.values(), key=lambda v: (order.get(v.kind, 99), v.subject))

    def get(self, kind: str, subject: str) -> Violation | None:
        """Return the tally of ``kind`` on ``subject``, or None."""
        return self._items.get((kind, subject))


@dataclass
class MessageStats:
    """Traffic of one arbitration ID.

    Attributes
    ----------
    label : str
        ``0x181 VB_Status`` or ``0x123 (unknown)``.
    period_s : float or None
        Expected cycle time, s.
    count : int
        Frames received.
    first_s, last_s : float or None
        Times of the first and last frame, s since the monitor's first frame.
    gap_n : int
        Gaps measured (``count - 1``).
    gap_sum_s, gap_min_s, gap_max_s : float
        Sum, smallest and largest gap between consecutive frames, s.
    """

    label: str
    period_s: float | None = None
    count: int = 0
    first_s: float | None = None
    last_s: float | None = None
    gap_n: int = 0
    gap_sum_s: float = 0.0
    gap_min_s: float = math.inf
    gap_max_s: float = 0.0
    #: private: counter state and the timeout latch
    last_counter: int | None = field(default=None, repr=False)
    timed_out: bool = field(default=False, repr=False)
    last_gap_s: float = field(default=0.0, repr=False)

    @property
    def gap_mean_s(self) -> float | None:
        """Mean gap between frames, s (None before the second frame)."""
        return self.gap_sum_s / self.gap_n if self.gap_n else None

    @property
    def rate_hz(self) -> float | None:
        """Frames per second over the observed span (None before the second frame)."""
        mean = self.gap_mean_s
        return None if not mean else 1.0 / mean

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (periods in ms)."""
        def ms(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x * 1e3, 3)
        return {"message": self.label, "count": self.count,
                "cycle_ms": ms(self.period_s), "period_mean_ms": ms(self.gap_mean_s),
                "period_min_ms": ms(self.gap_min_s if self.gap_n else None),
                "period_max_ms": ms(self.gap_max_s if self.gap_n else None),
                "rate_hz": None if self.rate_hz is None else round(self.rate_hz, 3)}


class FrameSink:
    """What a :class:`BusChecker` hands each decoded frame to (the vehicle view)."""

    def on_decoded(self, spec: MessageSpec, decoded: Decoded, t_s: float, tally: ViolationTally) -> None:
        """Take one checked, decoded frame at ``t_s`` (s since the start)."""


class BusChecker:
    """Checks every frame of one bus; keeps the stats and the violation tally.

    Parameters
    ----------
    specs : iterable of MessageSpec
        The known IDs of the bus (:func:`controller.monitor.model.bus_specs`).
    tolerance : float, optional
        A gap is on time within ``(1 +- tolerance) x`` the cycle time (default 0.5).
    stale_after_periods : float, optional
        A silence of this many cycle times is a ``timeout`` and resynchronises the
        counter (default 3, SAFETY.md defaults).
    sinks : iterable of FrameSink, optional
        Given every decoded frame that passed the DLC check.

    Raises
    ------
    ValueError
        Two specs share an ID, or the tolerance is not in (0, 1).
    """

    def __init__(self, specs: Iterable[MessageSpec], *, tolerance: float = 0.5,
                 stale_after_periods: float = 3.0, sinks: Iterable[FrameSink] = ()) -> None:
        if not 0.0 < tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.stale_after_periods = float(stale_after_periods)
        self._specs: dict[tuple[int, bool], MessageSpec] = {}
        for spec in specs:
            key = (spec.arbitration_id, spec.is_extended)
            if key in self._specs:
                raise ValueError(f"two messages on ID 0x{spec.arbitration_id:X}: "
                                 f"{self._specs[key].name} and {spec.name}")
            self._specs[key] = spec
        self._sinks = tuple(sinks)
        self.tally = ViolationTally()
        self.stats: dict[tuple[int, bool], MessageStats] = {}
        self.frames = 0
        self.t0: float | None = None
        self.last_s: float | None = None

    @property
    def specs(self) -> Mapping[tuple[int, bool], MessageSpec]:
        """Known messages by ``(arbitration_id, is_extended)``."""
        return self._specs

    def rel(self, t_s: float) -> float:
        """Seconds since the first frame (the time base of every reported time)."""
        if self.t0 is None:
            self.t0 = t_s
        return t_s - self.t0

    def _stats(self, key: tuple[int, bool], spec: MessageSpec | None) -> MessageStats:
        st = self.stats.get(key)
        if st is None:
            if spec is not None:
                st = MessageStats(spec.label, None if spec.list_message else spec.period_s)
            else:
                wide = 8 if key[1] else 3
                st = MessageStats(f"0x{key[0]:0{wide}X} (unknown)")
            self.stats[key] = st
        return st

    def feed(self, msg: can.Message, t_s: float) -> Decoded | None:
        """Check one frame received at ``t_s`` (s, any fixed origin). Never raises on content.

        Returns
        -------
        Decoded or None
            The decoded frame (also when a value check failed), None when it could not be
            decoded (error frame, unknown ID, remote frame, wrong DLC).
        """
        t = self.rel(t_s)
        self.frames += 1
        self.last_s = t
        if msg.is_error_frame:
            self.tally.add("error_frame", "bus", t)
            return None
        key = (msg.arbitration_id, bool(msg.is_extended_id))
        spec = self._specs.get(key)
        st = self._stats(key, spec)
        self._timing(st, spec, t)
        if spec is None:
            self.tally.add("unknown_id", st.label.split(" ")[0], t, f"DLC {msg.dlc}")
            return None
        if msg.is_remote_frame:
            self.tally.add("remote_frame", spec.label, t)
            return None
        data = bytes(msg.data)
        if msg.dlc != spec.length or len(data) != spec.length:
            self.tally.add("dlc", spec.label, t, f"DLC {msg.dlc}, DBC {spec.length}")
            return None
        try:
            decoded = spec.codec.decode(msg)
        except Exception:  # noqa: BLE001 - nothing a frame holds may stop the monitor
            decoded = None
        if decoded is None:
            self.tally.add("decode", spec.label, t)
            return None
        raw = decoded.raw
        if spec.checksum_signal is not None and spec.checksum_fn is not None:
            want = spec.checksum_fn(msg.arbitration_id, data)
            got = raw.get(spec.checksum_signal)
            if got != want:
                self.tally.add("checksum", spec.label, t, f"0x{int(got or 0):02X}, expected 0x{want:02X}")
        if spec.counter_signal is not None:
            self._counter(st, spec, int(raw[spec.counter_signal]), t)
        self._values(spec, decoded, t)
        for sink in self._sinks:
            sink.on_decoded(spec, decoded, t, self.tally)
        return decoded

    def _timing(self, st: MessageStats, spec: MessageSpec | None, t: float) -> None:
        last = st.last_s
        st.count += 1
        if st.first_s is None:
            st.first_s = t
        st.last_s = t
        if last is None:
            return
        gap = t - last
        st.last_gap_s = gap
        st.gap_n += 1
        st.gap_sum_s += gap
        st.gap_min_s = min(st.gap_min_s, gap)
        st.gap_max_s = max(st.gap_max_s, gap)
        period = st.period_s
        if spec is None or not period:
            return
        if gap > period * (1.0 + self.tolerance):
            self.tally.add("cycle_late", spec.label, t, f"gap {gap * 1e3:.1f} ms, cycle {period * 1e3:g} ms")
        elif gap < period * (1.0 - self.tolerance):
            self.tally.add("cycle_early", spec.label, t, f"gap {gap * 1e3:.1f} ms, cycle {period * 1e3:g} ms")
        st.timed_out = False

    def _counter(self, st: MessageStats, spec: MessageSpec, counter: int, t: float) -> None:
        last = st.last_counter
        st.last_counter = counter
        if last is None:
            return
        delta = (counter - last) % spec.counter_modulo
        if delta == 1:
            return
        # after a silence the sender may have restarted: resynchronise (AUTOSAR E2E P1)
        period = spec.period_s
        if period and st.last_gap_s > period * self.stale_after_periods:
            return
        what = "repeat" if delta == 0 else f"skip {delta - 1}"
        self.tally.add("counter", spec.label, t, f"{what} ({last} -> {counter})")

    def _values(self, spec: MessageSpec, decoded: Decoded, t: float) -> None:
        phys = decoded.signals
        for name, lo, hi in spec.bounds:
            v = phys.get(name)
            if v is None:
                continue
            if (lo is not None and v < lo) or (hi is not None and v > hi) or v != v:
                self.tally.add("range", f"{spec.name}.{name}", t, f"{v:g}")
        raw = decoded.raw
        for name, allowed in spec.choices:
            r = raw.get(name)
            if r is not None and r not in allowed:
                self.tally.add("enum", f"{spec.name}.{name}", t, f"raw {r}")

    def check_timeouts(self, now_s: float) -> None:
        """Count a ``timeout`` for each message silent for ``stale_after_periods`` cycles.

        Parameters
        ----------
        now_s : float
            The time now, on the clock of :meth:`feed`'s ``t_s``.
        """
        if self.t0 is None:
            return
        now = now_s - self.t0
        for key, st in self.stats.items():
            spec = self._specs.get(key)
            if spec is None or not st.period_s or st.last_s is None or st.timed_out:
                continue
            silence = now - st.last_s
            if silence > st.period_s * self.stale_after_periods:
                st.timed_out = True
                self.tally.add("timeout", spec.label, now, f"silent {silence * 1e3:.0f} ms")
