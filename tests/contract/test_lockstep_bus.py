"""Contract of a CAN backend, run against hal.can.lockstep.LockstepBus and python-can's virtual bus.

In the style of python-can's back-to-back tests (``test/back2back_test.py``): two or
more nodes on one channel; send/recv, timeouts, filters, several receivers, shutdown,
bus state. What only the lockstep bus promises (one shared snapshot per frame, routing
by ID, no copy per receiver) is tested at the end.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import can
import pytest

from hal.can.lockstep import LockstepBus, snapshot

Opener = Callable[..., can.BusABC]


def _virtual(channel: str, **kw: object) -> can.BusABC:
    return can.Bus(interface="virtual", channel=channel, **kw)


def _lockstep(channel: str, **kw: object) -> can.BusABC:
    return LockstepBus(channel, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["lockstep", "virtual"])
def open_node(request: pytest.FixtureRequest) -> Iterator[Opener]:
    channel = f"qiki-contract-{uuid.uuid4().hex[:8]}"
    opened: list[can.BusABC] = []
    factory = _lockstep if request.param == "lockstep" else _virtual

    def open_(**kw: object) -> can.BusABC:
        bus = factory(channel, **kw)
        opened.append(bus)
        return bus

    yield open_
    for b in opened:
        b.shutdown()


def _msg(arb_id: int = 0x123, data: bytes = b"\x01\x02\x03", extended: bool = False) -> can.Message:
    return can.Message(arbitration_id=arb_id, data=data, is_extended_id=extended)


def _same(a: can.Message, b: can.Message) -> bool:
    return (a.arbitration_id == b.arbitration_id and a.is_extended_id == b.is_extended_id
            and bytes(a.data) == bytes(b.data) and a.dlc == b.dlc and a.is_remote_frame == b.is_remote_frame
            and a.is_error_frame == b.is_error_frame and a.is_fd == b.is_fd)


def test_send_recv_both_directions(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    m1, m2 = _msg(0x10, b"\xaa"), _msg(0x1ABCDE, b"\x01" * 8, extended=True)
    a.send(m1)
    b.send(m2)
    r1 = b.recv(timeout=1.0)
    r2 = a.recv(timeout=1.0)
    assert r1 is not None and _same(r1, m1) and r1.is_rx
    assert r2 is not None and _same(r2, m2)


def test_order_is_kept(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    for i in range(50):
        a.send(_msg(0x100 + i, bytes([i])))
    got = [b.recv(timeout=1.0) for _ in range(50)]
    assert [m.arbitration_id for m in got if m is not None] == [0x100 + i for i in range(50)]


def test_remote_error_and_empty_frames(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    rtr = can.Message(arbitration_id=0x7FF, is_remote_frame=True, dlc=4, is_extended_id=False)
    err = can.Message(is_error_frame=True)
    empty = can.Message(arbitration_id=0x1, data=b"", is_extended_id=False)
    for m in (rtr, err, empty):
        a.send(m)
    for m in (rtr, err, empty):
        r = b.recv(timeout=1.0)
        assert r is not None and _same(r, m)


def test_recv_timeouts(open_node: Opener) -> None:
    a = open_node()
    t0 = time.monotonic()
    assert a.recv(timeout=0.0) is None
    assert a.recv(timeout=0) is None
    assert a.recv(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.045


def test_recv_waits_for_a_frame_from_another_thread(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    threading.Timer(0.05, lambda: a.send(_msg(0x42))).start()
    r = b.recv(timeout=2.0)
    assert r is not None and r.arbitration_id == 0x42


def test_own_messages_not_received_by_default(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    a.send(_msg())
    assert a.recv(timeout=0.0) is None
    assert b.recv(timeout=1.0) is not None


def test_receive_own_messages(open_node: Opener) -> None:
    a = open_node(receive_own_messages=True)
    b = open_node()
    a.send(_msg(0x55))
    own = a.recv(timeout=1.0)
    other = b.recv(timeout=1.0)
    assert own is not None and own.arbitration_id == 0x55 and not own.is_rx
    assert other is not None and other.is_rx


def test_several_receivers_each_get_every_frame(open_node: Opener) -> None:
    a = open_node()
    rx = [open_node() for _ in range(3)]
    for i in range(5):
        a.send(_msg(0x200 + i))
    for node in rx:
        ids = [node.recv(timeout=1.0) for _ in range(5)]
        assert [m.arbitration_id for m in ids if m is not None] == [0x200 + i for i in range(5)]
        assert node.recv(timeout=0.0) is None


def test_filters_at_open(open_node: Opener) -> None:
    a = open_node()
    b = open_node(can_filters=[{"can_id": 0x120, "can_mask": 0x7F0, "extended": False}])
    for arb, ext in ((0x121, False), (0x131, False), (0x12F, False), (0x121, True)):
        a.send(_msg(arb, extended=ext))
    got = []
    while (m := b.recv(timeout=0.05)) is not None:
        got.append((m.arbitration_id, m.is_extended_id))
    assert got == [(0x121, False), (0x12F, False)]


def test_filters_without_extended_key_and_set_filters(open_node: Opener) -> None:
    a = open_node()
    b = open_node()
    b.set_filters([{"can_id": 0x300, "can_mask": 0x7FF}])
    a.send(_msg(0x300))
    a.send(_msg(0x300, extended=True))
    a.send(_msg(0x301))
    got = []
    while (m := b.recv(timeout=0.05)) is not None:
        got.append((m.arbitration_id, m.is_extended_id))
    assert got == [(0x300, False), (0x300, True)]
    b.set_filters(None)  # back to every frame
    a.send(_msg(0x301))
    r = b.recv(timeout=1.0)
    assert r is not None and r.arbitration_id == 0x301


def test_bus_state_is_active(open_node: Opener) -> None:
    a = open_node()
    assert a.state == can.BusState.ACTIVE


def test_shutdown(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    b.shutdown()
    b.shutdown()  # twice is fine
    a.send(_msg())  # nobody listens: no error
    with pytest.raises(can.CanOperationError):
        b.send(_msg())
    with pytest.raises(can.CanOperationError):
        b.recv(timeout=0.0)
    c = open_node()  # a node opened later hears later frames only
    a.send(_msg(0x77))
    r = c.recv(timeout=1.0)
    assert r is not None and r.arbitration_id == 0x77


def test_context_manager_and_iteration(open_node: Opener) -> None:
    a = open_node()
    with open_node() as b:
        a.send(_msg(0x11))
        for m in b:
            assert m.arbitration_id == 0x11
            break


def test_sender_may_reuse_its_message(open_node: Opener) -> None:
    a, b = open_node(), open_node()
    m = _msg(0x10, b"\x01")
    a.send(m)
    m.data[0] = 0xFF
    m.arbitration_id = 0x11
    r = b.recv(timeout=1.0)
    assert r is not None and r.arbitration_id == 0x10 and bytes(r.data) == b"\x01"


# ------------------------------------------------------------------ lockstep only

def _chan() -> str:
    return f"qiki-lockstep-{uuid.uuid4().hex[:8]}"


def test_lockstep_shares_one_snapshot_among_receivers() -> None:
    ch = _chan()
    a, b, c = LockstepBus(ch), LockstepBus(ch), LockstepBus(ch)
    try:
        m = _msg(0x1)
        a.send(m)
        rb, rc = b.recv(0), c.recv(0)
        assert rb is rc and rb is not m
    finally:
        for n in (a, b, c):
            n.shutdown()


def test_lockstep_routes_by_id_to_subscribers_only() -> None:
    ch = _chan()
    host = LockstepBus(ch)
    board = LockstepBus(ch, can_filters=[{"can_id": 0x100, "can_mask": 0x7FF, "extended": False}])
    radar = LockstepBus(ch, can_filters=[{"can_id": 0x300, "can_mask": 0x7FE, "extended": False}])
    try:
        for arb in (0x100, 0x300, 0x301, 0x200):
            host.send(_msg(arb))
        assert board.pending == 1 and radar.pending == 2
        assert board.frames_received == 1 and radar.frames_received == 2
        radar.set_filters([{"can_id": 0x200, "can_mask": 0x7FF}])  # the cache is dropped
        host.send(_msg(0x200))
        host.send(_msg(0x300))
        assert radar.pending == 3 and board.pending == 1
    finally:
        for n in (host, board, radar):
            n.shutdown()


def test_lockstep_empty_recv_raises_nothing_inside() -> None:
    bus = LockstepBus(_chan())
    try:
        import sys
        seen: list[str] = []

        def tracer(frame, event, arg):  # noqa: ANN001, ANN202 - sys.setprofile's signature
            if event in ("exception", "c_exception"):
                seen.append(event)
            return None

        sys.settrace(tracer)
        try:
            for _ in range(10):
                assert bus.recv(timeout=0.0) is None
        finally:
            sys.settrace(None)
        assert seen == []
    finally:
        bus.shutdown()


def test_snapshot_copies_every_slot() -> None:
    m = can.Message(timestamp=1.5, arbitration_id=0x1234, is_extended_id=True, data=b"\x01\x02",
                    channel="x", is_fd=True, bitrate_switch=True, error_state_indicator=True, is_rx=False)
    s = snapshot(m)
    assert s.equals(m, timestamp_delta=None, check_channel=True, check_direction=True)
    assert s.data is not m.data and isinstance(s.data, bytearray)


def test_channels_are_separate_and_forgotten() -> None:
    from hal.can import lockstep

    a, b = LockstepBus(_chan()), LockstepBus(_chan())
    a.send(_msg())
    assert b.recv(0.0) is None
    name = a.channel_id
    a.shutdown()
    b.shutdown()
    assert name not in lockstep._channels
