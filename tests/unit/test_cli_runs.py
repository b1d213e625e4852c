"""``qiki runs list|show|recover`` and ``qiki plot`` on synthesized flight records (the telemetry contract topics)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from controller.cli import main
from controller.record.codes import code_for
from controller.record.flight import FlightRecorder
from controller.record.reader import FlightRecord, validate

K = 8  # valves
OBJ = {"type": "object"}
TICK_SCHEMA = {
    "type": "object",
    "properties": {
        "tick": {"type": "integer"}, "t_s": {"type": "number"}, "state": {"type": "string"},
        "armed": {"type": "boolean"}, "overrun": {"type": "boolean"},
        **{k: {"type": "number"} for k in ("x_m", "y_m", "yaw_rad", "sp_x_m", "sp_y_m", "sp_yaw_rad", "fx_n", "fy_n",
                                            "mz_nm", "achieved_fx_n", "achieved_fy_n", "achieved_mz_nm",
                                            "period_error_s", "tick_duration_s")},
        **{f"thrust_n_{i}": {"type": "number"} for i in range(K)},
        **{f"duty_pct_{i}": {"type": "number"} for i in range(K)},
    },
    "required": ["tick", "t_s", "state"],
}
EVENT_SCHEMA = {"type": "object", "properties": {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                                 "code": {"type": "integer"}, "kind": {"type": "string"},
                                                 "text": {"type": "string"}},
                "required": ["tick", "t_s", "code", "kind", "text"]}
BMS_SCHEMA = {"type": "object", "properties": {"soc_pct": {"type": "number"}, "voltage_v": {"type": "number"}},
              "required": ["soc_pct", "voltage_v"]}
TRACKS_SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}, "tracks": {"type": "array"}},
                 "required": ["count", "tracks"]}
MISSION = b"name: sq\nwaypoints:\n  - {x_m: 1.0, y_m: 0.0}\n  - {x_m: 1.0, y_m: 1.0}\n"
RIG = b"name: r\nradar: {keep_out_radius_m: 0.6}\nemulation:\n  obstacles:\n    - {x_m: 2.0, y_m: 0.5}\n"


def make_run(folder: Path, *, seconds: float = 6.0, sparse: bool = False, finish: bool = True,
             summary: bool = True, name: str = "run.mcap", split: bool = False) -> Path:
    """A run folder with a flight record of the contract topics (sparse: /tick with pose and state only).

    split: duties on /valves and loop timing on /loop (the layout of controller.record.flight_log).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    rec = FlightRecorder(path, realtime=False)
    tick_ch = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    if not sparse:
        ev_ch = rec.channel("/events", "qiki.Event", EVENT_SCHEMA)
        bms_ch = rec.channel("/power/bms", "qiki.Bms", BMS_SCHEMA)
        trk_ch = rec.channel("/radar/radar_lr/tracks", "qiki.Tracks", TRACKS_SCHEMA)
        if split:
            valves_ch = rec.channel("/valves", "qiki.Valves", OBJ)
            loop_ch = rec.channel("/loop", "qiki.Loop", OBJ)
        rec.attach("rig.yaml", RIG, "application/yaml")
        rec.attach("mission.yaml", MISSION, "application/yaml")
    n = int(seconds * 100)
    state = "boot"
    for k in range(n):
        t = k * 0.01
        t_ns = k * 10_000_000
        new_state = "boot" if t < 0.5 else ("active" if t < 4.0 else "safe_mode")
        if new_state != state and not sparse:
            ev = {"source": state, "event": "post_passed" if new_state == "active" else "fault", "target": new_state}
            rec.write(ev_ch, t_ns, {"tick": k, "t_s": t, "code": code_for("transition", ev), "kind": "transition",
                                    "text": f"{state} -> {new_state}", **ev})
        state = new_state
        m: dict[str, object] = {"tick": k, "t_s": t, "state": state, "x_m": math.sin(t), "y_m": 1 - math.cos(t)}
        if not sparse:
            m.update({"armed": state == "active", "yaw_rad": 0.0, "sp_x_m": 1.0, "sp_y_m": 0.0, "sp_yaw_rad": 0.0,
                      "fx_n": 1.0, "fy_n": 0.0, "mz_nm": 0.0, "achieved_fx_n": 1.0, "achieved_fy_n": 0.0,
                      "achieved_mz_nm": 0.0, "period_error_s": 1e-5 * math.sin(k), "tick_duration_s": 2e-4,
                      "overrun": k % 250 == 0})
            m.update({f"thrust_n_{i}": 0.1 * i if state == "active" else 0.0 for i in range(K)})
            m.update({f"duty_pct_{i}": 10.0 * i if state == "active" else 0.0 for i in range(K)})
        if split and not sparse:
            rec.write(valves_ch, t_ns, {"tick": k, "t_s": t, **{f"duty_pct_{i}": m.pop(f"duty_pct_{i}") for i in range(K)}})
            rec.write(loop_ch, t_ns, {"tick": k, "t_s": t, **{f: m.pop(f) for f in ("period_error_s", "tick_duration_s", "overrun")}})
        rec.write(tick_ch, t_ns, m)
        if not sparse and k % 20 == 0:
            rec.write(bms_ch, t_ns, {"tick": k, "t_s": t, "soc_pct": 90 - t * 0.1, "voltage_v": 26.7 - t * 0.01,
                                     "current_a": 1.0, "age_s": 0.01})
        if not sparse and k % 10 == 0:
            rec.write(trk_ch, t_ns, {"tick": k, "t_s": t, "count": 1,
                                     "tracks": [{"id": 3, "x_m": 2.0 - t * 0.1, "y_m": 0.5, "vx_mps": -0.1,
                                                 "vy_mps": 0.0}]})
    if finish:
        rec.close()
    else:  # a crash: the process dies with the file open (the bytes on disk are what a kill leaves)
        rec._file.flush()  # noqa: SLF001 - only what Writer.flush put in the buffer so far
    if summary:
        (folder / "summary.json").write_text(json.dumps({
            "result": "safe_mode: test", "exit_status": 1, "final_state": "safe_mode", "rig": "r", "mission": "sq",
            "sim_time_s": seconds, "faults": ["test fault"],
            "loop": {"ticks": n, "overruns": 2, "realtime": True,
                     "period_error_us": {"p50": 3.0, "p99": 20.0, "max": 50.0}}}))
    return path


def test_runs_list_and_show(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runs = tmp_path / "runs"
    make_run(runs / "20260101-000000-000001")
    make_run(runs / "20260101-000000-000002", finish=False, summary=False, name="run.mcap.part")
    assert main(["runs", "list", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "20260101-000000-000001" in out and "finished" in out and "part (recover)" in out
    assert main(["runs", "show", "20260101-000000-000001", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "safe_mode: test" in out and "600 ticks" in out and "/tick 600" in out and "finished" in out
    assert main(["runs", "show", "latest", "--runs", str(runs)]) == 0
    assert "did not end normally" in capsys.readouterr().out


def test_runs_recover_finishes_a_part_file(tmp_path, capsys):
    folder = tmp_path / "r1"
    make_run(folder, finish=False, summary=False, name="run.mcap.part")
    assert main(["runs", "recover", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "recovered from run.mcap.part" in out
    assert not (folder / "run.mcap.part").exists() and (folder / "run.mcap.unfinished").exists()
    rec = FlightRecord(folder / "run.mcap")
    assert rec.finished and validate(folder / "run.mcap") == []
    ticks = rec.topic("/tick")
    assert ticks and ticks[-1]["t_s"] >= 6.0 - 0.01 - 0.5 - 1e-9  # all but the open chunk
    assert rec.attachment("mission.yaml") == MISSION
    # again: already finished
    assert main(["runs", "recover", str(folder)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_runs_recover_of_an_unfinished_run_mcap_in_place(tmp_path, capsys):
    folder = tmp_path / "r2"
    make_run(folder, finish=False, summary=False)
    assert main(["runs", "recover", str(folder / "run.mcap")]) == 0
    assert FlightRecord(folder / "run.mcap").finished
    assert (folder / "run.mcap.unfinished").exists()


def test_runs_recover_with_nothing_kept_exits_1(tmp_path, capsys):
    folder = tmp_path / "r3"
    folder.mkdir()
    rec = FlightRecorder(folder / "run.mcap.part", realtime=False)
    rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)  # killed before the first chunk closed
    assert main(["runs", "recover", str(folder)]) == 1
    assert FlightRecord(folder / "run.mcap").finished


@pytest.mark.parametrize("argv, what", [
    (["runs", "show", "nope"], "nope: no such run"),
    (["runs", "list", "--runs", "{tmp}/missing"], "missing: no such folder"),
    (["runs", "recover", "{tmp}/empty"], "no run.mcap.part or run.mcap to recover"),
    (["runs", "recover", "{tmp}/bad"], "run.mcap: not an MCAP file"),
    (["plot", "{tmp}/bad"], "run.mcap: not an MCAP file"),
    (["plot", "{tmp}/empty"], "no flight record"),
    (["runs", "show", "{tmp}/badsummary"], "summary.json: not readable JSON"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, what):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.mcap").write_bytes(b"garbage, not an mcap file")
    (tmp_path / "badsummary").mkdir()
    (tmp_path / "badsummary" / "summary.json").write_text("{not json")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and what in err and "Traceback" not in err, err


@pytest.mark.parametrize("split", [False, True])
def test_plot_writes_every_figure_of_a_full_record(tmp_path, capsys, split):
    folder = tmp_path / "run"
    make_run(folder, split=split)
    assert main(["plot", str(folder)]) == 0
    out = capsys.readouterr().out
    names = {"trajectory.png", "thrust_duty.png", "fsm.png", "battery.png", "loop.png"}
    assert {p.name for p in (folder / "plots").iterdir()} == names
    for n in names:
        assert (folder / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "skipped" not in out


def test_plot_skips_absent_data_of_a_sparse_record(tmp_path, capsys):
    folder = tmp_path / "run"
    make_run(folder, sparse=True, summary=False)
    out_dir = tmp_path / "figs"
    assert main(["plot", str(folder / "run.mcap"), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in out_dir.iterdir()} == {"trajectory.png", "fsm.png"}
    for n in ("thrust_duty.png", "battery.png", "loop.png"):
        assert f"skipped {n}" in out


def test_plot_of_an_unfinished_record_and_of_an_empty_one(tmp_path, capsys):
    folder = tmp_path / "run"
    make_run(folder, finish=False, summary=False, name="run.mcap.part")
    assert main(["plot", str(folder)]) == 0
    empty = tmp_path / "e"
    empty.mkdir()
    FlightRecorder(empty / "run.mcap", realtime=False).close()
    assert main(["plot", str(empty)]) == 1
    assert "skipped trajectory.png" in capsys.readouterr().out
