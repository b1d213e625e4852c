"""The valve board emulator's memos change nothing (issue 16 item 1, 2026-12-07b).

A board that looks every VB_Command payload and every VB_Status up in its memos and a
board that checks, unpacks and encodes every one afresh get the same frames (valid,
repeated, bad CRC, out of range, repeated counter, during boot), must end every step in
the same state and send the same frames; :meth:`open_segment` answers as computed afresh.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import can

from firmware_bridge.emulation.valve_board import ValveBoardEmulator
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec

QIKI_DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"


class _NoMemo(dict[bytes, object]):
    """A memo that never keeps anything: every payload is checked and unpacked afresh."""

    def __setitem__(self, key: bytes, value: object) -> None:
        pass


def _frames(codec: DbcCodec, rng: random.Random, n: int) -> list[can.Message]:
    cmd_id = codec.frame_id(vb.COMMAND)
    pool = []
    for k in range(40):
        raw = [rng.choice((0, 0, 10, 25, 50)) for _ in range(8)]
        msg = codec.encode(vb.COMMAND, vb.command_signals(raw, k % vb.COUNTER_MODULO))
        data = bytearray(msg.data)
        if rng.random() < 0.15:
            data[0] = 51  # raw 51 = 102 %: out of range (as tests/emulated/test_valve_board.py)
        data = bytearray(vb.seal_command(cmd_id, data))
        if rng.random() < 0.15:
            data[rng.randrange(8)] ^= 1 << rng.randrange(8)  # a bad CRC (or a lucky good one)
        pool.append(bytes(data))
    return [can.Message(arbitration_id=cmd_id, is_extended_id=False, data=rng.choice(pool)) for _ in range(n)]


@contextlib.contextmanager
def _board_and_fresh_board(codec: DbcCodec) -> Iterator[tuple[list[ValveBoardEmulator], list[can.BusABC]]]:
    """Two boards on their own virtual buses, the second without memos; their hosts' buses."""
    channels = [f"memo-{uuid.uuid4()}" for _ in range(2)]
    buses = [can.Bus(interface="virtual", channel=ch) for ch in channels]
    hosts = [can.Bus(interface="virtual", channel=ch) for ch in channels]
    try:
        boards = [ValveBoardEmulator(bus, codec, n_valves=6) for bus in buses]
        boards[1]._command_memo = _NoMemo()  # type: ignore[assignment]
        boards[1]._status_frames = _NoMemo()  # type: ignore[assignment]
        boards[1]._bus_copies = False  # a new VB_Status message per send
        yield boards, hosts
    finally:
        for bus in buses + hosts:
            bus.shutdown()


def _sent(hosts: list[can.BusABC]) -> list[list[tuple[int, bytes]]]:
    """``(arbitration ID, payload)`` of each frame each host received so far (not the
    timestamps: the virtual bus stamps the wall clock)."""
    return [[(m.arbitration_id, bytes(m.data)) for m in iter(lambda h=h: h.recv(0.0), None)] for h in hosts]


def test_memoised_commands_give_the_same_board() -> None:
    codec = DbcCodec([QIKI_DBC])
    rng = random.Random(7)
    frames = _frames(codec, rng, 400)
    with _board_and_fresh_board(codec) as (boards, hosts):
        t = 0.0
        for b in boards:
            b.step(t)
        for k, msg in enumerate(frames):
            t = 0.3 + 0.001 * k  # through the end of BOOT (0.5 s)
            for b in boards:
                if k == 200:
                    b.rail_powered = False  # a status of another key: rail off, no voltage
                if k == 260:
                    b.rail_powered = True
                    b.stuck_closed.add(2)
                    b.board_temp_c = 41.6
                b._accept_command(msg, t)
                b.step(t)
            a, f = boards
            assert (a.rx_rejects, a.commands_accepted, a.duty_commanded, a.cmd_timeout) == \
                (f.rx_rejects, f.commands_accepted, f.duty_commanded, f.cmd_timeout), k
            assert a.open_fractions(t - 0.001, t) == f.open_fractions(t - 0.001, t)
            for u in (t, t + 0.0004, t + 0.0009):  # open_segment's last answer, reused or not
                got = a.open_segment(u)
                f._segment = None
                assert got == f.open_segment(u), (k, u)
        assert len(boards[0]._command_memo) <= 40
        assert set(boards[0].rx_rejects) >= {"checksum", "range", "boot"}
        assert boards[0].commands_accepted > 100
        sent = _sent(hosts)
        assert len(sent[0]) > 20 and sent[0] == sent[1]
        assert len(boards[0]._status_frames) > 8  # several status keys and counters


def test_status_memo_tells_equal_floats_of_other_types_apart() -> None:
    """np.float32(0.015) == float(np.float32(0.015)), yet they round to other raw voltages.

    The VB_Status memo's key holds the floats' types (2026-12-07b review): without them the
    second status would be served the first one's frame.
    """
    import numpy as np

    with _board_and_fresh_board(DbcCodec([QIKI_DBC])) as (boards, hosts):
        for value in (np.float32(0.015), float(np.float32(0.015)), np.float32(0.015)):
            for b in boards:
                b.rail_powered = True
                b.rail_voltage_v = value  # type: ignore[assignment]
                b._status_counter = 5  # the same counter: only the type differs in the key
                b._send_status(1.0)
        sent = _sent(hosts)
        assert len(sent[0]) == 3 and sent[0] == sent[1]
        assert sent[0][0] != sent[0][1] and sent[0][0] == sent[0][2]  # the types do round apart
