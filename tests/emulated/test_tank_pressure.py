"""The tank-pressure sensor in the whole main job, lockstep (docs/adding-a-device.md).

``rigs/virtual_tank.yaml`` flies the square with the sensor's POST passing and the tank
blown down by the valves' open time. With the emulated sensor silent from ``t``, the
``tank.stale`` fault must fire within the stale budget (3 x the 100 ms DBC cycle time
after the last frame, which left at most one period before ``t``, plus a tick), and an
independent monitor on the CAN bus must see no non-zero valve command after it.
"""

from __future__ import annotations

import cantools
import pytest

T = 0.01
PERIOD_S = 0.1   # dbc/tank.dbc GenMsgCycleTime of TANK_Status
STALE_N = 3      # rigs/virtual_tank.yaml controller.safety.stale_after_periods
BUDGET_S = STALE_N * PERIOD_S + T + 1e-6  # from the silence: the last frame left at most a period before it


@pytest.fixture
def tank_rig(rig_data, write_rig):
    def make(faults: list[dict] | None = None, **emu) -> object:
        data = rig_data("virtual_tank.yaml")
        data["emulation"]["tanks"]["tank"].update(emu)
        data["emulation"]["faults"] = faults or []
        return write_rig(data)

    return make


def _fly_watched(fly, repo_root, rig_path, until_s=None):
    cmd = cantools.database.load_file(str(repo_root / "dbc" / "qiki.dbc"), strict=True).get_message_by_frame_id(0x101)
    frames: list[tuple[float, bool]] = []
    faults: list[tuple[float, str]] = []
    node = {}

    def plug_in(flight):
        node["monitor"] = flight.built.open_can_node("can0")

    def watch(flight, k, now):
        v = flight.vehicle
        if v.first_fault is not None and not faults:
            faults.append((now, v.first_fault))
        while (m := node["monitor"].recv(timeout=0)) is not None:
            if m.arbitration_id == 0x101 and not m.is_extended_id:
                sig = cmd.decode(m.data, scaling=True)
                frames.append((now, any(sig[f"VB_Cmd_Duty{i}"] for i in range(1, 9))))

    flight = fly(rig_path, until_s, setup=plug_in, after=watch)
    return flight, frames, faults


def test_square_with_tank_sensor_post_passes_and_tank_blows_down(fly, repo_root):
    flight, frames, faults = _fly_watched(fly, repo_root, repo_root / "rigs" / "virtual_tank.yaml", until_s=15.0)
    v = flight.vehicle
    assert v.post_result["tank"]["passed"], v.post_result["tank"]
    assert v.post_result["tank"]["reason"].startswith("tank pressure sensor: ok, 200.0 bar")
    assert faults == [] and v.state == "active"
    tank = next(c for c in v.subsystems if c.name == "tank")
    s = tank.summary()
    assert s["rejects"] == {}
    assert s["frames_accepted"] >= 140  # 15 s at 10 Hz, less boot
    # the tank lost what the valves were open for (1.5 bar per valve second)
    assert 150.0 < s["last_pressure_bar"] < 200.0
    assert s["emulated"]["end_pressure_bar"] <= s["last_pressure_bar"] + 0.01  # the wire step is 0.01 bar


@pytest.mark.parametrize("t_silent", [12.0, 13.37])
def test_silent_sensor_faults_within_the_stale_budget_and_thrust_stops(fly, repo_root, tank_rig, t_silent):
    flight, frames, faults = _fly_watched(fly, repo_root, tank_rig(faults=[{"at_s": t_silent, "target": "tank", "fault": "silent"}]), until_s=t_silent + 2.0)
    v = flight.vehicle
    assert v.state == "safe_mode"
    assert faults, "no fault"
    t_fault, reason = faults[0]
    assert reason.startswith("tank pressure sensor stale"), reason
    assert t_silent < t_fault <= t_silent + BUDGET_S, (t_fault, t_silent)
    assert [t for t, active in frames if t < t_silent and active], "no thrust before the silence: proves nothing"
    assert not [t for t, active in frames if t > t_fault + T and active], "thrust after the fault"
    assert "tank.stale" in v.faults.active


def test_low_tank_refuses_arming(fly, tank_rig):
    flight = fly(tank_rig(start_pressure_bar=15.0), until_s=3.0)
    v = flight.vehicle
    assert v.post_passed
    assert v.state == "idle"
    tank = next(c for c in v.subsystems if c.name == "tank")
    assert tank.arming_check(v.view()) == "tank pressure 15.0 bar below the minimum 20.0 bar"
