"""Steps the emulated far end of every bus and the world, on the caller's time.

Lockstep: the control loop calls :meth:`Simulation.advance` between ticks; the world moves
in physics steps (1 kHz or finer) and the emulators step with it. Real time:
:class:`RealtimeRunner` calls the same ``advance`` from its own thread, chasing the
monotonic clock in physics steps, so the emulators never sleep inside their own code.

Wiring modelled here (the only hardware wiring of the virtual rig): the valve board's
solenoid supply is the MCU's valve-rail enable line.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from firmware_bridge.emulation.faults import FaultPlan
from firmware_bridge.emulation.world import World

if TYPE_CHECKING:
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator


_NO_DUE: object = object()  # an extra without next_due_s (stepped at every step)


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
        #: Step every emulator at every physics step even when input can be watched (set
        #: by :class:`RealtimeRunner`: there the host writes from another thread at any time).
        self.every_step = False

    def advance(self, t0_s: float, t1_s: float) -> None:
        """Advance everything from ``t0_s`` to ``t1_s`` (s) in physics steps.

        Event-driven when every input of the valve board and the MCU can tell whether
        something waits (:attr:`event_driven`): each emulator is stepped only at the
        physics steps where it acts, the world in runs of steps between valve edges
        (:meth:`World.run`); bit for bit the same as stepping everything at every physics
        step, which is what happens otherwise (real time, or with :attr:`observers`).
        """
        end_ns = int(round(t1_s * 1e9))
        if self.t_ns < int(round(t0_s * 1e9)):
            self.t_ns = int(round(t0_s * 1e9))
        if self.observers or not self.event_driven:
            self._advance_every_step(end_ns)
        else:
            self._advance_events(end_ns)

    @property
    def event_driven(self) -> bool:
        """True when the valve board's bus and the MCU's link say whether input waits.

        A python-can ``virtual`` bus or a :class:`~hal.can.lockstep.LockstepBus`, and a
        :class:`~hal.serial.link.PipeLink` (lockstep builds) can; a pty cannot. Under a
        :class:`RealtimeRunner` (:attr:`every_step`) input may arrive at any time from
        another thread: every emulator is then stepped at every physics step.
        """
        return (not self.every_step and self.valve_board.input_pending is not None
                and self.mcu.input_pending is not None)

    def _advance_every_step(self, end_ns: int) -> None:
        """Step every emulator and the world at every physics step up to ``end_ns``."""
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

    def _rail_powered(self) -> bool:
        if not self.mcu.rail_enabled:
            return False
        for gate in self.rail_gates:
            if not gate():
                return False
        return True

    def _advance_events(self, end_ns: int) -> None:
        """:meth:`_advance_every_step` without the steps that do nothing (same results).

        At a physics step, in the order of :meth:`_advance_every_step`:

        * the fault plan acts at its next change; the MCU and the valve board are also
          stepped one step before and at that step (a fault reads their last step time);
        * the MCU is stepped at its :attr:`~McuEmulator.next_due_s` or when bytes wait;
        * the rail is recomputed where it may have changed (first step of the call, a
          fault, an MCU step, or the step after an extra emulator stepped when the rail
          gates, read right after the extras, differ from the valve board's rail: the
          gates read the extras' state, as the per-step loop does one step later);
        * the valve board is stepped at its ``next_due_s``, when a frame waits, or when
          the rail it sees changes;
        * each extra emulator at its ``next_due_s`` (every step when it has none);
        * the world steps with the valves' exact open fractions; between two valve
          edges these are constant and the steps are taken together (:meth:`World.run`).

        Inputs from outside arrive between calls (lockstep): they are looked for at the
        first step of every call and at every step where something acted. The quiet
        steps between (nothing due, no valve edge) are counted in bulk
        (:func:`_quiet_steps`), with the same tests as one by one.
        """
        dt_ns, dt_s = self.dt_ns, self.dt_s
        world, vb, mcu = self.world, self.valve_board, self.mcu
        plan = self.fault_plan
        extras = self.extra
        inf = math.inf
        early_s = dt_s + 1e-9  # the MCU and the valve board step one physics step before a fault
        plan_due = plan.next_due_s if plan is not None else inf
        mcu_due = mcu.next_due_s
        vb_due = vb.next_due_s
        # each extra's due time read once (-inf: it has none, and is stepped at every step)
        ex_dues: list[float] = []
        ex_always = False
        for e in extras:
            due = getattr(e, "next_due_s", _NO_DUE)
            if due is _NO_DUE:  # no attribute at all (a None due time fails below, as before)
                ex_always = True
                due = -inf
            ex_dues.append(cast(float, due))
        wake_t = -inf
        t_ns = self.t_ns
        seg_fr: list[float] = []
        seg_end = -inf  # no valid segment: compute one
        run_n = 0
        first = True  # the first step of a call: look at every input
        gates_stale = False  # an extra stepped: the rail gates may read otherwise now
        while t_ns < end_ns:
            t = t_ns * 1e-9
            if first or gates_stale or t >= wake_t:
                if run_n:
                    world.run(run_n, dt_s, seg_fr)
                    run_n = 0
                fired = False
                if plan is not None and t >= plan_due:
                    before = plan.pending
                    plan.step(t)
                    fired = plan.pending != before
                    plan_due = plan.next_due_s
                    if fired:  # a fault may change any emulator's due time
                        ex_dues = [getattr(e, "next_due_s", -inf) for e in extras]
                wake = first or fired or t >= plan_due - early_s
                recheck = wake or gates_stale
                if wake or t >= mcu_due or mcu.input_pending:
                    mcu.step(t)
                    mcu_due = mcu.next_due_s
                    recheck = True
                powered = self._rail_powered() if recheck else vb.rail_powered
                if wake or t >= vb_due or powered != vb.rail_powered or vb.input_pending:
                    vb.rail_powered = powered
                    vb.step(t)
                    vb_due = vb.next_due_s
                    seg_end = -inf
                stepped_extra = False
                for k, e in enumerate(extras):
                    if t >= ex_dues[k]:
                        e.step(t)
                        ex_dues[k] = getattr(e, "next_due_s", -inf)
                        stepped_extra = True
                first = False
                # The gates see an extra's step at the next step, as the per-step loop
                # computes the rail there; read now (nothing else runs in between) only
                # to know whether the valve board will see a change.
                gates_stale = (stepped_extra and bool(self.rail_gates)
                               and self._rail_powered() != vb.rail_powered)
                wake_t = -inf if ex_always else min(plan_due - early_s, mcu_due, vb_due, *ex_dues)
            # the world's step over [t, t + dt): deferred while the open fractions stay the
            # same (flushed before any emulator acts, as emulators read the world)
            t1 = t + dt_s
            if seg_end == -inf:
                seg_fr, seg_end = vb.open_segment(t)
            if t1 <= seg_end:
                run_n += 1
            else:  # a valve edge inside the step: exact fractions, a new segment after it
                if run_n:
                    world.run(run_n, dt_s, seg_fr)
                    run_n = 0
                world.step(dt_s, vb.open_fractions(t, t1))
                seg_end = -inf
            t_ns += dt_ns
            if run_n and not gates_stale:  # the quiet steps ahead, counted at once
                k = _quiet_steps(t_ns, end_ns, dt_ns, dt_s, wake_t, seg_end)
                run_n += k
                t_ns += k * dt_ns
            self.t_ns = t_ns
        if run_n:
            world.run(run_n, dt_s, seg_fr)


def _quiet_steps(t_ns: int, end_ns: int, dt_ns: int, dt_s: float, wake_t: float, seg_end: float) -> int:
    """Count the physics steps from ``t_ns`` on at which the event loop has nothing to do.

    A step at ``u`` ns is quiet when it is before ``end_ns``, nothing is due
    (``u * 1e-9 < wake_t``, s) and no valve edge falls in it (``u * 1e-9 + dt_s <=
    seg_end``, s): exactly the tests of :meth:`Simulation._advance_events`, in the same
    float arithmetic. Each test is monotone in ``u``, so the quiet steps are a prefix:
    estimated from the bounds, then the estimate is corrected with the exact tests.

    Returns
    -------
    int
        Number of consecutive quiet steps starting at ``t_ns`` (0 if that one is not).
    """
    lim = float(end_ns)
    w = wake_t * 1e9
    if w < lim:
        lim = w
    e = (seg_end - dt_s) * 1e9
    if e < lim:
        lim = e
    k = int((lim - t_ns) / dt_ns) + 1 if lim > t_ns else 0  # about the count
    while k > 0:  # down to the last quiet step of the estimate (the test: see above)
        u = t_ns + (k - 1) * dt_ns
        t = u * 1e-9
        if u < end_ns and t < wake_t and t + dt_s <= seg_end:
            break
        k -= 1
    while True:  # up to the first step that is not quiet
        u = t_ns + k * dt_ns
        t = u * 1e-9
        if not (u < end_ns and t < wake_t and t + dt_s <= seg_end):
            return k
        k += 1


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
        sim.every_step = True
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
