"""The far end of a rig (``qiki emulate``): the slcan bridge, the build, the record and its judge.

The wall-clock flights of two processes are in ``tests/emulated/test_two_process.py``;
these only wait (bounded) for the kernel to deliver bytes through a pty.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import can
import pytest

from controller.config import load_rig
from controller.errors import ConfigError
from controller.rig import check_rig
from controller.rig.far_end import build_far_end
from controller.rig.far_end_record import EmulatorRecord, judge_host_loss, read_record
from firmware_bridge.emulation.slcan_adapter import HOST_BACKLOG_MAX_BYTES, SlcanBridge
from hal.can.bus import open_can_bus

ROOT = Path(__file__).resolve().parents[2]


def _recv(bus: can.BusABC, timeout_s: float = 2.0) -> can.Message | None:
    """First data frame within ``timeout_s`` (lines that are not frames read as None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = bus.recv(timeout=0.05)
        if msg is not None:
            return msg
    return None


@pytest.fixture
def bridge():
    channel = f"test-bridge-{time.monotonic_ns()}"
    br = SlcanBridge(channel, 500_000)
    emu = open_can_bus("virtual", channel, 500_000)
    host = can.Bus(interface="slcan", channel=br.path, bitrate=500_000, sleep_after_open=0)
    try:
        assert br.adapter.wait_open(2.0)
        yield br, emu, host
    finally:
        host.shutdown()
        br.close()
        emu.shutdown()


@pytest.mark.realtime  # a bridge thread and a pty on the wall clock
def test_python_can_slcan_exchanges_frames_with_the_bridge(bridge):
    br, emu, host = bridge
    emu.send(can.Message(arbitration_id=0x123, data=b"\x01\x02\x03", is_extended_id=False))
    got = _recv(host)
    assert got is not None and got.arbitration_id == 0x123 and bytes(got.data) == b"\x01\x02\x03"
    host.send(can.Message(arbitration_id=0x101, data=bytes(range(8)), is_extended_id=False))
    host.send(can.Message(arbitration_id=0x1ABCDE, data=b"\xff", is_extended_id=True))
    a, b = _recv(emu), _recv(emu)
    assert a is not None and (a.arbitration_id, bytes(a.data)) == (0x101, bytes(range(8)))
    assert b is not None and b.is_extended_id and b.arbitration_id == 0x1ABCDE
    stats = br.stats()
    assert stats["bitrate_code"] == "S6" and stats["from_host"] == 2 and stats["written_to_host"] == 1


@pytest.mark.realtime  # a bridge thread and a pty on the wall clock
def test_the_bridge_acks_no_transmitted_frame(bridge):
    """A reader draining recv(timeout=0) until None gets every frame: no z\\r line between them."""
    br, emu, host = bridge
    for _ in range(8):  # the adapter's replies to the opening commands (C, S6, O): \r lines
        host.recv(timeout=0.05)
    for i in range(5):
        host.send(can.Message(arbitration_id=0x101, data=bytes([i] * 8), is_extended_id=False))
    for i in range(3):
        emu.send(can.Message(arbitration_id=0x200 + i, data=b"", is_extended_id=False))
    deadline = time.monotonic() + 2.0
    while br.stats()["written_to_host"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the last bytes through the pty
    got = []
    while (msg := host.recv(timeout=0)) is not None:
        got.append(msg.arbitration_id)
    assert got == [0x200, 0x201, 0x202]


@pytest.mark.realtime  # a bridge thread and a pty on the wall clock
def test_a_host_that_stops_reading_never_blocks_the_bridge(bridge):
    br, emu, _host = bridge
    # ~130 kB of slcan lines, never read. The bridge's guard reads TIOCINQ, the bytes the
    # kernel has moved on to the slave's read buffer; 13 kB could sit wholly in the tty's
    # flip buffer (64 kB) while that move waited (CI, SCHED_FIFO step: no drop seen).
    # Twice that limit cannot: the guard must trip before the pty blocks the bridge.
    n = 6000
    for _ in range(n):
        emu.send(can.Message(arbitration_id=0x100, data=bytes(8), is_extended_id=False))
    deadline = time.monotonic() + 5.0
    while br.stats()["to_host"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = br.stats()
    assert stats["to_host"] == n
    assert stats["dropped_host_not_reading"] > 0
    assert br.host_backlog_bytes() <= HOST_BACKLOG_MAX_BYTES + 64 * 22


def _rows(*states: dict[str, object], end: dict[str, object] | None = None) -> list[dict[str, object]]:
    base = {"open": [0] * 8, "cmd_nonzero": False, "cmd_timeout": False, "rail_enabled": True, "rail_powered": True}
    rows: list[dict[str, object]] = [{"kind": "start", "t_s": 0.0, "physics_step_s": 0.001}]
    rows += [{"kind": "state", **base, **s} for s in states]
    if end is not None:
        rows.append({"kind": "end", **end})
    return rows


def test_judge_host_loss_measures_the_closing_after_the_last_command():
    rows = _rows({"t_s": 1.0, "open": [1] + [0] * 7, "cmd_nonzero": True, "last_cmd_s": 1.0},
                 {"t_s": 1.1, "open": [1] + [0] * 7, "cmd_nonzero": True, "last_cmd_s": 1.1},
                 {"t_s": 1.3, "cmd_nonzero": False, "cmd_timeout": True, "last_cmd_s": 1.1},
                 {"t_s": 1.32, "cmd_timeout": True, "rail_enabled": False, "rail_powered": False},
                 end={"last_cmd_s": 1.1, "last_hb_s": 1.12})
    v = judge_host_loss(rows)
    assert v["thrusting_at_last_cmd"] is True
    assert v["valves_closed_s"] == 1.3 and v["valves_closed_after_cmd_s"] == pytest.approx(0.2)
    assert v["cmd_timeout_s"] == 1.3
    assert v["rail_dropped_s"] == 1.32 and v["rail_dropped_after_hb_s"] == pytest.approx(0.2)
    json.dumps(v)  # JSON-ready


def test_judge_host_loss_reports_a_valve_still_open():
    rows = _rows({"t_s": 1.0, "open": [0, 1] + [0] * 6, "cmd_nonzero": True, "last_cmd_s": 1.0},
                 end={"last_cmd_s": 1.0, "last_hb_s": 1.0})
    v = judge_host_loss(rows)
    assert v["valves_closed_s"] is None and v["valves_closed_after_cmd_s"] is None
    assert v["rail_dropped_s"] is None


def test_read_record_skips_a_line_cut_short(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"kind": "start", "t_s": 0.0}\n{"kind": "state", "t_s": 0.1, "op')
    assert read_record(p) == [{"kind": "start", "t_s": 0.0}]


def test_build_far_end_refuses_a_rig_that_emulates_nothing():
    cfg, path = load_rig(ROOT / "rigs" / "bench_two_process.yaml")
    with pytest.raises(ConfigError, match="emulation"):
        build_far_end(check_rig(cfg, path))


def test_far_end_of_the_virtual_rig_runs_and_records(tmp_path):
    """Built on ptys, slcan and TCP 127.0.0.1; with no host, the MCU never enables the rail."""
    cfg, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    rec = EmulatorRecord(tmp_path / "emulator.jsonl")
    far = build_far_end(check_rig(cfg, path), record=rec.event, tcp_ports={"power": 0})
    try:
        rec.attach(far)
        ep = far.endpoints
        assert ep["can0"]["interface"] == "slcan" and str(ep["can0"]["channel"]).startswith("/dev/pts/")
        assert str(ep["mcu"]["url"]).startswith("/dev/pts/") and str(ep["sr"]["url"]).startswith("/dev/pts/")
        assert str(ep["power"]["url"]).startswith("tcp://127.0.0.1:")
        # the families' emulators, in the in-process order: radar (lr, sr), power, tank (none here)
        assert [type(e).__name__ for e in far.sim.extra] == ["_Gate", "_Gate", "PowerWorldStepper"]
        assert far.sim.fault_plan is not None
        far.start(lambda: rec.start(far, ep))
        deadline = time.monotonic() + 5.0
        while far.clock.now_s() < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        far.close()
        rec.close(far)
    rows = read_record(tmp_path / "emulator.jsonl")
    # a ``lag`` row (the emulator thread late on a loaded machine) may come anywhere
    kinds = [r["kind"] for r in rows if r["kind"] != "lag"]
    assert kinds[:2] == ["start", "state"] and rows[-1]["kind"] == "end"
    states = [r for r in rows if r["kind"] == "state"]
    assert all(not r["rail_enabled"] and not any(r["open"]) for r in states)  # type: ignore[arg-type]
    end = rows[-1]
    assert end["valve_board"]["commands_accepted"] == 0  # type: ignore[index]
    assert end["can"]["can0"]["host_open"] is False  # type: ignore[index]
    far.close()  # idempotent
