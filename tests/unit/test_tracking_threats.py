"""Keep-out and time-to-collision decisions on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.tracking import Track, TrackingError, assess_threats, assess_track


def make_track(track_id: int, x_m: float, y_m: float, vx_mps: float = 0.0, vy_mps: float = 0.0,
               confirmed: bool = True) -> Track:
    return Track(
        track_id=track_id,
        state=np.array([x_m, y_m, vx_mps, vy_mps]),
        covariance=np.eye(4) * 0.01,
        time_s=1.0,
        born_s=0.0,
        last_update_s=1.0,
        age_scans=14,
        hits=14,
        misses=0,
        confirmed=confirmed,
        source_band="lr",
    )


# rel position, rel velocity, keep-out R, expected (ttc_s, t_cpa_s, d_cpa_m, inside)
CASES = [
    # Head-on: enters the 1 m disc after (10 - 1) / 2 s; CPA at 5 s, 0 m.
    ((10.0, 0.0), (-2.0, 0.0), 1.0, (4.5, 5.0, 0.0, False)),
    # Offset 0.6 m: enters where x^2 + 0.36 = 1, x = 0.8 -> (10 - 0.8) / 2 = 4.6 s.
    ((10.0, 0.6), (-2.0, 0.0), 1.0, (4.6, 5.0, 0.6, False)),
    # Passing wide (CPA 3 m > R): never enters.
    ((10.0, 3.0), (-2.0, 0.0), 1.0, (math.inf, 5.0, 3.0, False)),
    # Opening: no CPA ahead, never enters.
    ((5.0, 0.0), (1.0, 0.0), 1.0, (math.inf, 0.0, 5.0, False)),
    # Static relative: never enters.
    ((3.0, 4.0), (0.0, 0.0), 1.0, (math.inf, 0.0, 5.0, False)),
    # Already inside: ttc 0.
    ((0.3, 0.4), (1.0, 0.0), 1.0, (0.0, 0.0, 0.5, True)),
    # Diagonal approach: |p| = 5 along (3, 4), closing 1 m/s, R = 2 -> 3 s.
    ((3.0, 4.0), (-0.6, -0.8), 2.0, (3.0, 5.0, 0.0, False)),
]


@pytest.mark.parametrize(("p", "v", "radius", "expected"), CASES)
def test_assess_track_hand_computed(p, v, radius, expected) -> None:
    ttc, t_cpa, d_cpa, inside = expected
    threat = assess_track(7, p, v, radius, min_ttc_s=4.55)
    assert threat.track_id == 7
    assert threat.ttc_s == pytest.approx(ttc)
    assert threat.time_to_cpa_s == pytest.approx(t_cpa)
    assert threat.cpa_distance_m == pytest.approx(d_cpa, abs=1e-12)
    assert threat.inside_keep_out is inside
    assert threat.range_m == pytest.approx(math.hypot(*p))
    assert threat.ttc_breach is (ttc < 4.55)
    assert threat.is_breach is (inside or ttc < 4.55)


def test_assess_threats_in_world_frame_with_vehicle_motion() -> None:
    tracks = [
        make_track(1, 15.0, 5.0),  # static; vehicle at (5, 5) drives +x at 2 m/s: ttc 4.5 s
        make_track(2, 5.0, 5.9),  # 0.9 m away: inside the 1 m keep-out
        make_track(3, 5.0, 20.0),  # far, beside the path
        make_track(4, 5.5, 5.0, confirmed=False),  # tentative: ignored even inside
        make_track(5, 25.0, 5.0, vx_mps=2.0),  # same velocity as the vehicle: never closes
    ]
    pose = (5.0, 5.0, 1.0)  # yaw irrelevant for a disc
    threats = assess_threats(tracks, pose, (2.0, 0.0), keep_out_radius_m=1.0, min_ttc_s=5.0)
    assert [(t.track_id, t.inside_keep_out, t.ttc_breach) for t in threats] == [
        (2, True, True),
        (1, False, True),
    ]
    assert threats[1].ttc_s == pytest.approx(4.5)
    assert threats[1].closing_speed_mps == pytest.approx(2.0)
    # A shorter limit leaves only the keep-out breach.
    threats = assess_threats(tracks, pose, (2.0, 0.0), keep_out_radius_m=1.0, min_ttc_s=4.0)
    assert [t.track_id for t in threats] == [2]
    # include_all reports every confirmed track.
    every = assess_threats(tracks, pose, (2.0, 0.0), 1.0, 4.0, include_all=True)
    assert sorted(t.track_id for t in every) == [1, 2, 3, 5]


def test_no_tracks_no_threats() -> None:
    assert assess_threats([], (0.0, 0.0, 0.0), (0.0, 0.0), 1.0, 2.0) == []


@pytest.mark.parametrize(
    ("pose", "velocity", "radius", "ttc"),
    [
        ((0.0, 0.0, 0.0), (0.0, 0.0), -1.0, 1.0),
        ((0.0, 0.0, 0.0), (0.0, 0.0), 1.0, math.nan),
        ((0.0, math.nan, 0.0), (0.0, 0.0), 1.0, 1.0),
        ((0.0, 0.0, 0.0), (math.inf, 0.0), 1.0, 1.0),
        ((0.0, 0.0, 0.0), (1.0,), 1.0, 1.0),
    ],
)
def test_bad_inputs_rejected(pose, velocity, radius, ttc) -> None:
    with pytest.raises(TrackingError):
        assess_threats([make_track(1, 5.0, 0.0)], pose, velocity, radius, ttc)


@pytest.mark.parametrize(("range_rate_mps", "confirms"), [
    (None, True),            # no Doppler (ARS408 objects): the track's velocity decides
    (float("nan"), True),    # a non-finite Doppler is no evidence either way
    (-1.0, True),            # the radar sees it closing at 1 m/s
    (-0.21, True),           # just above 2 sigma of 0.1 m/s
    (-0.19, False),          # within the Doppler noise
    (0.0, False),            # static to the radar: clutter lined up by chance
    (0.5, False),            # receding
])
def test_doppler_must_confirm_a_ttc_closing(range_rate_mps, confirms) -> None:
    """A TTC breach outside the keep-out needs the radar's own Doppler to show the closing (issue 15)."""
    from controller.components.radar import _doppler_confirms_closing

    assert _doppler_confirms_closing(range_rate_mps) is confirms
