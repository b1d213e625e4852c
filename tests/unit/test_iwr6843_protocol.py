"""Unit tests of the IWR6843 UART codec (firmware_bridge/protocols/iwr6843.py)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.iwr6843 import (
    FRAME_HEADER_LEN,
    MAGIC_WORD,
    PACKET_ALIGN_BYTES,
    FrameStatistics,
    Iwr6843Parser,
    RadarPoint,
    RejectReason,
    TemperatureStatistics,
    TlvType,
    decode_header,
    decode_packet,
    encode_packet,
    format_version,
    split_stream,
)

STATS = FrameStatistics(4074, 8591, 75915, 0, 0, 4)
PTS_SIDE = (
    RadarPoint(0.5, 2.25, -0.125, 0.75, 18.1, 85.2),
    RadarPoint(-1.5, 4.0, 0.0, -1.0, 24.8, 74.5),
    RadarPoint(3.0, 9.5, 0.25, 0.0, 31.3, 73.0),
)
PTS_NO_SIDE = tuple(RadarPoint(p.x_m, p.y_m, p.z_m, p.doppler_mps) for p in PTS_SIDE)


def _packet(frame_number: int = 7, points=PTS_SIDE, **kw) -> bytes:
    kw.setdefault("stats", STATS)
    kw.setdefault("range_profile_q9", list(range(1000, 1064)))
    return encode_packet(frame_number, points, time_cpu_cycles=123456, **kw)


def _patch_u32(packet: bytes, offset: int, value: int) -> bytes:
    b = bytearray(packet)
    struct.pack_into("<I", b, offset, value)
    return bytes(b)


# --- encoder / one-shot decoder ---------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "kw", "expected_types"),
    [
        (PTS_SIDE, {}, (1, 7, 2, 6)),
        (PTS_NO_SIDE, {}, (1, 2, 6)),
        ((), {}, (1, 2, 6)),
        (PTS_SIDE[:1], {"stats": None, "range_profile_q9": None}, (1, 7)),
        (
            PTS_SIDE,
            {"temperature": TemperatureStatistics(0, 5000, tuple(range(30, 40))),
             "extra_tlvs": [(42, b"\x01\x02\x03")]},
            (1, 7, 2, 6, 9, 42),
        ),
    ],
    ids=["side-info", "no-side-info", "zero-points", "points-only", "temperature+unknown"],
)
def test_round_trip(points, kw, expected_types):
    packet = _packet(points=points, **kw)
    assert len(packet) % PACKET_ALIGN_BYTES == 0
    assert packet[:8] == MAGIC_WORD
    frame = decode_packet(packet)
    assert frame.frame_number == 7
    assert frame.time_cpu_cycles == 123456
    assert frame.tlv_types == expected_types
    assert frame.header.num_detected_obj == len(points)
    assert frame.header.total_packet_len == len(packet)
    # Values chosen exactly representable in float32; snr/noise quantised to 0.1 dB.
    assert [(p.x_m, p.y_m, p.z_m, p.doppler_mps) for p in frame.points] == [
        (p.x_m, p.y_m, p.z_m, p.doppler_mps) for p in points
    ]
    for got, want in zip(frame.points, points, strict=True):
        if want.snr_db is None:
            assert got.snr_db is None and got.noise_db is None
        else:
            assert got.snr_db == pytest.approx(want.snr_db, abs=1e-9)
            assert got.noise_db == pytest.approx(want.noise_db, abs=1e-9)
    if "stats" not in kw:
        assert frame.stats == STATS
        assert frame.range_profile_q9 == tuple(range(1000, 1064))
    if "temperature" in kw:
        assert frame.temperature == kw["temperature"]


def test_zero_point_frame_has_empty_points_tlv_and_no_side_info():
    packet = _packet(points=())
    frame = decode_packet(packet)
    assert frame.points == ()
    assert not frame.has_side_info
    t, length = struct.unpack_from("<2I", packet, FRAME_HEADER_LEN)
    assert (t, length) == (TlvType.DETECTED_POINTS, 0)


def test_zero_point_frame_without_points_tlv_is_accepted():
    packet = encode_packet(3, (), stats=STATS)
    # Drop the empty type-1 TLV (some configurations omit it).
    body = packet[FRAME_HEADER_LEN + 8 : FRAME_HEADER_LEN + 8 + 8 + 24]
    rebuilt = bytearray(packet[:FRAME_HEADER_LEN] + body)
    rebuilt += b"\x00" * (-len(rebuilt) % 32)
    struct.pack_into("<I", rebuilt, 12, len(rebuilt))
    struct.pack_into("<I", rebuilt, 32, 1)
    frame = decode_packet(bytes(rebuilt))
    assert frame.points == () and frame.tlv_types == (6,)


def test_padding_content_is_ignored_and_length_is_minimal():
    a = _packet(padding=b"\x00")
    b = _packet(padding=b"\xcc")
    assert len(a) == len(b)
    assert a != b  # padding differs
    assert decode_packet(a) == decode_packet(b)
    header = decode_header(a)
    assert header.total_packet_len - PACKET_ALIGN_BYTES < FRAME_HEADER_LEN + (
        8 + 48 + 8 + 12 + 8 + 128 + 8 + 24
    ) <= header.total_packet_len


def test_encoder_rejects_bad_values():
    with pytest.raises(ProtocolError):
        encode_packet(1, [RadarPoint(float("nan"), 1.0, 0.0, 0.0)])
    with pytest.raises(ProtocolError):
        encode_packet(1, [RadarPoint(0.0, 1.0, 0.0, 0.0, 4000.0, 1.0)])
    with pytest.raises(ProtocolError):
        encode_packet(1, [RadarPoint(0.0, 1.0, 0.0, 0.0)], side_info=True)
    with pytest.raises(ProtocolError):
        encode_packet(2**32, [])


def test_format_version():
    assert format_version(0x03030002) == "3.3.0.2"


# --- rejects, one per reason ------------------------------------------------------------

GOOD = _packet()
N_TLV_OFF = 32
TOTAL_OFF = 12
NOBJ_OFF = 28
FIRST_TLV_LEN_OFF = FRAME_HEADER_LEN + 4


def _bad_padding() -> bytes:
    p = GOOD + b"\x00" * 32
    return _patch_u32(p, TOTAL_OFF, len(p))


def _duplicate_tlv() -> bytes:
    p = encode_packet(1, (), extra_tlvs=[(TlvType.STATISTICS, bytes(24)), (TlvType.STATISTICS, bytes(24))])
    return p


def _nan_point() -> bytes:
    p = bytearray(GOOD)
    struct.pack_into("<f", p, FRAME_HEADER_LEN + 8, float("nan"))
    return bytes(p)


def _side_info_mismatch() -> bytes:
    p = bytearray(GOOD)
    side_len_off = FRAME_HEADER_LEN + 8 + 48 + 4
    assert struct.unpack_from("<I", p, side_len_off - 4)[0] == TlvType.SIDE_INFO
    struct.pack_into("<I", p, side_len_off, 8)  # 2 points' worth for 3 points
    return bytes(p)


BAD_CASES = [
    ("total-too-small", _patch_u32(GOOD, TOTAL_OFF, 32), RejectReason.BAD_PACKET_LEN),
    ("total-too-large", _patch_u32(GOOD, TOTAL_OFF, 1 << 20), RejectReason.BAD_PACKET_LEN),
    ("unaligned", _patch_u32(GOOD, TOTAL_OFF, len(GOOD) - 4), RejectReason.UNALIGNED_PACKET_LEN),
    ("tlv-overrun", _patch_u32(GOOD, FIRST_TLV_LEN_OFF, 4096), RejectReason.TLV_OVERRUN),
    ("too-many-tlvs", _patch_u32(GOOD, N_TLV_OFF, 5), RejectReason.TLV_OVERRUN),
    ("bad-padding", _bad_padding(), RejectReason.BAD_PADDING),
    ("points-len-not-16n", _patch_u32(GOOD, FIRST_TLV_LEN_OFF, 47), RejectReason.BAD_TLV_LENGTH),
    ("nobj-vs-points", _patch_u32(GOOD, NOBJ_OFF, 2), RejectReason.POINT_COUNT_MISMATCH),
    ("nobj-huge", _patch_u32(GOOD, NOBJ_OFF, 10_000), RejectReason.POINT_COUNT_MISMATCH),
    ("side-info-vs-nobj", _side_info_mismatch(), RejectReason.POINT_COUNT_MISMATCH),
    ("duplicate-tlv", _duplicate_tlv(), RejectReason.DUPLICATE_TLV),
    ("nan-point", _nan_point(), RejectReason.NON_FINITE_POINT),
]


@pytest.mark.parametrize(("name", "packet", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_packet_is_rejected_by_reason(name, packet, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_packet(packet)
    parser = Iwr6843Parser(max_frame_len=8192)
    good_after = _packet(frame_number=99)
    # A bad packet followed by a good one: counted under its reason, the good one survives.
    frames = parser.feed(packet + good_after)
    assert [f.frame_number for f in frames] == [99]
    assert parser.rejects[reason] >= 1
    assert parser.frames == 1


def test_decode_packet_rejects_wrong_length_and_missing_magic():
    with pytest.raises(ProtocolError):
        decode_packet(GOOD[:-32])
    with pytest.raises(ProtocolError):
        decode_packet(b"\x00" + GOOD[1:])
    with pytest.raises(ProtocolError):
        decode_header(GOOD[:39])


# --- incremental parser -----------------------------------------------------------------


def _stream(n: int = 5) -> tuple[bytes, list[int]]:
    numbers = list(range(100, 100 + n))
    pts = [PTS_SIDE, (), PTS_NO_SIDE, PTS_SIDE[:1], PTS_SIDE]
    return b"".join(_packet(k, pts[i % len(pts)]) for i, k in enumerate(numbers)), numbers


def test_byte_by_byte_equals_one_shot():
    data, numbers = _stream()
    whole = Iwr6843Parser().feed(data)
    parser = Iwr6843Parser()
    single = [f for i in range(len(data)) for f in parser.feed(data[i : i + 1])]
    assert [f.frame_number for f in whole] == numbers
    assert single == whole
    assert parser.buffered_bytes == 0
    assert parser.resyncs == 0 and parser.garbage_bytes == 0 and not parser.rejects


@pytest.mark.parametrize(
    "garbage",
    [b"\xff" * 13, MAGIC_WORD[:5], MAGIC_WORD[:7] + b"\x00", b"abc" + MAGIC_WORD + b"\x00" * 40],
    ids=["ff-run", "magic-prefix", "almost-magic", "fake-magic-with-bad-header"],
)
def test_garbage_between_frames_resyncs(garbage):
    a, b = _packet(1), _packet(2, ())
    parser = Iwr6843Parser()
    frames = []
    stream = b"\x00\x01" + a + garbage + b
    for i in range(0, len(stream), 5):
        frames += parser.feed(stream[i : i + 5])
    assert [f.frame_number for f in frames] == [1, 2]
    assert parser.resyncs >= 2  # leading bytes, then the garbage
    assert parser.garbage_bytes >= 2 + len(garbage) - 7  # fake magic bytes counted too
    assert parser.buffered_bytes == 0


def test_truncated_packet_does_not_hide_following_frames():
    a, b, c = _packet(1), _packet(2), _packet(3, ())
    stream = a[:200] + b + c  # packet 1 cut mid-payload, its length claims b's bytes
    frames = Iwr6843Parser().feed(stream)
    assert [f.frame_number for f in frames] == [2, 3]


def test_truncated_packet_rejected_early_when_header_visible():
    # Cut packet 1 right after its header: the next magic word lands in a TLV header.
    a, b = _packet(1), _packet(2)
    parser = Iwr6843Parser()
    frames = parser.feed(a[:FRAME_HEADER_LEN] + b)
    assert [f.frame_number for f in frames] == [2]
    assert sum(parser.rejects.values()) == 1


def test_memory_is_bounded_on_endless_garbage():
    parser = Iwr6843Parser(max_frame_len=1024)
    junk = bytes(range(256)) * 64
    for _ in range(20):
        assert parser.feed(junk) == []
        assert parser.buffered_bytes < len(MAGIC_WORD)
    # A plausible header claiming a large packet is held only up to max_frame_len.
    big_claim = _patch_u32(_packet(5), TOTAL_OFF, 1024)
    parser.feed(big_claim)
    assert parser.buffered_bytes < 1024


def test_parser_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Iwr6843Parser(max_frame_len=10)
    with pytest.raises(ValueError):
        Iwr6843Parser(packet_align_bytes=0)


def test_stats_dict():
    data, numbers = _stream()
    parser = Iwr6843Parser()
    parser.feed(b"zz" + data)
    s = parser.stats()
    assert s["frames"] == len(numbers)
    assert s["bytes_in"] == len(data) + 2
    assert s["garbage_bytes"] == 2 and s["resyncs"] == 1
    assert s["tlvs"][TlvType.DETECTED_POINTS] == len(numbers)
    assert s["points"] == 3 + 0 + 3 + 1 + 3


def test_split_stream_keeps_every_byte():
    a, b = _packet(1), _packet(2)
    data = b"junk" + a + b"x" * 9 + b + b"tail"
    chunks = split_stream(data)
    assert b"".join(chunks) == data
    assert chunks[0] == b"junk" + a
    assert chunks[1] == b"x" * 9 + b
    assert chunks[2] == b"tail"


# --- properties: wire input never raises ------------------------------------------------

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_random_bytes_never_raise(data, sizes):
    parser = Iwr6843Parser(max_frame_len=2048)
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        for f in parser.feed(data[pos : pos + n]):
            assert len(f.points) == f.header.num_detected_obj
        pos += n
        i += 1
        assert parser.buffered_bytes < 2048


@_FUZZ
@given(
    st.integers(0, 2000),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
)
def test_truncated_and_corrupted_streams_never_raise(cut, flips):
    data, numbers = _stream()
    corrupted = bytearray(data[: len(data) - cut])
    for offset, value in flips:
        if offset < len(corrupted):
            corrupted[offset] = value
    parser = Iwr6843Parser()
    frames = parser.feed(bytes(corrupted))
    got = [f.frame_number for f in frames]
    # No checksum on this wire: a flipped field may decode to other values, but every
    # packet that arrived whole and untouched must come out, in order.
    expected, acc = [], 0
    for k, length in zip(numbers, (len(c) for c in split_stream(data)), strict=True):
        lo, acc = acc, acc + length
        touched = any(lo <= off < acc and value != data[off] for off, value in flips)
        if acc <= len(corrupted) and not touched:
            expected.append(k)
    it = iter(got)
    assert all(k in it for k in expected), (got, expected)
    if not flips:
        assert got == expected


@_FUZZ
@given(st.lists(st.integers(0, 4), max_size=12), st.binary(max_size=64), st.integers(1, 97))
def test_frames_survive_interleaved_garbage(order, garbage, chunk):
    # Garbage without a magic word between valid packets never costs a packet.
    garbage = garbage.replace(MAGIC_WORD[:1], b"\x00")
    pts = [PTS_SIDE, (), PTS_NO_SIDE, PTS_SIDE[:1], PTS_SIDE]
    stream = b"".join(garbage + _packet(i, pts[k]) for i, k in enumerate(order))
    parser = Iwr6843Parser()
    frames = [f for j in range(0, len(stream), chunk) for f in parser.feed(stream[j : j + chunk])]
    assert [f.frame_number for f in frames] == list(range(len(order)))
    assert [len(f.points) for f in frames] == [len(pts[k]) for k in order]
