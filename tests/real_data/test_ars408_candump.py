"""Our ARS408 DBC, driver, replay emulator and decode report against the real candump.

Data: ``../shared/data/real/can/ars408/`` (a real ARS408-21, sensor ID 0, firmware 4.30.2,
with Continental's DBC for sensor IDs 0 and 1). Read in place, never copied.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import can
import cantools
import pytest

from controller.clock import SimClock
from controller.tools.radar_decode import decode_can_log
from firmware_bridge.emulation.ars408 import Ars408ReplayEmulator
from firmware_bridge.protocols import ars408 as P
from hal.can.codec import DbcCodec
from hal.can.replay import read_can_log
from hal.devices.ars408 import Ars408Config, Ars408Driver


@pytest.fixture(scope="module")
def rec(shared_data, repo_root):
    """The recording, Continental's DBCs (in shared_data) and our DBC; skips when absent."""
    ars = shared_data / "can" / "ars408"
    r = SimpleNamespace(log=ars / "candump-2026-06-24_154259.log", id0=ars / "ARS408_id0.dbc",
                        id1=ars / "ARS408_id1.dbc", our_dbc=repo_root / "dbc" / "ars408.dbc")
    if not (r.log.is_file() and r.id0.is_file()):
        pytest.skip(f"real ARS408 recording not found at {ars} (../shared/data/real beside the repo)")
    return r

# vendor message -> (our message, {vendor signal: our signal}); every vendor signal of the
# messages in the recording is mapped (checked below), so none escapes the comparison.
SIGNAL_MAP = {
    "RadarState": (P.MSG_RADAR_STATE, {
        "RadarState_NVMwriteStatus": "nvm_write_status",
        "RadarState_NVMReadStatus": "nvm_read_status",
        "RadarState_MaxDistanceCfg": "max_distance_cfg_m",
        "RadarState_Persistent_Error": "persistent_error",
        "RadarState_Interference": "interference",
        "RadarState_Temperature_Error": "temperature_error",
        "RadarState_Temporary_Error": "temporary_error",
        "RadarState_Voltage_Error": "voltage_error",
        "RadarState_RadarPowerCfg": "radar_power_cfg",
        "RadarState_SortIndex": "sort_index",
        "RadarState_SensorID": "sensor_id",
        "RadarState_MotionRxState": "motion_rx_state",
        "RadarState_SendExtInfoCfg": "send_ext_info_cfg",
        "RadarState_SendQualityCfg": "send_quality_cfg",
        "RadarState_OutputTypeCfg": "output_type_cfg",
        "RadarState_CtrlRelayCfg": "ctrl_relay_cfg",
        "RadarState_RCS_Threshold": "rcs_threshold",
    }),
    "Obj_0_Status": (P.MSG_OBJ_STATUS, {
        "Obj_NofObjects": "nof_objects",
        "Obj_MeasCounter": "meas_counter",
        "Obj_InterfaceVersion": "interface_version",
    }),
    "Obj_1_General": (P.MSG_OBJ_GENERAL, {
        "Obj_ID": "obj_id",
        "Obj_DistLong": "dist_long_m",
        "Obj_DistLat": "dist_lat_m",
        "Obj_VrelLong": "vrel_long_mps",
        "Obj_VrelLat": "vrel_lat_mps",
        "Obj_DynProp": "dyn_prop",
        "Obj_RCS": "rcs_dbsm",
    }),
    "Obj_2_Quality": (P.MSG_OBJ_QUALITY, {
        "Obj_ID": "obj_id",
        "Obj_DistLong_rms": "dist_long_rms_code",
        "Obj_DistLat_rms": "dist_lat_rms_code",
        "Obj_VrelLong_rms": "vrel_long_rms_code",
        "Obj_VrelLat_rms": "vrel_lat_rms_code",
        "Obj_ArelLong_rms": "arel_long_rms_code",
        "Obj_ArelLat_rms": "arel_lat_rms_code",
        "Obj_Orientation_rms": "orientation_rms_code",
        "Obj_MeasState": "meas_state",
        "Obj_ProbOfExist": "prob_of_exist",
    }),
    "Obj_3_Extended": (P.MSG_OBJ_EXTENDED, {
        "Obj_ID": "obj_id",
        "Obj_ArelLong": "arel_long_mps2",
        "Obj_ArelLat": "arel_lat_mps2",
        "Obj_Class": "obj_class",
        "Obj_OrientationAngle": "orientation_deg",
        "Obj_Length": "length_m",
        "Obj_Width": "width_m",
    }),
    "VersionID": (P.MSG_VERSION, {
        "Version_MajorRelease": "major_release",
        "Version_MinorRelease": "minor_release",
        "Version_PatchLevel": "patch_level",
        "Version_ExtendedRange": "extended_range",
        "Version_CountryCode": "country_code",
    }),
    # Not in the recording, compared on synthetic payloads below.
    "RadarConfiguration": (P.MSG_RADAR_CFG, {
        "RadarCfg_MaxDistance_valid": "max_distance_valid",
        "RadarCfg_SensorID_valid": "sensor_id_valid",
        "RadarCfg_RadarPower_valid": "radar_power_valid",
        "RadarCfg_OutputType_valid": "output_type_valid",
        "RadarCfg_SendQuality_valid": "send_quality_valid",
        "RadarCfg_SendExtInfo_valid": "send_ext_info_valid",
        "RadarCfg_SortIndex_valid": "sort_index_valid",
        "RadarCfg_StoreInNVM_valid": "store_in_nvm_valid",
        "RadarCfg_MaxDistance": "max_distance_m",
        "RadarCfg_SensorID": "sensor_id",
        "RadarCfg_OutputType": "output_type",
        "RadarCfg_RadarPower": "radar_power",
        "RadarCfg_CtrlRelay_valid": "ctrl_relay_valid",
        "RadarCfg_CtrlRelay": "ctrl_relay",
        "RadarCfg_SendQuality": "send_quality",
        "RadarCfg_SendExtInfo": "send_ext_info",
        "RadarCfg_SortIndex": "sort_index",
        "RadarCfg_StoreInNVM": "store_in_nvm",
        "RadarCfg_RCS_Threshold_Valid": "rcs_threshold_valid",
        "RadarCfg_RCS_Threshold": "rcs_threshold",
    }),
    "SpeedInformation": (P.MSG_SPEED, {
        "RadarDevice_SpeedDirection": "speed_direction",
        "RadarDevice_Speed": "speed_mps",
    }),
    "YawRateInformation": (P.MSG_YAW_RATE, {"RadarDevice_YawRate": "yaw_rate_dps"}),
    "Obj_4_Warning": (P.MSG_OBJ_WARNING, {
        "Obj_ID": "obj_id",
        "Obj_CollDetRegionBitfield": "coll_det_region_bitfield",
    }),
}


@pytest.fixture(scope="module")
def frames(rec):
    return read_can_log(rec.log)


@pytest.fixture(scope="module")
def vendor(rec):
    return cantools.database.load_file(str(rec.id0), strict=True)


@pytest.fixture(scope="module")
def codec(rec):
    return DbcCodec([rec.our_dbc])


def test_signal_map_is_complete(vendor, codec):
    for vname, (oname, sigmap) in SIGNAL_MAP.items():
        vmsg = vendor.get_message_by_name(vname)
        omsg = codec.message(oname)
        assert vmsg.frame_id == omsg.frame_id and vmsg.length == omsg.length, vname
        assert set(sigmap) == {s.name for s in vmsg.signals}, vname
        assert set(sigmap.values()) == {s.name for s in omsg.signals}, oname


def test_every_frame_decodes_like_the_vendor_dbc(frames, vendor, codec):
    by_id = {vendor.get_message_by_name(v).frame_id: (v, m) for v, (_, m) in SIGNAL_MAP.items()}
    assert len(frames) == 9579
    compared = 0
    for msg in frames:
        ours = codec.decode(msg)
        assert ours is not None, f"frame 0x{msg.arbitration_id:X} not decoded"
        vname, sigmap = by_id[msg.arbitration_id]
        theirs = vendor.decode_message(msg.arbitration_id, msg.data, decode_choices=False)
        assert ours.name == SIGNAL_MAP[vname][0]
        for vsig, osig in sigmap.items():
            assert ours.signals[osig] == theirs[vsig], (
                f"0x{msg.arbitration_id:X} {vsig}/{osig}: {ours.signals[osig]} != {theirs[vsig]}")
            compared += 1
    assert compared > 9579 * 4


@pytest.mark.parametrize("vname", ["RadarConfiguration", "SpeedInformation",
                                   "YawRateInformation", "Obj_4_Warning"])
def test_messages_absent_from_the_log_decode_like_the_vendor_dbc(vendor, codec, vname):
    import random

    rng = random.Random(408)
    oname, sigmap = SIGNAL_MAP[vname]
    vmsg = vendor.get_message_by_name(vname)
    for _ in range(300):
        data = bytes(rng.getrandbits(8) for _ in range(vmsg.length))
        msg = can.Message(arbitration_id=vmsg.frame_id, is_extended_id=False, data=data)
        ours = codec.decode(msg).signals
        theirs = vendor.decode_message(vmsg.frame_id, data, decode_choices=False)
        for vsig, osig in sigmap.items():
            assert ours[osig] == pytest.approx(theirs[vsig], rel=1e-12, abs=1e-9)


def _run_driver(rec, frames, sensor_id):
    drv = Ars408Driver(DbcCodec([rec.our_dbc]), Ars408Config(sensor_id=sensor_id), start_s=0.0)
    t0 = frames[0].timestamp
    cycles = []
    for msg in frames:
        c = drv.on_frame(msg, msg.timestamp - t0)
        if c is not None:
            cycles.append(c)
    return drv, cycles, frames[-1].timestamp - t0


def test_driver_assembles_515_complete_cycles(rec, frames):
    drv, cycles, end_s = _run_driver(rec, frames, 0)
    st = drv.poll(end_s)
    assert len(cycles) == 515 == st.cycles_complete
    assert st.cycles_dropped == 0 and st.rejects == {} and st.decoded == 9579
    gaps = [b.t_status_s - a.t_status_s for a, b in zip(cycles, cycles[1:], strict=False)]
    assert 0.065 < min(gaps) and max(gaps) < 0.08
    assert 0.072 <= sum(gaps) / len(gaps) <= 0.075
    assert sum(len(c.objects) for c in cycles) == 2996
    # healthy radar: fresh, no faults; it only misses our ego motion (stationary car)
    assert st.fresh and st.faults == ()
    assert st.warnings == ("motion_input_missing",)
    assert st.version == (4, 30, 2) and st.health.sensor_id == 0


def test_stable_objects_of_the_recording_notes(rec, frames):
    _, cycles, _ = _run_driver(rec, frames, 0)
    first = {o.obj_id: o for o in cycles[0].objects}
    # recording notes: ID 56 at (5.6, 0.6), ID 32 at (11.4, 0.2), ID 0 at (17.6, -0.4)
    for oid, (x, y) in {56: (5.6, 0.6), 32: (11.4, 0.2), 0: (17.6, -0.4)}.items():
        assert first[oid].dist_long_m == pytest.approx(x, abs=0.3)
        assert first[oid].dist_lat_m == pytest.approx(y, abs=0.3)
    assert P.OBJ_CLASS[first[32].obj_class] == "car"


def test_driver_never_stale_during_the_recording(rec, frames):
    drv = Ars408Driver(DbcCodec([rec.our_dbc]), Ars408Config(), start_s=0.0)
    t0 = frames[0].timestamp
    stale_polls = 0
    for msg in frames:
        now = msg.timestamp - t0
        drv.on_frame(msg, now)
        stale_polls += drv.poll(now).stale
    assert stale_polls == 0


def test_sensor_id_1_sees_nothing_and_reports_stale(rec, frames):
    drv, cycles, end_s = _run_driver(rec, frames, 1)
    st = drv.poll(end_s)
    assert cycles == [] and drv.detections() == []
    assert st.stale and not st.fresh and "stale" in st.faults
    assert st.decoded == 0 and st.rejects == {"unknown_id": 9579}


def test_vendor_id1_dbc_agrees_that_nothing_decodes(rec, frames):
    if not rec.id1.is_file():
        pytest.skip(f"{rec.id1} not found")
    db1 = cantools.database.load_file(str(rec.id1), strict=True)
    ids1 = {m.frame_id for m in db1.messages}
    assert not any(m.arbitration_id in ids1 for m in frames)
    ours1 = DbcCodec([rec.our_dbc], id_offset=0x10)
    assert {ours1.frame_id(n) for n in ours1.message_names} <= ids1


def test_replay_emulator_over_virtual_bus_reproduces_the_cycles(rec):
    channel = f"ars408-replay-{uuid.uuid4().hex}"
    radar_bus = can.Bus(interface="virtual", channel=channel)
    host_bus = can.Bus(interface="virtual", channel=channel)
    try:
        clock = SimClock()
        emu = Ars408ReplayEmulator(radar_bus, rec.log, start_s=0.05, source_channel="can1")
        drv = Ars408Driver(DbcCodec([rec.our_dbc]), Ars408Config(), start_s=0.0)
        stale_ticks = 0
        while not emu.done:
            clock.advance(0.01)
            now = clock.now_s()
            emu.step(now)
            while (msg := host_bus.recv(timeout=0.0)) is not None:
                assert msg.channel == channel  # recorded can1 mapped onto the rig's bus
                drv.on_frame(msg, now)
            stale_ticks += drv.poll(now).stale
        st = drv.poll(clock.now_s())
        assert emu.frames_sent == 9579 and emu.send_failures == 0
        assert st.cycles_complete == 515 and st.rejects == {}
        assert stale_ticks == 0
        # recorded duration kept: 37.9 s of log -> ~37.9 s of simulated time
        assert clock.now_s() == pytest.approx(0.05 + 37.92, abs=0.05)
    finally:
        radar_bus.shutdown()
        host_bus.shutdown()


def test_decode_report(rec, frames):
    rep = decode_can_log(rec.log, dbc=rec.our_dbc)
    assert rep["frames"] == 9579 and rep["decoded"] == 9579 and rep["rejected"] == {}
    assert rep["cycles"]["complete"] == 515 and rep["cycles"]["dropped"] == 0
    assert not rep["radar"]["stale_at_end"] and rep["radar"]["stale_episodes"] == 0
    assert rep["radar"]["version"] == "4.30.2"
    assert rep["detections"] == 2989  # 2996 objects; 7 at the sensor itself (0 m) fail the plausibility gate
    tracks = rep["tracks"]
    assert tracks, "the tracker confirmed nothing"
    # each stable object of the recording notes has a long-lived confirmed track nearby
    for x, y in [(5.6, 0.6), (11.4, 0.2), (17.6, -0.4)]:
        near = [t for t in tracks if abs(t["mean_x_m"] - x) < 0.5 and abs(t["mean_y_m"] - y) < 0.5]
        assert near and max(t["confirmed_s"] for t in near) > 10.0, (x, y)
    import json

    json.dumps(rep)


def test_decode_report_sensor_id_1(rec):
    rep = decode_can_log(rec.log, dbc=rec.our_dbc, sensor_id=1)
    assert rep["frames"] == 9579 and rep["decoded"] == 0
    assert rep["rejected"] == {"unknown_id": 9579}
    assert rep["cycles"]["complete"] == 0 and rep["detections"] == 0
    assert rep["radar"]["stale_at_end"] and "stale" in rep["radar"]["faults_at_end"]
    assert rep["tracks"] == []
