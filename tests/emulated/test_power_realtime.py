"""Power devices in real time: poller worker thread against pymodbus servers (TCP, RTU/pty).

SAFETY.md D10: with the BMS silent the tick-side calls never wait for the bus and the data
goes stale after the configured polls; D11 over real wires. No timing is asserted: tests
wait (bounded) for outcomes, and every thread is stopped and joined in teardown.
"""

from __future__ import annotations

import threading

import pytest

from controller.clock import MonotonicClock
from controller.config import load_profile
from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
from firmware_bridge.emulation.power import JkBmsEmulator, PowerWorld, QikiPduEmulator
from hal.devices.bms import bms_arming_check, bms_reading
from hal.devices.pdu import Pdu
from hal.modbus.link import PymodbusRtuLink, PymodbusTcpLink
from hal.modbus.poller import ModbusPoller, PolledDevice

pytestmark = pytest.mark.realtime

LINK_TIMEOUT_S = 0.03


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    """Wait (bounded) for an outcome; not a timing assertion."""
    ev = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return True
        ev.wait(0.01)
    return predicate()


@pytest.fixture(params=["tcp", "rtu"])
def live(request, repo_root):
    clock = MonotonicClock()
    jk = load_profile(repo_root / "rigs/profiles/jk_bms.yaml").model_copy(
        update={"poll_period_s": 0.05, "poll_deadline_s": 0.05})
    pp = load_profile(repo_root / "rigs/profiles/qiki_pdu.yaml").model_copy(
        update={"poll_period_s": 0.05, "poll_deadline_s": 0.05})
    world = PowerWorld()
    bms = JkBmsEmulator(jk, world, clock, 1)
    pdu = QikiPduEmulator(pp, world, clock, 2)
    server = ModbusEmulatorServer({1: bms, 2: pdu}, request.param).start()
    if request.param == "tcp":
        link = PymodbusTcpLink(server.host, server.port, LINK_TIMEOUT_S)
    else:
        link = PymodbusRtuLink(server.client_path, 115200, LINK_TIMEOUT_S)
    poller = ModbusPoller([PolledDevice("bms", link, jk, 1), PolledDevice("pdu", link, pp, 2)], clock)
    poller.start()
    try:
        yield clock, world, bms, pdu, poller, link
    finally:
        assert poller.stop(2.0), "poller worker did not stop"
        link.close()
        server.stop()
        assert not server.alive and not poller.worker_alive


def test_worker_publishes_fresh_snapshots(live):
    clock, world, bms, pdu, poller, link = live
    assert wait_for(lambda: poller.snapshot("bms").polls_ok >= 2 and poller.snapshot("pdu").polls_ok >= 2)
    r = bms_reading(poller.snapshot("bms"))
    assert r.cell_count == 8 and r.soc_pct == 90.0
    assert poller.snapshot("bms").is_fresh(clock.now_s())
    assert poller.worker_errors == 0


def test_silent_bms_goes_stale_and_tick_side_never_waits(live):
    clock, world, bms, pdu, poller, link = live
    assert wait_for(lambda: poller.snapshot("bms").polls_ok >= 1)
    good = dict(poller.snapshot("bms").values)
    bms.apply_fault("silent", {}, 0.0)
    n = poller.snapshot("bms").stale_after_polls
    assert wait_for(lambda: poller.snapshot("bms").consecutive_failures >= n)
    snap = poller.snapshot("bms")
    assert not snap.is_fresh(clock.now_s())
    assert dict(snap.values) == good  # nothing from the silent period reached it
    ok, reason = bms_arming_check(snap, 30.0, clock.now_s())
    assert not ok and "stale" in reason
    # the PDU, polled by the same worker, keeps being fresh
    pdu_ok = poller.snapshot("pdu").polls_ok
    assert wait_for(lambda: poller.snapshot("pdu").polls_ok > pdu_ok + 2)


def test_tick_side_calls_do_not_take_the_bus_lock(live):
    clock, world, bms, pdu, poller, link = live
    got: dict = {}

    def tick_side():
        got["snap"] = poller.snapshot("bms")
        got["ticket"] = Pdu(poller).request_relay("valve_rail", True)

    # simulate a worker stuck inside a bus transaction: the tick side must still return
    # (from another thread, so a tick side that took the lock fails here instead of hanging)
    with poller._io_lock:
        tick = threading.Thread(target=tick_side, name="test-tick-side")
        tick.start()
        tick.join(5.0)
        assert not tick.is_alive(), "tick-side calls blocked on the bus lock"
        ticket = got["ticket"]
        assert got["snap"].device == "bms" and not ticket.done.is_set()
    assert ticket.done.wait(5.0) and ticket.ok
    assert world.valve_rail_powered


@pytest.mark.parametrize("fault", [("wrong_unit", {}), ("corrupt", {}), ("exception", {"exception_code": 4})])
def test_bad_replies_over_the_wire_are_counted_never_data(live, fault):
    clock, world, bms, pdu, poller, link = live
    assert wait_for(lambda: poller.snapshot("bms").polls_ok >= 1)
    before = poller.snapshot("bms")
    bms.apply_fault(*fault, 0.0)
    world.battery.soc = 0.05
    assert wait_for(lambda: poller.snapshot("bms").polls_failed >= before.polls_failed + 3)
    snap = poller.snapshot("bms")
    expected_kind = fault[0]
    assert snap.failures_by_kind.get(expected_kind, 0) >= 3
    assert snap.values["soc_pct"] == 90.0  # the 5 % behind the bad replies never got in
    assert getattr(link.stats(), {"wrong_unit": "wrong_unit", "corrupt": "corrupt", "exception": "exceptions"}[expected_kind]) >= 3
