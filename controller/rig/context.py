"""What the builders of the composition room share while a rig is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import can

    from controller.clock import Clock
    from controller.config import RigCfg
    from controller.record.ingress import Ingress
    from controller.rig.fault_plan import FaultWiring
    from firmware_bridge.emulation.sim import Simulation
    from firmware_bridge.emulation.world import World
    from hal.can.codec import DbcCodec
    from hal.can.port import CanPort
    from hal.serial.link import SerialLink

#: Run options of a build: ``lr_replay``, ``sr_replay`` (recording paths, None: none).
BuildOptions = dict[str, "str | Path | None"]


@dataclass
class BuildContext:
    """Everything a component builder of the composition room may use (:func:`build_rig`).

    Attributes
    ----------
    cfg, path : the validated rig and its file (resolve data paths against ``path``)
    realtime : bool, True when built for real time (threads, pty, TCP on 127.0.0.1)
    clock : the run's clock as the tick reads it (SimClock or MonotonicClock; in real time
        tapped by the flight record, or a replay's); for components
    io_clock : the same clock untapped, for what runs beside the tick (emulators, Modbus
        pollers' workers), whose readings a replay does not reproduce
    seed : int, seed for every random source of the emulation
    record : event sink ``(tick, time_s, kind, **fields)``
    can_ports : dict bus name -> CanPort (host side)
    can_codecs : dict bus name -> the bus's DbcCodec, loaded and checked once by check_rig
    can_channels : dict bus name -> python-can channel actually opened (emulated rigs:
        unique per run); ``open_emulator_can(bus)`` opens one more virtual node on it
    serial_links : dict bus name -> host SerialLink
    emulator_serial : dict bus name -> device-side SerialLink (emulated rigs only)
    sim : Simulation or None; append emulators to ``sim.extra`` (``step(t_s)`` at the
        physics rate) and valve-rail conditions to ``sim.rail_gates``
    world : World or None
    faults : FaultWiring or None (emulated rigs); register every emulator a fault plan
        may target: ``faults.add(device, emulator)`` when the simulation steps it,
        ``emulator.fault_plan = faults.own_plan(device, emulator)`` when it steps its own
    options : dict, run options (``lr_replay``, ``sr_replay`` paths)
    closers : list of callables run at the end (reverse order)
    ingress : Ingress or None; the flight record's taps, or a replay (then ``sim`` is None
        and builders open no emulator; Modbus pollers come from ``ingress.replay_poller``)
    """

    cfg: RigCfg
    path: Path
    realtime: bool
    clock: Clock
    io_clock: Clock
    seed: int
    record: Callable[..., None]
    can_ports: dict[str, CanPort]
    can_codecs: dict[str, DbcCodec]
    can_channels: dict[str, str]
    open_emulator_can: Callable[[str], can.BusABC]
    serial_links: dict[str, SerialLink]
    emulator_serial: dict[str, SerialLink]
    sim: Simulation | None
    world: World | None
    faults: FaultWiring | None = None
    options: BuildOptions = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    ingress: Ingress | None = None
