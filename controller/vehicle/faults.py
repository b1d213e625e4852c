"""The fault book: conditions active this tick, and the faults latched by ``safe_mode``."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def set(self, key: str, reason: str | None) -> bool:
        """Set (reason) or clear (None) one condition; True if it newly became active."""
        if reason is None:
            self.active.pop(key, None)
            return False
        new = key not in self.active
        self.active[key] = reason
        return new
