"""The run's result names the root cause with its event code (issue 15 part 6)."""

from __future__ import annotations

from types import SimpleNamespace

from controller.operator import safe_cause, safe_reason, safe_result
from controller.record.codes import entry
from controller.vehicle.faults import FaultBook

RAIL = "valve rail dropped by the MCU"


def vehicle(state="safe_mode", *, pressed=False, first=None, active=None, transitions=(), exc=None, post=True):
    faults = FaultBook()
    faults.active.update(active or {})
    return SimpleNamespace(state=state, exception_reason=exc, first_fault=first, faults=faults,
                           transitions=[list(t) for t in transitions], post_passed=post,
                           mcu=SimpleNamespace(driver=SimpleNamespace(estop_pressed=pressed)))


def test_estop_press_is_the_cause_not_the_rail_drop_it_causes():
    v = vehicle("estop", pressed=True, first=RAIL, active={"rail": RAIL},
                transitions=[(3.01, "active", "estop", "estop")])
    assert safe_cause(v) == ("E-stop pressed", 901)
    assert safe_result(v) == "estop: E-stop pressed (event 901)"
    assert entry(901) is not None and entry(901).kind == "transition"


def test_rail_drop_seen_a_tick_before_the_press_is_still_the_estop():
    """The rail fault put the vehicle in safe_mode first; the E-stop (now released) followed."""
    v = vehicle("estop", pressed=False, first=RAIL, active={"rail": RAIL},
                transitions=[(3.00, "active", "fault", "safe_mode"), (3.01, "safe_mode", "estop", "estop")])
    assert safe_cause(v) == ("E-stop pressed", 901)


def test_rail_drop_without_an_estop_is_the_rail_fault():
    v = vehicle(first=RAIL, active={"rail": RAIL}, transitions=[(3.0, "active", "fault", "safe_mode")])
    assert safe_cause(v) == (RAIL, 904)


def test_a_real_fault_before_an_estop_stays_the_cause():
    why = "MCU status stale"
    v = vehicle("estop", pressed=True, first=why, active={"mcu_status": why},
                transitions=[(2.0, "active", "fault", "safe_mode"), (2.5, "safe_mode", "estop", "estop")])
    text, code = safe_cause(v)
    assert text == why and entry(code) is not None and code != 901


def test_estop_without_transitions_recorded_uses_the_input():
    assert safe_cause(vehicle("estop", pressed=True, first="x", active={"k": "x"}))[1] == 901


def test_exception_comes_first_and_cleared_fault_keeps_a_code():
    assert safe_cause(vehicle(exc="exception in tick: X", first="y"))[1] == 911
    assert safe_cause(vehicle(first="gone", active={}))== ("gone", 902)
    assert safe_reason(vehicle("safe_mode", post=False)) == "POST failed (event 104)"
