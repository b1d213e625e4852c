"""Composition of the fault plan: ``emulation.faults`` checked, then wired to the emulators.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` resolves every entry of a rig's
``emulation.faults`` against the ``FAULTS`` of the emulator that will play its target
device (no port opened), so ``qiki rig check`` refuses an unknown target, fault or
parameter naming the key (``emulation.faults[3].fault``). :class:`FaultWiring` hands the
checked entries to the emulators while the rig is built: the emulators the simulation
steps share one plan, stepped at every physics step; an emulated Modbus device gets a
plan of its own, stepped at every request it answers (``docs/fault-plans.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from controller.config import (
    Ars408DeviceCfg,
    BmsDeviceCfg,
    Iwr6843DeviceCfg,
    McuDeviceCfg,
    PduDeviceCfg,
    RigCfg,
    TankPressureDeviceCfg,
    ValveBoardDeviceCfg,
)
from controller.errors import ConfigError
from firmware_bridge.emulation.faults import (
    FaultEntry,
    FaultPlan,
    FaultPlanError,
    FaultSpec,
    FaultTarget,
    resolve_entry,
)

__all__ = ["FaultWiring", "check", "target_specs"]

#: Event sink of the build, ``(tick, time_s, kind, **fields)``.
Record = Callable[..., None]


def target_specs(rig: RigCfg, options: Mapping[str, object] | None = None) -> dict[str, Mapping[str, FaultSpec]]:
    """Return the faults each device's emulator knows, by device name (emulated rigs).

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    options : mapping, optional
        Run options: with ``lr_replay`` the ARS408 is a replay (it only falls silent).

    Returns
    -------
    dict of str to mapping of str to FaultSpec
        Empty for a rig without ``emulation``.
    """
    if rig.emulation is None:
        return {}
    from firmware_bridge.emulation.ars408 import Ars408Emulator, Ars408ReplayEmulator
    from firmware_bridge.emulation.iwr6843 import Iwr6843Emulator
    from firmware_bridge.emulation.power import JkBmsEmulator, QikiPduEmulator
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.tank_pressure import TankPressureEmulator
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator

    opts = options or {}
    specs: dict[str, Mapping[str, FaultSpec]] = {}
    for name, dev in rig.devices.items():
        if isinstance(dev, ValveBoardDeviceCfg):
            specs[name] = ValveBoardEmulator.FAULTS
        elif isinstance(dev, McuDeviceCfg):
            specs[name] = McuEmulator.FAULTS
        elif isinstance(dev, BmsDeviceCfg):
            specs[name] = JkBmsEmulator.FAULTS
        elif isinstance(dev, PduDeviceCfg):
            specs[name] = QikiPduEmulator.FAULTS
        elif isinstance(dev, TankPressureDeviceCfg):
            specs[name] = TankPressureEmulator.FAULTS
        elif isinstance(dev, Ars408DeviceCfg):
            specs[name] = Ars408ReplayEmulator.FAULTS if opts.get("lr_replay") else Ars408Emulator.FAULTS
        elif isinstance(dev, Iwr6843DeviceCfg):
            specs[name] = Iwr6843Emulator.FAULTS
    return specs


def check(rig: RigCfg, name: str, options: Mapping[str, object] | None = None) -> tuple[FaultEntry, ...]:
    """Resolve ``emulation.faults`` into typed entries, without opening a port.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    name : str
        The rig file, for errors.
    options : mapping, optional
        Run options (see :func:`target_specs`).

    Returns
    -------
    tuple of FaultEntry
        In file order, every parameter filled in (empty without ``emulation``).

    Raises
    ------
    ConfigError
        ``emulation.faults[i].target``: not a device of the rig;
        ``emulation.faults[i].fault``: not a fault of the target's emulator;
        ``emulation.faults[i].until_s``: a window on an instant fault;
        ``emulation.faults[i].PARAM``: a parameter the fault does not take, or a value of
        the wrong type or out of bounds.
    """
    emu = rig.emulation
    if emu is None or not emu.faults:
        return ()
    specs = target_specs(rig, options)
    out = []
    for i, f in enumerate(emu.faults):
        try:
            out.append(resolve_entry(i, f.at_s, f.target, f.fault, f.until_s, f.params, specs))
        except FaultPlanError as exc:
            raise ConfigError(name, f"emulation.faults[{i}].{exc.key}", exc.message) from None
    return tuple(out)


def event_sink(record: Record) -> Callable[[float, FaultEntry, bool], None]:
    """Return the plans' event sink: ``fault_injected`` / ``fault_cleared`` records.

    ``fault_injected``: ``target``, ``fault``, ``index`` (position in
    ``emulation.faults``), ``params``; ``fault_cleared``: ``target``, ``fault``, ``index``.
    """

    def on_event(now_s: float, entry: FaultEntry, applied: bool) -> None:
        if applied:
            record(-1, now_s, "fault_injected", target=entry.target, fault=entry.fault, index=entry.index,
                   params=dict(entry.params))
        else:
            record(-1, now_s, "fault_cleared", target=entry.target, fault=entry.fault, index=entry.index)

    return on_event


@dataclass
class FaultWiring:
    """The checked fault plan while a rig is built: who steps which entries.

    Attributes
    ----------
    entries : tuple of FaultEntry
        From :func:`check`.
    record : callable
        The build's event sink (``fault_injected`` / ``fault_cleared``).
    stepped : dict of str to FaultTarget
        Emulators stepped by the simulation, by device name (:meth:`add`).
    self_stepped : set of str
        Devices whose emulator steps a plan of its own (:meth:`own_plan`).
    """

    entries: tuple[FaultEntry, ...]
    record: Record
    stepped: dict[str, FaultTarget] = field(default_factory=dict)
    self_stepped: set[str] = field(default_factory=set)

    def add(self, name: str, target: FaultTarget) -> None:
        """Register the emulator of device ``name``, stepped at the physics rate."""
        self.stepped[name] = target

    def own_plan(self, name: str, target: FaultTarget) -> FaultPlan:
        """Return the plan of device ``name`` that its emulator steps itself (Modbus: per request)."""
        self.self_stepped.add(name)
        return FaultPlan([e for e in self.entries if e.target == name], {name: target}, event_sink(self.record))

    def simulation_plan(self, rig_name: str) -> FaultPlan:
        """Return the plan of every emulator registered with :meth:`add`.

        Raises
        ------
        ConfigError
            An entry whose target has no emulator in this build (e.g. a radar whose DBC
            lacks its messages, so only POST reports it).
        """
        for e in self.entries:
            if e.target not in self.stepped and e.target not in self.self_stepped:
                raise ConfigError(rig_name, f"emulation.faults[{e.index}].target",
                                  f"device {e.target!r} has no emulator in this run")
        return FaultPlan([e for e in self.entries if e.target in self.stepped], self.stepped,
                         event_sink(self.record))
