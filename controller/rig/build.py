"""Composition root: a rig YAML becomes buses, drivers, emulators, FSM and allocator.

The only module that knows how the pieces are wired (ARCHITECTURE.md 2, rule 3). Two ways
to build (ARCHITECTURE.md 3):

* lockstep (default on a virtual rig): ``SimClock``; every node of an emulated CAN bus
  is a :class:`hal.can.lockstep.LockstepBus` (python-can's ``BusABC``: shared frames,
  routing by ID) on a channel name unique to the run (two runs in one process never hear
  each other); the MCU link is an in-process pipe; emulators step between ticks.
* real time (``realtime=True``): ``MonotonicClock``; CAN on python-can's ``virtual``
  interface; the emulators run on their own thread; the MCU is reached through a real
  pty opened by pyserial.

Anything else that needs a node on a run's bus (a monitor, a foreign node in a test)
opens it with :meth:`BuiltRig.open_can_node`, so that it is on the same bus in both.

On a rig without an ``emulation`` block nothing is emulated: the buses are real.

Every check of a rig lives in :func:`check_rig`, which opens no port: ``qiki rig check``
calls it, and :func:`build_rig` calls it first and builds from what it computed, so the
two refuse the same rigs with the same line (issue 10, part 5; ``docs/rig-check.md``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from controller.clock import Clock, MonotonicClock, SimClock
from controller.components.mcu import McuComponent
from controller.components.seam import Component
from controller.components.valves import ValveBoardComponent
from controller.config import (
    CanBusCfg,
    MissionCfg,
    RigCfg,
    SerialBusCfg,
    thruster_valves,
)
from controller.control import PoseGains
from controller.errors import opening
from controller.mission import MissionExecutor
from controller.record.ingress import Ingress
from controller.rig import power as power_room
from controller.rig import radar as radar_room
from controller.rig import tank as tank_room
from controller.rig.check import CheckedRig, check_rig
from controller.rig.context import BuildContext
from controller.rig.far_end import build_core_emulation
from controller.rig.fault_plan import FaultWiring, RigFaults
from controller.safety.output_guard import OutputGuard
from controller.vehicle import PoseControl, Vehicle

if TYPE_CHECKING:
    import can

    from firmware_bridge.emulation.sim import RealtimeRunner, Simulation
    from firmware_bridge.emulation.world import World
    from hal.can.port import CanPort, FrameLogger
    from hal.serial.link import SerialLink

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Device families built after the valve board and the MCU, in tick order: family name ->
#: builder ``(BuildContext) -> Component | None`` (None: the rig has no such device).
#: A new device family is one entry here (its driver names are in ``DRIVER_FAMILIES``).
COMPONENT_BUILDERS: Final[Mapping[str, Callable[[BuildContext], Component | None]]] = MappingProxyType({
    "radar": radar_room.build,
    "power": power_room.build,
    "tank": tank_room.build,
})

#: Which family builds each ``driver:`` name of a rig's ``devices`` (the valve board and
#: the MCU are built here, before the families).
DRIVER_FAMILIES: Final[Mapping[str, str]] = MappingProxyType({
    "valve_board": "core", "qiki_mcu": "core", "ars408": "radar", "iwr6843": "radar", "bms": "power", "pdu": "power",
    "tank_pressure": "tank",
})


@dataclass
class BuiltRig:
    """Everything a run needs, built from one rig file."""

    cfg: RigCfg
    path: Path
    clock: Clock
    realtime: bool
    vehicle: Vehicle
    can_ports: dict[str, CanPort]
    sim: Simulation | None = None
    runner: RealtimeRunner | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    world: World | None = None
    #: python-can channel actually opened per CAN bus (unique per run on emulated rigs).
    can_channels: dict[str, str] = field(default_factory=dict)
    #: Opens one more node on a CAN bus of this run (see :meth:`open_can_node`).
    can_node_opener: Callable[[str], can.BusABC] | None = None

    def advance(self, t0_s: float, t1_s: float) -> None:
        """Lockstep hook: step the emulated world between ticks."""
        if self.sim is not None:
            self.sim.advance(t0_s, t1_s)

    def open_can_node(self, bus_name: str) -> can.BusABC:
        """Open one more node on the CAN bus ``bus_name`` of this run; closed with the rig.

        A lockstep build of an emulated rig opens a :class:`hal.can.lockstep.LockstepBus`
        node on the run's channel; a real-time build a python-can ``virtual`` node; a rig
        without emulation a node of the bus's own interface. The node hears every frame
        any other node sends (no filters) and never its own; it may be wrapped (e.g.
        :class:`hal.can.faulty.FaultyBus`).

        Parameters
        ----------
        bus_name : str
            A CAN bus of the rig (``buses:``).

        Returns
        -------
        can.BusABC
            The open node; :meth:`close` shuts it down (shutting it down earlier is fine).

        Raises
        ------
        KeyError
            ``bus_name`` is not a CAN bus of the rig.
        """
        if self.can_node_opener is None or bus_name not in self.can_channels:
            raise KeyError(f"{bus_name!r} is not a CAN bus of this rig")
        node = self.can_node_opener(bus_name)
        self.closers.append(node.shutdown)
        return node

    def close(self) -> None:
        """Stop emulator threads and close every bus and link (safe to call twice)."""
        if self.runner is not None:
            runner, self.runner = self.runner, None
            try:
                runner.stop()
            except RuntimeError:
                if runner.error is not None:
                    raise  # the emulator thread failed: surfaced, as before
                # else its thread never started (a build closed before it ran): nothing to stop
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # closing is best effort; nothing recorded is lost here
                pass
        self.closers.clear()


def host_reopen(bus_name: str, open_host: Callable[[], can.BusABC], *, emulated: bool,
                ingress: Ingress | None) -> Callable[[], can.BusABC] | None:
    """Return the controller port's ``reopen`` for CAN bus ``bus_name`` (SAFETY.md B07), or None.

    A real adapter that was unplugged (a USB slcan or gs_usb) must be opened afresh once
    it is back: python-can's bus object of the old device never recovers. On real hardware
    this returns a callable that opens the bus again (tapped like the first one when the
    run is recorded); :class:`hal.can.port.CanPort` calls it with backoff while the receive
    path is dead. Emulated buses (the fault plan's ``unplug`` acts on the wrapper that
    stays) and replays (the recorded inputs are the truth) get None: the port probes the
    same bus.

    Parameters
    ----------
    bus_name : str
        The rig's bus name.
    open_host : callable () -> can.BusABC
        Opens the controller's node on the bus (what the build opened first).
    emulated : bool
        The rig emulates its devices (``emulation`` present).
    ingress : Ingress or None
        The run's record taps (None: not recorded).

    Returns
    -------
    callable () -> can.BusABC, or None
    """
    if emulated or (ingress is not None and ingress.replaying):
        return None
    if ingress is None:
        return open_host
    tapped = ingress

    def reopen() -> can.BusABC:
        return tapped.can_bus(bus_name, open_host)

    return reopen


def build_rig(
    rig: RigCfg,
    rig_path: Path,
    *,
    mission: MissionCfg | None,
    record: Callable[..., None],
    realtime: bool = False,
    seed: int = 0,
    can_loggers: Mapping[str, FrameLogger] | None = None,
    loop_overruns: Callable[[float], int] | None = None,
    options: Mapping[str, str | Path | None] | None = None,
    checked: CheckedRig | None = None,
    ingress: Ingress | None = None,
) -> BuiltRig:
    """Build a rig ready to run.

    Parameters
    ----------
    rig : RigCfg
        Validated rig.
    rig_path : Path
        The rig file (relative data paths are resolved against it).
    mission : MissionCfg or None
        Mission to fly (None: hold position after arming is not supported; the run idles).
    record : callable ``(tick, time_s, kind, **fields)``
        Event sink.
    realtime : bool
        Build for real time (threads, pty) instead of lockstep.
    seed : int
        Seed for every random source of the emulation (sensor noise, fault bytes).
    can_loggers : dict, optional
        Per CAN bus name, a callback ``(msg, now_s, is_rx)`` for the raw log.
    loop_overruns : callable, optional
        ``(now_s) -> int`` overruns in the last second, from the loop.
    options : dict, optional
        Run options for the component builders (``lr_replay``, ``sr_replay``: recording paths).
    checked : CheckedRig, optional
        What :func:`check_rig` computed for this rig (checked here when None).
    ingress : Ingress, optional
        The flight record's taps (every port tapped), or a replay (replay ports instead
        of the buses, no emulator and no world; :mod:`controller.record.replay_ports`).

    Raises
    ------
    ConfigError, HalError
        For anything in the rig that cannot be built (one line, exit status 2): first
        everything :func:`check_rig` refuses, then what only opening a port can tell.
    """
    if checked is None:
        checked = check_rig(rig, rig_path, options=options)
    # frozen until the loop starts: the build's duration never eats the POST budget
    spin_s = checked.cfg.controller.realtime.spin_before_deadline_us * 1e-6  # only the loop sleeps on it
    io_clock: MonotonicClock | SimClock = MonotonicClock(frozen=True, spin_s=spin_s) if realtime else SimClock()
    # the run clock the tick reads: recorded (or, in a replay, read back) in real time;
    # the emulators and the Modbus workers keep the untapped one
    clock = ingress.clock(io_clock, realtime) if ingress is not None else io_clock
    closers: list[Callable[[], None]] = []
    try:
        return _build(checked, mission, record, realtime, seed, can_loggers, loop_overruns, options, clock, closers,
                      ingress, io_clock)
    except BaseException:
        # Nothing half-built outlives a refused rig: close what was opened, newest first.
        for close in reversed(closers):
            try:
                close()
            except Exception:
                pass
        raise


def _devices_on(rig: RigCfg, bus_name: str) -> list[str]:
    """Names of the rig's devices on bus ``bus_name``, in file order."""
    return [n for n, d in rig.devices.items() if d.bus == bus_name]


def _build(checked: CheckedRig, mission, record, realtime, seed, can_loggers, loop_overruns, options, clock,
           closers, ingress: Ingress | None, io_clock: MonotonicClock | SimClock) -> BuiltRig:
    """Body of :func:`build_rig` from a checked rig; everything it opens is in ``closers``."""
    from controller.fsm import FsmEngine
    from hal.can.bus import open_can_bus
    from hal.can.lockstep import LockstepBus
    from hal.can.port import CanPort
    from hal.devices.qiki_mcu import McuDriver
    from hal.serial.link import PipeLink, PySerialLink, open_pty_pair

    rig = checked.cfg
    rig_path = checked.path
    name = str(rig_path)
    # a replay builds no emulator and no world: its ports give back the recorded inputs
    emu = rig.emulation if ingress is None or not ingress.replaying else None
    run_tag = uuid.uuid4().hex[:8]

    fsm_model = checked.fsm
    allocator = checked.allocator

    # ---------------------------------------------------------------- buses
    # Lockstep on an emulated rig: every node of a virtual CAN bus is a LockstepBus (one
    # shared snapshot per frame, routing by ID, a free empty recv: issue 16); real time
    # keeps python-can's virtual interface.
    lockstep_can = emu is not None and not realtime

    def open_node(bus_name: str, host: bool = False) -> can.BusABC:
        """One more node on the CAN bus ``bus_name`` (its channel is known by now).

        ``host``: the controller's own node (opened with the bus's ``options``).
        """
        b = rig.buses[bus_name]
        assert isinstance(b, CanBusCfg)  # callers: CAN buses only
        channel = can_channels[bus_name]
        if lockstep_can:  # check_rig: the interface is 'virtual'
            return LockstepBus(channel)
        if emu is not None and not host:
            return open_can_bus("virtual", channel, b.bitrate_bps)
        return open_can_bus(b.interface, channel, b.bitrate_bps, receive_own_messages=False,
                            **(b.options if host else {}))

    ports: dict[str, CanPort] = {}
    emu_can: dict[str, can.BusABC] = {}
    can_channels: dict[str, str] = {}
    rig_faults = RigFaults(emu is not None, io_clock.now_s, seed)  # CAN and host fault-plan targets
    serial_links: dict[str, SerialLink] = {}
    emu_serial: dict[str, SerialLink] = {}
    for bus_name, bus in rig.buses.items():
        if isinstance(bus, CanBusCfg):
            channel = bus.channel
            if emu is not None and bus.interface == "virtual":
                channel = f"{bus.channel}-{run_tag}"
            can_channels[bus_name] = channel
            with opening(name, f"buses.{bus_name}"):
                def open_host(n: str = bus_name) -> can.BusABC:
                    return rig_faults.wrap_can(n, open_node(n, host=True))  # fault plans

                host_bus = open_host() if ingress is None else ingress.can_bus(bus_name, open_host)
            logger = (can_loggers or {}).get(bus_name)
            port = CanPort(host_bus, max_rx_frames_per_tick=bus.max_rx_frames_per_tick, on_frame_logged=logger,
                           reopen=host_reopen(bus_name, open_host, emulated=emu is not None, ingress=ingress))
            ports[bus_name] = port
            closers.append(lambda p=port: p.bus.shutdown())  # the bus in use at the end (a reopen swaps it)
            if emu is not None:  # check_rig: the interface is 'virtual'
                dev_bus = open_node(bus_name)
                closers.append(dev_bus.shutdown)
                emu_can[bus_name] = dev_bus
        elif isinstance(bus, SerialBusCfg):
            host_link: SerialLink
            if ingress is not None and ingress.replaying:
                host_link = ingress.replay_link(bus_name)
            elif emu is not None:
                if realtime:
                    master, slave_path = open_pty_pair()
                    closers.append(master.close)
                    pty_link = PySerialLink(slave_path, bus.baudrate, write_timeout_s=bus.write_timeout_s)
                    rig_faults.add_serial(_devices_on(rig, bus_name), pty_link)  # fault plans: unplug (D12)
                    host_link = pty_link
                    emu_serial[bus_name] = master
                else:
                    pipe_link, dev_link = PipeLink.pair(bus_name)
                    rig_faults.add_serial(_devices_on(rig, bus_name), pipe_link)  # fault plans: unplug (D12)
                    host_link = pipe_link
                    emu_serial[bus_name] = dev_link
            else:  # check_rig: not pipe://
                with opening(name, f"buses.{bus_name}"):
                    host_link = PySerialLink(bus.url, bus.baudrate, write_timeout_s=bus.write_timeout_s)
            closers.append(host_link.close)
            if ingress is not None and not ingress.replaying:
                host_link = ingress.serial_link(bus_name, host_link)
            serial_links[bus_name] = host_link
        # Modbus buses are built by the power integration (issue 5); nothing to open yet.

    # ---------------------------------------------------------------- devices
    vb_name, vb = checked.valve_board_name, checked.valve_board
    mcu_name, mcu_cfg = checked.mcu_name, checked.mcu
    stale_n = rig.controller.safety.stale_after_periods
    vb_driver = checked.valve_board_driver  # derives its node codec (offset node_id - 1)
    port = ports[vb.bus]
    for arb_id in vb_driver.arbitration_ids:
        port.register(arb_id, vb_driver.on_frame)
    port.add_checker_stats(vb_driver.checker)
    mcu_driver = McuDriver(
        serial_links[mcu_cfg.bus],
        heartbeat_period_s=mcu_cfg.heartbeat_period_s,
        stale_after_periods=stale_n,
    )

    # ---------------------------------------------------------------- emulation
    valves = thruster_valves(rig)
    sim: Simulation | None = None
    runner: RealtimeRunner | None = None
    world: World | None = None
    faults: FaultWiring | None = None
    if emu is not None:
        core = build_core_emulation(checked, emu_can[vb.bus], emu_serial[mcu_cfg.bus], seed=seed, record=record)
        world, sim, faults = core.world, core.sim, core.faults
        rig_faults.register(faults)
        if realtime:
            from firmware_bridge.emulation.sim import RealtimeRunner

            runner = RealtimeRunner(sim, io_clock)

    # ---------------------------------------------------------------- component families
    def open_emulator_can(bus_name: str) -> can.BusABC:
        nb = open_node(bus_name)  # check_rig: emulator nodes only on CAN buses of an emulated rig
        closers.append(nb.shutdown)
        return nb

    ctx = BuildContext(
        cfg=rig,
        path=rig_path,
        realtime=realtime,
        clock=clock,
        io_clock=io_clock,
        seed=seed,
        record=record,
        can_ports=ports,
        can_codecs={k: v.codec for k, v in checked.can.items()},
        can_channels=can_channels,
        open_emulator_can=open_emulator_can,
        serial_links=serial_links,
        emulator_serial=emu_serial,
        sim=sim,
        world=world,
        faults=faults,
        options=dict(options or {}),
        closers=closers,
        ingress=ingress,
    )
    components: list[Component] = []
    for build_family in COMPONENT_BUILDERS.values():
        component = build_family(ctx)
        if component is not None:
            components.append(component)
            closers.append(component.close)
    if sim is not None and faults is not None:
        sim.fault_plan = faults.simulation_plan(name)  # every target registered by now

    gains = PoseGains(**rig.controller.gains.model_dump())  # same field names and units
    max_thrust = [t.max_thrust_n for t in rig.thrusters]
    og = rig.controller.output_guard
    guard = OutputGuard(max_thrust, og.max_thrust_rate_n_per_s, og.max_nonfinite_ticks)
    valve_board = ValveBoardComponent(vb_name, vb_driver, port, vb.accepted_firmware, valves, vb.n_valves,
                                      max_thrust, modulator=checked.commander,
                                      clock=clock.now_s if realtime else None,  # T03: no stale command
                                      max_command_age_s=1.0 / rig.controller.rate_hz)
    port.register(vb_driver.command_id, valve_board.on_foreign_command)
    vehicle = Vehicle(
        fsm=FsmEngine(fsm_model, now_s=0.0),
        can_ports=ports,
        valves=valve_board,
        mcu=McuComponent(mcu_name, mcu_driver, mcu_cfg.accepted_firmware),
        components=components,
        control=PoseControl(allocator, gains, MissionExecutor(mission) if mission is not None else None),
        guard=guard,
        record=record,
        post_timeout_s=rig.controller.post_timeout_s,
        overruns_last_second=rig_faults.overruns(loop_overruns),
        max_overruns_per_s=rig.controller.safety.max_overruns_per_s,
    )
    return BuiltRig(
        cfg=rig,
        path=rig_path,
        clock=clock,
        realtime=realtime,
        vehicle=vehicle,
        can_ports=ports,
        sim=sim,
        runner=runner,
        closers=closers,
        world=world,
        can_channels=can_channels,
        can_node_opener=open_node,
    )
