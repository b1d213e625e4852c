"""Pose controller: PD on x, y and yaw in the world frame, output as a body-frame wrench.

Per-tick and pure. The position error is clipped to ``max_position_error_m`` so that a far
waypoint gives a bounded approach speed (the PD then behaves as a speed-limited P-PD
cascade); yaw error is wrapped to [-pi, pi] and clipped likewise.
Reference: K. J. Astrom, R. M. Murray, *Feedback Systems*, 2nd ed., 2021, sec. 11.3 (PD
control of a double integrator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.protocols.frames import wrap_angle, yaw_cos_sin


@dataclass(frozen=True, slots=True)
class PoseGains:
    """PD gains (world frame) and error clips; units in the field names."""

    kp_n_per_m: float
    kd_n_per_mps: float
    kp_nm_per_rad: float
    kd_nm_per_radps: float
    max_position_error_m: float
    max_yaw_error_rad: float


def pose_pd_wrench(
    gains: PoseGains,
    pose: tuple[float, float, float],
    velocity_world: tuple[float, float, float],
    target: tuple[float, float, float],
) -> tuple[float, float, float]:
    """Compute the body-frame wrench ``(fx_n, fy_n, mz_nm)`` that drives pose to target.

    Parameters
    ----------
    gains : PoseGains
    pose : (x_m, y_m, yaw_rad)
        Current pose, world frame.
    velocity_world : (vx_mps, vy_mps, yaw_rate_radps)
        Current velocity, world frame.
    target : (x_m, y_m, yaw_rad)
        Setpoint pose, world frame (target velocity zero).

    Returns
    -------
    (fx_n, fy_n, mz_nm)
        Force in the body frame (x forward, y left) and torque about z.
    """
    ex = target[0] - pose[0]
    ey = target[1] - pose[1]
    dist = math.hypot(ex, ey)
    lim = gains.max_position_error_m
    if dist > lim:
        ex *= lim / dist
        ey *= lim / dist
    eyaw = wrap_angle(target[2] - pose[2])
    ylim = gains.max_yaw_error_rad
    # max(-ylim, min(ylim, eyaw)) without the two calls: the same picks, NaN included
    eyaw = eyaw if eyaw < ylim else ylim
    eyaw = eyaw if eyaw > -ylim else -ylim
    kp, kd = gains.kp_n_per_m, gains.kd_n_per_mps
    fxw = kp * ex - kd * velocity_world[0]
    fyw = kp * ey - kd * velocity_world[1]
    mz = gains.kp_nm_per_rad * eyaw - gains.kd_nm_per_radps * velocity_world[2]
    # frames.rotate_inverse(Pose2D(*pose), (fxw, fyw)) without building the Pose2D: its
    # cos and sin (yaw_cos_sin), then the same products and sums
    c, s = yaw_cos_sin(pose[2])
    return (c * fxw + s * fyw, -s * fxw + c * fyw, mz)
