"""What the tracker is tuned with and what it hands out: its config and track snapshots.

:class:`TrackerConfig` is the tracker's tuning (the rig's ``radar`` block maps onto it);
:class:`Track` is the immutable snapshot of one track after a scan, built for every live
track by :func:`snapshot_tracks` from the tracker's stacked state and its per-track
bookkeeping (:class:`TrackMeta`: hits, misses and the M-of-N window). The algorithm
itself is :class:`controller.tracking.tracker.Tracker`.

Pure code: no I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.tracking.models import TrackingError

__all__ = ["Track", "TrackerConfig", "snapshot_tracks"]


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tuning of the tracker (plain dataclass; the rig schema maps onto it).

    Attributes
    ----------
    gate_probability : float
        Chi-square gate probability ``P_G`` in (0, 1); 0.99 gives ``gamma = 9.21`` (2-D).
    confirm_m : int
        Hits needed in the last ``confirm_n`` scans to confirm a track (1 <= M <= N).
    confirm_n : int
        Confirmation window, scans.
    delete_misses : int
        Consecutive misses after which a track is deleted (it coasts until then), >= 1.
    q_accel_mps2 : float
        Acceleration noise level of the constant-velocity model, m/s^2 (spectral density
        ``q_accel_mps2**2`` m^2/s^3, see :class:`ConstantVelocityModel`).
    meas_std_m : float
        1-sigma position accuracy per axis used when a detection carries no
        range/azimuth accuracy, metres (> 0).
    init_speed_std_mps : float
        1-sigma prior on each velocity component of a new track, m/s (> 0).
    max_position_std_m : float
        Delete a track when the larger principal standard deviation of its position
        exceeds this, metres (> 0).
    min_meas_std_m : float
        Floor on each principal standard deviation of a polar measurement covariance,
        metres (> 0): keeps a near-zero-range point from producing a singular ``R``.
    initiate_in_confirmed_gate : bool
        Whether a detection left over inside a confirmed track's gate may start a new
        track. Default False: such a detection is most likely a second return of the
        same object (an extended target split in two, an object-id switch), and a
        duplicate track would only compete with the established one.
    """

    gate_probability: float = 0.99
    confirm_m: int = 3
    confirm_n: int = 5
    delete_misses: int = 5
    q_accel_mps2: float = 0.5
    meas_std_m: float = 0.3
    init_speed_std_mps: float = 2.0
    max_position_std_m: float = 5.0
    min_meas_std_m: float = 0.05
    initiate_in_confirmed_gate: bool = False

    def __post_init__(self) -> None:
        if not (0.0 < self.gate_probability < 1.0):
            raise TrackingError(f"gate_probability must be in (0, 1), got {self.gate_probability!r}")
        for name in ("confirm_m", "confirm_n", "delete_misses"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrackingError(f"{name} must be an integer >= 1, got {value!r}")
        if self.confirm_m > self.confirm_n:
            raise TrackingError(
                f"confirm_m ({self.confirm_m}) must not exceed confirm_n ({self.confirm_n})"
            )
        if not (math.isfinite(self.q_accel_mps2) and self.q_accel_mps2 >= 0.0):
            raise TrackingError(f"q_accel_mps2 must be finite and >= 0, got {self.q_accel_mps2!r}")
        for name in ("meas_std_m", "init_speed_std_mps", "max_position_std_m", "min_meas_std_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise TrackingError(f"{name} must be finite and > 0, got {value!r}")


@dataclass(frozen=True, slots=True, eq=False)
class Track:
    """Immutable snapshot of one track after a scan.

    Attributes
    ----------
    track_id : int
        Stable id, strictly increasing in order of initiation, never reused.
    state : numpy.ndarray, shape (4,), read-only
        ``[x_m, y_m, vx_mps, vy_mps]`` in the world frame at ``time_s``.
    covariance : numpy.ndarray, shape (4, 4), read-only
        State covariance (m^2, m^2/s, m^2/s^2 blocks).
    time_s : float
        Scan time the state refers to, seconds (tracker clock).
    born_s : float
        Scan time of initiation, seconds.
    last_update_s : float
        Scan time of the last associated detection, seconds.
    age_scans : int
        Scans since initiation, including the initiating one.
    hits : int
        Detections associated over the track's life, including the initiating one.
    misses : int
        Consecutive scans without a detection (0 right after a hit).
    confirmed : bool
        True once M-of-N confirmation passed; stays True until deletion.
    source_band : str
        ``source`` of the last detection associated (``"lr"`` / ``"sr"`` after fusion).
    range_rate_mps : float or None
        Measured range rate of the last detection associated (Doppler, relative to the
        radar, m/s, positive receding); None when that detection carried none.
    """

    track_id: int
    state: np.ndarray
    covariance: np.ndarray
    time_s: float
    born_s: float
    last_update_s: float
    age_scans: int
    hits: int
    misses: int
    confirmed: bool
    source_band: str
    range_rate_mps: float | None = None

    @property
    def x_m(self) -> float:
        """World-frame x position, metres."""
        return float(self.state[0])

    @property
    def y_m(self) -> float:
        """World-frame y position, metres."""
        return float(self.state[1])

    @property
    def vx_mps(self) -> float:
        """World-frame x velocity, m/s."""
        return float(self.state[2])

    @property
    def vy_mps(self) -> float:
        """World-frame y velocity, m/s."""
        return float(self.state[3])

    @property
    def age_s(self) -> float:
        """Time since initiation, seconds."""
        return self.time_s - self.born_s

    @property
    def position_std_m(self) -> float:
        """Larger principal 1-sigma of the position covariance, metres."""
        return math.sqrt(max_eig_2x2(self.covariance[0, 0], self.covariance[0, 1], self.covariance[1, 1]))


def max_eig_2x2(a: float, b: float, c: float) -> float:
    """Largest eigenvalue of the symmetric matrix ``[[a, b], [b, c]]``.

    Parameters
    ----------
    a, b, c : float
        The matrix entries (a 2x2 position covariance: m^2).

    Returns
    -------
    float
        ``(a + c) / 2 + sqrt(((a - c) / 2)^2 + b^2)``, same unit as the entries.
    """
    half_tr = 0.5 * (a + c)
    return half_tr + math.sqrt(max(0.0, 0.25 * (a - c) ** 2 + b * b))


@dataclass(slots=True)
class TrackMeta:
    """The tracker's mutable bookkeeping of one live track (what a :class:`Track` copies).

    Attributes
    ----------
    track_id : int
        Stable id.
    born_s, last_update_s : float
        Scan times of initiation and of the last associated detection, seconds.
    source_band : str
        ``source`` of the last detection associated.
    window : deque of bool
        Hit (True) / miss (False) of the last ``confirm_n`` covering scans.
    age_scans, hits, misses : int
        Scans since initiation, detections associated, consecutive misses.
    confirmed : bool
        M-of-N confirmation passed.
    range_rate_mps : float or None
        Measured range rate of the last associated detection, m/s (see :class:`Track`).
    """

    track_id: int
    born_s: float
    last_update_s: float
    source_band: str
    window: deque[bool] = field(default_factory=deque)  # hit (True) / miss (False), last N scans
    age_scans: int = 1
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    range_rate_mps: float | None = None


def snapshot_tracks(metas: Sequence[TrackMeta], x: np.ndarray, p: np.ndarray, now_s: float) -> list[Track]:
    """Snapshot every live track after a scan (per scan).

    Parameters
    ----------
    metas : sequence of TrackMeta
        Per-track bookkeeping, in the tracker's order (id order).
    x : numpy.ndarray, shape (T, 4)
        Stacked states ``[x_m, y_m, vx_mps, vy_mps]``, world frame.
    p : numpy.ndarray, shape (T, 4, 4)
        Stacked state covariances.
    now_s : float
        Scan time the states refer to, seconds.

    Returns
    -------
    list of Track
        One per track, in the order of ``metas``; their arrays are read-only copies, so
        a later scan never changes a snapshot already handed out.
    """
    out = []
    xs = x.copy()
    ps = p.copy()
    xs.setflags(write=False)
    ps.setflags(write=False)
    for i, meta in enumerate(metas):
        out.append(
            Track(
                track_id=meta.track_id,
                state=xs[i],
                covariance=ps[i],
                time_s=now_s,
                born_s=meta.born_s,
                last_update_s=meta.last_update_s,
                age_scans=meta.age_scans,
                hits=meta.hits,
                misses=meta.misses,
                confirmed=meta.confirmed,
                source_band=meta.source_band,
                range_rate_mps=meta.range_rate_mps,
            )
        )
    return out
