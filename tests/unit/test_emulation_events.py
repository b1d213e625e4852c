"""The pieces of the event-driven simulation (issue 16, part 1): batch world steps, valve segments, next-due times."""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path

import can
import pytest

from firmware_bridge.emulation.qiki_mcu import McuEmulator
from firmware_bridge.emulation.valve_board import ValveBoardEmulator
from firmware_bridge.emulation.world import ThrusterGeometry, World
from hal.can.codec import DbcCodec
from hal.can.lockstep import LockstepBus
from hal.serial.link import PipeLink

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"
GEO = [ThrusterGeometry(0.2, 0.2, -1, 0, 1.0), ThrusterGeometry(0.2, -0.2, 0, 1, 1.0),
       ThrusterGeometry(-0.2, -0.2, 0, 1, 2.0)]


def _state(w: World) -> str:
    return repr((w.x_m, w.y_m, w.yaw_rad, w.vx_mps, w.vy_mps, w.yaw_rate_radps, w.ax_body_mps2,
                 w.ay_body_mps2, w.time_s, tuple(w.impulse_ns)))


@pytest.mark.parametrize("drag", [0.0, 0.4])
def test_world_run_is_bit_for_bit_n_steps(drag):
    rng = random.Random(7)
    for _ in range(60):
        yaw = rng.choice([0.0, -0.0, rng.uniform(-math.pi, math.pi), math.pi])
        a = World(15.0, 0.35, GEO, (0.1, -0.2, yaw), drag)
        b = World(15.0, 0.35, GEO, (0.1, -0.2, yaw), drag)
        for _ in range(30):
            fr = [rng.choice([0.0, 1.0, rng.random()]) for _ in GEO]
            if rng.random() < 0.5:
                fr = [0.0] * len(GEO)
            n = rng.randint(0, 40)
            for _ in range(n):
                a.step(0.001, fr)
            b.run(n, 0.001, fr)
            assert _state(a) == _state(b)


def test_world_run_keeps_signed_zero_rates():
    a = World(15.0, 0.35, GEO)
    b = World(15.0, 0.35, GEO)
    for w in (a, b):
        w.vx_mps, w.vy_mps, w.yaw_rate_radps = 0.3, -0.0, -0.0
    for _ in range(25):
        a.step(0.001, [0.0] * 3)
    b.run(25, 0.001, [0.0] * 3)
    assert _state(a) == _state(b)


@pytest.fixture
def board():
    bus = LockstepBus(f"qiki-ev-{uuid.uuid4().hex[:8]}")
    emu = ValveBoardEmulator(bus, DbcCodec([QIKI_DBC]), n_valves=4)
    yield emu
    bus.shutdown()


def test_open_segment_agrees_with_open_fractions(board):
    rng = random.Random(3)
    for _ in range(200):
        ivs = []
        for _v in range(board.n_valves):
            t, lst = 0.0, []
            for _k in range(rng.randint(0, 5)):
                t += rng.uniform(0.0, 0.03)
                s = t
                t += rng.uniform(0.0005, 0.03)
                lst.append([s, t])
                t += 0.0001
            ivs.append(lst)
        board._intervals = ivs
        t0 = rng.choice([0.0, rng.uniform(0.0, 0.2)] + [iv[0] for v in ivs for iv in v[:1]])
        fr, end = board.open_segment(t0)
        if end == math.inf:
            end = t0 + 1.0
        a = rng.uniform(t0, end)
        b = rng.uniform(a, end)
        for lo, hi in ((t0, end), (a, b), (t0, b)):
            if hi > lo:
                assert board.open_fractions(lo, hi) == fr
        # just past the segment's end, something changes
        if end < t0 + 1.0:
            assert board.open_fractions(t0, end + 1e-4) != fr or board.open_segment(end)[0] != fr


def test_input_pending_only_where_the_link_can_tell(board):
    assert board.input_pending is False
    other = LockstepBus(board._bus.channel_id)
    try:
        other.send(can.Message(arbitration_id=board._cmd_id, data=bytes(8), is_extended_id=False))
        other.send(can.Message(arbitration_id=0x7AB, data=b"", is_extended_id=False))  # not its ID
        assert board.input_pending is True and board._bus.pending == 1
    finally:
        other.shutdown()
    ch = f"qiki-ev-{uuid.uuid4().hex[:8]}"
    vbus = can.Bus(interface="virtual", channel=ch)
    host = can.Bus(interface="virtual", channel=ch)
    try:
        emu = ValveBoardEmulator(vbus, DbcCodec([QIKI_DBC]))
        assert emu.input_pending is False
        host.send(can.Message(arbitration_id=0x7AB, data=b"", is_extended_id=False))
        assert emu.input_pending is True  # any frame: a virtual bus does not route
    finally:
        vbus.shutdown()
        host.shutdown()
    from hal.can.faulty import FaultyBus

    fbus = FaultyBus(can.Bus(interface="virtual", channel=ch))
    try:
        assert ValveBoardEmulator(fbus, DbcCodec([QIKI_DBC])).input_pending is None
    finally:
        fbus.shutdown()


class _Still:
    x_m = y_m = yaw_rad = vx_mps = vy_mps = yaw_rate_radps = ax_body_mps2 = ay_body_mps2 = 0.0


def test_mcu_sends_nothing_before_its_next_due_time():
    """On the 1 ms physics grid, a step before ``next_due_s`` sends nothing; at it, the board acts."""
    host, dev = PipeLink.pair("mcu")
    emu = McuEmulator(dev, _Still())
    assert emu.next_due_s == -math.inf and emu.input_pending is False
    acted = 0
    for k in range(2000):
        t = k * 1_000_000 * 1e-9
        due = emu.next_due_s
        emu.step(t)
        sent = host.read(1 << 16)
        if t < due:
            assert sent == b"", t
        elif sent:
            acted += 1
    assert acted >= 200  # IMU and POSE at 100 Hz, status at 10 Hz
    host.write(b"\x00")
    assert emu.input_pending is True
