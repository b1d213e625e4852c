"""The qiki command: bad files give one line naming file and key, exit status 2 (K01-K06)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]
BAD_FSM = ROOT / "tests" / "fsm" / "bad"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "fixture,key",
    [
        ("duplicate_key.yaml", "states.idle"),
        ("on_state_name.yaml", "states.on"),
        ("unknown_key.yaml", "transitions[2].guards"),
        ("unknown_guard.yaml", "transitions[2].guard"),
        ("unreachable_state.yaml", "states.parked"),
        ("estop_timeout.yaml", "timeouts[1].state"),
        ("estop_system_event_exit.yaml", "transitions[6].event"),
        ("after_s_nan.yaml", "timeouts[0].after_s"),
    ],
)
def test_fsm_check_refuses_bad_files(capsys, fixture, key):
    path = BAD_FSM / fixture
    status, out, err = run_cli(capsys, "fsm", "check", str(path))
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{path}: {key}: ")
    assert "Traceback" not in err
    assert out == ""


def test_run_no_arm_needs_a_duration(capsys, tmp_path):
    status, out, err = run_cli(capsys, "run", "--no-arm", "--no-progress", "--runs-dir", str(tmp_path))
    assert status == 2
    assert err.strip() == "qiki run: --no-arm: needs --duration (an idle run has no other end)"
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made


def rig_variant(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())
    mutate(data)
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_rig_check_good_rig(capsys):
    path = ROOT / "rigs" / "virtual.yaml"
    status, out, err = run_cli(capsys, "rig", "check", str(path))
    assert status == 0, err
    assert out.startswith(f"{path}: ok (8 thrusters, ")


def _no_plus_x(data):
    data["thrusters"] = [t for t in data["thrusters"] if t["name"] not in ("t5", "t7")]


def _nan_limit(data):
    data["controller"]["output_guard"]["max_thrust_rate_n_per_s"] = float("nan")


def _unknown_key(data):
    data["devices"]["valves"]["colour"] = "red"


def _unknown_axis(data):
    data["controller"]["allocation"]["axis_priorities"] = [["Mz"], ["Fz"]]


def _axis_twice(data):
    data["controller"]["allocation"]["axis_priorities"] = [["Mz"], ["Fx", "mz"]]


def _priorities_pinv(data):
    data["controller"]["allocation"] = {"method": "pinv_clip", "axis_priorities": [["Mz"]]}


def _pwm_not_whole_ticks(data):
    data["devices"]["valves"]["pwm_period_s"] = 0.015


def _valve_closes_a_period_late(data):
    data["devices"]["valves"].update(open_delay_s=0.0, close_delay_s=0.06)


@pytest.mark.parametrize(
    "mutate,key,needle",
    [
        (_pwm_not_whole_ticks, "devices.valves", "not a whole number of ticks"),
        (_valve_closes_a_period_late, "devices.valves", "close delay exceeds"),
        (_unknown_axis, "controller.allocation.axis_priorities.1", "unknown axis 'Fz'"),
        (_axis_twice, "controller.allocation.axis_priorities.1", "named twice"),
        (_priorities_pinv, "controller.allocation.axis_priorities", "method: exact"),
        (_no_plus_x, "thrusters", "+Fx"),
        (_nan_limit, "controller.output_guard.max_thrust_rate_n_per_s", ""),
        (_unknown_key, "devices.valves", "unknown key"),
    ],
)
def test_rig_check_and_run_refuse_bad_rigs(capsys, tmp_path, mutate, key, needle):
    p = rig_variant(tmp_path, mutate)
    for argv in (("rig", "check", str(p)), ("run", "--rig", str(p), "--runs-dir", str(tmp_path), "--no-progress")):
        status, out, err = run_cli(capsys, *argv)
        assert status == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{p}: "), err
        assert key in lines[0] and needle in lines[0]


def test_rig_naming_a_bad_fsm_is_refused(capsys, tmp_path):
    p = rig_variant(tmp_path, lambda d: d["controller"].update(fsm=str(BAD_FSM / "unknown_guard.yaml")))
    status, _, err = run_cli(capsys, "rig", "check", str(p))
    assert status == 2
    assert err.startswith(str(BAD_FSM / "unknown_guard.yaml"))


def test_truncated_dbc_is_refused(capsys, tmp_path):
    dbc = tmp_path / "cut.dbc"
    text = (ROOT / "dbc" / "qiki.dbc").read_text()
    dbc.write_text(text[: len(text) // 2])
    p = rig_variant(tmp_path, lambda d: d["buses"]["can0"].update(dbc=[str(dbc)]))
    status, _, err = run_cli(capsys, "rig", "check", str(p))
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "cut.dbc" in err


def test_fsm_graph_is_mermaid(capsys):
    status, out, _ = run_cli(capsys, "fsm", "graph", str(ROOT / "fsm_configs" / "qiki_vehicle.yaml"))
    assert status == 0
    assert out.startswith("stateDiagram-v2")
    for state in ("boot", "idle", "armed", "active", "safe_mode", "estop"):
        assert state in out


def test_console_entry_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nname: y\n")
    r = subprocess.run([sys.executable, "-m", "controller.cli", "rig", "check", str(bad)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == f"{bad}: name: duplicate key (lines 1 and 2)"


def test_rig_axis_priorities_reach_the_allocator(tmp_path):
    from controller.config import load_rig
    from controller.rig import build_allocator

    def prio(data):
        data["controller"]["allocation"]["axis_priorities"] = [["mz"], ["Fx", "Fy"]]

    p = rig_variant(tmp_path, prio)
    alloc = build_allocator(load_rig(p)[0], str(p))
    assert alloc.axis_priorities == ((2,), (0, 1))
    # a demand beyond reach: the yaw torque is met in full, the force gives way
    r = alloc.allocate([5.0, 0.0, 0.6])
    assert abs(r.unallocated_wrench[2]) < 1e-9 and abs(r.unallocated_wrench[0]) > 1.0
