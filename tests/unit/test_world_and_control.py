"""World physics against closed-form motion; PD wrench frames; mission sequencing."""

from __future__ import annotations

import math

import pytest

from controller.config import MissionCfg, WaypointCfg
from controller.control import PoseGains, pose_pd_wrench
from controller.mission import MissionExecutor
from firmware_bridge.emulation.world import ThrusterGeometry, World

T_PLUS_X = ThrusterGeometry(-0.2, 0.0, 1.0, 0.0, 1.0)
T_YAW = ThrusterGeometry(0.2, 0.0, 0.0, 1.0, 1.0)  # at x=+0.2 pushing +y: Mz = +0.2 N m


def test_constant_force_matches_closed_form():
    w = World(10.0, 1.0, [T_PLUS_X], (0.0, 0.0, 0.0))
    for _ in range(1000):
        w.step(0.001, [1.0])
    # x = a t^2 / 2 with a = 0.1; semi-implicit Euler error is a*t*dt/2.
    assert w.x_m == pytest.approx(0.05, abs=1e-4)
    assert w.vx_mps == pytest.approx(0.1, rel=1e-9)
    assert w.impulse_ns[0] == pytest.approx(1.0, rel=1e-9)


def test_partial_open_fraction_gives_proportional_impulse():
    w = World(10.0, 1.0, [T_PLUS_X])
    w.step(0.001, [0.25])
    assert w.impulse_ns[0] == pytest.approx(0.25e-3)


def test_torque_turns_counter_clockwise():
    w = World(10.0, 0.5, [T_YAW])
    for _ in range(100):
        w.step(0.001, [1.0])
    assert w.yaw_rate_radps == pytest.approx(0.2 / 0.5 * 0.1, rel=1e-9)
    assert w.yaw_rad > 0


GAINS = PoseGains(1.0, 2.0, 0.5, 0.5, 0.25, 0.5)


def test_pd_wrench_is_in_body_frame():
    # Target 0.1 m ahead in world x; vehicle yawed +90 deg: body -y points to world +x.
    fx, fy, mz = pose_pd_wrench(GAINS, (0.0, 0.0, math.pi / 2), (0.0, 0.0, 0.0), (0.1, 0.0, math.pi / 2))
    assert fx == pytest.approx(0.0, abs=1e-12)
    assert fy == pytest.approx(-0.1)
    assert mz == pytest.approx(0.0)


def test_pd_error_clip_bounds_force():
    fx, fy, _ = pose_pd_wrench(GAINS, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (10.0, 0.0, 0.0))
    assert fx == pytest.approx(0.25)


def test_mission_reaches_holds_and_scores():
    m = MissionExecutor(MissionCfg(name="m", waypoints=[WaypointCfg(x_m=1.0, y_m=0.0, hold_s=1.0), WaypointCfg(x_m=0.0, y_m=0.0)]))
    m.start(0.0)
    assert not m.update(0.0, (0.5, 0.0, 0.0), 0.1).reached_now
    assert m.update(1.0, (0.99, 0.0, 0.0), 0.01).reached_now
    m.update(1.5, (1.02, 0.0, 0.0), 0.01)
    assert m.max_hold_error_m == pytest.approx(0.02)
    p = m.update(2.0, (1.0, 0.0, 0.0), 0.0)
    assert p.setpoint == (0.0, 0.0, 0.0)
    p = m.update(3.0, (0.0, 0.0, 0.0), 0.0)
    assert p.complete and m.waypoints_reached == 2
