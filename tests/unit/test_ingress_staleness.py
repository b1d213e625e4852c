"""Staleness is judged in integer nanoseconds, never on a float boundary (issue 15 part 5).

Two consecutive lost ``VB_Status`` frames (a gap of exactly 3 periods) never trip; three
do. A lockstep valve board with 1 % random frame loss for 10 minutes of simulated time
has no false trip.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import can
import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.valve_board import ValveBoardEmulator
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.can.faulty import FaultyBus
from hal.can.ingress import IngressChecker, IngressSpec, gap_exceeds, to_ns
from hal.can.port import CanPort
from hal.devices.valve_board import ValveBoardDriver

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"
TICK_S = 0.010
P_STATUS_S = 0.020


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([QIKI_DBC])


def checker(codec: DbcCodec) -> IngressChecker:
    return IngressChecker(codec, [IngressSpec(
        vb.STATUS, counter_signal="VB_Sts_Counter", checksum_signal="VB_Sts_Checksum",
        checksum_fn=vb.e2e_checksum, regular=True)])


def status(codec: DbcCodec, counter: int) -> can.Message:
    msg = codec.encode(vb.STATUS, vb.status_signals(vb.ValveBoardStatus(0, 0, 24.0, False, False, False, 35.0),
                                                    counter % 16))
    msg.data = bytearray(vb.seal(msg.arbitration_id, msg.data))
    return msg


def test_gap_comparison_is_exact_in_ns():
    assert 14 * 0.01 - 8 * 0.01 > 3 * 0.02  # the float trap this module avoids
    assert not gap_exceeds(14 * 0.01, 8 * 0.01, to_ns(3 * 0.02))
    assert gap_exceeds(0.14 + 1e-9, 0.08, to_ns(0.06))
    assert to_ns(0.1 + 0.2) == to_ns(0.3)


def run_with_losses(codec: DbcCodec, lost: set[int], n_frames: int = 40, t0_s: float = 0.01) -> list[float]:
    """Frames k = 0.. every 20 ms (those in ``lost`` are never received), checked every 10 ms.

    Returns the tick times (s) at which the stream was not fresh, after the first fresh tick.
    """
    chk = checker(codec)
    not_fresh: list[float] = []
    seen_fresh = False
    for tick in range(2 * n_frames):
        now_s = t0_s + tick * TICK_S  # float times as a loop computes them
        if tick % 2 == 0 and tick // 2 not in lost:
            chk.check(status(codec, tick // 2), now_s)
        fresh = chk.is_fresh(vb.STATUS, now_s)
        seen_fresh = seen_fresh or fresh
        if seen_fresh and not fresh:
            not_fresh.append(now_s)
    return not_fresh


LOSS_STARTS = [5, 6, 7, 10, 13, 20]


@pytest.mark.parametrize("first_lost", LOSS_STARTS)
def test_two_consecutive_lost_frames_never_trip(codec, first_lost):
    assert run_with_losses(codec, {first_lost, first_lost + 1}) == []


@pytest.mark.parametrize("first_lost", LOSS_STARTS)
def test_three_consecutive_lost_frames_trip(codec, first_lost):
    trips = run_with_losses(codec, {first_lost, first_lost + 1, first_lost + 2})
    assert trips, "three lost frames must make the stream stale"
    # stale from 3 periods + one tick after the last received frame
    last_rx_s = 0.01 + (first_lost - 1) * P_STATUS_S
    assert to_ns(trips[0]) == to_ns(last_rx_s + 3 * P_STATUS_S + TICK_S)


def test_valve_board_driver_two_lost_status_frames_stay_fresh(codec):
    drv = ValveBoardDriver(codec)
    lost = {10, 11}
    for tick in range(80):
        now_s = 0.01 + tick * TICK_S
        if tick % 2 == 0 and tick // 2 not in lost:
            drv.on_frame(status(codec, tick // 2), now_s)
        if tick >= 10:
            assert drv.status_fresh(now_s), now_s


class LossyRig:
    """Host driver + emulated board on a virtual channel; the host side loses frames at random."""

    def __init__(self, codec: DbcCodec, drop_prob: float, seed: int) -> None:
        ch = f"qiki-stale-{uuid.uuid4()}"
        self.inner = can.Bus(interface="virtual", channel=ch)
        self.host_bus = FaultyBus(self.inner, seed=seed)
        self.host_bus.rx_drop_prob = drop_prob
        self.board_bus = can.Bus(interface="virtual", channel=ch)
        self.driver = ValveBoardDriver(codec)
        self.emu = ValveBoardEmulator(self.board_bus, codec)
        self.port = CanPort(self.host_bus)
        for aid in self.driver.arbitration_ids:
            self.port.register(aid, self.driver.on_frame)
        self.clock = SimClock()

    def close(self) -> None:
        self.host_bus.shutdown()
        self.board_bus.shutdown()


@pytest.mark.slow
def test_one_percent_random_status_loss_for_ten_minutes_never_trips(codec):
    """1 % of every received frame lost (VB_Status and VB_Heartbeat), 10 min at 100 Hz: 0 false trips."""
    rig = LossyRig(codec, drop_prob=0.01, seed=15)
    try:
        rig.emu.step(0.0)
        trips = 0
        ticks_fresh = 0
        for _k in range(1, round(600.0 / TICK_S) + 1):
            rig.clock.advance(TICK_S)
            now_s = rig.clock.now_s()
            rig.port.poll(now_s)
            rig.port.send(rig.driver.command_frame([0.0] * rig.driver.n_valves), now_s)
            rig.emu.step(now_s)
            if now_s < 1.0:
                continue  # boot: the streams must first show their rhythm
            if rig.driver.status_fresh(now_s) and rig.driver.heartbeat_fresh(now_s):
                ticks_fresh += 1
            else:
                trips += 1
        st = rig.driver.checker.stream(vb.STATUS)
        # about 1 % of 30,000 status frames lost, several of them two in a row
        assert 29_000 < st.accepted < 29_900, st.accepted
        assert trips == 0, f"{trips} ticks not fresh with 1 % random loss"
        assert ticks_fresh > 59_000
    finally:
        rig.close()


def test_random_loss_injection_loses_frames_two_in_a_row_somewhere():
    """The seeded 1 % loss of the 10 min run includes consecutive losses (so the test means something)."""
    rng = random.Random(15)
    pairs = 0
    prev = False
    for _ in range(30_000 * 2):  # status and heartbeat draws interleave; enough draws either way
        lost = rng.random() < 0.01
        pairs += prev and lost
        prev = lost
    assert pairs >= 1
