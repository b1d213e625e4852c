"""McuDriver <-> McuEmulator over a PipeLink pair, lockstep on a SimClock (no sleeps)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.qiki_mcu import McuEmulator
from firmware_bridge.protocols.qiki_mcu import FaultFlag, HostState, WatchdogState
from hal.devices.qiki_mcu import McuDriver, firmware_accepted
from hal.errors import BusConfigError
from hal.serial.link import PipeLink

TICK_S = 0.01


def make_world(**kw):
    base = dict(
        x_m=0.0, y_m=0.0, yaw_rad=0.0, vx_mps=0.0, vy_mps=0.0, yaw_rate_radps=0.0,
        ax_body_mps2=0.0, ay_body_mps2=0.0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


class Rig:
    """Lockstep harness: emulator steps, then the driver reads, then the driver writes."""

    def __init__(self, *, emu_kw=None, drv_kw=None, world=None):
        self.clock = SimClock()
        self.world = world or make_world()
        self.host, self.mcu = PipeLink.pair("mcu")
        self.emu = McuEmulator(self.mcu, self.world, **(emu_kw or {}))
        self.drv = McuDriver(self.host, **(drv_kw or {}))
        self.host_state = HostState.IDLE
        self.heartbeats_on = True

    @property
    def t(self) -> float:
        return self.clock.now_s()

    def tick(self, n: int = 1, on_tick=None) -> None:
        for _ in range(n):
            t = self.clock.now_s()
            if on_tick:
                on_tick(t)
            self.emu.step(t)
            self.drv.poll(t)
            if self.heartbeats_on:
                self.drv.service(t, self.host_state)
            self.clock.advance(TICK_S)


@pytest.fixture
def rig():
    return Rig()


def test_hello_at_boot_and_post_passes(rig):
    passed, reason = rig.drv.post_report(rig.t)
    assert not passed and "no HELLO" in reason
    rig.tick(3)
    assert rig.drv.hello is not None and rig.drv.hello.firmware_version == (1, 0, 0)
    passed, reason = rig.drv.post_report(rig.t, ">=1.0.0")
    assert passed, reason
    assert reason.startswith("mcu: ok")


def test_hello_on_request(rig):
    rig.tick(2)
    first_rx = rig.drv.hello_rx_s
    rig.drv.request_hello()
    rig.tick(2)
    assert rig.drv.hello_rx_s > first_rx
    assert rig.emu.counters["hello_requests"] == 1


@pytest.mark.parametrize(
    "emu_kw, knob, spec, expect",
    [
        ({"firmware_version": (0, 9, 0)}, None, ">=1.0.0", "firmware 0.9.0 not accepted"),
        ({"firmware_version": (2, 0, 0)}, None, ">=1.0, <2", "firmware 2.0.0 not accepted"),
        ({}, ("fault_flags", int(FaultFlag.IMU_FAULT)), ">=1.0.0", "IMU_FAULT"),
        ({}, ("drop_host_heartbeats", True), ">=1.0.0", "HOST_TIMEOUT"),
        ({}, ("silent", True), ">=1.0.0", "no HELLO"),
    ],
    ids=["old-fw", "too-new-fw", "fault-flag", "no-heartbeats", "silent"],
)
def test_post_failures_name_the_reason(emu_kw, knob, spec, expect):
    """D07: a failed MCU POST names the board and the reason (absent, stale, firmware, ...)."""
    r = Rig(emu_kw=emu_kw)
    if knob:
        setattr(r.emu, *knob)
    r.tick(30)
    passed, reason = r.drv.post_report(r.t, spec)
    assert not passed
    assert expect in reason and reason.startswith("mcu: ")
    assert "\n" not in reason


def test_post_bad_spec_is_config_error(rig):
    rig.tick(3)
    with pytest.raises(BusConfigError, match="1.x"):
        rig.drv.post_report(rig.t, ">=1.x")


@pytest.mark.parametrize(
    "version, spec, ok",
    [((1, 0, 0), ">=1.0.0", True), ((1, 2, 3), "1.2.3", True), ((1, 2, 3), "==1.2", False),
     ((1, 9, 9), ">=1.2,<2", True), ((2, 0, 0), ">=1.2,<2", False), ((1, 0, 0), "!=1.0.0", False)],
)
def test_firmware_accepted(version, spec, ok):
    assert firmware_accepted(version, spec) is ok


def test_pose_tracks_world(rig):
    def move(t):
        rig.world.x_m = 0.5 * t
        rig.world.y_m = -0.25 * t
        rig.world.vx_mps = 0.5
        rig.world.yaw_rate_radps = 0.1

    rig.tick(100, on_tick=move)
    t_last = rig.t - TICK_S
    pose = rig.drv.pose
    assert pose.x_m == pytest.approx(0.5 * t_last, abs=1e-6)
    assert pose.y_m == pytest.approx(-0.25 * t_last, abs=1e-6)
    assert pose.vx_world_mps == pytest.approx(0.5)
    assert rig.drv.imu.yaw_rate_radps == pytest.approx(0.1)
    assert rig.drv.pose_rx_s == pytest.approx(t_last)
    assert rig.drv.pose_fresh(rig.t) and rig.drv.imu_fresh(rig.t) and rig.drv.status_fresh(rig.t)
    s = rig.drv.stats()
    assert s["seq_gaps"] == 0 and s["crc_errors"] == 0 and s["frames_ok"] >= 200


def test_pose_noise_is_seeded_and_deterministic():
    def run(seed):
        r = Rig(emu_kw={"pose_noise_m": 0.01, "yaw_noise_rad": 0.01, "seed": seed})
        xs = []
        for _ in range(20):
            r.tick()
            xs.append((r.drv.pose.x_m, r.drv.pose.yaw_rad))
        return xs

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c
    assert any(x != 0.0 for x, _ in a)
    assert all(abs(x) < 0.1 for x, _ in a)


def test_rail_request_granted_and_released(rig):
    rig.tick(3)
    assert not rig.drv.rail_enabled
    rig.drv.request_rail(True)
    rig.tick(2)
    assert rig.emu.rail_enabled and rig.drv.rail_enabled
    rig.drv.request_rail(False)
    rig.tick(2)
    assert not rig.emu.rail_enabled and not rig.drv.rail_enabled


def test_rail_refused_without_heartbeats():
    r = Rig()
    r.heartbeats_on = False
    r.tick(2)
    r.drv.request_rail(True)
    r.tick(2)
    assert not r.emu.rail_enabled
    assert r.drv.status.watchdog_state == WatchdogState.HOST_TIMEOUT
    assert r.emu.counters["rail_refused"] == 1


def test_heartbeat_stop_drops_rail_within_timeout():
    r = Rig()
    r.tick(3)
    r.drv.request_rail(True)
    r.tick(3)
    assert r.emu.rail_enabled
    # Host stalls (SAFETY.md T03): no more heartbeats. Step the MCU at 1 kHz for resolution.
    r.heartbeats_on = False
    stall_s = r.t
    last_rx_s = r.emu.last_host_heartbeat_rx_s
    assert last_rx_s is not None and last_rx_s <= stall_s
    rail_off_at = None
    for _ in range(400):
        t = r.clock.now_s()
        r.emu.step(t)
        if not r.emu.rail_enabled and rail_off_at is None:
            rail_off_at = t
        r.clock.advance(0.001)
    assert rail_off_at is not None
    assert rail_off_at - stall_s <= 0.2 + 1e-6  # within 200 ms of the stall (SAFETY.md T03)
    assert rail_off_at - last_rx_s >= 0.2 - 1e-5  # and not before the timeout: no false trip
    r.drv.poll(r.t)
    assert r.drv.status.watchdog_state == WatchdogState.HOST_TIMEOUT and not r.drv.rail_enabled
    # Heartbeats resume: watchdog OK again, but the rail stays off until a new request.
    r.heartbeats_on = True
    r.tick(5)
    assert r.drv.status.watchdog_state == WatchdogState.OK
    assert not r.emu.rail_enabled
    r.drv.request_rail(True)
    r.tick(2)
    assert r.emu.rail_enabled


def test_heartbeats_lost_on_wire_drop_rail(rig):
    rig.tick(3)
    rig.drv.request_rail(True)
    rig.tick(2)
    rig.emu.drop_host_heartbeats = True
    rig.tick(25)  # 250 ms
    assert not rig.emu.rail_enabled and not rig.drv.rail_enabled
    assert rig.emu.counters["heartbeats_dropped"] > 0


def test_estop_press_shows_on_next_poll(rig):
    rig.tick(3)
    rig.drv.request_rail(True)
    rig.tick(2)
    assert not rig.drv.estop_pressed
    rig.emu.press_estop()
    assert not rig.emu.rail_enabled  # the output drops at once, on the board
    rig.drv.poll(rig.t)  # next poll, no emulator step in between
    assert rig.drv.estop_pressed and not rig.drv.rail_enabled
    # Requests are refused while pressed; release does not bring the rail back by itself.
    rig.drv.request_rail(True)
    rig.tick(2)
    assert not rig.emu.rail_enabled
    rig.emu.release_estop()
    rig.tick(2)
    assert not rig.drv.estop_pressed and not rig.emu.rail_enabled


def test_estop_unknown_is_not_a_press_but_not_a_release_either(rig):
    assert rig.drv.status is None
    assert rig.drv.estop_pressed is False  # no event without a report (no boot-time false trip)
    assert rig.drv.estop_released_confirmed(rig.t) is False  # guards need positive evidence
    assert rig.drv.rail_enabled is False
    rig.tick(2)
    assert rig.drv.estop_released_confirmed(rig.t)
    rig.emu.press_estop()
    rig.tick(1)
    assert not rig.drv.estop_released_confirmed(rig.t)
    rig.emu.silent = True
    rig.tick(50)
    assert rig.drv.estop_pressed  # silence never forgets a press
    assert not rig.drv.estop_released_confirmed(rig.t)


@pytest.mark.parametrize(
    "given, sent",
    [(HostState.ARMED, HostState.ARMED), (3, HostState.ACTIVE), ("safe_mode", HostState.SAFE_MODE),
     ("Estop", HostState.ESTOP), ("landing", HostState.OTHER), (99, HostState.OTHER), (None, HostState.OTHER)],
)
def test_heartbeat_carries_host_state(given, sent):
    r = Rig()
    r.host_state = given
    r.tick(2)
    assert r.emu.last_host_heartbeat.host_state == sent


def test_garbage_resync_is_counted(rig):
    """D08 MCU sends garbage: the framer resynchronises and counts the bad frames."""
    rig.tick(5)
    before = rig.drv.stats()
    rig.emu.inject_garbage(b"\x13\x37\xff" * 30 + b"\x00")  # framed-looking junk
    rig.emu.inject_garbage(b"\x02\x01\x00")  # a runt
    rig.emu.inject_garbage(b"\x01\x02\x03\x04\x05")  # no delimiter: spoils the next frame
    rig.tick(10)
    after = rig.drv.stats()
    assert after["bytes_dropped"] > before["bytes_dropped"]
    bad = sum(after[k] - before[k] for k in ("crc_errors", "cobs_errors", "runts", "too_long"))
    assert bad >= 3
    assert rig.drv.pose_fresh(rig.t) and rig.drv.status_fresh(rig.t)


def test_sequence_gaps_counted_per_message(rig):
    rig.tick(5)
    rig.emu.step(rig.t)
    rig.host.read(1 << 16)  # one tick of MCU frames lost on the wire (whole frames)
    rig.clock.advance(TICK_S)
    rig.tick(5)
    s = rig.drv.stats()
    assert s["seq_gaps_by_id"].get("IMU") == 1 and s["seq_gaps_by_id"].get("POSE") == 1
    assert s["seq_gaps"] == sum(s["seq_gaps_by_id"].values())


def test_silent_mcu_goes_stale_after_three_periods(rig):
    """D08 MCU stops sending: stale after three periods (the vehicle goes safe on it)."""
    rig.tick(5)
    rig.emu.silent = True
    rig.tick(2)
    assert rig.drv.pose_fresh(rig.t)  # last pose 3 ticks ago (= 3 periods): still fresh
    rig.tick(1)
    assert not rig.drv.pose_fresh(rig.t) and not rig.drv.imu_fresh(rig.t)
    rig.tick(27)
    assert not rig.drv.status_fresh(rig.t)
    assert not rig.drv.post_report(rig.t)[0]


def test_unplug_marks_link_down_then_reopens_with_backoff(rig):
    rig.tick(5)
    rig.host.simulate_unplug()
    rig.tick(1)  # the BusError is absorbed by the driver: the tick goes on
    s = rig.drv.stats()
    assert not s["link_up"] and s["bus_errors"] == 1
    assert "unplugged" in rig.drv.post_report(rig.t)[1]
    rig.tick(50)  # 0.5 s: attempts at +0.1, +0.3 (backoff doubles) ...
    attempts = rig.drv.stats()["reopen_attempts"]
    assert 2 <= attempts <= 4
    assert not rig.drv.pose_fresh(rig.t)
    rig.host.simulate_replug()
    rig.tick(100)
    s = rig.drv.stats()
    assert s["link_up"] and s["reopens"] == 1 and s["bus_errors"] == 1
    assert rig.drv.pose_fresh(rig.t)


def test_emulator_rates_without_bursts():
    world = make_world()
    host, mcu = PipeLink.pair("rates")
    emu = McuEmulator(mcu, world, status_rate_hz=10, imu_rate_hz=100, pose_rate_hz=50)
    clock = SimClock()
    for _ in range(1000):  # 1 s at 1 kHz
        emu.step(clock.now_s())
        clock.advance(0.001)
    from firmware_bridge.protocols.framing import FrameDecoder

    ids = [f.msg_id for f in FrameDecoder().feed(host.read(1 << 20))]
    assert ids.count(0x20) == 100 and ids.count(0x21) == 50
    assert 10 <= ids.count(0x11) <= 11  # periodic plus the boot-time status
    # Stepped late (20 Hz), a 100 Hz stream sends one message per step, never a burst.
    host2, mcu2 = PipeLink.pair("slow")
    emu2 = McuEmulator(mcu2, world)
    imu_per_step = []
    for k in range(20):
        emu2.step(k * 0.05)
        frames = FrameDecoder().feed(host2.read(1 << 20))
        imu_per_step.append(sum(f.msg_id == 0x20 for f in frames))
    assert imu_per_step == [1] * 20
    assert emu2._imu.skipped == 19 * 4  # 4 of every 5 slots skipped after the first step


def test_driver_stats_has_the_documented_keys(rig):
    rig.tick(2)
    keys = set(rig.drv.stats())
    assert keys == {
        "frames_ok", "crc_errors", "cobs_errors", "too_long", "runts", "bytes_dropped",
        "unknown", "invalid", "seq_gaps", "seq_gaps_by_id", "seq_anomalies",
        "bytes_rx", "bytes_tx", "frames_tx", "tx_short", "heartbeats_tx",
        "bus_errors", "reopen_attempts", "reopens", "link_up", "mcu_reboots",
    }  # exactly the McuDriver.stats docstring


def test_unknown_ids_are_counted(rig):
    from firmware_bridge.protocols.framing import encode_frame

    rig.tick(2)
    rig.mcu.write(encode_frame(0x7E, 0, b"?"))
    rig.mcu.write(encode_frame(0x11, 0, b"\x00"))  # known id, wrong length
    rig.tick(1)
    s = rig.drv.stats()
    assert s["unknown"] == 1 and s["invalid"] == 1


def test_mcu_reboot_is_detected_and_rail_stays_off(rig):
    rig.tick(3)
    rig.drv.request_rail(True)
    rig.tick(50)
    assert rig.emu.rail_enabled
    rig.emu.reboot(by_watchdog=True)
    rig.heartbeats_on = False
    rig.tick(1)
    assert rig.drv.stats()["mcu_reboots"] == 1
    assert rig.drv.status.watchdog_state == WatchdogState.RESET
    assert not rig.drv.rail_enabled and not rig.emu.rail_enabled
    assert not rig.drv.post_report(rig.t)[0]
    rig.heartbeats_on = True
    rig.tick(3)
    assert rig.drv.status.watchdog_state == WatchdogState.OK
    assert not rig.emu.rail_enabled  # never re-enabled without a new request


@pytest.mark.realtime
def test_real_time_path_over_pty():
    """Driver on PySerialLink(pty slave), emulator on the FdLink master, MonotonicClock.

    Waits for arrival with a finite deadline; asserts behaviour only, never a duration.
    """
    import time

    from controller.clock import MonotonicClock
    from hal.serial.link import PySerialLink, open_pty_pair

    master, slave_path = open_pty_pair("mcu")
    host = PySerialLink(slave_path, 921600)
    try:
        emu = McuEmulator(master, make_world(x_m=1.5))
        drv = McuDriver(host)
        clock = MonotonicClock()
        drv.request_hello()
        deadline_s = 5.0
        while clock.now_s() < deadline_s:
            t = clock.now_s()
            emu.step(t)
            drv.poll(t)
            drv.service(t, HostState.IDLE)
            if drv.post_report(t)[0] and drv.pose is not None:
                break
            time.sleep(0.002)  # pacing a real-time loop, not measuring it
        passed, reason = drv.post_report(clock.now_s())
        assert passed, reason
        assert drv.pose.x_m == pytest.approx(1.5)
        assert drv.stats()["crc_errors"] == 0
    finally:
        host.close()
        master.close()
