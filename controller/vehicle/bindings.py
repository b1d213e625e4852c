"""Guards and actions bound to the state machine's closed registries, checked at load.

The registries (:mod:`controller.fsm.registry`) name what a state-machine file may use;
this module binds each name to its one implementation. The vehicle's own guards and
actions register with :func:`guard` / :func:`action`; a component takes part in an action
through :meth:`Component.action_handlers`. :func:`check_bindings` runs when a vehicle is
built (before the first tick): every registered guard has exactly one implementation,
every registered action at least one, and every implementation a registered name -- so a
name added to the registry without code fails at load, never mid-tick (issue 11).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from controller.errors import ConfigError
from controller.fsm import registry

if TYPE_CHECKING:
    from controller.components.seam import TickView
    from controller.vehicle.manager import Vehicle

GuardImpl = Callable[["Vehicle", "TickView"], "tuple[bool, str]"]
ActionImpl = Callable[["Vehicle", "TickView"], None]
F = TypeVar("F")

GUARD_IMPLS: dict[str, GuardImpl] = {}
ACTION_IMPLS: dict[str, ActionImpl] = {}


def _register(table: dict[str, F], kind: str, name: str) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        if name in table:
            raise ConfigError("controller.vehicle", f"{kind}s.{name}", f"{kind} implemented twice")
        table[name] = fn
        return fn
    return deco


def guard(name: str) -> Callable[[GuardImpl], GuardImpl]:
    """Register the vehicle's implementation of the registry guard ``name``."""
    return _register(GUARD_IMPLS, "guard", name)


def action(name: str) -> Callable[[ActionImpl], ActionImpl]:
    """Register the vehicle's own part of the registry action ``name``."""
    return _register(ACTION_IMPLS, "action", name)


def check_bindings(component_actions: Iterable[str] = ()) -> None:
    """Check that registry and implementations match, name for name.

    Parameters
    ----------
    component_actions : iterable of str
        Action names the vehicle's components handle.

    Raises
    ------
    ConfigError
        ``controller.vehicle: guards.<name>: registered but not implemented`` (or
        implemented but not registered), likewise for actions.
    """
    where = "controller.vehicle"
    for name in registry.GUARDS:
        if name not in GUARD_IMPLS:
            raise ConfigError(where, f"guards.{name}", "registered but not implemented")
    for name in GUARD_IMPLS:
        if name not in registry.GUARDS:
            raise ConfigError(where, f"guards.{name}", "implemented but not registered")
    implemented = set(ACTION_IMPLS) | set(component_actions)
    for name in registry.ACTIONS:
        if name not in implemented:
            raise ConfigError(where, f"actions.{name}", "registered but not implemented")
    for name in sorted(implemented):
        if name not in registry.ACTIONS:
            raise ConfigError(where, f"actions.{name}", "implemented but not registered")
