"""Radar tracking: fusion by range band, a tracker composed by role, the keep-out decision.

The multi-target tracker is composed by role; the keep-out / time-to-collision decision
follows issue 3, points 4 and 5.

Pure code: no I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).

Typical per-scan use::

    dets_body = select_by_band(lr_body, sr_body, rig.sr_threshold_m)
    tracks = tracker.step(now_s, body_to_world(dets_body, pose))
    if assess_threats(tracks, pose, velocity_world, keep_out_radius_m, min_ttc_s):
        raise_fault()
"""

from controller.tracking.association import gate_clusters, gnn_associate, solve_assignment
from controller.tracking.fusion import BAND_LR, BAND_SR, band_of, select_by_band
from controller.tracking.gating import chi2_cdf, chi2_ppf, gate_threshold, mahalanobis_sq_matrix
from controller.tracking.models import (
    ConstantVelocityModel,
    Detection,
    Pose2D,
    TrackingError,
    as_pose,
    body_to_world,
    covariance_from_polar,
    kf_predict,
    kf_update,
    world_to_body_point,
)
from controller.tracking.threats import Threat, assess_threats, assess_track
from controller.tracking.tracker import Track, Tracker, TrackerConfig

__all__ = [
    "BAND_LR",
    "BAND_SR",
    "ConstantVelocityModel",
    "Detection",
    "Pose2D",
    "Threat",
    "Track",
    "Tracker",
    "TrackerConfig",
    "TrackingError",
    "as_pose",
    "assess_threats",
    "assess_track",
    "band_of",
    "body_to_world",
    "chi2_cdf",
    "chi2_ppf",
    "covariance_from_polar",
    "gate_clusters",
    "gate_threshold",
    "gnn_associate",
    "kf_predict",
    "kf_update",
    "mahalanobis_sq_matrix",
    "select_by_band",
    "solve_assignment",
    "world_to_body_point",
]
