"""The flight record's writer and reader: round trip, schema checks, truncation and recovery, dropouts."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import pytest
from mcap.reader import make_reader

from controller.record.flight import DROPOUT_TOPIC, FlightRecorder, RecorderClosedError
from controller.record.reader import FlightRecord, RecordFileError, recover, validate

TICK_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"tick": {"type": "integer"}, "t_s": {"type": "number"}, "x_m": {"type": ["number", "null"]},
                   "state": {"type": "string"}},
    "required": ["tick", "t_s"],
    "additionalProperties": False,
}
BMS_SCHEMA = {
    "type": "object",
    "properties": {"tick": {"type": "integer"}, "soc_pct": {"type": "number"}},
    "required": ["tick", "soc_pct"],
}
NS = 1_000_000_000
DT_NS = 10_000_000  # 100 Hz


def _record(path: Path, n: int, *, realtime: bool = False, period_s: float = 0.5, **kw) -> list[tuple[str, int, dict]]:
    """Write n ticks (+ a BMS message every 10th) and return what was written."""
    written: list[tuple[str, int, dict]] = []
    with FlightRecorder(path, realtime=realtime, chunk_period_s=period_s, **kw) as rec:
        tick = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
        bms = rec.channel("/power/bms", "qiki.Bms", BMS_SCHEMA)
        rec.attach("rig.yaml", b"name: test\n", "application/yaml")
        rec.metadata("run", {"seed": "0", "qiki": "test"})
        for k in range(n):
            t = k * DT_NS
            m = {"tick": k, "t_s": k * 0.01, "x_m": 0.1 * k, "state": "active"}
            rec.write(tick, t, m)
            written.append(("/tick", t, dict(m)))
            if k % 10 == 0:
                b = {"tick": k, "soc_pct": 90.0 - k * 0.001}
                rec.write(bms, t, b)
                written.append(("/power/bms", t, dict(b)))
    return written


def _as_set(messages) -> set[tuple[str, int, int]]:
    return {(m.topic, m.log_time_ns, m.data["tick"]) for m in messages}


@pytest.mark.parametrize("realtime", [False, True])
def test_round_trip(tmp_path, realtime):
    p = tmp_path / "run.mcap"
    written = _record(p, 300, realtime=realtime)
    with open(p, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics.message_count == len(written)
    rec = FlightRecord(p)
    assert rec.finished
    assert set(rec.topics()) == {"/tick", "/power/bms", DROPOUT_TOPIC}
    got = [(m.topic, m.log_time_ns, m.data) for m in rec.messages(["/tick"])]
    assert got == [w for w in written if w[0] == "/tick"]
    assert len(rec.topic("/power/bms")) == 30
    assert rec.attachment("rig.yaml") == b"name: test\n"
    assert rec.metadata() == {"run": {"seed": "0", "qiki": "test"}}
    assert rec.channels()["/tick"].schema_encoding == "jsonschema"
    assert validate(p) == []


def test_stats_and_chunk_period(tmp_path):
    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=False, chunk_period_s=0.5)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    for k in range(600):
        rec.write(c, k * DT_NS, {"tick": k, "t_s": k * 0.01})
    st = rec.close()
    assert st.messages_written == 600 and st.messages_dropped == 0 and st.errors == 0
    assert st.chunks == 12 and st.bytes == p.stat().st_size
    with open(p, "rb") as f:
        summary = make_reader(f).get_summary()
    for ci in summary.chunk_indexes:
        assert ci.message_end_time - ci.message_start_time < 0.5 * NS
    with pytest.raises(RecorderClosedError):
        rec.write(c, 0, {"tick": 0, "t_s": 0.0})
    assert rec.close() is st  # idempotent


def test_validate_catches_a_bad_message(tmp_path):
    p = tmp_path / "run.mcap"
    with FlightRecorder(p, realtime=False) as rec:
        c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
        rec.write(c, 0, {"tick": 0, "t_s": 0.0})
        rec.write(c, DT_NS, {"tick": "one", "t_s": 0.01})
        rec.write(c, 2 * DT_NS, {"tick": 2})
    problems = validate(p)
    assert len(problems) == 2, problems
    assert "/tick @ 10000000 ns: tick: 'one' is not of type 'integer'" in problems[0]
    assert "'t_s' is a required property" in problems[1]


def test_validate_catches_a_bad_schema_and_an_unfinished_file(tmp_path):
    p = tmp_path / "run.mcap"
    with FlightRecorder(p, realtime=False) as rec:
        c = rec.channel("/x", "bad", {"type": "nonsense"})
        rec.write(c, 0, {"a": 1})
    assert any("not a valid JSON Schema" in s for s in validate(p))
    cut = tmp_path / "cut.mcap"
    data = (tmp_path / "run.mcap").read_bytes()
    cut.write_bytes(data[: len(data) - 30])
    assert any("not finished" in s for s in validate(cut))


def test_nonfinite_is_written_as_null_and_counted(tmp_path):
    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=False)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    rec.write(c, 0, {"tick": 0, "t_s": 0.0, "x_m": math.nan})
    st = rec.close()
    assert st.nonfinite_replaced == 1
    assert FlightRecord(p).topic("/tick")[0]["x_m"] is None
    assert validate(p) == []


@pytest.mark.parametrize("realtime", [False, True])
def test_writer_errors_are_counted_not_silent(tmp_path, realtime):
    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=realtime)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    rec.write(c, 0, {"tick": 0, "t_s": 0.0})
    rec.write(c, DT_NS, {"tick": 1, "t_s": object()})  # does not encode
    rec.write(c, 2 * DT_NS, {"tick": 2, "t_s": 0.02})
    st = rec.close()
    assert st.errors == 1 and "TypeError" in st.error_texts[0]
    assert [m["tick"] for m in FlightRecord(p).topic("/tick")] == [0, 2]


def test_truncation_recovers_everything_but_the_open_chunk(tmp_path):
    """Every byte length a SIGKILL can leave: all messages older than one chunk period survive."""
    p = tmp_path / "run.mcap"
    period_ns = NS // 2
    rec = FlightRecorder(p, realtime=False, chunk_period_s=0.5)
    tick = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    bms = rec.channel("/power/bms", "qiki.Bms", BMS_SCHEMA)
    rec.attach("rig.yaml", b"name: test\n", "application/yaml")
    written: list[tuple[str, int, int]] = []
    size_after: list[int] = []  # bytes on disk after each write, as a kill would find them
    for k in range(400):
        t = k * DT_NS
        rec.write(tick, t, {"tick": k, "t_s": k * 0.01})
        written.append(("/tick", t, k))
        if k % 7 == 0:
            rec.write(bms, t, {"tick": k, "soc_pct": 80.0})
            written.append(("/power/bms", t, k))
        size_after.append(os.path.getsize(p))
    rec.close()
    data = p.read_bytes()
    assert size_after[-1] < len(data)  # the summary only comes at close

    cases = 0
    for k in range(0, 400, 13):
        lo = size_after[k]
        hi = size_after[k + 1] if k + 1 < 400 else len(data)
        for cut_at in sorted({lo, (lo + hi) // 2, max(lo, hi - 1)}):
            src = tmp_path / "cut.mcap"
            src.write_bytes(data[:cut_at])
            dst = tmp_path / "rec.mcap"
            report = recover(src, dst)
            assert not report.source_finished
            got = _as_set(FlightRecord(dst).messages())
            kill_t = k * DT_NS  # the newest message written when the file had these bytes
            must = {w for w in written if w[1] <= kill_t - period_ns}
            allowed = {w for w in written if w[1] <= kill_t}
            assert must <= got <= allowed, (k, cut_at, len(must - got))
            assert report.messages_kept == len(got)
            if k > 60:
                assert report.last_log_time_ns is not None and report.last_log_time_ns >= kill_t - period_ns - DT_NS
                assert FlightRecord(dst).attachment("rig.yaml") == b"name: test\n"
            with open(dst, "rb") as f:
                assert make_reader(f).get_summary() is not None
            assert validate(dst) == []
            cases += 1
    assert cases > 30


def test_recover_at_any_byte_never_raises(tmp_path):
    p = tmp_path / "run.mcap"
    written = _record(p, 200)
    data = p.read_bytes()
    for cut_at in range(8, len(data), 97):
        src = tmp_path / "cut.mcap"
        src.write_bytes(data[:cut_at])
        report = recover(src, tmp_path / "rec.mcap")
        assert report.messages_kept <= len(written)
    full = recover(p, tmp_path / "copy.mcap")
    assert full.source_finished and full.messages_kept == len(written) and full.stop_reason == "end of file"
    assert full.attachments == 1 and full.metadata == 1


def test_not_an_mcap_file_is_one_error(tmp_path):
    bad = tmp_path / "run.mcap"
    bad.write_bytes(b"hello, not mcap at all")
    with pytest.raises(RecordFileError, match=r"run.mcap: not an MCAP file"):
        FlightRecord(bad)
    with pytest.raises(RecordFileError, match="not an MCAP file"):
        recover(bad, tmp_path / "out.mcap")
    with pytest.raises(RecordFileError, match="no such file"):
        FlightRecord(tmp_path / "missing.mcap")


def test_advance_closes_a_due_chunk(tmp_path):
    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=False, chunk_period_s=0.5)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    rec.write(c, 0, {"tick": 0, "t_s": 0.0})
    rec.advance(NS // 4)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(p.read_bytes())
    assert recover(cut, tmp_path / "a.mcap").messages_kept == 0  # still in the open chunk
    rec.advance(NS // 2)
    cut.write_bytes(p.read_bytes())
    assert recover(cut, tmp_path / "b.mcap").messages_kept == 1
    rec.close()


def test_dropouts_are_counted_and_recorded(tmp_path):
    """A held writer thread and a tiny queue: overflow is a dropout message, never a stall."""
    p = tmp_path / "run.mcap"
    gate = threading.Event()  # the writer thread takes nothing off the queue until set
    rec = FlightRecorder(p, realtime=True, queue_capacity=6, writer_gate=gate)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    # queued so far: the two channel registrations (the dropout channel and /tick)
    for k in range(10):
        rec.write(c, k * DT_NS, {"tick": k, "t_s": k * 0.01})
    assert rec.stats.messages_dropped == 6  # ticks 4..9: the queue held 6 items
    gate.set()
    assert rec.drain(timeout_s=10.0)
    rec.write(c, 10 * DT_NS, {"tick": 10, "t_s": 0.1})  # room again: the dropout is queued first
    st = rec.close()
    assert st.messages_dropped == 6 and st.dropouts == 1 and st.errors == 0
    assert st.messages_written == 5 + 1
    fr = FlightRecord(p)
    assert [m["tick"] for m in fr.topic("/tick")] == [0, 1, 2, 3, 10]
    (d,) = fr.topic(DROPOUT_TOPIC)
    assert (d["first_dropped_ns"], d["last_dropped_ns"], d["count"]) == (4 * DT_NS, 9 * DT_NS, 6)
    assert validate(p) == []


def test_pending_dropout_is_written_at_close(tmp_path):
    p = tmp_path / "run.mcap"
    gate = threading.Event()
    rec = FlightRecorder(p, realtime=True, queue_capacity=3, writer_gate=gate)
    c = rec.channel("/tick", "qiki.Tick", TICK_SCHEMA)
    for k in range(5):
        rec.write(c, k * DT_NS, {"tick": k, "t_s": 0.0})
    gate.set()
    st = rec.close()
    assert st.messages_dropped == 4 and st.dropouts == 1
    assert FlightRecord(p).topic(DROPOUT_TOPIC)[0]["count"] == 4
