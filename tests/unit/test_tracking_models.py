"""Constant-velocity Kalman model and frame transforms, against textbook references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm

from controller.tracking import (
    ConstantVelocityModel,
    Detection,
    Pose2D,
    TrackingError,
    body_to_world,
    covariance_from_polar,
    kf_predict,
    kf_update,
    world_to_body_point,
)

H = np.hstack([np.eye(2), np.zeros((2, 2))])


def random_spd(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(n, n)) * scale
    return a @ a.T + 0.1 * scale * scale * np.eye(n)


def ref_predict(x, p, dt, q_psd):
    """Textbook: x' = F x, P' = F P F^T + Q with Q by Van Loan (independent of the code)."""
    f = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    # Continuous model dx = A x dt + G dw, E[dw dw^T] = q I dt (white acceleration).
    a = np.zeros((4, 4))
    a[0, 2] = a[1, 3] = 1.0
    g = np.vstack([np.zeros((2, 2)), np.eye(2)])
    m = np.zeros((8, 8))
    m[:4, :4] = -a
    m[:4, 4:] = g @ (q_psd * np.eye(2)) @ g.T
    m[4:, 4:] = a.T
    e = expm(m * dt)
    q = e[4:, 4:].T @ e[:4, 4:]
    return f @ x, f @ p @ f.T + q


def ref_update(x, p, z, r):
    """Textbook update: S = H P H^T + R, K = P H^T S^-1, P+ = (I - K H) P."""
    s = H @ p @ H.T + r
    k = p @ H.T @ np.linalg.inv(s)
    x_new = x + k @ (z - H @ x)
    p_new = (np.eye(4) - k @ H) @ p
    return x_new, p_new


@pytest.mark.parametrize("seed", range(20))
def test_predict_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    dt = float(rng.uniform(0.001, 2.0))
    q_accel = float(rng.uniform(0.0, 3.0))
    model = ConstantVelocityModel(q_accel)
    xs = rng.normal(size=(n, 4)) * 10
    ps = np.stack([random_spd(rng, 4) for _ in range(n)])
    x_pred, p_pred = kf_predict(xs, ps, model.transition_matrix(dt), model.process_noise(dt))
    for i in range(n):
        x_ref, p_ref = ref_predict(xs[i], ps[i], dt, q_accel**2)
        np.testing.assert_allclose(x_pred[i], x_ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(p_pred[i], p_ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_update_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 6))
    xs = rng.normal(size=(n, 4)) * 10
    ps = np.stack([random_spd(rng, 4) for _ in range(n)])
    zs = xs[:, :2] + rng.normal(size=(n, 2))
    rs = np.stack([random_spd(rng, 2, 0.5) for _ in range(n)])
    x_upd, p_upd = kf_update(xs, ps, zs, rs)
    for i in range(n):
        x_ref, p_ref = ref_update(xs[i], ps[i], zs[i], rs[i])
        np.testing.assert_allclose(x_upd[i], x_ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(p_upd[i], p_ref, rtol=0, atol=1e-9)
        assert np.all(np.linalg.eigvalsh(p_upd[i]) > 0)
        np.testing.assert_array_equal(p_upd[i], p_upd[i].T)


def test_process_noise_closed_form() -> None:
    model = ConstantVelocityModel(2.0)  # q~ = 4 m^2/s^3
    q = model.process_noise(0.5)
    assert q[0, 0] == pytest.approx(4 * 0.125 / 3)
    assert q[0, 2] == pytest.approx(4 * 0.25 / 2)
    assert q[2, 2] == pytest.approx(4 * 0.5)
    assert q[0, 1] == 0.0 and q[0, 3] == 0.0


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_model_rejects_bad_noise(bad: float) -> None:
    with pytest.raises(TrackingError):
        ConstantVelocityModel(bad)


@pytest.mark.parametrize(
    ("pose", "body", "world"),
    [
        ((0.0, 0.0, 0.0), (1.0, 2.0), (1.0, 2.0)),
        ((1.0, 2.0, 0.0), (1.0, 0.0), (2.0, 2.0)),
        ((1.0, 2.0, math.pi / 2), (1.0, 0.0), (1.0, 3.0)),
        ((0.0, 0.0, math.pi), (3.0, 1.0), (-3.0, -1.0)),
        ((-2.0, 5.0, -math.pi / 2), (0.0, 4.0), (2.0, 5.0)),
    ],
)
def test_body_to_world_table(pose, body, world) -> None:
    det = Detection(body[0], body[1], source="lr", range_m=7.0, azimuth_rad=0.25, object_id=3)
    (out,) = body_to_world([det], pose)
    assert (out.x_m, out.y_m) == pytest.approx(world, abs=1e-12)
    assert out.source == "lr" and out.range_m == 7.0 and out.object_id == 3
    assert out.azimuth_rad == pytest.approx(math.remainder(0.25 + pose[2], math.tau))
    assert world_to_body_point(out.x_m, out.y_m, Pose2D(*pose)) == pytest.approx(body, abs=1e-12)


def test_body_to_world_rejects_bad_pose() -> None:
    with pytest.raises(TrackingError):
        body_to_world([Detection(1.0, 1.0)], (0.0, math.nan, 0.0))
    with pytest.raises(TrackingError):
        body_to_world([Detection(1.0, 1.0)], (0.0, 1.0))


def test_polar_covariance_matches_jacobian() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        r, a = rng.uniform(0.5, 50), rng.uniform(-math.pi, math.pi)
        sr, sa = rng.uniform(0.05, 1), rng.uniform(0.001, 0.05)
        j = np.array([[math.cos(a), -r * math.sin(a)], [math.sin(a), r * math.cos(a)]])
        np.testing.assert_allclose(
            covariance_from_polar(r, a, sr, sa), j @ np.diag([sr**2, sa**2]) @ j.T, atol=1e-12
        )
    # Along the x axis: range error in x, cross-range error in y.
    c = covariance_from_polar(10.0, 0.0, 0.2, 0.01)
    np.testing.assert_allclose(c, np.diag([0.04, 0.01]), atol=1e-15)
