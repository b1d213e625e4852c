"""Valve board driver <-> emulated firmware over python-can virtual buses, on a SimClock."""

from __future__ import annotations

import uuid
from pathlib import Path

import can
import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.valve_board import ValveBoardEmulator
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.can.port import CanPort
from hal.devices.valve_board import ValveBoardDriver

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"
TICK_S = 0.010        # controller tick
EMU_DT_S = 0.001      # emulator / world step
P = 0.05              # PWM period
OD, CD = 0.003, 0.002


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([QIKI_DBC])


class Rig:
    """Host port + driver and one emulated board on a private virtual channel."""

    def __init__(self, codec: DbcCodec, node_id: int = 1, **emu_kw) -> None:
        ch = f"qiki-vb-{uuid.uuid4()}"
        self.host_bus = can.Bus(interface="virtual", channel=ch)
        self.board_bus = can.Bus(interface="virtual", channel=ch)
        self.driver = ValveBoardDriver(codec, node_id=node_id)
        self.emu = ValveBoardEmulator(self.board_bus, codec, node_id=node_id, **emu_kw)
        self.port = CanPort(self.host_bus)
        for aid in self.driver.arbitration_ids:
            self.port.register(aid, self.driver.on_frame)
        self.clock = SimClock()
        self.duty_pct: list[float] | None = None
        self.last_cmd_s: float | None = None
        self._k = 0

    def run_until(self, t_end_s: float, before_step=None) -> None:
        """Lockstep: per 1 ms the host ticks (every 10 ms) then the board steps."""
        if self._k == 0 and self.clock.now_s() == 0.0:
            self.emu.step(0.0)                         # board powers up at t = 0
        while self.clock.now_s() < t_end_s - 1e-9:
            self.clock.advance(EMU_DT_S)
            self._k += 1
            t = self.clock.now_s()
            if self._k % round(TICK_S / EMU_DT_S) == 0:
                self.port.poll(t)
                if self.duty_pct is not None:
                    self.port.send(self.driver.command_frame(self.duty_pct), t)
                    self.last_cmd_s = t
            if before_step is not None:
                before_step(t)
            self.emu.step(t)

    def close(self) -> None:
        self.host_bus.shutdown()
        self.board_bus.shutdown()


@pytest.fixture
def rig(codec):
    r = Rig(codec)
    yield r
    r.close()


def test_boot_heartbeat_status_and_post_pass(rig):
    rig.run_until(0.25)
    ok, reason = rig.driver.post_report(rig.clock.now_s(), ">=1.2.0")
    assert not ok and "not steady yet" in reason       # 3 regular periods needed
    rig.run_until(0.45)
    assert rig.driver.heartbeat.state is vb.BoardState.BOOT
    ok, reason = rig.driver.post_report(rig.clock.now_s(), ">=1.2.0")
    assert not ok and "BOOT" in reason
    rig.run_until(0.9)
    t = rig.clock.now_s()
    assert rig.driver.status_fresh(t) and rig.driver.heartbeat_fresh(t)
    assert rig.driver.heartbeat.firmware_version == (1, 2, 0)
    assert rig.driver.status.cmd_timeout            # no command yet
    assert rig.driver.status.rail_voltage_v == pytest.approx(24.0)
    assert rig.driver.post_report(t, ">=1.2.0") == (True, "valve board node 1: ok, firmware 1.2.0")
    assert rig.driver.ingress_rejects == {}
    assert not rig.driver.rebooted


def test_command_opens_valves_with_pwm_timing(rig):
    rig.run_until(0.6)
    rig.duty_pct = [50, 0, 100, 20, 33, 0, 0, 1]
    rig.run_until(1.0)
    emu = rig.emu
    assert emu.duty_commanded == (0.5, 0.0, 1.0, 0.2, 0.34, 0.0, 0.0, 0.02)
    t0 = 0.9                                           # a PWM period start (boot at 0)
    fr = emu.open_fractions(t0, t0 + P)
    expected = [(0.5 * P - OD + CD) / P, 0.0, 1.0, (0.2 * P - OD + CD) / P,
                (0.34 * P - OD + CD) / P, 0.0, 0.0, 0.0]   # 2 % < minimum impulse
    assert fr == pytest.approx(expected, abs=1e-9)
    # Edges of valve 0: opens 3 ms after the period start, closes 2 ms after 25 ms.
    assert not emu.valves_open(t0 + OD - 1e-4)[0]
    assert emu.valves_open(t0 + OD + 1e-4)[0]
    assert emu.valves_open(t0 + 0.025 + CD - 1e-4)[0]
    assert not emu.valves_open(t0 + 0.025 + CD + 1e-4)[0]
    # 100 % stays open across period boundaries (the coil is never switched off).
    assert all(emu.valves_open(t0 + dt)[2] for dt in (-1e-4, 0.0, 1e-4, OD, P - 1e-4))
    # The driver sees the board's open mask (valve 2 open at every status sample).
    assert rig.driver.status.valve_open[2] and not rig.driver.status.valve_open[1]
    assert not rig.driver.status.cmd_timeout
    assert rig.driver.ingress_rejects == {} and emu.rx_rejects == {}


def test_command_latched_at_next_period_start(rig):
    rig.run_until(0.6)
    rig.duty_pct = [100] + [0] * 7
    rig.run_until(0.61)                                # first command at 0.61
    rig.run_until(0.70)
    assert rig.emu.open_fractions(0.61, 0.65) == pytest.approx([0.0] * 8)
    assert rig.emu.open_fractions(0.65, 0.65 + OD)[0] == pytest.approx(0.0)
    assert rig.emu.open_fractions(0.65 + OD, 0.70)[0] == pytest.approx(1.0)


def test_timeout_closes_all_valves_within_200ms_of_last_command(rig):
    rig.run_until(0.6)
    rig.duty_pct = [100, 100, 60, 0, 0, 0, 0, 100]
    rig.run_until(1.0)
    rig.duty_pct = None                                # host stalls (T03)
    t_last = rig.last_cmd_s
    rig.run_until(1.5)
    emu = rig.emu
    assert max(emu.open_fractions(t_last + 0.2, t_last + 0.45)) == 0.0
    assert emu.open_fractions(t_last + 0.15, t_last + 0.2)[0] == pytest.approx(1.0)
    assert emu.cmd_timeout and rig.driver.status.cmd_timeout
    assert rig.driver.status.valve_open_mask == 0


def test_rail_off_closes_valves_at_once(rig):
    rig.run_until(0.6)
    rig.duty_pct = [100, 0, 100, 0, 50, 0, 0, 0]
    rig.run_until(1.0)
    t_off = 1.012                                       # mid-period, valves open

    def wiring(t):
        rig.emu.rail_powered = t < t_off - 1e-9

    rig.run_until(1.2, before_step=wiring)
    emu = rig.emu
    assert emu.open_fractions(t_off - 0.005, t_off)[0] == pytest.approx(1.0)
    assert max(emu.open_fractions(t_off, 1.2)) == 0.0
    assert emu.valves_open(t_off) == (False,) * 8
    st = rig.driver.status
    assert st.rail_off and st.rail_voltage_v == 0.0 and st.valve_open_mask == 0
    # Power back: valves resume at the next period start, not mid-period.
    rig.emu.rail_powered = True
    rig.run_until(1.3)
    assert emu.open_fractions(1.25 + OD, 1.3)[0] == pytest.approx(1.0)


def test_reboot_detected_latched_and_post_again(rig):
    rig.run_until(0.6)
    rig.duty_pct = [100] + [0] * 7
    rig.run_until(1.0)
    assert not rig.driver.rebooted
    rig.emu.reboot(1.0)
    rig.run_until(1.2)
    assert rig.driver.rebooted                        # uptime went back (D05)
    assert rig.driver.reboot_count == 1
    assert max(rig.emu.open_fractions(1.0, 1.2)) == 0.0
    assert rig.emu.rx_rejects.get("boot", 0) > 0      # commands ignored while booting
    ok, reason = rig.driver.post_report(rig.clock.now_s(), ">=1.2.0")
    assert not ok and "BOOT" in reason
    rig.duty_pct = None
    rig.run_until(1.8)
    assert rig.driver.rebooted                        # latched until a POST passes
    ok, _ = rig.driver.post_report(rig.clock.now_s(), ">=1.2.0")
    assert ok and not rig.driver.rebooted


def test_post_absent_board(codec):
    """D07 board absent at POST: the report names the board and says it is absent."""
    r = Rig(codec)
    try:
        r.emu.silent = True
        r.run_until(1.0)
        ok, reason = r.driver.post_report(r.clock.now_s(), ">=1.2.0")
        assert not ok and reason == "valve board node 1: absent (no heartbeat received)"
    finally:
        r.close()


def test_post_wrong_firmware(codec):
    r = Rig(codec, firmware_version=(1, 1, 7))
    try:
        r.run_until(1.0)
        ok, reason = r.driver.post_report(r.clock.now_s(), ">=1.2.0")
        assert not ok and "firmware 1.1.7 not accepted" in reason
    finally:
        r.close()


def test_post_stuck_valve_reports_fault_and_never_opens(rig):
    rig.emu.stuck_closed = {3}
    rig.duty_pct = [0, 0, 0, 100, 0, 0, 0, 0]
    rig.run_until(1.0)
    assert rig.emu.open_fractions(0.7, 1.0)[3] == 0.0
    assert rig.driver.status.valve_fault == (False, False, False, True) + (False,) * 4
    ok, reason = rig.driver.post_report(rig.clock.now_s(), ">=1.2.0")
    assert not ok and "valve fault on valves [3]" in reason


def test_heartbeat_loss_detected_within_three_periods_plus_a_tick(rig):
    """D04 valve board heartbeat lost: not fresh within 3 heartbeat periods plus one tick."""
    rig.run_until(1.0)
    assert rig.driver.heartbeat_fresh(1.0)
    rig.emu.silent = True
    t = rig.clock.now_s()
    while rig.driver.heartbeat_fresh(t):
        rig.run_until(t + TICK_S)
        t = rig.clock.now_s()
    t_last_rx = rig.driver.heartbeat_rx_s             # last heartbeat received
    assert t_last_rx == pytest.approx(1.01)
    assert t <= t_last_rx + 3 * vb.HEARTBEAT_PERIOD_S + TICK_S + 1e-9
    assert not rig.driver.status_fresh(t)


def test_bad_commands_ignored_by_firmware(rig, codec):
    rig.run_until(0.6)
    good = rig.driver.command_frame([100] + [0] * 7)
    bad_crc = rig.driver.command_frame([100] + [0] * 7)
    bad_crc.data[7] ^= 0xFF
    bad_range = rig.driver.command_frame([0] * 8)
    bad_range.data[0] = 51                          # raw 51 = 102 %: invalid
    bad_range.data = bytearray(vb.seal_command(0x101, bad_range.data))
    repeat = can.Message(arbitration_id=0x101, is_extended_id=False, data=good.data)
    for m in (good, bad_crc, bad_range, repeat):
        rig.host_bus.send(m)
    rig.run_until(0.7)
    assert rig.emu.rx_rejects == {"checksum": 1, "range": 1, "counter": 1}
    assert rig.emu.commands_accepted == 1


def test_node_two_uses_offset_ids(codec):
    r = Rig(codec, node_id=2)
    try:
        assert r.driver.arbitration_ids == (0x182, 0x702)
        assert r.driver.command_id == 0x102
        r.duty_pct = [0] * 7 + [100]
        r.run_until(1.0)
        assert r.driver.post_report(r.clock.now_s(), ">=1.0.0")[0]
        assert r.emu.open_fractions(0.9, 0.95)[7] == pytest.approx(1.0)
    finally:
        r.close()


def test_command_frame_quantises_and_counts(codec):
    drv = ValveBoardDriver(codec)
    frames = [drv.command_frame([33.0, 101.0, -4.0, float("nan"), 2.9, 0, 0, 99.0])
              for _ in range(17)]
    dec = codec.decode(frames[0]).signals
    assert [dec[f"VB_Cmd_Duty{i}"] for i in range(1, 9)] == [34, 100, 0, 0, 2, 0, 0, 100]
    assert [codec.decode(f).signals["VB_Cmd_Counter"] for f in frames] == \
        list(range(16)) + [0]
    assert all(vb.command_checksum_ok(0x101, f.data) for f in frames)  # CRC-12 (issue 15)
    assert all(codec.decode(f).raw["VB_Cmd_Checksum"] == vb.command_checksum(0x101, f.data) for f in frames)
    with pytest.raises(ValueError):
        drv.command_frame([0] * 7)
