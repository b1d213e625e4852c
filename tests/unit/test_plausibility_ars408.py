"""The ARS408 plausibility gate before tracking (issue 15 part 3)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from firmware_bridge.protocols import ars408 as P
from firmware_bridge.protocols.ars408 import (
    ObjectCycle,
    PlausibilityLimits,
    RadarObject,
    gate_cycle,
    implausible_reason,
)
from hal.can.codec import DbcCodec
from hal.devices.ars408 import Ars408Driver

ARS408_DBC = Path(__file__).resolve().parents[2] / "dbc" / "ars408.dbc"
LIM = PlausibilityLimits()


def obj(oid=1, x=20.0, y=1.0, vx=0.0, vy=0.0, rcs=10.0, pe=0.99, ms=2) -> RadarObject:
    return RadarObject(oid, x, y, vx, vy, rcs, 1, 0.2, 0.2, pe, ms)


def test_datasheet_values():
    assert (LIM.min_range_m, LIM.max_range_m, LIM.fov_half_deg) == (0.20, 250.0, 60.0)
    assert LIM.max_speed_mps == pytest.approx(111.11, abs=0.01)


@pytest.mark.parametrize(("o", "reason"), [
    (obj(x=math.nan), P.IMPLAUSIBLE_NONFINITE),
    (obj(x=0.0, y=0.0), P.IMPLAUSIBLE_RANGE),          # the real recording's object at the sensor
    (obj(x=0.1, y=0.1), P.IMPLAUSIBLE_RANGE),
    (obj(x=251.0, y=0.0), P.IMPLAUSIBLE_RANGE),
    (obj(x=1000.0, y=0.0), P.IMPLAUSIBLE_RANGE),
    (obj(x=-5.0, y=1.0), P.IMPLAUSIBLE_FOV),           # behind the radar
    (obj(x=1.0, y=5.0), P.IMPLAUSIBLE_FOV),            # 79 deg
    (obj(vx=-120.0), P.IMPLAUSIBLE_SPEED),
    (obj(rcs=63.5), P.IMPLAUSIBLE_RCS),
    (obj(rcs=-64.0), P.IMPLAUSIBLE_RCS),
    (obj(ms=0), P.IMPLAUSIBLE_STATE),                  # deleted
    (obj(ms=4), P.IMPLAUSIBLE_STATE),                  # deleted for merge
    (obj(ms=7), P.IMPLAUSIBLE_STATE),                  # unknown code
])
def test_each_bound_drops(o, reason):
    assert implausible_reason(o, None, 0.072, LIM) == reason


@pytest.mark.parametrize("o", [obj(), obj(x=249.0), obj(x=0.5, y=0.0), obj(x=10.0, y=17.0),
                               obj(vx=-110.0), obj(rcs=-20.0), obj(rcs=30.5), obj(pe=0.0), obj(ms=1), obj(ms=3),
                               obj(ms=5), RadarObject(1, 20.0, 1.0, 0.0, 0.0, 10.0, 1)])
def test_plausible_objects_pass(o):
    assert implausible_reason(o, None, 0.072, LIM) is None


def test_min_prob_of_exist_is_a_bound():
    assert implausible_reason(obj(pe=0.25), None, 0.072, PlausibilityLimits(min_prob_of_exist=0.5)) == P.IMPLAUSIBLE_PROB


def test_step_between_cycles_is_bounded_by_the_fastest_possible_motion():
    prev = obj(x=20.0)
    # 111 m/s x 0.072 s + 2 m = 10 m
    assert implausible_reason(obj(x=29.0), prev, 0.072, LIM) is None
    assert implausible_reason(obj(x=31.0), prev, 0.072, LIM) == P.IMPLAUSIBLE_STEP
    assert implausible_reason(obj(x=31.0), prev, 0.144, LIM) is None   # a cycle lost in between


def test_gate_cycle_names_dropped_ids_and_keeps_the_rest():
    c0 = ObjectCycle(0, 0.0, 0.01, (obj(1, x=20.0), obj(2, x=30.0)))
    g0, r0 = gate_cycle(c0, None, LIM)
    assert g0 is c0 and r0 == []
    c1 = ObjectCycle(2, 0.072, 0.08, (obj(1, x=80.0), obj(2, x=30.2), obj(3, x=0.0, y=0.0)))
    g1, r1 = gate_cycle(c1, g0, LIM)
    assert r1 == [P.IMPLAUSIBLE_STEP, P.IMPLAUSIBLE_RANGE]
    assert g1.implausible_ids == (1, 3) and len(g1.objects) == 3
    assert [o.obj_id for o in g1.plausible_objects()] == [2]
    # the next cycle compares with the plausible objects only: object 1 is "new" again
    c2 = ObjectCycle(4, 0.144, 0.15, (obj(1, x=80.5), obj(2, x=30.4)))
    g2, r2 = gate_cycle(c2, g1, LIM)
    assert r2 == [] and g2.plausible_objects() == c2.objects


def test_driver_counts_drops_and_leaves_them_out_of_detections():
    codec = DbcCodec([ARS408_DBC])
    drv = Ars408Driver(codec)
    objs = [RadarObject(1, 20.0, 0.0, 0.0, 0.0, 10.0, 1), RadarObject(2, 0.0, 0.0, 0.0, 0.0, 10.0, 1)]
    t = 0.0
    for counter in (0, 1):
        msgs = [drv.codec.encode(P.MSG_OBJ_STATUS, P.status_signals(len(objs), counter))]
        parts = [P.object_signals(o) for o in objs]
        msgs += [drv.codec.encode(P.MSG_OBJ_GENERAL, g) for g, _, _ in parts]
        msgs += [drv.codec.encode(P.MSG_OBJ_QUALITY, q) for _, q, _ in parts]
        msgs += [drv.codec.encode(P.MSG_OBJ_EXTENDED, e) for _, _, e in parts]
        for m in msgs:
            drv.on_frame(m, t)
        t += 0.072
    st = drv.poll(t)
    assert st.implausible == {P.IMPLAUSIBLE_RANGE: 2}
    assert [d.obj_id for d in drv.detections()] == [1]
    assert st.cycles_complete == 2 and "implausible_range" not in st.rejects
