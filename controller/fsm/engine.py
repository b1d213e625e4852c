"""Deterministic, pure state-machine engine (ARCHITECTURE.md 4).

No I/O, no sleeping, no threads, no wall clock: time comes in as ``now_s`` on every
:meth:`FsmEngine.step`, guards are answered by a callable the caller passes, and actions
are *returned*, never run. The same model, start time, events, guard answers and times
always give the same transitions, so a run record replays exactly.

One tick (:meth:`FsmEngine.step`):

1. The tick's events are collapsed (duplicates once) and offered in arbiter order
   (SAFETY.md O04): ``estop > fault > post_failed > disarm > reset > arm > start_mission >
   post_passed > mission_complete`` (:mod:`controller.fsm.registry`).
2. Each event is evaluated against the *current* state, i.e. after any transition an
   earlier event of the same tick caused. For that state and event the transitions are
   tried in file order; the first whose guards all hold is taken. None -> the event is
   *ignored* (counted, not returned). Candidates exist but every one is refused -> a
   :class:`Transition` with ``refused=True`` and the first candidate's refusal reason
   (SAFETY.md O01: the event log says why ``arm`` was refused).
3. Entering a *latched* state (``estop``, ``safe_mode``) ends the tick: later events of
   the tick are ignored and timeouts are not evaluated. Guards see the world as it was
   before the tick's actions ran, so e.g. ``fault`` + ``reset`` in one tick must not let
   ``reset`` see faults the pending ``latch_fault`` has not latched yet.
4. A tick that left an arming state for a non-arming one (``disarm``) does not re-enter an
   arming state: a later ``arm`` in the same tick is refused (two operators disagreeing
   resolve to the safe side, SAFETY.md O04).
5. Then the current state's timeouts: each fires its event at most once per stay in the
   state, when ``now_s - entered_at_s >= after_s`` (1 ns tolerance for float ticks), in
   order of ``after_s``; the first that changes state ends the tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.errors import ControllerError
from controller.fsm.model import FsmModel, TimeoutSpec, TransitionSpec
from controller.fsm.registry import order_events
from hal.snapshot import JsonValue, SnapshotError, State, apply, capture

__all__ = ["FsmEngine", "GuardFn", "Transition"]

GuardFn = Callable[[str], tuple[bool, str]]
"""``guard(name) -> (ok, reason)``: evaluate a registered guard; ``reason`` says why not."""

_TIME_EPS_S = 1e-9


@dataclass(frozen=True)
class Transition:
    """What one event did in one tick.

    Parameters
    ----------
    time_s : float
        Tick time, seconds on the caller's clock.
    source : str
        State before.
    event : str
        The event (for a timeout, the event the timer raised).
    target : str
        State after; equals ``source`` when refused (and on a self-transition).
    actions : tuple of str
        Exit actions of ``source`` then enter actions of ``target``, in order, for the
        caller to execute through its closed action table; empty when refused.
    refused : bool
        True when a guard (or the no-re-arm rule) refused the event; nothing changed.
    guard : str or None
        The guard that refused, when ``refused``.
    reason : str
        Why it was refused (the guard's reason), empty otherwise.
    by_timeout : bool
        True when the event was raised by a state timeout.
    """

    time_s: float
    source: str
    event: str
    target: str
    actions: tuple[str, ...]
    refused: bool = False
    guard: str | None = None
    reason: str = ""
    by_timeout: bool = False


class FsmEngine:
    """Run a checked :class:`FsmModel` tick by tick (pure; see the module docstring).

    Parameters
    ----------
    model : FsmModel
        A machine from :func:`controller.fsm.loader.load_fsm` (checked at load).
    now_s : float
        Start time, seconds on the caller's clock; the initial state is entered then.

    Attributes
    ----------
    ignored : int
        Events offered in a state with no transition for them (or after a latched state
        was entered in the same tick), since construction.
    ignored_last_step : tuple of (str, str)
        ``(state, event)`` pairs ignored during the last :meth:`step`.

    Notes
    -----
    The initial state's enter actions (``run_post``) are not run by the engine either:
    the caller runs :attr:`initial_actions` once, at start.
    """

    def __init__(self, model: FsmModel, now_s: float = 0.0) -> None:
        if not math.isfinite(now_s):
            raise ControllerError(f"FSM start time must be finite, got {now_s!r}")
        self._model = model
        self._rules = model.rule_table()
        self._timeouts: dict[str, tuple[TimeoutSpec, ...]] = {
            s: tuple(sorted((t for t in model.timeouts if t.state == s), key=lambda t: t.after_s))
            for s in model.states
        }
        self._state = model.initial
        self._outputs = model.states[model.initial].outputs  # kept with _state (read every tick)
        self._entered_at_s = float(now_s)
        self._last_now_s = float(now_s)
        self._fired: set[int] = set()
        self.ignored = 0
        self.ignored_last_step: tuple[tuple[str, str], ...] = ()

    # read-only view ---------------------------------------------------------------
    @property
    def model(self) -> FsmModel:
        """The machine being run."""
        return self._model

    @property
    def state(self) -> str:
        """Current state name."""
        return self._state

    @property
    def outputs(self) -> str:
        """``"zero"`` or ``"allocate"``: what the output guard lets through now.

        The current state's ``outputs``, kept beside the state whenever it changes (read
        several times per tick).
        """
        return self._outputs

    @property
    def entered_at_s(self) -> float:
        """Time the current state was (last) entered, seconds."""
        return self._entered_at_s

    @property
    def latched(self) -> bool:
        """True when the current state is latched (estop, safe_mode)."""
        return self._model.states[self._state].latched

    @property
    def initial_actions(self) -> tuple[str, ...]:
        """Enter actions of the initial state, for the caller to run once at start."""
        return self._model.states[self._model.initial].enter

    # one tick ---------------------------------------------------------------------
    # ------------------------------------------------------------------ snapshot
    #: The engine's state in a snapshot (issue 12 part 4); the model is configuration.
    SNAPSHOT_FIELDS = ("_state", "_entered_at_s", "_last_now_s", "_fired", "ignored", "ignored_last_step")

    def snapshot(self) -> State:
        """Return the state, when it was entered, the timeouts fired in it and the counters."""
        return capture(self, self.SNAPSHOT_FIELDS)

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of an engine of the same model.

        Raises
        ------
        SnapshotError
            When the snapshot's state is not one of the model's.
        """
        st = state.get("_state")
        if st not in self._model.states:
            raise SnapshotError(f"FSM snapshot state {st!r} is not in the model")
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._outputs = self._model.states[self._state].outputs

    def step(self, now_s: float, events: Iterable[str], guard: GuardFn) -> list[Transition]:
        """Advance the machine by one tick. Per-tick function.

        Parameters
        ----------
        now_s : float
            Tick time, seconds on the same clock as ``now_s`` at construction; finite and
            never earlier than the previous tick.
        events : iterable of str
            Registered event names raised since the last tick (any order, duplicates
            allowed).
        guard : callable
            ``guard(name) -> (ok, reason)`` for a registered guard name. Called only for
            guards of candidate transitions, in file order, possibly more than once. A
            guard that raises (or returns something that is not a pair) counts as a
            refusal whose reason names the exception: the tick's earlier transitions and
            their actions are never lost, and a broken check never lets a transition by.

        Returns
        -------
        list of Transition
            Taken and refused transitions, in the order they happened. Ignored events are
            only counted (:attr:`ignored`, :attr:`ignored_last_step`).

        Raises
        ------
        ControllerError
            ``now_s`` is not finite or goes backwards, or an event is not registered.
        """
        if not math.isfinite(now_s):
            raise ControllerError(f"FSM tick time must be finite, got {now_s!r}")
        if now_s < self._last_now_s:
            raise ControllerError(f"FSM tick time went backwards: {now_s!r} < {self._last_now_s!r}")
        now_s = float(now_s)
        self._last_now_s = now_s
        if not events and not self._timeouts[self._state]:
            # most ticks raise no event in a state without timeouts (all but ``boot``): no
            # transition, nothing ignored; the general path below would say the same
            self.ignored_last_step = ()
            return []
        try:
            ordered = order_events(events) if events else ()  # most ticks raise no event
        except KeyError as exc:
            raise ControllerError(f"unknown FSM event {exc.args[0]!r}") from None

        out: list[Transition] = []
        ignored: list[tuple[str, str]] = []
        disarmed = False
        stopped = False
        for event in ordered:
            if stopped:
                ignored.append((self._state, event))
                continue
            result = self._offer(now_s, event, guard, disarmed, by_timeout=False)
            if result is None:
                ignored.append((self._state, event))
                continue
            out.append(result)
            if not result.refused:
                disarmed = disarmed or self._left_arming(result)
                stopped = self._model.states[result.target].latched

        if not stopped:
            for idx, to in enumerate(self._timeouts[self._state]):
                if idx in self._fired or now_s - self._entered_at_s + _TIME_EPS_S < to.after_s:
                    continue
                self._fired.add(idx)
                result = self._offer(now_s, to.event, guard, disarmed, by_timeout=True)
                if result is None:  # cannot happen for a checked model
                    ignored.append((self._state, to.event))
                    continue
                out.append(result)
                if not result.refused:
                    break

        self.ignored += len(ignored)
        self.ignored_last_step = tuple(ignored)
        return out

    def _left_arming(self, t: Transition) -> bool:
        m = self._model
        return m.is_arming_state(t.source) and not m.is_arming_state(t.target)

    def _offer(self, now_s: float, event: str, guard: GuardFn, disarmed: bool,
               by_timeout: bool) -> Transition | None:
        source = self._state
        rules: tuple[TransitionSpec, ...] = self._rules.get((source, event), ())
        if not rules:
            return None
        first_refusal: tuple[str, str] | None = None
        chosen: TransitionSpec | None = None
        for rule in rules:
            refusal = None
            for name in rule.guard:
                try:
                    ok, reason = guard(name)
                except Exception as exc:  # noqa: BLE001 - fail safe: a broken guard says no
                    ok, reason = False, f"guard {name!r} failed: {type(exc).__name__}: {exc}"
                if not ok:
                    refusal = (name, str(reason))
                    break
            if refusal is None:
                chosen = rule
                break
            if first_refusal is None:
                first_refusal = refusal
        if chosen is None:
            assert first_refusal is not None
            return Transition(now_s, source, event, source, (), refused=True,
                              guard=first_refusal[0], reason=first_refusal[1], by_timeout=by_timeout)
        m = self._model
        if disarmed and m.is_arming_state(chosen.target) and not m.is_arming_state(source):
            return Transition(now_s, source, event, source, (), refused=True, guard=None,
                              reason="the vehicle was disarmed earlier in this tick; no re-arming in the same tick",
                              by_timeout=by_timeout)
        actions = m.states[source].exit + m.states[chosen.target].enter
        self._state = chosen.target
        self._outputs = m.states[chosen.target].outputs
        self._entered_at_s = float(now_s)
        self._fired = set()
        return Transition(now_s, source, event, chosen.target, actions, by_timeout=by_timeout)
