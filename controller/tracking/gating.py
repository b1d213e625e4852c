"""Validation gates: chi-square threshold on the innovation's Mahalanobis distance.

A detection ``z`` may update a track only if its normalised innovation squared
``d^2 = nu^T S^-1 nu`` (``nu = z - H x_pred``, ``S = H P_pred H^T + R``) lies inside the
gate ``d^2 <= gamma``, where ``gamma`` is the chi-square quantile with ``n_z`` degrees
of freedom at the gate probability ``P_G`` (the ellipsoidal validation region of
Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and Navigation*,
2001; Blackman & Popoli, *Design and Analysis of Modern Tracking Systems*, 1999, on
gating).

The chi-square quantile is computed here (regularised incomplete gamma function and a
safeguarded Newton iteration) so the runtime does not depend on scipy.

Pure code: no I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math

import numpy as np

from controller.tracking.models import TrackingError

__all__ = ["chi2_cdf", "chi2_ppf", "gate_threshold", "mahalanobis_sq_matrix"]

_EPS = 1e-15
_MAX_ITER = 500


def _gamma_pq(a: float, x: float) -> tuple[float, float]:
    """Regularised incomplete gamma functions ``(P(a, x), Q(a, x))`` (a > 0, x >= 0).

    Series expansion of ``P`` for ``x < a + 1``, modified-Lentz continued fraction of
    ``Q`` otherwise (the classic split: Abramowitz & Stegun 6.5.29 and 6.5.31). The
    function computed directly is accurate in relative terms, so both tails keep their
    precision.
    """
    if x <= 0.0:
        return 0.0, 1.0
    prefactor = math.exp(-x + a * math.log(x) - math.lgamma(a))
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        p = min(1.0, total * prefactor)
        return p, 1.0 - p
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    q = min(1.0, max(0.0, prefactor * h))
    return 1.0 - q, q


def chi2_cdf(x: float, dof: int) -> float:
    """Chi-square cumulative distribution ``P(X <= x)`` with ``dof`` degrees of freedom.

    Parameters
    ----------
    x : float
        Value (dimensionless), >= 0 for a non-zero result.
    dof : int
        Degrees of freedom, >= 1.

    Returns
    -------
    float
        ``P(dof / 2, x / 2)``, the regularised lower incomplete gamma function.
    """
    if dof < 1:
        raise TrackingError(f"dof must be >= 1, got {dof!r}")
    return _gamma_pq(0.5 * dof, 0.5 * x)[0]


def _chi2_pdf(x: float, dof: int) -> float:
    k2 = 0.5 * dof
    if x <= 0.0:
        return 0.0
    return math.exp((k2 - 1.0) * math.log(x) - 0.5 * x - k2 * math.log(2.0) - math.lgamma(k2))


def chi2_ppf(probability: float, dof: int) -> float:
    """Chi-square quantile: the ``x`` with ``chi2_cdf(x, dof) == probability``.

    Parameters
    ----------
    probability : float
        In the open interval (0, 1).
    dof : int
        Degrees of freedom, >= 1.

    Returns
    -------
    float
        The quantile, relative accuracy about 1e-12. For ``dof == 2`` this is exactly
        ``-2 ln(1 - probability)``.

    Raises
    ------
    TrackingError
        If ``probability`` is outside (0, 1) or ``dof < 1``.
    """
    if not (0.0 < probability < 1.0):
        raise TrackingError(f"probability must be in (0, 1), got {probability!r}")
    if dof < 1 or int(dof) != dof:
        raise TrackingError(f"dof must be an integer >= 1, got {dof!r}")
    if dof == 2:
        return -2.0 * math.log1p(-probability)
    # Solve on the tail that is small, so its relative precision is kept:
    # P(x) = p for p <= 1/2, Q(x) = 1 - p (exact in floating point) otherwise.
    upper = probability > 0.5
    target = 1.0 - probability if upper else probability

    def residual(x_val: float) -> float:
        p_val, q_val = _gamma_pq(0.5 * dof, 0.5 * x_val)
        return (target - q_val) if upper else (p_val - target)

    # Bracket the root, then Newton steps kept inside the bracket (bisection fallback).
    lo = 0.0
    hi = max(1.0, float(dof))
    while residual(hi) < 0.0:
        lo = hi
        hi *= 2.0
    x = 0.5 * (lo + hi)
    for _ in range(400):
        err = residual(x)
        if err > 0.0:
            hi = x
        else:
            lo = x
        pdf = _chi2_pdf(x, dof)
        step_ok = False
        if pdf > 0.0:
            x_new = x - err / pdf
            if lo < x_new < hi:
                step_ok = True
        if not step_ok:
            x_new = 0.5 * (lo + hi)
        if abs(x_new - x) <= 1e-14 * x or hi - lo <= 1e-15 * hi:
            return x_new
        x = x_new
    return x


def gate_threshold(gate_probability: float, meas_dim: int = 2) -> float:
    """Chi-square gate ``gamma`` for a gate probability ``P_G``.

    Parameters
    ----------
    gate_probability : float
        Probability that the true target's measurement falls inside the gate, in (0, 1)
        (0.99 gives ``gamma = 9.21`` for a 2-D measurement).
    meas_dim : int, optional
        Measurement dimension ``n_z`` (2 for a planar position).

    Returns
    -------
    float
        ``chi2_ppf(gate_probability, meas_dim)``.

    Raises
    ------
    TrackingError
        If the probability is outside (0, 1).

    Notes
    -----
    The chi-square validation gate of Bar-Shalom, Li, Kirubarajan (2001); the tests hold
    it to ``scipy.stats.chi2.ppf``.
    """
    return chi2_ppf(gate_probability, meas_dim)


def mahalanobis_sq_matrix(
    pred_pos: np.ndarray,
    pred_pos_cov: np.ndarray,
    meas_pos: np.ndarray,
    meas_cov: np.ndarray,
    *,
    return_log_det: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Normalised innovation squared for every (track, detection) pair.

    ``d2[i, j] = nu_ij^T S_ij^-1 nu_ij`` with ``nu_ij = z_j - H x_i`` and
    ``S_ij = H P_i H^T + R_j``; the 2x2 inverse is written out, so the whole matrix costs
    a handful of vectorised numpy operations.

    Parameters
    ----------
    pred_pos : numpy.ndarray, shape (T, 2)
        Predicted track positions, world frame, metres.
    pred_pos_cov : numpy.ndarray, shape (T, 2, 2)
        Their position covariances ``H P H^T``, m^2.
    meas_pos : numpy.ndarray, shape (D, 2)
        Detection positions, world frame, metres.
    meas_cov : numpy.ndarray, shape (D, 2, 2)
        Detection covariances ``R``, m^2.
    return_log_det : bool, optional
        Also return ``ln det S_ij`` (ln m^4), for the likelihood cost
        ``d2 + ln det S`` of the association.

    Returns
    -------
    numpy.ndarray, shape (T, D)
        Dimensionless squared distances (``inf`` where ``S`` is singular); with
        ``return_log_det`` the pair ``(d2, log_det_s)``.
    """
    nu = meas_pos[None, :, :] - pred_pos[:, None, :]  # (T, D, 2)
    s00 = pred_pos_cov[:, None, 0, 0] + meas_cov[None, :, 0, 0]
    s01 = pred_pos_cov[:, None, 0, 1] + meas_cov[None, :, 0, 1]
    s11 = pred_pos_cov[:, None, 1, 1] + meas_cov[None, :, 1, 1]
    det = s00 * s11 - s01 * s01
    n0 = nu[:, :, 0]
    n1 = nu[:, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = (n0 * n0 * s11 - 2.0 * n0 * n1 * s01 + n1 * n1 * s00) / det
    d2 = np.where(det > 0.0, d2, np.inf)
    if return_log_det:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_det = np.log(det)
        return d2, log_det
    return d2
