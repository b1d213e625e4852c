"""Composition root: a rig YAML becomes buses, drivers, emulators, FSM and allocator.

The only module that knows how the pieces are wired (ARCHITECTURE.md 2, rule 3). Two ways
to build (ARCHITECTURE.md 3):

* lockstep (default on a virtual rig): ``SimClock``; CAN on python-can's ``virtual``
  interface with a channel name unique to the run (two runs in one process never hear
  each other); the MCU link is an in-process pipe; emulators step between ticks.
* real time (``realtime=True``): ``MonotonicClock``; the emulators run on their own
  thread; the MCU is reached through a real pty opened by pyserial.

On a rig without an ``emulation`` block nothing is emulated: the buses are real.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.clock import MonotonicClock, SimClock
from controller.config import (
    CanBusCfg,
    McuDeviceCfg,
    MissionCfg,
    RigCfg,
    SerialBusCfg,
    ValveBoardDeviceCfg,
    thruster_valves,
)
from controller.control import PoseGains
from controller.errors import ConfigError
from controller.mission import MissionExecutor
from controller.optional import import_optional
from controller.paths import resolve_data_path
from controller.safety.output_guard import OutputGuard
from controller.valve_command import ValveCommander
from controller.vehicle import DeviceSlot, Vehicle
from firmware_bridge.protocols.firmware_version import parse_version


def build_allocator(rig: RigCfg, name: str):
    """Build the allocator chosen by ``controller.allocation.method``.

    Parameters
    ----------
    rig : RigCfg
        A validated rig (planar thruster positions).
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ExactAllocator or PinvClipAllocator
        Over the effectiveness matrix ``B`` (3, N) of the thrusters
        (:func:`controller.allocation.effectiveness`), limits ``[0, max_thrust_n]`` (N).

    Raises
    ------
    ConfigError
        When the thruster geometry does not positively span the planar wrench space
        (SAFETY.md K06), or the axis weights or priorities do not fit it.
    """
    from controller.allocation import (
        ExactAllocator,
        PinvClipAllocator,
        axis_names,
        check_positive_span,
        effectiveness,
    )

    positions = [t.position_m for t in rig.thrusters]
    dirs = [t.force_dir for t in rig.thrusters]
    if len(positions[0]) != 2:
        raise ConfigError(name, "thrusters", "the virtual rig's world is planar: positions must be [x, y]")
    B = effectiveness(positions, dirs)
    ok, reason = check_positive_span(B)
    if not ok:
        raise ConfigError(name, "thrusters", f"geometry cannot produce the needed wrench space: {reason}")
    u_max = [t.max_thrust_n for t in rig.thrusters]
    alloc_cfg = rig.controller.allocation
    kwargs: dict[str, Any] = {}
    if alloc_cfg.axis_weights is not None:
        if len(alloc_cfg.axis_weights) != B.shape[0]:
            raise ConfigError(name, "controller.allocation.axis_weights", f"needs {B.shape[0]} weights")
        kwargs["axis_weights"] = alloc_cfg.axis_weights
    if alloc_cfg.axis_priorities is not None:
        key = "controller.allocation.axis_priorities"
        if alloc_cfg.method != "exact":
            raise ConfigError(name, key, "axis priorities need method: exact")
        names = [a.lower() for a in axis_names(B.shape[0])]
        groups: list[list[int]] = []
        seen: set[str] = set()
        for gi, group in enumerate(alloc_cfg.axis_priorities):
            idx = []
            for a in group:
                if a.lower() not in names:
                    raise ConfigError(name, f"{key}.{gi}", f"unknown axis {a!r} (axes: {', '.join(axis_names(B.shape[0]))})")
                if a.lower() in seen:
                    raise ConfigError(name, f"{key}.{gi}", f"axis {a!r} named twice")
                seen.add(a.lower())
                idx.append(names.index(a.lower()))
            groups.append(idx)
        kwargs["axis_priorities"] = groups
    if alloc_cfg.method == "exact":
        return ExactAllocator(B, u_max, **kwargs)
    return PinvClipAllocator(B, u_max, **kwargs)


def build_valve_commander(rig: RigCfg, name: str) -> ValveCommander:
    """Build the valve board's duty source from the rig (PWM period, delays, impulse bit).

    Parameters
    ----------
    rig : RigCfg
        A validated rig with one valve board.
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ValveCommander
        Valve delays from the valve board's ``open_delay_s``/``close_delay_s``, else the
        emulated world's, else 0.

    Raises
    ------
    ConfigError
        ``devices.<valve board>``: the PWM period is not a whole number of control ticks,
        the duty step is too coarse for the minimum impulse bit, or the valve closes a
        whole period later than it opens.
    """
    vb_name, vb = next((k, d) for k, d in rig.devices.items() if isinstance(d, ValveBoardDeviceCfg))
    emu = rig.emulation
    w_delays = (emu.world.valve_open_delay_s, emu.world.valve_close_delay_s) if emu is not None else (0.0, 0.0)
    try:
        return ValveCommander(
            [t.max_thrust_n for t in rig.thrusters],
            vb.pwm_period_s,
            1.0 / rig.controller.rate_hz,
            vb.min_impulse_bit_s,
            open_delay_s=vb.open_delay_s if vb.open_delay_s is not None else w_delays[0],
            close_delay_s=vb.close_delay_s if vb.close_delay_s is not None else w_delays[1],
        )
    except ValueError as exc:  # period vs tick rate, delays, minimum impulse bit vs duty step
        raise ConfigError(name, f"devices.{vb_name}", str(exc)) from exc


@dataclass
class BuiltRig:
    """Everything a run needs, built from one rig file."""

    cfg: RigCfg
    path: Path
    clock: Any
    realtime: bool
    vehicle: Vehicle
    can_ports: dict[str, Any]
    sim: Any = None
    runner: Any = None
    closers: list[Any] = field(default_factory=list)
    world: Any = None
    #: python-can channel actually opened per CAN bus (unique per run on emulated rigs).
    can_channels: dict[str, str] = field(default_factory=dict)

    def advance(self, t0_s: float, t1_s: float) -> None:
        """Lockstep hook: step the emulated world between ticks."""
        if self.sim is not None:
            self.sim.advance(t0_s, t1_s)

    def close(self) -> None:
        """Stop emulator threads and close every bus and link (safe to call twice)."""
        if self.runner is not None:
            runner, self.runner = self.runner, None
            runner.stop()
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # closing is best effort; nothing recorded is lost here
                pass
        self.closers.clear()


def build_rig(
    rig: RigCfg,
    rig_path: Path,
    *,
    mission: MissionCfg | None,
    record,
    realtime: bool = False,
    seed: int = 0,
    can_loggers: dict[str, Any] | None = None,
    loop_overruns=None,
    options: dict[str, Any] | None = None,
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
        Run options for subsystems (``lr_replay``, ``sr_replay``: recording paths).

    Raises
    ------
    ConfigError, HalError
        For anything in the rig that cannot be built (one line, exit status 2).
    """
    clock = MonotonicClock(frozen=True) if realtime else SimClock()
    closers: list[Any] = []
    try:
        return _build(rig, rig_path, mission, record, realtime, seed, can_loggers, loop_overruns, options, clock, closers)
    except BaseException:
        # Nothing half-built outlives a refused rig: close what was opened, newest first.
        for close in reversed(closers):
            try:
                close()
            except Exception:
                pass
        raise


def _build(rig, rig_path, mission, record, realtime, seed, can_loggers, loop_overruns, options, clock, closers) -> BuiltRig:
    """Body of :func:`build_rig`; everything it opens is registered in ``closers``."""
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.sim import RealtimeRunner, ScheduledFault, Simulation
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator
    from firmware_bridge.emulation.world import ThrusterGeometry, World
    from hal.can.bus import open_can_bus
    from hal.can.codec import DbcCodec
    from hal.can.port import CanPort
    from hal.devices.qiki_mcu import McuDriver
    from hal.devices.valve_board import ValveBoardDriver
    from hal.serial.link import PipeLink, PySerialLink, open_pty_pair
    from controller.fsm import FsmEngine, load_fsm

    name = str(rig_path)
    emu = rig.emulation
    run_tag = uuid.uuid4().hex[:8]

    fsm_model = load_fsm(resolve_data_path(rig.controller.fsm, rig_path))
    allocator = build_allocator(rig, name)

    # ---------------------------------------------------------------- buses
    codecs: dict[str, Any] = {}
    ports: dict[str, Any] = {}
    emu_can: dict[str, Any] = {}
    can_channels: dict[str, str] = {}
    serial_links: dict[str, Any] = {}
    emu_serial: dict[str, Any] = {}
    for bus_name, bus in rig.buses.items():
        if isinstance(bus, CanBusCfg):
            dbc_paths = [resolve_data_path(p, rig_path) for p in bus.dbc]
            for given, resolved in zip(bus.dbc, dbc_paths):
                if not resolved.exists():
                    raise ConfigError(name, f"buses.{bus_name}.dbc", f"DBC file {given!r} not found")
            codecs[bus_name] = dbc_paths
            channel = bus.channel
            if emu is not None and bus.interface == "virtual":
                channel = f"{bus.channel}-{run_tag}"
            can_channels[bus_name] = channel
            host_bus = open_can_bus(bus.interface, channel, bus.bitrate_bps)
            closers.append(host_bus.shutdown)
            logger = (can_loggers or {}).get(bus_name)
            ports[bus_name] = CanPort(host_bus, max_rx_frames_per_tick=bus.max_rx_frames_per_tick, on_frame_logged=logger)
            if emu is not None:
                if bus.interface != "virtual":
                    raise ConfigError(name, f"buses.{bus_name}.interface", "an emulated rig needs the 'virtual' CAN interface")
                dev_bus = open_can_bus("virtual", channel, bus.bitrate_bps)
                closers.append(dev_bus.shutdown)
                emu_can[bus_name] = dev_bus
        elif isinstance(bus, SerialBusCfg):
            if emu is not None:
                if realtime:
                    master, slave_path = open_pty_pair()
                    closers.append(master.close)
                    host_link = PySerialLink(slave_path, bus.baudrate, write_timeout_s=bus.write_timeout_s)
                    emu_serial[bus_name] = master
                else:
                    host_link, dev_link = PipeLink.pair(bus_name)
                    emu_serial[bus_name] = dev_link
            else:
                if bus.url.startswith("pipe://"):
                    raise ConfigError(name, f"buses.{bus_name}.url", "pipe:// links exist only on emulated rigs")
                host_link = PySerialLink(bus.url, bus.baudrate, write_timeout_s=bus.write_timeout_s)
            closers.append(host_link.close)
            serial_links[bus_name] = host_link
        # Modbus buses are built by the power integration (issue 5); nothing to open yet.

    # ---------------------------------------------------------------- devices
    vb_cfg = next((k, d) for k, d in rig.devices.items() if isinstance(d, ValveBoardDeviceCfg))
    mcu_item = next(((k, d) for k, d in rig.devices.items() if isinstance(d, McuDeviceCfg)), None)
    if mcu_item is None:
        raise ConfigError(name, "devices", "a rig needs one qiki_mcu device")
    vb_name, vb = vb_cfg
    mcu_name, mcu_cfg = mcu_item
    if not isinstance(rig.buses[vb.bus], CanBusCfg):
        raise ConfigError(name, f"devices.{vb_name}.bus", "the valve board needs a CAN bus")
    if not isinstance(rig.buses[mcu_cfg.bus], SerialBusCfg):
        raise ConfigError(name, f"devices.{mcu_name}.bus", "the MCU needs a serial bus")
    stale_n = rig.controller.safety.stale_after_periods
    vb_codec = DbcCodec(codecs[vb.bus], id_offset=vb.node_id - 1)
    vb_driver = ValveBoardDriver(vb_codec, node_id=vb.node_id, n_valves=vb.n_valves, stale_after_periods=stale_n)
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
    sim = runner = world = None
    if emu is not None:
        geom_by_valve = {v: t for v, t in zip(valves, rig.thrusters)}
        geoms = []
        for v in range(vb.n_valves):
            t = geom_by_valve.get(v)
            if t is None:
                geoms.append(ThrusterGeometry(0.0, 0.0, 1.0, 0.0, 0.0))
                continue
            norm = math.hypot(*t.force_dir)
            geoms.append(ThrusterGeometry(t.position_m[0], t.position_m[1], t.force_dir[0] / norm, t.force_dir[1] / norm, t.max_thrust_n))
        w = emu.world
        world = World(rig.vehicle.mass_kg, rig.vehicle.inertia_kgm2, geoms, w.start_pose, w.linear_drag_n_per_mps)
        vb_emu = ValveBoardEmulator(
            emu_can[vb.bus],
            DbcCodec(codecs[vb.bus], id_offset=vb.node_id - 1),
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
            emu_serial[mcu_cfg.bus],
            world,
            firmware_version=parse_version(emu.mcu_firmware),
            heartbeat_timeout_s=emu.heartbeat_timeout_s,
            pose_noise_m=w.pose_noise_m,
            yaw_noise_rad=w.yaw_noise_rad,
            seed=seed,
        )
        plan = [ScheduledFault(f.at_s, f.fault, f.valve, f.length) for f in emu.faults]

        def on_fault(t: float, f: ScheduledFault) -> None:
            record(-1, t, "fault_injected", fault=f.fault, valve=f.valve)

        sim = Simulation(world, vb_emu, mcu_emu, w.physics_rate_hz, plan, seed=seed, on_fault=on_fault)
        if realtime:
            runner = RealtimeRunner(sim, clock)

    # ---------------------------------------------------------------- subsystems
    def open_emulator_can(bus_name: str):
        b = rig.buses[bus_name]
        nb = open_can_bus("virtual", can_channels[bus_name], b.bitrate_bps)
        closers.append(nb.shutdown)
        return nb

    from controller.subsystems import SubsystemContext

    ctx = SubsystemContext(
        cfg=rig,
        path=rig_path,
        realtime=realtime,
        clock=clock,
        seed=seed,
        record=record,
        can_ports=ports,
        can_dbc_paths={k: list(v) for k, v in codecs.items()},
        can_channels=can_channels,
        open_emulator_can=open_emulator_can,
        serial_links=serial_links,
        emulator_serial=emu_serial,
        sim=sim,
        world=world,
        options=dict(options or {}),
        closers=closers,
    )
    subsystems = []
    for module_name in ("controller.subsystems.radar", "controller.subsystems.power"):
        module = import_optional(module_name)
        if module is None:
            continue
        sub = module.build(ctx)
        if sub is not None:
            subsystems.append(sub)
            closers.append(sub.close)

    gains = PoseGains(**rig.controller.gains.model_dump())  # same field names and units
    max_thrust = [t.max_thrust_n for t in rig.thrusters]
    og = rig.controller.output_guard
    guard = OutputGuard(max_thrust, og.max_thrust_rate_n_per_s, og.max_nonfinite_ticks)
    commander = build_valve_commander(rig, name)
    vehicle = Vehicle(
        fsm=FsmEngine(fsm_model, now_s=0.0),
        can_ports=ports,
        valve_board=DeviceSlot(vb_name, vb_driver, vb.accepted_firmware),
        mcu=DeviceSlot(mcu_name, mcu_driver, mcu_cfg.accepted_firmware),
        valve_port=port,
        allocator=allocator,
        thruster_valves=valves,
        n_valves=vb.n_valves,
        max_thrust_n=max_thrust,
        guard=guard,
        gains=gains,
        mission=MissionExecutor(mission) if mission is not None else None,
        record=record,
        post_timeout_s=rig.controller.post_timeout_s,
        modulator=commander,
        subsystems=subsystems,
        overruns_last_second=loop_overruns,
        max_overruns_per_s=rig.controller.safety.max_overruns_per_s,
    )
    port.register(vb_driver.command_id, vehicle.on_foreign_command)
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
    )
