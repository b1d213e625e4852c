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


def test_number_keys_clean_the_numbers_where_the_record_is_built() -> None:
    import math
    import pickle

    import numpy as np

    from controller.record.flight_writer import NumberKeys

    keys = NumberKeys(("tick", "x_m", "y_m", "z_m", "w_m", "state"), (1, 2, 3, 4))
    raw = (5, 1.5, math.nan, np.float64(2.25), None, "idle")
    rec = row_record(keys, raw)
    assert rec == {"tick": 5, "x_m": 1.5, "y_m": None, "z_m": 2.25, "w_m": None, "state": "idle"}
    assert type(rec["z_m"]) is float and row_record(keys, (5, 3, math.inf, -0.0, 1.0, "a"))["x_m"] == 3.0
    back = pickle.loads(pickle.dumps([keys, keys], pickle.HIGHEST_PROTOCOL))
    assert back[0] is back[1] and type(back[0]) is NumberKeys and back[0].numbers == (1, 2, 3, 4)
    assert back[0] == tuple(keys)
    with pytest.raises(IndexError):
        NumberKeys(("a",), (1,))
