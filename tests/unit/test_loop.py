"""FixedRateLoop: exact lockstep ticks; real-time overrun accounting on a fake clock."""

from __future__ import annotations

from controller.clock import SimClock
from controller.loop import FixedRateLoop, percentiles


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
    clock = FakeClock()
    loop = FixedRateLoop(clock, 100.0)
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


def test_percentiles_nearest_rank():
    vals = list(range(1, 101))
    assert percentiles(vals) == {"p50": 50, "p99": 99, "max": 100}
    assert percentiles([]) == {"p50": None, "p99": None, "max": None}
    # other levels: p99.9 of 1..1000 is the 999th value
    assert percentiles(list(range(1, 1001)), (0.9, 0.999)) == {"p90": 900, "p99.9": 999, "max": 1000}
    assert percentiles([], (0.9,)) == {"p90": None, "max": None}
