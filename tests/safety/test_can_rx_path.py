"""SAFETY.md B07 (receive path heartbeat, reconnect with backoff) and B08 (a flood never starves our IDs)."""

from __future__ import annotations

import uuid

import can
import pytest

from hal.can.faulty import FaultyBus
from hal.can.port import CanPort


@pytest.fixture
def pair():
    ch = f"qiki-rx-{uuid.uuid4().hex[:8]}"
    a = FaultyBus(can.Bus(interface="virtual", channel=ch))
    b = can.Bus(interface="virtual", channel=ch)
    yield a, b
    a.shutdown()
    b.shutdown()


def _frame(arb: int) -> can.Message:
    return can.Message(arbitration_id=arb, data=bytes(8), is_extended_id=False)


def test_b07_rx_failure_is_a_fault_on_the_same_poll_then_backoff_then_recovery(pair):
    fb, other = pair
    port = CanPort(fb, rx_backoff_s=0.1, rx_backoff_max_s=0.4)
    port.poll(0.0)
    assert port.rx_fault is None and port.rx_health()["heartbeat_s"] == 0.0
    fb.unplugged = True
    port.poll(0.01)
    assert port.rx_fault is not None and "unplugged" in port.rx_fault  # within the tick
    tries = []
    for k in range(2, 200):  # 2 s of ticks: attempts at 0.11, 0.31, 0.71, 1.11, 1.51, 1.91 (capped at 0.4 s)
        before = port.rx_health()["reopen_attempts"]
        port.poll(k * 0.01)
        if port.rx_health()["reopen_attempts"] > before:
            tries.append(round(k * 0.01, 2))
    assert tries == [0.11, 0.31, 0.71, 1.11, 1.51, 1.91]
    assert port.rx_fault is not None
    fb.unplugged = False
    for k in range(200, 260):
        port.poll(k * 0.01)
    assert port.rx_fault is None
    h = port.rx_health()
    assert h["alive"] and h["reopens"] == 1 and port.stats()["rx_reopens"] == 1


def test_b07_reopen_opens_a_fresh_bus(pair):
    fb, other = pair
    fresh = []

    def reopen() -> can.BusABC:
        if len(fresh) < 1:
            fresh.append(None)
            raise can.CanInitializationError("no such device")
        nb = can.Bus(interface="virtual", channel=f"qiki-rx-new-{uuid.uuid4().hex[:8]}")
        fresh.append(nb)
        return nb

    port = CanPort(fb, reopen=reopen, rx_backoff_s=0.05, rx_backoff_max_s=0.05)
    fb.rx_dead = True
    port.poll(0.0)
    assert port.rx_fault is not None
    for k in range(1, 20):
        port.poll(k * 0.01)
    assert port.rx_fault is None and port.bus is fresh[1]
    port.bus.shutdown()


def test_b08_flood_of_foreign_ids_never_starves_ours(pair):
    fb, other = pair
    port = CanPort(fb, max_rx_frames_per_tick=256)
    ours = []
    port.register(0x181, lambda m, t: ours.append(t))
    for tick in range(20):
        for _ in range(300):  # 300 frames per tick from a babbler...
            other.send(_frame(0x000))
        other.send(_frame(0x181))  # ...queued before our status frame
        port.poll(tick * 0.01)
    assert len(ours) == 20  # every one of ours dispatched on its own tick
    s = port.stats()
    assert s["unknown_id"] == 6000 and s["dropped"] == 0
