"""Steps the emulated far end of every bus and the world, on the caller's time.

Lockstep: the control loop calls :meth:`Simulation.advance` between ticks; the world moves
in physics steps (1 kHz or finer) and the emulators step with it. Real time:
:class:`RealtimeRunner` calls the same ``advance`` from its own thread, chasing the
monotonic clock in physics steps, so the emulators never sleep inside their own code.

Wiring modelled here (the only hardware wiring of the virtual rig): the valve board's
solenoid supply is the MCU's valve-rail enable line.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from firmware_bridge.emulation.world import World

#: Fault names :class:`Simulation` applies (``controller.config.FaultCfg.fault`` lists the same).
FAULT_NAMES = frozenset({
    "host_heartbeat_loss", "mcu_silent", "valve_board_silent", "estop_press", "estop_release",
    "valve_stuck_closed", "valve_board_reboot", "serial_garbage",
})


@dataclass(frozen=True)
class ScheduledFault:
    """A fault plan entry: at ``at_s`` apply ``fault`` (see ``controller.config.FaultCfg``).

    Attributes
    ----------
    at_s : float
        Simulated time of the fault, s.
    fault : str
        One of :data:`FAULT_NAMES`.
    valve : int or None
        Valve index, 0-based (``valve_stuck_closed``; None means 0).
    length : int
        Random bytes put on the MCU's TX line (``serial_garbage``).
    """

    at_s: float
    fault: str
    valve: int | None = None
    length: int = 64


class Simulation:
    """The world plus emulators, advanced in exact physics steps.

    Parameters
    ----------
    world : World
    valve_board : ValveBoardEmulator
    mcu : McuEmulator
    physics_rate_hz : float
        Physics step rate (Hz), >= 1000.
    faults : sequence of ScheduledFault
        Fault plan, applied when simulated time reaches ``at_s``.
    seed : int
        Seed of the fault plan's random bytes.
    on_fault : callable ``(time_s, fault) -> None``, optional
        Told when a planned fault is applied (for the event log).
    extra : sequence of object, optional
        Further emulators with ``step(t_s)``, stepped after the valve board at every
        physics step (kept in :attr:`extra`; subsystems append to it).

    Raises
    ------
    ValueError
        If a fault of the plan is not one of :data:`FAULT_NAMES` (a typo would otherwise
        make a fault test pass without any fault).
    """

    def __init__(
        self,
        world: World,
        valve_board: Any,
        mcu: Any,
        physics_rate_hz: float = 1000.0,
        faults: Sequence[ScheduledFault] = (),
        seed: int = 0,
        on_fault: Callable[[float, ScheduledFault], None] | None = None,
        extra: Sequence[Any] = (),
    ) -> None:
        faults = sorted(faults, key=lambda f: f.at_s)
        unknown = sorted({f.fault for f in faults} - FAULT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(FAULT_NAMES)}")
        self.world = world
        self.valve_board = valve_board
        self.mcu = mcu
        self.extra = list(extra)
        self.dt_ns = int(round(1e9 / physics_rate_hz))
        self.dt_s = self.dt_ns * 1e-9
        self.faults = faults
        self._next_fault = 0
        self._rng = random.Random(seed)
        self.on_fault = on_fault
        self.t_ns = 0
        #: Callables ``(t_s, open_fractions)`` told about every physics step (tests,
        #: independent monitors); empty in normal runs.
        self.observers: list[Callable[[float, Sequence[float]], None]] = []
        #: Extra conditions for the valve rail to carry power (e.g. the PDU relay), each
        #: a callable ``() -> bool``; the MCU's rail line is always one of them.
        self.rail_gates: list[Callable[[], bool]] = []

    def _apply_fault(self, f: ScheduledFault, now_s: float) -> None:
        vb, mcu = self.valve_board, self.mcu
        if f.fault == "host_heartbeat_loss":
            mcu.drop_host_heartbeats = True
        elif f.fault == "mcu_silent":
            mcu.silent = True
        elif f.fault == "valve_board_silent":
            vb.silent = True
        elif f.fault == "estop_press":
            mcu.press_estop()
        elif f.fault == "estop_release":
            mcu.release_estop()
        elif f.fault == "valve_stuck_closed":
            vb.stuck_closed.add(int(f.valve or 0))
        elif f.fault == "valve_board_reboot":
            vb.reboot(now_s)
        elif f.fault == "serial_garbage":
            mcu.inject_garbage(bytes(self._rng.getrandbits(8) for _ in range(f.length)))
        if self.on_fault is not None:
            self.on_fault(now_s, f)

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
        faults = self.faults
        while self.t_ns < end_ns:
            t = self.t_ns * 1e-9
            while self._next_fault < len(faults) and faults[self._next_fault].at_s <= t + 1e-12:
                self._apply_fault(faults[self._next_fault], t)
                self._next_fault += 1
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

    def __init__(self, sim: Simulation, clock: Any) -> None:
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
