"""The vehicle state machine: YAML -> checked model -> deterministic engine (ARCHITECTURE.md 4).

- :func:`load_fsm` reads a file from ``fsm_configs/`` and runs every load-time check
  (SAFETY.md K03, K05), raising :class:`~controller.errors.FsmDefinitionError`.
- :class:`FsmEngine` steps it tick by tick; it never runs actions or reads clocks.
- :func:`to_mermaid` / :func:`to_dot` draw it.
- :mod:`controller.fsm.registry` holds the closed event/guard/action/outputs registries.
"""

from controller.errors import FsmDefinitionError
from controller.fsm.engine import FsmEngine, GuardFn, Transition
from controller.fsm.graph import to_dot, to_mermaid
from controller.fsm.loader import check_fsm, load_fsm, parse_fsm
from controller.fsm.model import FsmModel, StateSpec, TimeoutSpec, TransitionSpec
from controller.fsm.registry import (
    ACTIONS,
    EVENTS,
    GUARDS,
    OUTPUTS,
    EventKind,
    EventSpec,
    event_priority,
    is_operator_event,
    order_events,
)

__all__ = [
    "ACTIONS",
    "EVENTS",
    "GUARDS",
    "OUTPUTS",
    "EventKind",
    "EventSpec",
    "FsmDefinitionError",
    "FsmEngine",
    "FsmModel",
    "GuardFn",
    "StateSpec",
    "TimeoutSpec",
    "Transition",
    "TransitionSpec",
    "check_fsm",
    "event_priority",
    "is_operator_event",
    "load_fsm",
    "order_events",
    "parse_fsm",
    "to_dot",
    "to_mermaid",
]
