"""Rows of the radar component's reports: tracks for ``summary.json`` and the flight record."""

from __future__ import annotations

from controller.tracking import Tracker, world_to_body_point
from firmware_bridge.protocols.frames import Mount, apply_inverse


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
