"""Table-driven CRC-8 E2E, CRC-16/MODBUS, CRC-16/CCITT-FALSE and COBS: bit-exact tests.

The implementations before issue 16 are kept here as oracles (bitwise CRC-16/MODBUS, the
E2E checksum through a concatenated buffer, a bitwise CRC-16/CCITT-FALSE, the byte-wise
COBS of Cheshire & Baker's paper) and compared on hypothesis-generated data.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols import framing
from firmware_bridge.protocols import valve_board as vb
from firmware_bridge.protocols.modbus_profile import crc16_modbus


# ----------------------------------------------------------------------------- oracles
def old_crc16_modbus(data: bytes) -> int:
    """Bitwise CRC-16/MODBUS (the implementation before the table)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def old_crc8_j1850(data: bytes) -> int:
    """Bitwise CRC-8 SAE J1850 (poly 0x1D, init 0xFF, xorout 0xFF)."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def old_e2e_checksum(arbitration_id: int, data: bytes) -> int:
    """The E2E checksum before issue 16: CRC-8 over a concatenated buffer."""
    return vb.crc8_sae_j1850(bytes((arbitration_id & 0xFF,)) + bytes(data[:7]))


def old_crc16_ccitt_false(data: bytes) -> int:
    """Bitwise CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def paper_cobs_encode(data: bytes) -> bytes:
    """Byte-wise COBS encoder (Cheshire & Baker 1999, figure 2), canonical form."""
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    if _ends_full_block(out):
        out.pop()  # canonical: no empty group after a final 0xFF block
    return bytes(out)


def _ends_full_block(out: bytearray) -> bool:
    """True when the last group is an empty one right after a full 0xFF block."""
    i = 0
    last_code = None
    prev_code = None
    while i < len(out):
        prev_code, last_code = last_code, out[i]
        i += out[i] if out[i] else 1
    return last_code == 1 and prev_code == 0xFF


# ----------------------------------------------------------------------------- tests
def test_check_values():
    assert crc16_modbus(b"123456789") == 0x4B37 == old_crc16_modbus(b"123456789")
    assert vb.crc8_sae_j1850(b"123456789") == 0x4B == old_crc8_j1850(b"123456789")
    assert framing.crc16_ccitt_false(b"123456789") == 0x29B1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_crc16_modbus_table_equals_bitwise(data):
    assert crc16_modbus(data) == old_crc16_modbus(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_crc8_table_equals_bitwise(data):
    assert vb.crc8_sae_j1850(data) == old_crc8_j1850(data)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 0x1FFFFFFF), st.binary(min_size=7, max_size=8),
       st.sampled_from([bytes, bytearray]))
def test_e2e_checksum_equals_concatenated(arbitration_id, data, kind):
    assert vb.e2e_checksum(arbitration_id, kind(data)) == old_e2e_checksum(arbitration_id, data)
    sealed = vb.seal(arbitration_id, data.ljust(8, b"\0")[:8])
    assert vb.checksum_ok(arbitration_id, sealed)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_crc16_ccitt_false_equals_bitwise(data):
    assert framing.crc16_ccitt_false(data) == old_crc16_ccitt_false(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=600),
                 st.lists(st.sampled_from([b"\0", b"\x01" * 253, b"\x02" * 254, b"\x03" * 255,
                                           b"\x04"]), max_size=5).map(b"".join)))
def test_cobs_round_trip_and_paper_encoder(data):
    enc = framing.cobs_encode(data)
    assert b"\0" not in enc
    assert framing.cobs_decode(enc) == data
    assert framing.cobs_decode(paper_cobs_encode(data)) == data
    assert enc == paper_cobs_encode(data)
