"""Schema of a state-machine YAML file: frozen pydantic v2 value types.

This module checks *shape* only (keys, types, bounds). Whether the names exist in the
closed registries and whether the machine is safe is checked by
:mod:`controller.fsm.loader` (ARCHITECTURE.md 4; SAFETY.md K03, K05).

File shape::

    name: qiki_vehicle
    initial: boot
    states:
      boot:  {enter: [run_post], exit: [], outputs: zero, latched: false}
      ...
    transitions:
      - {event: arm, source: idle, target: armed, guard: arming_checks_pass}
      - {event: disarm, source: [armed, active], target: idle}
      - {event: estop, source: "*", target: estop}
      - {event: reset, source: estop, target: idle, guard: [estop_released, faults_cleared]}
    timeouts:
      - {state: boot, after_s: 5.0, event: post_failed}

``source`` is one state name, a list of names, or ``"*"`` (every state, the target
included: a self-transition). ``guard`` is one guard name or a list of names that must all
hold, evaluated in order; the first that says no gives the refusal reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["WILDCARD", "FsmModel", "StateSpec", "TimeoutSpec", "TransitionSpec"]

WILDCARD = "*"
"""``source: "*"`` means every state of the machine."""

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)


def _name(value: Any) -> Any:
    # YAML reads on/off/yes/no/true/false as booleans (SAFETY.md K03): say so plainly.
    if isinstance(value, bool):
        raise ValueError(f"read by YAML as the boolean {value}, not a name (quote it)")
    return value


def _names(value: Any) -> Any:
    if isinstance(value, (str, bool)):
        return (_name(value),)
    if isinstance(value, list):
        return tuple(_name(v) for v in value)
    return value


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _empty_states(value: Any) -> Any:
    # `idle:` with nothing after it is YAML null: read it as a state with every default.
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


Name = Annotated[str, BeforeValidator(_name), Field(min_length=1)]
"""A registry or state name: a non-empty string, never a YAML boolean."""

Names = Annotated[tuple[Name, ...], BeforeValidator(_names)]
"""One name or a list of names, stored as a tuple."""


class StateSpec(BaseModel):
    """One state.

    Parameters
    ----------
    enter : tuple of str
        Action names run, in order, when the state is entered (also on a self-transition).
    exit : tuple of str
        Action names run, in order, when the state is left (also on a self-transition).
    outputs : str
        What reaches the thrusters in this state: ``zero`` (default) or ``allocate``
        (ARCHITECTURE.md 5.1).
    latched : bool
        A latched state is left only by a guarded operator event in a later tick; entering
        it ends the tick's event processing (SAFETY.md D09).
    """

    model_config = _CONFIG

    enter: Names = ()
    exit: Names = ()
    outputs: Name = "zero"
    latched: bool = False


class TransitionSpec(BaseModel):
    """One transition rule.

    Parameters
    ----------
    event : str
        Registered event that triggers it.
    source : tuple of str
        Source state names; ``("*",)`` means every state.
    target : str
        Target state name.
    guard : tuple of str
        Guard names that must all hold (empty: unguarded).
    """

    model_config = _CONFIG

    event: Name
    source: Names = Field(min_length=1)
    target: Name
    guard: Names = Field(default=(), min_length=1)

    @property
    def is_wildcard(self) -> bool:
        """True when ``source`` is ``"*"``."""
        return self.source == (WILDCARD,)


class TimeoutSpec(BaseModel):
    """Raise ``event`` once ``after_s`` seconds have passed since ``state`` was entered.

    Parameters
    ----------
    state : str
        State the timer belongs to.
    after_s : float
        Delay from entry, seconds; finite and > 0.
    event : str
        Registered system event raised when the delay has passed.
    """

    model_config = _CONFIG

    state: Name
    after_s: float = Field(gt=0.0, allow_inf_nan=False)
    event: Name


class FsmModel(BaseModel):
    """A whole state machine as read from YAML: a frozen, hashable value.

    Build it with :func:`controller.fsm.loader.load_fsm` (or ``parse_fsm``), which also runs
    the load-time safety checks; ``FsmModel.model_validate`` alone checks only the shape.

    Parameters
    ----------
    name : str
        Machine name.
    initial : str
        Initial state name.
    states : mapping of str to StateSpec
        States in file order. Do not mutate.
    transitions : tuple of TransitionSpec
        Rules in file order; for the same source and event the first whose guards all hold
        wins.
    timeouts : tuple of TimeoutSpec
        State timers.
    """

    model_config = _CONFIG

    name: Name
    initial: Name
    states: Annotated[dict[str, StateSpec], BeforeValidator(_empty_states)] = Field(min_length=1)
    transitions: Annotated[tuple[TransitionSpec, ...], BeforeValidator(_list_to_tuple)] = Field(min_length=1)
    timeouts: Annotated[tuple[TimeoutSpec, ...], BeforeValidator(_list_to_tuple)] = ()

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @property
    def state_names(self) -> tuple[str, ...]:
        """State names in file order."""
        return tuple(self.states)

    def sources_of(self, transition: TransitionSpec) -> tuple[str, ...]:
        """Return the concrete source states of ``transition`` (``"*"`` expanded).

        Parameters
        ----------
        transition : TransitionSpec
            A transition of this model.

        Returns
        -------
        tuple of str
            Source state names, in file order for ``"*"``.
        """
        if transition.is_wildcard:
            return self.state_names
        return transition.source

    def is_arming_state(self, state: str) -> bool:
        """Return True when entering ``state`` energises the thrusters.

        An *arming* state runs ``enable_valve_rail`` on enter or lets allocated thrust
        through (``outputs: allocate``) (ARCHITECTURE.md 4-5).
        """
        spec = self.states[state]
        return "enable_valve_rail" in spec.enter or spec.outputs == "allocate"

    def is_fault_state(self, state: str) -> bool:
        """Return True when ``state`` is latched or latches a fault on enter (safe_mode, estop)."""
        spec = self.states[state]
        return spec.latched or "latch_fault" in spec.enter

    def rule_table(self) -> Mapping[tuple[str, str], tuple[TransitionSpec, ...]]:
        """Return ``{(source state, event): transitions in file order}`` with ``*`` expanded."""
        table: dict[tuple[str, str], list[TransitionSpec]] = {}
        for t in self.transitions:
            for s in self.sources_of(t):
                table.setdefault((s, t.event), []).append(t)
        return {k: tuple(v) for k, v in table.items()}
