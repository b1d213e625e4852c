r"""An slcan (Lawicel ASCII) python-can interface that reads the port in bulk.

python-can 4.6's ``slcan`` interface reads its serial port one byte at a time: every byte
of a received line costs a ``select`` and a ``read`` system call (about 25 of each for an
8-byte standard frame), and every send a ``tcdrain``. In QIKI's real-time tick on the
two-process rig (``qiki emulate`` + ``rigs/bench_two_process.yaml``) that was about a
quarter of the tick's time (profile of issue 16: 19,695 one-byte reads for 2,077 frames
in 1,169 ticks). This interface speaks the same protocol to the same adapters (a CANable
or any USB slcan adapter, and ``qiki emulate``'s emulated one) but takes whatever the
kernel holds in one non-blocking ``read`` and cuts lines from its own buffer: an empty
poll is one system call, a tick's frames are one more.

Registered with python-can as the interface ``qiki_slcan`` (entry point
``can.interface`` in ``pyproject.toml``), so a rig names it like any other::

    can0: {kind: can, interface: qiki_slcan, channel: /dev/ttyACM0, bitrate_bps: 500000,
           options: {sleep_after_open: 0}}

Protocol (Lawicel CAN232/CANUSB; what python-can's ``slcan`` sends, see
:mod:`hal.can.slcan_pty` for the adapter side): on opening ``C``, ``S<n>`` (or
``s<BTR>``), then ``O`` (``L`` with ``listen_only``); on shutdown ``C``. Received lines
``tIIIL<data>``, ``TIIIIIIIIL<data>``, ``rIIIL``, ``RIIIIIIIIL`` end with ``\r`` (a trailing
4-digit timestamp of the adapter's ``Z1`` mode is ignored); an adapter's replies (``\r``,
``z\r``/``Z\r`` transmit acknowledgements, ``\a`` errors, ``V``/``N``/``F`` answers) are
skipped and counted, never returned as frames and never stop a poll early (python-can's
``slcan`` returns None on a ``z`` line, which ends a drain early).

Every frame is timestamped with ``time.time()`` when its line is cut (as python-can's
``slcan`` does). Linux/POSIX only: the port must have a file descriptor.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections import deque

import can
import serial

from hal.can.slcan_pty import decode_frame, encode_frame
from hal.serial.link import empty_read_raises, read_nonblocking, write_nonblocking

__all__ = ["SlcanBus", "SLCAN_BITRATE_CODES"]

logger = logging.getLogger(__name__)
#: python-can's bus logger (``can.bus.LOG``): its receive line, as ``BusABC.recv`` writes it
_CAN_LOG = logging.getLogger("can.bus")

#: Lawicel ``S<n>`` codes by bit rate (bit/s), CAN232/CANUSB manual, command ``Sn``.
SLCAN_BITRATE_CODES: dict[int, int] = {10_000: 0, 20_000: 1, 50_000: 2, 100_000: 3, 125_000: 4,
                                       250_000: 5, 500_000: 6, 750_000: 7, 1_000_000: 8}
#: Bytes asked of the kernel per read: more than a full bus delivers between two ticks at
#: 100 Hz (500 kbit/s is at most ~4,400 frames/s, ~44 frames or ~1.2 kB per 10 ms).
_READ_CHUNK = 65536
#: A line longer than this is garbage (an extended frame with 8 data bytes and a
#: timestamp is 31 characters): dropped, counted in ``bad_lines``.
_MAX_LINE = 64
_CR = 0x0D
_BEL = 0x07


class SlcanBus(can.BusABC):
    r"""python-can bus on an slcan adapter that reads its serial port in bulk.

    Parameters
    ----------
    channel : str
        Serial device of the adapter (``/dev/ttyACM0``, a pty path) or any pyserial URL
        that has a file descriptor.
    tty_baudrate : int, optional
        Serial line speed, baud (default 115200; USB CDC adapters ignore it).
    bitrate : int, optional
        CAN bit rate, bit/s: one of :data:`SLCAN_BITRATE_CODES`. None leaves the
        adapter's bit rate as it is (or use ``btr``).
    btr : str, optional
        Raw bit-timing register value sent as ``s<btr>`` when ``bitrate`` is None.
    sleep_after_open : float, optional
        Seconds to wait after opening the port before the first command (default 2.0,
        python-can's: Arduino-style adapters reset when the port opens; 0 for a CANable
        or a pty).
    rtscts : bool, optional
        Hardware flow control on the serial line.
    listen_only : bool, optional
        Open the channel with ``L`` (receive only; the adapter refuses sends).
    timeout : float, optional
        Accepted for compatibility with python-can's ``slcan`` options and ignored: a
        receive waits at most its own ``recv(timeout)``, seconds.
    write_timeout : float, optional
        Longest a send may block on a full serial output buffer, seconds (default 0.1);
        past it the send raises :class:`can.CanOperationError`.
    **kwargs
        Passed to :class:`can.BusABC` (``can_filters``...).

    Attributes
    ----------
    bad_lines : int
        Received lines that were neither a frame nor a known reply (dropped).
    replies : int
        Adapter replies skipped (``\r``, ``z``/``Z`` acks, ``\a`` errors, ``V``/``N``/``F``).

    Raises
    ------
    ValueError
        A ``bitrate`` with no Lawicel code.
    can.CanInitializationError
        The port cannot be opened or has no file descriptor, the adapter refused an
        opening command, or ``can_filters`` were refused (the port is closed again).
    """

    def __init__(self, channel: str, tty_baudrate: int = 115200, bitrate: int | None = None,
                 btr: str | None = None, sleep_after_open: float = 2.0, rtscts: bool = False,
                 listen_only: bool = False, timeout: float = 0.001, write_timeout: float = 0.1,
                 **kwargs: object) -> None:
        if not channel:
            raise can.CanInitializationError("slcan: a channel (serial device) is required")
        if bitrate is not None and int(bitrate) not in SLCAN_BITRATE_CODES:
            raise ValueError(f"slcan: bitrate {bitrate} has no Lawicel code; "
                             f"valid: {', '.join(str(b) for b in SLCAN_BITRATE_CODES)}")
        try:
            self._port = serial.serial_for_url(channel, baudrate=int(tty_baudrate), rtscts=bool(rtscts),
                                               timeout=0, write_timeout=float(write_timeout))
            self._fd = self._port.fileno()
            # one system call per read and per send (see _fill and send)
            self._eof_is_gone = empty_read_raises(self._fd)
            self._direct_write = not os.get_blocking(self._fd)
        except (serial.SerialException, OSError, AttributeError, ValueError) as exc:
            raise can.CanInitializationError(f"slcan {channel}: cannot open: {exc}") from exc
        self.channel_info = f"slcan on {channel}"
        self._channel = channel
        self._buf = bytearray()
        self._frames: deque[can.Message] = deque()
        self.bad_lines = 0
        self.replies = 0
        if sleep_after_open > 0:
            time.sleep(float(sleep_after_open))  # the adapter's reset after the port opens
        try:
            self._command(b"C")
            if bitrate is not None:
                self._command(b"S%d" % SLCAN_BITRATE_CODES[int(bitrate)])
            elif btr:
                self._command(b"s" + btr.encode("ascii"))
            self._command(b"L" if listen_only else b"O")
            super().__init__(channel, **kwargs)  # type: ignore[arg-type]
        except (can.CanError, ValueError, TypeError) as exc:  # a refused command, bad filters
            self._close_port()
            raise can.CanInitializationError(f"slcan {channel}: cannot open: {exc}") from exc

    def _command(self, line: bytes) -> None:
        r"""Write one command line (``\r`` added); the adapter's reply is skipped on receive."""
        try:
            self._port.write(line + b"\r")
        except (serial.SerialException, OSError) as exc:
            raise can.CanOperationError(f"slcan {self._channel}: write failed: {exc}") from exc

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Send one classic frame as an slcan line.

        Parameters
        ----------
        msg : can.Message
            A classic data or remote frame, standard or extended ID, DLC 0..8.
        timeout : float, optional
            Ignored: the port's ``write_timeout`` bounds a send.

        Notes
        -----
        One non-blocking ``os.write`` of the line; only what the OS buffer did not take goes
        through pyserial's ``write``, which waits for room up to ``write_timeout`` (pyserial's
        ``write`` alone costs a ``select`` and a ``Timeout`` per call even when the line fits).

        Raises
        ------
        ValueError
            CAN FD or error frames, or a DLC above 8 (:func:`hal.can.slcan_pty.encode_frame`).
        can.CanOperationError
            The port refused the write (unplugged adapter, write timeout).
        """
        line = encode_frame(msg)
        try:
            n = write_nonblocking(self._fd, line) if self._direct_write else 0
            if n < len(line):  # the OS buffer is full: pyserial's write waits, bounded
                self._port.write(line[n:])
        except (serial.SerialException, OSError) as exc:
            raise can.CanOperationError(f"slcan {self._channel}: write failed: {exc}") from exc

    def _fill(self, ready: bool = False) -> bool:
        """Take what the kernel holds (one non-blocking read); False if nothing was there.

        The port is set up by :func:`hal.serial.link.empty_read_raises` (``VMIN = 1``): an
        empty read fails with ``EAGAIN`` and 0 bytes means the device is gone, so an empty
        poll is one system call. Where that setting was refused the tty keeps
        ``VMIN = VTIME = 0``, on which an empty port and a hung-up one (adapter unplugged,
        the pty's far end closed) both read 0 bytes: then, after an empty read, a
        zero-timeout ``select`` (skipped when the caller's ``select`` just said ``ready``)
        and, if readable, a second read tell the two apart; 0 bytes again means the device
        is gone (pyserial's rule in ``serialposix.Serial.read``).
        """
        data = self._read()
        if not data:
            if self._eof_is_gone:
                return False  # EAGAIN: nothing yet (a hang-up raised in _read)
            if not ready and not select.select([self._fd], [], [], 0)[0]:
                return False
            data = self._read()  # bytes that arrived since, or a hang-up
            if not data:
                raise can.CanOperationError(f"slcan {self._channel}: read failed: readable but no data "
                                            "(device disconnected?)")
        self._buf += data
        return True

    def _read(self) -> bytes:
        """One non-blocking read of the port: its bytes, or b"" when it holds none."""
        try:
            if self._eof_is_gone:  # EAGAIN: b""; 0 bytes (end of file): OSError
                return read_nonblocking(self._fd, _READ_CHUNK)
            return os.read(self._fd, _READ_CHUNK)  # VMIN = 0: b"" for empty and for gone alike
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:  # EIO or end of file: the adapter (or the pty's far end) went away
            raise can.CanOperationError(f"slcan {self._channel}: read failed: {exc}") from exc

    def _cut_lines(self) -> None:
        """Move every complete line of the buffer into the frame list (replies skipped)."""
        buf = self._buf
        start = 0
        n = len(buf)
        frames = self._frames
        while start < n:
            end = buf.find(b"\r", start)
            bel = buf.find(b"\a", start, n if end < 0 else end)
            if bel >= 0:  # an error reply: no \r of its own
                end = bel
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if not line:
                self.replies += 1  # OK reply, or the \a itself
                continue
            head = line[0]
            if head in b"tTrR" and len(line) <= _MAX_LINE:
                msg = decode_frame(line)
                if msg is not None:
                    frames.append(msg)
                    continue
                self.bad_lines += 1
            elif head in b"zZVNF":
                self.replies += 1
            else:
                self.bad_lines += 1
        if start:
            del buf[:start]
        if len(buf) > _MAX_LINE:  # no line end in sight: garbage, drop it
            self.bad_lines += 1
            buf.clear()

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Return the next received frame, waiting at most ``timeout`` s (None: forever).

        ``recv(timeout=0)`` without filters, a control tick's drain (``hal.can.port``),
        takes the frame straight from the buffer: python-can's ``BusABC.recv`` would
        read the clock twice and check the (absent) filters per call. Anything else goes
        through ``BusABC.recv``. Either way frames come in order and python-can's
        receive log line (level 9, logger ``can.bus``) is written.

        Parameters
        ----------
        timeout : float, optional
            Longest wait, s; 0 never waits.

        Returns
        -------
        can.Message or None
            The frame, or None when none came in time.

        Raises
        ------
        can.CanOperationError
            The port failed (adapter unplugged, the pty's far end closed).
        """
        if timeout != 0 or self._filters is not None:
            return super().recv(timeout)
        frames = self._frames
        if not frames:
            if not self._fill():
                return None
            self._cut_lines()
            if not frames:
                return None
        msg = frames.popleft()
        if _CAN_LOG.isEnabledFor(self.RECV_LOGGING_LEVEL):
            _CAN_LOG.log(self.RECV_LOGGING_LEVEL, "Received: %s", msg)
        return msg

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        """Return the next received frame, waiting at most ``timeout`` s (None: forever)."""
        frames = self._frames
        if frames:
            return frames.popleft(), False
        if self._fill():
            self._cut_lines()
            if frames:
                return frames.popleft(), False
        if timeout is not None and timeout <= 0:
            return None, False
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None, False
            try:
                ready, _, _ = select.select([self._fd], [], [], remaining)
            except (OSError, ValueError) as exc:
                raise can.CanOperationError(f"slcan {self._channel}: wait failed: {exc}") from exc
            if ready and self._fill(ready=True):
                self._cut_lines()
                if frames:
                    return frames.popleft(), False

    def fileno(self) -> int:
        """Return the serial port's file descriptor (for :class:`can.Notifier` and ``select``)."""
        return int(self._fd)

    def shutdown(self) -> None:
        """Close the channel (``C``) and the port; safe to call twice, never raises.

        A close command or port close the OS refuses (adapter already unplugged) is
        logged at debug level.
        """
        if self._is_shutdown:  # BusABC's flag: set by its shutdown
            return
        super().shutdown()
        try:
            self._port.write(b"C\r")
        except (serial.SerialException, OSError) as exc:
            logger.debug("slcan %s: close command not sent: %s", self._channel, exc)
        self._close_port()

    def _close_port(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError) as exc:
            logger.debug("slcan %s: port close failed: %s", self._channel, exc)

    @staticmethod
    def _detect_available_configs() -> list[can.typechecking.AutoDetectedConfig]:
        return []
