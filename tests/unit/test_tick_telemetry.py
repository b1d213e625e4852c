"""The record phase made once per run (TickTelemetry) hands what tick_row and component_records give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from controller.components.seam import telemetry_record
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
