"""The ``SerialLink`` port and its backends: pyserial, in-process pipes, raw file descriptors.

A serial link moves bytes, nothing more: framing lives in
:mod:`firmware_bridge.protocols.framing`. Every backend is non-blocking on read and bounded
on write, so the control tick never waits on a port (ARCHITECTURE.md section 3):

* :class:`PySerialLink` -- ``serial.serial_for_url``: ``/dev/tty*``, a pty slave path,
  ``socket://host:port``, ``loop://``. The only place pyserial exceptions are seen; they
  leave as :class:`hal.errors.BusError` / :class:`hal.errors.BusConfigError`.
* :class:`PipeLink` -- an in-process byte pipe pair for lockstep runs (deterministic,
  single thread, bounded buffers, fault knobs for unplug/replug).
* :class:`FdLink` -- a non-blocking file descriptor (pty master, socket), used by emulators
  in real-time runs; :func:`open_pty_pair` makes a raw-mode pty.

Failure contract (SAFETY.md D12): when the device disappears, the first ``read``/``write``
that notices raises :class:`~hal.errors.BusError` (one line naming the link, chained to the
cause); the link is then closed (``is_open`` False) and later ``read`` returns ``b""`` and
``write`` returns 0 without raising again. Whoever owns the link decides to ``reopen()``.
Using a link after an explicit ``close()`` is a programming error and raises BusError.
"""

from __future__ import annotations

import errno
import logging
import os
import tty
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hal.errors import BusConfigError, BusError, DeviceUnavailableError, one_line

if TYPE_CHECKING:
    import serial

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "SerialLink",
    "PySerialLink",
    "PipeLink",
    "FdLink",
    "open_pty_pair",
    "empty_read_raises",
    "write_nonblocking",
    "read_nonblocking",
]


@runtime_checkable
class SerialLink(Protocol):
    """Port: a full-duplex byte stream with non-blocking reads.

    Attributes
    ----------
    name : str
        Human name of the link (URL, path or pipe name), used in error messages.
    is_open : bool
        False after ``close()`` or after a failure was reported.
    """

    name: str

    @property
    def is_open(self) -> bool:
        """False after ``close()`` or after a failure was reported."""
        ...

    def write(self, data: bytes) -> int:
        """Queue ``data`` for transmission; return the number of bytes accepted.

        Never blocks longer than the backend's finite write timeout. Bytes not accepted
        are dropped and counted by the backend (a short count is not an exception).

        Raises
        ------
        BusError
            Once, when the device has disappeared; or if the link was closed by the user.
        """
        ...

    def read(self, max_bytes: int = 4096) -> bytes:
        """Return up to ``max_bytes`` bytes already received; ``b""`` when none (never waits).

        Raises
        ------
        BusError
            Once, when the device has disappeared; or if the link was closed by the user.
        """
        ...

    def close(self) -> None:
        """Release the port; idempotent."""
        ...


class _LinkState:
    """Shared closed/failed bookkeeping of the backends."""

    __slots__ = ()

    def _check_usable(self) -> bool:
        """Return True if I/O may proceed; False if failed (quiet); raise if user-closed.

        :meth:`PipeLink.read` and :meth:`PipeLink.write` call it only when a flag is set
        (``_user_closed or _failed`` tested inline: the call was their cost on the lockstep
        MCU line, issue 16).
        """
        if self._user_closed:  # type: ignore[attr-defined]
            raise BusError(f"serial link {self.name}: used after close()")  # type: ignore[attr-defined]
        return not self._failed  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- pyserial


class PySerialLink(_LinkState):
    """SerialLink over :func:`serial.serial_for_url` (pyserial 3.5).

    Parameters
    ----------
    url : str
        Device path (``/dev/ttyAMA0``, ``/dev/ttyUSB0``, a pty slave ``/dev/pts/N``) or a
        pyserial URL (``socket://127.0.0.1:7001``, ``loop://``).
    baudrate : int
        Line rate in bit/s (QIKI MCU: 921600). Ignored by ``socket://``.
    write_timeout_s : float, optional
        Only for ports without a file descriptor (``loop://`` and other pyserial URL
        handlers): longest a ``write`` may block (default 0.05 s); a write that times out
        returns 0 (bytes of it may have gone out) and is counted in ``write_timeouts``;
        nothing is queued. Ports with a descriptor (ttys, ptys, ``socket://``) never
        block: see Notes.
    tx_buffer_bytes : int, optional
        Bound of the transmit queue (default 4096 bytes): what the OS did not take yet.

    Raises
    ------
    BusConfigError
        The URL or parameters are invalid (unknown scheme, bad baud rate).
    BusError
        The port cannot be opened (absent device, permission, connection refused).

    Notes
    -----
    Opened with ``timeout=0`` so :meth:`read` returns what is buffered and never waits
    (pyserial API docs, ``Serial.timeout``). A port with a non-blocking descriptor (ttys,
    ptys, ``socket://``) is then read with one ``os.read`` per call, not through
    pyserial's ``select`` and ``Timeout``: :func:`empty_read_raises` sets a tty's ``VMIN``
    to 1 so that an empty read and a hung-up device differ (pyserial sets ``VMIN`` back to 0
    whenever a port setting changes: the link sets none after :meth:`_open`, which runs
    the check again on a reopen). ``socket://`` connects with pyserial's own
    5 s connection timeout (so ``reopen()`` of a socket URL can block that long), and its
    ``close()`` sleeps 0.3 s; a failure therefore drops the socket without calling it.

    Writes never wait on a port with a descriptor: the bytes go to the non-blocking
    descriptor (``os.write``; pyserial opens ttys with ``O_NONBLOCK`` and makes its
    sockets non-blocking), and what the OS buffer does not take is queued, in order, and
    sent by later ``write`` and ``read`` calls. A frame already started is always
    finished (a half-sent frame would corrupt the next one on the wire); a new write that
    finds the queue too full for it is refused whole: it returns 0 and is counted in
    ``tx_overflows`` and ``tx_dropped_bytes``. Bytes still queued when the link fails,
    is reopened or is closed are counted in ``tx_dropped_bytes`` too (a frame cut there
    is rejected by the receiver's CRC). pyserial's own non-blocking write
    (``write_timeout=0``) cannot be used instead: it retries ``EAGAIN`` in a busy loop
    until the OS buffer drains (pyserial 3.5, ``serialposix.Serial.write``).
    """

    def __init__(self, url: str, baudrate: int, *, write_timeout_s: float = 0.05, tx_buffer_bytes: int = 4096) -> None:
        if not (write_timeout_s > 0):
            raise BusConfigError(f"serial link {url}: write_timeout_s must be > 0, got {write_timeout_s}")
        if int(tx_buffer_bytes) < 1:
            raise BusConfigError(f"serial link {url}: tx_buffer_bytes must be >= 1, got {tx_buffer_bytes}")
        self.name = str(url)
        self.url = str(url)
        self.baudrate = int(baudrate)
        self.write_timeout_s = float(write_timeout_s)
        self.tx_buffer_bytes = int(tx_buffer_bytes)
        self.bytes_rx = 0
        self.bytes_tx = 0
        self.write_timeouts = 0
        self.tx_overflows = 0
        self.tx_dropped_bytes = 0
        self.failures = 0
        self._user_closed = False
        self._failed = False
        self._tx_queue = bytearray()
        self._fd: int | None = None
        self._direct_read = False  # set by _open: one os.read per read (empty_read_raises)
        self._present = True  # fault knobs (simulate_unplug): the device is there
        self._pending_unplug = False
        self._ser = self._open()

    def _open(self) -> serial.SerialBase:
        import serial  # vendor import kept at the backend boundary

        try:
            ser = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0, write_timeout=self.write_timeout_s
            )
        except ValueError as exc:
            raise BusConfigError(f"serial link {self.url}: invalid settings: {one_line(exc)}") from exc
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailableError(f"serial link {self.url}: cannot open: {one_line(exc)}") from exc
        self._fd = _nonblocking_fd(ser)
        self._direct_read = self._fd is not None and empty_read_raises(self._fd)
        self._discard_queue()  # bytes queued for a port that was replaced
        return ser

    @property
    def tx_queued_bytes(self) -> int:
        """Bytes accepted by :meth:`write` that the OS has not taken yet."""
        return len(self._tx_queue)

    def _send(self, data: bytes | bytearray | memoryview) -> int:
        """Hand ``data`` to the port; return the bytes taken.

        A descriptor takes them without waiting; else pyserial's write, bounded by
        ``write_timeout_s``.
        """
        if self._fd is None:
            import serial

            try:
                n = self._ser.write(data)
            except serial.SerialTimeoutException:
                self.write_timeouts += 1  # expected timeout: a return value, not an exception
                return 0
            return len(data) if n is None else int(n)
        return write_nonblocking(self._fd, data)

    def _drain(self) -> None:
        q = self._tx_queue
        if q:
            n = self._send(q)
            del q[:n]
            self.bytes_tx += n

    @property
    def is_open(self) -> bool:
        """False after ``close()`` or after a failure was reported."""
        return not self._user_closed and not self._failed and self._ser is not None

    def _discard_queue(self) -> None:
        """Count queued bytes that will never be sent (the port is closed or replaced)."""
        self.tx_dropped_bytes += len(self._tx_queue)
        self._tx_queue.clear()

    def _fail(self, what: str, exc: BaseException) -> BusError:
        self._failed = True
        self.failures += 1
        self._discard_queue()
        ser, self._ser = self._ser, None
        if ser is not None and not self.url.startswith("socket://"):
            # pyserial's socket close() sleeps 0.3 s ("give the server some time"): never in
            # the tick. Dropping the last reference closes the socket descriptor instead.
            try:
                ser.close()
            except Exception as close_exc:  # noqa: BLE001 - the port is already gone; closing is best effort
                logger.debug("closing %s after a failure failed: %s", self.url, close_exc)
        return BusError(f"serial link {self.url}: {what} failed: {one_line(exc)}")

    def read(self, max_bytes: int = 4096) -> bytes:
        """Non-blocking read of up to ``max_bytes`` bytes (see :class:`SerialLink`)."""
        if not self._check_usable():
            return b""
        if self._pending_unplug:
            raise self._unplugged("read")
        import serial

        try:
            if self._tx_queue:
                self._drain()
            if self._direct_read:
                data = read_nonblocking(self._fd, max_bytes)  # type: ignore[arg-type]
            else:
                data = self._ser.read(max_bytes)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise self._fail("read", exc) from exc
        self.bytes_rx += len(data)
        return data

    def write(self, data: bytes) -> int:
        """Send or queue ``data`` without waiting (see the class Notes and :class:`SerialLink`).

        Returns
        -------
        int
            ``len(data)`` when the bytes were sent or queued; 0 when the queue had no room
            for them (nothing of ``data`` is sent then).
        """
        if not self._check_usable():
            return 0
        if self._pending_unplug:
            raise self._unplugged("write")
        import serial

        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # a memoryview of another format or layout: count bytes
        q = self._tx_queue
        try:
            if self._fd is None:  # no descriptor: pyserial's bounded blocking write, no queue
                n = self._send(data)
                self.bytes_tx += n
                return n
            self._drain()
            n = 0 if q else self._send(data)  # behind a queue: keep the order
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise self._fail("write", exc) from exc
        self.bytes_tx += n
        if n < len(data):
            if n == 0 and len(q) + len(data) > self.tx_buffer_bytes:  # nothing started: refuse whole
                self.tx_overflows += 1
                self.tx_dropped_bytes += len(data)
                return 0
            q += memoryview(data)[n:]  # a started write is always finished
        return len(data)

    def reopen(self) -> None:
        """Close and open the port again (after a reported failure).

        Raises
        ------
        BusError, BusConfigError
            As for the constructor; the link stays failed.
        """
        if self._user_closed:
            raise BusError(f"serial link {self.url}: reopen() after close()")
        try:
            if self._ser is not None:
                self._ser.close()
        except Exception as exc:  # noqa: BLE001 - best effort on a dead port
            logger.debug("closing %s before reopening failed: %s", self.url, exc)
        self._ser = None
        self._failed = True
        if not self._present:
            raise DeviceUnavailableError(f"serial link {self.url}: cannot open: device unplugged")
        self._ser = self._open()
        self._failed = False
        self._pending_unplug = False

    # ---- fault knobs (fault plans: SAFETY.md D12)
    def simulate_unplug(self) -> None:
        """Make the device disappear, as a USB adapter pulled out.

        The next :meth:`read` or :meth:`write` fails as pyserial's do then (``EIO``): the
        port is closed and :class:`~hal.errors.BusError` raised once; :meth:`reopen`
        raises :class:`~hal.errors.DeviceUnavailableError` until :meth:`simulate_replug`.
        May be called from another thread than the one doing the I/O (a flag is set).
        """
        self._present = False
        if self.is_open:
            self._pending_unplug = True

    def simulate_replug(self) -> None:
        """Bring the device back: a following :meth:`reopen` opens the port again."""
        self._present = True

    def _unplugged(self, what: str) -> BusError:
        self._pending_unplug = False
        return self._fail(what, OSError(errno.EIO, "Input/output error (device unplugged)"))

    def close(self) -> None:
        """Close the port; idempotent.

        Queued bytes get one last non-blocking try; what the OS does not take then is
        counted in ``tx_dropped_bytes``.
        """
        if self._tx_queue and not self._user_closed and not self._failed:
            try:
                self._drain()
            except Exception as exc:  # noqa: BLE001 - closing must not raise
                logger.debug("last write to %s on close failed: %s", self.url, exc)
        self._discard_queue()
        self._user_closed = True
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception as exc:  # noqa: BLE001 - closing a vanished device must not raise
                logger.debug("closing %s failed: %s", self.url, exc)

    def __repr__(self) -> str:
        return f"PySerialLink({self.url!r}, {self.baudrate})"



def write_nonblocking(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Call ``os.write`` on a non-blocking descriptor; return the bytes the OS took.

    0 when its buffer is full (``EAGAIN``) or the call was interrupted (write(2),
    ``O_NONBLOCK``).

    Parameters
    ----------
    fd : int
        A descriptor in non-blocking mode.
    data : bytes-like
        What to write.

    Raises
    ------
    OSError
        Any other failure (the device or peer is gone).
    """
    try:
        return os.write(fd, data)
    except (BlockingIOError, InterruptedError):  # BlockingIOError is EAGAIN / EWOULDBLOCK
        return 0


def empty_read_raises(fd: int) -> bool:
    """Make a non-blocking read of ``fd`` tell "nothing yet" from "gone"; True if it does.

    pyserial opens a tty with ``VMIN = VTIME = 0`` and waits in ``select`` before each
    ``read`` (pyserial 3.5, ``serialposix.Serial.read``): on such a tty an empty read and a
    hung-up device (USB adapter unplugged, the pty's far end closed) both read 0 bytes.
    With ``VMIN = 1`` and ``VTIME = 0`` a non-blocking read of an empty tty fails with
    ``EAGAIN`` instead, and 0 bytes means the device is gone (termios(3), non-canonical
    mode; read(2), ``O_NONBLOCK``); a socket reads that way without any setting. A read is
    then one system call, without pyserial's ``select`` and its Python ``Timeout``.

    Parameters
    ----------
    fd : int
        A non-blocking descriptor (a tty or pty slave opened by pyserial, a socket).

    Returns
    -------
    bool
        True for a socket, or a tty whose ``VMIN`` is 1 and ``VTIME`` 0 now; False when the
        descriptor is neither or the setting was refused (read through pyserial then).
    """
    import stat
    import termios

    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            return True
        if not os.isatty(fd):
            return False
        attrs = termios.tcgetattr(fd)
        cc = attrs[6]
        if cc[termios.VMIN] != 1 or cc[termios.VTIME] != 0:
            cc[termios.VMIN], cc[termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            cc = termios.tcgetattr(fd)[6]
    except (OSError, termios.error) as exc:
        logger.debug("descriptor %d: reads stay with pyserial (%s)", fd, exc)
        return False
    return bool(cc[termios.VMIN] == 1 and cc[termios.VTIME] == 0)


def read_nonblocking(fd: int, max_bytes: int) -> bytes:
    """Read a descriptor prepared by :func:`empty_read_raises` once, without waiting.

    Parameters
    ----------
    fd : int
        A non-blocking descriptor for which :func:`empty_read_raises` returned True.
    max_bytes : int
        Most bytes to return.

    Returns
    -------
    bytes
        What the kernel held, up to ``max_bytes``; ``b""`` when nothing (``EAGAIN``,
        ``EINTR``).

    Raises
    ------
    OSError
        The read failed (``EIO``: the device went away), or it read 0 bytes: end of
        file, the device hung up or the peer closed.
    """
    try:
        data = os.read(fd, max_bytes)
    except (BlockingIOError, InterruptedError):
        return b""
    if not data:
        raise OSError(errno.EIO, "end of file (device disconnected or peer closed)")
    return data


def _nonblocking_fd(ser: serial.SerialBase) -> int | None:
    """Return the port's descriptor if it is non-blocking (ttys, ptys, sockets), else None."""
    import fcntl

    try:
        fd = ser.fileno()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except Exception:  # noqa: BLE001 - loop:// and other handlers have no descriptor
        return None
    return fd if flags & os.O_NONBLOCK else None


# --------------------------------------------------------------------------- pipes


class PipeLink(_LinkState):
    """One end of an in-process byte pipe; make ends with :meth:`pair`.

    Deterministic and thread-free: ``write`` on one end appends to the other end's receive
    buffer, ``read`` pops from this end's. For lockstep runs and tests.

    Parameters
    ----------
    name : str
        Link name (e.g. ``"mcu/host"``).
    capacity_bytes : int, optional
        Receive-buffer bound (default 65536). Bytes arriving at a full buffer are dropped
        and counted in ``rx_overflow_bytes`` (a UART receiver overruns the same way).

    Attributes
    ----------
    bytes_rx, bytes_tx, rx_overflow_bytes : int
        Counters.
    """

    def __init__(self, name: str, capacity_bytes: int = 65536) -> None:
        if capacity_bytes <= 0:
            raise BusConfigError(f"pipe link {name}: capacity_bytes must be > 0")
        self.name = str(name)
        self.capacity_bytes = int(capacity_bytes)
        self.bytes_rx = 0
        self.bytes_tx = 0
        self.rx_overflow_bytes = 0
        self.failures = 0
        self._rx = bytearray()
        self._peer: PipeLink | None = None
        self._user_closed = False
        self._failed = False
        self._present = True
        self._pending_failure = False

    @classmethod
    def pair(cls, name: str, capacity_bytes: int = 65536) -> tuple[PipeLink, PipeLink]:
        """Return two connected ends ``(a, b)``: bytes written to one are read from the other.

        Parameters
        ----------
        name : str
            Base name; the ends are called ``name + "/a"`` and ``name + "/b"``.
        capacity_bytes : int, optional
            Receive-buffer bound of each end.
        """
        a = cls(f"{name}/a", capacity_bytes)
        b = cls(f"{name}/b", capacity_bytes)
        a._peer, b._peer = b, a
        return a, b

    @property
    def is_open(self) -> bool:
        """False after ``close()`` or after a failure was reported.

        :meth:`write` tests the peer's flags inline (the same expression).
        """
        return not self._user_closed and not self._failed

    def _raise_pending(self, what: str) -> None:
        self._pending_failure = False
        self._failed = True
        self.failures += 1
        self._rx.clear()
        raise BusError(f"pipe link {self.name}: {what} failed: device unplugged")

    def read(self, max_bytes: int = 4096) -> bytes:
        """Pop up to ``max_bytes`` received bytes; ``b""`` when none."""
        if (self._user_closed or self._failed) and not self._check_usable():  # the helper raises after close()
            return b""
        if self._pending_failure:
            self._raise_pending("read")
        rx = self._rx
        if not rx:
            return b""
        data = bytes(rx[:max_bytes])
        del rx[:max_bytes]
        self.bytes_rx += len(data)
        return data

    def write(self, data: bytes) -> int:
        """Append ``data`` to the peer's receive buffer; return the bytes accepted."""
        if (self._user_closed or self._failed) and not self._check_usable():  # the helper raises after close()
            return 0
        if self._pending_failure:
            self._raise_pending("write")
        n = len(data)
        self.bytes_tx += n
        peer = self._peer
        # peer.is_open inline (a property call per write on the lockstep MCU line)
        if peer is None or peer._user_closed or peer._failed or not peer._present:
            return n  # the line is driven, nobody listens: bytes are lost on the wire
        room = peer.capacity_bytes - len(peer._rx)
        if n > room:
            peer.rx_overflow_bytes += n - max(room, 0)
            if room > 0:
                peer._rx += data[:room]
        else:
            peer._rx += data
        return n

    def pending(self) -> int:
        """Bytes waiting in this end's receive buffer."""
        return len(self._rx)

    # ---- fault knobs (tests, fault plans)
    def simulate_unplug(self) -> None:
        """Make the device behind this end disappear: the next read/write raises BusError once."""
        self._present = False
        if self.is_open:
            self._pending_failure = True

    def simulate_replug(self) -> None:
        """Bring the device back: a following :meth:`reopen` succeeds."""
        self._present = True

    def reopen(self) -> None:
        """Reopen after a failure.

        Raises
        ------
        BusError
            While the device is unplugged, or after ``close()``.
        """
        if self._user_closed:
            raise BusError(f"pipe link {self.name}: reopen() after close()")
        if not self._present:
            raise BusError(f"pipe link {self.name}: cannot open: device unplugged")
        self._failed = False
        self._pending_failure = False
        self._rx.clear()

    def close(self) -> None:
        """Close this end; idempotent. The peer's writes are then lost."""
        self._user_closed = True
        self._rx.clear()

    def __repr__(self) -> str:
        return f"PipeLink({self.name!r})"


# --------------------------------------------------------------------------- fd / pty


class FdLink(_LinkState):
    """SerialLink over a non-blocking file descriptor (pty master, connected socket).

    Parameters
    ----------
    fd : int
        An open descriptor; the link owns it and closes it on :meth:`close`.
    name : str, optional
        Link name for messages (default ``"fd:<n>"``).
    keep_open_fds : sequence of int, optional
        Further descriptors owned by the link and closed with it (``open_pty_pair`` passes
        the slave fd so that the pty never hangs up while the host side reopens).

    Notes
    -----
    ``os.set_blocking(fd, False)``: a read with nothing pending returns ``b""``; a write
    into a full kernel buffer writes what fits, the rest is dropped and counted in
    ``tx_dropped_bytes`` (bounded: no user-space queue). ``os.read`` returning ``b""``
    (end of file: the socket peer closed) is a failure, reported once.
    """

    def __init__(self, fd: int, *, name: str | None = None, keep_open_fds: tuple[int, ...] = ()) -> None:
        self.fd = int(fd)
        self.name = name or f"fd:{self.fd}"
        self.bytes_rx = 0
        self.bytes_tx = 0
        self.tx_dropped_bytes = 0
        self.failures = 0
        self._extra_fds = tuple(keep_open_fds)
        self._user_closed = False
        self._failed = False
        try:
            os.set_blocking(self.fd, False)
        except OSError as exc:
            raise BusConfigError(f"fd link {self.name}: not a usable descriptor: {one_line(exc)}") from exc

    @property
    def is_open(self) -> bool:
        """False after ``close()`` or after a failure was reported."""
        return not self._user_closed and not self._failed

    def _fail(self, what: str, reason: str) -> BusError:
        self._failed = True
        self.failures += 1
        return BusError(f"fd link {self.name}: {what} failed: {reason}")

    def read(self, max_bytes: int = 4096) -> bytes:
        """Non-blocking read of up to ``max_bytes`` bytes."""
        if not self._check_usable():
            return b""
        try:
            data = os.read(self.fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            raise self._fail("read", one_line(exc)) from exc
        if not data:
            raise self._fail("read", "end of file (peer closed)")
        self.bytes_rx += len(data)
        return data

    def write(self, data: bytes) -> int:
        """Non-blocking write; returns bytes accepted by the kernel (rest dropped, counted)."""
        if not self._check_usable():
            return 0
        try:
            n = write_nonblocking(self.fd, data)
        except OSError as exc:
            raise self._fail("write", one_line(exc)) from exc
        self.bytes_tx += n
        self.tx_dropped_bytes += len(data) - n
        return n

    def close(self) -> None:
        """Close the descriptor(s); idempotent."""
        if self._user_closed:
            return
        self._user_closed = True
        for fd in (self.fd, *self._extra_fds):
            try:
                os.close(fd)
            except OSError as exc:
                logger.debug("closing descriptor %d of %s failed: %s", fd, self.name, exc)

    def __repr__(self) -> str:
        return f"FdLink({self.name!r})"


def open_pty_pair(name: str = "pty") -> tuple[FdLink, str]:
    """Create a pseudo-terminal in raw mode for an emulator in a real-time run.

    Parameters
    ----------
    name : str, optional
        Prefix of the master link's name.

    Returns
    -------
    master : FdLink
        The emulator's end (non-blocking). It also holds the slave descriptor open, so the
        host side may close and reopen the slave path without a hang-up.
    slave_path : str
        ``/dev/pts/N``, to open with :class:`PySerialLink` (any baud rate is accepted).

    Raises
    ------
    BusConfigError
        If the system cannot allocate a pty.

    Notes
    -----
    ``tty.setraw`` on the slave clears ICANON, ECHO, ICRNL, OPOST etc. (POSIX termios), so
    every byte, 0x00 and 0x0D included, passes untouched in both directions.
    """
    try:
        master_fd, slave_fd = os.openpty()
    except OSError as exc:
        raise BusConfigError(f"pty {name}: cannot allocate: {one_line(exc)}") from exc
    tty.setraw(slave_fd)
    slave_path = os.ttyname(slave_fd)
    return FdLink(master_fd, name=f"{name}:{slave_path}", keep_open_fds=(slave_fd,)), slave_path
