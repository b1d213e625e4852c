"""Mutated real radar data never yields a point outside the gate (issue 15 part 3).

Runs ``bench/fuzz_ingress.py`` with a small fixed budget on the real ARS408 candump and the
real IWR6843 capture (``../shared/data/real``; skipped with a reason when absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz(shared_data, load_bench):
    mod = load_bench("fuzz_ingress")
    for path in (mod.ARS408_LOG, mod.TI_CAPTURE):
        if not path.is_file():
            pytest.skip(f"real recording not found at {path}")
    return mod


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_ars408_frames_never_put_an_object_outside_the_gate(fuzz, seed):
    out = fuzz.fuzz_ars408(passes=1, seed=seed, frame_prob=0.2, max_frames=4000)
    print(out)
    assert out["mutated_accepted"] > 0 and out["objects_before_outside"] > 0  # the fuzz reaches the gate
    assert out["after_outside"] == 0
    assert out["detections_after"] == out["objects_before"] - sum(out["implausible"].values())


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_ti_packets_never_put_a_point_outside_the_gate(fuzz, seed):
    out = fuzz.fuzz_iwr6843(passes=2, seed=seed)
    print(out)
    assert out["mutated_accepted"] > 0
    assert out["after_outside"] == 0
    assert out["detections_after"] == out["points_before"] - sum(out["points_dropped"].values())
