"""The far end's cuts of 2026-12-07e give what the code they replaced gave, bit for bit.

* ``World.run`` calls ``math.remainder`` only outside [-pi, pi] (inside it returns its argument);
* an emulated BMS/PDU refreshes, before a read, only the quantities the read covers
  (``EmulatedModbusDevice.names_read``): its replies equal those of a device that
  refreshes everything at every request; ``RegisterBank.set_many`` stores as ``set``
  one by one;
* the MCU emulator's IMU and POSE share one schedule at equal rates: the same bytes as
  two schedules;
* the valve board skips its pruning pass while nothing can have ended before its horizon:
  the same intervals, versions and frames as pruning at every step.
"""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path

import can
from hypothesis import given
from hypothesis import strategies as st

from controller.clock import SimClock
from controller.yamlio import load_model
from firmware_bridge.emulation.power import JkBmsEmulator, PowerWorld, QikiPduEmulator, RegisterBank
from firmware_bridge.emulation.qiki_mcu import McuEmulator, _Schedule
from firmware_bridge.emulation.valve_board import ValveBoardEmulator
from firmware_bridge.emulation.world import ThrusterGeometry, World
from firmware_bridge.protocols import qiki_mcu as proto
from firmware_bridge.protocols import valve_board as vb
from firmware_bridge.protocols.modbus_profile import DeviceProfile, ModbusReply, ModbusRequest
from hal.can.codec import DbcCodec
from hal.serial.link import PipeLink

ROOT = Path(__file__).resolve().parents[2]
GEO = [ThrusterGeometry(0.2, 0.2, -1, 0, 1.0), ThrusterGeometry(-0.2, -0.2, 0, 1, 2.0)]


@given(st.floats(min_value=-math.pi, max_value=math.pi, allow_subnormal=True))
def test_remainder_by_tau_is_the_identity_up_to_pi(x: float) -> None:
    r = math.remainder(x, math.tau)
    assert r.hex() == x.hex() and math.copysign(1.0, r) == math.copysign(1.0, x)


def test_remainder_edges() -> None:
    for x in (math.pi, -math.pi, 0.0, -0.0, 5e-324, -5e-324, math.nextafter(math.pi, 0.0)):
        assert math.remainder(x, math.tau).hex() == x.hex()
    assert math.remainder(math.nextafter(math.pi, 4.0), math.tau) < 0.0  # wraps just above pi


def test_world_run_across_the_wrap_is_n_steps() -> None:
    rng = random.Random(3)
    for _ in range(40):
        yaw = rng.choice([math.pi, -math.pi, math.nextafter(math.pi, 0.0), rng.uniform(-math.pi, math.pi)])
        a = World(15.0, 0.35, GEO, (0.0, 0.0, yaw))
        b = World(15.0, 0.35, GEO, (0.0, 0.0, yaw))
        rate = rng.choice([40.0, -40.0, 3.0, -0.0])
        for w in (a, b):
            w.vx_mps, w.vy_mps, w.yaw_rate_radps = 0.1, -0.2, rate
        for _ in range(20):
            fr = rng.choice([[0.0, 0.0], [1.0, 0.0], [rng.random(), 1.0]])
            n = rng.randint(1, 60)
            for _ in range(n):
                a.step(0.001, fr)
            b.run(n, 0.001, fr)
            assert (a.x_m, a.y_m, a.yaw_rad, a.vx_mps, a.vy_mps, a.yaw_rate_radps, a.ax_body_mps2,
                    a.ay_body_mps2, a.time_s) == (b.x_m, b.y_m, b.yaw_rad, b.vx_mps, b.vy_mps,
                                                  b.yaw_rate_radps, b.ax_body_mps2, b.ay_body_mps2, b.time_s)
            assert a.yaw_rad.hex() == b.yaw_rad.hex()


def _devices(world: PowerWorld, clock: SimClock) -> tuple[JkBmsEmulator, QikiPduEmulator]:
    jk = load_model(DeviceProfile, ROOT / "rigs/profiles/jk_bms.yaml")
    pp = load_model(DeviceProfile, ROOT / "rigs/profiles/qiki_pdu.yaml")
    return JkBmsEmulator(jk, world, clock, 1), QikiPduEmulator(pp, world, clock, 2)


def _full_refresh_reply(dev: JkBmsEmulator | QikiPduEmulator, request: ModbusRequest) -> ModbusReply:
    """The reply of the code before the cut: every quantity refreshed, then served."""
    dev.refresh(dev.clock.now_s())
    return dev._serve(request)


def test_partial_refresh_replies_equal_full_refresh_replies() -> None:
    """Random reads (the poller's ranges, others, illegal ones) and relay writes, with the world moving."""
    rng = random.Random(11)
    clock_a, clock_b = SimClock(), SimClock()
    world_a, world_b = PowerWorld(), PowerWorld()
    bms_a, pdu_a = _devices(world_a, clock_a)
    bms_b, pdu_b = _devices(world_b, clock_b)
    reads = [("coil", 0, 3), ("input", 0, 13), ("holding", 4100, 62), ("holding", 4608, 112),
             ("holding", 4608, 8), ("input", 4, 3), ("coil", 1, 1), ("holding", 4609, 2), ("input", 0, 200)]
    for k in range(600):
        for clock in (clock_a, clock_b):
            clock.advance(0.02)
        valves = rng.random() * 4.0 if k % 7 else 0.0
        for world in (world_a, world_b):
            world.step(0.02, valves)
        if rng.random() < 0.05:
            req = ModbusRequest(2, "write", "coil", rng.randint(0, 2), 1, rng.random() < 0.5)
            dev_a: JkBmsEmulator | QikiPduEmulator = pdu_a
            dev_b: JkBmsEmulator | QikiPduEmulator = pdu_b
        else:
            table, address, count = rng.choice(reads)
            unit = 2 if table in ("coil", "input") else 1
            req = ModbusRequest(unit, "read", table, address, count)
            dev_a, dev_b = (pdu_a, pdu_b) if unit == 2 else (bms_a, bms_b)
        got = dev_a.respond(req)
        if req.function == "read":
            want = _full_refresh_reply(dev_b, req)
        else:
            want = dev_b.respond(req)
        assert got == want, (k, req)
        assert repr(got.values) == repr(want.values)


def test_set_many_is_set_one_by_one() -> None:
    pp = load_model(DeviceProfile, ROOT / "rigs/profiles/qiki_pdu.yaml")
    a, b = RegisterBank(pp), RegisterBank(pp)
    rng = random.Random(5)
    floats = [q.name for q in pp.quantities if not q.is_bit and q.name.endswith(("_v", "_a", "_c"))]
    for _ in range(200):
        items = [(name, rng.choice([0.0, -0.0, 1.5, rng.uniform(0.0, 30.0), 2])) for name in rng.sample(floats, 3)]
        for name, value in items:
            a.set(name, value)
        b.set_many(items)
        assert a._cells == b._cells
        assert {k: repr(v) for k, v in a._cells.items()} == {k: repr(v) for k, v in b._cells.items()}


class _Moving:
    """A world whose fields change at every read of ``x_m`` (the MCU reads the pose there)."""

    def __init__(self) -> None:
        self.k = 0
        self.y_m = self.yaw_rad = self.vx_mps = self.vy_mps = self.yaw_rate_radps = 0.25
        self.ax_body_mps2 = self.ay_body_mps2 = -0.5

    @property
    def x_m(self) -> float:
        self.k += 1
        return self.k * 0.001


def test_mcu_shared_stream_schedule_sends_the_same_bytes() -> None:
    out: list[bytes] = []
    for shared in (True, False):
        host, dev = PipeLink.pair("mcu")
        emu = McuEmulator(dev, _Moving(), pose_noise_m=0.01, yaw_noise_rad=0.001, seed=4)
        assert (emu._pose is emu._imu) is True
        if not shared:
            emu._pose = _Schedule(100)
        rng = random.Random(9)
        data = bytearray()
        t_ns = 0
        for k in range(3000):
            t_ns += rng.choice([1_000_000, 1_000_000, 10_000_000, 7_000_000])
            if k % 5 == 0:
                host.write(proto.encode(proto.HostHeartbeat(k * 10, proto.HostState.ARMED), k))
            if k == 50:
                host.write(proto.encode(proto.RailRequest(True), k))
            emu.step(t_ns * 1e-9)
            data += host.read(1 << 16)
        out.append(bytes(data))
    assert out[0] == out[1] and len(out[0]) > 10_000


def test_remainder_of_nan_is_the_nan_itself() -> None:
    nan = float("nan")
    assert math.isnan(math.remainder(nan, math.tau))
    w = World(15.0, 0.35, GEO, (0.0, 0.0, 0.0))
    w.yaw_rate_radps = nan
    w.run(5, 0.001, [0.0, 0.0])
    assert math.isnan(w.yaw_rad)


def test_valve_board_prune_skip_is_pruning_every_step() -> None:
    codec = DbcCodec([ROOT / "dbc" / "qiki.dbc"])
    cmd_id = codec.frame_id(vb.COMMAND)
    rng = random.Random(21)
    channels = [f"prune-{uuid.uuid4()}" for _ in range(2)]
    buses = [can.Bus(interface="virtual", channel=ch) for ch in channels]
    hosts = [can.Bus(interface="virtual", channel=ch) for ch in channels]
    try:
        boards = [ValveBoardEmulator(bus, codec) for bus in buses]
        prunes = [0]
        prune = boards[0]._prune

        def counted(now_s: float) -> None:
            prunes[0] += 1
            prune(now_s)

        boards[0]._prune = counted  # type: ignore[method-assign]
        sent: list[list[tuple[int, bytes]]] = [[], []]
        for k in range(4000):  # 4 s at 1 kHz: intervals leave the 1 s history all along
            t = k * 0.001
            if k % 10 == 0 and k < 3000:
                raw = [rng.choice((0, 0, 5, 20, 50)) for _ in range(8)]
                msg = codec.encode(vb.COMMAND, vb.command_signals(raw, (k // 10) % vb.COUNTER_MODULO))
                data = vb.seal_command(cmd_id, msg.data)
                for host in hosts:
                    host.send(can.Message(arbitration_id=cmd_id, is_extended_id=False, data=data))
            if k == 1700:
                for b in boards:
                    b.rail_powered = False  # cuts: interval ends move
            if k == 1900:
                for b in boards:
                    b.rail_powered = True
            boards[1]._pruned = None  # the per-step pruning of before
            for b in boards:
                b.step(t)
            a, f = boards
            assert a._intervals == f._intervals and a._intervals_version == f._intervals_version, k
            for i, host in enumerate(hosts):
                sent[i] += [(m.arbitration_id, bytes(m.data)) for m in iter(lambda h=host: h.recv(0.0), None)]
        assert sent[0] == sent[1] and len(sent[0]) > 100
        assert 0 < prunes[0] < 1500  # skipped at most steps (a latch every 50 ms, the steps after a cut)
        assert all(not ivs or ivs[0][1] >= 4.0 - 1.0 - 0.06 for ivs in boards[0]._intervals)
    finally:
        for bus in buses + hosts:
            bus.shutdown()
