"""The fault-plan dialect reaches the CAN buses and the host (issue 15 part 1; SAFETY.md B02-B10, D01, F01-F05, T01, T02)."""

from __future__ import annotations

import uuid

import can
import pytest
from can import BusState

from controller.config import load_rig
from controller.errors import ConfigError
from controller.rig.fault_plan import CanBusFaults, HostFaults, check
from firmware_bridge.emulation.faults import FaultPlan, resolve_entry
from hal.can.faulty import FaultyBus


@pytest.fixture
def pair():
    ch = f"qiki-faulty-{uuid.uuid4().hex[:8]}"
    t = {"now": 0.0}
    inner = can.Bus(interface="virtual", channel=ch)
    other = can.Bus(interface="virtual", channel=ch)
    fb = FaultyBus(inner, seed=3, clock=lambda: t["now"])
    yield fb, other, t
    fb.shutdown()
    other.shutdown()


def _plan(fb, *entries):
    specs = {"can0": CanBusFaults.FAULTS}
    return FaultPlan([resolve_entry(i, *e, specs) for i, e in enumerate(entries)], {"can0": CanBusFaults(fb)})


def test_rig_check_knows_bus_and_host_targets_and_names_the_key(rig_with_faults):
    ok = rig_with_faults([{"at_s": 1.0, "target": "can0", "fault": "babble", "frames_per_s": 30000.0},
                          {"at_s": 1.0, "until_s": 2.0, "target": "host", "fault": "overruns", "per_s": 10}])
    rig, _ = load_rig(ok)
    entries = check(rig, "rig.yaml")
    assert [e.target for e in entries] == ["can0", "host"]
    bad = rig_with_faults([{"at_s": 1.0, "target": "can0", "fault": "loss", "prob": 1.5}])
    rig, _ = load_rig(bad)
    with pytest.raises(ConfigError, match=r"emulation.faults\[0\].prob: must be in \[0, 1\]"):
        check(rig, "rig.yaml")


def test_bus_faults_through_the_plan(pair):
    fb, other, t = pair
    plan = _plan(fb, (0.0, "can0", "bus_off", 1.0, {}), (2.0, "can0", "unplug", 3.0, {}),
                 (4.0, "can0", "loss", 5.0, {"id": 0x181}), (6.0, "can0", "remote_frame", None, {"count": 2}))
    plan.step(0.0)
    assert fb.state is BusState.ERROR
    with pytest.raises(can.CanOperationError):
        fb.send(can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
    plan.step(1.0)
    assert fb.forced_state is None
    plan.step(2.0)
    with pytest.raises(can.CanOperationError):
        fb.recv(timeout=0)
    plan.step(4.0)
    other.send(can.Message(arbitration_id=0x181, data=bytes(8), is_extended_id=False))
    other.send(can.Message(arbitration_id=0x182, data=bytes(8), is_extended_id=False))
    assert fb.recv(timeout=0).arbitration_id == 0x182  # only 0x181 is lost
    plan.step(6.0)
    assert [fb.recv(timeout=0).is_remote_frame for _ in range(2)] == [True, True]


def test_babble_rate_follows_the_clock(pair):
    fb, other, t = pair
    plan = _plan(fb, (0.0, "can0", "babble", None, {"frames_per_s": 30000.0}))
    plan.step(0.0)
    t["now"] = 0.01
    n = 0
    while fb.recv(timeout=0) is not None:
        n += 1
    assert n == 300  # 300 frames per 10 ms tick


def test_late_delivery_and_freeze(pair):
    fb, other, t = pair
    plan = _plan(fb, (0.0, "can0", "late", None, {"delay_s": 0.05}), (0.0, "can0", "freeze", None, {"id": 0x60A}))
    other.send(can.Message(arbitration_id=0x60A, data=b"\x01\x02", is_extended_id=False))
    assert fb.recv(timeout=0) is not None  # seen before the freeze
    plan.step(0.0)
    other.send(can.Message(arbitration_id=0x60A, data=b"\x09\x09", is_extended_id=False))
    assert fb.recv(timeout=0) is None  # held
    t["now"] = 0.05
    m = fb.recv(timeout=0)
    assert m is not None and bytes(m.data) == b"\x01\x02"  # late, and frozen to the last payload


def test_host_overruns_counted_per_second():
    h = HostFaults()
    h.apply_fault("overruns", {"per_s": 10}, 1.0)
    assert h.injected_last_second(1.0) == 1
    assert h.injected_last_second(1.55) == 6
    assert h.injected_last_second(5.0) == 10
    h.clear_fault("overruns", {"per_s": 10}, 5.0)
    assert h.injected_last_second(6.5) == 0
    h.apply_fault("overrun", {}, 7.0)
    assert h.overruns(lambda now: 2)(7.5) == 3
