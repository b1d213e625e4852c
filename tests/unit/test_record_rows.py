"""Rows on the tick (issue 12, the recording's cost): a row's record is the dict it replaces."""

from __future__ import annotations

import pytest

from controller.components.seam import telemetry_record
from controller.components.valves import _valves_keys
from controller.record.flight_writer import row_record


def test_row_record_is_the_dict_with_bytes_as_hex() -> None:
    keys = ("tick", "call", "data", "n")
    assert row_record(keys, (3, 0, b"\x01\xab", 2)) == {"tick": 3, "call": 0, "data": "01ab", "n": 2}
    rec = row_record(keys, (3, 0, "x", 2))
    assert list(rec) == list(keys) and rec["data"] == "x"
    with pytest.raises(ValueError):
        row_record(keys, (1, 2))


def test_valves_row_has_the_old_record_layout() -> None:
    duty = [0.0, 12.5, 100.0]
    row = (_valves_keys(3), (7, 0.07, *duty))
    assert _valves_keys(3) is _valves_keys(3)  # made once per valve count
    rec = telemetry_record(row)
    assert list(rec) == ["tick", "t_s", "duty_pct_0", "duty_pct_1", "duty_pct_2"]
    assert rec == {"tick": 7, "t_s": 0.07, "duty_pct_0": 0.0, "duty_pct_1": 12.5, "duty_pct_2": 100.0}
    assert len(_valves_keys(70)) == 72 and _valves_keys(70)[-1] == "duty_pct_69"


def test_telemetry_record_passes_a_record_through() -> None:
    rec = {"tick": 1, "t_s": 0.01}
    assert telemetry_record(rec) is rec
