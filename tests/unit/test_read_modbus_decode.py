"""The poller decodes a block again only when its reply changed (issue 16 item 4, 2026-12-07e).

A scripted link answers the shipped BMS and PDU profiles' blocks with replies that repeat,
change, change only in type (``True`` for ``1``, a float for an int) or cannot decode; every
snapshot must hold what ``decode_block`` of each reply gives (the oracle, decoded afresh),
and its bitfield dicts must be its own.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.clock import SimClock
from controller.config import load_profile
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import ReadBlock, Value, decode_block, plan_reads
from hal.modbus.link import LinkStats, ModbusFailure
from hal.modbus.poller import ModbusPoller, PolledDevice

_PROFILES = Path(__file__).resolve().parents[2] / "rigs" / "profiles"
_BMS = load_profile(_PROFILES / "jk_bms.yaml")
_PDU = load_profile(_PROFILES / "qiki_pdu.yaml")


class _ScriptedLink:
    """Answers each read with the next reply queued for its (table, address)."""

    def __init__(self) -> None:
        self.queue: dict[tuple[str, int], list[list[object]]] = {}

    def _next(self, table: str, address: int) -> list[int] | list[bool] | ModbusFailure:
        return self.queue[(table, address)].pop(0)  # type: ignore[return-value]

    def read_registers(self, table: str, address: int, count: int, unit_id: int) -> list[int] | ModbusFailure:
        return self._next(table, address)  # type: ignore[return-value]

    def read_bits(self, table: str, address: int, count: int, unit_id: int) -> list[bool] | ModbusFailure:
        return self._next(table, address)  # type: ignore[return-value]

    def write_coil(self, address: int, value: bool, unit_id: int) -> bool:
        return True

    def write_register(self, address: int, value: int, unit_id: int) -> bool:
        return True

    def stats(self) -> LinkStats:
        return LinkStats()

    def close(self) -> None:
        pass


def _reply(block: ReadBlock, seed: int, kind: int) -> list[object]:
    bits = block.table in ("coil", "discrete")
    vals: list[object] = [((seed * 7919 + i * 104729) >> (i % 5)) & (1 if bits else 0xFFFF)
                          for i in range(block.count)]
    if bits:
        vals = [bool(v) for v in vals] if kind != 1 else vals  # kind 1: ints 0/1 where bools are usual
    elif kind == 1:
        vals[0] = True if vals[0] else False  # a bool where an int is usual (equal, another type)
    if kind == 2:
        vals[0] = float(vals[0])  # equal to the int, refused by the decode
    return vals


def _oracle(blocks: list[ReadBlock], replies: list[list[object]]) -> dict[str, Value] | None:
    out: dict[str, Value] = {}
    try:
        for block, reply in zip(blocks, replies, strict=True):
            out.update(decode_block(block, reply))  # type: ignore[arg-type]
    except ProtocolError:
        return None
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans()), min_size=1, max_size=12))
def test_snapshots_equal_a_fresh_decode(polls: list[tuple[int, int, bool]]) -> None:
    for name, profile in (("bms", _BMS), ("pdu", _PDU)):
        blocks = plan_reads(profile)
        link = _ScriptedLink()
        clock = SimClock()
        poller = ModbusPoller([PolledDevice(name, link, profile, 1)], clock)  # type: ignore[arg-type]
        expected: dict[str, Value] | None = None
        last_snap = None
        for seed, kind, bad in polls:
            replies = [_reply(b, seed + i * bad, kind) for i, b in enumerate(blocks)]
            link.queue = {}  # a failed poll leaves its later blocks unread
            for b, r in zip(blocks, replies, strict=True):
                link.queue.setdefault((b.table, b.address), []).append(r)
            poller.step(clock.now_s())
            clock.advance(profile.poll_period_s)
            fresh = _oracle(blocks, replies)
            snap = poller.snapshot(name)
            if fresh is not None:
                expected = fresh
            if expected is None:
                assert dict(snap.values) == {}
                continue
            got = dict(snap.values)
            assert got == expected
            assert [(k, type(v)) for k, v in got.items()] == [(k, type(v)) for k, v in expected.items()]
            if fresh is not None and last_snap is not None and last_snap.values:
                for k, v in got.items():
                    if isinstance(v, dict):
                        assert v is not last_snap.values[k]  # each snapshot its own bitfield dicts
            last_snap = snap
