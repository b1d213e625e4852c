"""The ingress rhythm rule with its bounds decided at build equals the per-frame rule (issue 16, 2026-12-07e).

``IngressChecker._accept`` reads a regular stream's period and regular-gap bounds (integer
ns) from its plan, computed once per arbitration ID when the checker is built; the oracle
below is the previous ``_accept``, which computed them from the stream's period on every
frame. Random receipt times (regular, late, early, stale gaps) must leave every stream
field and verdict equal, frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.can.ingress import IngressChecker, IngressSpec, StreamState, _Plan, to_ns

ROOT = Path(__file__).resolve().parents[2]
_CODEC = DbcCodec([ROOT / "dbc" / "qiki.dbc"])


class _PerFrameChecker(IngressChecker):
    """The previous ``_accept``: period and bounds from the stream, on every frame."""

    def _accept(self, plan: _Plan, st: StreamState, now_s: float) -> None:
        last = st.last_rx_s
        st.accepted += 1
        period = st.period_s
        if plan.spec.regular and period:
            now_ns = to_ns(now_s)
            st.rx_window_ns.append(now_ns)
            if last is not None:
                gap_ns = now_ns - to_ns(last)
                period_ns = to_ns(period)
                if st.stale_after_ns is not None and gap_ns > st.stale_after_ns:
                    st.recovering = True
                    st.good_gaps = 0
                    st.irregular_score += 1
                elif not (round(period_ns * (1.0 - self._tolerance)) <= gap_ns
                          <= round(period_ns * (1.0 + self._tolerance))):
                    st.good_gaps = 0
                    st.irregular_score += 1
                else:
                    st.good_gaps += 1
                    if st.irregular_score > 0:
                        st.irregular_score -= 1
                if st.irregular_score > self._score_cap:
                    st.irregular_score = self._score_cap
            if st.recovering and st.good_gaps >= self._recover_frames:
                st.recovering = False
        st.last_rx_s = now_s


def _frame(uptime_s: float):
    hb = vb.ValveBoardHeartbeat(uptime_s, (1, 2, 0), vb.BoardState.OPERATIONAL)
    return _CODEC.encode(vb.HEARTBEAT, vb.heartbeat_signals(hb, 0))


@pytest.mark.parametrize("regular", [True, False])
@settings(max_examples=50, deadline=None)
@given(gaps_ms=st.lists(st.sampled_from([3, 5, 10, 19, 20, 21, 35, 36, 60, 61, 100, 400]), max_size=40),
       period_ms=st.sampled_from([10, 20, 50]), tolerance=st.sampled_from([0.25, 0.75]))
def test_accept_equals_the_per_frame_rule(regular: bool, gaps_ms: list[int], period_ms: int,
                                          tolerance: float) -> None:
    spec = IngressSpec(vb.HEARTBEAT, period_s=period_ms / 1000, regular=regular, check_range=False)
    new = IngressChecker(_CODEC, [spec], rhythm_tolerance=tolerance)
    old = _PerFrameChecker(_CODEC, [spec], rhythm_tolerance=tolerance)
    t_s = 0.0
    for gap in gaps_ms:
        t_s += gap / 1000
        msg = _frame(t_s)
        assert (new.check(msg, t_s) is None) == (old.check(msg, t_s) is None)
        a, b = new.stream(vb.HEARTBEAT), old.stream(vb.HEARTBEAT)
        assert [getattr(a, k) for k in StreamState.STATE] == [getattr(b, k) for k in StreamState.STATE]
        assert new.is_fresh(vb.HEARTBEAT, t_s) == old.is_fresh(vb.HEARTBEAT, t_s)
        assert new.timing_warning(vb.HEARTBEAT) == old.timing_warning(vb.HEARTBEAT)
