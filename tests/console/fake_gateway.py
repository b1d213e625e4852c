"""A small stand-in of the console gateway (docs/console-protocol.md v1) for the console tests.

It speaks the protocol's messages (welcome, control, telemetry, reply) over ``/ws`` and
serves ``controller/console/web/`` at ``/``, on uvicorn in a thread on 127.0.0.1 (port
0). Behind it a toy vehicle: idle -> armed (lock + ``confirm.hold_ms >= 1000``) ->
active (the pose walks to each waypoint in turn), ``estop`` from anyone (the button stays
pressed until :meth:`FakeGateway.release_estop`; ``reset`` is refused while pressed), a
token (``?token=`` or ``Authorization: Bearer``) when one is set, observers read-only.
The consoles are tested against this and, where it is available, against the real
gateway of ``qiki run --serve``.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

WEB = Path(__file__).resolve().parents[2] / "controller" / "console" / "web"
WAYPOINTS = [(1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]


class FakeGateway:
    def __init__(self, token: str | None = None, observer_token: bool = False, speed_mps: float = 2.0) -> None:
        self.token = token
        self.speed_mps = speed_mps
        self.state = "idle"
        self.entered_s = 0.0
        self.t0 = time.monotonic()
        self.pose = [0.0, 0.0]
        self.reached = 0
        self.estop_pressed = False
        self.soc = 90.0
        self.holder: str | None = None
        self.holder_ws: WebSocket | None = None
        self.clients: dict[WebSocket, dict] = {}
        self.commands: list[dict] = []
        self.zero_thrust_after_estop = False
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[WebSocketRoute("/ws", self._ws), Mount("/", StaticFiles(directory=WEB, html=True))])

    # ------------------------------------------------------------------ vehicle
    def now(self) -> float:
        return time.monotonic() - self.t0

    def _goto(self, state: str) -> None:
        self.state = state
        self.entered_s = self.now()

    def release_estop(self) -> None:
        self.estop_pressed = False

    def step(self, dt: float) -> None:
        if self.state == "active" and self.reached < len(WAYPOINTS):
            tx, ty = WAYPOINTS[self.reached]
            dx, dy = tx - self.pose[0], ty - self.pose[1]
            d = math.hypot(dx, dy)
            s = self.speed_mps * dt
            if d <= s:
                self.pose = [tx, ty]
                self.reached += 1
                if self.reached == len(WAYPOINTS):
                    self._goto("armed")
            else:
                self.pose = [self.pose[0] + dx / d * s, self.pose[1] + dy / d * s]

    def thrust(self) -> list[float]:
        return [0.3] * 8 if self.state == "active" else [0.0] * 8

    def telemetry(self, seq: int) -> dict:
        t = self.now()
        sp = WAYPOINTS[min(self.reached, len(WAYPOINTS) - 1)]
        checks = [
            {"name": "post", "ok": True, "reason": "POST passed"},
            {"name": "mcu", "ok": not self.estop_pressed, "reason": "E-stop pressed" if self.estop_pressed else ""},
            {"name": "battery", "ok": self.soc >= 30, "reason": f"SoC {self.soc:.0f} % below 30 %" if self.soc < 30 else ""},
        ]
        return {
            "type": "telemetry", "v": 1, "seq": seq, "tick": int(t * 100), "t_s": t, "state": self.state,
            "time_in_state_s": t - self.entered_s, "armed": self.state in ("armed", "active"),
            "outputs": "allocate" if self.state == "active" else "zero", "control_holder": self.holder,
            "link_age_s": None, "recording": True,
            "pose": {"x_m": self.pose[0], "y_m": self.pose[1], "yaw_rad": 0.0, "vx_mps": 0.0, "vy_mps": 0.0,
                     "yaw_rate_radps": 0.0, "age_s": 0.0},
            "setpoint": {"x_m": sp[0], "y_m": sp[1], "yaw_rad": 0.0, "waypoints_reached": self.reached,
                         "waypoints_total": len(WAYPOINTS), "waypoints": [[x, y, 0.0] for x, y in WAYPOINTS],
                         "started": self.state == "active" or self.reached > 0, "complete": self.reached == len(WAYPOINTS),
                         "age_s": 0.0},
            "faults_active": [], "faults_latched": [], "arming_checks": checks,
            "arm_ready": all(c["ok"] for c in checks) and self.state == "idle",
            "post": [{"device": "valves", "passed": True, "reason": "ok"}], "post_passed": True,
            "power": {"values": {"soc_pct": self.soc, "voltage_v": 26.7, "current_a": -1.5, "max_temperature_c": 27.0,
                                 "valve_rail_enabled": self.state == "active"}, "age_s": 0.05},
            "buses": [{"name": "can0", "bus_off": False, "error_passive": False, "send_failures": 0}],
            "radar_tracks": [{"id": 7, "x_m": 2.0, "y_m": 0.5}], "radar_age_s": 0.05,
            "estop_pressed": self.estop_pressed, "thrust_n": self.thrust(),
            "loop": {"rate_hz": 100.0, "ticks": int(t * 100), "overruns_last_s": None, "tick_duration_p99_ms": None},
            "last_refusal": None,
        }

    def handle(self, ws: WebSocket, msg: dict) -> dict:
        info = self.clients[ws]
        name = msg.get("name")
        self.commands.append(msg)
        base = {"type": "reply", "v": 1, "id": msg.get("id"), "name": name, "tick": int(self.now() * 100),
                "t_s": self.now()}

        def refused(code: int, refusal: str, reason: str) -> dict:
            return {**base, "status": "refused", "code": code, "refusal": refusal, "reason": reason, "state": self.state}

        def accepted(code: int) -> dict:
            return {**base, "status": "accepted", "code": code, "reason": "", "state": self.state}

        if name == "estop":
            self.estop_pressed = True
            self._goto("estop")
            return accepted(901)
        if info["role"] == "observer":
            return refused(244, "read_only", "this console is a read-only observer")
        if name == "request_control":
            if self.holder is not None and self.holder_ws is not ws:
                return refused(245, "held_by_other", "another console holds the control lock")
            self.holder, self.holder_ws = info["name"], ws
            return accepted(231)
        if name == "release_control":
            if self.holder_ws is not ws:
                return refused(247, "not_holder", "release_control from a console that does not hold the lock")
            self.holder = self.holder_ws = None
            return accepted(232)
        if self.holder_ws is not ws:
            return refused(242, "no_control", "this console does not hold the control lock")
        if name == "arm":
            if int((msg.get("confirm") or {}).get("hold_ms", 0)) < 1000:
                return refused(243, "no_confirm", "arm needs a hold-to-confirm proof (confirm.hold_ms >= 1000)")
            if self.state != "idle":
                return refused(211, "fsm_refused", f"no arm from {self.state}")
            self._goto("armed")
            return accepted(201)
        if name == "disarm" or name == "mission_abort":
            if self.state not in ("armed", "active"):
                return refused(210, "fsm_refused", f"no disarm from {self.state}")
            self._goto("idle")
            return accepted(202)
        if name == "mission_start":
            if self.state != "armed":
                return refused(210, "fsm_refused", f"no start_mission from {self.state}")
            self.reached = 0
            self._goto("active")
            return accepted(301)
        if name == "reset":
            if self.estop_pressed:
                return refused(213, "fsm_refused", "E-stop is still pressed (release the button first)")
            if self.state != "estop":
                return refused(213, "fsm_refused", f"no reset from {self.state}")
            self._goto("idle")
            return accepted(203)
        return refused(210, "fsm_refused", f"unknown command {name}")

    # ------------------------------------------------------------------ server
    async def _ws(self, ws: WebSocket) -> None:
        token = ws.query_params.get("token") or ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
        await ws.accept()
        if self.token is not None and token != self.token:
            await ws.close(code=4401, reason="token refused")
            return
        role = "observer" if self.token is None and ws.query_params.get("observer") else "operator"
        sid = f"c{len(self.clients) + 1}"
        self.clients[ws] = {"session": sid, "role": role, "name": f"console@{sid}"}
        await ws.send_json({"type": "welcome", "v": 1, "session": sid, "role": role, "rig": "fake", "rate_hz": 100.0,
                            "telemetry_hz": 20.0, "heartbeat_timeout_s": 0.3, "takeover_timeout_s": 2.0,
                            "link_loss_action": "disarm", "commands": [], "arm_hold_ms": 1000})
        await ws.send_json({"type": "control", "v": 1, "holder": self.holder, "you_hold": False, "change": "initial",
                            "t_s": self.now()})

        async def pump() -> None:
            seq = 0
            while True:
                await ws.send_json(self.telemetry(seq))
                seq += 1
                await asyncio.sleep(0.05)

        task = asyncio.create_task(pump())
        try:
            while True:
                raw = await ws.receive_text()
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if msg.get("type") == "hello":
                    self.clients[ws]["name"] = f"{msg.get('client')}@{sid}"
                if msg.get("type") != "command":
                    continue
                before = self.holder
                reply = self.handle(ws, msg)
                await ws.send_json(reply)
                if self.holder != before:
                    for other in list(self.clients):
                        try:
                            await other.send_json({"type": "control", "v": 1, "holder": self.holder,
                                                   "you_hold": other is self.holder_ws, "change": "granted",
                                                   "t_s": self.now()})
                        except Exception:  # noqa: BLE001
                            pass
        except WebSocketDisconnect:
            pass
        finally:
            task.cancel()
            self.clients.pop(ws, None)
            if self.holder_ws is ws:
                self.holder = self.holder_ws = None

    async def _sim(self) -> None:
        while True:
            self.step(0.02)
            await asyncio.sleep(0.02)

    def start(self) -> FakeGateway:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", ws="websockets-sansio")
        self._server = uvicorn.Server(config)

        def run() -> None:
            async def main() -> None:
                sim = asyncio.create_task(self._sim())
                await self._server.serve(sockets=[sock])
                sim.cancel()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="fake-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake gateway did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
