"""Clocks: the only source of time for the loop, the drivers and the emulators.

Two implementations of one protocol:

* :class:`SimClock` -- simulated time in integer nanoseconds, advanced explicitly by the
  lockstep loop. Bit-for-bit deterministic, never sleeps.
* :class:`MonotonicClock` -- ``time.monotonic_ns`` since construction. All ages in the
  stack are measured on it, so a step of the wall clock changes nothing (SAFETY.md B10).

Both also satisfy :class:`hal.clock.Clock` (``now_s``, ``now_ns``), structurally: hal takes
a clock without importing the controller.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What every time consumer needs: the time now, in seconds since the clock's epoch."""

    def now_s(self) -> float:
        """Return seconds since the clock's epoch (monotonic, never steps backwards)."""
        ...

    def now_ns(self) -> int:
        """Return integer nanoseconds since the clock's epoch."""
        ...

    def sleep_until(self, deadline_s: float) -> None:
        """Block until ``now_s() >= deadline_s`` (a SimClock jumps there instead)."""
        ...


class SimClock:
    """Simulated clock in integer nanoseconds, advanced only by its owner.

    Parameters
    ----------
    start_s : float, optional
        Initial time in seconds (default 0).

    Notes
    -----
    Integer nanoseconds keep long runs exact: 100 Hz for a day accumulates no rounding.
    """

    __slots__ = ("_ns",)

    def __init__(self, start_s: float = 0.0) -> None:
        self._ns = int(round(start_s * 1e9))

    def now_ns(self) -> int:
        """Return the simulated time in integer nanoseconds."""
        return self._ns

    def now_s(self) -> float:
        """Return the simulated time in seconds."""
        return self._ns * 1e-9

    def advance(self, dt_s: float) -> None:
        """Advance by ``dt_s`` seconds.

        Raises
        ------
        ValueError
            If ``dt_s`` is negative (time never runs backwards).
        """
        dt_ns = int(round(dt_s * 1e9))
        if dt_ns < 0:
            raise ValueError(f"SimClock cannot go backwards (dt_s={dt_s})")
        self._ns += dt_ns

    def sleep_until(self, deadline_s: float) -> None:
        """Jump to ``deadline_s`` if it lies ahead; never sleeps."""
        target = int(round(deadline_s * 1e9))
        if target > self._ns:
            self._ns = target


class MonotonicClock:
    """Real time from ``time.monotonic_ns``.

    Parameters
    ----------
    frozen : bool, optional
        False (default): zero at construction. True: the clock reads 0 until
        :meth:`start` is called, then runs from 0. The composition root builds a rig on a
        frozen clock, so that everything built (poller schedules, emulator start times,
        the FSM's entry into ``boot``, the POST timeout) sees time 0, and the run clock
        starts with the first tick however long the build took (a loaded machine once
        took 3.09 s to reach tick 0, past ``post_timeout_s``).
    spin_s : float, optional
        Busy-wait margin (s) of :meth:`sleep_until` before each deadline; 0 (default)
        sleeps only. Negative values count as 0; ignored while the clock is frozen. The
        rig's ``controller.realtime.spin_before_deadline_us`` (docs/realtime.md).
    """

    __slots__ = ("_t0_ns", "_frozen", "spin_s")

    def __init__(self, frozen: bool = False, spin_s: float = 0.0) -> None:
        self._t0_ns = time.monotonic_ns()
        self._frozen = bool(frozen)
        #: :meth:`sleep_until` sleeps until this long (s) before the deadline, then
        #: busy-waits on the clock (the rig's ``controller.realtime.spin_before_deadline_us``)
        self.spin_s = max(0.0, float(spin_s))

    @property
    def started(self) -> bool:
        """True once the clock runs (always for a clock built with ``frozen=False``)."""
        return not self._frozen

    def start(self) -> None:
        """Start a frozen clock at 0 now; no-op on a running clock (idempotent)."""
        if self._frozen:
            self._t0_ns = time.monotonic_ns()
            self._frozen = False

    def now_ns(self) -> int:
        """Return integer nanoseconds since the clock started (0 while frozen)."""
        if self._frozen:
            return 0
        return time.monotonic_ns() - self._t0_ns

    def now_s(self) -> float:
        """Return seconds since the clock started (0.0 while frozen)."""
        if self._frozen:
            return 0.0
        return (time.monotonic_ns() - self._t0_ns) * 1e-9

    def sleep_until(self, deadline_s: float) -> None:
        """Sleep until ``deadline_s`` (s on this clock); no-op if it has passed.

        One ``time.sleep``: it wakes late by the OS scheduler's latency, which the
        real-time loop records as the tick's period error. With :attr:`spin_s` > 0 it
        sleeps until ``spin_s`` before the deadline and busy-waits on ``monotonic_ns``
        from there (hybrid sleep-and-spin, as ``shared/bench/reference_tick.py``'s default
        timing): the wake-up latency is hidden if it is below ``spin_s``, at the cost of up
        to ``spin_s`` of CPU per call. On a frozen clock it sleeps ``deadline_s`` of real
        time (the clock does not move meanwhile) and never spins.
        """
        remaining = deadline_s - self.now_s()
        if remaining <= 0:
            return
        spin = self.spin_s
        if spin <= 0.0 or self._frozen:
            time.sleep(remaining)
            return
        if remaining > spin:
            time.sleep(remaining - spin)
        deadline_ns = self._t0_ns + int(deadline_s * 1e9)
        now_ns = time.monotonic_ns
        while now_ns() < deadline_ns:
            pass
