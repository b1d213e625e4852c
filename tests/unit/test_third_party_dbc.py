"""Third-party DBCs: Vector's placeholder message, ARS408 databases under other names.

Every DBC here is written by the test: a CANdb++-style file with
``VECTOR__INDEPENDENT_SIG_MSG``, and ARS408 databases whose names are neither ours nor
Continental's (layout only), per sensor ID, with a message or signal missing.
"""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from firmware_bridge.protocols import ars408 as proto
from hal.can.codec import DbcCodec, count_definitions
from hal.can.port import CanPort
from hal.devices.ars408 import Ars408Config, Ars408Driver, dbc_sensor_id
from hal.errors import BusConfigError

ROOT = Path(__file__).resolve().parents[2]

HEADER = '''VERSION ""

NS_ :
	CM_
	BA_DEF_
	BA_
	VAL_

BS_:

BU_: ECU1 ECU2

'''

PLACEHOLDER = '''BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX
 SG_ Unused_Signal_A : 0|8@1+ (1,0) [0|0] "" Vector__XXX
 SG_ Unused_Signal_B : 8|16@1- (0.1,0) [0|0] "km/h" Vector__XXX

'''


def _vector_dbc(tmp_path: Path, *, cut: bool = False) -> Path:
    text = HEADER + '''BO_ 291 Engine: 8 ECU1
 SG_ Rpm : 0|16@1+ (0.25,0) [0|16383.75] "rpm" ECU2
 SG_ Temp : 16|8@1+ (1,-40) [-40|215] "degC" ECU2

''' + PLACEHOLDER + '''BO_ 292 Brake: 2 ECU2
 SG_ Pressure : 0|12@1+ (0.1,0) [0|409.5] "bar" ECU1
'''
    if cut:
        text = text[: text.rindex(" SG_ Pressure")] + " SG_ Pressure : 0|12@1+ (0.1"
    p = tmp_path / "vehicle.dbc"
    p.write_bytes(text.replace("\n", "\r\n").encode("cp1252"))  # CANdb++ writes CRLF, cp1252
    return p


def test_count_definitions_skips_the_vector_placeholder():
    assert count_definitions(HEADER + PLACEHOLDER) == (0, 0)
    assert count_definitions(HEADER + "BO_ 1 A: 1 X\n SG_ s : 0|8@1+ (1,0) [0|0] \"\" X\n" + PLACEHOLDER) == (1, 1)


def test_vector_placeholder_dbc_loads(tmp_path):
    codec = DbcCodec([_vector_dbc(tmp_path)])
    assert set(codec.message_names) == {"Engine", "Brake"}
    frame = codec.encode("Brake", {"Pressure": 12.3})
    assert codec.decode(frame).signals["Pressure"] == pytest.approx(12.3)


def test_truncated_file_with_placeholder_is_still_refused(tmp_path):
    with pytest.raises(BusConfigError) as exc:
        DbcCodec([_vector_dbc(tmp_path, cut=True)])
    assert "vehicle.dbc" in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- ARS408 by layout
def _ars408_dbc(tmp_path: Path, *, sensor: int = 0, prefix: str = "Radar", drop_msg: str | None = None,
                drop_sig: str | None = None, placeholder: bool = True, extra_cluster: bool = True) -> Path:
    """An ARS408 database in the wire layout under names nobody uses (``Radar_m3_s5``)."""
    parts = [HEADER.replace("ECU1 ECU2", "RADAR HOST")]
    for i, layout in enumerate(proto.WIRE_LAYOUT):
        if layout.name == drop_msg:
            continue
        parts.append(f"BO_ {layout.base_id + 0x10 * sensor} {prefix}_m{i}: {layout.dlc} RADAR\n")
        for j, s in enumerate(layout.signals):
            if s.name == drop_sig:
                continue
            lo = s.offset
            hi = s.offset + ((1 << s.length_bits) - 1) * s.scale
            parts.append(f" SG_ {prefix}_m{i}_s{j} : {s.start_bit}|{s.length_bits}@0+ ({s.scale:g},{s.offset:g})"
                         f" [{lo:g}|{hi:g}] \"\" HOST\n")
        parts.append("\n")
    if extra_cluster:  # cluster list general: collides with a valve board heartbeat at 0x701
        parts.append(f"BO_ {0x701 + 0x10 * sensor} {prefix}_cluster: 8 RADAR\n"
                     " SG_ cid : 7|8@0+ (1,0) [0|255] \"\" HOST\n\n")
    if placeholder:
        parts.append(PLACEHOLDER)
    p = tmp_path / f"ars408_s{sensor}_{prefix}.dbc"
    p.write_text("".join(parts))
    return p


def _objects(codec: DbcCodec, sensor_id: int) -> list:
    """Run a synthetic cycle through a driver; return the decoded objects."""
    ours = DbcCodec([ROOT / "dbc" / "ars408.dbc"]).with_offset(0x10 * sensor_id)
    obj = proto.RadarObject(7, 12.4, -1.2, -0.5, 0.25, 11.5, 1, 0.3, 0.4, 0.999, 2, 1, 12.0, 4.2, 1.8)
    g, q, e = proto.object_signals(obj)
    frames = [ours.encode(proto.MSG_OBJ_STATUS, proto.status_signals(1, 42)),
              ours.encode(proto.MSG_OBJ_GENERAL, g), ours.encode(proto.MSG_OBJ_QUALITY, q),
              ours.encode(proto.MSG_OBJ_EXTENDED, e)]
    drv = Ars408Driver(codec, Ars408Config(sensor_id=sensor_id))
    cycles = [c for f in frames if (c := drv.on_frame(f, 0.01)) is not None]
    assert len(cycles) == 1
    return list(cycles[0].objects)


@pytest.mark.parametrize("sensor", [0, 3])
def test_layout_only_database_decodes_like_ours(tmp_path, sensor):
    codec = DbcCodec([_ars408_dbc(tmp_path, sensor=sensor)])
    assert proto.MSG_OBJ_GENERAL in codec.message_names and "Radar_cluster" not in codec.message_names
    assert dbc_sensor_id(codec) == sensor and codec.vendor_notes
    ref = DbcCodec([ROOT / "dbc" / "ars408.dbc"])
    assert _objects(codec, sensor) == _objects(ref, sensor)


def test_base_id_database_serves_every_sensor_id(tmp_path):
    codec = DbcCodec([_ars408_dbc(tmp_path, sensor=0)])
    drv = Ars408Driver(codec, Ars408Config(sensor_id=5))
    assert 0x60A + 0x50 in drv.rx_ids and drv.tx_ids == (0x350, 0x351)


def test_sensor_database_refuses_another_sensor_id(tmp_path):
    codec = DbcCodec([_ars408_dbc(tmp_path, sensor=2)])
    Ars408Driver(codec, Ars408Config(sensor_id=2))  # its own sensor: fine, no double offset
    assert 0x62A in Ars408Driver(codec, Ars408Config(sensor_id=2)).rx_ids
    with pytest.raises(BusConfigError) as exc:
        Ars408Driver(codec, Ars408Config(sensor_id=0))
    msg = str(exc.value)
    assert "sensor ID 2" in msg and "configured as sensor ID 0" in msg and "\n" not in msg


def test_vendor_database_beside_the_valve_board_dbc(tmp_path):
    """A rig bus with qiki.dbc and a full vendor database: cluster 0x701 would collide with
    the valve board heartbeat; the unused ARS408 messages are left out, so both load."""
    codec = DbcCodec([ROOT / "dbc" / "qiki.dbc", _ars408_dbc(tmp_path)])
    assert codec.frame_id("VB_Heartbeat") == 0x701
    Ars408Driver(codec, Ars408Config(sensor_id=0))


def test_missing_message_is_one_line_naming_it(tmp_path):
    codec = DbcCodec([_ars408_dbc(tmp_path, drop_msg=proto.MSG_RADAR_STATE)])
    with pytest.raises(BusConfigError) as exc:
        Ars408Driver(codec, Ars408Config())
    msg = str(exc.value)
    assert "no ARS408 RadarState message" in msg and "0x201" in msg and "'RadarState'" in msg
    assert "\n" not in msg


def test_missing_signal_is_one_line_naming_it(tmp_path):
    codec = DbcCodec([_ars408_dbc(tmp_path, drop_sig="dist_lat_m")])
    with pytest.raises(BusConfigError) as exc:
        Ars408Driver(codec, Ars408Config())
    msg = str(exc.value)
    assert "ObjGeneral (0x60B) lacks signal 'dist_lat_m'" in msg and "start bit 18, 11 bits" in msg
    assert "'Obj_DistLat'" in msg and "\n" not in msg


def test_database_with_neither_names_nor_layout(tmp_path):
    codec = DbcCodec([_vector_dbc(tmp_path)])
    with pytest.raises(BusConfigError) as exc:
        Ars408Driver(codec, Ars408Config())
    assert "no ARS408 RadarState message: neither 'ARS408_RadarState' nor" in str(exc.value)


def test_cli_decode_refuses_such_a_dbc_in_one_line(tmp_path, capsys):
    from controller.cli import main

    log = tmp_path / "x.log"
    log.write_text("(1.0) can0 60A#00000010\n")
    assert main(["radar", "decode", str(log), "--dbc", str(_vector_dbc(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no ARS408 RadarState message" in err


# --------------------------------------------------------------------------- counters
def _msg(arb: int, *, data=b"\x00" * 2, error=False, remote=False) -> can.Message:
    return can.Message(arbitration_id=arb, is_extended_id=False, data=b"" if remote else data,
                       dlc=len(data), is_error_frame=error, is_remote_frame=remote)


def test_driver_counts_own_tx_error_and_remote_frames_apart():
    drv = Ars408Driver(DbcCodec([ROOT / "dbc" / "ars408.dbc"]), Ars408Config())
    for m in (_msg(0x300), _msg(0x301), _msg(0x301), _msg(0x0, error=True), _msg(0x60B, remote=True),
              _msg(0x123, remote=True), _msg(0x555)):
        drv.on_frame(m, 0.0)
    r = drv.poll(0.0).rejects
    assert r == {"own_tx_id": 3, "error_frame": 1, "remote_frame": 2, "unknown_id": 1}


def test_port_counts_own_tx_ids_apart():
    bus = can.Bus(interface="virtual", channel="tp-own-tx", receive_own_messages=False)
    other = can.Bus(interface="virtual", channel="tp-own-tx")
    try:
        port = CanPort(bus)
        port.declare_tx_ids([0x300])
        port.send(_msg(0x301), 0.0)  # sending an ID declares it too
        for m in (_msg(0x300), _msg(0x301), _msg(0x555), _msg(0x7, error=True), _msg(0x8, remote=True)):
            other.send(m)
        port.poll(0.0)
        st = port.stats()
        assert (st["own_tx_id"], st["unknown_id"], st["error_frames"], st["remote_frames"]) == (2, 1, 1, 1)
    finally:
        bus.shutdown()
        other.shutdown()


def test_wire_layout_is_our_dbc():
    """WIRE_LAYOUT (used to recognise vendor DBCs) and dbc/ars408.dbc describe one layout."""
    import cantools

    db = cantools.database.load_file(str(ROOT / "dbc" / "ars408.dbc"), strict=True)
    assert {m.name for m in db.messages} == {m.name for m in proto.WIRE_LAYOUT}
    for layout in proto.WIRE_LAYOUT:
        m = db.get_message_by_name(layout.name)
        assert (m.frame_id, m.length) == (layout.base_id, layout.dlc)
        assert m.cycle_time == layout.cycle_time_ms
        got = {(s.name, s.start, s.length, s.scale, s.offset, s.byte_order, s.is_signed) for s in m.signals}
        want = {(s.name, s.start_bit, s.length_bits, s.scale, s.offset, "big_endian", False) for s in layout.signals}
        assert got == want, layout.name
