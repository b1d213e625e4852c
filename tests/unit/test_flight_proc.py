"""The writer process (``flight_proc.ProcessRecorder``) writes the in-process recorder's bytes."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from controller.record import flight_proc
from controller.record.flight import FlightRecorder, RecorderClosedError
from controller.record.flight_proc import ProcessRecorder, open_recorder
from controller.record.reader import FlightRecord, recover, validate

SCHEMA = {"type": "object", "properties": {"tick": {"type": "integer"}}, "required": ["tick"]}


def _messages(n: int, seed: int = 0) -> list[tuple[str, int, dict[str, object]]]:
    rng = random.Random(seed)
    out = []
    t = 0
    for k in range(n):
        t += rng.choice((0, 0, 1_000_000, 10_000_000))
        topic = rng.choice(("/a", "/b", "/c"))
        x: object = rng.random() if k % 50 else math.nan  # some NaN: written as null, counted
        out.append((topic, t, {"tick": k, "x": x, "pad": "z" * rng.randint(0, 2000)}))
    return out


def _write(rec: FlightRecorder | ProcessRecorder, msgs: list[tuple[str, int, dict[str, object]]]) -> None:
    rec.attach("rigs/r.yaml", b"a: 1\n", "application/yaml")
    rec.metadata("run_options", {"seed": "0"})
    chans: dict[str, int] = {}
    for topic, t, m in msgs:
        if topic not in chans:
            chans[topic] = rec.channel(topic, "s", SCHEMA, finite=topic == "/c")
        rec.write(chans[topic], t, m)
    rec.metadata("run_end", {"last_tick": "1"})


@pytest.mark.parametrize("chunk_size_bytes", [1 << 20, 4096])
def test_lockstep_bytes_equal_the_in_process_recorder(tmp_path: Path, chunk_size_bytes: int) -> None:
    msgs = _messages(800)
    a = FlightRecorder(tmp_path / "thread.mcap", realtime=False, chunk_period_s=0.05, chunk_size_bytes=chunk_size_bytes)
    _write(a, msgs)
    sa = a.close()
    b = ProcessRecorder(tmp_path / "proc.mcap", realtime=False, chunk_period_s=0.05, chunk_size_bytes=chunk_size_bytes)
    _write(b, msgs)
    sb = b.close()
    assert (tmp_path / "proc.mcap").read_bytes() == (tmp_path / "thread.mcap").read_bytes()
    assert validate(tmp_path / "proc.mcap") == []
    for key in ("messages_written", "chunk_flushes", "chunks", "errors", "nonfinite_replaced", "bytes",
                "last_log_time_ns"):
        assert getattr(sb, key) == getattr(sa, key), key
    assert sb.nonfinite_replaced > 0
    assert b.close() is sb  # idempotent
    with pytest.raises(RecorderClosedError):
        b.write(1, 0, {"tick": 0})


def test_real_time_hands_over_in_idle_and_finishes(tmp_path: Path) -> None:
    p = tmp_path / "rt.mcap"
    rec = ProcessRecorder(p, realtime=True, chunk_period_s=0.05)
    ch = rec.channel("/a", "s", SCHEMA)
    for k in range(300):
        rec.write(ch, k * 1_000_000, {"tick": k})
        if k % 10 == 9:
            rec.idle(0.005)
    assert rec.drain(10.0)
    st = rec.close(10.0)
    assert st.messages_written == 300 and st.errors == 0 and st.messages_dropped == 0
    assert [m["tick"] for m in FlightRecord(p).topic("/a")] == list(range(300))


def test_real_time_drops_are_counted_and_recorded(tmp_path: Path) -> None:
    p = tmp_path / "drop.mcap"
    rec = ProcessRecorder(p, realtime=True, queue_capacity=5)
    ch = rec.channel("/a", "s", SCHEMA)
    for k in range(8):  # no idle call: nothing is handed over, 3 are dropped
        rec.write(ch, k, {"tick": k})
    rec.idle(0.005)
    rec.write(ch, 100, {"tick": 100})
    st = rec.close(10.0)
    assert st.messages_dropped == 3 and st.dropouts == 1
    drops = FlightRecord(p).topic("/record/dropouts")
    assert [(d["first_dropped_ns"], d["last_dropped_ns"], d["count"]) for d in drops] == [(5, 7, 3)]


def test_rows_take_the_same_drop_path_and_the_counters_settle(tmp_path: Path) -> None:
    # write_row's inline path (no chunk due, room left) and _hand's slow path count alike
    p = tmp_path / "rows.mcap"
    rec = ProcessRecorder(p, realtime=True, queue_capacity=4)
    ch = rec.channel("/a", "s", SCHEMA)
    for k in range(6):  # 4 wait, 2 are dropped
        rec.write_row(ch, k, ("tick",), (k,))
    st = rec.stats
    assert st.messages_written == 4 and st.messages_dropped == 2 and st.queue_high_water == 4
    rec.idle(0.005)  # handed to the pipe: the waiting count is settled
    rec.write_row(ch, 100, ("tick",), (100,))  # the dropout is reported first, then this row
    rec.write(ch, 101, {"tick": 101})
    st = rec.close(10.0)
    with pytest.raises(RecorderClosedError):
        rec.write_row(ch, 102, ("tick",), (102,))  # after close, the inline path is shut too
    assert st.messages_dropped == 2 and st.dropouts == 1 and st.queue_high_water == 4
    assert [m["tick"] for m in FlightRecord(p).topic("/a")] == [0, 1, 2, 3, 100, 101]
    drops = FlightRecord(p).topic("/record/dropouts")
    assert [(d["first_dropped_ns"], d["last_dropped_ns"], d["count"]) for d in drops] == [(4, 5, 2)]


def test_the_parent_gone_leaves_a_recoverable_file(tmp_path: Path) -> None:
    p = tmp_path / "run.mcap"
    rec = ProcessRecorder(p, realtime=False, chunk_period_s=0.05)
    ch = rec.channel("/a", "s", SCHEMA)
    for k in range(200):
        rec.write(ch, k * 1_000_000, {"tick": k})
    assert rec._send(block=True)
    rec._in.close()  # what a killed parent leaves the child: the end of its input
    assert rec._proc.wait(10.0) == 0
    rep = recover(p, tmp_path / "fixed.mcap")
    assert not rep.source_finished and rep.messages_kept == 200  # the child closed its open chunk too


def test_open_recorder_falls_back_to_the_in_process_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(flight_proc.WRITER_ENV, "thread")
    rec = open_recorder(tmp_path / "a.mcap", realtime=False)
    assert isinstance(rec, FlightRecorder)
    rec.close()
    monkeypatch.delenv(flight_proc.WRITER_ENV)
    rec2 = open_recorder(tmp_path / "b.mcap", realtime=False)
    assert isinstance(rec2, ProcessRecorder)
    rec2.close()
    with pytest.raises(OSError):
        open_recorder(tmp_path / "missing" / "c.mcap", realtime=False)


def test_numpy_values_and_unpicklable_messages(tmp_path: Path) -> None:
    """NumPy values reach the child as such; a message that does not pickle takes the parent's encoder."""
    np = pytest.importorskip("numpy")

    class Listy:  # local: does not pickle, but encodes (``tolist``)
        def tolist(self) -> list[int]:
            return [7]

    class Unencodable:  # local: neither pickles nor encodes
        pass

    msgs: list[tuple[str, int, dict[str, object]]] = [
        ("/a", 0, {"tick": 0, "x": 1.5}),
        ("/a", 1, {"tick": 1, "x": np.float64(2.25), "n": np.int64(3)}),
        ("/a", 2, {"tick": 2, "x": np.float64("nan")}),
        ("/a", 3, {"tick": 3, "x": [1, 2], "f": np.arange(3.0)}),
        ("/a", 4, {"tick": 4, "l": Listy(), "y": float("inf")}),
    ]
    msgs.insert(4, ("/a", 4, {"tick": 4, "l": Unencodable()}))  # an error on both sides, nothing written
    a = FlightRecorder(tmp_path / "thread.mcap", realtime=False)
    _write(a, msgs)
    sa = a.close()
    b = ProcessRecorder(tmp_path / "proc.mcap", realtime=False)
    _write(b, msgs)
    sb = b.close()
    assert sb.errors == sa.errors == 1 and "message on channel 2" in sb.error_texts[0]
    assert sb.nonfinite_replaced == sa.nonfinite_replaced == 2
    assert (tmp_path / "proc.mcap").read_bytes() == (tmp_path / "thread.mcap").read_bytes()


def test_rows_write_the_bytes_of_their_records(tmp_path: Path) -> None:
    """A tap's row (keys, values; bytes as hex) gives the file of the record put as a dict."""
    from controller.record.flight_log import FlightLog, MemorySink
    from controller.record.flight_writer import row_record
    from controller.record.taps import CAN_TX_KEYS, SERIAL_RX_KEYS, TickCursor

    rows = [("/out/can/can0", CAN_TX_KEYS, (k, 0, 0x100 + k, False, False, False, False, False, False, 8,
                                            bytes([k % 256] * 8), True)) for k in range(300)]
    rows += [("/in/serial/mcu", SERIAL_RX_KEYS, (k, 1, b"\x00\xff" * k)) for k in range(300)]
    files = {}
    for how in ("put", "row", "thread", "appender", "thread-appender"):
        rec: FlightRecorder | ProcessRecorder = (FlightRecorder(tmp_path / f"{how}.mcap", realtime=False,
                                                                chunk_period_s=0.05) if how.startswith("thread")
                                                 else ProcessRecorder(tmp_path / f"{how}.mcap", realtime=False,
                                                                      chunk_period_s=0.05))
        cur = TickCursor()
        log = FlightLog(rec, cur)
        appenders = {}
        for i, (topic, keys, values) in enumerate(rows):
            cur.now_ns = i * 1_000_000
            if how == "put":
                log.put(topic, row_record(keys, values))
            elif how.endswith("appender"):  # a tap's per-topic appender (2026-12-07b)
                if topic not in appenders:
                    appenders[topic] = log.appender(topic)
                appenders[topic](keys, values)
            else:
                log.row(topic, keys, values)
        st = rec.close()
        assert st.errors == 0 and st.messages_written == len(rows)
        files[how] = (tmp_path / f"{how}.mcap").read_bytes()
    assert files["row"] == files["put"] == files["thread"] == files["appender"] == files["thread-appender"]
    assert validate(tmp_path / "row.mcap") == []
    got = FlightRecord(tmp_path / "row.mcap").topic("/in/serial/mcu")[2]
    assert got["data"] == "00ff00ff" and got["call"] == 1
    seen: list[tuple[str, object]] = []

    class PutOnly:
        def put(self, topic: str, record: object) -> None:
            seen.append((topic, record))

    from controller.record.taps import row_appender
    mem = MemorySink()
    row_appender(mem, rows[0][0])(rows[0][1], rows[0][2])
    row_appender(PutOnly(), rows[0][0])(rows[0][1], rows[0][2])  # a sink without row(): the record is put
    assert mem.records == seen == [("/out/can/can0", row_record(rows[0][1], rows[0][2]))]
    with pytest.raises(ValueError):
        row_record(("a", "b"), (1,))
