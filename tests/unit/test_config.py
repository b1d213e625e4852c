"""Rig and mission files: good ones load, bad ones fail with file + key path (K03, K04)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_mission, load_rig
from controller.errors import ConfigError
from controller.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
GOOD_RIG = (ROOT / "rigs" / "virtual.yaml").read_text()


def write(tmp_path: Path, text: str, name: str = "rig.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_default_rig_and_mission_load():
    rig, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    assert rig.name == "qiki1-virtual"
    assert len(rig.thrusters) == 8
    mission = load_mission(ROOT / "missions" / "square.yaml")
    assert [(w.x_m, w.y_m) for w in mission.waypoints][-1] == (0.0, 0.0)


@pytest.mark.parametrize(
    "old,new,key,needle",
    [
        ("vehicle: {mass_kg: 15.0, inertia_kgm2: 0.35}", "vehicle: {mass_kg: 15.0, inertia_kgm2: 0.35, colour: red}", "vehicle.colour", "unknown key"),
        ("mass_kg: 15.0", "mass_kg: .nan", "vehicle.mass_kg", ""),
        ("mass_kg: 15.0", "mass_kg: -1.0", "vehicle.mass_kg", "greater than 0"),
        ("mass_kg: 15.0", 'mass_kg: "15"', "vehicle.mass_kg", ""),
        ("command_timeout_s: 0.2", "command_timeout_s: -0.2", "emulation.command_timeout_s", ""),
        ("force_dir: [-1, 0], max_thrust_n: 1.0}\n  - {name: t2",
         "force_dir: [-1, 0], max_thrust_n: 3.0}\n  - {name: t2", "thrusters[0].max_thrust_n", "above the valve board maximum"),
        ("rate_hz: 100.0", "rate_hz: .inf", "controller.rate_hz", ""),
        ("bus: can0, node_id: 1", "bus: can9, node_id: 1", "", "unknown bus"),
        ('accepted_firmware: ">=1.2.0"', 'accepted_firmware: ">=1.2"', "devices.valves.accepted_firmware", "cannot parse clause"),
        ('mcu_firmware: "1.0.0"', 'mcu_firmware: "1.x"', "emulation.mcu_firmware", "bad firmware version"),
    ],
)
def test_bad_rig_fields_name_file_and_key(tmp_path, old, new, key, needle):
    assert old in GOOD_RIG
    p = write(tmp_path, GOOD_RIG.replace(old, new, 1))
    with pytest.raises(ConfigError) as ei:
        load_rig(p)
    line = str(ei.value)
    assert "\n" not in line
    assert line.startswith(str(p) + ": ")
    if key:
        assert f": {key}: " in line
    assert needle in line


def test_duplicate_key_is_refused_with_lines(tmp_path):
    p = write(tmp_path, GOOD_RIG.replace("name: qiki1-virtual", "name: qiki1-virtual\nname: other"))
    with pytest.raises(ConfigError) as ei:
        load_rig(p)
    assert "name: duplicate key (lines 3 and 4)" in str(ei.value)


def test_nested_duplicate_key_has_key_path(tmp_path):
    p = write(tmp_path, "a:\n  b:\n    - {c: 1, c: 2}\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml(p)
    assert str(ei.value).startswith(f"{p}: a.b[0].c: duplicate key")


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "true"])
def test_boolean_looking_names_are_refused(tmp_path, word):
    p = write(tmp_path, f"states:\n  {word}: {{outputs: zero}}\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml(p)
    assert f"states.{word}" in str(ei.value)
    assert "quote it" in str(ei.value)


def test_missing_and_non_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_rig(tmp_path / "nope.yaml")
    p = write(tmp_path, "a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p)


def test_mission_bad_waypoint(tmp_path):
    p = write(tmp_path, "name: m\nwaypoints:\n  - {x_m: 1.0, y_m: .nan}\n", "m.yaml")
    with pytest.raises(ConfigError) as ei:
        load_mission(p)
    assert ": waypoints[0].y_m: " in str(ei.value)


def test_union_tag_is_not_in_the_key_path_and_missing_keys_are_named(tmp_path):
    p = write(tmp_path, GOOD_RIG.replace("{driver: valve_board, bus: can0, node_id: 1,", "{driver: valve_board, node_id: 1,"))
    with pytest.raises(ConfigError) as ei:
        load_rig(p)
    assert str(ei.value) == f"{p}: devices.valves.bus: Field required"


def test_fault_plan_entry_keeps_its_parameters_and_refuses_an_empty_window():
    """An ``emulation.faults`` entry: the keys beyond the four named ones are its parameters."""
    from pydantic import ValidationError

    from controller.config import FaultCfg

    f = FaultCfg.model_validate({"at_s": 2.0, "until_s": 3.0, "target": "valves", "fault": "valve_stuck_closed",
                                 "valve": 2})
    assert (f.at_s, f.until_s, f.target, f.fault, f.params) == (2.0, 3.0, "valves", "valve_stuck_closed", {"valve": 2})
    with pytest.raises(ValidationError, match="until_s must be after at_s"):
        FaultCfg.model_validate({"at_s": 2.0, "until_s": 2.0, "target": "mcu", "fault": "silent"})
