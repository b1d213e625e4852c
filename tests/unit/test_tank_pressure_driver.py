"""Tank-pressure driver against hand-built frames on a fake clock (no emulator, no bus)."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from firmware_bridge.protocols import tank_pressure as tp
from hal.can.codec import DbcCodec
from hal.devices.tank_pressure import TankPressureDriver
from hal.errors import BusConfigError

DBC = Path(__file__).resolve().parents[2] / "dbc"


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([DBC / "tank.dbc"])


def frame(codec: DbcCodec, pressure_bar: float, counter: int, *, temp_c: float = 20.0, fault: bool = False) -> can.Message:
    return codec.encode(tp.STATUS, tp.status_signals(tp.TankReading(pressure_bar, temp_c, fault), counter))


def feed(driver: TankPressureDriver, codec: DbcCodec, t0: float, n: int, pressure_bar: float = 180.0,
         counter0: int = 0) -> float:
    t = t0
    for i in range(n):
        t = t0 + i * tp.STATUS_PERIOD_S
        assert driver.on_frame(frame(codec, pressure_bar, counter0 + i), t)
    return t


def test_dbc_period_and_id(codec):
    d = TankPressureDriver(codec)
    assert d.arbitration_ids == (0x280,)
    assert d.period_s == pytest.approx(0.1)
    assert d.stale_after_s == pytest.approx(0.3)


def test_decode_physical_values(codec):
    d = TankPressureDriver(codec)
    assert d.on_frame(frame(codec, 187.33, 0, temp_c=-12.3), 0.0)
    r = d.reading
    assert r.pressure_bar == pytest.approx(187.33) and r.temperature_c == pytest.approx(-12.3)
    assert r.sensor_fault is False


def test_fresh_after_steady_frames_then_stale_after_three_periods(codec):
    d = TankPressureDriver(codec, stale_after_periods=3)
    assert d.stale_reason(0.0) == "no status received"
    t = feed(d, codec, 0.0, 5)
    assert d.fresh(t) and d.pressure_bar(t) == pytest.approx(180.0)
    ok, why = d.post_report(t)
    assert ok, why
    assert d.fresh(t + 0.3)
    assert not d.fresh(t + 0.31)
    assert d.stale_reason(t + 0.31).startswith("stale (")
    assert d.pressure_bar(t + 0.31) is None
    assert not d.post_report(t + 0.31)[0]


def test_repeated_counter_is_rejected(codec):
    d = TankPressureDriver(codec)
    t = feed(d, codec, 0.0, 4)
    assert not d.on_frame(frame(codec, 100.0, 3), t + 0.1)  # counter 3 again: old data
    assert d.reading.pressure_bar == pytest.approx(180.0)
    assert d.stats()["rejects"] == {"counter": 1}


def test_out_of_range_pressure_is_rejected_by_the_dbc_range(codec):
    d = TankPressureDriver(codec)
    msg = frame(codec, 100.0, 0)
    msg.data[0:2] = (50000).to_bytes(2, "little")  # 500 bar: beyond the transducer's 400 bar
    assert not d.on_frame(msg, 0.0)
    assert d.stats()["rejects"] == {"range": 1}


def test_implausible_readings(codec):
    d = TankPressureDriver(codec, max_pressure_bar=300.0)
    t = feed(d, codec, 0.0, 5, pressure_bar=350.0)
    assert d.pressure_bar(t) is None
    assert d.post_report(t) == (False, "tank pressure sensor: pressure 350.0 bar above the rated 300.0 bar")
    d2 = TankPressureDriver(codec)
    t = feed(d2, codec, 0.0, 4)
    assert d2.on_frame(frame(codec, 180.0, 4, fault=True), t + 0.1)
    assert d2.post_report(t + 0.1) == (False, "tank pressure sensor: transducer reports a sensor fault")


def test_dbc_without_the_message_is_refused(tmp_path):
    with pytest.raises(BusConfigError, match="TANK_Status"):
        TankPressureDriver(DbcCodec([DBC / "qiki.dbc"]))


def test_every_device_driver_has_a_family():
    from typing import get_args

    from controller.config import DeviceCfg
    from controller.rig import DRIVER_FAMILIES

    union = get_args(get_args(DeviceCfg)[0])
    drivers = {get_args(m.model_fields["driver"].annotation)[0] for m in union}
    assert drivers == set(DRIVER_FAMILIES)
