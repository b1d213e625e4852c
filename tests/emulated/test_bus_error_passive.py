"""B05 error-passive: one warning event (code 405) per entry into the state, naming the bus;
arming refused while passive (SAFETY.md B05, issue 15)."""

from __future__ import annotations

from controller.record.codes import code_for


def test_b05_one_warning_per_entry_and_no_arm_while_passive(fly, rig_with_faults, repo_root):
    rig = rig_with_faults([
        {"at_s": 1.0, "until_s": 1.5, "target": "can0", "fault": "error_passive"},
        {"at_s": 2.0, "until_s": 2.2, "target": "can0", "fault": "error_passive"},
    ])
    events: list[tuple[float, str, dict]] = []

    def record(tick: int, now_s: float, kind: str, **fields: object) -> None:
        events.append((now_s, kind, fields))

    def before(flight, k: int, now_s: float) -> None:
        if k == 120:  # 1.2 s: passive, and POST has passed (idle)
            assert flight.vehicle.fsm.state == "idle"
            flight.vehicle.command("arm")

    fly(rig, 2.5, operator=False, mission=None, record=record, before=before)
    warnings = [(t, f) for t, kind, f in events if kind == "bus_error_passive"]
    assert [f["bus"] for _, f in warnings] == ["can0", "can0"]      # once per entry, not per tick
    assert 1.0 <= warnings[0][0] <= 1.02 and 2.0 <= warnings[1][0] <= 2.02
    assert code_for("bus_error_passive", warnings[0][1]) == 405
    refused = [f for _, kind, f in events if kind == "refused" and f.get("event") == "arm"]
    assert refused and "error-passive" in str(refused[0]["reason"])
    assert not any(kind == "transition" and f.get("event") == "arm" for _, kind, f in events)
