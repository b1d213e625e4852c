"""The far end of a rig: the world and every emulator, without the controller.

Part of the composition room (:mod:`controller.rig`). The in-process build
(:func:`controller.rig.build_rig`) and the two-process one (``qiki emulate``) build the
emulation with the same builders:

* :func:`build_core_emulation` -- the world, the valve board and the MCU, the fault plan's
  wiring and the :class:`~firmware_bridge.emulation.sim.Simulation` stepping them;
  called by :func:`controller.rig.build.build_rig` on an emulated rig and by
  :func:`build_far_end`;
* the families' emulators -- :func:`controller.rig.radar_emulation.emulate`,
  :func:`controller.rig.power_emulation.emulate_power`, :func:`controller.rig.tank.emulate`
  (the same helpers their ``build`` calls in process), in the order of
  :data:`controller.rig.build.COMPONENT_BUILDERS`.

:func:`build_far_end` puts that emulation at the far end of real wires, reachable from
another process the way real hardware is (issue 13): each CAN bus through an emulated
slcan adapter on a pty (:class:`~firmware_bridge.emulation.slcan_adapter.SlcanBridge`;
the controller opens it with python-can's ``slcan`` interface), each serial device on a
pty, each Modbus bus as a pymodbus server on 127.0.0.1 (``memory://`` buses) or on an RTU
pty (``rtu://emulated``). It always runs in real time (:class:`RealtimeRunner` on a
:class:`~controller.clock.MonotonicClock`). ``docs/two-process.md`` tells how to use it.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from controller.clock import MonotonicClock
from controller.config import CanBusCfg, ModbusBusCfg, SerialBusCfg, thruster_valves
from controller.errors import ConfigError, opening
from controller.rig import radar_emulation
from controller.rig import tank as tank_room
from controller.rig.context import BuildContext
from controller.rig.fault_plan import FaultWiring
from controller.rig.power_emulation import FarEndPower, emulate_power
from firmware_bridge.protocols.firmware_version import parse_version

if TYPE_CHECKING:
    import can

    from controller.rig.check import CheckedRig
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.sim import RealtimeRunner, Simulation
    from firmware_bridge.emulation.slcan_adapter import SlcanBridge
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator
    from firmware_bridge.emulation.world import World
    from hal.serial.link import SerialLink

__all__ = ["CoreEmulation", "FarEnd", "Record", "build_core_emulation", "build_far_end"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Event sink of a build, ``(tick, time_s, kind, **fields)``.
Record = Callable[..., None]


class CoreEmulation(NamedTuple):
    """What :func:`build_core_emulation` built.

    Attributes
    ----------
    world : World
    sim : Simulation
        Steps the world, the valve board (``sim.valve_board``) and the MCU (``sim.mcu``);
        the families append their emulators to ``sim.extra``. Its ``fault_plan`` is set
        once every family registered its emulators (:meth:`FaultWiring.simulation_plan`).
    faults : FaultWiring
        The valve board and the MCU registered; the families register theirs.
    """

    world: World
    sim: Simulation
    faults: FaultWiring


def build_core_emulation(checked: CheckedRig, can_bus: can.BusABC, mcu_link: SerialLink, *, seed: int,
                         record: Record) -> CoreEmulation:
    """Build the world, the emulated valve board and MCU, and the simulation stepping them.

    Parameters
    ----------
    checked : CheckedRig
        A checked rig with an ``emulation`` block.
    can_bus : can.BusABC
        The valve board's node on its CAN bus (python-can ``virtual``).
    mcu_link : SerialLink
        The MCU's end of its serial link (a pipe end in lockstep, a pty master in real time).
    seed : int
        Seed of the MCU's pose noise and fault bytes.
    record : callable
        Event sink of the fault plan (``fault_injected`` / ``fault_cleared``).

    Returns
    -------
    CoreEmulation
    """
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.sim import Simulation
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator
    from firmware_bridge.emulation.world import ThrusterGeometry, World

    rig = checked.cfg
    emu = rig.emulation
    assert emu is not None  # callers: an emulated rig
    vb = checked.valve_board
    # thruster_valves(rig) gives one valve per thruster, in order
    geom_by_valve = {v: t for v, t in zip(thruster_valves(rig), rig.thrusters, strict=True)}
    geoms = []
    for v in range(vb.n_valves):
        t = geom_by_valve.get(v)
        if t is None:
            geoms.append(ThrusterGeometry(0.0, 0.0, 1.0, 0.0, 0.0))
            continue
        norm = math.hypot(*t.force_dir)
        geoms.append(ThrusterGeometry(t.position_m[0], t.position_m[1], t.force_dir[0] / norm,
                                      t.force_dir[1] / norm, t.max_thrust_n))
    w = emu.world
    world = World(rig.vehicle.mass_kg, rig.vehicle.inertia_kgm2, geoms, w.start_pose, w.linear_drag_n_per_mps)
    vb_emu = ValveBoardEmulator(
        can_bus,
        checked.can[vb.bus].codec,  # the emulator adds the node offset itself
        node_id=vb.node_id,
        n_valves=vb.n_valves,
        pwm_period_s=vb.pwm_period_s,
        open_delay_s=w.valve_open_delay_s,
        close_delay_s=w.valve_close_delay_s,
        command_timeout_s=emu.command_timeout_s,
        firmware_version=parse_version(emu.valve_board_firmware),
        rail_voltage_v=w.rail_voltage_v,
    )
    mcu_emu = McuEmulator(
        mcu_link,
        world,
        firmware_version=parse_version(emu.mcu_firmware),
        heartbeat_timeout_s=emu.heartbeat_timeout_s,
        pose_noise_m=w.pose_noise_m,
        yaw_noise_rad=w.yaw_noise_rad,
        seed=seed,
    )
    # the fault plan: the families register their emulators while they build
    faults = FaultWiring(checked.faults, record)
    faults.add(checked.valve_board_name, vb_emu)
    faults.add(checked.mcu_name, mcu_emu)
    return CoreEmulation(world, Simulation(world, vb_emu, mcu_emu, w.physics_rate_hz), faults)


@dataclass
class FarEnd:
    """The emulated hardware of a rig, running in real time behind real wires (:func:`build_far_end`).

    Attributes
    ----------
    checked : CheckedRig
    clock : MonotonicClock
        Frozen until :meth:`start`; the emulators' time (s since the start).
    sim : Simulation
        ``sim.valve_board``, ``sim.mcu``, ``sim.observers`` (called at every physics step).
    runner : RealtimeRunner
    endpoints : dict of str to dict
        Per bus name, where the controller reaches it: ``{"kind": "can", "interface":
        "slcan", "channel": "/dev/pts/N", "bitrate_bps": ...}``, ``{"kind": "serial",
        "url": "/dev/pts/M", "baudrate": ...}``, ``{"kind": "modbus", "url":
        "tcp://127.0.0.1:PORT"}`` (or ``rtu:///dev/pts/K?baudrate=N``).
    bridges : dict of str to SlcanBridge
        Per CAN bus, its emulated slcan adapter.
    power : FarEndPower or None
    closers : list of callables
        Run in reverse order by :meth:`close`.
    """

    checked: CheckedRig
    clock: MonotonicClock
    sim: Simulation
    runner: RealtimeRunner
    endpoints: dict[str, dict[str, object]]
    bridges: dict[str, SlcanBridge]
    power: FarEndPower | None
    closers: list[Callable[[], None]] = field(default_factory=list)
    started: bool = False

    @property
    def valve_board(self) -> ValveBoardEmulator:
        """The emulated valve board."""
        return self.sim.valve_board

    @property
    def mcu(self) -> McuEmulator:
        """The emulated MCU."""
        return self.sim.mcu

    def start(self, on_clock_start: Callable[[], None] | None = None) -> None:
        """Start the clock (t = 0 now), call ``on_clock_start()``, start the emulator thread."""
        self.clock.start()
        if on_clock_start is not None:
            on_clock_start()
        self.runner.start()
        self.started = True

    def close(self) -> None:
        """Stop the emulator thread, then close every pty, server and node; idempotent.

        Raises
        ------
        RuntimeError
            The emulator thread had failed (after everything is closed).
        """
        error: BaseException | None = None
        try:
            if self.started:
                self.started = False
                self.runner.stop()
        except RuntimeError as exc:
            error = exc
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                _log.debug("far end: a closer failed", exc_info=True)
        self.closers.clear()
        if error is not None:
            raise error


def build_far_end(checked: CheckedRig, *, seed: int = 0, record: Record | None = None,
                  tcp_ports: Mapping[str, int] | None = None,
                  options: Mapping[str, str | Path | None] | None = None) -> FarEnd:
    """Build the emulated far end of every bus of an emulated rig, for another process to reach.

    Parameters
    ----------
    checked : CheckedRig
        A checked rig with an ``emulation`` block (:func:`controller.rig.check_rig`).
    seed : int, optional
        Seed of every random source of the emulation (as ``qiki run --seed``).
    record : callable, optional
        Event sink ``(tick, time_s, kind, **fields)`` of the fault plan.
    tcp_ports : mapping of str to int, optional
        TCP port per Modbus bus name (absent or 0: ephemeral).
    options : mapping, optional
        ``lr_replay``, ``sr_replay``: recordings the radars replay.

    Returns
    -------
    FarEnd
        Built, not started (:meth:`FarEnd.start`).

    Raises
    ------
    ConfigError
        The rig has no ``emulation`` block; a replay file with nothing usable in it.
    BusConfigError, DeviceUnavailableError, ProtocolError
        A pty, node or server that cannot be opened (nothing is left open).
    """
    from firmware_bridge.emulation.sim import RealtimeRunner
    from firmware_bridge.emulation.slcan_adapter import SlcanBridge
    from hal.can.bus import open_can_bus
    from hal.serial.link import open_pty_pair

    rig, name = checked.cfg, str(checked.path)
    if rig.emulation is None:
        raise ConfigError(name, "emulation", "the rig emulates nothing: qiki emulate needs an emulated rig "
                          "(e.g. rigs/virtual.yaml)")
    sink: Record = record if record is not None else (lambda *a, **k: None)
    clock = MonotonicClock(frozen=True)
    closers: list[Callable[[], None]] = []
    run_tag = uuid.uuid4().hex[:8]
    try:
        endpoints: dict[str, dict[str, object]] = {}
        bridges: dict[str, SlcanBridge] = {}
        can_channels: dict[str, str] = {}
        emu_can: dict[str, can.BusABC] = {}
        emu_serial: dict[str, SerialLink] = {}
        for bus_name, bus in rig.buses.items():
            if isinstance(bus, CanBusCfg):
                channel = can_channels[bus_name] = f"{bus.channel}-far-{run_tag}"
                with opening(name, f"buses.{bus_name}"):
                    bridge = SlcanBridge(channel, bus.bitrate_bps)
                    closers.append(bridge.close)
                    node = open_can_bus("virtual", channel, bus.bitrate_bps)
                closers.append(node.shutdown)
                bridges[bus_name], emu_can[bus_name] = bridge, node
                endpoints[bus_name] = {"kind": "can", "interface": "slcan", "channel": bridge.path,
                                       "bitrate_bps": bus.bitrate_bps}
            elif isinstance(bus, SerialBusCfg):
                master, slave_path = open_pty_pair(bus_name)
                closers.append(master.close)
                emu_serial[bus_name] = master
                endpoints[bus_name] = {"kind": "serial", "url": slave_path, "baudrate": bus.baudrate}

        core = build_core_emulation(checked, emu_can[checked.valve_board.bus], emu_serial[checked.mcu.bus],
                                    seed=seed, record=sink)

        def open_emulator_can(bus_name: str) -> can.BusABC:
            b = rig.buses[bus_name]
            assert isinstance(b, CanBusCfg)  # check_rig: emulator nodes only on CAN buses
            nb = open_can_bus("virtual", can_channels[bus_name], b.bitrate_bps)
            closers.append(nb.shutdown)
            return nb

        ctx = BuildContext(
            cfg=rig, path=checked.path, realtime=True, clock=clock, io_clock=clock, seed=seed, record=sink,
            can_ports={}, can_codecs={k: v.codec for k, v in checked.can.items()}, can_channels=can_channels,
            open_emulator_can=open_emulator_can, serial_links={}, emulator_serial=emu_serial, sim=core.sim,
            world=core.world, faults=core.faults, options=dict(options or {}), closers=closers)
        # the families, in the order of build.COMPONENT_BUILDERS (radar, power, tank)
        radar_emulation.emulate(ctx)
        power = emulate_power(ctx, checked.profiles, tcp_ports or {})
        if power is not None:
            for bus_name, url in power.urls.items():
                mb = rig.buses[bus_name]
                assert isinstance(mb, ModbusBusCfg)
                endpoints[bus_name] = {"kind": "modbus", "url": url, "timeout_s": mb.timeout_s}
        tank_room.emulate(ctx)
        core.sim.fault_plan = core.faults.simulation_plan(name)  # every target registered by now
        runner = RealtimeRunner(core.sim, clock)
    except BaseException:
        for close in reversed(closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - best effort while refusing
                pass
        raise
    return FarEnd(checked, clock, core.sim, runner, endpoints, bridges, power, closers)
