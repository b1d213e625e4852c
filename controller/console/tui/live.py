"""The live link to the gateway (docs/console-protocol.md): telemetry in, commands out.

:func:`view_from_telemetry` maps one ``telemetry`` message onto a
:class:`~controller.console.tui.view.ConsoleView` (pure; unknown fields are ignored, as
the protocol asks). :class:`LiveLink` is the asyncio WebSocket client: it connects to
``/ws`` (token as ``?token=`` and ``Authorization: Bearer``), keeps the latest view, the
trail, the control status and the command history, sends a heartbeat every 50 ms while
this console holds control (the gateway drops the lock, and runs the rig's link-loss
action, after ``heartbeat_timeout_s`` without one), and sends commands with an id and a
time-to-live. Link age is wall-clock seconds since the last message from the gateway.

The console runs the link on its own thread and event loop (:meth:`LiveLink.start`,
:meth:`LiveLink.submit`): drawing the screen never delays a heartbeat (the gateway's
default timeout is 0.3 s, and a full redraw on a loaded machine can take longer).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from controller.console.tui.view import Check, ConsoleView, Fault, Track, Waypoint

__all__ = ["DEFAULT_URL", "CommandRecord", "LiveLink", "view_from_telemetry", "with_token"]

log = logging.getLogger(__name__)

#: The gateway's default WebSocket address (``qiki run --serve``).
DEFAULT_URL = "ws://127.0.0.1:8765/ws"
#: Heartbeat period while holding control (s): the protocol asks for >= 5 Hz; 20 Hz leaves
#: 0.25 s of slack under the default 0.3 s timeout on a loaded machine.
HEARTBEAT_PERIOD_S = 0.05
#: Time-to-live of a command (ms), the protocol's default.
COMMAND_TTL_MS = 500
#: Trail points kept (one per telemetry message: 100 s at 20 Hz).
TRAIL_N = 2000


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _dict(v: object) -> dict[str, object]:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[object]:
    return v if isinstance(v, list) else []


def view_from_telemetry(msg: dict[str, object], me: str | None = None, you_hold: bool = False) -> ConsoleView:
    """Map one ``telemetry`` message (docs/console-protocol.md) onto a view.

    Parameters
    ----------
    msg : dict
        The decoded message.
    me : str or None
        This console's holder name when it holds control (from a ``control`` message).
    you_hold : bool
        The last ``control`` message said this console holds the lock.

    Returns
    -------
    ConsoleView
        ``link_age_s`` and ``connected`` are left to the caller.
    """
    v = ConsoleView(connected=True)
    v.t_s = _num(msg.get("t_s"))
    v.state = str(msg["state"]) if msg.get("state") is not None else None
    v.time_in_state_s = _num(msg.get("time_in_state_s"))
    v.armed = bool(msg["armed"]) if msg.get("armed") is not None else None
    holder = msg.get("control_holder")
    v.holder = str(holder) if holder is not None else None
    v.me = v.holder if you_hold else me
    v.recording = "yes" if msg.get("recording") else None
    v.ages_s["state"] = 0.0
    pose = _dict(msg.get("pose"))
    x, y = _num(pose.get("x_m")), _num(pose.get("y_m"))
    if x is not None and y is not None:
        v.pose = (x, y, _num(pose.get("yaw_rad")) or 0.0)
    v.ages_s["pose"] = _num(pose.get("age_s"))
    sp = _dict(msg.get("setpoint"))
    sx, sy = _num(sp.get("x_m")), _num(sp.get("y_m"))
    if sx is not None and sy is not None:
        v.setpoint = (sx, sy, _num(sp.get("yaw_rad")) or 0.0)
    reached = sp.get("waypoints_reached")
    v.waypoints_reached = reached if isinstance(reached, int) and not isinstance(reached, bool) else None
    n = v.waypoints_reached or 0
    for i, w in enumerate(_list(sp.get("waypoints"))):
        wl = _list(w)
        if len(wl) >= 2 and _num(wl[0]) is not None and _num(wl[1]) is not None:
            v.waypoints.append(Waypoint(_num(wl[0]) or 0.0, _num(wl[1]) or 0.0, i < n))
    ko = _num(msg.get("keep_out_radius_m"))
    v.keep_out_radius_m = ko
    for f in _list(msg.get("faults_active")):
        fd = _dict(f)
        code = fd.get("code")
        v.faults.append(Fault(code if isinstance(code, int) else None, str(fd.get("key", "?")),
                              str(fd.get("reason", "")), True))
    active = {f.name for f in v.faults}
    for key in _list(msg.get("faults_latched")):
        if str(key) not in active:
            v.faults.append(Fault(None, str(key), "latched", False))
    v.ages_s["faults"] = 0.0
    for c in _list(msg.get("arming_checks")):
        cd = _dict(c)
        v.checks.append(Check(str(cd.get("name", "?")), bool(cd.get("ok")), str(cd.get("reason", ""))))
    for p in _list(msg.get("post")):
        pd = _dict(p)
        if not pd.get("passed"):
            v.checks.append(Check(f"post:{pd.get('device', '?')}", False, str(pd.get("reason", ""))))
    v.ages_s["checks"] = 0.0
    power = _dict(msg.get("power"))
    values = _dict(power.get("values"))
    v.battery = {k: _num(values.get(k)) for k in ("soc_pct", "voltage_v", "current_a", "max_temperature_c")
                 if k in values}
    v.pdu = {k: val for k, val in values.items() if k not in v.battery}
    v.ages_s["battery"] = v.ages_s["pdu"] = _num(power.get("age_s")) if power else None
    for t in _list(msg.get("radar_tracks")):
        td = _dict(t)
        tx, ty = _num(td.get("x_m")), _num(td.get("y_m"))
        tid = td.get("id")
        if tx is not None and ty is not None and isinstance(tid, int):
            v.tracks.append(Track(tid, tx, ty))
    v.ages_s["tracks"] = _num(msg.get("radar_age_s"))
    v.thrust_n = [_num(t) or 0.0 for t in _list(msg.get("thrust_n"))]
    lr = _list(msg.get("last_refusal"))
    if len(lr) == 2:
        v.notes.append(f"last refusal: {lr[0]}: {lr[1]}")
    return v


def with_token(url: str, token: str | None) -> str:
    """``url`` with ``?token=`` set (unchanged without a token)."""
    if not token:
        return url
    parts = urlsplit(url)
    q = [(k, val) for k, val in parse_qsl(parts.query) if k != "token"] + [("token", token)]
    return urlunsplit(parts._replace(query=urlencode(q)))


@dataclass
class CommandRecord:
    """One command sent and its reply.

    Attributes
    ----------
    id, name : str
        As sent.
    sent_s : float
        Wall-clock (monotonic) time it was sent (s).
    status : str
        ``sent``, ``accepted`` or ``refused``.
    reason : str
        The refusal's reason.
    code : int or None
        The reply's event code.
    tick : int or None
        The tick that processed it (from the reply).
    """

    id: str
    name: str
    sent_s: float
    status: str = "sent"
    reason: str = ""
    code: int | None = None
    tick: int | None = None

    def line(self) -> str:
        """One line for the history panel."""
        code = f" [{self.code}]" if self.code is not None else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.name} {self.status}{code}{why}"


class LiveLink:
    """The WebSocket client of one console.

    Parameters
    ----------
    url : str
        The gateway's ``ws://HOST:PORT/ws``.
    token : str or None
        The gateway's token (never logged).
    client_name : str
        Sent in ``hello``; the holder is shown as ``<name>@<session>``.
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, client_name: str = "tui") -> None:
        self.url = url
        self._token = token
        self.client_name = client_name
        self.view = ConsoleView()
        self.trail: deque[tuple[float, float]] = deque(maxlen=TRAIL_N)
        self.history: deque[CommandRecord] = deque(maxlen=200)
        self.welcome: dict[str, object] = {}
        self.you_hold = False
        self.me: str | None = None
        self.error: str | None = None
        self.last_rx_s: float | None = None
        self._ws: object | None = None
        self._ids = itertools.count(1)
        self._hb_seq = itertools.count(0)
        self.closed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the link (:meth:`run`) on a thread of its own with its own event loop."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_until_complete, args=(self.run(),),
                                        name="qiki-console-link", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the link started by :meth:`start` and wait for its thread (at most ``timeout_s``)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.close(), loop)
            thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()

    def submit(self, name: str, hold_ms: int | None = None) -> CommandRecord:
        """Send a command from another thread (the console's); returns its record at once.

        Parameters
        ----------
        name : str
            A command name of the protocol.
        hold_ms : int or None
            The hold-to-confirm duration (ms) for ``arm``.
        """
        rec = self._record(name)
        loop = self._loop
        if loop is None or loop.is_closed() or self.closed.is_set():
            rec.status, rec.reason = "refused", "not connected"
            return rec
        asyncio.run_coroutine_threadsafe(self._send(rec, hold_ms), loop)
        return rec

    def _record(self, name: str) -> CommandRecord:
        rec = CommandRecord(f"{self.client_name}-{next(self._ids)}", name, time.monotonic())
        self.history.append(rec)
        return rec

    @property
    def session(self) -> str | None:
        """The session id the gateway gave this connection."""
        s = self.welcome.get("session")
        return str(s) if s is not None else None

    @property
    def role(self) -> str | None:
        """``operator`` or ``observer`` (from ``welcome``)."""
        r = self.welcome.get("role")
        return str(r) if r is not None else None

    def link_age_s(self, now_s: float | None = None) -> float | None:
        """Wall-clock seconds since the gateway's last message (None: none yet)."""
        if self.last_rx_s is None:
            return None
        return (time.monotonic() if now_s is None else now_s) - self.last_rx_s

    async def run(self) -> None:
        """Connect, then read until the link closes (sets :attr:`error` on failure)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        hb: asyncio.Task[None] | None = None
        try:
            async with connect(with_token(self.url, self._token), additional_headers=headers,
                               open_timeout=5, max_size=2**22) as ws:
                self._ws = ws
                await ws.send(json.dumps({"type": "hello", "v": 1, "client": self.client_name}))
                hb = asyncio.create_task(self._heartbeat())
                async for raw in ws:
                    self._on_message(raw)
                code = ws.close_code
                if code not in (None, 1000, 1001):
                    self.error = f"gateway closed the link: {code} {ws.close_reason or ''}".strip()
        except InvalidStatus as exc:
            self.error = f"gateway refused the connection: HTTP {exc.response.status_code}"
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            self.error = f"link: {type(exc).__name__}: {exc}"
        finally:
            if hb is not None:
                hb.cancel()
            self._ws = None
            self.view.connected = False
            self.closed.set()

    async def close(self) -> None:
        """Close the link."""
        ws = self._ws
        if ws is not None:
            await ws.close()  # type: ignore[attr-defined]

    async def send_command(self, name: str, hold_ms: int | None = None) -> CommandRecord:
        """Send a command; its :class:`CommandRecord` is updated when the reply comes.

        Parameters
        ----------
        name : str
            A command name of the protocol (``arm``, ``estop``, ...).
        hold_ms : int or None
            The hold-to-confirm duration (ms) for ``arm``.
        """
        rec = self._record(name)
        await self._send(rec, hold_ms)
        return rec

    async def _send(self, rec: CommandRecord, hold_ms: int | None) -> None:
        name = rec.name
        msg: dict[str, object] = {"type": "command", "v": 1, "id": rec.id, "name": name, "ttl_ms": COMMAND_TTL_MS}
        if hold_ms is not None:
            msg["confirm"] = {"hold_ms": int(hold_ms)}
        ws = self._ws
        if ws is None:
            rec.status, rec.reason = "refused", "not connected"
            return
        try:
            await ws.send(json.dumps(msg))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a dead link: the record says so
            rec.status, rec.reason = "refused", f"send failed: {type(exc).__name__}"

    async def _heartbeat(self) -> None:
        while True:
            ws = self._ws
            if ws is not None and self.you_hold:
                try:
                    await ws.send(json.dumps({"type": "heartbeat", "v": 1, "seq": next(self._hb_seq)}))  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - the reader sees the link close
                    return
            await asyncio.sleep(HEARTBEAT_PERIOD_S)

    def _on_message(self, raw: str | bytes) -> None:
        self.last_rx_s = time.monotonic()
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("gateway sent a message that is not JSON")
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "welcome":
            self.welcome = msg
        elif kind == "control":
            self.you_hold = bool(msg.get("you_hold"))
            holder = msg.get("holder")
            if self.you_hold and holder is not None:
                self.me = str(holder)
            self.view.holder = str(holder) if holder is not None else None
            self.view.me = self.me
        elif kind == "telemetry":
            v = view_from_telemetry(msg, self.me, self.you_hold)
            v.read_only = self.role == "observer"
            if v.pose is not None:
                self.trail.append(v.pose[:2])
            self.view = v
        elif kind == "reply":
            for rec in reversed(self.history):
                if rec.id == msg.get("id"):
                    rec.status = str(msg.get("status", "?"))
                    rec.reason = str(msg.get("reason") or "")
                    code = msg.get("code")
                    rec.code = code if isinstance(code, int) else None
                    tick = msg.get("tick")
                    rec.tick = tick if isinstance(tick, int) else None
                    break
        elif kind == "error":
            log.warning("gateway: %s: %s", msg.get("error"), msg.get("detail"))
