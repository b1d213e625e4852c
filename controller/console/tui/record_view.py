"""A recorded run as a timeline of :class:`~controller.console.tui.view.ConsoleView` (read-only).

:class:`RecordTimeline` reads a ``run.mcap`` once (through
:class:`controller.record.reader.FlightRecord`, topics of docs/flight-record.md) and
builds the view at any of its ``/tick`` messages: pose, setpoint, thrust and waypoint
progress from ``/tick``; state, time in state, faults and the arming picture from
``/events`` (transitions, ``fault`` events, the POST report, refusals); battery from
``/power/bms``; PDU from ``/in/modbus/pdu``; radar tracks from ``/radar/<band>/tracks``;
waypoints from the ``missions/*.yaml`` attachment and the keep-out radius from the rig
attachment. Ages are run-clock seconds since the value's message.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from controller.console.tui.view import Check, ConsoleView, Fault, Track, Waypoint
from controller.record.reader import FlightRecord

__all__ = ["RecordTimeline"]

log = logging.getLogger(__name__)

#: Trail length drawn on the map (ticks of the record, sub-sampled to every 5th).
TRAIL_TICKS_N = 3000


def _f(v: object) -> float | None:
    """Return a recorded number, or a Modbus value ``{"f": x}``, as a float (None otherwise)."""
    if isinstance(v, dict) and "f" in v:
        v = v["f"]
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


class _Series:
    """Messages of one topic, sorted by ``t_s``, looked up by time."""

    def __init__(self, msgs: Sequence[dict[str, object]]) -> None:
        self.msgs = list(msgs)
        self.t_s = [float(_f(m.get("t_s")) or m.get("log_time_ns", 0) / 1e9) for m in self.msgs]  # type: ignore[operator]

    def at(self, t_s: float) -> tuple[dict[str, object] | None, float | None]:
        """Return the last message at or before ``t_s`` and its age (s)."""
        i = bisect.bisect_right(self.t_s, t_s) - 1
        if i < 0:
            return None, None
        return self.msgs[i], t_s - self.t_s[i]

    def until(self, t_s: float) -> list[dict[str, object]]:
        """Every message at or before ``t_s``."""
        return self.msgs[: bisect.bisect_right(self.t_s, t_s)]


class RecordTimeline:
    """A recorded run, viewed at one ``/tick`` message at a time.

    Parameters
    ----------
    path : Path or str
        The ``run.mcap`` (or a run folder holding one).

    Raises
    ------
    controller.record.reader.RecordFileError
        Not a readable flight record.
    """

    def __init__(self, path: Path | str) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / "run.mcap"
        self.path = p
        rec = FlightRecord(p)
        topics = set(rec.topics())
        wanted = ["/tick", "/events", "/power/bms", "/in/modbus/pdu", "/radar/lr/tracks", "/radar/sr/tracks"]
        by_topic: dict[str, list[dict[str, object]]] = {t: [] for t in wanted}
        for m in rec.messages([t for t in wanted if t in topics]):
            d = dict(m.data)
            d.setdefault("t_s", m.log_time_ns / 1e9)
            by_topic[m.topic].append(d)
        self.ticks = _Series(by_topic["/tick"])
        self.events = _Series(by_topic["/events"])
        self.bms = _Series(by_topic["/power/bms"])
        self.pdu = _Series(by_topic["/in/modbus/pdu"])
        self.tracks = {b: _Series(by_topic[f"/radar/{b}/tracks"]) for b in ("lr", "sr")}
        self.waypoints: list[tuple[float, float]] = []
        self.keep_out_radius_m: float | None = None
        for att in rec.attachments():
            try:
                doc = yaml.safe_load(att.data)
            except yaml.YAMLError:
                continue
            if not isinstance(doc, dict):
                continue
            if att.name.startswith("missions/") and isinstance(doc.get("waypoints"), list):
                self.waypoints = [(float(w["x_m"]), float(w["y_m"])) for w in doc["waypoints"] if isinstance(w, dict)]
            if att.name.startswith("rigs/") and self.keep_out_radius_m is None:
                self.keep_out_radius_m = _find_number(doc, "keep_out_radius_m")
        log.debug("record %s: %d ticks", p, len(self.ticks.msgs))

    def __len__(self) -> int:
        return len(self.ticks.msgs)

    @property
    def duration_s(self) -> float:
        """Run-clock time of the last ``/tick`` (s); 0 for an empty record."""
        return self.ticks.t_s[-1] if self.ticks.t_s else 0.0

    def index_at(self, t_s: float) -> int:
        """Return the index of the last ``/tick`` at or before ``t_s`` (clamped to the record)."""
        i = bisect.bisect_right(self.ticks.t_s, t_s) - 1
        return max(0, min(i, len(self) - 1))

    def trail(self, index: int) -> list[tuple[float, float]]:
        """Positions ``(x_m, y_m)`` of the vehicle up to ``index`` (every 5th tick)."""
        lo = max(0, index - TRAIL_TICKS_N)
        out = []
        for m in self.ticks.msgs[lo : index + 1 : 5]:
            x, y = _f(m.get("x_m")), _f(m.get("y_m"))
            if x is not None and y is not None:
                out.append((x, y))
        return out

    def view(self, index: int) -> ConsoleView:
        """Return the console's view at the ``index``-th ``/tick`` message.

        Parameters
        ----------
        index : int
            0 .. ``len(self) - 1`` (clamped).
        """
        v = ConsoleView(connected=True, read_only=True, recording=str(self.path))
        if not self.ticks.msgs:
            v.notes.append("the record holds no /tick message")
            return v
        index = max(0, min(index, len(self) - 1))
        tk = self.ticks.msgs[index]
        t = self.ticks.t_s[index]
        v.t_s = t
        v.state = str(tk.get("state")) if tk.get("state") is not None else None
        v.armed = bool(tk.get("armed")) if tk.get("armed") is not None else None
        x, y, yaw = _f(tk.get("x_m")), _f(tk.get("y_m")), _f(tk.get("yaw_rad"))
        if x is not None and y is not None:
            v.pose = (x, y, yaw or 0.0)
        sx, sy, syaw = _f(tk.get("sp_x_m")), _f(tk.get("sp_y_m")), _f(tk.get("sp_yaw_rad"))
        if sx is not None and sy is not None:
            v.setpoint = (sx, sy, syaw or 0.0)
        reached = tk.get("waypoints_reached")
        v.waypoints_reached = reached if isinstance(reached, int) else None
        n = v.waypoints_reached or 0
        v.waypoints = [Waypoint(wx, wy, i < n) for i, (wx, wy) in enumerate(self.waypoints)]
        v.thrust_n = [_f(tk[k]) or 0.0 for k in sorted(tk, key=_thrust_key) if k.startswith("thrust_n_")]
        v.keep_out_radius_m = self.keep_out_radius_m
        v.ages_s.update(state=0.0, pose=0.0)
        self._events_into(v, t)
        self._power_into(v, t)
        for band, series in self.tracks.items():
            msg, age = series.at(t)
            if msg is None:
                continue
            v.ages_s["tracks"] = age if v.ages_s.get("tracks") is None else min(age or 0.0, v.ages_s["tracks"] or 0.0)
            for tr in msg.get("tracks") or []:  # type: ignore[attr-defined]
                if isinstance(tr, dict) and _f(tr.get("x_m")) is not None and _f(tr.get("y_m")) is not None:
                    v.tracks.append(Track(int(tr.get("id", 0)), _f(tr["x_m"]) or 0.0, _f(tr["y_m"]) or 0.0, band))
        return v

    def _events_into(self, v: ConsoleView, t: float) -> None:
        evs = self.events.until(t)
        entered = 0.0
        faults: dict[str, Fault] = {}
        checks: dict[str, Check] = {}
        for e in evs:
            kind = e.get("kind")
            et = _f(e.get("t_s")) or 0.0
            if kind == "transition":
                if e.get("target") == v.state:
                    entered = et
                if e.get("target") == "idle" and e.get("event") == "reset":
                    faults = {k: Fault(f.code, f.name, f.reason, False) for k, f in faults.items()}
                if e.get("event") == "estop":
                    checks["estop_released"] = Check("estop_released", False, "E-stop pressed")
                elif e.get("event") == "reset":
                    checks["estop_released"] = Check("estop_released", True, "released")
            elif kind == "fault":
                src = str(e.get("source") or e.get("text") or "fault")
                code = e.get("code")
                faults[src] = Fault(code if isinstance(code, int) else None, src, str(e.get("reason") or ""), True)
            elif kind == "post":
                devs = e.get("devices")
                if isinstance(devs, dict):
                    for name, d in devs.items():
                        if isinstance(d, dict):
                            key = f"post:{name}"
                            checks[key] = Check(key, bool(d.get("passed")), str(d.get("reason", "")))
                else:
                    checks["post"] = Check("post", bool(e.get("passed")), str(e.get("reason", "")))
            elif kind in ("refused", "refusal", "command_refused"):
                v.notes = [f"refused: {e.get('event', '')} ({e.get('reason', '')})"]
        v.time_in_state_s = t - entered
        v.faults = list(faults.values())
        v.checks = list(checks.values())
        v.ages_s["faults"] = 0.0
        v.ages_s["checks"] = 0.0

    def _power_into(self, v: ConsoleView, t: float) -> None:
        msg, age = self.bms.at(t)
        if msg is not None:
            v.battery = {k: _f(msg.get(k)) for k in ("soc_pct", "voltage_v", "current_a", "max_temperature_c")}
            v.ages_s["battery"] = age
        msg, age = self.pdu.at(t)
        if msg is not None and isinstance(msg.get("values"), dict):
            vals = msg["values"]
            assert isinstance(vals, dict)
            v.pdu = {k: (val if isinstance(val, bool) else _f(val)) for k, val in vals.items()
                     if isinstance(val, bool) or _f(val) is not None}
            v.ages_s["pdu"] = age


def _find_number(doc: object, key: str) -> float | None:
    """Return the first number under ``key`` anywhere in a parsed YAML document (depth first)."""
    if isinstance(doc, dict):
        if _f(doc.get(key)) is not None:
            return _f(doc.get(key))
        children: list[object] = list(doc.values())
    elif isinstance(doc, list):
        children = list(doc)
    else:
        return None
    for c in children:
        found = _find_number(c, key)
        if found is not None:
            return found
    return None


def _thrust_key(k: str) -> tuple[int, str]:
    tail = k.rsplit("_", 1)[-1]
    return (int(tail) if tail.isdigit() else -1, k)
