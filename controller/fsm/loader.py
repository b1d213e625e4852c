"""Load a state-machine YAML file and refuse any machine that is unsafe to run.

Every check runs at load time, before anything moves (ARCHITECTURE.md 4; SAFETY.md K03,
K05). A failure is one :class:`~controller.errors.FsmDefinitionError` whose ``str`` is one
line naming the file and the key path, for example::

    fsm_configs/qiki_vehicle.yaml: transitions[3].guard: unknown guard 'arming_ok' (known: ...)

The checks, in the order they run (the first failure is reported):

1. YAML: duplicate keys, non-string keys (``on:``/``off:``), merge keys
   (:func:`controller.yamlio.load_yaml`, SAFETY.md K03).
2. Shape: unknown keys, wrong types, ``after_s`` not finite and > 0
   (:mod:`controller.fsm.model`).
3. Names: state names are plain identifiers; ``initial``, every ``source``/``target``/
   ``timeouts[].state`` is a state; every event, guard, action and ``outputs`` value is in
   the closed registry (:mod:`controller.fsm.registry`), never a dotted import path.
4. Determinism: a state does not list the same source twice; no transition is shadowed
   by an earlier one on the same source and event; timeouts raise *system* events that
   some transition from their state consumes.
5. Reachability: every state is reachable from ``initial``.
6. E-stop: a state ``estop`` exists, is ``latched``, and every state has an unguarded
   transition on event ``estop`` into it (one step, SAFETY.md K05, D09).
7. Latched states: no timeout, and every transition out of one is an operator event with
   a guard (no automatic exit, SAFETY.md K05); the one exception is event ``estop`` into
   ``estop``, which must work from every state (check 6).
8. Faults: every non-latched state handles ``fault`` with an unguarded transition into a
   fault state (latched or running ``latch_fault``) (ARCHITECTURE.md 5.2: a stale stream
   raises ``fault`` in any state).
9. No automatic recovery: from a fault state no transition leads directly into an arming
   state, and no path of system events/timeouts leads into one (ARCHITECTURE.md 5.4).
10. No arming that skips ``boot``: the initial state runs ``run_post`` on enter, is not an
    arming state and has no transition straight into one; every transition from a
    non-arming state into an arming state is an operator event from a non-latched,
    non-fault state (ARCHITECTURE.md 4).
11. The valve rail is off outside arming states: every transition from an arming state to
    a non-arming one runs ``disable_valve_rail`` (on exit of the source or enter of the
    target).

An *arming* state runs ``enable_valve_rail`` on enter or has ``outputs: allocate``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from controller.errors import ConfigError, FsmDefinitionError
from controller.fsm.model import WILDCARD, FsmModel
from controller.fsm.registry import ACTIONS, EVENTS, GUARDS, OUTPUTS, EventKind
from controller.yamlio import load_yaml, validate

__all__ = ["check_fsm", "load_fsm", "parse_fsm"]

_STATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ESTOP = "estop"
FAULT = "fault"


def load_fsm(path: str | Path, display_name: str | None = None) -> FsmModel:
    """Read, validate and check a state-machine YAML file.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    display_name : str, optional
        Name used in error messages (default ``str(path)``, as the user wrote it).

    Returns
    -------
    FsmModel
        The frozen, checked machine.

    Raises
    ------
    FsmDefinitionError
        The file is missing, not strict YAML, has the wrong shape, or fails a load-time
        check (see the module docstring; ARCHITECTURE.md 4, SAFETY.md K03/K05).
    """
    name = display_name or str(path)
    try:
        data = load_yaml(path, name)
    except ConfigError as exc:
        raise FsmDefinitionError(exc.path, exc.key, exc.message) from exc
    return parse_fsm(data, name)


def parse_fsm(data: Any, name: str = "<fsm>") -> FsmModel:
    """Validate plain data (as from YAML) into a checked :class:`FsmModel`.

    Parameters
    ----------
    data : Any
        The document, e.g. a dict from :func:`controller.yamlio.load_yaml`.
    name : str
        File name for error messages.

    Returns
    -------
    FsmModel
        The frozen, checked machine.

    Raises
    ------
    FsmDefinitionError
        Wrong shape or a failed load-time check.
    """
    try:
        model = validate(FsmModel, data, name)
    except ConfigError as exc:  # validate() already dropped pydantic's "Value error, "
        raise FsmDefinitionError(exc.path, exc.key, exc.message) from exc
    check_fsm(model, name, data)
    return model


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _item_key(base: str, raw: Any, j: int) -> str:
    """Key of the j-th name of a field written either as a scalar or as a list."""
    return f"{base}[{j}]" if isinstance(raw, list) else base


def _raw_field(raw: Any, *path: str | int) -> Any:
    node = raw
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


class _Checker:
    """Runs the load-time checks of the module docstring, in order."""

    def __init__(self, model: FsmModel, name: str, raw: Any) -> None:
        self.m = model
        self.name = name
        self.raw = raw
        #: ``(state, event) -> rules`` (``*`` expanded) and ``id(rule) -> transitions index``
        self.table = model.rule_table()
        self.index = {id(t): i for i, t in enumerate(model.transitions)}

    def fail(self, key: str, message: str) -> None:
        raise FsmDefinitionError(self.name, key, message)

    # 3. names ---------------------------------------------------------------------
    def names(self) -> None:
        m = self.m
        states = m.states
        for s in states:
            if not _STATE_NAME.match(s):
                self.fail(f"states.{s}", f"state name {s!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
        if m.initial not in states:
            self.fail("initial", f"unknown initial state {m.initial!r} (known: {_known(states)})")
        for s, spec in states.items():
            for field in ("enter", "exit"):
                for j, action in enumerate(getattr(spec, field)):
                    if action not in ACTIONS:
                        key = _item_key(f"states.{s}.{field}", _raw_field(self.raw, "states", s, field), j)
                        self.fail(key, f"unknown action {action!r} (known: {_known(ACTIONS)})")
            if spec.outputs not in OUTPUTS:
                self.fail(f"states.{s}.outputs", f"unknown outputs {spec.outputs!r} (known: {_known(OUTPUTS)})")
        for i, t in enumerate(m.transitions):
            base = f"transitions[{i}]"
            if t.event not in EVENTS:
                self.fail(f"{base}.event", f"unknown event {t.event!r} (known: {_known(EVENTS)})")
            raw_source = _raw_field(self.raw, "transitions", i, "source")
            if not t.is_wildcard:
                seen: set[str] = set()
                for j, s in enumerate(t.source):
                    key = _item_key(f"{base}.source", raw_source, j)
                    if s == WILDCARD:
                        self.fail(key, "'*' must stand alone (source: \"*\")")
                    if s not in states:
                        self.fail(key, f"unknown source state {s!r} (known: {_known(states)})")
                    if s in seen:
                        self.fail(key, f"source state {s!r} listed twice")
                    seen.add(s)
            if t.target not in states:
                self.fail(f"{base}.target", f"unknown target state {t.target!r} (known: {_known(states)})")
            raw_guard = _raw_field(self.raw, "transitions", i, "guard")
            for j, g in enumerate(t.guard):
                if g not in GUARDS:
                    self.fail(_item_key(f"{base}.guard", raw_guard, j),
                              f"unknown guard {g!r} (known: {_known(GUARDS)})")
            if len(set(t.guard)) != len(t.guard):
                self.fail(f"{base}.guard", "a guard is listed twice")
        for i, to in enumerate(m.timeouts):
            base = f"timeouts[{i}]"
            if to.state not in states:
                self.fail(f"{base}.state", f"unknown state {to.state!r} (known: {_known(states)})")
            if to.event not in EVENTS:
                self.fail(f"{base}.event", f"unknown event {to.event!r} (known: {_known(EVENTS)})")

    # 4. determinism ---------------------------------------------------------------
    def determinism(self) -> None:
        m = self.m
        index = self.index
        for (state, event), rules in self.table.items():
            for b in range(1, len(rules)):
                for a in range(b):
                    if set(rules[a].guard) <= set(rules[b].guard):
                        ia, ib = index[id(rules[a])], index[id(rules[b])]
                        self.fail(
                            f"transitions[{ib}]",
                            f"ambiguous: on {event!r} from state {state!r} transitions[{ia}] already "
                            f"fires whenever this one's guards hold, so this one is never taken "
                            f"(give them distinguishing guards or merge them)",
                        )
        for i, to in enumerate(m.timeouts):
            if EVENTS[to.event].kind is not EventKind.SYSTEM:
                self.fail(
                    f"timeouts[{i}].event",
                    f"timeout raises operator event {to.event!r}; timeouts may raise only system events "
                    f"(known: {_known(e for e, s in EVENTS.items() if s.kind is EventKind.SYSTEM)})",
                )
            if (to.state, to.event) not in self.table:
                self.fail(
                    f"timeouts[{i}].event",
                    f"no transition on {to.event!r} from state {to.state!r}: the timeout would do nothing",
                )

    # 5. reachability --------------------------------------------------------------
    def reachability(self) -> None:
        m = self.m
        succ: dict[str, set[str]] = {s: set() for s in m.states}
        for t in m.transitions:
            for s in m.sources_of(t):
                succ[s].add(t.target)
        seen = {m.initial}
        todo = deque([m.initial])
        while todo:
            for nxt in succ[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for s in m.states:
            if s not in seen:
                self.fail(f"states.{s}", f"state {s!r} is unreachable from initial state {m.initial!r}")

    # 6. estop ---------------------------------------------------------------------
    def estop(self) -> None:
        m = self.m
        if ESTOP not in m.states:
            self.fail("states", f"no state named {ESTOP!r} (every machine needs one, SAFETY.md K05)")
        if not m.states[ESTOP].latched:
            self.fail(f"states.{ESTOP}.latched", f"state {ESTOP!r} must be latched: true (SAFETY.md D09)")
        self._one_step_handler(ESTOP, m.state_names, lambda target: target == ESTOP, f"state {ESTOP!r}")

    def _one_step_handler(self, event: str, states: Iterable[str], target_ok: Callable[[str], bool],
                          wanted: str) -> None:
        """Every state in ``states`` must take ``event`` unguarded into a state ``target_ok`` accepts."""
        table, index = self.table, self.index
        for s in states:
            rules = table.get((s, event), ())
            for r in rules:
                if not target_ok(r.target):
                    self.fail(
                        f"transitions[{index[id(r)]}].target",
                        f"{event!r} from state {s!r} must lead to {wanted}, not {r.target!r}",
                    )
            if not rules:
                self.fail(f"states.{s}",
                          f"state {s!r} has no transition on {event!r} (must lead to {wanted} in one step)")
            if all(r.guard for r in rules):
                self.fail(
                    f"transitions[{index[id(rules[0])]}].guard",
                    f"{event!r} from state {s!r} is guarded; it must never be refused",
                )

    # 7. latched states ------------------------------------------------------------
    def latched(self) -> None:
        m = self.m
        for i, to in enumerate(m.timeouts):
            if m.states[to.state].latched:
                self.fail(
                    f"timeouts[{i}].state",
                    f"latched state {to.state!r} has a timeout: a latched state has no automatic exit (SAFETY.md K05)",
                )
        for i, t in enumerate(m.transitions):
            for s in m.sources_of(t):
                if not m.states[s].latched or t.target == s:
                    continue
                if t.event == ESTOP and t.target == ESTOP:
                    continue  # E-stop always wins, latched or not
                if EVENTS[t.event].kind is not EventKind.OPERATOR:
                    self.fail(
                        f"transitions[{i}].event",
                        f"system event {t.event!r} leaves latched state {s!r}: only a guarded operator "
                        f"event may (no automatic exit, SAFETY.md K05)",
                    )
                if not t.guard:
                    self.fail(
                        f"transitions[{i}].guard",
                        f"operator event {t.event!r} leaves latched state {s!r} without a guard "
                        f"(no automatic exit, SAFETY.md K05)",
                    )

    # 8. faults --------------------------------------------------------------------
    def faults(self) -> None:
        m = self.m
        unlatched = [s for s in m.states if not m.states[s].latched]
        self._one_step_handler(FAULT, unlatched, m.is_fault_state,
                               "a fault state (latched, or running 'latch_fault' on enter)")

    # 9. no automatic recovery -----------------------------------------------------
    def recovery(self) -> None:
        m = self.m
        fault_states = [s for s in m.states if m.is_fault_state(s)]
        for i, t in enumerate(m.transitions):
            for s in m.sources_of(t):
                if s in fault_states and m.is_arming_state(t.target):
                    self.fail(
                        f"transitions[{i}].target",
                        f"transition from fault state {s!r} straight into arming state {t.target!r}: "
                        f"recovery goes through a non-arming state and a new 'arm' (ARCHITECTURE.md 5.4)",
                    )
        # Breadth-first over system-event edges only (timeouts raise system events).
        for start in fault_states:
            came_from: dict[str, tuple[str, str, int] | None] = {start: None}
            todo = deque([start])
            while todo:
                s = todo.popleft()
                for i, t in enumerate(m.transitions):
                    if EVENTS[t.event].kind is not EventKind.SYSTEM or s not in m.sources_of(t):
                        continue
                    if t.target in came_from:
                        continue
                    came_from[t.target] = (s, t.event, i)
                    if m.is_arming_state(t.target):
                        hops: list[str] = [t.target]
                        node = t.target
                        while came_from[node] is not None:
                            prev, ev, _ = came_from[node]  # type: ignore[misc]
                            hops.append(f"-{ev}->")
                            hops.append(prev)
                            node = prev
                        path = " ".join(reversed(hops))
                        self.fail(
                            f"transitions[{i}]",
                            f"automatic path from fault state {start!r} to arming state {t.target!r} "
                            f"using only system events/timeouts: {path} (recovery needs operator "
                            f"'reset' then 'arm', ARCHITECTURE.md 5.4)",
                        )
                    todo.append(t.target)

    # 10. arming -------------------------------------------------------------------
    def arming(self) -> None:
        m = self.m
        init = m.initial
        spec = m.states[init]
        if "run_post" not in spec.enter:
            self.fail(f"states.{init}.enter",
                      f"initial state {init!r} must run 'run_post' on enter (no arming without POST)")
        if m.is_arming_state(init):
            self.fail(f"states.{init}", f"initial state {init!r} must not be an arming state (no arming without POST)")
        for i, t in enumerate(m.transitions):
            if not m.is_arming_state(t.target):
                continue
            raw_source = _raw_field(self.raw, "transitions", i, "source")
            for j, s in enumerate(m.sources_of(t)):
                if m.is_arming_state(s):
                    continue  # already armed: e.g. mission_complete active -> armed
                if s == init:
                    self.fail(
                        f"transitions[{i}].target",
                        f"initial state {init!r} leads straight into arming state {t.target!r}: "
                        f"arming must wait for the POST result (ARCHITECTURE.md 4)",
                    )
                if EVENTS[t.event].kind is not EventKind.OPERATOR:
                    self.fail(
                        f"transitions[{i}].event",
                        f"system event {t.event!r} arms the vehicle ({s!r} -> {t.target!r}): only an operator "
                        f"event may enter an arming state (ARCHITECTURE.md 4)",
                    )
                if m.is_fault_state(s):
                    key = (f"transitions[{i}].source" if t.is_wildcard
                           else _item_key(f"transitions[{i}].source", raw_source, j))
                    self.fail(key, f"fault state {s!r} leads into arming state {t.target!r} (ARCHITECTURE.md 5.4)")

    # 11. rail off -----------------------------------------------------------------
    def rail_off(self) -> None:
        m = self.m
        for i, t in enumerate(m.transitions):
            if m.is_arming_state(t.target):
                continue
            for s in m.sources_of(t):
                if not m.is_arming_state(s):
                    continue
                if "disable_valve_rail" in m.states[s].exit or "disable_valve_rail" in m.states[t.target].enter:
                    continue
                self.fail(
                    f"transitions[{i}].target",
                    f"leaving arming state {s!r} for {t.target!r} does not run 'disable_valve_rail' "
                    f"(put it on exit of {s!r} or enter of {t.target!r})",
                )

    def run(self) -> None:
        self.names()
        self.determinism()
        self.reachability()
        self.estop()
        self.latched()
        self.faults()
        self.recovery()
        self.arming()
        self.rail_off()


def check_fsm(model: FsmModel, name: str = "<fsm>", raw: Mapping[str, Any] | None = None) -> None:
    """Run every load-time check on a shape-valid model (see the module docstring).

    Parameters
    ----------
    model : FsmModel
        Shape-validated machine.
    name : str
        File name for error messages.
    raw : mapping, optional
        The document the model came from; used only to print ``guard[1]`` rather than
        ``guard`` when a field was written as a list.

    Raises
    ------
    FsmDefinitionError
        The first failed check, with file and key path (ARCHITECTURE.md 4, SAFETY.md K05).
    """
    _Checker(model, name, raw).run()

