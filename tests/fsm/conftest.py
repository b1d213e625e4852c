"""Shared fixtures of the FSM tests: the vehicle machine and scripted guard answers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from controller.fsm import FsmEngine, FsmModel, load_fsm
from controller.yamlio import load_yaml

# Events that take the vehicle machine from boot to each state (all guards passing).
PATH_TO = {
    "boot": [],
    "idle": ["post_passed"],
    "armed": ["post_passed", "arm"],
    "active": ["post_passed", "arm", "start_mission"],
    "safe_mode": ["fault"],
    "estop": ["estop"],
}


class Guards:
    """Scripted guard answers: every guard passes unless told otherwise; calls are logged."""

    def __init__(self, **answers: bool) -> None:
        self.answers = dict(answers)
        self.calls: list[str] = []

    def __call__(self, name: str) -> tuple[bool, str]:
        self.calls.append(name)
        ok = self.answers.get(name, True)
        return ok, "" if ok else f"{name} says no"


@pytest.fixture(scope="session")
def vehicle_yaml(repo_root: Path) -> Path:
    """``fsm_configs/qiki_vehicle.yaml`` of the checkout."""
    return repo_root / "fsm_configs" / "qiki_vehicle.yaml"


@pytest.fixture(scope="session")
def vehicle(vehicle_yaml: Path) -> FsmModel:
    return load_fsm(vehicle_yaml, "fsm_configs/qiki_vehicle.yaml")


@pytest.fixture
def vehicle_data(vehicle_yaml: Path) -> dict:
    """The vehicle machine's YAML as plain data, a copy of its own for this test."""
    return copy.deepcopy(load_yaml(vehicle_yaml))


def _engine_in(model: FsmModel, state: str, now_s: float = 0.0) -> FsmEngine:
    """A fresh engine driven (one event per tick, at ``now_s``) into ``state``."""
    engine = FsmEngine(model, now_s=now_s)
    for event in PATH_TO[state]:
        engine.step(now_s, [event], Guards())
    assert engine.state == state
    engine.ignored = 0
    return engine


@pytest.fixture(scope="session")
def engine_in():
    """``engine_in(model, state, now_s=0.0) -> FsmEngine`` already in ``state``."""
    return _engine_in


@pytest.fixture(scope="session")
def make_guards():
    """``make_guards(**answers) -> Guards``: all pass unless ``name=False``."""
    return Guards
