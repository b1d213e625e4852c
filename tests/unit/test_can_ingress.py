"""Ingress checks (F01-F05, D01, D03, B01-B03) and the per-tick CAN port (B04-B08)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import can
import pytest

from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.can.faulty import FaultyBus
from hal.can.ingress import IngressChecker, IngressSpec
from hal.can.port import CAN_ERR_BUSOFF, CAN_ERR_CRTL, CAN_ERR_RESTARTED, CanPort

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"
P_STATUS = 0.020


@pytest.fixture(scope="module")
def codec() -> DbcCodec:
    return DbcCodec([QIKI_DBC])


def make_checker(codec, **kw) -> IngressChecker:
    return IngressChecker(codec, [
        IngressSpec(vb.STATUS, counter_signal="VB_Sts_Counter",
                    checksum_signal="VB_Sts_Checksum", checksum_fn=vb.e2e_checksum,
                    regular=True),
        IngressSpec(vb.HEARTBEAT)], **kw)


def status_frame(codec, counter, *, temp_c=35.0, seal=True) -> can.Message:
    st = vb.ValveBoardStatus(0, 0, 24.0, False, False, False, temp_c)
    msg = codec.encode(vb.STATUS, vb.status_signals(st, counter))
    if seal:
        msg.data = bytearray(vb.seal(msg.arbitration_id, msg.data))
    return msg


def heartbeat_frame(codec, state=1) -> can.Message:
    return codec.encode(vb.HEARTBEAT, {"VB_HB_Uptime": 1.0, "VB_HB_FwMajor": 1,
                                       "VB_HB_FwMinor": 2, "VB_HB_FwPatch": 0,
                                       "VB_HB_State": state, "VB_HB_Counter": 0, "VB_HB_Checksum": 0})


def feed(checker, codec, counters, t0=0.0, period=P_STATUS):
    out = []
    for k, c in enumerate(counters):
        out.append(checker.check(status_frame(codec, c), t0 + k * period))
    return out


# ----------------------------------------------------------------------- reject reasons
def _bad_frames(codec):
    good = status_frame(codec, 0)
    bad_crc = status_frame(codec, 0)
    bad_crc.data[7] ^= 0x01
    flipped = status_frame(codec, 0)
    flipped.data[2] ^= 0x04
    short = can.Message(arbitration_id=0x181, is_extended_id=False, data=good.data[:7])
    extended = can.Message(arbitration_id=0x181, is_extended_id=True, data=good.data)
    hb_enum = codec.encode(vb.HEARTBEAT, {"VB_HB_Uptime": 1.0, "VB_HB_FwMajor": 1,
                                          "VB_HB_FwMinor": 2, "VB_HB_FwPatch": 0,
                                          "VB_HB_State": 0, "VB_HB_Counter": 0, "VB_HB_Checksum": 0})
    hb_enum.data[6] |= 0x0C  # state 3 (bits 50-51): outside [0|2] and not in the VAL_ table
    return [
        ("checksum", bad_crc), ("checksum", flipped), ("dlc", short),
        ("unknown_id", extended),
        ("unknown_id", can.Message(arbitration_id=0x555, is_extended_id=False,
                                   data=bytes(8))),
        ("error_frame", can.Message(arbitration_id=0x181, is_error_frame=True,
                                    is_extended_id=False, data=bytes(8))),
        ("remote_frame", can.Message(arbitration_id=0x181, is_remote_frame=True,
                                     is_extended_id=False, dlc=8)),
        ("range", hb_enum),
    ]


@pytest.mark.parametrize("index", range(8))
def test_each_reject_reason_counted_and_not_decoded(codec, index):
    reason, msg = _bad_frames(codec)[index]
    checker = make_checker(codec)
    assert checker.check(msg, 0.0) is None
    assert checker.rejects == {reason: 1}
    assert checker.stream(vb.STATUS).accepted == 0


def test_enum_reject_when_in_range_but_not_in_table(codec):
    # A VAL_ table with a hole: the raw value passes [min|max] but is not listed.
    text = QIKI_DBC.read_text().replace('1 "OPERATIONAL" 2 "FAULT"', '2 "FAULT"')
    checker = None
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "hole.dbc"
        p.write_text(text)
        c2 = DbcCodec([p])
        checker = IngressChecker(c2, [IngressSpec(vb.HEARTBEAT)])
        assert checker.check(heartbeat_frame(c2, state=1), 0.0) is None
        assert checker.rejects == {"enum": 1}
        assert checker.check(heartbeat_frame(c2, state=2), 0.0) is not None


def test_range_reject_in_physical_units(codec, tmp_path):
    # Narrow the board temperature range to [-40|100] degC: 120 degC is rejected.
    p = tmp_path / "narrow.dbc"
    p.write_text(QIKI_DBC.read_text().replace("(1,-40) [-40|215]", "(1,-40) [-40|100]"))
    c2 = DbcCodec([p])
    checker = make_checker(c2)
    assert checker.check(status_frame(codec, 0, temp_c=100.0), 0.0) is not None
    assert checker.check(status_frame(codec, 1, temp_c=120.0), 0.02) is None
    assert checker.rejects == {"range": 1}


# ----------------------------------------------------------------------- counter (F02, D01)
@pytest.mark.parametrize("counters,accepted,score", [
    (range(20), 20, 0),                                    # wraps 15 -> 0
    ([0, 1, 2, 2, 3], 4, 0),                               # repeat rejected, then decays
    ([0, 1, 3, 4], 4, 0),                                  # skip accepted (frames lost)
    ([0, 2, 4, 6], 4, 3),                                  # every frame a skip
    ([5] * 6, 1, 5),                                       # frozen: 5 repeats -> invalid
])
def test_counter_sequences(codec, counters, accepted, score):
    checker = make_checker(codec)
    out = feed(checker, codec, counters)
    assert sum(r is not None for r in out) == accepted
    assert checker.stream(vb.STATUS).counter_score == score


def test_frozen_stream_invalid_at_five_then_recovers(codec):
    checker = make_checker(codec)
    feed(checker, codec, [3, 3, 3, 3, 3])
    assert checker.counter_valid(vb.STATUS) is True        # score 4
    feed(checker, codec, [3], t0=0.1)
    assert checker.counter_valid(vb.STATUS) is False       # score 5: invalid
    assert not checker.is_fresh(vb.STATUS, 0.1)
    # Good frames decay the score; the stream stays invalid until it reaches 0.
    res = feed(checker, codec, [4, 5, 6, 7], t0=0.12)
    assert all(r is None for r in res)
    assert checker.counter_valid(vb.STATUS) is False
    res = feed(checker, codec, [8, 9], t0=0.20)
    assert res[0] is not None and checker.counter_valid(vb.STATUS)
    assert checker.rejects["counter"] == 5 + 4   # 5 repeats + 4 while invalid


def test_counter_resyncs_after_stale_gap(codec):
    checker = make_checker(codec)
    feed(checker, codec, [0, 1, 2])
    assert checker.check(status_frame(codec, 9), 1.0) is not None  # after a timeout
    assert checker.stream(vb.STATUS).counter_score == 0


# ----------------------------------------------------------------------- freshness
def test_fresh_then_stale_after_three_periods(codec):
    checker = make_checker(codec)
    feed(checker, codec, range(5))          # last accepted at 0.08
    assert checker.is_fresh(vb.STATUS, 0.08)
    assert checker.is_fresh(vb.STATUS, 0.08 + 3 * P_STATUS - 1e-6)
    assert not checker.is_fresh(vb.STATUS, 0.08 + 3 * P_STATUS + 1e-6)
    assert checker.age_s(vb.STATUS, 0.10) == pytest.approx(0.02)


def test_regular_stream_needs_good_rhythm_before_first_fresh(codec):
    checker = make_checker(codec)
    feed(checker, codec, range(3))
    assert not checker.is_fresh(vb.STATUS, 0.04)     # two gaps only
    feed(checker, codec, [3], t0=0.06)
    assert checker.is_fresh(vb.STATUS, 0.06)


def test_msg_timestamp_is_ignored(codec):
    checker = make_checker(codec)
    for k in range(4):
        m = status_frame(codec, k)
        m.timestamp = 1e9 + k * 3600.0        # wall clock jumps: irrelevant (B03, B10)
        checker.check(m, k * P_STATUS)
    assert checker.is_fresh(vb.STATUS, 3 * P_STATUS)


def test_one_late_frame_after_stale_does_not_refresh(codec):
    checker = make_checker(codec)
    feed(checker, codec, range(6))
    t = 1.0
    checker.check(status_frame(codec, 6), t)
    assert not checker.is_fresh(vb.STATUS, t)
    # A burst (buffered adapter): frames with ~zero gaps never make it fresh either.
    for k in range(7, 12):
        checker.check(status_frame(codec, k), t + 1e-4 * k)
    assert not checker.is_fresh(vb.STATUS, t + 0.002)
    # Three regular gaps in a row do.
    for j, k in enumerate(range(12, 15)):
        checker.check(status_frame(codec, k), t + 0.002 + (j + 1) * P_STATUS)
    assert checker.is_fresh(vb.STATUS, t + 0.002 + 3 * P_STATUS)


def test_half_rate_warns_then_goes_unfresh(codec):
    checker = make_checker(codec)
    feed(checker, codec, range(6))                  # healthy
    t0 = 5 * P_STATUS
    states = []
    for k in range(1, 9):                            # half rate: 40 ms gaps
        t = t0 + k * 2 * P_STATUS
        checker.check(status_frame(codec, 5 + k), t)
        states.append((checker.timing_warning(vb.STATUS), checker.is_fresh(vb.STATUS, t)))
    assert states[0] == (False, True)
    assert states[2] == (True, True)                 # warning first
    assert states[-1] == (True, False)               # persists -> not fresh


def test_tick_quantised_jitter_stays_regular(codec):
    # A 20 ms stream drained by a 10 ms tick with phase jitter: gaps 10/20/30 ms.
    checker = make_checker(codec)
    t = 0.0
    gaps = [0.02, 0.03, 0.01, 0.02, 0.02, 0.03, 0.01] * 20
    for k, g in enumerate(gaps):
        t += g
        checker.check(status_frame(codec, k), t)
        if k > 4:
            assert checker.is_fresh(vb.STATUS, t), k
    assert not checker.timing_warning(vb.STATUS)


def test_no_period_means_no_freshness(codec, tmp_path):
    p = tmp_path / "nocycle.dbc"
    p.write_text(QIKI_DBC.read_text().replace('BA_ "GenMsgCycleTime" BO_ 1793 100;', ""))
    c2 = DbcCodec([p])
    checker = IngressChecker(c2, [IngressSpec(vb.HEARTBEAT)])
    checker.check(heartbeat_frame(c2), 0.0)
    from hal.errors import HalError
    with pytest.raises(HalError, match="period_s"):
        checker.is_fresh(vb.HEARTBEAT, 0.0)
    checker2 = IngressChecker(c2, [IngressSpec(vb.HEARTBEAT, period_s=0.1)])
    checker2.check(heartbeat_frame(c2), 0.0)
    assert checker2.is_fresh(vb.HEARTBEAT, 0.25) and not checker2.is_fresh(vb.HEARTBEAT, 0.31)


def test_spec_errors(codec):
    from hal.errors import BusConfigError
    with pytest.raises(BusConfigError, match="VB_Sts_Cnt"):
        IngressChecker(codec, [IngressSpec(vb.STATUS, counter_signal="VB_Sts_Cnt")])
    with pytest.raises(BusConfigError, match="checksum_fn"):
        IngressChecker(codec, [IngressSpec(vb.STATUS, checksum_signal="VB_Sts_Checksum")])


def test_fuzz_nothing_escapes(codec):
    rng = random.Random(1234)
    checker = make_checker(codec)
    ids = [0x181, 0x701, 0x101, 0x555]
    for k in range(3000):
        n = rng.randrange(0, 9)
        msg = can.Message(arbitration_id=rng.choice(ids), is_extended_id=rng.random() < 0.1,
                          data=bytes(rng.randrange(256) for _ in range(n)))
        checker.check(msg, k * 0.001)
    assert sum(checker.rejects.values()) > 2500


# ----------------------------------------------------------------------- port
@pytest.fixture
def faulty():
    fb = FaultyBus(can.Bus(interface="virtual", channel=f"qiki-test-{uuid.uuid4()}"))
    yield fb
    fb.shutdown()


@pytest.fixture
def bus_pair():
    ch = f"qiki-test-{uuid.uuid4()}"
    a = can.Bus(interface="virtual", channel=ch)
    b = can.Bus(interface="virtual", channel=ch)
    yield a, b
    a.shutdown()
    b.shutdown()


def test_port_dispatch_unknown_and_log(codec, bus_pair):
    a, b = bus_pair
    logged = []
    port = CanPort(a, on_frame_logged=lambda m, t, rx: logged.append((m.arbitration_id, t, rx)))
    got = []
    port.register(0x181, lambda m, t: got.append((m.arbitration_id, t)))
    b.send(status_frame(codec, 0))
    b.send(can.Message(arbitration_id=0x222, is_extended_id=False, data=bytes(2)))
    b.send(can.Message(arbitration_id=0x181, is_extended_id=False, is_remote_frame=True,
                       dlc=8))
    assert port.poll(1.5) == 1
    assert got == [(0x181, 1.5)]
    assert port.send(heartbeat_frame(codec), 1.6)
    s = port.stats()
    assert (s["received"], s["unknown_id"], s["remote_frames"], s["sent"]) == (3, 1, 1, 1)
    assert s["unknown_ids"] == {0x222: 1}
    assert logged == [(0x181, 1.5, True), (0x222, 1.5, True), (0x181, 1.5, True),
                      (0x701, 1.6, False)]
    with pytest.raises(ValueError):
        port.register(0x181, lambda m, t: None)


def test_port_bounds_work_per_tick_and_drops_excess(codec, bus_pair):
    a, b = bus_pair
    port = CanPort(a, max_rx_frames_per_tick=10, max_drop_frames_per_tick=20)
    n_handled = []
    port.register(0x181, lambda m, t: n_handled.append(1))
    for k in range(100):      # babbling node (B08)
        b.send(status_frame(codec, k))
    assert port.poll(0.0) == 10
    s = port.stats()
    assert s["dropped"] == 20 and s["received"] == 10
    assert port.poll(0.01) == 10
    assert port.stats()["dropped"] == 40


def test_port_handler_exception_contained(codec, bus_pair):
    a, b = bus_pair
    port = CanPort(a)

    def boom(m, t):
        raise RuntimeError("driver bug")

    port.register(0x181, boom)
    b.send(status_frame(codec, 0))
    port.poll(0.0)
    assert port.stats()["handler_errors"] == 1
    assert isinstance(port.last_handler_error, RuntimeError)


def test_port_send_failures_never_raise(codec, faulty):
    fb = faulty
    port = CanPort(fb)
    fb.fail_sends = 3
    results = [port.send(heartbeat_frame(codec), k * 0.01) for k in range(3)]
    assert results == [False] * 3
    assert port.consecutive_send_failures == 3          # B06: safe at 3
    assert port.send(heartbeat_frame(codec), 0.04)
    assert port.consecutive_send_failures == 0
    s = port.stats()
    assert (s["send_failures"], s["sent"]) == (3, 1)


def test_port_bus_state_from_python_can(faulty):
    fb = faulty
    port = CanPort(fb)
    port.poll(0.0)
    assert port.state is can.BusState.ACTIVE
    fb.forced_state = can.BusState.PASSIVE
    port.poll(0.01)
    assert port.error_passive and not port.bus_off
    fb.forced_state = can.BusState.ERROR
    port.poll(0.02)
    assert port.bus_off
    fb.forced_state = None
    port.poll(0.03)
    assert port.state is can.BusState.ACTIVE
    s = port.stats()
    assert (s["bus_off"], s["error_passive"]) == (1, 1)
    assert port.flush_tx() and fb.flushed == 1


def test_port_bus_state_from_socketcan_error_frames(faulty):
    fb = faulty
    port = CanPort(fb)
    got = []
    port.register(CAN_ERR_BUSOFF, lambda m, t: got.append(m))
    fb.inject(can.Message(arbitration_id=CAN_ERR_CRTL, is_error_frame=True,
                          data=bytes([0, 0x20, 0, 0, 0, 0, 0, 0])))
    port.poll(0.0)
    assert port.error_passive
    fb.inject(can.Message(arbitration_id=CAN_ERR_BUSOFF, is_error_frame=True, data=bytes(8)))
    port.poll(0.01)
    assert port.bus_off
    assert got == []                                   # error frames never dispatched (F04)
    fb.inject(can.Message(arbitration_id=CAN_ERR_RESTARTED, is_error_frame=True,
                          data=bytes(8)))
    port.poll(0.02)
    assert port.state is can.BusState.ACTIVE
    assert port.stats()["error_frames"] == 3


def test_port_unplugged_adapter_counts(faulty):
    fb = faulty
    port = CanPort(fb)
    fb.unplugged = True
    assert port.poll(0.0) == 0
    assert port.poll(0.01) == 0
    assert port.consecutive_rx_failures == 1  # B07: then retried with backoff, not at every poll
    assert port.rx_fault is not None
    assert port.send(can.Message(arbitration_id=1, is_extended_id=False), 0.02) is False


def test_received_fraction_sees_random_half_loss_that_the_rhythm_score_misses(codec):
    """B02: under 50 % random loss the receive rate over the last 25 gaps stays below the
    arming limit (0.8) at every frame; under 1 % loss it stays above 0.9."""
    import random

    rng = random.Random(3)
    # (under loss the counter skips are counted too, and rejected frames lower the rate further)
    for loss, lo, hi in ((0.5, 0.2, 0.7), (0.01, 0.9, 1.0), (0.0, 1.0, 1.0)):
        checker = make_checker(codec)
        fractions = []
        for k in range(2000):
            if k < 30 or rng.random() >= loss:
                t = k * P_STATUS
                checker.check(status_frame(codec, k), t)
                if k > 100:
                    fractions.append(checker.received_fraction(vb.STATUS))
        assert lo <= min(fractions) and max(fractions) <= hi + 1e-12, (loss, min(fractions), max(fractions))


def test_valve_board_refuses_arming_below_its_status_rate(codec):
    """The valve board component's arming check names the status rate (B02, O01)."""
    from hal.devices.valve_board import ValveBoardDriver

    drv = ValveBoardDriver(codec)
    for k in range(30):                       # nominal 50 Hz
        drv._checker.check(status_frame(codec, k), k * P_STATUS)
    assert drv.status_rate_low() is None
    for j, k in enumerate(range(30, 90, 2)):  # every other frame
        drv._checker.check(status_frame(codec, 30 + j), k * P_STATUS)
    why = drv.status_rate_low()
    assert why is not None and "50 % of its rate" in why, why
