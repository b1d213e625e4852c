"""POSE and IMU decode without the frozen dataclasses' ``__init__`` (issue 16 item 4, 2026-12-07e).

``qiki_mcu.decode`` builds the 100 Hz messages through their slots
(``_new_pose``/``_new_imu``); each must be the object ``Pose(*values)``/``Imu(*values)``
builds: same type, every field the same value and type (floats by ``float.hex``: -0.0
and 0.0 are equal but not the same), still frozen, same hash.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols import qiki_mcu as proto
from firmware_bridge.protocols.framing import RawFrame

_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_u32 = st.integers(0, 0xFFFFFFFF)


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y)
        assert (x.hex() if isinstance(x, float) else x) == (y.hex() if isinstance(y, float) else y)
    assert a == b and hash(a) == hash(b)


@settings(max_examples=100, deadline=None)
@given(_u32, st.lists(_f32, min_size=6, max_size=6))
def test_pose_decodes_as_the_dataclass_builds_it(t_ms: int, f: list[float]) -> None:
    payload = struct.pack("<Iffffff", t_ms, *f)
    got = proto.decode(RawFrame(0x21, 3, payload))
    _same(got, proto.Pose(*struct.unpack("<Iffffff", payload)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.x_m = 0.0  # type: ignore[misc, union-attr]


@settings(max_examples=100, deadline=None)
@given(_u32, st.lists(_f32, min_size=3, max_size=3))
def test_imu_decodes_as_the_dataclass_builds_it(t_ms: int, f: list[float]) -> None:
    payload = struct.pack("<Ifff", t_ms, *f)
    _same(proto.decode(RawFrame(0x20, 9, payload)), proto.Imu(*struct.unpack("<Ifff", payload)))


def test_non_finite_pose_and_imu_are_still_refused() -> None:
    assert proto.decode(RawFrame(0x21, 0, struct.pack("<Iffffff", 1, 0, float("nan"), 0, 0, 0, 0))) is None
    assert proto.decode(RawFrame(0x20, 0, struct.pack("<Ifff", 1, float("inf"), 0, 0))) is None


def test_a_builder_out_of_step_with_the_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="builder"):
        proto._slot_setters(proto.Imu, ("t_ms", "yaw_rate_radps", "accel_x_body_mps2"))
