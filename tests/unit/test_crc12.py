"""CRC-12 of ``VB_Command`` (issue 15, SAFETY.md F01): table against a bitwise oracle, frame
layout against the DBC, and the Hamming distance computed by brute force.

The Hamming distance figures quoted in ``firmware_bridge/protocols/crc12.py`` and
``docs/ingress.md`` come from here: the CRC is affine, so the check of a corrupted valid
frame is the XOR of one syndrome per flipped bit; an undetected corruption of w bits is w
syndromes XOR-ing to zero. The syndromes are taken through the real frame functions
(``command_checksum_ok``, ``checksum_ok``), not through a model of them.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols import crc12 as c12
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"


def crc12_bitwise(bits: list[int], poly: int = 0x75D, init: int = 0xFFF, xorout: int = 0xFFF) -> int:
    """Independent oracle: textbook bit-at-a-time MSB-first CRC-12 over a bit list."""
    reg = init
    for b in bits:
        feedback = ((reg >> 11) & 1) ^ b
        reg = (reg << 1) & 0xFFF
        if feedback:
            reg ^= poly
    return reg ^ xorout


def msb_bits(data: bytes, n_bits: int = 8) -> list[int]:
    return [(byte >> (n_bits - 1 - i)) & 1 for byte in data for i in range(n_bits)]


def test_check_value():
    assert c12.crc12(b"123456789") == c12.CHECK_VALUE == crc12_bitwise(msb_bits(b"123456789"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=12), st.one_of(st.none(), st.integers(0, 15)))
def test_table_matches_bitwise_oracle(data, nibble):
    bits = msb_bits(data) + ([] if nibble is None else msb_bits(bytes([nibble]), 4))
    assert c12.crc12(data, nibble) == crc12_bitwise(bits)


@settings(max_examples=300, deadline=None)
@given(st.integers(0x100, 0x10D), st.binary(min_size=8, max_size=8))
def test_command_checksum_is_crc12_of_data_id_bytes_and_counter(arbitration_id, data):
    bits = msb_bits(bytes([arbitration_id & 0xFF]) + data[:6]) + msb_bits(bytes([data[6] & 0x0F]), 4)
    assert vb.command_checksum(arbitration_id, data) == crc12_bitwise(bits)
    sealed = vb.seal_command(arbitration_id, data)
    assert sealed[:6] == data[:6] and sealed[6] & 0x0F == data[6] & 0x0F
    assert vb.command_checksum_ok(arbitration_id, sealed)


def test_sealed_command_decodes_with_the_dbc_checksum():
    codec = DbcCodec([QIKI_DBC])
    msg = codec.encode(vb.COMMAND, vb.command_signals([50, 1, 0, 0, 0, 0, 0, 49], 5))
    data = vb.seal_command(msg.arbitration_id, msg.data)
    msg.data = bytearray(data)
    raw = codec.decode(msg).raw
    assert raw["VB_Cmd_Checksum"] == vb.command_checksum(0x101, data) == vb.CHECKSUM_FNS[vb.COMMAND](0x101, data)
    assert raw["VB_Cmd_Counter"] == 5 and raw["VB_Cmd_Duty8"] == 49
    assert vb.CHECKSUM_FNS[vb.STATUS] is vb.e2e_checksum is vb.CHECKSUM_FNS[vb.HEARTBEAT]


def test_another_ids_valid_command_is_refused():
    """A command sealed for any other data ID fails on 0x101 (a difference within 8 bits is a burst < 12)."""
    data = bytes([0x72, 0, 0, 0, 0, 0xC4, 0x05, 0])
    assert vb.command_checksum_ok(0x101, vb.seal_command(0x101, data))
    for other in range(256):
        if other != 0x01:
            assert not vb.command_checksum_ok(0x101, vb.seal_command(0x100 | other, data))


def _syndromes(ok_fn, check_fn, arbitration_id: int, frame: bytes) -> list[int]:
    """Per frame bit, the nonzero check difference its flip causes (through the real function)."""
    assert ok_fn(arbitration_id, frame)
    out = []
    for bit in range(64):
        bad = bytearray(frame)
        bad[bit // 8] ^= 1 << (bit % 8)
        out.append(check_fn(bytes(bad)))
    return out


def _hamming_distance(s: list[int], limit: int = 6) -> int:
    """Smallest number of frame bits whose flips go undetected (capped at ``limit``)."""
    if 0 in s:
        return 1
    if len(set(s)) < len(s):
        return 2
    singles = set(s)
    pairs: dict[int, tuple[int, int]] = {}
    for i, j in itertools.combinations(range(len(s)), 2):
        x = s[i] ^ s[j]
        if x in singles:
            return 3
        if x in pairs:
            return 4
        pairs[x] = (i, j)
    for i, j, k in itertools.combinations(range(len(s)), 3):
        if s[i] ^ s[j] ^ s[k] in pairs:
            return 5
    return limit


def _crc12_check(frame: bytes) -> int:
    return ((frame[6] >> 4) | (frame[7] << 4)) ^ vb.command_checksum(0x101, frame)


def _crc8_check(frame: bytes) -> int:
    return frame[7] ^ vb.e2e_checksum(0x101, frame)


@pytest.mark.parametrize("seed", [0, 1])
def test_command_crc12_hamming_distance_is_5_over_the_frame(seed):
    """Every corruption of 1..4 of the command's 64 bits is refused; some 5-bit ones pass (F01)."""
    rng = random.Random(seed)
    frame = vb.seal_command(0x101, bytes(rng.randrange(256) for _ in range(8)))
    s = _syndromes(vb.command_checksum_ok, _crc12_check, 0x101, frame)
    for _ in range(200):  # the check is affine: a multi-bit flip's check is the XOR of its bits'
        bits = rng.sample(range(64), rng.randint(2, 6))
        bad = bytearray(frame)
        want = 0
        for b in bits:
            bad[b // 8] ^= 1 << (b % 8)
            want ^= s[b]
        assert _crc12_check(bytes(bad)) == want
    assert _hamming_distance(s) == 5


def test_old_crc8_hamming_distance_is_3_over_the_frame():
    """The "before": CRC-8 SAE J1850 over data ID + bytes 0..6 lets some 3-bit corruptions through."""
    frame = vb.seal(0x101, bytes([0x72, 0, 0, 0, 0, 0xC4, 0x05, 0]))
    assert _hamming_distance(_syndromes(vb.checksum_ok, _crc8_check, 0x101, frame)) == 3


def test_koopman_table_entry_reproduced():
    """Koopman's "Good HD=5" row for 12 bits: 0xBAE has HD=5 up to 53 data bits, then 2 (period 65)."""
    def poly_hd(n_data: int) -> int:
        s, reg = [], 1
        for _ in range(n_data + 12):
            s.append(reg)
            reg <<= 1
            if reg & 0x1000:
                reg = (reg ^ c12.POLY) & 0xFFF
        return _hamming_distance(s)
    assert (c12.POLY_KOOPMAN << 1 | 1) == (1 << 12 | c12.POLY)
    assert poly_hd(52) == poly_hd(53) == 5
    assert poly_hd(54) == 2


def test_driver_refuses_a_dbc_with_the_old_8_bit_command_checksum(tmp_path):
    """K02: the driver seals 12 bits at bit 52; a DBC saying otherwise is refused at build time."""
    from hal.devices.valve_board import ValveBoardDriver
    from hal.errors import BusConfigError

    old = QIKI_DBC.read_text().replace('VB_Cmd_Checksum : 52|12@1+ (1,0) [0|4095]', 'VB_Cmd_Checksum : 56|8@1+ (1,0) [0|255]')
    assert old != QIKI_DBC.read_text()
    (tmp_path / "old.dbc").write_text(old)
    with pytest.raises(BusConfigError, match="12 bits at bit 52"):
        ValveBoardDriver(DbcCodec([tmp_path / "old.dbc"]))
    ValveBoardDriver(DbcCodec([QIKI_DBC]))
