"""The replay corpus (``tests/replay_corpus/*.mcap``) replays bit-exactly with the current code.

Any change that alters an output, an event or a telemetry value fails here with the first
divergence. An intended change of behaviour is accepted by re-recording the corpus:
``make corpus`` (``tests/replay_corpus/record.py``), then commit the new records.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.errors import ConfigError
from controller.record.replay import read_record
from controller.run_replay import replay_run

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "replay_corpus").glob("*.mcap"))
RERECORD = "if the change is intended, re-record the corpus: make corpus (tests/replay_corpus/record.py)"


def test_the_corpus_is_there() -> None:
    names = {p.stem for p in CORPUS}
    assert {"nominal", "faults", "seed7", "realtime"} <= names, names


@pytest.mark.parametrize("record", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_record_replays_identically(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # attachments are named relative to the checkout
    run = read_record(record)
    try:
        result = replay_run(run)
    except ConfigError as exc:
        pytest.fail(f"{exc}\n{RERECORD}")
    assert result.report.identical, "\n".join([*result.report.lines(), RERECORD])
    assert result.report.per_topic["/tick"]["recorded"] > 100
    assert os.path.basename(str(run.options["rig"])).endswith(".yaml")
