"""Framing: CRC-16/CCITT-FALSE, COBS (Cheshire & Baker 1999), frame encode and stream decode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.framing import (
    MAX_PAYLOAD_LEN,
    MAX_WIRE_FRAME_LEN,
    FrameDecoder,
    RawFrame,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
)


def _crc_bitwise(data: bytes) -> int:
    """Independent oracle: bit-by-bit CRC-16, poly 0x1021, init 0xFFFF, no reflection."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@pytest.mark.parametrize(
    "data, crc",
    [
        (b"123456789", 0x29B1),  # catalogue check value
        (b"", 0xFFFF),  # init, no final xor
        (b"A", 0xB915),
        (b"\x00", 0xE1F0),
    ],
)
def test_crc_vectors(data, crc):
    assert crc16_ccitt_false(data) == crc


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_oracle(data):
    assert crc16_ccitt_false(data) == _crc_bitwise(data)


def test_crc_running_value_continues():
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == 0x29B1


_SEQ_01_FE = bytes(range(1, 0xFF))  # 254 bytes 01..FE
_SEQ_02_FF = bytes(range(2, 0x100))  # 254 bytes 02..FF
_SEQ_03_FF = bytes(range(3, 0x100))  # 253 bytes 03..FF

# Examples of the COBS paper (Cheshire & Baker 1999) and its usual test table.
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (_SEQ_01_FE, b"\xff" + _SEQ_01_FE),  # 254-byte run: one 0xFF block, no trailing group
    (b"\x00" + _SEQ_01_FE, b"\x01\xff" + _SEQ_01_FE),
    (_SEQ_01_FE + b"\xff", b"\xff" + _SEQ_01_FE + b"\x02\xff"),  # 255-byte run
    (_SEQ_02_FF + b"\x00", b"\xff" + _SEQ_02_FF + b"\x01\x01"),
    (_SEQ_03_FF + b"\x00\x01", b"\xfe" + _SEQ_03_FF + b"\x02\x01"),
    (b"\x01" * 508, b"\xff" + b"\x01" * 254 + b"\xff" + b"\x01" * 254),  # two full blocks
]


@pytest.mark.parametrize("raw, encoded", COBS_VECTORS, ids=range(len(COBS_VECTORS)))
def test_cobs_vectors(raw, encoded):
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


def test_cobs_decode_accepts_non_canonical_trailing_group():
    # Some encoders emit an empty 0x01 group after a final 0xFF block: same data.
    assert cobs_decode(b"\xff" + _SEQ_01_FE + b"\x01") == _SEQ_01_FE


@given(st.binary(max_size=1200))
def test_cobs_round_trip_and_overhead(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254
    assert cobs_decode(enc) == data


@pytest.mark.parametrize(
    "bad",
    [b"\x03\x11", b"\x05\x11\x00\x22\x33", b"\xff\x01", b"\x02\x11\x00"],
    ids=["code-past-end", "zero-inside", "ff-past-end", "trailing-zero"],
)
def test_cobs_decode_rejects(bad):
    with pytest.raises(ProtocolError):
        cobs_decode(bad)


def test_encode_frame_layout():
    frame = encode_frame(0x21, 7, b"\x00\xaa")
    assert frame[-1] == 0 and 0 not in frame[:-1]
    decoded = cobs_decode(frame[:-1])
    body = b"\x21\x07\x00\xaa"
    crc = crc16_ccitt_false(body)
    assert decoded == body + bytes((crc & 0xFF, crc >> 8))  # CRC little-endian
    assert len(frame) == len(body) + 2 + 1 + 1  # one COBS byte + delimiter
    assert decode_frame(frame) == RawFrame(0x21, 7, b"\x00\xaa")


@pytest.mark.parametrize("payload_len", [0, 1, 30, 200, MAX_PAYLOAD_LEN])
def test_encode_frame_length_is_payload_plus_six(payload_len):
    payload = bytes(i % 7 for i in range(payload_len))  # plenty of zeros
    frame = encode_frame(0x20, 255, payload)
    assert len(frame) == payload_len + 6
    assert len(frame) - 1 <= MAX_WIRE_FRAME_LEN
    assert decode_frame(frame) == RawFrame(0x20, 255, payload)


def test_encode_frame_seq_wraps():
    assert decode_frame(encode_frame(1, 256 + 3)).seq == 3


@pytest.mark.parametrize(
    "msg_id, payload", [(-1, b""), (256, b""), (1, b"\x01" * (MAX_PAYLOAD_LEN + 1))]
)
def test_encode_frame_rejects(msg_id, payload):
    with pytest.raises(ProtocolError):
        encode_frame(msg_id, 0, payload)


@pytest.mark.parametrize(
    "wire, why",
    [
        (b"\x03\x01\x02", "shorter than"),
        (cobs_encode(b"\x01\x02\x03\x04\x05"), "CRC mismatch"),
        (b"\x09\x01", "COBS"),
    ],
)
def test_decode_frame_strict_raises(wire, why):
    with pytest.raises(ProtocolError, match=why):  # and for the right reason
        decode_frame(wire)


# ------------------------------------------------------------------ stream decoder

FRAMES = [
    RawFrame(0x01, 0, b"\x01"),
    RawFrame(0x11, 1, b"\x00\x00\x00\x00\x01\x00\x00\x00"),
    RawFrame(0x21, 2, bytes(range(28))),
    RawFrame(0x30, 3, b""),
    RawFrame(0xFF, 255, b"\x00" * 40),
]
WIRE = b"".join(encode_frame(*f) for f in FRAMES)


def test_decoder_whole_stream():
    dec = FrameDecoder()
    assert dec.feed(WIRE) == FRAMES
    s = dec.stats.as_dict()
    assert s["frames_ok"] == len(FRAMES)
    assert sum(v for k, v in s.items() if k != "frames_ok") == 0


def test_decoder_byte_by_byte():
    dec = FrameDecoder()
    out = []
    for b in WIRE:
        out += dec.feed(bytes([b]))
    assert out == FRAMES


def test_decoder_ignores_empty_frames():
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x00" + WIRE + b"\x00") == FRAMES
    assert dec.stats.bytes_dropped == 0


def test_decoder_counts_by_reason():
    good = encode_frame(0x20, 1, b"abcd")
    bad_crc = bytearray(good)
    bad_crc[3] ^= 0x01  # a data byte, not a COBS code
    dec = FrameDecoder(max_frame_len=16)
    stream = (
        bytes(bad_crc)            # crc error, 9 bytes dropped
        + b"\x07\x01\x00"         # COBS code past the end, 2 bytes
        + b"\x02\x05\x00"         # runt (decodes to 1 byte), 2 bytes
        + b"\x01" * 40 + b"\x00"  # too long, 40 bytes
        + good
    )
    assert dec.feed(stream) == [RawFrame(0x20, 1, b"abcd")]
    s = dec.stats
    assert (s.crc_errors, s.cobs_errors, s.runts, s.too_long, s.frames_ok) == (1, 1, 1, 1, 1)
    assert s.bytes_dropped == (len(good) - 1) + 2 + 2 + 40


def test_decoder_too_long_across_chunks_is_bounded_and_resyncs():
    dec = FrameDecoder(max_frame_len=64)
    for _ in range(100):
        assert dec.feed(b"\x55" * 10) == []
        assert dec.pending_bytes <= 64
    assert dec.stats.too_long == 1  # one run, counted once
    assert dec.feed(b"\x55\x00" + WIRE) == FRAMES
    assert dec.stats.bytes_dropped == 1001


def test_decoder_every_single_bit_flip_is_rejected():
    frame = encode_frame(0x21, 9, bytes(range(1, 29)))
    for i in range(len(frame) - 1):
        for bit in range(8):
            corrupted = bytearray(frame)
            corrupted[i] ^= 1 << bit
            dec = FrameDecoder()
            assert dec.feed(bytes(corrupted)) == [], (i, bit)


def test_decoder_reset_drops_partial_frame():
    dec = FrameDecoder()
    dec.feed(WIRE[:5])
    dec.reset()
    assert dec.pending_bytes == 0
    assert dec.feed(WIRE[5:]) == FRAMES[1:]  # first frame's tail fails, the rest are intact


def test_decoder_rejects_silly_limit():
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_len=2)


frames_st = st.lists(
    st.builds(RawFrame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=60)),
    min_size=1,
    max_size=12,
)


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


def _is_subsequence(needle: list, hay: list) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


@settings(max_examples=150, deadline=None)
@given(frames_st, st.lists(st.integers(0, 10_000), max_size=20))
def test_property_any_chunking_recovers_all_frames(frames, cuts):
    wire = b"".join(encode_frame(*f) for f in frames)
    dec = FrameDecoder()
    out = []
    for chunk in _chunk(wire, cuts):
        out += dec.feed(chunk)
    assert out == frames
    assert dec.stats.bytes_dropped == 0


@settings(max_examples=150, deadline=None)
@given(
    frames_st,
    st.lists(st.binary(max_size=80), min_size=12, max_size=12),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_property_garbage_between_frames(frames, garbage, cuts):
    """Garbage terminated by 0x00 before each frame: every good frame recovered, in order.

    Garbage may itself contain 0x00 anywhere; it never lands inside a frame. With 1 in 65536
    odds a garbage run passes CRC, so recovered frames are checked as a subsequence.
    """
    wire = b"".join(g + b"\x00" + encode_frame(*f) for g, f in zip(garbage, frames, strict=False))
    dec = FrameDecoder()
    out = []
    for chunk in _chunk(wire, cuts):
        out += dec.feed(chunk)
    assert _is_subsequence(frames, out)
    assert dec.stats.frames_ok == len(out)
    assert dec.pending_bytes == 0


@settings(max_examples=100, deadline=None)
@given(frames_st, st.binary(min_size=1, max_size=40).filter(lambda g: 0 not in g), st.data())
def test_property_unterminated_garbage_costs_only_the_next_frame(frames, garbage, data):
    k = data.draw(st.integers(0, len(frames) - 1))
    wire = b"".join((garbage if i == k else b"") + encode_frame(*f) for i, f in enumerate(frames))
    out = FrameDecoder().feed(wire)
    assert _is_subsequence(frames[:k] + frames[k + 1 :], out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=10))
def test_property_random_bytes_never_raise_and_stay_bounded(chunks):
    dec = FrameDecoder(max_frame_len=64)
    for c in chunks:
        for f in dec.feed(c):
            assert 0 <= f.msg_id <= 255 and 0 <= f.seq <= 255
        assert dec.pending_bytes <= 64
    s = dec.stats
    assert s.bytes_dropped <= sum(len(c) for c in chunks)
