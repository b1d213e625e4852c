"""Multi-target tracker composed by role.

Predict, gate, associate, update, initiate, confirm (M-of-N), coast, delete.

One call of :meth:`Tracker.step` is one radar scan (per scan, not per control tick):

1. **predict** every track to the scan time with the constant-velocity Kalman model
   (:mod:`controller.tracking.models`);
2. **gate** every (track, detection) pair on the chi-square of its innovation
   (:mod:`controller.tracking.gating`);
3. **associate** by global nearest neighbour (:mod:`controller.tracking.association`);
4. **update** the associated tracks (Kalman update, Joseph form);
5. **coast** the others: a miss is counted (unless the caller says the scan did not
   cover the track's position);
6. **confirm** a tentative track once it has M hits in its last N scans (the "M-of-N"
   logic of Blackman & Popoli, *Design and Analysis of Modern Tracking Systems*, 1999;
   Bar-Shalom, Li, Kirubarajan 2001);
7. **delete** a track after K consecutive misses, a tentative track as soon as it can no
   longer reach M hits within its first N scans, and any track whose position
   uncertainty grows past a bound;
8. **initiate** a tentative track at every detection no track took and no confirmed
   track gates (one-point initiation: position from the detection, zero velocity with a
   wide prior).

Tracks live in the world frame. Ids are stable and strictly increasing, never reused. The
tuning (:class:`TrackerConfig`) and the snapshots handed out (:class:`Track`) are in
:mod:`controller.tracking.tracks` (re-exported here).

Pure code: no I/O, no sleeping, no threads; deterministic for a given input sequence.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from controller.tracking.association import gnn_associate
from controller.tracking.gating import gate_threshold, mahalanobis_sq_matrix
from controller.tracking.models import (
    STATE_DIM,
    ConstantVelocityModel,
    Detection,
    TrackingError,
    covariance_from_polar,
    kf_predict,
    kf_update,
)
from controller.tracking.tracks import Track, TrackerConfig, TrackMeta, max_eig_2x2, snapshot_tracks
from hal.snapshot import JsonValue, State, apply, capture

__all__ = ["ConfirmedHit", "TrackerConfig", "Track", "Tracker"]


class ConfirmedHit(NamedTuple):
    """A confirmed track its last covering scan detected, in plain floats (:meth:`Tracker.confirmed_hits`).

    World frame, at the scan time ``time_s`` (s): position (m), velocity (m/s), the
    velocity block of the covariance (``P[2, 2]``, ``P[2, 3]``, ``P[3, 3]``, (m/s)^2) and
    the Doppler of the last detection (m/s, positive receding; None: not measured).
    """

    track_id: int
    time_s: float
    x_m: float
    y_m: float
    vx_mps: float
    vy_mps: float
    pvv_xx: float
    pvv_xy: float
    pvv_yy: float
    range_rate_mps: float | None


def _confirmed_hits(tracks: Sequence[Track]) -> tuple[ConfirmedHit, ...]:
    """Return the rows of :meth:`Tracker.confirmed_hits` for a list of snapshots (per scan)."""
    rows = []
    for t in tracks:
        if t.confirmed and not t.misses:
            x, y, vx, vy = t.state.tolist()
            p = t.covariance
            rows.append(ConfirmedHit(t.track_id, t.time_s, x, y, vx, vy, float(p[2, 2]), float(p[2, 3]),
                                     float(p[3, 3]), t.range_rate_mps))
    return tuple(rows)


class Tracker:
    """Scan-by-scan multi-target tracker in the world frame.

    Parameters
    ----------
    config : TrackerConfig, optional
        Tuning; defaults as documented there.

    Attributes
    ----------
    scans : int
        Scans processed.
    rejected_detections : int
        Detections dropped for a non-finite position.
    tracks_initiated, tracks_deleted, tracks_confirmed : int
        Running counts over the tracker's life.

    Notes
    -----
    Role functions are attributes and can be swapped for another of the same signature:
    ``associate(d2 (T, D), gate, extra_cost (T, D)) -> [(track_index, detection_index)]``.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self.model = ConstantVelocityModel(self.config.q_accel_mps2)
        self.gate = gate_threshold(self.config.gate_probability, 2)
        self.associate: Callable[..., list[tuple[int, int]]] = gnn_associate
        self._x = np.zeros((0, STATE_DIM))
        self._p = np.zeros((0, STATE_DIM, STATE_DIM))
        self._meta: list[TrackMeta] = []
        self._time_s: float | None = None
        self._next_id = 1
        self._snapshot: list[Track] = []
        self._hits: tuple[ConfirmedHit, ...] = ()  # confirmed_hits of _snapshot, set with it
        self.scans = 0
        self.rejected_detections = 0
        self.tracks_initiated = 0
        self.tracks_deleted = 0
        self.tracks_confirmed = 0

    # ----------------------------------------------------------------- snapshot
    #: The tracker's state in a snapshot (issue 12 part 4): every track's filter state and
    #: bookkeeping, the snapshots handed out, the id counter and the counters.
    SNAPSHOT_FIELDS = ("_x", "_p", "_meta", "_time_s", "_next_id", "_snapshot", "scans", "rejected_detections",
                       "tracks_initiated", "tracks_deleted", "tracks_confirmed")

    def snapshot(self) -> State:
        """Return the tracks (state vectors, covariances, bookkeeping), the next id and the counters."""
        return capture(self, self.SNAPSHOT_FIELDS)

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of a tracker with the same configuration."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._hits = _confirmed_hits(self._snapshot)

    # ----------------------------------------------------------------- queries
    @property
    def tracks(self) -> list[Track]:
        """Snapshots of every live track after the last scan, in id order."""
        return list(self._snapshot)

    def confirmed(self) -> list[Track]:
        """Snapshots of the confirmed live tracks after the last scan, in id order."""
        return [t for t in self._snapshot if t.confirmed]

    def confirmed_hits(self) -> tuple[ConfirmedHit, ...]:
        """Return the confirmed tracks with no miss after the last scan, as plain floats, in id order.

        What the keep-out reads every tick (:meth:`controller.components.radar.RadarSubsystem.threats`):
        made from the snapshots (the same values, ``float`` of the arrays' entries)
        whenever they are (every scan, reset and restore) and handed out until then.

        Returns
        -------
        tuple of ConfirmedHit
        """
        return self._hits

    @property
    def time_s(self) -> float | None:
        """Time of the last scan, seconds (None before the first)."""
        return self._time_s

    def reset(self) -> None:
        """Drop every track (e.g. when the radar went stale, SAFETY.md B01).

        Ids keep increasing across a reset, so an old id never names a new track.
        """
        self.tracks_deleted += len(self._meta)
        self._x = np.zeros((0, STATE_DIM))
        self._p = np.zeros((0, STATE_DIM, STATE_DIM))
        self._meta = []
        self._snapshot = []
        self._hits = ()
        self._time_s = None

    # ------------------------------------------------------------------- roles
    def measurement_covariances(self, detections: Sequence[Detection]) -> np.ndarray:
        """Measurement covariance ``R`` of each detection, world frame.

        Parameters
        ----------
        detections : sequence of Detection
            World-frame detections.

        Returns
        -------
        numpy.ndarray, shape (D, 2, 2)
            Polar covariance (:func:`covariance_from_polar`, principal deviations floored
            at ``min_meas_std_m``) when the detection carries range, azimuth and both
            accuracies; otherwise ``meas_std_m**2 * I``.
        """
        cfg = self.config
        r = np.zeros((len(detections), 2, 2))
        iso = cfg.meas_std_m * cfg.meas_std_m
        for j, det in enumerate(detections):
            if (
                det.range_m is not None
                and det.azimuth_rad is not None
                and det.range_std_m is not None
                and det.azimuth_std_rad is not None
                and math.isfinite(det.range_m)
                and math.isfinite(det.azimuth_rad)
                and math.isfinite(det.range_std_m)
                and math.isfinite(det.azimuth_std_rad)
            ):
                range_std = max(abs(det.range_std_m), cfg.min_meas_std_m)
                cross_std_rad = abs(det.azimuth_std_rad)
                if abs(det.range_m) * cross_std_rad < cfg.min_meas_std_m:
                    cross_std_rad = cfg.min_meas_std_m / max(abs(det.range_m), 1e-9)
                r[j] = covariance_from_polar(abs(det.range_m), det.azimuth_rad, range_std, cross_std_rad)
            else:
                r[j, 0, 0] = iso
                r[j, 1, 1] = iso
        return r

    def _associate(self, z: np.ndarray, r: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Two-stage GNN: confirmed tracks choose first, tentative tracks take the rest.

        The cost of a gated pair is ``d2 + ln det S``. Letting confirmed tracks choose
        first (a common practice, e.g. Blackman & Popoli 1999 on track initiation) stops
        a fresh tentative track, whose wide velocity prior makes every nearby detection
        look likely, from stealing the detections of an established track.

        Returns the pairs and, per detection, whether it lies in a confirmed track's gate.
        """
        d2, log_det = mahalanobis_sq_matrix(
            self._x[:, :2], self._p[:, :2, :2], z, r, return_log_det=True
        )
        confirmed = np.fromiter((m.confirmed for m in self._meta), dtype=bool, count=len(self._meta))
        in_confirmed_gate = (d2[confirmed] <= self.gate).any(axis=0)
        if confirmed.all() or not confirmed.any():
            return self.associate(d2, self.gate, log_det), in_confirmed_gate
        conf_idx = np.flatnonzero(confirmed)
        tent_idx = np.flatnonzero(~confirmed)
        pairs = [(int(conf_idx[a]), b) for a, b in self.associate(d2[conf_idx], self.gate, log_det[conf_idx])]
        taken = {b for _, b in pairs}
        free = np.array([j for j in range(z.shape[0]) if j not in taken], dtype=np.intp)
        if free.size:
            sub = np.ix_(tent_idx, free)
            pairs += [
                (int(tent_idx[a]), int(free[b]))
                for a, b in self.associate(d2[sub], self.gate, log_det[sub])
            ]
        return pairs, in_confirmed_gate

    def _predict(self, dt_s: float) -> None:
        if dt_s > 0.0 and self._meta:
            f = self.model.transition_matrix(dt_s)
            q = self.model.process_noise(dt_s)
            self._x, self._p = kf_predict(self._x, self._p, f, q)

    # -------------------------------------------------------------------- step
    def step(
        self,
        now_s: float,
        detections_world: Sequence[Detection],
        *,
        in_coverage: Callable[[float, float], bool] | None = None,
    ) -> list[Track]:
        """Process one radar scan (per scan).

        Parameters
        ----------
        now_s : float
            Scan time, seconds on the controller clock (monotonic; receipt time of the
            completed cycle). Must not precede the previous scan.
        detections_world : sequence of Detection
            The scan's detections in the world frame (see :func:`body_to_world`,
            :func:`select_by_band`). Non-finite ones are dropped and counted.
        in_coverage : callable (x_m, y_m) -> bool, optional
            Whether this scan's sensors cover a world-frame point. A track that gets no
            detection is charged a miss only where it is covered (default: everywhere);
            elsewhere it coasts without a miss. Use it when LR and SR scans arrive
            separately: an SR scan says nothing about a target in the LR band.

        Returns
        -------
        list of Track
            Snapshots of every live track after the scan, in id order (also
            :attr:`tracks`).

        Raises
        ------
        TrackingError
            If ``now_s`` is not finite or precedes the previous scan.
        """
        cfg = self.config
        now_s = float(now_s)
        if not math.isfinite(now_s):
            raise TrackingError(f"scan time must be finite, got {now_s!r}")
        if self._time_s is not None and now_s < self._time_s:
            raise TrackingError(f"scan time {now_s!r} s precedes the previous scan {self._time_s!r} s")
        dets = [d for d in detections_world if d.is_finite()]
        self.rejected_detections += len(detections_world) - len(dets)
        dt_s = 0.0 if self._time_s is None else now_s - self._time_s
        self._time_s = now_s
        self.scans += 1
        if not dets and not self._meta:
            # an empty scan and no track (most scans of a quiet sky): nothing to predict,
            # associate, update, delete or initiate; the steps below would change nothing
            self._snapshot = []
            self._hits = ()
            return []

        # 1. predict
        self._predict(dt_s)

        # 2-3. gate and associate
        n_tracks = len(self._meta)
        z = np.array([(d.x_m, d.y_m) for d in dets], dtype=float).reshape(-1, 2)
        r = self.measurement_covariances(dets)
        in_confirmed_gate = np.zeros(len(dets), dtype=bool)
        if n_tracks and dets:
            pairs, in_confirmed_gate = self._associate(z, r)
        else:
            pairs = []

        # 4. update
        if pairs:
            ti = np.fromiter((p[0] for p in pairs), dtype=np.intp, count=len(pairs))
            dj = np.fromiter((p[1] for p in pairs), dtype=np.intp, count=len(pairs))
            x_upd, p_upd = kf_update(self._x[ti], self._p[ti], z[dj], r[dj])
            self._x[ti] = x_upd
            self._p[ti] = p_upd
        det_of_track = dict(pairs)

        # 5-7. bookkeeping: hits / misses / confirm / delete
        keep = np.ones(n_tracks, dtype=bool)
        max_var = cfg.max_position_std_m * cfg.max_position_std_m
        for i, meta in enumerate(self._meta):
            meta.age_scans += 1
            j = det_of_track.get(i)
            if j is not None:
                meta.hits += 1
                meta.misses = 0
                meta.last_update_s = now_s
                meta.source_band = dets[j].source
                meta.range_rate_mps = dets[j].range_rate_mps
                meta.window.append(True)
            elif in_coverage is None or in_coverage(float(self._x[i, 0]), float(self._x[i, 1])):
                meta.misses += 1
                meta.window.append(False)
            self._confirm_or_condemn(meta, keep, i)
            if meta.misses >= cfg.delete_misses:
                keep[i] = False
            elif keep[i]:
                pc = self._p[i]
                if max_eig_2x2(pc[0, 0], pc[0, 1], pc[1, 1]) > max_var:
                    keep[i] = False
        if not keep.all():
            self.tracks_deleted += int((~keep).sum())
            self._x = self._x[keep]
            self._p = self._p[keep]
            self._meta = [m for m, k in zip(self._meta, keep, strict=True) if k]

        # 8. initiate
        taken = set(det_of_track.values())
        fresh = [
            j
            for j in range(len(dets))
            if j not in taken and (cfg.initiate_in_confirmed_gate or not in_confirmed_gate[j])
        ]
        if fresh:
            self._initiate(now_s, [dets[j] for j in fresh], z[fresh], r[fresh])

        self._snapshot = snapshot_tracks(self._meta, self._x, self._p, now_s)
        self._hits = _confirmed_hits(self._snapshot)
        return list(self._snapshot)

    def _confirm_or_condemn(self, meta: TrackMeta, keep: np.ndarray, i: int) -> None:
        """M-of-N: confirm, or delete a tentative track that can no longer make it."""
        if meta.confirmed:
            return
        m = self.config.confirm_m
        n = self.config.confirm_n
        hits_in_window = sum(meta.window)
        if hits_in_window >= m:
            meta.confirmed = True
            self.tracks_confirmed += 1
        elif hits_in_window + (n - len(meta.window)) < m:
            keep[i] = False

    def _initiate(self, now_s: float, dets: list[Detection], z: np.ndarray, r: np.ndarray) -> None:
        cfg = self.config
        k = len(dets)
        x0 = np.zeros((k, STATE_DIM))
        x0[:, :2] = z
        p0 = np.zeros((k, STATE_DIM, STATE_DIM))
        p0[:, :2, :2] = r
        v_var = cfg.init_speed_std_mps * cfg.init_speed_std_mps
        p0[:, 2, 2] = v_var
        p0[:, 3, 3] = v_var
        self._x = np.concatenate([self._x, x0])
        self._p = np.concatenate([self._p, p0])
        for det in dets:
            meta = TrackMeta(
                track_id=self._next_id,
                born_s=now_s,
                last_update_s=now_s,
                source_band=det.source,
                window=deque([True], maxlen=cfg.confirm_n),
                range_rate_mps=det.range_rate_mps,
            )
            self._next_id += 1
            self.tracks_initiated += 1
            if cfg.confirm_m <= 1:
                meta.confirmed = True
                self.tracks_confirmed += 1
            self._meta.append(meta)
