"""Valve board protocol: CRC-8 SAE J1850, E2E checksum, duty quantisation, versions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"


def crc8_bitwise(data: bytes, poly=0x1D, init=0xFF, xorout=0xFF) -> int:
    """Independent oracle: the textbook bit-at-a-time MSB-first CRC."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ xorout


@pytest.mark.parametrize("data,expected", [
    (b"123456789", 0x4B),               # SAE J1850 check value (AUTOSAR SWS CRC 7.2.1)
    (bytes([0x00, 0x00, 0x00, 0x00]), 0x59),   # AUTOSAR SWS CRC library table 7.2.1
    (bytes([0xF2, 0x01, 0x83]), 0x37),
    (bytes([0x0F, 0xAA, 0x00, 0x55]), 0x79),
    (bytes([0x00, 0xFF, 0x55, 0x11]), 0xB8),
    (bytes([0x33, 0x22, 0x55, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]), 0xCB),
    (bytes([0x92, 0x6B, 0x55]), 0x8C),
    (bytes([0xFF, 0xFF, 0xFF, 0xFF]), 0x74),
])
def test_crc8_reference_values(data, expected):
    assert vb.crc8_sae_j1850(data) == expected
    assert crc8_bitwise(data) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=16))
def test_crc8_matches_bitwise_oracle(data):
    assert vb.crc8_sae_j1850(data) == crc8_bitwise(data)


def test_e2e_checksum_includes_data_id():
    payload = bytes([0x72, 0, 0, 0, 0, 0xC4, 0x05, 0x00])
    expected = crc8_bitwise(bytes([0x01]) + payload[:7])
    assert vb.e2e_checksum(0x101, payload) == expected
    sealed = vb.seal(0x101, payload)
    assert sealed[:7] == payload[:7] and sealed[7] == expected
    assert vb.checksum_ok(0x101, sealed)
    assert not vb.checksum_ok(0x102, sealed)        # same bytes on another ID fail
    flipped = bytearray(sealed)
    flipped[3] ^= 0x10
    assert not vb.checksum_ok(0x101, flipped)
    with pytest.raises(ProtocolError):
        vb.seal(0x101, bytes(7))


@pytest.mark.parametrize("duty_pct,raw", [
    (0.0, 0), (-5.0, 0), (0.99, 0), (1.0, 1), (2.0, 1), (2.99, 1), (3.0, 2), (50.0, 25),
    (99.0, 50), (100.0, 50), (250.0, 50), (math.nan, 0), (math.inf, 0), (-math.inf, 0),
])
def test_duty_quantisation(duty_pct, raw):
    assert vb.duty_pct_to_raw(duty_pct) == raw


@pytest.mark.parametrize("prev,cur,delta", [(0, 1, 1), (15, 0, 1), (3, 3, 0), (3, 5, 2),
                                            (14, 1, 3)])
def test_counter_delta(prev, cur, delta):
    assert vb.counter_delta(prev, cur) == delta
    assert vb.next_counter(15) == 0


@pytest.mark.parametrize("version,spec,ok", [
    ((1, 2, 0), ">=1.2.0", True), ((1, 1, 9), ">=1.2.0", False),
    ((2, 0, 0), ">=1.2.0,<2.0.0", False), ((1, 9, 3), ">=1.2.0, <2.0.0", True),
    ((1, 2, 0), "1.2.0", True), ((1, 2, 1), "==1.2.0", False), ((1, 2, 1), "!=1.2.0", True),
    ((1, 10, 0), ">1.9.0", True),   # numeric, not string, comparison
])
def test_firmware_accepted(version, spec, ok):
    assert vb.firmware_accepted(version, spec) is ok


@pytest.mark.parametrize("spec", ["", ">=1.2", "~1.2.0", ">=a.b.c"])
def test_firmware_spec_malformed(spec):
    with pytest.raises(ProtocolError):
        vb.firmware_accepted((1, 2, 0), spec)


def test_typed_values_round_trip_through_dbc():
    codec = DbcCodec([QIKI_DBC])
    codec.require(vb.REQUIRED_SIGNALS)
    status = vb.ValveBoardStatus(valve_open_mask=0b1010_0001, valve_fault_mask=0b100,
                                 rail_voltage_v=23.87, cmd_timeout=True, rail_off=False,
                                 over_temp=True, board_temp_c=-12.0)
    msg = codec.encode(vb.STATUS, vb.status_signals(status, 14))
    data = vb.seal(msg.arbitration_id, msg.data)
    assert vb.checksum_ok(0x181, data)
    msg.data = bytearray(data)
    back = vb.status_from_signals(codec.decode(msg).signals)
    assert back.valve_open == (True, False, False, False, False, True, False, True)
    assert back.valve_fault_mask == 0b100
    assert back.rail_voltage_v == pytest.approx(23.87)
    assert (back.cmd_timeout, back.rail_off, back.over_temp) == (True, False, True)
    assert back.board_temp_c == -12.0
    hb = vb.ValveBoardHeartbeat(uptime_s=4294967.295 + 1.5, firmware_version=(1, 2, 3),
                                state=vb.BoardState.FAULT)
    dec = codec.decode(codec.encode(vb.HEARTBEAT, vb.heartbeat_signals(hb)))
    back_hb = vb.heartbeat_from_signals(dec.signals)
    assert back_hb.uptime_s == pytest.approx(1.499, abs=1e-3)   # 32-bit ms wrap
    assert back_hb.firmware_version == (1, 2, 3)
    assert back_hb.state is vb.BoardState.FAULT


def test_periods_agree_with_dbc():
    codec = DbcCodec([QIKI_DBC])
    assert codec.cycle_time_s(vb.COMMAND) == pytest.approx(vb.COMMAND_PERIOD_S)
    assert codec.cycle_time_s(vb.STATUS) == pytest.approx(vb.STATUS_PERIOD_S)
    assert codec.cycle_time_s(vb.HEARTBEAT) == pytest.approx(vb.HEARTBEAT_PERIOD_S)
