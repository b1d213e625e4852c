"""The monitor's terminal view: a report (:meth:`controller.monitor.run.Monitor.report`) as rich tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["render_report", "summary_line"]


def _f(x: object, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def summary_line(report: Mapping[str, object]) -> str:
    """One line: frames, duration, violations by kind (``no violations`` when none)."""
    by_kind = cast(Mapping[str, int], report.get("violations_by_kind") or {})
    what = ", ".join(f"{k} {n}" for k, n in by_kind.items()) or "no violations"
    return (f"{report.get('bus')}: {report.get('frames')} frames in {_f(report.get('duration_s'), '{:.2f}')} s; "
            f"{what}")


def _messages_table(report: Mapping[str, object]) -> Table:
    t = Table(title="messages", title_justify="left", expand=False)
    for col in ("message", "count", "rate Hz", "cycle ms", "mean ms", "min ms", "max ms"):
        t.add_column(col, justify="left" if col == "message" else "right")
    bad = {cast(str, v["subject"]) for v in cast(Sequence[Mapping[str, object]], report.get("violations") or [])}
    for m in cast(Sequence[Mapping[str, object]], report.get("messages") or []):
        label = cast(str, m["message"])
        style = "red" if label in bad or label.endswith("(unknown)") else None
        t.add_row(Text(label, style=style or ""), str(m["count"]), _f(m["rate_hz"]), _f(m["cycle_ms"], "{:g}"),
                  _f(m["period_mean_ms"]), _f(m["period_min_ms"]), _f(m["period_max_ms"]))
    return t


def _violations_table(report: Mapping[str, object]) -> RenderableType:
    items = cast(Sequence[Mapping[str, object]], report.get("violations") or [])
    if not items:
        return Text("no violations", style="green")
    t = Table(title="violations", title_justify="left")
    for col in ("kind", "subject", "count", "first s", "last s", "last seen"):
        t.add_column(col, justify="right" if col in ("count", "first s", "last s") else "left")
    for v in items:
        t.add_row(Text(str(v["kind"]), style="red"), str(v["subject"]), str(v["count"]),
                  _f(v["first_s"], "{:.3f}"), _f(v["last_s"], "{:.3f}"), str(v["detail"]))
    return t


def _vehicle_table(report: Mapping[str, object]) -> Table:
    veh = cast(Mapping[str, object], report.get("vehicle") or {})
    t = Table(title="vehicle (inferred from the frames)", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value")
    t.add_row("phase", str(veh.get("phase")))
    if veh.get("speed_mps") is not None or veh.get("yaw_rate_dps") is not None:
        t.add_row("ego motion",
                  f"{_f(veh.get('speed_mps'), '{:.2f}')} m/s, {_f(veh.get('yaw_rate_dps'), '{:.2f}')} deg/s")
    for b in cast(Sequence[Mapping[str, object]], veh.get("valve_boards") or []):
        duties = " ".join(f"{d:.0f}" for d in cast(Sequence[float], b.get("duty_pct") or []))
        t.add_row(f"{b['device']} duty %", duties)
        opened = b.get("valve_open")
        if opened is not None:
            t.add_row(f"{b['device']} board",
                      f"{b.get('state')} fw {b.get('firmware')}; open "
                      f"{''.join('1' if o else '0' for o in cast(Sequence[bool], opened))}; rail "
                      f"{_f(b.get('rail_voltage_v'), '{:.2f}')} V{' OFF' if b.get('rail_off') else ''}"
                      f"{'; CMD TIMEOUT' if b.get('cmd_timeout') else ''}"
                      f"{'; OVER TEMP' if b.get('over_temp') else ''}; {_f(b.get('board_temp_c'), '{:.0f}')} degC")
    for r in cast(Sequence[Mapping[str, object]], veh.get("radars") or []):
        objs = cast(Sequence[Mapping[str, object]], r.get("objects") or [])
        t.add_row(f"{r['device']} cycle", f"{_f(r.get('cycle_mean_ms'))} ms mean ({_f(r.get('cycle_min_ms'))}-"
                  f"{_f(r.get('cycle_max_ms'))}), {r.get('cycles')} cycles, {r.get('cycles_dropped')} dropped; "
                  f"faults {r.get('faults')}")
        listing = "; ".join(f"#{o['id']} {o['x_m']:.1f},{o['y_m']:.1f} m {o.get('class') or ''}"
                            for o in objs[:8]) or "none"
        t.add_row(f"{r['device']} objects ({len(objs)})", listing + (" ..." if len(objs) > 8 else ""))
    return t


def render_report(report: Mapping[str, object], header: str = "") -> RenderableType:
    """Return the live view: a header line, the messages, the violations and the vehicle."""
    parts: list[RenderableType] = []
    if header:
        parts.append(Text(header, style="bold"))
    parts.append(Text(summary_line(report)))
    parts.append(_messages_table(report))
    parts.append(_violations_table(report))
    parts.append(_vehicle_table(report))
    not_seen = cast(Sequence[str], report.get("not_seen") or [])
    if not_seen:
        parts.append(Text("not seen: " + ", ".join(not_seen), style="dim"))
    return Group(*parts)
