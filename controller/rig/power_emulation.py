"""Composition of emulated power: the battery world, the emulated BMS and PDU, their links.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`; split from :mod:`controller.rig.power`, which builds the
power subsystem and calls these on an emulated rig. :func:`build_emulated_power` builds
the :class:`~firmware_bridge.emulation.power.PowerWorld` and one emulator per BMS/PDU
device (each stepping its own entries of ``emulation.faults`` at every request);
:func:`open_emulated_link` puts them behind an in-memory link (lockstep), a Modbus TCP
server on 127.0.0.1 or an RTU pty (real time); :class:`PowerWorldStepper` steps the
battery from the simulation (:func:`attach_stepper`). :func:`emulate_power` serves them
alone, for the far end of a two-process rig (``qiki emulate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from controller.components.power import EMULATED_RTU_URL, POWER_STEP_S
from controller.config import BmsDeviceCfg, ModbusBusCfg, PduDeviceCfg, RigCfg
from controller.errors import ConfigError
from controller.rig import fault_plan
from controller.rig.fault_plan import FaultWiring
from firmware_bridge.emulation.power import (
    BatteryModel,
    EmulatedModbusDevice,
    JkBmsEmulator,
    PowerWorld,
    QikiPduEmulator,
)

if TYPE_CHECKING:
    from controller.clock import Clock
    from controller.rig.context import BuildContext
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
    from firmware_bridge.emulation.sim import Simulation
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator
    from firmware_bridge.protocols.modbus_profile import DeviceProfile, ModbusResponder
    from hal.modbus.link import ModbusLink

__all__ = ["EmulatedPower", "PowerWorldStepper", "attach_stepper", "build_emulated_power", "emulate_power",
           "open_emulated_link"]


class PowerWorldStepper:
    """Steps a PowerWorld from the simulation (an entry of ``sim.extra``).

    Parameters
    ----------
    world : PowerWorld
        The emulated battery, relays and loads.
    valve_board : ValveBoardEmulator or None
        Source of the valves' physical open fractions (None: no valve load).
    step_s : float, optional
        Battery step (s); the physics calls :meth:`step` at 1 kHz and this does work only
        every ``step_s``.

    Attributes
    ----------
    valve_rail_closed_s : float
        Simulated time the valve-rail relay spent closed (s).
    valve_rail_closures : int
        Times the relay went from open to closed (as seen at the battery steps).
    """

    def __init__(self, world: PowerWorld, valve_board: ValveBoardEmulator | None,
                 step_s: float = POWER_STEP_S) -> None:
        self.world = world
        self.valve_board = valve_board
        self.step_s = float(step_s)
        self._last_s: float | None = None
        self._next_s = -math.inf
        self._was_closed = False
        self.valve_rail_closed_s = 0.0
        self.valve_rail_closures = 0
        #: Battery above 0 V at the last battery step (cached for the 1 kHz rail gate).
        self.battery_alive = world.battery.terminal_voltage_v > 0.0

    @property
    def next_due_s(self) -> float:
        """Time (s) from which :meth:`step` acts; the simulation steps it then."""
        return self._next_s

    def rail_gate(self) -> bool:
        """``sim.rail_gates`` entry: the valve board has supply through the PDU relay.

        Same as ``PowerWorld.valve_rail_powered`` with the battery voltage taken at the
        last battery step (cheap enough for the physics rate).
        """
        return self.battery_alive and self.world.relay("valve_rail")

    def step(self, t_s: float) -> None:
        """Advance the battery to ``t_s`` (s) when a battery step is due. Per physics step.

        The valve load is the sum of the valves' open fractions over the step
        (``ValveBoardEmulator.open_fractions``): 8 valves open for half the step draw as
        much as 4 valves open throughout.
        """
        if t_s < self._next_s:
            return
        last = self._last_s
        if last is None:
            self._last_s = t_s
            self._next_s = t_s + self.step_s - 1e-9
            return
        dt = t_s - last
        valves = 0.0
        if self.valve_board is not None:
            valves = float(sum(self.valve_board.open_fractions(last, t_s)))
        closed = self.world.relay("valve_rail")
        if closed:
            self.valve_rail_closed_s += dt
            if not self._was_closed:
                self.valve_rail_closures += 1
        self._was_closed = closed
        self.world.step(dt, valves)
        self.battery_alive = self.world.battery.terminal_voltage_v > 0.0
        self._last_s = t_s
        self._next_s = t_s + self.step_s - 1e-9


@dataclass
class EmulatedPower:
    """The emulated far end of a rig's power buses (see :func:`build_emulated_power`).

    Attributes
    ----------
    world : PowerWorld
    responders : dict of str to dict of int to ModbusResponder
        Per bus name, the emulated devices by unit id.
    emulators : dict of str to EmulatedModbusDevice
        By rig device name; each steps its own fault plan at every request.
    """

    world: PowerWorld
    responders: dict[str, dict[int, ModbusResponder]]
    emulators: dict[str, EmulatedModbusDevice]

    def summary(self, stepper: object | None) -> dict[str, object]:
        """Return the ``emulated`` block of the power summary: the world's truth at the end.

        Parameters
        ----------
        stepper : PowerWorldStepper or None
            The battery stepper (adds the time the valve rail was closed, and closures).
        """
        w = self.world
        emu: dict[str, object] = {
            "end_soc_pct": round(w.battery.soc * 100.0, 4),
            "energy_used_wh": round(w.battery.energy_used_wh, 6),
            "relay_state_changes": w.relay_operations,
            "valve_rail_closed": w.relay("valve_rail"),
        }
        if isinstance(stepper, PowerWorldStepper):
            emu["valve_rail_closed_s"] = round(stepper.valve_rail_closed_s, 3)
            emu["valve_rail_closures"] = stepper.valve_rail_closures
        return emu


def build_emulated_power(rig: RigCfg, name: str, profiles: Mapping[str, DeviceProfile], clock: Clock,
                         faults: FaultWiring | None = None) -> EmulatedPower:
    """Build the PowerWorld and one emulator per BMS/PDU device of an emulated rig.

    Parameters
    ----------
    rig : RigCfg
        A rig with an ``emulation`` block.
    name : str
        The rig file name (for errors).
    profiles : mapping of str to DeviceProfile
        Profile of each power device, by device name.
    clock : Clock
        Time of every request (each device steps its fault plan with it).
    faults : FaultWiring, optional
        The build's checked fault plan; each device gets its own entries
        (:meth:`FaultWiring.own_plan`). None (``qiki modbus read``): the rig's
        ``emulation.faults`` are checked here and their events go nowhere.

    Returns
    -------
    EmulatedPower

    Raises
    ------
    ConfigError
        Without ``faults``: an ``emulation.faults`` entry that :func:`controller.rig.fault_plan.check`
        refuses.

    Notes
    -----
    The emulated pack is QIKI-1's 8S LiFePO4 (``BatteryModel`` defaults): the rig's
    ``cell_count`` is what POST expects, not what the world is, so a rig that declares
    another count fails POST as it would on the real vehicle.
    """
    emu = rig.emulation
    assert emu is not None
    if faults is None:
        faults = FaultWiring(fault_plan.check(rig, name), lambda *a, **k: None)
    b = emu.battery
    world = PowerWorld(BatteryModel(soc=b.start_soc_pct / 100.0, temperature_c=b.start_temperature_c))
    responders: dict[str, dict[int, ModbusResponder]] = {}
    emulators: dict[str, EmulatedModbusDevice] = {}
    for dev_name, dev in rig.devices.items():
        e: JkBmsEmulator | QikiPduEmulator
        if isinstance(dev, BmsDeviceCfg):
            e = JkBmsEmulator(profiles[dev_name], world, clock, dev.unit_id)
        elif isinstance(dev, PduDeviceCfg):
            e = QikiPduEmulator(profiles[dev_name], world, clock, dev.unit_id)
        else:
            continue
        e.fault_plan = faults.own_plan(dev_name, e)
        emulators[dev_name] = e
        responders.setdefault(dev.bus, {})[dev.unit_id] = e
    return EmulatedPower(world, responders, emulators)


def open_emulated_link(bus: ModbusBusCfg, responders: Mapping[int, ModbusResponder], name: str, bus_name: str, *,
                       over_wire: bool, timeout_s: float | None = None,
                       ) -> tuple[ModbusLink, str, list[Callable[[], None]]]:
    """Open the link of an emulated rig's Modbus bus to its emulated devices.

    Parameters
    ----------
    bus : ModbusBusCfg
        The bus: ``memory://NAME`` or :data:`EMULATED_RTU_URL`.
    responders : dict of int to ModbusResponder
        The bus's emulated devices by unit id (:attr:`EmulatedPower.responders`).
    name, bus_name : str
        Rig file and bus name (for errors).
    over_wire : bool
        False: the in-memory link (lockstep). True: a pymodbus server on its own thread
        and a client -- Modbus TCP on 127.0.0.1 for ``memory://``, RTU over a pty pair
        for :data:`EMULATED_RTU_URL`.
    timeout_s : float, optional
        Reply timeout per transaction (s); default the bus's ``timeout_s``.

    Returns
    -------
    link : ModbusLink
    transport : {"memory", "tcp", "rtu"}
    closers : list of callables
        To call in reverse order when done (the link, then the server); empty for memory.

    Raises
    ------
    ConfigError
        Another url on an emulated rig.
    BusConfigError, ProtocolError
        The server or the client cannot be opened (nothing is left running).
    """
    is_rtu = bus.url == EMULATED_RTU_URL
    if not (is_rtu or urlsplit(bus.url).scheme == "memory"):
        raise ConfigError(name, f"buses.{bus_name}.url",
                          f"on an emulated rig a modbus url is memory://NAME or {EMULATED_RTU_URL}")
    timeout = bus.timeout_s if timeout_s is None else timeout_s
    if not over_wire:
        from hal.modbus.link import MemoryModbusLink

        return MemoryModbusLink(responders, timeout), "memory", []
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
    from hal.modbus.link import PymodbusRtuLink, PymodbusTcpLink

    transport: Literal["tcp", "rtu"] = "rtu" if is_rtu else "tcp"
    server = ModbusEmulatorServer(responders, transport, baudrate=bus.baudrate).start()
    link: PymodbusRtuLink | PymodbusTcpLink
    try:
        if is_rtu:
            link = PymodbusRtuLink(server.client_path, bus.baudrate, timeout)
        else:
            link = PymodbusTcpLink(server.host, server.port, timeout)
    except BaseException:
        server.stop()
        raise
    return link, transport, [server.stop, link.close]


def attach_stepper(sim: Simulation, emulated: EmulatedPower, *, with_pdu: bool) -> PowerWorldStepper:
    """Step the power world from the simulation; with a PDU, its relay gates the valve rail.

    Parameters
    ----------
    sim : Simulation
        The rig's simulation (the stepper goes to ``sim.extra``, the gate to
        ``sim.rail_gates``).
    emulated : EmulatedPower
        From :func:`build_emulated_power`.
    with_pdu : bool
        The rig has a PDU: the valve board has supply only through its valve-rail relay.

    Returns
    -------
    PowerWorldStepper
    """
    stepper = PowerWorldStepper(emulated.world, sim.valve_board)
    sim.extra.append(stepper)
    if with_pdu:
        sim.rail_gates.append(stepper.rail_gate)
    return stepper


@dataclass
class FarEndPower:
    """The emulated power devices of a two-process rig, served on the wire (:func:`emulate_power`).

    Attributes
    ----------
    emulated : EmulatedPower
    stepper : PowerWorldStepper
    servers : dict of str to ModbusEmulatorServer
        Per Modbus bus name, its running server.
    urls : dict of str to str
        Per Modbus bus name, the url the controller's rig names: ``tcp://127.0.0.1:PORT``
        or ``rtu://PTY`` (the pty's slave path).
    """

    emulated: EmulatedPower
    stepper: PowerWorldStepper
    servers: dict[str, ModbusEmulatorServer]
    urls: dict[str, str]


def emulate_power(ctx: BuildContext, profiles: Mapping[str, DeviceProfile],
                  tcp_ports: Mapping[str, int]) -> FarEndPower | None:
    """Build and serve the emulated BMS and PDU alone: the far end of a two-process rig.

    What :func:`controller.rig.power.build` builds on an emulated real-time rig, without
    the links, pollers or component: a pymodbus server per Modbus bus (TCP on 127.0.0.1
    for ``memory://``, RTU on a pty for :data:`EMULATED_RTU_URL`) and the power world
    stepped from ``ctx.sim``.

    Parameters
    ----------
    ctx : BuildContext
        The far end's context (``sim``, ``io_clock``, ``faults``; ``closers`` gets each
        server's ``stop``).
    profiles : mapping of str to DeviceProfile
        Profile of each power device (:attr:`controller.rig.check.CheckedRig.profiles`).
    tcp_ports : mapping of str to int
        TCP port per Modbus bus name (absent or 0: an ephemeral port).

    Returns
    -------
    FarEndPower or None
        None when the rig has no BMS and no PDU.

    Raises
    ------
    ProtocolError
        A server that does not start (the port is taken).
    """
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer

    rig: RigCfg = ctx.cfg
    devices = [d for d in rig.devices.values() if isinstance(d, (BmsDeviceCfg, PduDeviceCfg))]
    if not devices or ctx.sim is None:
        return None
    emulated = build_emulated_power(rig, str(ctx.path), profiles, ctx.io_clock, ctx.faults)
    servers: dict[str, ModbusEmulatorServer] = {}
    urls: dict[str, str] = {}
    for bus_name in sorted({d.bus for d in devices}):
        bus = rig.buses[bus_name]
        assert isinstance(bus, ModbusBusCfg)  # power.check: power devices on Modbus buses
        rtu = bus.url == EMULATED_RTU_URL
        server = ModbusEmulatorServer(emulated.responders.get(bus_name, {}), "rtu" if rtu else "tcp",
                                      port=0 if rtu else int(tcp_ports.get(bus_name, 0)),
                                      baudrate=bus.baudrate).start()
        ctx.closers.append(server.stop)
        servers[bus_name] = server
        urls[bus_name] = (f"rtu://{server.client_path}?baudrate={bus.baudrate}" if rtu
                          else f"tcp://{server.host}:{server.port}")
    with_pdu = any(isinstance(d, PduDeviceCfg) for d in devices)
    return FarEndPower(emulated, attach_stepper(ctx.sim, emulated, with_pdu=with_pdu), servers, urls)
