"""The main job: boot, POST, arm, fly the mission, disarm; record and summarise.

The operator of the main job is a script that sends the same events a person at the
console would (``arm``, ``start_mission``, ``disarm``) through the vehicle's one arbiter
(SAFETY.md O04). The run ends when the mission is flown and the vehicle is back in
``idle``, when the vehicle lands in ``safe_mode``/``estop`` (after one more second of
recorded zero output), or when ``duration_s`` of run time has passed.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from controller.config import load_mission, load_rig
from controller.errors import ConfigError
from controller.loop import FixedRateLoop, LoopStats
from controller.record.run_record import RunRecord, write_json_atomic
from controller.rig import build_rig

SAFE_STATES = ("safe_mode", "estop")
#: How long a run keeps ticking (recording zero output) after landing in a safe state.
LINGER_S = 1.0


@dataclass
class RunOptions:
    """Options of ``qiki run`` (see the CLI for their meaning)."""

    rig: str = "rigs/virtual.yaml"
    mission: str | None = "missions/square.yaml"
    realtime: bool = False
    duration_s: float | None = None
    seed: int = 0
    summary_json: str | None = None
    runs_dir: str = "runs"
    progress: bool = True
    lr_replay: str | None = None
    sr_replay: str | None = None
    #: False: no operator script; the stack boots, passes POST and stays idle (monitors its
    #: buses) until ``duration_s``, which is then required.
    arm: bool = True
    #: Called with the loop's :class:`~controller.loop.LoopStats` when the loop ends normally
    #: (not when a tick raised); for benches, not the CLI. Setting it makes the loop keep
    #: every tick's period error, duration and start (memory grows with the run).
    on_loop_stats: Callable[[LoopStats], None] | None = None


class OperatorScript:
    """Plays the console operator for the main job: arm, start the mission, disarm."""

    def __init__(self) -> None:
        self.armed_once = False
        self.started = False
        self.mission_done = False
        self.disarm_sent = False
        self.finished = False
        self.result: str | None = None
        self.safe_since_s: float | None = None
        self.arm_sent_s: float | None = None

    def step(self, vehicle, now_s: float) -> None:
        """Look at the vehicle after a tick and queue the next operator command (per tick).

        Parameters
        ----------
        vehicle : Vehicle
            The vehicle, after its tick.
        now_s : float
            The tick's time on the run clock (s).
        """
        st = vehicle.state
        if st in SAFE_STATES:
            if self.safe_since_s is None:
                self.safe_since_s = now_s
                reason = vehicle.first_fault or ("E-stop pressed" if st == "estop" else "POST failed" if not vehicle.post_passed else st)
                self.result = f"{st}: {reason}"
            elif now_s - self.safe_since_s >= LINGER_S:
                self.finished = True
            return
        if st == "idle" and vehicle.post_passed and not self.armed_once:
            vehicle.command("arm")
            self.armed_once = True
            self.arm_sent_s = now_s
        elif st == "idle" and self.armed_once and not self.disarm_sent:
            # arm was refused (O01): report why and end the run instead of idling forever
            if vehicle.last_refusal is not None and vehicle.last_refusal[0] == "arm":
                self.result = f"arm refused: {vehicle.last_refusal[1]}"
                self.finished = True
        elif st == "armed" and not self.started:
            vehicle.command("start_mission")
            self.started = True
        elif st == "armed" and self.started and vehicle.mission is not None and vehicle.mission.complete and not self.disarm_sent:
            vehicle.command("disarm")
            self.disarm_sent = True
        elif st == "idle" and self.disarm_sent:
            self.result = "completed"
            self.finished = True
        if vehicle.mission is not None and st == "active" and vehicle.mission.timed_out(now_s):
            vehicle.command("disarm")
            self.result = "mission timed out"
            self.disarm_sent = True


def _progress(vehicle, now_s: float) -> str:
    m = vehicle.mission
    wp = f"{m.waypoints_reached}/{m.waypoints_total}" if m is not None else "-"
    pose = vehicle.mcu.driver.pose
    p = f"x={pose.x_m:+.3f} y={pose.y_m:+.3f} yaw={math.degrees(pose.yaw_rad):+.1f}deg" if pose is not None else "pose -"
    return f"t={now_s:7.2f}s  state={vehicle.state:<9}  waypoints {wp}  {p}"


def run_main_job(opts: RunOptions, console=None) -> tuple[int, dict[str, Any], Path]:
    """Run the main job and write its run folder.

    Returns
    -------
    (exit_status, summary, run_folder)
        ``exit_status`` 0 when the mission completed (or ``duration_s`` ran out
        cleanly), 1 when the run ended in a safe state or timed out.

    Raises
    ------
    ConfigError, HalError
        For bad input (the CLI prints one line and exits 2).
    """
    if not opts.arm and opts.duration_s is None:
        raise ConfigError("qiki run", "--no-arm", "needs --duration (an idle run has no other end)")
    rig_cfg, rig_path = load_rig(opts.rig)
    mission_cfg = load_mission(opts.mission) if opts.mission else None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(opts.runs_dir) / stamp
    record = RunRecord(folder)
    can_names = [n for n, b in rig_cfg.buses.items() if b.kind == "can"]
    loggers = {n: record.can_logger(n) for n in can_names}
    loop_ref: dict[str, FixedRateLoop] = {}

    def overruns(now_s: float) -> int:
        lp = loop_ref.get("loop")
        return lp.overruns_last_second(now_s) if lp is not None else 0

    built = None
    try:
        built = build_rig(
            rig_cfg,
            rig_path,
            mission=mission_cfg,
            record=record.event,
            realtime=opts.realtime,
            seed=opts.seed,
            can_loggers=loggers,
            loop_overruns=overruns,
            options={"lr_replay": opts.lr_replay, "sr_replay": opts.sr_replay},
        )
        vehicle = built.vehicle
        loop = FixedRateLoop(built.clock, rig_cfg.controller.rate_hz, advance=None if opts.realtime else built.advance,
                             keep_ticks=opts.on_loop_stats is not None)
        loop_ref["loop"] = loop
        script = OperatorScript()
        result_holder: dict[str, str] = {}
        live = None
        last_draw = [0.0]
        if opts.progress and console is not None:
            from rich.live import Live
            from rich.text import Text

            live = Live(Text("starting"), console=console, refresh_per_second=4, transient=True)
            live.start()

        def tick(k: int, now_s: float, dt_s: float) -> bool:
            vehicle.tick(k, now_s, dt_s)
            if opts.arm:
                script.step(vehicle, now_s)
            if live is not None:
                wall = time.perf_counter()
                if wall - last_draw[0] > 0.25:
                    live.update(Text(_progress(vehicle, now_s)))
                    last_draw[0] = wall
            if script.finished:
                return False
            if opts.duration_s is not None and now_s + loop.period_s > opts.duration_s + 1e-9:
                result_holder["result"] = "duration elapsed"
                # Leave the rig safe: disarm and wait (bounded) for idle before stopping.
                if vehicle.state in ("armed", "active") and now_s < opts.duration_s + LINGER_S:
                    if not result_holder.get("disarm_sent"):
                        vehicle.command("disarm")
                        result_holder["disarm_sent"] = "1"
                    return True
                return False
            return True

        if built.runner is not None:
            built.runner.start()
        if opts.realtime:
            # everything built so far lives for the whole run: keep it out of the cyclic
            # garbage collector, so a full collection does not stall a tick (CPython gc)
            gc.collect()
            gc.freeze()
        try:
            stats = loop.run(tick)
        finally:
            if opts.realtime:
                gc.unfreeze()
            if live is not None:
                live.stop()
            built.close()
        if opts.on_loop_stats is not None:
            opts.on_loop_stats(stats)
        result = script.result if script.finished else result_holder.get("result", script.result or "stopped")
        summary = build_summary(opts, built, stats, result, folder)
        record.write_summary(summary)
        if opts.summary_json:
            write_json_atomic(Path(opts.summary_json), summary)
        ok = result == "completed" or (result == "duration elapsed" and vehicle.state not in SAFE_STATES)
        return (0 if ok else 1), summary, folder
    finally:
        if built is not None:
            built.close()
        record.close()


def build_summary(opts: RunOptions, built, stats, result: str, folder: Path) -> dict[str, Any]:
    """Assemble ``summary.json`` (see the README for every field).

    Parameters
    ----------
    opts : RunOptions
        The run's options.
    built : BuiltRig
        The rig after the run (closed; its counters are read).
    stats : LoopStats
        The loop's statistics.
    result : str
        How the run ended (``completed``, ``duration elapsed``, ``safe_mode: ...``).
    folder : Path
        The run folder.
    """
    v = built.vehicle
    m = v.mission
    buses: dict[str, Any] = {}
    for name, port in built.can_ports.items():
        st = port.stats()
        rejects = dict(st.pop("rejects", {}))
        for key in ("unknown_id", "dropped", "error_frames", "remote_frames"):
            if st.get(key):
                rejects[key] = rejects.get(key, 0) + st[key]
        buses[name] = {"kind": "can", "frames_sent": st["sent"], "frames_received": st["received"],
                       "ingress_rejects": rejects, "detail": st}
    s = v.mcu.driver.stats()
    serial_rejects = {k: s.get(k, 0) for k in ("crc_errors", "cobs_errors", "too_long", "runts", "unknown", "invalid") if s.get(k, 0)}
    if s.get("bytes_dropped"):
        serial_rejects["bytes_dropped"] = s["bytes_dropped"]
    buses[built.cfg.devices[v.mcu.name].bus] = {"kind": "serial", "frames_sent": s.get("frames_tx", 0),
                                                "frames_received": s.get("frames_ok", 0),
                                                "ingress_rejects": serial_rejects, "detail": s}
    summary: dict[str, Any] = {
        "result": result,
        "final_state": v.state,
        "rig": built.cfg.name,
        "mission": m.mission.name if m is not None else None,
        "seed": opts.seed,
        "realtime": opts.realtime,
        "sim_time_s": round(stats.sim_time_s, 3 if opts.realtime else 6),
        "waypoints_reached": m.waypoints_reached if m is not None else 0,
        "waypoints_total": m.waypoints_total if m is not None else 0,
        "max_hold_error_m": round(m.max_hold_error_m, 6) if m is not None else None,
        "transitions": v.transitions,
        "faults": list(v.faults.latched) or ([v.first_fault] if v.first_fault else []),
        "post": v.post_result,
        "loop": stats.summary(opts.realtime),
        "buses": buses,
        "output_guard": {
            "clamped": v.guard.clamped_total,
            "rate_limited": v.guard.rate_limited_total,
            "nonfinite": v.guard.nonfinite_total,
        },
        "run_folder": str(folder),
    }
    ticks_alloc = max(v.alloc_ticks, 1)
    summary["allocation"] = {
        "method": built.cfg.controller.allocation.method,
        "ticks": v.alloc_ticks,
        "saturation_fraction": round(v.saturated_ticks / ticks_alloc, 6),
        "rms_unallocated_wrench": round(math.sqrt(v.unallocated_sq / ticks_alloc), 9),
        "propellant_ns": round(float(sum(v.modulator.delivered_impulse_ns)), 6) if v.modulator is not None else None,
        "commanded_impulse_ns": [round(float(x), 6) for x in v.modulator.commanded_impulse_ns] if v.modulator is not None else None,
        "failures_handled": v.failures_handled,
    }
    for sub in v.subsystems:
        summary[sub.name] = sub.summary()
    if built.world is not None:
        summary["world"] = {
            "final_pose": [round(built.world.x_m, 6), round(built.world.y_m, 6), round(built.world.yaw_rad, 6)],
            "impulse_ns": [round(i, 6) for i in built.world.impulse_ns],
        }
    return summary


#: Summary keys that depend on the wall clock or the run folder (excluded when comparing runs).
WALL_CLOCK_KEYS = ("run_folder", "loop.wall_time_s", "loop.sim_speed_factor", "loop.period_error_us", "loop.tick_duration_us")
