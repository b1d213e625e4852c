"""Effectiveness matrix and positive-span check (SAFETY.md K06)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.allocation import ExactAllocator, check_positive_span, effectiveness

# default planar rig (x forward, y left): 8 thrusters, 1 N each
RIG_POS = [(0.2, 0.2), (0.2, 0.2), (0.2, -0.2), (0.2, -0.2), (-0.2, 0.2), (-0.2, 0.2), (-0.2, -0.2), (-0.2, -0.2)]
RIG_DIR = [(-1, 0), (0, -1), (-1, 0), (0, 1), (1, 0), (0, -1), (1, 0), (0, 1)]


@pytest.mark.parametrize(
    "pos, direction, column",
    [
        ((0.2, 0.2), (-1, 0), (-1.0, 0.0, 0.2)),  # pushes backwards from the front-left corner: yaw left
        ((0.2, -0.2), (0, 1), (0.0, 1.0, 0.2)),
        ((-0.2, 0.2), (0, -1), (0.0, -1.0, 0.2)),
        ((0.0, 0.0), (3, 4), (0.6, 0.8, 0.0)),  # direction normalised
        ((1.0, 0.0), (0, 2), (0.0, 1.0, 1.0)),
    ],
)
def test_planar_column(pos, direction, column):
    B = effectiveness([pos], [direction])
    assert B.shape == (3, 1)
    np.testing.assert_allclose(B[:, 0], column, atol=1e-15)


@pytest.mark.parametrize(
    "pos, direction, column",
    [
        ((1, 0, 0), (0, 1, 0), (0, 1, 0, 0, 0, 1)),  # r x d = +z moment
        ((0, 1, 0), (0, 0, 1), (0, 0, 1, 1, 0, 0)),
        ((0, 0, 1), (1, 0, 0), (1, 0, 0, 0, 1, 0)),
        ((1, 2, 3), (0, 0, -2), (0, 0, -1, -2, 1, 0)),
    ],
)
def test_spatial_column(pos, direction, column):
    B = effectiveness([pos], [direction])
    assert B.shape == (6, 1)
    np.testing.assert_allclose(B[:, 0], column, atol=1e-15)


def test_planar_embeds_in_spatial():
    rng = np.random.default_rng(3)
    p, d = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    B3 = effectiveness(p, d)
    B6 = effectiveness(np.c_[p, np.zeros(7)], np.c_[d, np.zeros(7)])
    np.testing.assert_allclose(B6[[0, 1, 5]], B3, atol=1e-15)


@pytest.mark.parametrize(
    "pos, direction",
    [
        ([(0, 0)], [(0, 0)]),  # zero-length direction
        ([(0, 0), (1, 1)], [(1, 0)]),  # count mismatch
        ([(0, 0, 0)], [(1, 0)]),  # dimension mismatch
        ([(0, 0, 0, 0)], [(1, 0, 0, 0)]),
        ([(np.nan, 0)], [(1, 0)]),
    ],
)
def test_bad_geometry_raises(pos, direction):
    with pytest.raises(ValueError):
        effectiveness(pos, direction)


def test_default_rig_spans():
    B = effectiveness(RIG_POS, RIG_DIR)
    ok, reason = check_positive_span(B)
    assert ok, reason


def test_without_both_forward_thrusters_cannot_push_forward():
    B = effectiveness(RIG_POS, RIG_DIR)
    keep = [i for i in range(8) if i not in (4, 6)]  # t5, t7 push +x
    ok, reason = check_positive_span(B[:, keep])
    assert not ok
    assert "+Fx" in reason and "-Fx" not in reason


def test_allocator_spans_tracks_failures():
    """D06: ``ExactAllocator.spans`` follows the failed thrusters (re-plan if the rest spans, else safe)."""
    B = effectiveness(RIG_POS, RIG_DIR)
    alloc = ExactAllocator(B, np.ones(8))
    assert alloc.spans()[0]
    alloc.set_failures(stuck_closed=[4])  # one +x thruster left: still spans
    assert alloc.spans()[0]
    alloc.set_failures(stuck_closed=[4, 6])
    ok, reason = alloc.spans()
    assert not ok and "+Fx" in reason
    alloc.set_failures()
    assert alloc.spans()[0]


@pytest.mark.parametrize(
    "pos, direction, axes, expect, needle",
    [
        # all thrusters push +x: rank deficient
        ([(0, 0), (0, 1), (0, -1)], [(1, 0)] * 3, None, False, "rank"),
        # three thrusters at 120 degrees through the centre: forces span, no torque
        ([(0, 0)] * 3, [(1, 0), (-0.5, 0.866), (-0.5, -0.866)], None, False, "rank"),
        # ... but the forces alone are enough if the controller needs only Fx, Fy
        ([(0, 0)] * 3, [(1, 0), (-0.5, 0.866), (-0.5, -0.866)], [0, 1], True, "spans"),
        # four thrusters, one per direction, off-centre: spans Fx, Fy but torque only one way
        ([(0, -1), (0, 1), (1, 0), (-1, 0)], [(1, 0), (-1, 0), (0, 1), (0, -1)], None, False, "-Mz"),
    ],
)
def test_positive_span_table(pos, direction, axes, expect, needle):
    ok, reason = check_positive_span(effectiveness(pos, direction), axes)
    assert ok is expect
    assert needle in reason


def _cube_rig():
    """12 thrusters: a tangential pair on each face centre of a 0.4 m cube (6-DOF)."""
    pos, dirs = [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            p = np.zeros(3)
            p[axis] = 0.2 * sign
            t = np.zeros(3)
            t[(axis + 1) % 3] = 1.0
            pos += [p, p]
            dirs += [t, -t]
    return np.array(pos), np.array(dirs)


def test_spatial_rig_spans_and_loses_span_without_a_direction():
    pos, dirs = _cube_rig()
    B = effectiveness(pos, dirs)
    ok, reason = check_positive_span(B)
    assert ok, reason
    # drop every thruster pushing +y: the cube can no longer push +Fy
    keep = [i for i in range(12) if dirs[i][1] <= 0.5]
    ok, reason = check_positive_span(B[:, keep])
    assert not ok and "+Fy" in reason


def test_random_spatial_agrees_with_linprog_oracle():
    """Positive span iff rank m and a strictly positive null combination (Davis 1954)."""
    linprog = pytest.importorskip("scipy.optimize").linprog
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(40):
        n = int(rng.integers(6, 14))
        B = rng.normal(size=(6, n))
        B[:, : n // 2] = np.abs(B[:, : n // 2]) * (rng.random() < 0.3) + B[:, : n // 2] * (rng.random() >= 0.3)
        ok, _ = check_positive_span(B)
        # oracle: maximise t s.t. B lam = 0, lam >= t, lam <= 1
        c = np.r_[np.zeros(n), -1.0]
        A_eq = np.c_[B, np.zeros(6)]
        A_ub = np.c_[-np.eye(n), np.ones(n)]
        res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=np.zeros(6), bounds=[(0, 1)] * n + [(0, 1)])
        expect = bool(np.linalg.matrix_rank(B) == 6 and -res.fun > 1e-9)
        assert ok is expect
        seen.add(ok)
    assert seen == {True, False}
