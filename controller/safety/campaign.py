"""The safety campaign: every SAFETY.md id x seeds x injection phases, judged from the bus.

One *run* flies ``rigs/virtual.yaml`` (the square mission, one far radar target) in lockstep with one scenario
of :data:`controller.safety.scenarios.SCENARIOS` injected through the rig's
``emulation.faults`` at a phase's time (plus a seeded offset). The campaign's operator
arms at 1.0 s and starts the mission at 1.5 s, so every phase exists for a while. An
:class:`~controller.safety.monitor.BusMonitor` -- its own python-can node decoding with
plain cantools -- and the emulated valves' physical state judge the run:

* **unsafe frames**: non-zero command frames before the operator's ``start_mission``,
  or later than the reference + the scenario's deadline (the reference is the
  controller's first fault after the injection if it came before the scenario's
  detectability bound, else the bound);
* **time to safe**: ticks from the reference to the first tick whose command frames are
  all zero or where our node sent nothing (bus-off, unplugged);
* **false trip**: a ``no_trip`` scenario whose run recorded a fault (or went to ``safe_mode`` / ``estop``);
* **crash**: an exception out of the run.

:func:`run_campaign` spreads the runs over worker processes; :func:`table` and
:func:`markdown` summarise them per id (runs, unsafe frames, false trips, time to safe
p50/p99/max in ticks, pass/fail). ``qiki safety run`` is the command
(``controller/cli/safety.py``, ``docs/safety.md``).
"""

from __future__ import annotations

import logging
import math
import tempfile
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from controller.paths import resolve_data_path
from controller.safety.monitor import BusMonitor
from controller.safety.scenarios import PHASE_INJECT_S, PHASES, SCENARIOS, TICK_S, Scenario, serial_links_seen

__all__ = ["Builder", "RunResult", "judge_row", "markdown", "plan_runs", "run_campaign", "run_one", "table"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Builds a rig for a run: :func:`controller.rig.build_rig` (given by the caller, since
#: ``controller.rig`` imports this room's output guard: no import cycle).
Builder = Callable[..., Any]

#: Operator timeline of every run, s.
ARM_AT_S: Final = 1.0
START_AT_S: Final = 1.5
#: T03: how long the campaign's loop stalls, s (the world keeps running).
STALL_S: Final = 0.5
#: T03: device-side command timeout + valve close delay of the campaign rig, s.
DEVICE_ZERO_S: Final = 0.2 + 0.002 + TICK_S

#: One harmless radar target far ahead, so the ARS408 object list carries objects (D01, D03).
OBSTACLES: Final = ({"x_m": 8.0, "y_m": 0.5},)

#: The campaign's rig, mission and the DBC the monitor decodes with (data paths).
RIG: Final = resolve_data_path("rigs/virtual.yaml")
MISSION: Final = resolve_data_path("missions/square.yaml")
DBC: Final = resolve_data_path("dbc/qiki.dbc")


@dataclass
class RunResult:
    """What one run showed the monitor.

    Attributes
    ----------
    id, phase : str
        Scenario id and injection phase.
    seed : int
        Run seed (emulation noise, fault randomness, injection offset).
    expect : str
        The scenario's expectation in this phase.
    t_inject_s : float
        Injection time, s.
    t_ref_s : float or None
        Reference of the time to safe, s (None: nothing to measure).
    unsafe_frames : int
        Non-zero command frames where none may be.
    safe_after_ticks : int or None
        Ticks from the reference to the first safe tick (None: not measured or never safe).
    tripped : bool
        The controller recorded a fault after the injection.
    false_trip : bool
        A trip where the scenario expects none.
    crashed : str
        The exception's last line, "" when the run ended normally.
    final_state : str
        The vehicle's state at the end (for the reader; not judged).
    first_fault : str
        The controller's first fault text ("" when none).
    frames_n : int
        Command frames the monitor decoded.
    links : dict
        The serial links' counters at the end (:func:`~controller.safety.scenarios.serial_links_seen`),
        for a scenario with a ``check_after`` (D12); empty otherwise.
    ok : bool
        Everything the expectation asks held.
    why : str
        When not ``ok``: the first reason.
    """

    id: str
    phase: str
    seed: int
    expect: str
    t_inject_s: float
    t_ref_s: float | None = None
    unsafe_frames: int = 0
    safe_after_ticks: int | None = None
    tripped: bool = False
    false_trip: bool = False
    crashed: str = ""
    final_state: str = ""
    first_fault: str = ""
    frames_n: int = 0
    links: dict[str, dict[str, object]] = field(default_factory=dict)
    ok: bool = False
    why: str = ""


def inject_time_s(phase: str, seed: int) -> float:
    """Injection time of ``phase`` for ``seed``: the phase's start plus a seeded 0..0.2 s offset, s."""
    offset = ((seed * 7919) % 200) * 0.001  # deterministic, spreads the tick phase
    return round(PHASE_INJECT_S[phase] + offset, 3)


def plan_runs(ids: Iterable[str] | None = None, phases: Iterable[str] | None = None,
              seeds: int = 5) -> list[tuple[str, str, int]]:
    """Return every ``(id, phase, seed)`` to run: emulated ids x applicable phases x seeds.

    Parameters
    ----------
    ids : iterable of str, optional
        SAFETY.md ids (default: every id).
    phases : iterable of str, optional
        Phases (default :data:`PHASES`); a scenario runs only in the phases it applies to.
    seeds : int
        Seeds per (id, phase), ``1..seeds``.

    Raises
    ------
    ValueError
        An unknown id or phase, or ``seeds`` < 1 (a campaign with no run judges nothing).
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    want_ids = list(SCENARIOS) if ids is None else list(ids)
    want_phases = list(PHASES) if phases is None else list(phases)
    for i in want_ids:
        if i not in SCENARIOS:
            raise ValueError(f"unknown SAFETY.md id {i!r} (known: {', '.join(SCENARIOS)})")
    for p in want_phases:
        if p not in PHASES:
            raise ValueError(f"unknown phase {p!r} (known: {', '.join(PHASES)})")
    out: list[tuple[str, str, int]] = []
    for i in want_ids:
        sc = SCENARIOS[i]
        if sc.not_emulated:
            continue
        for p in want_phases:
            if p in sc.expect:
                out.extend((i, p, s) for s in range(1, seeds + 1))
    return out


def run_one(sid: str, phase: str, seed: int, build: Builder) -> RunResult:
    """Fly one scenario in lockstep and judge it from the monitor. Never raises.

    Parameters
    ----------
    sid : str
        SAFETY.md id with a flight scenario.
    phase : str
        Injection phase (one the scenario applies to).
    seed : int
        Run seed.
    build : callable
        :func:`controller.rig.build_rig`.

    Returns
    -------
    RunResult
    """
    sc = SCENARIOS[sid]
    t_inject = inject_time_s(phase, seed)
    res = RunResult(sid, phase, seed, sc.expect[phase], t_inject)
    try:
        _fly(sc, res, build)
    except Exception as exc:  # noqa: BLE001 - a crash is a result of the campaign
        res.crashed = f"{type(exc).__name__}: {exc}"
        res.why = "crashed"
        _log.debug("run %s/%s/%d crashed:\n%s", sid, phase, seed, traceback.format_exc())
    return res


def _fly(sc: Scenario, res: RunResult, build_rig: Builder,
         inspect: Callable[[Any, list[tuple[float, str]], RunResult], None] | None = None) -> None:
    from controller.config import load_mission, load_rig
    from controller.loop import FixedRateLoop

    data = yaml.safe_load(RIG.read_text())
    data["emulation"]["faults"] = sc.entries(res.t_inject_s) if sc.entries is not None else []
    data["emulation"]["obstacles"] = [dict(o) for o in OBSTACLES]
    faults: list[tuple[float, str]] = []
    kinds_after: set[str] = set()  # event kinds recorded at or after the injection

    def record(tick: int, time_s: float, kind: str, **fields: object) -> None:
        if time_s >= res.t_inject_s - 1e-9:
            kinds_after.add(kind)
        if kind == "fault" and fields.get("reason") is not None:
            faults.append((time_s, str(fields.get("reason"))))
        elif kind == "transition" and fields.get("target") in ("safe_mode", "estop"):
            faults.append((time_s, f"{fields.get('event')} -> {fields.get('target')}"))

    with tempfile.TemporaryDirectory(prefix="qiki-safety-") as tmp:
        path = Path(tmp) / "rig.yaml"
        path.write_text(yaml.safe_dump(data))
        rig, rig_path = load_rig(path)
        built = build_rig(rig, rig_path, mission=load_mission(MISSION), record=record, seed=res.seed)
        try:
            monitor = BusMonitor(built.can_channels["can0"], DBC)
            built.closers.append(monitor.close)
            v = built.vehicle
            end_s = res.t_inject_s + sc.run_after_s
            stall = sc.entries is None  # T03: the loop stalls at the injection
            sent = {"arm": False, "start": False}
            open_during_stall: list[float] = []  # T03: stall ticks with a valve physically open
            vb = built.sim.valve_board if built.sim is not None else None

            def tick(k: int, now: float, dt: float) -> bool:
                if not (stall and res.t_inject_s <= now < res.t_inject_s + STALL_S):
                    v.tick(k, now, dt)
                    # the campaign's operator: each command once, never again after a fault
                    if ARM_AT_S <= now < START_AT_S and v.state == "idle" and v.post_passed and not sent["arm"]:
                        v.command("arm")
                        sent["arm"] = True
                    if now >= START_AT_S and v.state == "armed" and not sent["start"]:
                        v.command("start_mission")
                        sent["start"] = True
                    monitor.read(now)
                elif vb is not None and any(vb.valves_open(now)):
                    open_during_stall.append(now)
                return now < end_s

            FixedRateLoop(built.clock, 1.0 / TICK_S, advance=built.advance).run(tick)
            res.final_state = v.state
            res.first_fault = v.first_fault or ""
            _judge(sc, res, monitor, faults, open_during_stall)
            if sc.check_after is not None:
                res.links = serial_links_seen(v)
                why = sc.check_after(v, res.expect)
                if why and not res.why:
                    res.why, res.ok = why, False
            if sc.needs_event and sc.needs_event not in kinds_after and not res.why:
                res.why, res.ok = f"no {sc.needs_event!r} event recorded after the injection", False
            if inspect is not None:
                inspect(built, faults, res)
        finally:
            built.close()


def _judge(sc: Scenario, res: RunResult, monitor: BusMonitor, faults: list[tuple[float, str]],
           open_during_stall: list[float]) -> None:
    t0 = res.t_inject_s
    after = [t for t, _ in faults if t >= t0 - 1e-9]
    res.tripped = bool(after)
    res.frames_n = len(monitor.frames)
    frames = monitor.frames
    early = [f for f in frames if f.nonzero and f.t_s < START_AT_S]
    expect = res.expect
    why = ""
    if expect == "device_zero":
        res.unsafe_frames = len(early)
        res.t_ref_s = t0
        last_open = open_during_stall[-1] if open_during_stall else t0
        res.safe_after_ticks = max(0, math.ceil((last_open - t0) / TICK_S - 1e-9))
        if last_open > t0 + DEVICE_ZERO_S:
            why = f"a valve still open {last_open - t0:.3f} s into the stall (device timeout 0.2 s)"
    elif expect in ("trip", "no_arm", "any"):
        bound = None if sc.detect_bound_s is None else t0 + sc.detect_bound_s
        first = after[0] if after else None
        if expect == "no_arm":
            ref: float | None = 0.0
        elif expect == "any":
            ref = first  # a fault that may go unseen: judged from the trip, if there is one
        elif bound is not None:
            ref = min(bound, first) if first is not None else bound
        else:
            ref = first
        res.t_ref_s = ref
        limit = None if ref is None else ref + sc.deadline_ticks * TICK_S + 1e-9
        late = [] if limit is None else [f for f in frames if f.nonzero and f.t_s > limit]
        res.unsafe_frames = len(early) + len([f for f in late if f.t_s >= START_AT_S])
        if ref is not None and expect == "trip":
            res.safe_after_ticks = _ticks_to_safe(monitor, ref)
        if expect == "trip" and not res.tripped:
            why = "no trip"
        elif expect == "trip" and res.safe_after_ticks is None:
            why = "never safe on the bus"
        elif expect == "trip" and res.safe_after_ticks is not None and res.safe_after_ticks > 2:
            why = f"safe after {res.safe_after_ticks} T (max 2 T)"
    else:  # no_trip
        res.unsafe_frames = len(early)
        res.false_trip = res.tripped
        if res.false_trip:
            why = f"false trip: {faults[0][1] if faults else '?'}"
    if res.unsafe_frames and not why:
        why = f"{res.unsafe_frames} unsafe frames"
    res.ok = not why
    res.why = why


def _ticks_to_safe(monitor: BusMonitor, ref_s: float) -> int | None:
    """Ticks from ``ref_s`` to the first tick at or after it with only zero frames or none."""
    by_t: dict[float, bool] = {}
    for f in monitor.frames:
        if f.t_s >= ref_s - 1e-9:
            by_t[f.t_s] = by_t.get(f.t_s, False) or f.nonzero
    candidates = [t for t, nz in by_t.items() if not nz]
    candidates += [t for t in monitor.ticks_silent if t >= ref_s - 1e-9]
    if not candidates:
        return None
    return max(0, math.ceil((min(candidates) - ref_s) / TICK_S - 1e-9))


def _run_star(args: tuple[str, str, int, Builder]) -> RunResult:
    logging.disable(logging.WARNING)  # the workers' runs log faults by design
    return run_one(*args)


def run_campaign(runs: Sequence[tuple[str, str, int]], build: Builder, workers: int = 2,
                 on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Run ``runs`` (from :func:`plan_runs`) on ``workers`` processes; results in plan order.

    ``build`` is :func:`controller.rig.build_rig` (a module-level function: it travels to
    the worker processes by name). ``on_result`` is told about every result as it comes
    (the CLI appends it to ``runs.jsonl``, so an interrupted campaign keeps its runs).
    """
    out: list[RunResult] = []
    if workers <= 1:
        for r in runs:
            out.append(run_one(*r, build))
            if on_result is not None:
                on_result(out[-1])
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for res in pool.map(_run_star, [(*r, build) for r in runs], chunksize=1):
            out.append(res)
            if on_result is not None:
                on_result(res)
    return out


def _pct(values: list[int], q: float) -> int | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@dataclass
class Row:
    """One id of the campaign table (see :func:`table`)."""

    id: str
    title: str
    expected: str
    runs: int = 0
    phases: list[str] = field(default_factory=list)
    unsafe_frames: int = 0
    false_trips: int = 0
    crashes: int = 0
    p50_ticks: int | None = None
    p99_ticks: int | None = None
    max_ticks: int | None = None
    passed: bool | None = None
    note: str = ""


def judge_row(sid: str, results: list[RunResult]) -> Row:
    """Summarise the runs of one id: counts, time to safe p50/p99/max (ticks), pass/fail."""
    sc = SCENARIOS[sid]
    row = Row(sid, sc.title, sc.expected)
    if sc.not_emulated:
        row.note = "not emulated: " + sc.not_emulated
        return row
    mine = [r for r in results if r.id == sid]
    row.runs = len(mine)
    row.phases = sorted({r.phase for r in mine}, key=PHASES.index)
    row.unsafe_frames = sum(r.unsafe_frames for r in mine)
    row.false_trips = sum(r.false_trip for r in mine)
    row.crashes = sum(bool(r.crashed) for r in mine)
    # time to safe in T is SAFETY.md's figure for controller-side reactions; T03's bound is the
    # device-side 200 ms, judged per run
    lat = [r.safe_after_ticks for r in mine if r.safe_after_ticks is not None and r.expect != "device_zero"]
    row.p50_ticks, row.p99_ticks, row.max_ticks = _pct(lat, 0.50), _pct(lat, 0.99), (max(lat) if lat else None)
    bad = [r for r in mine if not r.ok]
    row.passed = bool(mine) and not bad and (row.p99_ticks is None or row.p99_ticks <= 1)
    if bad:
        row.note = f"{len(bad)} failed, e.g. {bad[0].phase}/seed {bad[0].seed}: {bad[0].why}"
    elif row.p99_ticks is not None and row.p99_ticks > 1:
        row.note = f"p99 {row.p99_ticks} T > 1 T"
    return row


def table(results: list[RunResult], ids: Iterable[str] | None = None) -> list[Row]:
    """One :class:`Row` per id (default every SAFETY.md id, not-emulated ones included)."""
    return [judge_row(i, results) for i in (ids if ids is not None else SCENARIOS)]


def markdown(rows: list[Row]) -> str:
    """Return the table as markdown: id, runs, unsafe frames, false trips, time to safe, pass/fail."""
    lines = ["| id | fault | phases | runs | unsafe frames | false trips | crashes | "
             "time to safe p50 / p99 / max (T) | result | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def t(v: int | None) -> str:
        return "-" if v is None else str(v)

    for r in rows:
        result = "n/a" if r.passed is None else ("pass" if r.passed else "**FAIL**")
        lines.append(f"| {r.id} | {r.title} | {','.join(r.phases) or '-'} | {r.runs} | {r.unsafe_frames} | "
                     f"{r.false_trips} | {r.crashes} | {t(r.p50_ticks)} / {t(r.p99_ticks)} / {t(r.max_ticks)} | "
                     f"{result} | {r.note} |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[Row], results: list[RunResult]) -> dict[str, object]:
    """Return the table and every run as JSON-ready data."""
    return {"rows": [asdict(r) for r in rows], "runs": [asdict(r) for r in results]}


#: Soak runs (``qiki safety soak``): nominal flights under a benign fault for minutes.
SOAKS: Final = {
    "babble": ("a babbling node, 300 frames per tick (B08)",
               [{"at_s": 0.0, "target": "can0", "fault": "babble", "id": 0x000, "frames_per_s": 30_000.0}]),
    "loss": ("1 % random loss of VB_Status",
             [{"at_s": 0.0, "target": "can0", "fault": "loss", "id": 0x181, "prob": 0.01}]),
    "loss3": ("VB_Status lost for 3 periods and a bit at 2.5 s: 3 or 4 in a row (must trip)",
              [{"at_s": 2.5, "until_s": 2.5 + 3 * 0.02 + 0.005, "target": "can0", "fault": "loss", "id": 0x181,
                "prob": 1.0}]),
}


#: Soaks whose fault must trip (``loss3``: three or four ``VB_Status`` lost in a row).
MUST_TRIP_SOAKS: Final = frozenset({"loss3"})


def run_soak(kind: str, minutes: float, build: Builder, seed: int = 1) -> RunResult:
    """Fly the square mission then hold, ``minutes`` of simulated time, under the soak fault ``kind``.

    Parameters
    ----------
    kind : str
        A key of :data:`SOAKS`.
    minutes : float
        Simulated minutes from the injection at 0 s.
    build : callable
        :func:`controller.rig.build_rig`.
    seed : int, optional
        Run seed.

    Returns
    -------
    RunResult
        ``tripped`` tells whether the controller recorded a fault; ``false_trip`` whether
        that trip was false (``loss``: a trip that three or more consecutive lost
        ``VB_Status`` explain is expected, ``why`` says so; :data:`MUST_TRIP_SOAKS` must
        trip, ``expect`` "trip"); ``unsafe_frames`` counts non-zero frames before the
        mission start; ``ok`` is the verdict (``qiki safety soak`` exits 0 on it).

    Raises
    ------
    ValueError
        An unknown ``kind``.
    """
    if kind not in SOAKS:
        raise ValueError(f"unknown soak {kind!r} (known: {', '.join(SOAKS)})")
    title, entries = SOAKS[kind]
    sc = Scenario(f"soak-{kind}", title, "no false trip", lambda t: [dict(e) for e in entries],
                  {"active": "no_trip"}, run_after_s=minutes * 60.0)
    res = RunResult(sc.id, "active", seed, "no_trip", 0.0)
    try:
        _fly(sc, res, build, _judge_drop_runs if kind == "loss" else None)
    except Exception as exc:  # noqa: BLE001 - a crash is a result
        res.crashed = f"{type(exc).__name__}: {exc}"
        res.why = "crashed"
    if kind in MUST_TRIP_SOAKS and not res.crashed:  # judged the other way round: it must trip
        res.expect, res.false_trip = "trip", False
        res.ok = res.tripped and res.unsafe_frames == 0
        res.why = "" if res.ok else ("no trip: three lost VB_Status must trip" if not res.tripped
                                     else f"{res.unsafe_frames} unsafe frames")
    return res



#: VB_Status period (50 Hz) and the staleness rule of the valve board driver: stale when
#: no frame for 3 periods (``controller.safety.stale_after_periods``), so three lost in a
#: row must trip, two never (issue 15).
_STATUS_PERIOD_S: Final = 0.02
_STALE_AFTER_LOST: Final = 3


def _judge_drop_runs(built: Any, faults: list[tuple[float, str]], res: RunResult) -> None:
    """Soak ``loss``: a trip that three or more lost ``VB_Status`` in a row explain is expected.

    With independent 1 % loss, three in a row happen about once per 10^6 frames (about 3 %
    of 10-minute soaks at 50 Hz); SAFETY.md's rule says they must trip. Such a trip is
    reported (``why``) and not counted as false; any other trip stays a false trip.
    """
    port = built.can_ports.get("can0")
    bus = getattr(port, "bus", None)
    runs = [r for r in getattr(bus, "drop_runs", ()) if r[1] >= _STALE_AFTER_LOST]
    if not res.false_trip or not faults:
        if runs:
            res.why = res.why or f"{len(runs)} runs of >= 3 lost VB_Status (no trip)"
        return
    t_fault, reason = faults[0]
    for t0, n in runs:
        # the stale verdict comes within (lost + 1) periods and a tick of the first loss
        if "valve board status" in reason and t0 <= t_fault <= t0 + (n + 1) * _STATUS_PERIOD_S + TICK_S + 1e-9:
            res.false_trip = False
            res.ok = res.unsafe_frames == 0 and not res.crashed
            res.why = (f"expected trip: {n} VB_Status lost in a row from {t0:.2f} s "
                       f"(three lost must trip), then {reason!r} at {t_fault:.2f} s")
            return

