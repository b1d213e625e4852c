"""The console gateway: FastAPI/Starlette over uvicorn, in a thread of the run process (issue 14).

It never blocks the tick: it validates client messages (:mod:`.protocol`) and puts
:class:`~controller.console.desk.Inbound` items into the desk's bounded queue, reads the
telemetry snapshot the tick publishes (one attribute read), and gets the tick's replies
and control changes through :meth:`Gateway.notify` (``call_soon_threadsafe``). Nothing it
receives reaches the vehicle except through the desk, in the tick.

Security (issue 14 part 4): on a loopback listen address every connection is an
operator. On any other address a token is required (query ``token``, header
``Authorization: Bearer``, or the ``qiki_console_token`` cookie the web console's first
page sets), compared in constant time; without it a WebSocket is closed with 4401 (or
accepted read-only when the rig allows observers) and HTTP answers 401. A WebSocket
``Origin``, when sent, must be the gateway's own or a listed one (4403). The token is
never logged (uvicorn's access log is off) nor recorded.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import Request
from starlette.staticfiles import StaticFiles

from controller.config.console import ConsoleCfg
from controller.console.desk import ConsoleDesk, Inbound, Outcome
from controller.console.protocol import (
    COMMAND_NAMES,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    REFUSAL_REASONS,
    WS_PATH,
    Command,
    Heartbeat,
    Hello,
    json_schemas,
    parse_client_message,
)
from hal.errors import DeviceUnavailableError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = ["WEB_DIR", "Gateway", "is_loopback"]

#: The web console's static files (written by the console-ui work; mounted when present).
WEB_DIR = Path(__file__).resolve().parent / "web"
#: Most client messages one connection may send per second; more are dropped (``rate_limited``).
MAX_MESSAGES_PER_S = 200
#: Close codes.
CLOSE_UNAUTHORISED, CLOSE_BAD_ORIGIN = 4401, 4403
#: Delay of a telemetry send after the tick published the snapshot (s): after the
#: tick's end, well before the next tick (a 10 ms period at 100 Hz).
SEND_PHASE_S = 0.003
#: Cookie that carries the token for the web console's asset requests.
TOKEN_COOKIE = "qiki_console_token"
#: The queue_full refusal's code (family catch-all of console refusals).
QUEUE_FULL_CODE = 240


def is_loopback(host: str) -> bool:
    """Tell whether a listen host is loopback only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Conn:
    """One WebSocket connection: its session, role and outbound queue."""

    def __init__(self, session: str, observer: bool, ws: WebSocket) -> None:
        self.session = session
        self.observer = observer
        self.ws = ws
        self.client = ""
        self.out: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self.stamps: deque[float] = deque()

    def send_nowait(self, text: str) -> None:
        try:
            self.out.put_nowait(text)
        except asyncio.QueueFull:  # a slow client loses messages, never blocks the loop
            pass


class Gateway:
    """The console server of one served run.

    Parameters
    ----------
    desk : ConsoleDesk
        The tick side (its queue receives the inputs; its snapshot is sent).
    host, port : str, int
        Listen address (port 0: any free port; :attr:`port` is the bound one after
        :meth:`start`).
    token : str or None
        Required on a non-loopback host (``qiki run`` refuses to serve without one).
    rig_name : str
        Shown in ``welcome``.
    """

    def __init__(self, desk: ConsoleDesk, host: str, port: int, token: str | None, rig_name: str) -> None:
        self.desk = desk
        self.cfg: ConsoleCfg = desk.cfg
        self.host, self.port = host, port
        self.loopback = is_loopback(host)
        self._token = token
        if not self.loopback and not token:
            raise ValueError("a non-loopback listen address needs a console token")
        self.rig_name = rig_name
        self._conns: dict[str, _Conn] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.app = self._make_app()
        desk.notify = self.notify
        self._last_sent_seq = -1

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server thread and wait until it listens.

        Raises
        ------
        DeviceUnavailableError
            One line: the address could not be bound (in use, not ours) or the server did
            not start within ``timeout_s`` (the CLI exits 3, as for a busy port).
        """
        # log_config=None: uvicorn logs through the CLI's logging set-up, not its own
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                log_config=None,
                                lifespan="on", ws="websockets-sansio", ws_max_size=MAX_MESSAGE_BYTES * 4)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="console-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DeviceUnavailableError(
                    f"console gateway: cannot listen on {self.host}:{self.port} (address in use or not this host's)")
            time.sleep(0.01)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                break
        logger.info("console gateway listening on %s:%d", self.host, self.port)

    def _run(self) -> None:
        # the run may have set a real-time policy that threads inherit (controller/rt_knobs.py):
        # the gateway must not compete with the tick, so it runs as an ordinary thread
        if hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            except OSError as exc:
                logger.debug("console gateway: scheduling policy unchanged: %s", exc)
        assert self._server is not None
        self._server.run()

    def stop(self) -> None:
        """Stop the server and join its thread (bounded)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    @property
    def url(self) -> str:
        """``ws://host:port/ws``."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    # ------------------------------------------------------------------ tick -> gateway
    def notify(self, outcomes: list[Outcome]) -> None:
        """Hand the tick's replies and control changes to the loop (tick thread; never blocks)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._dispatch, outcomes)
            except RuntimeError:  # loop closing
                pass

    def _send_snapshot(self) -> None:
        snap = self.desk.snapshot
        if snap is None or snap.get("seq") == self._last_sent_seq:
            return
        self._last_sent_seq = int(snap.get("seq", 0))  # type: ignore[call-overload]
        text = json.dumps(dict(snap))
        for conn in list(self._conns.values()):
            conn.send_nowait(text)

    def _dispatch(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            if o.kind == "reply":
                conn = self._conns.get(o.session or "")
                if conn is not None:
                    conn.send_nowait(json.dumps({"type": "reply", "v": PROTOCOL_VERSION, **o.fields}))
            elif o.kind == "control":
                for conn in self._conns.values():
                    conn.send_nowait(self._control_text(conn, o.fields))

    def _control_text(self, conn: _Conn, fields: Mapping[str, object]) -> str:
        holder_session = self.desk.lock.holder_session
        return json.dumps({"type": "control", "v": PROTOCOL_VERSION, "holder": fields.get("holder"),
                           "you_hold": holder_session == conn.session, "change": fields.get("change"),
                           "t_s": fields.get("t_s")})

    # ------------------------------------------------------------------ the app
    def _token_of(self, params: Mapping[str, str], headers: Mapping[str, str],
                  cookies: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return params.get("token") or cookies.get(TOKEN_COOKIE)

    def _token_ok(self, given: str | None) -> bool:
        if self.loopback:
            return True
        return given is not None and self._token is not None and hmac.compare_digest(
            given.encode(), self._token.encode())

    def _origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser
        own = {f"http://{self.host}:{self.port}", f"https://{self.host}:{self.port}"}
        if self.loopback:
            own |= {f"http://{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]")}
        return origin in own or origin in self.cfg.allowed_origins

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="QIKI console gateway", docs_url=None, redoc_url=None, openapi_url=None,
                      lifespan=self._lifespan)

        @app.middleware("http")
        async def _auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            given = self._token_of(request.query_params, request.headers, request.cookies)
            if not self._token_ok(given):
                return JSONResponse({"error": "unauthorised"}, status_code=401)
            response = await call_next(request)
            if not self.loopback and request.query_params.get("token"):
                response.set_cookie(TOKEN_COOKIE, str(given), httponly=True, samesite="strict")
            return response

        @app.get("/schemas")
        async def _schemas() -> JSONResponse:
            return JSONResponse(json_schemas())

        @app.get("/healthz")
        async def _health() -> JSONResponse:
            snap = self.desk.snapshot
            return JSONResponse({"ok": True, "tick": None if snap is None else snap.get("tick"),
                                 "connections": len(self._conns)})

        @app.websocket(WS_PATH)
        async def _ws(ws: WebSocket) -> None:
            await self._serve_ws(ws)

        if WEB_DIR.is_dir():
            app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
        return app

    def _lifespan(self, app: FastAPI) -> _Lifespan:
        return _Lifespan(self)

    async def _broadcast(self) -> None:
        """Send each new snapshot, serialised once, :data:`SEND_PHASE_S` after the tick published it.

        The send is timed off the tick's publish time (no wake-up from the tick thread),
        so the gateway's work falls in the idle part of the tick period instead of
        competing with a tick for the GIL. Also the 1 Hz heartbeat when nothing else is sent.
        """
        desk = self.desk
        period_s = desk.publish_every_n / desk.rate_hz
        last_beat = time.monotonic()
        while True:
            now = time.monotonic()
            pub = desk.published_s
            if pub is None:
                delay_s = period_s
            else:
                target = pub + SEND_PHASE_S
                if target < now:
                    target += math.ceil((now - target) / period_s) * period_s
                delay_s = max(0.001, target - now)
            await asyncio.sleep(delay_s)
            snap = desk.snapshot
            now = time.monotonic()
            if snap is not None and snap.get("seq") != self._last_sent_seq:
                self._send_snapshot()
                last_beat = now
            elif now - last_beat >= 1.0:
                t_s = None if snap is None else snap.get("t_s")
                beat = json.dumps({"type": "heartbeat", "v": PROTOCOL_VERSION, "t_s": t_s or 0.0})
                for conn in list(self._conns.values()):
                    conn.send_nowait(beat)
                last_beat = now

    async def _serve_ws(self, ws: WebSocket) -> None:
        given = self._token_of(ws.query_params, ws.headers, ws.cookies)
        if not self._origin_ok(ws.headers.get("origin")):
            logger.warning("console connection refused: origin %r not allowed", ws.headers.get("origin"))
            await ws.close(code=CLOSE_BAD_ORIGIN)
            return
        observer = False
        if not self._token_ok(given):
            if given is None and self.cfg.observers_without_token:
                observer = True
            else:
                logger.warning("console connection refused: %s token", "missing" if given is None else "wrong")
                await ws.close(code=CLOSE_UNAUTHORISED)
                return
        await ws.accept()
        conn = _Conn(f"c{next(self._ids)}", observer, ws)
        self._conns[conn.session] = conn
        desk = self.desk
        await ws.send_text(json.dumps({
            "type": "welcome", "v": PROTOCOL_VERSION, "session": conn.session,
            "role": "observer" if observer else "operator", "rig": self.rig_name, "rate_hz": desk.rate_hz,
            "telemetry_hz": desk.rate_hz / desk.publish_every_n,
            "heartbeat_timeout_s": self.cfg.heartbeat_timeout_s,
            "takeover_timeout_s": self.cfg.takeover_timeout_s, "link_loss_action": self.cfg.link_loss_action,
            "commands": list(COMMAND_NAMES), "arm_hold_ms": 1000}))
        await ws.send_text(self._control_text(conn, {"holder": desk.lock.holder, "change": "initial",
                                                     "t_s": (desk.snapshot or {}).get("t_s", 0.0)}))
        sender = asyncio.create_task(self._sender(conn))
        try:
            await self._receiver(conn)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            self._conns.pop(conn.session, None)
            desk.inbound.put(Inbound("disconnect", conn.session, conn.client, observer,
                                     received_s=time.monotonic()))

    async def _sender(self, conn: _Conn) -> None:
        try:
            while True:
                text = await conn.out.get()
                await conn.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
            return
        except Exception as exc:  # noqa: BLE001 - a broken socket ends this sender only
            logger.debug("console sender %s ended: %s", conn.session, exc)

    def _error(self, conn: _Conn, error: str, detail: str) -> None:
        conn.send_nowait(json.dumps({"type": "error", "v": PROTOCOL_VERSION, "error": error,
                                     "detail": detail[:300]}))

    async def _receiver(self, conn: _Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            now = time.monotonic()
            conn.stamps.append(now)
            while conn.stamps and now - conn.stamps[0] > 1.0:
                conn.stamps.popleft()
            if len(conn.stamps) > MAX_MESSAGES_PER_S:
                self._error(conn, "rate_limited", f"more than {MAX_MESSAGES_PER_S} messages in 1 s")
                continue
            raw = msg.get("text")
            if raw is None:
                self._error(conn, "malformed", "binary frames are not part of the protocol")
                continue
            if len(raw) > MAX_MESSAGE_BYTES:
                self._error(conn, "too_long", f"message longer than {MAX_MESSAGE_BYTES} bytes")
                continue
            try:
                m = parse_client_message(raw)
            except (ValidationError, ValueError) as exc:
                self._error(conn, "malformed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                continue
            self._accept(conn, m, now)

    def _accept(self, conn: _Conn, m: Hello | Command | Heartbeat, now: float) -> None:
        q = self.desk.inbound
        if isinstance(m, Hello):
            conn.client = m.client
            q.put(Inbound("hello", conn.session, conn.client, conn.observer, received_s=now))
        elif isinstance(m, Heartbeat):
            q.put(Inbound("heartbeat", conn.session, conn.client, conn.observer, received_s=now))
        else:
            item = Inbound("command", conn.session, conn.client, conn.observer, id=m.id, name=m.name,
                           ttl_s=m.ttl_ms / 1000.0, hold_ms=None if m.confirm is None else m.confirm.hold_ms,
                           received_s=now)
            if not q.put(item):
                conn.send_nowait(json.dumps({
                    "type": "reply", "v": PROTOCOL_VERSION, "id": m.id, "name": m.name, "status": "refused",
                    "code": QUEUE_FULL_CODE, "reason": REFUSAL_REASONS["queue_full"], "refusal": "queue_full",
                    "tick": None, "t_s": None, "state": None}))


class _Lifespan:
    """Starlette lifespan: keep the loop for :meth:`Gateway.notify`, run the broadcaster."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self.gw._loop = asyncio.get_running_loop()
        self.task = asyncio.create_task(self.gw._broadcast())

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
        self.gw._loop = None
