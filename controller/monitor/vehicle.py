"""The vehicle as the monitor infers it from the frames on the bus (no I/O, no MCU).

Fed every checked, decoded frame by :class:`~controller.monitor.checks.BusChecker`:

* valve boards: the duty per valve from the last ``VB_Command`` the controller sent,
  what the board reports in ``VB_Status`` (valves open, faults, rail voltage, command
  timeout, rail off, temperature) and ``VB_Heartbeat`` (state, firmware, uptime);
* ARS408 radars: object-list cycles assembled by the protocol's
  :class:`~firmware_bridge.protocols.ars408.CycleAssembler` (the driver's assembler), the
  cycle period, the objects of the last cycle, ``RadarState`` health and faults; a cycle
  the assembler drops or a frame it rejects is a ``radar_cycle`` violation;
* the controller's ego motion as it tells the radar (``SpeedInformation``,
  ``YawRateInformation``).

From these, :meth:`VehicleView.snapshot` infers the vehicle's state: whether a
controller is commanding, and the phase (``no controller on the bus``, ``disarmed (valve
rail off)``, ``valves closed by the board's command timeout``, ``thrusting``, ``armed,
idle``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.monitor.checks import FrameSink, MessageSpec, ViolationTally
from firmware_bridge.protocols import ars408 as ars
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import Decoded

__all__ = ["ValveBoardView", "RadarView", "VehicleView"]

#: A command stream silent for this many command periods means no controller commands.
COMMAND_SILENT_PERIODS = 3.0


def _class_name(code: int | None) -> str | None:
    if code is None:
        return None
    return ars.OBJ_CLASS[code] if 0 <= code < len(ars.OBJ_CLASS) else str(code)


@dataclass
class ValveBoardView:
    """One valve board node as seen on the bus.

    Attributes
    ----------
    device : str
        Rig device name.
    n_valves : int
        Valves fitted.
    command_period_s : float
        ``VB_Command`` cycle time, s.
    duty_pct : list of float
        Duty per valve (0-based) of the last command, %.
    command_s, status_s, heartbeat_s : float or None
        Time of the last command, status and heartbeat, s since the start.
    status : ValveBoardStatus or None
    heartbeat : ValveBoardHeartbeat or None
    """

    device: str
    n_valves: int
    command_period_s: float = vb.COMMAND_PERIOD_S
    duty_pct: list[float] = field(default_factory=list)
    command_s: float | None = None
    status_s: float | None = None
    heartbeat_s: float | None = None
    status: vb.ValveBoardStatus | None = None
    heartbeat: vb.ValveBoardHeartbeat | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        st, hb = self.status, self.heartbeat
        return {
            "device": self.device, "duty_pct": list(self.duty_pct),
            "valve_open": None if st is None else list(st.valve_open),
            "valve_fault": None if st is None else list(st.valve_fault),
            "rail_voltage_v": None if st is None else st.rail_voltage_v,
            "cmd_timeout": None if st is None else st.cmd_timeout,
            "rail_off": None if st is None else st.rail_off,
            "over_temp": None if st is None else st.over_temp,
            "board_temp_c": None if st is None else st.board_temp_c,
            "state": None if hb is None else hb.state.name,
            "firmware": None if hb is None else ".".join(str(v) for v in hb.firmware_version),
            "uptime_s": None if hb is None else hb.uptime_s,
        }


@dataclass
class RadarView:
    """One ARS408 as seen on the bus.

    Attributes
    ----------
    device : str
        Rig device name.
    sensor_id : int
        Configured sensor ID.
    assembler : CycleAssembler
        Object-list assembly (quality and extended frames expected).
    cycles : int
        Complete cycles.
    cycle_gap_n, cycle_gap_sum_s, cycle_gap_min_s, cycle_gap_max_s : int, float
        Gaps between the ``ObjStatus`` of consecutive complete cycles, s.
    last_cycle : ObjectCycle or None
    health : RadarHealth or None
    version : tuple of int or None
    """

    device: str
    sensor_id: int
    assembler: ars.CycleAssembler = field(default_factory=ars.CycleAssembler)
    cycles: int = 0
    cycle_gap_n: int = 0
    cycle_gap_sum_s: float = 0.0
    cycle_gap_min_s: float = math.inf
    cycle_gap_max_s: float = 0.0
    last_cycle: ars.ObjectCycle | None = None
    health: ars.RadarHealth | None = None
    version: tuple[int, int, int] | None = None
    #: an ObjStatus was seen: object frames before the first list (the monitor started
    #: mid-cycle) are skipped, not counted as orphans
    status_seen: bool = False

    @property
    def cycle_mean_s(self) -> float | None:
        """Mean object-list cycle, s (None before two complete cycles)."""
        return self.cycle_gap_sum_s / self.cycle_gap_n if self.cycle_gap_n else None

    def take(self, cycle: ars.ObjectCycle) -> None:
        """Count a complete cycle and its gap to the previous one."""
        last = self.last_cycle
        if last is not None:
            gap = cycle.t_status_s - last.t_status_s
            self.cycle_gap_n += 1
            self.cycle_gap_sum_s += gap
            self.cycle_gap_min_s = min(self.cycle_gap_min_s, gap)
            self.cycle_gap_max_s = max(self.cycle_gap_max_s, gap)
        self.cycles += 1
        self.last_cycle = cycle

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (cycle times in ms, objects in the radar frame)."""
        def ms(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x * 1e3, 3)
        cyc = self.last_cycle
        objects = [] if cyc is None else [
            {"id": o.obj_id, "x_m": o.dist_long_m, "y_m": o.dist_lat_m, "vx_mps": o.vrel_long_mps,
             "vy_mps": o.vrel_lat_mps, "rcs_dbsm": o.rcs_dbsm,
             "class": _class_name(o.obj_class)}
            for o in cyc.objects]
        h = self.health
        return {
            "device": self.device, "sensor_id": self.sensor_id, "cycles": self.cycles,
            "cycles_dropped": self.assembler.cycles_dropped, "rejects": dict(self.assembler.rejects),
            "cycle_mean_ms": ms(self.cycle_mean_s),
            "cycle_min_ms": ms(self.cycle_gap_min_s if self.cycle_gap_n else None),
            "cycle_max_ms": ms(self.cycle_gap_max_s if self.cycle_gap_n else None),
            "objects": objects,
            "faults": None if h is None else list(h.faults(self.sensor_id)),
            "motion_rx_state": None if h is None else h.motion_rx_state,
            "version": None if self.version is None else ".".join(str(v) for v in self.version),
        }


class VehicleView(FrameSink):
    """Valve boards, radars and ego motion inferred from the decoded frames.

    Parameters
    ----------
    valve_boards : mapping of str to ValveBoardView
        By rig device name.
    radars : mapping of str to RadarView
        By rig device name.
    """

    def __init__(self, valve_boards: Mapping[str, ValveBoardView], radars: Mapping[str, RadarView]) -> None:
        self.valve_boards = dict(valve_boards)
        self.radars = dict(radars)
        self.speed_mps: float | None = None
        self.yaw_rate_dps: float | None = None
        self.ego_s: float | None = None

    def on_decoded(self, spec: MessageSpec, decoded: Decoded, t_s: float, tally: ViolationTally) -> None:
        """Apply one decoded frame (see the module docstring). Never raises on content."""
        board = self.valve_boards.get(spec.device)
        if board is not None:
            self._valve(board, decoded, t_s)
            return
        radar = self.radars.get(spec.device)
        if radar is not None:
            self._radar(radar, decoded, t_s, tally)

    @staticmethod
    def _valve(board: ValveBoardView, decoded: Decoded, t_s: float) -> None:
        sig = decoded.signals
        name = decoded.name
        try:
            if name == vb.COMMAND:
                board.duty_pct = [float(sig[s]) for s in vb.DUTY_SIGNALS[:board.n_valves]]
                board.command_s = t_s
            elif name == vb.STATUS:
                board.status = vb.status_from_signals(sig, board.n_valves)
                board.status_s = t_s
            elif name == vb.HEARTBEAT:
                board.heartbeat = vb.heartbeat_from_signals(sig)
                board.heartbeat_s = t_s
        except (KeyError, ValueError, ArithmeticError):
            pass  # an unknown state value: the enum check already counted it

    def _radar(self, radar: RadarView, decoded: Decoded, t_s: float, tally: ViolationTally) -> None:
        name, sig = decoded.name, decoded.signals
        asm = radar.assembler
        handler = {ars.MSG_OBJ_STATUS: asm.on_status, ars.MSG_OBJ_GENERAL: asm.on_general,
                   ars.MSG_OBJ_QUALITY: asm.on_quality, ars.MSG_OBJ_EXTENDED: asm.on_extended}.get(name)
        if handler is not None and not radar.status_seen:
            if name != ars.MSG_OBJ_STATUS:
                return
            radar.status_seen = True
        try:
            if handler is not None:
                dropped, rejects = asm.cycles_dropped, sum(asm.rejects.values())
                was_open = asm.open
                cycle = handler(sig, t_s)
                if cycle is not None:
                    radar.take(cycle)
                if asm.cycles_dropped != dropped or sum(asm.rejects.values()) != rejects:
                    why = "incomplete cycle" if name == ars.MSG_OBJ_STATUS and was_open else f"{name} rejected"
                    tally.add("radar_cycle", radar.device, t_s, why)
            elif name == ars.MSG_RADAR_STATE:
                radar.health = ars.interpret_radar_state(sig)
            elif name == ars.MSG_VERSION:
                radar.version = (int(sig["major_release"]), int(sig["minor_release"]), int(sig["patch_level"]))
            elif name == ars.MSG_SPEED:
                d = int(sig["speed_direction"])
                v = float(sig["speed_mps"])
                self.speed_mps = -v if d == ars.SPEED_BACKWARD else (0.0 if d == ars.SPEED_STANDSTILL else v)
                self.ego_s = t_s
            elif name == ars.MSG_YAW_RATE:
                self.yaw_rate_dps = float(sig["yaw_rate_dps"])
                self.ego_s = t_s
        except (KeyError, ValueError, ArithmeticError):
            pass

    def phase(self, now_s: float) -> str:
        """Return the vehicle's phase inferred at ``now_s`` (s since the start) from the valve boards."""
        if not self.valve_boards:
            return "no valve board on this bus"
        boards = list(self.valve_boards.values())
        commanding = [b for b in boards if b.command_s is not None
                      and now_s - b.command_s <= COMMAND_SILENT_PERIODS * b.command_period_s]
        status = [b.status for b in boards if b.status is not None]
        if any(s.rail_off for s in status):
            return "disarmed (valve rail off)"
        if any(s.cmd_timeout for s in status):
            return "valves closed by the board's command timeout"
        if not commanding:
            if all(b.command_s is None for b in boards):
                return "no controller on the bus"
            return "controller silent"
        if any(d > 0.0 for b in commanding for d in b.duty_pct):
            return "thrusting"
        return "armed, idle"

    def snapshot(self, now_s: float) -> dict[str, object]:
        """Return the inferred vehicle at ``now_s`` (s since the start), JSON-ready."""
        return {
            "phase": self.phase(now_s),
            "speed_mps": self.speed_mps, "yaw_rate_dps": self.yaw_rate_dps,
            "valve_boards": [b.as_dict() for b in self.valve_boards.values()],
            "radars": [r.as_dict() for r in self.radars.values()],
        }
