"""DbcCodec: round trips, exact bytes, K01/K02 errors, decode equals cantools."""

from __future__ import annotations

from pathlib import Path

import can
import cantools
import pytest

from hal.can.bus import open_can_bus
from hal.can.codec import CanEncodeError, DbcCodec
from hal.errors import BusConfigError

ROOT = Path(__file__).resolve().parents[2]
QIKI_DBC = ROOT / "dbc" / "qiki.dbc"
REAL_CAN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "can" / "ars408"


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([QIKI_DBC])


def _cmd(duties=(0,) * 8, counter=0, checksum=0):
    sig = {f"VB_Cmd_Duty{i + 1}": d for i, d in enumerate(duties)}
    sig["VB_Cmd_Counter"] = counter
    sig["VB_Cmd_Checksum"] = checksum
    return sig


def test_layout_ids_cycle_times(codec):
    assert codec.frame_id("VB_Command") == 0x101
    assert codec.frame_id("VB_Status") == 0x181
    assert codec.frame_id("VB_Heartbeat") == 0x701
    assert codec.cycle_time_s("VB_Command") == pytest.approx(0.010)
    assert codec.cycle_time_s("VB_Status") == pytest.approx(0.020)
    assert codec.cycle_time_s("VB_Heartbeat") == pytest.approx(0.100)
    for name in codec.message_names:
        m = codec.message(name)
        assert m.length == 8 and not m.is_extended_frame


def test_encode_exact_bytes_hand_computed(codec):
    # Duty1 = 100 % (raw 50 = 0b110010) at bits 0-5, Duty2 = 2 % (raw 1) at bits 6-11,
    # Duty8 = 98 % (raw 49 = 0b110001) at bits 42-47, counter 5 at bits 48-51,
    # 12-bit checksum 0xA5C at bits 52-63 (low nibble C in byte 6's high nibble, 0xA5 in byte 7).
    # byte 0 = 0b01_110010 = 0x72; byte 5 = raw49 << 2 = 0xC4; byte 6 = 0xC5.
    msg = codec.encode("VB_Command", _cmd((100, 2, 0, 0, 0, 0, 0, 98), 5, 0xA5C))
    assert bytes(msg.data) == bytes([0x72, 0x00, 0x00, 0x00, 0x00, 0xC4, 0xC5, 0xA5])
    assert msg.arbitration_id == 0x101
    assert msg.is_extended_id is False
    assert msg.dlc == 8


def test_status_exact_bytes(codec):
    # RailVoltage 24.00 V = raw 2400 = 0x960 at bits 16-27; CmdTimeout bit 28;
    # BoardTemp 35 degC = raw 75 = 0x4B in byte 4.
    msg = codec.encode("VB_Status", {
        "VB_Sts_ValveOpen": 0x81, "VB_Sts_ValveFault": 0x02, "VB_Sts_RailVoltage": 24.0,
        "VB_Sts_CmdTimeout": 1, "VB_Sts_RailOff": 0, "VB_Sts_OverTemp": 1,
        "VB_Sts_BoardTemp": 35, "VB_Sts_Counter": 15, "VB_Sts_Checksum": 0})
    # byte 3 = rail bits 24-27 (0x9) | CT (bit 4) | OT (bit 6) = 0x59
    assert bytes(msg.data) == bytes([0x81, 0x02, 0x60, 0x59, 0x4B, 0x00, 0x0F, 0x00])


@pytest.mark.parametrize("duties,counter", [
    ((0,) * 8, 0), ((100,) * 8, 15), ((2, 4, 6, 8, 10, 12, 14, 16), 7),
    ((50, 0, 100, 0, 98, 2, 0, 64), 9)])
def test_command_round_trip(codec, duties, counter):
    msg = codec.encode("VB_Command", _cmd(duties, counter, 0x3C))
    dec = codec.decode(msg)
    assert dec is not None and dec.name == "VB_Command"
    assert [dec.signals[f"VB_Cmd_Duty{i}"] for i in range(1, 9)] == list(duties)
    assert dec.signals["VB_Cmd_Counter"] == counter
    assert dec.raw["VB_Cmd_Duty1"] == duties[0] // 2


def test_heartbeat_round_trip_scaled(codec):
    msg = codec.encode("VB_Heartbeat", {"VB_HB_Uptime": 1234.567, "VB_HB_FwMajor": 1,
                                        "VB_HB_FwMinor": 2, "VB_HB_FwPatch": 3,
                                        "VB_HB_State": "OPERATIONAL", "VB_HB_Counter": 0,
                                        "VB_HB_Checksum": 0})
    dec = codec.decode(msg)
    assert dec.signals["VB_HB_Uptime"] == pytest.approx(1234.567)
    assert dec.raw["VB_HB_Uptime"] == 1234567
    assert dec.signals["VB_HB_State"] == 1  # decode_choices=False


@pytest.mark.parametrize("sig,value", [("VB_Cmd_Duty1", 102), ("VB_Cmd_Duty3", -2),
                                        ("VB_Cmd_Counter", 16)])
def test_encode_out_of_range_raises(codec, sig, value):
    s = _cmd()
    s[sig] = value
    with pytest.raises(CanEncodeError):
        codec.encode("VB_Command", s)


def test_encode_missing_signal_and_unknown_message(codec):
    s = _cmd()
    del s["VB_Cmd_Checksum"]
    with pytest.raises(CanEncodeError):
        codec.encode("VB_Command", s)
    with pytest.raises(CanEncodeError):
        codec.encode("Nope", {})


@pytest.mark.parametrize("msg", [
    can.Message(arbitration_id=0x7FF, is_extended_id=False, data=bytes(8)),
    can.Message(arbitration_id=0x101, is_extended_id=True, data=bytes(8)),
    can.Message(arbitration_id=0x101, is_extended_id=False, data=bytes(7)),
    can.Message(arbitration_id=0x101, is_extended_id=False, is_remote_frame=True, dlc=8),
    can.Message(arbitration_id=0x101, is_extended_id=False, is_error_frame=True,
                data=bytes(8)),
], ids=["unknown", "extended", "short-dlc", "remote", "error"])
def test_decode_rejects(codec, msg):
    assert codec.decode(msg) is None


def test_with_offset(codec):
    node2 = codec.with_offset(1)
    assert node2.frame_id("VB_Status") == 0x182
    msg = node2.encode("VB_Command", _cmd())
    assert msg.arbitration_id == 0x102
    assert node2.decode(msg).name == "VB_Command"
    assert codec.decode(msg) is None  # 0x102 is unknown to node 1
    assert DbcCodec([QIKI_DBC], id_offset=1).frame_id("VB_Heartbeat") == 0x702


def test_require(codec):
    codec.require({"VB_Status": ["VB_Sts_RailVoltage"], "VB_Heartbeat": []})
    with pytest.raises(BusConfigError, match="VB_Missing"):
        codec.require({"VB_Missing": []})
    with pytest.raises(BusConfigError, match="qiki.dbc.*VB_Sts_Nope"):
        codec.require({"VB_Status": ["VB_Sts_Nope"]})


# ----------------------------------------------------------------------- K01 bad files
GOOD = QIKI_DBC.read_text()


def _overlap(text: str) -> str:
    return text.replace(" SG_ VB_Cmd_Duty2 : 6|6@1+", " SG_ VB_Cmd_Duty2 : 4|6@1+")


@pytest.mark.parametrize("name,content,needle", [
    ("missing.dbc", None, "not found"),
    ("truncated.dbc", GOOD[: GOOD.index(" SG_ VB_Cmd_Duty3") + 20], "truncated"),
    ("truncated2.dbc", GOOD[: GOOD.index(" SG_ VB_Cmd_Duty3") + 5], "truncated"),
    ("truncated3.dbc", GOOD[: GOOD.index('BA_ "GenMsgCycleTime" BO_ 385') + 12], "invalid"),
    ("overlap.dbc", _overlap(GOOD), "invalid DBC"),
    ("empty.dbc", "", ""),
    ("beyond.dbc", GOOD.replace("VB_Sts_Checksum : 56|8@1+", "VB_Sts_Checksum : 60|8@1+"),
     "invalid DBC"),
])
def test_bad_dbc_one_line_error_naming_file(tmp_path, name, content, needle):
    path = tmp_path / "dbc" / name
    path.parent.mkdir()
    if content is not None:
        path.write_text(content)
    with pytest.raises(BusConfigError) as ei:
        DbcCodec([path])
    text = str(ei.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert needle in text


def test_duplicate_id_across_files(tmp_path):
    other = tmp_path / "other.dbc"
    other.write_text(GOOD.replace("VB_", "XX_"))
    with pytest.raises(BusConfigError, match="other.dbc: .*0x101"):
        DbcCodec([QIKI_DBC, other])


# ----------------------------------------------------------------------- cantools oracle
def test_decode_matches_cantools_qiki(codec):
    db = cantools.database.load_file(str(QIKI_DBC), strict=True)
    msgs = [codec.encode("VB_Command", _cmd((100, 2, 0, 50, 0, 98, 14, 0), 3, 0x11)),
            codec.encode("VB_Heartbeat", {"VB_HB_Uptime": 99.999, "VB_HB_FwMajor": 9,
                                          "VB_HB_FwMinor": 8, "VB_HB_FwPatch": 7,
                                          "VB_HB_State": 2, "VB_HB_Counter": 3,
                                          "VB_HB_Checksum": 0})]
    for m in msgs:
        assert codec.decode(m).signals == db.decode_message(m.arbitration_id, m.data,
                                                             decode_choices=False)


def test_decode_matches_cantools_on_real_ars408_recording():
    dbc = REAL_CAN / "ARS408_id0.dbc"
    log = REAL_CAN / "candump-2026-06-24_154259.log"
    if not dbc.is_file() or not log.is_file():
        pytest.skip(f"real ARS408 recording absent from {REAL_CAN}")
    from firmware_bridge.protocols.ars408 import WIRE_LAYOUT

    codec = DbcCodec([dbc])  # the vendor names are mapped onto the driver's by layout
    db = cantools.database.load_file(str(dbc), strict=True)
    by_id = {m.base_id: m for m in WIRE_LAYOUT}
    n = 0
    with can.LogReader(str(log)) as reader:
        for i, msg in enumerate(reader):
            if i % 7:  # a sample keeps the test fast; bench/ covers all frames
                continue
            ref = db.decode_message(msg.arbitration_id, msg.data, decode_choices=False)
            layout = by_id[msg.arbitration_id]
            assert codec.decode(msg).signals == {s.name: ref[s.vendor_name] for s in layout.signals}
            n += 1
    assert n > 1000


# ----------------------------------------------------------------------- open_can_bus
def test_open_can_bus_virtual_and_errors():
    bus = open_can_bus("virtual", "qiki-test-open", 500000)
    try:
        assert isinstance(bus, can.BusABC)
    finally:
        bus.shutdown()
    with pytest.raises(BusConfigError) as ei:
        open_can_bus("no_such_interface", "can9", 500000)
    assert "no_such_interface" in str(ei.value) and "can9" in str(ei.value)
    assert "\n" not in str(ei.value)
    assert ei.value.__cause__ is not None
    with pytest.raises(BusConfigError):
        open_can_bus("virtual", "x", 0)


def test_one_line_folds_vendor_messages():
    from hal.errors import one_line

    assert one_line(ValueError("bad\n  signal\tX")) == "bad signal X"
    assert one_line(OSError()) == "OSError"  # an empty message still says something
    assert one_line("") == ""
