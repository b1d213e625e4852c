"""Composition of the fault plan: ``emulation.faults`` checked, then wired to the emulators.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` resolves every entry of a rig's
``emulation.faults`` against the ``FAULTS`` of the emulator that will play its target
device (no port opened), so ``qiki rig check`` refuses an unknown target, fault or
parameter naming the key (``emulation.faults[3].fault``). :class:`FaultWiring` hands the
checked entries to the emulators while the rig is built: the emulators the simulation
steps share one plan, stepped at every physics step; an emulated Modbus device gets a
plan of its own, stepped at every request it answers (``docs/fault-plans.md``). A device on
a serial bus also takes the faults of its link (:data:`SERIAL_LINK_FAULTS`: ``unplug``,
SAFETY.md D12), played on the controller's end of the link (:class:`SerialLinkFaults`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol

import can
from can import BusState

from controller.config import (
    Ars408DeviceCfg,
    BmsDeviceCfg,
    CanBusCfg,
    Iwr6843DeviceCfg,
    McuDeviceCfg,
    PduDeviceCfg,
    RigCfg,
    SerialBusCfg,
    TankPressureDeviceCfg,
    ValveBoardDeviceCfg,
)
from controller.errors import ConfigError
from firmware_bridge.emulation.faults import (
    FaultEntry,
    FaultParam,
    FaultParams,
    FaultPlan,
    FaultPlanError,
    FaultSpec,
    FaultTarget,
    resolve_entry,
)
from hal.can.faulty import ANY_ID, FaultyBus

__all__ = ["HOST_TARGET", "SERIAL_LINK_FAULTS", "CanBusFaults", "FaultWiring", "HostFaults", "RigFaults",
           "SerialLinkFaults", "Unpluggable", "check", "target_specs"]

#: Target name of the controller's own process faults (:class:`HostFaults`).
HOST_TARGET: Final = "host"

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
    for name, dev in rig.devices.items():  # a device on a serial bus: its link's faults too (D12)
        if name in specs and isinstance(rig.buses.get(dev.bus), SerialBusCfg):
            own = specs[name]
            clash = sorted(set(own) & set(SERIAL_LINK_FAULTS))
            assert not clash, f"{name}: emulator faults {clash} shadow the serial link's"
            specs[name] = MappingProxyType({**own, **SERIAL_LINK_FAULTS})
    for name, bus in rig.buses.items():  # the host's CAN adapters (the rig check: names unique)
        if isinstance(bus, CanBusCfg) and name not in specs:
            specs[name] = CanBusFaults.FAULTS
    if HOST_TARGET not in specs:
        specs[HOST_TARGET] = HostFaults.FAULTS
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
    links : dict of str to FaultTarget
        The controller's end of a device's serial link, by device name (:meth:`add_link`).
    """

    entries: tuple[FaultEntry, ...]
    record: Record
    stepped: dict[str, FaultTarget] = field(default_factory=dict)
    self_stepped: set[str] = field(default_factory=set)
    links: dict[str, FaultTarget] = field(default_factory=dict)

    def add(self, name: str, target: FaultTarget) -> None:
        """Register the emulator of device ``name``, stepped at the physics rate."""
        self.stepped[name] = target

    def add_link(self, name: str, target: FaultTarget) -> None:
        """Register the serial-link faults of device ``name`` (:class:`SerialLinkFaults`), stepped by the simulation."""
        self.links[name] = target

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
            lacks its messages, so only POST reports it), or a serial-link fault whose
            device's link the controller does not open in this process (``qiki emulate``).
        """
        for e in self.entries:
            if e.target not in self.stepped and e.target not in self.self_stepped:
                raise ConfigError(rig_name, f"emulation.faults[{e.index}].target",
                                  f"device {e.target!r} has no emulator in this run")
            own = self.stepped.get(e.target)
            if (e.fault in SERIAL_LINK_FAULTS and e.target not in self.links
                    and (own is None or e.fault not in own.FAULTS)):  # a CAN bus's unplug is its own
                raise ConfigError(rig_name, f"emulation.faults[{e.index}].fault",
                                  f"{e.fault!r} acts on the controller's end of {e.target!r}'s serial link, "
                                  "which this process does not open")
        targets: dict[str, FaultTarget] = dict(self.stepped)
        for name, link in self.links.items():
            targets[name] = _DeviceAndLink(targets[name], link) if name in targets else link
        return FaultPlan([e for e in self.entries if e.target in targets], targets, event_sink(self.record))


# ---------------------------------------------------------------------------- CAN buses and the host

def _p(**params: FaultParam) -> Mapping[str, FaultParam]:
    return MappingProxyType(params)


_ID = FaultParam(int, ANY_ID, -1, 0x7FF, "11-bit arbitration ID the fault applies to (-1: every ID)")
_PROB = FaultParam(float, 1.0, 0.0, 1.0, "probability per received frame")
_FLOODS: Final = ("babble", "fuzz", "foreign_command")
_PROB_KNOBS: Final = {"loss": "rx_drop_prob", "corrupt": "rx_corrupt_prob", "wrong_dlc": "rx_dlc_error_prob"}


class CanBusFaults:
    """Fault-plan target of one emulated CAN bus: the host's adapter, through a :class:`FaultyBus`.

    The ``target`` of such an entry is the bus name (``can0``). Faults act on what the
    controller's adapter sees and sends, not on one device, so they also play the
    devices' frame-level faults (``freeze`` for a frozen sensor, ``loss`` on one ID for a
    lost heartbeat).

    Parameters
    ----------
    bus : FaultyBus
        The wrapper around the host's bus.
    """

    #: The faults of a CAN bus target (``docs/fault-plans.md``).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "bus_off": FaultSpec("the controller is bus-off: state ERROR, every send refused (B04)"),
        "error_passive": FaultSpec("the controller is error-passive: state PASSIVE (B05)"),
        "send_refuse": FaultSpec("every send is refused, transmit buffer full (B06)"),
        "send_refuse_n": FaultSpec("the next `count` sends are refused (B06)", _p(
            count=FaultParam(int, 3, 1, 1_000_000, "sends refused")), windowed=False),
        "unplug": FaultSpec("the adapter is gone: recv and send raise (B07)"),
        "rx_death": FaultSpec("the receive path dies: recv raises, sends still go out (B07)"),
        "loss": FaultSpec("received frames are lost (B02 at a rate, D04 on one ID)", _p(id=_ID, prob=_PROB)),
        "corrupt": FaultSpec("one payload bit of received frames is flipped (F01)", _p(id=_ID, prob=_PROB)),
        "wrong_dlc": FaultSpec("received frames lose their last byte (F03)", _p(id=_ID, prob=_PROB)),
        "freeze": FaultSpec("frames of one ID repeat the last payload seen before the fault (D01, F02)", _p(
            id=FaultParam(int, 0x60A, 0, 0x7FF, "11-bit arbitration ID to freeze"))),
        "late": FaultSpec("every received frame is delivered late, as by a buffering adapter (B03)", _p(
            delay_s=FaultParam(float, 0.05, 0.0, 10.0, "delivery delay, s"))),
        "babble": FaultSpec("a babbling node floods the bus with one ID (B08)", _p(
            id=FaultParam(int, 0x000, 0, 0x7FF, "11-bit arbitration ID of the flood"),
            frames_per_s=FaultParam(float, 30_000.0, 1.0, 1_000_000.0,
                                    "frames per second (30000: 300 per 10 ms tick)"))),
        "fuzz": FaultSpec("random frames (random 11-bit ID, DLC and bytes) at a rate (F05)", _p(
            frames_per_s=FaultParam(float, 1000.0, 1.0, 1_000_000.0, "frames per second"))),
        "foreign_command": FaultSpec("another node sends zero frames with our command ID (B09)", _p(
            id=FaultParam(int, 0x101, 0, 0x7FF, "11-bit arbitration ID (our command)"),
            frames_per_s=FaultParam(float, 100.0, 1.0, 100_000.0, "frames per second"))),
        "error_frame": FaultSpec("error frames arrive (F04); class bits as in linux/can/error.h", _p(
            error_class=FaultParam(int, 0x004, 0, 0x1FFFFFFF, "error class (CAN ID of the error frame)"),
            ctrl=FaultParam(int, 0, 0, 255, "controller status byte (data[1])"),
            count=FaultParam(int, 1, 1, 100_000, "frames")), windowed=False),
        "remote_frame": FaultSpec("remote frames with one ID arrive (F04)", _p(
            id=FaultParam(int, 0x181, 0, 0x7FF, "11-bit arbitration ID"),
            count=FaultParam(int, 1, 1, 100_000, "frames")), windowed=False),
        "wall_clock_step": FaultSpec("the wall clock steps: received frames' timestamps jump (B10)", _p(
            step_s=FaultParam(float, 3600.0, -1e9, 1e9, "step, s"))),
    })

    def __init__(self, bus: FaultyBus) -> None:
        self.bus = bus

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``fault`` (a key of :data:`FAULTS`) with checked ``params`` at ``now_s`` (s)."""
        b = self.bus
        if fault == "bus_off":
            b.forced_state = BusState.ERROR
        elif fault == "error_passive":
            b.forced_state = BusState.PASSIVE
        elif fault == "send_refuse":
            b.send_fail_always = True
        elif fault == "send_refuse_n":
            b.fail_sends += int(params["count"])
        elif fault == "unplug":
            b.unplugged = True
        elif fault == "rx_death":
            b.rx_dead = True
        elif fault in _PROB_KNOBS:
            b.fault_id = int(params["id"])
            setattr(b, _PROB_KNOBS[fault], float(params["prob"]))
        elif fault == "freeze":
            b.frozen_ids[int(params["id"])] = None
        elif fault == "late":
            b.delay_s = float(params["delay_s"])
        elif fault in _FLOODS:
            b.start_flood(fault, float(params["frames_per_s"]), now_s, int(params.get("id", 0)))
        elif fault == "error_frame":
            data = bytes([0, int(params["ctrl"]), 0, 0, 0, 0, 0, 0])
            for _ in range(int(params["count"])):
                b.inject(can.Message(arbitration_id=int(params["error_class"]), is_error_frame=True,
                                     is_extended_id=True, data=data, timestamp=now_s))
        elif fault == "remote_frame":
            for _ in range(int(params["count"])):
                b.inject(can.Message(arbitration_id=int(params["id"]), is_remote_frame=True,
                                     is_extended_id=False, dlc=8, timestamp=now_s))
        elif fault == "wall_clock_step":
            b.timestamp_offset_s += float(params["step_s"])

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End the windowed ``fault`` at ``now_s`` (s)."""
        b = self.bus
        if fault in ("bus_off", "error_passive"):
            b.forced_state = None
        elif fault == "send_refuse":
            b.send_fail_always = False
        elif fault == "unplug":
            b.unplugged = False
        elif fault == "rx_death":
            b.rx_dead = False
        elif fault in _PROB_KNOBS:
            setattr(b, _PROB_KNOBS[fault], 0.0)
        elif fault == "freeze":
            b.frozen_ids.pop(int(params["id"]), None)
        elif fault == "late":
            b.delay_s = 0.0  # frames already held are still delivered at their time
        elif fault in _FLOODS:
            b.stop_flood(fault)
        elif fault == "wall_clock_step":
            b.timestamp_offset_s -= float(params["step_s"])


class HostFaults:
    """Fault-plan target ``host``: faults of the controller's own process seen by the tick.

    ``overruns`` adds injected overruns (ticks that ran past their deadline, as an
    injected tick delay would make them) to what the loop counts, at ``per_s`` evenly
    spaced from the fault's start; ``overrun`` adds one (SAFETY.md T01, T02). The
    vehicle reads them through :meth:`overruns_last_second`.
    """

    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "overrun": FaultSpec("one tick overruns its deadline (T01)", windowed=False),
        "overruns": FaultSpec("ticks overrun persistently, `per_s` a second (T02)", _p(
            per_s=FaultParam(int, 10, 1, 1000, "overruns per second"))),
    })

    def __init__(self) -> None:
        self._once: list[float] = []
        self._windows: list[tuple[float, float | None, int]] = []

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``fault`` (a key of :data:`FAULTS`) at ``now_s`` (s)."""
        if fault == "overrun":
            self._once.append(now_s)
        else:
            self._windows.append((now_s, None, int(params["per_s"])))

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End the ``overruns`` window started with ``params`` at ``now_s`` (s)."""
        for i, (t0, t1, per_s) in enumerate(self._windows):
            if t1 is None and per_s == int(params["per_s"]):
                self._windows[i] = (t0, now_s, per_s)
                break

    def injected_last_second(self, now_s: float) -> int:
        """Injected overruns whose tick started within 1 s up to ``now_s`` (s)."""
        lo = now_s - 1.0
        n = sum(1 for t in self._once if lo < t <= now_s)
        for t0, t1, per_s in self._windows:
            # overruns at t0 + k / per_s (k >= 0), before t1, inside (lo, now_s]
            end = now_s if t1 is None else min(now_s, t1 - 1e-9)
            if end < t0:
                continue
            k_max = math.floor((end - t0) * per_s + 1e-9)
            k_min = 0 if lo < t0 else math.floor((lo - t0) * per_s + 1e-9) + 1
            n += max(0, k_max - k_min + 1)
        return n

    def overruns(self, loop_overruns: Callable[[float], int] | None) -> Callable[[float], int]:
        """Return the vehicle's ``overruns_last_second``: the loop's count plus the injected ones."""

        def count(now_s: float) -> int:
            return (loop_overruns(now_s) if loop_overruns is not None else 0) + self.injected_last_second(now_s)

        return count


# ---------------------------------------------------------------------------- serial links

#: Faults of a device's serial link, played on the controller's end (SAFETY.md D12). A
#: device on a serial bus takes them beside its emulator's (:func:`target_specs`).
SERIAL_LINK_FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
    "unplug": FaultSpec("the device's serial link is unplugged (a USB adapter pulled): the controller's next "
                        "read or write raises, reopening fails until the replug at until_s (absent: for good) "
                        "(D12)"),
})


class Unpluggable(Protocol):
    """A serial link with unplug knobs (:class:`hal.serial.link.PipeLink`, :class:`hal.serial.link.PySerialLink`)."""

    def simulate_unplug(self) -> None:
        """Make the device vanish: the next read/write raises ``BusError`` once, reopening fails."""
        ...

    def simulate_replug(self) -> None:
        """Bring the device back: a following ``reopen()`` succeeds."""
        ...


class SerialLinkFaults:
    """Fault-plan target of a device's serial link: the controller's end of it.

    The entry's ``target`` is the device (``mcu``, ``radar_sr``); the fault acts below the
    driver, so the driver's own failure path runs (``McuDriver.poll``,
    ``Iwr6843Driver.poll``: counted, stale, reopen with backoff).

    Parameters
    ----------
    link : Unpluggable
        The controller's end of the link, below any recording tap.
    """

    FAULTS: Final[Mapping[str, FaultSpec]] = SERIAL_LINK_FAULTS

    def __init__(self, link: Unpluggable) -> None:
        self.link = link

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``fault`` (``unplug``) at ``now_s`` (s): the device vanishes."""
        self.link.simulate_unplug()

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End ``unplug`` at ``now_s`` (s): the device is back (the driver's next reopen succeeds)."""
        self.link.simulate_replug()


class _DeviceAndLink:
    """One fault-plan target for a device's emulator and its serial link: faults go to whoever knows them."""

    def __init__(self, device: FaultTarget, link: FaultTarget) -> None:
        self.device = device
        self.link = link
        self._faults: Mapping[str, FaultSpec] = MappingProxyType({**device.FAULTS, **link.FAULTS})

    @property
    def FAULTS(self) -> Mapping[str, FaultSpec]:  # noqa: N802 - the FaultTarget protocol's name
        """The emulator's faults and the link's."""
        return self._faults

    def _of(self, fault: str) -> FaultTarget:
        return self.link if fault in self.link.FAULTS else self.device

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Apply ``fault`` on the link or the emulator, at ``now_s`` (s)."""
        self._of(fault).apply_fault(fault, params, now_s)

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Clear ``fault`` on the link or the emulator, at ``now_s`` (s)."""
        self._of(fault).clear_fault(fault, params, now_s)


@dataclass
class RigFaults:
    """The fault targets a build adds beside the emulators: its CAN buses and the host.

    Used by :func:`controller.rig.build.build_rig`: :meth:`wrap_can` wraps each host CAN
    bus of an emulated rig as it is opened, :meth:`add_serial` takes the controller's end
    of each serial link, :meth:`register` hands them to the :class:`FaultWiring`,
    :meth:`overruns` wraps the loop's overrun count.

    Attributes
    ----------
    enabled : bool
        False (a rig without ``emulation``, or a replay): nothing is wrapped.
    clock : callable ``() -> float``
        Run clock of the emulation, s (rates and delays of the CAN faults).
    seed : int
        Seed of the random CAN faults (one stream per bus, in bus order).
    """

    enabled: bool
    clock: Callable[[], float]
    seed: int = 0
    buses: dict[str, CanBusFaults] = field(default_factory=dict)
    host: HostFaults = field(default_factory=HostFaults)
    serial: dict[str, SerialLinkFaults] = field(default_factory=dict)

    def wrap_can(self, bus_name: str, bus: can.BusABC) -> can.BusABC:
        """Return ``bus`` wrapped in a :class:`FaultyBus` (unchanged when not enabled)."""
        if not self.enabled:
            return bus
        faulty = FaultyBus(bus, seed=self.seed * 7919 + len(self.buses), clock=self.clock)
        self.buses[bus_name] = CanBusFaults(faulty)
        return faulty

    def add_serial(self, device_names: list[str], link: Unpluggable) -> None:
        """Make ``link`` (the controller's end of a serial bus) a fault target of each device on it."""
        if not self.enabled:
            return
        for name in device_names:
            self.serial[name] = SerialLinkFaults(link)

    def register(self, wiring: FaultWiring | None) -> None:
        """Add every wrapped bus and the host to ``wiring`` as stepped targets, and the serial links."""
        if wiring is None or not self.enabled:
            return
        for name, target in self.buses.items():
            wiring.add(name, target)
        wiring.add(HOST_TARGET, self.host)
        for name, link in self.serial.items():
            wiring.add_link(name, link)

    def overruns(self, loop_overruns: Callable[[float], int] | None) -> Callable[[float], int] | None:
        """Return the vehicle's overrun count with the injected ones (``loop_overruns`` when not enabled)."""
        return self.host.overruns(loop_overruns) if self.enabled else loop_overruns
