"""The main job: boot, POST, arm, fly the mission, disarm; record and summarise.

The operator of the main job is a script that sends the same events a person at the
console would (``arm``, ``start_mission``, ``disarm``) through the vehicle's one arbiter
(SAFETY.md O04). The run ends when the mission is flown and the vehicle is back in
``idle``, when the vehicle lands in ``safe_mode``/``estop`` (after one more second of
recorded zero output), when ``duration_s`` of run time has passed, or when a stop
signal came (SIGINT, SIGTERM, SIGHUP: a safe stop, see :mod:`controller.stop`).

Results are truthful (ISSUE 10 part 3): ``completed`` means every waypoint was reached
and the vehicle is back in ``idle``; the exit status is one of
:mod:`controller.exit_codes`.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import load_mission, load_rig
from controller.doctor import RUN_PROBE_S, DoctorReport, run_doctor
from controller.doctor.gate import DoctorGate
from controller.errors import ConfigError, ControllerError
from controller.exit_codes import EXIT_BAD_INPUT, EXIT_HARDWARE_UNAVAILABLE, EXIT_OK, EXIT_STOPPED, SIGNAL_EXIT
from controller.loop import FixedRateLoop
from controller.operator import LINGER_S, SAFE_STATES, OperatorScript, safe_reason
from controller.record.run_record import RunRecord, write_json_atomic
from controller.record.session import FlightSession, open_flight_record
from controller.record.snapshots import SNAPSHOT_TOPIC, SnapshotSchedule
from controller.record.snapshots import message as snapshot_message
from controller.record.summary import WALL_CLOCK_KEYS, build_summary
from controller.rig import BuiltRig, build_rig, check_rig
from controller.rt_knobs import RealtimeKnobsReport, apply_realtime_knobs, skipped_report
from controller.run_options import OPTIONS_NAME, RunOptions, check_options, prepare_run_folder
from controller.service.notify import ServiceNotifier
from controller.stop import ForcedStop, StopBeforeStart, StopRequest
from controller.vehicle import Vehicle
from controller.vehicle.telemetry import TickTelemetry, component_records
from hal.errors import DeviceUnavailableError, HalError, one_line
from hal.snapshot import JsonValue, capture_all, restore_all

__all__ = ["LINGER_S", "SAFE_STATES", "WALL_CLOCK_KEYS", "OperatorScript", "RunOptions", "build_summary",
           "check_options", "prepare_run_folder", "run_main_job", "safe_reason"]

if TYPE_CHECKING:
    from rich.console import Console

    from controller.components.seam import TelemetryRow
    from controller.console.desk import ConsoleDesk

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


def _progress(vehicle: Vehicle, now_s: float) -> str:
    m = vehicle.mission
    wp = f"{m.waypoints_reached}/{m.waypoints_total}" if m is not None else "-"
    pose = vehicle.mcu.pose
    p = (f"x={pose.x_m:+.3f} y={pose.y_m:+.3f} yaw={math.degrees(pose.yaw_rad):+.1f}deg"
         if pose is not None else "pose -")
    return f"t={now_s:7.2f}s  state={vehicle.state:<9}  waypoints {wp}  {p}"


#: Longest a safe stop may take once a signal came (s of run time) before the run ends
#: anyway, reporting what was not confirmed (ISSUE 10: exit within 1 s of the signal).
SHUTDOWN_TIMEOUT_S = 0.5


def run_main_job(opts: RunOptions, console: Console | None = None,
                 stop: StopRequest | None = None) -> tuple[int, dict[str, Any], Path]:
    """Run the main job and write its run folder.

    Parameters
    ----------
    opts : RunOptions
        The run's options.
    console : rich.console.Console, optional
        Where the live progress line goes (the CLI's stderr); None: no progress.
    stop : StopRequest, optional
        The stop request to watch; default: a new one that installs SIGINT, SIGTERM and
        SIGHUP handlers for the run (main thread only).

    Returns
    -------
    (exit_status, summary, run_folder)
        ``exit_status`` as in :mod:`controller.exit_codes`: 0 completed, 1 safe stop or
        incomplete, 129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.

    Raises
    ------
    ConfigError, HalError
        For bad input or hardware that cannot be opened (the CLI prints one line and
        exits 2 or 3); raised before any output is commanded.
    """
    check_options(opts)
    rig_cfg, rig_path = load_rig(opts.rig)
    mission_cfg = load_mission(opts.mission) if opts.mission else None
    replay = {"lr_replay": opts.lr_replay, "sr_replay": opts.sr_replay}
    checked = check_rig(rig_cfg, rig_path, options=replay)  # the same check as `qiki rig check`
    folder = prepare_run_folder(opts.runs_dir)
    # a rig may require a passing doctor (docs/doctor.md): checked before the build, a failure refuses arm
    doctor = None
    if rig_cfg.controller.require_doctor:
        # a replay is gated by the verdicts the recorded run was gated by, not by this machine
        recorded = opts.replay.recorded_metadata.get("doctor") if opts.replay is not None else None
        doctor = (run_doctor(opts.rig, probe_s=RUN_PROBE_S, runs_dir=opts.runs_dir) if opts.replay is None
                  else DoctorReport.from_metadata(recorded, opts.rig) if recorded is not None else None)
    # before the build: threads started by the build inherit the scheduling policy
    knobs_cfg = rig_cfg.controller.realtime
    knobs = (apply_realtime_knobs(knobs_cfg) if opts.realtime and opts.replay is None
             else skipped_report(knobs_cfg, "replay" if opts.replay is not None else "lockstep run"))
    record = RunRecord(folder)
    flight = opts.replay if opts.replay is not None else (
        _open_flight(opts, folder, rig_cfg, rig_path) if opts.record else None)
    if doctor is not None and flight is not None:
        flight.metadata("doctor", doctor.metadata())
    event_sink = flight.event_sink(record.event) if flight is not None else record.event
    desk = None
    if opts.serve:
        desk, console_token = _console_desk(opts, rig_cfg, flight)
        event_sink = _tapped(event_sink, desk)
    can_names = [n for n, b in rig_cfg.buses.items() if b.kind == "can"]
    loop_ref: dict[str, FixedRateLoop] = {}

    def overruns(now_s: float) -> int:
        lp = loop_ref.get("loop")
        return lp.overruns_last_second(now_s) if lp is not None else 0

    built: BuiltRig | None = None
    stop_req = stop if stop is not None else StopRequest()
    try:
        with stop_req:
            # a replay's frames are compared in memory: no ASC export
            loggers = {n: record.can_logger(n) for n in can_names} if opts.replay is None else {}
            try:
                stop_req.enable_abort()  # a signal during the build abandons it: no tick ran
                built = build_rig(
                    rig_cfg,
                    rig_path,
                    mission=mission_cfg,
                    record=event_sink,
                    realtime=opts.realtime,
                    seed=opts.seed,
                    can_loggers=loggers,
                    # lockstep: the loop never overruns (a SimClock tick takes no time): no
                    # per-tick call that always answers 0; the fault plan's injected ones remain.
                    # A replay keeps the callable: one resumed inside an injected overrun
                    # window clears `lag` as the callable's 0 tells it (the rig has no fault plan)
                    loop_overruns=overruns if opts.realtime or opts.replay is not None else None,
                    options=replay,
                    checked=checked,
                    ingress=flight.ingress() if flight is not None else None,
                )
                stop_req.abort_enabled = False
                if doctor is not None:
                    built.vehicle.components.append(DoctorGate(doctor))
            except (ControllerError, HalError) as exc:
                # refused or unavailable after the run folder was made: say so in it
                stop_req.abort_enabled = False
                failed = {"result": f"not started: {one_line(exc)}", "final_state": None, "rig": rig_cfg.name,
                          "exit_status": EXIT_HARDWARE_UNAVAILABLE if isinstance(exc, DeviceUnavailableError)
                          else EXIT_BAD_INPUT, "run_folder": str(folder)}
                record.write_summary(failed)
                raise
            except StopBeforeStart as exc:
                stop_req.abort_enabled = False
                name = signal.Signals(exc.signum).name
                status = SIGNAL_EXIT.get(exc.signum, 130)
                event_sink(-1, 0.0, "shutdown", reason=f"interrupted ({name}) while the rig was built")
                summary: dict[str, Any] = {
                    "result": f"interrupted ({name}) before the first tick", "final_state": None,
                    "rig": rig_cfg.name, "seed": opts.seed, "realtime": opts.realtime,
                    "exit_status": status, "run_folder": str(folder), "realtime_knobs": knobs.as_dict(),
                }
                record.write_summary(summary)
                if opts.summary_json:
                    write_json_atomic(Path(opts.summary_json), summary)
                return status, summary, folder
            if desk is None:
                return _fly(opts, built, record, folder, stop_req, loop_ref, console, knobs, flight)
            return _serve(opts, built, record, folder, stop_req, loop_ref, console, knobs, flight, desk,
                          console_token)
    finally:
        if built is not None:
            built.close()
        if flight is not None:
            flight.finish()
        record.close()
        knobs.restore()


def replay_options(opts: RunOptions) -> dict[str, Any]:
    """Return the run options a replay needs, as written in the flight record's metadata."""
    return {"rig": opts.rig, "mission": opts.mission, "realtime": opts.realtime, "duration_s": opts.duration_s,
            "seed": opts.seed, "arm": opts.arm, "lr_replay": opts.lr_replay, "sr_replay": opts.sr_replay,
            **({"serve": True} if opts.serve else {})}


def _open_flight(opts: RunOptions, folder: Path, rig_cfg: Any, rig_path: Path) -> FlightSession | None:
    extra = [Path(p) for p in (opts.lr_replay, opts.sr_replay) if p]
    return open_flight_record(folder, realtime=opts.realtime, rig=rig_cfg, rig_path=rig_path,
                              mission_path=opts.mission, options=replay_options(opts), extra_files=extra)


def _console_desk(opts: RunOptions, rig_cfg: Any, flight: FlightSession | None) -> tuple[ConsoleDesk, str | None]:
    """Return the served run's desk and the console token (None on loopback or in a replay).

    Raises
    ------
    ConfigError
        ``--listen`` on a non-loopback address without a token in the environment.
    """
    from controller.config.console import DEFAULT_LISTEN, DEFAULT_TOKEN_ENV, parse_listen
    from controller.console.desk import ConsoleDesk, InboundQueue
    from controller.console.gateway import is_loopback

    cc = rig_cfg.console
    replaying = opts.replay is not None
    host, _port = parse_listen(opts.listen or DEFAULT_LISTEN)
    token = None
    if not replaying and not is_loopback(host):
        token = os.environ.get(cc.token_env) or os.environ.get(DEFAULT_TOKEN_ENV) or None
        if token is None:
            raise ConfigError(OPTIONS_NAME, "--listen", f"{host} is not loopback: set the console token in "
                              f"${cc.token_env} (rig console.token_env)")
    put = flight.put if flight is not None and not replaying else None
    return ConsoleDesk(cc, rig_cfg.controller.rate_hz, InboundQueue(cc.queue_size), put=put), token


def _tapped(sink: Any, desk: ConsoleDesk) -> Any:
    """Return the event sink with the desk told of each event first (it answers FSM refusals)."""
    def event(tick: int, time_s: float, kind: str, **fields: Any) -> None:
        desk.on_event(kind, fields)
        sink(tick, time_s, kind, **fields)
    return event


def _serve(opts: RunOptions, built: BuiltRig, record: RunRecord, folder: Path, stop_req: StopRequest,
           loop_ref: dict[str, FixedRateLoop], console: Console | None, knobs: RealtimeKnobsReport,
           flight: FlightSession | None, desk: ConsoleDesk, token: str | None) -> tuple[int, dict[str, Any], Path]:
    """Run :func:`_fly` with the console gateway serving (not in a replay)."""
    if opts.replay is not None:
        return _fly(opts, built, record, folder, stop_req, loop_ref, console, knobs, flight, desk)
    from controller.config.console import DEFAULT_LISTEN, parse_listen
    from controller.console.gateway import Gateway

    host, port = parse_listen(opts.listen or DEFAULT_LISTEN)
    gateway = Gateway(desk, host, port, token, built.cfg.name)
    gateway.start()
    if opts.on_gateway is not None:
        opts.on_gateway(gateway.url)
    log.warning("console gateway: %s", gateway.url)
    try:
        return _fly(opts, built, record, folder, stop_req, loop_ref, console, knobs, flight, desk)
    finally:
        gateway.stop()


#: The ``/loop`` record's layout (real time, one row per tick).
_LOOP_KEYS = ("tick", "t_s", "period_error_s", "tick_duration_s", "overrun")


def _fly(opts: RunOptions, built: BuiltRig, record: RunRecord, folder: Path, stop_req: StopRequest,
         loop_ref: dict[str, FixedRateLoop], console: Console | None,
         knobs: RealtimeKnobsReport, flight: FlightSession | None = None,
         desk: ConsoleDesk | None = None) -> tuple[int, dict[str, Any], Path]:
    """Run the loop of :func:`run_main_job`, its safe stop and its verdict (served: ``desk`` set)."""
    vehicle = built.vehicle
    on_timing = None
    if flight is not None and opts.realtime:
        def on_timing(k: int, start_s: float, error_s: float, duration_s: float, overrun: bool) -> None:
            flight.row("/loop", _LOOP_KEYS, (k, start_s, error_s, duration_s, overrun))  # a row: no dict here
    schedule = SnapshotSchedule(built.cfg.record.snapshot_period_s) if flight is not None else None

    def after_tick(k: int) -> None:
        # between ticks (issue 12 part 4): the controller's state, when the schedule says so
        if flight is not None and schedule is not None:
            reason = schedule.due(last_tick[1], vehicle.faults.active)
            if reason is not None:
                cursor: dict[str, JsonValue] = {"tick": flight.cursor.tick, "now_ns": flight.cursor.now_ns,
                                                "calls": dict(flight.cursor.calls())}
                state: dict[str, JsonValue] = {"vehicle": vehicle.snapshot(), "run": run_state(),
                                               "loop": loop.snapshot(), "cursor": cursor}
                flight.put(SNAPSHOT_TOPIC, snapshot_message(k, last_tick[1], reason, state))

    advance: Callable[[float, float], None] | None = None if opts.realtime else built.advance
    if desk is not None and advance is not None and opts.replay is None:
        advance = _paced(advance)  # a served lockstep run keeps to real time
    loop = FixedRateLoop(built.clock, built.cfg.controller.rate_hz, advance=advance,
                         keep_ticks=opts.on_loop_stats is not None, on_timing=on_timing,
                         after_tick=after_tick if schedule is not None else None)
    loop_ref["loop"] = loop
    script = OperatorScript()
    duration_ran_out = False
    disarm_sent = False

    def run_state() -> dict[str, JsonValue]:
        """Return the main job's own part of a snapshot: the operator script, the duration flags, a stop."""
        return {"script": capture_all(script), "duration_ran_out": duration_ran_out, "disarm_sent": disarm_sent,
                "stop_signum": stop_req.signum}
    live = None
    last_draw = [0.0]
    if opts.progress and console is not None:
        from rich.live import Live
        from rich.text import Text

        live = Live(Text("starting"), console=console, refresh_per_second=4, transient=True)
        live.start()

    last_tick: list[float] = [0, 0.0]
    phase = TickTelemetry(vehicle, flight) if flight is not None else None  # the tick's record phase
    notifier = ServiceNotifier()  # systemd: READY after POST, WATCHDOG per tick (no-op outside systemd)
    if opts.resume is not None:
        # a replay from a snapshot: the state after its tick, then the loop goes on from there
        rp = opts.resume
        vehicle.restore(rp.part("vehicle"))
        run = rp.part("run")
        restore_all(script, run["script"])  # type: ignore[arg-type]
        duration_ran_out, disarm_sent = bool(run["duration_ran_out"]), bool(run["disarm_sent"])
        if isinstance(run.get("stop_signum"), int) and stop_req.signum is None:
            stop_req.signum = int(run["stop_signum"])  # type: ignore[arg-type]
        loop.restore(rp.part("loop"))
        cur = rp.part("cursor")
        if flight is not None:
            flight.cursor.resume(int(cur["tick"]), int(cur["now_ns"]), cur["calls"])  # type: ignore[arg-type]
        if schedule is not None:
            schedule.resume(rp.t_s, vehicle.faults.active)
        last_tick[0], last_tick[1] = rp.tick, rp.t_s

    def tick(k: int, now_s: float, dt_s: float) -> bool:
        nonlocal duration_ran_out, disarm_sent
        last_tick[0], last_tick[1] = k, now_s
        if flight is not None:
            if flight.replay_last_tick is not None and k > flight.replay_last_tick:
                return False  # a replay of a record that ends early: nothing recorded from here
            flight.begin_tick(k, now_s)
            if flight.replay is not None:
                sig = flight.replay.at("/in/stop", k, 0)
                if sig is not None and not stop_req.requested:
                    stop_req.request(signal.Signals[str(sig["signal"])].value)
        if stop_req.requested and vehicle.shutdown_reason is None:
            if flight is not None:
                flight.put("/in/stop", {"tick": k, "call": 0, "signal": stop_req.name or ""})
            vehicle.begin_shutdown(f"interrupted ({stop_req.name})", now_s)
        if desk is not None:
            # console inputs, at the start of the tick (replayed from the record in a replay)
            items = (desk.replayed_items(flight.replay.at, k) if flight is not None and flight.replay is not None
                     else desk.drained_items(k))
            desk.begin_tick(vehicle, k, now_s, items)
        vehicle.tick(k, now_s, dt_s)
        if notifier.enabled:  # on_tick does nothing outside systemd: no call, no state read
            notifier.on_tick(vehicle.state)
        recs: list[tuple[str, Mapping[str, object] | TelemetryRow]] | None = None
        if phase is not None and flight is not None and flight.cursor.recording:
            if desk is None:
                phase.record(flight.cursor.crc32)
            else:
                recs = []
                phase.record(flight.cursor.crc32, recs)
        if desk is not None:
            desk.end_tick(vehicle, k, now_s)
            desk.observe(recs if recs is not None else component_records(vehicle), now_s)
            if desk.due(k):
                desk.publish(vehicle, k, now_s, {
                    "rate_hz": built.cfg.controller.rate_hz, "ticks": k + 1, "tick_duration_p99_ms": None,
                    "overruns_last_s": loop.overruns_last_second(now_s) if opts.realtime else None})
        if vehicle.shutdown_reason is not None:
            st = vehicle.shutdown_status(now_s)
            return not (st.complete or now_s - st.started_s >= SHUTDOWN_TIMEOUT_S - 1e-9)
        if opts.arm and desk is None:
            try:
                script.step(vehicle, now_s)
            except Exception as exc:  # noqa: BLE001 - the operator script is inside the barrier too
                vehicle.on_exception(exc, now_s)
        if live is not None:
            wall = time.perf_counter()
            if wall - last_draw[0] > 0.25:
                live.update(Text(_progress(vehicle, now_s)))
                last_draw[0] = wall
        if script.finished:
            return False
        if opts.duration_s is not None and now_s + loop.period_s > opts.duration_s + 1e-9:
            duration_ran_out = True
            # Leave the rig safe: disarm and wait (bounded) for idle before stopping.
            if vehicle.state in ("armed", "active") and now_s < opts.duration_s + LINGER_S:
                if not disarm_sent:
                    vehicle.command("disarm")
                    disarm_sent = True
                return True
            return False
        return True

    start_clock = getattr(built.clock, "start", None)
    if start_clock is not None:
        start_clock()  # the run clock starts now, with tick 0 (not when the rig was built)
    if built.runner is not None:
        built.runner.start()
    if opts.realtime:
        # everything built so far lives for the whole run: keep it out of the cyclic
        # garbage collector, so a full collection does not stall a tick (CPython gc)
        gc.collect()
        gc.freeze()
    forced: ForcedStop | None = None
    stop_req.force_enabled = True
    try:
        stats = loop.run(tick)
    except ForcedStop as exc:
        forced = exc
        stats = loop.stats
        vehicle.send_zero(built.clock.now_s())
    except Exception:
        # an error outside the vehicle's own barrier (the record phase, the snapshot hook,
        # the progress line): no valve stays commanded while it propagates (exit 70)
        vehicle.send_zero(last_tick[1])
        raise
    finally:
        notifier.stopping(vehicle.shutdown_reason or "loop ended")
        stop_req.force_enabled = False
        if opts.realtime:
            gc.unfreeze()
        if live is not None:
            live.stop()
    record.flush()  # what the loop logged reaches the OS before the (bounded) closing waits
    if flight is not None:
        flight.begin_tick(int(last_tick[0]) + 1, last_tick[1])  # the teardown's records
    built.close()
    if opts.on_loop_stats is not None and forced is None:
        opts.on_loop_stats(stats)
    status, result = _verdict(opts, vehicle, script, duration_ran_out, stop_req, forced)
    try:
        summary = build_summary(opts, built, stats, result, folder)
    except Exception as exc:  # noqa: BLE001 - a summary is always written
        summary = {"result": result, "final_state": vehicle.state, "summary_error": f"{type(exc).__name__}: {exc}",
                   "run_folder": str(folder)}
    if vehicle.shutdown_reason is not None:
        summary["shutdown"] = vehicle.shutdown_status(built.clock.now_s()).as_dict()
        if forced is not None:
            summary["shutdown"]["forced"] = True
    summary["exceptions"] = {"count": vehicle.exceptions_caught, "first": vehicle.exception_reason}
    summary["realtime_knobs"] = knobs.as_dict()
    summary["exit_status"] = status
    record.write_summary(summary)
    if opts.summary_json:
        write_json_atomic(Path(opts.summary_json), summary)
    return status, summary, folder


def _paced(advance: Callable[[float, float], None]) -> Callable[[float, float], None]:
    """Lockstep ``advance`` that then waits until the wall clock reaches ``t1_s`` (served runs)."""
    wall0: list[float] = []

    def paced(t0_s: float, t1_s: float) -> None:
        if not wall0:
            wall0.append(time.monotonic() - t0_s)
        advance(t0_s, t1_s)
        lag_s = wall0[0] + t1_s - time.monotonic()
        if lag_s > 0:
            time.sleep(lag_s)
    return paced


def _verdict(opts: RunOptions, vehicle: Vehicle, script: OperatorScript, duration_ran_out: bool,
             stop_req: StopRequest, forced: ForcedStop | None) -> tuple[int, str]:
    """``(exit_status, result)`` of a run that ended (ISSUE 10 part 3: truthful results)."""
    if forced is not None:
        name = signal.Signals(stop_req.signum or forced.signum).name
        return SIGNAL_EXIT.get(stop_req.signum or forced.signum, 130), f"interrupted ({name}, forced)"
    if vehicle.shutdown_reason is not None:
        return SIGNAL_EXIT.get(stop_req.signum or 0, 130), vehicle.shutdown_reason
    st = vehicle.state
    if st in SAFE_STATES:
        return EXIT_STOPPED, (script.result if script.result and script.result.startswith(st)
                              else f"{st}: {safe_reason(vehicle)}")
    if script.finished:
        ok = script.result == "completed" and st == "idle"
        return (EXIT_OK if ok else EXIT_STOPPED), script.result or "stopped"
    if duration_ran_out:
        if not vehicle.post_passed:
            why = "; ".join(f"{d}: {r['reason']}" for d, r in vehicle.post_result.items() if not r.get("passed"))
            return EXIT_STOPPED, f"duration elapsed in {st}: POST not passed" + (f" ({why})" if why else "")
        if vehicle.faults.active:
            return EXIT_STOPPED, ("duration elapsed with active faults: "
                                  + "; ".join(sorted(vehicle.faults.active.values())))
        if st != "idle":
            return EXIT_STOPPED, f"duration elapsed in {st}"
        m = vehicle.mission
        if opts.arm and not opts.serve and m is not None and not m.complete:
            return EXIT_STOPPED, (f"duration elapsed: mission incomplete "
                                  f"({m.waypoints_reached}/{m.waypoints_total} waypoints)")
        if opts.arm and script.result is not None:
            return EXIT_STOPPED, script.result
        return EXIT_OK, "duration elapsed"
    return EXIT_STOPPED, script.result or "stopped"
