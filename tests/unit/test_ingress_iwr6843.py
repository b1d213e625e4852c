"""IWR6843 ingress: point range/FOV gate, frame-number continuity, ns staleness (issue 15 part 2)."""

from __future__ import annotations

import math

import pytest

from firmware_bridge.protocols import iwr6843 as ti
from firmware_bridge.protocols.iwr6843 import PointGate, RadarPoint, encode_packet
from hal.devices.iwr6843 import Iwr6843Driver


class Link:
    is_open = True

    def __init__(self) -> None:
        self.buf = bytearray()

    def read(self, max_bytes: int) -> bytes:
        out = bytes(self.buf[:max_bytes])
        del self.buf[:max_bytes]
        return out


def test_chirp_max_range_from_the_reference_configuration():
    assert ti.CHIRP_MAX_RANGE_M == pytest.approx(17.99, abs=0.01)


@pytest.mark.parametrize(("pt", "reason"), [
    (RadarPoint(0.0, 0.0, 0.0, 0.0), ti.POINT_OUT_OF_RANGE),
    (RadarPoint(0.0, 18.5, 0.0, 0.0), ti.POINT_OUT_OF_RANGE),
    (RadarPoint(0.0, 1.0e6, 0.0, 0.0), ti.POINT_OUT_OF_RANGE),
    (RadarPoint(1.0, -0.5, 0.0, 0.0), ti.POINT_OUT_OF_FOV),       # behind the antenna
    (RadarPoint(0.0, 2.0, 0.0, 0.0), None),
    (RadarPoint(3.0, 0.8, 0.0, 0.0), None),                       # 75 deg: inside the capture's +-90 window
])
def test_point_gate(pt, reason):
    assert PointGate().reason(pt) == reason


def test_narrower_gate_from_a_datasheet_fov():
    gate = PointGate(max_range_m=11.11, fov_azimuth_deg=60.0, fov_elevation_deg=15.0)
    assert gate.reason(RadarPoint(3.0, 0.8, 0.0, 0.0)) == ti.POINT_OUT_OF_FOV
    assert gate.reason(RadarPoint(0.0, 2.0, 1.0, 0.0)) == ti.POINT_OUT_OF_FOV   # 26.6 deg elevation
    assert gate.reason(RadarPoint(0.0, 12.0, 0.0, 0.0)) == ti.POINT_OUT_OF_RANGE


def test_driver_drops_points_outside_the_gate_and_counts_them():
    link = Link()
    drv = Iwr6843Driver(link)  # type: ignore[arg-type]
    link.buf += encode_packet(1, [RadarPoint(0.0, 2.0, 0.0, 0.1), RadarPoint(0.0, 900.0, 0.0, 0.0),
                                  RadarPoint(0.5, -1.0, 0.0, 0.0)])
    scans = drv.poll(0.0)
    assert [round(d.range_m, 3) for d in scans[0].detections] == [2.0]
    assert drv.stats()["points_dropped"] == {ti.POINT_OUT_OF_FOV: 1, ti.POINT_OUT_OF_RANGE: 1}
    assert all(math.isfinite(d.x_body_m) for d in scans[0].detections)


def test_frame_number_continuity_gaps_repeats_and_jumps():
    link = Link()
    drv = Iwr6843Driver(link)  # type: ignore[arg-type]
    for k, n in enumerate([10, 11, 11, 14, 5_000_000, 15, 16]):
        link.buf += encode_packet(n, [RadarPoint(0.0, 2.0, 0.0, 0.0)])
        drv.poll(0.1 * k)
    st = drv.stats()
    assert st["frame_number_repeats"] == 1          # 11 again: old data, dropped
    assert st["frame_number_gaps"] == 2             # 12 and 13 lost
    assert st["frame_number_jumps"] == 2            # to 5,000,000 (a corrupted header) and back to 15
    assert st["frames"] == 6 and st["last_frame_number"] == 16


def test_stale_compares_integer_nanoseconds():
    link = Link()
    drv = Iwr6843Driver(link, frame_period_s=0.1)  # type: ignore[arg-type]
    link.buf += encode_packet(1, [])
    drv.poll(9 * 0.1)
    assert 12 * 0.1 - 9 * 0.1 > 3 * 0.1            # the float trap: exactly 3 periods looks longer
    assert not drv.is_stale(12 * 0.1)              # exactly 3 periods: not stale
    assert drv.is_stale(12 * 0.1 + 1e-9)
