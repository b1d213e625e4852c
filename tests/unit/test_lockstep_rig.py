"""The virtual rig's CAN bus in lockstep is a LockstepBus; extra nodes come from BuiltRig.open_can_node (issue 16)."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from controller.config import load_rig
from controller.rig import build_rig
from controller.safety.monitor import BusMonitor
from hal.can.lockstep import LockstepBus, is_lockstep_channel

ROOT = Path(__file__).resolve().parents[2]


def test_lockstep_build_opens_lockstep_nodes_that_hear_each_other() -> None:
    rig, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    built = build_rig(rig, path, mission=None, record=lambda *a, **k: None)
    try:
        channel = built.can_channels["can0"]
        assert is_lockstep_channel(channel)
        a, b = built.open_can_node("can0"), built.open_can_node("can0")
        assert type(a) is LockstepBus and type(b) is LockstepBus
        monitor = BusMonitor(channel, ROOT / "dbc" / "qiki.dbc")  # knows only the channel name
        built.closers.append(monitor.close)
        assert type(monitor._bus) is LockstepBus
        a.send(can.Message(arbitration_id=0x7F0, data=b"\x01\x02", is_extended_id=False))
        got = b.recv(timeout=0)
        assert got is not None and got.arbitration_id == 0x7F0 and bytes(got.data) == b"\x01\x02"
        assert a.recv(timeout=0) is None  # never its own frames
        with pytest.raises(KeyError):
            built.open_can_node("no_such_bus")
    finally:
        built.close()
    assert not is_lockstep_channel(channel)  # every node closed with the rig


def test_realtime_build_keeps_python_can_virtual() -> None:
    rig, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    built = build_rig(rig, path, mission=None, record=lambda *a, **k: None, realtime=True)
    try:
        node = built.open_can_node("can0")
        assert not isinstance(node, LockstepBus) and not is_lockstep_channel(built.can_channels["can0"])
    finally:
        built.close()
