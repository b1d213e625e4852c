"""Data association: global nearest neighbour (GNN) by optimal assignment.

Each scan, every track takes at most one detection and every detection feeds at most
one track; among the gated pairs, GNN picks the assignment that first maximises the
number of pairs and then minimises the summed normalised innovation squared
(Blackman & Popoli, *Design and Analysis of Modern Tracking Systems*, 1999, on GNN;
Bar-Shalom, Li, Kirubarajan 2001).

The assignment problem is solved by the shortest-augmenting-path Hungarian method with
dual potentials (Kuhn 1955; Munkres 1957; in the form of Jonker & Volgenant, "A shortest
augmenting path algorithm for dense and sparse linear assignment problems", Computing
38, 1987), O(n^2 m), pure Python, no scipy at runtime. Gating splits the problem into
independent clusters first, so a scan of many well-separated targets costs many tiny
problems rather than one big one.

Pure code: no I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from controller.tracking.models import TrackingError

__all__ = ["solve_assignment", "gate_clusters", "gnn_associate"]


def solve_assignment(cost: Sequence[Sequence[float]] | np.ndarray) -> tuple[list[int], list[int]]:
    """Minimum-cost assignment on a rectangular matrix (every row or every column used).

    Parameters
    ----------
    cost : array-like, shape (n_rows, n_cols)
        Finite costs (any sign). ``min(n_rows, n_cols)`` pairs are made.

    Returns
    -------
    (list of int, list of int)
        ``rows, cols``: the chosen pairs, sorted by row, so that
        ``sum(cost[r][c] for r, c in zip(rows, cols))`` is minimal -- the same contract as
        ``scipy.optimize.linear_sum_assignment`` for finite matrices.

    Raises
    ------
    TrackingError
        If the matrix is not 2-D or holds a non-finite cost.

    Notes
    -----
    Shortest augmenting paths with potentials ``u`` (rows) and ``v`` (columns): each row
    is inserted in turn, Dijkstra-like over reduced costs ``c[i][j] - u[i] - v[j] >= 0``,
    then the path is flipped. Complexity O(n^2 m) for n <= m (the matrix is transposed
    when it has more rows than columns).
    """
    arr = np.asarray(cost, dtype=float)
    if arr.ndim != 2:
        raise TrackingError(f"cost must be 2-D, got shape {arr.shape}")
    n_rows, n_cols = arr.shape
    if n_rows == 0 or n_cols == 0:
        return [], []
    if not np.all(np.isfinite(arr)):
        raise TrackingError("cost matrix holds a non-finite value")
    transposed = n_rows > n_cols
    if transposed:
        arr = arr.T
    rows_of_col = _shortest_augmenting_path(arr.tolist())
    pairs = [(r, c) for c, r in enumerate(rows_of_col) if r >= 0]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    pairs.sort()
    return [r for r, _ in pairs], [c for _, c in pairs]


def _shortest_augmenting_path(cost: list[list[float]]) -> list[int]:
    """Core solver for n <= m; returns, per column, the row assigned to it or -1."""
    n = len(cost)
    m = len(cost[0])
    inf = math.inf
    # Index 0 of the column arrays is a virtual column used as the search root.
    row_pot = [0.0] * (n + 1)  # u, 1-based rows
    col_pot = [0.0] * (m + 1)  # v
    owner = [0] * (m + 1)  # owner[j]: 1-based row matched to column j (0 = free)
    prev_col = [0] * (m + 1)  # predecessor column on the alternating tree
    for row in range(1, n + 1):
        owner[0] = row
        col = 0
        best = [inf] * (m + 1)
        done = [False] * (m + 1)
        while True:
            done[col] = True
            r = owner[col]
            cost_row = cost[r - 1]
            u_r = row_pot[r]
            delta = inf
            next_col = 0
            for j in range(1, m + 1):
                if done[j]:
                    continue
                reduced = cost_row[j - 1] - u_r - col_pot[j]
                if reduced < best[j]:
                    best[j] = reduced
                    prev_col[j] = col
                if best[j] < delta:
                    delta = best[j]
                    next_col = j
            for j in range(m + 1):
                if done[j]:
                    row_pot[owner[j]] += delta
                    col_pot[j] -= delta
                else:
                    best[j] -= delta
            col = next_col
            if owner[col] == 0:
                break
        # Flip the augmenting path back to the root.
        while col != 0:
            back = prev_col[col]
            owner[col] = owner[back]
            col = back
    return [owner[j] - 1 for j in range(1, m + 1)]


def gate_clusters(gated: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Split a gate matrix into independent clusters (connected components).

    Parameters
    ----------
    gated : numpy.ndarray of bool, shape (T, D)
        ``gated[i, j]`` is True when detection ``j`` lies in track ``i``'s gate.

    Returns
    -------
    list of (list of int, list of int)
        ``(track_indices, detection_indices)`` per cluster with at least one gated pair,
        each list sorted; tracks and detections in no gate are in no cluster.
    """
    n_tracks, n_dets = gated.shape
    parent = list(range(n_tracks + n_dets))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ti, dj = np.nonzero(gated)
    for i, j in zip(ti.tolist(), dj.tolist(), strict=True):
        ra = find(i)
        rb = find(n_tracks + j)
        if ra != rb:
            parent[rb] = ra
    clusters: dict[int, tuple[list[int], list[int]]] = {}
    for i in sorted(set(ti.tolist())):
        clusters.setdefault(find(i), ([], []))[0].append(i)
    for j in sorted(set(dj.tolist())):
        clusters.setdefault(find(n_tracks + j), ([], []))[1].append(j)
    return list(clusters.values())


def gnn_associate(
    d2: np.ndarray, gate: float, extra_cost: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Global nearest neighbour association of tracks and detections.

    Parameters
    ----------
    d2 : numpy.ndarray, shape (T, D)
        Normalised innovation squared of every (track, detection) pair (dimensionless),
        e.g. from :func:`controller.tracking.gating.mahalanobis_sq_matrix`.
    gate : float
        Chi-square gate ``gamma``: pairs with ``d2 > gate`` (or NaN) are never made.
    extra_cost : numpy.ndarray, shape (T, D), optional
        Added to ``d2`` to form the assignment cost of the gated pairs, e.g.
        ``ln det S`` so the cost is the negative log-likelihood of the pair up to a
        constant (the "generalised statistical distance" of Blackman & Popoli 1999),
        which stops a vague track from outbidding a precise one.

    Returns
    -------
    list of (int, int)
        ``(track_index, detection_index)`` pairs, sorted by track index. Within each
        cluster the number of pairs is maximal and, among maximal sets, the summed cost
        is minimal.

    Notes
    -----
    Allowed costs are shifted to start at 0 (which does not change the optimum: every
    solution has the same number of pairs), and a forbidden pair gets a cost larger
    than any sum of allowed costs, so the solver uses one only when nothing else is
    possible; such pairs are then dropped.
    """
    d2 = np.asarray(d2, dtype=float)
    if d2.ndim != 2:
        raise TrackingError(f"d2 must be 2-D, got shape {d2.shape}")
    if d2.size == 0:
        return []
    gated = d2 <= gate  # NaN compares False
    pairs: list[tuple[int, int]] = []
    for tracks, dets in gate_clusters(gated):
        if len(tracks) == 1 and len(dets) == 1:
            pairs.append((tracks[0], dets[0]))
            continue
        idx = np.ix_(tracks, dets)
        sub = d2[idx] if extra_cost is None else d2[idx] + extra_cost[idx]
        sub_gated = gated[idx] & np.isfinite(sub)
        if not sub_gated.any():
            continue
        allowed = sub[sub_gated]
        sub = sub - allowed.min()
        forbidden_cost = (float(allowed.max() - allowed.min()) + 1.0) * (min(sub.shape) + 1)
        cost = np.where(sub_gated, sub, forbidden_cost)
        rows, cols = solve_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if sub_gated[r, c]:
                pairs.append((tracks[r], dets[c]))
    pairs.sort()
    return pairs
