"""The emulated slcan adapter never blocks on a host that stopped reading (hal/can/slcan_pty.py).

A pty towards a host that reads nothing fills up; each write then gives up after the
adapter's ``write_timeout_s``, drops the whole lines it has no room for (counted), and
finishes a line it had begun on the next write, so what the host finally reads is whole
Lawicel lines, in order.
"""

from __future__ import annotations

import os
import select

import can
import pytest

from hal.can.slcan_pty import SlcanPtyAdapter, decode_frame

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pty")


def _drain(fd: int) -> bytes:
    """Read everything the host side can read now, waiting briefly for the kernel's flip buffer."""
    out = bytearray()
    poller = select.poll()  # not select(): the descriptor may be numbered above 1023
    poller.register(fd, select.POLLIN)
    while True:
        if not poller.poll(200):
            return bytes(out)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return bytes(out)
        out.extend(chunk)


def _frame(i: int) -> can.Message:
    return can.Message(arbitration_id=i & 0x7FF, is_extended_id=False, data=i.to_bytes(8, "big"))


def test_a_host_that_reads_nothing_gets_whole_lines_in_order_and_the_rest_is_counted_dropped() -> None:
    with SlcanPtyAdapter(write_timeout_s=0.02) as adapter:
        host = os.open(adapter.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(host, b"O\r")
            assert adapter.wait_open(5.0)
            sent_ids: list[int] = []
            i = 0
            # ~24 bytes a frame: the pty holds tens of kB, so it fills well before 400 batches
            for _ in range(400):
                batch = [_frame(i + k) for k in range(64)]
                i += 64
                n = adapter.send_many(batch)
                if n < len(batch):
                    break
                sent_ids.extend(range(i - 64, i))
            else:
                pytest.fail("the pty never filled: the host side reads on its own?")
            assert adapter.write_timeouts >= 1
            assert adapter.frames_dropped_host_stalled >= 1
            stalled = adapter.frames_dropped_host_stalled
            total_sent = adapter.frames_sent
            text = _drain(host)
            # the host reads again: the begun line is finished before the next frame
            assert adapter.send(_frame(0x7FF))
            text += _drain(host)
        finally:
            os.close(host)
    lines = [ln for ln in text.split(b"\r") if ln]
    frames = [decode_frame(ln) for ln in lines]
    assert all(f is not None for f in frames), [ln for ln, f in zip(lines, frames, strict=True) if f is None][:3]
    payloads = [int.from_bytes(f.data, "big") for f in frames if f is not None]
    # every frame counted as sent reached the host whole and in order; the dropped ones did not
    assert len(payloads) == total_sent + 1
    assert payloads == sorted(payloads[:-1]) + [0x7FF]
    assert payloads[: len(sent_ids)] == sent_ids
    assert stalled + total_sent == i


def test_write_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="write_timeout_s"):
        SlcanPtyAdapter(write_timeout_s=0.0)


def test_the_adapter_serves_a_host_when_its_descriptors_are_numbered_above_1023() -> None:
    """select() cannot watch a descriptor >= 1024 (FD_SETSIZE); the adapter must still work."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"RLIMIT_NOFILE {soft} < 1200: cannot push descriptors above 1023")
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with SlcanPtyAdapter(write_timeout_s=0.5) as adapter:
            assert adapter._master >= 1024  # noqa: SLF001 - the point of the test
            host = os.open(adapter.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(host, b"O\r")
                assert adapter.wait_open(5.0)
                assert adapter.send(_frame(0x123))
                text = _drain(host)
            finally:
                os.close(host)
    finally:
        for fd in fillers:
            os.close(fd)
    frames = [decode_frame(ln) for ln in text.split(b"\r") if ln]
    assert [f.arbitration_id for f in frames if f is not None] == [0x123]
