"""ARS408 driver ingress/health/egress and the CAN log reader, without a bus."""

from __future__ import annotations

import math
from pathlib import Path

import can
import pytest

from firmware_bridge.protocols import ars408 as P
from firmware_bridge.protocols.frames import Mount
from hal.can.codec import DbcCodec
from hal.can.replay import LogReplay, read_can_log
from hal.devices.ars408 import Ars408Config, Ars408Driver
from hal.errors import BusConfigError

ROOT = Path(__file__).resolve().parents[2]
DBC = ROOT / "dbc" / "ars408.dbc"


@pytest.fixture(scope="module")
def codec():
    return DbcCodec([DBC])


def _cycle_frames(codec, ids, counter=0, sensor_id=0):
    c = codec.with_offset(P.id_offset(sensor_id))
    objs = [P.RadarObject(i, 10.0 + i, 1.0, 0.0, 0.0, 5.0, 1) for i in ids]
    out = [c.encode(P.MSG_OBJ_STATUS, P.status_signals(len(objs), counter))]
    enc = [P.object_signals(o) for o in objs]
    out += [c.encode(P.MSG_OBJ_GENERAL, g) for g, _, _ in enc]
    out += [c.encode(P.MSG_OBJ_QUALITY, q) for _, q, _ in enc]
    out += [c.encode(P.MSG_OBJ_EXTENDED, e) for _, _, e in enc]
    return out


def _state_frame(codec, **change):
    h = P.RadarHealth(**{**dict(persistent_error=False, temporary_error=False,
                                temperature_error=False, voltage_error=False,
                                interference=False, sensor_id=0, motion_rx_state=0,
                                output_type_cfg=1, send_quality_cfg=True,
                                send_ext_info_cfg=True, max_distance_cfg_m=200.0), **change})
    return codec.encode(P.MSG_RADAR_STATE, P.radar_state_signals(h))


def test_cycle_through_driver_gives_body_detections(codec):
    drv = Ars408Driver(codec, Ars408Config(mount=Mount.from_degrees(0.2, 0.0, 90.0)))
    done = [drv.on_frame(m, 0.01) for m in _cycle_frames(codec, [1, 2])]
    cycle = done[-1]
    assert cycle is not None and all(c is None for c in done[:-1])
    dets = drv.detections()
    assert [d.obj_id for d in dets] == [1, 2]
    # radar (11, 1) rotated by 90 deg and shifted by 0.2 m along body x
    assert dets[0].x_body_m == pytest.approx(0.2 - 1.0, abs=0.11)
    assert dets[0].y_body_m == pytest.approx(11.0, abs=0.11)
    assert drv.take_cycles() == [cycle] and drv.take_cycles() == []


BAD_FRAMES = [
    ("wrong dlc", lambda c: can.Message(arbitration_id=0x60B, is_extended_id=False,
                                        data=bytes(7)), "dlc"),
    ("extended id format", lambda c: can.Message(arbitration_id=0x60B, is_extended_id=True,
                                                 data=bytes(8)), "unknown_id"),
    ("error frame", lambda c: can.Message(arbitration_id=0x60B, is_extended_id=False,
                                          is_error_frame=True, data=bytes(8)), "error_frame"),
    ("remote frame", lambda c: can.Message(arbitration_id=0x60B, is_extended_id=False,
                                           is_remote_frame=True, dlc=8), "remote_frame"),
    ("unknown id", lambda c: can.Message(arbitration_id=0x123, is_extended_id=False,
                                         data=bytes(8)), "unknown_id"),
    ("other sensor id", lambda c: can.Message(arbitration_id=0x61B, is_extended_id=False,
                                              data=bytes(8)), "unknown_id"),
    ("reserved class", lambda c: c.encode(P.MSG_OBJ_EXTENDED, {
        **P.object_signals(P.RadarObject(1, 1, 1, 0, 0, 0, 1))[2], "obj_class": 7}), "enum"),
    ("reserved meas state", lambda c: c.encode(P.MSG_OBJ_QUALITY, {
        **P.object_signals(P.RadarObject(1, 1, 1, 0, 0, 0, 1))[1], "meas_state": 6}), "enum"),
    ("reserved power", lambda c: c.encode(P.MSG_RADAR_STATE, {
        **P.radar_state_signals(P.RadarHealth(False, False, False, False, False, 0, 0, 1,
                                              True, True, 200.0)),
        "radar_power_cfg": 5}), "enum"),
]


@pytest.mark.parametrize("name,make,reason", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frames_rejected_by_reason(codec, name, make, reason):
    drv = Ars408Driver(codec)
    assert drv.on_frame(make(codec), 0.0) is None
    st = drv.poll(0.0)
    assert st.rejects == {reason: 1}
    assert st.decoded == 0


def test_value_rejects_in_consecutive_cycles_are_a_fault(codec):
    drv = Ars408Driver(codec, Ars408Config(reject_streak_limit=3))
    bad = codec.encode(P.MSG_OBJ_EXTENDED, {
        **P.object_signals(P.RadarObject(1, 1, 1, 0, 0, 0, 1))[2], "obj_class": 7})
    t = 0.0
    for k in range(3):
        for m in _cycle_frames(codec, [1], counter=k)[:-1] + [bad]:
            drv.on_frame(m, t)
        t += 0.07
        assert "values_rejected" not in drv.poll(t).faults
    drv.on_frame(_cycle_frames(codec, [1], counter=4)[0], t)  # next status closes cycle 3
    st = drv.poll(t)
    assert "values_rejected" in st.faults
    assert st.cycles_complete == 0 and st.rejects["enum"] == 3


def test_stale_window_and_recovery(codec):
    drv = Ars408Driver(codec, Ars408Config(recover_cycles=3), start_s=0.0)
    window = drv.stale_window_s
    assert window == pytest.approx(3 * 0.072)
    assert not drv.poll(window - 1e-6).stale
    assert drv.poll(window + 1e-6).stale           # no cycle since start (B01)
    t = window + 0.01
    for k in range(3):
        for m in _cycle_frames(codec, [1], counter=k):
            drv.on_frame(m, t)
        st = drv.poll(t)
        assert not st.stale
        assert st.fresh == (k == 2)                 # fresh only after 3 good cycles
        t += 0.072
    assert drv.poll(t - 0.072 + window + 1e-6).stale


def test_radar_state_fault_and_state_stale(codec):
    drv = Ars408Driver(codec, Ars408Config(sensor_id=0))
    drv.on_frame(_state_frame(codec, persistent_error=True, interference=True), 0.5)
    st = drv.poll(0.5)
    assert "persistent_error" in st.faults and "interference" in st.faults
    assert not st.valid
    drv.on_frame(_state_frame(codec), 1.5)
    assert not {"persistent_error", "interference"} & set(drv.poll(1.5).faults)
    assert "state_stale" not in drv.poll(1.5 + 3.0).faults
    assert "state_stale" in drv.poll(1.5 + 3.0 + 1e-3).faults


def test_ego_motion_frames_schedule_and_content(codec):
    drv = Ars408Driver(codec, Ars408Config(sensor_id=2))
    sent_at = []
    t = 0.0
    while t < 1.0:
        frames = drv.ego_motion_frames(t, -1.5, math.radians(12.0))
        if frames:
            sent_at.append(t)
            speed, yaw = frames
            assert speed.arbitration_id == 0x300 + 0x20 and not speed.is_extended_id
            assert yaw.arbitration_id == 0x301 + 0x20 and yaw.dlc == 2
            dec = drv.codec.decode(speed).signals
            assert dec["speed_direction"] == P.SPEED_BACKWARD
            assert dec["speed_mps"] == pytest.approx(1.5)
            assert drv.codec.decode(yaw).signals["yaw_rate_dps"] == pytest.approx(12.0)
        t = round(t + 0.01, 9)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:], strict=False)]
    assert len(sent_at) == 14  # every 72 ms over 1 s at a 10 ms tick
    assert all(0.07 - 1e-9 <= g <= 0.08 + 1e-9 for g in gaps)
    # a long pause does not produce a burst afterwards
    assert drv.ego_motion_frames(5.0, 0.0, 0.0)
    assert drv.ego_motion_frames(5.01, 0.0, 0.0) == []


def test_missing_signal_fails_at_construction(tmp_path):
    text = DBC.read_text()
    lacking = text.replace(" SG_ persistent_error : 21|1@0+ (1,0) [0|1] \"\" QIKI\n", "")
    assert lacking != text
    bad = tmp_path / "ars408_lacking.dbc"
    bad.write_text(lacking)
    with pytest.raises(BusConfigError, match="persistent_error"):
        Ars408Driver(DbcCodec([bad]))


def test_bad_sensor_id_is_config_error(codec):
    with pytest.raises(BusConfigError, match="sensor_id"):
        Ars408Driver(codec, Ars408Config(sensor_id=9))


def test_radar_cfg_frame(codec):
    drv = Ars408Driver(codec, Ars408Config(sensor_id=1))
    msg = drv.radar_cfg_frame(max_distance_m=200.0)
    assert msg.arbitration_id == 0x210 and msg.dlc == 8
    sig = drv.codec.decode(msg).signals
    assert sig["output_type"] == 1 and sig["send_quality"] == 1 and sig["max_distance_m"] == 200


# ------------------------------------------------------------------ log reading / replay

def _frames():
    return [can.Message(timestamp=100.0 + 0.01 * k, arbitration_id=0x60A + (k % 3),
                        is_extended_id=False, data=bytes([k, 1, 2, 3]), channel="can1")
            for k in range(6)]


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf", ".trc", ".csv"])
def test_read_can_log_any_python_can_format(tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    with can.Logger(str(path)) as writer:
        for m in _frames():
            writer.on_message_received(m)
    got = read_can_log(path)
    assert [m.arbitration_id for m in got] == [m.arbitration_id for m in _frames()]
    assert [bytes(m.data) for m in got] == [bytes(m.data) for m in _frames()]
    assert got[-1].timestamp - got[0].timestamp == pytest.approx(0.05, abs=1e-4)


@pytest.mark.parametrize("name,content", [("missing.log", None), ("rec.xyz", "x"),
                                          ("broken.log", "(12.5) can0 ZZZ#zz\n")])
def test_read_can_log_errors_are_one_line(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(BusConfigError) as exc:
        read_can_log(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_log_replay_keeps_recorded_spacing():
    rep = LogReplay(_frames(), start_s=2.0)
    assert rep.due(1.999) == []
    assert len(rep.due(2.0)) == 1
    assert len(rep.due(2.025)) == 2
    assert rep.next_due_s == pytest.approx(2.03)
    assert len(rep.due(10.0, limit=2)) == 2 and not rep.done
    assert len(rep.due(10.0)) == 1 and rep.done and rep.sent == 6


def test_log_replay_speed_and_backwards_timestamps():
    frames = _frames()
    frames[3].timestamp = 99.0  # goes backwards: due right after its predecessor
    rep = LogReplay(frames, start_s=0.0, speed=2.0)
    got = rep.due(0.0101)  # 0, 5 ms, 10 ms at double speed, then the backwards frame
    assert [bytes(m.data)[0] for m in got] == [0, 1, 2, 3]
    assert rep.due(0.0199) == []
    assert [bytes(m.data)[0] for m in rep.due(0.0201)] == [4]
