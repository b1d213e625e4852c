"""The JK BMS profile (rigs/profiles/jk_bms.yaml) against its register map.

Hand-computed register images for each data type the profile uses (u16, i16, u8 hi/lo,
u32, i32, f32, bitfield), decoded through the same read plan the poller uses; and every
address checked against the vendor map in ../shared/data/real (skipped when absent).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.config import load_profile
from firmware_bridge.protocols.modbus_profile import decode_block, plan_reads

ROOT = Path(__file__).resolve().parents[2]
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MAP_TXT = REAL / "modbus" / "jk_bms" / "JK_BMS_RS485_Modbus_V1.1.txt"


@pytest.fixture(scope="module")
def profile():
    return load_profile(ROOT / "rigs/profiles/jk_bms.yaml")


def _live_block(profile):
    [block] = [b for b in plan_reads(profile) if b.address == 0x1200]
    return block


def _word(addr: int) -> int:
    """Index in the live-block reply of the register at byte address ``addr``."""
    return (addr - 0x1200) // 2


# byte address -> registers as the device sends them (hand-computed from the map's units)
LIVE_IMAGE = {
    0x1200: [0x0CF0],                # CellVol0 3312 mV
    0x1202: [0x0CE4],                # CellVol1 3300 mV
    0x1240: [0x0000, 0x00FF],        # CellSta: cells 0..7 present
    0x1248: [0x0502],                # MaxVolCellNbr 5 (high byte), MinVolCellNbr 2 (low byte)
    0x128A: [0xFFCB],                # TempMos -53 x 0.1 degC
    0x1290: [0x0001, 0x1170],        # BatVol 0x00011170 = 70000 mV
    0x1294: [0x0002, 0xAB98],        # BatWatt 0x0002AB98 = 175000 mW
    0x1298: [0xFFFF, 0xF63C],        # BatCurrent 0xFFFFF63C = -2500 mA
    0x129C: [0x00FB],                # TempBat1 251 x 0.1 degC
    0x129E: [0xFFFB],                # TempBat2 -5 x 0.1 degC
    0x12A0: [0x0020, 0x0800],        # alarms 0x00200800: BIT11 cell UVP, BIT21 over-temp alarm
    0x12A6: [0x0257],                # BalanSta 2 (high byte), SOC 0x57 = 87 % (low byte)
    0x12A8: [0x0000, 0x1194],        # SOCCapRemain 4500 mAh
    0x12B0: [0x0001, 0x0000],        # SOCCycleCount 65536
    0x12DC: [0x3F7A, 0xE148],        # BatVolCorrect IEEE 754 0x3F7AE148 = 0.98
}

EXPECTED = {
    "cell_00_voltage_v": 3.312,
    "cell_01_voltage_v": 3.300,
    "max_voltage_cell_index": 5.0,
    "min_voltage_cell_index": 2.0,
    "mos_temperature_c": -5.3,
    "pack_voltage_v": 70.0,
    "pack_power_w": 175.0,
    "pack_current_a": -2.5,
    "battery_temperature_1_c": 25.1,
    "battery_temperature_2_c": -0.5,
    "balance_state": 2.0,
    "soc_pct": 87.0,
    "capacity_remaining_ah": 4.5,
    "cycle_count": 65536.0,
    "voltage_correction_factor": 0.98,
    "cell_02_voltage_v": 0.0,
}


def test_live_block_decodes_hand_computed_values(profile):
    block = _live_block(profile)
    assert block.count <= 125
    reply = [0] * block.count
    for addr, words in LIVE_IMAGE.items():
        i = _word(addr)
        reply[i:i + len(words)] = words
    values = decode_block(block, reply)
    for name, expected in EXPECTED.items():
        assert values[name] == pytest.approx(expected, rel=1e-6, abs=1e-9), name
    assert values["cells_present"]["raw"] == 0xFF
    alarms = values["alarms"]
    assert alarms["raw"] == 0x00200800
    assert alarms["cell_undervoltage"] and alarms["battery_overtemperature"]
    assert sum(1 for k, v in alarms.items() if k != "raw" and v) == 2


def test_settings_block_decodes_cell_count(profile):
    [block] = [b for b in plan_reads(profile) if b.address < 0x1200]
    reply = [0] * block.count
    idx = {q.name: i for q, i in block.members}
    reply[idx["cell_count"]:idx["cell_count"] + 2] = [0x0000, 0x0010]           # 16 cells
    reply[idx["cell_undervoltage_protection_v"]:idx["cell_undervoltage_protection_v"] + 2] = [0x0000, 0x0A8C]  # 2700 mV
    reply[idx["discharge_overtemperature_protection_c"]:idx["discharge_overtemperature_protection_c"] + 2] = [0xFFFF, 0xFF9C]  # -100
    values = decode_block(block, reply)
    assert values["cell_count"] == 16.0
    assert values["cell_undervoltage_protection_v"] == pytest.approx(2.7)
    assert values["discharge_overtemperature_protection_c"] == pytest.approx(-10.0)


def test_profile_uses_every_data_type(profile):
    used = {q.data_type for q in profile.quantities}
    assert used == {"u8", "u16", "i16", "u32", "i32", "f32", "bitfield"}


def test_one_read_per_block(profile):
    # the whole poll is two requests: settings 0x1000 block and live 0x1200 block
    assert [(b.address, b.count) for b in plan_reads(profile)] == [(0x1004, 62), (0x1200, 112)]


_TYPE = {"UINT16": {"u16", "bitfield"}, "INT16": {"i16"}, "UINT32": {"u32", "bitfield"}, "INT32": {"i32"}, "FLOAT": {"f32"}}
_ROW = re.compile(r"0x([0-9A-F]{4})\s+(\d+)\s+(UINT16|INT16|UINT32|INT32|FLOAT)\s+\d+\s+R?W?\s+\S*?([A-Za-z][A-Za-z0-9]*(?: \d)?)\s")


def _doc_blocks(text: str) -> list[dict[str, tuple[int, str]]]:
    """Rows of the map, split into blocks where the byte offset restarts at 0."""
    blocks: list[dict[str, tuple[int, str]]] = []
    last = None
    for line in text.splitlines():
        m = _ROW.search(line)
        if not m:
            continue
        offset = int(m.group(1), 16)
        assert offset == int(m.group(2)), line  # HEX and DEC columns agree
        if last is None or offset < last:
            blocks.append({})
        last = offset
        blocks[-1].setdefault(m.group(4).strip(), (offset, m.group(3)))
    return blocks


def test_addresses_match_the_vendor_map(profile):
    if not MAP_TXT.exists():
        pytest.skip(f"JK BMS register map not found at {MAP_TXT} (../shared/data/real absent)")
    blocks = _doc_blocks(MAP_TXT.read_text(encoding="utf-8"))
    settings, live = blocks[0], blocks[1]
    assert live["BatVol"] == (0x90, "UINT32") and settings["CellCount"] == (0x6C, "UINT32")
    checked = 0
    for q in profile.quantities:
        doc_name = q.description.split(",")[0]
        if q.data_type == "u8" or not doc_name:
            continue
        base, table = (0x1200, live) if q.address >= 0x1200 else (0x1000, settings)
        if doc_name not in table:
            continue
        offset, dtype = table[doc_name]
        assert q.address == base + offset, f"{q.name}: {q.address:#06x} != {base:#06x} + byte offset {offset:#06x}"
        assert q.data_type in _TYPE[dtype], f"{q.name}: {q.data_type} vs map {dtype}"
        checked += 1
    assert checked >= 30
