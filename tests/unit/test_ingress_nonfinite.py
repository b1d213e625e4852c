"""Non-finite values are refused with the protocol's own error (issue 15 part 6)."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import valve_board as vb
from hal.devices.bms import bms_freshness_reason, non_finite_reason
from hal.devices.pdu import pdu_health, pdu_post_report
from hal.modbus.poller import DeviceSnapshot

STATUS = {"VB_Sts_ValveOpen": 0, "VB_Sts_ValveFault": 0, "VB_Sts_RailVoltage": 24.0, "VB_Sts_CmdTimeout": 0,
          "VB_Sts_RailOff": 0, "VB_Sts_OverTemp": 0, "VB_Sts_BoardTemp": 35.0}
HEARTBEAT = {"VB_HB_Uptime": 1.0, "VB_HB_FwMajor": 1, "VB_HB_FwMinor": 2, "VB_HB_FwPatch": 0, "VB_HB_State": 1}


@pytest.mark.parametrize("name", sorted(STATUS))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_status_from_signals_raises_protocol_error_on_non_finite(name, bad):
    with pytest.raises(ProtocolError, match=name):
        vb.status_from_signals({**STATUS, name: bad})


@pytest.mark.parametrize("name", sorted(HEARTBEAT))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_heartbeat_from_signals_raises_protocol_error_on_non_finite(name, bad):
    with pytest.raises(ProtocolError, match=name):
        vb.heartbeat_from_signals({**HEARTBEAT, name: bad})


def test_finite_signals_still_decode():
    assert vb.status_from_signals(STATUS).rail_voltage_v == 24.0
    assert vb.heartbeat_from_signals(HEARTBEAT).firmware_version == (1, 2, 0)


def snapshot(**values) -> DeviceSnapshot:
    base = {"valve_rail_enabled": False, "mcu_power_enabled": True, "bus_voltage_v": 25.0,
            "fault_flags": {"raw": 0}, "energy_used_wh": 1.5}
    return DeviceSnapshot(device="pdu", values=MappingProxyType({**base, **values}), sample_time_s=1.0,
                          stale_after_s=1.0)


def test_pdu_reply_with_non_finite_f32_is_refused():
    assert pdu_health(snapshot(), 1.1) is None
    for bad in (math.nan, math.inf, -math.inf):
        why = pdu_health(snapshot(energy_used_wh=bad), 1.1)
        assert why is not None and "reply refused: energy_used_wh" in why
        report = pdu_post_report(snapshot(energy_used_wh=bad), 1.1)
        assert not report.ok and "energy_used_wh" in report.reasons[0]


def test_bms_snapshot_with_non_finite_value_is_refused():
    assert non_finite_reason("BMS", {"a": 1.0, "flags": {"raw": 0}}) == ""
    snap = DeviceSnapshot(device="bms", values=MappingProxyType({"soc_pct": math.nan, "alarms": {"raw": 0}}),
                          sample_time_s=1.0, stale_after_s=1.0)
    assert bms_freshness_reason(snap, 1.1) == "BMS: reply refused: soc_pct is nan"
