"""The flight record's fast paths: the chunk appender writes the file ``add_message`` writes; encoding."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from controller.record import flight_writer as fw
from controller.record.flight import FlightRecorder
from controller.record.reader import FlightRecord, recover, validate

SCHEMA = {"type": "object", "properties": {"tick": {"type": "integer"}}, "required": ["tick"]}


def _messages(n: int, seed: int = 0) -> list[tuple[str, int, dict[str, object]]]:
    """n messages on three topics, log times rising with repeats, sizes from 20 B to 2 kB."""
    rng = random.Random(seed)
    out = []
    t = 0
    for k in range(n):
        t += rng.choice((0, 0, 1_000_000, 10_000_000))
        topic = rng.choice(("/a", "/b", "/c"))
        out.append((topic, t, {"tick": k, "x": rng.random(), "pad": "z" * rng.randint(0, 2000)}))
    return out


def _write(path: Path, msgs: list[tuple[str, int, dict[str, object]]], fast: bool, **kw: object) -> None:
    patch = (mock.patch.object(fw.ChunkAppender, "attach", classmethod(lambda cls, w, n: None)) if not fast
             else mock.patch.object(fw, "MCAP_PROFILE", fw.MCAP_PROFILE))
    with patch:
        rec = FlightRecorder(path, realtime=False, **kw)  # type: ignore[arg-type]
        assert (rec._w.appender is not None) is fast
        chans: dict[str, int] = {}
        for topic, t, m in msgs:
            if topic not in chans:
                chans[topic] = rec.channel(topic, "s", SCHEMA)
            rec.write(chans[topic], t, m)
        rec.close()


@pytest.mark.parametrize("chunk_size_bytes", [1 << 20, 4096, 1])
def test_the_appender_writes_the_bytes_add_message_writes(tmp_path: Path, chunk_size_bytes: int) -> None:
    msgs = _messages(600)
    _write(tmp_path / "fast.mcap", msgs, True, chunk_size_bytes=chunk_size_bytes, chunk_period_s=0.05)
    _write(tmp_path / "slow.mcap", msgs, False, chunk_size_bytes=chunk_size_bytes, chunk_period_s=0.05)
    assert (tmp_path / "fast.mcap").read_bytes() == (tmp_path / "slow.mcap").read_bytes()
    assert validate(tmp_path / "fast.mcap") == []
    assert [m["tick"] for m in FlightRecord(tmp_path / "fast.mcap").topic("/a")] == \
        [m["tick"] for t, _, m in msgs if t == "/a"]


def test_an_unfinished_fast_file_recovers(tmp_path: Path) -> None:
    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=False, chunk_period_s=0.05)
    c = rec.channel("/a", "s", SCHEMA)
    for k in range(200):
        rec.write(c, k * 10_000_000, {"tick": k})
    rec._w.file.flush()  # killed here: the open chunk is lost, the closed ones are in the file
    out = tmp_path / "fixed.mcap"
    recover(p, out)
    ticks = [m["tick"] for m in FlightRecord(out).topic("/a")]
    assert ticks == list(range(len(ticks))) and len(ticks) >= 190
    rec.close()


def test_the_appender_is_not_used_with_other_internals() -> None:
    class Other:
        pass

    assert fw.ChunkAppender.attach(Other(), 1024) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("message, replaced", [
    ({"a": 1.5, "b": None}, False),
    ({"a": math.nan}, True),
    ({"a": [1.0, {"b": -math.inf}]}, True),
    ({"a": np.float64("inf")}, True),
    ({"a": np.array([1.0, np.nan])}, True),
    ({"a": np.arange(3)}, False),
    ({1: "int key", "b": math.nan}, True),  # orjson refuses int keys: the standard library's path
    ({"big": 2**70}, False),  # beyond 64 bits: the standard library's path
])
def test_encode_message_matches_the_standard_library(message: dict[object, object], replaced: bool) -> None:
    data, got = fw.encode_message(message)
    assert got is replaced
    expected = json.loads(fw.encode_json(fw.finite(message)))
    assert json.loads(data) == expected


def test_floats_read_back_exactly() -> None:
    rng = random.Random(1)
    xs = [rng.uniform(-1e6, 1e6) for _ in range(500)] + [1e16, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 0.1]
    data, _ = fw.encode_message({"x": xs})
    back = json.loads(data)["x"]
    assert all(a == b and math.copysign(1, a) == math.copysign(1, b) for a, b in zip(xs, back, strict=True))


def test_a_value_that_is_not_json_is_still_an_error() -> None:
    with pytest.raises(TypeError):
        fw.encode_message({"a": object()})


# --------------------------------------------------------------------------- the idle gate (real time)


def test_the_writer_works_only_in_idle_windows_while_the_loop_signals(tmp_path: Path) -> None:
    import time

    from controller.record.flight_queue import IdleGate

    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=True)
    gate = rec._queue.idle if rec._queue is not None else None
    assert isinstance(gate, IdleGate)
    gate.quiet_s = 5.0  # the test's "ticks" are slow
    c = rec.channel("/a", "s", SCHEMA)
    assert rec.drain(timeout_s=5.0)
    rec.idle(-1.0)  # a loop signals, with no idle time: the window is shut
    before = rec.stats.messages_written
    for k in range(5):
        rec.write(c, k, {"tick": k})
    time.sleep(0.2)
    assert rec.stats.messages_written == before  # nothing written during the "tick"
    rec.idle(1.0)  # the control thread sleeps 1 s: the writer takes the items
    deadline = time.monotonic() + 5.0
    while rec.stats.messages_written < before + 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.stats.messages_written == before + 5
    rec.idle(-1.0)
    rec.write(c, 10, {"tick": 10})
    st = rec.close(timeout_s=5.0)  # closing forces the gate open: everything is written
    assert st.errors == 0 and st.messages_dropped == 0
    assert [m["tick"] for m in FlightRecord(p).topic("/a")] == [0, 1, 2, 3, 4, 10]


def test_without_idle_signals_the_writer_works_freely(tmp_path: Path) -> None:
    import time

    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=True)
    c = rec.channel("/a", "s", SCHEMA)
    for k in range(3):
        rec.write(c, k, {"tick": k})
    deadline = time.monotonic() + 5.0
    while rec.stats.messages_written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.stats.messages_written == 3
    rec.close()


def test_a_half_full_queue_is_written_outside_the_windows(tmp_path: Path) -> None:
    import time

    p = tmp_path / "run.mcap"
    rec = FlightRecorder(p, realtime=True, queue_capacity=8)
    assert rec._queue is not None and rec._queue.idle is not None
    rec._queue.idle.quiet_s = 5.0
    c = rec.channel("/a", "s", SCHEMA)
    assert rec.drain(timeout_s=5.0)
    rec.idle(-1.0)
    for k in range(6):
        rec.write(c, k, {"tick": k})
    deadline = time.monotonic() + 5.0
    while rec.stats.messages_written < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.stats.messages_written >= 2  # pressure: the writer took items down to half the capacity
    st = rec.close(timeout_s=5.0)
    assert st.messages_dropped == 0 and st.messages_written == 6


def test_the_tap_clock_signals_idle_time_before_it_sleeps() -> None:
    from controller.clock import MonotonicClock
    from controller.record.taps import TapClock, TickCursor

    class Sink:
        def __init__(self) -> None:
            self.idle_s: list[float] = []
            self.records: list[tuple[str, object]] = []

        def put(self, topic: str, record: object) -> None:
            self.records.append((topic, record))

        def idle(self, remaining_s: float) -> None:
            self.idle_s.append(remaining_s)

    sink = Sink()
    clock = TapClock(MonotonicClock(), TickCursor(), sink)
    clock.sleep_until(clock.inner.now_s() + 0.01)
    assert len(sink.idle_s) == 1 and 0.0 < sink.idle_s[0] <= 0.01
    assert sink.records == []  # the time left is not a recorded clock reading
