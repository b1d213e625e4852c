"""Nominal runs under benign faults must not trip; three lost status frames must (SAFETY.md B08, B01).

Short versions for ``make test``; the 10-minute ones are ``qiki safety soak babble`` and
``qiki safety soak loss`` (``docs/safety.md``, figures there).
"""

from __future__ import annotations

import pytest

from controller.rig import build_rig
from controller.safety.campaign import run_soak


@pytest.mark.slow
def test_babbler_300_frames_per_tick_no_false_trip():
    res = run_soak("babble", 0.25, build_rig, seed=1)
    assert not res.crashed, res.crashed
    assert not res.tripped, res.first_fault
    assert res.final_state == "active" and res.unsafe_frames == 0


def test_three_lost_status_frames_trip():
    res = run_soak("loss3", 3.5 / 60.0, build_rig, seed=1)
    assert res.tripped and res.first_fault == "valve board status stale", res.first_fault
