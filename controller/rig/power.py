"""Composition of power: profiles, Modbus links, pollers, the power component, emulation.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` runs every build-time rule without opening
a port; :func:`build` opens the Modbus links (or, on an emulated rig, the emulated BMS and
PDU behind an in-memory link, a Modbus TCP server on 127.0.0.1 or an RTU pty), starts the
pollers and builds :class:`~controller.components.power.PowerSubsystem`. See
:mod:`controller.components.power` for what power does in the tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from controller.components.power import (
    BMS_REQUIRED,
    EMULATED_RTU_URL,
    PDU_REQUIRED,
    POWER_STEP_S,
    PowerSubsystem,
)
from controller.config import (
    BmsDeviceCfg,
    ModbusBusCfg,
    PduDeviceCfg,
    PowerCfg,
    RigCfg,
    load_profile,
)
from controller.errors import ConfigError, opening
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.devices.pdu import Pdu
from hal.modbus.poller import ModbusPoller, PolledDevice
from hal.modbus.url import open_link

__all__ = ["EmulatedPower", "PowerWorldStepper", "build", "build_emulated_power", "check",
           "open_emulated_link", "open_real_link"]

# --------------------------------------------------------------------------- emulation


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

    def __init__(self, world: Any, valve_board: Any | None, step_s: float = POWER_STEP_S) -> None:
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
    responders : dict of str to dict of int to emulator
        Per bus name, the emulated devices by unit id.
    emulators : dict of str to emulator
        By rig device name.
    """

    world: Any
    responders: dict[str, dict[int, Any]]
    emulators: dict[str, Any]

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


def build_emulated_power(rig: RigCfg, name: str, profiles: dict[str, Any], clock: Any) -> EmulatedPower:
    """Build the PowerWorld and one emulator per BMS/PDU device of an emulated rig.

    Parameters
    ----------
    rig : RigCfg
        A rig with an ``emulation`` block.
    name : str
        The rig file name (for errors).
    profiles : dict of str to DeviceProfile
        Profile of each power device, by device name.
    clock : Clock
        Time source of the emulators' fault windows (the run's clock).

    Returns
    -------
    EmulatedPower

    Raises
    ------
    ConfigError
        A power fault names a device that is not a BMS or PDU of the rig.

    Notes
    -----
    The emulated pack is QIKI-1's 8S LiFePO4 (``BatteryModel`` defaults): the rig's
    ``cell_count`` is what POST expects, not what the world is, so a rig that declares
    another count fails POST as it would on the real vehicle.
    """
    from firmware_bridge.emulation.power import (
        BatteryModel,
        Fault,
        FaultPlan,
        JkBmsEmulator,
        PowerWorld,
        QikiPduEmulator,
    )

    emu = rig.emulation
    assert emu is not None
    b = emu.battery
    world = PowerWorld(BatteryModel(soc=b.start_soc_pct / 100.0, temperature_c=b.start_temperature_c))
    plans: dict[str, FaultPlan] = {}
    for i, f in enumerate(emu.power_faults):
        dev = rig.devices.get(f.device)
        if not isinstance(dev, (BmsDeviceCfg, PduDeviceCfg)):
            raise ConfigError(name, f"emulation.power_faults[{i}].device",
                              f"{f.device!r} is not a bms or pdu device of this rig")
        plans.setdefault(f.device, FaultPlan()).add(Fault(
            kind=f.kind, start_s=f.start_s, end_s=f.end_s, exception_code=f.exception_code,
            delay_s=f.delay_s, alarm_bits=f.alarm_bits))
    responders: dict[str, dict[int, Any]] = {}
    emulators: dict[str, Any] = {}
    for dev_name, dev in rig.devices.items():
        e: JkBmsEmulator | QikiPduEmulator
        if isinstance(dev, BmsDeviceCfg):
            e = JkBmsEmulator(profiles[dev_name], world, clock, dev.unit_id, plans.get(dev_name))
        elif isinstance(dev, PduDeviceCfg):
            e = QikiPduEmulator(profiles[dev_name], world, clock, dev.unit_id, plans.get(dev_name))
        else:
            continue
        emulators[dev_name] = e
        responders.setdefault(dev.bus, {})[dev.unit_id] = e
    return EmulatedPower(world, responders, emulators)


def open_real_link(bus: ModbusBusCfg, name: str, bus_name: str):
    """Open the link of a real (non-emulated) Modbus bus from its url.

    Parameters
    ----------
    bus : ModbusBusCfg
        The bus: ``tcp://HOST:PORT`` or ``rtu://PATH[?baudrate=N&parity=P]`` (the bus's
        ``baudrate`` applies when the url names none); ``timeout_s`` per transaction.
    name, bus_name : str
        Rig file and bus name (for errors).

    Returns
    -------
    ModbusLink

    Raises
    ------
    ConfigError
        ``memory://`` or ``rtu://emulated`` on a rig without emulation.
    BusConfigError
        A malformed url or unusable parameters.
    """
    parts = urlsplit(bus.url)
    if parts.scheme == "memory" or bus.url == EMULATED_RTU_URL:
        raise ConfigError(name, f"buses.{bus_name}.url", f"{bus.url!r} exists only on emulated rigs")
    url = bus.url
    if parts.scheme == "rtu" and "baudrate" not in parse_qs(parts.query):
        url += ("&" if parts.query else "?") + f"baudrate={bus.baudrate}"
    return open_link(url, bus.timeout_s)


def open_emulated_link(bus: ModbusBusCfg, responders: dict[int, Any], name: str, bus_name: str, *,
                       over_wire: bool, timeout_s: float | None = None) -> tuple[Any, str, list[Callable[[], None]]]:
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


# --------------------------------------------------------------------------- subsystem


def _check_profile(profile: Any, required: tuple[str, ...], name: str, key: str) -> None:
    names = set(profile.names)
    missing = [q for q in required if q not in names]
    if missing:
        raise ConfigError(name, key, f"profile {profile.name!r} lacks {', '.join(missing)} (the driver needs them)")


def _check_url(bus: ModbusBusCfg, emulated: bool, name: str, bus_name: str) -> None:
    """Check that the url of a Modbus bus fits the rig (what the link openers refuse, without opening).

    Emulated rig: ``memory://NAME`` or :data:`EMULATED_RTU_URL` (:func:`open_emulated_link`).
    Real rig: ``tcp://HOST:PORT`` or ``rtu://PATH[?baudrate=N&parity=P]``
    (:func:`open_real_link`, :func:`hal.modbus.url.open_link`).
    """
    key = f"buses.{bus_name}.url"
    parts = urlsplit(bus.url)
    if emulated:
        if not (bus.url == EMULATED_RTU_URL or parts.scheme == "memory"):
            raise ConfigError(name, key, f"on an emulated rig a modbus url is memory://NAME or {EMULATED_RTU_URL}")
        return
    if parts.scheme == "memory" or bus.url == EMULATED_RTU_URL:
        raise ConfigError(name, key, f"{bus.url!r} exists only on emulated rigs")
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ConfigError(name, key, f"{bus.url!r}: expected tcp://HOST:PORT")
    elif parts.scheme == "rtu":
        if not (parts.path or parts.netloc):
            raise ConfigError(name, key, f"{bus.url!r}: expected rtu:///dev/ttyX?baudrate=N")
        baud = parse_qs(parts.query).get("baudrate", ["115200"])[0]
        if not baud.isdigit() or int(baud) <= 0:
            raise ConfigError(name, key, f"{bus.url!r}: baudrate {baud!r} is not a positive integer")
    else:
        raise ConfigError(name, key, f"{bus.url!r}: scheme must be tcp or rtu")


def check(rig: RigCfg, name: str, rig_path: Path) -> dict[str, DeviceProfile]:
    """Every build-time check of the power devices, without opening a link.

    Called by :func:`controller.rig.check_rig` (``qiki rig check`` and ``qiki run``) and
    by :func:`build`, so both refuse the same rigs with the same line.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    name : str
        The rig file, for errors.
    rig_path : Path
        The rig file (profile paths are resolved against it).

    Returns
    -------
    dict of str to DeviceProfile
        The validated profile of each BMS and PDU, by device name (empty without them).

    Raises
    ------
    ConfigError
        More than one BMS or PDU; a power device not on a ``kind: modbus`` bus; a
        profile that fails validation (its own file and key, bounds of
        :class:`~firmware_bridge.protocols.modbus_profile.DeviceProfile`) or lacks a
        quantity the driver needs (:data:`BMS_REQUIRED`, :data:`PDU_REQUIRED`); an
        ``emulation.power_faults`` entry naming another device; a bus url that does not
        fit the rig (:func:`_check_url`).
    """
    bms_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, BmsDeviceCfg)]
    pdu_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, PduDeviceCfg)]
    if not bms_items and not pdu_items:
        return {}
    for kind, items in (("bms", bms_items), ("pdu", pdu_items)):
        if len(items) > 1:
            raise ConfigError(name, "devices", f"at most one {kind} device (got {', '.join(n for n, _ in items)})")
    profiles: dict[str, DeviceProfile] = {}
    for dev_name, dev in bms_items + pdu_items:
        if not isinstance(rig.buses[dev.bus], ModbusBusCfg):
            raise ConfigError(name, f"devices.{dev_name}.bus", f"bus {dev.bus!r} is not a modbus bus")
        profiles[dev_name] = p = load_profile(dev.profile, rig_path)
        if isinstance(dev, BmsDeviceCfg):
            req = BMS_REQUIRED + tuple(f"cell_{i:02d}_voltage_v" for i in range(min(dev.cell_count, 16)))
            _check_profile(p, req, name, f"devices.{dev_name}.profile")
        else:
            _check_profile(p, PDU_REQUIRED, name, f"devices.{dev_name}.profile")
    emu = rig.emulation
    if emu is not None:
        for i, f in enumerate(emu.power_faults):
            if not isinstance(rig.devices.get(f.device), (BmsDeviceCfg, PduDeviceCfg)):
                raise ConfigError(name, f"emulation.power_faults[{i}].device",
                                  f"{f.device!r} is not a bms or pdu device of this rig")
    for bus_name in sorted({d.bus for _, d in bms_items + pdu_items}):
        bus = rig.buses[bus_name]
        assert isinstance(bus, ModbusBusCfg)
        _check_url(bus, emu is not None, name, bus_name)
    return profiles


def build(ctx: Any) -> PowerSubsystem | None:
    """Build the power subsystem of a rig, or None when it has no BMS and no PDU.

    Parameters
    ----------
    ctx : controller.rig.context.BuildContext
        From :func:`controller.rig.build_rig`.

    Returns
    -------
    PowerSubsystem or None

    Raises
    ------
    ConfigError
        Whatever :func:`check` refuses (run first, so the line is the one ``qiki rig
        check`` prints).
    BusConfigError, ProtocolError
        A link or emulator server that cannot be opened (one line, exit status 2).
    """
    rig: RigCfg = ctx.cfg
    name = str(ctx.path)
    bms_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, BmsDeviceCfg)]
    pdu_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, PduDeviceCfg)]
    if not bms_items and not pdu_items:
        return None
    profiles: dict[str, Any] = dict(check(rig, name, ctx.path))  # the checks of `qiki rig check`

    closers: list[Callable[[], None]] = []
    emulated = build_emulated_power(rig, name, profiles, ctx.clock) if rig.emulation is not None else None
    links: dict[str, Any] = {}
    transport: dict[str, str] = {}
    bus_names = sorted({d.bus for _, d in bms_items + pdu_items})
    try:
        for bus_name in bus_names:
            bus = rig.buses[bus_name]
            assert isinstance(bus, ModbusBusCfg)
            if emulated is None:
                with opening(name, f"buses.{bus_name}"):
                    links[bus_name] = open_real_link(bus, name, bus_name)
                transport[bus_name] = urlsplit(bus.url).scheme
                closers.append(links[bus_name].close)
                continue
            links[bus_name], transport[bus_name], opened = open_emulated_link(
                bus, emulated.responders.get(bus_name, {}), name, bus_name, over_wire=ctx.realtime)
            closers += opened
    except BaseException:
        for c in reversed(closers):
            try:
                c()
            except Exception:  # noqa: BLE001
                pass
        raise

    pollers: dict[str, ModbusPoller] = {}
    for bus_name in bus_names:
        devs = [PolledDevice(n, links[bus_name], profiles[n], d.unit_id)
                for n, d in bms_items + pdu_items if d.bus == bus_name]
        pollers[bus_name] = ModbusPoller(devs, ctx.clock)
    bms = None
    if bms_items:
        n, d = bms_items[0]
        bms = (n, pollers[d.bus], d.cell_count)
    pdu = None
    if pdu_items:
        pdu_name, pdu_dev = pdu_items[0]
        pdu = (pdu_name, Pdu(pollers[pdu_dev.bus], pdu_name))

    stepper = None
    if emulated is not None and ctx.sim is not None:
        stepper = PowerWorldStepper(emulated.world, getattr(ctx.sim, "valve_board", None))
        ctx.sim.extra.append(stepper)
        if pdu is not None:
            ctx.sim.rail_gates.append(stepper.rail_gate)

    # Real wires are always polled by the worker (never from the tick), even if someone
    # runs a real rig on the lockstep clock; only the memory link is stepped in read.
    threaded = ctx.realtime or emulated is None
    sub = PowerSubsystem(
        limits=rig.power or PowerCfg(), bms=bms, pdu=pdu, pollers=pollers, links=links,
        realtime=threaded, record=ctx.record, transport=transport, closers=closers,
        emulated=emulated, stepper=stepper, control_period_s=1.0 / rig.controller.rate_hz,
    )
    ctx.record(-1, 0.0, "power_buses",
               buses={b: {"url": _modbus_url(rig, b), "transport": transport[b]} for b in bus_names})
    if threaded:
        for poller in pollers.values():
            poller.start()
    return sub


def _modbus_url(rig: RigCfg, bus_name: str) -> str:
    """Return the url of a Modbus bus of the rig (the family's buses are Modbus by check())."""
    bus = rig.buses[bus_name]
    assert isinstance(bus, ModbusBusCfg)
    return bus.url
