"""Chi-square gates against scipy, and the Mahalanobis matrix against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from controller.tracking import TrackingError, chi2_cdf, chi2_ppf, gate_threshold, mahalanobis_sq_matrix


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 6, 9, 20])
@pytest.mark.parametrize("probability", [1e-9, 0.01, 0.5, 0.9, 0.95, 0.99, 0.997, 0.999, 1 - 1e-9])
def test_chi2_ppf_matches_scipy(dof: int, probability: float) -> None:
    assert chi2_ppf(probability, dof) == pytest.approx(chi2.ppf(probability, dof), rel=1e-10)


@pytest.mark.parametrize("dof", [1, 2, 3, 7])
@pytest.mark.parametrize("x", [0.0, 1e-6, 0.5, 2.0, 9.21, 30.0, 100.0])
def test_chi2_cdf_matches_scipy(dof: int, x: float) -> None:
    assert chi2_cdf(x, dof) == pytest.approx(chi2.cdf(x, dof), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("gate_probability", "expected"),
    [(0.95, 5.991464547107979), (0.99, 9.21034037197618), (0.999, 13.815510557964274)],
)
def test_gate_threshold_2d_table(gate_probability: float, expected: float) -> None:
    assert gate_threshold(gate_probability) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_gate_threshold_rejects_bad_probability(bad: float) -> None:
    with pytest.raises(TrackingError):
        gate_threshold(bad)


def test_mahalanobis_matrix_matches_loop() -> None:
    rng = np.random.default_rng(3)
    t, d = 7, 11
    pos = rng.normal(size=(t, 2)) * 5
    pcov = np.stack([(lambda a: a @ a.T + 0.01 * np.eye(2))(rng.normal(size=(2, 2))) for _ in range(t)])
    z = rng.normal(size=(d, 2)) * 5
    rcov = np.stack([(lambda a: a @ a.T + 0.01 * np.eye(2))(rng.normal(size=(2, 2))) for _ in range(d)])
    d2, log_det = mahalanobis_sq_matrix(pos, pcov, z, rcov, return_log_det=True)
    for i in range(t):
        for j in range(d):
            s = pcov[i] + rcov[j]
            nu = z[j] - pos[i]
            assert d2[i, j] == pytest.approx(nu @ np.linalg.inv(s) @ nu, rel=1e-9)
            assert log_det[i, j] == pytest.approx(math.log(np.linalg.det(s)), rel=1e-9, abs=1e-12)


def test_gate_decision_at_the_boundary() -> None:
    """Unit covariance split between track and detection: d2 = distance^2."""
    gamma = gate_threshold(0.99)
    pos = np.zeros((1, 2))
    pcov = np.eye(2)[None] * 0.5
    z = np.array([[math.sqrt(gamma) - 1e-6, 0.0], [math.sqrt(gamma) + 1e-6, 0.0]])
    rcov = np.stack([np.eye(2) * 0.5, np.eye(2) * 0.5])
    d2 = mahalanobis_sq_matrix(pos, pcov, z, rcov)
    assert d2[0, 0] <= gamma < d2[0, 1]
