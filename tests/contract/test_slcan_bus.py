"""Contract of hal.can.slcan_bus.SlcanBus (python-can interface ``qiki_slcan``) on a real pty.

The test holds the pty's master end as the adapter: it reads what the bus writes and
writes what an adapter would send. python-can's own ``slcan`` interface is the oracle for
the bytes sent and the frames parsed; where the two differ on purpose (a ``z`` transmit
acknowledgement ends python-can's drain early) the test says so.
"""

from __future__ import annotations

import os
import random
import select
import time
import tty
from collections.abc import Iterator

import can
import pytest

from hal.can.bus import open_can_bus
from hal.can.slcan_bus import SlcanBus
from hal.can.slcan_pty import encode_frame


class Adapter:
    """The master end of a pty: the adapter's side of the serial line."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so the master never reads EIO between host opens

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_all(self) -> bytes:
        out = b""
        while select.select([self.master], [], [], 0)[0]:
            chunk = os.read(self.master, 4096)
            if not chunk:
                break
            out += chunk
        return out

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    a = Adapter()
    yield a
    a.close()


@pytest.fixture
def bus(adapter: Adapter) -> Iterator[SlcanBus]:
    b = SlcanBus(adapter.path, bitrate=500000, sleep_after_open=0)
    adapter.read_all()  # the opening commands
    yield b
    b.shutdown()


def _take(b: can.BusABC, n: int, timeout_s: float = 5.0) -> list[can.Message]:
    """Receive ``n`` frames, each within ``timeout_s`` (a pty hands written bytes to its
    other end asynchronously: they may not be readable at once), then check none follows."""
    out = []
    for _ in range(n):
        m = b.recv(timeout=timeout_s)
        assert m is not None, f"frame {len(out)} of {n} not received"
        out.append(m)
    assert b.recv(timeout=0) is None
    return out


def _key(m: can.Message) -> tuple[int, bool, bool, int, bytes]:
    return (m.arbitration_id, m.is_extended_id, m.is_remote_frame, m.dlc, bytes(m.data))


FRAMES = [
    can.Message(arbitration_id=0x123, data=bytes([1, 2, 3]), is_extended_id=False),
    can.Message(arbitration_id=0x7FF, data=bytes(range(8)), is_extended_id=False),
    can.Message(arbitration_id=0x000, data=b"", is_extended_id=False),
    can.Message(arbitration_id=0x1ABCDEF0, data=bytes([0xFF] * 8), is_extended_id=True),
    can.Message(arbitration_id=0x60A, is_remote_frame=True, dlc=4, is_extended_id=False),
    can.Message(arbitration_id=0x18FF0001, is_remote_frame=True, dlc=0, is_extended_id=True),
]


def test_open_sends_close_bitrate_open_and_shutdown_closes(adapter: Adapter) -> None:
    b = SlcanBus(adapter.path, bitrate=500000, sleep_after_open=0)
    assert adapter.read_all() == b"C\rS6\rO\r"
    b.shutdown()
    b.shutdown()  # twice is fine
    assert adapter.read_all() == b"C\r"


def test_listen_only_opens_with_L_and_btr_is_sent_raw(adapter: Adapter) -> None:
    b = SlcanBus(adapter.path, btr="031C", listen_only=True, sleep_after_open=0)
    assert adapter.read_all() == b"C\rs031C\rL\r"
    b.shutdown()


def test_bad_bitrate_and_missing_port_are_refused(adapter: Adapter, tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError, match="bitrate 333333"):
        SlcanBus(adapter.path, bitrate=333333, sleep_after_open=0)
    with pytest.raises(can.CanInitializationError, match="cannot open"):
        SlcanBus(str(tmp_path) + "/no-such-tty", bitrate=500000, sleep_after_open=0)


def test_every_frame_kind_is_received(adapter: Adapter, bus: SlcanBus) -> None:
    adapter.write(b"".join(encode_frame(m) for m in FRAMES))
    got = _take(bus, len(FRAMES))
    assert [_key(m) for m in got] == [_key(m) for m in FRAMES]
    assert all(m.timestamp > 0 for m in got)


def test_replies_between_frames_are_skipped_not_an_end_of_drain(adapter: Adapter, bus: SlcanBus) -> None:
    """python-can's slcan returns None on a ``z`` ack, ending a drain early; this bus goes on."""
    stream = (b"\r" + encode_frame(FRAMES[0]) + b"z\r" + b"Z\r" + b"\a" + encode_frame(FRAMES[1])
              + b"V1013\r" + b"NA123\r" + b"F00\r" + encode_frame(FRAMES[3]))
    adapter.write(stream)
    assert [_key(m) for m in _take(bus, 3)] == [_key(FRAMES[i]) for i in (0, 1, 3)]
    assert bus.replies == 7 and bus.bad_lines == 0


def test_a_line_split_across_reads_is_joined(adapter: Adapter, bus: SlcanBus) -> None:
    line = encode_frame(FRAMES[1])
    adapter.write(line[:7])
    assert bus.recv(timeout=0.05) is None
    adapter.write(line[7:])
    m = bus.recv(timeout=5.0)
    assert m is not None and _key(m) == _key(FRAMES[1])


def test_garbage_is_counted_and_dropped(adapter: Adapter, bus: SlcanBus) -> None:
    adapter.write(b"x123\r" + b"t12G1AA\r" + b"t1239" + b"00" * 9 + b"\r" + encode_frame(FRAMES[0]))
    assert [_key(m) for m in _take(bus, 1)] == [_key(FRAMES[0])]
    assert bus.bad_lines == 3
    adapter.write(b"t" + b"1" * 200)  # no line end in sight
    assert bus.recv(timeout=0.05) is None
    adapter.write(b"\r" + encode_frame(FRAMES[2]))
    assert [_key(m) for m in _take(bus, 1)] == [_key(FRAMES[2])]
    assert bus.bad_lines >= 4


def test_adapter_timestamps_are_ignored(adapter: Adapter, bus: SlcanBus) -> None:
    adapter.write(b"t1232ABCD1F2E\r")  # Z1 mode: 4 hex digits of ms after the data
    m = bus.recv(timeout=5.0)
    assert m is not None and _key(m) == (0x123, False, False, 2, b"\xab\xcd")


def test_recv_with_a_timeout_and_nothing_there_returns_none(bus: SlcanBus) -> None:
    assert bus.recv(timeout=0.01) is None
    assert bus.recv(timeout=0) is None


def test_sent_bytes_equal_python_cans_slcan(adapter: Adapter, bus: SlcanBus) -> None:
    """python-can's ``slcan`` is the oracle for every line sent."""
    other = Adapter()
    try:
        ref = can.Bus(interface="slcan", channel=other.path, bitrate=500000, sleep_after_open=0)
        other.read_all()
        for m in FRAMES:
            bus.send(m)
            ref.send(m)
            assert adapter.read_all() == other.read_all()
        ref.shutdown()
    finally:
        other.close()


def test_parsed_frames_equal_python_cans_slcan_on_random_streams(adapter: Adapter, bus: SlcanBus) -> None:
    rng = random.Random(7)
    other = Adapter()
    try:
        ref = can.Bus(interface="slcan", channel=other.path, bitrate=500000, sleep_after_open=0)
        other.read_all()
        for _ in range(20):
            frames = []
            for _ in range(rng.randint(1, 12)):
                ext, remote, dlc = rng.random() < 0.5, rng.random() < 0.2, rng.randint(0, 8)
                frames.append(can.Message(arbitration_id=rng.getrandbits(29 if ext else 11), is_extended_id=ext,
                                          is_remote_frame=remote, dlc=dlc,
                                          data=b"" if remote else bytes(rng.getrandbits(8) for _ in range(dlc))))
            stream = b"".join(encode_frame(m) for m in frames)
            adapter.write(stream)
            other.write(stream)
            mine = _take(bus, len(frames))
            theirs = _take(ref, len(frames))
            assert [_key(m) for m in mine] == [_key(m) for m in theirs] == [_key(m) for m in frames]
        ref.shutdown()
    finally:
        other.close()


def test_a_vanished_adapter_is_an_operation_error(adapter: Adapter, bus: SlcanBus) -> None:
    adapter.close()
    with pytest.raises(can.CanOperationError, match="read failed"):
        bus.recv(timeout=0)


def test_fd_and_error_frames_are_refused(bus: SlcanBus) -> None:
    with pytest.raises(ValueError):
        bus.send(can.Message(arbitration_id=1, is_fd=True, data=bytes(12)))
    with pytest.raises(ValueError):
        bus.send(can.Message(arbitration_id=1, is_error_frame=True))


def test_registered_as_python_can_interface_and_opened_by_the_rig_seam(adapter: Adapter) -> None:
    b = can.Bus(interface="qiki_slcan", channel=adapter.path, bitrate=500000, sleep_after_open=0)
    assert isinstance(b, SlcanBus)
    b.shutdown()
    b2 = open_can_bus("qiki_slcan", adapter.path, 500000, sleep_after_open=0, timeout=0)
    assert isinstance(b2, SlcanBus)
    adapter.read_all()
    adapter.write(encode_frame(FRAMES[0]))
    m = b2.recv(timeout=5.0)
    assert m is not None and _key(m) == _key(FRAMES[0])
    b2.shutdown()


def test_a_poll_and_a_send_are_one_system_call_each(adapter: Adapter, bus: SlcanBus,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """VMIN = 1 on the port (hal.serial.link.empty_read_raises): an empty read is EAGAIN, not
    0 bytes, so no ``select`` tells it from a hang-up; a send that fits is one ``os.write``."""
    import termios

    assert termios.tcgetattr(bus.fileno())[6][termios.VMIN] == 1
    monkeypatch.setattr(select, "select", lambda *a: pytest.fail("select on a poll"))
    monkeypatch.setattr(bus._port, "write", lambda *a: pytest.fail("pyserial write on a send"))
    assert bus.recv(timeout=0) is None
    bus.send(FRAMES[1])
    monkeypatch.undo()
    assert adapter.read_all() == encode_frame(FRAMES[1])


def test_a_drain_without_filters_equals_busabc_recv_and_filters_still_apply(adapter: Adapter,
                                                                           bus: SlcanBus) -> None:
    """``recv(timeout=0)`` takes frames straight from the buffer only without filters."""
    adapter.write(b"".join(encode_frame(m) for m in FRAMES))
    first = bus.recv(timeout=5.0)  # BusABC.recv: waits for the kernel to deliver
    assert first is not None
    rest = []
    deadline = time.monotonic() + 5.0
    while len(rest) < len(FRAMES) - 1 and time.monotonic() < deadline:
        m = bus.recv(timeout=0)  # the fast path
        if m is not None:
            rest.append(m)
    assert [_key(m) for m in [first, *rest]] == [_key(m) for m in FRAMES]
    assert bus.recv(timeout=0) is None
    bus.set_filters([{"can_id": 0x7FF, "can_mask": 0x7FF, "extended": False}])
    adapter.write(b"".join(encode_frame(m) for m in FRAMES))
    assert [_key(m) for m in _take(bus, 1)] == [_key(FRAMES[1])]
