"""``summary.json``: the index card of a run (see the README for every field)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.loop import LoopStats
    from controller.rig import BuiltRig
    from controller.run import RunOptions


def build_summary(opts: RunOptions, built: BuiltRig, stats: LoopStats, result: str, folder: Path) -> dict[str, Any]:
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
        for key in ("unknown_id", "own_tx_id", "dropped", "error_frames", "remote_frames"):
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
    c = v.control
    modulator = v.valves.modulator
    ticks_alloc = max(c.alloc_ticks, 1)
    summary["allocation"] = {
        "method": built.cfg.controller.allocation.method,
        "ticks": c.alloc_ticks,
        "saturation_fraction": round(c.saturated_ticks / ticks_alloc, 6),
        "rms_unallocated_wrench": round(math.sqrt(c.unallocated_sq / ticks_alloc), 9),
        "propellant_ns": round(float(sum(modulator.delivered_impulse_ns)), 6) if modulator is not None else None,
        "commanded_impulse_ns": [round(float(x), 6) for x in modulator.commanded_impulse_ns] if modulator is not None else None,
        "failures_handled": c.failures_handled,
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
