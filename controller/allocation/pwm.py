"""Pulse-width modulation of on/off thruster valves with impulse carry-forward.

A solenoid valve is open or shut. The valve board latches one duty cycle per valve at the
start of each PWM period and holds the valve open for ``duty * pwm_period_s`` from that
instant. This module turns the allocator's continuous thrusts into those duties:

* once per period (:meth:`PwmModulator.latch`) the impulse wanted for the period is
  ``thrust_n * pwm_period_s`` plus the impulse still owed from earlier periods;
* the on-time is rounded to what the valve can deliver: zero, or at least the minimum
  impulse bit (minimum on-time), in the board's duty steps (2 %), at most the whole period;
* the rounding error is carried into the next period (first-order sigma-delta /
  error-diffusion modulation; Inose & Yasuda 1963; for thrusters, Wie, "Space Vehicle
  Dynamics and Control", 2nd ed., section 7.3 on pulse-width pulse-frequency modulation).

So the delivered impulse tracks the commanded impulse over time: while the commanded thrust
stays within ``[0, max_thrust_n]`` the difference at every period boundary is at most half
of the largest gap between deliverable on-times, ``0.5 * max(d_min, step) * T * F_max``,
which is below one minimum impulse bit ``t_min * F_max`` whenever
``duty_step * pwm_period_s < 2 * min_impulse_bit_s`` (checked at construction).

The commanded impulse of a period is the thrust latched at its start times the period: the
board cannot act on changes inside a period, so the loop should run the allocator at (a
multiple of) the PWM rate or accept this sample-and-hold. No I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["PwmModulator"]


class PwmModulator:
    """Thrust -> valve duty cycle, with minimum impulse bit and impulse carry-forward.

    Parameters
    ----------
    n_valves : int
        Number of valves (thrusters), N >= 1.
    pwm_period_s : float
        Valve board PWM period T, s (> 0).
    min_impulse_bit_s : float
        Minimum valve on-time t_min, s (0 < t_min <= T): shorter pulses are not repeatable
        (valve opening/closing transients), so an on-time is 0 or >= t_min.
    max_thrust_n : array_like, shape (N,)
        Thrust of each fully open valve, N (> 0).
    duty_step : float, optional
        Duty resolution of the valve board as a fraction (DBC duty raw step 2 % -> 0.02).

    Raises
    ------
    ValueError
        Non-positive or non-finite parameters, t_min > T, a duty step that does not
        divide 1, or ``duty_step * T >= 2 * t_min`` (then the delivered impulse cannot be
        guaranteed to stay within one minimum impulse bit of the commanded impulse).
    """

    _owed_ns: np.ndarray  # (N,) N s
    _commanded_ns: np.ndarray  # (N,) N s
    _delivered_ns: np.ndarray  # (N,) N s
    _duty_steps: np.ndarray  # (N,) int64 board steps

    def __init__(
        self,
        n_valves: int,
        pwm_period_s: float,
        min_impulse_bit_s: float,
        max_thrust_n: ArrayLike,
        *,
        duty_step: float = 0.02,
    ) -> None:
        if int(n_valves) < 1:
            raise ValueError("n_valves must be >= 1")
        self.n_valves = int(n_valves)
        self.pwm_period_s = float(pwm_period_s)
        self.min_impulse_bit_s = float(min_impulse_bit_s)
        if not (math.isfinite(self.pwm_period_s) and self.pwm_period_s > 0):
            raise ValueError("pwm_period_s must be positive and finite")
        if not (math.isfinite(self.min_impulse_bit_s) and 0 < self.min_impulse_bit_s <= self.pwm_period_s):
            raise ValueError("min_impulse_bit_s must be in (0, pwm_period_s]")
        self.max_thrust_n = np.array(max_thrust_n, dtype=float).reshape(-1)
        if self.max_thrust_n.shape != (self.n_valves,) or not np.all(np.isfinite(self.max_thrust_n)) \
                or np.any(self.max_thrust_n <= 0):
            raise ValueError(f"max_thrust_n must be {self.n_valves} positive finite thrusts in N")
        steps = 1.0 / float(duty_step)
        if not (0 < duty_step <= 1) or abs(steps - round(steps)) > 1e-9:
            raise ValueError("duty_step must be 1/k for an integer k (e.g. 0.02)")
        self.duty_step = float(duty_step)
        #: number of duty steps in a full period (50 for 2 %)
        self.full_steps = int(round(steps))
        #: smallest non-zero duty in steps: the minimum on-time rounded up to a duty step
        self.min_steps = int(math.ceil(self.min_impulse_bit_s / (self.pwm_period_s * self.duty_step) - 1e-9))
        self.min_steps = max(1, min(self.min_steps, self.full_steps))
        if self.duty_step * self.pwm_period_s >= 2.0 * self.min_impulse_bit_s:
            raise ValueError(
                f"duty step {self.duty_step * self.pwm_period_s:.6g} s is not below twice the minimum "
                f"impulse bit {self.min_impulse_bit_s:.6g} s: impulse tracking within one bit is impossible"
            )
        self.reset()

    #: The carry a snapshot holds (issue 12 part 4): impulse owed, commanded, delivered, latched steps.
    SNAPSHOT_FIELDS = ("_owed_ns", "_commanded_ns", "_delivered_ns", "_duty_steps")

    def reset(self) -> None:
        """Forget the carried error and the impulse totals (e.g. on disarm)."""
        n = self.n_valves
        self._owed_ns = np.zeros(n)
        self._commanded_ns = np.zeros(n)
        self._delivered_ns = np.zeros(n)
        self._duty_steps = np.zeros(n, dtype=np.int64)

    # ------------------------------------------------------------------ per period

    def latch(self, thrust_n: ArrayLike) -> np.ndarray:
        """Compute the duties the board latches for the PWM period starting now (per period).

        Parameters
        ----------
        thrust_n : array_like, shape (N,)
            Commanded thrust per valve for this period, N; clipped to
            ``[0, max_thrust_n]`` (the allocator never exceeds it).

        Returns
        -------
        numpy.ndarray, shape (N,)
            Duty fraction per valve in ``{0} U [d_min, 1]``, a multiple of ``duty_step``.

        Raises
        ------
        ValueError
            Wrong shape or a non-finite thrust.
        """
        f = np.asarray(thrust_n, dtype=float)
        if f.shape != (self.n_valves,) or not np.isfinite(f).all():
            raise ValueError(f"thrust_n must be {self.n_valves} finite thrusts in N")
        fmax = self.max_thrust_n
        f = np.minimum(np.maximum(f, 0.0), fmax)
        T = self.pwm_period_s
        commanded = f * T
        want_ns = self._owed_ns + commanded
        full_ns = fmax * T
        want_steps = want_ns / (full_ns * self.duty_step)  # desired duty in steps (real)
        steps = np.rint(want_steps)
        # below the minimum on-time: round between 0 and the minimum pulse
        small = want_steps < self.min_steps
        steps = np.where(small, np.where(want_steps >= 0.5 * self.min_steps, self.min_steps, 0), steps)
        steps = np.clip(steps, 0, self.full_steps).astype(np.int64)
        delivered = steps * (self.duty_step * full_ns)
        self._owed_ns = want_ns - delivered
        self._commanded_ns += commanded
        self._delivered_ns += delivered
        self._duty_steps = steps
        return steps * self.duty_step

    def duty(self, thrust_n: ArrayLike, period_start: bool) -> np.ndarray:
        """Per-tick convenience: latch at a period start, else repeat the latched duty.

        Parameters
        ----------
        thrust_n : array_like, shape (N,)
            Commanded thrust, N (used only when ``period_start``).
        period_start : bool
            True on the tick that starts a PWM period.

        Returns
        -------
        numpy.ndarray, shape (N,)
            Duty fraction per valve, see :meth:`latch`.

        Raises
        ------
        ValueError
            On a period start: wrong shape or a non-finite thrust (see :meth:`latch`).
        """
        if period_start:
            return self.latch(thrust_n)
        return self._duty_steps * self.duty_step

    # ------------------------------------------------------------------ telemetry

    @property
    def duty_steps(self) -> np.ndarray:
        """Latched duty per valve in board steps (raw counts of ``duty_step``), shape (N,)."""
        out: np.ndarray = self._duty_steps.copy()
        return out

    @property
    def commanded_impulse_ns(self) -> np.ndarray:
        """Total commanded impulse per valve since reset, N s, shape (N,)."""
        out: np.ndarray = self._commanded_ns.copy()
        return out

    @property
    def delivered_impulse_ns(self) -> np.ndarray:
        """Total impulse of the latched pulses per valve since reset, N s, shape (N,)."""
        out: np.ndarray = self._delivered_ns.copy()
        return out

    @property
    def impulse_error_ns(self) -> np.ndarray:
        """Commanded minus delivered impulse per valve (carried forward), N s, shape (N,)."""
        out: np.ndarray = self._commanded_ns - self._delivered_ns
        return out

    @property
    def min_impulse_bit_ns(self) -> np.ndarray:
        """Minimum impulse bit per valve, ``min_impulse_bit_s * max_thrust_n``, N s."""
        return self.min_impulse_bit_s * self.max_thrust_n
