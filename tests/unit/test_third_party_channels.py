"""Channels of third-party CAN logs: python-can's readers give ints, candump gives strings.

Files are written here with python-can's own writers (ASC, BLF, TRC) from the real
candump recording when it is present (else from frames built with the codec), then read
back through :func:`hal.can.replay.iter_can_log` and ``qiki radar decode --channel``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import can
import pytest

from controller.cli import main
from hal.can.replay import channel_key, channel_matches, iter_can_log

ROOT = Path(__file__).resolve().parents[2]


def _real_dir() -> Path | None:
    for base in (ROOT.parent, ROOT.parent.parent):
        d = base / "shared" / "data" / "real"
        if d.is_dir():
            return d
    return None


REAL = _real_dir()
LR_LOG = None if REAL is None else REAL / "can" / "ars408" / "candump-2026-06-24_154259.log"


def _frames(n: int = 1200) -> list[can.Message]:
    """The first ``n`` frames of the real candump (about 9 object-list cycles)."""
    if LR_LOG is None or not LR_LOG.is_file():
        pytest.skip("real ARS408 candump not found (../shared/data/real beside the repo)")
    return list(itertools.islice(can.LogReader(str(LR_LOG)), n))


def _write(path: Path, frames: list[can.Message], channel) -> None:
    with can.Logger(str(path)) as w:
        for m in frames:
            w.on_message_received(can.Message(
                timestamp=m.timestamp, arbitration_id=m.arbitration_id, is_extended_id=m.is_extended_id,
                dlc=m.dlc, data=m.data, channel=channel))


@pytest.mark.parametrize("given, key", [(0, "0"), (1, "1"), ("0", "0"), (" 1 ", "1"), ("00", "0"),
                                        ("can1", "can1"), ("vcan0", "vcan0"), (None, None)])
def test_channel_key_normalises(given, key):
    assert channel_key(given) == key


def test_channel_matches_across_types():
    assert channel_matches(0, "0") and channel_matches("0", 0) and channel_matches("can1", "can1")
    assert not channel_matches(0, "can0") and not channel_matches(None, "0") and not channel_matches(1, "0")
    assert channel_matches(None, None) and channel_matches(3, None)


# python-can 4.x, as measured: (suffix, channel given to the writer, msg.channel read back)
READ_BACK = [
    ("asc", 0, 0),    # written as "1" (Vector counts from 1), read back 0-based
    ("asc", 1, 1),
    ("blf", 0, 0),
    ("blf", 2, 2),
    ("trc", 0, 1),    # TRC writer adds 1, TRC reader keeps the file's bus number
    ("log", "can1", "can1"),
]


@pytest.mark.parametrize("suffix, written, read", READ_BACK)
def test_python_can_readers_channel_types(tmp_path, suffix, written, read):
    frames = _frames(20)
    p = tmp_path / f"x.{suffix}"
    _write(p, frames, written)
    got = [m.channel for m in iter_can_log(p)]
    assert got and all(c == read for c in got), (suffix, written, got[:3])
    assert type(got[0]) is type(read)
    # Whatever the reader's type, the normalised filter keeps every frame ...
    assert len(list(iter_can_log(p, channel=str(read)))) == len(frames)
    assert len(list(iter_can_log(p, channel=read))) == len(frames)
    # ... and another channel keeps none.
    assert list(iter_can_log(p, channel="7")) == []


@pytest.mark.parametrize("suffix", ["asc", "blf", "trc"])
def test_decode_channel_filter_on_written_logs(tmp_path, capsys, suffix):
    frames = _frames()
    p = tmp_path / f"radar.{suffix}"
    _write(p, frames, 0)
    ch = "1" if suffix == "trc" else "0"
    assert main(["radar", "decode", str(p), "--channel", ch, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["healthy"] and r["channels"]["frames_kept"] == len(frames) == r["frames"]
    assert r["decoded"] == len(frames) and r["cycles"]["complete"] >= 8


@pytest.mark.parametrize("suffix", ["asc", "blf", "log"])
def test_channel_that_matches_nothing_is_not_healthy(tmp_path, capsys, suffix):
    frames = _frames()
    p = tmp_path / f"radar.{suffix}"
    _write(p, frames, 1 if suffix != "log" else "can1")
    assert main(["radar", "decode", str(p), "--channel", "5", "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert not r["healthy"] and r["frames"] == 0
    present = "1" if suffix != "log" else "can1"
    assert r["channels"]["present"] == {present: len(frames)}
    assert f"channels present: {present} ({len(frames)} frames)" in r["problems"][0]
    assert r["radar"]["stale_at_end"] and "stale" in r["radar"]["faults_at_end"]
    # The text report says so in its first line.
    assert main(["radar", "decode", str(p), "--channel", "5"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT HEALTHY: channel '5' matches no frame")


def test_real_candump_channel_can1_kept_can0_refused(capsys):
    if LR_LOG is None or not LR_LOG.is_file():
        pytest.skip("real ARS408 candump not found (../shared/data/real beside the repo)")
    assert main(["radar", "decode", str(LR_LOG), "--channel", "can1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["channels"]["frames_kept"] == 9579 and r["healthy"]
    assert main(["radar", "decode", str(LR_LOG), "--channel", "0", "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["channels"]["present"] == {"can1": 9579} and r["frames"] == 0
