"""Schemas of a virtual rig's far end: the emulated world, boards, faults and tanks.

``EmulationCfg`` is a rig's optional ``emulation:`` section; with it, emulators play
the far end of every bus (``firmware_bridge.emulation``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.config.common import (
    MAX_DEVICE_TIMEOUT_S,
    MAX_DEVICES,
    MAX_FAULTS,
    MAX_OBSTACLES,
    NonNegFloat,
    Strict,
    _checked,
)
from firmware_bridge.protocols import firmware_version as fwv


class FaultCfg(Strict):
    """One scheduled fault in an emulated run.

    ``fault`` names what happens at ``at_s`` (simulated seconds since start):
    ``host_heartbeat_loss`` (heartbeats to the MCU are lost on the wire),
    ``mcu_silent``, ``valve_board_silent``, ``estop_press``, ``estop_release``,
    ``valve_stuck_closed`` (``valve`` index), ``valve_board_reboot``,
    ``serial_garbage`` (``length`` random bytes into the MCU link).
    """

    at_s: NonNegFloat
    fault: Literal[
        "host_heartbeat_loss",
        "mcu_silent",
        "valve_board_silent",
        "estop_press",
        "estop_release",
        "valve_stuck_closed",
        "valve_board_reboot",
        "serial_garbage",
    ]
    valve: Annotated[int, Field(ge=0, le=7)] | None = None
    length: Annotated[int, Field(ge=1, le=100_000)] = 64


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


class PowerFaultCfg(Strict):
    """A Modbus fault on one emulated power device (see ``firmware_bridge.emulation.power``)."""

    device: str
    kind: Literal["silent", "exception", "slow", "wrong_unit", "corrupt", "alarm"]
    start_s: NonNegFloat = 0.0
    end_s: NonNegFloat | None = None
    exception_code: Annotated[int, Field(ge=1, le=255)] = 4
    delay_s: NonNegFloat = 0.0
    alarm_bits: Annotated[int, Field(ge=0)] = 0


class TankEmuCfg(Strict):
    """Emulated tank-pressure sensor (``firmware_bridge.emulation.tank_pressure``).

    The tank starts at ``start_pressure_bar`` and loses ``bar_per_valve_s`` per second of
    one valve open, plus ``leak_bar_per_s``. The sensor sends nothing from
    ``silent_from_s`` (simulated seconds since start; None: never) until
    ``silent_until_s`` (None: for good).
    """

    start_pressure_bar: Annotated[float, Field(ge=0.0, le=400.0)] = 200.0
    bar_per_valve_s: Annotated[float, Field(ge=0.0, le=100.0)] = 1.5
    leak_bar_per_s: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    temperature_c: Annotated[float, Field(ge=-40.0, le=125.0)] = 20.0
    silent_from_s: NonNegFloat | None = None
    silent_until_s: NonNegFloat | None = None


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
    power_faults: list[PowerFaultCfg] = Field(default_factory=list, max_length=MAX_FAULTS)
    #: Emulated tank-pressure sensors by device name (a tank device without an entry gets
    #: the defaults).
    tanks: dict[str, TankEmuCfg] = Field(default_factory=dict, max_length=MAX_DEVICES)

    @field_validator("valve_board_firmware", "mcu_firmware")
    @classmethod
    def _version(cls, v: str) -> str:
        return _checked(fwv.parse_version, v)
