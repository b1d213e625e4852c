"""Power devices over the memory backend in lockstep: poller, drivers, faults, world.

SAFETY.md D10 (silent device -> stale after N polls), D11 (bad replies never reach the
snapshot, counted), O01 (arming refused with the reason), relays gate the valve rail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clock import SimClock
from controller.config import load_profile
from controller.tools.modbus_read import format_readings, read_quantities
from firmware_bridge.emulation.faults import FaultEntry, FaultPlan
from firmware_bridge.emulation.power import BatteryModel, JkBmsEmulator, PowerWorld, QikiPduEmulator
from hal.devices.bms import bms_arming_check, bms_mission_fault, bms_post_report, bms_reading
from hal.devices.pdu import Pdu, pdu_post_report
from hal.modbus.link import MemoryModbusLink
from hal.modbus.poller import ModbusPoller, PolledDevice

TICK_S = 0.01


class Bench:
    def __init__(self, profiles: Path, soc: float = 0.9) -> None:
        self.clock = SimClock()
        self.jk = load_profile(profiles / "jk_bms.yaml")
        self.pp = load_profile(profiles / "qiki_pdu.yaml")
        self.world = PowerWorld(BatteryModel(soc=soc))
        self.bms = JkBmsEmulator(self.jk, self.world, self.clock, 1)
        self.pdu_emu = QikiPduEmulator(self.pp, self.world, self.clock, 2)
        self.link = MemoryModbusLink({1: self.bms, 2: self.pdu_emu}, timeout_s=0.1)
        self.poller = ModbusPoller(
            [PolledDevice("bms", self.link, self.jk, 1), PolledDevice("pdu", self.link, self.pp, 2)], self.clock
        )
        self.pdu = Pdu(self.poller)

    def run(self, seconds: float, valves_open: float = 0.0) -> None:
        for _ in range(round(seconds / TICK_S)):
            self.clock.advance(TICK_S)
            self.world.step(TICK_S, valves_open)
            self.poller.step()

    def bms_snap(self):
        return self.poller.snapshot("bms")


@pytest.fixture
def make_bench(repo_root):
    """``make_bench(soc=0.9) -> Bench`` with the shipped BMS and PDU profiles."""
    return lambda soc=0.9: Bench(repo_root / "rigs" / "profiles", soc=soc)


@pytest.fixture
def bench(make_bench):
    return make_bench()


def test_first_poll_fills_snapshots(bench):
    bench.poller.step()
    r = bms_reading(bench.bms_snap())
    assert r is not None and r.cell_count == 8 and r.soc_pct == 90.0
    assert r.pack_voltage_v == pytest.approx(bench.world.battery.terminal_voltage_v, abs=0.002)
    assert bench.bms_snap().is_fresh(bench.clock.now_s())
    assert bms_post_report(bench.bms_snap(), 8, bench.clock.now_s()).ok
    assert pdu_post_report(bench.poller.snapshot("pdu"), bench.clock.now_s()).ok


def test_polls_follow_each_device_period(bench):
    bench.poller.step()
    bench.run(2.0)
    # bms every 0.5 s, pdu every 0.1 s, over 2 s plus the first poll
    assert bench.bms_snap().polls_ok == 5
    assert bench.poller.snapshot("pdu").polls_ok == 21
    assert bench.bms_snap().transactions == 5 * 2  # two read blocks per BMS poll


def test_silent_bms_goes_stale_after_configured_polls(bench):
    bench.poller.step()
    bench.bms.fault_plan = FaultPlan([FaultEntry(0.005, "bms", "silent")], {"bms": bench.bms})
    period = bench.jk.poll_period_s
    n = bench.jk.stale_after_polls
    bench.run(period * (n - 1) + 0.01)
    assert bench.bms_snap().consecutive_failures == n - 1
    assert bench.bms_snap().is_fresh(bench.clock.now_s())
    bench.run(period)
    snap = bench.bms_snap()
    assert snap.consecutive_failures == n and not snap.is_fresh(bench.clock.now_s())
    assert snap.failures_by_kind["timeout"] == n
    ok, reason = bms_arming_check(snap, 30.0, bench.clock.now_s())
    assert not ok and "stale" in reason
    assert "stale" in bms_mission_fault(snap, bench.clock.now_s(), 20.0, 55.0)
    # the PDU on the same bus is unaffected
    assert bench.poller.snapshot("pdu").is_fresh(bench.clock.now_s())


@pytest.mark.parametrize(
    "fault, kind",
    [
        (("exception", {"exception_code": 4}), "exception"),
        (("wrong_unit", {}), "wrong_unit"),
        (("corrupt", {}), "corrupt"),
        (("corrupt", {"every": 3}), "corrupt"),
    ],
)
def test_bad_replies_never_reach_the_snapshot(bench, fault, kind):
    bench.poller.step()
    good = dict(bench.bms_snap().values)
    good_time = bench.bms_snap().sample_time_s
    bench.bms.apply_fault(*fault, 0.0)
    bench.world.battery.soc = 0.10  # the device now holds different data
    bench.run(3.0)
    snap = bench.bms_snap()
    assert snap.failures_by_kind.get(kind, 0) > 0
    if fault[1].get("every", 1) == 1:
        assert dict(snap.values) == good and snap.sample_time_s == good_time
    else:  # intermittent noise: good polls still get through, bad ones never
        assert snap.values["soc_pct"] in (10.0, 90.0)
        assert snap.polls_ok > 1 and snap.polls_failed > 0
    assert bench.link.stats().failures == snap.failures


def test_config_exception_fails_post_with_reason(bench):
    bench.bms.apply_fault("exception", {"exception_code": 2}, 0.0)
    bench.poller.step()
    report = bms_post_report(bench.bms_snap(), 8, bench.clock.now_s())
    assert not report.ok
    assert any("illegal data address" in r for r in report.reasons)


def test_absent_bms_fails_post_naming_it(bench):
    """D07 board absent at POST (the BMS): the POST report names it."""
    bench.link.attach(1, _Absent())
    bench.poller.step()
    report = bms_post_report(bench.bms_snap(), 8)
    assert not report.ok and report.reasons[0].startswith("BMS: no data")


class _Absent:
    def respond(self, request):
        from firmware_bridge.protocols.modbus_profile import ModbusReply

        return ModbusReply("silent")


def test_post_rejects_wrong_cell_count(bench):
    bench.poller.step()
    report = bms_post_report(bench.bms_snap(), 16, bench.clock.now_s())
    assert not report.ok and "cell count 8, rig expects 16" in report.reasons[0]


@pytest.mark.parametrize(
    "soc, alarm_bits, min_soc, ok, reason",
    [
        (0.90, 0, 30.0, True, ""),
        (0.25, 0, 30.0, False, "SoC 25 % below minimum 30 %"),
        (0.90, 1 << 13, 30.0, False, "BMS alarm active: discharge_overcurrent"),
        (0.90, 1 << 22, 30.0, False, "unnamed alarm bits"),
        (0.25, 1 << 5, 30.0, False, "battery_overvoltage"),
    ],
)
def test_arming_check(soc, alarm_bits, min_soc, ok, reason, make_bench):
    b = make_bench(soc=soc)
    if alarm_bits:
        b.bms.apply_fault("alarm", {"alarm_bits": alarm_bits}, 0.0)
    b.poller.step()
    got_ok, got_reason = bms_arming_check(b.bms_snap(), min_soc, b.clock.now_s())
    assert got_ok is ok and reason in got_reason


def test_arming_refused_before_first_poll(bench):
    ok, reason = bms_arming_check(bench.bms_snap(), 30.0, 0.0)
    assert not ok and reason.startswith("BMS: no data")


def test_low_soc_refusal_never_closes_the_relay(make_bench):
    b = make_bench(soc=0.2)
    b.poller.step()
    ok, _ = bms_arming_check(b.bms_snap(), 30.0, b.clock.now_s())
    assert not ok
    if ok:  # what an arm guard would do; it must not get here
        b.pdu.request_relay("valve_rail", True)
    b.run(1.0)
    assert b.world.relay("valve_rail") is False and b.world.relay_operations == 0


def test_relay_write_is_verified_by_read_back_and_gates_the_valve_rail(bench):
    bench.poller.step()
    assert not bench.world.valve_rail_powered
    ticket = bench.pdu.request_relay("valve_rail", True)
    assert not ticket.done.is_set()  # queued: the tick does not wait for the bus
    bench.poller.step()
    assert ticket.done.is_set() and ticket.ok and ticket.readback is True
    assert bench.world.valve_rail_powered
    bench.run(0.2)
    assert bench.pdu.relay_state("valve_rail", bench.clock.now_s()) is True
    t2 = bench.pdu.request_relay("valve_rail", False)
    bench.poller.step()
    assert t2.ok and not bench.world.valve_rail_powered
    assert bench.world.relay_operations == 2


def test_relay_write_failure_is_reported_not_retried(bench):
    bench.pdu_emu.apply_fault("exception", {"exception_code": 4}, 0.0)
    before = bench.pdu_emu.requests_seen
    ticket = bench.pdu.request_relay("valve_rail", True)
    bench.poller.step(bench.clock.now_s() - 1.0)  # commands only, no poll due
    assert ticket.done.is_set() and not ticket.ok and "write failed" in ticket.reason
    assert bench.pdu_emu.requests_seen == before + 1
    assert bench.world.relay("valve_rail") is False


def test_valve_use_drains_battery_and_sags_voltage(bench):
    bench.poller.step()
    bench.pdu.request_relay("valve_rail", True)
    bench.run(0.1)
    v_idle = bench.world.battery.terminal_voltage_v
    soc0 = bench.world.battery.soc
    bench.run(5.0, valves_open=4.0)
    v_load = bench.world.battery.terminal_voltage_v
    assert v_load < v_idle - 4 * 0.6 * 0.08 * 0.9  # I*R sag of 4 open valves
    assert bench.world.battery.soc < soc0
    assert bench.world.battery.temperature_c > 25.0
    r = bms_reading(bench.bms_snap())
    assert r.pack_current_a < -2.0  # JK convention: discharge negative
    # with the rail open, valves draw nothing
    bench.pdu.request_relay("valve_rail", False)
    bench.run(0.1)
    assert bench.world.rail_currents_a()["valve_rail"] == 0.0


def test_over_temperature_raises_mission_fault(bench):
    bench.world.battery.temperature_c = 57.0
    bench.poller.step()
    reason = bms_mission_fault(bench.bms_snap(), bench.clock.now_s(), 20.0, 55.0)
    assert reason is not None and "battery_overtemperature" in reason


def test_modbus_read_library(bench):
    readings = read_quantities(bench.link, bench.jk, 1, ["soc_pct", "pack_voltage_v", "alarms"])
    assert readings.ok and readings.values["soc_pct"] == 90.0
    lines = format_readings(bench.jk, readings)
    assert lines[0].startswith("pack_voltage_v = ") and lines[0].endswith(" V")
    assert "soc_pct = 90 %" in lines
    bench.bms.apply_fault("silent", {}, 0.0)
    failed = read_quantities(bench.link, bench.jk, 1, ["soc_pct"])
    assert not failed.ok and failed.failures["soc_pct"].kind == "timeout"
    assert "FAILED timeout" in format_readings(bench.jk, failed)[0]


def _spy_read_starts_ns(bench) -> list[int]:
    """Record the clock (ns) at the start of every read on the bench's link."""
    starts: list[int] = []

    def spy_on(read):
        def spy(*args, **kwargs):
            starts.append(bench.clock.now_ns())
            return read(*args, **kwargs)

        return spy

    for name in ("read_registers", "read_bits"):
        setattr(bench.link, name, spy_on(getattr(bench.link, name)))
    return starts


def _worker_wakes(bench, seconds: float) -> None:
    """Step the poller on a 1 ms grid of "now" values, as a real-time worker would wake."""
    for _ in range(round(seconds / 0.001)):
        bench.clock.advance(0.001)
        bench.poller.step()


TICK_NS = round(TICK_S * 1e9)


def test_polls_aligned_between_control_ticks(bench):
    """align_to_grid: every poll starts half a control period after a tick deadline."""
    bench.clock.advance(0.0123)  # the worker started at an arbitrary phase
    bench.poller.align_to_grid(0.0123 + 0.002, TICK_S)  # first tick deadline 2 ms later
    bench.poller.step()  # polls already due run at once
    starts = _spy_read_starts_ns(bench)
    _worker_wakes(bench, 3.0)
    # every read exactly mid-way between deadlines 0.0143 + k * 0.01 (integer ns clock)
    assert {(t - 14_300_000) % TICK_NS for t in starts} == {TICK_NS // 2}
    # no poll lost or added: 1 at once + 3 s / 0.5 s (BMS) and 3 s / 0.1 s (PDU), 2 reads each
    assert bench.bms_snap().polls_ok == 1 + 6 and bench.poller.snapshot("pdu").polls_ok == 1 + 30
    assert len(starts) == 2 * 6 + 2 * 30
    # a worker that falls behind (one wake-up 253 ms late) skips the missed polls and comes
    # back onto the grid: its catch-up poll is late, every later one is mid-way again
    bench.clock.advance(0.253)
    bench.poller.step()
    starts.clear()
    _worker_wakes(bench, 1.0)
    assert len(starts) >= 2 * 9 and {(t - 14_300_000) % TICK_NS for t in starts} == {TICK_NS // 2}


def test_realtime_subsystem_aligns_polls_to_its_first_tick(bench):
    """PowerSubsystem.read in real time: never touches the bus; puts the polls on the grid
    of the first tick's time, once (a later, jittered tick does not move it)."""
    from controller.components.power import PowerSubsystem
    from controller.config import PowerCfg
    from controller.vehicle import TickView

    sub = PowerSubsystem(limits=PowerCfg(), bms=("bms", bench.poller, 8), pdu=("pdu", bench.pdu),
                         pollers={"power": bench.poller}, links={"power": bench.link}, realtime=True,
                         record=lambda *a, **k: None, transport={"power": "memory"}, control_period_s=TICK_S)
    bench.clock.advance(0.0123)  # the worker has been running since build
    sub.read(TickView(0, 0.0143, "boot", "zero", None))
    sub.read(TickView(1, 0.0251, "boot", "zero", None))  # second tick, 0.8 ms late
    assert bench.link.stats().requests == 0  # the tick only reads snapshots
    bench.poller.step()  # the polls due since build run at once
    starts = _spy_read_starts_ns(bench)
    _worker_wakes(bench, 1.0)
    assert len(starts) == 2 * 2 + 2 * 10
    assert {(t - 14_300_000) % TICK_NS for t in starts} == {TICK_NS // 2}


def test_align_to_grid_refuses_a_bad_period(bench):
    with pytest.raises(ValueError):
        bench.poller.align_to_grid(0.0, 0.0)


def test_a_poller_without_devices_is_refused() -> None:
    """An empty device list is refused at construction (a poller needs one to schedule)."""
    with pytest.raises(ValueError, match="at least one device"):
        ModbusPoller([], SimClock())
