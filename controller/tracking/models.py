"""Value types and the constant-velocity Kalman model of the radar tracker.

Pure code: no I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).

Frames
------
* **body** -- the vehicle frame: x forward, y left, origin at the vehicle reference point.
  Radar drivers deliver detections here (they already applied the radar's mount pose).
* **world** -- the planar inertial frame of the vehicle pose ``(x_m, y_m, yaw_rad)``.
  Tracks live here, so a turning or moving vehicle does not smear static targets.

State and measurement
---------------------
The track state is ``[x_m, y_m, vx_mps, vy_mps]`` in the world frame. The measurement is
the position ``[x_m, y_m]`` in the world frame, ``z = H x`` with ``H = [I2 0]``.

Source of the rules: Y. Bar-Shalom, X. R. Li, T. Kirubarajan, *Estimation with
Applications to Tracking and Navigation*, Wiley 2001 -- section 5.2 (the Kalman filter
equations and the Joseph form of the covariance update), section 6.2.2 (the continuous
white-noise acceleration, CWNA, model and its discretised process noise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from controller.errors import ControllerError
from firmware_bridge.protocols.frames import Pose2D, apply, apply_inverse, wrap_angle

__all__ = [
    "TrackingError",
    "Pose2D",
    "PoseLike",
    "PoseInput",
    "Detection",
    "as_pose",
    "body_to_world",
    "world_to_body_point",
    "covariance_from_polar",
    "ConstantVelocityModel",
    "kf_predict",
    "kf_update",
    "STATE_DIM",
    "MEAS_DIM",
]

STATE_DIM = 4
"""Length of the track state ``[x_m, y_m, vx_mps, vy_mps]``."""
MEAS_DIM = 2
"""Length of the measurement ``[x_m, y_m]``."""


class TrackingError(ControllerError):
    """A tracking call was made with inputs that cannot be right.

    For example time running backwards, a model parameter out of range, arrays of the
    wrong shape.
    """


class PoseLike(Protocol):
    """Anything with a planar pose's three fields (e.g. :class:`Pose2D`, an MCU pose estimate)."""

    @property
    def x_m(self) -> float:
        """Position x in the world frame, m."""

    @property
    def y_m(self) -> float:
        """Position y in the world frame, m."""

    @property
    def yaw_rad(self) -> float:
        """Heading, counter-clockwise from world x, rad."""


#: A vehicle pose as the tracking functions take it: a :class:`PoseLike` or
#: ``(x_m, y_m, yaw_rad)`` (m, m, rad).
PoseInput = PoseLike | Sequence[float]


def as_pose(pose: PoseInput) -> Pose2D:
    """Return ``pose`` as a :class:`Pose2D`.

    Parameters
    ----------
    pose : PoseInput
        Vehicle pose in the world frame (m, m, rad): a :class:`Pose2D`, any object with
        ``x_m``, ``y_m``, ``yaw_rad``, or ``(x_m, y_m, yaw_rad)``.

    Returns
    -------
    Pose2D
        :class:`firmware_bridge.protocols.frames.Pose2D` (re-exported here).

    Raises
    ------
    TrackingError
        If the pose has the wrong shape or a non-finite component.
    """
    if isinstance(pose, Pose2D):
        out = pose
    elif type(pose) is tuple and len(pose) == 3:  # the plain tuple first: no attribute probes
        out = Pose2D(float(pose[0]), float(pose[1]), float(pose[2]))
    elif hasattr(pose, "x_m") and hasattr(pose, "y_m") and hasattr(pose, "yaw_rad"):
        fields = cast(PoseLike, pose)
        out = Pose2D(float(fields.x_m), float(fields.y_m), float(fields.yaw_rad))
    else:
        try:
            x_m, y_m, yaw_rad = pose
        except (TypeError, ValueError) as exc:
            raise TrackingError(f"pose must be (x_m, y_m, yaw_rad), got {pose!r}") from exc
        out = Pose2D(float(x_m), float(y_m), float(yaw_rad))
    if not (math.isfinite(out.x_m) and math.isfinite(out.y_m) and math.isfinite(out.yaw_rad)):
        raise TrackingError(f"pose has a non-finite component: {tuple(out)!r}")
    return out


@dataclass(frozen=True, slots=True)
class Detection:
    """One radar detection (a point target), in the frame its producer states.

    Drivers produce detections in the **body** frame; :func:`body_to_world` turns them
    into the **world** frame the tracker wants. Only ``x_m`` and ``y_m`` are required.

    Attributes
    ----------
    x_m, y_m : float
        Position of the target, metres, in the body or world frame (see above).
    source : str
        Range band / radar that produced it: ``"lr"`` or ``"sr"`` after
        :func:`controller.tracking.fusion.select_by_band`; free text before.
    range_m : float or None
        Measured range from the radar, metres (unchanged by frame transforms).
    azimuth_rad : float or None
        Bearing of the line of sight from the radar to the target, radians,
        counter-clockwise, **expressed in the same frame as** ``x_m, y_m`` (a driver sets
        it to the radar's azimuth plus the mount yaw; :func:`body_to_world` adds the
        vehicle yaw). Orients the measurement covariance.
    range_std_m : float or None
        1-sigma range accuracy, metres (e.g. ARS408 ``Obj_DistLong_rms``).
    azimuth_std_rad : float or None
        1-sigma azimuth accuracy, radians.
    object_id : int or None
        The sensor's own object/point id, kept for reports (never used to associate).
    rcs_dbsm : float or None
        Radar cross-section, dBsm, kept for reports and filtering upstream.
    range_rate_mps : float or None
        Measured range rate (Doppler radial velocity) of the target relative to the radar,
        m/s, positive receding (TI mmWave convention, "Understanding mmWave radar's
        Doppler", TI SWRA553); unchanged by frame transforms. Not used to associate; it
        corroborates a closing track (:meth:`controller.components.radar.RadarSubsystem.threats`).

    Notes
    -----
    With ``range_m``, ``azimuth_rad``, ``range_std_m`` and ``azimuth_std_rad`` all present
    the tracker uses the polar covariance of :func:`covariance_from_polar`; otherwise the
    isotropic ``TrackerConfig.meas_std_m``.
    """

    x_m: float
    y_m: float
    source: str = ""
    range_m: float | None = None
    azimuth_rad: float | None = None
    range_std_m: float | None = None
    azimuth_std_rad: float | None = None
    object_id: int | None = None
    rcs_dbsm: float | None = None
    range_rate_mps: float | None = None

    def is_finite(self) -> bool:
        """Return True when the position is finite (a NaN/inf detection is rejected)."""
        return math.isfinite(self.x_m) and math.isfinite(self.y_m)


def body_to_world(detections: Sequence[Detection], pose: PoseInput) -> list[Detection]:
    """Transform detections from the vehicle body frame to the world frame.

    ``p_world = [x, y] + R(yaw) p_body`` with ``R(yaw) = [[cos, -sin], [sin, cos]]``
    (:func:`firmware_bridge.protocols.frames.apply`); ``azimuth_rad`` (a bearing in the
    detection's frame) gains ``yaw`` and is wrapped to [-pi, pi]
    (:func:`firmware_bridge.protocols.frames.wrap_angle`); every other field is copied.

    Parameters
    ----------
    detections : sequence of Detection
        Detections in the body frame (x forward, y left), metres.
    pose : Pose2D or (x_m, y_m, yaw_rad)
        Vehicle pose in the world frame (m, m, rad).

    Returns
    -------
    list of Detection
        The same detections in the world frame, same order.

    Raises
    ------
    TrackingError
        If the pose is malformed or not finite.
    """
    world = as_pose(pose)
    yaw = world.yaw_rad
    out = []
    for det in detections:
        az = det.azimuth_rad
        x_m, y_m = apply(world, (det.x_m, det.y_m))
        # every field of Detection, in order (dataclasses.replace, spelt out: per detection)
        out.append(Detection(x_m, y_m, det.source, det.range_m, None if az is None else wrap_angle(az + yaw),
                             det.range_std_m, det.azimuth_std_rad, det.object_id, det.rcs_dbsm,
                             det.range_rate_mps))
    return out


def world_to_body_point(x_m: float, y_m: float, pose: PoseInput) -> tuple[float, float]:
    """Express a world-frame point in the vehicle body frame (inverse of :func:`body_to_world`).

    Parameters
    ----------
    x_m, y_m : float
        Point in the world frame, metres.
    pose : Pose2D or (x_m, y_m, yaw_rad)
        Vehicle pose in the world frame (m, m, rad).

    Returns
    -------
    (float, float)
        ``(x_m, y_m)`` in the body frame, metres: ``R(yaw)^T (p - [x, y])``
        (:func:`firmware_bridge.protocols.frames.apply_inverse`).
    """
    return apply_inverse(as_pose(pose), (x_m, y_m))


def covariance_from_polar(
    range_m: float, azimuth_rad: float, range_std_m: float, azimuth_std_rad: float
) -> np.ndarray:
    """Cartesian 2x2 position covariance of a range/azimuth measurement (linearised).

    ``R_xy = J diag(sr^2, sa^2) J^T`` with ``J = d(x, y)/d(r, a) =
    [[cos a, -r sin a], [sin a, r cos a]]``: the first-order (linearised) polar-to-
    Cartesian measurement conversion (Bar-Shalom, Li, Kirubarajan 2001, "converted
    measurements"; adequate while ``r * sa`` is small against the range).

    Parameters
    ----------
    range_m : float
        Range, metres (>= 0).
    azimuth_rad : float
        Bearing of the line of sight in the frame the covariance is wanted in, radians.
    range_std_m : float
        1-sigma range accuracy, metres.
    azimuth_std_rad : float
        1-sigma azimuth accuracy, radians.

    Returns
    -------
    numpy.ndarray, shape (2, 2)
        Covariance in m^2, symmetric positive semi-definite.
    """
    c = math.cos(azimuth_rad)
    s = math.sin(azimuth_rad)
    var_r = range_std_m * range_std_m
    var_t = (range_m * azimuth_std_rad) ** 2  # cross-range variance
    return np.array(
        [
            [c * c * var_r + s * s * var_t, c * s * (var_r - var_t)],
            [c * s * (var_r - var_t), s * s * var_r + c * c * var_t],
        ]
    )


class ConstantVelocityModel:
    """Planar constant-velocity motion model with white-noise acceleration.

    Discretised continuous white-noise acceleration (CWNA) model, Bar-Shalom, Li,
    Kirubarajan (2001), section 6.2.2, per axis with state ``[p, v]``::

        F1 = [[1, T],          Q1 = q~ [[T^3/3, T^2/2],
              [0, 1]]                   [T^2/2, T    ]]

    assembled for the state ``[x, y, vx, vy]``.

    Parameters
    ----------
    q_accel_mps2 : float
        Acceleration noise level ``sigma_a`` in m/s^2 (>= 0). The CWNA power spectral
        density is ``q~ = sigma_a^2 * 1 s`` (m^2/s^3), i.e. over one second the velocity
        random-walks by about ``sigma_a`` m/s (the book's guideline, section 6.2.2:
        ``sqrt(q~ T)`` is the order of the velocity change over a period ``T``).

    Raises
    ------
    TrackingError
        If ``q_accel_mps2`` is negative or not finite.
    """

    __slots__ = ("q_psd_m2ps3",)

    def __init__(self, q_accel_mps2: float) -> None:
        if not (math.isfinite(q_accel_mps2) and q_accel_mps2 >= 0.0):
            raise TrackingError(f"q_accel_mps2 must be finite and >= 0, got {q_accel_mps2!r}")
        self.q_psd_m2ps3 = float(q_accel_mps2) ** 2

    def transition_matrix(self, dt_s: float) -> np.ndarray:
        """State transition ``F(dt)``, shape (4, 4), for a step of ``dt_s`` seconds (>= 0)."""
        f = np.eye(STATE_DIM)
        f[0, 2] = dt_s
        f[1, 3] = dt_s
        return f

    def process_noise(self, dt_s: float) -> np.ndarray:
        """Discretised CWNA process noise ``Q(dt)``, shape (4, 4), in state units squared."""
        q = self.q_psd_m2ps3
        a = q * dt_s**3 / 3.0
        b = q * dt_s**2 / 2.0
        c = q * dt_s
        return np.array(
            [
                [a, 0.0, b, 0.0],
                [0.0, a, 0.0, b],
                [b, 0.0, c, 0.0],
                [0.0, b, 0.0, c],
            ]
        )


def kf_predict(
    x: np.ndarray, p: np.ndarray, f: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kalman prediction, batched over tracks (Bar-Shalom et al. 2001, section 5.2).

    ``x' = F x``; ``P' = F P F^T + Q``.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, 4)
        States ``[x_m, y_m, vx_mps, vy_mps]`` in the world frame.
    p : numpy.ndarray, shape (N, 4, 4)
        State covariances.
    f : numpy.ndarray, shape (4, 4)
        Transition matrix (shared: every track is predicted to the same scan time).
    q : numpy.ndarray, shape (4, 4)
        Process noise.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Predicted states (N, 4) and covariances (N, 4, 4); new arrays.
    """
    x_pred = x @ f.T
    p_pred = f @ p @ f.T + q
    # Keep P exactly symmetric: round-off otherwise accumulates over long coasts.
    p_pred = 0.5 * (p_pred + np.swapaxes(p_pred, -1, -2))
    return x_pred, p_pred


def kf_update(
    x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kalman measurement update with ``H = [I2 0]``, batched over tracks.

    Bar-Shalom et al. (2001), section 5.2: innovation ``nu = z - H x``,
    ``S = H P H^T + R``, gain ``W = P H^T S^-1``, ``x+ = x + W nu`` and the Joseph form
    ``P+ = (I - W H) P (I - W H)^T + W R W^T`` (Joseph form, same chapter), which keeps ``P+``
    symmetric positive definite under round-off.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, 4)
        Predicted states in the world frame.
    p : numpy.ndarray, shape (N, 4, 4)
        Predicted covariances.
    z : numpy.ndarray, shape (N, 2)
        Measured positions ``[x_m, y_m]`` in the world frame.
    r : numpy.ndarray, shape (N, 2, 2)
        Measurement covariances, m^2.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Updated states (N, 4) and covariances (N, 4, 4); new arrays.
    """
    s = p[:, :2, :2] + r
    # Closed-form inverse of the 2x2 innovation covariance.
    det = s[:, 0, 0] * s[:, 1, 1] - s[:, 0, 1] * s[:, 1, 0]
    s_inv = np.empty_like(s)
    s_inv[:, 0, 0] = s[:, 1, 1] / det
    s_inv[:, 1, 1] = s[:, 0, 0] / det
    s_inv[:, 0, 1] = -s[:, 0, 1] / det
    s_inv[:, 1, 0] = -s[:, 1, 0] / det
    gain = p[:, :, :2] @ s_inv  # (N, 4, 2)
    nu = z - x[:, :2]
    x_upd = x + np.einsum("nij,nj->ni", gain, nu)
    i_kh = np.broadcast_to(np.eye(STATE_DIM), p.shape).copy()
    i_kh[:, :, :2] -= gain
    p_upd = i_kh @ p @ np.swapaxes(i_kh, -1, -2) + gain @ r @ np.swapaxes(gain, -1, -2)
    p_upd = 0.5 * (p_upd + np.swapaxes(p_upd, -1, -2))
    return x_upd, p_upd
