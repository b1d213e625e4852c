"""qiki monitor: the checks (counter, checksum, DLC, range, unknown ID, cycle time, timeout),
the violation tally's first/last times, the inferred vehicle, the listen-only bus, the sinks."""

from __future__ import annotations

import json
from pathlib import Path

import can
import pytest

from controller.config import load_rig
from controller.monitor.checks import BusChecker, ViolationTally
from controller.monitor.model import bus_model
from controller.monitor.run import Monitor, MonitorOptions, run_monitor
from controller.monitor.source import ListenOnlyBus, ListenOnlyError, open_listen_only
from firmware_bridge.protocols import valve_board as vb

ROOT = Path(__file__).resolve().parents[2]
REAL_LOG = ROOT.parent / "shared" / "data" / "real" / "can" / "ars408" / "candump-2026-06-24_154259.log"


@pytest.fixture(scope="module")
def model():
    rig, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    return bus_model(rig, path, "rigs/virtual.yaml")


def _node_codec(model):
    return next(s.codec for s in model.specs if s.name == vb.COMMAND)


def cmd(model, counter: int, duty_pct: float = 0.0, t: float = 0.0) -> can.Message:
    codec = _node_codec(model)
    raw = [vb.duty_pct_to_raw(duty_pct)] + [0] * 7
    msg = codec.encode(vb.COMMAND, vb.command_signals(raw, counter))
    msg.data = bytearray(vb.seal_command(msg.arbitration_id, msg.data))
    msg.timestamp = t
    return msg


def status(model, counter: int, t: float = 0.0, **kw) -> can.Message:
    codec = _node_codec(model)
    st = vb.ValveBoardStatus(valve_open_mask=kw.get("open_mask", 0), valve_fault_mask=0, rail_voltage_v=24.0,
                             cmd_timeout=False, rail_off=kw.get("rail_off", False), over_temp=False, board_temp_c=30.0)
    msg = codec.encode(vb.STATUS, vb.status_signals(st, counter))
    msg.data = bytearray(vb.seal(msg.arbitration_id, msg.data))
    msg.timestamp = t
    return msg


def test_model_places_the_devices_messages(model):
    by_name = {s.name: s for s in model.specs}
    assert by_name["VB_Command"].arbitration_id == 0x101 and by_name["VB_Command"].counter_signal == "VB_Cmd_Counter"
    assert by_name["VB_Status"].checksum_fn is vb.e2e_checksum
    assert by_name["VB_Command"].checksum_fn is vb.command_checksum  # CRC-12 since issue 15
    assert by_name["VB_Heartbeat"].checksum_signal == "VB_HB_Checksum"  # E2E-protected since issue 15
    assert by_name["ARS408_ObjGeneral"].list_message and not by_name["ARS408_ObjStatus"].list_message
    assert by_name["ARS408_ObjStatus"].period_s == pytest.approx(0.072)
    assert set(model.valve_boards) == {"valves"} and set(model.radars) == {"radar_lr"}


def test_clean_stream_has_no_violation(model):
    ch = BusChecker(model.specs)
    for i in range(50):
        ch.feed(cmd(model, i % 16), 100.0 + 0.01 * i)
    assert ch.tally.total == 0
    st = ch.stats[(0x101, False)]
    assert st.count == 50 and st.rate_hz == pytest.approx(100.0)
    assert st.gap_min_s == pytest.approx(0.01) and st.gap_max_s == pytest.approx(0.01)


def test_counter_skip_and_repeat_counted_with_first_and_last_time(model):
    ch = BusChecker(model.specs)
    counters = [0, 1, 2, 4, 5, 5, 6, 7]  # a skip at index 3, a repeat at index 5
    for i, c in enumerate(counters):
        ch.feed(cmd(model, c), 10.0 + 0.01 * i)
    v = ch.tally.get("counter", "0x101 VB_Command @valves")
    assert v is not None and v.count == 2
    assert v.first_s == pytest.approx(0.03) and v.last_s == pytest.approx(0.05)
    assert v.detail == "repeat (5 -> 5)"
    assert ch.tally.by_kind() == {"counter": 2}


def test_counter_resynchronises_after_a_silence(model):
    ch = BusChecker(model.specs)
    ch.feed(cmd(model, 3), 0.0)
    ch.feed(cmd(model, 9), 0.5)  # 50 cycles of silence: a restart, not a counter error
    assert ch.tally.get("counter", "0x101 VB_Command @valves") is None
    assert ch.tally.get("cycle_late", "0x101 VB_Command @valves").count == 1


def test_checksum_fault_is_flagged_and_the_frame_still_decodes(model):
    ch = BusChecker(model.specs)
    ok = status(model, 0, open_mask=1)
    bad = status(model, 1)
    bad.data[7] ^= 0x5A
    ch.feed(ok, 0.0)
    ch.feed(bad, 0.02)
    v = ch.tally.get("checksum", "0x181 VB_Status @valves")
    assert v is not None and v.count == 1 and v.first_s == pytest.approx(0.02)
    assert ch.tally.get("counter", "0x181 VB_Status @valves") is None


def test_dlc_fault_is_flagged_and_not_decoded(model):
    ch = BusChecker(model.specs)
    short = cmd(model, 0)
    short.data = short.data[:6]
    short.dlc = 6
    assert ch.feed(short, 1.0) is None
    v = ch.tally.get("dlc", "0x101 VB_Command @valves")
    assert v.count == 1 and v.detail == "DLC 6, DBC 8"


def test_unknown_id_error_frame_and_range(model):
    ch = BusChecker(model.specs)
    ch.feed(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"), 0.0)
    ch.feed(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"), 0.1)
    ch.feed(can.Message(arbitration_id=0x101, is_extended_id=True, data=bytes(8)), 0.2)  # wrong ID format
    ch.feed(can.Message(is_error_frame=True), 0.3)
    hb = _node_codec(model).encode(vb.HEARTBEAT, vb.heartbeat_signals(
        vb.ValveBoardHeartbeat(1.0, (1, 2, 0), vb.BoardState.OPERATIONAL)))
    hb.data[6] |= 0x0C  # VB_HB_State 3 (bits 50-51): above the DBC's [0|2] and not in its VAL_ table
    hb.data = bytearray(vb.seal(hb.arbitration_id, hb.data))
    ch.feed(hb, 0.4)
    assert ch.tally.get("unknown_id", "0x123").count == 2
    assert ch.tally.get("unknown_id", "0x00000101").count == 1
    assert ch.tally.get("error_frame", "bus").count == 1
    assert ch.tally.get("range", "VB_Heartbeat.VB_HB_State").count == 1
    assert ch.tally.get("enum", "VB_Heartbeat.VB_HB_State").count == 1


def test_cycle_early_and_timeout_once_per_silence(model):
    ch = BusChecker(model.specs)
    ch.feed(status(model, 0), 0.0)
    ch.feed(status(model, 1), 0.005)  # 5 ms against a 20 ms cycle
    assert ch.tally.get("cycle_early", "0x181 VB_Status @valves").count == 1
    ch.check_timeouts(0.05)   # 45 ms silent: under 3 cycles
    assert ch.tally.get("timeout", "0x181 VB_Status @valves") is None
    ch.check_timeouts(0.1)
    ch.check_timeouts(0.2)    # the same silence: counted once
    assert ch.tally.get("timeout", "0x181 VB_Status @valves").count == 1
    ch.feed(status(model, 2), 0.3)
    ch.check_timeouts(0.5)    # a second silence
    v = ch.tally.get("timeout", "0x181 VB_Status @valves")
    assert v.count == 2 and v.first_s == pytest.approx(0.1) and v.last_s == pytest.approx(0.5)


def test_tally_orders_by_kind():
    t = ViolationTally()
    t.add("timeout", "b", 2.0)
    t.add("dlc", "a", 1.0)
    t.add("dlc", "a", 3.0, "x")
    assert [(v.kind, v.count, v.first_s, v.last_s) for v in t.items()] == [("dlc", 2, 1.0, 3.0), ("timeout", 1, 2.0, 2.0)]
    assert t.total == 3


def test_vehicle_view_infers_duties_and_phase(model):
    mon = Monitor(model)
    for i in range(5):
        mon.feed(cmd(model, i, duty_pct=50.0), 0.01 * i)
    mon.feed(status(model, 0, open_mask=1), 0.045)
    rep = mon.report(None)
    veh = rep["vehicle"]
    assert veh["phase"] == "thrusting"
    assert veh["valve_boards"][0]["duty_pct"][:2] == [50.0, 0.0]
    assert veh["valve_boards"][0]["valve_open"][0] is True
    mon.feed(status(model, 1, rail_off=True), 0.065)
    assert mon.report(None)["vehicle"]["phase"] == "disarmed (valve rail off)"


def test_listen_only_bus_refuses_to_send():
    inner = can.Bus(interface="virtual", channel="qiki-monitor-unit-lo")
    observer = can.Bus(interface="virtual", channel="qiki-monitor-unit-lo")
    bus = ListenOnlyBus(inner)
    try:
        with pytest.raises(ListenOnlyError):
            bus.send(can.Message(arbitration_id=1, is_extended_id=False, data=b"\x00"))
        with pytest.raises(ListenOnlyError):
            bus.send_periodic(can.Message(arbitration_id=1, is_extended_id=False), 0.01)
        with pytest.raises(ListenOnlyError):
            bus.state = can.BusState.ACTIVE
        assert bus.send_attempts == 2
        assert observer.recv(0.05) is None  # nothing left the monitor
    finally:
        bus.shutdown()
        observer.shutdown()


def test_open_listen_only_reports_the_mode():
    bus, mode = open_listen_only("virtual", "qiki-monitor-unit-mode", 500_000)
    bus.shutdown()
    assert isinstance(bus, ListenOnlyBus) and mode.startswith("software only")


@pytest.mark.skipif(not REAL_LOG.is_file(), reason=f"real ARS408 recording absent ({REAL_LOG})")
def test_replay_of_the_real_ars408_log_writes_log_and_mcap(model, tmp_path):
    asc, mcap_path = tmp_path / "bus.asc", tmp_path / "bus.mcap"
    rep = run_monitor(model, MonitorOptions(replay=REAL_LOG, fast=True, log_path=asc, mcap_path=mcap_path))
    assert rep["violation_total"] == 0, rep["violations"]
    assert rep["frames"] == 9579
    radar = rep["vehicle"]["radars"][0]
    assert 70.0 < radar["cycle_mean_ms"] < 76.0 and radar["cycles_dropped"] == 0
    status_row = next(m for m in rep["messages"] if "ARS408_ObjStatus" in m["message"])
    assert status_row["cycle_ms"] == 72.0 and 70.0 < status_row["period_mean_ms"] < 76.0
    # the log holds every frame, python-can reads it back
    back = list(can.LogReader(str(asc)))
    assert len(back) == 9579 and back[0].arbitration_id == 0x60A
    # the MCAP: every frame on /in/can/can0 with the flight record's schema, the report attached
    from mcap.reader import make_reader
    with open(mcap_path, "rb") as f:
        reader = make_reader(f)
        msgs = list(reader.iter_messages(topics=["/in/can/can0"]))
        assert len(msgs) == 9579
        schema, channel, first = msgs[0]
        assert schema.name == "qiki.CanRx" and channel.message_encoding == "json"
        rec = json.loads(first.data)
        assert rec["id"] == 0x60A and rec["dlc"] == 4 and rec["data"] == "03fbf710"
        f.seek(0)
        attachments = list(make_reader(f).iter_attachments())
    assert json.loads(attachments[0].data)["violation_total"] == 0


def test_cli_replay_once_json(capsys):
    if not REAL_LOG.is_file():
        pytest.skip(f"real ARS408 recording absent ({REAL_LOG})")
    from controller.cli import main

    status_ = main(["monitor", "--rig", "rigs/virtual.yaml", "--replay", str(REAL_LOG), "--fast", "--once", "--json",
                    "--check"])
    out = json.loads(capsys.readouterr().out)
    assert status_ == 0 and out["violation_total"] == 0 and out["send_attempts"] == 0


def test_cli_bad_options(capsys, tmp_path):
    from controller.cli import main

    assert main(["monitor", "--bus-option", "novalue", "--once"]) == 2
    assert main(["monitor", "--bus", "mcu", "--once"]) == 2
    assert "not a CAN bus" in capsys.readouterr().err
    assert main(["monitor", "--replay", str(tmp_path / "x.log"), "--once", "--log", str(tmp_path / "a.xyz")]) == 2
