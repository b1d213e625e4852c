"""The Modbus tap's CRC text is exactly ``json.dumps(snapshot_fields(s), sort_keys=True)``.

:class:`~controller.record.modbus_taps.SortedText` writes a snapshot's sorted JSON from
planned layouts instead of json's encoder; every ``/tick`` record's ``ingress_crc32`` and
every replay's check (``ReplayPoller`` still uses json's encoder) depend on the two texts
being the same, for every value a poller can hold and for values it should not.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from controller.record.flight_log import MemorySink
from controller.record.modbus_taps import (
    ReplayPoller,
    SortedText,
    TapPoller,
    counter_fields,
    snapshot_fields,
    values_fields,
)
from controller.record.replay_ports import ReplayInputs
from controller.record.taps import TickCursor
from hal.modbus.link import ModbusFailure
from hal.modbus.poller import DeviceSnapshot


class _Code(IntEnum):
    A = 1


class _F(float):
    def __repr__(self) -> str:
        return "F!"


def _text(w: SortedText, s: DeviceSnapshot) -> str:
    return w.snapshot_text(s, values_fields(s), counter_fields(s))


def _expected(s: DeviceSnapshot) -> str:
    return json.dumps(snapshot_fields(s), sort_keys=True)


_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e300, 5e-324, 0.1])
_keys = st.text(max_size=6)  # non-ASCII, quotes, control characters
_scalars = (_floats | st.integers(min_value=-(2**70), max_value=2**70) | st.booleans() | st.none()
            | st.text(max_size=5) | st.sampled_from([_Code.A, _F(2.5), _F(math.nan)]))
_values = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4)
                       | st.dictionaries(st.integers(-3, 3), inner, max_size=3).map(MappingProxyType), max_leaves=12)


def _snapshot(values: Mapping[str, object], st_s: float | None, stale_s: float, fbk: dict[str, int],
              fail: ModbusFailure | None, n: int) -> DeviceSnapshot:
    return DeviceSnapshot("dev", values=MappingProxyType(dict(values)), sample_time_s=st_s,  # type: ignore[arg-type]
                          stale_after_s=stale_s, polls_ok=n, transactions=2 * n,
                          failures_by_kind=MappingProxyType(fbk), last_failure=fail)


@given(values=st.dictionaries(_keys, _values, max_size=8),
       st_s=st.none() | _floats, stale_s=_floats,
       fbk=st.dictionaries(st.sampled_from(["timeout", "exception", "deadline"]), st.integers(0, 9), max_size=2),
       fail=st.none() | st.builds(ModbusFailure, st.sampled_from(["timeout", "crc"]), st.integers(0, 4),
                                  st.text(max_size=4)),
       n=st.integers(0, 2**64))
def test_the_text_is_json_dumps_sorted(values: dict[str, object], st_s: float | None, stale_s: float,
                                       fbk: dict[str, int], fail: ModbusFailure | None, n: int) -> None:
    w = SortedText()
    s = _snapshot(values, st_s, stale_s, fbk, fail, n)
    assert _text(w, s) == _expected(s)
    assert _text(w, s) == _expected(s)  # planned layouts, again


def _encode_value_ref(v: object) -> object:
    """encode_value as it was written before its cases were inlined (the record's reference)."""
    if isinstance(v, bool) or isinstance(v, int) or isinstance(v, str):
        return v
    if isinstance(v, float):
        return {"f": v if math.isfinite(v) else repr(v)}
    if isinstance(v, Mapping):
        return {"map": {str(k): _encode_value_ref(x) for k, x in v.items()}}
    return {"repr": repr(v)}


@given(values=st.dictionaries(_keys, _values, max_size=8))
def test_the_record_s_values_are_encode_value_s(values: dict[str, object]) -> None:
    """The record (insertion order and types: 1, 1.0 and True differ in JSON) is the reference's."""
    s = _snapshot(values, 0.5, 1.5, {}, None, 1)
    ref = {k: _encode_value_ref(v) for k, v in s.values.items()}
    assert json.dumps(values_fields(s)) == json.dumps(ref)
    assert json.dumps(snapshot_fields(s)["values"]) == json.dumps(ref)


def test_a_planned_layout_takes_the_types_of_each_snapshot() -> None:
    """The same keys with other value types (1 and 1.0 and True compare equal) and signed zeros."""
    w = SortedText(max_plans_n=2)
    for v in (1, 1.0, True, 0.0, -0.0, math.nan, -math.inf, "x", None, {"b": 1, "a": 0.0}, _Code.A, 1, -0.0):
        s = _snapshot({"z": v, "a": 2.5, "m": {"q": v}}, 0.5, 0.30000000000000004, {}, None, 1)
        assert _text(w, s) == _expected(s), v


def test_tap_and_replay_feed_the_same_crc() -> None:
    cur, sink = TickCursor(), MemorySink()

    class Inner:
        clock = None
        devices = ["bms"]
        snap = _snapshot({"cell_v": 3.3, "alarms": {"raw": 0, "hot": False}, "n": 8}, 0.1, 1.5, {"timeout": 1},
                         ModbusFailure("timeout", 0, "no reply"), 3)

        def snapshot(self, device: str) -> DeviceSnapshot:
            return self.snap

    inner = Inner()
    tap = TapPoller(inner, cur, sink, clock=object())  # type: ignore[arg-type]
    crcs = []
    for k, v in enumerate((3.3, -0.0, math.nan)):
        cur.begin(k, 0)
        inner.snap = _snapshot({"cell_v": v, "alarms": {"raw": k, "hot": bool(k)}, "n": 8}, 0.1 * k, 1.5, {}, None, k)
        tap.snapshot("bms")
        tap.snapshot("bms")  # the same snapshot: fed once
        crcs.append(cur.crc32)
        assert cur.crc32 == zlib.crc32(_expected(inner.snap).encode())
    inputs = ReplayInputs.from_records((t, json.loads(json.dumps(r))) for t, r in sink.records)
    cur2 = TickCursor()
    rp = ReplayPoller(["bms"], object(), cur2, inputs, MemorySink())  # type: ignore[arg-type]
    again = []
    for k in range(3):
        cur2.begin(k, 0)
        rp.snapshot("bms")
        again.append(cur2.crc32)
    assert again == crcs
