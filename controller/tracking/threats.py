"""Keep-out and time-to-collision decisions on confirmed tracks (issue 3, point 5).

Geometry (planar, world frame). With the track's position and velocity relative to the
vehicle, ``p = p_track - p_vehicle`` and ``v = v_track - v_vehicle`` (straight-line
relative motion over the horizon, consistent with the constant-velocity track model):

* closest point of approach (CPA): ``t_cpa = max(0, -(p . v) / |v|^2)``,
  ``d_cpa = |p + v t_cpa|`` (the DCPA/TCPA of collision-avoidance practice; A. S.
  Lenart, "Collision threat parameters for a new radar display and plot technique",
  Journal of Navigation 36(3), 1983);
* time to collision with the keep-out disc of radius ``R`` around the vehicle: the first
  ``t >= 0`` with ``|p + v t| = R``, the smaller root of
  ``|v|^2 t^2 + 2 (p . v) t + |p|^2 - R^2 = 0``:
  ``ttc = (-(p . v) - sqrt((p . v)^2 - |v|^2 (|p|^2 - R^2))) / |v|^2``, defined when the
  discriminant is >= 0 and ``p . v < 0`` (closing); ``0`` when already inside; ``inf``
  when the relative path never enters the disc.

A breach is ``|p| <= R`` (inside the keep-out) or ``ttc < min_ttc_s``. A target passing
wide (``d_cpa > R``) never breaches however fast it closes.

Pure code: no I/O, no sleeping, no threads. Per-tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.tracking.models import PoseInput, TrackingError, as_pose

__all__ = ["AssessedTrack", "Threat", "assess_threats", "assess_track", "check_limits", "relative_geometry",
           "vehicle_motion"]


class AssessedTrack(Protocol):
    """What :func:`assess_threats` reads of a track (e.g. :class:`controller.tracking.tracker.Track`).

    World frame: position in m, velocity in m/s.
    """

    @property
    def track_id(self) -> int:
        """The track's id."""

    @property
    def confirmed(self) -> bool:
        """Whether the track passed M-of-N confirmation (tentative tracks are skipped)."""

    @property
    def x_m(self) -> float:
        """Position x, m."""

    @property
    def y_m(self) -> float:
        """Position y, m."""

    @property
    def vx_mps(self) -> float:
        """Velocity x, m/s."""

    @property
    def vy_mps(self) -> float:
        """Velocity y, m/s."""


@dataclass(frozen=True, slots=True)
class Threat:
    """Keep-out / time-to-collision assessment of one confirmed track.

    Attributes
    ----------
    track_id : int
        The track's id.
    range_m : float
        Current distance from the vehicle reference point, metres.
    closing_speed_mps : float
        ``-(p . v) / |p|``: positive when the distance shrinks, m/s.
    time_to_cpa_s : float
        Time to the closest point of approach, seconds (0 when opening).
    cpa_distance_m : float
        Distance at the closest point of approach, metres.
    ttc_s : float
        Time until the relative path enters the keep-out disc, seconds; ``0`` inside it;
        ``math.inf`` when it never does.
    inside_keep_out : bool
        ``range_m <= keep_out_radius_m``.
    ttc_breach : bool
        ``ttc_s < min_ttc_s``.
    """

    track_id: int
    range_m: float
    closing_speed_mps: float
    time_to_cpa_s: float
    cpa_distance_m: float
    ttc_s: float
    inside_keep_out: bool
    ttc_breach: bool

    @property
    def is_breach(self) -> bool:
        """True when the track is inside the keep-out or its TTC is under the limit."""
        return self.inside_keep_out or self.ttc_breach


def check_limits(keep_out_radius_m: float, min_ttc_s: float) -> None:
    """Refuse a keep-out radius that is not finite and >= 0, or a TTC limit that is not >= 0.

    Parameters
    ----------
    keep_out_radius_m : float
        Keep-out radius, metres.
    min_ttc_s : float
        Smallest acceptable time to collision, seconds (``inf`` allowed).

    Raises
    ------
    TrackingError
        If either limit is out of range or NaN.
    """
    if not (math.isfinite(keep_out_radius_m) and keep_out_radius_m >= 0.0):
        raise TrackingError(f"keep_out_radius_m must be finite and >= 0, got {keep_out_radius_m!r}")
    if not (min_ttc_s >= 0.0):  # inf allowed (always breach when closing into the disc)
        raise TrackingError(f"min_ttc_s must be >= 0, got {min_ttc_s!r}")


def assess_track(
    track_id: int,
    rel_position_m: tuple[float, float],
    rel_velocity_mps: tuple[float, float],
    keep_out_radius_m: float,
    min_ttc_s: float,
) -> Threat:
    """Assess one target from its position and velocity relative to the vehicle.

    Parameters
    ----------
    track_id : int
        Id carried into the result.
    rel_position_m : (float, float)
        ``p_target - p_vehicle``, world frame (any fixed frame), metres.
    rel_velocity_mps : (float, float)
        ``v_target - v_vehicle``, same frame, m/s.
    keep_out_radius_m : float
        Keep-out radius around the vehicle reference point, metres (>= 0).
    min_ttc_s : float
        Smallest acceptable time to collision, seconds (>= 0).

    Returns
    -------
    Threat
        The assessment (see the module notes for the formulas).

    Raises
    ------
    TrackingError
        If a limit is negative or NaN.
    """
    check_limits(keep_out_radius_m, min_ttc_s)
    px, py = float(rel_position_m[0]), float(rel_position_m[1])
    vx, vy = float(rel_velocity_mps[0]), float(rel_velocity_mps[1])
    range_m, closing, t_cpa, cpa_distance_m, ttc, inside = relative_geometry(
        px, py, vx, vy, keep_out_radius_m * keep_out_radius_m)
    return Threat(
        track_id=int(track_id),
        range_m=range_m,
        closing_speed_mps=closing,
        time_to_cpa_s=t_cpa,
        cpa_distance_m=cpa_distance_m,
        ttc_s=ttc,
        inside_keep_out=inside,
        ttc_breach=ttc < min_ttc_s,
    )


def relative_geometry(px: float, py: float, vx: float, vy: float,
                      keep_out_radius_sq_m2: float) -> tuple[float, float, float, float, float, bool]:
    """Range, closing speed, CPA and time to collision of one relative track (no checks).

    The formulas of the module notes, shared by :func:`assess_track` and the per-tick
    keep-out of :meth:`controller.components.radar.RadarSubsystem.threats` (which checks
    its inputs once per tick, not once per track).

    Parameters
    ----------
    px, py : float
        ``p_target - p_vehicle``, metres (plain floats).
    vx, vy : float
        ``v_target - v_vehicle``, m/s.
    keep_out_radius_sq_m2 : float
        Square of the keep-out radius, m^2.

    Returns
    -------
    (range_m, closing_speed_mps, time_to_cpa_s, cpa_distance_m, ttc_s, inside_keep_out)
        As the fields of :class:`Threat` (m, m/s, s, m, s, bool).
    """
    r2 = px * px + py * py
    range_m = math.sqrt(r2)
    pv = px * vx + py * vy
    v2 = vx * vx + vy * vy
    closing = -pv / range_m if range_m > 0.0 else 0.0
    if v2 > 0.0 and pv < 0.0:
        t_cpa = -pv / v2
    else:
        t_cpa = 0.0
    cpa_distance_m = math.hypot(px + vx * t_cpa, py + vy * t_cpa)
    rr = keep_out_radius_sq_m2
    inside = r2 <= rr
    if inside:
        ttc = 0.0
    elif v2 > 0.0 and pv < 0.0:
        disc = pv * pv - v2 * (r2 - rr)
        ttc = (-pv - math.sqrt(disc)) / v2 if disc >= 0.0 else math.inf
    else:
        ttc = math.inf
    return range_m, closing, t_cpa, cpa_distance_m, ttc, inside


def vehicle_motion(vehicle_pose: PoseInput,
                   vehicle_velocity_world: Sequence[float]) -> tuple[float, float, float, float]:
    """Check and unpack the vehicle's position and velocity as :func:`assess_threats` reads them.

    Parameters
    ----------
    vehicle_pose : PoseInput
        Vehicle pose in the world frame (m, m, rad).
    vehicle_velocity_world : (float, float)
        Vehicle velocity in the world frame, m/s.

    Returns
    -------
    (x_m, y_m, vx_mps, vy_mps)
        Plain floats.

    Raises
    ------
    TrackingError
        If the pose/velocity is malformed or not finite.
    """
    if type(vehicle_pose) is tuple and len(vehicle_pose) == 3:
        # as as_pose checks a (x_m, y_m, yaw_rad) tuple, without building the Pose2D (per tick)
        x0, y0, yaw = float(vehicle_pose[0]), float(vehicle_pose[1]), float(vehicle_pose[2])
        if not (math.isfinite(x0) and math.isfinite(y0) and math.isfinite(yaw)):
            raise TrackingError(f"pose has a non-finite component: {(x0, y0, yaw)!r}")
    else:
        x0, y0, _ = as_pose(vehicle_pose)
    try:
        vvx, vvy = (float(v) for v in vehicle_velocity_world)
    except (TypeError, ValueError) as exc:
        raise TrackingError(
            f"vehicle_velocity_world must be (vx_mps, vy_mps), got {vehicle_velocity_world!r}"
        ) from exc
    if not (math.isfinite(vvx) and math.isfinite(vvy)):
        raise TrackingError(f"vehicle_velocity_world is not finite: {(vvx, vvy)!r}")
    return x0, y0, vvx, vvy


def assess_threats(
    tracks: Iterable[AssessedTrack],
    vehicle_pose: PoseInput,
    vehicle_velocity_world: Sequence[float],
    keep_out_radius_m: float,
    min_ttc_s: float,
    *,
    include_all: bool = False,
) -> list[Threat]:
    """Keep-out and time-to-collision check of the confirmed tracks (per tick).

    Parameters
    ----------
    tracks : iterable of AssessedTrack
        Tracks from :meth:`controller.tracking.tracker.Tracker.step` (anything with
        ``track_id``, ``confirmed``, ``x_m``, ``y_m``, ``vx_mps``, ``vy_mps`` in the world
        frame). Tentative tracks are ignored.
    vehicle_pose : PoseInput
        Vehicle pose in the world frame (m, m, rad); the yaw is not used (the keep-out is
        a disc).
    vehicle_velocity_world : (float, float)
        Vehicle velocity ``(vx_mps, vy_mps)`` in the world frame.
    keep_out_radius_m : float
        Rig keep-out radius, metres (>= 0).
    min_ttc_s : float
        Rig limit on time to collision, seconds (>= 0).
    include_all : bool, optional
        Return the assessment of every confirmed track, not only the breaches.

    Returns
    -------
    list of Threat
        Breaching confirmed tracks (all confirmed tracks with ``include_all``), most
        urgent first (smallest ``ttc_s``, then smallest ``range_m``). An empty list means
        no keep-out fault.

    Raises
    ------
    TrackingError
        If the pose/velocity is malformed or not finite, or a limit is invalid.
    """
    check_limits(keep_out_radius_m, min_ttc_s)
    x0, y0, vvx, vvy = vehicle_motion(vehicle_pose, vehicle_velocity_world)
    out: list[Threat] = []
    for trk in tracks:
        if not trk.confirmed:
            continue
        threat = assess_track(
            trk.track_id,
            (trk.x_m - x0, trk.y_m - y0),
            (trk.vx_mps - vvx, trk.vy_mps - vvy),
            keep_out_radius_m,
            min_ttc_s,
        )
        if include_all or threat.is_breach:
            out.append(threat)
    out.sort(key=lambda t: (t.ttc_s, t.range_m, t.track_id))
    return out
