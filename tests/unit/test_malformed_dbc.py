"""Malformed DBCs named by a rig: ``qiki rig check`` refuses each with one printable line, exit 2."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
import yaml

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]
QIKI_DBC = (ROOT / "dbc" / "qiki.dbc").read_text()


def _first_bo(text: str, repl) -> str:
    return re.sub(r"(BO_ \d+ \w+: )(\d+)", repl, text, count=1)


CASES = {
    "empty": (lambda: b"", "invalid DBC"),
    "garbage": (lambda: random.Random(7).randbytes(3000), "invalid DBC"),
    "nul_bytes": (lambda: b"\x00" * 500, "invalid DBC"),
    "truncated": (lambda: QIKI_DBC[:2000].encode(), "invalid DBC"),
    "dlc_99": (lambda: _first_bo(QIKI_DBC, lambda m: m.group(1) + "99").encode(),
               "length 99 bytes is outside 0..8 (classic CAN)"),
    "duplicate_id": (lambda: (QIKI_DBC + '\nBO_ 257 Dup: 8 VB\n SG_ X : 0|8@1+ (1,0) [0|255] "" HOST\n').encode(),
                     "reuses arbitration ID 0x101"),
    "signal_outside_frame": (lambda: re.sub(r"SG_ (\w+) : (\d+)\|", lambda m: f"SG_ {m.group(1)} : 200|",
                                            QIKI_DBC, count=1).encode(), "does not fit in message"),
    "no_messages": (lambda: b'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: HOST\n', "defines no message"),
    "oversize": (lambda: QIKI_DBC.encode() + b"CM_ \"" + b"x" * (17 << 20) + b"\";\n", "byte limit"),
}


def _rig_with(tmp_path: Path, dbc_path: str) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())
    data["buses"]["can0"]["dbc"] = [dbc_path, str(ROOT / "dbc" / "ars408.dbc")]
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _check(rig: Path, capsys) -> tuple[int, str]:
    code = main(["rig", "check", str(rig)])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_dbc_is_one_printable_line(tmp_path, capsys, case):
    make, what = CASES[case]
    dbc = tmp_path / f"{case}.dbc"
    dbc.write_bytes(make())
    code, err = _check(_rig_with(tmp_path, str(dbc)), capsys)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(str(dbc)) and what in lines[0], lines[0]
    assert lines[0].isprintable() and len(lines[0]) < 600


@pytest.mark.timeout(30)
def test_fifo_and_device_named_as_dbc_are_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "pipe.dbc"
    os.mkfifo(fifo)
    code, err = _check(_rig_with(tmp_path, str(fifo)), capsys)
    assert code == 2 and err.strip() == f"{fifo}: DBC is a FIFO, not a regular file"
    code, err = _check(_rig_with(tmp_path, "/dev/zero"), capsys)
    assert code == 2 and err.strip() == "/dev/zero: DBC is a character device, not a regular file"
