"""Optional subsystems of a vehicle (radars, power), plugged into the tick through one seam.

A subsystem is built by the composition root (:mod:`controller.rig`) from the rig file and
joins the vehicle's tick at fixed points. It never owns time and never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


class Subsystem(Protocol):
    """What the vehicle calls, in tick order. Every method is per tick unless noted."""

    #: Key of the subsystem's block in ``summary.json`` (``"radar"``, ``"power"``).
    name: str

    def read(self, now_s: float, vehicle: Any) -> None:
        """Read phase, after the vehicle's own buses were drained."""

    def post_report(self, now_s: float) -> dict[str, tuple[bool, str]] | None:
        """POST verdict per device, or None while still waiting for data (boot only)."""

    def monitor(self, now_s: float, vehicle: Any) -> list[tuple[str, str | None]]:
        """Fault conditions ``(key, reason)``: a reason raises ``fault``; None clears it."""

    def arming_check(self, now_s: float, vehicle: Any) -> tuple[bool, str]:
        """May the vehicle arm now? ``(False, reason)`` refuses ``arm`` (SAFETY.md O01)."""

    def on_action(self, action: str, now_s: float, vehicle: Any) -> None:
        """Called after the vehicle ran an FSM action (``enable_valve_rail``...)."""

    def write(self, now_s: float, vehicle: Any) -> None:
        """Write phase, after the thruster command was sent."""

    def summary(self) -> dict[str, Any]:
        """Block for ``summary.json`` (once, at the end of a run)."""

    def close(self) -> None:
        """Stop threads, close links (once, at the end of a run; safe twice)."""


@dataclass
class SubsystemContext:
    """Everything a subsystem builder may use; given by :func:`controller.rig.build_rig`.

    Attributes
    ----------
    cfg, path : the validated rig and its file (resolve data paths against ``path``)
    realtime : bool, True when built for real time (threads, pty, TCP on 127.0.0.1)
    clock : the run's clock (SimClock or MonotonicClock)
    seed : int, seed for every random source of the emulation
    record : event sink ``(tick, time_s, kind, **fields)``
    can_ports : dict bus name -> CanPort (host side)
    can_dbc_paths : dict bus name -> list of resolved DBC paths
    can_channels : dict bus name -> python-can channel actually opened (emulated rigs:
        unique per run); ``open_emulator_can(bus)`` opens one more virtual node on it
    serial_links : dict bus name -> host SerialLink
    emulator_serial : dict bus name -> device-side SerialLink (emulated rigs only)
    sim : Simulation or None; append emulators to ``sim.extra`` (``step(t_s)`` at the
        physics rate) and valve-rail conditions to ``sim.rail_gates``
    world : World or None
    options : dict, run options (``lr_replay``, ``sr_replay`` paths)
    closers : list of callables run at the end (reverse order)
    """

    cfg: Any
    path: Path
    realtime: bool
    clock: Any
    seed: int
    record: Callable[..., None]
    can_ports: dict[str, Any]
    can_dbc_paths: dict[str, list[Path]]
    can_channels: dict[str, str]
    open_emulator_can: Callable[[str], Any]
    serial_links: dict[str, Any]
    emulator_serial: dict[str, Any]
    sim: Any
    world: Any
    options: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
