"""Every run is recorded in run.mcap and replays bit-exactly through the real controller.

Judged the way issue 12 judges it: lockstep runs of several seeds and with fault plans,
``--lr-replay``, a real-time run; every message validates against its channel's schema;
one mutated input byte makes ``--check`` fail and name the tick; ``--until`` compares a
prefix. Each recorded run is short (a few seconds of run time) to keep the suite fast;
the record/replay code paths do not depend on the run's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.cli import main as qiki
from controller.record.reader import validate
from controller.record.replay import read_record
from controller.run import RunOptions, run_main_job
from controller.run_replay import replay_run

ROOT = Path(__file__).resolve().parents[2]


def _record(tmp_path: Path, *, rig: Path | None = None, seed: int = 0, duration_s: float = 6.0,
            realtime: bool = False, lr_replay: str | None = None) -> Path:
    opts = RunOptions(rig=str(rig or ROOT / "rigs" / "virtual.yaml"), mission=str(ROOT / "missions" / "square.yaml"),
                      seed=seed, duration_s=duration_s, realtime=realtime, runs_dir=str(tmp_path / "runs"),
                      progress=False, lr_replay=lr_replay)
    _status, _summary, folder = run_main_job(opts)
    assert (folder / "run.mcap").is_file() and not (folder / "run.mcap.part").exists()
    return folder


@pytest.mark.parametrize("seed", [0, 7])
def test_lockstep_runs_replay_identically_and_validate(tmp_path: Path, seed: int) -> None:
    folder = _record(tmp_path, seed=seed)
    assert validate(folder / "run.mcap") == []
    result = replay_run(folder)
    assert result.report.identical, "\n".join(result.report.lines())
    per = result.report.per_topic
    # the comparison covered the outputs, not just telemetry
    for topic in ("/out/can/can0", "/out/serial/mcu", "/out/modbus/pdu", "/valves", "/tick", "/events"):
        assert per[topic]["recorded"] > 0 and per[topic]["differing"] == 0, (topic, per.get(topic))


def test_a_fault_plan_run_replays_identically(tmp_path: Path, rig_with_faults: Callable[[list[dict]], Path]) -> None:
    rig = rig_with_faults([{"at_s": 1.5, "target": "valves", "fault": "silent"},
                           {"at_s": 2.0, "target": "bms", "fault": "silent", "until_s": 4.0}])
    folder = _record(tmp_path, rig=rig)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "fault" for e in events)
    result = replay_run(folder)
    assert result.report.identical, "\n".join(result.report.lines())


def test_lr_replay_run_replays_identically(tmp_path: Path, shared_data: Path) -> None:
    log = shared_data / "can" / "ars408" / "candump-2026-06-24_154259.log"
    if not log.is_file():
        pytest.skip(f"{log} not found")
    folder = _record(tmp_path, lr_replay=str(log), duration_s=4.0)
    result = replay_run(folder)
    assert result.report.identical, "\n".join(result.report.lines())
    assert result.report.per_topic["/radar/lr/tracks"]["recorded"] > 0


def _mutate_first(src: Path, dst: Path, topic: str, min_tick: int) -> int:
    """Copy a record with one byte of the first ``topic`` message at or after ``min_tick`` flipped."""
    from mcap.reader import make_reader
    from mcap.writer import Writer

    done = -1
    with src.open("rb") as f, dst.open("wb") as g:
        reader = make_reader(f)
        w = Writer(g)
        w.start()
        summary = reader.get_summary()
        assert summary is not None
        schema_ids = {}
        for sid, s in summary.schemas.items():
            schema_ids[sid] = w.register_schema(s.name, s.encoding, s.data)
        chan_ids = {}
        for cid, c in summary.channels.items():
            chan_ids[cid] = w.register_channel(c.topic, c.message_encoding, schema_ids[c.schema_id], c.metadata)
        for a in reader.iter_attachments():
            w.add_attachment(a.log_time, a.create_time, a.name, a.media_type, a.data)
        for m in reader.iter_metadata():
            w.add_metadata(m.name, m.metadata)
        for _s, c, msg in reader.iter_messages(log_time_order=False):
            data = msg.data
            if done < 0 and c.topic == topic:
                rec = json.loads(data)
                if rec["tick"] >= min_tick and rec.get("data"):
                    raw = bytearray(bytes.fromhex(rec["data"]))
                    raw[len(raw) // 2] ^= 0x10
                    rec["data"] = raw.hex()
                    data = json.dumps(rec).encode()
                    done = rec["tick"]
            w.add_message(chan_ids[c.id], msg.log_time, data, msg.publish_time, msg.sequence)
        w.finish()
    return done


def test_one_mutated_input_byte_fails_the_check_and_names_the_tick(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = _record(tmp_path, duration_s=3.0)
    bad = tmp_path / "bad"
    bad.mkdir()
    tick = _mutate_first(folder / "run.mcap", bad / "run.mcap", "/in/serial/mcu", 120)
    assert tick >= 120
    status = qiki(["replay", str(bad), "--check"])
    out = capsys.readouterr().out
    assert status == 1
    assert f"first divergence: tick {tick}," in out
    # the untouched record passes
    assert qiki(["replay", str(folder), "--check"]) == 0


def test_until_compares_a_prefix(tmp_path: Path) -> None:
    folder = _record(tmp_path, duration_s=3.0)
    run = read_record(folder)
    result = replay_run(run, until_s=1.0)
    assert result.report.identical
    assert result.report.per_topic["/tick"]["recorded"] == 101  # ticks 0..100 start at or before 1.0 s


def test_drift_is_refused_unless_allowed(tmp_path: Path, virtual_rig_data: dict,
                                         write_rig: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    rig = write_rig(virtual_rig_data)
    folder = _record(tmp_path, rig=rig, duration_s=1.0)
    rig.write_text(rig.read_text() + "\n# edited after the run\n")
    assert qiki(["replay", str(folder), "--check"]) == 2
    assert "differs from the recorded file" in capsys.readouterr().err
    assert qiki(["replay", str(folder), "--check", "--allow-drift"]) == 0


@pytest.mark.realtime
def test_a_realtime_run_replays_identically(tmp_path: Path) -> None:
    folder = _record(tmp_path, realtime=True, duration_s=3.0)
    run = read_record(folder)
    assert any(t == "/in/clock" for t, _ in run.messages)
    result = replay_run(run)
    assert result.report.identical, "\n".join(result.report.lines())
    assert result.report.per_topic["/loop"]["recorded"] > 0


@pytest.mark.realtime
def test_after_sigkill_the_record_recovers_and_replays(tmp_path: Path) -> None:
    """SIGKILL a real-time run once its record on disk reaches a random run time T."""
    import os
    import random
    import signal
    import subprocess
    import sys

    from controller.record.reader import FlightRecord, recover

    runs = tmp_path / "runs"
    target_s = random.Random().uniform(1.5, 3.5)
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", "--realtime", "--duration", "30",
                             "--no-progress", "--runs-dir", str(runs)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reached_s = 0.0
    part = None
    def still_running(wait_s: float) -> bool:
        try:  # waits for the process to end, not for time to pass: it must not end
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return True
        return False

    try:
        while still_running(0.02) and reached_s < target_s:
            parts = list(runs.glob("*/run.mcap.part"))
            if not parts:
                continue
            part = parts[0]
            try:
                last = max((m.log_time_ns for m in FlightRecord(part).messages(["/tick"])), default=0)
            except Exception:  # noqa: BLE001 - the file is being written: read it again
                continue
            reached_s = last * 1e-9
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert part is not None and not (part.parent / "run.mcap").exists()
    report = recover(part, part.parent / "run.mcap")
    assert not report.source_finished
    assert report.last_log_time_ns is not None and report.last_log_time_ns * 1e-9 >= reached_s
    assert validate(part.parent / "run.mcap") == []
    run = read_record(part.parent)
    assert not run.complete
    result = replay_run(run)
    assert result.report.identical, "\n".join(result.report.lines())
    assert result.report.per_topic["/tick"]["recorded"] > 100
