"""Bounded least squares (and the bounded LP), by a primal active-set method.

The solver the allocator's general path (:mod:`controller.allocation.exact`) and the
positive-span check (:mod:`controller.allocation.effectiveness`) share, with its
tolerances. It imports nothing else of the package, so both may import it.

No I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["solve_bounded_lsq"]

#: Relative singular-value cut-off of the row-space and null-space bases.
_ROW_RTOL = 1e-11


def _orth_rows(E: np.ndarray | None) -> np.ndarray | None:
    """Orthonormal basis (as rows) of the row space of ``E``; None when empty."""
    if E is None or E.size == 0:
        return None
    _, s, vt = np.linalg.svd(E, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return None
    rank = int(np.count_nonzero(s > _ROW_RTOL * s[0]))
    return vt[:rank]


def _null_basis(M: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the null space of ``M`` (q x f)."""
    f = M.shape[1]
    if M.shape[0] == 0:
        return np.eye(f)
    _, s, vt = np.linalg.svd(M, full_matrices=True)
    rank = int(np.count_nonzero(s > _ROW_RTOL * max(1.0, s[0] if s.size else 1.0)))
    basis: np.ndarray = vt[rank:].T
    return basis


def solve_bounded_lsq(
    A: np.ndarray | None,
    b: np.ndarray | None,
    lo: np.ndarray,
    hi: np.ndarray,
    u0: np.ndarray,
    *,
    c: np.ndarray | None = None,
    E: np.ndarray | None = None,
    max_iter: int | None = None,
) -> tuple[np.ndarray, bool, int]:
    """Primal active-set solver for bounded least squares or a bounded LP.

    Minimises ``0.5 * ||A u - b||^2`` (when ``A`` is given) or ``c @ u`` (when ``A`` is
    None) subject to ``lo <= u <= hi`` and ``E u = E u0`` (the equality constraints keep the
    value they have at the feasible start ``u0``).

    Parameters
    ----------
    A : numpy.ndarray, shape (p, n), or None
        Least-squares matrix (weighted effectiveness rows).
    b : numpy.ndarray, shape (p,), or None
        Least-squares target (weighted demand).
    lo, hi : numpy.ndarray, shape (n,)
        Bounds, ``lo <= hi``; ``hi`` may be ``inf`` (non-negative least squares).
    u0 : numpy.ndarray, shape (n,)
        Feasible start (inside the bounds; it defines the equality right-hand side).
    c : numpy.ndarray, shape (n,), optional
        Linear cost, used only when ``A`` is None (then the problem is a bounded LP).
    E : numpy.ndarray, shape (q, n), optional
        Equality rows (earlier priority stages).
    max_iter : int, optional
        Iteration cap, default ``20 n + 50``.

    Returns
    -------
    u : numpy.ndarray, shape (n,)
        The minimiser.
    converged : bool
        False when the iteration cap stopped the search (never seen in the tests).
    iterations : int
        Active-set iterations used.

    Raises
    ------
    ValueError
        When the LP is unbounded (``c`` pushes a variable towards an infinite bound).

    Notes
    -----
    Null-space active-set method (Nocedal & Wright 2006, Algorithm 16.3) specialised to
    simple bounds as in bounded-variable least squares (Stark & Parker 1995): step to the
    minimiser of the current face (minimum-norm least squares, so a rank-deficient face is
    handled), stop at the first blocking bound, otherwise release the bound whose
    multiplier has the wrong sign. Optimality of the result follows from the KKT
    conditions being met to the multiplier tolerance.
    """
    n = u0.shape[0]
    if A is not None and b is None:
        raise ValueError("b is required with A")
    if A is None and c is None:
        raise ValueError("c is required when A is None")
    u = np.clip(np.asarray(u0, dtype=float), lo, hi)
    if max_iter is None:
        max_iter = 20 * n + 50
    Eo = _orth_rows(E)
    span_u = float(np.max(np.where(np.isfinite(hi), hi - lo, 1.0))) if n else 1.0
    bound_tol = 1e-14 * max(1.0, span_u)
    # state: 0 free, -1 at lower, +1 at upper
    state = np.zeros(n, dtype=np.int8)
    state[u <= lo + bound_tol] = -1
    state[(u >= hi - bound_tol) & (state == 0)] = 1
    u[state == -1] = lo[state == -1]
    u[state == 1] = hi[state == 1]
    if Eo is not None:
        # working-set constraints must be linearly independent: free bound variables until
        # the free columns of the equality rows have full row rank
        q = Eo.shape[0]
        free = state == 0
        rank = np.linalg.matrix_rank(Eo[:, free]) if free.any() else 0
        for i in range(n):
            if rank >= q:
                break
            if free[i] or lo[i] == hi[i]:
                continue
            free[i] = True
            r2 = np.linalg.matrix_rank(Eo[:, free])
            if r2 > rank:
                rank = r2
                state[i] = 0
            else:
                free[i] = False
    if A is not None:
        assert b is not None  # checked above
        scale = float(np.linalg.norm(A)) * (float(np.linalg.norm(b)) + 1.0) + 1e-300
    else:
        assert c is not None  # checked above
        scale = float(np.linalg.norm(c)) + 1e-300
    g_tol = 1e-11 * scale
    it = 0
    while it < max_iter:
        it += 1
        F = np.flatnonzero(state == 0)
        p = None
        if F.size:
            Z = _null_basis(Eo[:, F]) if Eo is not None else None
            if A is not None:
                r = A @ u - b
                AF = A[:, F] if Z is None else A[:, F] @ Z
                w = np.linalg.lstsq(AF, -r, rcond=None)[0]
                if float(np.linalg.norm(AF @ w)) > 1e-13 * (float(np.linalg.norm(r)) + 1e-300):
                    p = w if Z is None else Z @ w
                cap = 1.0
            else:
                assert c is not None  # checked above
                cF = c[F] if Z is None else Z @ (Z.T @ c[F])
                if float(np.linalg.norm(cF)) > 1e-12 * scale:
                    p = -cF
                cap = math.inf
        if p is not None:
            uF = u[F]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(p < 0, (lo[F] - uF) / p, np.where(p > 0, (hi[F] - uF) / p, np.inf))
            ratio = np.maximum(ratio, 0.0)
            j = int(np.argmin(ratio))
            alpha = float(ratio[j])
            if alpha >= cap:
                u[F] = uF + cap * p
                continue
            if not math.isfinite(alpha):
                raise ValueError("unbounded linear programme: cost decreases without limit")
            u[F] = uF + alpha * p
            i = F[j]
            if p[j] < 0:
                u[i], state[i] = lo[i], -1
            else:
                u[i], state[i] = hi[i], 1
            continue
        # face stationary: multipliers of the bounds
        if A is not None:
            g = A.T @ (A @ u - b)
        else:
            assert c is not None  # checked above
            g = c.copy()
        if Eo is not None and F.size:
            nu = np.linalg.lstsq(Eo[:, F].T, -g[F], rcond=None)[0]
            g = g + Eo.T @ nu
        viol = np.where(state == -1, -g, np.where(state == 1, g, 0.0))
        viol[lo == hi] = 0.0
        k = int(np.argmax(viol))
        if viol[k] <= g_tol:
            return u, True, it
        state[k] = 0
    return u, False, it
