"""qiki monitor on a live (python-can virtual) bus: injected counter, checksum and DLC faults on
the valve board's frames are flagged with their counts and first/last times, and the
monitor sends nothing. The injector keeps its own timestamps (``preserve_timestamps``), so
the times are exact and the test does not depend on the wall clock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import can
import pytest

from controller.config import load_rig
from controller.monitor.model import bus_model
from controller.monitor.run import MonitorOptions, run_monitor
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.devices.valve_board import ValveBoardDriver

ROOT = Path(__file__).resolve().parents[2]
T0 = 5000.0


def _frames() -> list[can.Message]:
    """100 commands (10 ms), 50 statuses (20 ms), 10 heartbeats (100 ms) of valve board node 1.

    Faults: command 40 skips a counter value, command 70 repeats command 69's counter;
    statuses 10 and 30 carry a wrong CRC; heartbeat 5 has DLC 6.
    """
    codec = ValveBoardDriver(DbcCodec([ROOT / "dbc" / "qiki.dbc"]), node_id=1).codec
    out: list[can.Message] = []

    def sealed(name: str, sig: dict, t: float) -> can.Message:
        msg = codec.encode(name, sig)
        seal = vb.seal_command if name == vb.COMMAND else vb.seal
        msg.data = bytearray(seal(msg.arbitration_id, msg.data))
        msg.timestamp = t
        return msg

    for i in range(100):
        counter = i + 1 if 40 <= i <= 69 else i  # a skip at 40; 70 repeats 69's value
        raw = [vb.duty_pct_to_raw(40.0 if i % 2 else 0.0)] + [0] * 7
        out.append(sealed(vb.COMMAND, vb.command_signals(raw, counter), T0 + 0.010 * i))
    for i in range(50):
        st = vb.ValveBoardStatus(valve_open_mask=1, valve_fault_mask=0, rail_voltage_v=24.0, cmd_timeout=False,
                                 rail_off=False, over_temp=False, board_temp_c=31.0)
        msg = sealed(vb.STATUS, vb.status_signals(st, i), T0 + 0.002 + 0.020 * i)
        if i in (10, 30):
            msg.data[7] ^= 0x5A
        out.append(msg)
    for i in range(10):
        hb = vb.ValveBoardHeartbeat(1.0 + 0.1 * i, (1, 2, 0), vb.BoardState.OPERATIONAL)
        msg = sealed(vb.HEARTBEAT, vb.heartbeat_signals(hb, i), T0 + 0.004 + 0.100 * i)
        if i == 5:
            msg.data = msg.data[:6]
            msg.dlc = 6
        out.append(msg)
    out.sort(key=lambda m: m.timestamp)
    return out


def test_injected_valve_board_faults_are_flagged(tmp_path):
    rig, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    model = bus_model(rig, path, "rigs/virtual.yaml")
    channel = "qiki-monitor-valve-faults"
    frames = _frames()
    injector = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    observer = can.Bus(interface="virtual", channel=channel)  # sees every frame anyone sends
    opened = threading.Event()
    all_counted = threading.Event()
    stop = threading.Event()
    result: dict = {}
    opts = MonitorOptions(interface="virtual", channel=channel, log_path=tmp_path / "bus.blf")

    def on_update(report: dict) -> None:
        if report.get("frames", 0) >= len(frames):
            all_counted.set()

    def run() -> None:
        result["report"] = run_monitor(model, opts, stop=stop, on_open=lambda _line: opened.set(),
                                       on_update=on_update, update_period_s=0.05)

    th = threading.Thread(target=run)
    th.start()
    try:
        assert opened.wait(10.0)  # the monitor's bus is open: frames sent from now on queue for it
        for msg in frames:
            injector.send(msg)
        seen = []
        deadline = time.monotonic() + 10.0
        while len(seen) < len(frames) and time.monotonic() < deadline:
            m = observer.recv(0.1)
            if m is not None:
                seen.append(m)
        assert all_counted.wait(10.0), "the monitor did not count every frame"
    finally:
        stop.set()
        th.join(10.0)
        injector.shutdown()
    extra = observer.recv(0.2)
    observer.shutdown()
    rep = result["report"]
    assert len(seen) == len(frames) and extra is None, "a frame other than the injected ones was on the bus"
    assert rep["send_attempts"] == 0
    assert rep["frames"] == len(frames)
    v = {(x["kind"], x["subject"]): x for x in rep["violations"]}
    t_cmd = lambda i: round(0.010 * i, 6)  # noqa: E731 - times since the first frame (command 0)
    counter = v[("counter", "0x101 VB_Command @valves")]
    assert (counter["count"], counter["first_s"], counter["last_s"]) == (2, t_cmd(40), t_cmd(70))
    assert counter["detail"] == "repeat (6 -> 6)"  # 70 % 16 = 6
    checksum = v[("checksum", "0x181 VB_Status @valves")]
    assert (checksum["count"], checksum["first_s"], checksum["last_s"]) == (2, pytest.approx(0.202), pytest.approx(0.602))
    dlc = v[("dlc", "0x701 VB_Heartbeat @valves")]
    assert (dlc["count"], dlc["first_s"], dlc["last_s"]) == (1, pytest.approx(0.504), pytest.approx(0.504))
    assert dlc["detail"] == "DLC 6, DBC 8"
    # nothing else on the frames themselves (the streams end with the test: timeouts allowed)
    others = {k for k in v if k[0] not in ("timeout",)} - {("counter", "0x101 VB_Command @valves"),
                                                          ("checksum", "0x181 VB_Status @valves"),
                                                          ("dlc", "0x701 VB_Heartbeat @valves"),
                                                          # heartbeat 5 was refused (DLC): 4 -> 6 is a counter skip
                                                          ("counter", "0x701 VB_Heartbeat @valves")}
    assert not others, others
    board = rep["vehicle"]["valve_boards"][0]
    assert board["duty_pct"][0] == 40.0 and board["state"] == "OPERATIONAL" and board["firmware"] == "1.2.0"
    # the log holds every frame with its spacing (python-can's BLF reader starts the times at 0)
    back = list(can.LogReader(str(tmp_path / "bus.blf")))
    assert len(back) == len(frames)
    assert back[-1].timestamp - back[0].timestamp == pytest.approx(frames[-1].timestamp - T0, abs=1e-5)
