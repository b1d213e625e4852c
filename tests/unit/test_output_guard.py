"""Output guard: zero outside allocate states, clamps, rate limit, NaN handling (O02, O03)."""

from __future__ import annotations

import math

from controller.safety.output_guard import OutputGuard


def test_zero_unless_allowed():
    g = OutputGuard([1.0, 1.0], 100.0)
    assert g.apply([0.5, 0.5], allow=False, dt_s=0.01) == [0.0, 0.0]


def test_clamp_and_rate_limit_uses_real_dt():
    """T01: the rate limit uses the tick's real ``dt_s`` (a 5 ms tick allows half the step of a 10 ms one)."""
    g = OutputGuard([1.0, 1.0], 50.0)
    assert g.apply([5.0, -1.0], allow=True, dt_s=0.01) == [0.5, 0.0]
    assert g.apply([5.0, 0.2], allow=True, dt_s=0.005) == [0.75, 0.2]
    assert g.apply([5.0, 0.2], allow=True, dt_s=0.01) == [1.0, 0.2]
    assert g.apply([0.0, 0.0], allow=True, dt_s=0.01) == [0.0, 0.0]  # down is immediate
    assert g.rate_limited_total == 2


def test_nonfinite_zeroes_and_faults_after_repeats():
    g = OutputGuard([1.0], 1000.0, max_nonfinite_ticks=3)
    g.apply([0.5], True, 0.01)
    assert g.apply([math.nan], True, 0.01) == [0.0]
    assert g.fault_reason is None
    g.apply([math.inf], True, 0.01)
    g.apply([math.nan], True, 0.01)
    assert g.fault_reason is not None and "non-finite" in g.fault_reason
