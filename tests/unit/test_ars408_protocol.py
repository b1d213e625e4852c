"""Pure ARS408 protocol: cycle assembly, mount transform, rms ladder, ego motion, health."""

from __future__ import annotations

import math

import pytest

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import ars408 as P
from firmware_bridge.protocols.frames import Mount, apply_inverse


def _status(n, counter=0):
    return {"nof_objects": n, "meas_counter": counter, "interface_version": 1}


def _gen(oid, x=10.0, y=0.0):
    return {"obj_id": oid, "dist_long_m": x, "dist_lat_m": y, "vrel_long_mps": 0.0,
            "vrel_lat_mps": 0.0, "dyn_prop": 1, "rcs_dbsm": 5.0}


def _qual(oid):
    return {"obj_id": oid, "dist_long_rms_code": 10, "dist_lat_rms_code": 12,
            "meas_state": 2, "prob_of_exist": 7}


def _ext(oid):
    return {"obj_id": oid, "obj_class": 1, "orientation_deg": 0.0, "length_m": 4.0,
            "width_m": 2.0}


def _feed(asm, seq):
    out = []
    for t, (kind, arg) in enumerate(seq):
        fn = {"S": asm.on_status, "G": asm.on_general, "Q": asm.on_quality,
              "E": asm.on_extended}[kind]
        sig = {"S": _status, "G": _gen, "Q": _qual, "E": _ext}[kind](arg)
        c = fn(sig, float(t))
        if c is not None:
            out.append(c)
    return out


def _cycle(ids):
    return ([("S", len(ids))] + [("G", i) for i in ids] + [("Q", i) for i in ids]
            + [("E", i) for i in ids])


# (name, sequence, expect_quality, expect_extended, complete, dropped, rejects)
ASSEMBLY_CASES = [
    ("one full cycle", _cycle([3, 7]), True, True, 1, 0, {}),
    ("empty cycle completes at status", [("S", 0)], True, True, 1, 0, {}),
    ("two cycles", _cycle([1]) + _cycle([1, 2]), True, True, 2, 0, {}),
    ("general only config", [("S", 2), ("G", 1), ("G", 2)], False, False, 1, 0, {}),
    ("missing extended then new status", _cycle([1, 2])[:-1] + _cycle([5]), True, True, 1, 1, {}),
    ("orphan frames before any status", [("G", 1), ("Q", 1)] + _cycle([1]), True, True, 1, 0,
     {P.REJECT_ORPHAN: 2}),
    ("duplicate general id", [("S", 2), ("G", 1), ("G", 1)], True, True, 0, 1,
     {P.REJECT_DUPLICATE: 1}),
    ("too many generals", [("S", 1), ("G", 1), ("G", 2)], True, True, 0, 1,
     {P.REJECT_EXCESS: 1}),
    ("quality for unknown id", [("S", 2), ("G", 1), ("G", 2), ("Q", 9)], True, True, 0, 1,
     {P.REJECT_UNMATCHED: 1}),
    ("general after quality", [("S", 2), ("G", 1), ("Q", 1), ("G", 2)], True, True, 0, 1,
     {P.REJECT_ORDER: 1}),
    ("frames after a broken cycle are orphans", [("S", 1), ("G", 1), ("G", 2), ("Q", 1)],
     True, True, 0, 1, {P.REJECT_EXCESS: 1, P.REJECT_ORPHAN: 1}),
    ("unexpected quality after completion is an orphan", [("S", 1), ("G", 4), ("Q", 4)],
     False, False, 1, 0, {P.REJECT_ORPHAN: 1}),
]


@pytest.mark.parametrize("name,seq,eq,ee,complete,dropped,rejects", ASSEMBLY_CASES,
                         ids=[c[0] for c in ASSEMBLY_CASES])
def test_cycle_assembly(name, seq, eq, ee, complete, dropped, rejects):
    asm = P.CycleAssembler(expect_quality=eq, expect_extended=ee)
    cycles = _feed(asm, seq)
    assert len(cycles) == complete == asm.cycles_complete
    assert asm.cycles_dropped == dropped
    assert asm.rejects == rejects


def test_cycle_objects_carry_all_three_frames():
    asm = P.CycleAssembler()
    (cycle,) = _feed(asm, _cycle([3, 7]))
    assert [o.obj_id for o in cycle.objects] == [3, 7]
    o = cycle.objects[0]
    assert o.dist_long_m == 10.0 and o.dyn_prop == 1
    assert o.prob_of_exist == pytest.approx(0.999)
    assert o.dist_long_rms_m == pytest.approx(P.rms_sigma(10, 10.0))
    assert o.obj_class == 1 and o.length_m == 4.0
    assert cycle.t_status_s == 0.0 and cycle.t_complete_s == 6.0


def test_cycle_without_quality_has_none_fields():
    asm = P.CycleAssembler(expect_quality=False, expect_extended=False)
    (cycle,) = _feed(asm, [("S", 1), ("G", 2)])
    o = cycle.objects[0]
    assert o.prob_of_exist is None and o.obj_class is None and o.length_m is None


# mount (x, y, yaw_deg), radar point (x, y) -> body point (x, y)
MOUNT_CASES = [
    ((0.0, 0.0, 0.0), (10.0, 2.0), (10.0, 2.0)),
    ((0.2, 0.0, 0.0), (10.0, 2.0), (10.2, 2.0)),
    ((0.0, 0.0, 90.0), (10.0, 0.0), (0.0, 10.0)),
    ((1.0, -1.0, 90.0), (10.0, 2.0), (-1.0, 9.0)),
    ((0.0, 0.0, 180.0), (5.0, 1.0), (-5.0, -1.0)),
    ((0.5, 0.5, -45.0), (math.sqrt(2), 0.0), (1.5, -0.5)),
]


@pytest.mark.parametrize("mount,radar_xy,body_xy", MOUNT_CASES)
def test_objects_to_detections_mount_transform(mount, radar_xy, body_xy):
    obj = P.RadarObject(1, radar_xy[0], radar_xy[1], 1.0, 0.0, 3.0, 0)
    m = Mount.from_degrees(*mount)
    (det,) = P.objects_to_detections([obj], m)
    assert det.x_body_m == pytest.approx(body_xy[0], abs=1e-9)
    assert det.y_body_m == pytest.approx(body_xy[1], abs=1e-9)
    assert det.range_m == pytest.approx(math.hypot(*radar_xy))
    # velocity rotated, not translated
    assert math.hypot(det.vx_body_mps, det.vy_body_mps) == pytest.approx(1.0)
    # inverse transform returns the radar-frame point
    assert apply_inverse(m, (det.x_body_m, det.y_body_m)) == pytest.approx(radar_xy, abs=1e-9)


def test_detection_filters():
    objs = [P.RadarObject(1, 5, 0, 0, 0, -10.0, 1, prob_of_exist=0.999),
            P.RadarObject(2, 5, 0, 0, 0, 10.0, 1, prob_of_exist=0.25),
            P.RadarObject(3, 5, 0, 0, 0, 10.0, 1)]  # no quality info: kept
    dets = P.objects_to_detections(objs, Mount(), min_prob_of_exist=0.5, min_rcs_dbsm=0.0)
    assert [d.obj_id for d in dets] == [3]


def test_rms_ladder_endpoints_and_inverse():
    assert P.rms_sigma(0, 10.0) == pytest.approx(0.005)
    assert P.rms_sigma(30, 10.0) == pytest.approx(10.0)
    assert P.rms_sigma(30, 180.0) == pytest.approx(180.0)
    assert P.rms_sigma(31, 10.0) is None
    # the documented "<0.006 m" step
    assert P.rms_sigma(1, 10.0) == pytest.approx(0.00644, abs=1e-5)
    for code in range(31):
        assert P.rms_code(P.rms_sigma(code, 10.0), 10.0) == code
    assert P.rms_code(1000.0, 10.0) == 30
    assert P.rms_code(float("nan"), 10.0) == 31


EGO_CASES = [
    # speed_long_mps, yaw_rate_radps, direction, speed_mps, yaw_dps
    (0.0, 0.0, P.SPEED_STANDSTILL, 0.0, 0.0),
    (0.005, 0.0, P.SPEED_STANDSTILL, 0.0, 0.0),
    (1.0, math.radians(10.0), P.SPEED_FORWARD, 1.0, 10.0),
    (-0.5, math.radians(-5.0), P.SPEED_BACKWARD, 0.5, -5.0),
    (500.0, 100.0, P.SPEED_FORWARD, P.SPEED_MAX_MPS, P.YAW_RATE_MAX_DPS),
    (-500.0, -100.0, P.SPEED_BACKWARD, P.SPEED_MAX_MPS, P.YAW_RATE_MIN_DPS),
]


@pytest.mark.parametrize("v,w,direction,speed,yaw", EGO_CASES)
def test_ego_motion_signals(v, w, direction, speed, yaw):
    sp, yr = P.ego_motion_signals(v, w)
    assert sp["speed_direction"] == direction
    assert sp["speed_mps"] == pytest.approx(speed, abs=0.011)
    assert yr["yaw_rate_dps"] == pytest.approx(yaw, abs=0.006)
    assert P.SPEED_MAX_MPS >= sp["speed_mps"] >= 0
    assert P.YAW_RATE_MIN_DPS <= yr["yaw_rate_dps"] <= P.YAW_RATE_MAX_DPS


@pytest.mark.parametrize("v,w", [(float("nan"), 0.0), (0.0, float("inf"))])
def test_ego_motion_rejects_non_finite(v, w):
    with pytest.raises(ProtocolError):
        P.ego_motion_signals(v, w)


def test_ego_motion_round_trip():
    sp, yr = P.ego_motion_signals(-2.34, 0.3)
    v, w = P.ego_motion_from_signals(sp, yr)
    assert v == pytest.approx(-2.34, abs=0.01)
    assert w == pytest.approx(0.3, abs=math.radians(0.01))


@pytest.mark.parametrize("sid,offset", [(0, 0), (1, 0x10), (7, 0x70)])
def test_id_offset(sid, offset):
    assert P.id_offset(sid) == offset


@pytest.mark.parametrize("sid", [-1, 8, 1.0, True, "0"])
def test_id_offset_rejects(sid):
    with pytest.raises(ProtocolError):
        P.id_offset(sid)


_HEALTHY = dict(persistent_error=False, temporary_error=False, temperature_error=False,
                voltage_error=False, interference=False, sensor_id=0, motion_rx_state=3,
                output_type_cfg=1, send_quality_cfg=True, send_ext_info_cfg=True,
                max_distance_cfg_m=200.0)

HEALTH_CASES = [
    ({}, ()),
    ({"persistent_error": True}, ("persistent_error",)),
    ({"temporary_error": True}, ("temporary_error",)),
    ({"temperature_error": True}, ("temperature_error",)),
    ({"voltage_error": True}, ("voltage_error",)),
    ({"interference": True}, ("interference",)),
    ({"sensor_id": 2}, ("sensor_id_mismatch",)),
    ({"output_type_cfg": 2}, ("output_type_not_objects",)),
    ({"persistent_error": True, "voltage_error": True}, ("persistent_error", "voltage_error")),
]


@pytest.mark.parametrize("change,faults", HEALTH_CASES)
def test_radar_health_faults(change, faults):
    h = P.RadarHealth(**{**_HEALTHY, **change})
    assert h.faults(expected_sensor_id=0) == faults
    # round trip through the emulator-side signal builder
    assert P.interpret_radar_state(P.radar_state_signals(h)) == h


def test_object_signals_clip_into_dbc_ranges():
    obj = P.RadarObject(5, 5000.0, -900.0, 300.0, -300.0, 99.0, 0)
    g, q, e = P.object_signals(obj)
    assert g["dist_long_m"] == 1138.2 and g["dist_lat_m"] == -204.6
    assert g["vrel_long_mps"] == 127.75 and g["vrel_lat_mps"] == -64.0
    assert g["rcs_dbsm"] == 63.5
    assert q["prob_of_exist"] == 7 and q["meas_state"] == 2
    assert e["obj_class"] == 0
