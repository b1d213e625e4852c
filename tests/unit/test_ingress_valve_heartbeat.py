"""The valve board heartbeat carries the same E2E protection as status and command (issue 15 part 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.devices.valve_board import ValveBoardDriver

ROOT = Path(__file__).resolve().parents[2]
QIKI_DBC = ROOT / "dbc" / "qiki.dbc"


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([QIKI_DBC])


def heartbeat(codec, uptime_s, counter, *, seal=True):
    hb = vb.ValveBoardHeartbeat(uptime_s, (1, 2, 0), vb.BoardState.OPERATIONAL)
    msg = codec.encode(vb.HEARTBEAT, vb.heartbeat_signals(hb, counter))
    if seal:
        msg.data = bytearray(vb.seal(msg.arbitration_id, msg.data))
    return msg


def test_heartbeat_round_trip_with_counter_and_checksum(codec):
    msg = heartbeat(codec, 12.345, 9)
    assert vb.checksum_ok(msg.arbitration_id, msg.data)
    dec = codec.decode(msg)
    assert dec.raw["VB_HB_Counter"] == 9 and dec.raw["VB_HB_Checksum"] == msg.data[7]
    hb = vb.heartbeat_from_signals(dec.signals)
    assert hb.uptime_s == pytest.approx(12.345) and hb.firmware_version == (1, 2, 0)
    assert hb.state is vb.BoardState.OPERATIONAL


def test_driver_refuses_bad_checksum_and_repeated_counter(codec):
    drv = ValveBoardDriver(codec)
    assert drv.on_frame(heartbeat(codec, 1.0, 0), 1.0)
    bad = heartbeat(codec, 0.5, 1)
    bad.data[0] ^= 0x10  # uptime corrupted: would look like a reboot
    assert not drv.on_frame(bad, 1.1)
    assert not drv.on_frame(heartbeat(codec, 1.1, 1, seal=False), 1.1)
    assert drv.on_frame(heartbeat(codec, 1.1, 1), 1.1)
    assert not drv.on_frame(heartbeat(codec, 0.2, 1), 1.2)  # repeated counter: old data
    assert drv.ingress_rejects["checksum"] == 2 and drv.ingress_rejects["counter"] == 1
    assert not drv.rebooted and drv.reboot_count == 0


def test_firmware_fields_are_six_bits(codec):
    from hal.can.codec import CanEncodeError
    hb = vb.ValveBoardHeartbeat(1.0, (vb.FW_FIELD_MAX + 1, 0, 0), vb.BoardState.OPERATIONAL)
    with pytest.raises(CanEncodeError):
        codec.encode(vb.HEARTBEAT, vb.heartbeat_signals(hb, 0))


def test_fuzz_valve_small_budget(codec, load_bench):
    mod = load_bench("fuzz_valve")
    hb = mod.fuzz_heartbeats(codec, 2000, seed=3)
    cmd = mod.fuzz_commands(codec, 2000, seed=3)
    print(hb, cmd)
    # before the heartbeat's E2E protection: about half the corrupted heartbeats were taken
    assert hb["corrupted"] > 900 and hb["rate"] < 0.005 and hb["false_reboots"] <= 2
    assert cmd["opened_rate"] < 0.01
