"""A frozen ARS408 is a fault within 5 cycles (issue 15 part 3, SAFETY.md D01).

One REAL object-list cycle of the recording (``../shared/data/real/can/ars408/``) replayed
every 72 ms for 5 s with the same measurement counter: the driver must stop reporting the
radar fresh and report a fault within 5 cycles. Before issue 15 it reported ``fresh`` in
500 of 500 polls.
"""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from hal.can.codec import DbcCodec
from hal.can.replay import read_can_log
from hal.devices.ars408 import REJECT_COUNTER_REPEAT, Ars408Driver

ARS408_DBC = Path(__file__).resolve().parents[2] / "dbc" / "ars408.dbc"
CYCLE_S = 0.072
TICK_S = 0.010


@pytest.fixture(scope="module")
def one_cycle(shared_data) -> list[can.Message]:
    """The frames of the 10th complete object-list cycle of the recording (0x60A .. last 0x60D) plus a RadarState."""
    log = shared_data / "can" / "ars408" / "candump-2026-06-24_154259.log"
    if not log.is_file():
        pytest.skip(f"real ARS408 recording not found at {log}")
    frames = read_can_log(log)
    starts = [i for i, m in enumerate(frames) if m.arbitration_id == 0x60A]
    cycle = [m for m in frames[starts[10]:starts[11]] if 0x60A <= m.arbitration_id <= 0x60D]
    state = next(m for m in frames if m.arbitration_id == 0x201)
    assert len(cycle) > 1
    return [state, *cycle]


def replay(frames: list[can.Message], duration_s: float, *, advance_counter: bool):
    """Send the cycle every 72 ms (counter fixed or advanced by 2 like the real radar); poll every 10 ms."""
    codec = DbcCodec([ARS408_DBC])
    drv = Ars408Driver(codec)
    polls = []
    k_cycle = 0
    t_next_cycle = 0.0
    for k in range(round(duration_s / TICK_S)):
        now_s = k * TICK_S
        if now_s + 1e-9 >= t_next_cycle:
            for m in frames:
                data = bytearray(m.data)
                if m.arbitration_id == 0x60A and advance_counter:
                    counter = (int.from_bytes(data[1:3], "big") + 2 * k_cycle) & 0xFFFF
                    data[1:3] = counter.to_bytes(2, "big")
                drv.on_frame(can.Message(arbitration_id=m.arbitration_id, data=data, is_extended_id=False), now_s)
            k_cycle += 1
            t_next_cycle = k_cycle * CYCLE_S
        polls.append((now_s, k_cycle, drv.poll(now_s)))
    return drv, polls


def test_real_cycle_with_fixed_counter_is_a_fault_within_5_cycles(one_cycle):
    drv, polls = replay(one_cycle, 5.0, advance_counter=False)
    faulted = [(t, n, st) for t, n, st in polls if st.faults and "state_stale" not in st.faults]
    assert faulted, "a frozen radar must be a fault"
    t_fault, n_cycles, first = faulted[0]
    # cycle 1 is new data; cycles 2.. repeat its counter: fault before the 6th cycle arrives
    assert n_cycles <= 5, (t_fault, n_cycles, first.faults)
    assert "stale" in first.faults
    after = [st for t, _, st in polls if t >= t_fault]
    assert not any(st.fresh or st.valid for st in after)
    assert all("counter_frozen" in st.faults for _, n, st in polls if n >= 6)
    assert polls[-1][2].rejects[REJECT_COUNTER_REPEAT] == polls[-1][1] - 1  # every repeated cycle dropped
    fresh_polls = sum(st.fresh for _, _, st in polls)
    print(f"frozen counter: fresh in {fresh_polls} of {len(polls)} polls, fault at {t_fault:.3f} s "
          f"after {n_cycles} cycles: {first.faults}")


def test_real_cycle_with_advancing_counter_stays_fresh(one_cycle):
    """The same cycle with the counter advancing like the real radar's (+2) is healthy: the check is the counter."""
    drv, polls = replay(one_cycle, 2.0, advance_counter=True)
    late = [st for t, _, st in polls if t > 0.5]
    assert all(st.fresh and not st.faults for st in late), late[-1].faults
    assert REJECT_COUNTER_REPEAT not in polls[-1][2].rejects
