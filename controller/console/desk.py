"""The tick side of the operator console: the inbound queue, the control lock, telemetry snapshots.

Threads: the gateway (its own asyncio loop) only validates messages and puts
:class:`Inbound` items into :class:`InboundQueue`; everything that decides -- the control
lock, TTL, hold-to-confirm, heartbeat loss -- runs in the control tick, in
:meth:`ConsoleDesk.begin_tick` (at the START of the tick, before ``Vehicle.tick``), as a
function of the drained items and the run clock. Commands reach the vehicle only through
``Vehicle.command`` (the one O04 arbiter). The outcome of a command passed to the
arbiter is known after the tick (:meth:`ConsoleDesk.end_tick`): a transition on that
event, or the FSM's refusal with its reason.

Replay (issue 14 part 5): the drained items are the console's *inputs*. Each is recorded
at ingress as ``/in/console`` ``{tick, call, ...}`` with its age at drain; a replay feeds
the same items to the same ticks (:meth:`ConsoleDesk.replayed_items`), so the desk decides
the same and the vehicle gets the same events.

The desk publishes an immutable :class:`~controller.console.protocol.Telemetry`-shaped
dict (:attr:`ConsoleDesk.snapshot`) every ``publish_every_n`` ticks; the gateway reads
the reference (one atomic attribute read) and serialises it in its own thread.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from controller.components.seam import ARMING_STATES, TelemetryRow, telemetry_record
from controller.console.protocol import ARM_HOLD_MS, REFUSAL_REASONS
from controller.record.codes import code_for

if TYPE_CHECKING:
    from controller.config.console import ConsoleCfg
    from controller.vehicle import Vehicle

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = ["CONSOLE_TOPIC", "FSM_EVENT", "LOCK_COMMANDS", "ConsoleDesk", "Inbound", "InboundQueue", "Outcome"]

#: The ingress topic of console inputs in the flight record.
CONSOLE_TOPIC = "/in/console"
#: Console command -> FSM event (the arbiter's input).
FSM_EVENT: Mapping[str, str] = MappingProxyType({
    "arm": "arm", "disarm": "disarm", "estop": "estop", "reset": "reset",
    "mission_start": "start_mission", "mission_abort": "disarm"})
#: Commands of the control lock (handled by the desk, never by the vehicle).
LOCK_COMMANDS = frozenset({"request_control", "release_control", "take_control"})
#: A repeated ``take_control`` counts when it comes within this long of the first (s).
TAKEOVER_WINDOW_S = 10.0
#: Most items drained in one tick (the rest wait for the next one).
MAX_DRAIN_PER_TICK = 32


@dataclass(frozen=True, slots=True)
class Inbound:
    """One console input, as the gateway queues it (and the record keeps it).

    Attributes
    ----------
    kind : {"command", "heartbeat", "hello", "disconnect"}
    session : str
        The connection's id.
    client : str
        The console's name (``hello``), shown as the holder.
    observer : bool
        A read-only connection.
    id, name : str
        The command's id and name (empty for others).
    ttl_s : float
        The command's time-to-live (s), counted from ``received_s``.
    hold_ms : int or None
        The hold-to-confirm proof (ms; None: none sent).
    received_s : float
        ``time.monotonic()`` when the gateway received it (wall clock: the TTL is the
        operator's, not the run's).
    """

    kind: str
    session: str
    client: str = ""
    observer: bool = False
    id: str = ""
    name: str = ""
    ttl_s: float = 0.5
    hold_ms: int | None = None
    received_s: float = 0.0

    @property
    def holder_name(self) -> str:
        """``client@session``: how the lock names its holder."""
        return f"{self.client or 'console'}@{self.session}"


class InboundQueue:
    """Bounded, thread-safe queue from the gateway to the tick.

    Parameters
    ----------
    size : int
        Bound; :meth:`put` answers False when full (the gateway refuses ``queue_full``).
    """

    def __init__(self, size: int = 64) -> None:
        self._q: queue.Queue[Inbound] = queue.Queue(maxsize=size)

    def put(self, item: Inbound) -> bool:
        """Queue one item without blocking (any thread); False when full."""
        try:
            self._q.put_nowait(item)
        except queue.Full:
            return False
        return True

    def drain(self, limit: int = MAX_DRAIN_PER_TICK) -> list[Inbound]:
        """Take up to ``limit`` items without blocking (the tick thread)."""
        out: list[Inbound] = []
        while len(out) < limit:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the desk tells the gateway after a tick: a reply, or a control change.

    ``kind`` ``reply``: ``fields`` are a :class:`~controller.console.protocol.CommandReply`
    without ``type``/``v``; ``kind`` ``control``: ``holder`` and ``change``.
    """

    kind: str
    session: str | None
    fields: Mapping[str, object]


@dataclass
class _Pending:
    item: Inbound
    event: str


@dataclass
class _Lock:
    holder: str | None = None
    holder_session: str | None = None
    last_heartbeat_s: float = 0.0
    takeover_by: str | None = None
    takeover_first_s: float = 0.0
    sessions: set[str] = field(default_factory=set)


def _item_record(item: Inbound, tick: int, call: int, age_s: float) -> dict[str, object]:
    return {"tick": tick, "call": call, "kind": item.kind, "session": item.session, "client": item.client,
            "observer": item.observer, "id": item.id, "name": item.name, "ttl_s": item.ttl_s,
            "hold_ms": item.hold_ms, "age_s": age_s}


def _item_from(rec: Mapping[str, object]) -> tuple[Inbound, float]:
    hold = rec.get("hold_ms")
    item = Inbound(kind=str(rec["kind"]), session=str(rec["session"]), client=str(rec.get("client", "")),
                   observer=bool(rec.get("observer", False)), id=str(rec.get("id", "")),
                   name=str(rec.get("name", "")), ttl_s=float(rec.get("ttl_s", 0.5)),  # type: ignore[arg-type]
                   hold_ms=None if hold is None else int(hold))  # type: ignore[call-overload]
    return item, float(rec.get("age_s", 0.0))  # type: ignore[arg-type]


class ConsoleDesk:
    """The console's decisions, made in the control tick (see the module docstring).

    Parameters
    ----------
    cfg : ConsoleCfg
        The rig's ``console:`` section.
    rate_hz : float
        Control tick rate (Hz); the snapshot is published every
        ``max(1, round(rate_hz / cfg.telemetry_hz))`` ticks.
    inbound : InboundQueue
        Filled by the gateway.
    notify : callable ``(list[Outcome]) -> None``, optional
        Called at the end of a tick with its replies and control changes (the gateway
        hands them to its loop; must not block).
    put : callable ``(topic, record) -> None``, optional
        The flight record's ingress sink (``/in/console``); None: not recorded.
    clock : callable, optional
        Wall clock for command ages (s; default ``time.monotonic``).
    """

    def __init__(self, cfg: ConsoleCfg, rate_hz: float, inbound: InboundQueue,
                 notify: Callable[[list[Outcome]], None] | None = None,
                 put: Callable[[str, Mapping[str, object]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.rate_hz = rate_hz
        self.inbound = inbound
        self.notify = notify
        self.put = put
        self.clock = clock
        self.publish_every_n = max(1, round(rate_hz / cfg.telemetry_hz))
        self.lock = _Lock()
        self._pending: list[_Pending] = []
        self._outcomes: list[Outcome] = []
        self._refused: list[tuple[str, str]] = []
        self._n_transitions = 0
        self._seq = 0
        self._tick, self._now_s = 0, 0.0
        #: The latest published telemetry (immutable; replaced, never changed).
        self.snapshot: Mapping[str, object] | None = None
        #: Latest component telemetry by topic: ``(record, run time it came)``.
        #: A row (:data:`~controller.components.seam.TelemetryRow`) is read through
        #: :func:`~controller.components.seam.telemetry_record`.
        self.latest: dict[str, tuple[Mapping[str, object] | TelemetryRow, float]] = {}
        self.recording = put is not None
        #: ``clock()`` when the last snapshot was published: the gateway sends a few ms after
        #: it, in the idle part of the tick period, so its work does not meet a tick.
        self.published_s: float | None = None

    # ------------------------------------------------------------------ event sink tap
    def on_event(self, kind: str, fields: Mapping[str, object]) -> None:
        """See every event the vehicle records (the run's event sink calls this): FSM refusals."""
        if kind == "refused":
            self._refused.append((str(fields.get("event", "")), str(fields.get("reason", ""))))

    # ------------------------------------------------------------------ the tick
    def drained_items(self, tick: int) -> list[tuple[Inbound, float]]:
        """Drain the queue and record each item at ingress; ``(item, age_s)`` in order."""
        now = self.clock()
        out = []
        for call, item in enumerate(self.inbound.drain()):
            age_s = max(0.0, now - item.received_s)
            if self.put is not None:
                self.put(CONSOLE_TOPIC, _item_record(item, tick, call, age_s))
            out.append((item, age_s))
        return out

    @staticmethod
    def replayed_items(at: Callable[[str, int, int], Mapping[str, object] | None],
                       tick: int) -> list[tuple[Inbound, float]]:
        """Return the items a recorded run drained at ``tick`` (``at`` is ``ReplayInputs.at``)."""
        out = []
        call = 0
        while (rec := at(CONSOLE_TOPIC, tick, call)) is not None:
            out.append(_item_from(rec))
            call += 1
        return out

    def begin_tick(self, v: Vehicle, tick: int, now_s: float, items: Sequence[tuple[Inbound, float]]) -> None:
        """Start of a tick: decide on the drained items, watch the link; queue FSM events.

        Parameters
        ----------
        v : Vehicle
            Before its tick; events go to ``v.command`` only.
        tick : int
        now_s : float
            The tick's run time (s).
        items : sequence of (Inbound, age_s)
            From :meth:`drained_items` (live) or :meth:`replayed_items` (replay).
        """
        self._refused.clear()
        self._tick, self._now_s = tick, now_s
        self._n_transitions = len(v.transitions)
        for item, age_s in items:
            self._one(v, tick, now_s, item, age_s)
        lk = self.lock
        if lk.holder is not None and now_s - lk.last_heartbeat_s > self.cfg.heartbeat_timeout_s + 1e-9:
            self._link_lost(v, now_s, f"no heartbeat for {now_s - lk.last_heartbeat_s:.3f} s")

    def _note(self, v: Vehicle, action: str, **fields: object) -> None:
        v.record(self._tick, self._now_s, "console", action=action, **fields)

    def _reply(self, item: Inbound, tick: int | None, now_s: float | None, status: str, code: int,
               reason: str = "", refusal: str | None = None, state: str | None = None) -> None:
        self._outcomes.append(Outcome("reply", item.session, {
            "id": item.id, "name": item.name, "status": status, "code": code, "reason": reason,
            "refusal": refusal, "tick": tick, "t_s": now_s, "state": state}))

    def _refuse(self, v: Vehicle, tick: int, now_s: float, item: Inbound, refusal: str, reason: str = "") -> None:
        action = f"refused_{refusal}"
        self._note(v, action, client=item.holder_name, command=item.name, id=item.id,
                  reason=reason or REFUSAL_REASONS[refusal])
        self._reply(item, tick, now_s, "refused", code_for("console", {"action": action}),
                    reason or REFUSAL_REASONS[refusal], refusal, v.state)

    def _control(self, v: Vehicle, now_s: float, change: str, action: str, **fields: object) -> None:
        self._note(v, action, holder=self.lock.holder, **fields)
        self._outcomes.append(Outcome("control", None, {"holder": self.lock.holder, "change": change,
                                                        "t_s": now_s}))

    def _one(self, v: Vehicle, tick: int, now_s: float, item: Inbound, age_s: float) -> None:
        lk = self.lock
        if item.kind == "heartbeat":
            if item.session == lk.holder_session:
                lk.last_heartbeat_s = now_s
            return
        if item.kind == "hello":
            lk.sessions.add(item.session)
            return
        if item.kind == "disconnect":
            lk.sessions.discard(item.session)
            if item.session == lk.holder_session:
                if v.state in ARMING_STATES:
                    self._link_lost(v, now_s, "controlling console disconnected")
                else:
                    who = lk.holder
                    lk.holder = lk.holder_session = None
                    self._control(v, now_s, "disconnected", "control_disconnected", client=who)
            return
        if item.kind != "command":
            return
        name = item.name
        if age_s > item.ttl_s + 1e-9:
            self._refuse(v, tick, now_s, item, "stale",
                         f"time-to-live {item.ttl_s * 1000:.0f} ms ran out ({age_s * 1000:.0f} ms old at the tick)")
            return
        if item.observer and name != "estop":
            self._refuse(v, tick, now_s, item, "read_only")
            return
        if v.shutdown_reason is not None and name != "estop":
            self._refuse(v, tick, now_s, item, "shutting_down")
            return
        if name in LOCK_COMMANDS:
            self._lock_command(v, tick, now_s, item)
            return
        if name != "estop" and item.session != lk.holder_session:
            why = (f"{REFUSAL_REASONS['no_control']} (held by {lk.holder})" if lk.holder is not None
                   else f"{REFUSAL_REASONS['no_control']} (nobody holds it: request_control first)")
            self._refuse(v, tick, now_s, item, "no_control", why)
            return
        if name == "arm" and (item.hold_ms is None or item.hold_ms < ARM_HOLD_MS):
            held = "no proof" if item.hold_ms is None else f"held {item.hold_ms} ms"
            self._refuse(v, tick, now_s, item, "no_confirm",
                         f"arm needs hold-to-confirm of at least {ARM_HOLD_MS} ms ({held})")
            return
        event = FSM_EVENT[name]
        self._note(v, "command", client=item.holder_name, command=name, id=item.id, fsm_event=event)
        v.command(event)
        self._pending.append(_Pending(item, event))

    def _lock_command(self, v: Vehicle, tick: int, now_s: float, item: Inbound) -> None:
        lk = self.lock
        name = item.name
        if name == "release_control":
            if item.session != lk.holder_session:
                self._refuse(v, tick, now_s, item, "not_holder")
                return
            who = lk.holder
            lk.holder = lk.holder_session = None
            self._control(v, now_s, "released", "control_released", client=who)
            self._reply(item, tick, now_s, "accepted", code_for("console", {"action": "control_released"}),
                        state=v.state)
            return
        if lk.holder_session == item.session:
            self._reply(item, tick, now_s, "accepted", code_for("console", {"action": "control_granted"}),
                        state=v.state)
            return
        if lk.holder is None:
            self._grant(v, now_s, item, "granted", "control_granted")
            self._reply(item, tick, now_s, "accepted", code_for("console", {"action": "control_granted"}),
                        state=v.state)
            return
        if name == "request_control":
            self._refuse(v, tick, now_s, item, "held_by_other",
                         f"{REFUSAL_REASONS['held_by_other']} ({lk.holder}); take_control to take it over")
            return
        # take_control while another console holds the lock
        first = lk.takeover_by == item.session and now_s - lk.takeover_first_s <= TAKEOVER_WINDOW_S
        if first and now_s - lk.takeover_first_s >= self.cfg.takeover_timeout_s - 1e-9:
            prev = lk.holder
            self._grant(v, now_s, item, "taken_over", "control_taken_over", previous=prev)
            self._reply(item, tick, now_s, "accepted", code_for("console", {"action": "control_taken_over"}),
                        state=v.state)
            return
        if not first:
            lk.takeover_by, lk.takeover_first_s = item.session, now_s
        wait_s = self.cfg.takeover_timeout_s - (now_s - lk.takeover_first_s)
        self._refuse(v, tick, now_s, item, "takeover_too_early",
                     f"takeover of {lk.holder} requested; repeat take_control in {wait_s:.1f} s "
                     f"(within {TAKEOVER_WINDOW_S:.0f} s) to take it")

    def _grant(self, v: Vehicle, now_s: float, item: Inbound, change: str, action: str, **fields: object) -> None:
        lk = self.lock
        lk.holder, lk.holder_session, lk.last_heartbeat_s = item.holder_name, item.session, now_s
        lk.takeover_by = None
        self._control(v, now_s, change, action, client=item.holder_name, **fields)

    def _link_lost(self, v: Vehicle, now_s: float, why: str) -> None:
        lk = self.lock
        who = lk.holder
        armed = v.state in ARMING_STATES
        act = self.cfg.link_loss_action if armed else "none"
        lk.holder = lk.holder_session = None
        self._control(v, now_s, "link_lost", "link_lost", client=who, reason=why, link_loss_action=act)
        if armed:
            v.command(act)

    def end_tick(self, v: Vehicle, tick: int, now_s: float) -> None:
        """After ``Vehicle.tick``: answer the commands passed to the arbiter; notify the gateway."""
        if self._pending:
            new = v.transitions[self._n_transitions:]
            for p in self._pending:
                tr = next((t for t in new if t[2] == p.event), None)
                if tr is not None:
                    self._reply(p.item, tick, now_s, "accepted", code_for("transition", {"event": p.event}),
                                state=v.state)
                    continue
                why = next((r for e, r in self._refused if e == p.event), None)
                if why is None:
                    why = f"no transition on {p.event!r} from {v.state!r}"
                self._reply(p.item, tick, now_s, "refused", code_for("refused", {"event": p.event}), why,
                            "fsm_refused", v.state)
            self._pending.clear()
        if self._outcomes and self.notify is not None:
            out, self._outcomes = self._outcomes, []
            self.notify(out)
        else:
            self._outcomes.clear()

    # ------------------------------------------------------------------ telemetry
    def observe(self, records: Sequence[tuple[str, Mapping[str, object] | TelemetryRow]], now_s: float) -> None:
        """Keep the latest component telemetry by topic (per tick; cheap: a row is kept as a row)."""
        for topic, rec in records:
            self.latest[topic] = (rec, now_s)

    def due(self, tick: int) -> bool:
        """Tell whether this tick publishes a snapshot."""
        return tick % self.publish_every_n == 0

    def publish(self, v: Vehicle, tick: int, now_s: float, loop_stats: Mapping[str, object]) -> None:
        """Build and publish the telemetry snapshot of this tick (every ``publish_every_n`` ticks)."""
        self._seq += 1
        self.snapshot = MappingProxyType(build_telemetry(self, v, tick, now_s, loop_stats, self._seq))
        self.published_s = self.clock()


def _f(x: object) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def build_telemetry(desk: ConsoleDesk, v: Vehicle, tick: int, now_s: float, loop_stats: Mapping[str, object],
                    seq: int) -> dict[str, object]:
    """Return the ``telemetry`` message body of this tick (plain JSON values; the tick thread).

    Reads the vehicle without changing it: arming checks are evaluated one by one (the
    same calls as the ``arming_checks_pass`` guard of :mod:`controller.vehicle.rules`).
    """
    from controller.record.codes import code_for as _code

    state = v.state
    entered_s = float(v.transitions[-1][0]) if v.transitions else 0.0
    view = v.view()
    p = v.mcu.pose
    pose_rx = getattr(v.mcu.driver, "pose_rx_s", None)
    pose = None if p is None else {
        "x_m": p.x_m, "y_m": p.y_m, "yaw_rad": p.yaw_rad, "vx_mps": p.vx_world_mps, "vy_mps": p.vy_world_mps,
        "yaw_rate_radps": p.yaw_rate_radps, "age_s": None if pose_rx is None else max(0.0, now_s - pose_rx)}
    m = v.mission
    c = v.control
    setpoint = None
    if m is not None:
        sp = c.last_setpoint
        wps = [[float(x), float(y), float(yaw)] for x, y, yaw in m.targets]
        setpoint = {"x_m": sp[0] if sp else None, "y_m": sp[1] if sp else None, "yaw_rad": sp[2] if sp else None,
                    "waypoints_reached": m.waypoints_reached, "waypoints_total": m.waypoints_total,
                    "waypoints": wps, "started": m.started_at_s is not None,
                    "complete": bool(m.complete), "age_s": 0.0 if v.demand_n is not None else None}
    faults = [{"key": k, "code": _code("fault", {"source": k}), "reason": r}
              for k, r in sorted(v.faults.active.items())]
    checks: list[dict[str, object]] = [{"name": "post", "ok": bool(v.post_passed),
                                        "reason": "" if v.post_passed else "POST has not passed"}]
    checks.append({"name": "faults", "ok": not v.faults.active,
                   "reason": ("active fault: " + "; ".join(sorted(v.faults.active.values()))) if v.faults.active
                   else ""})
    why = v.mcu.arming_check(view)
    checks.append({"name": "mcu", "ok": why is None, "reason": why or ""})
    for name, port in v.can_ports.items():
        ep = bool(port.error_passive)
        checks.append({"name": f"can.{name}", "ok": not ep, "reason": f"CAN bus {name} is error-passive" if ep else ""})
    for comp in v.components:
        if comp is not v.mcu:
            why = comp.arming_check(view)
            checks.append({"name": comp.name, "ok": why is None, "reason": why or ""})
    post = [{"device": d, "passed": bool(r.get("passed")), "reason": str(r.get("reason", ""))}
            for d, r in sorted(v.post_result.items())]
    power = None
    bms = desk.latest.get("/power/bms")
    if bms is not None:
        rec, at_s = telemetry_record(bms[0]), bms[1]
        vals = {k: val for k, val in rec.items() if k not in ("tick", "t_s", "age_s")
                and (val is None or isinstance(val, (int, float, str, bool)))}
        base = _f(rec.get("age_s")) or 0.0
        power = {"values": vals, "age_s": now_s - at_s + base}
    for topic, (msg, at_s) in desk.latest.items():
        if topic.startswith("/power/") and topic != "/power/bms":
            rec = telemetry_record(msg)
            if power is None:
                power = {"values": {}, "age_s": now_s - at_s}
            pv = power["values"]
            assert isinstance(pv, dict)
            short = topic.rsplit("/", 1)[-1]
            for k, val in rec.items():
                if k not in ("tick", "t_s") and (val is None or isinstance(val, (int, float, str, bool))):
                    pv[f"{short}.{k}"] = val
    tracks: list[dict[str, object]] = []
    radar_at: float | None = None
    for topic, (msg, at_s) in desk.latest.items():
        if topic.startswith("/radar/") and topic.endswith("/tracks"):
            radar_at = at_s if radar_at is None else max(radar_at, at_s)
            rec = telemetry_record(msg)
            for t in rec.get("tracks", ()) or ():  # type: ignore[attr-defined]
                tracks.append({"id": int(t["id"]), "x_m": float(t["x_m"]), "y_m": float(t["y_m"]),
                               "vx_mps": _f(t.get("vx_mps")), "vy_mps": _f(t.get("vy_mps"))})
    buses = [{"name": n, "bus_off": bool(port.bus_off), "error_passive": bool(port.error_passive),
              "send_failures": int(port.consecutive_send_failures)} for n, port in v.can_ports.items()]
    lk = desk.lock
    estop = getattr(v.mcu.driver, "estop_pressed", None)
    return {
        "type": "telemetry", "v": 1, "seq": seq, "tick": tick, "t_s": now_s, "state": state,
        "time_in_state_s": max(0.0, now_s - entered_s), "armed": state in ARMING_STATES,
        "outputs": v.fsm.outputs, "control_holder": lk.holder,
        "link_age_s": None if lk.holder is None else max(0.0, now_s - lk.last_heartbeat_s),
        "recording": desk.recording, "pose": pose, "setpoint": setpoint, "faults_active": faults,
        "faults_latched": list(v.faults.latched), "arming_checks": checks,
        "arm_ready": all(bool(ch["ok"]) for ch in checks), "post": post, "post_passed": bool(v.post_passed),
        "power": power, "buses": buses, "radar_tracks": tracks,
        "radar_age_s": None if radar_at is None else now_s - radar_at,
        "estop_pressed": None if estop is None else bool(estop), "thrust_n": [float(x) for x in v.guard.last_n],
        "loop": dict(loop_stats),
        "last_refusal": None if v.last_refusal is None else [v.last_refusal[0], v.last_refusal[1]],
    }
