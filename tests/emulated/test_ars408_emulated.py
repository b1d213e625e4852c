"""Synthetic ARS408 emulator -> driver over python-can virtual buses, on a SimClock."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import can
import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.ars408 import Ars408Emulator, RadarTarget
from firmware_bridge.protocols.frames import Mount, Pose2D, compose
from hal.can.codec import DbcCodec
from hal.can.port import CanPort
from hal.devices.ars408 import Ars408Config, Ars408Driver

DBC = Path(__file__).resolve().parents[2] / "dbc" / "ars408.dbc"
TICK_S = 0.01


# the radar's default mount (a frozen value: safe as a shared default)
_MOUNT = Mount.from_degrees(0.2, 0.0, 0.0)


class Rig:
    """Emulator and driver on one unique virtual channel; the driver behind a CanPort."""

    def __init__(self, *, sensor_id=0, emu_sensor_id=None, mount=_MOUNT,
                 targets=(), vehicle_pose=(0.0, 0.0, 0.0)):
        channel = f"ars408-{uuid.uuid4().hex}"
        self.radar_bus = can.Bus(interface="virtual", channel=channel)
        self.host_bus = can.Bus(interface="virtual", channel=channel)
        codec = DbcCodec([DBC])
        self.clock = SimClock()
        self.emu = Ars408Emulator(self.radar_bus, codec,
                                  sensor_id=sensor_id if emu_sensor_id is None else emu_sensor_id,
                                  start_s=0.02)
        self.emu.set_scene(compose(Pose2D(*vehicle_pose), mount), targets)
        self.drv = Ars408Driver(codec, Ars408Config(sensor_id=sensor_id, mount=mount),
                                start_s=0.0)
        self.port = CanPort(self.host_bus)
        for fid in self.drv.rx_ids:
            self.port.register(fid, self.drv.on_frame)
        self.status = None
        self.cycle_times: list[float] = []

    def run(self, duration_s, *, speed_mps=0.0, yaw_rate_radps=0.0, each=None):
        end = self.clock.now_s() + duration_s
        while self.clock.now_s() < end - 1e-9:
            self.clock.advance(TICK_S)
            now = self.clock.now_s()
            self.emu.step(now)
            self.port.poll(now)
            for c in self.drv.take_cycles():
                self.cycle_times.append(c.t_complete_s)
            for msg in self.drv.ego_motion_frames(now, speed_mps, yaw_rate_radps):
                self.port.send(msg, now)
            self.status = self.drv.poll(now)
            if each is not None:
                each(now, self.status)
        return self.status

    def close(self):
        self.radar_bus.shutdown()
        self.host_bus.shutdown()


@pytest.fixture
def make_rig():
    rigs = []

    def make(**kw):
        rig = Rig(**kw)
        rigs.append(rig)
        return rig

    yield make
    for r in rigs:
        r.close()


TARGETS = (RadarTarget(10.0, 0.0, rcs_dbsm=20.0, obj_class=1),
           RadarTarget(20.0, 5.0),
           RadarTarget(5.0, -2.0, target_id=42),
           RadarTarget(-5.0, 0.0),          # behind the radar: not reported
           RadarTarget(1.0, 30.0))          # outside the field of view


@pytest.mark.parametrize("vehicle_pose,mount", [
    ((0.0, 0.0, 0.0), Mount.from_degrees(0.2, 0.0, 0.0)),
    ((1.0, -2.0, 0.3), Mount.from_degrees(0.2, 0.1, 10.0)),
    ((-3.0, 4.0, math.pi / 2), Mount.from_degrees(0.0, 0.0, -20.0)),
])
def test_synthetic_round_trip_body_frame(make_rig, vehicle_pose, mount):
    # TARGETS are given in the body frame here; the emulator gets them in the world frame
    x, y, yaw = vehicle_pose
    c, s = math.cos(yaw), math.sin(yaw)
    world = [RadarTarget(x + c * t.x_m - s * t.y_m, y + s * t.x_m + c * t.y_m,
                         rcs_dbsm=t.rcs_dbsm, obj_class=t.obj_class, target_id=t.target_id)
             for t in TARGETS]
    rig = make_rig(targets=world, vehicle_pose=vehicle_pose, mount=mount)
    st = rig.run(1.5)
    assert st.fresh and st.faults == () and st.rejects == {}
    assert st.cycles_dropped == 0
    # real timing: one cycle per 72 ms (10 ms ticks quantise each gap to 70/80 ms)
    gaps = [b - a for a, b in zip(rig.cycle_times, rig.cycle_times[1:], strict=False)]
    assert len(rig.cycle_times) == pytest.approx(1.5 / 0.072, abs=1.5)
    assert all(0.07 - 1e-9 <= g <= 0.08 + 1e-9 for g in gaps)
    dets = {d.obj_id: d for d in rig.drv.detections()}
    assert sorted(dets) == [0, 1, 42]
    for oid, t in [(0, TARGETS[0]), (1, TARGETS[1]), (42, TARGETS[2])]:
        assert dets[oid].x_body_m == pytest.approx(t.x_m, abs=0.15)
        assert dets[oid].y_body_m == pytest.approx(t.y_m, abs=0.15)
    assert dets[0].obj_class == "car" and dets[0].rcs_dbsm == pytest.approx(20.0)


def test_ego_motion_reaches_the_radar(make_rig):
    rig = make_rig(targets=TARGETS[:1])
    assert rig.emu.motion_rx_state(0.0) == 3
    st = rig.run(2.2, speed_mps=1.24, yaw_rate_radps=-0.2)
    assert rig.emu.ego_speed_mps == pytest.approx(1.24, abs=0.011)
    assert rig.emu.ego_yaw_rate_radps == pytest.approx(-0.2, abs=1e-3)
    assert rig.emu.motion_rx_state(rig.clock.now_s()) == 0
    assert "motion_input_missing" not in st.warnings
    assert rig.port.stats()["sent"] == 2 * math.ceil(2.2 / 0.072)


def test_without_ego_motion_radar_warns_but_no_fault(make_rig):
    rig = make_rig(targets=TARGETS[:1])
    st = None
    while rig.clock.now_s() < 1.5:  # the host never sends SpeedInformation/YawRate
        rig.clock.advance(TICK_S)
        rig.emu.step(rig.clock.now_s())
        rig.port.poll(rig.clock.now_s())
        st = rig.drv.poll(rig.clock.now_s())
    assert rig.emu.motion_rx_state(rig.clock.now_s()) == 3
    assert st.fresh and st.faults == () and "motion_input_missing" in st.warnings


ERROR_CASES = [
    ({"persistent_error": True}, "persistent_error"),
    ({"temporary_error": True}, "temporary_error"),
    ({"temperature_error": True}, "temperature_error"),
    ({"voltage_error": True}, "voltage_error"),
    ({"interference": True}, "interference"),
]


@pytest.mark.parametrize("flags,fault", ERROR_CASES)
def test_radar_reported_error_is_a_fault(make_rig, flags, fault):
    rig = make_rig(targets=TARGETS[:2])
    assert rig.run(1.2).faults == ()
    rig.emu.set_errors(**flags)
    st = rig.run(1.1)  # next RadarState within 1 s
    assert fault in st.faults and not st.valid
    rig.emu.set_errors(**{k: False for k in flags})
    assert fault not in rig.run(1.1).faults


def test_wrong_reported_sensor_id_is_a_fault(make_rig):
    rig = make_rig(targets=TARGETS[:1])
    rig.emu.reported_sensor_id = 3
    st = rig.run(1.2)
    assert "sensor_id_mismatch" in st.faults


def test_driver_configured_for_another_sensor_id_goes_stale(make_rig):
    rig = make_rig(sensor_id=1, emu_sensor_id=0, targets=TARGETS)
    st = rig.run(1.0)
    assert st.stale and "stale" in st.faults and st.cycles_complete == 0
    assert rig.port.stats()["unknown_id"] > 0  # frames on sensor 0's IDs: not ours


def test_silent_radar_goes_stale_within_three_periods_then_recovers(make_rig):
    rig = make_rig(targets=TARGETS[:2])
    assert rig.run(1.0).fresh
    last_cycle = rig.cycle_times[-1]
    rig.emu.silent = True
    first_stale = []
    rig.run(0.5, each=lambda now, st: st.stale and not first_stale and first_stale.append(now))
    # stale once 3 periods (216 ms) passed without a complete cycle, detected on that tick
    assert first_stale
    assert last_cycle + 3 * 0.072 < first_stale[0] <= last_cycle + 3 * 0.072 + TICK_S + 1e-9
    assert "stale" in rig.status.faults
    rig.emu.silent = False
    fresh_at = []
    rig.run(0.5, each=lambda now, st: st.fresh and not fresh_at and fresh_at.append(now))
    # one cycle never makes it fresh again: three consecutive cycles are needed (B02)
    back = [t for t in rig.cycle_times if t > first_stale[0]]
    assert fresh_at and fresh_at[0] >= back[2] - 1e-9


def test_incomplete_cycles_are_dropped_and_go_stale(make_rig):
    rig = make_rig(targets=TARGETS[:2])
    rig.run(0.5)
    done = rig.status.cycles_complete
    rig.emu.drop_last_object_frame = True
    st = rig.run(0.6)
    assert st.cycles_complete == done
    assert st.cycles_dropped >= 6
    assert st.stale and "stale" in st.faults


def test_unknown_enum_is_rejected_counted_and_persistently_a_fault(make_rig):
    rig = make_rig(targets=TARGETS[:2])
    rig.run(0.5)
    rig.emu.corrupt_enum = True
    st = rig.run(0.6)
    assert st.rejects.get("enum", 0) >= 2 * 6
    assert "values_rejected" in st.faults and st.stale
