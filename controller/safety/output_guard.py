"""Output guard: the only path from the allocator to the thruster bus.

Rules (ARCHITECTURE.md 5.1, SAFETY.md O02, O03):

* non-zero thrust only while the state machine's outputs are ``allocate``;
* every thrust clamped to ``[0, max_thrust_n]`` of its thruster;
* the change per tick is limited to ``max_thrust_rate_n_per_s * dt_s`` using the real
  elapsed time (T01), except that a step *down to zero* is always allowed at once;
* a NaN or infinite thrust zeroes the whole command for that tick and is counted; after
  ``max_nonfinite_ticks`` consecutive bad ticks the guard asks for a ``fault``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hal.snapshot import JsonValue, State, capture
from hal.snapshot import apply as apply_state


class OutputGuard:
    """Stateful per-tick guard.

    Parameters
    ----------
    max_thrust_n : sequence of float, shape (N,)
        Per-thruster maximum (N).
    max_thrust_rate_n_per_s : float
        Maximum increase of any thrust per second (N/s).
    max_nonfinite_ticks : int
        Consecutive ticks with non-finite demands before :attr:`fault_reason` is set.
    """

    def __init__(self, max_thrust_n: Sequence[float], max_thrust_rate_n_per_s: float,
                 max_nonfinite_ticks: int = 3) -> None:
        self.max_thrust_n = [float(v) for v in max_thrust_n]
        self.rate_n_per_s = float(max_thrust_rate_n_per_s)
        self.max_nonfinite_ticks = int(max_nonfinite_ticks)
        self.last_n = [0.0] * len(self.max_thrust_n)
        self.nonfinite_ticks = 0
        self.nonfinite_total = 0
        self.clamped_total = 0
        self.rate_limited_total = 0
        self.fault_reason: str | None = None

    #: The guard's state in a snapshot (issue 12 part 4): the last output (rate limit), counters, the latch.
    SNAPSHOT_FIELDS = ("last_n", "nonfinite_ticks", "nonfinite_total", "clamped_total", "rate_limited_total",
                       "fault_reason")

    def snapshot(self) -> State:
        """Return the last output (the rate limit's reference), the counters and the fault latch."""
        return capture(self, self.SNAPSHOT_FIELDS)

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        apply_state(self, state, self.SNAPSHOT_FIELDS)

    def apply(self, demand_n: Sequence[float] | None, allow: bool, dt_s: float) -> list[float]:
        """Return the thrusts allowed onto the bus this tick (per tick).

        Parameters
        ----------
        demand_n : sequence of float, shape (N,), or None
            Allocator output (N); None means zero.
        allow : bool
            True only when the current state's outputs are ``allocate``.
        dt_s : float
            Real time since the previous tick (s).

        Returns
        -------
        list of float, shape (N,)
            Guarded thrusts (N).
        """
        n = len(self.max_thrust_n)
        if not allow or demand_n is None:
            self.last_n = [0.0] * n
            return self.last_n
        if not all(map(math.isfinite, demand_n)):  # one C-level pass, no generator
            self.nonfinite_ticks += 1
            self.nonfinite_total += 1
            if self.nonfinite_ticks >= self.max_nonfinite_ticks and self.fault_reason is None:
                self.fault_reason = f"non-finite thrust demand for {self.nonfinite_ticks} ticks"
            self.last_n = [0.0] * n
            return self.last_n
        self.nonfinite_ticks = 0
        step = self.rate_n_per_s * max(dt_s, 0.0)
        max_n, last_n = self.max_thrust_n, self.last_n
        out = [0.0] * len(demand_n)  # filled by index: no append call per thruster
        for i, v in enumerate(demand_n):  # IndexError past the last thruster or output
            hi = max_n[i]
            c = hi if v > hi else (0.0 if v < 0.0 else v)
            if c != v:
                self.clamped_total += 1
            prev = last_n[i]
            if c > prev + step:
                c = prev + step
                self.rate_limited_total += 1
            out[i] = c
        self.last_n = out
        return out
