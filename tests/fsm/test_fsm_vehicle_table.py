"""Every (state, event) pair of fsm_configs/qiki_vehicle.yaml has an expected outcome.

ARCHITECTURE.md 8 (fsm); SAFETY.md D09 (estop latched, reset refused while pressed),
O01 (arm refused with the reason).
"""

from __future__ import annotations

import pytest

from controller.fsm import EVENTS

STATES = ("boot", "idle", "armed", "active", "safe_mode", "estop")
IGN = "ignored"

# Outcome with every guard passing: target state, or IGN.
EXPECTED: dict[str, dict[str, str]] = {
    "boot": {"post_passed": "idle", "post_failed": "safe_mode", "fault": "safe_mode", "estop": "estop",
             "arm": IGN, "disarm": IGN, "start_mission": IGN, "reset": IGN, "mission_complete": IGN},
    "idle": {"arm": "armed", "fault": "safe_mode", "estop": "estop",
             "post_passed": IGN, "post_failed": IGN, "disarm": IGN, "start_mission": IGN, "reset": IGN,
             "mission_complete": IGN},
    "armed": {"start_mission": "active", "disarm": "idle", "fault": "safe_mode", "estop": "estop",
              "arm": IGN, "post_passed": IGN, "post_failed": IGN, "reset": IGN, "mission_complete": IGN},
    "active": {"mission_complete": "armed", "disarm": "idle", "fault": "safe_mode", "estop": "estop",
               "arm": IGN, "start_mission": IGN, "post_passed": IGN, "post_failed": IGN, "reset": IGN},
    "safe_mode": {"reset": "idle", "fault": "safe_mode", "estop": "estop",
                  "arm": IGN, "disarm": IGN, "start_mission": IGN, "post_passed": IGN, "post_failed": IGN,
                  "mission_complete": IGN},
    "estop": {"reset": "idle", "estop": "estop",
              "fault": IGN, "arm": IGN, "disarm": IGN, "start_mission": IGN, "post_passed": IGN,
              "post_failed": IGN, "mission_complete": IGN},
}

# Guarded pairs: the guards asked, in order; the first one refusing gives the reason.
GUARDED: dict[tuple[str, str], tuple[str, ...]] = {
    ("idle", "arm"): ("arming_checks_pass",),
    ("safe_mode", "reset"): ("faults_cleared",),
    ("estop", "reset"): ("estop_released", "faults_cleared"),
}

PAIRS = [(s, e) for s in STATES for e in sorted(EVENTS)]


def test_table_covers_every_pair(vehicle) -> None:
    assert set(EXPECTED) == set(vehicle.states)
    for state, row in EXPECTED.items():
        assert set(row) == set(EVENTS), state


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_pair_with_guards_passing(vehicle, engine_in, make_guards, state: str, event: str) -> None:
    engine = engine_in(vehicle, state)
    guards = make_guards()
    out = engine.step(1.0, [event], guards)
    expected = EXPECTED[state][event]
    if expected == IGN:
        assert out == []
        assert engine.state == state
        assert engine.ignored == 1
        assert engine.ignored_last_step == ((state, event),)
        assert guards.calls == []
        return
    assert len(out) == 1
    t = out[0]
    assert (t.source, t.event, t.target, t.refused, t.by_timeout) == (state, event, expected, False, False)
    assert t.actions == vehicle.states[state].exit + vehicle.states[expected].enter
    assert t.time_s == 1.0
    assert engine.state == expected
    assert engine.entered_at_s == 1.0
    assert engine.ignored == 0
    assert guards.calls == list(GUARDED.get((state, event), ()))


@pytest.mark.parametrize(("state", "event", "refusing"), [
    (s, e, g) for (s, e), gs in GUARDED.items() for g in gs
])
def test_pair_refused_by_each_guard(vehicle, engine_in, make_guards, state, event, refusing) -> None:
    engine = engine_in(vehicle, state)
    out = engine.step(2.0, [event], make_guards(**{refusing: False}))
    assert len(out) == 1
    t = out[0]
    assert t.refused and t.target == state and t.actions == ()
    assert t.guard == refusing
    assert t.reason == f"{refusing} says no"
    assert engine.state == state and engine.entered_at_s == 0.0
    assert engine.ignored == 0


def test_estop_reset_refused_while_button_pressed_even_with_faults(vehicle, engine_in, make_guards) -> None:
    """SAFETY.md D09: the pressed button is the reason given, whatever else is wrong."""
    engine = engine_in(vehicle, "estop")
    (t,) = engine.step(1.0, ["reset"], make_guards(estop_released=False, faults_cleared=False))
    assert t.refused and t.guard == "estop_released"


@pytest.mark.parametrize("state", STATES)
def test_outputs_allocate_only_in_active(vehicle, engine_in, state) -> None:
    engine = engine_in(vehicle, state)
    assert engine.outputs == ("allocate" if state == "active" else "zero")
    assert engine.latched == (state in ("safe_mode", "estop"))
