"""Assignment solver against scipy.optimize.linear_sum_assignment; GNN against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from controller.tracking import TrackingError, gate_clusters, gnn_associate, solve_assignment


@pytest.mark.parametrize("seed", range(300))
def test_solve_assignment_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = (int(v) for v in rng.integers(1, 12, size=2))
    kind = seed % 3
    if kind == 0:
        cost = rng.normal(size=(n_rows, n_cols)) * 100
    elif kind == 1:
        cost = rng.uniform(0, 10, size=(n_rows, n_cols))
    else:  # many ties: compare optimal value only
        cost = rng.integers(0, 4, size=(n_rows, n_cols)).astype(float)
    rows, cols = solve_assignment(cost)
    ref_rows, ref_cols = linear_sum_assignment(cost)
    assert len(rows) == len(ref_rows) == min(n_rows, n_cols)
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), abs=1e-9)
    if kind != 2:
        assert rows == ref_rows.tolist() and cols == ref_cols.tolist()


def test_solve_assignment_edge_cases() -> None:
    assert solve_assignment(np.zeros((0, 3))) == ([], [])
    assert solve_assignment([[5.0]]) == ([0], [0])
    with pytest.raises(TrackingError):
        solve_assignment([[1.0, math.inf]])
    with pytest.raises(TrackingError):
        solve_assignment([1.0, 2.0])


def test_gate_clusters() -> None:
    gated = np.array(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    clusters = sorted(gate_clusters(gated))
    assert clusters == [([0, 1], [0, 1]), ([2], [3])]


def brute_force_gnn(cost: np.ndarray, gated: np.ndarray) -> tuple[int, float]:
    """Best (number of pairs, summed cost) over every partial matching of gated pairs."""
    n_t, n_d = cost.shape
    best = (0, 0.0)
    for k in range(1, min(n_t, n_d) + 1):
        for tracks in itertools.combinations(range(n_t), k):
            for dets in itertools.permutations(range(n_d), k):
                if all(gated[t, d] for t, d in zip(tracks, dets, strict=True)):
                    total = sum(cost[t, d] for t, d in zip(tracks, dets, strict=True))
                    if k > best[0] or (k == best[0] and total < best[1]):
                        best = (k, total)
    return best


@pytest.mark.parametrize("seed", range(60))
def test_gnn_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n_t, n_d = (int(v) for v in rng.integers(1, 6, size=2))
    gamma = 9.21
    d2 = rng.uniform(0, 20, size=(n_t, n_d))
    extra = rng.normal(size=(n_t, n_d)) if seed % 2 else None
    pairs = gnn_associate(d2, gamma, extra)
    cost = d2 if extra is None else d2 + extra
    gated = d2 <= gamma
    assert all(gated[t, d] for t, d in pairs)
    assert len({t for t, _ in pairs}) == len(pairs) == len({d for _, d in pairs})
    n_best, cost_best = brute_force_gnn(cost, gated)
    assert len(pairs) == n_best
    assert sum(cost[t, d] for t, d in pairs) == pytest.approx(cost_best, abs=1e-9)


def test_gnn_prefers_global_optimum_over_greedy() -> None:
    # Greedy would give track 0 detection 0 (cost 1) and leave track 1 unmatched.
    d2 = np.array([[1.0, 2.0], [1.5, 50.0]])
    assert gnn_associate(d2, 9.21) == [(0, 1), (1, 0)]


def test_gnn_ignores_nan_and_out_of_gate() -> None:
    d2 = np.array([[math.nan, 10.0], [3.0, 9.0]])
    assert gnn_associate(d2, 9.21) == [(1, 0)]
    assert gnn_associate(np.zeros((0, 4)), 9.21) == []
