r"""An emulated slcan (Lawicel ASCII) CAN adapter on a pseudo-terminal.

The host side opens the pty's slave path with python-can's ``slcan`` interface
(``can.Bus(interface="slcan", channel=adapter.path, sleep_after_open=0)``), exactly as it
would open a CANable or another USB slcan adapter, so CAN traffic crosses a process
boundary through a real python-can interface (issue 13: never the in-process
``virtual`` bus). The adapter end (this class) holds the pty master.

Protocol (Lawicel CAN232/CANUSB ASCII, as python-can 4.6 ``can/interfaces/slcan.py``
speaks it; every line ends with ``\r``)::

    host -> adapter   S0..S8   set the bit rate (S6 = 500 kbit/s)     reply \r
                      O        open the channel (normal)                reply \r
                      L        open the channel listen-only            reply \r
                      C        close the channel                        reply \r
                      V / N    version / serial number                  reply V0101\r / NQIKI\r
                      tIIILDD..  send a standard frame (III hex ID, L = DLC 0..8)
                      TIIIIIIIILDD..  send an extended frame;  r / R: remote frames
                                                                        reply z\r / Z\r, or
                                                                        \a (BEL) when the
                                                                        channel is closed or
                                                                        listen-only
    adapter -> host   tIIILDD..\r / TIIIIIIIILDD..\r / rIIIL\r / RIIIIIIIIL\r  received frames

python-can writes ``C``, ``S<n>``, an empty line (no data bit rate) and ``O`` (or ``L``
with ``listen_only=True``) on opening and ``C`` on shutdown, and never waits for a reply;
the replies above are what a real adapter sends and python-can skips them (a line that is
not a frame yields no message). Frames are forwarded to the host only while the channel
is open, as on a real adapter.

Run as a program, it replays a recorded CAN log (any format :func:`can.LogReader`
reads) to whoever opens the printed pty path, paced by the recorded timestamps::

    python -m hal.can.slcan_pty --replay ../shared/data/real/can/ars408/candump-*.log

Reusable by an emulator process (``qiki emulate``): :meth:`SlcanPtyAdapter.send` puts a
frame on the emulated bus towards the host; frames the host sends arrive through
``on_host_frame`` (a callback run on the adapter's reader thread) or, by default, in a
bounded queue read with :meth:`SlcanPtyAdapter.take_host_frames`.

POSIX only (``os.openpty``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import select
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import can

__all__ = ["SlcanPtyAdapter", "encode_frame", "decode_frame", "replay_log", "main"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_OK = b"\r"
_BELL = b"\a"
#: Longest command line accepted from the host (an extended frame with 8 bytes is 27).
_MAX_LINE = 64
#: Bytes that end a line towards the host: every frame and reply ends with ``\r``; the
#: refusal is the single byte BEL.
_LINE_ENDS = (ord("\r"), ord("\a"))


def encode_frame(msg: can.Message) -> bytes:
    r"""Return the slcan line (with its ``\r``) of a classic CAN frame.

    Parameters
    ----------
    msg : can.Message
        A classic frame (data or remote), standard or extended ID, DLC 0..8.

    Returns
    -------
    bytes
        ``tIIIL<data hex>\r``, ``TIIIIIIIIL<data hex>\r``, ``rIIIL\r`` or ``RIIIIIIIIL\r``.

    Raises
    ------
    ValueError
        CAN FD and error frames (slcan classic carries neither), or a DLC above 8.
    """
    if msg.is_fd or msg.is_error_frame:
        raise ValueError("slcan carries classic data and remote frames only")
    dlc = int(msg.dlc)
    if not 0 <= dlc <= 8:
        raise ValueError(f"DLC must be 0..8, got {dlc}")
    if msg.is_extended_id:
        head = f"{'R' if msg.is_remote_frame else 'T'}{msg.arbitration_id & 0x1FFFFFFF:08X}{dlc:d}"
    else:
        head = f"{'r' if msg.is_remote_frame else 't'}{msg.arbitration_id & 0x7FF:03X}{dlc:d}"
    body = "" if msg.is_remote_frame else bytes(msg.data[:dlc]).hex().upper()
    return (head + body).encode("ascii") + _OK


def decode_frame(line: bytes) -> can.Message | None:
    r"""Parse one host transmit command (``t``, ``T``, ``r``, ``R``) without its ``\r``.

    Returns
    -------
    can.Message or None
        None when the line is not a well-formed transmit command.
    """
    try:
        text = line.decode("ascii")
        kind = text[0]
        if kind in "tr":
            can_id, dlc, rest = int(text[1:4], 16), int(text[4]), text[5:]
        elif kind in "TR":
            can_id, dlc, rest = int(text[1:9], 16), int(text[9]), text[10:]
        else:
            return None
        if dlc > 8:
            return None
        remote = kind in "rR"
        data = b"" if remote else bytes.fromhex(rest[:2 * dlc])
        if not remote and len(data) != dlc:
            return None
        return can.Message(arbitration_id=can_id, is_extended_id=kind in "TR", is_remote_frame=remote,
                           dlc=dlc, data=data, timestamp=time.time())
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


class SlcanPtyAdapter:
    r"""An slcan adapter emulated on a pty: the host opens :attr:`path` with python-can.

    Parameters
    ----------
    on_host_frame : callable ``(can.Message) -> None``, optional
        Called on the reader thread for each frame the host sends while the channel is
        open in normal mode. Default: kept in a queue of ``host_queue_len`` frames
        (:meth:`take_host_frames`; the oldest are dropped when it is full).
    host_queue_len : int, optional
        Capacity of the default host-frame queue (default 4096).
    write_timeout_s : float, optional
        Longest wait, in seconds, for room in the pty towards the host on one write
        (default 0.5 s). A host that stops reading (stopped, killed, hung) fills the
        pty; the write then gives up after this time instead of holding the caller
        (the emulator's bridge thread, the reader thread's replies) forever. The lines
        not written are dropped and counted (``frames_dropped_host_stalled``); a line cut
        in the middle is finished first on the next write, so the host never sees a
        torn line (Lawicel framing, one ``\r`` per line).

    Attributes
    ----------
    path : str
        The pty's slave path (``/dev/pts/N``): the host's slcan ``channel``.
    is_open : bool
        The host opened the channel (``O`` or ``L``) and has not closed it.
    listen_only : bool
        The host opened the channel with ``L``.
    bitrate_code : str or None
        The last ``S<n>`` command (``"S6"`` = 500 kbit/s), None if never set.
    frames_sent, frames_dropped, host_frames, host_frames_refused : int
        Frames written to the host, not written (channel closed), received from the host,
        and refused (sent by the host while closed or listen-only).
    frames_dropped_host_stalled : int
        Frames not written because the host left no room for ``write_timeout_s``.
    write_timeouts : int
        Writes that gave up after ``write_timeout_s``.

    Notes
    -----
    The slave side is put in raw mode at once and kept open by the adapter, so the host
    may open and close it any number of times, and nothing written before the host opens
    it is echoed back.
    """

    def __init__(self, on_host_frame: Callable[[can.Message], None] | None = None, *,
                 host_queue_len: int = 4096, write_timeout_s: float = 0.5) -> None:
        if not write_timeout_s > 0.0:
            raise ValueError(f"write_timeout_s must be > 0, got {write_timeout_s!r}")
        self.write_timeout_s = float(write_timeout_s)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # writes must be able to give up (write_timeout_s); reads wait in poll() (not
        # select(): a descriptor number above 1023 is beyond select's reach)
        os.set_blocking(self._master, False)
        self._poll_in = select.poll()
        self._poll_in.register(self._master, select.POLLIN)
        self._poll_out = select.poll()
        self._poll_out.register(self._master, select.POLLOUT)
        self._pending = b""  # the rest of a line cut by a write timeout
        self.path = os.ttyname(self._slave)
        self._on_host_frame = on_host_frame
        self._host_queue: deque[can.Message] = deque(maxlen=max(1, int(host_queue_len)))
        self._write_lock = threading.Lock()
        self._opened = threading.Event()
        self.is_open = False
        self.listen_only = False
        self.bitrate_code: str | None = None
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_dropped_host_stalled = 0
        self.write_timeouts = 0
        self.host_frames = 0
        self.host_frames_refused = 0
        self._closed = False
        self._thread = threading.Thread(target=self._read_loop, name="slcan-pty", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ to the host
    def send(self, msg: can.Message) -> bool:
        """Put one frame on the emulated bus towards the host.

        Returns
        -------
        bool
            True when written; False (counted in ``frames_dropped``) while the host has
            the channel closed, or when the frame cannot be written on slcan; False
            (counted in ``frames_dropped_host_stalled``) when the host left no room for
            ``write_timeout_s``.
        """
        if not self.is_open or self._closed:
            self.frames_dropped += 1
            return False
        try:
            line = encode_frame(msg)
        except ValueError:
            self.frames_dropped += 1
            return False
        if self._write(line):
            self.frames_dropped_host_stalled += 1
            return False
        self.frames_sent += 1
        return True

    def send_many(self, msgs: Iterable[can.Message]) -> int:
        """Send several frames in one write; return how many were written.

        Frames the host left no room for within ``write_timeout_s`` are dropped and
        counted in ``frames_dropped_host_stalled``.
        """
        if not self.is_open or self._closed:
            n = sum(1 for _ in msgs)
            self.frames_dropped += n
            return 0
        lines = []
        for msg in msgs:
            try:
                lines.append(encode_frame(msg))
            except ValueError:
                self.frames_dropped += 1
        if not lines:
            return 0
        dropped = self._write(b"".join(lines))
        self.frames_dropped_host_stalled += dropped
        self.frames_sent += len(lines) - dropped
        return len(lines) - dropped

    def wait_open(self, timeout_s: float | None = None) -> bool:
        """Block until the host opens the channel (``O`` or ``L``); False on timeout."""
        return self._opened.wait(timeout_s)

    def take_host_frames(self) -> list[can.Message]:
        """Return and forget the frames the host sent (default queue only), oldest first."""
        out = []
        q = self._host_queue
        while q:
            out.append(q.popleft())
        return out

    def close(self) -> None:
        """Close both ends of the pty (the host then sees its port fail).

        The reader thread is stopped first and the descriptors are closed under the write
        lock, so no write or read can reach a descriptor number reused after the close.
        """
        if self._closed:
            return
        self._closed = True
        self.is_open = False
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)  # it sees _closed within one poll (0.2 s)
        with self._write_lock:
            for fd in (self._slave, self._master):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> SlcanPtyAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _write(self, data: bytes) -> int:
        """Write ``data`` (whole lines) to the host; return how many lines were dropped.

        Waits at most ``write_timeout_s`` for room in all. On a timeout a line already
        begun is finished first by the next write (kept in ``_pending``) and the lines
        after it are dropped: the host's stream stays whole lines.
        """
        with self._write_lock:
            if self._closed:  # the descriptors are (being) closed: nothing is written
                return sum(1 for b in data if b in _LINE_ENDS)
            mid_line = bool(self._pending)  # the host has the start of the pending line
            full = self._pending + data if mid_line else data
            self._pending = b""
            view = memoryview(full)
            deadline = time.monotonic() + self.write_timeout_s
            while view:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    left_s = deadline - time.monotonic()
                    if left_s <= 0.0:
                        return self._give_up(full, len(full) - len(view), mid_line)
                    self._poll_out.poll(max(1, math.ceil(left_s * 1000.0)))
                    continue
                except OSError:  # the pty failed: what is left is not written
                    return sum(1 for b in bytes(view) if b in _LINE_ENDS)
                if n:
                    mid_line = full[len(full) - len(view) + n - 1] not in _LINE_ENDS
                view = view[n:]
            return 0

    def _give_up(self, full: bytes, written: int, mid_line: bool) -> int:
        """Drop what was not written of ``full`` but the rest of a begun line; return lines dropped."""
        rest = full[written:]
        cut = 0
        if mid_line:  # finish the line the host has begun, on the next write
            cut = next((i for i, b in enumerate(rest) if b in _LINE_ENDS), len(rest) - 1) + 1
            self._pending = rest[:cut]
        self.write_timeouts += 1
        if self.write_timeouts == 1:
            logger.warning("slcan pty %s: the host read nothing for %.3f s; dropping what it has no room for",
                           self.path, self.write_timeout_s)
        return sum(1 for b in rest[cut:] if b in _LINE_ENDS)

    def _read_loop(self) -> None:
        buf = bytearray()
        while not self._closed:
            try:
                if not self._poll_in.poll(200):
                    continue
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                # EIO while no process has the slave open is impossible here (we hold it);
                # an error means the pty failed: the reader stops
                return
            if not chunk:
                return
            buf.extend(chunk)
            while True:
                cut = buf.find(b"\r")
                if cut < 0:
                    if len(buf) > _MAX_LINE:
                        buf.clear()
                        self._write(_BELL)
                    break
                line = bytes(buf[:cut]).lstrip(b"\n")
                del buf[:cut + 1]
                self._command(line)

    def _command(self, line: bytes) -> None:
        if not line:
            self._write(_OK)  # python-can's empty data-bit-rate command
            return
        head = line[:1]
        if head in (b"O", b"L"):
            self.listen_only = head == b"L"
            self.is_open = True
            self._opened.set()
            self._write(_OK)
        elif head == b"C":
            self.is_open = False
            self._opened.clear()
            self._write(_OK)
        elif head in (b"S", b"s", b"Y"):
            self.bitrate_code = line.decode("ascii", "replace")
            self._write(_OK)
        elif head == b"V":
            self._write(b"V0101\r")
        elif head == b"N":
            self._write(b"NQIKI\r")
        elif head in (b"t", b"T", b"r", b"R"):
            self._host_frame(line)
        else:
            self._write(_BELL)

    def _host_frame(self, line: bytes) -> None:
        msg = decode_frame(line)
        if msg is None or not self.is_open or self.listen_only:
            self.host_frames_refused += 1
            self._write(_BELL)
            return
        self.host_frames += 1
        if self._on_host_frame is not None:
            try:
                self._on_host_frame(msg)
            except Exception:  # noqa: BLE001 - a callback bug must not kill the adapter
                logger.exception("slcan pty %s: on_host_frame failed", self.path)
        else:
            self._host_queue.append(msg)
        self._write(b"Z\r" if msg.is_extended_id else b"z\r")


def replay_log(adapter: SlcanPtyAdapter, frames: Sequence[can.Message] | Iterable[can.Message], *,
               speed: float = 1.0, stop: threading.Event | None = None) -> int:
    """Send recorded frames to the host, paced by their timestamps. Blocks.

    Waits for the host to open the channel first, then keeps the recorded spacing
    (divided by ``speed``) relative to the first frame; frames due at the same time go
    out in one write. Returns the number of frames written.

    Parameters
    ----------
    adapter : SlcanPtyAdapter
    frames : iterable of can.Message
        In recorded order (e.g. :func:`can.LogReader`); error frames are skipped.
    speed : float, optional
        Replay speed factor (default 1.0: real time). Must be > 0.
    stop : threading.Event, optional
        Set it to end the replay early.

    Raises
    ------
    ValueError
        If ``speed`` is not > 0.
    """
    if not speed > 0.0:
        raise ValueError(f"speed must be > 0, got {speed!r}")
    adapter.wait_open()
    sent = 0
    t0_rec: float | None = None
    t0 = time.monotonic()
    batch: list[can.Message] = []
    for msg in frames:
        if stop is not None and stop.is_set():
            break
        if msg.is_error_frame or msg.is_fd:
            continue
        if t0_rec is None:
            t0_rec = msg.timestamp
        due = t0 + (msg.timestamp - t0_rec) / speed
        delay = due - time.monotonic()
        if delay > 0.0005:
            if batch:
                sent += adapter.send_many(batch)
                batch = []
            time.sleep(delay)
        batch.append(msg)
    if batch:
        sent += adapter.send_many(batch)
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    """Program entry: replay a CAN log through an emulated slcan adapter on a pty.

    Prints the pty path on the first line of stdout (flushed), waits for the host to open
    the channel, replays, and exits when the log ends (``--loop``: starts over) or on
    SIGTERM/SIGINT.
    """
    p = argparse.ArgumentParser(prog="python -m hal.can.slcan_pty",
                                description="Replay a CAN log through an emulated slcan adapter on a pty.")
    p.add_argument("--replay", required=True, metavar="FILE", help="CAN log (candump .log, .asc, .blf, .trc, .csv)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor (default 1: real time)")
    p.add_argument("--loop", action="store_true", help="start over at the end of the log")
    p.add_argument("--linger", type=float, default=0.5, metavar="S",
                   help="keep the pty open this long after the last frame (default 0.5 s)")
    args = p.parse_args(argv)
    frames = list(can.LogReader(args.replay))
    # the frames live until the end: keep the collector from walking them mid-replay
    # (a full collection takes tens of ms, which would show as a late frame)
    gc.collect()
    gc.freeze()
    with SlcanPtyAdapter() as adapter:
        print(adapter.path, flush=True)
        try:
            while True:
                n = replay_log(adapter, frames, speed=args.speed)
                print(f"replayed {n} frames", file=sys.stderr, flush=True)
                if not args.loop:
                    break
            time.sleep(max(0.0, args.linger))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised by tests/emulated/test_monitor_slcan.py
    sys.exit(main())
