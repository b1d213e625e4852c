"""Event-triggered flight records (issue 12 part 5): ring buffer, windows, files, memory bound.

The sink is fed synthesized records at 100 Hz on a :class:`TickCursor` (no run, no
sleeps); the files it writes are read back with the reader and validated against their
channels' JSON Schemas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.config import RecordCfg
from controller.errors import ConfigError
from controller.record.reader import FlightRecord, validate
from controller.record.ring import BLOCK_N, RingBuffer
from controller.record.taps import TickCursor
from controller.record.triggered import RecordHeader, TriggeredLog, event_file_name, is_trigger

HEADER = RecordHeader(attachments=(("rigs/test.yaml", b"name: test\n", "application/yaml"),),
                      metadata=(("run_options", {"seed": "0"}), ("versions", {"qiki": "test"})))
TICK_NS = 10_000_000  # 100 Hz


def _fault(k: int, code: int = 501, reason: str | None = "valve board status stale") -> dict[str, object]:
    return {"tick": k, "t_s": k * 0.01, "code": code, "kind": "fault", "text": f"fault: {reason}",
            "source": "vb_status", "reason": reason}


def _run(sink: TriggeredLog, cursor: TickCursor, ticks: int,
         events: dict[int, list[dict[str, object]]] | None = None, per_tick: int = 1) -> None:
    """Feed ``ticks`` ticks: a ``/tick`` record (and ``per_tick - 1`` valve records) each, events at their ticks."""
    events = events or {}
    for k in range(ticks):
        cursor.begin(k, k * TICK_NS)
        sink.put("/tick", {"tick": k, "t_s": k * 0.01, "state": "active", "armed": True, "x_m": 0.001 * k})
        for _ in range(per_tick - 1):
            sink.put("/valves", {"tick": k, "t_s": k * 0.01, "duty_pct_0": 10.0})
        for ev in events.get(k, ()):
            sink.put("/events", ev)


def _sink(tmp_path: Path, **kw: object) -> tuple[TriggeredLog, TickCursor]:
    cursor = TickCursor()
    args: dict[str, object] = {"realtime": False, "pre_s": 1.0, "post_s": 1.0, "trigger_codes": None,
                               "max_files": 100, "buffer_max_n": 100_000}
    args.update(kw)
    return TriggeredLog(tmp_path, cursor, HEADER, **args), cursor  # type: ignore[arg-type]


def _ticks(path: Path) -> list[int]:
    return [int(r["tick"]) for r in FlightRecord(path).topic("/tick")]  # type: ignore[call-overload]


def test_one_fault_writes_one_file_spanning_pre_and_post(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path)
    _run(sink, cursor, 600, {300: [_fault(300)]})
    stats = sink.close()
    files = sorted(tmp_path.glob("event-*"))
    assert [p.name for p in files] == [event_file_name(1, 501, 300 * TICK_NS)] == ["event-001-501-3.000.mcap"]
    assert stats["files"] == ["event-001-501-3.000.mcap"] and stats["triggers"] == 1
    path = files[0]
    assert validate(path) == []
    ticks = _ticks(path)
    assert ticks == list(range(200, 401))  # [t - 1 s, t + 1 s], both ends included
    rec = FlightRecord(path)
    st = rec.statistics()
    assert (st["start_ns"], st["end_ns"]) == (200 * TICK_NS, 400 * TICK_NS)
    events = rec.topic("/events")
    assert [e["code"] for e in events] == [501] and events[0]["reason"] == "valve board status stale"
    assert rec.attachment("rigs/test.yaml") == b"name: test\n"
    meta = rec.metadata()
    assert meta["run_options"] == {"seed": "0"} and meta["versions"] == {"qiki": "test"}
    ev = meta["event"]
    assert ev["code"] == "501" and ev["trigger_ns"] == str(300 * TICK_NS)
    assert [t["code"] for t in json.loads(ev["triggers"])] == [501]
    # channels as in run.mcap: the dropout channel first, then the topics in order of first use
    assert list(rec.channels())[:3] == ["/record/dropouts", "/tick", "/events"]


def test_a_trigger_inside_the_post_window_extends_it(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path)
    _run(sink, cursor, 800, {300: [_fault(300)], 350: [_fault(350, 502, "valve board heartbeat lost")]})
    sink.close()
    files = sorted(tmp_path.glob("event-*"))
    assert len(files) == 1
    assert _ticks(files[0]) == list(range(200, 451))  # to 1 s after the last trigger
    triggers = json.loads(FlightRecord(files[0]).metadata()["event"]["triggers"])
    assert [(t["code"], t["tick"]) for t in triggers] == [(501, 300), (502, 350)]


def test_a_trigger_after_the_window_opens_the_next_file(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path)
    _run(sink, cursor, 900, {300: [_fault(300)], 600: [_fault(600, 502)]})
    sink.close()
    files = sorted(tmp_path.glob("event-*"))
    assert [p.name for p in files] == ["event-001-501-3.000.mcap", "event-002-502-6.000.mcap"]
    assert _ticks(files[1]) == list(range(500, 701))
    assert all(validate(p) == [] for p in files)


def test_a_window_cut_by_the_end_of_the_run_is_finished(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path)
    _run(sink, cursor, 350, {300: [_fault(300)]})
    sink.close()
    (path,) = tmp_path.glob("event-*")
    assert path.suffix == ".mcap" and validate(path) == []
    assert _ticks(path) == list(range(200, 350))


@pytest.mark.parametrize(("topic", "record", "codes", "expected"), [
    ("/events", _fault(1), None, True),
    ("/events", _fault(1, reason=None), None, False),  # a fault clearing
    ("/events", {"tick": 1, "t_s": 0.01, "code": 902, "kind": "transition", "text": "x"}, None, False),
    ("/emulation/events", {"tick": 1, "t_s": 0.01, "code": 590, "kind": "fault_injected", "text": "x"}, None, False),
    ("/events", {"tick": 1, "t_s": 0.01, "code": 902, "kind": "transition", "text": "x"}, frozenset({902}), True),
    ("/events", _fault(1), frozenset({902}), False),
    ("/emulation/events", {"tick": 1, "t_s": 0.01, "code": 590, "kind": "fault_injected", "text": "x"},
     frozenset({590}), True),
    ("/tick", {"tick": 1, "code": 902, "kind": "fault", "reason": "x"}, None, False),
])
def test_what_triggers(topic: str, record: dict[str, object], codes: frozenset[int] | None, expected: bool) -> None:
    assert is_trigger(topic, record, codes) is expected


def test_chosen_codes_trigger_and_faults_do_not(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path, trigger_codes=[902])
    transition = {"tick": 500, "t_s": 5.0, "code": 902, "kind": "transition", "text": "active --fault--> safe_mode",
                  "event": "fault", "source": "active", "target": "safe_mode"}
    _run(sink, cursor, 700, {300: [_fault(300)], 500: [transition]})
    sink.close()
    assert [p.name for p in tmp_path.glob("event-*")] == ["event-001-902-5.000.mcap"]


def test_max_files_bounds_the_files_and_counts_the_rest(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path, max_files=2)
    _run(sink, cursor, 1600, {k: [_fault(k)] for k in (300, 600, 900, 1200, 1500)})
    stats = sink.close()
    assert len(list(tmp_path.glob("event-*"))) == 2
    assert stats["triggers"] == 5 and stats["skipped_triggers"] == 3


def test_the_ring_buffer_is_bounded_by_time_and_by_count(tmp_path: Path) -> None:
    # by time: 1 s of 100 Hz ticks, 3 records a tick
    sink, cursor = _sink(tmp_path, pre_s=1.0)
    _run(sink, cursor, 2000, per_tick=3)
    assert sink.buffered_n == 3 * 101 and sink.buffer_high_water_n == 3 * 101
    sink.close()
    # by count: a long pre-window, few messages allowed
    sink, cursor = _sink(tmp_path, pre_s=600.0, buffer_max_n=500)
    _run(sink, cursor, 3100, per_tick=3, events={2900: [_fault(2900)]})
    assert sink.buffered_n == 500 and sink.buffer_high_water_n == 500
    ring = sink._ring
    assert sum(len(b) for b in ring.blocks) <= 500 + BLOCK_N  # dead items: at most one block's worth
    sink.close()
    (path,) = tmp_path.glob("event-*")
    rec = FlightRecord(path)
    # the pre-window holds the newest 500 records before (and with) the trigger, then 1 s after
    assert rec.statistics()["messages"] == 500 + 3 * 100


def test_a_ring_snapshot_does_not_change_when_the_ring_moves_on() -> None:
    ring = RingBuffer(max_n=1000)
    for i in range(700):
        ring.append(("/t", i, {"i": i}), lo_ns=i - 600)
    snap = ring.snapshot()
    before = [it[1] for it in RingBuffer.items(snap)]
    assert before == list(range(99, 700))
    for i in range(700, 3000):
        ring.append(("/t", i, {"i": i}), lo_ns=i - 600)
    assert [it[1] for it in RingBuffer.items(snap)] == before
    assert ring.n == 601 and [it[1] for it in RingBuffer.items(ring.snapshot())] == list(range(2399, 3000))


def test_an_empty_ring_snapshots_to_nothing() -> None:
    ring = RingBuffer(max_n=10)
    assert list(RingBuffer.items(ring.snapshot())) == []


def _messages(path: Path) -> list[tuple[str, int, dict[str, object]]]:
    return [(m.topic, m.log_time_ns, m.data) for m in FlightRecord(path).messages()]  # type: ignore[attr-defined]


def test_real_time_writes_the_same_files_off_the_tick(tmp_path: Path) -> None:
    lock, rt = tmp_path / "lockstep", tmp_path / "realtime"
    lock.mkdir()
    rt.mkdir()
    plan = {300: [_fault(300)], 350: [_fault(350, 502)], 900: [_fault(900)]}
    for folder, realtime in ((lock, False), (rt, True)):
        sink, cursor = _sink(folder, realtime=realtime)
        _run(sink, cursor, 1200, plan, per_tick=2)
        stats = sink.close()
        assert stats["errors"] == 0 and stats["messages_dropped"] == 0
    names = sorted(p.name for p in lock.glob("event-*"))
    assert names == sorted(p.name for p in rt.glob("event-*")) and len(names) == 2
    for name in names:
        assert validate(rt / name) == []
        assert _messages(rt / name) == _messages(lock / name)


def test_real_time_drops_and_counts_when_the_writer_queue_is_full(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path, realtime=True, queue_capacity=1)
    _run(sink, cursor, 600, {300: [_fault(300)]}, per_tick=5)
    stats = sink.close()
    (path,) = tmp_path.glob("event-*")
    assert validate(path) == []
    dropped = int(FlightRecord(path).metadata()["event"]["messages_dropped"])
    assert dropped == stats["messages_dropped"]
    assert FlightRecord(path).statistics()["messages"] + dropped == 5 * 201 + 1  # nothing lost uncounted


def test_close_is_idempotent_and_puts_after_close_are_ignored(tmp_path: Path) -> None:
    sink, cursor = _sink(tmp_path)
    _run(sink, cursor, 10)
    first = sink.close()
    sink.put("/events", _fault(11))
    assert sink.close() is first and not list(tmp_path.glob("event-*"))


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _sink(tmp_path, pre_s=-1.0)
    with pytest.raises(ValueError):
        _sink(tmp_path, max_files=0)


# ----------------------------------------------------------------------------- the rig's record block


def _rig_with(virtual_rig_data: dict, write_rig: Callable[..., Path], record: dict[str, object]) -> Path:
    virtual_rig_data["record"] = record
    return write_rig(virtual_rig_data)


def test_record_block_defaults() -> None:
    cfg = RecordCfg()
    assert (cfg.mode, cfg.pre_s, cfg.post_s, cfg.trigger_codes, cfg.max_files) == ("full", 10.0, 5.0, None, 100)


def test_trigger_codes_load_from_the_rig(virtual_rig_data: dict, write_rig: Callable[..., Path]) -> None:
    from controller.config import load_rig

    rig, _ = load_rig(_rig_with(virtual_rig_data, write_rig, {"mode": "triggered", "trigger_codes": [501, 902]}))
    assert rig.record.mode == "triggered" and rig.record.trigger_codes == [501, 902]


@pytest.mark.parametrize(("record", "key"), [
    ({"trigger_codes": [501, 123]}, "record.trigger_codes[1]: 123 is not an event code"),
    ({"trigger_codes": [42]}, "record.trigger_codes[0]: 42 is not an event code"),
    ({"mode": "sometimes"}, "record.mode"),
    ({"pre_s": -1.0}, "record.pre_s"),
    ({"max_files": 0}, "record.max_files"),
    ({"post": 1.0}, "record.post: unknown key"),
])
def test_a_bad_record_block_is_one_line_naming_the_key(virtual_rig_data: dict, write_rig: Callable[..., Path],
                                                        record: dict[str, object], key: str) -> None:
    from controller.config import load_rig

    with pytest.raises(ConfigError) as ei:
        load_rig(_rig_with(virtual_rig_data, write_rig, record))
    text = str(ei.value)
    assert key in text and "\n" not in text


def test_a_jump_of_the_clock_empties_the_ring_block_by_block() -> None:
    ring = RingBuffer(max_n=10_000)
    for i in range(5000):
        ring.append(("/t", i, {}), lo_ns=0)
    assert ring.n == 5000 and len(ring.blocks) == -(-5000 // BLOCK_N)
    ring.append(("/t", 10**12, {}), lo_ns=10**12 - 10)
    assert ring.n == 1 and [it[1] for it in RingBuffer.items(ring.snapshot())] == [10**12]
    assert len(ring.blocks) <= 2


def test_runs_recover_finishes_an_unfinished_event_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli import main as qiki

    sink, cursor = _sink(tmp_path, post_s=30.0)
    _run(sink, cursor, 3000, {300: [_fault(300)]}, per_tick=3)
    sink.close()
    (done,) = tmp_path.glob("event-*.mcap")
    data = done.read_bytes()
    part = done.with_name(done.name + ".part")
    part.write_bytes(data[: len(data) // 2])  # what a kill leaves: no summary, no footer
    done.unlink()
    assert qiki(["runs", "show", str(tmp_path)]) == 0
    assert "NOT finished" in capsys.readouterr().out
    assert qiki(["runs", "recover", str(tmp_path)]) == 0
    assert done.is_file() and not part.exists() and done.with_name(done.name + ".unfinished").is_file()
    assert validate(done) == [] and FlightRecord(done).statistics()["messages"] > 0
