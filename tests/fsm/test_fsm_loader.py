"""Load-time refusals (SAFETY.md K03, K05; ARCHITECTURE.md 4): file, key path, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.errors import ConfigError, FsmDefinitionError
from controller.fsm import load_fsm, parse_fsm

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad"

# fixture file -> (key path, words the message must contain)
BAD_FILES = {
    "duplicate_key": ("states.idle", "duplicate key"),
    "on_state_name": ("states.on", "bool"),
    "bool_target": ("transitions[0].target", "boolean False"),
    "unknown_key": ("transitions[2].guards", "unknown key"),
    "unknown_guard": ("transitions[2].guard", "unknown guard 'arming_ok' (known: arming_checks_pass, "),
    "dotted_guard": ("transitions[9].guard[1]", "unknown guard 'controller.safety.always_ok'"),
    "unknown_action": ("states.armed.enter[1]", "unknown action 'open_valves'"),
    "unknown_target": ("transitions[4].target", "unknown target state 'hover'"),
    "unknown_event": ("transitions[3].event", "unknown event 'go'"),
    "unreachable_state": ("states.parked", "unreachable"),
    "estop_timeout": ("timeouts[1].state", "latched state 'estop' has a timeout"),
    "estop_system_event_exit": ("transitions[6].event", "system event 'fault' leaves latched state 'estop'"),
    "estop_unguarded_reset": ("transitions[9].guard", "leaves latched state 'estop' without a guard"),
    "estop_not_latched": ("states.estop.latched", "must be latched"),
    "estop_not_reachable": ("states.armed", "no transition on 'estop'"),
    "no_estop_state": ("states", "no state named 'estop'"),
    "safe_mode_auto_to_armed": ("transitions[4]", "safe_mode -post_passed-> idle -mission_complete-> armed"),
    "arming_from_system_event": ("transitions[4].event", "system event 'mission_complete' arms"),
    "ambiguous": ("transitions[6]", "ambiguous"),
    "after_s_nan": ("timeouts[0].after_s", "finite"),
    "after_s_negative": ("timeouts[0].after_s", "greater than 0"),
    "after_s_zero": ("timeouts[0].after_s", "greater than 0"),
    "no_post": ("states.boot.enter", "run_post"),
    "boot_straight_to_armed": ("transitions[2].target", "initial state 'boot' leads straight into arming state"),
    "idle_rail_on": ("transitions[5].target", "disable_valve_rail"),
    "fault_ignored_in_active": ("states.active", "no transition on 'fault'"),
}


def test_every_fixture_is_in_the_table() -> None:
    assert {p.stem for p in BAD.glob("*.yaml")} == set(BAD_FILES)


@pytest.mark.parametrize("stem", sorted(BAD_FILES))
def test_bad_file_refused_with_file_and_key_path(stem: str) -> None:
    key, words = BAD_FILES[stem]
    shown = f"tests/fsm/bad/{stem}.yaml"
    with pytest.raises(FsmDefinitionError) as info:
        load_fsm(BAD / f"{stem}.yaml", shown)
    err = info.value
    assert err.path == shown
    assert err.key == key
    assert str(err).startswith(f"{shown}: {key}: ")
    assert words in str(err)
    assert "\n" not in str(err)


def test_path_is_named_as_the_user_wrote_it() -> None:
    with pytest.raises(FsmDefinitionError) as info:
        load_fsm(BAD / "unknown_guard.yaml")
    assert str(info.value).startswith(f"{BAD / 'unknown_guard.yaml'}: transitions[2].guard: ")


@pytest.mark.parametrize(("text", "key"), [
    ("- a\n- b\n", ""),
    ("name: x\n", "initial"),
    ("[unclosed\n", ""),
])
def test_not_a_machine(tmp_path, text: str, key: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FsmDefinitionError) as info:
        load_fsm(path)
    assert info.value.key == key


def test_missing_file_is_a_definition_error_and_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_fsm(tmp_path / "none.yaml")
    assert isinstance(info.value, FsmDefinitionError)
    assert "file not found" in str(info.value)


# ---- in-memory mutations of the vehicle machine: the checks not worth a file -----------

def _find(data: dict, event: str, source) -> int:
    for i, t in enumerate(data["transitions"]):
        if t["event"] == event and t["source"] == source:
            return i
    raise LookupError((event, source))


def _mut_wildcard_in_list(d):
    d["transitions"][_find(d, "disarm", ["armed", "active"])]["source"] = ["armed", "*"]


def _mut_source_twice(d):
    d["transitions"][_find(d, "disarm", ["armed", "active"])]["source"] = ["armed", "active", "armed"]


def _mut_timeout_operator_event(d):
    d["timeouts"][0]["event"] = "disarm"


def _mut_timeout_without_transition(d):
    d["timeouts"].append({"state": "idle", "after_s": 1.0, "event": "post_failed"})


def _mut_guarded_estop(d):
    d["transitions"][_find(d, "estop", "*")]["guard"] = "estop_released"


def _mut_estop_to_wrong_state(d):
    d["transitions"].insert(0, {"event": "estop", "source": "idle", "target": "safe_mode",
                                "guard": "faults_cleared"})


def _mut_safe_mode_reset_to_armed(d):
    d["transitions"][_find(d, "reset", "safe_mode")]["target"] = "armed"


def _mut_fault_to_idle(d):
    i = _find(d, "fault", ["boot", "idle", "armed", "active", "safe_mode"])
    d["transitions"][i]["source"] = ["boot", "idle", "armed", "active"]
    d["transitions"][i]["target"] = "idle"


def _mut_guarded_fault(d):
    d["transitions"][_find(d, "fault", ["boot", "idle", "armed", "active", "safe_mode"])]["guard"] = "faults_cleared"


def _mut_initial_missing(d):
    d["initial"] = "power_on"


def _mut_initial_arming(d):
    d["states"]["boot"]["enter"] = ["run_post", "enable_valve_rail"]


def _mut_unknown_outputs(d):
    d["states"]["active"]["outputs"] = "full_thrust"


def _mut_bad_state_name(d):
    d["states"]["bad name"] = {}


def _mut_empty_guard_list(d):
    d["transitions"][_find(d, "arm", "idle")]["guard"] = []


def _mut_guard_twice(d):
    d["transitions"][_find(d, "reset", "estop")]["guard"] = ["faults_cleared", "faults_cleared"]


def _mut_latched_as_string(d):
    d["states"]["estop"]["latched"] = "true"


def _mut_subset_guards_shadow(d):
    d["transitions"].append({"event": "arm", "source": "idle", "target": "armed",
                             "guard": ["arming_checks_pass", "faults_cleared"]})


MUTATIONS = [
    (_mut_wildcard_in_list, "transitions[5].source[1]", "'*' must stand alone"),
    (_mut_source_twice, "transitions[5].source[2]", "listed twice"),
    (_mut_timeout_operator_event, "timeouts[0].event", "only system events"),
    (_mut_timeout_without_transition, "timeouts[1].event", "would do nothing"),
    (_mut_guarded_estop, "transitions[7].guard", "'estop' from state 'boot' is guarded"),
    (_mut_estop_to_wrong_state, "transitions[0].target", "must lead to state 'estop'"),
    (_mut_safe_mode_reset_to_armed, "transitions[8].target", "straight into arming state 'armed'"),
    (_mut_fault_to_idle, "transitions[6].target", "must lead to a fault state"),
    (_mut_guarded_fault, "transitions[6].guard", "'fault' from state 'boot' is guarded"),
    (_mut_initial_missing, "initial", "unknown initial state 'power_on'"),
    (_mut_initial_arming, "states.boot", "must not be an arming state"),
    (_mut_unknown_outputs, "states.active.outputs", "unknown outputs 'full_thrust' (known: allocate, zero)"),
    (_mut_bad_state_name, "states.bad name", "not a plain identifier"),
    (_mut_empty_guard_list, "transitions[2].guard", "at least 1 item"),
    (_mut_guard_twice, "transitions[9].guard", "listed twice"),
    (_mut_latched_as_string, "states.estop.latched", "valid boolean"),
    (_mut_subset_guards_shadow, "transitions[10]", "ambiguous"),
]


@pytest.mark.parametrize(("mutate", "key", "words"), MUTATIONS, ids=[m[0].__name__[5:] for m in MUTATIONS])
def test_mutation_refused(vehicle_data, mutate, key: str, words: str) -> None:
    data = vehicle_data
    mutate(data)
    with pytest.raises(FsmDefinitionError) as info:
        parse_fsm(data, "mem.yaml")
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)


def test_guards_that_do_distinguish_are_accepted(vehicle_data) -> None:
    """A guarded rule followed by a less-guarded fallback is not ambiguous."""
    data = vehicle_data
    data["transitions"].insert(0, {"event": "disarm", "source": "armed", "target": "estop",
                                   "guard": "estop_released"})
    data["transitions"].insert(0, {"event": "reset", "source": "safe_mode", "target": "estop",
                                   "guard": ["faults_cleared", "estop_released"]})
    model = parse_fsm(data, "mem.yaml")
    assert len(model.transitions) == 12


def test_integer_after_s_is_accepted(vehicle_data) -> None:
    data = vehicle_data
    data["timeouts"][0]["after_s"] = 5
    assert parse_fsm(data).timeouts[0].after_s == 5.0


def test_state_written_without_a_body_takes_the_defaults(vehicle_data) -> None:
    data = vehicle_data
    data["states"]["armed"]["exit"] = []
    data["transitions"][_find(data, "fault", ["boot", "idle", "armed", "active", "safe_mode"])]["source"].append("parked")
    data["states"]["parked"] = None
    data["transitions"].append({"event": "disarm", "source": "idle", "target": "parked"})
    spec = parse_fsm(data).states["parked"]
    assert (spec.enter, spec.exit, spec.outputs, spec.latched) == ((), (), "zero", False)
