"""Battery model, relays and fault plans of firmware_bridge/emulation/power.py."""

from __future__ import annotations

import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.power import BatteryModel, Fault, FaultPlan, PowerWorld, lfp_ocv_per_cell_v


@pytest.mark.parametrize("soc, lo, hi", [(0.0, 2.49, 2.51), (0.5, 3.27, 3.31), (1.0, 3.54, 3.56), (-1.0, 2.49, 2.51), (2.0, 3.54, 3.56)])
def test_lfp_ocv_curve(soc, lo, hi):
    assert lo <= lfp_ocv_per_cell_v(soc) <= hi


def test_ocv_is_monotonic():
    vs = [lfp_ocv_per_cell_v(i / 100) for i in range(101)]
    assert all(b >= a for a, b in zip(vs, vs[1:], strict=False))


def test_coulomb_counting_and_energy():
    b = BatteryModel(capacity_ah=2.0, soc=1.0)
    for _ in range(3600):
        b.step(1.0, 1.0)  # 1 A for an hour = half the capacity
    assert b.soc == pytest.approx(0.5, abs=1e-9)
    assert b.charge_used_ah == pytest.approx(1.0)
    assert 8 * 3.2 < b.energy_used_wh < 8 * 3.6


def test_voltage_sags_under_load_and_recovers():
    b = BatteryModel()
    b.step(0.01, 0.0)
    v0 = b.terminal_voltage_v
    b.step(0.01, 10.0)
    assert v0 - b.terminal_voltage_v == pytest.approx(10.0 * b.internal_resistance_ohm, rel=0.05)
    b.step(0.01, 0.0)
    assert b.terminal_voltage_v == pytest.approx(v0, abs=0.01)


def test_temperature_rises_with_load_and_relaxes_to_ambient():
    b = BatteryModel(thermal_mass_j_per_k=100.0)
    for _ in range(600):
        b.step(1.0, 10.0)  # 8 W of I^2 R
    hot = b.temperature_c
    assert hot > 30.0
    assert hot < 25.0 + 8.0 * b.thermal_resistance_k_per_w + 0.1  # steady state bound
    for _ in range(3000):
        b.step(1.0, 0.0)
    assert b.temperature_c == pytest.approx(25.0, abs=0.5)


def test_relays_gate_valve_current_and_count_operations():
    w = PowerWorld()
    assert not w.valve_rail_powered
    w.step(1.0, valves_open=8)
    assert w.rail_currents_a()["valve_rail"] == 0.0
    w.set_relay("valve_rail", True)
    w.set_relay("valve_rail", True)  # idempotent: no second operation
    w.step(1.0, valves_open=8)
    assert w.valve_rail_powered and w.rail_currents_a()["valve_rail"] == pytest.approx(8 * 0.6)
    assert w.relay_operations == 1
    with pytest.raises(KeyError):
        w.set_relay("heater", True)


def test_fault_plan_windows_and_entries():
    plan = FaultPlan.from_entries([
        {"kind": "silent", "start_s": 1.0, "end_s": 2.0},
        {"kind": "alarm", "start_s": 1.5, "alarm_bits": 0x800},
    ])
    assert [f.kind for f in plan.active(0.5)] == []
    assert [f.kind for f in plan.active(1.0)] == ["silent"]
    assert [f.kind for f in plan.active(1.7)] == ["silent", "alarm"]
    assert [f.kind for f in plan.active(2.0)] == ["alarm"]
    assert plan.alarm_bits(3.0) == 0x800 and plan.alarm_bits(1.0) == 0


@pytest.mark.parametrize("kw", [{"every": 0}, {"start_s": 2.0, "end_s": 1.0}, {"delay_s": -1.0}])
def test_fault_rejects_bad_parameters(kw):
    with pytest.raises(ValueError):
        Fault("slow", **kw)


def test_fault_window_follows_the_device_clock():
    from pathlib import Path

    from controller.config import load_profile
    from firmware_bridge.emulation.power import JkBmsEmulator
    from firmware_bridge.protocols.modbus_profile import ModbusRequest

    clock = SimClock()
    bms = JkBmsEmulator(load_profile(Path(__file__).resolve().parents[2] / "rigs/profiles/jk_bms.yaml"),
                        PowerWorld(), clock, 1, FaultPlan([Fault("silent", start_s=1.0, end_s=2.0)]))
    req = ModbusRequest(1, "read", "holding", 0x106C, 2)
    kinds = []
    for t in (0.5, 1.0, 1.5, 2.0):
        clock.sleep_until(t)
        kinds.append(bms.respond(req).kind)
    assert kinds == ["values", "silent", "silent", "values"]
