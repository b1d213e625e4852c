r"""An emulated CAN bus reachable from another process through an slcan adapter on a pty.

The far end of a two-process rig (``qiki emulate``) keeps its emulators on python-can's
``virtual`` bus inside its own process, as the in-process build does (several emulator
nodes -- valve board, ARS408, tank sensor -- share one bus and hear each other). An
:class:`SlcanBridge` is one more node of that bus: it is the emulated slcan adapter
(:class:`hal.can.slcan_pty.SlcanPtyAdapter`, Lawicel ASCII on a pty master) of the
controller, which opens the pty's slave path with python-can's ``slcan`` interface as it
would open a CANable. Frames cross both ways:

* emulators -> host: every frame sent on the virtual bus by an emulator node is written to
  the pty as ``tIIILDD..\r`` (a thread blocked on the bridge node's queue, so the delay is
  a thread wake-up, not a poll period); frames sent while the host has the channel closed
  are dropped, as on a real adapter;
* host -> emulators: every ``t``/``T``/``r``/``R`` line the host writes is put on the
  virtual bus (the adapter's reader thread), where each emulator node receives it. As a
  CANable's slcan firmware, the adapter acks no transmitted frame (no Lawicel ``z\r``):
  see :class:`_CanableAdapter`.

CAN traffic thus really crosses the process boundary through a python-can interface other
than ``virtual`` (issue 13), and a host that dies or stops simply stops writing: the
emulators see the silence a real bus would show them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import termios
import threading

import can

from hal.can.bus import open_can_bus
from hal.can.slcan_pty import SlcanPtyAdapter

__all__ = ["SlcanBridge"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

class _CanableAdapter(SlcanPtyAdapter):
    r"""An slcan pty adapter that, like the CANable's slcan firmware, acks no transmitted frame.

    python-can's ``slcan`` interface never waits for the Lawicel ``z`` / ``Z`` reply, but
    returns ``None`` from ``recv(timeout=0)`` when it reads one; a reader that drains
    until ``None`` (``hal.can.port.CanPort.poll``) then stops at every reply, and with
    more than one transmitted frame per tick its backlog grows without end. The other
    replies (``\r`` to ``O``, ``C``, ``S6``...; ``\a`` to a refused line) are kept.
    """

    def _write(self, data: bytes) -> int:
        if data in (b"z\r", b"Z\r"):
            return 0
        return super()._write(data)


#: Frames written to the host in one pty write at most (a burst of the ARS408's list).
_BATCH_MAX_N = 64
#: Bytes unread by the host above which frames are dropped, not written: a host that
#: stopped reading (killed, stopped) must not block the bridge on a full pty. About 0.7 s
#: of the virtual rig's traffic; below the line discipline's 4 KiB read buffer.
HOST_BACKLOG_MAX_BYTES = 3000


class SlcanBridge:
    """One node of an in-process ``virtual`` CAN bus, seen by the host as an slcan adapter.

    Parameters
    ----------
    channel : str
        The ``virtual`` channel the emulators' nodes are on.
    bitrate_bps : int
        Nominal bit rate (bit/s), for the virtual node (python-can ignores it there).

    Attributes
    ----------
    path : str
        The pty slave path (``/dev/pts/N``): the host's ``slcan`` channel.
    adapter : SlcanPtyAdapter
        The emulated adapter (counters: ``frames_sent``, ``frames_dropped``,
        ``frames_dropped_host_stalled``, ``host_frames``, ``host_frames_refused``;
        ``is_open``, ``bitrate_code``).
    to_host_n, from_host_n : int
        Frames forwarded to the host (written, dropped by the adapter while closed or
        while the host left no room for its write timeout, or dropped here for the
        host's backlog) and from the host onto the virtual bus.
    dropped_host_not_reading_n : int
        Frames dropped because the host left more than :data:`HOST_BACKLOG_MAX_BYTES`
        unread (it is dead or stopped); counted, never blocking.

    Raises
    ------
    BusConfigError, DeviceUnavailableError
        The virtual node cannot be opened (:func:`hal.can.bus.open_can_bus`).
    OSError
        No pty can be allocated.
    """

    def __init__(self, channel: str, bitrate_bps: int) -> None:
        self._node = open_can_bus("virtual", channel, bitrate_bps)
        try:
            self.adapter: SlcanPtyAdapter = _CanableAdapter(on_host_frame=self._from_host)
        except BaseException:
            self._node.shutdown()
            raise
        self.path = self.adapter.path
        # our own descriptor of the slave, only to ask how much the host left unread
        self._probe_fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.to_host_n = 0
        self.from_host_n = 0
        self.dropped_host_not_reading_n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._to_host_loop, name=f"slcan-bridge:{channel}", daemon=True)
        self._thread.start()

    def _from_host(self, msg: can.Message) -> None:
        """Adapter reader thread: a frame the host sent goes on the virtual bus."""
        try:
            self._node.send(msg, timeout=0.0)
            self.from_host_n += 1
        except can.CanError as exc:  # a full emulator queue: the frame is lost, as on a bus
            _log.warning("slcan bridge %s: host frame 0x%X not delivered: %s", self.path, msg.arbitration_id, exc)

    def _to_host_loop(self) -> None:
        node, adapter = self._node, self.adapter
        while not self._stop.is_set():
            try:
                msg = node.recv(timeout=0.05)
            except can.CanError:
                return  # the node was shut down
            if msg is None:
                continue
            batch = [msg]
            while len(batch) < _BATCH_MAX_N:
                more = node.recv(timeout=0.0)
                if more is None:
                    break
                batch.append(more)
            self.to_host_n += len(batch)
            if self.host_backlog_bytes() > HOST_BACKLOG_MAX_BYTES:
                self.dropped_host_not_reading_n += len(batch)
                continue
            adapter.send_many(batch)

    def host_backlog_bytes(self) -> int:
        """Return the bytes written to the host that it has not read yet (``TIOCINQ`` on the slave)."""
        try:
            raw = fcntl.ioctl(self._probe_fd, termios.TIOCINQ, struct.pack("i", 0))
        except OSError:
            return 0
        return int(struct.unpack("i", raw)[0])

    def stats(self) -> dict[str, object]:
        """Return the bridge's counters, for the emulator's record (JSON-ready)."""
        a = self.adapter
        return {"path": self.path, "host_open": a.is_open, "bitrate_code": a.bitrate_code,
                "to_host": self.to_host_n, "written_to_host": a.frames_sent, "dropped_host_closed": a.frames_dropped,
                "dropped_host_not_reading": self.dropped_host_not_reading_n,
                "dropped_host_stalled": a.frames_dropped_host_stalled,
                "from_host": self.from_host_n, "host_frames_refused": a.host_frames_refused}

    def close(self) -> None:
        """Stop forwarding, close the pty (the host sees its port fail) and the node. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.adapter.close()
        try:
            os.close(self._probe_fd)
        except OSError:
            pass
        self._node.shutdown()
