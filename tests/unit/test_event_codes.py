"""The event code registry: every event kind and fault key the controller emits has a code of its own.

The kinds and keys are found by scanning the source, so a new ``record(..., "kind")`` or
``Condition("key", ...)`` without a row in ``controller/record/codes.py`` fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from controller.record.codes import CATCH_ALL, EVENT_CODES, FAMILIES, code_for, entry, family_of, markdown_table

REPO = Path(__file__).resolve().parents[2]
CONTROLLER = REPO / "controller"
#: a call that records an event: record(...), _log(...), .event(...), log(...) whose first string literal is the kind
KIND_CALL = re.compile(r"\b(?:record|_log|event|log)\(([^\"()]*)\"([a-z_]+)\"")
# Condition(...), seam.condition(...) or seam.ConditionSet([f"...", ...]) (its keys)
CONDITION = re.compile(r"\b(?:[Cc]ondition|ConditionSet)\(\s*\[?\s*f?\"([^\"]+)\"")
CONDITION_CALL = re.compile(r"\b_condition\(\s*f?\"([^\"]+)\"")
#: a (key, reason) tuple that a component turns into Condition(f"{self.name}.{key}", ...)
KEY_TUPLE = re.compile(r"(?:append\(|\[|^\s*)\(\s*f?\"([^\"]+)\",", re.MULTILINE)
COMPONENT_NAME = re.compile(r"^\s+name = \"(\w+)\"", re.MULTILINE)
PLACEHOLDER = re.compile(r"\{[^}]+\}")
FIELD_KINDS = {"transition", "refused", "fault", "post"}


def _runtime_sources() -> list[Path]:
    return [p for p in CONTROLLER.rglob("*.py") if not {"cli", "tools"} & set(p.relative_to(CONTROLLER).parts)]


def emitted_kinds() -> set[str]:
    kinds: set[str] = set()
    for p in _runtime_sources():
        for m in KIND_CALL.finditer(p.read_text()):
            kinds.add(m.group(2))
    return kinds


def emitted_fault_keys() -> set[str]:
    keys: set[str] = set()
    for p in _runtime_sources():
        text = p.read_text()
        raw = CONDITION.findall(text) + CONDITION_CALL.findall(text)
        for key in raw:
            if key.endswith("{key}"):  # Condition(f"{self.name}.{key}", why) over (key, why) tuples
                names = COMPONENT_NAME.findall(text)
                assert len(names) == 1, f"{p}: composite condition keys need one `name = \"...\"`: {names}"
                # the (key, why) tuples may come from the component's helper modules
                # (components/radar_units.py for radar.py, power_pdu.py for power.py)
                helpers = "".join(h.read_text() for h in sorted(p.parent.glob(f"{p.stem}_*.py")))
                keys.update(f"{names[0]}.{PLACEHOLDER.sub('dev0', k)}" for k in KEY_TUPLE.findall(text + helpers))
            else:
                keys.add(PLACEHOLDER.sub("dev0", key))
    return keys


def fsm_events() -> tuple[set[str], set[str]]:
    """(every event of the FSM files, the events that can be refused: guarded, or into an arming state)."""
    events: set[str] = set()
    refusable: set[str] = set()
    for p in (REPO / "fsm_configs").glob("*.yaml"):
        d = yaml.safe_load(p.read_text())
        arming = {"armed", "active"}
        for t in d.get("transitions", []):
            events.add(t["event"])
            if t.get("guard") or t["target"] in arming:
                refusable.add(t["event"])
        for t in d.get("timeouts", []):
            events.add(t["event"])
    return events, refusable


def test_scan_finds_what_the_controller_emits():
    kinds = emitted_kinds()
    keys = emitted_fault_keys()
    # the scan itself must keep working: these are known emitters today
    assert {"transition", "refused", "fault", "post", "waypoint_reached", "relay_command", "shutdown",
            "exception", "thruster_failed", "fault_injected", "power_buses"} <= kinds, kinds
    assert {"vb_status", "mcu_pose", "rail", "dev0_busoff", "dev0_send", "lag", "output_guard", "thrusters",
            "tick_exception", "power.battery", "power.pdu", "radar.keep_out", "radar.dev0.stale",
            "dev0.stale", "dev0.low"} <= keys, keys


def test_every_emitted_kind_has_its_own_code():
    missing = {k: code_for(k, {}) for k in emitted_kinds() - FIELD_KINDS if entry(code_for(k, {})).catch_all}
    assert missing == {}, f"event kinds without a code of their own (add rows to controller/record/codes.py): {missing}"


def test_every_fault_key_has_its_own_code():
    codes = {k: code_for("fault", {"source": k, "reason": "x"}) for k in emitted_fault_keys()}
    missing = {k: c for k, c in codes.items() if entry(c).catch_all}
    assert missing == {}, f"fault keys without a code (add rows to controller/record/codes.py): {missing}"
    # distinct conditions, distinct codes (the tank and radar '.stale' keys included)
    by_code: dict[int, set[str]] = {}
    for k, c in codes.items():
        by_code.setdefault(c, set()).add(k)
    assert all(len(v) == 1 for v in by_code.values()), by_code


def test_every_fsm_event_has_transition_and_refusal_codes():
    events, refusable = fsm_events()
    assert {"arm", "disarm", "estop", "fault", "reset", "post_passed", "post_failed"} <= events
    for e in events:
        assert not entry(code_for("transition", {"event": e})).catch_all, e
    for e in refusable:
        assert code_for("refused", {"event": e}) not in (CATCH_ALL[2], 210), e
    assert code_for("post", {"passed": True}) == 101
    assert code_for("post", {"passed": False}) == 102


def test_codes_are_unique_three_digit_and_in_their_family():
    codes = [e.code for e in EVENT_CODES]
    assert len(codes) == len(set(codes))
    assert all(100 <= c <= 999 for c in codes)
    assert sorted(CATCH_ALL) == sorted(FAMILIES) == list(range(1, 10))
    assert all(c == f * 100 for f, c in CATCH_ALL.items())


def test_unknown_events_get_the_family_catch_all():
    assert code_for("something_new", {}) == 900
    assert code_for("radar_glitch", {}) == 700
    assert code_for("fault", {"source": "gyro.drift"}) == 500
    assert code_for("fault", {"source": "power.fuse"}) == 600
    assert code_for("fault", {"source": "radar.dev0.new"}) == 700
    assert code_for("transition", {"event": "new_event", "target": "safe_mode"}) == 900
    assert code_for("transition", {"event": "new_event", "target": "idle"}) == 200
    assert family_of("loop_overrun", {}) == 8


def test_fault_clearing_keeps_the_conditions_code():
    assert code_for("fault", {"source": "vb_status", "reason": None}) == code_for("fault", {"source": "vb_status"}) == 501


def test_doc_lists_every_code_and_is_current():
    doc = (REPO / "docs" / "event-codes.md").read_text()
    for e in EVENT_CODES:
        assert f"| {e.code} |" in doc, e.code
    assert doc == markdown_table(), "docs/event-codes.md is stale: python -m controller.record.codes > docs/event-codes.md"
