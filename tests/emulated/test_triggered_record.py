"""Event-triggered records end to end (issue 12 part 5): a lockstep run with a fault plan.

The virtual rig with ``record: {mode: triggered, pre_s: 1, post_s: 1}`` and the valve
board going silent at 3 s: the run writes no ``run.mcap``, only event files around the
faults it raised, each valid against its channels' schemas; ``qiki runs show`` lists
them and ``qiki plot`` draws them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from controller.cli import main as qiki
from controller.record.reader import FlightRecord, validate
from controller.run import RunOptions, run_main_job

ROOT = Path(__file__).resolve().parents[2]
TICK_S = 0.01
FAULT_PLAN = [{"at_s": 3.0, "target": "valves", "fault": "silent"}]


def _run(tmp_path: Path, virtual_rig_data: dict, write_rig: Callable[..., Path], record: dict[str, object],
         duration_s: float = 6.0) -> Path:
    virtual_rig_data["emulation"]["faults"] = FAULT_PLAN
    virtual_rig_data["record"] = record
    rig = write_rig(virtual_rig_data)
    opts = RunOptions(rig=str(rig), mission=str(ROOT / "missions" / "square.yaml"), duration_s=duration_s,
                      arm=False, runs_dir=str(tmp_path / "runs"), progress=False)
    _status, _summary, folder = run_main_job(opts)
    return folder


def _faults(folder: Path) -> list[dict[str, object]]:
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return [e for e in events if e["kind"] == "fault" and e.get("reason")]


def _span_s(path: Path) -> tuple[float, float]:
    st = FlightRecord(path).statistics()
    assert st["start_ns"] is not None and st["end_ns"] is not None
    return st["start_ns"] * 1e-9, st["end_ns"] * 1e-9


def test_a_fault_writes_one_event_file_around_it(tmp_path: Path, virtual_rig_data: dict,
                                                 write_rig: Callable[..., Path]) -> None:
    folder = _run(tmp_path, virtual_rig_data, write_rig,
                  {"mode": "triggered", "pre_s": 1.0, "post_s": 1.0, "trigger_codes": [501]})
    assert not (folder / "run.mcap").exists() and not (folder / "run.mcap.part").exists()
    files = sorted(folder.glob("event-*"))
    assert len(files) == 1, files
    path = files[0]
    (fault,) = [f for f in _faults(folder) if f["source"] == "vb_status"]
    t_fault = float(fault["time_s"])  # type: ignore[arg-type]
    assert path.name == f"event-001-501-{t_fault:.3f}.mcap"
    assert validate(path) == []
    start, end = _span_s(path)
    assert abs(start - (t_fault - 1.0)) <= TICK_S + 1e-9 and abs(end - (t_fault + 1.0)) <= TICK_S + 1e-9
    rec = FlightRecord(path)
    ticks = rec.topic("/tick")
    assert abs(float(ticks[0]["t_s"]) - (t_fault - 1.0)) <= TICK_S + 1e-9  # type: ignore[arg-type]
    assert abs(float(ticks[-1]["t_s"]) - (t_fault + 1.0)) <= TICK_S + 1e-9  # type: ignore[arg-type]
    codes = [(e["code"], e["source"]) for e in rec.topic("/events") if e["kind"] == "fault"]
    assert (501, "vb_status") in codes
    # the same attachments and metadata as a run.mcap
    meta = rec.metadata()
    assert {"run_options", "versions", "event"} <= set(meta)
    assert any(a.name.endswith(".dbc") for a in rec.attachments())


def test_faults_within_the_post_window_give_one_file(tmp_path: Path, virtual_rig_data: dict,
                                                     write_rig: Callable[..., Path]) -> None:
    folder = _run(tmp_path, virtual_rig_data, write_rig, {"mode": "triggered", "pre_s": 1.0, "post_s": 1.0})
    faults = _faults(folder)
    assert len(faults) >= 2 and float(faults[1]["time_s"]) - float(faults[0]["time_s"]) < 1.0  # type: ignore[arg-type]
    files = sorted(folder.glob("event-*"))
    assert len(files) == 1, files
    assert validate(files[0]) == []
    triggers = json.loads(FlightRecord(files[0]).metadata()["event"]["triggers"])
    assert [t["code"] for t in triggers] == [501, 502]
    start, end = _span_s(files[0])
    t_first, t_last = float(faults[0]["time_s"]), float(faults[1]["time_s"])  # type: ignore[arg-type]
    assert abs(start - (t_first - 1.0)) <= TICK_S + 1e-9 and abs(end - (t_last + 1.0)) <= TICK_S + 1e-9

    # qiki runs show lists the file; qiki plot draws it, from the folder or the file
    assert qiki(["runs", "show", str(folder)]) == 0
    assert qiki(["plot", str(files[0]), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / files[0].stem / "fsm.png").is_file()
    assert qiki(["plot", str(folder)]) == 0
    assert (folder / "plots" / files[0].stem / "trajectory.png").is_file()


def test_record_off_writes_no_flight_record(tmp_path: Path, virtual_rig_data: dict,
                                            write_rig: Callable[..., Path]) -> None:
    folder = _run(tmp_path, virtual_rig_data, write_rig, {"mode": "off"}, duration_s=1.0)
    assert not list(folder.glob("*.mcap*"))
    assert (folder / "summary.json").is_file() and (folder / "events.jsonl").is_file()


def test_full_mode_is_unchanged(tmp_path: Path, virtual_rig_data: dict, write_rig: Callable[..., Path]) -> None:
    folder = _run(tmp_path, virtual_rig_data, write_rig, {"mode": "full"}, duration_s=1.0)
    assert (folder / "run.mcap").is_file() and not list(folder.glob("event-*"))
