"""Range-band selection: SR authoritative inside sr_threshold_m, LR at and beyond it."""

from __future__ import annotations

import math

import pytest

from controller.tracking import BAND_LR, BAND_SR, Detection, TrackingError, band_of, select_by_band


@pytest.mark.parametrize(
    ("range_m", "band"), [(0.0, "sr"), (7.99, "sr"), (8.0, "lr"), (8.01, "lr"), (150.0, "lr")]
)
def test_band_of(range_m: float, band: str) -> None:
    assert band_of(range_m, 8.0) == band


def test_select_by_band_keeps_each_radar_in_its_band() -> None:
    lr = [
        Detection(3.0, 0.0, "ars408", object_id=1),  # inside: SR owns it -> dropped
        Detection(6.0, 8.0, "ars408", object_id=2),  # exactly 10 m: LR
        Detection(40.0, -2.0, "ars408", object_id=3),
        Detection(math.nan, 50.0, "ars408", object_id=4),
    ]
    sr = [
        Detection(1.0, 1.0, "iwr", object_id=10),
        Detection(8.0, 6.0, "iwr", object_id=11),  # exactly 10 m: LR's band -> dropped
        Detection(12.0, 0.0, "iwr", object_id=12),  # beyond: dropped
        Detection(-4.0, -3.0, "iwr", object_id=13),  # behind, 5 m: SR
    ]
    kept = select_by_band(lr, sr, 10.0)
    assert [(d.object_id, d.source) for d in kept] == [
        (10, BAND_SR),
        (13, BAND_SR),
        (2, BAND_LR),
        (3, BAND_LR),
    ]
    assert kept[0].x_m == 1.0 and kept[3].y_m == -2.0


@pytest.mark.parametrize(
    ("threshold_m", "expected_ids"), [(0.0, [1, 2]), (100.0, [10, 11])]
)
def test_threshold_extremes(threshold_m: float, expected_ids: list[int]) -> None:
    lr = [Detection(1.0, 0.0, object_id=1), Detection(50.0, 0.0, object_id=2)]
    sr = [Detection(1.0, 0.0, object_id=10), Detection(50.0, 0.0, object_id=11)]
    assert [d.object_id for d in select_by_band(lr, sr, threshold_m)] == expected_ids


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_threshold_rejected(bad: float) -> None:
    with pytest.raises(TrackingError):
        select_by_band([], [], bad)
