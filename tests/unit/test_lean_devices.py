"""Lean device paths (issue 16/12, device side): bit-identical to the general paths they skip."""

from __future__ import annotations

import math
from pathlib import Path

import can
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.devices.valve_board import ValveBoardDriver

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"


def _duty_pct_to_raw_before(duty_pct: float) -> int:
    """The rule as it was before the float fast path (the oracle)."""
    if not isinstance(duty_pct, (int, float)) or not math.isfinite(duty_pct):
        return 0
    if duty_pct <= 0.0:
        return 0
    if duty_pct >= 100.0:
        return vb.DUTY_RAW_MAX
    return min(vb.DUTY_RAW_MAX, int(math.floor(duty_pct / vb.DUTY_STEP_PCT + 0.5)))


_DUTY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.0, max_value=101.0),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 99.0, 99.99999999999999, 100.0, 100.00000000000001,
                     math.nextafter(0.0, 1.0), math.nan, math.inf, -math.inf]),
    st.integers(min_value=-200, max_value=200),
    st.booleans(),
    st.floats(min_value=-1.0, max_value=101.0).map(np.float64),
    st.floats(min_value=-1.0, max_value=101.0, width=32).map(np.float32),
)


@settings(max_examples=400, deadline=None)
@given(_DUTY)
def test_duty_pct_to_raw_same_as_before(duty):
    assert vb.duty_pct_to_raw(duty) == _duty_pct_to_raw_before(duty)


def _drivers(n_valves: int) -> tuple[ValveBoardDriver, ValveBoardDriver]:
    codec = DbcCodec([QIKI_DBC])
    fast = ValveBoardDriver(codec, n_valves=n_valves, node_id=3)
    slow = ValveBoardDriver(codec, n_valves=n_valves, node_id=3)
    assert fast._raw_layout is not None
    slow._raw_layout = None  # the codec path: signal dict, DbcCodec.encode, seal_command
    return fast, slow


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.lists(st.lists(_DUTY, min_size=n, max_size=n), min_size=1, max_size=20)))
def test_command_frame_raw_path_bit_identical(frames):
    fast, slow = _drivers(len(frames[0]))
    for duty in frames:
        a, b = fast.command_frame(duty), slow.command_frame(duty)
        assert (a.arbitration_id, a.is_extended_id, a.is_fd, a.dlc, type(a.data), bytes(a.data)) == \
            (b.arbitration_id, b.is_extended_id, b.is_fd, b.dlc, type(b.data), bytes(b.data))
        assert vb.command_checksum_ok(a.arbitration_id, a.data)


def test_command_frame_memo_keyed_on_types_too():
    # np.float32(1.0) == 1.0, but duty_pct_to_raw answers 0 for a type it does not take;
    # a memo keyed on the values alone reused raw 1 (found by the test above in CI)
    fast, slow = _drivers(2)
    for duty in ([1.0, 50.0], [np.float32(1.0), 50.0], [1, 50.0], [True, 50.0], [1.0, 50.0],
                 [1.0, np.int64(50)]):
        a, b = fast.command_frame(duty), slow.command_frame(duty)
        assert bytes(a.data) == bytes(b.data), duty


def test_codec_compiled_at_first_use_answers_as_at_load():
    eager = DbcCodec([QIKI_DBC])
    lazy = DbcCodec([QIKI_DBC], compile_now=False)
    assert not any(c.ready for c in lazy._compiled.values())
    sig = vb.command_signals([50, 1, 0, 7, 0, 0, 25, 49], 9)
    assert bytes(lazy.encode(vb.COMMAND, sig).data) == bytes(eager.encode(vb.COMMAND, sig).data)
    assert lazy._compiled[vb.COMMAND].ready and not lazy._compiled[vb.STATUS].ready
    other = lazy.with_offset(2)  # shares the generated functions
    status = vb.seal(0x183, bytes(other.encode(vb.STATUS, vb.status_signals(
        vb.ValveBoardStatus(3, 0, 24.1, False, False, False, 31.0), 4)).data))
    frame = can.Message(arbitration_id=0x183, is_extended_id=False, dlc=8, data=status)
    a, b = other.decode(frame), eager.with_offset(2).decode(frame)
    assert a is not None and b is not None
    assert (a.name, a.frame_id, list(a.raw.items()), list(a.signals.items())) == \
        (b.name, b.frame_id, list(b.raw.items()), list(b.signals.items()))
    assert lazy._compiled[vb.STATUS].ready
    lazy.require({vb.HEARTBEAT: ()})  # a driver's messages are generated when it requires them
    assert lazy._compiled[vb.HEARTBEAT].ready
    assert lazy.not_compiled == eager.not_compiled == {}


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 29) - 1), st.binary(min_size=7, max_size=8))
def test_command_checksum_positional_tables_equal_the_crc12_walk(arbitration_id, data):
    from firmware_bridge.protocols.crc12 import crc12

    expected = crc12(bytes((arbitration_id & 0xFF,)) + data[:6], data[6] & 0xF)
    assert vb.command_checksum(arbitration_id, data) == expected
    assert vb.command_checksum(arbitration_id, bytearray(data)) == expected
