"""The first, simple allocator: weighted pseudo-inverse, then clip to the thrust limits.

Kept as the baseline the exact allocator is measured against (``bench/allocation.py``) and
as a fallback choice in the rig (``controller.allocation.method: pinv_clip``). It ignores
axis priorities and the least-thrust objective; clipping the minimum-norm solution (which
asks negative thrust of half the thrusters) usually loses wrench that the geometry could
produce. No I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from controller.allocation.effectiveness import axis_names, check_positive_span
from controller.allocation.exact import AllocationResult, _checked_failures, _checked_geometry

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
        self.B, self.u_max_n, self.axis_weights = _checked_geometry(B, u_max_n, axis_weights)
        self.axis_priorities = axis_priorities
        self._cache: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.set_failures()

    def set_failures(self, stuck_closed: Iterable[int] = (), stuck_open_n: Mapping[int, float] | None = None) -> None:
        """Declare failed thrusters (SAFETY.md D06); takes effect at the next ``allocate``.

        Parameters
        ----------
        stuck_closed : iterable of int
            Thruster indices (0-based) that produce no thrust.
        stuck_open_n : mapping int -> float
            Thruster index -> known constant thrust in N (0 <= f <= u_max), subtracted
            from the demand as its wrench.

        Raises
        ------
        ValueError
            Unknown index, a thruster both closed and open, or a force outside
            ``[0, u_max]`` (same contract as :meth:`ExactAllocator.set_failures`).
        """
        key = _checked_failures(self.u_max_n, stuck_closed, stuck_open_n)
        if key not in self._cache:
            closed, opened = key
            n = self.B.shape[1]
            open_thrust = np.zeros(n)
            for i, f in opened:
                open_thrust[i] = f
            failed = closed | {i for i, _ in opened}
            active = np.array([i not in failed for i in range(n)])
            pinv = np.linalg.pinv(self.axis_weights[:, None] * self.B[:, active]) * self.axis_weights[None, :]
            self._cache[key] = (active, open_thrust, self.B @ open_thrust, self.u_max_n[active], pinv)
        self._active, self._open_thrust, self._open_wrench, self._u_max_act, self._pinv = self._cache[key]

    def spans(self, axes: Sequence[int] | None = None) -> tuple[bool, str]:
        """Positive-span check of the healthy thrusters (SAFETY.md K06, D06).

        Parameters
        ----------
        axes : sequence of int, optional
            Wrench axes needed by the controller; default all.

        Returns
        -------
        (bool, str)
            See :func:`controller.allocation.effectiveness.check_positive_span`.

        Raises
        ------
        ValueError
            An axis index out of range.
        """
        return check_positive_span(self.B[:, self._active], axes)

    def allocate(self, wrench: ArrayLike) -> AllocationResult:
        """Allocate a demanded wrench to thrusts (per-tick).

        Parameters
        ----------
        wrench : array_like, shape (m,)
            Demanded wrench, body frame, [Fx N, Fy N, Mz N m] or
            [Fx, Fy, Fz N, Mx, My, Mz N m].

        Returns
        -------
        AllocationResult
            Clipped weighted minimum-norm thrusts (N, shape (N,)); achieved and unallocated
            wrench; saturation flags. Not optimal in general (see the module docstring).

        Raises
        ------
        ValueError
            Wrong shape or a non-finite demand.
        """
        tau = np.asarray(wrench, dtype=float)
        m = self.B.shape[0]
        if tau.shape != (m,) or not np.isfinite(tau).all():
            raise ValueError(f"wrench must be {m} finite values ({', '.join(axis_names(m))})")
        u = self._open_thrust.copy()
        umax = self._u_max_act
        u_act = np.minimum(np.maximum(self._pinv @ (tau - self._open_wrench), 0.0), umax)
        u[self._active] = u_act
        achieved = self.B @ u
        resid = achieved - tau
        wr = self.axis_weights * resid
        sat = np.zeros(u.shape[0], dtype=bool)
        sat[self._active] = u_act >= umax
        return AllocationResult(u, achieved, -resid, sat, math.sqrt(float(wr @ wr)))
