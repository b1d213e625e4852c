"""The fast encode paths give the bytes of the general ones (issue 16 item 1, 2026-12-07b).

``cobs_encode``'s one-pass join for short input against a byte-by-byte COBS encoder,
``seal_body`` against ``encode_frame``, and ``encode_imu`` / ``encode_pose`` (the MCU
emulator's streams) against ``encode`` of the message objects, errors included.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import qiki_mcu as proto
from firmware_bridge.protocols.framing import MAX_PAYLOAD_LEN, cobs_encode, encode_frame, seal_body


def _cobs_bytewise(data: bytes) -> bytes:
    """Independent oracle: COBS one byte at a time (Cheshire & Baker 1999, figure 2)."""
    out = bytearray([0])
    code_at, code = 0, 1
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            if i == len(data) - 1:
                return bytes(out)  # canonical: no empty group after a final 0xFF block
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.binary(min_size=250, max_size=260).map(lambda b: b.replace(b"\x00", b"\x07")))
def test_cobs_encode_equals_the_bytewise_encoder(data: bytes) -> None:
    assert cobs_encode(data) == _cobs_bytewise(data)
    assert cobs_encode(bytearray(data)) == _cobs_bytewise(data)


@pytest.mark.parametrize("n", [0, 1, 252, 253, 254, 255, 508])
@pytest.mark.parametrize("fill", [b"\x00", b"\x01"])
def test_cobs_encode_at_the_block_boundaries(n: int, fill: bytes) -> None:
    assert cobs_encode(fill * n) == _cobs_bytewise(fill * n)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=MAX_PAYLOAD_LEN))
def test_seal_body_equals_encode_frame(msg_id: int, seq: int, payload: bytes) -> None:
    assert seal_body(bytes((msg_id, seq)) + payload) == encode_frame(msg_id, seq, payload)


_F32 = st.floats(width=32) | st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e-45])
_SEQ = st.integers(-300, 600)
_T_MS = st.integers(-(2**33), 2**33)


@settings(max_examples=100, deadline=None)
@given(_SEQ, _T_MS, _F32, _F32, _F32)
def test_encode_imu_equals_encode(seq: int, t_ms: int, r: float, ax: float, ay: float) -> None:
    assert proto.encode_imu(seq, t_ms, r, ax, ay) == proto.encode(proto.Imu(t_ms, r, ax, ay), seq)


@settings(max_examples=100, deadline=None)
@given(_SEQ, _T_MS, st.lists(_F32, min_size=6, max_size=6))
def test_encode_pose_equals_encode(seq: int, t_ms: int, f: list[float]) -> None:
    assert proto.encode_pose(seq, t_ms, *f) == proto.encode(proto.Pose(t_ms, *f), seq)


def test_fast_encoders_raise_as_encode() -> None:
    with pytest.raises(ProtocolError, match="cannot encode Imu"):
        proto.encode(proto.Imu(1.5, 0.0, 0.0, 0.0), 0)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="cannot encode Imu"):
        proto.encode_imu(0, 1.5, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="cannot encode Pose"):
        proto.encode_pose(0, 0, "x", 0.0, 0.0, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
    for call in (lambda: proto.encode(proto.Pose(0, 1e39, 0.0, 0.0, 0.0, 0.0, 0.0), 0),
                 lambda: proto.encode_pose(0, 0, 1e39, 0.0, 0.0, 0.0, 0.0, 0.0)):
        with pytest.raises(OverflowError):  # struct's f32 range check, not wrapped by encode
            call()
    assert len(proto.encode_imu(0, 0, 0.0, 0.0, 0.0)) == 16 + 6  # payload + 6 (encode_frame)


def _unstuff_reference(enc: bytes) -> bytes | None:
    """The general COBS decode loop (block by block, 0xFF blocks without an implied zero)."""
    out, i, n = bytearray(), 0, len(enc)
    while i < n:
        code = enc[i]
        if i + code > n:
            return None
        out += enc[i + 1 : i + code]
        i += code
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\x01"))
       | st.binary(max_size=300).map(cobs_encode))
def test_cobs_unstuff_equals_the_general_loop(enc: bytes) -> None:
    from firmware_bridge.protocols.framing import _cobs_unstuff

    assert _cobs_unstuff(enc) == _unstuff_reference(enc)
