"""The writer process's hand-over (2026-12-07d): row layouts sent once, the memo-less batch pickler."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from controller.record import flight_proc
from controller.record.flight import FlightRecorder
from controller.record.flight_proc import ProcessRecorder
from controller.record.flight_writer import NumberKeys
from controller.record.reader import FlightRecord
from controller.record.taps import TickCursor

SCHEMA = {"type": "object"}


class Keys(tuple[str, ...]):
    """A tuple subclass the writer process does not register (its rows carry it)."""

    __slots__ = ()


def _rows() -> list[tuple[tuple[str, ...], tuple[object, ...]]]:
    plain = ("tick", "x", "data")
    numbers = NumberKeys(plain, (1,))  # equal to ``plain`` but cleans x: must not share its layout
    out: list[tuple[tuple[str, ...], tuple[object, ...]]] = []
    for k in range(120):
        x: object = math.nan if k % 7 == 0 else k if k % 7 == 1 else k / 3
        out.append((plain, (k, x, bytes([k]))))
        out.append((numbers, (k, x, bytes([k]))))
        out.append((tuple(["tick", "x", "data"]), (k, x, b"")))  # a new keys object every row
        out.append((Keys(plain), (k, x, b"\x01")))
        out.append((("tick", 1), (k, x)))  # not all str: carried, not registered
    return out


def _write(rec: FlightRecorder | ProcessRecorder, rows: list[tuple[tuple[str, ...], tuple[object, ...]]]) -> None:
    ch = rec.channel("/a", "s", SCHEMA)
    for i, (keys, values) in enumerate(rows):
        rec.write_row(ch, i * 1_000_000, keys, values)


def test_rows_of_every_layout_kind_write_the_in_process_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flight_proc, "MAX_LAYOUTS", 40)  # the per-row keys objects overflow it
    rows = _rows()
    a = FlightRecorder(tmp_path / "thread.mcap", realtime=False, chunk_period_s=0.05)
    _write(a, rows)
    sa = a.close()
    b = ProcessRecorder(tmp_path / "proc.mcap", realtime=False, chunk_period_s=0.05)
    _write(b, rows)
    assert len(b._layouts) == 40 and b._layouts[0] == rows[0][0] and type(b._layouts[1]) is NumberKeys
    sb = b.close()
    assert (tmp_path / "proc.mcap").read_bytes() == (tmp_path / "thread.mcap").read_bytes()
    assert sb.errors == sa.errors == 0 and sb.messages_written == len(rows)
    got = FlightRecord(tmp_path / "proc.mcap").topic("/a")
    assert (got[5]["x"], got[6]["x"]) == (1, 1.0) and type(got[5]["x"]) is int  # NumberKeys makes a float
    assert sb.nonfinite_replaced == sa.nonfinite_replaced > 0


def test_appender_rows_and_a_cycle_in_a_batch(tmp_path: Path) -> None:
    """An appender keeps its layout's number; a cyclic message sends its batch item by item."""
    cyclic: dict[str, object] = {"tick": 0}
    cyclic["self"] = cyclic
    files = {}
    for how in ("thread", "proc"):
        rec: FlightRecorder | ProcessRecorder = (
            FlightRecorder(tmp_path / f"{how}.mcap", realtime=False, chunk_period_s=0.05) if how == "thread"
            else ProcessRecorder(tmp_path / f"{how}.mcap", realtime=False, chunk_period_s=0.05))
        cur = TickCursor()
        from controller.record.flight_log import FlightLog

        log = FlightLog(rec, cur)
        append = log.appender("/valves")  # a known topic (its schema is not checked here)
        ch = rec.channel("/msgs", "s", SCHEMA)
        keys_a, keys_b = ("tick", "v"), ("tick", "v", "w")
        for k in range(200):
            cur.now_ns = k * 1_000_000
            append(keys_a if k % 3 else keys_b, (k, 0.5 * k) if k % 3 else (k, 1.0, True))
            if k == 100:
                rec.write(ch, cur.now_ns, cyclic)
        st = rec.close()
        assert st.errors == 1 and "message on channel" in st.error_texts[0]
        assert st.messages_written == 200  # the cyclic message is not written
        if isinstance(rec, ProcessRecorder):
            assert rec._layouts == [keys_b, keys_a]
        files[how] = (tmp_path / f"{how}.mcap").read_bytes()
    assert files["proc"] == files["thread"]
