"""The time source hal asks for: a clock it reads, never one it owns or advances.

``hal`` never imports ``controller`` (ARCHITECTURE.md section 2, rule 4), so the ports and
pollers that need the time take any object with this shape. The controller's clocks
(:class:`controller.clock.SimClock`, :class:`controller.clock.MonotonicClock`) satisfy it
structurally; so does any test double with the two methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Clock"]


@runtime_checkable
class Clock(Protocol):
    """The time now, on a monotonic clock, since the clock's epoch."""

    def now_s(self) -> float:
        """Return seconds since the clock's epoch (monotonic, never steps backwards)."""
        ...

    def now_ns(self) -> int:
        """Return integer nanoseconds since the clock's epoch."""
        ...
