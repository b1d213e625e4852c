"""The event-driven simulation flies bit for bit like stepping everything at every physics step.

``Simulation.advance`` steps each emulator only where it acts and the world in runs
between valve edges (issue 16, part 1); with ``event_driven`` forced off it steps every
emulator and the world at every physics step (the real-time path). Same rig, same seed,
same fault plan: the same summary (wall-clock keys removed), events and CAN log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.run import WALL_CLOCK_KEYS, RunOptions, run_main_job
from firmware_bridge.emulation.sim import Simulation

FAULT_PLANS = {
    "valves": [
        {"at_s": 6.0, "until_s": 6.7, "target": "valves", "fault": "valve_stuck_closed", "valve": 1},
        {"at_s": 7.013, "target": "valves", "fault": "reboot"},
        {"at_s": 8.0, "until_s": 8.15, "target": "valves", "fault": "silent"},
    ],
    "mcu": [
        {"at_s": 5.0, "target": "mcu", "fault": "serial_garbage", "length": 40},
        {"at_s": 6.5, "until_s": 6.62, "target": "mcu", "fault": "host_heartbeat_loss"},
        {"at_s": 9.0004, "target": "mcu", "fault": "estop_press"},
        {"at_s": 9.5, "target": "mcu", "fault": "estop_release"},
    ],
}


def _strip(node: dict, dotted: str) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None  # type: ignore[assignment]
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def _fly(rig: Path, mission: Path, out: Path, *, event_driven: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    with monkeypatch.context() as m:
        if not event_driven:
            m.setattr(Simulation, "event_driven", property(lambda self: False))
        status, summary, folder = run_main_job(RunOptions(rig=str(rig), mission=str(mission), seed=3,
                                                          runs_dir=str(out), progress=False))
    s = json.loads(json.dumps(summary))
    for key in (*WALL_CLOCK_KEYS, "realtime_knobs.effective"):
        _strip(s, key)
    asc = [line for line in (folder / "can0.asc").read_text().splitlines() if " d " in line]
    return status, json.dumps(s, sort_keys=True), (folder / "events.jsonl").read_text(), asc


@pytest.mark.parametrize("plan", sorted(FAULT_PLANS))
def test_event_driven_equals_every_step(plan, tmp_path, repo_root, rig_with_faults, monkeypatch):
    rig = rig_with_faults(FAULT_PLANS[plan])
    mission = repo_root / "missions" / "square.yaml"
    fast = _fly(rig, mission, tmp_path / "events", event_driven=True, monkeypatch=monkeypatch)
    slow = _fly(rig, mission, tmp_path / "steps", event_driven=False, monkeypatch=monkeypatch)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    assert fast[3] == slow[3]


def test_lockstep_build_is_event_driven(fly, repo_root):
    seen = {}

    def setup(flight) -> None:
        seen["event_driven"] = flight.built.sim.event_driven

    fly(repo_root / "rigs" / "virtual.yaml", 0.2, setup=setup)
    assert seen["event_driven"] is True
