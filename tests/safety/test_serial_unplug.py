"""SAFETY.md D12: a serial device unplugged and replugged, injected from a rig's fault plan.

The fault ``unplug`` of a device on a serial bus (``mcu``, ``radar_sr`` on the virtual rig)
acts on the controller's end of the link (``controller/rig/fault_plan.py:SerialLinkFaults``):
the driver's next read or write raises ``BusError`` as pyserial's does when a USB adapter is
pulled, and reopening fails until the replug (``until_s``; absent: for good). The campaign
row D12 (``safety/test_campaign_small.py``) flies the windowed case in every phase; here:
the dialect, the permanent unplug under thrust (backoff, never re-armed) and the knob of
the pyserial backend.
"""

from __future__ import annotations

import pytest

from controller.config import load_rig
from controller.errors import ConfigError
from controller.rig.fault_plan import HostFaults, check
from firmware_bridge.emulation.faults import FaultEntry
from hal.errors import BusError, DeviceUnavailableError
from hal.serial.link import PySerialLink, open_pty_pair


def test_d12_rig_check_gives_every_serial_device_an_unplug_and_names_the_key(rig_with_faults):
    ok = rig_with_faults([{"at_s": 1.0, "until_s": 2.0, "target": "mcu", "fault": "unplug"},
                          {"at_s": 1.0, "target": "radar_sr", "fault": "unplug"},
                          {"at_s": 3.0, "target": "mcu", "fault": "estop_press"}])  # the emulator's own
    rig, _ = load_rig(ok)
    assert [(e.target, e.fault, e.until_s) for e in check(rig, "rig.yaml")] == [
        ("mcu", "unplug", 2.0), ("radar_sr", "unplug", None), ("mcu", "estop_press", None)]
    rig, _ = load_rig(rig_with_faults([{"at_s": 1.0, "target": "valves", "fault": "unplug"}]))  # a CAN device
    with pytest.raises(ConfigError, match=r"emulation.faults\[0\].fault: 'valves' has no fault 'unplug'"):
        check(rig, "rig.yaml")
    rig, _ = load_rig(rig_with_faults([{"at_s": 1.0, "target": "mcu", "fault": "unplug", "after_s": 1.0}]))
    with pytest.raises(ConfigError, match=r"emulation.faults\[0\].after_s: 'unplug' takes no parameter"):
        check(rig, "rig.yaml")


def test_d12_a_far_end_without_the_controllers_link_refuses_unplug():
    """``qiki emulate`` steps the MCU emulator but not the controller's end of its link."""
    from controller.rig.fault_plan import FaultWiring

    wiring = FaultWiring((FaultEntry(1.0, "mcu", "unplug", None, {}, 0),), lambda *a, **k: None)
    wiring.add("mcu", HostFaults())  # stands for the MCU emulator: stepped, no link registered
    with pytest.raises(ConfigError, match=r"emulation.faults\[0\].fault: 'unplug' acts on the controller's end"):
        wiring.simulation_plan("rig.yaml")


def test_d12_permanent_unplug_under_thrust_safe_backoff_never_rearmed(fly, rig_with_faults):
    """The MCU's link pulled for good at 3.0 s under thrust: safe, reopen tried with doubling backoff, never up."""
    rig = rig_with_faults([{"at_s": 3.0, "target": "mcu", "fault": "unplug"}])
    seen: dict[str, object] = {"attempts": []}

    def after(flight, k, now):
        v = flight.vehicle
        d = v.mcu.driver
        # the operator: arm once, start once (operator=False: nothing else commands)
        if now >= 1.0 and v.state == "idle" and v.post_passed and "armed" not in seen:
            v.command("arm")
            seen["armed"] = now
        if now >= 1.5 and v.state == "armed" and "started" not in seen:
            v.command("start_mission")
            seen["started"] = now
        if v.state == "active" and now < 3.0:
            seen["active"] = True
        if v.state == "safe_mode" and "t_safe" not in seen:
            seen["t_safe"] = now
        attempts = seen["attempts"]
        if d.stats()["reopen_attempts"] > len(attempts):
            attempts.append(now)
        if "t_safe" in seen and v.state in ("armed", "active"):
            seen["rearmed"] = now
        return now < 7.0

    flight = fly(rig, seed=3, operator=False, after=after)
    v = flight.vehicle
    assert seen.get("active"), "never thrusting before the unplug: the test proves nothing"
    assert "rearmed" not in seen and v.state == "safe_mode"
    assert v.first_fault in ("MCU pose stale", "MCU status stale"), v.first_fault
    # the pose (100 Hz) is stale after 3 periods: safe within a few ticks of the unplug
    assert 3.0 < seen["t_safe"] <= 3.0 + 0.05 + 1e-9, seen["t_safe"]
    c = v.mcu.driver.stats()
    assert c["bus_errors"] == 1 and c["reopens"] == 0 and not c["link_up"]
    # reopen attempts 0.1 s after the failure, then 0.2, 0.4, 0.8, 1.6 s apart (one tick of slack)
    attempts = seen["attempts"]
    gaps = [round(b - a, 2) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(attempts) == 5 and gaps == pytest.approx([0.2, 0.4, 0.8, 1.6], abs=0.011), (attempts, gaps)
    assert 3.0 + 0.1 - 1e-9 <= attempts[0] <= 3.0 + 0.1 + 0.02, attempts


def test_d12_pyserial_link_unplug_raises_once_then_refuses_reopen_until_replug():
    """The knob of the pyserial backend (real-time builds): the real failure path, on a pty."""
    master, path = open_pty_pair("d12")
    link = PySerialLink(path, 921600)
    try:
        master.write(b"abc")
        deadline = 200
        got = b""
        while len(got) < 3 and deadline:
            got += link.read(16)
            deadline -= 1
        assert got == b"abc"
        link.simulate_unplug()
        with pytest.raises(BusError, match="read failed: .*device unplugged"):
            link.read(16)
        assert not link.is_open and link.failures == 1
        assert link.read(16) == b"" and link.write(b"x") == 0  # quiet once reported
        with pytest.raises(DeviceUnavailableError, match="device unplugged"):
            link.reopen()
        link.simulate_replug()
        link.reopen()
        assert link.is_open
        assert link.write(b"hi") == 2
        echo = b""
        for _ in range(200):
            echo += master.read(16)
            if echo:
                break
        assert echo == b"hi"
        link.simulate_unplug()
        with pytest.raises(BusError, match="write failed"):
            link.write(b"x")
    finally:
        link.close()
        master.close()
