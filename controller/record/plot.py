"""Figures of a flight record (``qiki plot RUN``): PNGs drawn with matplotlib's Agg canvas.

Each figure reads the topics of the telemetry contract (``docs/flight-record.md``) and is
skipped, with a one-line note, when its data is absent -- a sparse, a ``safe_mode`` or a
recovered record gives the figures it can, never a crash:

``trajectory.png``
    ``/tick`` ``x_m``/``y_m`` (and the setpoint ``sp_x_m``/``sp_y_m``) in the world
    frame; waypoints from the ``mission.yaml`` attachment; radar tracks from
    ``/radar/<name>/tracks``; keep-out discs (the rig's ``radar.keep_out_radius_m``, from
    the ``rig.yaml`` attachment) around the emulated obstacles and the tracks' last
    positions.
``thrust_duty.png``
    ``thrust_n_<i>`` (``/tick``) and ``duty_pct_<i>`` (``/valves``, else ``/tick``) per
    valve over time.
``fsm.png``
    The FSM state over time, with the ``/events`` codes marked.
``battery.png``
    ``/power/bms`` ``soc_pct`` and ``voltage_v`` over time.
``loop.png``
    Histogram and timeline of ``period_error_s`` (``/loop``, else ``/tick``; real-time
    runs only) with the overrun ticks marked.

The figures use :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global
state, no GUI backend; PNGs are rendered by Agg).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from controller.record.reader import FlightRecord

__all__ = ["PlotReport", "plot_run", "FIGURES"]

log = logging.getLogger(__name__)

#: Dots per inch of the PNGs.
DPI = 110

_Row = dict[str, object]


@dataclass
class PlotReport:
    """What :func:`plot_run` drew.

    Attributes
    ----------
    written : list of Path
        PNGs written.
    skipped : dict of str to str
        Figure name -> why it was skipped (its data is absent).
    """

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class _NoData(Exception):
    """A figure's data is absent (the message is the note)."""


@dataclass
class _Data:
    """The topics the figures read, loaded once."""

    ticks: list[_Row]
    valves: list[_Row]
    loop: list[_Row]
    events: list[_Row]
    bms: list[_Row]
    tracks: dict[str, list[_Row]]
    mission: dict[str, object] | None
    rig: dict[str, object] | None


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _series(rows: Sequence[_Row], key: str) -> tuple[list[float], list[float]]:
    """(t_s, value) of the rows holding a number under ``key`` (time from ``t_s`` or the log time)."""
    ts: list[float] = []
    vs: list[float] = []
    for r in rows:
        v = _num(r.get(key))
        t = _num(r.get("t_s"))
        if t is None:
            ns = _num(r.get("log_time_ns"))
            t = None if ns is None else ns * 1e-9
        if v is not None and t is not None:
            ts.append(t)
            vs.append(v)
    return ts, vs


def _yaml_attachment(rec: FlightRecord, name: str) -> dict[str, object] | None:
    data = rec.attachment(name)
    if data is None:
        return None
    try:
        obj = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        log.warning("%s: attachment %s is not YAML (%s); not drawn", rec.path, name, exc)
        return None
    return obj if isinstance(obj, dict) else None


def _load(rec: FlightRecord) -> _Data:
    topics = rec.topics()
    tracks = {t: rec.topic(t) for t in topics if re.fullmatch(r"/radar/[^/]+/tracks", t)}
    return _Data(
        ticks=rec.topic("/tick") if "/tick" in topics else [],
        valves=rec.topic("/valves") if "/valves" in topics else [],
        loop=rec.topic("/loop") if "/loop" in topics else [],
        events=rec.topic("/events") if "/events" in topics else [],
        bms=rec.topic("/power/bms") if "/power/bms" in topics else [],
        tracks=tracks,
        mission=_yaml_attachment(rec, "mission.yaml"),
        rig=_yaml_attachment(rec, "rig.yaml"),
    )


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (9.0, 5.0)):  # noqa: ANN202 - matplotlib types
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _trajectory(d: _Data, title: str):  # noqa: ANN202
    _, xs = _series(d.ticks, "x_m")
    _, ys = _series(d.ticks, "y_m")
    wps = (d.mission or {}).get("waypoints")
    waypoints = [w for w in wps if isinstance(w, dict)] if isinstance(wps, list) else []
    if not xs or len(xs) != len(ys):
        if not waypoints and not d.tracks:
            raise _NoData("no pose (/tick x_m, y_m), waypoints or radar tracks")
    fig, axes = _figure(size=(7.5, 7.0))
    ax = axes[0][0]
    if xs and len(xs) == len(ys):
        ax.plot(xs, ys, lw=1.2, label="pose estimate")
        ax.plot(xs[:1], ys[:1], "go", label="start")
        ax.plot(xs[-1:], ys[-1:], "rs", label="end")
    _, spx = _series(d.ticks, "sp_x_m")
    _, spy = _series(d.ticks, "sp_y_m")
    if spx and len(spx) == len(spy):
        ax.plot(spx, spy, "--", lw=0.8, color="gray", label="setpoint")
    if waypoints:
        wx = [float(w.get("x_m", 0.0)) for w in waypoints]
        wy = [float(w.get("y_m", 0.0)) for w in waypoints]
        ax.plot(wx, wy, "kx", ms=9, mew=2, label="waypoints")
        for i, (x, y) in enumerate(zip(wx, wy, strict=True)):
            ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(5, 5))
    radius = _keep_out_radius(d.rig)
    from matplotlib.patches import Circle

    centers: list[tuple[float, float]] = []
    emu = (d.rig or {}).get("emulation")
    for ob in (emu.get("obstacles", []) if isinstance(emu, dict) else []) or []:
        if isinstance(ob, dict) and _num(ob.get("x_m")) is not None and _num(ob.get("y_m")) is not None:
            centers.append((float(ob["x_m"]), float(ob["y_m"])))
            ax.plot([ob["x_m"]], [ob["y_m"]], "m^", ms=8)
    for topic, rows in d.tracks.items():
        by_id: dict[object, tuple[list[float], list[float]]] = {}
        for r in rows:
            trks = r.get("tracks")
            for trk in trks if isinstance(trks, list) else []:
                if not isinstance(trk, dict):
                    continue
                tx, ty = _num(trk.get("x_m")), _num(trk.get("y_m"))
                if tx is not None and ty is not None:
                    px, py = by_id.setdefault(trk.get("id"), ([], []))
                    px.append(tx)
                    py.append(ty)
        for i, (px, py) in enumerate(by_id.values()):
            ax.plot(px, py, ".", ms=2, alpha=0.6, label=f"{topic.split('/')[2]} tracks" if i == 0 else None)
            centers.append((px[-1], py[-1]))
    if radius is not None:
        for i, (cx, cy) in enumerate(centers):
            ax.add_patch(Circle((cx, cy), radius, fill=False, ls=":", color="red",
                                label=f"keep-out {radius:g} m" if i == 0 else None))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m, world)")
    ax.set_ylabel("y (m, world)")
    ax.set_title(f"{title}: trajectory")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _keep_out_radius(rig: dict[str, object] | None) -> float | None:
    radar = (rig or {}).get("radar")
    return _num(radar.get("keep_out_radius_m")) if isinstance(radar, dict) else None


def _indexed_keys(rows: Sequence[_Row], prefix: str) -> list[str]:
    keys: set[str] = set()
    for r in rows[:50]:
        keys.update(k for k in r if re.fullmatch(rf"{prefix}\d+", k))
    return sorted(keys, key=lambda k: int(k[len(prefix):]))


def _thrust_duty(d: _Data, title: str):  # noqa: ANN202
    thrust = _indexed_keys(d.ticks, "thrust_n_")
    duty_rows = d.valves if _indexed_keys(d.valves, "duty_pct_") else d.ticks
    duty = _indexed_keys(duty_rows, "duty_pct_")
    if not thrust and not duty:
        raise _NoData("no thrust_n_<i> in /tick, no duty_pct_<i> in /valves or /tick")
    fig, axes = _figure(2, 1, size=(10.0, 6.5))
    for ax, rows, keys, label in ((axes[0][0], d.ticks, thrust, "thrust (N)"),
                                  (axes[1][0], duty_rows, duty, "duty (%)")):
        for k in keys:
            t, v = _series(rows, k)
            ax.plot(t, v, lw=0.8, label=k.rsplit("_", 1)[1])
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if keys:
            ax.legend(title="valve", ncol=min(len(keys), 8), fontsize=7, loc="upper right")
        else:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center")
    axes[0][0].set_title(f"{title}: thrust and duty per valve")
    axes[1][0].set_xlabel("run time (s)")
    return fig


def _fsm(d: _Data, title: str):  # noqa: ANN202
    pts: list[tuple[float, str]] = []
    for r in d.ticks:
        t, s = _num(r.get("t_s")), r.get("state")
        if t is not None and isinstance(s, str):
            pts.append((t, s))
    if not pts and not d.events:
        raise _NoData("no state in /tick and no /events")
    fig, axes = _figure(size=(10.0, 4.5))
    ax = axes[0][0]
    order = ["boot", "idle", "armed", "active", "safe_mode", "estop"]
    states = order + sorted({s for _, s in pts} - set(order))
    if pts:
        ax.step([t for t, _ in pts], [states.index(s) for _, s in pts], where="post", lw=1.5)
    ax.set_yticks(range(len(states)), states)
    for r in d.events:
        t = _num(r.get("t_s"))
        if t is None:
            continue
        code = r.get("code")
        c = int(code) if isinstance(code, int) else 0
        color = "red" if c >= 900 or 500 <= c < 600 else ("orange" if c >= 400 else "gray")
        ax.axvline(t, color=color, lw=0.7, alpha=0.6)
        what = r.get("event") or r.get("source") or r.get("kind", "")
        ax.annotate(f"{code} {what}", (t, len(states) - 0.5), rotation=90, fontsize=6,
                    va="top", ha="right", color=color)
    ax.set_ylim(-0.5, len(states) - 0.5 + 1.5)
    ax.set_xlabel("run time (s)")
    ax.set_title(f"{title}: FSM state and events (code, event or fault key)")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def _battery(d: _Data, title: str):  # noqa: ANN202
    t_soc, soc = _series(d.bms, "soc_pct")
    t_v, volts = _series(d.bms, "voltage_v")
    if not soc and not volts:
        raise _NoData("no /power/bms soc_pct or voltage_v")
    fig, axes = _figure(size=(9.0, 4.5))
    ax = axes[0][0]
    ax.plot(t_soc, soc, color="tab:green", label="SoC (%)")
    ax.set_ylabel("state of charge (%)", color="tab:green")
    ax.set_xlabel("run time (s)")
    ax2 = ax.twinx()
    ax2.plot(t_v, volts, color="tab:blue", label="pack voltage (V)")
    ax2.set_ylabel("pack voltage (V)", color="tab:blue")
    ax.set_title(f"{title}: battery")
    ax.grid(True, alpha=0.3)
    return fig


def _loop(d: _Data, title: str):  # noqa: ANN202
    rows = d.loop if any("period_error_s" in r for r in d.loop[:50]) else d.ticks
    t, err = _series(rows, "period_error_s")
    if not err:
        raise _NoData("no period_error_s in /loop or /tick (a lockstep run has no loop timing)")
    err_us = [e * 1e6 for e in err]
    over = [(_num(r.get("t_s")), r) for r in rows if r.get("overrun") is True]
    over_t = [ot for ot, _ in over if ot is not None]
    fig, axes = _figure(1, 2, size=(11.0, 4.5))
    h, tl = axes[0][0], axes[0][1]
    h.hist(err_us, bins=min(100, max(10, len(err_us) // 20)), color="tab:blue")
    h.set_yscale("log")
    h.set_xlabel("period error (us)")
    h.set_ylabel("ticks")
    h.set_title("period error histogram")
    tl.plot(t, err_us, lw=0.5, label="period error")
    td, dur = _series(rows, "tick_duration_s")
    if dur:
        tl.plot(td, [x * 1e6 for x in dur], lw=0.5, alpha=0.6, label="tick duration")
    if over_t:
        ymax = max(err_us) if err_us else 1.0
        tl.plot(over_t, [ymax] * len(over_t), "rv", ms=5, label=f"overrun ({len(over_t)})")
    tl.set_xlabel("run time (s)")
    tl.set_ylabel("us")
    tl.set_title(f"{title}: loop timing ({len(over_t)} overruns)")
    tl.grid(True, alpha=0.3)
    tl.legend(fontsize=8)
    return fig


#: The figures: file name -> drawing function.
FIGURES: dict[str, Callable[[_Data, str], object]] = {
    "trajectory.png": _trajectory,
    "thrust_duty.png": _thrust_duty,
    "fsm.png": _fsm,
    "battery.png": _battery,
    "loop.png": _loop,
}


def plot_run(record_path: Path, out_dir: Path, *, title: str | None = None) -> PlotReport:
    """Draw the figures of a flight record as PNGs.

    Parameters
    ----------
    record_path : Path
        ``run.mcap`` (finished or not: an unfinished file is read tolerantly), or an
        event file of a triggered-mode run (:mod:`controller.record.triggered`).
    out_dir : Path
        Folder for the PNGs (created).
    title : str or None, optional
        Prefix of the figure titles (default: the run folder's name).

    Returns
    -------
    PlotReport
        Files written and figures skipped with the reason.

    Raises
    ------
    controller.record.reader.RecordFileError
        The record cannot be read.
    """
    rec = FlightRecord(record_path)
    data = _load(rec)
    p = Path(record_path).resolve()
    # an event file of a triggered-mode run (event-<NNN>-<code>-<t_s>.mcap) is named too
    name = title or (f"{p.parent.name} {p.stem}" if p.name.startswith("event-") else p.parent.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = PlotReport()
    for fname, draw in FIGURES.items():
        try:
            fig = draw(data, name)
        except _NoData as exc:
            report.skipped[fname] = str(exc)
            continue
        path = out_dir / fname
        fig.savefig(path)  # type: ignore[attr-defined]
        report.written.append(path)
    return report
