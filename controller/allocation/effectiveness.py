"""Effectiveness matrix of a thruster geometry, and the positive-span check (SAFETY.md K06).

Body frame: x forward, y left, z up (right-handed). A thruster at position ``r`` (m) pushing
the body along the unit vector ``d`` with thrust ``u`` (N) produces the force ``u d`` and the
moment ``u (r x d)`` about the body origin, so the effectiveness column is
``[d; r x d]`` (Newton-Euler; e.g. Fossen, "Handbook of Marine Craft Hydrodynamics and
Motion Control", 2011, section 12.3, thrust configuration matrix). Planar geometry keeps
``[Fx, Fy, Mz]`` with ``Mz = x d_y - y d_x``.

No I/O, no sleeping, no threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from controller.allocation.lsq import solve_bounded_lsq

__all__ = ["effectiveness", "check_positive_span", "axis_names"]

_PLANAR_AXES = ("Fx", "Fy", "Mz")
_SPATIAL_AXES = ("Fx", "Fy", "Fz", "Mx", "My", "Mz")


def axis_names(m: int) -> tuple[str, ...]:
    """Names of the wrench axes for a 3-row (planar) or 6-row (spatial) matrix.

    Parameters
    ----------
    m : int
        Number of wrench axes (rows of ``B``).

    Returns
    -------
    tuple of str
        ``("Fx", "Fy", "Mz")``, ``("Fx", "Fy", "Fz", "Mx", "My", "Mz")`` or ``("w0", ...)``.
    """
    if m == 3:
        return _PLANAR_AXES
    if m == 6:
        return _SPATIAL_AXES
    return tuple(f"w{i}" for i in range(m))


def effectiveness(positions_m: ArrayLike, force_dirs: ArrayLike) -> np.ndarray:
    """Effectiveness matrix ``B`` mapping thrusts (N) to the body wrench.

    Parameters
    ----------
    positions_m : array_like, shape (N, 2) or (N, 3)
        Thruster positions in the body frame (x forward, y left, z up), metres.
    force_dirs : array_like, shape (N, 2) or (N, 3)
        Direction of the force each thruster applies to the body, body frame; normalised
        here (any positive length).

    Returns
    -------
    numpy.ndarray
        ``(3, N)`` rows ``[Fx, Fy, Mz]`` for planar input (units N/N, N/N, N m/N), or
        ``(6, N)`` rows ``[Fx, Fy, Fz, Mx, My, Mz]`` for spatial input.

    Raises
    ------
    ValueError
        Shapes differ or are not (N, 2)/(N, 3) with N >= 1; a value is not finite; a force
        direction has (near) zero length.

    Notes
    -----
    Column ``i`` is ``[d_i; r_i x d_i]`` (moment of a force about the origin).
    """
    r = np.asarray(positions_m, dtype=float)
    d = np.asarray(force_dirs, dtype=float)
    if r.ndim != 2 or r.shape != d.shape or r.shape[1] not in (2, 3) or r.shape[0] < 1:
        raise ValueError(
            f"positions_m and force_dirs must both be (N, 2) or (N, 3), got {r.shape} and {d.shape}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(d))):
        raise ValueError("positions_m and force_dirs must be finite")
    norm = np.linalg.norm(d, axis=1)
    bad = np.flatnonzero(norm < 1e-12)
    if bad.size:
        raise ValueError(f"force_dirs of thruster(s) {bad.tolist()} has zero length")
    d = d / norm[:, None]
    if r.shape[1] == 2:
        mz = r[:, 0] * d[:, 1] - r[:, 1] * d[:, 0]
        return np.vstack([d[:, 0], d[:, 1], mz])
    return np.vstack([d.T, np.cross(r, d).T])


def check_positive_span(B: ArrayLike, axes: Sequence[int] | None = None) -> tuple[bool, str]:
    """Tell whether the geometry produces every wrench on ``axes`` with non-negative thrusts.

    Parameters
    ----------
    B : array_like, shape (m, N)
        Effectiveness matrix (see :func:`effectiveness`).
    axes : sequence of int, optional
        Wrench axes the controller needs (row indices of ``B``); default all. Wrench on the
        other axes is left uncontrolled.

    Returns
    -------
    ok : bool
        True when the columns of ``B[axes]`` span the axes' space positively.
    reason : str
        ``"spans ..."`` or the first failure: the rank deficit, or the signed axis
        directions (e.g. ``"+Fx"``) that no non-negative thrust combination produces.

    Raises
    ------
    ValueError
        ``B`` not 2-D, not finite, or an axis index out of range.

    Notes
    -----
    A finite set spans R^k positively iff its conic hull contains ``+e_j`` and ``-e_j`` for
    every axis ``j`` (a cone containing a basis and its negatives is the whole space; Davis
    1954, "Theory of positive linear dependence", Amer. J. Math. 76; equivalently rank k and
    a strictly positive null-space combination). Each of the 2k directions is tested
    exactly with non-negative least squares (our active-set solver, no upper bound): the
    direction is in the cone iff the residual is zero (relative 1e-9).
    """
    Bm = np.asarray(B, dtype=float)
    if Bm.ndim != 2 or not np.all(np.isfinite(Bm)):
        raise ValueError("B must be a finite 2-D (m, N) matrix")
    m, n = Bm.shape
    names = axis_names(m)
    ax = list(range(m)) if axes is None else [int(a) for a in axes]
    for a in ax:
        if not 0 <= a < m:
            raise ValueError(f"axis {a} out of range 0..{m - 1}")
    Bs = Bm[ax]
    k = len(ax)
    label = ", ".join(names[a] for a in ax)
    if k == 0:
        return True, "no axes required"
    rank = int(np.linalg.matrix_rank(Bs)) if n else 0
    if rank < k:
        return False, f"rank {rank} < {k}: the thrusters cannot produce some combination of {label}"
    scale = float(np.abs(Bs).max())
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    missing: list[str] = []
    for j, a in enumerate(ax):
        for sign, ch in ((1.0, "+"), (-1.0, "-")):
            target = np.zeros(k)
            target[j] = sign * scale
            u, _, _ = solve_bounded_lsq(Bs, target, lo, hi, np.zeros(n))
            if np.linalg.norm(Bs @ u - target) > 1e-9 * scale:
                missing.append(ch + names[a])
    if missing:
        return False, f"no non-negative thrust combination produces {', '.join(missing)}"
    return True, f"spans {label} positively"
