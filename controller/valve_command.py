"""Thrusts -> valve duty cycles for the valve board, once per PWM period.

Wraps :class:`controller.allocation.PwmModulator` (minimum impulse bit, 2 % duty steps,
impulse carry-forward) for the per-tick loop:

* the loop runs faster than the board's PWM period; a new duty is latched on the tick that
  starts a period (``tick_index % ticks_per_period == 0``) and repeated until the next, so
  the board, which latches the latest command at each period start, takes each latched
  duty exactly once;
* a solenoid opens ``open_delay_s`` after the command edge and closes ``close_delay_s``
  after the falling edge, so a commanded on-time ``t`` yields an open time
  ``t - open_delay_s + close_delay_s``. Each non-zero pulse is lengthened by the
  difference (rounded to whole duty steps) so the *physical* impulse is the one the
  modulator accounted for. Source: valve characterisation of the rig (device profile
  ``open_delay_s``/``close_delay_s``); cf. Wie, *Space Vehicle Dynamics and Control*, 2nd
  ed., 7.3, on thruster pulse shaping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from controller.allocation import PwmModulator
from hal.snapshot import JsonValue, State, apply, capture, part


class ValveCommander:
    """Per-tick duty source for the valve board.

    Parameters
    ----------
    max_thrust_n : sequence of float, shape (N,)
        Thrust of each fully open thruster valve (N).
    pwm_period_s : float
        Board PWM period (s); must be a whole number of control ticks.
    tick_period_s : float
        Control tick (s).
    min_impulse_bit_s : float
        Minimum valve on-time (s). Raised to the shortest physical pulse, ``(1 - bias)``
        duty steps, when the valve closes later than it opens (see :attr:`min_on_time_s`).
    open_delay_s, close_delay_s : float
        Valve opening and closing delays (s).
    duty_step : float
        Board duty resolution as a fraction (2 % -> 0.02, ``dbc/qiki.dbc``).

    Raises
    ------
    ValueError
        If the PWM period is not a whole number of ticks, or the close delay exceeds the
        open delay by a whole PWM period (no pulse shorter than the period exists).
    """

    def __init__(
        self,
        max_thrust_n: Sequence[float],
        pwm_period_s: float,
        tick_period_s: float,
        min_impulse_bit_s: float,
        open_delay_s: float = 0.0,
        close_delay_s: float = 0.0,
        duty_step: float = 0.02,
    ) -> None:
        ratio = pwm_period_s / tick_period_s
        self.ticks_per_period = int(round(ratio))
        if self.ticks_per_period < 1 or abs(ratio - self.ticks_per_period) > 1e-9:
            raise ValueError(f"pwm_period_s {pwm_period_s} is not a whole number of ticks of {tick_period_s} s")
        step_s = duty_step * pwm_period_s
        #: pulse lengthening, whole duty steps: ``(open_delay_s - close_delay_s) / (duty_step T)``
        self.bias_steps = int(round((open_delay_s - close_delay_s) / step_s))
        # A valve that closes later than it opens (bias < 0) stays open 1 - bias steps for
        # the shortest command it can be sent (1 step): no shorter pulse exists physically,
        # so that is the modulator's minimum on-time (else a short pulse would be cut to
        # no command at all while its impulse was counted as delivered).
        shortest_physical_s = (1 - self.bias_steps) * step_s if self.bias_steps < 0 else 0.0
        if shortest_physical_s > pwm_period_s + 1e-12:
            raise ValueError(
                f"valve close delay exceeds the open delay by {close_delay_s - open_delay_s:.6g} s: "
                f"no pulse shorter than the {pwm_period_s} s PWM period exists"
            )
        self.min_on_time_s = max(float(min_impulse_bit_s), shortest_physical_s)
        self.modulator = PwmModulator(len(max_thrust_n), pwm_period_s, self.min_on_time_s, list(max_thrust_n),
                                      duty_step=duty_step)
        self._duty_pct = [0.0] * len(max_thrust_n)
        # Totals survive modulator resets (which forget the carried error only).
        self._commanded_done = np.zeros(len(max_thrust_n))
        self._delivered_done = np.zeros(len(max_thrust_n))

    def snapshot(self) -> State:
        """Return the PWM carry (issue 12 part 4): the latched duties, impulse totals, the modulator's debt."""
        mod = self.modulator
        return {**capture(self, ("_duty_pct", "_commanded_done", "_delivered_done")), "modulator": mod.snapshot()}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of a commander built with the same parameters."""
        apply(self, state, ("_duty_pct", "_commanded_done", "_delivered_done"))
        self.modulator.restore(part(state, "modulator"))

    def duty_pct(self, thrust_n: Sequence[float], tick_index: int) -> list[float]:
        """Duty per thruster to send this tick (per tick).

        Parameters
        ----------
        thrust_n : sequence of float, shape (N,)
            Allocated thrust per thruster (N); used only on a period-start tick.
        tick_index : int
            Control tick counter; ``tick_index % ticks_per_period == 0`` starts a period.

        Returns
        -------
        list of float, length N
            Duty in percent (0..100, whole board steps), latched at the period start and
            repeated until the next; non-zero pulses lengthened by ``bias_steps``. The
            same list object is returned until the next latch (do not modify it).

        Raises
        ------
        ValueError
            On a period start: wrong shape or a non-finite thrust
            (:meth:`PwmModulator.latch`).
        """
        if tick_index % self.ticks_per_period == 0:
            mod = self.modulator
            steps = mod.latch_steps(thrust_n)
            bias = self.bias_steps
            if bias:  # non-zero pulses lengthened, within [0, full_steps]
                full = mod.full_steps
                steps = [(0 if s + bias < 0 else min(s + bias, full)) if s > 0 else 0 for s in steps]
            ds = mod.duty_step
            self._duty_pct = [float(s) * ds * 100.0 for s in steps]
        return self._duty_pct

    def reset(self) -> None:
        """Forget carried impulse (outputs forced to zero, e.g. on leaving ``active``)."""
        self._commanded_done += self.modulator.commanded_impulse_ns
        self._delivered_done += self.modulator.delivered_impulse_ns
        self.modulator.reset()
        self._duty_pct = [0.0] * len(self._duty_pct)

    @property
    def commanded_impulse_ns(self) -> np.ndarray:
        """Impulse commanded by the allocator since start, per thruster (N s), shape (N,)."""
        return self._commanded_done + self.modulator.commanded_impulse_ns

    @property
    def delivered_impulse_ns(self) -> np.ndarray:
        """Impulse of the on-times sent (valve open time x thrust), per thruster (N s)."""
        return self._delivered_done + self.modulator.delivered_impulse_ns
