"""The fault book: conditions active this tick, and the faults latched by ``safe_mode``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hal.snapshot import JsonValue, State


@dataclass
class FaultBook:
    """Active fault conditions (re-evaluated every tick) and the latched record.

    Attributes
    ----------
    active : dict of str to str
        Condition key -> reason, for the conditions that hold now.
    latched : list of str
        Reasons latched by the ``latch_fault`` action, in order, until ``clear_faults``.
    version : int
        Counts the changes of :attr:`active` made through :meth:`set` and :meth:`restore`
        (a key added, dropped or given another reason). The manager's monitor compares it
        to know that the book did not change (issue 12: conditions applied again only when
        something changed); not state, never in a snapshot. Change :attr:`active` only
        through these two methods.
    """

    active: dict[str, str] = field(default_factory=dict)
    latched: list[str] = field(default_factory=list)
    version: int = field(default=0, compare=False)

    def snapshot(self) -> State:
        """Return the active conditions and the latched reasons (issue 12 part 4)."""
        return {"active": dict(self.active), "latched": list(self.latched)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        active, latched = state.get("active"), state.get("latched")
        self.active = {str(k): str(v) for k, v in active.items()} if isinstance(active, dict) else {}
        self.latched = [str(v) for v in latched] if isinstance(latched, list) else []
        self.version += 1

    def set(self, key: str, reason: str | None) -> bool:
        """Set (reason) or clear (None) one condition; True if it newly became active."""
        active = self.active
        if reason is None:
            if active.pop(key, None) is not None:
                self.version += 1
            return False
        old = active.get(key)
        if old != reason:
            active[key] = reason
            self.version += 1
        return old is None
