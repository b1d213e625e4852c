"""Property tests on the vehicle machine (ARCHITECTURE.md 5.4; SAFETY.md D09, O01, O04).

Random ticks (random events, random guard answers, random time steps) must never:
- reach ``armed``/``active`` from ``safe_mode``/``estop`` without an operator ``reset``
  into ``idle`` first (and then an ``arm``);
- let ``outputs`` be ``allocate`` outside ``active``;
- enter an arming state without ``enable_valve_rail`` having run since the last
  ``disable_valve_rail`` (the rail is on whenever thrust could be allocated).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fsm import EVENTS, GUARDS, FsmEngine

ARMING = {"armed", "active"}
FAULT = {"safe_mode", "estop"}

ticks = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.01, 0.5, 1.0, 2.5, 5.0]),
        st.lists(st.sampled_from(sorted(EVENTS)), max_size=4),
        st.fixed_dictionaries({g: st.booleans() for g in sorted(GUARDS)}),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ticks)
def test_no_automatic_recovery_and_allocate_only_in_active(vehicle, script) -> None:
    engine = FsmEngine(vehicle)
    now_s = 0.0
    rail_on = False
    tainted = False  # been in a fault state since the last reset into idle
    for dt_s, events, answers in script:
        now_s += dt_s
        out = engine.step(now_s, events, lambda g, answers=answers: (answers[g], f"{g} false"))
        for t in out:
            if t.refused:
                assert t.target == t.source
                assert t.guard is None or answers[t.guard] is False
                continue
            for action in t.actions:
                if action == "enable_valve_rail":
                    rail_on = True
                elif action == "disable_valve_rail":
                    rail_on = False
            if t.target in FAULT:
                tainted = True
            if t.event == "reset" and t.target == "idle":
                assert t.source in FAULT
                tainted = False
            if t.target in ARMING:
                assert not tainted, (t, out)
                assert rail_on
            if t.target == "armed" and t.source == "idle":
                assert t.event == "arm" and answers["arming_checks_pass"]
            if t.source == "estop" and t.target != "estop":
                assert answers["estop_released"] and answers["faults_cleared"]
        assert (engine.outputs == "allocate") == (engine.state == "active")
        assert engine.latched == (engine.state in FAULT)
        if "estop" in events:
            assert engine.state == "estop"
