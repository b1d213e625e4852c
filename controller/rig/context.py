"""What the builders of the composition room share while a rig is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.record.replay_ports import Ingress
    from hal.can.codec import DbcCodec


@dataclass
class BuildContext:
    """Everything a component builder of the composition room may use (:func:`build_rig`).

    Attributes
    ----------
    cfg, path : the validated rig and its file (resolve data paths against ``path``)
    realtime : bool, True when built for real time (threads, pty, TCP on 127.0.0.1)
    clock : the run's clock (SimClock or MonotonicClock)
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
    options : dict, run options (``lr_replay``, ``sr_replay`` paths)
    closers : list of callables run at the end (reverse order)
    ingress : Ingress or None; the flight record's taps, or a replay (then ``sim`` is None
        and builders open no emulator; Modbus pollers come from ``ingress.replay_poller``)
    """

    cfg: Any
    path: Path
    realtime: bool
    clock: Any
    seed: int
    record: Callable[..., None]
    can_ports: dict[str, Any]
    can_codecs: dict[str, DbcCodec]
    can_channels: dict[str, str]
    open_emulator_can: Callable[[str], Any]
    serial_links: dict[str, Any]
    emulator_serial: dict[str, Any]
    sim: Any
    world: Any
    options: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    ingress: Ingress | None = None
