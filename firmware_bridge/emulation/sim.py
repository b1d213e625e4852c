"""Steps the emulated far end of every bus and the world, on the caller's time.

Lockstep: the control loop calls :meth:`Simulation.advance` between ticks; the world moves
in physics steps (1 kHz or finer) and the emulators step with it. Real time:
:class:`RealtimeRunner` calls the same ``advance`` from its own thread, chasing the
monotonic clock in physics steps, so the emulators never sleep inside their own code.

Wiring modelled here (the only hardware wiring of the virtual rig): the valve board's
solenoid supply is the MCU's valve-rail enable line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from firmware_bridge.emulation.faults import FaultPlan
from firmware_bridge.emulation.world import World

if TYPE_CHECKING:
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator


class Steppable(Protocol):
    """An emulator stepped at the physics rate (an entry of :attr:`Simulation.extra`)."""

    def step(self, t_s: float) -> None:
        """Advance to ``t_s`` (s); never sleeps."""
        ...


class _Clock(Protocol):
    """The part of ``controller.clock.Clock`` the runner reads (no import of controller)."""

    def now_s(self) -> float:
        """Seconds since the clock's epoch."""
        ...


class Simulation:
    """The world plus emulators, advanced in exact physics steps.

    Parameters
    ----------
    world : World
    valve_board : ValveBoardEmulator
    mcu : McuEmulator
    physics_rate_hz : float
        Physics step rate (Hz), >= 1000.
    fault_plan : FaultPlan, optional
        Faults of the emulators stepped here (valve board, MCU, and whatever the
        subsystems register), stepped at the start of every physics step, before the
        emulators (:mod:`firmware_bridge.emulation.faults`). May be set after
        construction (:attr:`fault_plan`), before the first :meth:`advance`.
    extra : sequence of Steppable, optional
        Further emulators with ``step(t_s)``, stepped after the valve board at every
        physics step (kept in :attr:`extra`; subsystems append to it).
    """

    def __init__(
        self,
        world: World,
        valve_board: ValveBoardEmulator,
        mcu: McuEmulator,
        physics_rate_hz: float = 1000.0,
        fault_plan: FaultPlan | None = None,
        extra: Sequence[Steppable] = (),
    ) -> None:
        self.world = world
        self.valve_board = valve_board
        self.mcu = mcu
        self.extra: list[Steppable] = list(extra)
        self.dt_ns = int(round(1e9 / physics_rate_hz))
        self.dt_s = self.dt_ns * 1e-9
        self.fault_plan = fault_plan
        self.t_ns = 0
        #: Callables ``(t_s, open_fractions)`` told about every physics step (tests,
        #: independent monitors); empty in normal runs.
        self.observers: list[Callable[[float, Sequence[float]], None]] = []
        #: Extra conditions for the valve rail to carry power (e.g. the PDU relay), each
        #: a callable ``() -> bool``; the MCU's rail line is always one of them.
        self.rail_gates: list[Callable[[], bool]] = []

    def advance(self, t0_s: float, t1_s: float) -> None:
        """Advance everything from ``t0_s`` to ``t1_s`` (s) in physics steps.

        The emulators step at the start of every physics step; the world integrates the
        valves' exact open fractions over the step.
        """
        end_ns = int(round(t1_s * 1e9))
        if self.t_ns < int(round(t0_s * 1e9)):
            self.t_ns = int(round(t0_s * 1e9))
        dt_ns, dt_s = self.dt_ns, self.dt_s
        world, vb, mcu = self.world, self.valve_board, self.mcu
        plan = self.fault_plan
        while self.t_ns < end_ns:
            t = self.t_ns * 1e-9
            if plan is not None:
                plan.step(t)
            mcu.step(t)
            powered = mcu.rail_enabled
            if powered:
                for gate in self.rail_gates:
                    if not gate():
                        powered = False
                        break
            vb.rail_powered = powered
            vb.step(t)
            for e in self.extra:
                e.step(t)
            fractions = vb.open_fractions(t, t + dt_s)
            world.step(dt_s, fractions)
            for obs in self.observers:
                obs(t, fractions)
            self.t_ns += dt_ns


class RealtimeRunner:
    """Runs :meth:`Simulation.advance` on its own thread against a real clock.

    Parameters
    ----------
    sim : Simulation
    clock : Clock
        The monotonic clock shared with the control loop.
    """

    def __init__(self, sim: Simulation, clock: _Clock) -> None:
        self.sim = sim
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qiki-emulators", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the emulator thread (daemon; :meth:`stop` joins it with a timeout)."""
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = self.clock.now_s()
                self.sim.advance(self.sim.t_ns * 1e-9, now)
                self._stop.wait(0.0005)
        except BaseException as exc:  # surfaced by stop(); the thread never dies silently
            self.error = exc

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and wait at most ``timeout_s``; re-raise its error if any."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self.error is not None:
            raise RuntimeError(f"emulator thread failed: {self.error!r}") from self.error
