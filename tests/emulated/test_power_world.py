"""Battery model, relays and fault plans of firmware_bridge/emulation/power.py."""

from __future__ import annotations

import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.faults import FaultEntry, FaultPlan, FaultPlanError, resolve_entry
from firmware_bridge.emulation.power import BatteryModel, PowerWorld, lfp_ocv_per_cell_v


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


def _bms(clock):
    from pathlib import Path

    from controller.config import load_profile
    from firmware_bridge.emulation.power import JkBmsEmulator

    return JkBmsEmulator(load_profile(Path(__file__).resolve().parents[2] / "rigs/profiles/jk_bms.yaml"),
                         PowerWorld(), clock, 1)


def test_fault_plan_windows_and_entries():
    from firmware_bridge.protocols.modbus_profile import ModbusRequest

    clock = SimClock()
    bms = _bms(clock)
    bms.fault_plan = FaultPlan([
        FaultEntry(1.0, "bms", "silent", until_s=2.0),
        FaultEntry(1.5, "bms", "alarm", params={"alarm_bits": 0x800}),
    ], {"bms": bms})
    req = ModbusRequest(1, "read", "holding", 0x106C, 2)
    seen = []
    for t in (0.5, 1.0, 1.7, 2.0, 3.0):
        clock.sleep_until(t)
        seen.append((bms.respond(req).kind, bms.alarm_bits()))
    assert seen == [("values", 0), ("silent", 0), ("silent", 0x800), ("values", 0x800), ("values", 0x800)]


@pytest.mark.parametrize("params, key", [({"every": 0}, "every"), ({"delay_s": -1.0}, "delay_s"),
                                         ({"delay_s": "1"}, "delay_s"), ({"length": 3}, "length")])
def test_fault_rejects_bad_parameters(params, key):
    from firmware_bridge.emulation.power import JkBmsEmulator

    with pytest.raises(FaultPlanError) as info:
        resolve_entry(0, 1.0, "bms", "slow", None, params, {"bms": JkBmsEmulator.FAULTS})
    assert info.value.key == key


def test_fault_window_follows_the_device_clock():
    from firmware_bridge.protocols.modbus_profile import ModbusRequest

    clock = SimClock()
    bms = _bms(clock)
    bms.fault_plan = FaultPlan([FaultEntry(1.0, "bms", "silent", until_s=2.0)], {"bms": bms})
    req = ModbusRequest(1, "read", "holding", 0x106C, 2)
    kinds = []
    for t in (0.5, 1.0, 1.5, 2.0):
        clock.sleep_until(t)
        kinds.append(bms.respond(req).kind)
    assert kinds == ["values", "silent", "silent", "values"]
