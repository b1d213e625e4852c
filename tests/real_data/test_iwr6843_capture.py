"""The IWR6843 codec, driver and report against TI's real UART capture (SDK 3.3).

Data: ../shared/data/real/serial/ti_iwr6843/ (see ../shared/data/README.md).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.tools.radar_decode_iwr6843 import decode_iwr6843_file
from firmware_bridge.emulation.iwr6843 import CPU_CLOCK_HZ, Iwr6843Emulator
from firmware_bridge.protocols.frames import Mount
from firmware_bridge.protocols.iwr6843 import (
    FRAME_HEADER_LEN,
    PLATFORM_IWR6843,
    Iwr6843Parser,
    TlvType,
    encode_packet,
    format_version,
    split_stream,
)
from hal.devices.iwr6843 import Iwr6843Driver

CAPTURE_NAME = Path("serial") / "ti_iwr6843" / "xwr68xx_processed_stream_2019_12_04T21_44_51_663.dat"

N_FRAMES = 101
N_BYTES = 79_360
N_POINTS = 825


@pytest.fixture(scope="module")
def capture(shared_data) -> Path:
    """TI's capture in shared_data; the test is skipped when it is absent."""
    path = shared_data / CAPTURE_NAME
    if not path.is_file():
        pytest.skip(f"real IWR6843 capture not found at {path} (../shared/data/real absent)")
    return path


@pytest.fixture(scope="module")
def data(capture) -> bytes:
    return capture.read_bytes()


@pytest.fixture(scope="module")
def frames(data):
    return Iwr6843Parser().feed(data)


def test_every_frame_parses(data, frames):
    assert len(data) == N_BYTES
    assert len(frames) == N_FRAMES
    assert [f.frame_number for f in frames] == list(range(209, 209 + N_FRAMES))
    assert sum(len(f.points) for f in frames) == N_POINTS
    for f in frames:
        assert f.header.platform == PLATFORM_IWR6843
        assert format_version(f.header.version) == "3.3.0.2"
        assert f.header.total_packet_len % 32 == 0
        assert len(f.points) == f.header.num_detected_obj
        assert f.stats is not None and len(f.range_profile_q9) == 256  # 256 ADC samples in profileCfg


def test_tlv_inventory_and_zero_point_frames(frames):
    counts = {t: sum(t in f.tlv_types for f in frames) for t in (1, 2, 6, 7)}
    assert counts == {1: 101, 2: 101, 6: 101, 7: 97}
    empty = [f for f in frames if not f.points]
    assert len(empty) == 4
    for f in empty:
        assert f.tlv_types == (TlvType.DETECTED_POINTS, TlvType.RANGE_PROFILE, TlvType.STATISTICS)
        assert not f.has_side_info
    for f in frames:
        if f.points:
            assert f.has_side_info
            assert all(p.snr_db is not None and 0 < p.snr_db < 100 for p in f.points)


def test_axes_boresight_is_y(frames):
    # Forward-looking sensor, TI axes: every point lies in front (y > 0).
    pts = [p for f in frames for p in f.points]
    assert min(p.y_m for p in pts) > 0
    assert min(p.x_m for p in pts) < 0 < max(p.x_m for p in pts)


def test_cpu_clock_is_200_mhz_at_100_ms_frames(frames):
    deltas = [(b.time_cpu_cycles - a.time_cpu_cycles) & 0xFFFFFFFF for a, b in zip(frames, frames[1:], strict=False)]
    mean = sum(deltas) / len(deltas)
    assert mean == pytest.approx(CPU_CLOCK_HZ * 0.1, rel=0.01)


def test_encoder_reproduces_the_capture_up_to_padding(data, frames):
    chunks = split_stream(data)
    assert len(chunks) == N_FRAMES and b"".join(chunks) == data
    for raw, f in zip(chunks, frames, strict=True):
        rebuilt = encode_packet(
            f.frame_number,
            f.points,
            time_cpu_cycles=f.time_cpu_cycles,
            stats=f.stats,
            range_profile_q9=f.range_profile_q9,
            version=f.header.version,
            platform=f.header.platform,
        )
        assert len(rebuilt) == len(raw)
        pad = len(raw) - (FRAME_HEADER_LEN + sum(8 + n for n in _tlv_lengths(raw)))
        assert 0 <= pad < 32
        assert rebuilt[: len(raw) - pad] == raw[: len(raw) - pad]


def _tlv_lengths(packet: bytes) -> list[int]:
    ntlv = struct.unpack_from("<I", packet, 32)[0]
    pos, out = FRAME_HEADER_LEN, []
    for _ in range(ntlv):
        _, n = struct.unpack_from("<2I", packet, pos)
        out.append(n)
        pos += 8 + n
    return out


_PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=64))
def test_any_chunking_yields_all_101_frames(data, sizes):
    reference = Iwr6843Parser().feed(data)
    parser = Iwr6843Parser()
    got, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        got += parser.feed(data[pos : pos + n])
        pos += n
        i += 1
    assert got == reference
    assert parser.buffered_bytes == 0 and not parser.rejects and parser.resyncs == 0


@_PROPS
@given(st.integers(min_value=0, max_value=N_BYTES), st.integers(min_value=0, max_value=N_BYTES))
def test_truncated_capture_never_raises(data, start, stop):
    lo, hi = min(start, stop), max(start, stop)
    piece = data[lo:hi]
    bounds = [0]
    for c in split_stream(data):
        bounds.append(bounds[-1] + len(c))
    whole = sum(1 for a, b in zip(bounds, bounds[1:], strict=False) if lo <= a and b <= hi)
    parser = Iwr6843Parser()
    frames = parser.feed(piece)
    assert len(frames) == whole


@_PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 200))
def test_corrupted_capture_never_raises(data, seed, n_flips):
    data = bytearray(data)
    rnd = random.Random(seed)
    for _ in range(n_flips):
        data[rnd.randrange(len(data))] = rnd.randrange(256)
    parser = Iwr6843Parser()
    frames = []
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 3000)
        frames += parser.feed(bytes(data[pos : pos + n]))
        pos += n
    assert len(frames) <= N_FRAMES
    assert parser.buffered_bytes < parser.max_frame_len


def test_decode_report_is_independent_of_chunking(capture):
    reports = [decode_iwr6843_file(capture, chunk_bytes=n, track=False) for n in (1, 97, 4096, 1 << 20)]
    assert all(r == reports[0] for r in reports)
    r = reports[0]
    assert r["bytes"] == N_BYTES and r["frames"] == N_FRAMES and r["points"] == N_POINTS
    assert r["frame_numbers"] == [209, 309] and r["frame_number_gaps"] == 0
    assert r["tlvs"] == {"detected_points": 101, "range_profile": 101, "statistics": 101, "side_info": 97}
    assert r["rejected"] == {} and r["resyncs"] == 0 and r["trailing_bytes"] == 0
    assert r["sdk_version"] == "3.3.0.2" and r["platform"] == "0xa6843"
    assert r["frames_without_points"] == 4


def test_decode_report_tracks(capture):
    r = decode_iwr6843_file(capture)
    assert r["tracks"], "the capture's scene (people at a door) yields confirmed tracks"
    for t in r["tracks"]:
        # Radar frame: x along the boresight, inside the 11.11 m CFAR field of view.
        assert 0 < t["x_m"] < 11.2
        assert t["hits"] >= 3  # M-of-N: 3 hits (default confirm_m) before confirmation
        # confirmed from first to last confirmed scan, one scan per 100 ms frame, no gaps
        assert t["confirmed_s"] == pytest.approx((t["confirmed_scans"] - 1) * 0.1, abs=1e-3)
    assert r["confirmed_at_end"] == sum(t["confirmed_at_end"] for t in r["tracks"])


def test_replay_through_emulator_and_driver(data):
    from hal.serial.link import PipeLink

    dev, host = PipeLink.pair("sr")
    emu = Iwr6843Emulator(dev, data, frame_period_s=0.1, seed=1)
    drv = Iwr6843Driver(host, mount=Mount.from_degrees(0.3, 0.0, 0.0), frame_period_s=0.1)
    scans = []
    t_ns = 0
    while t_ns <= 12_000_000_000:  # 12 s of 10 ms ticks; the capture lasts 10.1 s
        now_s = t_ns * 1e-9
        emu.step(now_s)
        scans += drv.poll(now_s)
        t_ns += 10_000_000
    assert emu.replay_done and emu.replay_frames == N_FRAMES
    assert [s.frame_number for s in scans] == list(range(209, 209 + N_FRAMES))
    assert sum(len(s.detections) for s in scans) == N_POINTS
    assert drv.stats()["rejects"] == {}
    # Silent after the replay: stale 3 periods after the last frame.
    assert drv.is_stale(12.0)
    assert not drv.is_stale(scans[-1].received_s + 0.299)
    assert drv.is_stale(scans[-1].received_s + 0.301)
    det = scans[0].detections[0]
    p = Iwr6843Parser().feed(data[:768])[0].points[0]
    assert det.x_body_m == pytest.approx(0.3 + p.y_m)
    assert det.y_body_m == pytest.approx(-p.x_m)
