"""A small asyncio console client over a real WebSocket (tests, ``bench/console.py``, scripts).

It speaks :mod:`controller.console.protocol`: ``hello`` on connect, ``heartbeat`` every
``heartbeat_s``, commands answered by ``reply``. Not a UI: it keeps the latest telemetry,
the replies by id and the control messages.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import websockets


class Client:
    """One console connection.

    Parameters
    ----------
    url : str
        ``ws://host:port/ws`` (with ``?token=...`` when the gateway needs one).
    name : str
        The console's name (``hello``); command ids are ``<name>-<n>``.
    heartbeat_s : float or None
        Heartbeat period (s); None: send none (an observer).
    """

    def __init__(self, url: str, name: str, heartbeat_s: float | None = 0.1) -> None:
        self.url, self.name, self.heartbeat_s = url, name, heartbeat_s
        self.ws: Any = None
        self.welcome: dict[str, Any] = {}
        self.telemetry: dict[str, Any] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.controls: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: list[asyncio.Event] = []
        #: Called with every message as it arrives (benches timestamp replies here).
        self.on_message: Callable[[dict[str, Any]], None] | None = None

    async def __aenter__(self) -> Client:
        self.ws = await websockets.connect(self.url)
        self.welcome = json.loads(await self.ws.recv())
        await self.ws.send(json.dumps({"type": "hello", "v": 1, "client": self.name}))
        self._tasks.append(asyncio.create_task(self._read()))
        if self.heartbeat_s is not None:
            self._tasks.append(asyncio.create_task(self._beat()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await self.ws.close()

    def stop_heartbeat(self) -> None:
        """Stop sending heartbeats (a lost link, as the gateway sees it)."""
        for t in self._tasks[1:]:
            t.cancel()
        del self._tasks[1:]

    async def _beat(self) -> None:
        seq = 0
        while True:
            await self.ws.send(json.dumps({"type": "heartbeat", "v": 1, "seq": seq}))
            seq += 1
            await asyncio.sleep(self.heartbeat_s or 0.1)

    async def _read(self) -> None:
        async for raw in self.ws:
            m = json.loads(raw)
            t = m["type"]
            if t == "telemetry":
                self.telemetry = m
            elif t == "reply":
                self.replies[m["id"]] = m
            elif t == "control":
                self.controls.append(m)
            elif t == "error":
                self.errors.append(m)
            for w in self._waiters:
                w.set()
            if self.on_message is not None:
                self.on_message(m)

    async def until(self, pred: Any, timeout_s: float = 20.0) -> None:
        """Wait (wall clock, bounded) until ``pred()`` holds after some message."""
        async def loop() -> None:
            while not pred():
                ev = asyncio.Event()
                self._waiters.append(ev)
                try:
                    await ev.wait()
                finally:
                    self._waiters.remove(ev)
        await asyncio.wait_for(loop(), timeout_s)

    async def send_command(self, name: str, hold_ms: int | None = None, ttl_ms: int = 1000) -> str:
        """Send one command; return its id (the reply lands in :attr:`replies`)."""
        cid = f"{self.name}-{next(self._ids)}"
        msg: dict[str, Any] = {"type": "command", "v": 1, "id": cid, "name": name, "ttl_ms": ttl_ms}
        if hold_ms is not None:
            msg["confirm"] = {"hold_ms": hold_ms}
        await self.ws.send(json.dumps(msg))
        return cid

    async def command(self, name: str, hold_ms: int | None = None, ttl_ms: int = 1000) -> dict[str, Any]:
        """Send one command and wait (bounded) for its reply."""
        cid = await self.send_command(name, hold_ms, ttl_ms)
        await self.until(lambda: cid in self.replies, 10.0)
        return self.replies[cid]
