"""Contract of the SerialLink port, run against every backend.

Backends and their peers:
  pipe    PipeLink.pair                       (lockstep, in-process)
  pty     PySerialLink(slave path) <-> FdLink (open_pty_pair master, raw mode)
  socket  PySerialLink("socket://127.0.0.1:<ephemeral>") <-> FdLink(accepted socket)

Real ports deliver bytes asynchronously (the kernel moves pty data on a work queue), so the
helpers below wait for *arrival* with a finite deadline; no test asserts a duration.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from hal.errors import BusConfigError, BusError
from hal.serial.link import FdLink, PipeLink, PySerialLink, SerialLink, empty_read_raises, open_pty_pair

ARRIVAL_DEADLINE_S = 5.0  # generous bound on kernel delivery; never asserted as a speed


def _read_exact(link, n: int, max_bytes: int = 4096) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    while len(got) < n and time.monotonic() < deadline:
        chunk = link.read(min(max_bytes, n - len(got)))
        if chunk:
            got += chunk
        else:
            time.sleep(0.0005)  # waiting for the kernel to deliver, not timing anything
    return bytes(got)


def _write_all(link, data: bytes) -> None:
    view = memoryview(data)
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    while view and time.monotonic() < deadline:
        n = link.write(bytes(view[:1024]))
        view = view[n:]
        if n == 0:
            time.sleep(0.0005)
    assert not view, "peer never accepted the data"


def _make_pipe():
    a, b = PipeLink.pair("contract")
    return a, b, []


def _make_pty(**link_kw):
    master, slave_path = open_pty_pair("contract")
    host = PySerialLink(slave_path, 921600, **link_kw)
    return host, master, [master]


def _make_socket(**link_kw):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(ARRIVAL_DEADLINE_S)
    try:
        port = server.getsockname()[1]
        host = PySerialLink(f"socket://127.0.0.1:{port}", 921600, **link_kw)
        conn, _ = server.accept()
    finally:
        server.close()
    conn.settimeout(0)
    peer = FdLink(os.dup(conn.fileno()), name="socket-peer")
    conn.close()
    return host, peer, [peer]


BACKENDS = {"pipe": _make_pipe, "pty": _make_pty, "socket": _make_socket}


@pytest.fixture(params=sorted(BACKENDS))
def ends(request):
    a, b, extra = BACKENDS[request.param]()
    yield request.param, a, b
    for link in (a, b, *extra):
        link.close()


def test_both_ends_satisfy_the_port(ends):
    _, a, b = ends
    for link in (a, b):
        assert isinstance(link, SerialLink)
        assert isinstance(link.name, str) and link.name
        assert link.is_open


def test_read_when_empty_returns_empty_bytes(ends):
    _, a, b = ends
    assert a.read() == b""
    assert b.read(10) == b""


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_every_byte_value_passes_untouched(ends, direction):
    _, a, b = ends
    src, dst = (a, b) if direction == "a->b" else (b, a)
    data = bytes(range(256)) * 4  # 0x00, 0x0D, 0x11/0x13 (XON/XOFF), 0x03 ... all of them
    _write_all(src, data)
    assert _read_exact(dst, len(data)) == data
    assert dst.read() == b""


def test_read_respects_max_bytes(ends):
    _, a, b = ends
    _write_all(a, b"0123456789")
    first = b""
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    while not first and time.monotonic() < deadline:
        first = b.read(3)
    assert 1 <= len(first) <= 3
    rest = _read_exact(b, 10 - len(first))
    assert first + rest == b"0123456789"


def test_write_returns_count(ends):
    _, a, b = ends
    assert a.write(b"hello") == 5
    assert _read_exact(b, 5) == b"hello"


def test_close_is_idempotent_and_later_use_raises(ends):
    _, a, b = ends
    a.close()
    a.close()
    assert not a.is_open
    with pytest.raises(BusError, match="after close"):
        a.read()
    with pytest.raises(BusError):
        a.write(b"x")


def test_peer_disappearing_raises_once_then_quiet(ends):
    kind, a, b = ends
    if kind == "pipe":
        a.simulate_unplug()
    else:
        b.close()  # pty master / socket peer goes away
    # Writes to a vanished pty/socket may still be absorbed by the kernel once; reads see it.
    with pytest.raises(BusError) as info:
        deadline = time.monotonic() + ARRIVAL_DEADLINE_S
        while time.monotonic() < deadline:
            a.read()
            time.sleep(0.0005)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is not None or kind == "pipe"
    assert not a.is_open
    assert a.read() == b""  # reported once; afterwards quiet
    assert a.write(b"x") == 0


# ------------------------------------------------------------------ backend specifics


def test_pipe_overflow_is_bounded_and_counted():
    a, b = PipeLink.pair("small", capacity_bytes=100)
    assert a.write(b"x" * 150) == 150  # the line was driven; the receiver overran
    assert b.pending() == 100
    assert b.rx_overflow_bytes == 50
    assert b.read(1000) == b"x" * 100


def test_pipe_reopen_after_replug():
    a, b = PipeLink.pair("plug")
    a.simulate_unplug()
    with pytest.raises(BusError):
        a.write(b"x")
    with pytest.raises(BusError):
        a.reopen()
    a.simulate_replug()
    a.reopen()
    assert a.is_open
    b.write(b"ok")
    assert a.read() == b"ok"


def test_pipe_write_to_closed_peer_is_lost_not_raised():
    a, b = PipeLink.pair("gone")
    b.close()
    assert a.write(b"abc") == 3


def test_pyserial_bad_url_is_config_error():
    with pytest.raises(BusConfigError, match="nosuch://x"):
        PySerialLink("nosuch://x", 9600)


def test_pyserial_absent_device_is_bus_error_naming_url():
    with pytest.raises(BusError, match="/dev/qiki-no-such-tty") as info:
        PySerialLink("/dev/qiki-no-such-tty", 921600)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is not None


def test_pyserial_rejects_non_positive_write_timeout():
    with pytest.raises(BusConfigError):
        PySerialLink("loop://", 9600, write_timeout_s=0)


def test_pyserial_reopen_on_pty():
    master, slave_path = open_pty_pair("reopen")
    try:
        host = PySerialLink(slave_path, 921600)
        host.reopen()
        _write_all(master, b"again")
        assert _read_exact(host, 5) == b"again"
        host.close()
        with pytest.raises(BusError):
            host.reopen()
    finally:
        master.close()


def test_open_pty_pair_names_the_slave():
    master, slave_path = open_pty_pair("name")
    try:
        assert slave_path.startswith("/dev/")
        assert slave_path in master.name
    finally:
        master.close()



@pytest.mark.parametrize("make", [_make_pty, _make_socket], ids=["pty", "socket"])
def test_pyserial_write_never_waits_on_a_full_port_and_keeps_order(make):
    # The peer reads nothing, so the OS buffer fills. With a 60 s write timeout, a write
    # that waited for room would hang past the test timeout; instead every write returns
    # at once: queued (len) while the bounded queue has room, refused whole (0) after.
    host, peer, extra = make(write_timeout_s=60.0, tx_buffer_bytes=3000)
    try:
        accepted = bytearray()
        refused = 0
        chunk_no = 0
        while refused < 3 and chunk_no < 100_000:
            chunk = bytes([chunk_no % 251]) * 1000
            n = host.write(chunk)
            assert n in (0, len(chunk))
            if n:
                accepted += chunk
            else:
                refused += 1
            chunk_no += 1
        assert refused == 3
        assert host.tx_overflows == 3 and host.tx_dropped_bytes == 3000
        assert 0 < host.tx_queued_bytes <= 3000
        # the peer drains; reads on the host flush its queue: every accepted byte arrives, in order
        got = bytearray()
        deadline = time.monotonic() + ARRIVAL_DEADLINE_S
        while len(got) < len(accepted) and time.monotonic() < deadline:
            got += peer.read(65536)
            host.read(1)
        assert bytes(got) == bytes(accepted)
        assert host.tx_queued_bytes == 0
        assert host.bytes_tx == len(accepted)
    finally:
        for link in (host, peer, *extra):
            link.close()


def _fill_until_queued(host) -> int:
    """Write 1000-byte chunks into a port nobody reads until one is refused; return the
    bytes accepted."""
    accepted = 0
    for _ in range(100_000):
        n = host.write(b"q" * 1000)
        if not n:
            return accepted
        accepted += n
    raise AssertionError("the port never filled")


def test_pyserial_queued_bytes_lost_to_a_reopen_or_close_are_counted():
    master, slave_path = open_pty_pair("discard")
    host = PySerialLink(slave_path, 921600, tx_buffer_bytes=3000)
    try:
        _fill_until_queued(host)
        queued, dropped = host.tx_queued_bytes, host.tx_dropped_bytes
        assert queued > 0 and dropped == 1000  # the refused chunk
        host.reopen()  # bytes queued for the old port will never be sent
        assert host.tx_queued_bytes == 0
        assert host.tx_dropped_bytes == dropped + queued
    finally:
        host.close()
        master.close()


def test_pyserial_without_a_descriptor_writes_through_and_queues_nothing():
    host = PySerialLink("loop://", 9600)
    try:
        assert host.write(b"abc") == 3
        assert host.tx_queued_bytes == 0
        assert _read_exact(host, 3) == b"abc"
        assert host.write(memoryview(b"\x01\x02\x03\x04").cast("H")) == 4  # counted in bytes
        assert _read_exact(host, 4) == b"\x01\x02\x03\x04"
    finally:
        host.close()


@pytest.mark.parametrize("make", [_make_pty, _make_socket], ids=["pty", "socket"])
def test_pyserial_reads_with_one_os_read_not_pyserials_select(make, monkeypatch):
    """A port with a descriptor is read with os.read alone (empty_read_raises: VMIN = 1)."""
    host, peer, extra = make()
    try:
        assert empty_read_raises(host._fd)
        monkeypatch.setattr(host._ser, "read", lambda *a: pytest.fail("pyserial's read used"))
        assert host.read() == b""
        _write_all(peer, b"abc")
        assert _read_exact(host, 3) == b"abc"
    finally:
        for link in (host, peer, *extra):
            link.close()


def test_empty_read_raises_refuses_a_plain_file(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert not empty_read_raises(fd)
    finally:
        os.close(fd)
