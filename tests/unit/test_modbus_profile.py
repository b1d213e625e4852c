"""Register codec and profile schema (firmware_bridge/protocols/modbus_profile.py)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import ConfigError
from controller.yamlio import load_model
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import (
    DeviceProfile,
    Quantity,
    crc16_modbus,
    decode,
    decode_block,
    decode_raw,
    encode,
    plan_reads,
)


def q(**kw) -> Quantity:
    base = {"name": "x", "table": "holding", "address": 0}
    base.update(kw)
    return Quantity.model_validate(base)


# (quantity fields, registers on the wire, expected physical value) -- hand-computed
DECODE_TABLE = [
    ({"data_type": "u16"}, [0xFFFF], 65535.0),
    ({"data_type": "u16", "scale": 0.01}, [2651], 26.51),
    ({"data_type": "i16"}, [0xFFFF], -1.0),
    ({"data_type": "i16", "scale": 0.1}, [0x8000], -3276.8),
    ({"data_type": "i16"}, [0x7FFF], 32767.0),
    ({"data_type": "u8", "byte": "hi"}, [0x1234], float(0x12)),
    ({"data_type": "u8", "byte": "lo"}, [0x1234], float(0x34)),
    ({"data_type": "u32"}, [0x0001, 0x0002], 65538.0),
    ({"data_type": "u32", "word_order": "little"}, [0x0002, 0x0001], 65538.0),
    ({"data_type": "i32"}, [0xFFFF, 0xFFFE], -2.0),
    ({"data_type": "i32", "word_order": "little"}, [0xFFFE, 0xFFFF], -2.0),
    ({"data_type": "i32"}, [0x8000, 0x0000], -2147483648.0),
    ({"data_type": "f32"}, [0x4049, 0x0FDB], struct.unpack(">f", bytes.fromhex("40490FDB"))[0]),
    ({"data_type": "f32", "word_order": "little"}, [0x0000, 0xBF80], -1.0),
    ({"data_type": "f32", "scale": 2.0}, [0x3F00, 0x0000], 1.0),
]


@pytest.mark.parametrize("fields, words, expected", DECODE_TABLE)
def test_decode_table(fields, words, expected):
    assert decode(q(**fields), words) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("fields, words, expected", DECODE_TABLE)
def test_encode_inverts_decode(fields, words, expected):
    quantity = q(**fields)
    current = words[0] if fields.get("data_type") == "u8" else 0
    assert encode(quantity, expected, current_word=current) == words


def test_crc16_modbus_check_values():
    # CRC-16/MODBUS check value of "123456789", and a textbook frame: unit 1 reads one
    # holding register at 0 -> 01 03 00 00 00 01 84 0A (CRC low byte first, V1.02 6.2.2)
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_modbus(bytes.fromhex("010300000001")).to_bytes(2, "little") == bytes.fromhex("840A")


def test_u8_encode_keeps_other_byte():
    assert encode(q(data_type="u8", byte="lo"), 0x56, current_word=0x1234) == [0x1256]
    assert encode(q(data_type="u8", byte="hi"), 0x56, current_word=0x1234) == [0x5634]


def test_bitfield_decode_and_encode():
    f = q(data_type="bitfield", width_bits=32, bits={"a": 0, "b": 17, "c": 31})
    assert decode(f, [0x8002, 0x0001]) == {"raw": 0x80020001, "a": True, "b": True, "c": True}
    assert decode(f, [0x0000, 0x0000]) == {"raw": 0, "a": False, "b": False, "c": False}
    assert encode(f, {"b": True}) == [0x0002, 0x0000]
    assert encode(f, 0x80000000) == [0x8000, 0x0000]
    with pytest.raises(ProtocolError):
        encode(f, {"nope": True})


def test_bits_decode_as_bool():
    c = q(table="coil", writable=True)
    assert decode(c, [True]) is True and decode(c, [0]) is False
    assert encode(c, True) == [True]


@pytest.mark.parametrize(
    "fields, value",
    [
        ({"data_type": "u16"}, -1),
        ({"data_type": "u16"}, 65536),
        ({"data_type": "i16"}, 32768),
        ({"data_type": "u8", "byte": "lo"}, 256),
        ({"data_type": "u32"}, 2**32),
        ({"data_type": "i32"}, -(2**31) - 1),
        ({"data_type": "u16"}, math.nan),
        ({"data_type": "f32"}, math.inf),
    ],
)
def test_encode_rejects_out_of_range(fields, value):
    with pytest.raises(ProtocolError):
        encode(q(**fields), value)


@pytest.mark.parametrize(
    "fields, words",
    [({"data_type": "u32"}, [1]), ({"data_type": "u16"}, [1, 2]), ({"data_type": "u16"}, [70000]), ({"data_type": "i16"}, [-1])],
)
def test_decode_rejects_malformed(fields, words):
    with pytest.raises(ProtocolError):
        decode_raw(q(**fields), words)


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["big", "little"]))
def test_i32_roundtrip(n, order):
    quantity = q(data_type="i32", word_order=order)
    assert decode_raw(quantity, encode(quantity, n)) == n


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"data_type": "u8"}, "byte"),
        ({"data_type": "u16", "byte": "hi"}, "byte is only"),
        ({"data_type": "u16", "bits": {"a": 0}}, "bits are only"),
        ({"data_type": "bitfield", "bits": {"a": 16}}, "outside"),
        ({"scale": 0.0}, "scale"),
        ({"table": "input", "writable": True}, "read-only"),
        ({"data_type": "u32", "writable": True}, "single-register"),
        ({"name": "Bad Name"}, "pattern"),
        ({"address": 70000}, "less than or equal"),
        ({"unit_of": "V"}, "Extra inputs"),
    ],
)
def test_quantity_schema_rejects(fields, message):
    with pytest.raises(Exception, match=message):
        q(**fields)


def _profile(tmp_path, body: str):
    f = tmp_path / "p.yaml"
    f.write_text(body)
    return load_model(DeviceProfile, f, "p.yaml")


HEAD = "name: t\npoll_period_s: 1.0\npoll_deadline_s: 0.5\n"


@pytest.mark.parametrize(
    "body, key",
    [
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0, units: V}\n", "quantities[0].units"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: '0'}\n", "quantities[0].address"),
        (HEAD + "quantities:\n  - {name: a, table: tables, address: 0}\n", "quantities[0].table"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0, data_type: u64}\n", "quantities[0].data_type"),
        ("name: t\npoll_period_s: 1.0\npoll_deadline_s: 2.0\nquantities:\n  - {name: a, table: holding, address: 0}\n", "poll_deadline_s must not exceed"),
        ("name: t\npoll_period_s: -1.0\npoll_deadline_s: 0.5\nquantities:\n  - {name: a, table: holding, address: 0}\n", "poll_period_s"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0}\n  - {name: a, table: holding, address: 1}\n", "duplicate quantity"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0, data_type: u32}\n  - {name: b, table: holding, address: 1}\n", "overlaps"),
        (HEAD + "addressing: byte\nquantities:\n  - {name: a, table: holding, address: 1}\n", "odd address"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0}\n  - {name: a, table: holding, address: 0}\n", "duplicate"),
        (HEAD + "quantities: []\n", "quantities"),
        (HEAD + "quantities:\n  - {name: a, table: holding, address: 0}\nquantities:\n  - {name: b, table: holding, address: 0}\n", "duplicate key"),
    ],
)
def test_bad_profile_is_one_line_config_error(tmp_path, body, key):
    with pytest.raises(ConfigError) as info:
        _profile(tmp_path, body)
    text = str(info.value)
    assert "\n" not in text and text.startswith("p.yaml") and key in text


def test_u8_halves_may_share_a_register(tmp_path):
    p = _profile(tmp_path, HEAD + "quantities:\n  - {name: a, table: holding, address: 0, data_type: u8, byte: hi}\n"
                 "  - {name: b, table: holding, address: 0, data_type: u8, byte: lo}\n")
    [block] = plan_reads(p)
    assert (block.address, block.count) == (0, 1)
    assert decode_block(block, [0x0A0B]) == {"a": 10.0, "b": 11.0}


def test_plan_reads_groups_by_gap_and_limit(tmp_path):
    body = HEAD + "max_gap_registers: 2\nmax_read_registers: 10\nquantities:\n" + "".join(
        f"  - {{name: r{a}, table: input, address: {a}}}\n" for a in (0, 1, 4, 6, 9, 11, 30)
    ) + "  - {name: c0, table: coil, address: 0, writable: true}\n  - {name: c2, table: coil, address: 2, writable: true}\n"
    blocks = plan_reads(_profile(tmp_path, body))
    spans = [(b.table, b.address, b.count, [m.name for m, _ in b.members]) for b in blocks]
    assert spans == [
        ("coil", 0, 1, ["c0"]), ("coil", 2, 1, ["c2"]),
        ("input", 0, 10, ["r0", "r1", "r4", "r6", "r9"]),  # holes <= 2; r11 would make 12 > 10
        ("input", 11, 1, ["r11"]), ("input", 30, 1, ["r30"]),  # hole 18 > 2
    ]


def test_plan_reads_byte_addressing_indexes_by_register(tmp_path):
    body = HEAD + "addressing: byte\nmax_gap_registers: 4\nquantities:\n" \
        "  - {name: a, table: holding, address: 0x100, data_type: u16}\n" \
        "  - {name: b, table: holding, address: 0x104, data_type: u32}\n"
    [block] = plan_reads(_profile(tmp_path, body))
    assert (block.address, block.count) == (0x100, 4)
    assert [(m.name, i) for m, i in block.members] == [("a", 0), ("b", 2)]
    assert decode_block(block, [7, 0xFFFF, 0, 5]) == {"a": 7.0, "b": 5.0}


def test_decode_block_rejects_wrong_length(tmp_path):
    p = _profile(tmp_path, HEAD + "quantities:\n  - {name: a, table: holding, address: 0, data_type: u32}\n")
    [block] = plan_reads(p)
    with pytest.raises(ProtocolError):
        decode_block(block, [1, 2, 3])


def test_plan_reads_unknown_name():
    p = DeviceProfile.model_validate({"name": "t", "poll_period_s": 1.0, "poll_deadline_s": 1.0,
                                      "quantities": [{"name": "a", "table": "holding", "address": 0}]})
    with pytest.raises(KeyError, match="known: a"):
        plan_reads(p, ["b"])
