"""Driver of the Continental ARS408-21 long-range radar on CAN.

The host side of ``firmware_bridge/protocols/ars408.py``: it takes received frames,
decodes them through the bus's :class:`~hal.can.codec.DbcCodec` (``dbc/ars408.dbc``),
checks them, assembles object-list cycles, turns objects into body-frame detections and
judges the radar's health; it builds the ego-motion frames the radar wants every cycle.

Ingress path, per frame (:meth:`Ars408Driver.on_frame`)::

    frame -> ID of this sensor? -> not error/remote -> DLC == DBC -> decode (codec)
          -> range / enum checks (DBC min/max) -> ObjStatus/General/Quality/Extended
          -> CycleAssembler -> ObjectCycle -> detections (body frame)
                                -> RadarState -> RadarHealth

Health, per tick (:meth:`Ars408Driver.poll`):

* stale after ``stale_after_periods`` (3) object-list periods without a complete cycle,
  counted from the start before the first cycle (SAFETY.md B01); once stale, fresh again
  only after ``recover_cycles`` consecutive complete cycles (B02: one late cycle never
  makes the radar fresh);
* radar-reported errors (persistent, temporary, temperature, voltage, interference), a
  reported sensor ID other than the configured one, output type not "objects", and no
  RadarState for 3 of its periods are faults (D02);
* out-of-range and unknown-enum values reject the frame and are counted (D03); a reject
  in ``reject_streak_limit`` consecutive cycles is a fault (and the dropped cycles make
  the radar stale anyway);
* the measurement counter (``ObjStatus.meas_counter``) must change every cycle: a cycle
  repeating the previous counter is old data, counted as ``counter_repeat`` and dropped
  (it never makes the radar fresh, so a frozen radar goes stale after
  ``stale_after_periods``), and ``frozen_cycles_limit`` (5) such cycles in a row are the
  fault ``counter_frozen`` (SAFETY.md D01);
* every object of a complete cycle passes the plausibility gate before tracking
  (:func:`~firmware_bridge.protocols.ars408.gate_cycle`: datasheet range and field of
  view, relative speed, the step since the previous cycle, RCS, probability of existence
  and measurement state); a dropped object is counted in ``implausible`` under its
  ``implausible_*`` reason (counts of objects, apart from the frame ``rejects``).

The sensor ID selects the arbitration IDs: sensor ``n`` answers on base ID ``+ 0x10 * n``
(ARS408-21 technical documentation). A DBC with the base IDs (``dbc/ars408.dbc``,
Continental's ``ARS408_id0.dbc``) serves every sensor ID: the driver adds the offset. A
vendor DBC made for sensor ``k`` (``ARS408_id1.dbc``: every ID ``+ 0x10``) already carries
its offset and serves sensor ``k`` only; another configured sensor ID is refused in one
line (:func:`dbc_sensor_id`). Configured with the wrong ID, the driver sees no frames of
its own and reports the radar stale; it never raises on bus input.

Vendor databases are mapped onto the driver's message and signal names by layout when
the codec loads them (:mod:`hal.can.codec`); a DBC that has neither the driver's names
nor the ARS408 layout fails with one line naming the missing message or signal and the
layout looked for (:func:`require_ars408`).

Counters of frames that are not this sensor's data: ``error_frame`` and ``remote_frame``
(any ID, F04), ``own_tx_id`` (SpeedInformation / YawRateInformation, which QIKI sends
itself, heard on a recorded bus or from another node) and ``unknown_id`` (everything else).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import can

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import ars408 as proto
from firmware_bridge.protocols.ars408 import (
    CycleAssembler,
    Detection,
    ObjectCycle,
    RadarHealth,
)
from firmware_bridge.protocols.frames import FrameError, Mount
from hal.can.codec import DbcCodec
from hal.can.ingress import IngressChecker, IngressSpec
from hal.errors import BusConfigError
from hal.snapshot import JsonValue, State, apply, capture, capture_all, part, restore_all

__all__ = [
    "Ars408Config",
    "Ars408Driver",
    "Ars408Status",
    "config_from_mapping",
    "REJECT_UNKNOWN_ID",
    "REJECT_OWN_TX_ID",
    "dbc_sensor_id",
    "require_ars408",
    "REJECT_ERROR_FRAME",
    "REJECT_REMOTE_FRAME",
    "REJECT_DLC",
    "REJECT_OUT_OF_RANGE",
    "REJECT_UNKNOWN_ENUM",
    "REJECT_COUNTER_REPEAT",
]

# Reject reasons of the ingress path (besides the assembler's, see the protocol module).
REJECT_UNKNOWN_ID = "unknown_id"          # not a frame of this sensor (other ID / sensor ID)
REJECT_OWN_TX_ID = "own_tx_id"            # 0x300/0x301 (+ offset): the IDs QIKI sends itself
REJECT_ERROR_FRAME = "error_frame"        # error frame (F04)
REJECT_REMOTE_FRAME = "remote_frame"      # remote frame on one of our IDs (F04)
REJECT_DLC = "dlc"                        # DLC or ID format differs from the DBC (F03)
REJECT_OUT_OF_RANGE = "range"             # physical value outside the DBC range (D03)
REJECT_UNKNOWN_ENUM = "enum"              # enumerated value missing from the VAL_ table (D03)
REJECT_COUNTER_REPEAT = "counter_repeat"  # a complete cycle repeating the measurement counter (D01)

_KIND_STATUS, _KIND_GENERAL, _KIND_QUALITY, _KIND_EXTENDED, _KIND_STATE, _KIND_VERSION, \
    _KIND_OTHER = range(7)

_KINDS = {
    proto.MSG_OBJ_STATUS: _KIND_STATUS,
    proto.MSG_OBJ_GENERAL: _KIND_GENERAL,
    proto.MSG_OBJ_QUALITY: _KIND_QUALITY,
    proto.MSG_OBJ_EXTENDED: _KIND_EXTENDED,
    proto.MSG_RADAR_STATE: _KIND_STATE,
    proto.MSG_VERSION: _KIND_VERSION,
    proto.MSG_OBJ_WARNING: _KIND_OTHER,
}


def _describe_layout(layout: proto.MessageLayout, offset: int) -> str:
    return f"0x{layout.base_id + offset:03X}, {layout.dlc} bytes, vendor name {layout.vendor_name!r}"


def require_ars408(codec: DbcCodec) -> None:
    """Check that a codec holds every ARS408 message and signal the driver needs (K02).

    Parameters
    ----------
    codec : DbcCodec
        Codec of the radar's bus (vendor databases already mapped by layout).

    Raises
    ------
    BusConfigError
        One line naming the DBC files, the missing message (the driver's name, the ID
        looked for and Continental's name) or the missing signal (with its start bit,
        length, scale and offset), e.g. ``x.dbc: no ARS408 RadarState message: neither
        'ARS408_RadarState' nor a message with the ARS408 layout at 0x201, 8 bytes,
        vendor name 'RadarState'``.
    """
    files = ", ".join(codec.dbc_paths)
    try:
        offset = proto.SENSOR_ID_STEP * dbc_sensor_id(codec)
    except BusConfigError:
        offset = 0
    for msg_name, signal_names in proto.REQUIRED_SIGNALS.items():
        layout = proto.WIRE_LAYOUT_BY_NAME[msg_name]
        short = msg_name.split("_", 1)[1]
        try:
            msg = codec.message(msg_name)
        except BusConfigError:
            raise BusConfigError(
                f"{files}: no ARS408 {short} message: neither {msg_name!r} nor a message with "
                f"the ARS408 layout at {_describe_layout(layout, offset)}") from None
        have = {sig.name for sig in msg.signals}
        for sig_name in signal_names:
            if sig_name in have:
                continue
            sl = next(x for x in layout.signals if x.name == sig_name)
            raise BusConfigError(
                f"{files}: ARS408 {short} (0x{msg.frame_id:03X}) lacks signal {sig_name!r}: no "
                f"signal of that name nor of its layout (start bit {sl.start_bit}, "
                f"{sl.length_bits} bits, Motorola, unsigned, scale {sl.scale:g}, offset "
                f"{sl.offset:g}; vendor name {sl.vendor_name!r})")


def dbc_sensor_id(codec: DbcCodec) -> int:
    """Return the sensor ID whose arbitration IDs the codec's ARS408 messages carry.

    Parameters
    ----------
    codec : DbcCodec
        A codec with ARS408 messages under the driver's names.

    Returns
    -------
    int
        0 for a base-ID database (``dbc/ars408.dbc``, ``ARS408_id0.dbc``), ``k`` for a
        vendor database made for sensor ``k`` (IDs ``+ 0x10 * k``).

    Raises
    ------
    BusConfigError
        When the IDs are no ARS408 IDs or imply different sensor IDs (one line).
    """
    ids = {}
    for layout in proto.WIRE_LAYOUT:
        try:
            ids[layout.name] = codec.message(layout.name).frame_id
        except BusConfigError:
            continue
    try:
        return proto.dbc_sensor_id(ids)
    except ProtocolError as exc:
        raise BusConfigError(f"{', '.join(codec.dbc_paths)}: {exc}") from exc


@dataclass(frozen=True)
class Ars408Config:
    """Configuration of one ARS408 on a CAN bus (from the rig's ``devices`` entry).

    Attributes
    ----------
    sensor_id : int
        Sensor ID 0..7 configured in the radar; selects the arbitration IDs (+0x10 * ID).
    mount : Mount
        Radar pose in the vehicle body frame (m, m, rad CCW from body x to the boresight).
    expect_quality, expect_extended : bool
        The radar is configured with SendQuality / SendExtInfo: those frames belong to a
        complete cycle.
    stale_after_periods : float
        Object-list periods without a complete cycle before the radar is stale (B01: 3).
    recover_cycles : int
        Consecutive complete cycles needed to become fresh again after being stale.
    state_stale_after_periods : float
        RadarState periods without a RadarState before ``state_stale`` (3).
    reject_streak_limit : int
        Consecutive cycles with a rejected value before ``values_rejected`` (D03).
    min_prob_of_exist : float
        Detections below this probability-of-existence lower bound are dropped (0..1).
    min_rcs_dbsm : float
        Detections with a radar cross section below this are dropped, dBsm.
    max_cycles_queued : int
        Bound of the queue of undelivered cycles (B08: memory stays bounded).
    frozen_cycles_limit : int
        Consecutive cycles repeating the measurement counter before ``counter_frozen`` (D01: 5).
    plausibility : PlausibilityLimits
        Bounds of the plausibility gate (default: the ARS408-21 datasheet envelope).
    name : str
        Device name used as the detection source label.
    """

    sensor_id: int = 0
    mount: Mount = field(default_factory=Mount)
    expect_quality: bool = True
    expect_extended: bool = True
    stale_after_periods: float = 3.0
    recover_cycles: int = 3
    state_stale_after_periods: float = 3.0
    reject_streak_limit: int = 3
    min_prob_of_exist: float = 0.0
    min_rcs_dbsm: float = -math.inf
    max_cycles_queued: int = 16
    frozen_cycles_limit: int = 5
    plausibility: proto.PlausibilityLimits = field(default_factory=proto.PlausibilityLimits)
    name: str = "radar_lr"


@dataclass(frozen=True)
class Ars408Status:
    """Health and counters of the radar at one tick.

    Attributes
    ----------
    now_s : float
        Tick time on the monotonic clock, s.
    fresh : bool
        A complete cycle arrived within the stale window and the radar is not recovering.
    stale : bool
        No complete cycle for ``stale_after_periods`` periods (B01).
    faults : tuple of str
        Reasons to go safe: ``stale``, ``state_stale``, ``values_rejected``,
        ``counter_frozen`` (D01) and the radar-reported ones of :meth:`RadarHealth.faults`.
        Empty when healthy.
    warnings : tuple of str
        Not faults: ``motion_input_missing`` (radar reports no ego speed/yaw rate),
        ``quality_config_mismatch`` (SendQuality/SendExtInfo differ from the config).
    health : RadarHealth or None
        Last RadarState interpretation, None before the first.
    last_cycle_age_s : float or None
        Time since the last complete cycle, s; None before the first.
    frames, decoded : int
        Frames offered to the driver; frames of this sensor that decoded and passed checks.
    cycles_complete, cycles_dropped : int
        Object-list cycles completed / dropped incomplete.
    rejects : dict of str to int
        Rejected frames by reason (driver and assembler reasons) and cycles repeating the
        measurement counter (``counter_repeat``).
    version : tuple of int or None
        Firmware (major, minor, patch) from VersionId.
    implausible : dict of str to int
        Objects dropped by the plausibility gate, by ``implausible_*`` reason (only the
        reasons seen).

    Notes
    -----
    :meth:`Ars408Driver.poll` builds it with ``_new_status`` (the inline copy of this
    class's ``__init__``, cheaper per tick).
    """

    now_s: float
    fresh: bool
    stale: bool
    faults: tuple[str, ...]
    warnings: tuple[str, ...]
    health: RadarHealth | None
    last_cycle_age_s: float | None
    frames: int
    decoded: int
    cycles_complete: int
    cycles_dropped: int
    rejects: dict[str, int]
    version: tuple[int, int, int] | None
    implausible: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """True when detections may be used: fresh and no fault (D02: tracks invalid)."""
        return self.fresh and not self.faults


def _new_status(now_s: float, fresh: bool, stale: bool, faults: tuple[str, ...], warnings: tuple[str, ...],
                health: RadarHealth | None, last_cycle_age_s: float | None, frames: int, decoded: int,
                cycles_complete: int, cycles_dropped: int, rejects: dict[str, int],
                version: tuple[int, int, int] | None, implausible: dict[str, int]) -> Ars408Status:
    """Build an :class:`Ars408Status` without its generated ``__init__`` (per tick).

    The same object the dataclass's ``__init__`` builds (every field given, no
    ``__post_init__``): its instance dict holds the fields in declaration order. A frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``; filling the
    dict in one ``update`` costs about a third (``timeit``: 2.8 against 0.9 us). A new
    field of :class:`Ars408Status` must be added here too
    (``tests/unit/test_radar_speed_equivalence.py`` compares the two).
    """
    st = object.__new__(Ars408Status)
    st.__dict__.update(now_s=now_s, fresh=fresh, stale=stale, faults=faults, warnings=warnings, health=health,
                       last_cycle_age_s=last_cycle_age_s, frames=frames, decoded=decoded,
                       cycles_complete=cycles_complete, cycles_dropped=cycles_dropped, rejects=rejects,
                       version=version, implausible=implausible)
    return st


class Ars408Driver:
    """One ARS408-21 on a CAN bus: ingress, cycle assembly, health, ego-motion frames.

    Parameters
    ----------
    codec : DbcCodec
        The bus codec with ``dbc/ars408.dbc`` loaded, at the bus's own offset (normally 0);
        the driver derives its sensor-ID offset from it with
        :meth:`DbcCodec.with_offset`.
    config : Ars408Config, optional
        Sensor ID, mount pose and thresholds.
    start_s : float, optional
        Clock time at which the driver starts waiting for the radar, s (the stale window
        of the first cycle counts from here).

    Raises
    ------
    BusConfigError
        If the DBC lacks a message or signal the driver needs (SAFETY.md K02), the
        sensor ID is not 0..7, or the DBC was made for another sensor ID.

    Notes
    -----
    No I/O and no threads: the caller delivers frames (``on_frame``, e.g. from
    :class:`hal.can.port.CanPort` handlers or a replayed log) and sends what
    :meth:`ego_motion_frames` returns.
    """

    def __init__(self, codec: DbcCodec, config: Ars408Config | None = None, *,
                 start_s: float = 0.0) -> None:
        self.config = cfg = config or Ars408Config()
        try:
            offset = proto.id_offset(cfg.sensor_id)
        except ProtocolError as exc:
            raise BusConfigError(f"ars408 {cfg.name}: {exc}") from exc
        require_ars408(codec)
        dbc_id = dbc_sensor_id(codec)
        if dbc_id:
            if dbc_id != cfg.sensor_id:
                raise BusConfigError(
                    f"{', '.join(codec.dbc_paths)}: the DBC's ARS408 IDs are sensor ID {dbc_id}'s "
                    f"(ObjStatus at 0x{codec.message(proto.MSG_OBJ_STATUS).frame_id:03X}) but "
                    f"device {cfg.name!r} is configured as sensor ID {cfg.sensor_id}: use that "
                    f"sensor's DBC or one with the base IDs")
            offset = 0  # the DBC's IDs already carry the sensor's offset
        #: Sensor ID the DBC's own IDs belong to (0: base IDs, offset added here).
        self.dbc_sensor_id = dbc_id
        self.codec = codec.with_offset(codec.id_offset + offset)
        specs = []
        self._kinds: dict[str, int] = {}
        for name, kind in _KINDS.items():
            try:
                self.codec.message(name)
            except BusConfigError:
                continue  # optional message (warning, version) absent from this DBC
            specs.append(IngressSpec(name, check_range=True))
            self._kinds[name] = kind
        # DLC, ID format, error/remote frames, DBC range and VAL_ tables (F03, F04, D03).
        self.ingress = IngressChecker(self.codec, specs)
        self._rx_ids = frozenset(self.ingress.arbitration_ids)
        self._own_tx_ids = frozenset(self.tx_ids)
        self.cycle_period_s = self.codec.cycle_time_s(proto.MSG_OBJ_STATUS) or proto.NOMINAL_CYCLE_S
        self.state_period_s = self.codec.cycle_time_s(proto.MSG_RADAR_STATE) or 1.0
        self.ego_period_s = self.codec.cycle_time_s(proto.MSG_SPEED) or self.cycle_period_s
        self.stale_window_s = cfg.stale_after_periods * self.cycle_period_s
        self.state_window_s = cfg.state_stale_after_periods * self.state_period_s
        self.assembler = CycleAssembler(expect_quality=cfg.expect_quality,
                                        expect_extended=cfg.expect_extended)
        self._start_s = float(start_s)
        self.frames = 0
        self.decoded = 0
        self._rejects: dict[str, int] = {}
        self._cycles: deque[ObjectCycle] = deque(maxlen=max(1, cfg.max_cycles_queued))
        self.last_cycle: ObjectCycle | None = None
        self._last_cycle_s: float | None = None
        self._good_run = 0
        self._needed_run = 1
        self._was_stale = False
        self.health: RadarHealth | None = None
        #: :meth:`poll`'s faults and warnings of ``health``, judged once per RadarState
        #: object (frozen; the config is frozen too): ``(health, faults, warnings)``.
        self._health_verdict: tuple[RadarHealth | None, tuple[str, ...], tuple[str, ...]] = (None, (), ())
        self._last_state_s: float | None = None
        self.version: tuple[int, int, int] | None = None
        self._value_reject_in_cycle = False
        self._value_rejects_seen = 0
        self._reject_streak = 0
        self._next_ego_s: float | None = None
        self._last_counter: int | None = None
        self._frozen_run = 0
        self._implausible: dict[str, int] = {}
        self._handlers: tuple[Callable[[Mapping[str, float], float], ObjectCycle | None], ...] = (
            self.assembler.on_status, self.assembler.on_general,
            self.assembler.on_quality, self.assembler.on_extended,
        )

    # ------------------------------------------------------------------ snapshot
    #: A snapshot's fields (issue 12 part 4): cycles, health, freshness and reject streaks;
    #: the cycle being assembled and the ingress checks beside them.
    SNAPSHOT_FIELDS = ("_start_s", "frames", "decoded", "_rejects", "_cycles", "last_cycle", "_last_cycle_s",
                       "_good_run", "_needed_run", "_was_stale", "health", "_last_state_s", "version",
                       "_value_reject_in_cycle", "_value_rejects_seen", "_reject_streak", "_next_ego_s",
                       "_last_counter", "_frozen_run", "_implausible")

    def snapshot(self) -> State:
        """Return the driver's state (:mod:`hal.snapshot`): latest values, counters, partial input."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "ingress": self.ingress.snapshot(),
                "assembler": capture_all(self.assembler)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a driver built from the same configuration."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self.ingress.restore(part(state, "ingress"))
        restore_all(self.assembler, part(state, "assembler"))  # in place: the handlers are its bound methods

    # ------------------------------------------------------------------ ids
    @property
    def rx_ids(self) -> tuple[int, ...]:
        """Arbitration IDs this driver consumes (sensor offset applied)."""
        return tuple(sorted(self._rx_ids))

    @property
    def tx_ids(self) -> tuple[int, ...]:
        """Arbitration IDs this driver sends (SpeedInformation, YawRateInformation)."""
        return (self.codec.frame_id(proto.MSG_SPEED), self.codec.frame_id(proto.MSG_YAW_RATE))

    # ------------------------------------------------------------------ ingress
    def _reject(self, reason: str) -> None:
        self._rejects[reason] = self._rejects.get(reason, 0) + 1

    def on_frame(self, msg: can.Message, now_s: float) -> ObjectCycle | None:
        """Take one received frame. Per-frame; never raises on bus input.

        Parameters
        ----------
        msg : can.Message
            A received frame (any ID). Error and remote frames are counted as
            ``error_frame`` / ``remote_frame``, frames on the IDs QIKI sends to the radar
            (0x300/0x301 + offset) as ``own_tx_id``, other IDs as ``unknown_id``.
        now_s : float
            Receipt time on the monotonic clock, s (SAFETY.md B03: receipt time, not the
            frame's own timestamp).

        Returns
        -------
        ObjectCycle or None
            The cycle this frame completed, if any, its implausible objects named in
            ``implausible_ids`` (also queued for :meth:`take_cycles`); None for a cycle
            repeating the measurement counter.
        """
        self.frames += 1
        if msg.arbitration_id not in self._rx_ids or msg.is_error_frame or msg.is_remote_frame:
            if msg.is_error_frame:
                self._reject(REJECT_ERROR_FRAME)
            elif msg.is_remote_frame:
                self._reject(REJECT_REMOTE_FRAME)
            elif msg.arbitration_id in self._own_tx_ids and not msg.is_extended_id:
                self._reject(REJECT_OWN_TX_ID)
            else:
                self._reject(REJECT_UNKNOWN_ID)
            return None
        dec = self.ingress.check(msg, now_s)
        if dec is None:
            rejects = self.ingress.rejects
            n_value = rejects.get(REJECT_OUT_OF_RANGE, 0) + rejects.get(REJECT_UNKNOWN_ENUM, 0)
            if n_value != self._value_rejects_seen:
                self._value_rejects_seen = n_value
                self._value_reject_in_cycle = True
            return None
        sig = dec.signals
        self.decoded += 1
        kind = self._kinds[dec.name]
        if kind <= _KIND_EXTENDED:
            if kind == _KIND_STATUS:
                self._reject_streak = self._reject_streak + 1 if self._value_reject_in_cycle else 0
                self._value_reject_in_cycle = False
            cycle = self._handlers[kind](sig, now_s)
            if cycle is not None:
                return self._cycle_done(cycle, now_s)
            return None
        if kind == _KIND_STATE:
            self.health = proto.interpret_radar_state(sig)
            self._last_state_s = now_s
        elif kind == _KIND_VERSION:
            self.version = (int(sig["major_release"]), int(sig["minor_release"]),
                            int(sig["patch_level"]))
        return None

    def _cycle_done(self, cycle: ObjectCycle, now_s: float) -> ObjectCycle | None:
        """Judge a complete cycle: counter advanced (D01), then the plausibility gate."""
        if self._last_counter is not None and cycle.meas_counter == self._last_counter:
            self._frozen_run += 1
            self._reject(REJECT_COUNTER_REPEAT)
            return None  # old data: neither fresh nor tracked
        self._last_counter = cycle.meas_counter
        self._frozen_run = 0
        cycle, dropped = proto.gate_cycle(cycle, self.last_cycle, self.config.plausibility)
        for reason in dropped:
            self._implausible[reason] = self._implausible.get(reason, 0) + 1
        last = self._last_cycle_s
        if last is not None and now_s - last <= self.stale_window_s:
            self._good_run += 1
        else:
            self._good_run = 1
        self._last_cycle_s = now_s
        self.last_cycle = cycle
        self._cycles.append(cycle)
        return cycle

    def take_cycles(self) -> list[ObjectCycle]:
        """Return and forget the complete cycles received since the last call.

        Oldest first; at most ``max_cycles_queued``, older ones are dropped.
        """
        out = list(self._cycles)
        self._cycles.clear()
        return out

    def detections(self, cycle: ObjectCycle | None = None) -> list[Detection]:
        """Body-frame detections of ``cycle`` (default: the last complete cycle).

        Parameters
        ----------
        cycle : ObjectCycle, optional
            A cycle from :meth:`on_frame` or :meth:`take_cycles`.

        Returns
        -------
        list of Detection
            The objects that passed the plausibility gate, through the configured mount
            pose; empty before the first cycle.
        """
        cycle = cycle if cycle is not None else self.last_cycle
        if cycle is None:
            return []
        return proto.objects_to_detections(
            cycle.plausible_objects(), self.config.mount,
            min_prob_of_exist=self.config.min_prob_of_exist,
            min_rcs_dbsm=self.config.min_rcs_dbsm, source=self.config.name)

    # ------------------------------------------------------------------ health
    def poll(self, now_s: float) -> Ars408Status:
        """Judge freshness and health at ``now_s``. Per-tick.

        Parameters
        ----------
        now_s : float
            Tick time on the monotonic clock, s.

        Returns
        -------
        Ars408Status
        """
        cfg = self.config
        ref = self._last_cycle_s if self._last_cycle_s is not None else self._start_s
        stale = now_s - ref > self.stale_window_s
        if stale:
            self._was_stale = True
            self._good_run = 0
            self._needed_run = max(1, cfg.recover_cycles)
        elif self._good_run >= self._needed_run:
            self._was_stale = False
        fresh = (not stale) and self._last_cycle_s is not None and not self._was_stale
        faults: list[str] = []
        warnings: list[str] = []
        if stale:
            faults.append("stale")
        state_ref = self._last_state_s if self._last_state_s is not None else self._start_s
        if now_s - state_ref > self.state_window_s:
            faults.append("state_stale")
        h = self.health
        if h is not None:
            verdict = self._health_verdict
            if verdict[0] is not h:  # a new RadarState (about once a second)
                h_warnings = []
                if h.motion_rx_state != 0:
                    h_warnings.append("motion_input_missing")
                if h.send_quality_cfg != cfg.expect_quality or h.send_ext_info_cfg != cfg.expect_extended:
                    h_warnings.append("quality_config_mismatch")
                verdict = self._health_verdict = (h, h.faults(cfg.sensor_id), tuple(h_warnings))
            faults.extend(verdict[1])
            warnings.extend(verdict[2])
        if self._reject_streak >= cfg.reject_streak_limit:
            faults.append("values_rejected")
        if self._frozen_run >= cfg.frozen_cycles_limit:
            faults.append("counter_frozen")
        rejects = dict(self._rejects)
        for k, v in self.ingress.reject_items():  # the checker's counts without a dict copy
            rejects[k] = rejects.get(k, 0) + v
        for k, v in self.assembler.rejects.items():
            rejects[k] = rejects.get(k, 0) + v
        return _new_status(
            now_s, fresh, stale, tuple(faults), tuple(warnings), h,
            None if self._last_cycle_s is None else now_s - self._last_cycle_s,
            self.frames, self.decoded, self.assembler.cycles_complete,
            self.assembler.cycles_dropped, rejects, self.version, dict(self._implausible),
        )

    # ------------------------------------------------------------------ egress
    def ego_motion_due(self, now_s: float) -> bool:
        """Tell whether :meth:`ego_motion_frames` would send at ``now_s`` (s). Per-tick.

        Lets a caller skip working out the ego speed on the ticks between two sends.
        """
        nxt = self._next_ego_s
        return nxt is None or not now_s < nxt  # the negation of ego_motion_frames' test

    def ego_motion_frames(self, now_s: float, speed_long_mps: float,
                          yaw_rate_radps: float) -> list[can.Message]:
        """SpeedInformation + YawRateInformation frames when due. Per-tick.

        Due once per ``GenMsgCycleTime`` of ``ARS408_SpeedInformation`` (one object-list
        period), on an absolute schedule without bursts after a late tick.

        Parameters
        ----------
        now_s : float
            Tick time, s.
        speed_long_mps : float
            Vehicle velocity along body x, m/s (negative reversing).
        yaw_rate_radps : float
            Vehicle yaw rate, CCW positive, rad/s.

        Returns
        -------
        list of can.Message
            ``[speed, yaw_rate]`` when due, else ``[]``. Non-finite inputs send standstill
            and zero yaw rate rather than nothing (the radar then reports the truth as
            best it can; the controller's own guards handle the NaN).
        """
        nxt = self._next_ego_s
        if nxt is not None and now_s < nxt:
            return []
        if nxt is None or now_s - nxt > self.ego_period_s:
            self._next_ego_s = now_s + self.ego_period_s
        else:
            self._next_ego_s = nxt + self.ego_period_s
        try:
            speed, yaw = proto.ego_motion_signals(speed_long_mps, yaw_rate_radps)
        except ProtocolError:
            speed, yaw = proto.ego_motion_signals(0.0, 0.0)
        return [self.codec.encode(proto.MSG_SPEED, speed),
                self.codec.encode(proto.MSG_YAW_RATE, yaw)]

    def radar_cfg_frame(self, *, max_distance_m: float = 200.0, output_type: int = 1,
                        send_quality: bool = True, send_ext_info: bool = True,
                        sort_index: int = 1) -> can.Message:
        """Build a RadarCfg (0x200) frame requesting object output with quality/extended info.

        Parameters
        ----------
        max_distance_m : float
            Far-scan maximum distance, m (the radar accepts 196..260 m standard range).
        output_type : int
            0 none, 1 objects, 2 clusters.
        send_quality, send_ext_info : bool
            Request ObjQuality / ObjExtended frames.
        sort_index : int
            0 none, 1 by range, 2 by RCS.

        Returns
        -------
        can.Message
            Only the named parameters are marked valid; NVM storing is not requested.
        """
        signals = {
            "max_distance_valid": 1, "sensor_id_valid": 0, "radar_power_valid": 0,
            "output_type_valid": 1, "send_quality_valid": 1, "send_ext_info_valid": 1,
            "sort_index_valid": 1, "store_in_nvm_valid": 0,
            "max_distance_m": max_distance_m, "sensor_id": self.config.sensor_id,
            "output_type": output_type, "radar_power": 0, "ctrl_relay_valid": 0,
            "ctrl_relay": 0, "send_quality": int(send_quality),
            "send_ext_info": int(send_ext_info), "sort_index": sort_index,
            "store_in_nvm": 0, "rcs_threshold_valid": 0, "rcs_threshold": 0,
        }
        return self.codec.encode(proto.MSG_RADAR_CFG, signals)


def config_from_mapping(entry: Mapping[str, Any], *, name: str = "radar_lr") -> Ars408Config:
    """Build an :class:`Ars408Config` from a rig ``devices`` entry (already validated).

    Parameters
    ----------
    entry : mapping
        ``{sensor_id: int, mount: {x_m, y_m, yaw_deg}, ...}``; keys other than the
        :class:`Ars408Config` fields (``driver``, ``bus``) are ignored.
    name : str
        Device name.

    Returns
    -------
    Ars408Config
        Missing keys take the :class:`Ars408Config` defaults (no ``mount``: the identity).

    Raises
    ------
    BusConfigError
        If ``mount`` is malformed (see :meth:`Mount.from_config`).
    """
    raw_mount = entry.get("mount")
    try:
        mount = Mount.from_config(raw_mount) if raw_mount else Mount()
    except FrameError as exc:
        raise BusConfigError(f"ars408 {name}: {exc}") from exc
    kw = {k: entry[k] for k in (
        "sensor_id", "expect_quality", "expect_extended", "stale_after_periods",
        "recover_cycles", "state_stale_after_periods", "reject_streak_limit",
        "min_prob_of_exist", "min_rcs_dbsm", "max_cycles_queued", "frozen_cycles_limit") if k in entry}
    return Ars408Config(mount=mount, name=name, **kw)

