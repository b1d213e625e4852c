"""Schemas of the rig and mission files: one validation layer for every YAML QIKI reads.

All models forbid unknown keys, are strict about types (a string is never coerced into a
number), refuse NaN and infinities, and carry units in field names (ARCHITECTURE.md 6,
SAFETY.md K03/K04). A failing file is reported as one line, ``PATH: key.path: what``.

Safety budgets (SAFETY.md) are bounded here, so that no file can stretch a detection time
beyond what SAFETY.md promises (issue 10, part 6); the bounds and their sources are
tabled in :mod:`controller.config.common`. Every list and mapping has a maximum length,
so that a file cannot make the loader or the controller do unbounded work (issue 10,
part 7; SAFETY.md F05 "bounded memory").

The package, by family (each name is re-exported here; import it from
``controller.config``):

==================  ======================================================================
module              holds
==================  ======================================================================
``common``          ``Strict`` (the base model), ``PosFloat``/``NonNegFloat``, the bounds
                    (``MAX_WATCHED_PERIOD_S``, ``MAX_FAULTS``, ...)
``buses``           ``CanBusCfg``, ``SerialBusCfg``, ``ModbusBusCfg``, the ``BusCfg`` union
``devices``         one schema per driver, the ``DeviceCfg`` union, :func:`load_profile`
``emulation``       ``EmulationCfg`` and its parts (world, faults, obstacles, battery, tanks)
``controller_cfg``  ``ControllerCfg`` and its parts (allocation, gains, guard, safety,
                    real-time knobs), ``RadarCfg``, ``PowerCfg``
``rig``             ``VehicleCfg``, ``ThrusterCfg``, ``RigCfg``, :func:`load_rig` with the
                    cross-field checks, :func:`thruster_valves`
``mission``         ``WaypointCfg``, ``MissionCfg``, :func:`load_mission`
``record``          ``RecordCfg`` (the flight record: snapshot period; full, event-triggered
                    or off)
==================  ======================================================================
"""

from __future__ import annotations

from controller.config.buses import BusCfg, CanBusCfg, ModbusBusCfg, SerialBusCfg
from controller.config.common import (
    MAX_BUSES,
    MAX_DBC_FILES,
    MAX_DEVICE_TIMEOUT_S,
    MAX_DEVICES,
    MAX_FAULTS,
    MAX_OBSTACLES,
    MAX_STALE_AFTER_PERIODS,
    MAX_THRUSTERS,
    MAX_WATCHED_PERIOD_S,
    MAX_WAYPOINTS,
    MIN_STALE_AFTER_PERIODS,
    NonNegFloat,
    PosFloat,
    Strict,
)
from controller.config.controller_cfg import (
    AllocationCfg,
    ControllerCfg,
    GainsCfg,
    OutputGuardCfg,
    PowerCfg,
    RadarCfg,
    RealtimeKnobsCfg,
    SafetyCfg,
)
from controller.config.devices import (
    Ars408DeviceCfg,
    BmsDeviceCfg,
    DeviceCfg,
    Iwr6843DeviceCfg,
    McuDeviceCfg,
    MountCfg,
    PduDeviceCfg,
    TankPressureDeviceCfg,
    ValveBoardDeviceCfg,
    load_profile,
)
from controller.config.emulation import (
    BatteryEmuCfg,
    EmulationCfg,
    FaultCfg,
    ObstacleCfg,
    TankEmuCfg,
    WorldCfg,
)
from controller.config.mission import MissionCfg, WaypointCfg, load_mission
from controller.config.record import MAX_SNAPSHOT_PERIOD_S, RecordCfg
from controller.config.rig import RigCfg, ThrusterCfg, VehicleCfg, load_rig, thruster_valves

__all__ = [
    # common
    "MAX_BUSES",
    "MAX_DBC_FILES",
    "MAX_DEVICES",
    "MAX_DEVICE_TIMEOUT_S",
    "MAX_FAULTS",
    "MAX_OBSTACLES",
    "MAX_STALE_AFTER_PERIODS",
    "MAX_THRUSTERS",
    "MAX_WATCHED_PERIOD_S",
    "MAX_WAYPOINTS",
    "MIN_STALE_AFTER_PERIODS",
    "NonNegFloat",
    "PosFloat",
    "Strict",
    # buses
    "BusCfg",
    "CanBusCfg",
    "ModbusBusCfg",
    "SerialBusCfg",
    # devices
    "Ars408DeviceCfg",
    "BmsDeviceCfg",
    "DeviceCfg",
    "Iwr6843DeviceCfg",
    "McuDeviceCfg",
    "MountCfg",
    "PduDeviceCfg",
    "TankPressureDeviceCfg",
    "ValveBoardDeviceCfg",
    "load_profile",
    # emulation
    "BatteryEmuCfg",
    "EmulationCfg",
    "FaultCfg",
    "ObstacleCfg",
    "TankEmuCfg",
    "WorldCfg",
    # controller_cfg
    "AllocationCfg",
    "ControllerCfg",
    "GainsCfg",
    "OutputGuardCfg",
    "PowerCfg",
    "RadarCfg",
    "RealtimeKnobsCfg",
    "SafetyCfg",
    # rig
    "RigCfg",
    "ThrusterCfg",
    "VehicleCfg",
    "load_rig",
    "thruster_valves",
    # mission
    "MissionCfg",
    "WaypointCfg",
    "load_mission",
    # record
    "MAX_SNAPSHOT_PERIOD_S",
    "RecordCfg",
]
