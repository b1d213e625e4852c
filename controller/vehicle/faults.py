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
    """

    active: dict[str, str] = field(default_factory=dict)
    latched: list[str] = field(default_factory=list)

    def snapshot(self) -> State:
        """Return the active conditions and the latched reasons (issue 12 part 4)."""
        return {"active": dict(self.active), "latched": list(self.latched)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        active, latched = state.get("active"), state.get("latched")
        self.active = {str(k): str(v) for k, v in active.items()} if isinstance(active, dict) else {}
        self.latched = [str(v) for v in latched] if isinstance(latched, list) else []

    def set(self, key: str, reason: str | None) -> bool:
        """Set (reason) or clear (None) one condition; True if it newly became active."""
        if reason is None:
            self.active.pop(key, None)
            return False
        new = key not in self.active
        self.active[key] = reason
        return new
