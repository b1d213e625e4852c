"""The recording-cost bench's window plan, tick pairing and ratios (bench/record.py).

The bench's figures decide issue 12's recording budget, so the parts that turn ticks and
wall times into the figures are tested here; the runs themselves are measured, never
asserted. Also: the recording switch (``TickCursor.recording``) is on by default and,
off, keeps the taps from recording anything while the port still works.
"""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from controller.record.flight_log import MemorySink
from controller.record.taps import TapBus, TapClock, TapLink, TickCursor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("record")


def test_windows_alternate_order_from_pair_to_pair(bench):
    # before the origin: on; then pairs (on, off), (off, on), (on, off) ...
    assert bench.window_recording(0.0, 5.0, 1.0) is True
    assert bench.window_recording(4.99, 5.0, 1.0) is True
    got = [bench.window_recording(5.0 + j + 0.5, 5.0, 1.0) for j in range(8)]
    assert got == [True, False, False, True, True, False, False, True]
    # each pair holds one window of each condition
    assert all(got[2 * p] != got[2 * p + 1] for p in range(4))


def test_window_pairs_group_guard_and_label(bench):
    origin, w, guard = 1.0, 1.0, 0.2
    starts = [i * 0.1 for i in range(60)]  # 0.0 .. 5.9 s, 10 ticks per window
    labels = [bench.window_recording(t, origin, w) for t in starts]
    values = [100.0 + (50.0 if on else 0.0) + t for t, on in zip(starts, labels, strict=True)]
    pairs = bench.window_pairs(values, starts, labels, origin, w, guard, end_s=6.0)
    # windows 1-2 s, 2-3 s (pair 0) and 3-4 s, 4-5 s (pair 1); 5-6 s lacks its partner
    assert len(pairs) == 2
    for on, off in pairs:
        assert len(on) == len(off) == 8  # the first 0.2 s of each window left out
        assert min(on) >= 150.0 and max(off) < 150.0
    # pair 1 was (off, on): its "on" values are the later window's
    assert min(pairs[1][0]) > max(pairs[1][1])


def test_window_pairs_drop_a_pair_cut_by_the_end_or_mixed(bench):
    starts = [i * 0.1 for i in range(40)]
    labels = [bench.window_recording(t, 0.0, 1.0) for t in starts]
    vals = [1.0] * 40
    assert len(bench.window_pairs(vals, starts, labels, 0.0, 1.0, 0.0, end_s=4.0)) == 2
    assert len(bench.window_pairs(vals, starts, labels, 0.0, 1.0, 0.0, end_s=3.95)) == 1  # pair 1 ends at 4 s
    mixed = list(labels)
    mixed[5] = not mixed[5]  # a window with both labels is no clean pair
    assert len(bench.window_pairs(vals, starts, mixed, 0.0, 1.0, 0.0, end_s=4.0)) == 1
    with pytest.raises(ValueError):
        bench.window_pairs(vals, starts[:-1], labels, 0.0, 1.0, 0.0, end_s=4.0)


def test_paired_p99_diff(bench):
    on = [float(i) for i in range(100)]
    off = [float(i) - 10.0 for i in range(100)]
    r = bench.paired_p99_diff([(on, off)] * 5, resamples=200)
    assert r["pairs"] == 5
    assert r["p99_on_us"] == 98.0 and r["p99_off_us"] == 88.0  # nearest rank
    assert r["p99_diff_us"] == 10.0 and r["p50_diff_us"] == 10.0
    assert r["p99_diff_ci95_us"] == [10.0, 10.0]  # identical pairs: no spread
    assert "p99_diff_ci95_us" not in bench.paired_p99_diff([(on, off)], resamples=0)
    with pytest.raises(ValueError):
        bench.paired_p99_diff([])


def test_median_ratio_is_without_over_with(bench):
    r = bench.median_ratio([(2.0, 1.8), (1.0, 0.9), (4.0, 2.0)], resamples=500)
    assert r["ratios"] == [0.9, 0.9, 0.5]
    assert r["median"] == 0.9
    lo, hi = r["ci95"]
    assert 0.5 <= lo <= 0.9 <= hi <= 0.9
    with pytest.raises(ValueError):
        bench.median_ratio([])
    with pytest.raises(ValueError):
        bench.median_ratio([(0.0, 1.0)])


# --------------------------------------------------------------------------- the switch


class _Clock:
    def now_s(self) -> float:
        return 1.5

    def now_ns(self) -> int:
        return 1_500_000_000


class _Link:
    is_open = True

    def read(self, max_bytes: int = 4096) -> bytes:
        return b"\x01\x02"

    def write(self, data: bytes) -> int:
        return len(data)


def test_recording_is_on_by_default_and_off_records_nothing():
    cursor = TickCursor()
    assert cursor.recording is True
    sink = MemorySink()
    bus = TapBus(can.Bus(interface="virtual", channel="bench-record-switch", receive_own_messages=True), "can0",
                 cursor, sink)
    link = TapLink(_Link(), "mcu", cursor, sink)  # type: ignore[arg-type]
    clock = TapClock(_Clock(), cursor, sink)  # type: ignore[arg-type]
    try:
        cursor.begin(0, 0)
        cursor.recording = False
        bus.send(can.Message(arbitration_id=0x10, data=b"\x01", is_extended_id=False))
        assert bus.recv(timeout=1.0) is not None  # the port works, nothing recorded
        assert link.read() == b"\x01\x02" and link.write(b"\x03") == 1
        assert clock.now_s() == 1.5 and clock.now_ns() == 1_500_000_000
        assert sink.records == [] and cursor.crc32 == 0
        cursor.begin(1, 10_000_000)
        cursor.recording = True
        bus.send(can.Message(arbitration_id=0x10, data=b"\x01", is_extended_id=False))
        assert bus.recv(timeout=1.0) is not None
        link.read()
        clock.now_s()
        assert [t for t, _ in sink.records] == ["/out/can/can0", "/in/can/can0", "/in/serial/mcu", "/in/clock"]
        assert cursor.crc32 != 0
    finally:
        bus.shutdown()
