"""Helpers of the radar component: its tuning, the ego speed it sends, its report rows.

:func:`tracker_config` (the rig's ``radar`` block -> the tracker's tuning),
:func:`speed_long_mps` (the ARS408's ego-motion input), :func:`track_rows` (tracks for
``summary.json``) and :func:`cycle_tracks` (the flight record's ``/radar/<band>/tracks``).
"""

from __future__ import annotations

from controller.config import RadarCfg
from controller.errors import ConfigError
from controller.tracking import Tracker, TrackerConfig, TrackingError, world_to_body_point
from firmware_bridge.protocols.frames import Mount, Pose2D, apply_inverse, rotate_inverse


def speed_long_mps(vx_world_mps: float, vy_world_mps: float, yaw_rad: float) -> float:
    """Vehicle speed along its body x axis, m/s (what ARS408 SpeedInformation carries).

    Parameters
    ----------
    vx_world_mps, vy_world_mps : float
        Vehicle velocity in the world frame, m/s.
    yaw_rad : float
        Vehicle heading, world frame, CCW, rad.

    Returns
    -------
    float
        ``v . x_body`` (negative when reversing), m/s.
    """
    return rotate_inverse(Pose2D(0.0, 0.0, yaw_rad), (vx_world_mps, vy_world_mps))[0]


def tracker_config(radar_cfg: RadarCfg, *, source: str = "radar") -> TrackerConfig:
    """Map the rig's ``radar`` block onto the tracker's tuning.

    Parameters
    ----------
    radar_cfg : RadarCfg
        ``confirm_m`` of the last ``confirm_n`` scans confirm a track (M-of-N),
        ``delete_misses`` consecutive misses delete it, ``meas_std_m`` is the 1-sigma
        position accuracy per axis, m.
    source : str
        File named in the error.

    Returns
    -------
    TrackerConfig

    Raises
    ------
    ConfigError
        When the combination is invalid (e.g. ``confirm_m > confirm_n``).
    """
    try:
        return TrackerConfig(confirm_m=radar_cfg.confirm_m, confirm_n=radar_cfg.confirm_n,
                             delete_misses=radar_cfg.delete_misses, meas_std_m=radar_cfg.meas_std_m)
    except TrackingError as exc:
        raise ConfigError(source, "radar", str(exc)) from exc


def track_rows(tracker: Tracker, band: str, radar: Mount,
               pose: tuple[float, float, float] | None) -> list[dict[str, object]]:
    """Return the confirmed tracks of ``band`` in the radar's and the world frame (summary).

    Parameters
    ----------
    tracker : Tracker
    band : str
        ``lr`` or ``sr`` (:data:`controller.tracking.BAND_LR`, ``BAND_SR``).
    radar : Mount
        The radar's mount on the body (m, rad).
    pose : (x_m, y_m, yaw_rad) or None
        The vehicle's last pose (world frame); None: no rows.

    Returns
    -------
    list of dict
        ``id``, ``x_m``/``y_m`` (radar frame, m), ``x_world_m``/``y_world_m`` (m),
        ``age_s``, ``hits``; rounded to mm / ms.
    """
    rows: list[dict[str, object]] = []
    if pose is None:
        return rows
    for t in tracker.confirmed():
        if t.source_band != band:
            continue
        rx, ry = apply_inverse(radar, world_to_body_point(t.x_m, t.y_m, pose))
        rows.append({
            "id": t.track_id,
            "x_m": round(rx, 3),
            "y_m": round(ry, 3),
            "x_world_m": round(t.x_m, 3),
            "y_world_m": round(t.y_m, 3),
            "age_s": round(t.age_s, 3),
            "hits": t.hits,
        })
    return rows


def cycle_tracks(tracker: Tracker, band: str, tick: int, now_s: float) -> dict[str, object]:
    """Return the ``/radar/<band>/tracks`` record: the band's confirmed tracks, world frame.

    Returns
    -------
    dict
        ``tick``, ``t_s`` (s), ``count``, ``tracks``: ``[{id, x_m, y_m, vx_mps, vy_mps, hits}]``
        (world frame, m and m/s, unrounded).
    """
    tracks = [{"id": t.track_id, "x_m": t.x_m, "y_m": t.y_m, "vx_mps": t.vx_mps, "vy_mps": t.vy_mps,
               "hits": t.hits} for t in tracker.confirmed() if t.source_band == band]
    return {"tick": tick, "t_s": now_s, "count": len(tracks), "tracks": tracks}
