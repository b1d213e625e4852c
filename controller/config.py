"""Schemas of the rig and mission files: one validation layer for every YAML QIKI reads.

All models forbid unknown keys, are strict about types (a string is never coerced into a
number), refuse NaN and infinities, and carry units in field names (ARCHITECTURE.md 6,
SAFETY.md K03/K04). A failing file is reported as one line, ``PATH: key.path: what``.

Safety budgets (SAFETY.md) are bounded here, so that no file can stretch a detection time
beyond what SAFETY.md promises (issue 10, part 6). The bounds, and where they come from:

==========================================  =========================  ==========================
what                                        bound                      source
==========================================  =========================  ==========================
``controller.safety.stale_after_periods``   2 .. 5                     B01-B03: stale after 3
                                                                       missed periods; 2 is the
                                                                       least that survives the
                                                                       ingress rhythm tolerance
                                                                       (a gap up to 1.75 periods
                                                                       is regular)
period of every watched stream (DBC         <= 1 s                     :data:`MAX_WATCHED_PERIOD_S`
``GenMsgCycleTime``, IWR6843 frame period,
Modbus profile poll period)
device-side timeouts (valve board command   <= 0.2 s                   T03: device-side timeouts
timeout, MCU host watchdog), emulated or                               zero the valves within
real                                                                   200 ms
MCU heartbeat period                        <= watchdog / 2, counted   "heartbeat period <=
                                            in whole control ticks     watchdog / 2" (issue 10)
valve command period (one control tick)     <= command timeout / 2     same rule, D04/T03
``controller.safety.max_overruns_per_s``    1 .. 10, and below the     T02: safe after > 5
                                            tick rate                  overruns in 1 s
``output_guard.max_nonfinite_ticks``        1 .. 10                    O03: repeated -> safe
==========================================  =========================  ==========================

Every list and mapping has a maximum length, so that a file cannot make the loader or the
controller do unbounded work (issue 10, part 7; SAFETY.md F05 "bounded memory").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.errors import ConfigError
from controller.paths import resolve_data_path
from controller.yamlio import load_model
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import firmware_version as fwv
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.devices.valve_board import NODE_ID_MAX


class Strict(BaseModel):
    """Base of every config model: unknown keys, wrong types and NaN are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]

#: Longest period (s) of any stream whose freshness the controller watches (DBC
#: ``GenMsgCycleTime`` of a watched message, IWR6843 frame period, Modbus poll period).
#: With :data:`MAX_STALE_AFTER_PERIODS` it bounds every detection time to 5 s. The slowest
#: stream QIKI-1 watches is the ARS408 RadarState at 1 s (ARS408-21 technical
#: documentation); everything safety-critical is 10-100x faster.
MAX_WATCHED_PERIOD_S = 1.0
#: ``controller.safety.stale_after_periods`` bounds (SAFETY.md: stale after 3 periods).
MIN_STALE_AFTER_PERIODS = 2
MAX_STALE_AFTER_PERIODS = 5
#: Longest device-side timeout (s): SAFETY.md T03, "device-side timeouts zero the valves
#: within 200 ms; the MCU drops the valve rail". Applies to the valve board's command
#: timeout and the MCU's host-watchdog timeout, real or emulated.
MAX_DEVICE_TIMEOUT_S = 0.2

#: List and mapping length bounds (issue 10, part 7).
MAX_THRUSTERS = 16
MAX_BUSES = 16
MAX_DEVICES = 32
MAX_DBC_FILES = 8
MAX_FAULTS = 1000
MAX_OBSTACLES = 256
MAX_WAYPOINTS = 10_000


def _checked(fn, text: str, **kw) -> str:
    """Run a firmware-version parser at load time; its message becomes the field error."""
    try:
        fn(text, **kw)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None
    return text


# --------------------------------------------------------------------------- vehicle
class VehicleCfg(Strict):
    """Rigid-body parameters of the planar vehicle (air-bearing table, 3 DOF)."""

    mass_kg: Annotated[float, Field(gt=0.0, le=1000.0)]
    inertia_kgm2: Annotated[float, Field(gt=0.0, le=1000.0)]


class ThrusterCfg(Strict):
    """One solenoid thruster: where it sits and which way it pushes the body.

    ``position_m`` and ``force_dir`` are in the body frame (x forward, y left, z up); 2
    components for a planar rig, 3 for a 6-DOF one. ``force_dir`` may have any non-zero
    length: it is stored as written and normalised where it is used
    (:func:`controller.allocation.effectiveness`, the emulated world's geometry).
    """

    name: str
    position_m: list[float] = Field(min_length=2, max_length=3)
    force_dir: list[float] = Field(min_length=2, max_length=3)
    max_thrust_n: Annotated[float, Field(gt=0.0)]
    valve: Annotated[int, Field(ge=0, le=7)] | None = None

    @model_validator(mode="after")
    def _dir_nonzero(self) -> ThrusterCfg:
        if len(self.position_m) != len(self.force_dir):
            raise ValueError("position_m and force_dir must have the same length")
        if math.hypot(*self.force_dir) < 1e-9:
            raise ValueError("force_dir has zero length")
        return self


# --------------------------------------------------------------------------- buses
class CanBusCfg(Strict):
    """A CAN bus opened through python-can (``interface`` is any python-can name)."""

    kind: Literal["can"]
    interface: str
    channel: str
    bitrate_bps: Annotated[int, Field(gt=0, le=8_000_000)] = 500_000
    dbc: list[str] = Field(min_length=1, max_length=MAX_DBC_FILES)
    max_rx_frames_per_tick: Annotated[int, Field(gt=0, le=10_000)] = 256


class SerialBusCfg(Strict):
    """A serial link: ``pipe://NAME`` (in-process, lockstep) or any pyserial URL."""

    kind: Literal["serial"]
    url: str
    baudrate: Annotated[int, Field(gt=0, le=20_000_000)] = 921_600
    #: Only for pyserial URL handlers without a file descriptor (``loop://``): longest a
    #: write may block. ttys, ptys and ``socket://`` never block on write (bounded queue,
    #: see ``hal.serial.link.PySerialLink``).
    write_timeout_s: Annotated[float, Field(gt=0.0, le=5.0)] = 0.05


class ModbusBusCfg(Strict):
    """A Modbus link: ``memory://NAME``, ``tcp://127.0.0.1:PORT`` or ``rtu:///dev/tty...``."""

    kind: Literal["modbus"]
    url: str
    timeout_s: Annotated[float, Field(gt=0.0, le=5.0)] = 0.1
    baudrate: Annotated[int, Field(gt=0, le=20_000_000)] = 115_200


BusCfg = Annotated[CanBusCfg | SerialBusCfg | ModbusBusCfg, Field(discriminator="kind")]


# --------------------------------------------------------------------------- devices
class ValveBoardDeviceCfg(Strict):
    """The CAN valve board (``dbc/qiki.dbc``)."""

    driver: Literal["valve_board"]
    bus: str
    #: 1..13, as the driver accepts (``hal.devices.valve_board.NODE_ID_MAX``).
    node_id: Annotated[int, Field(ge=1, le=NODE_ID_MAX)] = 1  # what the driver accepts (hal.devices.valve_board)
    n_valves: Annotated[int, Field(ge=1, le=8)] = 8
    accepted_firmware: str = ">=1.0.0"
    max_thrust_n: Annotated[float, Field(gt=0.0, le=20.0)] = 2.0
    pwm_period_s: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    min_impulse_bit_s: Annotated[float, Field(gt=0.0, le=0.5)] = 0.004
    #: Characterised valve delays (s); None on a virtual rig = take the emulated world's.
    open_delay_s: Annotated[float, Field(ge=0.0, le=0.1)] | None = None
    close_delay_s: Annotated[float, Field(ge=0.0, le=0.1)] | None = None
    #: The board firmware's command timeout (s): with no valid ``VB_Command`` for this long
    #: every valve closes (``dbc/qiki.dbc`` VB_Sts_CmdTimeout: 200 ms). At most 0.2 s
    #: (SAFETY.md T03); the control tick (one command per tick) must be at most half of it.
    command_timeout_s: Annotated[float, Field(gt=0.0, le=MAX_DEVICE_TIMEOUT_S)] = 0.2

    @field_validator("accepted_firmware")
    @classmethod
    def _spec(cls, v: str) -> str:
        return _checked(fwv.parse_spec, v, full=True)


class McuDeviceCfg(Strict):
    """The QIKI MCU board on a serial link (framed binary protocol)."""

    driver: Literal["qiki_mcu"]
    bus: str
    accepted_firmware: str = ">=1.0.0"
    #: HOST_HEARTBEAT period (s); sent in the write phase, so the gap between heartbeats
    #: is this rounded up to whole control ticks, and that must be at most half the MCU's
    #: watchdog (checked by :func:`load_rig`).
    heartbeat_period_s: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    #: The MCU firmware's host-watchdog timeout (s): with no HOST_HEARTBEAT for this long
    #: the MCU drops the valve rail. At most 0.2 s (SAFETY.md T03).
    watchdog_timeout_s: Annotated[float, Field(gt=0.0, le=MAX_DEVICE_TIMEOUT_S)] = 0.2

    @field_validator("accepted_firmware")
    @classmethod
    def _spec(cls, v: str) -> str:
        return _checked(fwv.parse_spec, v, full=False)


class MountCfg(Strict):
    """Mount pose of a sensor in the body frame (x forward, y left; yaw about z, degrees)."""

    x_m: Annotated[float, Field(ge=-10.0, le=10.0)] = 0.0
    y_m: Annotated[float, Field(ge=-10.0, le=10.0)] = 0.0
    yaw_deg: Annotated[float, Field(ge=-360.0, le=360.0)] = 0.0


class Ars408DeviceCfg(Strict):
    """Continental ARS408-21 long-range radar on a CAN bus (``dbc/ars408.dbc``)."""

    driver: Literal["ars408"]
    bus: str
    sensor_id: Annotated[int, Field(ge=0, le=7)] = 0
    mount: MountCfg = Field(default_factory=MountCfg)
    min_prob_of_exist: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    min_rcs_dbsm: Annotated[float, Field(ge=-64.0, le=64.0)] = -64.0


class Iwr6843DeviceCfg(Strict):
    """TI IWR6843 short-range radar on a serial link (TI UART TLV output)."""

    driver: Literal["iwr6843"]
    bus: str
    mount: MountCfg = Field(default_factory=MountCfg)
    #: Radar frame period (s), a watched stream: at most :data:`MAX_WATCHED_PERIOD_S`.
    frame_period_s: Annotated[float, Field(gt=0.0, le=MAX_WATCHED_PERIOD_S)] = 0.1


class BmsDeviceCfg(Strict):
    """Battery management system on a Modbus bus, described by a device profile."""

    driver: Literal["bms"]
    bus: str
    unit_id: Annotated[int, Field(ge=1, le=247)] = 1
    profile: str = "rigs/profiles/jk_bms.yaml"
    cell_count: Annotated[int, Field(ge=1, le=32)] = 8


class PduDeviceCfg(Strict):
    """Power distribution unit (relays) on a Modbus bus, described by a device profile."""

    driver: Literal["pdu"]
    bus: str
    unit_id: Annotated[int, Field(ge=1, le=247)] = 2
    profile: str = "rigs/profiles/qiki_pdu.yaml"


class TankPressureDeviceCfg(Strict):
    """Propellant tank-pressure sensor on a CAN bus (``dbc/tank.dbc``, ``TANK_Status``).

    ``min_pressure_bar``: below it the vehicle may not arm, and in ``armed``/``active`` a
    fault ends the mission (the regulator needs that much upstream). ``max_pressure_bar``:
    the tank's rated working pressure; a reading above it is implausible (fault).
    """

    driver: Literal["tank_pressure"]
    bus: str
    min_pressure_bar: Annotated[float, Field(ge=0.0, le=400.0)] = 20.0
    max_pressure_bar: Annotated[float, Field(gt=0.0, le=400.0)] = 300.0

    @model_validator(mode="after")
    def _order(self) -> TankPressureDeviceCfg:
        if self.min_pressure_bar >= self.max_pressure_bar:
            raise ValueError("min_pressure_bar must be below max_pressure_bar")
        return self


DeviceCfg = Annotated[
    ValveBoardDeviceCfg | McuDeviceCfg | Ars408DeviceCfg | Iwr6843DeviceCfg | BmsDeviceCfg | PduDeviceCfg
    | TankPressureDeviceCfg,
    Field(discriminator="driver"),
]


# --------------------------------------------------------------------------- emulation
class FaultCfg(Strict):
    """One entry of ``emulation.faults``, the fault plan of an emulated run.

    ``{at_s, until_s?, target, fault, ...params}``: at ``at_s`` (simulated seconds since
    start) the emulator of device ``target`` (its name in ``devices``) applies ``fault``
    with the entry's other keys as parameters; a windowed fault ends at ``until_s``
    (exclusive; absent: for good). Which targets, faults and parameters exist is up to
    the emulators (``FAULTS`` of each, listed in ``docs/fault-plans.md``) and is checked
    by ``qiki rig check`` (:func:`controller.rig.fault_plan.check`), naming the key.
    """

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False, frozen=True)

    at_s: NonNegFloat
    until_s: NonNegFloat | None = None
    target: Annotated[str, Field(min_length=1, max_length=64)]
    fault: Annotated[str, Field(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _window(self) -> FaultCfg:
        if self.until_s is not None and self.until_s <= self.at_s:
            raise ValueError("until_s must be after at_s")
        if len(self.params) > MAX_FAULT_PARAMS:
            raise ValueError(f"at most {MAX_FAULT_PARAMS} parameters")
        return self

    @property
    def params(self) -> dict[str, object]:
        """The entry's parameters: every key but ``at_s``, ``until_s``, ``target``, ``fault``."""
        return dict(self.model_extra or {})


#: Most parameters one ``emulation.faults`` entry may carry (bounded input).
MAX_FAULT_PARAMS = 8


class WorldCfg(Strict):
    """The simulated world: start pose (x_m, y_m, yaw_rad in the world frame)."""

    start_pose: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0], min_length=3, max_length=3)
    physics_rate_hz: Annotated[float, Field(ge=1000.0, le=100_000.0)] = 1000.0
    pose_noise_m: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0005
    yaw_noise_rad: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0005
    linear_drag_n_per_mps: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    valve_open_delay_s: Annotated[float, Field(ge=0.0, le=0.1)] = 0.003
    valve_close_delay_s: Annotated[float, Field(ge=0.0, le=0.1)] = 0.002
    rail_voltage_v: Annotated[float, Field(gt=0.0, le=40.0)] = 24.0


class ObstacleCfg(Strict):
    """A radar target in the world frame (static unless a velocity is given)."""

    x_m: Annotated[float, Field(ge=-1000.0, le=1000.0)]
    y_m: Annotated[float, Field(ge=-1000.0, le=1000.0)]
    vx_mps: Annotated[float, Field(ge=-100.0, le=100.0)] = 0.0
    vy_mps: Annotated[float, Field(ge=-100.0, le=100.0)] = 0.0
    rcs_dbsm: Annotated[float, Field(ge=-64.0, le=64.0)] = 10.0


class BatteryEmuCfg(Strict):
    """Emulated battery: start state of charge and temperature."""

    start_soc_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 90.0
    start_temperature_c: Annotated[float, Field(ge=-40.0, le=100.0)] = 25.0


class TankEmuCfg(Strict):
    """Emulated tank-pressure sensor (``firmware_bridge.emulation.tank_pressure``).

    The tank starts at ``start_pressure_bar`` and loses ``bar_per_valve_s`` per second of
    one valve open, plus ``leak_bar_per_s``. Its faults (``silent``, ``sensor_fault``)
    are entries of ``emulation.faults`` with the tank's device name as ``target``.
    """

    start_pressure_bar: Annotated[float, Field(ge=0.0, le=400.0)] = 200.0
    bar_per_valve_s: Annotated[float, Field(ge=0.0, le=100.0)] = 1.5
    leak_bar_per_s: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    temperature_c: Annotated[float, Field(ge=-40.0, le=125.0)] = 20.0


class EmulationCfg(Strict):
    """Who plays the far end of each bus on a virtual rig."""

    world: WorldCfg = Field(default_factory=WorldCfg)
    valve_board_firmware: str = "1.2.0"
    mcu_firmware: str = "1.0.0"
    #: Emulated valve board's command timeout and MCU's host-watchdog timeout (s); at most
    #: 0.2 s like the real boards' (SAFETY.md T03).
    command_timeout_s: Annotated[float, Field(gt=0.0, le=MAX_DEVICE_TIMEOUT_S)] = 0.2
    heartbeat_timeout_s: Annotated[float, Field(gt=0.0, le=MAX_DEVICE_TIMEOUT_S)] = 0.2
    faults: list[FaultCfg] = Field(default_factory=list, max_length=MAX_FAULTS)
    obstacles: list[ObstacleCfg] = Field(default_factory=list, max_length=MAX_OBSTACLES)
    battery: BatteryEmuCfg = Field(default_factory=BatteryEmuCfg)
    #: Emulated tank-pressure sensors by device name (a tank device without an entry gets
    #: the defaults).
    tanks: dict[str, TankEmuCfg] = Field(default_factory=dict, max_length=MAX_DEVICES)

    @field_validator("valve_board_firmware", "mcu_firmware")
    @classmethod
    def _version(cls, v: str) -> str:
        return _checked(fwv.parse_version, v)


# --------------------------------------------------------------------------- controller
class GainsCfg(Strict):
    """PD gains of the pose controller (world frame), plus approach limits."""

    kp_n_per_m: PosFloat = 1.6
    kd_n_per_mps: PosFloat = 4.0
    kp_nm_per_rad: PosFloat = 0.5
    kd_nm_per_radps: PosFloat = 0.6
    max_position_error_m: PosFloat = 0.25
    max_yaw_error_rad: PosFloat = 0.5


class AllocationCfg(Strict):
    """Allocator choice: ``exact`` (weighted least squares, least thrust) or ``pinv_clip``.

    ``axis_weights`` weight the wrench error per axis (Fx, Fy, Mz on the planar rig).
    ``axis_priorities`` (``exact`` only) lists groups of axis names, highest first, e.g.
    ``[[Mz], [Fx, Fy]]`` keeps the yaw torque before the planar force when a demand cannot
    be met; axes not named form a last group. Names are checked against the geometry when
    the rig is built.
    """

    method: Literal["exact", "pinv_clip"] = "exact"
    axis_weights: list[PosFloat] | None = Field(default=None, max_length=6)
    axis_priorities: list[Annotated[list[str], Field(max_length=6)]] | None = Field(default=None, max_length=6)


class OutputGuardCfg(Strict):
    """Limits enforced by the output guard, the last word before the thruster bus."""

    max_thrust_rate_n_per_s: PosFloat = 50.0
    #: Consecutive non-finite setpoints before ``fault`` (SAFETY.md O03 "repeated -> safe").
    max_nonfinite_ticks: Annotated[int, Field(ge=1, le=10)] = 3


class SafetyCfg(Strict):
    """Freshness and lag monitoring (SAFETY.md defaults).

    ``stale_after_periods``: a watched stream is stale after this many missed periods,
    2..5 (SAFETY.md B01-B03: 3). ``max_overruns_per_s``: more overruns than this in one
    second is "system lagging" -> safe, 1..10 (SAFETY.md T02: 5), and below the tick rate
    (checked by :func:`load_rig`).
    """

    stale_after_periods: Annotated[int, Field(ge=MIN_STALE_AFTER_PERIODS, le=MAX_STALE_AFTER_PERIODS)] = 3
    max_overruns_per_s: Annotated[int, Field(ge=1, le=10)] = 5


class RealtimeKnobsCfg(Strict):
    """Real-time knobs of the controller process, applied at the start of a real-time run.

    Nothing is asked by default. ``sched_fifo_priority`` asks for SCHED_FIFO at that
    priority (1..99, sched(7)); ``cpu_affinity`` pins the control thread to these CPU ids
    (1..64 distinct ids >= 0; whether they exist is checked on the machine, at start);
    ``mlockall`` locks current and future pages (mlockall(2)); ``gc_freeze`` runs a full
    collection then moves every object to the permanent generation (``gc.freeze``). A
    knob the OS refuses is reported in ``summary.json`` and the run goes on
    (controller/rt_knobs.py, docs/realtime.md).
    """

    sched_fifo_priority: Annotated[int, Field(ge=1, le=99)] | None = None
    cpu_affinity: list[Annotated[int, Field(ge=0, le=4095)]] | None = Field(default=None, min_length=1, max_length=64)
    mlockall: bool = False
    gc_freeze: bool = False

    @field_validator("cpu_affinity")
    @classmethod
    def _distinct_cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("CPU ids must be distinct")
        return v


class ControllerCfg(Strict):
    """The control loop: rate, state machine file, allocation, gains and guards."""

    rate_hz: Annotated[float, Field(ge=1.0, le=2000.0)] = 100.0
    fsm: str = "fsm_configs/qiki_vehicle.yaml"
    allocation: AllocationCfg = Field(default_factory=AllocationCfg)
    gains: GainsCfg = Field(default_factory=GainsCfg)
    output_guard: OutputGuardCfg = Field(default_factory=OutputGuardCfg)
    safety: SafetyCfg = Field(default_factory=SafetyCfg)
    post_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    realtime: RealtimeKnobsCfg = Field(default_factory=RealtimeKnobsCfg)


class RadarCfg(Strict):
    """Radar fusion, tracking and the keep-out guard (issue 3)."""

    sr_threshold_m: PosFloat = 4.0
    keep_out_radius_m: PosFloat = 0.6
    min_ttc_s: PosFloat = 2.0
    confirm_m: Annotated[int, Field(ge=1, le=50)] = 3
    confirm_n: Annotated[int, Field(ge=1, le=50)] = 5
    delete_misses: Annotated[int, Field(ge=1, le=100)] = 5
    meas_std_m: PosFloat = 0.3
    q_accel_mps2: PosFloat = 0.5


class PowerCfg(Strict):
    """Arming and mission limits on the battery (issue 5, SAFETY.md O01)."""

    min_soc_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 30.0
    mission_min_soc_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 15.0
    max_temperature_c: Annotated[float, Field(ge=-40.0, le=150.0)] = 55.0


class RigCfg(Strict):
    """A whole rig: vehicle, thrusters, buses, devices, optional emulation, controller."""

    name: str
    vehicle: VehicleCfg
    thrusters: list[ThrusterCfg] = Field(min_length=1, max_length=MAX_THRUSTERS)
    buses: dict[str, BusCfg] = Field(max_length=MAX_BUSES)
    devices: dict[str, DeviceCfg] = Field(max_length=MAX_DEVICES)
    emulation: EmulationCfg | None = None
    controller: ControllerCfg = Field(default_factory=ControllerCfg)
    radar: RadarCfg | None = None
    power: PowerCfg | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> RigCfg:
        names = [t.name for t in self.thrusters]
        if len(set(names)) != len(names):
            raise ValueError("thruster names must be unique")
        for dev_name, dev in self.devices.items():
            if dev.bus not in self.buses:
                raise ValueError(f"device {dev_name!r} names unknown bus {dev.bus!r}")
        return self


def _thruster_checks(rig: RigCfg, name: str) -> None:
    boards = [d for d in rig.devices.values() if isinstance(d, ValveBoardDeviceCfg)]
    if not boards:
        raise ConfigError(name, "devices", "a rig needs one valve_board device")
    board = boards[0]
    dims = {len(t.position_m) for t in rig.thrusters}
    if len(dims) != 1:
        raise ConfigError(name, "thrusters", "mixed 2-D and 3-D thruster positions")
    if len(rig.thrusters) > board.n_valves:
        raise ConfigError(name, "thrusters", f"{len(rig.thrusters)} thrusters but the board has {board.n_valves} valves")
    for i, t in enumerate(rig.thrusters):
        if t.max_thrust_n > board.max_thrust_n:
            raise ConfigError(
                name,
                f"thrusters[{i}].max_thrust_n",
                f"{t.max_thrust_n} N is above the valve board maximum {board.max_thrust_n} N",
            )
        if t.valve is not None and t.valve >= board.n_valves:
            raise ConfigError(name, f"thrusters[{i}].valve", f"valve {t.valve} does not exist on the board")


def _ticks_s(period_s: float, tick_s: float) -> float:
    """``period_s`` rounded up to whole control ticks (s): when a per-tick sender acts."""
    return max(1, math.ceil(period_s / tick_s - 1e-9)) * tick_s


def _budget_checks(rig: RigCfg, name: str) -> None:
    """Cross-field safety budgets (module docstring table); one :class:`ConfigError` each.

    * MCU: the gap between host heartbeats -- ``heartbeat_period_s`` rounded up to whole
      control ticks, since heartbeats leave in the write phase -- is at most half of every
      watchdog that applies: the device's ``watchdog_timeout_s`` and, on an emulated rig,
      ``emulation.heartbeat_timeout_s`` (issue 10: "heartbeat period <= watchdog / 2";
      one lost heartbeat must not drop the valve rail).
    * Valve board: one ``VB_Command`` per control tick; the tick is at most half of the
      board's ``command_timeout_s`` and of ``emulation.command_timeout_s`` (same rule).
    * ``controller.safety.max_overruns_per_s`` is below the tick rate, else the lag
      monitor (SAFETY.md T02) can never trip.
    """
    rate_hz = rig.controller.rate_hz
    tick_s = 1.0 / rate_hz
    emu = rig.emulation
    for dev_name, dev in rig.devices.items():
        if isinstance(dev, McuDeviceCfg):
            gap_s = _ticks_s(dev.heartbeat_period_s, tick_s)
            watchdogs = [(f"devices.{dev_name}.watchdog_timeout_s", dev.watchdog_timeout_s)]
            if emu is not None:
                watchdogs.append(("emulation.heartbeat_timeout_s", emu.heartbeat_timeout_s))
            for wd_key, wd_s in watchdogs:
                if gap_s > wd_s / 2 + 1e-9:
                    raise ConfigError(
                        name, f"devices.{dev_name}.heartbeat_period_s",
                        f"heartbeats {gap_s * 1000:.0f} ms apart (at {rate_hz:g} Hz ticks) exceed half the "
                        f"MCU watchdog {wd_key} = {wd_s:g} s (heartbeat period <= watchdog / 2)")
        elif isinstance(dev, ValveBoardDeviceCfg):
            timeouts = [(f"devices.{dev_name}.command_timeout_s", dev.command_timeout_s)]
            if emu is not None:
                timeouts.append(("emulation.command_timeout_s", emu.command_timeout_s))
            for t_key, t_s in timeouts:
                if tick_s > t_s / 2 + 1e-9:
                    raise ConfigError(
                        name, "controller.rate_hz",
                        f"one valve command per tick, {tick_s * 1000:.0f} ms apart, exceeds half the valve board "
                        f"command timeout {t_key} = {t_s:g} s (command period <= timeout / 2)")
    n_over = rig.controller.safety.max_overruns_per_s
    if n_over >= rate_hz:
        raise ConfigError(
            name, "controller.safety.max_overruns_per_s",
            f"{n_over} overruns in 1 s cannot happen at {rate_hz:g} Hz: the lag monitor would never trip "
            "(SAFETY.md T02)")


def thruster_valves(rig: RigCfg) -> list[int]:
    """Return the valve index of each thruster.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.

    Returns
    -------
    list of int, shape (N,)
        Per thruster, in file order: its explicit ``valve``, else its list position.
    """
    return [t.valve if t.valve is not None else i for i, t in enumerate(rig.thrusters)]


def load_rig(path: str | Path) -> tuple[RigCfg, Path]:
    """Load and validate a rig file.

    Parameters
    ----------
    path : str or Path
        Rig YAML, as the user named it (looked up with :func:`resolve_data_path`).

    Returns
    -------
    (RigCfg, Path)
        The validated rig and the resolved file path (for resolving files it names).

    Raises
    ------
    ConfigError
        One line with file and key path (SAFETY.md K03, K04, K06), including the
        cross-field safety budgets of :func:`_budget_checks`.
    """
    name = str(path)
    resolved = resolve_data_path(path)
    rig = load_model(RigCfg, resolved, name)
    _thruster_checks(rig, name)
    valves = thruster_valves(rig)
    if len(set(valves)) != len(valves):
        raise ConfigError(name, "thrusters", "two thrusters share one valve")
    _budget_checks(rig, name)
    return rig, resolved


# --------------------------------------------------------------------------- missions
class WaypointCfg(Strict):
    """A pose to reach (world frame) and how long to hold it once reached."""

    x_m: Annotated[float, Field(ge=-100.0, le=100.0)]
    y_m: Annotated[float, Field(ge=-100.0, le=100.0)]
    yaw_deg: Annotated[float, Field(ge=-360.0, le=360.0)] = 0.0
    hold_s: Annotated[float, Field(ge=0.0, le=3600.0)] = 0.0


class MissionCfg(Strict):
    """A mission: waypoints flown in order, with reach tolerances and a time limit."""

    name: str
    waypoints: list[WaypointCfg] = Field(min_length=1, max_length=MAX_WAYPOINTS)
    reach_tolerance_m: Annotated[float, Field(gt=0.0, le=10.0)] = 0.03
    reach_speed_mps: Annotated[float, Field(gt=0.0, le=10.0)] = 0.03
    reach_yaw_tolerance_deg: Annotated[float, Field(gt=0.0, le=180.0)] = 5.0
    timeout_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = 300.0


def load_mission(path: str | Path) -> MissionCfg:
    """Load and validate a mission file (raises :class:`ConfigError`, one line)."""
    return load_model(MissionCfg, resolve_data_path(path), str(path))


# --------------------------------------------------------------------------- device profiles
def load_profile(path: str | Path, relative_to: str | Path | None = None) -> DeviceProfile:
    """Load and validate a Modbus device profile YAML (strict; unknown keys rejected).

    Parameters
    ----------
    path : str or Path
        Profile file, as written by the user or the rig (``rigs/profiles/jk_bms.yaml``).
    relative_to : str or Path, optional
        The rig file naming it (see :func:`controller.paths.resolve_data_path`).

    Returns
    -------
    DeviceProfile

    Raises
    ------
    ConfigError
        One line with file and key path (SAFETY.md K03/K04).
    """
    return load_model(DeviceProfile, resolve_data_path(path, relative_to), str(path))
