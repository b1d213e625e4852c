"""Unit tests of the IWR6843 driver's frame maths and of the decode report."""

from __future__ import annotations

import math

import pytest

from controller.errors import ConfigError
from controller.tools.radar_decode_iwr6843 import decode_iwr6843_file
from firmware_bridge.protocols.frames import Mount
from firmware_bridge.protocols.iwr6843 import RadarPoint, encode_packet
from hal.devices.iwr6843 import Iwr6843Driver, parse_mount, sensor_to_body
from hal.errors import BusConfigError


class _ListLink:
    """Minimal SerialLink stand-in: serves queued chunks, one per read."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.name = "list"
        self.is_open = True

    def read(self, max_bytes: int = 4096) -> bytes:
        if not self.chunks:
            return b""
        head = self.chunks[0]
        out, rest = head[:max_bytes], head[max_bytes:]
        if rest:
            self.chunks[0] = rest
        else:
            self.chunks.pop(0)
        return out

    def write(self, data: bytes) -> int:
        return len(data)


@pytest.mark.parametrize(
    ("sensor_xy", "mount", "body_xy"),
    [
        ((0.0, 1.0), (0, 0, 0), (1.0, 0.0)),  # boresight -> body forward
        ((1.0, 0.0), (0, 0, 0), (0.0, -1.0)),  # TI x (right) -> body -y
        ((0.0, 1.0), (0.5, 0.25, 0), (1.5, 0.25)),
        ((0.0, 1.0), (0, 0, 90), (0.0, 1.0)),  # side-looking to the left
        ((1.0, 1.0), (0, 0, 45), (math.sqrt(2), 0.0)),
        ((0.0, 2.0), (0, 0, 180), (-2.0, 0.0)),  # rear-looking
    ],
)
def test_sensor_to_body(sensor_xy, mount, body_xy):
    assert sensor_to_body(*sensor_xy, mount) == pytest.approx(body_xy, abs=1e-12)


@pytest.mark.parametrize(
    "mount",
    [(1.0, 2.0, 3.0), {"x_m": 1.0, "y_m": 2.0, "yaw_deg": 3.0}, type("M", (), {"x_m": 1.0, "y_m": 2.0, "yaw_deg": 3.0})()],
)
def test_parse_mount_accepts_tuple_mapping_object(mount):
    assert parse_mount(mount) == Mount.from_degrees(1.0, 2.0, 3.0)
    assert parse_mount(mount).yaw_rad == math.radians(3.0)


@pytest.mark.parametrize("mount", [(1.0, 2.0), {"x_m": 1.0}, (1.0, float("nan"), 0.0), ("a", 0, 0), 5])
def test_parse_mount_rejects_bad_shapes(mount):
    with pytest.raises(BusConfigError):
        parse_mount(mount)


@pytest.mark.parametrize("kw", [{"frame_period_s": 0.0}, {"stale_after_periods": 0}, {"max_read_bytes_per_poll": 0},
                                {"mount": (0.0, 0.0, 0.0)}, {"mount": Mount(0.0, float("nan"), 0.0)}])
def test_driver_rejects_bad_config(kw):
    with pytest.raises(BusConfigError):
        Iwr6843Driver(_ListLink([]), **kw)


def test_driver_detection_fields():
    pts = [RadarPoint(-1.0, 3.0, 0.5, -0.25, 17.5, 80.0), RadarPoint(2.0, 2.0, 0.0, 0.5, 9.0, 71.0)]
    link = _ListLink([encode_packet(41, pts)[:50], encode_packet(41, pts)[50:]])
    drv = Iwr6843Driver(link, mount=Mount.from_degrees(0.2, 0.0, 10.0), frame_period_s=0.1)
    scans = drv.poll(1.0)
    assert len(scans) == 1
    d0, d1 = scans[0].detections
    assert d0.frame_number == 41 and scans[0].received_s == 1.0
    assert d0.range_m == pytest.approx(math.sqrt(1 + 9 + 0.25))
    assert d0.azimuth_radar_rad == pytest.approx(math.atan2(1.0, 3.0))
    assert d0.azimuth_body_rad == pytest.approx(math.atan2(1.0, 3.0) + math.radians(10))
    assert (d0.x_body_m, d0.y_body_m) == pytest.approx(sensor_to_body(-1.0, 3.0, (0.2, 0.0, 10.0)))
    assert d0.z_body_m == 0.5 and d0.doppler_mps == -0.25
    assert d0.snr_db == pytest.approx(17.5) and d1.noise_db == pytest.approx(71.0)
    assert drv.stats()["detections"] == 2 and drv.stats()["bytes_read"] == len(encode_packet(41, pts))


def test_decode_report_counts_garbage_rejects_and_truncation(tmp_path):
    a = encode_packet(1, [RadarPoint(0.0, 2.0, 0.0, 0.0, 20.0, 70.0)])
    b = encode_packet(2, [])
    c = encode_packet(4, [RadarPoint(0.5, 2.0, 0.0, 0.0, 20.0, 70.0)] * 2)
    bad = bytearray(encode_packet(3, [RadarPoint(0.0, 1.0, 0.0, 0.0)]))
    bad[28] = 7  # numDetectedObj 7 for 1 point
    f = tmp_path / "cap.dat"
    f.write_bytes(b"junk" + a + b + bytes(bad) + c + c[:60])
    r = decode_iwr6843_file(f, chunk_bytes=13)
    assert r["frames"] == 3 and r["frame_numbers"] == [1, 4]
    assert r["frame_number_gaps"] == 1  # frame 3 was rejected: 2 -> 4 misses one
    assert r["rejected"] == {"point_count_mismatch": 1, "truncated_at_end": 1}
    assert r["garbage_bytes"] >= 4 and r["resyncs"] >= 2
    assert r["trailing_bytes"] == 60
    assert r["points"] == 3 and r["frames_without_points"] == 1
    assert r["tlvs"]["detected_points"] == 3 and r["tlvs"]["side_info"] == 2


def test_decode_report_tracks_a_static_target(tmp_path):
    pkt = b"".join(encode_packet(k, [RadarPoint(1.0, 4.0, 0.0, 0.0)]) for k in range(30))
    f = tmp_path / "static.dat"
    f.write_bytes(pkt)
    r = decode_iwr6843_file(f)
    assert len(r["tracks"]) == 1 and r["confirmed_at_end"] == 1
    t = r["tracks"][0]
    assert (t["x_m"], t["y_m"]) == pytest.approx((4.0, -1.0), abs=0.01)  # radar frame: x boresight, y left


def test_decode_missing_file_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        decode_iwr6843_file(tmp_path / "nope.dat")
    assert "nope.dat" in str(exc.value) and "\n" not in str(exc.value)
