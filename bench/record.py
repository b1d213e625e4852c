"""Benchmark: what the flight record (``run.mcap``) costs, lockstep and real time (issue 12).

Issue 12's budget: recording costs <= 10 % of lockstep speed (speed ratio with/without
>= 0.90) and <= 20 us of tick p99 in real time. Both are measured here, each condition
side by side with the other, on the virtual rig (``rigs/virtual.yaml``) flying
``missions/square.yaml`` with the same seed.

Lockstep: interleaved runs
    ``--pairs`` pairs of lockstep runs of ``--duration`` s of run time, one with
    ``RunOptions(record=True)`` (the default: taps on every port, ``/tick`` and the
    components' telemetry, each message handed to the writer process as a tuple and
    encoded there, :mod:`controller.record.flight_proc`) and one with
    ``record=False`` (no taps, no file), the order alternating from pair to pair (on/off,
    off/on, ...) so that a slow drift of the machine hits both; one warm-up run of each
    is discarded. Per run: the loop's wall time (the speed's denominator, as
    ``summary.json`` -> ``loop.sim_speed_factor``) and the whole job's wall time (build,
    attachments, closing the file). ``speed_ratio`` is the median over pairs of
    (speed with) / (speed without) = loop wall without / loop wall with, with a
    bootstrap 95 % interval (pairs resampled, percentile interval; Efron & Tibshirani
    1993). With few pairs the interval of a median is coarse: ``--pairs`` tightens it.
    Also the loop's CPU time (``time.thread_time`` around the loop: the lockstep loop
    runs in one thread, encoding included; the writer process's work is not in it) and
    ``cpu_speed_ratio``, the same median
    ratio from CPU times: on a shared machine the wall time also counts the time the
    process waited for a CPU, which the CPU time leaves out (the verdict keeps the
    wall-time ratio, the issue's definition). Per run also the loop thread's user and
    system CPU time and context switches (``getrusage(RUSAGE_THREAD)`` around the loop:
    ``loop_rusage``; medians per tick in ``loop_rusage_per_tick``).

Lockstep, where the extra CPU goes: ``--lockstep-variant``
    ``discard`` or ``pertick`` adds a third run to each pair, recorded with one thing
    changed, the order rotating from triplet to triplet: ``discard`` pickles every batch
    with the recorder's pickler and drops it (the writer process still gets its control
    records and ``close``, but writes no message: no JSON, no zstd, almost nothing in the
    pipe); ``pertick`` pickles the waiting messages at every tick's start instead of
    every 0.5 s (each tick's rows freed by the next tick). Reported as
    ``variant_<name>``: its speed and CPU ratios against the run without recording of
    the same triplet, and ``cpu_variant_over_base`` (its loop CPU over the recorded run's).

Real time: paired windows inside ONE run
    One real-time run (``--rt-duration`` s). From ``--rt-warmup`` s on (boot, POST and
    arming recorded) the run is cut into windows of ``--window`` s, taken in pairs, and
    recording is switched on in one window of each pair and off in the other, the order
    alternating from pair to pair. The switch is :attr:`TickCursor.recording
    <controller.record.taps.TickCursor>`: while it is False every tap returns before it
    counts a call, folds the CRC or builds a record, and the tick builds no ``/tick`` and
    no component record (``FlightSession.row`` drops ``/loop``), so an "off" window does
    none of the recording work, not only none of the writing; what is left is the taps'
    indirection and one attribute test per port call. (Events are still recorded: they
    are rare, not per tick.) The bench sets the flag at each tick's start from the tick's
    start time, with a :class:`TickCursor` subclass put in place of the session's for
    this run only, and notes in the record's metadata (``bench_record``) that the file
    was recorded with windows off and is **not replayable** (a replay needs every input).
    Both conditions share the process, the vehicle, the writer thread and the machine's
    drifts; the writer thread still drains an "on" window's queue into the next window,
    so the first ``--guard`` s of each window are not counted. This design was chosen
    over alternating short runs because the switch is clean (a one-line test per
    recording site) and run-to-run variance of a real-time run is larger than the cost
    measured. Reported per condition: pooled nearest-rank p50/p99/p99.9 of the tick
    duration (us, the work a tick does: the figure the budget is about) and of the period
    error (start minus deadline, us); ``tick_p99_diff_us`` = p99 with - p99 without, with
    a bootstrap 95 % interval over window pairs (whole windows resampled, so the ticks'
    correlation inside a window is kept; Kunsch 1989).

Real time, where the extra time goes: per tick, the control thread's CPU time
    (``time.thread_time_ns``) and context switches (``getrusage(RUSAGE_THREAD)``) around
    the tick function, paired by window as the duration is: ``tick_cpu`` (the tick's own
    work) and ``tick_wait`` (duration - CPU: the time the thread did not run inside the
    tick -- the interpreter lock held by another thread, a blocking call, preemption),
    each with ``p50_diff_us``, ``p99_diff_us`` and ``mean_diff`` (with - without).
    ``--variant`` changes one thing for the whole run, to see whether the gap follows it:
    ``discard`` (each batch pickled and dropped: the writer process gets nothing to do),
    ``nopickle`` (dropped before pickling), ``noclock`` (no ``/in/clock`` tap), ``nice``
    (writer process at nice 19), ``pin`` (writer on the last CPU, the control thread on the
    others), ``thread`` (the in-process writer thread). Except ``base`` these record files
    that are not complete; only the timing figures mean anything.

Also reported: ``run.mcap`` bytes per second of run time and messages per tick (the
lockstep runs with recording; the real-time run's, per recorded tick), messages per topic
family.

Prints one JSON object. Usage: ``python bench/record.py [--pairs N] [--duration S]
[--rt-duration S] [--window S] [--guard S] [--rt-warmup S] [--no-fly] [--variant V]
[--lockstep-variant V] [--skip-lockstep] [--skip-realtime]`` (defaults: 6 pairs of 20 s
lockstep runs, one 60 s real-time run with 1 s windows: about 2 minutes). The square
mission lasts about 75 s: a longer real-time run needs ``--no-fly`` (idle, every bus
still streaming). Run folders go to a temporary folder; nothing is left behind. Never
part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import controller.operator as operator_mod  # noqa: E402
import controller.record.session as session_mod  # noqa: E402
import controller.run as run_mod  # noqa: E402
from controller.loop import FixedRateLoop, LoopStats, percentiles  # noqa: E402
from controller.record.taps import TickCursor  # noqa: E402
from controller.run import RunOptions, run_main_job  # noqa: E402

RIG = ROOT / "rigs" / "virtual.yaml"
MISSION = ROOT / "missions" / "square.yaml"
LEVELS = (0.5, 0.99, 0.999)
BOOTSTRAP_RESAMPLES = 2000
#: Issue 12's budget.
BUDGET_SPEED_RATIO = 0.90
BUDGET_TICK_P99_US = 20.0


# --------------------------------------------------------------------------- pure helpers


def window_recording(t_s: float, origin_s: float, window_s: float) -> bool:
    """Whether recording is on for a tick that starts at ``t_s`` (run clock, s).

    Before ``origin_s``: on (boot, POST and arming are recorded). From ``origin_s`` the
    windows ``j = floor((t - origin_s) / window_s)`` form pairs ``(2p, 2p + 1)``; even
    pairs are (on, off), odd pairs (off, on), so neither condition always comes first.
    """
    if t_s < origin_s:
        return True
    j = int((t_s - origin_s) // window_s)
    p, half = divmod(j, 2)
    return half == (p % 2)


def window_pairs(values: Sequence[float], starts_s: Sequence[float], recording: Sequence[bool], origin_s: float,
                 window_s: float, guard_s: float, end_s: float) -> list[tuple[list[float], list[float]]]:
    """Group per-tick values by window and return whole window pairs as ``(on, off)``.

    Parameters
    ----------
    values : sequence of float
        One value per tick (e.g. tick duration, us).
    starts_s : sequence of float
        Each tick's start on the run clock (s).
    recording : sequence of bool
        Whether each tick was recorded (as the cursor was set; the label, not recomputed).
    origin_s, window_s : float
        The window grid (s), as in :func:`window_recording`.
    guard_s : float
        Ticks in the first ``guard_s`` of a window are left out (s).
    end_s : float
        The end of the run's last tick (s): a pair whose second window ends after it is
        left out.

    Returns
    -------
    list of (list, list)
        Per pair in time order, the values of its recorded and its unrecorded ticks. A
        pair is kept when both windows hold counted ticks of one condition each.

    Raises
    ------
    ValueError
        When the sequences differ in length.
    """
    if not len(values) == len(starts_s) == len(recording):
        raise ValueError("values, starts_s and recording differ in length")
    windows: dict[int, tuple[list[float], set[bool]]] = {}
    for v, t, on in zip(values, starts_s, recording, strict=True):
        if t < origin_s:
            continue
        j, into = divmod(t - origin_s, window_s)
        if into < guard_s:
            continue
        vals, labels = windows.setdefault(int(j), ([], set()))
        vals.append(v)
        labels.add(bool(on))
    out = []
    for p in sorted({j // 2 for j in windows}):
        a, b = windows.get(2 * p), windows.get(2 * p + 1)
        if a is None or b is None or origin_s + (2 * p + 2) * window_s > end_s + 1e-9:
            continue
        if len(a[1]) != 1 or len(b[1]) != 1 or a[1] == b[1]:
            continue  # a window with both labels (or a pair of one) is no clean pair
        out.append((a[0], b[0]) if True in a[1] else (b[0], a[0]))
    return out


def _q(arrays: Sequence[np.ndarray], p: float) -> float:
    """Nearest-rank quantile of the pooled arrays (Hyndman & Fan 1996, def. 1)."""
    return float(np.quantile(np.concatenate(arrays), p, method="inverted_cdf"))


def paired_p99_diff(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], seed: int = 0,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """p99 with - p99 without over window pairs, with a bootstrap 95 % interval.

    Parameters
    ----------
    pairs : sequence of (on values, off values)
        Per window pair, the values (us) of the recorded and the unrecorded window.
    seed : int
        Seed of the resampling.
    resamples : int
        Bootstrap resamples (0: no interval).

    Returns
    -------
    dict
        ``pairs``, ``p99_on_us``, ``p99_off_us``, ``p99_diff_us`` (pooled nearest-rank),
        ``p50_diff_us``, and ``p99_diff_ci95_us`` (2.5 and 97.5 % of the difference over
        resamples of whole pairs; absent when ``resamples`` is 0).

    Raises
    ------
    ValueError
        For no pairs.
    """
    if not pairs:
        raise ValueError("no window pairs")
    on = [np.asarray(a, float) for a, _ in pairs]
    off = [np.asarray(b, float) for _, b in pairs]
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "p99_on_us": round(_q(on, 0.99), 1), "p99_off_us": round(_q(off, 0.99), 1),
        "p99_diff_us": round(_q(on, 0.99) - _q(off, 0.99), 1),
        "p50_diff_us": round(_q(on, 0.5) - _q(off, 0.5), 1),
    }
    if resamples > 0:
        rng = np.random.default_rng(seed)
        diffs = np.empty(resamples)
        for b in range(resamples):
            idx = rng.integers(0, len(pairs), len(pairs))
            diffs[b] = _q([on[i] for i in idx], 0.99) - _q([off[i] for i in idx], 0.99)
        out["p99_diff_ci95_us"] = [round(float(np.quantile(diffs, 0.025)), 1),
                                   round(float(np.quantile(diffs, 0.975)), 1)]
    return out


def median_ratio(pairs: Sequence[tuple[float, float]], seed: int = 0,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Median over pairs of ``without / with`` (a speed ratio from wall times), bootstrapped.

    Parameters
    ----------
    pairs : sequence of (wall with, wall without)
        Wall times (s) of the two runs of each pair; the ratio of speeds at equal run
        time is ``without / with``.
    seed, resamples : int
        As in :func:`paired_p99_diff`.

    Returns
    -------
    dict
        ``ratios`` per pair, ``median``, ``ci95`` (percentile interval of the median over
        resamples of pairs; absent when ``resamples`` is 0).

    Raises
    ------
    ValueError
        For no pairs or a wall time that is not positive.
    """
    if not pairs:
        raise ValueError("no pairs")
    if any(a <= 0 or b <= 0 for a, b in pairs):
        raise ValueError("wall times must be > 0")
    r = np.array([b / a for a, b in pairs])
    out: dict[str, Any] = {"ratios": [round(float(x), 3) for x in r], "median": round(float(np.median(r)), 3)}
    if resamples > 0:
        rng = np.random.default_rng(seed)
        meds = np.median(r[rng.integers(0, len(r), (resamples, len(r)))], axis=1)
        out["ci95"] = [round(float(np.quantile(meds, 0.025)), 3), round(float(np.quantile(meds, 0.975)), 3)]
    return out


# --------------------------------------------------------------------------- runs


def _record_stats(folder: Path) -> dict[str, Any]:
    """Size, message count and per-family counts of a run's ``run.mcap``."""
    from mcap.reader import make_reader

    path = folder / "run.mcap"
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None
    st = summary.statistics
    families: dict[str, int] = {}
    for ch_id, n in st.channel_message_counts.items():
        topic = summary.channels[ch_id].topic
        fam = "/".join(topic.split("/")[:3]) if topic.startswith(("/in/", "/out/")) else topic
        fam = "/radar/*/tracks" if topic.startswith("/radar/") else fam
        families[fam] = families.get(fam, 0) + n
    return {"bytes": path.stat().st_size, "messages": st.message_count, "chunks": st.chunk_count,
            "messages_by_family": dict(sorted(families.items()))}


def _timed_loop_run(cpu_s: list[float], usage: list[dict[str, float]] | None = None) -> Callable[..., LoopStats]:
    """``FixedRateLoop.run`` that appends the calling thread's CPU time of the loop (s) to ``cpu_s``.

    With ``usage``, also the loop thread's user and system CPU time (s) and its voluntary
    and involuntary context switches (``getrusage(RUSAGE_THREAD)`` around the loop): the
    system time is the kernel's share (the pipe writes to the writer process among it).
    """
    original = FixedRateLoop.run

    def run(self: FixedRateLoop, tick: Callable[[int, float, float], bool], max_ticks: int | None = None) -> LoopStats:
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        c0 = time.thread_time()
        try:
            return original(self, tick, max_ticks)
        finally:
            cpu_s.append(time.thread_time() - c0)
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
            if usage is not None:
                usage.append({"user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                              "vcsw_n": float(r1.ru_nvcsw - r0.ru_nvcsw),
                              "ivcsw_n": float(r1.ru_nivcsw - r0.ru_nivcsw)})

    return run


class _TickCpu:
    """Per tick of the control thread: CPU time (us) and context switches (voluntary, involuntary).

    ``FixedRateLoop.run`` is wrapped so that its ``tick`` is timed with
    ``time.thread_time_ns`` and ``getrusage(RUSAGE_THREAD)`` around it: the tick's own work
    (CPU) apart from the time it did not run (wall - CPU: waiting for the interpreter lock
    held by another thread, a blocking call, preemption by another process).
    """

    def __init__(self) -> None:
        self.cpu_us: list[float] = []
        self.vcsw_n: list[int] = []
        self.ivcsw_n: list[int] = []

    def patch(self) -> Any:
        original = FixedRateLoop.run
        me = self

        def run(loop: FixedRateLoop, tick: Callable[[int, float, float], bool],
                max_ticks: int | None = None) -> LoopStats:
            who = resource.RUSAGE_THREAD
            cpu, rus = time.thread_time_ns, resource.getrusage

            def timed(k: int, now_s: float, dt_s: float) -> bool:
                r0, c0 = rus(who), cpu()
                try:
                    return tick(k, now_s, dt_s)
                finally:
                    c1, r1 = cpu(), rus(who)
                    me.cpu_us.append((c1 - c0) * 1e-3)
                    me.vcsw_n.append(r1.ru_nvcsw - r0.ru_nvcsw)
                    me.ivcsw_n.append(r1.ru_nivcsw - r0.ru_nivcsw)

            return original(loop, timed, max_ticks)

        return mock.patch.object(FixedRateLoop, "run", run)


def _variant_patches(variant: str, stack: contextlib.ExitStack) -> None:
    """Put the real-time half's ``--variant`` in place (see ``--help``); ``base`` changes nothing."""
    from controller.record.flight_proc import ProcessRecorder
    from controller.record.taps import TapClock

    if variant == "base":
        return
    if variant == "thread":
        stack.enter_context(mock.patch.dict(os.environ, {"QIKI_FLIGHT_WRITER": "thread"}))
        return
    if variant in ("discard", "nopickle"):
        idle0 = ProcessRecorder.idle

        def idle(self: ProcessRecorder, remaining_s: float) -> None:
            items, self._items = self._items, []
            if variant == "discard":  # the hand-over's work (the recorder's pickler), then dropped
                self._pickle_file.seek(0)
                self._pickler.dump(items)
            self._settle()
            idle0(self, remaining_s)  # control records (channels...) still go

        stack.enter_context(mock.patch.object(ProcessRecorder, "idle", idle))
        return
    if variant == "noclock":
        stack.enter_context(mock.patch.object(TapClock, "now_s", lambda self: self.inner.now_s()))
        stack.enter_context(mock.patch.object(TapClock, "now_ns", lambda self: self.inner.now_ns()))
        return
    if variant in ("nice", "pin"):
        init0 = ProcessRecorder.__init__

        def init(self: ProcessRecorder, *a: Any, **kw: Any) -> None:
            init0(self, *a, **kw)
            if variant == "nice":
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, 19)
            else:  # the writer on the last CPU, the control thread (which opens the record) on the others
                last = max(os.sched_getaffinity(0))
                os.sched_setaffinity(self._proc.pid, {last})
                rest = os.sched_getaffinity(0) - {last}
                if rest:
                    os.sched_setaffinity(0, rest)

        stack.enter_context(mock.patch.object(ProcessRecorder, "__init__", init))
        return
    raise SystemExit(f"record: unknown --variant {variant!r}")


def _lockstep_discard(stack: contextlib.ExitStack) -> None:
    """Lockstep ``--lockstep-variant discard``: every batch is pickled as a run does, then dropped.

    ``ProcessRecorder._pack_items`` is replaced by one that pickles the waiting messages
    with the recorder's own pickler and appends nothing to the buffer: the control
    records (channels, layouts, attachments, metadata, ``close``) still reach the writer
    process, which answers ``close`` as usual, but it writes no message (no JSON, no zstd)
    and the pipe carries almost nothing. The tick's work is unchanged; what the child and
    the pipe cost the loop thread is what ``base`` minus ``discard`` shows. The file it
    leaves holds no message.
    """
    from controller.record.flight_proc import ProcessRecorder

    def pack_items(self: ProcessRecorder) -> None:
        waiting = self._items
        items = waiting[:]
        del waiting[:len(items)]
        self._pickle_file.seek(0)
        self._pickler.dump(items)

    stack.enter_context(mock.patch.object(ProcessRecorder, "_pack_items", pack_items))


def _lockstep_pertick(stack: contextlib.ExitStack) -> None:
    """Lockstep ``--lockstep-variant pertick``: the waiting messages are pickled at every tick's start.

    The same pickling (the recorder's own pickler, memo off) on about six messages a tick
    instead of about 300 every 0.5 s of run time: a tick's rows are freed by the next
    tick instead of living up to 50 ticks, so the allocator hands the next tick the
    memory it freed (warm in the caches) rather than memory untouched since the last
    batch. The bytes go to the pipe when a chunk is due, as in a run; the file is the
    same. Compared with ``base``, it tells whether the batch lists' allocation pattern
    costs CPU time per instruction.
    """
    from controller.record.flight_proc import ProcessRecorder

    begin0 = session_mod.FlightSession.begin_tick

    def begin_tick(self: session_mod.FlightSession, tick: int, now_s: float) -> None:
        rec = self.recorder
        if isinstance(rec, ProcessRecorder) and rec._items:
            with rec._pack_lock:
                rec._pack_items()
        begin0(self, tick, now_s)

    stack.enter_context(mock.patch.object(session_mod.FlightSession, "begin_tick", begin_tick))


def _lockstep_run(tmp: Path, record: bool, duration_s: float, seed: int, fly: bool,
                  variant: str = "base") -> dict[str, Any]:
    opts = RunOptions(rig=str(RIG), mission=str(MISSION), duration_s=duration_s, seed=seed, runs_dir=str(tmp),
                      progress=False, record=record, arm=fly)
    cpu_s: list[float] = []
    usage: list[dict[str, float]] = []
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(FixedRateLoop, "run", _timed_loop_run(cpu_s, usage)))
        if record and variant == "discard":
            _lockstep_discard(stack)
        elif record and variant == "pertick":
            _lockstep_pertick(stack)
        _, s, folder = run_main_job(opts)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"record": record, "variant": variant if record else None, "job_wall_s": round(wall, 4),
                           "loop_wall_s": s["loop"]["wall_time_s"],
                           "loop_cpu_s": round(cpu_s[-1], 4) if cpu_s else None,
                           "sim_time_s": s["sim_time_s"], "ticks": s["loop"]["ticks"], "result": s["result"]}
    if usage:
        out["loop_rusage"] = {k: round(v, 4) for k, v in usage[-1].items()}
    if record and variant == "base":
        out["mcap"] = _record_stats(folder)
    return out


def _usage_medians(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median per tick of the loop thread's user and system CPU time (us) and context switches of ``runs``."""
    out: dict[str, float] = {}
    for key, name, scale in (("user_s", "user_us", 1e6), ("sys_s", "sys_us", 1e6), ("vcsw_n", "vcsw_n", 1.0),
                             ("ivcsw_n", "ivcsw_n", 1.0)):
        vals = [r["loop_rusage"][key] * scale / r["ticks"] for r in runs if "loop_rusage" in r and r["ticks"]]
        if vals:
            out[name] = round(float(np.median(vals)), 3)
    return out


def lockstep(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The lockstep half: interleaved pairs of runs with and without the record.

    With ``--lockstep-variant discard`` each pair becomes a triplet (with, without, with
    the batches discarded: :func:`_lockstep_discard`), the order rotating from triplet to
    triplet; the pairs of the verdict are the with/without runs of each triplet.
    """
    variants = ["base"] + ([args.lockstep_variant] if args.lockstep_variant != "base" else [])
    for rec in (True, False):  # warm-up (imports, caches), discarded
        _lockstep_run(tmp, rec, args.duration, args.seed, args.fly)
    runs = []
    loop_pairs, job_pairs, cpu_pairs = [], [], []
    extra: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {v: [] for v in variants[1:]}
    conds: list[tuple[bool, str]] = [(True, "base"), (False, "base")] + [(True, v) for v in variants[1:]]
    for i in range(args.pairs):
        k = i % len(conds)
        order = conds[k:] + conds[:k] if len(conds) > 2 else (conds if i % 2 == 0 else conds[::-1])
        got = {c: _lockstep_run(tmp, c[0], args.duration, args.seed, args.fly, c[1]) for c in order}
        runs += [got[c] for c in order]
        on, off = got[(True, "base")], got[(False, "base")]
        loop_pairs.append((on["loop_wall_s"], off["loop_wall_s"]))
        job_pairs.append((on["job_wall_s"], off["job_wall_s"]))
        cpu_pairs.append((on["loop_cpu_s"], off["loop_cpu_s"]))
        for v in variants[1:]:
            extra[v].append((got[(True, v)], off))
    on_runs = [r for r in runs if r["record"] and r["variant"] == "base"]
    size = [r["mcap"]["bytes"] / r["sim_time_s"] for r in on_runs]
    msgs = [r["mcap"]["messages"] / r["ticks"] for r in on_runs]
    loop_ratio = median_ratio(loop_pairs, seed=args.seed)
    out: dict[str, Any] = {
        "duration_s": args.duration, "pairs": args.pairs, "seed": args.seed,
        "runs": [{k: v for k, v in r.items() if k != "mcap"} for r in runs],
        "speed_ratio": loop_ratio["median"], "speed_ratio_ci95": loop_ratio.get("ci95"),
        "speed_ratio_per_pair": loop_ratio["ratios"],
        "job_speed_ratio": median_ratio(job_pairs, seed=args.seed),
        "cpu_speed_ratio": median_ratio(cpu_pairs, seed=args.seed),
        "median_speed_x": {"with": round(float(np.median([r["sim_time_s"] / r["loop_wall_s"] for r in on_runs])), 2),
                           "without": round(float(np.median([r["sim_time_s"] / r["loop_wall_s"]
                                                             for r in runs if not r["record"]])), 2)},
        "loop_rusage_per_tick": {"with": _usage_medians(on_runs),
                                 "without": _usage_medians([r for r in runs if not r["record"]])},
        "mcap_bytes_per_s": round(float(np.median(size))), "messages_per_tick": round(float(np.median(msgs)), 2),
        "mcap": on_runs[-1]["mcap"],
    }
    for v, pairs in extra.items():
        out[f"variant_{v}"] = {
            "speed_ratio": median_ratio([(a["loop_wall_s"], b["loop_wall_s"]) for a, b in pairs], seed=args.seed),
            "cpu_speed_ratio": median_ratio([(a["loop_cpu_s"], b["loop_cpu_s"]) for a, b in pairs], seed=args.seed),
            "loop_rusage_per_tick": _usage_medians([a for a, _ in pairs]),
            # loop CPU with the variant / with base, same triplets: < 1 when the variant's loop uses less
            "cpu_variant_over_base": median_ratio(
                [(b, a["loop_cpu_s"]) for (a, _), b in zip(pairs, [c[0] for c in cpu_pairs], strict=True)],
                seed=args.seed),
        }
    return out


class _WindowCursor(TickCursor):
    """A tick cursor that switches recording per window and keeps each tick's label."""

    __slots__ = ("_origin_s", "_window_s", "labels")

    def __init__(self, origin_s: float, window_s: float) -> None:
        super().__init__()
        self._origin_s = origin_s
        self._window_s = window_s
        self.labels: dict[int, bool] = {}

    def begin(self, tick: int, now_ns: int) -> None:
        super().begin(tick, now_ns)
        self.recording = window_recording(now_ns * 1e-9, self._origin_s, self._window_s)
        self.labels[tick] = self.recording


def _windowed_session(origin_s: float, window_s: float, made: list[_WindowCursor]) -> Callable[..., Any]:
    """``open_flight_record`` for this bench: a :class:`_WindowCursor`, and a metadata note."""
    original = session_mod.open_flight_record

    def open_record(folder: Path, **kw: Any) -> session_mod.FlightSession:
        with mock.patch.object(session_mod, "TickCursor", lambda: _WindowCursor(origin_s, window_s)):
            s = original(folder, **kw)
        assert isinstance(s.cursor, _WindowCursor) and s.recorder is not None
        made.append(s.cursor)
        s.recorder.metadata("bench_record", {
            "recording_windows": "on/off", "origin_s": str(origin_s), "window_s": str(window_s),
            "replayable": "false: ticks in 'off' windows have no inputs recorded (bench/record.py)"})
        return s

    return open_record


def realtime(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The real-time half: one run, recording on and off in paired windows."""
    captured: list[LoopStats] = []
    cursors: list[_WindowCursor] = []
    opts = RunOptions(rig=str(RIG), mission=str(MISSION), realtime=True, duration_s=args.rt_duration, seed=args.seed,
                      runs_dir=str(tmp), progress=False, arm=args.fly, on_loop_stats=captured.append)
    # keep ticking in safe_mode (a stall on a loaded host can trip a staleness fault):
    # the run lasts --rt-duration and the windows keep pairing; the state is reported
    tick_cpu = _TickCpu()
    with contextlib.ExitStack() as stack:
        _variant_patches(args.variant, stack)
        stack.enter_context(mock.patch.object(run_mod, "open_flight_record",
                                              _windowed_session(args.rt_warmup, args.window, cursors)))
        stack.enter_context(mock.patch.object(operator_mod, "LINGER_S", float("inf")))
        stack.enter_context(tick_cpu.patch())
        _, s, folder = run_main_job(opts)
    if not captured or not cursors:
        raise SystemExit(f"record: the real-time run did not finish its loop ({s.get('result')})")
    st, cur = captured[0], cursors[0]
    n = len(st.tick_durations_us)
    starts = [st.origin_s + t for t in st.tick_starts_s[:n]]
    labels = [cur.labels.get(k, True) for k in range(n)]
    end_s = st.origin_s + st.sim_time_s  # the end of the last tick
    out: dict[str, Any] = {
        "duration_s": args.rt_duration, "window_s": args.window, "guard_s": args.guard, "warmup_s": args.rt_warmup,
        "fly": args.fly, "result": s["result"], "final_state": s["final_state"], "ticks": n,
        "overruns": s["loop"]["overruns"], "first_fault": (s.get("faults") or [None])[0],
        "safe_mode_at_s": next((t[0] for t in s.get("transitions", []) if t[3] == "safe_mode"), None),
        "realtime_knobs": (s.get("realtime_knobs") or {}).get("effective"), "variant": args.variant,
    }
    m = min(n, len(tick_cpu.cpu_us))
    waits = [d - c for d, c in zip(st.tick_durations_us[:m], tick_cpu.cpu_us[:m], strict=True)]
    series: list[tuple[str, Sequence[float]]] = [
        ("tick_duration", st.tick_durations_us), ("period_error", st.period_errors_us[:n]),
        ("tick_cpu", tick_cpu.cpu_us[:m]), ("tick_wait", waits),
        ("tick_vcsw", [float(x) for x in tick_cpu.vcsw_n[:m]]),
        ("tick_ivcsw", [float(x) for x in tick_cpu.ivcsw_n[:m]])]
    for name, values in series:
        if len(values) != n:
            continue
        pairs = window_pairs(values, starts, labels, args.rt_warmup, args.window, args.guard, end_s)
        if not pairs:
            raise SystemExit("record: no whole window pair; lengthen --rt-duration or shorten --rt-warmup")
        pooled = {"with": [v for a, _ in pairs for v in a], "without": [v for _, b in pairs for v in b]}
        out[name] = {**paired_p99_diff(pairs, seed=args.seed),
                     "pooled_us": {k: {"n": len(v), **percentiles(v, LEVELS)} for k, v in pooled.items()},
                     "mean_diff": round(float(np.mean(pooled["with"]) - np.mean(pooled["without"])), 2)}
    rec = _record_stats(folder)
    recorded = sum(labels)
    out["tick_p99_with_us"] = out["tick_duration"]["p99_on_us"]
    out["tick_p99_without_us"] = out["tick_duration"]["p99_off_us"]
    out["tick_p99_diff_us"] = out["tick_duration"]["p99_diff_us"]
    out["tick_p99_diff_ci95_us"] = out["tick_duration"].get("p99_diff_ci95_us")
    period_s = st.sim_time_s / n
    out["record"] = {"ticks_recorded": recorded, "messages_per_recorded_tick": round(rec["messages"] / recorded, 2),
                     "bytes_per_recorded_s": round(rec["bytes"] / (recorded * period_s)), **rec}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pairs", type=int, default=6, help="lockstep: pairs of runs (default 6)")
    ap.add_argument("--duration", type=float, default=20.0, metavar="S",
                    help="lockstep: run time of each run (s), default 20")
    ap.add_argument("--seed", type=int, default=0, help="seed of every run and of the bootstrap (default 0)")
    ap.add_argument("--rt-duration", type=float, default=60.0, metavar="S",
                    help="real time: length of the run (s), default 60")
    ap.add_argument("--window", type=float, default=1.0, metavar="S", help="real time: window length (s), default 1")
    ap.add_argument("--guard", type=float, default=0.1, metavar="S",
                    help="real time: ticks in the first S s of each window are not counted (default 0.1)")
    ap.add_argument("--rt-warmup", type=float, default=5.0, metavar="S",
                    help="real time: windows start at S s of run time (boot, POST, arming), default 5")
    ap.add_argument("--no-fly", dest="fly", action="store_false",
                    help="never arm (idle; needed for real-time runs longer than the ~75 s mission)")
    ap.add_argument("--variant", default="base",
                    choices=("base", "discard", "nopickle", "noclock", "nice", "pin", "thread"),
                    help="real time, diagnosis: base (as a run records); discard (the batches are pickled "
                         "and dropped: no writer work); nopickle (dropped unpickled); noclock (no /in/clock tap); "
                         "nice (writer process at nice 19); pin (writer on the last CPU, the control thread "
                         "on the others); thread (the in-process writer thread)")
    ap.add_argument("--lockstep-variant", default="base", choices=("base", "discard", "pertick"),
                    help="lockstep, diagnosis: a third run in each pair; discard: its batches pickled and "
                         "dropped (the writer process writes no message; control records and close still go); "
                         "pertick: the messages pickled at every tick's start instead of every 0.5 s")
    ap.add_argument("--skip-lockstep", action="store_true")
    ap.add_argument("--skip-realtime", action="store_true")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.duration <= 0 or args.window <= 0 or not 0 <= args.guard < args.window:
        ap.error("need --pairs >= 1, --duration > 0, --window > 0 and 0 <= --guard < --window")
    if args.rt_duration < args.rt_warmup + 2 * args.window:
        ap.error("--rt-duration must hold --rt-warmup and at least one window pair")
    out: dict[str, Any] = {
        "bench": "record", "rig": str(RIG.relative_to(ROOT)), "mission": str(MISSION.relative_to(ROOT)),
        "budget": {"speed_ratio_min": BUDGET_SPEED_RATIO, "tick_p99_diff_max_us": BUDGET_TICK_P99_US},
    }
    with tempfile.TemporaryDirectory(prefix="qiki-bench-record-") as tmp:
        if not args.skip_lockstep:
            out["lockstep"] = lockstep(Path(tmp) / "lockstep", args)
        if not args.skip_realtime:
            out["realtime"] = realtime(Path(tmp) / "realtime", args)
    verdict: dict[str, Any] = {}
    if "lockstep" in out:
        verdict["speed_ratio"] = out["lockstep"]["speed_ratio"]
        verdict["speed_ratio_ci95"] = out["lockstep"]["speed_ratio_ci95"]
        verdict["cpu_speed_ratio"] = out["lockstep"]["cpu_speed_ratio"]["median"]
        verdict["cpu_speed_ratio_ci95"] = out["lockstep"]["cpu_speed_ratio"].get("ci95")
        verdict["lockstep_within_budget"] = out["lockstep"]["speed_ratio"] >= BUDGET_SPEED_RATIO
    if "realtime" in out:
        rt = out["realtime"]
        verdict["tick_p99_with_us"] = rt["tick_p99_with_us"]
        verdict["tick_p99_without_us"] = rt["tick_p99_without_us"]
        verdict["tick_p99_diff_us"] = rt["tick_p99_diff_us"]
        verdict["tick_p99_diff_ci95_us"] = rt["tick_p99_diff_ci95_us"]
        # a --variant changes what is recorded or how: a diagnosis, never the budget's figure
        verdict["realtime_within_budget"] = (rt["tick_p99_diff_us"] <= BUDGET_TICK_P99_US
                                             if args.variant == "base" else None)
    out["verdict"] = verdict
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
