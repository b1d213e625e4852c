"""The first, simple allocator: weighted pseudo-inverse, then clip to the thrust limits.

Kept as the baseline the exact allocator is measured against (``bench/allocation.py``) and
as a fallback choice in the rig (``controller.allocation.method: pinv_clip``). It ignores
axis priorities and the least-thrust objective; clipping the minimum-norm solution (which
asks negative thrust of half the thrusters) usually loses wrench that the geometry could
produce. No I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from controller.allocation.effectiveness import axis_names, check_positive_span
from controller.allocation.exact import AllocationResult

__all__ = ["PinvClipAllocator"]


class PinvClipAllocator:
    """``u = clip(pinv(W B_h) W (tau - wrench_open), 0, u_max)`` on the healthy thrusters.

    Parameters
    ----------
    B : array_like, shape (m, N)
        Effectiveness matrix, body frame (see :func:`~controller.allocation.effectiveness`).
    u_max_n : array_like, shape (N,)
        Maximum thrust per thruster, N, > 0.
    axis_weights : array_like, shape (m,), optional
        Positive per-axis weights of the least-squares fit, default 1.
    axis_priorities : sequence of sequences of int, optional
        Accepted for interface compatibility with :class:`ExactAllocator`; ignored.

    Raises
    ------
    ValueError
        Shapes disagree, or a limit or weight is not positive and finite.

    Notes
    -----
    Moore-Penrose pseudo-inverse (Golub & Van Loan, "Matrix Computations", 5.5.2),
    computed once per failure set and cached; ``allocate`` is per-tick.
    """

    def __init__(
        self,
        B: ArrayLike,
        u_max_n: ArrayLike,
        *,
        axis_weights: ArrayLike | None = None,
        axis_priorities: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.B = np.array(B, dtype=float)
        if self.B.ndim != 2 or not np.all(np.isfinite(self.B)):
            raise ValueError("B must be a finite 2-D (m, N) matrix")
        m, n = self.B.shape
        self.u_max_n = np.array(u_max_n, dtype=float).reshape(-1)
        if self.u_max_n.shape != (n,) or not np.all(np.isfinite(self.u_max_n)) or np.any(self.u_max_n <= 0):
            raise ValueError(f"u_max_n must be {n} positive finite thrusts in N")
        w = np.ones(m) if axis_weights is None else np.array(axis_weights, dtype=float).reshape(-1)
        if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"axis_weights must be {m} positive finite weights")
        self.axis_weights = w
        self.axis_priorities = axis_priorities
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.set_failures()

    def set_failures(self, stuck_closed: Iterable[int] = (), stuck_open_n: Mapping[int, float] | None = None) -> None:
        """Declare failed thrusters; same contract as :meth:`ExactAllocator.set_failures`."""
        n = self.B.shape[1]
        closed = frozenset(int(i) for i in stuck_closed)
        opened = {int(i): float(f) for i, f in (stuck_open_n or {}).items()}
        for i in closed | opened.keys():
            if not 0 <= i < n:
                raise ValueError(f"thruster index {i} out of range 0..{n - 1}")
        if closed & opened.keys():
            raise ValueError("a thruster cannot be both stuck closed and stuck open")
        for i, f in opened.items():
            if not (math.isfinite(f) and 0.0 <= f <= self.u_max_n[i]):
                raise ValueError(f"stuck-open force of thruster {i} must be in [0, {self.u_max_n[i]}] N")
        key = (closed, tuple(sorted(opened.items())))
        if key not in self._cache:
            active = np.array([i not in closed and i not in opened for i in range(n)])
            open_thrust = np.zeros(n)
            for i, f in opened.items():
                open_thrust[i] = f
            pinv = np.linalg.pinv(self.axis_weights[:, None] * self.B[:, active]) * self.axis_weights[None, :]
            self._cache[key] = (active, open_thrust, pinv)
        self._active, self._open_thrust, self._pinv = self._cache[key]

    def spans(self, axes: Sequence[int] | None = None) -> tuple[bool, str]:
        """Positive-span check of the healthy thrusters (see ``check_positive_span``)."""
        return check_positive_span(self.B[:, self._active], axes)

    def allocate(self, wrench: ArrayLike) -> AllocationResult:
        """Allocate a demanded wrench (per-tick); see :meth:`ExactAllocator.allocate`."""
        tau = np.asarray(wrench, dtype=float)
        m = self.B.shape[0]
        if tau.shape != (m,) or not np.isfinite(tau).all():
            raise ValueError(f"wrench must be {m} finite values ({', '.join(axis_names(m))})")
        u = self._open_thrust.copy()
        umax = self.u_max_n[self._active]
        u_act = np.minimum(np.maximum(self._pinv @ (tau - self.B @ self._open_thrust), 0.0), umax)
        u[self._active] = u_act
        achieved = self.B @ u
        resid = achieved - tau
        wr = self.axis_weights * resid
        sat = np.zeros(u.shape[0], dtype=bool)
        sat[self._active] = u_act >= umax
        return AllocationResult(u, achieved, -resid, sat, math.sqrt(float(wr @ wr)))
