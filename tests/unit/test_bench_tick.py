"""The real-time tick bench's choice of ticks (bench/tick.py).

Its ratios compare the controller's flying ticks with the reference tick; which ticks a
figure takes is decided from the record, tested here on the corpus's real-time run. The
run itself is measured, never asserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.record.reader import FlightRecord

ROOT = Path(__file__).resolve().parents[2]
RT_RECORD = ROOT / "tests" / "replay_corpus" / "realtime.mcap"


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("tick")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    if not RT_RECORD.is_file():
        pytest.skip(f"{RT_RECORD} absent")
    d = tmp_path_factory.mktemp("runs") / "run-1"
    d.mkdir()
    shutil.copy(RT_RECORD, d / "run.mcap")
    return d.parent


def test_loop_rows_keep_only_the_ticks_of_the_states_asked_for(bench, run_dir):
    rec = FlightRecord(RT_RECORD)
    states = {r["tick"]: r["state"] for r in rec.topic("/tick")}
    loop = {r["tick"]: r["tick_duration_s"] for r in rec.topic("/loop")}
    dur_all, err_all = bench._loop_rows(run_dir)
    assert len(dur_all) == len(err_all) == len(loop)
    for wanted in ({"active"}, {"boot"}, {"boot", "idle"}):
        expect = sorted(v * 1e6 for k, v in loop.items() if states.get(k) in wanted)
        dur, _err = bench._loop_rows(run_dir, frozenset(wanted))
        assert list(dur) == pytest.approx(expect, rel=0, abs=1e-9)
    assert len(bench._loop_rows(run_dir, frozenset({"active"}))[0]) < len(dur_all)  # boot ticks left out
    assert len(bench._loop_rows(run_dir, frozenset({"no such state"}))[0]) == 0
