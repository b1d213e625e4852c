"""QIKI MCU protocol: typed messages <-> frames, strict decoding."""

from __future__ import annotations

import dataclasses
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import qiki_mcu as p
from firmware_bridge.protocols.framing import FrameDecoder, RawFrame, decode_frame, encode_frame

MESSAGES = [
    (p.HelloRequest(p.PROTOCOL_VERSION), 0x01, 1),
    (p.Hello(1, 2, 3, p.PROTOCOL_VERSION, 0xDEADBEEF), 0x02, 8),
    (p.HostHeartbeat(123456, p.HostState.ARMED), 0x10, 5),
    (p.McuStatus(4_000_000_000, True, False, p.WatchdogState.HOST_TIMEOUT, 0x81), 0x11, 8),
    (p.Imu(10, 0.5, -1.25, 2.0), 0x20, 16),
    (p.Pose(20, 1.5, -2.5, 3.0, 0.25, -0.125, 0.0625), 0x21, 28),  # exact in f32
    (p.RailRequest(True), 0x30, 1),
    (p.RailRequest(False), 0x30, 1),
]


@pytest.mark.parametrize("msg, msg_id, payload_len", MESSAGES, ids=lambda v: type(v).__name__)
def test_round_trip(msg, msg_id, payload_len):
    raw = decode_frame(p.encode(msg, 42))
    assert (raw.msg_id, raw.seq, len(raw.payload)) == (msg_id, 42, payload_len)
    assert p.decode(raw) == msg
    assert p.is_known_id(msg_id)


def test_messages_are_frozen_with_slots():
    for msg, _, _ in MESSAGES:
        assert not hasattr(msg, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(msg, dataclasses.fields(msg)[0].name, 0)


def test_status_golden_bytes():
    raw = decode_frame(p.encode(p.McuStatus(0x01020304, True, True, p.WatchdogState.OK, 0x05), 7))
    # uptime_ms u32 LE | estop | rail | watchdog | fault_flags
    assert raw.payload == bytes([0x04, 0x03, 0x02, 0x01, 1, 1, 0, 5])


def test_pose_golden_bytes():
    raw = decode_frame(p.encode(p.Pose(1, 1.0, 0.0, 0.0, 0.0, 0.0, -2.0), 0))
    assert raw.payload[:4] == b"\x01\x00\x00\x00"
    assert raw.payload[4:8] == struct.pack("<f", 1.0)
    assert raw.payload[24:28] == b"\x00\x00\x00\xc0"


def test_f32_rounding_is_the_only_change():
    msg = p.Imu(1, 0.1, 0.2, 0.3)
    out = p.decode(decode_frame(p.encode(msg, 0)))
    assert out.yaw_rate_radps == pytest.approx(0.1, rel=1e-7)
    assert out.yaw_rate_radps == struct.unpack("<f", struct.pack("<f", 0.1))[0]


def test_times_wrap_modulo_2_32():
    raw = decode_frame(p.encode(p.HostHeartbeat(2**32 + 5, p.HostState.IDLE), 0))
    assert p.decode(raw).host_time_ms == 5


@pytest.mark.parametrize(
    "frame, why",
    [
        (RawFrame(0x7F, 0, b""), "unknown id"),
        (RawFrame(0x02, 0, b"\x01" * 7), "HELLO short"),
        (RawFrame(0x11, 0, b"\x00" * 9), "STATUS long"),
        (RawFrame(0x11, 0, b"\x00\x00\x00\x00\x02\x00\x00\x00"), "estop byte 2"),
        (RawFrame(0x11, 0, b"\x00\x00\x00\x00\x00\x07\x00\x00"), "rail byte 7"),
        (RawFrame(0x11, 0, b"\x00\x00\x00\x00\x00\x00\x03\x00"), "watchdog 3"),
        (RawFrame(0x10, 0, b"\x00\x00\x00\x00\x09"), "host state 9"),
        (RawFrame(0x30, 0, b"\x02"), "rail request 2"),
        (RawFrame(0x30, 0, b""), "rail request empty"),
        (RawFrame(0x20, 0, struct.pack("<Ifff", 0, math.nan, 0, 0)), "IMU NaN"),
        (RawFrame(0x21, 0, struct.pack("<Iffffff", 0, 0, math.inf, 0, 0, 0, 0)), "POSE inf"),
        (RawFrame(0x01, 0, b""), "HELLO_REQUEST empty"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_decode_rejects_to_none(frame, why):
    assert p.decode(frame) is None


def test_unknown_vs_invalid_is_distinguishable():
    assert not p.is_known_id(0x7F)
    assert p.is_known_id(0x11)


@pytest.mark.parametrize(
    "msg",
    [
        p.Hello(256, 0, 0, 1, 0),
        p.Hello(1, 0, 0, 1, -1),
        p.HostHeartbeat(0, 17),
        p.McuStatus(0, False, False, 9, 0),
        p.McuStatus(0, False, False, p.WatchdogState.OK, 256),
        "not a message",
    ],
)
def test_encode_rejects_out_of_range(msg):
    with pytest.raises(ProtocolError):
        p.encode(msg, 0)


def test_host_state_codes_are_stable():
    # These codes are on the wire: changing one is a protocol version bump.
    assert {s.name: int(s) for s in p.HostState} == {
        "BOOT": 0, "IDLE": 1, "ARMED": 2, "ACTIVE": 3, "SAFE_MODE": 4, "ESTOP": 5, "OTHER": 255,
    }
    assert [int(s) for s in p.WatchdogState] == [0, 1, 2]
    assert p.PROTOCOL_VERSION == 1


def test_stream_of_messages_through_decoder():
    wire = b"".join(p.encode(m, i) for i, (m, _, _) in enumerate(MESSAGES))
    out = [p.decode(f) for f in FrameDecoder().feed(wire)]
    assert out == [m for m, _, _ in MESSAGES]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
def test_property_decode_never_raises(msg_id, seq, payload):
    msg = p.decode(RawFrame(msg_id, seq, payload))
    if msg is not None:
        # Finite f32 values survive unpack/pack bit for bit: every accepted payload
        # re-encodes to the same bytes.
        assert decode_frame(p.encode(msg, seq)).payload == payload


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=6, max_size=6),
)
def test_property_pose_round_trip_exact_for_f32_values(t_ms, values):
    msg = p.Pose(t_ms, *values)
    assert p.decode(decode_frame(p.encode(msg, 0))) == msg


def test_frame_header_layout_is_the_framing_layer():
    assert p.encode(p.RailRequest(True), 3) == encode_frame(0x30, 3, b"\x01")
