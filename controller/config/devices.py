"""Schemas of the devices on a rig's buses, and the loader of Modbus device profiles.

``DeviceCfg`` is the union a rig's ``devices:`` mapping holds, told apart by ``driver``:
the valve board, the MCU, the ARS408 and IWR6843 radars, the BMS and PDU (described by
a device profile, :func:`load_profile`) and the tank-pressure sensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from controller.config.common import MAX_DEVICE_TIMEOUT_S, MAX_WATCHED_PERIOD_S, Strict, _checked
from controller.paths import resolve_data_path
from controller.yamlio import load_model
from firmware_bridge.protocols import firmware_version as fwv
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.devices.valve_board import NODE_ID_MAX


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
    #: watchdog (checked by :func:`~controller.config.load_rig`).
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
