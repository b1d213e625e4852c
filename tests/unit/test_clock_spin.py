"""MonotonicClock.sleep_until with a spin margin (the rig's ``spin_before_deadline_us``)."""

from __future__ import annotations

import pytest

import controller.clock as clock_mod
from controller.clock import MonotonicClock
from controller.config.controller_cfg import RealtimeKnobsCfg


def test_spin_sleeps_until_the_margin_then_never_returns_before_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = clock_mod.time.sleep
    monkeypatch.setattr(clock_mod.time, "sleep", lambda s: (slept.append(s), real_sleep(s)))
    c = MonotonicClock(spin_s=0.002)
    deadline = c.now_s() + 0.004
    c.sleep_until(deadline)
    assert c.now_s() >= deadline  # the busy-wait ends at the deadline, never before
    assert len(slept) == 1 and 0.0 < slept[0] <= 0.002 + 1e-9  # slept until the margin only


def test_within_the_margin_it_only_spins_and_without_it_only_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(clock_mod.time, "sleep", lambda s: slept.append(s))
    c = MonotonicClock(spin_s=0.01)
    deadline = c.now_s() + 0.001
    c.sleep_until(deadline)
    assert slept == [] and c.now_s() >= deadline
    plain = MonotonicClock()
    plain.sleep_until(plain.now_s() + 0.5)  # time.sleep is the recorder above: no real wait
    assert len(slept) == 1 and 0.49 < slept[0] <= 0.5
    plain.sleep_until(plain.now_s() - 1.0)  # past deadlines: nothing
    assert len(slept) == 1


def test_a_frozen_clock_never_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(clock_mod.time, "sleep", lambda s: slept.append(s))
    c = MonotonicClock(frozen=True, spin_s=0.5)
    c.sleep_until(0.25)
    assert slept == [0.25]


def test_the_knob_is_bounded() -> None:
    assert RealtimeKnobsCfg().spin_before_deadline_us == 0
    assert RealtimeKnobsCfg(spin_before_deadline_us=300).spin_before_deadline_us == 300
    for bad in (-1, 5001):
        with pytest.raises(ValueError, match="spin_before_deadline_us"):
            RealtimeKnobsCfg(spin_before_deadline_us=bad)
