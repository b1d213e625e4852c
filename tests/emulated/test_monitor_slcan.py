"""qiki monitor on the real ARS408 recording replayed through a process-crossing interface:
a child process emulates an slcan adapter on a pty (hal/can/slcan_pty.py) and replays the
candump log paced by its timestamps; the monitor opens the pty with python-can's ``slcan``
interface, listen-only, for a few seconds. Judged (issue 13): the radar's object-list
cycle (~72 ms) and no violation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL_LOG = ROOT.parent / "shared" / "data" / "real" / "can" / "ars408" / "candump-2026-06-24_154259.log"

pytestmark = [pytest.mark.realtime, pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX ptys")]


@pytest.mark.skipif(not REAL_LOG.is_file(), reason=f"real ARS408 recording absent ({REAL_LOG})")
def test_real_ars408_over_slcan_pty_shows_the_cycle_and_no_violation():
    pytest.importorskip("serial", reason="python-can's slcan interface needs pyserial")
    emu = subprocess.Popen([sys.executable, "-m", "hal.can.slcan_pty", "--replay", str(REAL_LOG)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pty_path = emu.stdout.readline().strip()
        assert pty_path.startswith("/dev/"), emu.stderr.read()
        mon = subprocess.run(
            [sys.executable, "-m", "controller.cli", "monitor", "--rig", "rigs/virtual.yaml",
             "--interface", "slcan", "--channel", pty_path, "--bus-option", "sleep_after_open=0",
             "--once", "--duration", "4", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        emu.terminate()
        emu.wait(10)
    assert mon.returncode == 0, mon.stderr
    rep = json.loads(mon.stdout)
    assert "adapter listen-only (listen_only=True)" in rep["listen_only"] and rep["send_attempts"] == 0
    assert rep["source"] == f"slcan {pty_path}"
    assert rep["frames"] > 500  # about 250 frames/s
    assert rep["violation_total"] == 0, rep["violations"]
    status = next(m for m in rep["messages"] if "ARS408_ObjStatus" in m["message"])
    assert status["cycle_ms"] == 72.0
    assert 68.0 < status["period_mean_ms"] < 80.0, status
    radar = rep["vehicle"]["radars"][0]
    assert radar["cycles"] >= 40 and radar["cycles_dropped"] == 0
    assert 68.0 < radar["cycle_mean_ms"] < 80.0
    assert len(radar["objects"]) >= 3  # the recording's parked scene


def test_slcan_pty_adapter_both_directions_and_listen_only():
    """The emulated adapter as python-can's slcan interface sees it (reusable by qiki emulate)."""
    pytest.importorskip("serial", reason="python-can's slcan interface needs pyserial")
    import can

    from hal.can.slcan_pty import SlcanPtyAdapter, decode_frame, encode_frame

    std = can.Message(arbitration_id=0x101, is_extended_id=False, data=bytes(range(8)))
    ext = can.Message(arbitration_id=0x18DAF110, is_extended_id=True, data=b"\x01\x02")
    assert encode_frame(std) == b"t10180001020304050607\r" and encode_frame(ext) == b"T18DAF110201 02\r".replace(b" ", b"")
    assert decode_frame(b"t1012BEEF").data == bytearray(b"\xbe\xef") and decode_frame(b"x") is None
    with SlcanPtyAdapter() as adapter:
        bus = can.Bus(interface="slcan", channel=adapter.path, bitrate=500_000, sleep_after_open=0)
        try:
            assert adapter.wait_open(5.0) and not adapter.listen_only and adapter.bitrate_code == "S6"
            bus.send(std)
            deadline = 50
            while adapter.host_frames < 1 and deadline:
                bus.recv(0.05)  # skips the adapter's replies
                deadline -= 1
            got = adapter.take_host_frames()
            assert [(m.arbitration_id, bytes(m.data)) for m in got] == [(0x101, bytes(range(8)))]
            assert adapter.send(ext)
            m = None
            for _ in range(50):
                m = bus.recv(0.05)
                if m is not None:
                    break
            assert m is not None and m.arbitration_id == 0x18DAF110 and m.is_extended_id and bytes(m.data) == b"\x01\x02"
        finally:
            bus.shutdown()
        lo = can.Bus(interface="slcan", channel=adapter.path, bitrate=500_000, sleep_after_open=0, listen_only=True)
        try:
            for _ in range(50):
                if adapter.listen_only:
                    break
                lo.recv(0.02)
            assert adapter.listen_only
            lo.send(std)  # a listen-only adapter refuses (BEL), nothing reaches the bus
            for _ in range(10):
                lo.recv(0.02)
            assert adapter.host_frames_refused >= 1 and adapter.take_host_frames() == []
        finally:
            lo.shutdown()
