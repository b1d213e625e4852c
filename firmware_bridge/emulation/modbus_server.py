"""pymodbus servers in front of the emulated power devices, for real-time runs and tests.

* :class:`ModbusEmulatorServer` -- Modbus TCP on 127.0.0.1 (ephemeral port by default)
  or Modbus RTU on a pty, serving any objects with ``respond(ModbusRequest) ->
  ModbusReply`` (the emulators of :mod:`firmware_bridge.emulation.power`) by unit id.
* :class:`PtyPair` -- two connected pseudo-terminals (what ``socat pty,raw pty,raw``
  gives), bridged by a thread, so a pymodbus RTU server and client each open a real tty
  path.

Fault replies are produced on the wire: ``silent`` sends nothing, ``exception`` a Modbus
exception response, ``slow`` answers late, ``wrong_unit`` rewrites the unit id (RTU: byte 0
with a fresh CRC; TCP: MBAP byte 6), ``corrupt`` breaks the frame (RTU: CRC low byte
flipped; TCP: MBAP length one byte longer than the ADU, i.e. a truncated frame).

Every server runs its asyncio loop on one daemon thread; :meth:`stop` shuts it down and
joins it with a timeout (and the bridge thread of a pty). Bind address is 127.0.0.1 only.
Requires the pymodbus 3.16 server API (``ModbusServerContext.async_getValues(device_id,
...)`` and ``constants.ExcCodes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import tty
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import ModbusReply, ModbusRequest, ModbusResponder, crc16_modbus

if TYPE_CHECKING:
    from pymodbus.datastore import ModbusServerContext

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_FC_TABLE = {1: "coil", 2: "discrete", 3: "holding", 4: "input", 5: "coil", 6: "holding", 15: "coil", 16: "holding"}


class PtyPair:
    """Two pseudo-terminals joined back to back by a copying thread.

    Attributes
    ----------
    server_path, client_path : str
        tty paths to open at each end (``/dev/pts/N``).

    Notes
    -----
    Both slave ends are put in raw mode at once (no echo, no line discipline) and held
    open while the pair lives, so neither side sees EIO while the other reopens.
    """

    def __init__(self) -> None:
        self._m1, self._s1 = os.openpty()
        self._m2, self._s2 = os.openpty()
        for fd in (self._s1, self._s2):
            tty.setraw(fd)
        self.server_path = os.ttyname(self._s1)
        self.client_path = os.ttyname(self._s2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qiki-pty-bridge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        peers = {self._m1: self._m2, self._m2: self._m1}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    try:
                        os.write(peers[fd], data)
                    except OSError:  # per chunk, not teardown: the peer closed, the bytes are dropped
                        pass

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the bridge thread (joined within ``timeout_s``) and close every fd."""
        self._stop.set()
        self._thread.join(timeout_s)
        for fd in (self._m1, self._m2, self._s1, self._s2):
            try:
                os.close(fd)
            except OSError as exc:
                logger.debug("closing pty descriptor %d failed: %s", fd, exc)

    @property
    def alive(self) -> bool:
        """True while the bridge thread runs."""
        return self._thread.is_alive()


def _make_context(owner: ModbusEmulatorServer) -> ModbusServerContext:
    from pymodbus.constants import ExcCodes
    from pymodbus.datastore import ModbusServerContext
    from pymodbus.exceptions import NoSuchIdException

    class _EmulatorContext(ModbusServerContext):
        """Routes pymodbus datastore calls to the emulated devices (see module doc)."""

        def __init__(self) -> None:  # no super().__init__: no datastore of our own
            self.old_simulator = True
            self.simdevices = []
            self._written: dict[tuple[int, int, int], list[int] | list[bool]] = {}

        def device_ids(self) -> list[int]:
            return list(owner.devices)

        async def _respond(self, request: ModbusRequest) -> ModbusReply:
            dev = owner.devices.get(request.unit_id)
            if dev is None:
                raise NoSuchIdException(f"no device {request.unit_id}")
            reply = dev.respond(request)
            if reply.kind == "silent":
                raise NoSuchIdException(f"device {request.unit_id} silent")
            if reply.delay_s > 0:
                await asyncio.sleep(reply.delay_s)
            if reply.kind in ("wrong_unit", "corrupt"):
                owner._mangle.append((reply.kind, request.unit_id))
            return reply

        async def async_getValues(  # noqa: N802
            self, device_id: int, func_code: int, address: int, count: int = 1
        ) -> list[int] | list[bool] | ExcCodes:
            key = (device_id, func_code, address)
            if func_code in (5, 6, 15, 16) and key in self._written:
                return self._written.pop(key)[:count]
            table = _FC_TABLE.get(func_code)
            if table is None:
                return ExcCodes.ILLEGAL_FUNCTION
            reply = await self._respond(ModbusRequest(device_id, "read", table, address, count))
            if reply.kind == "exception":
                return ExcCodes(reply.exception_code)
            return list(reply.values)

        async def async_setValues(  # noqa: N802
            self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
        ) -> ExcCodes | None:
            table = _FC_TABLE.get(func_code)
            if table is None or len(values) != 1:
                return ExcCodes.ILLEGAL_FUNCTION
            value = bool(values[0]) if table == "coil" else int(values[0])
            reply = await self._respond(ModbusRequest(device_id, "write", table, address, 1, value))
            if reply.kind == "exception":
                return ExcCodes(reply.exception_code)
            self._written[(device_id, func_code, address)] = list(reply.values) or [value]
            return None

    return _EmulatorContext()


class ModbusEmulatorServer:
    """A pymodbus server (TCP on 127.0.0.1, or RTU on a pty) serving emulated devices.

    Parameters
    ----------
    devices : mapping of int to ModbusResponder
        Emulated devices by unit id.
    transport : {"tcp", "rtu"}
        Modbus TCP or RTU.
    port : int, optional
        TCP port (0 = ephemeral; read :attr:`port` after :meth:`start`).
    baudrate : int, optional
        RTU line rate (bit/s); irrelevant on a pty but kept for realism.
    serial_path : str, optional
        RTU: serve on this tty instead of creating a :class:`PtyPair`.

    Attributes
    ----------
    host : str
        Always ``127.0.0.1``.
    port : int
        Bound TCP port (after :meth:`start`).
    client_path : str
        RTU: the tty the client must open (after :meth:`start`).

    Raises
    ------
    ProtocolError
        ``transport`` neither ``tcp`` nor ``rtu``.
    """

    host = "127.0.0.1"

    def __init__(self, devices: Mapping[int, ModbusResponder], transport: Literal["tcp", "rtu"] = "tcp", port: int = 0,
                 baudrate: int = 115200, serial_path: str | None = None) -> None:
        if transport not in ("tcp", "rtu"):
            raise ProtocolError(f"transport must be tcp or rtu, not {transport!r}")
        self.devices = dict(devices)
        self.transport = transport
        self.port = int(port)
        self.baudrate = int(baudrate)
        self._serial_path = serial_path
        self.client_path = ""
        self._mangle: deque[tuple[str, int]] = deque()
        self._pty: PtyPair | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # outgoing frames pass here (pymodbus trace_packet hook, sending=True)
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not self._mangle:
            return data
        kind, unit = self._mangle.popleft()
        buf = bytearray(data)
        if self.transport == "rtu":
            if kind == "wrong_unit":
                buf[0] = unit % 247 + 1
                crc = crc16_modbus(bytes(buf[:-2]))
                buf[-2:] = crc.to_bytes(2, "little")
            else:
                buf[-2] ^= 0xFF
        else:
            if kind == "wrong_unit":
                buf[6] = unit % 247 + 1
            else:
                length = int.from_bytes(buf[4:6], "big") + 1
                buf[4:6] = length.to_bytes(2, "big")
        return bytes(buf)

    def start(self, timeout_s: float = 5.0) -> ModbusEmulatorServer:
        """Start serving on a background thread; return once listening.

        Raises
        ------
        ProtocolError
            The server did not come up within ``timeout_s`` (port busy, pty error).
        """
        if self.transport == "rtu" and self._serial_path is None:
            self._pty = PtyPair()
            self._serial_path = self._pty.server_path
            self.client_path = self._pty.client_path
        self._thread = threading.Thread(target=self._run, name=f"qiki-modbus-{self.transport}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            err = self._error
            self.stop()
            raise ProtocolError(f"modbus {self.transport} emulator did not start: {err}") from err
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            finally:
                loop.close()

    async def _listen(self) -> None:
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer

        context = _make_context(self)
        server: ModbusTcpServer | ModbusSerialServer
        if self.transport == "tcp":
            server = ModbusTcpServer(context, address=(self.host, self.port), ignore_missing_devices=True,
                                     trace_packet=self._trace_packet)
        else:
            server = ModbusSerialServer(context, port=self._serial_path or "", baudrate=self.baudrate,
                                        ignore_missing_devices=True, trace_packet=self._trace_packet,
                                        reconnect_delay=0.0)
        await server.serve_forever(background=True)
        self._server = server
        if self.transport == "tcp":
            sockets = getattr(server.transport, "sockets", None)
            if sockets:
                self.port = sockets[0].getsockname()[1]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut the server down; join its thread (and the pty bridge) within ``timeout_s``."""
        loop, server = self._loop, self._server
        if loop is not None and loop.is_running():
            if server is not None:
                fut = asyncio.run_coroutine_threadsafe(server.shutdown(), loop)  # type: ignore[attr-defined]
                try:
                    fut.result(timeout_s)
                except Exception as exc:  # noqa: BLE001 - best effort, the loop stops anyway
                    logger.debug("modbus emulator shutdown failed: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._pty is not None:
            self._pty.close(timeout_s)
        self._server = None

    @property
    def alive(self) -> bool:
        """True while the server thread (or the pty bridge) runs."""
        t = self._thread is not None and self._thread.is_alive()
        return t or (self._pty is not None and self._pty.alive)

    def __enter__(self) -> ModbusEmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
