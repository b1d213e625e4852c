"""Valve PWM: minimum impulse bit, 2 % duty steps, impulse carried forward."""

from __future__ import annotations

import numpy as np
import pytest

from controller.allocation import PwmModulator

PERIOD_S = 0.05
MIB_S = 0.004  # minimum on-time 4 ms: 8 % duty at 50 ms, duty step 1 ms
FMAX = np.array([1.0, 1.0, 0.8, 1.2, 1.0, 1.0, 0.5, 1.0])


def _mod(**kw):
    args = dict(n_valves=8, pwm_period_s=PERIOD_S, min_impulse_bit_s=MIB_S, max_thrust_n=FMAX) | kw
    return PwmModulator(**args)


@pytest.mark.parametrize("seed, hold_periods", [(0, 1), (1, 3), (2, 17)])
def test_impulse_tracks_command_over_a_60_s_mission(seed, hold_periods):
    rng = np.random.default_rng(seed)
    mod = _mod()
    n_periods = int(round(60.0 / PERIOD_S))
    thrust = rng.uniform(0, 1, 8) * FMAX
    worst = 0.0
    for k in range(n_periods):
        if k % hold_periods == 0:
            thrust = rng.uniform(0, 1, 8) * FMAX * (rng.random(8) < 0.8)  # some valves idle
            thrust[rng.random(8) < 0.2] *= 0.05  # many commands below the minimum impulse bit
        duty = mod.latch(thrust)
        steps = duty / 0.02
        np.testing.assert_allclose(steps, np.rint(steps), atol=1e-9)  # 2 % steps
        assert np.all((duty == 0.0) | (duty * PERIOD_S >= MIB_S - 1e-12))  # minimum on-time
        assert np.all((duty >= 0.0) & (duty <= 1.0))
        worst = max(worst, float(np.max(np.abs(mod.impulse_error_ns) / mod.min_impulse_bit_ns)))
    assert worst < 1.0
    # totals: delivered tracks commanded to within one minimum impulse bit per valve
    assert np.all(np.abs(mod.commanded_impulse_ns - mod.delivered_impulse_ns) < mod.min_impulse_bit_ns)
    assert mod.commanded_impulse_ns.sum() > 100.0  # the mission did fire


def test_small_constant_thrust_becomes_sparse_minimum_pulses():
    mod = _mod()
    thrust = np.zeros(8)
    thrust[0] = 0.01  # 1 % of full: well below the 8 % minimum duty
    duties = np.array([mod.latch(thrust)[0] for _ in range(400)])
    assert set(np.round(duties, 9)) == {0.0, 0.08}
    assert duties.mean() == pytest.approx(0.01, abs=0.08 / 400 + 1e-12)


@pytest.mark.parametrize("frac", [0.0, 0.3, 0.37, 0.5, 0.99, 1.0])
def test_constant_thrust_average_duty(frac):
    mod = _mod()
    thrust = FMAX * frac
    duties = np.array([mod.latch(thrust) for _ in range(200)])
    np.testing.assert_allclose(duties.mean(axis=0), frac, atol=0.02 / 200 * 5 + 1e-12)


def test_duty_repeats_between_period_starts():
    mod = _mod()
    d0 = mod.duty(FMAX * 0.5, period_start=True)
    d1 = mod.duty(FMAX * 0.9, period_start=False)  # mid-period: the board holds the latch
    np.testing.assert_array_equal(d0, d1)
    assert mod.commanded_impulse_ns == pytest.approx(FMAX * 0.5 * PERIOD_S)
    np.testing.assert_array_equal(mod.duty_steps, np.rint(d0 / 0.02))


def test_over_limit_thrust_is_clipped_and_reset_clears():
    mod = _mod()
    d = mod.latch(FMAX * 3)
    np.testing.assert_array_equal(d, np.ones(8))
    assert np.all(mod.impulse_error_ns == 0.0)
    mod.reset()
    assert np.all(mod.commanded_impulse_ns == 0.0) and np.all(mod.duty_steps == 0)


@pytest.mark.parametrize(
    "kw",
    [
        {"pwm_period_s": 0.0},
        {"min_impulse_bit_s": 0.0},
        {"min_impulse_bit_s": 0.06},  # longer than the period
        {"max_thrust_n": np.ones(7)},
        {"max_thrust_n": np.zeros(8)},
        {"duty_step": 0.03},  # does not divide 1
        {"pwm_period_s": 0.5},  # 10 ms duty step >= 2 x 4 ms minimum on-time
        {"n_valves": 0},
    ],
)
def test_bad_parameters_raise(kw):
    with pytest.raises(ValueError):
        _mod(**kw)


@pytest.mark.parametrize("bad", [np.ones(7), np.r_[np.nan, np.ones(7)]])
def test_bad_thrust_raises(bad):
    with pytest.raises(ValueError):
        _mod().latch(bad)


def test_valve_commander_latches_per_period_lengthens_pulses_and_keeps_totals():
    from controller.valve_command import ValveCommander

    # 50 ms period, 10 ms ticks (5 per period); 1 ms duty step; valve opens 3 ms late and
    # closes 1 ms late: every non-zero pulse is lengthened by 2 steps (4 %)
    vc = ValveCommander(list(FMAX), PERIOD_S, 0.01, MIB_S, open_delay_s=0.003, close_delay_s=0.001)
    assert vc.ticks_per_period == 5 and vc.bias_steps == 2
    thrust = FMAX * 0.5
    thrust[1] = 0.0
    d0 = vc.duty_pct(thrust, 0)
    assert d0[1] == 0.0  # an idle valve gets no bias pulse
    assert d0[0] == pytest.approx(54.0)  # 25 steps + 2
    for k in range(1, 5):  # mid-period: the latched duty repeats whatever the thrust
        assert vc.duty_pct(FMAX, k) == d0
    assert vc.duty_pct(FMAX, 5)[0] == pytest.approx(100.0)  # clipped to the full period
    commanded = vc.commanded_impulse_ns.copy()
    np.testing.assert_allclose(commanded, (thrust + FMAX) * PERIOD_S)
    vc.reset()
    assert vc.duty_pct(FMAX, 7) == [0.0] * 8  # outputs forced off until the next latch
    np.testing.assert_allclose(vc.commanded_impulse_ns, commanded)  # totals survive reset


def test_valve_commander_slow_closing_valve_never_loses_a_counted_pulse():
    from controller.valve_command import ValveCommander

    # the valve closes 6 ms after the falling edge but opens 1 ms after the rising one:
    # open time = command + 5 ms (bias -5 steps). A 4 ms pulse (the minimum impulse bit)
    # cannot exist: the shortest command, 1 step, gives 6 ms. Every impulse the modulator
    # counts as delivered must be what the valve really delivers.
    vc = ValveCommander(list(FMAX), PERIOD_S, 0.01, MIB_S, open_delay_s=0.001, close_delay_s=0.006)
    assert vc.bias_steps == -5 and vc.min_on_time_s == pytest.approx(0.006)
    rng = np.random.default_rng(3)
    physical_ns = np.zeros(8)
    step_s = PERIOD_S * 0.02
    for period in range(400):
        thrust = rng.uniform(0.0, 0.2, 8) * FMAX  # small demands: short pulses
        duty = np.array(vc.duty_pct(thrust, period * vc.ticks_per_period))
        sent_steps = np.rint(duty / 2.0)
        physical_ns += np.where(sent_steps > 0, (sent_steps + 5) * step_s, 0.0) * FMAX
    np.testing.assert_allclose(vc.delivered_impulse_ns, physical_ns, rtol=1e-12)
    # and the carried error keeps delivered within one pulse of commanded per valve
    assert np.all(np.abs(vc.delivered_impulse_ns - vc.commanded_impulse_ns) <= FMAX * PERIOD_S)


def test_valve_commander_refuses_a_close_delay_longer_than_a_period():
    from controller.valve_command import ValveCommander

    with pytest.raises(ValueError, match="close delay exceeds"):
        ValveCommander(list(FMAX), PERIOD_S, 0.01, MIB_S, open_delay_s=0.0, close_delay_s=0.06)


def test_valve_commander_rejects_a_period_that_is_not_whole_ticks():
    from controller.valve_command import ValveCommander

    with pytest.raises(ValueError, match="whole number of ticks"):
        ValveCommander(list(FMAX), PERIOD_S, 0.03, MIB_S)
