"""Host driver of the propellant tank-pressure sensor (CAN, ``dbc/tank.dbc``).

Consumes ``TANK_Status`` through the generic ingress checker (DLC, alive counter, DBC
range, freshness against the DBC ``GenMsgCycleTime``), keeps the latest reading and the
pressure extremes. No I/O of its own: the composition room registers
:meth:`TankPressureDriver.on_frame` with a :class:`~hal.can.port.CanPort` for every ID in
:attr:`TankPressureDriver.arbitration_ids`.

Protocol: ``firmware_bridge/protocols/tank_pressure.py`` (byte layout, physical checks).
"""

from __future__ import annotations

from collections.abc import Mapping

import can

from firmware_bridge.protocols import tank_pressure as tp
from hal.can.codec import DbcCodec
from hal.can.ingress import IngressChecker, IngressSpec
from hal.snapshot import JsonValue, State, apply, capture, part

__all__ = ["TankPressureDriver"]


class TankPressureDriver:
    """Driver of one tank-pressure sensor.

    Parameters
    ----------
    codec : DbcCodec
        Codec of the bus holding ``dbc/tank.dbc``.
    max_pressure_bar : float, optional
        Rated working pressure of the tank (bar); a reading above it is implausible.
    stale_after_periods : float, optional
        ``TANK_Status`` is stale after this many missed DBC cycle times (default 3,
        SAFETY.md B01).

    Raises
    ------
    BusConfigError
        If the DBC lacks ``TANK_Status`` or one of its signals (SAFETY.md K02).
    """

    def __init__(self, codec: DbcCodec, *, max_pressure_bar: float = tp.PRESSURE_RANGE_BAR[1],
                 stale_after_periods: float = 3.0) -> None:
        codec.require(tp.REQUIRED_SIGNALS)
        self.max_pressure_bar = float(max_pressure_bar)
        self._checker = IngressChecker(
            codec, [IngressSpec(tp.STATUS, counter_signal=tp.COUNTER, counter_modulo=tp.COUNTER_MODULO,
                                regular=True)],
            stale_after_periods=stale_after_periods)
        self._status_id = codec.frame_id(tp.STATUS)
        self.reading: tp.TankReading | None = None
        self.min_pressure_seen_bar: float | None = None
        self.max_pressure_seen_bar: float | None = None

    # ------------------------------------------------------------------ snapshot
    #: A snapshot's fields (issue 12 part 4): what the driver learnt from its bus; the rest is configuration.
    SNAPSHOT_FIELDS = ("reading", "min_pressure_seen_bar", "max_pressure_seen_bar")

    def snapshot(self) -> State:
        """Return the driver's state (:mod:`hal.snapshot`): latest values, counters, partial input."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "checker": self._checker.snapshot()}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a driver built from the same configuration."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._checker.restore(part(state, "checker"))

    # ------------------------------------------------------------------ identity
    @property
    def arbitration_ids(self) -> tuple[int, ...]:
        """IDs this driver consumes (``TANK_Status``)."""
        return (self._status_id,)

    @property
    def period_s(self) -> float | None:
        """Expected period of ``TANK_Status`` (s), the DBC ``GenMsgCycleTime`` (None: absent)."""
        return self._checker.stream(tp.STATUS).period_s

    @property
    def stale_after_s(self) -> float | None:
        """Age (s) at which ``TANK_Status`` is stale (None without a cycle time)."""
        return self._checker.stream(tp.STATUS).stale_after_s

    @property
    def checker(self) -> IngressChecker:
        """The ingress checker (streams, rejects)."""
        return self._checker

    # ------------------------------------------------------------------ receive
    def on_frame(self, msg: can.Message, now_s: float) -> bool:
        """Check, decode and keep one received frame. Per-frame (called from the poll).

        Parameters
        ----------
        msg : can.Message
            A frame with the ``TANK_Status`` ID.
        now_s : float
            Receipt time on the loop's monotonic clock, s.

        Returns
        -------
        bool
            True when the frame was accepted.
        """
        decoded = self._checker.check(msg, now_s)
        if decoded is None:
            return False
        r = tp.reading_from_signals(decoded.signals)
        self.reading = r
        if not r.sensor_fault:
            p = r.pressure_bar
            self.min_pressure_seen_bar = p if self.min_pressure_seen_bar is None else min(self.min_pressure_seen_bar, p)
            self.max_pressure_seen_bar = p if self.max_pressure_seen_bar is None else max(self.max_pressure_seen_bar, p)
        return True

    # ------------------------------------------------------------------ judgement
    def fresh(self, now_s: float) -> bool:
        """Whether ``TANK_Status`` is fresh (accepted within N periods, counter valid, steady)."""
        return self._checker.is_fresh(tp.STATUS, now_s)

    def age_s(self, now_s: float) -> float | None:
        """Seconds since the last accepted ``TANK_Status`` (None: never)."""
        return self._checker.age_s(tp.STATUS, now_s)

    def stale_reason(self, now_s: float) -> str | None:
        """Why the stream is not fresh (one line), or None when it is."""
        if self.fresh(now_s):
            return None
        st = self._checker.stream(tp.STATUS)
        age = self.age_s(now_s)
        if age is None:
            return "no status received"
        if st.counter_invalid:
            return "invalid (wrong counters)"
        if st.stale_after_s is not None and age > st.stale_after_s:
            return f"stale ({age * 1000:.0f} ms old)"
        if self._checker.timing_warning(tp.STATUS) and not st.recovering:
            return "irregular (half rate or bursts)"
        return "not steady yet (needs regular periods)"

    def pressure_bar(self, now_s: float) -> float | None:
        """Return the latest pressure (bar) when fresh and plausible, else None."""
        r = self.reading
        if r is None or not self.fresh(now_s) or tp.implausible_reason(r, self.max_pressure_bar) is not None:
            return None
        return r.pressure_bar

    def post_report(self, now_s: float) -> tuple[bool, str]:
        """Power-on self test: a fresh, steady, plausible ``TANK_Status`` (SAFETY.md D05).

        Returns
        -------
        (bool, str)
            ``(True, "tank pressure sensor: ok, 200.0 bar, 20.0 degC")`` or
            ``(False, reason)``.
        """
        who = "tank pressure sensor"
        why = self.stale_reason(now_s)
        if why is not None:
            return False, f"{who}: {why}"
        r = self.reading
        assert r is not None  # fresh implies a reading
        bad = tp.implausible_reason(r, self.max_pressure_bar)
        if bad is not None:
            return False, f"{who}: {bad}"
        return True, f"{who}: ok, {r.pressure_bar:.1f} bar, {r.temperature_c:.1f} degC"

    def stats(self) -> dict[str, object]:
        """Counters for the summary: frames accepted, rejects by reason, pressure extremes."""
        st = self._checker.stream(tp.STATUS)
        rejects = {k: v for k, v in self._checker.rejects.items() if v}
        return {
            "frames_accepted": st.accepted,
            "rejects": dict(sorted(rejects.items())),
            "min_pressure_bar": None if self.min_pressure_seen_bar is None else round(self.min_pressure_seen_bar, 2),
            "max_pressure_bar": None if self.max_pressure_seen_bar is None else round(self.max_pressure_seen_bar, 2),
        }
