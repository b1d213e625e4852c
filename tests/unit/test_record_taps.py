"""Taps record what each port returned to which call of which tick; replay ports give it back.

Each test records through a tap, passes the records through JSON (what the MCAP file
holds), and checks that the replay port returns the same values to the same calls, and
"nothing" to calls that got nothing.
"""

from __future__ import annotations

import json
import threading
import uuid

import can
import pytest

from controller.record.flight_log import MemorySink, schema_key
from controller.record.modbus_taps import ReplayPoller, TapPoller, snapshot_fields, snapshot_from
from controller.record.replay_ports import ReplayBus, ReplayClock, ReplayDivergence, ReplayInputs, ReplayLink
from controller.record.taps import TapBus, TapClock, TapLink, TickCursor
from hal.errors import BusError
from hal.modbus.poller import DeviceSnapshot, WriteTicket
from hal.serial.link import PipeLink


def _through_json(sink: MemorySink) -> ReplayInputs:
    return ReplayInputs.from_records((t, json.loads(json.dumps(r))) for t, r in sink.records)


def _virtual_pair() -> tuple[can.BusABC, can.BusABC]:
    ch = f"taps-{uuid.uuid4().hex[:8]}"
    return (can.Bus(interface="virtual", channel=ch, receive_own_messages=False),
            can.Bus(interface="virtual", channel=ch, receive_own_messages=False))


def test_can_frames_replay_at_the_same_tick_and_call() -> None:
    host, dev = _virtual_pair()
    cur, sink = TickCursor(), MemorySink()
    tap = TapBus(host, "can0", cur, sink)
    got: list[list[bytes]] = []
    try:
        for k in range(3):
            cur.begin(k, k * 10_000_000)
            for i in range(k):  # tick k: k frames
                dev.send(can.Message(arbitration_id=0x100 + i, data=bytes([k, i]), is_extended_id=False))
            frames = []
            while (m := tap.recv(timeout=0.0)) is not None:
                frames.append(bytes(m.data))
            got.append(frames)
            tap.send(can.Message(arbitration_id=0x200, data=bytes([k]), is_extended_id=False))
    finally:
        tap.shutdown()
        dev.shutdown()
    assert got == [[], [b"\x01\x00"], [b"\x02\x00", b"\x02\x01"]]
    inputs = _through_json(sink)
    cur2, out = TickCursor(), MemorySink()
    rb = ReplayBus("can0", cur2, inputs, out)
    again = []
    for k in range(3):
        cur2.begin(k, k * 10_000_000)
        frames = []
        while (m := rb.recv(timeout=0.0)) is not None:
            frames.append((m.arbitration_id, bytes(m.data)))
        again.append(frames)
        rb.send(can.Message(arbitration_id=0x200, data=bytes([k]), is_extended_id=False))
    assert again == [[], [(0x100, b"\x01\x00")], [(0x100, b"\x02\x00"), (0x101, b"\x02\x01")]]
    assert [r for t, r in out.records if t == "/out/can/can0"] == [r for t, r in sink.records if t == "/out/can/can0"]


def test_a_recorded_send_failure_fails_again_in_the_replay() -> None:
    inputs = ReplayInputs.from_records([("/out/can/can0", {"tick": 4, "call": 0, "id": 1, "ext": False, "rtr": False,
                                                            "err": False, "fd": False, "brs": False, "esi": False,
                                                            "dlc": 0, "data": "", "ok": False,
                                                            "error_type": "CanOperationError", "error": "buffer full"})])
    cur, out = TickCursor(), MemorySink()
    rb = ReplayBus("can0", cur, inputs, out)
    cur.begin(3, 0)
    rb.send(can.Message(arbitration_id=1, data=b""))  # no record: accepted
    cur.begin(4, 0)
    with pytest.raises(can.CanError, match="buffer full"):
        rb.send(can.Message(arbitration_id=1, data=b""))
    assert [r["ok"] for _, r in out.records] == [True, False]


def test_bus_state_is_sticky_from_the_read_where_it_changed() -> None:
    inputs = ReplayInputs.from_records([("/in/can/can0/state", {"tick": 5, "call": 0, "state": "ERROR"}),
                                        ("/in/can/can0/state", {"tick": 9, "call": 0, "state": "ACTIVE"})])
    cur = TickCursor()
    rb = ReplayBus("can0", cur, inputs, MemorySink())
    seen = []
    for k in range(11):
        cur.begin(k, 0)
        seen.append(rb.state.name)
    assert seen == ["ACTIVE"] * 5 + ["ERROR"] * 4 + ["ACTIVE"] * 2


def test_serial_reads_writes_and_errors_replay() -> None:
    host, dev = PipeLink.pair("mcu")
    cur, sink = TickCursor(), MemorySink()
    tap = TapLink(host, "mcu", cur, sink)
    cur.begin(0, 0)
    dev.write(b"\x01\x02")
    assert tap.read(1) == b"\x01"
    assert tap.read() == b"\x02"
    assert tap.read() == b""
    assert tap.write(b"hb") == 2
    cur.begin(1, 10)
    host.simulate_unplug()
    with pytest.raises(BusError):
        tap.read()
    inputs = _through_json(sink)
    cur2, out = TickCursor(), MemorySink()
    rl = ReplayLink("mcu", cur2, inputs, out)
    cur2.begin(0, 0)
    assert (rl.read(1), rl.read(), rl.read(), rl.write(b"hb")) == (b"\x01", b"\x02", b"", 2)
    cur2.begin(1, 10)
    with pytest.raises(BusError):
        rl.read()
    assert out.records == [("/out/serial/mcu", {"tick": 0, "call": 0, "data": "6862", "n": 2})]


class _FakePoller:
    """Snapshots and a write ticket a test completes by hand."""

    def __init__(self) -> None:
        self.snap = DeviceSnapshot("bms")
        self.devices = ["bms"]
        self.clock = None
        self.tickets: list[WriteTicket] = []

    def snapshot(self, device: str) -> DeviceSnapshot:
        return self.snap

    def submit_write(self, device: str, quantity: str, value: object) -> WriteTicket:
        t = WriteTicket(device, quantity, value)
        self.tickets.append(t)
        return t


def test_modbus_snapshots_and_write_results_replay_where_the_tick_saw_them() -> None:
    fake = _FakePoller()
    cur, sink = TickCursor(), MemorySink()
    tap = TapPoller(fake, cur, sink)  # type: ignore[arg-type]
    seen = []
    cur.begin(0, 0)
    seen.append(tap.snapshot("bms"))
    ticket = tap.submit_write("bms", "relay", True)
    assert not ticket.done.is_set()
    cur.begin(1, 0)
    from types import MappingProxyType
    fake.snap = DeviceSnapshot("bms", values=MappingProxyType({"soc_pct": 88.5, "ok": True, "nan": float("nan")}),
                               sample_time_s=0.01, polls_ok=1, transactions=2)
    seen.append(tap.snapshot("bms"))
    seen.append(tap.snapshot("bms"))  # same object: not recorded again
    fake.tickets[0].ok = True
    fake.tickets[0].done.set()
    cur.begin(2, 0)
    assert ticket.done.is_set() and ticket.ok
    assert sum(1 for t, _ in sink.records if t == "/in/modbus/bms") == 2
    inputs = _through_json(sink)
    cur2, out = TickCursor(), MemorySink()
    rp = ReplayPoller(["bms"], None, cur2, inputs, out)
    cur2.begin(0, 0)
    assert rp.snapshot("bms") == seen[0]
    rt = rp.submit_write("bms", "relay", True)
    assert not rt.done.is_set()
    cur2.begin(1, 0)
    s1 = rp.snapshot("bms")
    assert s1.values["soc_pct"] == 88.5 and s1.values["ok"] is True and s1.sample_time_s == 0.01
    assert s1.values["nan"] != s1.values["nan"]  # NaN survives as NaN
    assert not rt.done.is_set()  # the recorded run saw it done only at tick 2
    cur2.begin(2, 0)
    assert rt.done.is_set() and rt.ok


def test_snapshot_fields_round_trip_exactly() -> None:
    from types import MappingProxyType

    from hal.modbus.link import ModbusFailure
    s = DeviceSnapshot("pdu", values=MappingProxyType({"v": 0.1 + 0.2, "flags": {"a": 1, "b": True}}),
                       sample_time_s=1 / 3, stale_after_s=float("inf"), polls_failed=2,
                       failures_by_kind=MappingProxyType({"timeout": 2}),
                       last_failure=ModbusFailure("timeout", 0, "no reply"))
    back = snapshot_from("pdu", json.loads(json.dumps(snapshot_fields(s))))
    assert back == s


def test_the_clock_records_control_thread_readings_only_and_replays_them() -> None:
    class Ticking:
        t = 0

        def now_ns(self) -> int:
            self.t += 1_000_003
            return self.t

        def now_s(self) -> float:
            return self.now_ns() * 1e-9

    cur, sink = TickCursor(), MemorySink()
    clock = TapClock(Ticking(), cur, sink)
    cur.begin(0, 0)
    a, b = clock.now_s(), clock.now_ns()
    th = threading.Thread(target=clock.now_s)
    th.start()
    th.join()
    assert len(sink.records) == 2
    rc = ReplayClock(TickCursor(), _through_json(sink))
    rc._cursor.begin(0, 0)
    assert (rc.now_s(), rc.now_ns()) == (a, b)
    with pytest.raises(ReplayDivergence, match="tick 0: clock read 2"):
        rc.now_s()


@pytest.mark.parametrize(("topic", "key"), [
    ("/in/can/can0", "can_rx"), ("/in/can/can0/state", "can_state"), ("/out/can/can1", "can_tx"),
    ("/in/serial/mcu", "serial_rx"), ("/out/serial/sr", "serial_tx"), ("/in/modbus/bms", "modbus_snapshot"),
    ("/in/modbus/pdu/ticket", "modbus_ticket"), ("/out/modbus/pdu", "modbus_write"), ("/in/clock", "clock"),
    ("/tick", "tick"), ("/events", "event"), ("/radar/radar_lr/tracks", "tracks"),
])
def test_every_topic_family_has_a_schema(topic: str, key: str) -> None:
    assert schema_key(topic) == key


def test_an_unknown_topic_has_no_schema() -> None:
    with pytest.raises(KeyError):
        schema_key("/whatever")
