"""Fixed-rate loop: read -> update -> write, once per period, on an injected clock.

Lockstep (``SimClock``): tick k runs at exactly ``k * period``; between ticks the caller's
``advance(t0_s, t1_s)`` steps the simulated world and emulators, then the clock jumps to
``t1_s``. Deterministic, as fast as the CPU allows.

Real time (``MonotonicClock``): tick k is due at the absolute deadline ``t0 + k * period``
(no drift from accumulated sleeps). The start error of each tick is recorded. A tick that
ends after the next deadline is an *overrun*: it is counted, and the loop resumes at the
next deadline still in the future (missed deadlines are skipped, never caught up in a
burst, SAFETY.md T01). Overruns inside the last second are exposed for the ``system
lagging`` check (T02).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.clock import Clock, SimClock
from hal.snapshot import JsonValue, SnapshotError, State, decode, encode

#: one control tick ``(k, now_s, dt_s) -> keep_running`` (see :meth:`FixedRateLoop.run`)
TickFn = Callable[[int, float, float], bool]

class LatencyHistogram:
    """Constant-memory histogram of latencies in 1 us bins, for percentiles of long runs.

    Parameters
    ----------
    max_us : int, optional
        Upper end of the binned range (us, default 50 000: five periods at 100 Hz).
        Larger samples are counted in one overflow bin; their maximum is kept.

    Notes
    -----
    Memory is ``max_us + 1`` counters whatever the run length (about 400 kB by default),
    where a list of samples grows by about 32 bytes per tick. A percentile is the upper
    edge of the bin that holds the nearest-rank sample (so it is at most 1 us above the
    exact nearest-rank value), never above the largest sample; samples below 0 count in
    the first bin. A rank that falls among the overflow samples is reported as the
    largest sample (an upper bound, since their individual values are not kept).
    """

    __slots__ = ("_bins", "_max_us", "count", "max_value", "overflow")

    def __init__(self, max_us: int = 50_000) -> None:
        self._max_us = int(max_us)
        self._bins = [0] * (self._max_us + 1)
        self.count = 0
        self.overflow = 0
        self.max_value: float | None = None

    def record(self, value_us: float) -> None:
        """Count one sample (us)."""
        self.count += 1
        if self.max_value is None or value_us > self.max_value:
            self.max_value = value_us
        i = int(value_us)
        if i > self._max_us:
            self.overflow += 1
        else:
            self._bins[i if i > 0 else 0] += 1

    def percentiles(self, levels: Sequence[float] = (0.50, 0.99)) -> dict[str, float | None]:
        """Return the same keys as :func:`percentiles` (nearest rank, 1 us resolution, us).

        Parameters
        ----------
        levels : sequence of float, optional
            Quantile levels in (0, 1].
        """
        keys = _level_keys(levels)
        if not self.count:
            return {**dict.fromkeys(keys), "max": None}
        top = self.max_value
        assert top is not None
        # one pass over the bins, levels in rising rank order
        wanted = sorted((min(self.count, max(1, math.ceil(p * self.count))), k)
                        for k, p in zip(keys, levels, strict=True))
        out = dict.fromkeys(keys, round(top, 1))  # ranks in the overflow bin: the maximum
        seen, w = 0, 0
        for i, n in enumerate(self._bins):
            seen += n
            while w < len(wanted) and seen >= wanted[w][0]:
                out[wanted[w][1]] = round(min(float(i + 1), top), 1)
                w += 1
            if w == len(wanted):
                break
        return {**out, "max": round(top, 1)}


@dataclass
class LoopStats:
    """Counters and timing of a loop run.

    Real time only: every tick's period error (start minus deadline, us) and duration
    (us) go into constant-memory histograms (:class:`LatencyHistogram`), which
    ``summary.json`` reads. With ``keep_ticks`` (benches) the per-tick samples are also
    kept: ``period_errors_us``, ``tick_durations_us`` and ``tick_starts_s`` (start since
    the loop began, s), and ``origin_s``, the clock's time when the loop began (tick 0's
    deadline, s), so tick k started at ``origin_s + tick_starts_s[k]`` on the run clock
    (the clock that fault plans and the summary's transitions use).

    Notes
    -----
    The per-tick lists grow for the whole run (about 100 bytes per tick as Python floats:
    ~35 MB per hour at 100 Hz), so only benches ask for them; a main job of days holds
    the two histograms only.
    """

    keep_ticks: bool = False
    ticks: int = 0
    overruns: int = 0
    skipped_deadlines: int = 0
    period_errors_us: list[float] = field(default_factory=list)
    tick_durations_us: list[float] = field(default_factory=list)
    tick_starts_s: list[float] = field(default_factory=list)
    origin_s: float = 0.0
    period_error_hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    tick_duration_hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    wall_time_s: float = 0.0
    sim_time_s: float = 0.0

    def summary(self, realtime: bool) -> dict[str, object]:
        """Return the ``loop`` block of ``summary.json``.

        Parameters
        ----------
        realtime : bool
            True for a real-time run: adds ``skipped_deadlines``, ``period_error_us`` and
            ``tick_duration_us`` (:meth:`LatencyHistogram.percentiles`, us); False adds
            ``sim_speed_factor`` (simulated s per wall s).
        """
        out: dict[str, object] = {"ticks": self.ticks, "overruns": self.overruns, "realtime": realtime}
        if realtime:
            out["skipped_deadlines"] = self.skipped_deadlines
            out["period_error_us"] = self.period_error_hist.percentiles()
            out["tick_duration_us"] = self.tick_duration_hist.percentiles()
        else:
            out["sim_speed_factor"] = round(self.sim_time_s / self.wall_time_s, 1) if self.wall_time_s > 0 else None
        out["wall_time_s"] = round(self.wall_time_s, 3)
        return out


def _level_keys(levels: Sequence[float]) -> list[str]:
    """Summary keys of quantile levels: ``0.5 -> "p50"``, ``0.999 -> "p99.9"``."""
    return [f"p{level * 100:g}" for level in levels]


def percentiles(values: Sequence[float], levels: Sequence[float] = (0.50, 0.99)) -> dict[str, float | None]:
    """Return quantiles and the maximum of ``values`` (nearest-rank method).

    Parameters
    ----------
    values : sequence of float
        Samples, any unit; the results have the same unit.
    levels : sequence of float, optional
        Quantile levels in (0, 1], default p50 and p99; key ``p`` + level in percent
        (``0.999`` -> ``"p99.9"``).

    Returns
    -------
    dict
        ``{"p50", "p99", "max"}`` (for the default levels) rounded to 0.1; all None when
        ``values`` is empty. Nearest rank: the p-quantile is the ``ceil(p * n)``-th
        smallest value (Hyndman & Fan 1996, definition 1).
    """
    keys = _level_keys(levels)
    if not values:
        return {**dict.fromkeys(keys), "max": None}
    s = sorted(values)

    def rank(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]

    return {**{k: round(rank(p), 1) for k, p in zip(keys, levels, strict=True)}, "max": round(s[-1], 1)}


class FixedRateLoop:
    """Run ``tick(k, now_s, dt_s) -> bool`` at ``rate_hz`` until it returns False.

    Parameters
    ----------
    clock : Clock
        ``SimClock`` for lockstep, ``MonotonicClock`` for real time.
    rate_hz : float
        Tick rate (Hz), > 0.
    advance : callable ``(t0_s, t1_s) -> None``, optional
        Lockstep only: steps the simulated world from one tick to the next.
    keep_ticks : bool, optional
        Real time: also keep every tick's samples in :attr:`stats` (benches; memory
        grows with the run, see :class:`LoopStats`).
    on_timing : callable ``(k, start_s, period_error_s, duration_s, overrun) -> None``, optional
        Real time: told after every tick (the flight record's ``/loop`` channel); ``k``
        is the executed tick's index, ``overrun`` True when it ended past the next deadline.
    after_tick : callable ``(k) -> None``, optional
        Called between ticks, after tick ``k`` and everything the loop does after it (its
        timing), before the next one (the flight record's snapshots, issue 12 part 4):
        :meth:`snapshot` is the loop's state there, and a loop given it by :meth:`restore`
        goes on from that point (a replay from a snapshot).
    """

    def __init__(self, clock: Clock, rate_hz: float, advance: Callable[[float, float], None] | None = None,
                 keep_ticks: bool = False,
                 on_timing: Callable[[int, float, float, float, bool], None] | None = None,
                 after_tick: Callable[[int], None] | None = None) -> None:
        if not rate_hz > 0:
            raise ValueError("rate_hz must be > 0")
        self.clock = clock
        self.period_s = 1.0 / rate_hz
        self.period_ns = int(round(1e9 / rate_hz))
        self.advance = advance
        self.lockstep = isinstance(clock, SimClock)
        self.stats = LoopStats(keep_ticks=keep_ticks)
        self._recent_overruns: deque[float] = deque()
        self.on_timing = on_timing
        self.after_tick = after_tick
        #: real time, set before each ``after_tick``: the grid origin, the next deadline's
        #: index and the last tick's start (the loop's locals a snapshot needs)
        self._between: tuple[float, int, float] | None = None
        self._resume: State | None = None

    def snapshot(self) -> State:
        """Return the loop's state between two ticks (call it from ``after_tick``).

        Lockstep: the next tick's index. Real time besides: the grid origin, the next
        deadline's index (overruns skip deadlines), the last tick's start, the overruns of
        the last second (SAFETY.md T02) and the counters.
        """
        out: State = {"ticks": self.stats.ticks, "overruns": self.stats.overruns,
                      "skipped_deadlines": self.stats.skipped_deadlines}
        if not self.lockstep and self._between is not None:
            t0, k, last_start = self._between
            out.update({"origin_s": encode(t0), "deadline_index": k, "last_start_s": encode(last_start),
                        "recent_overruns_s": encode(list(self._recent_overruns))})
        return out

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Go on from a :meth:`snapshot`: the next :meth:`run` starts with the tick after it.

        Raises
        ------
        SnapshotError
            For a real-time loop given a snapshot without the real-time part.
        """
        if not self.lockstep and "origin_s" not in state:
            raise SnapshotError("a real-time loop needs a real-time loop snapshot")
        self._resume = dict(state)

    def overruns_last_second(self, now_s: float) -> int:
        """Return the number of overruns whose tick started within 1 s before ``now_s``.

        For the ``system lagging`` check (SAFETY.md T02); per tick, amortised O(1).

        Parameters
        ----------
        now_s : float
            Current time on the loop's clock (s), never earlier than a previous call.
        """
        q = self._recent_overruns
        while q and q[0] < now_s - 1.0:
            q.popleft()
        return len(q)

    def run(self, tick: TickFn, max_ticks: int | None = None) -> LoopStats:
        """Run until ``tick`` returns False or ``max_ticks`` ticks have run.

        Parameters
        ----------
        tick : callable ``(k, now_s, dt_s) -> bool``
            One control tick: ``k`` counts executed ticks from 0, ``now_s`` is the tick's
            start on the clock (s), ``dt_s`` the time since the previous tick's start (s;
            the nominal period on the first tick and in lockstep). Return False to stop.
        max_ticks : int, optional
            Stop after this many executed ticks.

        Returns
        -------
        LoopStats
            :attr:`stats` (its ``wall_time_s`` is set even when ``tick`` raises).
        """
        wall0 = time.perf_counter()
        try:
            if self.lockstep:
                self._run_lockstep(tick, max_ticks)
            else:
                self._run_realtime(tick, max_ticks)
        finally:
            self.stats.wall_time_s = time.perf_counter() - wall0
        return self.stats

    def _run_lockstep(self, tick: TickFn, max_ticks: int | None) -> None:
        clock: SimClock = self.clock  # type: ignore[assignment]
        base_ns = clock.now_ns()
        k = 0
        if self._resume is not None:  # the SimClock still reads 0: tick k is at k periods
            k = self.stats.ticks = int(self._resume["ticks"])  # type: ignore[arg-type]
            self._resume = None
        while max_ticks is None or k < max_ticks:
            t_ns = base_ns + k * self.period_ns
            clock.sleep_until(t_ns * 1e-9)
            now = t_ns * 1e-9
            keep = tick(k, now, self.period_s)
            self.stats.ticks += 1
            self.stats.sim_time_s = (k + 1) * self.period_s
            if not keep:
                break
            if self.after_tick is not None:
                self.after_tick(k)
            if self.advance is not None:
                self.advance(now, (t_ns + self.period_ns) * 1e-9)
            k += 1

    def _run_realtime(self, tick: TickFn, max_ticks: int | None) -> None:
        clock = self.clock
        resume, self._resume = self._resume, None
        if resume is None:
            start = getattr(clock, "start", None)
            if start is not None:
                start()  # a frozen MonotonicClock runs from the first tick (ARCHITECTURE.md 3)
            t0 = clock.now_s()
        else:
            t0 = float(decode(resume["origin_s"]))  # type: ignore[arg-type]
        self.stats.origin_s = t0
        keep_ticks = self.stats.keep_ticks
        period_hist, duration_hist = self.stats.period_error_hist, self.stats.tick_duration_hist
        k = 0
        last_start = None
        if resume is not None:
            k = int(resume["deadline_index"])  # type: ignore[arg-type]
            last_start = float(decode(resume["last_start_s"]))  # type: ignore[arg-type]
            self.stats.ticks = int(resume["ticks"])  # type: ignore[arg-type]
            self.stats.overruns = int(resume["overruns"])  # type: ignore[arg-type]
            self.stats.skipped_deadlines = int(resume["skipped_deadlines"])  # type: ignore[arg-type]
            self._recent_overruns = deque(decode(resume["recent_overruns_s"]))  # type: ignore[call-overload]
        while max_ticks is None or self.stats.ticks < max_ticks:
            deadline = t0 + k * self.period_s
            clock.sleep_until(deadline)
            start = clock.now_s()
            error_us = (start - deadline) * 1e6
            period_hist.record(error_us)
            if keep_ticks:
                self.stats.period_errors_us.append(error_us)
                self.stats.tick_starts_s.append(start - t0)
            dt = self.period_s if last_start is None else start - last_start
            last_start = start
            keep = tick(self.stats.ticks, start, dt)
            end = clock.now_s()
            duration_us = (end - start) * 1e6
            duration_hist.record(duration_us)
            if keep_ticks:
                self.stats.tick_durations_us.append(duration_us)
            self.stats.ticks += 1
            self.stats.sim_time_s = end - t0
            if not keep:
                break
            k += 1
            next_deadline = t0 + k * self.period_s
            overrun = end > next_deadline
            if overrun:
                self.stats.overruns += 1
                self._recent_overruns.append(start)
                k_next = math.floor((end - t0) / self.period_s) + 1
                self.stats.skipped_deadlines += k_next - k
                k = k_next
            if self.on_timing is not None:
                self.on_timing(self.stats.ticks - 1, start, error_us * 1e-6, duration_us * 1e-6, overrun)
            if self.after_tick is not None:
                self._between = (t0, k, start)
                self.after_tick(self.stats.ticks - 1)
