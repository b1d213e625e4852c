"""Tracker: reference Kalman agreement, M-of-N confirmation, deletion, clutter scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.tracking import Detection, Tracker, TrackerConfig, TrackingError

H = np.hstack([np.eye(2), np.zeros((2, 2))])
SCAN_S = 0.072  # ARS408 object-list cycle


def ref_kalman_track(zs, times, cfg: TrackerConfig):
    """Independent textbook filter for one track, initiated like the tracker (one point)."""
    q_psd = cfg.q_accel_mps2**2
    r = np.eye(2) * cfg.meas_std_m**2
    x = np.array([zs[0][0], zs[0][1], 0.0, 0.0])
    p = np.zeros((4, 4))
    p[:2, :2] = r
    p[2, 2] = p[3, 3] = cfg.init_speed_std_mps**2
    out = [(x.copy(), p.copy())]
    for k in range(1, len(zs)):
        dt = times[k] - times[k - 1]
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q1 = q_psd * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        q = np.zeros((4, 4))
        q[np.ix_([0, 2], [0, 2])] = q1
        q[np.ix_([1, 3], [1, 3])] = q1
        x = f @ x
        p = f @ p @ f.T + q
        if zs[k] is not None:
            s = H @ p @ H.T + r
            k_gain = p @ H.T @ np.linalg.inv(s)
            x = x + k_gain @ (np.asarray(zs[k]) - H @ x)
            p = (np.eye(4) - k_gain @ H) @ p
        out.append((x.copy(), p.copy()))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_single_track_matches_reference_filter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cfg = TrackerConfig(q_accel_mps2=float(rng.uniform(0.1, 2.0)), meas_std_m=float(rng.uniform(0.1, 0.5)),
                        delete_misses=10)
    tracker = Tracker(cfg)
    times = np.cumsum(rng.uniform(0.03, 0.15, size=40))
    x0, v = rng.uniform(-20, 20, size=2), rng.uniform(-2, 2, size=2)
    zs = []
    for k, t in enumerate(times):
        if k in (7, 8, 20):  # a few missed scans: coast
            zs.append(None)
        else:
            zs.append(tuple(x0 + v * t + rng.normal(size=2) * cfg.meas_std_m * 0.5))
    ref = ref_kalman_track(zs, times, cfg)
    for k, t in enumerate(times):
        tracks = tracker.step(float(t), [] if zs[k] is None else [Detection(*zs[k], source="lr")])
        assert len(tracks) == 1 and tracks[0].track_id == 1
        np.testing.assert_allclose(tracks[0].state, ref[k][0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(tracks[0].covariance, ref[k][1], rtol=0, atol=1e-9)
    assert tracks[0].hits == 37 and tracks[0].age_scans == 40 and tracks[0].source_band == "lr"


# pattern: 1 = the target is detected in that scan, 0 = missed.
# expected: scan (1-based) at which the track is confirmed / deleted, or None.
M_OF_N_CASES = [
    ("111", 3, None),
    ("11011", 4, None),
    ("10101", 5, None),
    ("1001", None, None),
    ("10010", None, 5),
    ("1000", None, 4),
    ("11000", None, 5),
    ("1100", None, None),
    ("10", None, None),
]


@pytest.mark.parametrize(("pattern", "confirm_scan", "delete_scan"), M_OF_N_CASES)
def test_m_of_n_confirmation(pattern: str, confirm_scan, delete_scan) -> None:
    tracker = Tracker(TrackerConfig(confirm_m=3, confirm_n=5, delete_misses=5))
    confirmed_at = deleted_at = None
    for k, bit in enumerate(pattern, start=1):
        tracks = tracker.step(k * SCAN_S, [Detection(10.0, 2.0)] if bit == "1" else [])
        if confirmed_at is None and tracks and tracks[0].confirmed:
            confirmed_at = k
        if deleted_at is None and not tracks:
            deleted_at = k
    assert confirmed_at == confirm_scan
    assert deleted_at == delete_scan


def test_confirmed_track_coasts_then_is_deleted_after_k_misses() -> None:
    tracker = Tracker(TrackerConfig(delete_misses=4))
    for k in range(3):
        tracker.step(k * SCAN_S, [Detection(5.0, 0.0)])
    assert [t.track_id for t in tracker.confirmed()] == [1]
    for k in range(3, 6):
        (trk,) = tracker.step(k * SCAN_S, [])
        assert trk.confirmed and trk.misses == k - 2
    assert tracker.step(6 * SCAN_S, []) == []
    assert tracker.tracks_deleted == 1


def test_hit_after_coasting_resets_misses() -> None:
    tracker = Tracker(TrackerConfig(delete_misses=3))
    for k, bit in enumerate("1110110110111"):
        tracks = tracker.step(k * SCAN_S, [Detection(5.0, 0.0)] if bit == "1" else [])
    assert [t.track_id for t in tracks] == [1]
    assert tracks[0].misses == 0 and tracks[0].hits == 10


def test_covariance_bound_deletes_a_long_coast() -> None:
    cfg = TrackerConfig(delete_misses=1000, max_position_std_m=1.0, q_accel_mps2=1.0)
    tracker = Tracker(cfg)
    for k in range(3):
        tracker.step(k * 0.1, [Detection(0.0, 0.0)])
    t = 0.2
    while tracker.tracks:
        (trk,) = tracker.tracks
        assert trk.position_std_m <= 1.0
        t += 0.1
        tracker.step(t, [])
        assert t < 30.0
    # The bound, not the miss count, ended it.
    assert tracker.tracks_deleted == 1


def test_ids_stable_increasing_and_never_reused() -> None:
    tracker = Tracker()
    tracker.step(0.0, [Detection(0.0, 0.0), Detection(20.0, 0.0)])
    tracker.step(SCAN_S, [Detection(0.0, 0.0), Detection(20.0, 0.0), Detection(-20.0, 5.0)])
    assert [t.track_id for t in tracker.tracks] == [1, 2, 3]
    tracker.reset()
    assert tracker.tracks == []
    (trk,) = tracker.step(1.0, [Detection(0.0, 0.0)])
    assert trk.track_id == 4


def test_time_must_not_run_backwards_and_bad_detections_are_counted() -> None:
    tracker = Tracker()
    tracker.step(1.0, [Detection(math.nan, 0.0), Detection(1.0, math.inf), Detection(1.0, 1.0)])
    assert tracker.rejected_detections == 2 and len(tracker.tracks) == 1
    tracker.step(1.0, [])  # same time is fine (dt = 0)
    with pytest.raises(TrackingError):
        tracker.step(0.5, [])
    with pytest.raises(TrackingError):
        tracker.step(math.nan, [])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confirm_m": 6, "confirm_n": 5},
        {"confirm_m": 0},
        {"delete_misses": 0},
        {"gate_probability": 1.0},
        {"meas_std_m": 0.0},
        {"q_accel_mps2": -1.0},
        {"max_position_std_m": math.nan},
        {"confirm_n": 2.5},
    ],
)
def test_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(TrackingError):
        TrackerConfig(**kwargs)


def test_coverage_predicate_spares_tracks_out_of_the_scan() -> None:
    tracker = Tracker(TrackerConfig(delete_misses=2))
    for k in range(3):
        tracker.step(k * SCAN_S, [Detection(2.0, 0.0, "sr"), Detection(30.0, 0.0, "lr")])
    # Ten SR-only scans: the far (LR-band) track is not charged misses.
    def sr_covers(x_m: float, y_m: float) -> bool:
        return math.hypot(x_m, y_m) < 8.0

    for k in range(3, 13):
        tracks = tracker.step(k * SCAN_S, [Detection(2.0, 0.0, "sr")], in_coverage=sr_covers)
    assert [(t.track_id, t.misses, t.source_band) for t in tracks] == [(1, 0, "sr"), (2, 0, "lr")]
    tracks = tracker.step(13 * SCAN_S, [Detection(2.0, 0.0, "sr")])
    assert tracks[1].misses == 1


def test_moving_target_velocity_converges() -> None:
    rng = np.random.default_rng(5)
    tracker = Tracker()
    v = np.array([1.5, -0.8])
    for k in range(150):
        t = k * SCAN_S
        z = np.array([3.0, 4.0]) + v * t + rng.normal(size=2) * 0.1
        tracks = tracker.step(t, [Detection(*z)])
    (trk,) = tracks
    assert trk.confirmed and trk.track_id == 1
    assert (trk.vx_mps, trk.vy_mps) == pytest.approx(tuple(v), abs=0.15)


def test_polar_accuracy_shapes_the_measurement_covariance() -> None:
    tracker = Tracker()
    det = Detection(10.0, 0.0, range_m=10.0, azimuth_rad=0.0, range_std_m=0.1, azimuth_std_rad=0.02)
    r = tracker.measurement_covariances([det, Detection(1.0, 1.0)])
    np.testing.assert_allclose(r[0], np.diag([0.01, 0.04]), atol=1e-12)
    np.testing.assert_allclose(r[1], np.eye(2) * 0.09, atol=1e-12)


def test_snapshots_are_immutable() -> None:
    tracker = Tracker()
    (trk,) = tracker.step(0.0, [Detection(1.0, 2.0)])
    with pytest.raises(ValueError):
        trk.state[0] = 5.0
    with pytest.raises(AttributeError):
        trk.hits = 3  # type: ignore[misc]
    assert (trk.x_m, trk.y_m, trk.vx_mps, trk.vy_mps) == (1.0, 2.0, 0.0, 0.0)


TARGETS = [(5.6, 0.6), (11.4, 0.2), (17.6, -0.4)]


@pytest.mark.parametrize(
    ("seed", "n_clutter", "side_m", "exactly_three"),
    [(0, 4, 40.0, True), (1, 4, 40.0, True), (2, 4, 40.0, True), (3, 4, 40.0, True),
     # Dense clutter (0.009 /m^2 per scan): M-of-N lets a few clutter tracks confirm,
     # but none survives 2 s and the three targets are still held.
     (4, 8, 30.0, False), (5, 8, 30.0, False)],
)
def test_three_static_targets_with_clutter(seed: int, n_clutter: int, side_m: float,
                                           exactly_three: bool) -> None:
    """Three static targets, 90 % detection, uniform clutter, a vehicle that drives and
    turns (so body and world frames differ)."""
    from controller.tracking import body_to_world, world_to_body_point

    rng = np.random.default_rng(seed)
    tracker = Tracker()
    confirmed_since: dict[int, float] = {}
    clutter_confirmed_s: dict[int, float] = {}
    n_scans = 200
    for k in range(n_scans):
        t = k * SCAN_S
        pose = (0.05 * t, 0.02 * t, 0.03 * t)
        dets = []
        for tx, ty in TARGETS:
            if rng.random() < 0.9:
                bx, by = world_to_body_point(tx, ty, pose)
                dets.append(Detection(bx + rng.normal() * 0.15, by + rng.normal() * 0.15, "lr"))
        for _ in range(n_clutter):
            dets.append(Detection(float(rng.uniform(0, side_m)),
                                  float(rng.uniform(-side_m / 2, side_m / 2)), "lr"))
        rng.shuffle(dets)
        tracks = tracker.step(t, body_to_world(dets, pose))
        for trk in tracks:
            if not trk.confirmed:
                continue
            confirmed_since.setdefault(trk.track_id, t)
            near = min(math.hypot(trk.x_m - tx, trk.y_m - ty) for tx, ty in TARGETS)
            if near > 1.0:
                clutter_confirmed_s[trk.track_id] = t - confirmed_since[trk.track_id]
    final = tracker.confirmed()
    if exactly_three:
        assert len(final) == 3
    for tx, ty in TARGETS:
        assert min(math.hypot(trk.x_m - tx, trk.y_m - ty) for trk in final) < 0.3
    assert all(d <= 2.0 for d in clutter_confirmed_s.values()), clutter_confirmed_s


@pytest.mark.parametrize(("allow", "expected_tracks"), [(False, 1), (True, 2)])
def test_second_return_inside_a_confirmed_gate_starts_no_track(allow: bool, expected_tracks: int) -> None:
    tracker = Tracker(TrackerConfig(initiate_in_confirmed_gate=allow))
    for k in range(3):
        tracker.step(k * SCAN_S, [Detection(10.0, 0.0)])
    for k in range(3, 10):  # an extended target: a second return 0.4 m away
        tracks = tracker.step(k * SCAN_S, [Detection(10.0, 0.0), Detection(10.0, 0.4)])
    assert len(tracks) == expected_tracks
    assert tracks[0].track_id == 1 and tracks[0].confirmed


def test_track_carries_the_doppler_of_its_last_detection() -> None:
    """A track reports the measured range rate of the detection that last updated it (None without)."""
    tr = Tracker(TrackerConfig(confirm_m=1, confirm_n=1))
    (t,) = tr.step(0.0, [Detection(2.0, 0.0, "sr", range_rate_mps=-0.8)])
    assert t.range_rate_mps == -0.8
    (t,) = tr.step(0.1, [Detection(1.95, 0.0, "sr", range_rate_mps=-0.5)])
    assert t.range_rate_mps == -0.5
    (t,) = tr.step(0.2, [Detection(1.9, 0.0, "lr")])
    assert t.range_rate_mps is None
    restored = Tracker(TrackerConfig(confirm_m=1, confirm_n=1))
    tr.step(0.3, [Detection(1.85, 0.0, "sr", range_rate_mps=-0.4)])
    restored.restore(tr.snapshot())
    assert [x.range_rate_mps for x in restored.tracks] == [-0.4]
