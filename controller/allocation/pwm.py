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
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from hal.snapshot import JsonValue, SnapshotError, State, decode, encode

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

    # The carry is kept in plain Python lists: N is about 8, where a numpy operation costs
    # more than the arithmetic it does (issue 12, the lean tick). Element by element the
    # operations are the IEEE float64 ones numpy did, in the same order.
    _owed_ns: list[float]  # (N,) N s
    _commanded_ns: list[float]  # (N,) N s
    _delivered_ns: list[float]  # (N,) N s
    _duty_steps: list[int]  # (N,) board steps
    _max_n: list[float]  # (N,) max_thrust_n as Python floats
    _step_ns: list[float]  # (N,) impulse of one duty step, full_ns * duty_step, N s

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
        T, ds = self.pwm_period_s, self.duty_step
        self._max_n = self.max_thrust_n.tolist()
        full_ns = [m * T for m in self._max_n]  # (N,) max_thrust_n * pwm_period_s, N s
        self._step_ns = [full * ds for full in full_ns]  # one rounding: = ds * full (commutative)
        self._half_min_steps = 0.5 * self.min_steps
        self.reset()

    #: The carry a snapshot holds (issue 12 part 4): impulse owed, commanded, delivered, latched steps.
    SNAPSHOT_FIELDS = ("_owed_ns", "_commanded_ns", "_delivered_ns", "_duty_steps")

    def reset(self) -> None:
        """Forget the carried error and the impulse totals (e.g. on disarm)."""
        n = self.n_valves
        self._owed_ns = [0.0] * n
        self._commanded_ns = [0.0] * n
        self._delivered_ns = [0.0] * n
        self._duty_steps = [0] * n

    def snapshot(self) -> State:
        """Return the carry (:attr:`SNAPSHOT_FIELDS`) as numpy arrays, float64 and int64 (issue 12 part 4).

        The encoding is the one of the arrays the modulator kept before its carry became
        Python lists, so a snapshot reads the same either way.
        """
        return {"_owed_ns": encode(np.array(self._owed_ns, dtype=np.float64)),
                "_commanded_ns": encode(np.array(self._commanded_ns, dtype=np.float64)),
                "_delivered_ns": encode(np.array(self._delivered_ns, dtype=np.float64)),
                "_duty_steps": encode(np.array(self._duty_steps, dtype=np.int64))}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of a modulator built with the same parameters.

        Raises
        ------
        hal.snapshot.SnapshotError
            When a field is missing or does not hold N values.
        """
        n = self.n_valves
        values: dict[str, list[float]] = {}
        for name in self.SNAPSHOT_FIELDS:
            if name not in state:
                raise SnapshotError(f"PwmModulator: snapshot lacks {name!r}")
            v = np.asarray(decode(state[name])).reshape(-1)
            if v.shape != (n,):
                raise SnapshotError(f"PwmModulator: snapshot {name!r} holds {v.shape[0]} values, not {n}")
            values[name] = v.tolist()
        self._owed_ns = [float(x) for x in values["_owed_ns"]]
        self._commanded_ns = [float(x) for x in values["_commanded_ns"]]
        self._delivered_ns = [float(x) for x in values["_delivered_ns"]]
        self._duty_steps = [int(x) for x in values["_duty_steps"]]

    # ------------------------------------------------------------------ per period

    def _thrusts(self, thrust_n: ArrayLike) -> list[float]:
        """Return ``thrust_n`` as N finite Python floats; ValueError otherwise (see :meth:`latch`)."""
        n = self.n_valves
        f: list[float] | None = None
        if isinstance(thrust_n, (list, tuple)):
            try:
                f = [float(v) for v in thrust_n]
            except (TypeError, ValueError):
                f = None  # numpy's conversion decides (and words the error)
        if f is None:
            a = np.asarray(thrust_n, dtype=float)
            if a.shape != (n,):
                raise ValueError(f"thrust_n must be {n} finite thrusts in N")
            f = a.tolist()
        if len(f) != n or not all(map(math.isfinite, f)):
            raise ValueError(f"thrust_n must be {n} finite thrusts in N")
        return f

    def latch_steps(self, thrust_n: ArrayLike) -> list[int]:
        """Latch the PWM period starting now and return its duties in board steps (per period).

        The work of :meth:`latch` in plain Python (N is small): clip each thrust to
        ``[0, max_thrust_n]``, add the impulse owed, round the wanted duty to a whole step
        (half to even, as ``numpy.rint``), between zero and the minimum pulse below the
        minimum on-time, at most a full period; carry the rounding error forward.

        Parameters
        ----------
        thrust_n : array_like, shape (N,)
            Commanded thrust per valve for this period, N.

        Returns
        -------
        list of int, length N
            Duty per valve in board steps (``duty_step`` each): 0 or in
            ``[min_steps, full_steps]``. A new list each call (the caller may keep it).

        Raises
        ------
        ValueError
            Wrong shape or a non-finite thrust.
        """
        f = self._thrusts(thrust_n)
        T = self.pwm_period_s
        min_steps, half_min, full_steps = self.min_steps, self._half_min_steps, self.full_steps
        owed, com, dlv = self._owed_ns, self._commanded_ns, self._delivered_ns
        max_n, step_ns = self._max_n, self._step_ns
        steps: list[int] = []
        for i, v in enumerate(f):
            hi = max_n[i]
            v = v if v >= 0.0 else 0.0  # numpy.maximum(f, 0.0): f unless below (finite here)
            v = v if v <= hi else hi  # numpy.minimum(., max_thrust_n)
            commanded = v * T
            want_ns = owed[i] + commanded
            want_steps = want_ns / step_ns[i]  # desired duty in steps (real)
            if want_steps < min_steps:  # below the minimum on-time: 0 or the minimum pulse
                s = min_steps if want_steps >= half_min else 0
            else:
                s = round(want_steps)  # half to even, as numpy.rint
            s = 0 if s < 0 else (full_steps if s > full_steps else s)
            delivered = s * step_ns[i]  # float(s) * (duty_step * full_ns), as numpy
            owed[i] = want_ns - delivered
            com[i] += commanded
            dlv[i] += delivered
            steps.append(s)
        self._duty_steps = steps
        return list(steps)

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
        out: np.ndarray = np.array(self.latch_steps(thrust_n), dtype=np.int64) * self.duty_step
        return out

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
        out: np.ndarray = np.array(self._duty_steps, dtype=np.int64) * self.duty_step
        return out

    # ------------------------------------------------------------------ telemetry

    @property
    def duty_steps(self) -> np.ndarray:
        """Latched duty per valve in board steps (raw counts of ``duty_step``), shape (N,)."""
        out: np.ndarray = np.array(self._duty_steps, dtype=np.int64)
        return out

    @property
    def commanded_impulse_ns(self) -> np.ndarray:
        """Total commanded impulse per valve since reset, N s, shape (N,)."""
        out: np.ndarray = np.array(self._commanded_ns, dtype=np.float64)
        return out

    @property
    def delivered_impulse_ns(self) -> np.ndarray:
        """Total impulse of the latched pulses per valve since reset, N s, shape (N,)."""
        out: np.ndarray = np.array(self._delivered_ns, dtype=np.float64)
        return out

    @property
    def impulse_error_ns(self) -> np.ndarray:
        """Commanded minus delivered impulse per valve (carried forward), N s, shape (N,)."""
        out: np.ndarray = self.commanded_impulse_ns - self.delivered_impulse_ns
        return out

    @property
    def min_impulse_bit_ns(self) -> np.ndarray:
        """Minimum impulse bit per valve, ``min_impulse_bit_s * max_thrust_n``, N s."""
        return self.min_impulse_bit_s * self.max_thrust_n
