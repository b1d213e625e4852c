"""Composition of the tank-pressure sensor: its rig checks, driver, component and emulator.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` runs every build-time rule without opening
a port (called by :func:`controller.rig.check_rig`); :func:`build` is the family's entry
in :data:`controller.rig.build.COMPONENT_BUILDERS`. See
:mod:`controller.components.tank` for what the sensor does in the tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from controller.components.tank import TankComponent
from controller.config import CanBusCfg, RigCfg, TankEmuCfg, TankPressureDeviceCfg
from controller.errors import ConfigError
from controller.rig.context import BuildContext
from firmware_bridge.protocols import tank_pressure as tp
from hal.devices.tank_pressure import TankPressureDriver

if TYPE_CHECKING:
    from controller.rig.check import CheckedCanBus
    from firmware_bridge.emulation.tank_pressure import TankPressureEmulator

__all__ = ["build", "check", "emulate"]


def _tank(rig: RigCfg) -> tuple[str, TankPressureDeviceCfg] | None:
    tanks = [(k, d) for k, d in rig.devices.items() if isinstance(d, TankPressureDeviceCfg)]
    return tanks[0] if tanks else None


def check(rig: RigCfg, name: str, can_buses: Mapping[str, CheckedCanBus]) -> list[tuple[str, str, float | None]]:
    """Every build-time check of the tank-pressure sensor, without opening a port.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    name : str
        The rig file, for errors.
    can_buses : mapping of str to CheckedCanBus
        The checked DBCs of each CAN bus.

    Returns
    -------
    list of (bus name, message, period_s or None)
        The streams the driver judges stale, with the period it expects (the DBC
        ``GenMsgCycleTime``); :func:`controller.rig.check_rig` holds them to the rules
        every watched stream obeys (> 0, at most 1 s, not shorter than the tick).

    Raises
    ------
    ConfigError
        More than one tank sensor; the sensor not on a CAN bus; ``emulation.tanks``
        naming something that is not a tank sensor.
    BusConfigError
        The bus's DBCs lack ``TANK_Status`` or one of its signals (SAFETY.md K02).
    """
    tanks = [k for k, d in rig.devices.items() if isinstance(d, TankPressureDeviceCfg)]
    if rig.emulation is not None:
        for key in rig.emulation.tanks:
            if key not in tanks:
                raise ConfigError(name, f"emulation.tanks.{key}", f"{key!r} is not a tank_pressure device of this rig")
    if not tanks:
        return []
    if len(tanks) > 1:
        raise ConfigError(name, "devices", f"at most one tank_pressure device is supported (got {', '.join(tanks)})")
    dev_name, dev = tanks[0], rig.devices[tanks[0]]
    assert isinstance(dev, TankPressureDeviceCfg)
    if not isinstance(rig.buses[dev.bus], CanBusCfg):
        raise ConfigError(name, f"devices.{dev_name}.bus", "the tank pressure sensor needs a CAN bus")
    bus = can_buses[dev.bus]
    driver = TankPressureDriver(bus.codec, max_pressure_bar=dev.max_pressure_bar)
    return [(dev.bus, tp.STATUS, driver.period_s)]


def build(ctx: BuildContext) -> TankComponent | None:
    """Build the tank-pressure component of a rig, or None when the rig has no sensor.

    The driver joins the rig's CAN port; on an emulated rig the emulated sensor opens
    its own node on the same virtual bus and steps at the physics rate (``sim.extra``),
    its tank blown down by the valve board emulator's open fractions; it is the target
    of the ``emulation.faults`` entries naming the tank (``silent``, ``sensor_fault``).

    Parameters
    ----------
    ctx : BuildContext
        Validated rig, CAN ports and DBC paths, the simulation (emulated rigs).

    Returns
    -------
    TankComponent or None
    """
    rig: RigCfg = ctx.cfg
    found = _tank(rig)
    if found is None:
        return None
    dev_name, dev = found
    codec = ctx.can_codecs[dev.bus]
    driver = TankPressureDriver(codec, max_pressure_bar=dev.max_pressure_bar,
                                stale_after_periods=rig.controller.safety.stale_after_periods)
    port = ctx.can_ports[dev.bus]
    for arb_id in driver.arbitration_ids:
        port.register(arb_id, driver.on_frame)
    port.add_checker_stats(driver.checker)
    emulator = None
    if ctx.sim is not None and rig.emulation is not None:
        emulator = _emulate(ctx, dev_name, dev)
    return TankComponent(dev_name, driver, dev.min_pressure_bar, emulated=emulator)


def _emulate(ctx: BuildContext, dev_name: str, dev: TankPressureDeviceCfg) -> TankPressureEmulator:
    """Build the emulated sensor on its own CAN node, stepped from ``ctx.sim`` (an emulated rig)."""
    from firmware_bridge.emulation.tank_pressure import TankPressureEmulator

    rig: RigCfg = ctx.cfg
    assert ctx.sim is not None and rig.emulation is not None  # callers: an emulated build
    e = rig.emulation.tanks.get(dev_name, TankEmuCfg())
    emulator = TankPressureEmulator(
        ctx.open_emulator_can(dev.bus), ctx.can_codecs[dev.bus],
        open_fractions=ctx.sim.valve_board.open_fractions,
        start_pressure_bar=e.start_pressure_bar, bar_per_valve_s=e.bar_per_valve_s,
        leak_bar_per_s=e.leak_bar_per_s, temperature_c=e.temperature_c)
    ctx.sim.extra.append(emulator)
    if ctx.faults is not None:
        ctx.faults.add(dev_name, emulator)  # emulation.faults entries naming the tank
    return emulator


def emulate(ctx: BuildContext) -> None:
    """Build the tank sensor's emulator only: the far end of a two-process rig.

    What :func:`build` adds to ``ctx.sim`` on an emulated rig, without the driver or the
    component (``qiki emulate``, :func:`controller.rig.far_end.build_far_end`).

    Parameters
    ----------
    ctx : BuildContext
        The far end's context (``sim``, ``faults``, ``open_emulator_can``; no host port).
    """
    found = _tank(ctx.cfg)
    if found is not None and ctx.sim is not None and ctx.cfg.emulation is not None:
        _emulate(ctx, *found)
