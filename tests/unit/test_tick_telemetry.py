"""The record phase made once per run (TickTelemetry) hands what tick_row and component_records give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from controller.components.seam import ComponentBase, Telemetry, TickView, telemetry_record
from controller.record.flight_log import MemorySink
from controller.record.session import FlightSession
from controller.record.taps import TickCursor
from controller.vehicle.telemetry import TickTelemetry, component_records, tick_record

# the tiny fake vehicle of test_vehicle_manager (loaded by path: the tests are no package)
_spec = importlib.util.spec_from_file_location("_fake_vehicle", Path(__file__).with_name("test_vehicle_manager.py"))
assert _spec is not None and _spec.loader is not None
tvm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tvm)


def test_record_hands_tick_row_then_each_components_messages_in_order() -> None:
    r = tvm.rig_in("active")
    keys = ("tick", "t_s")
    # a component with a row and a record (an instance attribute: asked, unlike ComponentBase's)
    r.sensor.telemetry = lambda view: {"/x": (keys, (view.tick, view.now_s)), "/y": {"tick": view.tick}}
    sink = MemorySink()
    phase = TickTelemetry(r.v, FlightSession(None, None, TickCursor(), sink))
    r.tick()
    out: list[object] = []
    phase.record(7, out)
    recs = component_records(r.v)
    assert out == recs and [t for t, _ in recs] == ["/x", "/y"]
    assert sink.records == [("/tick", tick_record(r.v, 7)), *((t, telemetry_record(m)) for t, m in recs)]


class _ClassTelemetry(ComponentBase):
    """Defines ``telemetry`` in its class (the usual way): must be asked and recorded."""

    name = "class_telemetry"

    def telemetry(self, view: TickView) -> Telemetry:
        return {"/z": {"tick": view.tick, "from": "class"}}


class _BaseTelemetry(ComponentBase):
    """Keeps ComponentBase's ``telemetry`` (never a message): must not be asked."""

    name = "base_telemetry"


def _never_asked(self: ComponentBase, view: TickView) -> Telemetry:
    raise AssertionError(f"{self.name}: ComponentBase.telemetry was asked")


def test_class_level_telemetry_is_recorded_and_the_bases_is_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    r = tvm.rig_in("active")
    r.v.components += [_BaseTelemetry(), _ClassTelemetry()]  # after the ticks the rig's checks count
    sink = MemorySink()
    phase = TickTelemetry(r.v, FlightSession(None, None, TickCursor(), sink))
    # ComponentBase.telemetry, the very function (its identity kept), now raises when called
    monkeypatch.setattr(ComponentBase.telemetry, "__code__", _never_asked.__code__)
    out: list[object] = []
    phase.record(3, out)
    assert out == [("/z", {"tick": r.v.view().tick, "from": "class"})]
    assert sink.records == [("/tick", tick_record(r.v, 3)), ("/z", {"tick": r.v.view().tick, "from": "class"})]
