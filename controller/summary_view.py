"""Human summary of a run, printed with rich at the end of ``qiki run``."""

from __future__ import annotations

from typing import Any


def print_summary(summary: dict[str, Any], console) -> None:
    """Print the human summary of ``summary.json`` on a rich console."""
    from rich.table import Table

    t = Table(title=f"QIKI run: {summary.get('rig')} / {summary.get('mission')}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("result", str(summary["result"]))
    t.add_row("final state", str(summary["final_state"]))
    if "waypoints_reached" not in summary:  # a run stopped before its first tick
        t.add_row("run folder", summary.get("run_folder", ""))
        console.print(t)
        return
    t.add_row("waypoints", f"{summary['waypoints_reached']}/{summary['waypoints_total']}")
    if summary.get("max_hold_error_m") is not None:
        t.add_row("max hold error", f"{summary['max_hold_error_m'] * 100:.1f} cm")
    t.add_row("run time", f"{summary['sim_time_s']:.2f} s")
    sd = summary.get("shutdown")
    if sd:
        t.add_row("safe stop", f"{sd['zero_command_ticks']} zero commands, disarmed {sd['disarmed']}, "
                               f"rail off confirmed {sd['rail_open_confirmed']}, relay open confirmed "
                               f"{sd['relay_open_confirmed']}" + (" (forced)" if sd.get("forced") else ""))
    loop = summary["loop"]
    if loop.get("realtime"):
        pe = loop.get("period_error_us", {})
        t.add_row("loop", f"{loop['ticks']} ticks, {loop['overruns']} overruns, period error p50/p99/max "
                          f"{pe.get('p50')}/{pe.get('p99')}/{pe.get('max')} us")
    else:
        t.add_row("loop", f"{loop['ticks']} ticks, lockstep at {loop.get('sim_speed_factor')}x real time")
    for name, post in summary.get("post", {}).items():
        t.add_row(f"POST {name}",
                  ("passed" if post["passed"] else "FAILED") + (f" ({post['reason']})" if post.get("reason") else ""))
    for name, st in summary.get("buses", {}).items():
        t.add_row(f"bus {name}", f"sent {st['frames_sent']}, received {st['frames_received']}, "
                                 f"rejects {sum(st['ingress_rejects'].values())}")
    al = summary.get("allocation")
    if al:
        t.add_row("allocation", f"{al['method']}: saturated {al['saturation_fraction'] * 100:.1f} % of ticks, "
                                f"RMS unallocated {al['rms_unallocated_wrench']:.3g}, "
                                f"propellant {al['propellant_ns']} N s, "
                                f"{len(al['failures_handled'])} failures handled")
    pw = summary.get("power")
    if pw:
        t.add_row("power", f"SoC {pw.get('start_soc_pct')} -> {pw.get('end_soc_pct')} %, "
                           f"min {pw.get('min_pack_voltage_v')} V, "
                           f"{pw.get('energy_used_wh')} Wh, relay ops {pw.get('relay_operations')}")
    for name, r in (summary.get("radar") or {}).items():
        if isinstance(r, dict) and "cycles" in r:  # one block per radar device
            t.add_row(f"radar {name}", f"{r['cycles']} cycles, {len(r.get('tracks', []))} confirmed tracks")
    for f in summary.get("faults", []):
        t.add_row("fault", f)
    t.add_row("run folder", summary.get("run_folder", ""))
    console.print(t)
