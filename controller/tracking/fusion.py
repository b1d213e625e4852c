"""Range-band fusion of the long-range (LR) and short-range (SR) radars.

The two radars overlap. Rather than feeding both into the tracker (double detections of
one target, each with its own bias), each radar is *authoritative* in its band: the SR
radar (TI IWR6843) inside ``sr_threshold_m`` of the vehicle, the LR radar (ARS408)
beyond it. The band of a detection is decided on its range from the body origin,
``hypot(x_m, y_m)`` in the body frame, so one target gets one band whichever radar saw
it (issue 3, point 4; the threshold comes from the rig).

Pure code: no I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from controller.tracking.models import Detection, TrackingError

__all__ = ["BAND_LR", "BAND_SR", "band_of", "select_by_band"]

BAND_LR = "lr"
"""Source/band tag of a detection kept from the long-range radar."""
BAND_SR = "sr"
"""Source/band tag of a detection kept from the short-range radar."""


def band_of(range_m: float, sr_threshold_m: float) -> str:
    """Band that owns a point at ``range_m`` from the body origin.

    Parameters
    ----------
    range_m : float
        Distance from the body origin, metres.
    sr_threshold_m : float
        Band boundary, metres: strictly inside it is SR, at or beyond it LR.

    Returns
    -------
    str
        :data:`BAND_SR` or :data:`BAND_LR`.
    """
    return BAND_SR if range_m < sr_threshold_m else BAND_LR


def select_by_band(
    lr_detections_body: Sequence[Detection],
    sr_detections_body: Sequence[Detection],
    sr_threshold_m: float,
) -> list[Detection]:
    """Keep each radar's detections in its own range band (per scan).

    Parameters
    ----------
    lr_detections_body : sequence of Detection
        Long-range radar detections, body frame (metres), already through the mount pose.
    sr_detections_body : sequence of Detection
        Short-range radar detections, body frame (metres).
    sr_threshold_m : float
        Band boundary (rig ``sr_threshold_m``), metres, finite and >= 0. ``0`` hands
        everything to the LR radar.

    Returns
    -------
    list of Detection
        SR detections with ``hypot(x_m, y_m) < sr_threshold_m`` tagged ``source="sr"``,
        followed by LR detections with ``hypot(x_m, y_m) >= sr_threshold_m`` tagged
        ``source="lr"``; input order kept within each group. Detections with a
        non-finite position are dropped.

    Raises
    ------
    TrackingError
        If ``sr_threshold_m`` is negative or not finite.
    """
    if not (math.isfinite(sr_threshold_m) and sr_threshold_m >= 0.0):
        raise TrackingError(f"sr_threshold_m must be finite and >= 0, got {sr_threshold_m!r}")
    kept: list[Detection] = []
    for det in sr_detections_body:
        if det.is_finite() and math.hypot(det.x_m, det.y_m) < sr_threshold_m:
            kept.append(det if det.source == BAND_SR else replace(det, source=BAND_SR))
    for det in lr_detections_body:
        if det.is_finite() and math.hypot(det.x_m, det.y_m) >= sr_threshold_m:
            kept.append(det if det.source == BAND_LR else replace(det, source=BAND_LR))
    return kept
