"""Exact, failure-aware thrust allocation for on/off (solenoid) thrusters.

The problem solved on every control tick, for a demanded wrench ``tau`` (body frame) and
the effectiveness matrix ``B`` (m x N, see :mod:`controller.allocation.effectiveness`)::

    stage 1..G  (axis priority groups, highest first; one group of all axes by default)
        minimise   || W_g (B_g u - tau_g) ||_2^2
        subject to 0 <= u <= u_max,   B_h u = y_h*  for every earlier group h
    final stage (secondary objective: least total thrust = least propellant)
        minimise   sum(u)
        subject to 0 <= u <= u_max,   B u = y*

``W = diag(axis_weights)``. Because every weight is positive, the objective of each stage
is strictly convex in the achieved wrench of its group, so the achieved wrench ``y*`` is
unique and the answer is *exact* (no regularisation, no epsilon trade-off): the error is
the true minimum, and the thrust is a least-total-thrust minimiser.

How it is solved (our own solver; scipy is only the test oracle)
----------------------------------------------------------------
*Feasible demands* (``tau`` inside the attainable zonotope ``Z = {B u : 0 <= u <= u_max}``)
make every stage error zero, so only the linear programme ``min sum(u), B u = tau`` remains.
Its reduced costs do not depend on ``tau``: for every invertible basis (m columns of ``B``)
the dual-feasible placement of the non-basic thrusters (at 0 when the reduced cost is
positive, at ``u_max`` when negative; ties broken by a fixed generic cost perturbation, the
lexicographic rule of Dantzig, Orden & Wolfe 1955) is fixed once per geometry. The primal
feasible regions of these bases tile ``Z`` (the regular fine zonotopal tiling induced by
the cost lifting; Billera & Sturmfels 1992, "Fiber polytopes"; Ziegler, "Lectures on
Polytopes", 9.2), so the optimum is found by *point location*. By LP duality the primal
value of cell ``k``'s basic solution is ``mu_k' tau - h_k`` (``mu_k`` its dual vertex), and
a primal-feasible basis maximises it, so the candidate cell is the argmax of one
``(K x m+1)`` matrix-vector product; its affine map ``u / u_max = U_k tau - o_k`` (all
thrusters at once, as fractions of full thrust) is the certificate (every entry in
``[0, 1]``). Since any cell whose certificate holds is optimal, the table is sorted by cell
volume and searched in prefixes (a few hundred cells first), and the whole table only when
those miss. Bases sharing a degenerate dual vertex (exact ties) are all tried. The cell of
the last tick is tried first while the demand stays in it (warm start).

*Demands outside Z* are recognised by weak LP duality (no point of Z has a cell dual value
above the cost of every healthy thruster at full thrust: the point location's own product
tells, and most outside demands need no cell certificate) or by a violated facet (after
the first point-location tier misses). Those whose weighted projection lies inside a facet
``f`` of Z have a closed form: ``tau = v_f + B_S t + s W^-2 n_f`` with ``0 <= t <= u_max``
and ``s >= 0`` is the KKT certificate; the facet is the most violated one (for a
projection inside facet ``f``, ``n_f`` is the unique maximiser of ``n' tau - support(n)``).

*Every infeasible demand* goes through a primal active-set method for bound-constrained
least squares (Lawson & Hanson 1974, ch. 23; Stark & Parker 1995, "Bounded-variable
least-squares"), started at the most violated facet's vertex with the facet's thrusters
free, so that its first iteration is the facet's closed form above. Its free set ``F``
always has independent columns, and every thruster outside ``F`` sits on a bound, so the
subspace minimiser ``z = pinv(A_F) (W tau - A_U u_max_U)`` and the gradient there are both
linear in ``[tau; 1_U]`` (``U`` the thrusters at ``u_max``): one tabulated matrix per free
set (all column subsets of size <= m, per failure set) gives both in one product per
iteration (:func:`_kkt_table`, :func:`_bvls_kkt`). A bound thruster whose own minimiser
lies beyond its other bound is moved there directly (a strict descent) instead of being
freed and stepped back. Above :data:`MAX_KKT_ENTRIES` the iterations look up the subsets'
pseudo-inverses instead (two products each). With axis priorities, one stage per priority
group keeps the earlier groups' wrench as equality constraints (Nocedal & Wright 2006,
section 16.5). The secondary objective is then the same point location at the achieved
wrench ``y*`` (``y*`` lies in ``Z``) when the least-squares minimiser is not unique. A
general active-set LP stage is the fallback when no cell applies (rank-deficient geometry
after failures).

Failed thrusters: *stuck closed* are removed (``u_i = 0``); *stuck open* produce a known
constant force ``f_i`` whose wrench ``b_i f_i`` is subtracted from the demand before the
healthy thrusters are allocated. The cell table of a failure set is the sub-table of the
full geometry's cells whose basis avoids the failed thrusters (reduced costs depend only on
the basis), with offsets recomputed: no factorisation is repeated. It is cached per failure
set.

No I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from operator import mul as _mul

import numpy as np
from numpy.typing import ArrayLike

from controller.allocation.effectiveness import axis_names, check_positive_span
from controller.allocation.lsq import solve_bounded_lsq
from hal.snapshot import JsonValue, SnapshotError, State, decode, encode

__all__ = ["AllocationResult", "ExactAllocator"]

#: Largest number of m-column bases tabulated per geometry (above: active-set path only).
MAX_CELLS = 20000

_BASIS_RCOND = 1e-9

_isfinite = math.isfinite
_new_object = object.__new__
_F64 = np.dtype(np.float64)

#: Largest number of column subsets (size <= m) whose pseudo-inverses are tabulated.
MAX_SUBSETS = 20000

#: Largest number of float64 entries of the fused active-set matrices per failure set
#: (:func:`_kkt_table`; 6 x 12 needs about 0.8 million, 6 x 16 about 7 million).
MAX_KKT_ENTRIES = 2_000_000

#: Point location searches the volume-sorted cell table in prefixes: the first holds
#: ``max(LOCATE_TIER_MIN, K // 10)`` cells, the second ``max(4 * LOCATE_TIER_MIN, 2K // 5)``
#: (a matrix-vector product over a few hundred cells costs little more than over a few).
LOCATE_TIER_MIN = 192


class AllocationResult:
    """Outcome of one allocation.

    Attributes
    ----------
    thrust_n : numpy.ndarray, shape (N,)
        Thrust per thruster, N, in ``[0, u_max_n]``; a stuck-open thruster shows its known
        constant force, a stuck-closed one 0.
    achieved_wrench : numpy.ndarray, shape (m,)
        ``B @ thrust_n``, body frame, [N, N, N m] (planar) or [N, N, N, N m, N m, N m].
    unallocated_wrench : numpy.ndarray, shape (m,)
        ``demand - achieved_wrench``, body frame, same units; zero for a feasible demand.
    saturated : numpy.ndarray of bool, shape (N,)
        True where a healthy thruster is at its maximum thrust.
    weighted_error : float
        ``|| diag(axis_weights) (achieved - demand) ||_2`` (same units as the weighted
        wrench).

    Notes
    -----
    :meth:`ExactAllocator.allocate` returns the thrusts only and derives the other four
    at their first access (then keeps them), with the same numpy operations as computing
    them at once (the same bits): a caller that reads only ``thrust_n`` does not pay for
    them. The result holds its own copy of the demand; do not modify ``thrust_n`` before
    reading the others. Built with all five values (as :class:`PinvClipAllocator` does),
    nothing is deferred.
    """

    __slots__ = ("thrust_n", "_achieved", "_unallocated", "_saturated", "_error", "_demand", "_src")
    thrust_n: np.ndarray
    _achieved: np.ndarray | None
    _unallocated: np.ndarray | None
    _saturated: np.ndarray | None
    _error: float | None
    _demand: np.ndarray | list[float]
    _src: tuple[np.ndarray, np.ndarray, np.ndarray | None]

    def __init__(
        self, thrust_n: np.ndarray, achieved_wrench: np.ndarray, unallocated_wrench: np.ndarray,
        saturated: np.ndarray, weighted_error: float,
    ) -> None:
        self.thrust_n = thrust_n
        self._achieved = achieved_wrench
        self._unallocated = unallocated_wrench
        self._saturated = saturated
        self._error = weighted_error

    @classmethod
    def _deferred(cls, thrust_n: np.ndarray, demand: np.ndarray | list[float],
                  src: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> AllocationResult:
        """Thrusts now, the rest at first access.

        ``demand``: the allocator's own float array of the demand, or its values as Python
        floats (never the caller's array); ``src`` is ``(B, saturation thresholds (N,),
        axis weights or None for unit weights)``. :meth:`ExactAllocator.allocate` makes
        the same object inline on its healthy-rig path (a slot added here goes there too).
        """
        r = _new_object(cls)
        r.thrust_n = thrust_n
        r._achieved = r._unallocated = r._saturated = r._error = None
        r._demand = demand
        r._src = src
        return r

    @property
    def achieved_wrench(self) -> np.ndarray:
        """``B @ thrust_n`` (see the class docstring)."""
        a = self._achieved
        if a is None:
            a = self._achieved = self._src[0].dot(self.thrust_n)
        return a

    @property
    def unallocated_wrench(self) -> np.ndarray:
        """``demand - achieved_wrench`` (see the class docstring)."""
        d = self._unallocated
        if d is None:
            a = self._achieved
            if a is None:
                a = self._achieved = self._src[0].dot(self.thrust_n)
            # (the same subtraction on the same values when the demand is kept as floats)
            dem = self._demand
            d = self._unallocated = (dem if type(dem) is np.ndarray else np.array(dem)) - a
        return d

    @property
    def saturated(self) -> np.ndarray:
        """Healthy thrusters at their maximum thrust (see the class docstring)."""
        s = self._saturated
        if s is None:
            s = self._saturated = self.thrust_n >= self._src[1]
        return s

    @property
    def weighted_error(self) -> float:
        """``|| diag(axis_weights) (achieved - demand) ||_2`` (see the class docstring)."""
        e = self._error
        if e is None:
            d = self.unallocated_wrench
            w = self._src[2]
            e = self._error = math.hypot(*(d if w is None else w * d).tolist())
        return e

    def __repr__(self) -> str:
        return (f"AllocationResult(thrust_n={self.thrust_n!r}, achieved_wrench={self.achieved_wrench!r}, "
                f"unallocated_wrench={self.unallocated_wrench!r}, saturated={self.saturated!r}, "
                f"weighted_error={self.weighted_error!r})")


# --------------------------------------------------------------------------------------------
# Cell table (the fast path)
# --------------------------------------------------------------------------------------------


class _CellTable:
    """Every invertible basis of the full geometry with its dual-feasible bound pattern."""

    __slots__ = ("idx", "minv", "upper")

    def __init__(self, B: np.ndarray, cost: np.ndarray) -> None:
        m, n = B.shape
        self.idx = np.zeros((0, m), dtype=np.intp)
        self.minv = np.zeros((0, m, m))
        self.upper = np.zeros((0, n), dtype=bool)
        if n < m or math.comb(n, m) > MAX_CELLS:
            return
        idx = np.array(list(itertools.combinations(range(n), m)), dtype=np.intp)
        Bk = B.T[idx].transpose(0, 2, 1)  # (K, m, m): columns = basis thrusters
        s = np.linalg.svd(Bk, compute_uv=False)
        keep = s[:, -1] > _BASIS_RCOND * np.maximum(s[:, 0], 1e-300)
        idx, Bk = idx[keep], Bk[keep]
        if idx.shape[0] == 0:
            return
        minv = np.linalg.inv(Bk)
        # reduced costs d = c - B^T mu with mu = Bk^-T c_b; the same with a generic
        # perturbation breaks ties (lexicographic rule)
        mu = np.einsum("kji,kj->ki", minv, cost[idx])
        d = cost[None, :] - mu @ B
        pert = np.random.default_rng(0x51C1).uniform(1.0, 2.0, size=int(n))
        mup = np.einsum("kji,kj->ki", minv, pert[idx])
        dp = pert[None, :] - mup @ B
        tie = np.abs(d) <= 1e-9 * max(1.0, float(np.abs(cost).max()))
        upper = np.where(tie, dp < 0.0, d < 0.0)
        rows = np.arange(idx.shape[0])[:, None]
        upper[rows, idx] = False
        self.idx, self.minv, self.upper = idx, minv, upper


class _FacetTable:
    """Every hyperplane spanned by m-1 columns of the full geometry (candidate facets).

    ``P[f]`` is the inverse of ``[B_S | W^-2 n_f]`` (m x m): the coordinates ``(t, s)`` of a
    demand in the projection region of facet ``f`` (``tau = v_f + B_S t + s W^-2 n_f``).
    """

    __slots__ = ("idx", "normal", "pinv_w", "P")

    def __init__(self, B: np.ndarray, w: np.ndarray) -> None:
        m, n = B.shape
        self.idx = np.zeros((0, max(m - 1, 0)), dtype=np.intp)
        self.normal = np.zeros((0, m))
        self.pinv_w = np.zeros((0, max(m - 1, 0), m))
        self.P = np.zeros((0, m, m))
        if m < 2 or n < m - 1 or math.comb(n, m - 1) > MAX_CELLS:
            return
        idx = np.array(list(itertools.combinations(range(n), m - 1)), dtype=np.intp)
        As = B.T[idx].transpose(0, 2, 1)  # (F, m, m-1)
        _, s, vt = np.linalg.svd(As.transpose(0, 2, 1), full_matrices=True)  # rows: m-1 x m
        keep = s[:, -1] > _BASIS_RCOND * np.maximum(s[:, 0], 1e-300)
        idx, As, normal = idx[keep], As[keep], vt[keep, -1, :]
        idx = np.concatenate([idx, idx])
        As = np.concatenate([As, As])
        normal = np.concatenate([normal, -normal])
        # weighted least-squares coordinates on the facet plane: t = (W A_S)^+ W (y - v)
        WA = w[None, :, None] * As
        pinv = np.linalg.pinv(WA) * w[None, None, :]
        # region coordinates: [B_S | W^-2 n] is invertible because n' W^-2 n > 0
        self.P = np.linalg.inv(np.concatenate([As, (normal / (w * w)[None, :])[:, :, None]], axis=2))
        self.idx, self.normal, self.pinv_w = idx, normal, pinv


def _subset_pinv_table(A: np.ndarray) -> dict[int, tuple[np.ndarray, list[int], np.ndarray]] | None:
    """Pseudo-inverse of every column subset of ``A`` with full column rank (size <= m).

    Keys are bit masks of the columns (bit ``i`` = column ``i``); values are the column
    indices (array and list) and ``pinv(A[:, S])`` (``|S| x m``). These are the subspace
    solves of the bounded least-squares iterations: a free set of the Lawson-Hanson method
    always has linearly independent columns (Lawson & Hanson 1974, ch. 23), so it is a key
    here, and the per-tick call only looks it up. None when the subsets are more than
    :data:`MAX_SUBSETS` (then the iterations solve their normal equations).
    """
    m, n = A.shape
    top = min(m, n)
    if sum(math.comb(n, k) for k in range(1, top + 1)) > MAX_SUBSETS:
        return None
    table: dict[int, tuple[np.ndarray, list[int], np.ndarray]] = {}
    for k in range(1, top + 1):
        idx = np.array(list(itertools.combinations(range(n), k)), dtype=np.intp)
        As = A.T[idx].transpose(0, 2, 1)  # (C, m, k)
        u_, s, vt = np.linalg.svd(As, full_matrices=False)
        keep = s[:, -1] > _BASIS_RCOND * np.maximum(s[:, 0], 1e-300)
        # pinv = V diag(1/s) U' (C, k, m)
        P = np.einsum("cji,cj,cmj->cim", vt[keep], 1.0 / s[keep], u_[keep])
        for row, Pk in zip(idx[keep], P, strict=True):
            lst = row.tolist()
            table[sum(1 << i for i in lst)] = (row, lst, np.ascontiguousarray(Pk))
    return table


def _kkt_table(
    A: np.ndarray, w: np.ndarray, hi: np.ndarray, sub: dict[int, tuple[np.ndarray, list[int], np.ndarray]] | None,
) -> dict[int, tuple[list[int], np.ndarray]] | None:
    """Fused subspace solve and gradient of every free set, one matrix per set.

    For a free set ``F`` (independent columns) with every other thruster on a bound (``U``
    the ones at ``u_max``), the subspace minimiser of ``||A u - W tau||`` is
    ``z = P_F (W tau - A_U hi_U)`` (``P_F = pinv(A_F)``) and the gradient of
    ``0.5 ||A u - W tau||^2`` there is ``g = -A' Q_F (W tau - A_U hi_U)`` with
    ``Q_F = I - A_F P_F``. Both are linear in ``x = [tau; 1_U]``, so ``[z; g] = K_F x``::

        K_F = [[ P_F W,        -(P_F A) diag(hi)  ],
               [-A' Q_F W,     (A' Q_F A) diag(hi)]]     shape (|F| + n, m + n)

    Parameters
    ----------
    A : numpy.ndarray, shape (m, n)
        Weighted effectiveness ``W B`` of the healthy thrusters.
    w : numpy.ndarray, shape (m,)
        Axis weights (the diagonal of ``W``).
    hi : numpy.ndarray, shape (n,)
        Upper bounds ``u_max``, N.
    sub : dict or None
        :func:`_subset_pinv_table` of ``A`` (its keys are the independent column subsets).

    Returns
    -------
    dict or None
        Bit mask of ``F`` (0: no free thruster) -> ``(columns of F as a list, K_F)``; None
        when ``sub`` is None, there is no healthy thruster, or the matrices would hold more
        than :data:`MAX_KKT_ENTRIES` numbers (then the active set uses ``sub``).
    """
    m, n = A.shape
    if sub is None or n == 0:
        return None
    rows = n + sum(len(lst) + n for _, lst, _ in sub.values())
    if rows * (m + n) > MAX_KKT_ENTRIES:
        return None
    wc, hc = w[None, None, :], hi[None, None, :]
    table: dict[int, tuple[list[int], np.ndarray]] = {
        0: ([], np.ascontiguousarray(np.concatenate([-A.T * w[None, :], (A.T @ A) * hi[None, :]], axis=1))),
    }
    by_size: dict[int, list[tuple[int, list[int], np.ndarray]]] = {}
    for mask, (_, lst, P) in sub.items():
        by_size.setdefault(len(lst), []).append((mask, lst, P))
    for items in by_size.values():
        P = np.stack([p for _, _, p in items])  # (C, k, m)
        idx = np.array([lst for _, lst, _ in items], dtype=np.intp)  # (C, k)
        AF = A.T[idx].transpose(0, 2, 1)  # (C, m, k)
        Q = np.eye(m)[None] - AF @ P  # (C, m, m): projector on the complement of range(A_F)
        AQ = A.T[None] @ Q  # (C, n, m)
        Kz = np.concatenate([P * wc, -(P @ A) * hc], axis=2)
        Kg = np.concatenate([-AQ * wc, (AQ @ A) * hc], axis=2)
        K = np.ascontiguousarray(np.concatenate([Kz, Kg], axis=1))
        for (mask, lst, _), Kc in zip(items, K, strict=True):
            table[mask] = (lst, Kc)
    return table


def _positive_finite(values: ArrayLike | None, size: int, name: str, what: str) -> np.ndarray:
    """``values`` as a float vector of ``size`` positive finite entries (None: all ones).

    Raises
    ------
    ValueError
        Wrong size, or an entry not positive and finite (the message names ``name``).
    """
    v = np.ones(size) if values is None else np.array(values, dtype=float).reshape(-1)
    if v.shape != (size,) or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be {size} positive finite {what}")
    return v


def _checked_geometry(
    B: ArrayLike, u_max_n: ArrayLike, axis_weights: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return validated float copies of an allocator's matrices.

    ``B`` (m, N), ``u_max_n`` (N,; N) and ``axis_weights`` (m,; default 1), shared by
    every allocator's constructor.

    Raises
    ------
    ValueError
        ``B`` not a finite 2-D matrix with at least one row and column; a limit or weight
        of the wrong size or not positive and finite.
    """
    Bm = np.array(B, dtype=float)
    if Bm.ndim != 2 or Bm.shape[0] < 1 or Bm.shape[1] < 1:
        raise ValueError(f"B must be a 2-D (m, N) matrix, got shape {Bm.shape}")
    if not np.all(np.isfinite(Bm)):
        raise ValueError("B contains NaN or infinity")
    m, n = Bm.shape
    if u_max_n is None:  # required: _positive_finite would read None as all ones
        raise ValueError(f"u_max_n must be {n} positive finite thrusts in N")
    u_max = _positive_finite(u_max_n, n, "u_max_n", "thrusts in N")
    w = _positive_finite(axis_weights, m, "axis_weights", "weights")
    return Bm, u_max, w


def _checked_failures(
    u_max_n: np.ndarray, stuck_closed: Iterable[int], stuck_open_n: Mapping[int, float] | None,
) -> tuple[frozenset[int], tuple[tuple[int, float], ...]]:
    """Return the validated failure set ``(closed, sorted((index, force N), ...))``.

    It is the cache key of every allocator's ``set_failures`` (contract:
    :meth:`ExactAllocator.set_failures`).

    Raises
    ------
    ValueError
        Unknown index, a thruster both closed and open, or a force outside ``[0, u_max]``.
    """
    n = u_max_n.shape[0]
    closed = frozenset(int(i) for i in stuck_closed)
    opened = {int(i): float(f) for i, f in (stuck_open_n or {}).items()}
    for i in closed | opened.keys():
        if not 0 <= i < n:
            raise ValueError(f"thruster index {i} out of range 0..{n - 1}")
    if closed & opened.keys():
        raise ValueError(f"thrusters {sorted(closed & opened.keys())} both stuck closed and stuck open")
    for i, f in opened.items():
        if not (math.isfinite(f) and 0.0 <= f <= u_max_n[i]):
            raise ValueError(f"stuck-open force of thruster {i} must be in [0, {u_max_n[i]}] N, got {f}")
    return closed, tuple(sorted(opened.items()))


class _Context:
    """Everything the per-tick call needs for one failure set (built once, then cached)."""

    __slots__ = (
        "active", "act_idx", "B_act", "u_max_act", "open_thrust", "open_wrench", "has_open",
        "full", "sat_thr", "chunks", "cells_hi", "cells_idx_act", "cells_up", "n_cells",
        "last_cell", "warm_ok", "dual_T", "cell_Ua", "tol_u", "v_scale", "ya", "facet_idx_act",
        "facet_up", "facet_pinv", "fac_T", "fac_Q", "fac_q", "fac_simple", "f_tol", "G", "A_all",
        "groups_A", "groups_rows", "prefix_E", "g_scale", "loc_tiers", "sub_pinv", "A_all_T",
        "u_max_list", "facet_v", "facet_S", "facet_side", "inv_u_max_max", "tiers_partial", "fast",
        "kkt", "kkt_x", "w_list", "g_diag", "result_src", "facet_u0", "facet_side0", "facet_mask",
        "facet_upx", "over", "kkt_one", "fac_buf",
    )
    # healthy thrusters and stuck-open forces
    active: np.ndarray  # (N,) bool
    act_idx: np.ndarray  # (n_act,) int
    B_act: np.ndarray  # (m, n_act)
    u_max_act: np.ndarray  # (n_act,) N
    open_thrust: np.ndarray  # (N,) N
    open_wrench: np.ndarray  # (m,)
    has_open: bool
    full: bool
    sat_thr: np.ndarray  # (N,) N
    tol_u: float
    inv_u_max_max: float
    v_scale: float
    ya: np.ndarray  # (m + 1,)
    # cells (point location)
    n_cells: int
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]
    cells_hi: np.ndarray
    cells_idx_act: np.ndarray
    cells_up: np.ndarray
    last_cell: int | np.intp  # (allocate keeps argmax's numpy integer)
    warm_ok: bool
    dual_T: np.ndarray
    loc_tiers: list[np.ndarray]
    tiers_partial: bool
    cell_Ua: np.ndarray
    over: float  # a dual value above it: the demand is outside the attainable set (_locate)
    # (y view, ya, cell maps, first tier, u_max, bounds, over, product buffers (K0,), (n_act,))
    fast: tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray, np.ndarray, float, float, float,
                np.ndarray, np.ndarray] | None
    # facets of the healthy zonotope
    fac_T: np.ndarray | None
    fac_buf: np.ndarray  # (F,): _screen's product, written in place every call
    facet_idx_act: np.ndarray
    facet_up: np.ndarray
    facet_pinv: np.ndarray
    fac_simple: np.ndarray
    facet_v: np.ndarray
    facet_S: list[list[int]]
    facet_side: np.ndarray
    fac_Q: np.ndarray
    fac_q: np.ndarray
    # least-squares stages
    A_all: np.ndarray
    G: np.ndarray
    g_scale: float
    f_tol: float
    A_all_T: np.ndarray
    u_max_list: list[float]
    sub_pinv: dict[int, tuple[np.ndarray, list[int], np.ndarray]] | None
    kkt: dict[int, tuple[list[int], np.ndarray]] | None
    kkt_x: np.ndarray  # (m + n_act,): [tau_h; 1 where the thruster sits at u_max]
    kkt_one: bool  # the fused tables and a single priority group: _solve_kkt applies
    w_list: list[float]
    g_diag: list[float]
    result_src: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    facet_u0: list[list[float]]
    facet_side0: list[list[float]]
    facet_mask: list[int]
    facet_upx: np.ndarray  # (F, n_act)
    groups_A: list[np.ndarray]
    groups_rows: list[np.ndarray]
    prefix_E: list[np.ndarray | None]


def _search_chunk(M: np.ndarray, off: np.ndarray, hi: np.ndarray, y: np.ndarray) -> tuple[int, float, np.ndarray]:
    """Least-violated cell of a chunk; tables are axis-major (row j*K + k = cell k, row j)."""
    allb = (M @ y - off).reshape(hi.shape)  # (m, K)
    viol = np.maximum(-allb, allb - hi).max(axis=0)
    k = int(viol.argmin())
    return k, float(viol[k]), allb[:, k]


class ExactAllocator:
    """Exact weighted-least-squares, least-thrust allocator with priorities and failures.

    Parameters
    ----------
    B : array_like, shape (m, N)
        Effectiveness matrix, body frame (x forward, y left, z up); rows
        [Fx, Fy, Mz] (m = 3) or [Fx, Fy, Fz, Mx, My, Mz] (m = 6); units N and N m per N.
    u_max_n : array_like, shape (N,)
        Maximum thrust per thruster, N, > 0.
    axis_weights : array_like, shape (m,), optional
        Positive per-axis weights ``w``; the error is ``||diag(w)(B u - tau)||``. Default 1.
    axis_priorities : sequence of sequences of int, optional
        Axis-index groups, highest priority first (e.g. ``[[2], [0, 1]]`` keeps the yaw
        torque before the planar force). Axes not listed form a last group. Each group's
        weighted error is minimised exactly before the next group is considered.
    cost : array_like, shape (N,), optional
        Secondary-objective weight per thruster (propellant per newton), default 1.

    Raises
    ------
    ValueError
        Shapes disagree, a limit or weight is not positive and finite, a priority names an
        unknown axis or one axis twice.

    Notes
    -----
    See the module docstring for the method and its sources. ``allocate`` is per-tick: it
    uses only cached factorisations of the current failure set. ``stats`` counts the paths
    taken (cell hits, warm hits, facet hits, active-set iterations, non-converged solves).
    """

    def __init__(
        self,
        B: ArrayLike,
        u_max_n: ArrayLike,
        *,
        axis_weights: ArrayLike | None = None,
        axis_priorities: Sequence[Sequence[int]] | None = None,
        cost: ArrayLike | None = None,
    ) -> None:
        self.B, self.u_max_n, w = _checked_geometry(B, u_max_n, axis_weights)
        m, n = self.B.shape
        self.axis_weights = w
        self._unit_weights = bool(np.all(w == 1.0))
        self._weights = None if self._unit_weights else w
        self.cost = _positive_finite(cost, n, "cost", "weights")
        groups: list[list[int]] = []
        seen: set[int] = set()
        for grp in axis_priorities or ():
            g = [int(a) for a in grp]
            for a in g:
                if not 0 <= a < m or a in seen:
                    raise ValueError(f"axis_priorities: axis {a} unknown or repeated (m = {m})")
                seen.add(a)
            if g:
                groups.append(g)
        rest = [a for a in range(m) if a not in seen]
        if rest:
            groups.append(rest)
        self.axis_priorities = tuple(tuple(g) for g in groups)
        self._shape = (m,)
        self._cells = _CellTable(self.B, self.cost)
        self._facets = _FacetTable(self.B, w)
        self._contexts: dict[tuple[frozenset[int], tuple[tuple[int, float], ...]], _Context] = {}
        self.stats = {"calls": 0, "cell_hits": 0, "warm_hits": 0, "facet_hits": 0,
                      "active_set_calls": 0, "active_set_iterations": 0, "not_converged": 0,
                      "lp_after_lsq": 0, "lp_fallbacks": 0}
        self._ctx = self._context(frozenset(), ())

    def snapshot(self) -> State:
        """Return the warm start (issue 12 part 4): per failure context its last cell, the current context, the stats.

        The contexts themselves are a pure function of the geometry and the failures:
        :meth:`restore` rebuilds them.
        """
        contexts = [(key, ctx.last_cell, ctx.warm_ok, ctx is self._ctx)  # their own types (numpy scalars)
                    for key, ctx in self._contexts.items()]
        return {"contexts": encode(contexts), "stats": encode(dict(self.stats))}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of an allocator of the same geometry.

        Raises
        ------
        SnapshotError
            For a malformed snapshot.
        """
        contexts = decode(state.get("contexts"))
        stats = decode(state.get("stats"))
        if not isinstance(contexts, list) or not isinstance(stats, dict):
            raise SnapshotError("allocator snapshot malformed")
        chosen = None
        for (closed, opened), last_cell, warm_ok, current in contexts:
            ctx = self._context(closed, opened)
            ctx.last_cell, ctx.warm_ok = last_cell, warm_ok
            if current:
                chosen = ctx
        if chosen is None:
            raise SnapshotError("allocator snapshot names no current context")
        self._ctx = chosen
        self.stats = stats

    def set_failures(self, stuck_closed: Iterable[int] = (), stuck_open_n: Mapping[int, float] | None = None) -> None:
        """Declare failed thrusters (SAFETY.md D06); takes effect at the next ``allocate``.

        Parameters
        ----------
        stuck_closed : iterable of int
            Thruster indices (0-based) that produce no thrust; removed from allocation.
        stuck_open_n : mapping int -> float
            Thruster index -> known constant thrust in N (0 <= f <= u_max) of a valve stuck
            open; its wrench is compensated by the healthy thrusters.

        Raises
        ------
        ValueError
            Unknown index, a thruster both closed and open, or a force outside
            ``[0, u_max]``.

        Notes
        -----
        The tables of a failure set are sub-tables of the full geometry's cached
        factorisations (no factorisation is repeated), built once and cached; an empty
        call restores all thrusters.
        """
        self._ctx = self._context(*_checked_failures(self.u_max_n, stuck_closed, stuck_open_n))

    @property
    def healthy(self) -> np.ndarray:
        """Boolean mask (N,) of the thrusters the allocator may command."""
        active: np.ndarray = self._ctx.active.copy()
        return active

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
        return check_positive_span(self._ctx.B_act, axes)

    def _context(self, closed: frozenset[int], opened: tuple[tuple[int, float], ...]) -> _Context:
        key = (closed, opened)
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        B = self.B
        m, n = B.shape
        failed = set(closed) | {i for i, _ in opened}
        active = np.array([i not in failed for i in range(n)])
        pos = np.cumsum(active) - 1  # full index -> position among healthy
        ctx = _Context()
        ctx.active = active
        ctx.act_idx = np.flatnonzero(active)
        ctx.B_act = B[:, active]
        ctx.u_max_act = self.u_max_n[active].copy()
        n_act = ctx.u_max_act.shape[0]
        ctx.open_thrust = np.zeros(n)
        for i, f in opened:
            ctx.open_thrust[i] = f
        ctx.open_wrench = B @ ctx.open_thrust
        ctx.has_open = bool(opened)
        ctx.full = n_act == n
        # saturation flag threshold; a failed thruster is never reported saturated
        ctx.sat_thr = np.where(active, self.u_max_n * (1.0 - 1e-12), np.inf)
        ctx.tol_u = 1e-12 * float(ctx.u_max_act.max()) if n_act else 0.0
        ctx.inv_u_max_max = 1.0 / float(ctx.u_max_act.max()) if n_act else 0.0
        ctx.v_scale = float(self.cost[active] @ ctx.u_max_act)
        ctx.ya = np.ones(m + 1)
        u_eff = np.where(active, self.u_max_n, 0.0)
        # ---- cells: bases avoiding failed thrusters, offsets for the healthy bounds
        cells = self._cells
        sel = np.all(active[cells.idx], axis=1) if cells.idx.shape[0] else np.zeros(0, bool)
        idx, minv, up = cells.idx[sel], cells.minv[sel], cells.upper[sel]
        K = idx.shape[0]
        ctx.n_cells = K
        # weak LP duality: every cell's dual value is at most the least total thrust cost of
        # a demand inside the attainable set, so at most the cost of all healthy thrusters
        # at full thrust (v_scale); a margin far above the products' rounding and the
        # tie-broken reduced costs (|d| <= 1e-9) above it
        ctx.over = ctx.v_scale + 1e-6 * (ctx.v_scale + float(ctx.u_max_act.sum()))
        ctx.loc_tiers = []
        ctx.tiers_partial = False
        ctx.fast = None
        ctx.last_cell = 0
        ctx.warm_ok = False
        ctx.chunks = []
        if K:
            up_u = np.where(up, u_eff[None, :], 0.0)  # (K, N) non-basic thrust at u_max
            off = np.einsum("kij,kj->ki", minv, up_u @ B.T)
            hi = self.u_max_n[idx]
            vol = np.prod(hi, axis=1) / np.abs(np.linalg.det(minv))
            order = np.argsort(-vol, kind="stable")  # big cells first: likelier hits
            idx, minv, up_u, off, hi = idx[order], minv[order], up_u[order], off[order], hi[order]
            ctx.cells_hi = hi
            ctx.cells_idx_act = pos[idx]
            ctx.cells_up = up_u[:, active]
            cut = [0, max(1, K // 4), K] if K > 64 else [0, K]
            for a, b in itertools.pairwise(cut):
                ctx.chunks.append((np.ascontiguousarray(minv[a:b].transpose(1, 0, 2).reshape(-1, m)),
                                   np.ascontiguousarray(off[a:b].T.reshape(-1)),
                                   np.ascontiguousarray(hi[a:b].T), a))
            # dual vertices mu_k = B_k^-T c_k and the dual objective's constant: the primal
            # value of cell k's basic solution is mu_k' y - h_k (see _locate)
            cost = self.cost
            mu = np.einsum("kji,kj->ki", minv, cost[idx])
            h = np.einsum("ki,ki->k", mu, up_u @ B.T) - up_u @ cost
            ctx.dual_T = np.ascontiguousarray(np.vstack([mu.T, -h[None, :]]))
            # point-location tiers: the biggest cells first (any cell whose certificate
            # holds is optimal, so a hit in a tier needs no look at the rest)
            # (a small table is one tier: all of it; a prefix of more than half the table
            # costs about as much as the whole: none)
            sizes = [c for c in (max(LOCATE_TIER_MIN, K // 10), max(4 * LOCATE_TIER_MIN, (2 * K) // 5)) if c <= K // 2]
            ctx.tiers_partial = bool(sizes)
            ctx.loc_tiers = [np.ascontiguousarray(ctx.dual_T[:, :c]) for c in sizes] or [ctx.dual_T]
            # affine map of every cell on the healthy thrusters, in fractions of full
            # thrust: u / u_max = U_k y - o_k, stored augmented as [U_k | -o_k] @ [y; 1];
            # the cell contains y when every fraction is in [0, 1]
            rows = np.arange(K)[:, None]
            U = np.zeros((K, n_act, m))
            U[rows, ctx.cells_idx_act, :] = minv
            o = -ctx.cells_up.copy()
            o[rows, ctx.cells_idx_act] = off
            inv_hi = 1.0 / ctx.u_max_act
            ctx.cell_Ua = np.ascontiguousarray(
                np.concatenate([U, -o[:, :, None]], axis=2) * inv_hi[None, :, None])
            if not ctx.has_open:  # (stuck open: the demand needs its offset first)
                tol_f = 1e-12  # ctx.tol_u as a fraction of full thrust
                # (the last two: output buffers of the two products, reused every call)
                ctx.fast = (ctx.ya[:-1], ctx.ya, list(ctx.cell_Ua), ctx.loc_tiers[0], ctx.u_max_act,
                            -tol_f, 1.0 + tol_f, ctx.over, np.empty(ctx.loc_tiers[0].shape[1]),
                            np.empty(n_act))
        # ---- facets of the healthy zonotope (normals, support values, start points)
        fac = self._facets
        ctx.fac_T = None
        ctx.fac_buf = np.empty(0)
        ctx.facet_u0, ctx.facet_side0, ctx.facet_mask = [], [], []
        ctx.facet_upx = np.zeros((0, n_act))
        if fac.idx.shape[0] and K:
            fsel = np.all(active[fac.idx], axis=1)
            N_ = fac.normal[fsel]
            s = N_ @ ctx.B_act  # (F, n_act)
            fidx = fac.idx[fsel]
            F = fidx.shape[0]
            inplane = np.zeros_like(s, dtype=bool)
            inplane[np.arange(F)[:, None], pos[fidx]] = True
            up_f = (s > 0) & ~inplane
            h = np.where(up_f, s, 0.0) @ ctx.u_max_act
            scale = np.linalg.norm(N_ / self.axis_weights[None, :], axis=1)
            ctx.facet_idx_act = pos[fidx]
            ctx.facet_up = np.where(up_f, ctx.u_max_act[None, :], 0.0)
            ctx.facet_pinv = fac.pinv_w[fsel]
            # scaled normals and support values, augmented: facet f violated when > 0
            ctx.fac_T = np.ascontiguousarray(np.vstack([(N_ / scale[:, None]).T, -(h / scale)[None, :]]))
            ctx.fac_buf = np.empty(F)
            # simple facet: no other healthy thruster in its plane (unique minimiser there)
            col = np.linalg.norm(ctx.B_act, axis=0)
            ctx.fac_simple = ~np.any((np.abs(s) <= 1e-9 * col[None, :]) & ~inplane, axis=1)
            # projection-region coordinates [t; u_max_S - t; s] = Q_f y - q_f
            P = fac.P[fsel]
            Pt, Ps = P[:, : m - 1, :], P[:, m - 1 :, :]
            Q = np.concatenate([Pt, -Pt, Ps], axis=1)
            v = ctx.facet_up @ ctx.B_act.T  # (F, m) vertex of each facet pattern
            ctx.facet_v = v
            ctx.facet_S = ctx.facet_idx_act.tolist()
            ctx.facet_side = np.where(up_f, 1.0, -1.0)
            q = np.einsum("fij,fj->fi", Q, v)
            q[:, m - 1 : 2 * m - 2] -= ctx.u_max_act[ctx.facet_idx_act]
            ctx.fac_Q, ctx.fac_q = np.ascontiguousarray(Q), np.ascontiguousarray(q)
            # starts of the fused active set (_solve_kkt): the facet's vertex pattern with
            # its spanning thrusters free (at 0, their pattern value)
            side0 = ctx.facet_side.copy()
            side0[np.arange(F)[:, None], ctx.facet_idx_act] = 0.0
            ctx.facet_u0 = ctx.facet_up.tolist()
            ctx.facet_side0 = side0.tolist()
            ctx.facet_mask = [sum(1 << i for i in S) for S in ctx.facet_S]
            ctx.facet_upx = up_f.astype(float)
        # ---- least-squares stage matrices on the healthy columns
        w = self.axis_weights
        A_all = w[:, None] * ctx.B_act
        ctx.A_all = A_all
        ctx.G = A_all.T @ A_all
        ctx.g_scale = float(np.linalg.norm(ctx.G)) * float(ctx.u_max_act.max()) if ctx.u_max_act.size else 1.0
        ctx.f_tol = 1e-12 * ctx.g_scale
        ctx.A_all_T = np.ascontiguousarray(A_all.T)
        ctx.u_max_list = ctx.u_max_act.tolist()
        ctx.sub_pinv = _subset_pinv_table(A_all)
        ctx.kkt = _kkt_table(A_all, w, ctx.u_max_act, ctx.sub_pinv)
        ctx.kkt_x = np.zeros(m + n_act)
        ctx.w_list = w.tolist()
        ctx.g_diag = np.diag(ctx.G).tolist()
        ctx.groups_A, ctx.groups_rows, ctx.prefix_E = [], [], []
        prev: list[int] = []
        for g in self.axis_priorities:
            rows_g = list(g)
            ctx.groups_rows.append(np.array(rows_g))
            ctx.groups_A.append(w[rows_g, None] * ctx.B_act[rows_g])
            ctx.prefix_E.append(ctx.B_act[prev] if prev else None)
            prev = prev + rows_g
        ctx.kkt_one = ctx.kkt is not None and len(ctx.groups_A) == 1
        ctx.result_src = (self.B, ctx.sat_thr, self._weights)
        self._contexts[key] = ctx
        return ctx

    # ---------------------------------------------------------------- per tick

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
            Thrusts minimising the (prioritised) weighted wrench error, and among those the
            least total thrust; achieved and unallocated wrench, saturation flags and the
            weighted error derived from them at first access (same values).

        Raises
        ------
        ValueError
            Wrong shape or a non-finite demand.

        Notes
        -----
        Paths, cheapest first (each returns only with an optimality certificate, otherwise
        the next one runs): the last tick's cell; the dual-vertex argmax over the cells
        (feasible demand); the most violated facet's projection region (demand outside the
        attainable set, projection inside a facet); the warm-started active set followed by
        the least-thrust point location at the achieved wrench.
        """
        tau = np.asarray(wrench, _F64)  # (the dtype object: no conversion of ``float``)
        if tau.shape != self._shape:
            self._bad_wrench()
        tl = tau.tolist()
        # (a finite sum has only finite terms; an infinite one may be an overflow: then
        # each term is tested)
        if not _isfinite(sum(tl)) and not all(map(_isfinite, tl)):
            self._bad_wrench()
        # the result keeps the demand: our own array, else (the caller's array) its floats
        dem = tl if tau is wrench else tau
        ctx = self._ctx
        stats = self.stats
        stats["calls"] += 1
        fast = ctx.fast
        u_act = None
        if fast is not None:
            # the per-tick path, inlined: point location by the last tick's cell, then the
            # first tier (the biggest cells); a cell whose fractions are all in [0, 1] is
            # optimal (_locate), its thrusts as in _thrust (the bounds' test reuses lo, hi)
            # (the bounds' test on a list: one sorted() of a few Python floats beats two
            # numpy reductions, and min()/max(); the values are the same)
            y, ya, cells, tier, u_max, lo_f, hi_f, over, d_buf, v_buf = fast
            y[...] = tau
            v = None
            if ctx.warm_ok:
                v = cells[ctx.last_cell].dot(ya, v_buf)
                vl = sorted(v.tolist())
                lo, hi = vl[0], vl[-1]
                if lo >= lo_f and hi <= hi_f:
                    stats["warm_hits"] += 1
                else:
                    ctx.warm_ok = False
                    v = None
            if v is None:
                d = ya.dot(tier, d_buf)
                k = d.argmax()
                # the best cell's fractions first: all in [0, 1] (up to lo_f, hi_f) is a
                # feasible point whose cost is the cell's dual value, so d[k] <= over holds
                # there (over's margin is far above the products' rounding) and only a
                # miss needs the weak-duality test
                v = cells[k].dot(ya, v_buf)
                vl = sorted(v.tolist())
                lo, hi = vl[0], vl[-1]
                if lo >= lo_f and hi <= hi_f:
                    ctx.warm_ok = k == ctx.last_cell
                    ctx.last_cell = k
                else:
                    v = None
                    if d[k] > over:
                        # a dual value above any feasible demand's least cost: outside the
                        # attainable set (no cell can hold it), straight to the outside
                        # path (the most violated facet starts the fused active set)
                        f_out = self._screen(ctx, ya)
                        if f_out >= 0 and ctx.kkt_one:
                            u_act = self._solve_infeasible(ctx, tau, f_out)
                        else:
                            u_act = self._outside(ctx, tau, f_out)
            if v is not None:
                stats["cell_hits"] += 1
                if not (lo >= 0.0 and hi <= 1.0):  # rounding-level excess only
                    np.clip(v, 0.0, 1.0, out=v)
                u_act = v * u_max
            elif u_act is None:
                # the first tier missed: a demand outside the attainable set (a violated
                # facet) skips the bigger tiers; then the rest of the table, then the
                # outside paths
                facet = None
                if ctx.tiers_partial:
                    facet = self._screen(ctx, ya)
                    if facet >= 0:
                        u_act = self._outside(ctx, tau, facet)
                if u_act is None:  # screened once: no violated facet is handed on as -1
                    u_act = self._cell_or_outside(ctx, tau, rest=True, facet=facet)
            if ctx.full:
                # AllocationResult._deferred, inlined (the per-tick path; keep in step)
                r = _new_object(AllocationResult)
                r.thrust_n = u_act
                r._achieved = r._unallocated = r._saturated = r._error = None
                r._demand = dem
                r._src = ctx.result_src
                return r
        else:
            # the stuck-open forces: the demand needs their wrench subtracted first
            tau_h = tau - ctx.open_wrench if ctx.has_open else tau
            u_act = self._cell_or_outside(ctx, tau_h, tiers=True)
        if ctx.full:
            u = u_act
        else:
            u = ctx.open_thrust.copy()
            u[ctx.act_idx] = u_act
        return AllocationResult._deferred(u, dem, ctx.result_src)

    def _cell_or_outside(self, ctx: _Context, y: np.ndarray, *, tiers: bool = False,
                         rest: bool = False, facet: int | None = None) -> np.ndarray:
        """Return the exact thrusts (N, shape (m,)) for the demand ``y`` (shape (n,)).

        The cell search of :meth:`_locate` (``tiers``/``rest`` as there; a hit counted in
        ``stats["cell_hits"]``), else the outside path (:meth:`_outside`: the demand is not
        attainable, the bounded least-squares answer; ``facet`` as there: the caller's
        screen of ``y``, or None to screen).
        """
        u = self._locate(ctx, y, ctx.tol_u, True, tiers=tiers, rest=rest)
        if u is None:
            return self._outside(ctx, y, facet)
        self.stats["cell_hits"] += 1
        return u

    def _bad_wrench(self) -> None:
        m = self._shape[0]
        raise ValueError(f"wrench must be {m} finite values ({', '.join(axis_names(m))})")

    def _locate(self, ctx: _Context, y: np.ndarray, tol: float, track: bool,
                tiers: bool = False, rest: bool = False) -> np.ndarray | None:
        """Least-thrust solution of ``B u = y`` by point location in the cell table, or None.

        The optimal cell is the one whose dual vertex ``mu_k`` maximises the dual objective
        ``y' mu_k - h_k`` (LP duality: for every basis the primal value of its basic solution
        equals that dual value, and a primal-feasible basis is optimal, so any cell whose
        certificate holds is optimal). One matrix-vector product over the whole table finds
        it; exact ties (bases sharing a degenerate dual vertex) are all tried. Returns the
        healthy thrusts (clipped into the bounds, violation at most ``tol`` N) or None when
        no cell contains ``y`` (then ``y`` is outside the attainable set, up to rounding).
        A dual value above ``ctx.over`` (weak duality: above the least cost of any demand
        inside the attainable set) returns None at once. With ``tiers``, the last tick's
        cell and the first volume-sorted prefix of the table (``loc_tiers[0]``) are tried
        first (``allocate`` inlines that for the healthy thrusters without a stuck-open
        one); with ``tiers`` or ``rest`` the other prefixes are tried before the whole
        table. ``track`` records the cell for the next tick's warm start.
        """
        if ctx.n_cells == 0:
            return None
        Ua = ctx.cell_Ua
        ya = ctx.ya
        ya[:-1] = y
        tol_f = tol * ctx.inv_u_max_max  # N -> fraction of full thrust
        if tiers:
            if track and ctx.warm_ok:
                v = Ua[ctx.last_cell].dot(ya)
                vl = v.tolist()
                if min(vl) >= -tol_f and max(vl) <= 1.0 + tol_f:
                    self.stats["warm_hits"] += 1
                    return self._thrust(ctx, v)
                ctx.warm_ok = False
        over = ctx.over
        if (tiers or rest) and ctx.tiers_partial:
            for i, T in enumerate(ctx.loc_tiers):
                if i == 0 and not tiers:
                    continue  # allocate tried it
                d = ya.dot(T)
                k = d.argmax()
                if d[k] > over:
                    return None
                v = Ua[k].dot(ya)
                vl = v.tolist()
                if min(vl) >= -tol_f and max(vl) <= 1.0 + tol_f:
                    if track:
                        ctx.warm_ok = k == ctx.last_cell
                        ctx.last_cell = k
                    return self._thrust(ctx, v)
        V = ya.dot(ctx.dual_T)
        k = int(V.argmax())
        vk = float(V[k])
        if vk > over:
            return None
        v = Ua[k].dot(ya)
        if not (v[v.argmin()] >= -tol_f and v[v.argmax()] <= 1.0 + tol_f):
            cand = np.flatnonzero(V >= vk - 1e-9 * (abs(vk) + ctx.v_scale))
            if cand.shape[0] == 1 or cand.shape[0] > 64:
                return None
            Z = Ua[cand].dot(ya)
            viol = np.maximum(-Z.min(axis=1), Z.max(axis=1) - 1.0)
            j = int(viol.argmin())
            if viol[j] > tol_f:
                return None
            k, v = int(cand[j]), Z[j]
        if track:
            ctx.warm_ok = k == ctx.last_cell
            ctx.last_cell = k
        return self._thrust(ctx, v)

    @staticmethod
    def _screen(ctx: _Context, ya: np.ndarray) -> int:
        """Most violated facet of the attainable set at ``ya = [y; 1]``, or -1 when none is violated."""
        if ctx.fac_T is None:
            return -1
        Vf = ya.dot(ctx.fac_T, ctx.fac_buf)  # (the same cblas call as without ``out``)
        f = int(Vf.argmax())
        return f if Vf[f] > ctx.f_tol else -1

    @staticmethod
    def _thrust(ctx: _Context, v: np.ndarray) -> np.ndarray:
        """Thrusts (N) from fractions of full thrust, clipped into [0, u_max].

        A fraction in [0, 1] times ``u_max`` stays in ``[0, u_max]`` under IEEE rounding, so
        only a rounding-level violation (within the caller's tolerance) needs the clip.
        """
        if v[v.argmin()] < 0.0 or v[v.argmax()] > 1.0:
            np.clip(v, 0.0, 1.0, out=v)
        u: np.ndarray = v * ctx.u_max_act
        return u

    def _outside(self, ctx: _Context, tau_h: np.ndarray, facet: int | None = None) -> np.ndarray:
        """Demand outside the attainable set (or at its rim): facet region, else active set.

        The most violated facet (``facet``: the caller's :meth:`_screen` at ``tau_h``, or
        None to screen here) is the start. With the fused tables (``ctx.kkt``) the facet's
        projection region is the first iteration of :meth:`_solve_kkt`.
        """
        if facet is None:
            ya = ctx.ya
            ya[:-1] = tau_h
            facet = self._screen(ctx, ya)
        if facet >= 0 and ctx.kkt_one:  # (the common case: the fused active set)
            return self._solve_infeasible(ctx, tau_h, facet)
        if facet < 0 and ctx.fac_T is not None:
            # inside every facet: a rounding edge of the point location
            u = self._search_all(ctx, tau_h, 1e-12)
            if u is not None:
                self.stats["cell_hits"] += 1
                return u
        if facet >= 0 and ctx.kkt is None and len(ctx.groups_A) == 1 and ctx.fac_simple[facet]:
            u = self._facet_solution(ctx, facet, tau_h)
            if u is not None:
                return u
        return self._solve_infeasible(ctx, tau_h, facet)

    def _facet_solution(self, ctx: _Context, f: int, y: np.ndarray) -> np.ndarray | None:
        """Thrusts when the weighted projection of ``y`` lies on facet ``f`` (else None).

        With ``y = v_f + B_S t + s W^-2 n_f`` (``v_f`` the facet's vertex thrust pattern,
        ``S`` its m-1 spanning thrusters, ``n_f`` its outward normal), ``0 <= t <= u_max_S``
        and ``s >= 0`` are the KKT conditions of the weighted least-squares problem: the
        residual ``s W^-2 n_f`` makes the gradient ``-s B' n_f`` push every other thruster
        against the bound it sits on. On a facet with no other thruster in its plane
        ("simple") the minimiser is unique, so it is also the least-thrust one.
        """
        c = ctx.fac_Q[f] @ y - ctx.fac_q[f]
        if c.min() < -ctx.tol_u:
            return None
        self.stats["facet_hits"] += 1
        m1 = c.shape[0] // 2
        S = ctx.facet_idx_act[f]
        u: np.ndarray = ctx.facet_up[f].copy()
        t = c[:m1]
        np.maximum(t, 0.0, out=t)
        np.minimum(t, ctx.u_max_act[S], out=t)
        u[S] = t
        return u

    def _search_all(self, ctx: _Context, y: np.ndarray, rtol: float) -> np.ndarray | None:
        """Least-violated cell over the whole table (robust point location, no tie logic)."""
        if ctx.n_cells == 0:
            return None
        for M, off, hi_c, start in ctx.chunks:
            k, v, ub = _search_chunk(M, off, hi_c, y)
            if v <= rtol * float(hi_c[:, k].max()):
                return self._cell_solution(ctx, k + start, ub)
        return None

    def _cell_solution(self, ctx: _Context, k: int, ub: np.ndarray) -> np.ndarray:
        u: np.ndarray = ctx.cells_up[k].copy()
        hi = ctx.cells_hi[k]
        u[ctx.cells_idx_act[k]] = np.minimum(np.maximum(ub, 0.0), hi)
        return u

    @staticmethod
    def _start_point(ctx: _Context, y: np.ndarray, facet: int) -> tuple[list[float], np.ndarray, int]:
        """Start of the active set: the most violated facet's vertex, facet thrusters free.

        The facet's spanning thrusters sit at their plane coordinates of ``y`` (clipped into
        their bounds), the others at the facet's vertex pattern. Returns ``(u, side, mask)``:
        thrusts (list, N), bound state (-1 lower, +1 upper, 0 free) and the bit mask of the
        free thrusters (independent columns). Without a facet (``facet < 0``) all at 0.
        Python floats: at most m - 1 thrusters are placed (cheaper than numpy calls).
        """
        n_act = ctx.act_idx.shape[0]
        if facet < 0:
            return [0.0] * n_act, np.full(n_act, -1.0), 0
        ul = ctx.facet_up[facet].tolist()
        side = ctx.facet_side[facet].copy()
        t = ctx.facet_pinv[facet].dot(y - ctx.facet_v[facet]).tolist()
        mask = 0
        for j, i in enumerate(ctx.facet_S[facet]):
            tj = t[j]
            if tj <= 0.0:
                ul[i] = 0.0
                side[i] = -1.0
            elif tj >= ctx.u_max_list[i]:
                ul[i] = ctx.u_max_list[i]
                side[i] = 1.0
            else:
                ul[i] = tj
                side[i] = 0.0
                mask |= 1 << i
        return ul, side, mask

    @staticmethod
    def _lsq_unique(ctx: _Context, g: np.ndarray, free: np.ndarray, g_zero: float) -> bool:
        """Tell whether the bounded least-squares minimiser (gradient ``g``, free set ``free``) is unique.

        Minimisers differ only on zero-gradient thrusters (``|g| <= g_zero``): unique when
        those, with the free ones, have independent columns (then no least-thrust stage is
        needed). The free columns alone are independent (Lawson-Hanson invariant); otherwise
        the set is looked up in the subset table, or its rank computed when untabulated.
        """
        zero = free | (np.abs(g) <= g_zero)
        if not (zero & ~free).any():
            return True
        if ctx.sub_pinv is not None:
            return sum(1 << i for i in np.flatnonzero(zero).tolist()) in ctx.sub_pinv
        nz = int(zero.sum())
        return nz <= ctx.B_act.shape[0] and int(np.linalg.matrix_rank(ctx.B_act[:, zero])) == nz

    def _solve_kkt(self, ctx: _Context, tau_h: np.ndarray, facet: int) -> tuple[np.ndarray, bool, bool]:
        """Weighted bounded least squares by the fused active set (single priority group).

        Starts at facet ``facet``'s vertex pattern with its spanning thrusters free (the
        first iteration is then the facet's closed-form projection region), or at all
        thrusters off (``facet < 0``), and runs :func:`_bvls_kkt`.

        Returns
        -------
        (u, converged, unique)
            Healthy thrusts (N), whether the KKT test passed, and whether the minimiser is
            unique (the thrusters with a zero gradient, with the free ones, have independent
            columns; otherwise the least-thrust stage must run).
        """
        kkt = ctx.kkt
        assert kkt is not None
        w = ctx.w_list
        m = len(w)
        n_act = len(ctx.u_max_list)
        x = ctx.kkt_x
        x[:m] = tau_h
        tl = tau_h.tolist()
        b_scale = ctx.g_scale + max(map(abs, tl if self._unit_weights else map(_mul, w, tl)))
        if facet >= 0 and (mask := ctx.facet_mask[facet]) in kkt:
            u = ctx.facet_u0[facet][:]
            side = ctx.facet_side0[facet][:]
            x[m:] = ctx.facet_upx[facet]
        else:
            u, side, mask = [0.0] * n_act, [-1.0] * n_act, 0
            x[m:] = 0.0
        u, side, viol, mask, ok, its = _bvls_kkt(kkt, x, m, ctx.u_max_list, ctx.g_diag, u, side, mask,
                                                 1e-11 * b_scale, 10 * n_act + 30, facet >= 0)
        stats = self.stats
        if its == 1 and ok and facet >= 0:
            stats["facet_hits"] += 1
        else:
            stats["active_set_calls"] += 1
            stats["active_set_iterations"] += its
        # (np.fromiter: the same float64 values as np.array(u), fewer instructions)
        ua = np.fromiter(u, float, n_act)
        if not ok:
            return ua, False, False
        # converged: every multiplier test g_i * side_i is <= 1e-11 b_scale, the free ones
        # exactly 0; a bound thruster with |g_i| <= 1e-9 b_scale has a zero gradient
        g_zero = -1e-9 * b_scale
        if sum(map(g_zero.__le__, viol)) == mask.bit_count():
            return ua, True, True
        zero = mask
        for i, v in enumerate(viol):
            if v >= g_zero:
                zero |= 1 << i
        return ua, True, zero in kkt

    def _solve_infeasible(self, ctx: _Context, tau_h: np.ndarray, facet: int) -> np.ndarray:
        """Demand outside the attainable set: staged least squares, then least thrust."""
        if ctx.kkt_one:
            u, ok, unique = self._solve_kkt(ctx, tau_h, facet)
            if unique:
                return u
        n_act = ctx.act_idx.shape[0]
        lo = np.zeros(n_act)
        hi = ctx.u_max_act
        w = self.axis_weights
        if len(ctx.groups_A) == 1 and ctx.kkt is not None:
            if not ok:
                self.stats["not_converged"] += 1
                u, ok, its = solve_bounded_lsq(ctx.A_all, w * tau_h, lo, hi, u)
                self.stats["active_set_iterations"] += its
                if not ok:
                    self.stats["not_converged"] += 1
        elif len(ctx.groups_A) == 1:
            self.stats["active_set_calls"] += 1
            ul, side, mask = self._start_point(ctx, tau_h, facet)
            b = w * tau_h
            b_scale = ctx.g_scale + float(np.abs(b).max())
            if ctx.sub_pinv is not None:
                u, side, g, ok, its = _bvls_table(ctx.A_all, ctx.A_all_T, b, ctx.u_max_list, ul, side, mask,
                                                  1e-11 * b_scale, ctx.sub_pinv, 10 * n_act + 30)
                free = side == 0.0
            else:
                h = ctx.A_all_T.dot(b)
                u, free, ok, its = _bvls_gram(ctx.G, h, hi, np.array(ul), side == 0.0, 1e-11 * b_scale)
                g = ctx.G @ u - h
            self.stats["active_set_iterations"] += its
            if ok:
                if self._lsq_unique(ctx, g, free, 1e-9 * b_scale):
                    return u
            else:
                self.stats["not_converged"] += 1
                u, ok, its = solve_bounded_lsq(ctx.A_all, b, lo, hi, u)
                self.stats["active_set_iterations"] += its
                if not ok:
                    self.stats["not_converged"] += 1
        else:
            self.stats["active_set_calls"] += 1
            u = np.array(self._start_point(ctx, tau_h, facet)[0])
            for A, rows, E in zip(ctx.groups_A, ctx.groups_rows, ctx.prefix_E, strict=True):
                u, ok, its = solve_bounded_lsq(A, w[rows] * tau_h[rows], lo, hi, u, E=E)
                self.stats["active_set_iterations"] += its
                if not ok:
                    self.stats["not_converged"] += 1
        self.stats["lp_after_lsq"] += 1
        y = ctx.B_act.dot(u)
        u2 = self._locate(ctx, y, 1e3 * ctx.tol_u, False)
        if u2 is None:
            u2 = self._search_all(ctx, y, 1e-9)
        if u2 is not None:
            return u2
        self.stats["lp_fallbacks"] += 1
        u, ok, its = solve_bounded_lsq(None, None, lo, hi, u, c=self.cost[ctx.act_idx], E=ctx.B_act)
        self.stats["active_set_iterations"] += its
        if not ok:
            self.stats["not_converged"] += 1
        return u



def _step_to_bound(u: list[float], hi: list[float], free: list[int], z: list[float]) -> float:
    """Return the Lawson-Hanson step length towards the subspace minimiser (ratio test).

    Parameters
    ----------
    u, hi : list of float, shape (n,)
        Current thrusts and their upper bounds, N (the lower bounds are 0).
    free : list of int, shape (f,)
        Indices of the free thrusters.
    z : list of float, shape (>= f,)
        The subspace minimiser's thrusts of the free thrusters, N, in ``free``'s order.

    Returns
    -------
    float
        The largest ``alpha`` in (0, 1] with ``u + alpha (z - u)`` within ``[0, hi]`` on
        the free thrusters; 1.0 when ``z`` is feasible (Lawson & Hanson 1974, ch. 23).
    """
    alpha = 1.0
    for j, i in enumerate(free):
        zj = z[j]
        if zj < 0.0:
            a_ = u[i] / (u[i] - zj)
        elif zj > hi[i]:
            a_ = (hi[i] - u[i]) / (zj - u[i])
        else:
            continue
        if a_ < alpha:
            alpha = a_
    return alpha


def _step_leaving_bounds(u: list[float], hi: list[float], free: list[int], z: list[float], alpha: float,
                         side: list[float] | np.ndarray, mask: int, x: np.ndarray | None = None, m: int = 0) -> int:
    """Step the free thrusters towards ``z`` by ``alpha``; those reaching a bound leave the free set.

    Lawson & Hanson 1974, ch. 23 (the step of the primal active-set method): ``u_i += alpha
    (z_i - u_i)`` on the free thrusters, except those whose own ratio is within
    ``alpha (1 + 1e-12)``: they are set exactly on their bound (0 or ``hi_i``), their
    ``side`` to -1 or +1 and their bit cleared from ``mask``.

    Parameters
    ----------
    u, hi : list of float, shape (n,)
        Current thrusts (modified in place) and their upper bounds, N.
    free : list of int, shape (f,)
        Indices of the free thrusters.
    z : list of float, shape (>= f,)
        The subspace minimiser's thrusts of the free thrusters, N, in ``free``'s order.
    alpha : float
        The step, :func:`_step_to_bound`'s answer (< 1).
    side : list of float or numpy.ndarray, shape (n,)
        -1 at the lower bound, +1 at the upper bound, 0 free; modified in place.
    mask : int
        Bit mask of the free thrusters.
    x : numpy.ndarray, shape (m + n,), optional
        :func:`_bvls_kkt`'s ``[tau; 1 at u_max]``: a thruster reaching ``hi`` sets its
        entry ``x[m + i]`` to 1.
    m : int, optional
        Wrench rows in ``x``.

    Returns
    -------
    int
        The free set's new bit mask.
    """
    thr = alpha * (1.0 + 1e-12) + 1e-300
    for j, i in enumerate(free):
        zj, ui = z[j], u[i]
        if zj < 0.0 and ui / (ui - zj) <= thr:
            u[i] = 0.0
            side[i] = -1.0
            mask &= ~(1 << i)
        elif zj > hi[i] and (hi[i] - ui) / (zj - ui) <= thr:
            u[i] = hi[i]
            side[i] = 1.0
            mask &= ~(1 << i)
            if x is not None:
                x[m + i] = 1.0
        else:
            u[i] = ui + alpha * (zj - ui)
    return mask


def _bvls_kkt(
    table: dict[int, tuple[list[int], np.ndarray]], x: np.ndarray, m: int, hi: list[float], gdiag: list[float],
    u: list[float], side: list[float], mask: int, g_tol: float, max_iter: int, clip: bool,
) -> tuple[list[float], list[float], list[float], int, bool, int]:
    """Bounded least squares ``min ||A u - W tau||, 0 <= u <= hi``: one product per iteration.

    The Lawson-Hanson iteration (Lawson & Hanson 1974, ch. 23; two-sided bounds as in
    Stark & Parker 1995) on the fused matrices of :func:`_kkt_table`: for the free set
    ``F`` (bit mask ``mask``) and the bound state coded in ``x = [tau; 1_U]``, one product
    ``K_F x`` gives the subspace minimiser ``z`` of the free thrusters and the gradient
    ``g`` at that point. Every thruster outside ``F`` sits exactly on a bound, so ``x``
    describes the whole iterate but the free thrusters' current values (kept in ``u``, the
    start of the step towards ``z``). The bookkeeping runs on Python floats; the ratio test
    and the step (:func:`_step_to_bound`, :func:`_step_leaving_bounds`) are shared with
    :func:`_bvls_table`.

    The answer depends only on the final free set and bound pattern (the free thrusters are
    ``K_F x`` of that set, the bound ones exactly 0 or ``hi``), not on the path to it.

    Parameters
    ----------
    table : dict
        :func:`_kkt_table` of the weighted problem.
    x : numpy.ndarray, shape (m + n,)
        ``[tau; 1 where the thruster is at its upper bound]``; modified in place.
    m : int
        Number of wrench axes.
    hi : list of float, length n
        Upper bounds (N).
    gdiag : list of float, length n
        Diagonal of ``A'A`` (a thruster's own curvature).
    u : list of float, length n
        Feasible start (every thruster outside ``F`` on the bound ``side`` names).
    side : list of float, length n
        -1 at the lower bound, +1 at the upper bound, 0 free.
    mask : int
        Bit mask of the free thrusters (independent columns).
    g_tol : float
        Multiplier tolerance of the optimality test.
    max_iter : int
        Iteration cap.
    clip : bool
        Make the first subspace minimiser feasible by clipping (a start point, as
        :meth:`ExactAllocator._start_point` clips the facet coordinates) instead of a step.

    Returns
    -------
    (u, side, viol, mask, converged, iterations)
        Thrusts (N), bound state, multiplier tests ``g_i * side_i`` at ``u`` (when
        converged; 0 for the free thrusters, ``g`` the gradient), free set, whether
        the KKT test passed, iterations. Not converged also when a free set is missing from
        the table (dependent columns through rounding) or the cap is reached.
    """
    get = table.get
    it = 0
    while True:
        it += 1
        ent = get(mask)
        if ent is None or it > max_iter:
            return u, side, [], mask, False, it
        Fl, K = ent
        out = K.dot(x).tolist()
        nf = len(Fl)
        alpha = _step_to_bound(u, hi, Fl, out)  # the largest step towards z in the bounds
        if alpha < 1.0:
            if clip:
                # the start: clip the first subspace minimiser into the bounds; the
                # thrusters clipped leave F (only when the step would stop short: a
                # minimiser whose ratio rounds to 1.0 is taken as it is, as before)
                for j in range(nf):
                    i = Fl[j]
                    zj = out[j]
                    if zj < 0.0:
                        u[i] = 0.0
                        side[i] = -1.0
                        mask &= ~(1 << i)
                    elif zj > hi[i]:
                        u[i] = hi[i]
                        side[i] = 1.0
                        mask &= ~(1 << i)
                        x[m + i] = 1.0
                    else:
                        u[i] = zj
            else:
                mask = _step_leaving_bounds(u, hi, Fl, out, alpha, side, mask, x, m)
            clip = False
            continue
        clip = False
        for j in range(nf):
            u[Fl[j]] = out[j]
        # bound multipliers: a thruster on a bound whose gradient points inwards is freed
        viol = list(map(_mul, out[nf:], side))
        top = max(viol)
        if top <= g_tol:
            return u, side, viol, mask, True, it
        k = viol.index(top)
        if top >= hi[k] * gdiag[k]:
            # the thruster's own minimiser (the others held) lies beyond its other bound,
            # -g_k / G_kk past it: move it there (a strict descent, like a step) instead of
            # freeing it and stepping back onto that bound in the next iteration
            if side[k] > 0.0:
                u[k] = 0.0
                side[k] = -1.0
                x[m + k] = 0.0
            else:
                u[k] = hi[k]
                side[k] = 1.0
                x[m + k] = 1.0
            continue
        mask |= 1 << k
        if side[k] > 0.0:
            x[m + k] = 0.0
        side[k] = 0.0


def _bvls_table(
    A: np.ndarray, AT: np.ndarray, b: np.ndarray, hi: list[float], u: list[float], side: np.ndarray, mask: int,
    g_tol: float, table: dict[int, tuple[np.ndarray, list[int], np.ndarray]], max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, int]:
    """Bounded least squares ``min ||A u - b||, 0 <= u <= hi`` with tabulated subspace solves.

    The Lawson-Hanson iteration of :func:`_bvls_gram` (two-sided bounds as in Stark &
    Parker 1995), with each subspace minimiser ``pinv(A_F) (b - A u_fixed)`` looked up by
    the free set's bit mask (:func:`_subset_pinv_table`) instead of solved; the small
    per-thruster bookkeeping runs on Python floats (at most m free thrusters), the
    products with ``A`` on numpy.

    Parameters
    ----------
    A, AT : numpy.ndarray, shapes (m, n) and (n, m)
        Weighted effectiveness ``W B`` and its transpose (contiguous).
    b : numpy.ndarray, shape (m,)
        Weighted demand ``W tau``.
    hi : list of float, length n
        Upper bounds (N).
    u : list of float, length n
        Feasible start, modified in place.
    side : numpy.ndarray, shape (n,)
        -1 at the lower bound, +1 at the upper bound, 0 free; modified in place.
    mask : int
        Bit mask of the free thrusters (independent columns).
    g_tol : float
        Multiplier tolerance of the optimality test.
    table : dict
        :func:`_subset_pinv_table` of ``A``.
    max_iter : int
        Iteration cap.

    Returns
    -------
    (u, side, g, converged, iterations)
        Thrusts (array), bound state, gradient ``A'(A u - b)`` at ``u`` (when converged),
        whether the KKT test passed, iterations. Not converged also when a free set is
        missing from the table (dependent columns through rounding).
    """
    it = 0
    while True:
        while mask:
            it += 1
            ent = table.get(mask)
            if ent is None or it > max_iter:
                return np.array(u), side, side, False, it
            F, Fl, P = ent
            ufix = np.array(u)
            ufix[F] = 0.0
            z = P.dot(b - A.dot(ufix)).tolist()
            alpha = _step_to_bound(u, hi, Fl, z)
            if alpha >= 1.0:
                for j, i in enumerate(Fl):
                    u[i] = z[j]
                break
            mask = _step_leaving_bounds(u, hi, Fl, z, alpha, side, mask)
        un = np.array(u)
        # bound multipliers: a thruster on a bound whose gradient points inwards is freed
        g = AT.dot(A.dot(un) - b)
        viol = g * side
        k = int(viol.argmax())
        if viol[k] <= g_tol or it > max_iter:
            return un, side, g, bool(viol[k] <= g_tol), it
        mask |= 1 << k
        side[k] = 0.0


def _solve_small(M: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """Solve a small SPD system (LAPACK gesv via numpy); None when singular."""
    try:
        z = np.linalg.solve(M, rhs)
    except np.linalg.LinAlgError:
        return None
    return z if np.isfinite(z).all() else None


def _bvls_gram(
    G: np.ndarray, h: np.ndarray, hi: np.ndarray, u: np.ndarray, free: np.ndarray, g_tol: float,
    max_iter: int | None = None,
) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Bounded least squares ``min 0.5 u'Gu - h'u, 0 <= u <= hi`` (Lawson-Hanson style).

    ``G = A'A`` and ``h = A'b`` (normal equations of the weighted problem). ``u`` is a
    feasible start whose ``free`` thrusters have linearly independent columns; every other
    thruster sits on a bound. The free set stays column-independent (Lawson & Hanson 1974,
    "Solving Least Squares Problems", ch. 23; Stark & Parker 1995 for two-sided bounds).
    Returns ``(u, free, converged, iterations)``.
    """
    n = u.shape[0]
    if max_iter is None:
        max_iter = 10 * n + 30
    u = u.copy()
    free = free.copy()
    it = 0
    while True:
        while True:
            it += 1
            if it > max_iter:
                return u, free, False, it
            F = free.nonzero()[0]
            nF = F.shape[0]
            if nF == 0:
                break
            rhs = h[F] - (G @ np.where(free, 0.0, u))[F]
            if nF == 1:
                f0 = F[0]
                if not G[f0, f0] > 0.0:
                    return u, free, False, it
                z = rhs / G[f0, f0]
            else:
                z = _solve_small(G[F[:, None], F], rhs)
                if z is None:
                    return u, free, False, it
            hF = hi[F]
            below = z < 0.0
            above = z > hF
            if not (below | above).any():
                u[F] = z
                break
            uF = u[F]
            dz = z - uF
            # dz < 0 where below (z < 0 <= u), dz > 0 where above (z > hi >= u): the
            # divisions never see a zero (no floating-point warnings to silence)
            d = np.where(below | above, dz, 1.0)
            ratio = np.where(below, -uF / d, np.where(above, (hF - uF) / d, np.inf))
            alpha = max(0.0, float(ratio.min()))
            uF = uF + alpha * dz
            hit = ratio <= alpha * (1 + 1e-12) + 1e-300
            hit_lo = below & hit
            hit_hi = above & hit
            uF[hit_lo] = 0.0
            uF[hit_hi] = hF[hit_hi]
            u[F] = uF
            free[F[hit_lo | hit_hi]] = False
        g = G @ u - h
        viol = np.where(u <= 0.0, -g, g)
        viol[free] = 0.0
        k = int(viol.argmax())
        if viol[k] <= g_tol:
            return u, free, True, it
        free[k] = True
