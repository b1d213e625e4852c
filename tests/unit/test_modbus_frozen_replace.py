"""``hal.modbus.link.frozen_replace`` is ``dataclasses.replace`` for the Modbus snapshot classes (issue 16)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from hal.modbus.link import LinkStats, ModbusFailure, frozen_replace
from hal.modbus.poller import DeviceSnapshot

_SNAP = DeviceSnapshot("bms", MappingProxyType({"soc_pct": 90.0}), 1.25, 0.3, 3, 4, 1, 0, 0, 9,
                       MappingProxyType({"timeout": 1}), ModbusFailure("timeout", detail="t"))


@pytest.mark.parametrize("obj, changes", [
    (_SNAP, {"transactions": 10}),
    (_SNAP, {"values": MappingProxyType({"soc_pct": 89.5}), "sample_time_s": 1.5, "polls_ok": 5,
             "consecutive_failures": 0}),
    (_SNAP, {"polls_failed": 2, "last_failure": ModbusFailure("corrupt", detail="crc")}),
    (DeviceSnapshot("pdu"), {}),
    (LinkStats(requests=3, ok=2, timeouts=1), {"requests": 4, "ok": 3}),
    (LinkStats(), {"requests": 1, "exceptions": 1, "exception_codes": {2: 1}}),
])
def test_equals_dataclasses_replace(obj: object, changes: dict[str, object]) -> None:
    before = dict(vars(obj))
    new = frozen_replace(obj, **changes)
    ref = dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    assert type(new) is type(ref)
    assert new == ref
    assert vars(new) == vars(ref)  # every field, in the same order
    assert list(vars(new)) == list(vars(ref))
    assert vars(obj) == before  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.requests = 0  # type: ignore[attr-defined]  # still frozen


def test_only_init_fields_no_post_init() -> None:
    """The shortcut holds only for classes whose fields are all __init__ fields, no __post_init__."""
    for cls in (LinkStats, DeviceSnapshot):
        assert not hasattr(cls, "__post_init__")
        assert all(f.init for f in dataclasses.fields(cls))
        assert "__slots__" not in vars(cls)


@pytest.mark.parametrize("obj, changes", [
    (_SNAP, {"polls_fialed": 2}),
    (_SNAP, {"polls_ok": 5, "sample_time": 1.5}),
    (LinkStats(), {"request": 1}),
])
def test_a_misspelled_field_raises_like_dataclasses_replace(obj: object, changes: dict[str, object]) -> None:
    before = dict(vars(obj))
    with pytest.raises(TypeError):
        dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    bad = next(k for k in changes if k not in before)
    with pytest.raises(TypeError, match=bad):
        frozen_replace(obj, **changes)
    assert vars(obj) == before  # the original is untouched
