"""The silent-BMS bench's window plan, tick attribution and paired ratio (bench/power_tick.py).

The bench's figures decide issue 5's D10 criterion, so the parts that turn ticks into
the figure are tested here; the runs themselves are measured, never asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("power_tick")


def test_silent_windows_alternate_and_cover_the_run(bench):
    plan = bench.silent_windows(2.0, 3.0, 1.0, 12.0)
    # first silence 2-5 s, then healthy 5-6, silent 6-7, healthy 7-8 ... up to 12 s
    assert [(f["at_s"], f["until_s"]) for f in plan] == [(2.0, 5.0), (6.0, 7.0), (8.0, 9.0), (10.0, 11.0)]
    assert {f["target"] for f in plan} == {"bms"} and {f["fault"] for f in plan} == {"silent"}


def test_silent_windows_are_a_valid_rig_fault_plan(bench, tmp_path):
    from controller.config import load_rig

    rig = bench._write_rig(tmp_path, "virtual.yaml", bench.silent_windows(2.0, 3.0, 2.0, 12.0), radars=False)
    cfg, _ = load_rig(str(rig))
    assert [(f.at_s, f.until_s) for f in cfg.emulation.faults] == [(2.0, 5.0), (7.0, 9.0), (11.0, 13.0)]
    assert {(f.target, f.fault) for f in cfg.emulation.faults} == {("bms", "silent")}
    assert not any(d.driver in ("ars408", "iwr6843") for d in cfg.devices.values())


def test_split_by_window_attributes_ticks_by_start_time(bench):
    starts = [4.99, 5.0, 5.99, 6.0, 6.5, 7.0, 9.99]
    errors = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    groups = bench.split_by_window(errors, starts, origin_s=5.0, window_s=1.0, count_from_s=0.0)
    # window j = floor((t - 5) / 1): 5-6 is j=0 (healthy), 6-7 j=1 (silent) ...; before 5 s: none
    assert groups == {0: [2.0, 3.0], 1: [4.0, 5.0], 2: [6.0], 4: [7.0]}
    assert bench.split_by_window(errors, starts, 5.0, 1.0, count_from_s=7.0) == {2: [6.0], 4: [7.0]}
    # a guard drops the first 0.1 s of each window: 5.0, 6.0, 7.0 go; 5.99, 6.5, 9.99 stay
    assert bench.split_by_window(errors, starts, 5.0, 1.0, count_from_s=0.0, guard_s=0.1) == {0: [3.0], 1: [5.0], 4: [7.0]}


def test_paired_ratio_is_pooled_p99_ratio_with_an_interval_around_it(bench):
    # 10 pairs of 100 ticks: silent ticks are exactly 1.2x the healthy ones
    pairs = []
    for i in range(10):
        healthy = [50.0 + (i * 100 + k) % 97 for k in range(100)]
        pairs.append(([1.2 * h for h in healthy], healthy))
    out = bench.paired_ratio(pairs, seed=1)
    assert out["pairs"] == 10
    assert out["p99_ratio"] == pytest.approx(1.2, abs=1e-3)
    assert out["p50_ratio"] == pytest.approx(1.2, abs=1e-3)
    assert "p99_ratio_ci95" not in bench.paired_ratio(pairs, resamples=0)
    lo, hi = out["p99_ratio_ci95"]
    assert lo == pytest.approx(1.2, abs=1e-3) and hi == pytest.approx(1.2, abs=1e-3)


def test_paired_ratio_interval_widens_with_pair_to_pair_spread(bench):
    # every window has a 5 % tail; in half the silent windows that tail is longer: the
    # pooled ratio says 1.5, and the interval must show that it rests on a few windows
    pairs = []
    for i in range(8):
        healthy = [100.0] * 95 + [200.0] * 5
        silent = [100.0] * 95 + [200.0 if i % 2 else 300.0] * 5
        pairs.append((silent, healthy))
    out = bench.paired_ratio(pairs, seed=2)
    assert out["p99_ratio"] == pytest.approx(1.5)
    assert out["p50_ratio"] == pytest.approx(1.0)
    lo, hi = out["p99_ratio_ci95"]
    assert 1.0 <= lo < hi == pytest.approx(1.5)
