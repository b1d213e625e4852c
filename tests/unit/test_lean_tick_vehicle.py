"""The lean tick, vehicle side (issue 12/16, 2026-12-07): plain-Python paths against the previous ones.

The PWM latch and the valve commander's duties lost numpy (N is about 8); every value
must be the same float, bit for bit, as the numpy code gave (kept here as the oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.allocation import PwmModulator
from controller.valve_command import ValveCommander
from hal.snapshot import decode, encode

PERIOD_S = 0.05
FMAX = [1.0, 1.0, 0.8, 1.2, 1.0, 1.0, 0.5, 1.0]


class _NumpyLatch:
    """The previous :meth:`PwmModulator.latch` (numpy on (N,) arrays), the oracle."""

    def __init__(self, mod: PwmModulator) -> None:
        n = mod.n_valves
        self.mod = mod
        self.owed = np.zeros(n)
        self.commanded = np.zeros(n)
        self.delivered = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)

    def latch(self, thrust_n: object) -> np.ndarray:
        m = self.mod
        f = np.asarray(thrust_n, dtype=float)
        if f.shape != (m.n_valves,) or not np.isfinite(f).all():
            raise ValueError("bad thrust")
        fmax = m.max_thrust_n
        f = np.minimum(np.maximum(f, 0.0), fmax)
        T = m.pwm_period_s
        commanded = f * T
        want_ns = self.owed + commanded
        full_ns = fmax * T
        want_steps = want_ns / (full_ns * m.duty_step)
        steps = np.rint(want_steps)
        small = want_steps < m.min_steps
        steps = np.where(small, np.where(want_steps >= 0.5 * m.min_steps, m.min_steps, 0), steps)
        steps = np.clip(steps, 0, m.full_steps).astype(np.int64)
        delivered = steps * (m.duty_step * full_ns)
        self.owed = want_ns - delivered
        self.commanded += commanded
        self.delivered += delivered
        self.steps = steps
        return steps * m.duty_step


def _bits(a: object) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=float).reshape(-1)]


_thrust = st.one_of(
    st.floats(-2.0, 3.0, allow_nan=False),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-12, 0.04, 0.08, 0.02 * 0.5]),
    st.integers(-1, 2),
)


@settings(max_examples=60, deadline=None)
@given(periods=st.lists(st.lists(_thrust, min_size=8, max_size=8), min_size=1, max_size=40),
       mib_s=st.sampled_from([0.001, 0.004, 0.006, 0.02]), as_array=st.booleans())
def test_latch_matches_the_numpy_latch_bit_for_bit(periods, mib_s, as_array):
    mod = PwmModulator(8, PERIOD_S, mib_s, FMAX)
    ref = _NumpyLatch(PwmModulator(8, PERIOD_S, mib_s, FMAX))
    for thrust in periods:
        arg = np.array(thrust, dtype=float) if as_array else thrust
        assert _bits(mod.latch(arg)) == _bits(ref.latch(arg))
        assert mod.duty_steps.dtype == np.int64
        np.testing.assert_array_equal(mod.duty_steps, ref.steps)
        assert _bits(mod.commanded_impulse_ns) == _bits(ref.commanded)
        assert _bits(mod.delivered_impulse_ns) == _bits(ref.delivered)
        assert _bits(mod.impulse_error_ns) == _bits(ref.commanded - ref.delivered)


@pytest.mark.parametrize("bad", [[1.0] * 7, [math.nan] + [1.0] * 7, [math.inf] + [0.0] * 7,
                                 np.ones((2, 8)), [[1.0]] * 8, "abcdefgh"])
def test_latch_refuses_bad_thrusts_with_a_value_error(bad):
    with pytest.raises(ValueError):
        PwmModulator(8, PERIOD_S, 0.004, FMAX).latch(bad)


def test_snapshot_encodes_the_carry_as_the_numpy_arrays_did_and_restores_it():
    mod = PwmModulator(8, PERIOD_S, 0.004, FMAX)
    ref = _NumpyLatch(PwmModulator(8, PERIOD_S, 0.004, FMAX))
    rng = np.random.default_rng(5)
    for _ in range(7):
        t = (rng.uniform(-0.1, 1.1, 8) * np.array(FMAX)).tolist()
        mod.latch(t)
        ref.latch(t)
    snap = mod.snapshot()
    assert snap == {"_owed_ns": encode(ref.owed), "_commanded_ns": encode(ref.commanded),
                    "_delivered_ns": encode(ref.delivered), "_duty_steps": encode(ref.steps)}
    other = PwmModulator(8, PERIOD_S, 0.004, FMAX)
    other.restore(decode(encode(snap)))  # type: ignore[arg-type]
    t = [0.3] * 8
    assert _bits(other.latch(t)) == _bits(mod.latch(t))
    assert other.snapshot() == mod.snapshot()


@settings(max_examples=40, deadline=None)
@given(periods=st.lists(st.lists(_thrust, min_size=8, max_size=8), min_size=1, max_size=30),
       delays=st.sampled_from([(0.0, 0.0), (0.003, 0.001), (0.001, 0.006), (0.004, 0.0)]))
def test_valve_commander_duties_match_the_numpy_path(periods, delays):
    open_s, close_s = delays
    vc = ValveCommander(FMAX, PERIOD_S, 0.01, 0.004, open_delay_s=open_s, close_delay_s=close_s)
    ref_vc = ValveCommander(FMAX, PERIOD_S, 0.01, 0.004, open_delay_s=open_s, close_delay_s=close_s)
    ref = _NumpyLatch(ref_vc.modulator)
    mod = vc.modulator
    for p, thrust in enumerate(periods):
        got = vc.duty_pct(thrust, p * vc.ticks_per_period)
        ref.latch(thrust)
        steps = ref.steps
        if ref_vc.bias_steps:
            steps = np.where(steps > 0, np.clip(steps + ref_vc.bias_steps, 0, mod.full_steps), 0)
        want = [float(s) * mod.duty_step * 100.0 for s in steps]
        assert [v.hex() for v in got] == [v.hex() for v in want]
        assert vc.duty_pct([0.0] * 8, p * vc.ticks_per_period + 1) is got  # repeated, same list
