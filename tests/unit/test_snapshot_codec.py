"""The snapshot codec (hal.snapshot): exact JSON for controller-side state, and back (issue 12 part 4)."""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pytest

from controller.record.snapshots import SnapshotSchedule, pick
from firmware_bridge.protocols.framing import FrameDecoder
from firmware_bridge.protocols.qiki_mcu import McuStatus, WatchdogState
from hal.can.ingress import StreamState
from hal.snapshot import SnapshotError, apply, capture, capture_all, decode, encode, restore_all


def _through_json(v: object) -> object:
    return decode(json.loads(json.dumps(encode(v), allow_nan=False)))


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2**70, "text", "$not-a-tag", 0.1, 1e-310, -0.0, 1.7976931348623157e308,
    [1, 2.5, "x", None], {"a": 1, "b": [0.30000000000000004]},
])
def test_plain_values_round_trip_exactly(value: object) -> None:
    back = _through_json(value)
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, back) == math.copysign(1.0, value)  # type: ignore[arg-type]


def test_non_finite_floats_are_tagged_not_json_numbers() -> None:
    enc = encode([math.nan, math.inf, -math.inf])
    json.dumps(enc, allow_nan=False)  # no NaN literal in the record
    back = decode(enc)
    assert isinstance(back, list) and math.isnan(back[0]) and back[1:] == [math.inf, -math.inf]


def test_containers_keep_their_types() -> None:
    value = {
        "tuple": (1, (2.0, "x")), "set": {3, 1, 2}, "fset": frozenset({(1, 2)}),
        "counter": Counter({"dlc": 2, "range": 1}), "deque": deque([1.5, 2.5], maxlen=4),
        "bytes": b"\x00\xff", "bytearray": bytearray(b"\x01\x02partial"), "proxy": MappingProxyType({"v": 1.25}),
        "int_keys": {385: 4, 1793: 1}, "tuple_keys": {(frozenset({1}), ()): 0}, "dollar": {"$t": 1},
    }
    back = _through_json(value)
    assert back == value
    assert isinstance(back, dict)
    for k, v in value.items():
        assert type(back[k]) is type(v), k
    assert back["deque"].maxlen == 4


def test_numpy_arrays_and_scalars_are_exact() -> None:
    a = np.array([[0.1, -0.0], [math.nan, 1e300]])
    i = np.array([1, -2, 3], dtype=np.int64)
    s = np.float64(0.1) + np.float64(0.2)
    back = _through_json({"a": a, "i": i, "s": s, "n": np.int64(5), "b": np.bool_(True), "e": np.zeros((0, 4, 4))})
    assert isinstance(back, dict)
    assert back["a"].shape == (2, 2) and back["a"].dtype == a.dtype
    assert np.array_equal(back["a"], a, equal_nan=True) and math.copysign(1, back["a"][0, 1]) < 0
    assert back["i"].dtype == np.int64 and np.array_equal(back["i"], i)
    assert type(back["s"]) is np.float64 and back["s"] == s
    assert type(back["n"]) is np.int64 and back["b"] == np.bool_(True)
    assert back["e"].shape == (0, 4, 4)


def test_dataclasses_and_enums_of_qiki_are_rebuilt() -> None:
    st = McuStatus(uptime_ms=1234, estop_pressed=False, rail_enabled=True, watchdog_state=WatchdogState(0),
                   fault_flags=0)
    back = _through_json(st)
    assert back == st and type(back) is McuStatus and type(back.watchdog_state) is WatchdogState  # type: ignore[attr-defined]


@dataclass
class _Foreign:
    x: int = 1


def test_a_class_outside_qiki_is_refused_both_ways() -> None:
    enc = encode(_Foreign())  # tests.* is not a trusted package: it encodes, but never decodes
    with pytest.raises(SnapshotError, match="outside QIKI"):
        decode(enc)
    with pytest.raises(SnapshotError, match="outside QIKI"):
        decode({"$dc": "os:PathLike", "f": {}})


def test_objects_without_an_encoding_fail_loudly_with_their_path() -> None:
    class Port:
        def __init__(self) -> None:
            self.bus = object()

    with pytest.raises(SnapshotError, match="Port.bus"):
        capture(Port(), ["bus"])
    with pytest.raises(SnapshotError):
        encode(lambda: None)


def test_capture_all_restores_a_partial_frame_in_place() -> None:
    dec = FrameDecoder()
    dec.feed(b"\x05\x01\x02")  # a frame cut short: the decoder keeps the bytes
    state = json.loads(json.dumps(capture_all(dec)))
    fresh = FrameDecoder()
    restore_all(fresh, state)
    assert capture_all(fresh) == capture_all(dec)


def test_slotted_state_round_trips_through_apply() -> None:
    st = StreamState("VB_Status", 0.02, 0.06, regular=True)
    st.last_rx_s, st.accepted, st.counter_score = 1.23, 42, 2
    fresh = StreamState("VB_Status", 0.02, 0.06, regular=True)
    apply(fresh, json.loads(json.dumps(capture(st, StreamState.STATE))), StreamState.STATE)
    assert [getattr(fresh, n) for n in StreamState.STATE] == [getattr(st, n) for n in StreamState.STATE]
    with pytest.raises(SnapshotError, match="lacks"):
        apply(fresh, {}, StreamState.STATE)


def test_schedule_takes_one_per_period_and_one_per_new_fault() -> None:
    sch = SnapshotSchedule(5.0)
    due = [(k, sch.due(k * 0.01, ["a"] if 700 <= k < 705 else [])) for k in range(1200)]
    assert [(k, r) for k, r in due if r is not None] == [(500, "period"), (700, "fault"), (1000, "period")]
    sch.resume(7.0, ["a"])
    assert sch.due(7.01, ["a"]) is None and sch.due(7.02, ["a", "b"]) == "fault"


def test_pick_takes_the_newest_snapshot_at_or_before_t() -> None:
    msgs = [("/snapshot", {"tick": 500, "t_s": 5.0, "reason": "period", "state": {}}),
            ("/tick", {"tick": 600, "t_s": 6.0}),
            ("/snapshot", {"tick": 1000, "t_s": 10.0, "reason": "period", "state": {}})]
    assert pick(msgs, 4.99) is None
    p = pick(msgs, 9.5)
    assert p is not None and (p.tick, p.reason) == (500, "period")
    p = pick(msgs, 10.0)
    assert p is not None and p.tick == 1000


def test_set_members_are_encoded_in_one_order_whatever_the_hash_seed() -> None:
    """A replay runs in another process (another PYTHONHASHSEED) and compares snapshots byte
    for byte: a set of strings must not be written in hash order."""
    import subprocess
    import sys

    assert encode({"sr", "lr", "mcu"}) == {"$set": ["lr", "mcu", "sr"]}
    assert encode(frozenset({3, 1, 2})) == {"$fset": [1, 2, 3]}
    assert decode(encode({"sr", "lr"})) == {"sr", "lr"}
    code = ("import json; from hal.snapshot import encode; "
            "print(json.dumps(encode({'radar_lr', 'radar_sr', 'valves', 'mcu', 'bms', 'pdu'})))")
    texts = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("0", "1", "9", "12345")}
    assert len(texts) == 1 and json.loads(texts.pop())["$set"] == ["bms", "mcu", "pdu", "radar_lr", "radar_sr",
                                                                   "valves"]


class _Text(str):
    """A str subclass: not a plain str, encoded as the isinstance checks say."""


@pytest.mark.parametrize(("value", "expected"), [
    # the exact-type fast path and the isinstance checks agree on what each value becomes
    (1.5, 1.5), (math.inf, {"$f": "inf"}), (True, True), (_Text("s"), "s"),
    ({"a": (1, 2)}, {"a": {"$t": [1, 2]}}), ({"$a": 1}, {"$d": [["$a", 1]]}), ({1: 2}, {"$d": [[1, 2]]}),
    ({_Text("k"): 1}, {"k": 1}), (Counter({"a": 2}), {"$counter": [["a", 2]]}),
    (np.array([1.0, math.nan], dtype=np.float32), {"$nd": [1.0, {"$f": "nan"}], "dtype": "<f4", "shape": [2]}),
    (np.array([True, False]), {"$nd": [1, 0], "dtype": "|b1", "shape": [2]}),
])
def test_encode_gives_each_type_its_encoding(value: object, expected: object) -> None:
    assert json.dumps(encode(value)) == json.dumps(expected)
