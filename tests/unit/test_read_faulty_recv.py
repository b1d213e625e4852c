"""``FaultyBus.recv`` without python-can's ``BusABC.recv`` layer returns what that layer returned.

Issue 16 item 4 (read phase, 2026-12-07e). Two ``FaultyBus`` nodes with the same seed and
knobs, each on its own lockstep channel fed the same frames: one is read with
``recv(timeout=0)`` (the new path), the other through ``can.BusABC.recv`` (the previous
path); frames, counters and raised errors must agree call by call.
"""

from __future__ import annotations

import logging
import uuid

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.can.faulty import FaultyBus
from hal.can.lockstep import open_lockstep_bus

_frames = st.lists(st.tuples(st.sampled_from([0x100, 0x101, 0x200]), st.binary(min_size=1, max_size=8)),
                   max_size=30)
_knobs = st.fixed_dictionaries({
    "rx_drop_prob": st.sampled_from([0.0, 0.3]), "rx_corrupt_prob": st.sampled_from([0.0, 0.5]),
    "rx_dlc_error_prob": st.sampled_from([0.0, 0.2]), "fault_id": st.sampled_from([-1, 0x100]),
    "timestamp_offset_s": st.sampled_from([0.0, 1.5]), "delay_s": st.sampled_from([0.0, 0.02])})


def _pair(seed: int, clock: list[float]) -> list[tuple[FaultyBus, can.BusABC]]:
    out = []
    for _ in range(2):
        ch = f"read-faulty-{uuid.uuid4()}"
        rx = FaultyBus(open_lockstep_bus(ch), seed=seed, clock=lambda: clock[0])
        out.append((rx, open_lockstep_bus(ch)))
    return out


def _key(m: can.Message | None) -> object:
    return None if m is None else (m.arbitration_id, bytes(m.data), m.dlc, m.timestamp, m.is_extended_id)


@settings(max_examples=60, deadline=None)
@given(_frames, _knobs, st.integers(0, 3), st.booleans())
def test_recv_equals_busabc_recv(frames: list[tuple[int, bytes]], knobs: dict[str, float], seed: int,
                                 freeze: bool) -> None:
    clock = [0.0]
    (new, tx_new), (old, tx_old) = _pair(seed, clock)
    try:
        for bus in (new, old):
            for k, v in knobs.items():
                setattr(bus, k, v)
            if freeze:
                bus.frozen_ids = {0x101: None}
            bus.inject(can.Message(arbitration_id=0x7FF, data=b"\x01", is_extended_id=False))
        for i, (arb, data) in enumerate(frames):
            for tx in (tx_new, tx_old):
                tx.send(can.Message(arbitration_id=arb, data=data, is_extended_id=False, timestamp=0.01 * i))
            clock[0] += 0.01
            got_new, got_old = new.recv(timeout=0.0), can.BusABC.recv(old, 0.0)
            assert _key(got_new) == _key(got_old)
        for _ in range(len(frames) + 3):
            clock[0] += 0.01
            assert _key(new.recv(0)) == _key(can.BusABC.recv(old, 0))
        assert (new.rx_dropped, new.drop_runs) == (old.rx_dropped, old.drop_runs)
        for bus in (new, old):
            bus.unplugged = True
        with pytest.raises(can.CanOperationError):
            new.recv(timeout=0.0)
        with pytest.raises(can.CanOperationError):
            can.BusABC.recv(old, 0.0)
    finally:
        for bus, tx in ((new, tx_new), (old, tx_old)):
            bus.shutdown()
            tx.shutdown()


def test_recv_with_filters_or_a_wait_keeps_python_cans_path(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    (rx, tx), (other, other_tx) = _pair(0, clock)
    try:
        rx.set_filters([{"can_id": 0x200, "can_mask": 0x7FF}])
        tx.send(can.Message(arbitration_id=0x100, data=b"\x01", is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x200, data=b"\x02", is_extended_id=False))
        assert _key(rx.recv(timeout=0.01)) == _key(can.Message(arbitration_id=0x200, data=b"\x02", timestamp=0.0,
                                                                  is_extended_id=False))
        # a non-blocking read on a filtered bus keeps the filter (the fast path is for no filters only)
        tx.send(can.Message(arbitration_id=0x100, data=b"\x04", is_extended_id=False))
        assert rx.recv(timeout=0) is None
        rx.set_filters(None)
        tx.send(can.Message(arbitration_id=0x100, data=b"\x03", is_extended_id=False))
        with caplog.at_level(FaultyBus.RECV_LOGGING_LEVEL, logger="can.bus"):
            got = rx.recv(timeout=0)
        assert got is not None and bytes(got.data) == b"\x03"
        assert any("Received:" in r.getMessage() for r in caplog.records if r.name == "can.bus")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="can.bus"):
            assert rx.recv(timeout=0) is None
        assert not caplog.records
    finally:
        for bus in (rx, tx, other, other_tx):
            bus.shutdown()
