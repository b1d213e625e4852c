"""Engine semantics: arbiter priority (SAFETY.md O04), latching, timeouts, refusals."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from controller.errors import ControllerError
from controller.fsm import FsmEngine, load_fsm, order_events, parse_fsm
from controller.fsm import engine as engine_module


def test_arbiter_order_is_total_and_fixed() -> None:
    everything = ["mission_complete", "post_passed", "start_mission", "arm", "reset", "disarm",
                  "post_failed", "fault", "estop"]
    assert order_events(everything) == everything[::-1]
    assert order_events(["arm", "estop", "arm", "estop"]) == ["estop", "arm"]


# (start state, events of one tick, final state, transitions as (source, event, target, refused))
PRIORITY_CASES = [
    ("idle", ["arm", "estop"], "estop", [("idle", "estop", "estop", False)]),
    ("active", ["mission_complete", "disarm", "fault", "estop"], "estop",
     [("active", "estop", "estop", False)]),
    ("active", ["disarm", "fault"], "safe_mode", [("active", "fault", "safe_mode", False)]),
    # latched safe_mode ends the tick: reset cannot see faults the pending latch_fault would latch
    ("armed", ["reset", "fault"], "safe_mode", [("armed", "fault", "safe_mode", False)]),
    ("boot", ["post_failed", "post_passed"], "safe_mode", [("boot", "post_failed", "safe_mode", False)]),
    # arm is offered before post_passed and is ignored in boot: no arming in the POST tick
    ("boot", ["post_passed", "arm"], "idle", [("boot", "post_passed", "idle", False)]),
    # operator before mission: disarm first, mission_complete then finds idle and is ignored
    ("active", ["mission_complete", "disarm"], "idle", [("active", "disarm", "idle", False)]),
    # later events see the new state
    ("idle", ["start_mission", "arm"], "active",
     [("idle", "arm", "armed", False), ("armed", "start_mission", "active", False)]),
    # disagreeing operators resolve to the safe side: no re-arming in the tick that disarmed
    ("armed", ["arm", "disarm"], "idle", [("armed", "disarm", "idle", False), ("idle", "arm", "idle", True)]),
    # reset then arm by the operator in one tick is two deliberate commands
    ("safe_mode", ["arm", "reset"], "armed",
     [("safe_mode", "reset", "idle", False), ("idle", "arm", "armed", False)]),
]


@pytest.mark.parametrize(("start", "events", "final", "expected"), PRIORITY_CASES)
def test_one_tick_priority(vehicle, engine_in, make_guards, start, events, final, expected) -> None:
    engine = engine_in(vehicle, start)
    out = engine.step(1.0, events, make_guards())
    assert [(t.source, t.event, t.target, t.refused) for t in out] == expected
    assert engine.state == final
    assert engine.ignored == len(set(events)) - len(expected)


def test_events_after_a_latched_state_are_ignored_and_listed(vehicle, engine_in, make_guards) -> None:
    engine = engine_in(vehicle, "safe_mode")
    guards = make_guards()
    out = engine.step(1.0, ["reset", "estop", "arm"], guards)
    assert [(t.source, t.target) for t in out] == [("safe_mode", "estop")]
    assert engine.ignored_last_step == (("estop", "reset"), ("estop", "arm"))
    assert guards.calls == []


def test_duplicates_collapse(vehicle, engine_in, make_guards) -> None:
    engine = engine_in(vehicle, "idle")
    guards = make_guards()
    out = engine.step(1.0, ["arm", "arm", "arm"], guards)
    assert len(out) == 1 and engine.state == "armed"
    assert guards.calls == ["arming_checks_pass"]


def test_refusal_carries_reason_and_changes_nothing(vehicle, engine_in) -> None:
    """SAFETY.md O01: arm while POST failed/fault active is refused with the reason."""
    engine = engine_in(vehicle, "idle", now_s=3.0)
    out = engine.step(4.0, ["arm"], lambda name: (False, "fault F12 (valve board stale) active"))
    assert len(out) == 1
    t = out[0]
    assert (t.refused, t.guard, t.reason, t.source, t.target, t.actions) == (
        True, "arming_checks_pass", "fault F12 (valve board stale) active", "idle", "idle", ())
    assert engine.state == "idle" and engine.entered_at_s == 3.0


def test_self_transition_reruns_exit_and_enter(vehicle, engine_in, make_guards) -> None:
    engine = engine_in(vehicle, "estop")
    (t,) = engine.step(7.0, ["estop"], make_guards())
    assert (t.source, t.target, t.actions) == ("estop", "estop", ("disable_valve_rail",))
    assert engine.entered_at_s == 7.0
    engine = engine_in(vehicle, "safe_mode")
    (t,) = engine.step(7.0, ["fault"], make_guards())
    assert t.actions == ("disable_valve_rail", "latch_fault")


def test_initial_actions_are_returned_not_run(vehicle) -> None:
    assert FsmEngine(vehicle).initial_actions == ("run_post",)


# ---- timeouts ----------------------------------------------------------------------

@pytest.mark.parametrize(("start_s", "tick_s", "fires"), [
    (0.0, 4.999, False),
    (0.0, 5.0, True),
    (0.0, 9.0, True),
    (100.0, 104.9, False),
    (100.0, 105.0, True),
    (3.2, 3.2 + 5.0, True),  # float arithmetic: 8.2 - 3.2 < 5.0 by one ulp
])
def test_boot_timeout_raises_post_failed(vehicle, make_guards, start_s, tick_s, fires) -> None:
    engine = FsmEngine(vehicle, now_s=start_s)
    out = engine.step(tick_s, [], make_guards())
    if fires:
        assert [(t.event, t.target, t.by_timeout) for t in out] == [("post_failed", "safe_mode", True)]
        assert out[0].actions == ("disable_valve_rail", "latch_fault")
        assert engine.entered_at_s == tick_s
    else:
        assert out == [] and engine.state == "boot"


def test_timeout_fires_on_the_500th_tick_of_10_ms(vehicle, make_guards) -> None:
    """Summing 0.01 s ticks undershoots 5.0 s by ~6e-14 s; the timer must not slip a tick."""
    engine = FsmEngine(vehicle)
    now_s = 0.0
    for tick in range(1, 502):  # noqa: B007 -- read after the loop: the tick that fired
        now_s += 0.01
        if engine.step(now_s, [], make_guards()):
            break
    assert tick == 500 and engine.state == "safe_mode"


def test_timeout_measured_from_entry_not_from_start(vehicle, make_guards) -> None:
    engine = FsmEngine(vehicle, now_s=0.0)
    engine.step(4.0, [], make_guards())
    assert engine.state == "boot"
    engine.step(4.5, ["estop"], make_guards())
    engine.step(4.6, ["reset"], make_guards())
    assert engine.state == "idle"
    assert engine.step(60.0, [], make_guards()) == []  # idle has no timeout


def test_post_result_at_the_deadline_beats_the_timeout(vehicle, make_guards) -> None:
    engine = FsmEngine(vehicle)
    out = engine.step(5.0, ["post_passed"], make_guards())
    assert [(t.event, t.target, t.by_timeout) for t in out] == [("post_passed", "idle", False)]


def _guarded_timeout_model(data: dict):
    for t in data["transitions"]:
        if t["event"] == "post_failed":
            t["guard"] = "faults_cleared"  # odd on purpose: makes the timeout refusable
    return parse_fsm(data, "guarded_timeout")


def test_refused_timeout_fires_once_per_stay(make_guards, vehicle_data) -> None:
    engine = FsmEngine(_guarded_timeout_model(vehicle_data))
    out = engine.step(5.0, [], make_guards(faults_cleared=False))
    assert [(t.refused, t.by_timeout, t.guard) for t in out] == [(True, True, "faults_cleared")]
    assert engine.step(6.0, [], make_guards()) == []
    assert engine.state == "boot"


def test_timer_rearms_on_every_entry(engine_in, make_guards, vehicle_data) -> None:
    data = vehicle_data
    data["timeouts"].append({"state": "active", "after_s": 60.0, "event": "mission_complete"})
    engine = engine_in(parse_fsm(data, "mission_limit"), "active")
    for start_s in (0.0, 100.0):
        if start_s:
            engine.step(start_s, ["start_mission"], make_guards())
        assert engine.step(start_s + 59.0, [], make_guards()) == []
        out = engine.step(start_s + 60.0, [], make_guards())
        assert [(t.event, t.target, t.by_timeout) for t in out] == [("mission_complete", "armed", True)]


def test_timeouts_skipped_in_the_tick_a_latched_state_is_entered(vehicle, make_guards) -> None:
    engine = FsmEngine(vehicle)
    out = engine.step(5.0, ["estop"], make_guards())
    assert [(t.event, t.target) for t in out] == [("estop", "estop")]


# ---- bad calls ---------------------------------------------------------------------

@pytest.mark.parametrize(("now_s", "events", "match"), [
    (float("nan"), [], "finite"),
    (float("inf"), [], "finite"),
    (0.5, [], "backwards"),
    (2.0, ["launch"], "unknown FSM event 'launch'"),
])
def test_bad_step_arguments_raise(vehicle, make_guards, now_s, events, match) -> None:
    engine = FsmEngine(vehicle, now_s=1.0)
    with pytest.raises(ControllerError, match=match):
        engine.step(now_s, events, make_guards())
    assert engine.state == "boot"


def test_bad_start_time_raises(vehicle) -> None:
    with pytest.raises(ControllerError):
        FsmEngine(vehicle, now_s=float("nan"))


def test_same_inputs_same_transitions(vehicle) -> None:
    script = [(0.5, ["post_passed"]), (1.0, ["arm"]), (1.5, ["start_mission", "fault"]),
              (2.0, ["reset"]), (9.0, ["arm", "estop"]), (10.0, ["reset"])]

    def run():
        engine = FsmEngine(vehicle)
        log = []
        for now_s, events in script:
            log += engine.step(now_s, events, lambda g: (True, ""))
        return log, engine.state

    assert run() == run()


def test_engine_module_does_no_io() -> None:
    """ARCHITECTURE.md 2, rule 1: the engine imports nothing that reads clocks, files or threads."""
    tree = ast.parse(Path(engine_module.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"time", "os", "io", "threading", "asyncio", "socket", "pathlib", "yaml", "datetime"}


def test_unused_guard_answers_are_not_asked(make_guards, vehicle_yaml) -> None:
    engine = FsmEngine(load_fsm(vehicle_yaml))
    guards = make_guards()
    engine.step(1.0, ["post_passed", "disarm", "mission_complete"], guards)
    assert guards.calls == []


@pytest.mark.parametrize("broken", [
    lambda: 1 / 0,
    lambda: None,
    lambda: (True, "x", "extra"),
])
def test_broken_guard_is_a_refusal_and_keeps_earlier_transitions(vehicle, engine_in, broken) -> None:
    engine = engine_in(vehicle, "safe_mode")

    def guard(name):
        return (True, "") if name == "faults_cleared" else broken()

    out = engine.step(1.0, ["reset", "arm"], guard)
    assert [(t.source, t.target, t.refused) for t in out] == [("safe_mode", "idle", False), ("idle", "idle", True)]
    assert out[0].actions == ("disable_valve_rail",)
    assert out[1].guard == "arming_checks_pass" and "failed" in out[1].reason
    assert engine.state == "idle"
