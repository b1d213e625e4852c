"""The fault-plan dialect (``firmware_bridge.emulation.faults``, ``docs/fault-plans.md``)."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from firmware_bridge.emulation.faults import (
    FaultEntry,
    FaultParam,
    FaultParams,
    FaultPlan,
    FaultPlanError,
    FaultSpec,
    FaultTarget,
    resolve_entry,
)


class Knob:
    """A fault target that logs what the plan tells it."""

    FAULTS = MappingProxyType({
        "silent": FaultSpec("quiet"),
        "stuck": FaultSpec("one stuck", MappingProxyType({"n": FaultParam(int, 0, 0, 7, "index")})),
        "poke": FaultSpec("instant", windowed=False),
    })

    def __init__(self) -> None:
        self.log: list[tuple[str, str, dict, float]] = []

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        self.log.append(("apply", fault, dict(params), now_s))

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        self.log.append(("clear", fault, dict(params), now_s))


def _emulators():
    from firmware_bridge.emulation.ars408 import Ars408Emulator, Ars408ReplayEmulator
    from firmware_bridge.emulation.iwr6843 import Iwr6843Emulator
    from firmware_bridge.emulation.power import JkBmsEmulator, QikiPduEmulator
    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from firmware_bridge.emulation.tank_pressure import TankPressureEmulator
    from firmware_bridge.emulation.valve_board import ValveBoardEmulator

    return [Ars408Emulator, Ars408ReplayEmulator, Iwr6843Emulator, JkBmsEmulator, QikiPduEmulator, McuEmulator,
            TankPressureEmulator, ValveBoardEmulator]


@pytest.mark.parametrize("cls", _emulators(), ids=lambda c: c.__name__)
def test_every_emulator_declares_well_formed_faults(cls):
    assert cls.FAULTS, cls
    for name, spec in cls.FAULTS.items():
        assert name.isidentifier() and spec.doc
        for key, p in spec.params.items():
            assert key.isidentifier() and p.doc
            assert p.check(p.default) == p.default  # the default is inside its own bounds
        for method in ("apply_fault", "clear_fault"):
            assert callable(getattr(cls, method))


def test_plan_applies_in_time_order_and_clears_windows():
    k = Knob()
    plan = FaultPlan([FaultEntry(2.0, "k", "silent", until_s=3.0), FaultEntry(1.0, "k", "poke")], {"k": k})
    for t in (0.5, 1.0, 2.5, 3.0, 9.0):
        plan.step(t)
    assert k.log == [("apply", "poke", {}, 1.0), ("apply", "silent", {}, 2.5), ("clear", "silent", {}, 3.0)]
    assert plan.pending == 0


def test_back_to_back_windows_leave_the_fault_applied_and_overlaps_are_counted():
    k = Knob()
    plan = FaultPlan([FaultEntry(2.0, "k", "silent", until_s=5.0), FaultEntry(5.0, "k", "silent", until_s=7.0),
                      FaultEntry(6.0, "k", "silent", until_s=6.5)], {"k": k})
    for t in (2.0, 5.0, 6.0, 6.5, 7.0):
        plan.step(t)
    # [2, 5) then [5, 7) with [6, 6.5) inside: one fault, applied at 2 and cleared at 7
    assert [(a, t) for a, _, _, t in k.log] == [("apply", 2.0), ("clear", 7.0)]


def test_instances_with_other_parameters_are_cleared_apart():
    k = Knob()
    plan = FaultPlan([FaultEntry(1.0, "k", "stuck", until_s=4.0, params={"n": 0}),
                      FaultEntry(2.0, "k", "stuck", params={"n": 2})], {"k": k})
    plan.step(10.0)  # one late step still plays every change in time order
    assert k.log == [("apply", "stuck", {"n": 0}, 10.0), ("apply", "stuck", {"n": 2}, 10.0),
                     ("clear", "stuck", {"n": 0}, 10.0)]


def test_plan_tells_its_event_sink():
    k = Knob()
    seen: list[tuple[float, str, bool]] = []
    plan = FaultPlan([FaultEntry(1.0, "k", "silent", until_s=2.0, index=3)], {"k": k},
                     lambda t, e, applied: seen.append((t, f"{e.index}:{e.fault}", applied)))
    plan.step(1.0)
    plan.step(2.0)
    assert seen == [(1.0, "3:silent", True), (2.0, "3:silent", False)]


def test_plan_refuses_unknown_targets_and_faults():
    with pytest.raises(ValueError, match="no emulator 'x'"):
        FaultPlan([FaultEntry(1.0, "x", "silent")], {"k": Knob()})
    with pytest.raises(ValueError, match="has no fault 'loud'"):
        FaultPlan([FaultEntry(1.0, "k", "loud")], {"k": Knob()})


def test_knob_is_a_fault_target():
    assert isinstance(Knob(), FaultTarget)


@pytest.mark.parametrize("target, fault, until_s, params, key", [
    ("x", "silent", None, {}, "target"),
    ("k", "loud", None, {}, "fault"),
    ("k", "poke", 2.0, {}, "until_s"),
    ("k", "silent", None, {"n": 1}, "n"),
    ("k", "stuck", None, {"n": 8}, "n"),
    ("k", "stuck", None, {"n": 1.0}, "n"),
    ("k", "stuck", None, {"n": True}, "n"),
])
def test_resolve_entry_names_the_key_at_fault(target, fault, until_s, params, key):
    with pytest.raises(FaultPlanError) as info:
        resolve_entry(0, 1.0, target, fault, until_s, params, {"k": Knob.FAULTS})
    assert info.value.key == key


def test_resolve_entry_fills_defaults_and_floats():
    spec = {"k": MappingProxyType({"f": FaultSpec("d", MappingProxyType({
        "x_s": FaultParam(float, 0.5, 0.0, 1.0, "x"), "n": FaultParam(int, 1, 1, 9, "n")}))})}
    e = resolve_entry(4, 1.0, "k", "f", None, {"x_s": 1}, spec)
    assert dict(e.params) == {"x_s": 1.0, "n": 1} and isinstance(e.params["x_s"], float) and e.index == 4
    with pytest.raises(FaultPlanError, match="finite"):
        resolve_entry(0, 1.0, "k", "f", None, {"x_s": math.nan}, spec)
