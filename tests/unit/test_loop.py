"""FixedRateLoop: exact lockstep ticks; real-time overrun accounting on a fake clock."""

from __future__ import annotations

import pytest

from controller.clock import SimClock
from controller.loop import FixedRateLoop, LatencyHistogram, percentiles


def test_lockstep_ticks_at_exact_times_and_advances_between():
    clock = SimClock()
    seen, advanced = [], []
    loop = FixedRateLoop(clock, 100.0, advance=lambda a, b: advanced.append((round(a, 9), round(b, 9))))
    loop.run(lambda k, now, dt: seen.append((k, round(now, 9), dt)) or k < 4)
    assert [s[1] for s in seen] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert advanced == [(0.0, 0.01), (0.01, 0.02), (0.02, 0.03), (0.03, 0.04)]
    assert loop.stats.ticks == 5
    assert clock.now_ns() == 40_000_000
    assert loop.stats.sim_time_s == 5 * loop.period_s
    # per-tick timing is recorded in real time only
    assert loop.stats.period_errors_us == loop.stats.tick_starts_s == loop.stats.tick_durations_us == []


class FakeClock:
    """A monotonic clock whose time moves only when the loop sleeps or a tick 'works'."""

    def __init__(self):
        self.t = 0.0

    def now_s(self):
        return self.t

    def now_ns(self):
        return int(self.t * 1e9)

    def sleep_until(self, deadline_s):
        self.t = max(self.t, deadline_s)


def test_realtime_overrun_is_counted_and_not_caught_up():
    """T01 one overrun (here a 2.5 T tick): counted once; the loop resumes at the next future deadline, no burst."""
    clock = FakeClock()
    loop = FixedRateLoop(clock, 100.0, keep_ticks=True)
    starts = []

    def tick(k, now, dt):
        starts.append(round(now, 6))
        clock.t += 0.025 if k == 2 else 0.001  # tick 2 takes 2.5 periods
        return k < 5

    loop.run(tick)
    # Ticks at 0, 10, 20 ms; tick 2 ends at 45 ms: deadlines 30 and 40 ms are skipped.
    assert starts == [0.0, 0.01, 0.02, 0.05, 0.06, 0.07]
    assert loop.stats.overruns == 1
    assert loop.stats.skipped_deadlines == 2
    # every tick started on its deadline; tick 2 ran 25 ms, the others 1 ms
    assert loop.stats.period_errors_us == [0.0] * 6
    assert [round(t, 6) for t in loop.stats.tick_starts_s] == starts
    assert [round(d) for d in loop.stats.tick_durations_us] == [1000, 1000, 25000, 1000, 1000, 1000]
    assert loop.overruns_last_second(0.07) == 1
    assert loop.overruns_last_second(1.5) == 0


def test_realtime_tick_starts_are_relative_to_the_loop_origin_on_the_clock():
    clock = FakeClock()
    clock.t = 7.25  # the run clock started earlier (the rig was built first)
    loop = FixedRateLoop(clock, 100.0, keep_ticks=True)

    def tick(k, now, dt):
        clock.t += 0.002
        return k < 2

    loop.run(tick)
    assert loop.stats.origin_s == 7.25
    assert [round(loop.stats.origin_s + t, 6) for t in loop.stats.tick_starts_s] == [7.25, 7.26, 7.27]


def test_percentiles_nearest_rank():
    vals = list(range(1, 101))
    assert percentiles(vals) == {"p50": 50, "p99": 99, "max": 100}
    assert percentiles([]) == {"p50": None, "p99": None, "max": None}
    # other levels: p99.9 of 1..1000 is the 999th value
    assert percentiles(list(range(1, 1001)), (0.9, 0.999)) == {"p90": 900, "p99.9": 999, "max": 1000}
    assert percentiles([], (0.9,)) == {"p90": None, "max": None}


def test_realtime_without_keep_ticks_holds_histograms_only():
    class LateClock(FakeClock):
        """Wakes from each sleep late by the next scripted latency (s)."""

        def __init__(self, lates_s):
            super().__init__()
            self.lates_s = list(lates_s)

        def sleep_until(self, deadline_s):
            self.t = max(self.t, deadline_s) + self.lates_s.pop(0)

    clock = LateClock([0.0, 30e-6, 250e-6, 7000e-6])
    loop = FixedRateLoop(clock, 100.0)

    def tick(k, now, dt):
        clock.t += 0.001
        return k < 3

    loop.run(tick)
    st = loop.stats
    assert st.period_errors_us == st.tick_durations_us == st.tick_starts_s == []
    assert st.ticks == 4 and st.period_error_hist.count == st.tick_duration_hist.count == 4
    out = st.summary(realtime=True)
    assert out["period_error_us"]["max"] == pytest.approx(7000, abs=0.1)
    assert out["period_error_us"]["p50"] == pytest.approx(31, abs=0.1)  # 2nd of 4 is 30 us: its bin's upper edge
    assert 1000 <= out["tick_duration_us"]["p99"] <= 1001


def test_latency_histogram_matches_exact_nearest_rank_within_one_bin():
    import random

    rng = random.Random(5)
    values = [rng.expovariate(1 / 80.0) + (rng.random() < 0.01) * rng.uniform(200, 3000) for _ in range(20_000)]
    values += [-3.0, 60_000.0]  # early wake-ups count in bin 0; beyond the range: overflow
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    levels = (0.5, 0.9, 0.99, 0.999, 1.0)
    exact = percentiles(values, levels)
    binned = h.percentiles(levels)
    assert h.overflow == 1
    assert binned["max"] == exact["max"] == 60_000.0
    for key in ("p50", "p90", "p99", "p99.9"):
        assert exact[key] <= binned[key] <= exact[key] + 1.0
    assert binned["p100"] == 60_000.0  # the overflow sample is the top rank: reported as the maximum
    assert LatencyHistogram().percentiles() == {"p50": None, "p99": None, "max": None}
