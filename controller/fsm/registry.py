"""The closed registries of the vehicle state machine: events, guards, actions, outputs.

A state-machine YAML file may name only what is listed here. There is deliberately no way
to name a Python object by dotted import path: a YAML file is data, and what the vehicle
can *do* is fixed by code review of this module (ARCHITECTURE.md 4; SAFETY.md K05).

The registries only carry names, kinds and one-line meanings. Guards are evaluated and
actions executed by the caller of :class:`controller.fsm.engine.FsmEngine` through its own
closed tables keyed by these names; the engine itself never runs them.

Event priority (SAFETY.md O04, one arbiter with a fixed order) decides the order in which
the events of one tick are offered to the machine::

    estop > fault > post_failed > operator commands > mission/system events

Among operator commands the safer command comes first (``disarm`` before ``reset`` before
``arm`` before ``start_mission``), so the order is total and a tick is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "EVENTS",
    "GUARDS",
    "OUTPUTS",
    "EventKind",
    "EventSpec",
    "event_priority",
    "is_operator_event",
    "order_events",
]


class EventKind(str, Enum):
    """Who raises an event.

    ``OPERATOR`` events are deliberate human commands (console, CLI, the hardware E-stop
    button). ``SYSTEM`` events are raised by the controller itself (POST result, safety
    monitor, mission runner, state timeouts). Only operator events may arm the vehicle or
    leave a latched state (ARCHITECTURE.md 5.4: recovery is never automatic).
    """

    OPERATOR = "operator"
    SYSTEM = "system"


@dataclass(frozen=True)
class EventSpec:
    """One registered event.

    Parameters
    ----------
    name : str
        Event name as written in the YAML file.
    kind : EventKind
        Operator command or system event.
    priority : int
        Rank in the per-tick arbiter; lower is offered first (SAFETY.md O04).
    description : str
        One-line meaning, shown by ``qiki fsm check``.
    """

    name: str
    kind: EventKind
    priority: int
    description: str


def _events(*specs: EventSpec) -> Mapping[str, EventSpec]:
    return MappingProxyType({s.name: s for s in specs})


EVENTS: Mapping[str, EventSpec] = _events(
    EventSpec("estop", EventKind.OPERATOR, 0,
              "E-stop: console command or the hardware button (SAFETY.md D09); always first"),
    EventSpec("fault", EventKind.SYSTEM, 1,
              "safety monitor raised a fault (stale stream, bad output, device fault)"),
    EventSpec("post_failed", EventKind.SYSTEM, 2, "power-on self test failed or timed out"),
    EventSpec("disarm", EventKind.OPERATOR, 3, "operator: disable the valve rail, go idle"),
    EventSpec("reset", EventKind.OPERATOR, 4, "operator: leave safe_mode/estop once faults are cleared"),
    EventSpec("arm", EventKind.OPERATOR, 5, "operator: enable the valve rail"),
    EventSpec("start_mission", EventKind.OPERATOR, 6, "operator: start the loaded mission"),
    EventSpec("post_passed", EventKind.SYSTEM, 7, "power-on self test passed"),
    EventSpec("mission_complete", EventKind.SYSTEM, 8, "mission runner finished the mission"),
)
"""Every event a state machine may name, with its kind and arbiter priority."""

GUARDS: Mapping[str, str] = MappingProxyType({
    "arming_checks_pass": "POST passed, no active fault, rail and battery within limits (SAFETY.md O01)",
    "faults_cleared": "no latched fault remains (cleared by the operator after the cause is gone)",
    "estop_released": "the hardware E-stop input reads released (SAFETY.md D09)",
})
"""Every guard a transition may name. Evaluated by the caller: ``guard(name) -> (ok, reason)``."""

ACTIONS: Mapping[str, str] = MappingProxyType({
    "run_post": "start the power-on self test (result arrives as post_passed/post_failed)",
    "enable_valve_rail": "close the PDU relay and raise the MCU valve-rail enable line",
    "disable_valve_rail": "drop the MCU valve-rail enable line and open the PDU relay",
    "latch_fault": "latch the active fault(s) so they survive until cleared",
    "clear_faults": "clear latched faults whose cause is gone",
    "start_mission_clock": "start the mission clock at the current tick",
})
"""Every action a state's ``enter``/``exit`` list may name. Executed by the caller, in order."""

OUTPUTS: Mapping[str, str] = MappingProxyType({
    "zero": "every thruster command is zero (the output guard enforces it)",
    "allocate": "thruster commands come from the allocator, within the output guard's limits",
})
"""What a state lets through to the thrusters (ARCHITECTURE.md 5.1)."""


def event_priority(name: str) -> int:
    """Return the arbiter rank of an event (lower is offered first).

    Parameters
    ----------
    name : str
        A registered event name.

    Returns
    -------
    int
        Rank from :data:`EVENTS`.

    Raises
    ------
    KeyError
        ``name`` is not a registered event.
    """
    return EVENTS[name].priority


def is_operator_event(name: str) -> bool:
    """Return True when ``name`` is a registered operator event."""
    spec = EVENTS.get(name)
    return spec is not None and spec.kind is EventKind.OPERATOR


def order_events(events: Iterable[str]) -> list[str]:
    """Collapse duplicates and sort one tick's events by arbiter priority (SAFETY.md O04).

    Parameters
    ----------
    events : iterable of str
        Registered event names raised during one tick, any order, duplicates allowed.

    Returns
    -------
    list of str
        Each distinct event once, highest priority (``estop``) first.

    Raises
    ------
    KeyError
        An event is not registered.
    """
    return sorted(set(events), key=event_priority)
