"""Every file in fsm_configs/ loads and passes every load-time check (ARCHITECTURE.md 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.fsm import FsmEngine, load_fsm, to_dot, to_mermaid

# listed at collection time (the parametrisation below), so not through a fixture
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "fsm_configs").glob("*.yaml"))


def test_there_is_a_vehicle_machine(vehicle_yaml) -> None:
    assert vehicle_yaml in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_runs_and_draws(path) -> None:
    model = load_fsm(path)
    engine = FsmEngine(model)
    assert engine.state == model.initial
    assert engine.outputs == "zero"
    assert "run_post" in engine.initial_actions
    assert model.initial in to_mermaid(model)
    assert model.initial in to_dot(model)


def test_vehicle_shape(vehicle) -> None:
    assert vehicle.name == "qiki_vehicle"
    assert vehicle.state_names == ("boot", "idle", "armed", "active", "safe_mode", "estop")
    assert [s for s in vehicle.states if vehicle.states[s].outputs == "allocate"] == ["active"]
    assert {s for s in vehicle.states if vehicle.states[s].latched} == {"safe_mode", "estop"}
    assert "disable_valve_rail" in vehicle.states["idle"].enter
    assert [(t.state, t.after_s, t.event) for t in vehicle.timeouts] == [("boot", 5.0, "post_failed")]


def test_model_is_a_frozen_hashable_value(vehicle, vehicle_yaml) -> None:
    again = load_fsm(vehicle_yaml)
    assert again == vehicle and hash(again) == hash(vehicle)
    with pytest.raises(ValidationError, match="frozen"):
        vehicle.initial = "armed"  # type: ignore[misc]
    assert vehicle.initial == "boot"
