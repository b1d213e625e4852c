"""``sim._quiet_steps`` counts exactly the steps the one-by-one event loop finds quiet."""

from __future__ import annotations

import math
import random

from firmware_bridge.emulation.sim import _quiet_steps


def _brute(t_ns: int, end_ns: int, dt_ns: int, dt_s: float, wake_t: float, seg_end: float) -> int:
    k = 0
    u = t_ns
    while u < end_ns and u * 1e-9 < wake_t and u * 1e-9 + dt_s <= seg_end:
        k += 1
        u += dt_ns
    return k


def test_quiet_steps_equals_the_per_step_tests() -> None:
    rng = random.Random(16)
    for dt_ns in (1_000_000, 500_000, 333_333):
        dt_s = dt_ns * 1e-9
        for _ in range(3000):
            t_ns = rng.randrange(0, 200_000) * dt_ns
            end_ns = t_ns + rng.randrange(0, 40) * dt_ns
            # bounds on and around step times (the float edge cases), or none
            wake_t = rng.choice([math.inf, -math.inf, (t_ns + rng.randrange(-3, 40) * dt_ns) * 1e-9
                                 + rng.choice([0.0, 1e-9, -1e-9, -1e-6 - 1e-9, 5e-13])])
            seg_end = rng.choice([math.inf, (t_ns + rng.randrange(-2, 40) * dt_ns) * 1e-9
                                  + rng.choice([0.0, 1e-9, -1e-9, 2e-3, 5e-13])])
            assert _quiet_steps(t_ns, end_ns, dt_ns, dt_s, wake_t, seg_end) == \
                _brute(t_ns, end_ns, dt_ns, dt_s, wake_t, seg_end), (t_ns, end_ns, dt_ns, wake_t, seg_end)
