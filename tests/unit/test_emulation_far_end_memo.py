"""The valve board emulator's command memo changes nothing (issue 16 item 1, 2026-12-07b).

A board that looks every VB_Command payload up in its memo and a board that checks and
unpacks every one afresh get the same frames (valid, repeated, bad CRC, out of range,
repeated counter, during boot) and must end every step in the same state.
"""

from __future__ import annotations

import random
import uuid
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


def test_memoised_commands_give_the_same_board() -> None:
    codec = DbcCodec([QIKI_DBC])
    rng = random.Random(7)
    frames = _frames(codec, rng, 400)
    buses = [can.Bus(interface="virtual", channel=f"memo-{uuid.uuid4()}") for _ in range(2)]
    try:
        boards = [ValveBoardEmulator(bus, codec, n_valves=6) for bus in buses]
        boards[1]._command_memo = _NoMemo()  # type: ignore[assignment]
        t = 0.0
        for b in boards:
            b.step(t)
        for k, msg in enumerate(frames):
            t = 0.3 + 0.001 * k  # through the end of BOOT (0.5 s)
            for b in boards:
                b._accept_command(msg, t)
                b.step(t)
            a, f = boards
            assert (a.rx_rejects, a.commands_accepted, a.duty_commanded, a.cmd_timeout) == \
                (f.rx_rejects, f.commands_accepted, f.duty_commanded, f.cmd_timeout), k
            assert a.open_fractions(t - 0.001, t) == f.open_fractions(t - 0.001, t)
        assert len(boards[0]._command_memo) <= 40
        assert set(boards[0].rx_rejects) >= {"checksum", "range", "boot"}
        assert boards[0].commands_accepted > 100
    finally:
        for bus in buses:
            bus.shutdown()
