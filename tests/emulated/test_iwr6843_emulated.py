"""IWR6843 driver against its emulator over an in-process pipe (lockstep, SimClock)."""

from __future__ import annotations

import math

import pytest

from controller.clock import SimClock
from firmware_bridge.emulation.iwr6843 import Iwr6843Emulator, SensorTarget, world_to_sensor
from firmware_bridge.protocols.frames import Mount, Pose2D
from firmware_bridge.protocols.iwr6843 import RadarPoint, encode_packet
from hal.devices.iwr6843 import Iwr6843Driver, parse_mount, sensor_to_body
from hal.serial.link import PipeLink

TICK_S = 0.01
PERIOD_S = 0.1


_ONE_TARGET = (SensorTarget(0.0, 5.0),)


def _rig(targets=_ONE_TARGET, *, mount=(0.0, 0.0, 0.0), seed=7, **drv_kw):
    dev, host = PipeLink.pair("sr")
    emu = Iwr6843Emulator(
        dev, lambda now_s: list(targets), frame_period_s=PERIOD_S, seed=seed,
        miss_probability=0.0, clutter_rate=0.0,
    )
    drv = Iwr6843Driver(host, mount=parse_mount(mount), frame_period_s=PERIOD_S, **drv_kw)
    return dev, host, emu, drv


def _run(clock: SimClock, emu, drv, seconds: float, *, emit: bool = True):
    scans = []
    for _ in range(int(round(seconds / TICK_S))):
        clock.advance(TICK_S)
        if emit:
            emu.step(clock.now_s())
        scans += drv.poll(clock.now_s())
    return scans


@pytest.mark.parametrize(
    ("mount", "expected_body"),
    [
        ((0.0, 0.0, 0.0), (5.0, 0.0)),
        ((0.2, 0.1, 0.0), (5.2, 0.1)),
        ((0.0, 0.0, 90.0), (0.0, 5.0)),
        ((0.1, -0.1, -90.0), (0.1, -5.1)),
        ((0.0, 0.0, 180.0), (-5.0, 0.0)),
    ],
)
def test_synthetic_target_lands_at_mount_transformed_position(mount, expected_body):
    clock = SimClock()
    _, _, emu, drv = _rig(mount=mount)
    scans = _run(clock, emu, drv, 1.0)
    dets = [d for s in scans for d in s.detections]
    assert len(scans) >= 10 and dets
    mean_x = sum(d.x_body_m for d in dets) / len(dets)
    mean_y = sum(d.y_body_m for d in dets) / len(dets)
    assert mean_x == pytest.approx(expected_body[0], abs=0.1)
    assert mean_y == pytest.approx(expected_body[1], abs=0.1)
    for d in dets:
        assert d.range_m == pytest.approx(5.0, abs=0.3)
        assert d.snr_db is not None and d.source == "sr"
        # target on the boresight: body bearing = mount yaw (1 deg azimuth noise)
        assert abs(math.remainder(d.azimuth_body_rad - math.radians(mount[2]), math.tau)) < math.radians(5.0)


def test_target_to_the_right_has_negative_body_y():
    clock = SimClock()
    _, _, emu, drv = _rig(targets=(SensorTarget(2.0, 4.0),))  # TI x right
    dets = [d for s in _run(clock, emu, drv, 0.5) for d in s.detections]
    assert dets and all(d.y_body_m < 0 for d in dets)
    assert all(d.azimuth_radar_rad < 0 for d in dets)  # CCW from boresight: right is negative


def test_frame_timing_and_numbering():
    clock = SimClock()
    _, _, emu, drv = _rig()
    scans = _run(clock, emu, drv, 2.0)
    assert len(scans) == 20
    assert [s.frame_number for s in scans] == list(range(20))
    gaps = [round(b.received_s - a.received_s, 6) for a, b in zip(scans, scans[1:], strict=False)]
    assert set(gaps) == {PERIOD_S}
    assert drv.stats()["frame_number_gaps"] == 0


def test_targets_outside_field_of_view_give_empty_frames():
    clock = SimClock()
    _, _, emu, drv = _rig(targets=(SensorTarget(0.0, -3.0), SensorTarget(0.0, 30.0)))
    scans = _run(clock, emu, drv, 0.5)
    assert scans and all(s.detections == () for s in scans)
    assert not drv.is_stale(clock.now_s())  # empty frames still prove the radar alive


def test_same_seed_same_bytes_other_seed_other_bytes():
    def capture(seed: int) -> bytes:
        dev, host = PipeLink.pair("sr")
        emu = Iwr6843Emulator(dev, lambda t: [SensorTarget(0.5, 3.0, extent_m=0.3)], frame_period_s=0.1, seed=seed)
        for k in range(10):
            emu.step(k * 0.1)
        return host.read(1 << 20)

    assert capture(3) == capture(3)
    assert capture(3) != capture(4)


def test_silence_makes_the_radar_stale_and_frames_make_it_fresh_again():
    clock = SimClock()
    _, _, emu, drv = _rig()
    _run(clock, emu, drv, 0.5)
    assert not drv.is_stale(clock.now_s())
    emu.silent = True
    ages = []
    for _ in range(50):
        clock.advance(TICK_S)
        emu.step(clock.now_s())
        drv.poll(clock.now_s())
        ages.append(drv.is_stale(clock.now_s()))
    assert ages[-1] and drv.stats()["stale_events"] == 1
    # Stale exactly once more than 3 periods passed since the last frame.
    last = drv.last_scan.received_s
    assert not drv.is_stale(last + 0.299) and drv.is_stale(last + 0.301)
    emu.silent = False
    _run(clock, emu, drv, 0.2)
    assert not drv.is_stale(clock.now_s())


def test_never_seen_radar_goes_stale_after_three_periods():
    clock = SimClock()
    _, _, emu, drv = _rig()
    assert drv.is_stale(0.0)  # never polled
    _run(clock, emu, drv, 0.3, emit=False)
    assert not drv.is_stale(0.3)
    _run(clock, emu, drv, 0.05, emit=False)
    assert drv.is_stale(clock.now_s())
    assert drv.stats()["frames"] == 0


def test_garbage_and_truncated_packets_on_the_wire():
    clock = SimClock()
    _, _, emu, drv = _rig()
    scans = _run(clock, emu, drv, 0.3)
    emu.inject_bytes(b"\xde\xad\xbe\xef" * 10)
    packet = encode_packet(999, [RadarPoint(0.0, 1.0, 0.0, 0.0, 20.0, 70.0)] * 4)
    emu.inject_bytes(packet[:100])  # truncated: its length swallows the next frame's bytes
    scans += _run(clock, emu, drv, 0.7)
    numbers = [s.frame_number for s in scans]
    assert 999 not in numbers
    assert numbers == sorted(numbers) and len(numbers) == 10
    st = drv.stats()
    assert st["resyncs"] >= 1 and st["garbage_bytes"] >= 40
    assert sum(st["rejects"].values()) == 1
    assert st["frame_number_gaps"] == 0


def test_frozen_radar_repeating_one_frame_goes_stale():
    clock = SimClock()
    dev, host = PipeLink.pair("sr")
    drv = Iwr6843Driver(host, frame_period_s=PERIOD_S)
    packet = encode_packet(5, [RadarPoint(0.0, 2.0, 0.0, 0.0)])
    fresh = []
    for k in range(100):
        clock.advance(TICK_S)
        if k % 10 == 0:
            dev.write(packet)
        drv.poll(clock.now_s())
        fresh.append(not drv.is_stale(clock.now_s()))
    assert drv.stats()["frames"] == 1 and drv.stats()["frame_number_repeats"] == 9
    assert not fresh[-1]


def test_unplug_counts_goes_stale_and_recovers_after_replug():
    clock = SimClock()
    dev, host, emu, drv = _rig(reopen_backoff_s=(0.1, 0.4))
    _run(clock, emu, drv, 0.3)
    host.simulate_unplug()
    _run(clock, emu, drv, 1.0)
    assert drv.stats()["link_errors"] == 1
    assert drv.is_stale(clock.now_s())
    host.simulate_replug()
    _run(clock, emu, drv, 1.0)
    assert drv.stats()["reopens"] == 1
    assert not drv.is_stale(clock.now_s())


def test_ingress_is_bounded_per_poll():
    clock = SimClock()
    dev, host = PipeLink.pair("sr", capacity_bytes=1 << 20)
    drv = Iwr6843Driver(host, frame_period_s=PERIOD_S, max_read_bytes_per_poll=256, read_chunk_bytes=64)
    stream = b"".join(encode_packet(k, [RadarPoint(0.0, 1.0 + k, 0.0, 0.0)] * 8) for k in range(20))
    dev.write(stream)
    polls = 0
    got = []
    while host.pending():
        clock.advance(TICK_S)
        before = drv.bytes_read
        got += drv.poll(clock.now_s())
        assert drv.bytes_read - before <= 256
        polls += 1
    assert [s.frame_number for s in got] == list(range(20))
    assert polls == -(-len(stream) // 256) and drv.stats()["read_budget_hits"] >= polls - 1


def test_late_step_writes_the_missed_frames():
    dev, host = PipeLink.pair("sr")
    emu = Iwr6843Emulator(dev, lambda t: [], frame_period_s=PERIOD_S, seed=0)
    assert emu.step(0.0) == 1
    assert emu.step(0.05) == 0
    assert emu.step(0.55) == 5  # due at 0.1 .. 0.5
    drv = Iwr6843Driver(host, frame_period_s=PERIOD_S)
    assert [s.frame_number for s in drv.poll(0.55)] == list(range(6))


def test_world_to_sensor_inverts_sensor_to_body():
    pose = (1.0, -2.0, math.radians(30.0))
    mount = (0.2, 0.1, 45.0)
    for wx, wy in [(5.0, 1.0), (-3.0, 4.0), (1.5, -2.5)]:
        xs, ys = world_to_sensor(wx, wy, Pose2D(*pose), Mount.from_degrees(*mount))
        bx, by = sensor_to_body(xs, ys, mount)
        # independent of frames.apply: the rotation written out by hand
        c, s = math.cos(pose[2]), math.sin(pose[2])
        assert pose[0] + c * bx - s * by == pytest.approx(wx)
        assert pose[1] + s * bx + c * by == pytest.approx(wy)


def test_emulator_rejects_bad_source():
    with pytest.raises(ValueError):
        Iwr6843Emulator(PipeLink.pair("x")[0], 42, frame_period_s=0.1)
    with pytest.raises(ValueError):
        Iwr6843Emulator(PipeLink.pair("x")[0], b"", frame_period_s=0.0)
