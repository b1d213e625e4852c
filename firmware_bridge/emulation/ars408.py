"""Emulated Continental ARS408-21 long-range radar: synthetic objects or a replayed log.

Two emulators play the radar's end of a CAN bus; both are stepped by the caller's clock
(``step(now_s)``) and never sleep, so they run in lockstep under a SimClock and on the
emulator thread in real time.

* :class:`Ars408Emulator` (synthetic) -- every ``cycle_s`` (72 ms, the ARS408-21 object
  list period) it sends one object-list cycle built from world targets as seen from the
  radar pose: ``ObjStatus`` (N), N ``ObjGeneral``, N ``ObjQuality``, N ``ObjExtended``;
  every second a ``RadarState`` and a ``VersionId``. It reads the host's
  ``SpeedInformation``/``YawRateInformation`` and reports their absence in
  ``motion_rx_state``, as the real sensor does. Fault knobs: :attr:`silent`,
  :meth:`set_errors`, :attr:`reported_sensor_id`, :attr:`corrupt_enum`,
  :attr:`drop_last_object_frame`.
* :class:`Ars408ReplayEmulator` -- sends the frames of any python-can log (candump, ASC,
  BLF, TRC...) with the recorded spacing relative to its start time, re-sent on the rig's
  bus whatever channel they were recorded on (optionally only one recorded channel).

Frames are built through the shared codec and the protocol module
(:mod:`firmware_bridge.protocols.ars408`), the same ones the driver decodes with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import can

from firmware_bridge.emulation.faults import FaultParam, FaultParams, FaultSpec
from firmware_bridge.protocols import ars408 as proto
from firmware_bridge.protocols.ars408 import RadarHealth, RadarObject
from firmware_bridge.protocols.frames import Pose2D, apply_inverse, rotate_inverse
from hal.can.codec import DbcCodec
from hal.can.lockstep import LockstepBus
from hal.can.replay import LogReplay, channel_matches, iter_can_log

__all__ = ["RadarTarget", "Ars408Emulator", "Ars408ReplayEmulator"]


@dataclass(frozen=True, slots=True)
class RadarTarget:
    """A reflecting target in the world frame.

    Attributes
    ----------
    x_m, y_m : float
        Position in the world frame, m.
    vx_mps, vy_mps : float
        Velocity in the world frame, m/s.
    rcs_dbsm : float
        Radar cross section, dBsm.
    obj_class : int
        ARS408 class code (:data:`firmware_bridge.protocols.ars408.OBJ_CLASS`), 0 point.
    length_m, width_m : float
        Size reported in the extended frame, m.
    target_id : int or None
        Object ID to report (0..255); default: the target's index in the list.
    """

    x_m: float
    y_m: float
    vx_mps: float = 0.0
    vy_mps: float = 0.0
    rcs_dbsm: float = 10.0
    obj_class: int = 0
    length_m: float = 0.4
    width_m: float = 0.4
    target_id: int | None = None


def _send(bus: can.BusABC, msg: can.Message, timeout_s: float) -> bool:
    try:
        bus.send(msg, timeout=timeout_s)
        return True
    except can.CanError:
        return False


class Ars408Emulator:
    """Synthetic ARS408-21 object-list output on a CAN bus. Stepped, never sleeping.

    Parameters
    ----------
    bus : can.BusABC
        The radar's end of the bus (e.g. a python-can ``virtual`` bus on the rig's channel);
        a LockstepBus's filters are set to the host's SpeedInformation and YawRateInformation IDs.
    codec : hal.can.codec.DbcCodec
        Codec with ``dbc/ars408.dbc`` at the bus's offset (normally 0); the sensor-ID
        offset is applied here.
    sensor_id : int, optional
        Sensor ID 0..7 (arbitration IDs + 0x10 * ID). Default 0.
    cycle_s : float, optional
        Object-list period, s. Default: the DBC cycle time of ``ObjStatus`` (72 ms).
    state_period_s : float, optional
        RadarState / VersionId period, s. Default: the DBC cycle time (1 s).
    max_range_m : float, optional
        Targets farther than this are not reported, m (ARS408: 250 m far scan).
    fov_half_deg : float, optional
        Half opening angle; targets outside +-this azimuth are not reported, deg.
    position_sigma_m : float, optional
        Standard deviation reported in the quality frame (no noise is added), m.
    start_s : float, optional
        Time of the first cycle, s.
    send_timeout_s : float, optional
        Timeout of every ``bus.send``, s (failures are counted in :attr:`send_failures`).

    Notes
    -----
    Object positions are exact up to the DBC resolution (0.2 m); the radar's own
    filtering and noise are not modelled. Fault-plan target
    (:mod:`firmware_bridge.emulation.faults`): see :data:`FAULTS`.
    """

    #: Faults of a plan (``emulation.faults`` entries whose target is this radar).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("sends nothing at all (SAFETY.md B01)"),
        "corrupt_enum": FaultSpec("ObjExtended frames carry the reserved class code 7 (SAFETY.md D03)"),
        "drop_last_object_frame": FaultSpec("the last ObjExtended frame of every non-empty cycle is not sent"),
        "wrong_sensor_id": FaultSpec(
            "RadarState reports another sensor ID",
            MappingProxyType({"sensor_id": FaultParam(int, 1, 0, 7, "sensor ID written into RadarState")})),
        **{flag: FaultSpec(f"RadarState flag {flag} set") for flag in (
            "persistent_error", "temporary_error", "temperature_error", "voltage_error", "interference")},
    })

    def __init__(self, bus: can.BusABC, codec: DbcCodec, *, sensor_id: int = 0,
                 cycle_s: float | None = None, state_period_s: float | None = None,
                 max_range_m: float = 250.0, fov_half_deg: float = 60.0,
                 position_sigma_m: float = 0.2, start_s: float = 0.0,
                 send_timeout_s: float = 0.005) -> None:
        self.bus = bus
        self.sensor_id = int(sensor_id)
        self.codec = codec.with_offset(codec.id_offset + proto.id_offset(self.sensor_id))
        self.cycle_s = float(cycle_s or self.codec.cycle_time_s(proto.MSG_OBJ_STATUS)
                             or proto.NOMINAL_CYCLE_S)
        self.state_period_s = float(state_period_s or self.codec.cycle_time_s(
            proto.MSG_RADAR_STATE) or 1.0)
        self.max_range_m = float(max_range_m)
        self.fov_half_rad = math.radians(fov_half_deg)
        self.position_sigma_m = float(position_sigma_m)
        self.send_timeout_s = float(send_timeout_s)
        self._next_cycle_s = float(start_s)
        self._next_state_s = float(start_s)
        self.meas_counter = 0
        self.cycles_sent = 0
        self.frames_sent = 0
        self.send_failures = 0
        # scene
        self._pose = Pose2D()
        self._vel = (0.0, 0.0)
        self._targets: tuple[RadarTarget, ...] = ()
        # host inputs
        self._speed_rx_s: float | None = None
        self._yaw_rx_s: float | None = None
        self._speed_signals: dict[str, float] = {"speed_direction": proto.SPEED_STANDSTILL, "speed_mps": 0.0}
        self._yaw_signals: dict[str, float] = {"yaw_rate_dps": 0.0}
        self.ego_speed_mps = 0.0
        self.ego_yaw_rate_radps = 0.0
        self._speed_id = self.codec.frame_id(proto.MSG_SPEED)
        self._yaw_id = self.codec.frame_id(proto.MSG_YAW_RATE)
        # on a lockstep bus the node hears only the host's ego-motion frames (routed at the
        # sender); not elsewhere: python-can's recv(timeout=0) gives up at a dropped frame
        if type(bus) is LockstepBus:
            bus.set_filters([{"can_id": i, "can_mask": 0x7FF, "extended": False}
                             for i in (self._speed_id, self._yaw_id)])
        # fault knobs
        #: True: send nothing at all (SAFETY.md B01).
        self.silent = False
        #: Sensor ID written into RadarState (None: the configured one).
        self.reported_sensor_id: int | None = None
        #: True: ObjExtended frames carry the reserved class code 7 (SAFETY.md D03).
        self.corrupt_enum = False
        #: True: the last ObjExtended frame of every non-empty cycle is not sent.
        self.drop_last_object_frame = False
        self._errors = dict(persistent_error=False, temporary_error=False,
                            temperature_error=False, voltage_error=False, interference=False)

    # ------------------------------------------------------------------ faults
    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of :data:`FAULTS` (fault-plan target protocol); acts from the next cycle."""
        self._set_fault(fault, params, True)

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End a fault of :data:`FAULTS` at ``now_s`` (s)."""
        self._set_fault(fault, params, False)

    def _set_fault(self, fault: str, params: FaultParams, on: bool) -> None:
        if fault == "silent":
            self.silent = on
        elif fault == "corrupt_enum":
            self.corrupt_enum = on
        elif fault == "drop_last_object_frame":
            self.drop_last_object_frame = on
        elif fault == "wrong_sensor_id":
            self.reported_sensor_id = int(params["sensor_id"]) if on else None
        elif fault in self._errors:
            self._errors[fault] = on
        else:
            raise KeyError(f"Ars408Emulator has no fault {fault!r}")

    # ------------------------------------------------------------------ scene
    def set_scene(self, radar_pose_world: Pose2D | Sequence[float], targets: Iterable[RadarTarget],
                  radar_velocity_world_mps: Sequence[float] = (0.0, 0.0)) -> None:
        """Set what the radar sees from the next cycle on.

        Parameters
        ----------
        radar_pose_world : Pose2D or (3,) sequence of float
            ``(x_m, y_m, yaw_rad)`` of the radar in the world frame (vehicle pose composed
            with the mount, :func:`firmware_bridge.protocols.frames.compose`).
        targets : iterable of RadarTarget
            World-frame targets.
        radar_velocity_world_mps : (2,) sequence of float, optional
            Radar velocity in the world frame, m/s (for relative velocities).
        """
        x, y, yaw = (float(v) for v in radar_pose_world)
        self._pose = Pose2D(x, y, yaw)
        self._targets = tuple(targets)
        self._vel = (float(radar_velocity_world_mps[0]), float(radar_velocity_world_mps[1]))

    def set_errors(self, **flags: bool) -> None:
        """Set RadarState error flags; the ones not given stay unchanged.

        Flags: ``persistent_error``, ``temporary_error``, ``temperature_error``,
        ``voltage_error``, ``interference``.

        Raises
        ------
        KeyError
            For an unknown flag name.
        """
        for k, v in flags.items():
            if k not in self._errors:
                raise KeyError(f"unknown ARS408 error flag {k!r} (known: {sorted(self._errors)})")
            self._errors[k] = bool(v)

    def objects(self) -> list[RadarObject]:
        """Return the objects the radar reports now.

        Targets in range and field of view, in the radar frame (x forward, y left).
        """
        pose = self._pose
        vx0, vy0 = self._vel
        out: list[RadarObject] = []
        for i, t in enumerate(self._targets):
            xr, yr = apply_inverse(pose, (t.x_m, t.y_m))
            rng = math.hypot(xr, yr)
            if rng > self.max_range_m or abs(math.atan2(yr, xr)) > self.fov_half_rad:
                continue
            vxr, vyr = rotate_inverse(pose, (t.vx_mps - vx0, t.vy_mps - vy0))
            moving = math.hypot(t.vx_mps, t.vy_mps) > 0.1
            oid = (t.target_id if t.target_id is not None else i) & 0xFF
            out.append(RadarObject(
                oid, xr, yr, vxr, vyr, t.rcs_dbsm, 0 if moving else 1,
                self.position_sigma_m, self.position_sigma_m, 1.0, 2,
                t.obj_class, 0.0, t.length_m, t.width_m,
            ))
            if len(out) >= 255:
                break
        return out

    # ------------------------------------------------------------------ stepping
    def _drain_host(self, now_s: float) -> None:
        received = False
        for _ in range(64):  # bounded per step (B08)
            msg = self.bus.recv(timeout=0.0)
            if msg is None:
                break
            if msg.is_error_frame or msg.is_remote_frame:
                continue
            if msg.arbitration_id == self._speed_id:
                dec = self.codec.decode(msg)
                if dec is not None:
                    self._speed_rx_s = now_s
                    self._speed_signals = dec.signals
                    received = True
            elif msg.arbitration_id == self._yaw_id:
                dec = self.codec.decode(msg)
                if dec is not None:
                    self._yaw_rx_s = now_s
                    self._yaw_signals = dec.signals
                    received = True
        if received:
            self.ego_speed_mps, self.ego_yaw_rate_radps = proto.ego_motion_from_signals(
                self._speed_signals, self._yaw_signals)

    @property
    def next_due_s(self) -> float:
        """Caller-clock time at which :meth:`step` next sends something, s.

        The earlier of the next object-list cycle and the next RadarState/VersionId.
        """
        return min(self._next_cycle_s, self._next_state_s)

    def motion_rx_state(self, now_s: float) -> int:
        """Return the ``motion_rx_state`` the radar reports at ``now_s``.

        Parameters
        ----------
        now_s : float
            Caller-clock time, s.

        Returns
        -------
        int
            0 ok, 1 speed missing, 2 yaw rate missing, 3 both (missing: none received
            for one RadarState period, 1 s; ARS408-21 technical documentation,
            RadarState ``MotionRxState``).
        """
        limit = self.state_period_s
        speed_missing = self._speed_rx_s is None or now_s - self._speed_rx_s > limit
        yaw_missing = self._yaw_rx_s is None or now_s - self._yaw_rx_s > limit
        return int(speed_missing) + 2 * int(yaw_missing)

    def _tx(self, name: str, signals: Mapping[str, float]) -> None:
        if _send(self.bus, self.codec.encode(name, signals), self.send_timeout_s):
            self.frames_sent += 1
        else:
            self.send_failures += 1

    def _send_cycle(self) -> None:
        objs = self.objects()
        self._tx(proto.MSG_OBJ_STATUS, proto.status_signals(len(objs), self.meas_counter))
        encoded = [proto.object_signals(o) for o in objs]
        for g, _, _ in encoded:
            self._tx(proto.MSG_OBJ_GENERAL, g)
        for _, q, _ in encoded:
            self._tx(proto.MSG_OBJ_QUALITY, q)
        last = len(encoded) - 1
        for k, (_, _, e) in enumerate(encoded):
            if self.drop_last_object_frame and k == last:
                continue
            if self.corrupt_enum:
                e = dict(e, obj_class=7)
            self._tx(proto.MSG_OBJ_EXTENDED, e)
        self.meas_counter = (self.meas_counter + 1) & 0xFFFF
        self.cycles_sent += 1

    def _send_state(self, now_s: float) -> None:
        sid = self.sensor_id if self.reported_sensor_id is None else self.reported_sensor_id
        health = RadarHealth(
            sensor_id=sid, motion_rx_state=self.motion_rx_state(now_s), output_type_cfg=1,
            send_quality_cfg=True, send_ext_info_cfg=True, max_distance_cfg_m=200.0,
            **self._errors)
        self._tx(proto.MSG_RADAR_STATE, proto.radar_state_signals(health))
        self._tx(proto.MSG_VERSION, {"major_release": 4, "minor_release": 30,
                                     "patch_level": 2, "extended_range": 0,
                                     "country_code": 0})

    def step(self, now_s: float) -> None:
        """Advance to ``now_s``: read host frames, send what is due. Per-step.

        At most one cycle and one state frame per call: after a long pause the schedule
        restarts from ``now_s`` instead of bursting (the real sensor does not catch up).

        Parameters
        ----------
        now_s : float
            Caller-clock time, s.
        """
        self._drain_host(now_s)
        if now_s >= self._next_state_s:
            if not self.silent:
                self._send_state(now_s)
            self._next_state_s = _next_slot(self._next_state_s, self.state_period_s, now_s)
        if now_s >= self._next_cycle_s:
            if not self.silent:
                self._send_cycle()
            self._next_cycle_s = _next_slot(self._next_cycle_s, self.cycle_s, now_s)


def _next_slot(slot_s: float, period_s: float, now_s: float) -> float:
    nxt = slot_s + period_s
    return nxt if nxt > now_s else now_s + period_s


class Ars408ReplayEmulator:
    """Replay a recorded CAN log onto the rig's bus, on the caller's clock. Per-step.

    Parameters
    ----------
    bus : can.BusABC
        The radar's end of the rig's bus; every frame is re-sent there, so the recorded
        channel (``can1`` in the real candump) maps onto the rig's channel.
    frames : iterable of can.Message, or str / Path
        Recorded frames in time order, or a log file for
        :func:`hal.can.replay.iter_can_log` (read lazily).
    start_s : float, optional
        Caller-clock time at which the first recorded frame is due, s.
    source_channel : str or int, optional
        Replay only frames recorded on this channel; None replays all.
    speed : float, optional
        Replay speed factor; 1.0 keeps the recorded timing.
    max_frames_per_step : int, optional
        Bound of frames sent per call (the rest follow on the next call).
    send_timeout_s : float, optional
        Timeout of every ``bus.send``, s.

    Raises
    ------
    hal.errors.BusConfigError
        When ``frames`` names a log that cannot be read.
    """

    def __init__(self, bus: can.BusABC, frames: Iterable[can.Message] | str | Path, *, start_s: float = 0.0,
                 source_channel: str | int | None = None, speed: float = 1.0,
                 max_frames_per_step: int | None = None, send_timeout_s: float = 0.005) -> None:
        if isinstance(frames, (str, Path)):
            frames = iter_can_log(frames, channel=source_channel)
        elif source_channel is not None:
            frames = (m for m in frames if channel_matches(m.channel, source_channel))
        self.bus = bus
        self._replay = LogReplay(frames, start_s=start_s, speed=speed)
        self.max_frames_per_step = max_frames_per_step
        self.send_timeout_s = float(send_timeout_s)
        self.frames_sent = 0
        self.send_failures = 0
        #: True: send nothing (frames due meanwhile are dropped, as on a cut cable).
        self.silent = False

    #: Faults of a plan (``emulation.faults`` entries whose target is this radar, replayed).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("sends nothing (frames due meanwhile are dropped, as on a cut cable)"),
    })

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``silent`` (fault-plan target protocol)."""
        if fault != "silent":
            raise KeyError(f"Ars408ReplayEmulator has no fault {fault!r}")
        self.silent = True

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End ``silent`` at ``now_s`` (s)."""
        if fault == "silent":
            self.silent = False

    @property
    def done(self) -> bool:
        """True when the whole log has been replayed."""
        return self._replay.done

    @property
    def next_due_s(self) -> float | None:
        """Caller-clock time of the next recorded frame, s (None when done)."""
        return self._replay.next_due_s

    def step(self, now_s: float) -> None:
        """Send every recorded frame due at ``now_s``. Per-step, never sleeps.

        Parameters
        ----------
        now_s : float
            Caller-clock time, s.
        """
        for rec in self._replay.due(now_s, limit=self.max_frames_per_step):
            if self.silent:
                continue
            msg = can.Message(
                arbitration_id=rec.arbitration_id, is_extended_id=rec.is_extended_id,
                is_remote_frame=rec.is_remote_frame, is_error_frame=rec.is_error_frame,
                is_fd=rec.is_fd, bitrate_switch=rec.bitrate_switch,
                error_state_indicator=rec.error_state_indicator,
                dlc=rec.dlc, data=rec.data, channel=None, check=False)
            if _send(self.bus, msg, self.send_timeout_s):
                self.frames_sent += 1
            else:
                self.send_failures += 1
