"""The Modbus port: one small interface, three backends.

:class:`ModbusLink` is what drivers, the poller and ``qiki modbus read`` talk to. Backends:

* :class:`MemoryModbusLink` -- in-process, straight into emulated devices (anything with
  ``respond(ModbusRequest) -> ModbusReply``), for lockstep runs: no threads, no sleeping,
  bit-for-bit deterministic;
* :class:`PymodbusTcpLink` -- Modbus TCP via pymodbus' synchronous client;
* :class:`PymodbusRtuLink` -- Modbus RTU over a serial device or a pty via pymodbus.

Rules (SAFETY.md D10/D11, ARCHITECTURE.md section 7):

* Every call has a finite timeout and returns; an expected failure (timeout, exception
  response, wrong unit id, CRC noise, refused connection) is a returned
  :class:`ModbusFailure`, never an exception, and is counted in :meth:`stats`.
* A reply is data only if it carries the addressed unit id, the expected function, a
  valid CRC (RTU) and exactly the requested number of values. Anything else is counted by
  kind and never returned as data.
* No retries, on reads or writes: a write is an absolute idempotent setpoint that the
  caller verifies by read-back; a failed read is simply tried again at the next poll.
* pymodbus exceptions are translated here, once, into :class:`ModbusFailure` (expected
  failures) or :class:`~hal.errors.BusConfigError` (unusable configuration).

Thread safety: each backend serialises its transactions with a lock, so the poller worker
and a command-line read may share a link.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, runtime_checkable

from firmware_bridge.protocols.modbus_profile import (
    BIT_TABLES,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    REGISTER_TABLES,
    ModbusRequest,
    ModbusResponder,
    crc16_modbus,
)
from hal.errors import BusConfigError, DeviceUnavailableError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FailureKind = Literal["timeout", "exception", "wrong_unit", "corrupt", "transport", "closed"]


_Frozen = TypeVar("_Frozen")
_new_object = object.__new__


def frozen_replace(obj: _Frozen, **changes: object) -> _Frozen:
    """Return a copy of ``obj`` with the fields in ``changes`` set: ``dataclasses.replace``, cheaper.

    For this package's frozen, non-slots dataclasses whose fields are all ``__init__``
    fields with no ``__post_init__`` (:class:`LinkStats`, the poller's
    ``DeviceSnapshot``): for them ``dataclasses.replace`` builds the same object through
    the frozen ``__init__`` (one ``object.__setattr__`` per field), about 6x the cost of
    copying the instance dict (measured, issue 16: a link counts every transaction, the
    poller every transaction and poll). ``obj`` is not changed.

    Parameters
    ----------
    obj : frozen dataclass instance
        The instance to copy (its ``__dict__`` holds every field).
    **changes
        Field names and their new values
        (``tests/unit/test_modbus_frozen_replace.py`` compares with ``dataclasses.replace``).

    Returns
    -------
    same type as ``obj``
        A new instance, equal to ``dataclasses.replace(obj, **changes)``.

    Raises
    ------
    TypeError
        A name in ``changes`` is not a field of ``obj`` (as ``dataclasses.replace``
        raises; found by the instance dict's size, which every field fills).
    """
    new: _Frozen = _new_object(type(obj))
    d = new.__dict__
    old = obj.__dict__
    d.update(old)
    d.update(changes)
    if len(d) != len(old):  # a name that is no field added a key (timeit: ~0.04 us a call)
        unknown = sorted(changes.keys() - old.keys())
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(map(repr, unknown))}")
    return new


@dataclass(frozen=True)
class ModbusFailure:
    """Why a Modbus transaction produced no data.

    Falsy, so ``if not result`` reads naturally for writes; for reads test with
    ``isinstance(result, ModbusFailure)``.

    Attributes
    ----------
    kind : {"timeout", "exception", "wrong_unit", "corrupt", "transport", "closed"}
        ``timeout``: no (complete) reply in time; ``exception``: the device answered with a
        Modbus exception (``exception_code``, spec section 7); ``wrong_unit``: the reply
        carried another unit id; ``corrupt``: bytes arrived but no valid reply (CRC
        mismatch on RTU, malformed ADU on TCP, wrong value count); ``transport``: the
        connection or port failed; ``closed``: the link was closed.
    exception_code : int
        Modbus exception code for ``exception`` (0 otherwise).
    detail : str
        One line for logs.
    """

    kind: FailureKind
    exception_code: int = 0
    detail: str = ""

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class LinkStats:
    """Transaction counters of one link (monotonic, since construction).

    Attributes
    ----------
    requests : int
        Transactions attempted.
    ok : int
        Transactions that returned data (or a confirmed write).
    timeouts, exceptions, wrong_unit, corrupt, transport_errors, closed : int
        Failures by :attr:`ModbusFailure.kind`.
    exception_codes : dict of int to int
        Exception responses by code.
    """

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    exceptions: int = 0
    wrong_unit: int = 0
    corrupt: int = 0
    transport_errors: int = 0
    closed: int = 0
    exception_codes: dict[int, int] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """All failed transactions."""
        return self.requests - self.ok

    def as_dict(self) -> dict[str, object]:
        """Plain dict (for ``summary.json``)."""
        return {
            "requests": self.requests, "ok": self.ok, "failures": self.failures,
            "timeouts": self.timeouts, "exceptions": self.exceptions,
            "wrong_unit": self.wrong_unit, "corrupt": self.corrupt,
            "transport_errors": self.transport_errors, "closed": self.closed,
            "exception_codes": {str(k): v for k, v in sorted(self.exception_codes.items())},
        }


ReadResult = list[int] | list[bool] | ModbusFailure
WriteResult = Literal[True] | ModbusFailure


@runtime_checkable
class ModbusLink(Protocol):
    """The Modbus port (client side).

    Addresses are PDU addresses (0..65535, no 4xxxx offset). ``unit_id`` is 1..247.
    """

    def read_registers(self, table: str, address: int, count: int, unit_id: int) -> ReadResult:
        """Read ``count`` registers from ``table`` (``holding``: function 3, ``input``: 4).

        Returns a list of ``count`` ints (0..65535) or a :class:`ModbusFailure`.

        Raises
        ------
        ValueError
            Before any traffic: ``table`` not a register table, ``count`` outside 1..125
            (Modbus Application Protocol V1.1b3, 6.3/6.4), range past 65535, ``unit_id``
            outside 1..247.
        """
        ...

    def read_bits(self, table: str, address: int, count: int, unit_id: int) -> ReadResult:
        """Read ``count`` bits from ``table`` (``coil``: function 1, ``discrete``: 2).

        Returns a list of ``count`` bools or a :class:`ModbusFailure`.

        Raises
        ------
        ValueError
            As :meth:`read_registers`, with bit tables and ``count`` 1..2000 (6.1/6.2).
        """
        ...

    def write_coil(self, address: int, value: bool, unit_id: int) -> WriteResult:
        """Write one coil (function 5), once. Returns True or a :class:`ModbusFailure`.

        Raises
        ------
        ValueError
            ``address`` outside 0..65535 or ``unit_id`` outside 1..247.
        """
        ...

    def write_register(self, address: int, value: int, unit_id: int) -> WriteResult:
        """Write one holding register (function 6), once. True or :class:`ModbusFailure`.

        Raises
        ------
        ValueError
            As :meth:`write_coil`, or ``value`` outside 0..65535.
        """
        ...

    def stats(self) -> LinkStats:
        """Return a copy of the counters."""
        ...

    def close(self) -> None:
        """Release the connection; later calls return ``ModbusFailure("closed")``."""
        ...


# --------------------------------------------------------------------------- shared


def _check_request(table: str, address: int, count: int, unit_id: int, bits: bool) -> None:
    tables = BIT_TABLES if bits else REGISTER_TABLES
    if table not in tables:
        raise ValueError(f"table {table!r} not one of {tables}")
    limit = MAX_READ_BITS if bits else MAX_READ_REGISTERS
    if not 1 <= count <= limit:
        raise ValueError(f"count {count} outside 1..{limit}")
    if not 0 <= address or address + count - 1 > 0xFFFF:
        raise ValueError(f"address range {address}+{count} outside 0..65535")
    if not 1 <= unit_id <= 247:
        raise ValueError(f"unit_id {unit_id} outside 1..247")


_FAILURE_COUNTER = {
    "timeout": "timeouts", "exception": "exceptions", "wrong_unit": "wrong_unit",
    "corrupt": "corrupt", "transport": "transport_errors", "closed": "closed",
}


class _LinkBase:
    """What every backend shares: request checks, one lock, the counters, ``close``.

    A backend implements :meth:`_exchange` (one transaction, called under the lock, never
    after :meth:`close`) and, if it holds a connection, :meth:`_release`.
    """

    name = "modbus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = LinkStats()
        self._closed = False

    def _exchange(self, request: ModbusRequest) -> ReadResult | WriteResult:
        """One transaction: values (reads), True (writes) or a :class:`ModbusFailure`."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the backend's connection (called once, under the lock, by :meth:`close`)."""

    def _transact(self, request: ModbusRequest) -> ReadResult | WriteResult:
        with self._lock:
            if self._closed:
                result: ReadResult | WriteResult = ModbusFailure("closed", detail=f"{self.name}: link closed")
            else:
                result = self._exchange(request)
            self._record(result)
            return result

    def _record(self, result: object) -> None:
        s = self._stats
        upd: dict[str, object] = {"requests": s.requests + 1}
        if isinstance(result, ModbusFailure):
            attr = _FAILURE_COUNTER[result.kind]
            upd[attr] = getattr(s, attr) + 1
            if result.kind == "exception":
                codes = dict(s.exception_codes)
                codes[result.exception_code] = codes.get(result.exception_code, 0) + 1
                upd["exception_codes"] = codes
        else:
            upd["ok"] = s.ok + 1
        self._stats = frozen_replace(s, **upd)

    def read_registers(self, table: str, address: int, count: int, unit_id: int) -> ReadResult:
        """See :meth:`ModbusLink.read_registers`."""
        _check_request(table, address, count, unit_id, bits=False)
        return self._transact(ModbusRequest(unit_id, "read", table, address, count))  # type: ignore[return-value]

    def read_bits(self, table: str, address: int, count: int, unit_id: int) -> ReadResult:
        """See :meth:`ModbusLink.read_bits`."""
        _check_request(table, address, count, unit_id, bits=True)
        return self._transact(ModbusRequest(unit_id, "read", table, address, count))  # type: ignore[return-value]

    def write_coil(self, address: int, value: bool, unit_id: int) -> WriteResult:
        """See :meth:`ModbusLink.write_coil`."""
        _check_request("coil", address, 1, unit_id, bits=True)
        return self._transact(ModbusRequest(unit_id, "write", "coil", address, 1, bool(value)))  # type: ignore[return-value]

    def write_register(self, address: int, value: int, unit_id: int) -> WriteResult:
        """See :meth:`ModbusLink.write_register`."""
        _check_request("holding", address, 1, unit_id, bits=False)
        if not 0 <= int(value) <= 0xFFFF:
            raise ValueError(f"register value {value} outside 0..65535")
        return self._transact(ModbusRequest(unit_id, "write", "holding", address, 1, int(value)))  # type: ignore[return-value]

    def stats(self) -> LinkStats:
        """See :meth:`ModbusLink.stats`."""
        with self._lock:
            return self._stats

    def close(self) -> None:
        """See :meth:`ModbusLink.close`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()


# --------------------------------------------------------------------------- memory


class MemoryModbusLink(_LinkBase):
    """In-process Modbus link for lockstep runs.

    Each transaction calls the responder for ``unit_id`` synchronously and interprets its
    :class:`ModbusReply` exactly as the wire backends would: ``silent`` and replies slower
    than ``timeout_s`` are timeouts (no time passes: lockstep), ``wrong_unit``/``corrupt``
    are counted and dropped. A unit with no responder is silent, as on a real bus.

    Parameters
    ----------
    devices : mapping of int to ModbusResponder
        Responders by unit id (1..247).
    timeout_s : float, optional
        Reply deadline (s) against which a reply's ``delay_s`` is judged (default 0.1).

    Raises
    ------
    BusConfigError
        ``timeout_s`` not positive.
    """

    name = "memory"

    def __init__(self, devices: Mapping[int, ModbusResponder], timeout_s: float = 0.1) -> None:
        if not timeout_s > 0:
            raise BusConfigError(f"memory Modbus link: timeout_s must be > 0 (got {timeout_s})")
        super().__init__()
        self._devices = dict(devices)
        self.timeout_s = float(timeout_s)

    def attach(self, unit_id: int, device: ModbusResponder) -> None:
        """Connect (or replace) the responder for ``unit_id``."""
        with self._lock:
            self._devices[unit_id] = device

    def _exchange(self, request: ModbusRequest) -> ReadResult | WriteResult:
        device = self._devices.get(request.unit_id)
        if device is None:
            return ModbusFailure("timeout", detail=f"unit {request.unit_id}: no reply")
        reply = device.respond(request)
        if reply.kind == "silent" or reply.delay_s > self.timeout_s:
            return ModbusFailure("timeout", detail=f"unit {request.unit_id}: no reply within {self.timeout_s} s")
        if reply.kind == "exception":
            return ModbusFailure("exception", reply.exception_code, f"exception code {reply.exception_code}")
        if reply.kind == "wrong_unit":
            return ModbusFailure("wrong_unit", detail="reply from another unit id")
        if reply.kind == "corrupt":
            return ModbusFailure("corrupt", detail="reply failed its CRC")
        if len(reply.values) != request.count:
            return ModbusFailure("corrupt", detail=f"{len(reply.values)} values, expected {request.count}")
        if request.function == "write":
            return True
        if request.table in BIT_TABLES:
            return [bool(v) for v in reply.values]
        return [int(v) & 0xFFFF for v in reply.values]


# --------------------------------------------------------------------------- pymodbus


def _rtu_frames_ok(buf: bytes) -> bool:
    """Return True if ``buf`` starts with a CRC-valid RTU frame (unit, function, data, CRC)."""
    for end in range(4, len(buf) + 1):
        if crc16_modbus(buf[: end - 2]) == int.from_bytes(buf[end - 2 : end], "little"):
            return True
    return False


#: pymodbus client method and function code of each request (Modbus spec V1.1b3 section 6).
_PYMODBUS_CALLS: dict[tuple[str, str], tuple[str, int]] = {
    ("read", "coil"): ("read_coils", 1),
    ("read", "discrete"): ("read_discrete_inputs", 2),
    ("read", "holding"): ("read_holding_registers", 3),
    ("read", "input"): ("read_input_registers", 4),
    ("write", "coil"): ("write_coil", 5),
    ("write", "holding"): ("write_register", 6),
}


class _PymodbusLink(_LinkBase):
    """Shared part of the pymodbus backends: translation of results and failures."""

    _rtu = False

    def __init__(self, client: object, timeout_s: float, name: str) -> None:
        super().__init__()
        self._client = client
        self.timeout_s = timeout_s
        self.name = name
        self._rx: list[bytes] = []

    # pymodbus trace hook: sees every raw buffer; keeps what the current transaction got.
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._rx.append(bytes(data))
        return data

    def _classify_silence(self, unit_id: int) -> ModbusFailure:
        """Name a transaction that ended without an accepted reply, from the raw bytes."""
        if not self._rx:
            return ModbusFailure("timeout",
                                 detail=f"{self.name}: no reply from unit {unit_id} within {self.timeout_s} s")
        buf = max(self._rx, key=len)
        if self._rtu:
            units = {b[0] for b in self._rx if b}
            crc_ok = _rtu_frames_ok(buf)
            if crc_ok and unit_id not in units:
                return ModbusFailure("wrong_unit",
                                     detail=f"{self.name}: reply from unit(s) {sorted(units)}, asked {unit_id}")
            return ModbusFailure("corrupt",
                                 detail=f"{self.name}: {len(buf)} bytes, no CRC-valid reply from unit {unit_id}")
        units = {b[6] for b in self._rx if len(b) >= 7}
        if units and unit_id not in units:
            return ModbusFailure("wrong_unit",
                                 detail=f"{self.name}: reply from unit(s) {sorted(units)}, asked {unit_id}")
        return ModbusFailure("corrupt", detail=f"{self.name}: {len(buf)} bytes, no well-formed reply")

    def _prepare(self) -> None:
        self._rx = []

    def _exchange(self, request: ModbusRequest) -> ReadResult | WriteResult:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        unit_id = request.unit_id
        method, function_code = _PYMODBUS_CALLS[(request.function, request.table)]
        kwargs: dict[str, object] = {"address": request.address, "device_id": unit_id}
        if request.function == "read":
            kwargs["count"] = request.count
        else:
            kwargs["value"] = request.value
        try:
            if not self._client.connect():  # type: ignore[attr-defined]
                return ModbusFailure("transport", detail=f"{self.name}: cannot connect")
            self._prepare()
            rsp = getattr(self._client, method)(**kwargs)
        except ConnectionException as exc:
            return ModbusFailure("transport", detail=f"{self.name}: {exc}")
        except ModbusIOException:
            return self._classify_silence(unit_id)
        except ModbusException as exc:
            return ModbusFailure("corrupt", detail=f"{self.name}: {exc}")
        except OSError as exc:
            return ModbusFailure("transport", detail=f"{self.name}: {exc}")
        if rsp is None:
            return self._classify_silence(unit_id)
        if getattr(rsp, "dev_id", unit_id) != unit_id:
            return ModbusFailure("wrong_unit", detail=f"{self.name}: reply from unit {rsp.dev_id}")
        if rsp.isError():
            code = int(getattr(rsp, "exception_code", 0) or 0)
            return ModbusFailure("exception", code, f"{self.name}: exception code {code}")
        if (rsp.function_code & 0x7F) != function_code:
            return ModbusFailure("corrupt", detail=f"{self.name}: reply function {rsp.function_code}")
        if request.function == "write":
            return True
        n = request.count
        if function_code in (1, 2):
            # a bit reply is padded to whole bytes; fewer bits than asked is malformed
            if len(rsp.bits) < n or len(rsp.bits) > ((n + 7) // 8) * 8:
                return ModbusFailure("corrupt", detail=f"{self.name}: {len(rsp.bits)} bits, expected {n}")
            return [bool(b) for b in rsp.bits[:n]]
        regs = list(rsp.registers)
        if len(regs) != n:
            return ModbusFailure("corrupt", detail=f"{self.name}: {len(regs)} registers, expected {n}")
        return [int(r) & 0xFFFF for r in regs]

    def _release(self) -> None:
        try:
            self._client.close()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - closing must not raise
            logger.debug("closing %s failed: %s", self.name, exc)


class PymodbusTcpLink(_PymodbusLink):
    """Modbus TCP client link (pymodbus ``ModbusTcpClient``).

    Parameters
    ----------
    host : str
        Server address (the emulators bind 127.0.0.1 only).
    port : int
        TCP port (502 on real gateways; ephemeral for emulators).
    timeout_s : float, optional
        Connect and reply timeout per transaction (s, > 0; default 0.1, SAFETY.md).

    Raises
    ------
    BusConfigError
        Invalid parameters.

    Notes
    -----
    TCP has no CRC; a reply whose MBAP header is malformed or truncated is ``corrupt``, one
    with another unit id (MBAP byte 6) ``wrong_unit``; a stale reply with an old
    transaction id is dropped by pymodbus and ends as a ``timeout``. Source: Modbus
    Messaging on TCP/IP Implementation Guide V1.0b, section 3.1.3.
    """

    def __init__(self, host: str, port: int, timeout_s: float = 0.1) -> None:
        from pymodbus.client import ModbusTcpClient

        if not timeout_s > 0 or not 0 < int(port) < 65536:
            raise BusConfigError(f"modbus tcp {host}:{port}: need 0 < port < 65536 and timeout_s > 0")
        try:
            client = ModbusTcpClient(
                host, port=int(port), timeout=float(timeout_s), retries=0,
                reconnect_delay=0.0, trace_packet=self._trace_packet,
            )
        except (TypeError, ValueError) as exc:
            raise BusConfigError(f"modbus tcp {host}:{port}: {exc}") from exc
        super().__init__(client, float(timeout_s), f"tcp://{host}:{port}")


class PymodbusRtuLink(_PymodbusLink):
    """Modbus RTU client link over a serial device or pty (pymodbus ``ModbusSerialClient``).

    Parameters
    ----------
    port_path : str
        Serial device (``/dev/ttyUSB0``, ``/dev/pts/N``).
    baudrate : int, optional
        Line rate in bit/s (JK BMS default 115200).
    timeout_s : float, optional
        Reply timeout per transaction (s, > 0; default 0.1).
    parity : {"N", "E", "O"}, optional
        Parity (8 data bits, 1 stop bit).

    Raises
    ------
    BusConfigError
        Invalid parameters.

    Notes
    -----
    Before each request the input buffer is flushed, so a late reply to an earlier,
    timed-out request is never taken as the answer to this one (RTU has no transaction
    id). A CRC-valid frame from another unit counts as ``wrong_unit``; bytes without a
    CRC-valid frame as ``corrupt`` (Modbus over Serial Line V1.02, section 2.5.1.2).

    The reply is awaited in ``select`` on the port (see :func:`_blocking_serial_client`),
    not by polling, so a silent device costs the process nothing until its timeout.
    """

    _rtu = True

    def __init__(self, port_path: str, baudrate: int = 115200, timeout_s: float = 0.1, parity: str = "N") -> None:
        ModbusSerialClient = _blocking_serial_client()

        if not timeout_s > 0 or int(baudrate) <= 0 or parity not in ("N", "E", "O"):
            raise BusConfigError(f"modbus rtu {port_path}: need baudrate > 0, timeout_s > 0, parity N/E/O")
        # The port must exist and be ours to open now: a missing RS-485 adapter is a
        # hardware fault at start, not a stream of transport failures later (ISSUE 10).
        try:
            fd = os.open(port_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            os.close(fd)
        except OSError as exc:
            raise DeviceUnavailableError(
                f"modbus rtu {port_path}: cannot open: [Errno {exc.errno}] {exc.strerror}") from exc
        try:
            client = ModbusSerialClient(
                port_path, baudrate=int(baudrate), parity=parity, bytesize=8, stopbits=1,
                timeout=float(timeout_s), retries=0, reconnect_delay=0.0,
                trace_packet=self._trace_packet,
            )
        except (TypeError, ValueError) as exc:
            raise BusConfigError(f"modbus rtu {port_path}: {exc}") from exc
        super().__init__(client, float(timeout_s), f"rtu:{port_path}")

    def _prepare(self) -> None:
        super()._prepare()
        sock = getattr(self._client, "socket", None)
        if sock is not None:
            try:
                sock.reset_input_buffer()
            except OSError:  # per request, not teardown: a dead port fails the request itself
                pass


@functools.cache
def _blocking_serial_client() -> type:
    """Pymodbus ``ModbusSerialClient`` whose receive blocks in ``select`` until bytes arrive.

    pymodbus 3.x waits for an RTU reply by polling the port's ``in_waiting`` every
    ``max(4 characters, 1 ms)`` and sleeping in between: a thousand wake-ups per second,
    each taking the GIL, for the whole timeout when a device is silent. In a process
    whose control loop shares that GIL this shows as tick jitter (measured by
    ``bench/power_tick.py``). Here ``send`` sets the transaction deadline and ``recv``
    returns whatever bytes are waiting, or blocks in ``select`` (GIL released) until some
    arrive or the deadline passes (then ``b""``, which pymodbus reports as no response).
    pymodbus's transaction loop keeps calling ``recv`` and feeds its RTU framer until a
    whole frame is there, so a frame split across reads is still assembled.
    """
    from pymodbus.client import ModbusSerialClient
    from pymodbus.exceptions import ConnectionException

    class BlockingSerialClient(ModbusSerialClient):
        _deadline = 0.0

        def send(self, request: bytes, addr: tuple[str, int] | None = None) -> int:
            self._deadline = time.monotonic() + float(self.comm_params.timeout_connect or 0.0)
            return super().send(request, addr)

        def recv(self, size: int | None) -> bytes:
            port = self.socket
            if not port:
                raise ConnectionException(str(self))
            try:
                while True:
                    waiting = port.in_waiting
                    if waiting:
                        data: bytes = port.read(waiting if size is None else min(waiting, size))
                        return data
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0.0 or not select.select([port.fileno()], [], [], remaining)[0]:
                        return b""
            except OSError:
                self.close()  # type: ignore[no-untyped-call]  # pymodbus's close() is unannotated
                raise ConnectionException(str(self)) from None

    return BlockingSerialClient
