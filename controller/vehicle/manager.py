"""The vehicle: the manager of its components, one tick read -> update -> write.

* **read**: drain every CAN port (handlers decode), then each component reads (the MCU
  first: its pose estimate is in the :class:`TickView` the others get);
* **update**: components' events and conditions (the fault book), POST, the operator's
  queued commands; the FSM steps (its engine orders the tick's events, SAFETY.md O04) and
  the transitions' actions run; in an ``allocate`` state :class:`PoseControl` gives the
  thrust demand;
* **write**: the output guard has the last word, then each component writes (the valve
  board's command every tick, zero actively; the MCU heartbeat).

Behind it (:mod:`.safety`): the exception barrier and the safe stop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from controller.components.mcu import McuComponent
from controller.components.seam import ActionHandler, Component, Condition, TickView, condition
from controller.components.valves import ValveBoardComponent
from controller.safety.output_guard import OutputGuard
from controller.vehicle.bindings import ACTION_IMPLS, GUARD_IMPLS, check_bindings
from controller.vehicle.control import PoseControl
from controller.vehicle.faults import FaultBook
from controller.vehicle.post import post_step
from controller.vehicle.safety import SafeStop
from hal.snapshot import JsonValue, SnapshotError, State, apply, capture, part

if TYPE_CHECKING:
    from controller.fsm import FsmEngine
    from controller.mission import MissionExecutor
    from hal.can.port import CanPort

RecordFn = Callable[..., None]
"""Event sink ``(tick, time_s, kind, **fields)`` (the run record)."""

#: A component's conditions not seen quiet (:meth:`Vehicle._monitor`): no tuple, no version.
_UNSEEN: tuple[Sequence[Condition] | None, int] = (None, -1)


class Vehicle(SafeStop):
    """The per-tick manager of one vehicle's components.

    Parameters
    ----------
    fsm : FsmEngine
        The state machine engine.
    can_ports : mapping of str to CanPort
        CAN ports by bus name (drained in read; bus-off and send failures are faults).
    valves : ValveBoardComponent
        The actuator: gets the guarded thrust every tick.
    mcu : McuComponent
        The state estimator (pose), E-stop input and valve-rail line.
    components : sequence of Component
        The others (radars, power), called after the valve board and the MCU.
    control : PoseControl
        Mission, pose PD and allocation.
    guard : OutputGuard
        The only path to the thrusters (ARCHITECTURE.md 5.1).
    record : RecordFn
        Event sink.
    post_timeout_s : float
        POST gives up (``post_failed``) after this long in ``boot`` (s).
    overruns_last_second : callable ``(now_s) -> int``, optional
        From the real-time loop (SAFETY.md T02).
    max_overruns_per_s : int
        More overruns than this in one second is the ``system lagging`` fault.
    """

    def __init__(self, *, fsm: FsmEngine, can_ports: Mapping[str, CanPort], valves: ValveBoardComponent,
                 mcu: McuComponent, components: Sequence[Component], control: PoseControl, guard: OutputGuard,
                 record: RecordFn, post_timeout_s: float = 5.0,
                 overruns_last_second: Callable[[float], int] | None = None, max_overruns_per_s: int = 5) -> None:
        super().__init__()
        self.fsm, self.can_ports, self.valves, self.mcu = fsm, dict(can_ports), valves, mcu
        self.components: list[Component] = [valves, mcu, *components]
        self.control, self.guard, self.record = control, guard, record
        self.post_timeout_s = post_timeout_s
        self.overruns_last_second, self.max_overruns_per_s = overruns_last_second, max_overruns_per_s
        self._handlers: dict[str, list[ActionHandler]] = {}
        for c in self.components:
            for name, fn in c.action_handlers().items():
                self._handlers.setdefault(name, []).append(fn)
        check_bindings(self._handlers)  # an unimplemented registry name fails here, at build
        self.faults = FaultBook()
        self.tick_index, self.now_s = 0, 0.0
        self.post_started_s: float | None = None
        self.post_result: dict[str, dict[str, Any]] = {}
        self.post_passed = False
        self.pending_events: list[str] = []
        self.transitions: list[list[Any]] = []
        self.demand_n: list[float] | None = None
        self.first_fault: str | None = None
        self.last_refusal: tuple[str, str] | None = None
        self._guard_faulted = False
        self._view: TickView | None = None
        #: Per component, the conditions tuple it returned last and the fault book's version
        #: when applying it changed nothing (see :meth:`_monitor`); not state.
        self._seen_conditions: list[tuple[Sequence[Condition] | None, int]] = [_UNSEEN] * (len(self.components) + 1)
        #: Per CAN bus, the clear conditions of its three fault keys (bus-off, receive
        #: path, sends), made once rather than formatted every tick (issue 16).
        self._port_conds = [(name, port, condition(f"{name}_busoff", None), condition(f"{name}_rx", None),
                             condition(f"{name}_send", None)) for name, port in self.can_ports.items()]
        #: The vehicle's own conditions when all are clear (:meth:`_own_conditions`), by
        #: ``(not boot) + 2 * (lag judged)``: the same tuple objects every healthy tick.
        ports_clear = tuple(c for _n, _p, *clear in self._port_conds for c in clear)
        thrusters, lag = (condition("thrusters", None),), (condition("lag", None),)
        self._own_clear: tuple[tuple[Condition, ...], ...] = (
            ports_clear, thrusters + ports_clear, ports_clear + lag, thrusters + ports_clear + lag)
        view = self.view()
        for a in self.fsm.initial_actions:
            self._run_action(a, view)

    # ------------------------------------------------------------------ helpers
    @property
    def state(self) -> str:
        """Current FSM state name."""
        return self.fsm.state

    @property
    def mission(self) -> MissionExecutor | None:
        """The mission being flown (None: none loaded)."""
        return self.control.mission

    @property
    def subsystems(self) -> list[Component]:
        """The components after the valve board and the MCU (radars, power)."""
        return self.components[2:]

    def view(self) -> TickView:
        """Return the frozen view of this tick that components get.

        Called several times per tick: the last view is returned again while tick, time,
        state and pose are the very same objects (``is``), otherwise a new one is built
        (issue 16: no per-call allocation when nothing changed). The outputs mode is a
        function of the state (the FSM model is fixed), so the same state object means
        the same outputs. :meth:`read` builds the tick's views itself (the same
        construction, inline: a new tick always misses this cache) and leaves the last one
        here for the later calls.
        """
        state, pose = self.fsm.state, self.mcu.pose
        v = self._view
        if (v is not None and v.state is state and v.pose is pose and v.now_s is self.now_s
                and v.tick is self.tick_index):
            return v
        v = self._view = TickView(self.tick_index, self.now_s, state, self.fsm.outputs, pose)
        return v

    def command(self, event: str) -> None:
        """Queue an operator or mission event for the next update (the O04 arbiter's input)."""
        self.pending_events.append(event)

    def _log(self, kind: str, **fields: Any) -> None:
        self.record(self.tick_index, self.now_s, kind, **fields)

    def _condition(self, key: str, reason: str | None) -> bool:
        """Set or clear one fault condition; log it and keep the first fault. True if new."""
        if not self.faults.set(key, reason):
            return False
        self._log("fault", source=key, reason=reason)
        if self.first_fault is None:
            self.first_fault = reason
        return True

    def _run_action(self, name: str, view: TickView) -> None:
        own = ACTION_IMPLS.get(name)
        if own is not None:
            own(self, view)
        for fn in self._handlers.get(name, ()):
            fn(view)

    # ------------------------------------------------------------------ snapshot
    #: The manager's own state in a snapshot (issue 12 part 4): tick, POST, queued events,
    #: transitions, the barrier's and the safe stop's latches.
    SNAPSHOT_FIELDS = ("output_inhibit", "exception_reason", "exceptions_caught", "shutdown_reason",
                       "shutdown_started_s", "shutdown_zero_ticks", "tick_index", "now_s", "post_started_s",
                       "post_result", "post_passed", "pending_events", "transitions", "demand_n", "first_fault",
                       "last_refusal", "_guard_faulted")

    def snapshot(self) -> State:
        """Return the vehicle's controller-side state at the end of a tick (issue 12 part 4).

        Its own state, the fault book, the FSM, pose control (mission progress, allocator
        warm start), the output guard, each CAN port's counters and bus health, and each
        component's :meth:`~controller.components.seam.Component.snapshot` (drivers,
        ingress freshness, partial frames, tracker, PWM carry...). Never a bus, thread,
        clock or sink. JSON values (:mod:`hal.snapshot`), floats exact.

        Raises
        ------
        hal.snapshot.SnapshotError
            When some state has no snapshot encoding, or two components share a name.
        """
        comps: State = {}
        for c in self.components:
            if c.name in comps:
                raise SnapshotError(f"two components named {c.name!r}")
            comps[c.name] = c.snapshot()
        return {"vehicle": capture(self, self.SNAPSHOT_FIELDS), "faults": self.faults.snapshot(),
                "fsm": self.fsm.snapshot(), "control": self.control.snapshot(), "guard": self.guard.snapshot(),
                "ports": {name: port.snapshot() for name, port in self.can_ports.items()},
                "components": comps}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a vehicle built from the same rig (a replay).

        Raises
        ------
        hal.snapshot.SnapshotError
            When the snapshot does not fit this vehicle (another set of ports or components).
        """
        ports, comps = part(state, "ports"), part(state, "components")
        if set(ports) != set(self.can_ports) or set(comps) != {c.name for c in self.components}:
            raise SnapshotError(f"snapshot of another vehicle: ports {sorted(ports)}, components {sorted(comps)}")
        apply(self, part(state, "vehicle"), self.SNAPSHOT_FIELDS)
        self._view = None  # the view cache (see view()) is not state
        self._seen_conditions = [_UNSEEN] * (len(self.components) + 1)  # neither is the monitor's
        self.faults.restore(part(state, "faults"))
        self.fsm.restore(part(state, "fsm"))
        self.control.restore(part(state, "control"))
        self.guard.restore(part(state, "guard"))
        for name, port in self.can_ports.items():
            port.restore(part(ports, name))
        for c in self.components:
            c.restore(part(comps, c.name))

    # ------------------------------------------------------------------ the tick
    def read(self, now_s: float) -> TickView:
        """Read phase (per tick): drain the CAN ports, then every component reads.

        Returns the tick's view after the reads (the MCU's new pose in it), which
        :meth:`update` may take as its view: no read changes the FSM state, and the pose
        changes only in the MCU's read (:meth:`~controller.vehicle.safety.SafeStop.tick`
        hands it on instead of asking :meth:`view` again).
        """
        for port in self.can_ports.values():
            port.poll(now_s)
        # the tick's views built here, not through view(): a new tick and time mean a new
        # view, so view()'s identity checks could only miss (issue 16); it is kept as
        # the tick's view, so view() returns it while state and pose stay the same objects
        mcu, fsm = self.mcu, self.fsm
        state, pose = fsm.state, mcu.pose
        view = self._view = TickView(self.tick_index, self.now_s, state, fsm.outputs, pose)
        mcu.read(view)
        after = mcu.pose
        if after is not pose:  # the MCU's read took a new pose message
            view = self._view = TickView(view.tick, view.now_s, state, view.outputs, after)
        for c in self.components:
            if c is not mcu:
                c.read(view)
        return view

    def _monitor(self, view: TickView) -> list[str]:
        """Safety monitor (per tick): update the fault book, return the events to raise.

        Each component's conditions are applied to the fault book in turn, then the
        vehicle's own (thrusters, CAN buses, output guard, lag). A component's conditions
        are skipped when they are the very tuple it returned last tick, that tuple changed
        nothing in the book last tick and nothing changed the book since (its
        :attr:`~controller.vehicle.faults.FaultBook.version`): applying them again would
        change nothing either (issue 12; :meth:`Component.conditions
        <controller.components.seam.Component.conditions>`).
        """
        events: list[str] = []
        groups: list[Sequence[Condition]] = []
        for c in self.components:
            ev = c.events(view)
            if ev:
                events += ev
            groups.append(c.conditions(view))
        groups.append(self._own_conditions(view))  # a tuple when all clear (skippable), else a list
        book = self.faults
        active = book.active
        seen = self._seen_conditions
        if len(seen) != len(groups):  # a component joined after the build (the doctor's gate)
            seen = self._seen_conditions = [_UNSEEN] * len(groups)
        condition_set = self._condition
        for i, group in enumerate(groups):
            last, quiet_version = seen[i]
            if group is last and book.version == quiet_version:
                continue  # the same tuple on the same book: changes nothing again
            before = book.version
            for cond in group:
                reason = cond.reason
                if reason is None and cond.key not in active:
                    continue  # clearing an inactive condition changes nothing (FaultBook.set)
                if condition_set(cond.key, reason) and cond.event is not None:
                    events.append(cond.event)
            if type(group) is tuple:  # (a list may be changed in place: never skipped)
                seen[i] = (group, before) if book.version == before else _UNSEEN
        return events

    def _own_conditions(self, view: TickView) -> Sequence[Condition]:
        """Return the vehicle's own conditions of this tick (thrusters, CAN buses, guard, lag).

        All clear (every healthy tick): one of four tuples made at the build (with or
        without the ``thrusters`` condition, which is judged outside ``boot`` only, and
        with or without ``lag``), the very same object every tick, so :meth:`_monitor` may skip it like a component's.
        Otherwise a new list, in the same order, with the side effects of the check
        (``flush_tx`` on a new bus-off, the error-passive warning) where they were.
        """
        boot = view.state == "boot"
        control = self.control
        mask = 0 if boot else self.valves.valve_fault_mask
        # no faulted valve and no failed thruster (every healthy tick): thruster_failures
        # would mark none and answer None (its docstring), so it is not called
        thrusters = None if boot or not (mask or control.failed_thrusters) else control.thruster_failures(
            view.now_s, mask, self.valves.thruster_valves, self._log)
        lag = None
        overruns = self.overruns_last_second
        if overruns is not None:
            n = overruns(view.now_s)
            if n > self.max_overruns_per_s:
                lag = f"system lagging: {n} overruns in 1 s"
        guard_new = self.guard.fault_reason is not None and not self._guard_faulted
        healthy = thrusters is None and lag is None and not guard_new
        if healthy:
            for _name, port, _busoff, _rx, _send in self._port_conds:
                if (port.bus_off or port.entered_error_passive or port.rx_fault is not None
                        or port.consecutive_send_failures >= 3):
                    healthy = False
                    break
            else:
                return self._own_clear[(0 if boot else 1) + (0 if overruns is None else 2)]
        own: list[Condition] = []
        if not boot:
            own.append(condition("thrusters", thrusters))
        active = self.faults.active
        for name, port, busoff, rx_clear, send_clear in self._port_conds:
            if port.bus_off:
                if busoff.key not in active:
                    port.flush_tx()  # B04: no stale command may leave after recovery
                own.append(Condition(busoff.key, f"CAN bus {name} bus-off"))
            else:
                own.append(busoff)
            if port.entered_error_passive:  # B05: one warning per entry, arming refused meanwhile (rules.py)
                self._log("bus_error_passive", bus=name, reason=f"CAN bus {name} is error-passive")
            rx = port.rx_fault  # B07: the receive path's heartbeat stopped on this tick's poll
            own.append(rx_clear if rx is None else Condition(rx_clear.key, f"CAN bus {name}: {rx}"))
            n_fail = port.consecutive_send_failures
            own.append(send_clear if n_fail < 3 else
                       Condition(send_clear.key, f"CAN bus {name}: {n_fail} consecutive send failures"))
        if guard_new:
            self._guard_faulted = True
            own.append(Condition("output_guard", self.guard.fault_reason))
        if overruns is not None:
            own.append(condition("lag", lag))
        return own

    def update(self, now_s: float, dt_s: float, view: TickView | None = None) -> TickView:
        """Update phase (per tick): monitor, POST, FSM step and actions, control.

        ``view`` is the view :meth:`read` returned (None: :meth:`view`). Returns the
        tick's view after the update (a new one after a transition), which :meth:`write`
        may take: control changes neither state nor pose.
        """
        if view is None:
            view = self.view()
        events = self._monitor(view)
        if view.state == "boot":  # POST runs in boot only (post_step returns [] elsewhere)
            events += post_step(self, view)
        if self.pending_events:
            events += self.pending_events
            self.pending_events = []
        if self._step_fsm(now_s, events, view):  # still this tick's view: monitor and POST change no state
            view = self.view()  # a transition was taken: a new state, maybe a new pose (its actions)
        self.demand_n = None
        if view.outputs == "allocate":  # the view is the FSM's state now (renewed after a transition)
            step = self.control.step(view)
            if step.waypoint_reached is not None:
                self._log("waypoint_reached", index=step.waypoint_reached)
            if step.mission_complete:
                self.command("mission_complete")
            self.demand_n = step.demand_n
        return view

    def _step_fsm(self, now_s: float, events: Sequence[str], view: TickView | None = None) -> bool:
        """Step the FSM with the tick's events; log, and run the transitions' actions.

        ``view`` is the tick's current view when the caller has it (the guards see it),
        else :meth:`view` builds it. Returns True when a transition was taken (its
        actions ran); False when none was (refusals only: no state changed).
        """
        if view is None:
            view = self.view()

        def evaluate(name: str) -> tuple[bool, str]:
            return GUARD_IMPLS[name](self, view)

        taken = False
        for tr in self.fsm.step(now_s, events, evaluate):
            if tr.refused:
                self._log("refused", event=tr.event, state=tr.source, reason=tr.reason)
                self.last_refusal = (tr.event, tr.reason)
                continue
            taken = True
            self._log("transition", source=tr.source, event=tr.event, target=tr.target)
            self.transitions.append([round(tr.time_s, 6), tr.source, tr.event, tr.target])
            if tr.target == "idle":
                self.control.clear_failures()
            after = self.view()
            for a in tr.actions:
                self._run_action(a, after)
        return taken

    def write(self, now_s: float, dt_s: float, view: TickView | None = None) -> None:
        """Write phase (per tick): the output guard, then every component writes.

        ``view`` is the view :meth:`update` returned (None: :meth:`view`).
        """
        v = self.view() if view is None else view
        allow = v.outputs == "allocate" and self.output_inhibit is None
        thrust = self.guard.apply(self.demand_n if allow else None, allow, dt_s)
        # allowed: the tick's view as it is (outputs is already "allocate"); else one saying "zero"
        view = v if allow else TickView(v.tick, v.now_s, v.state, "zero", v.pose)
        for c in self.components:
            c.write(view, thrust)
