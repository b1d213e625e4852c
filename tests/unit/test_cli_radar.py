"""``qiki radar decode``: reports on the real recordings, filter defaults, bad input.

The ARS408 criterion of issue 3 ("tracks confirmed at the three stable objects, IDs 56,
32, 0 near x = 5.6, 11.4, 17.6 m, within 0.3 m; no other track confirmed for more than
2 s") holds with the command's default object filter (existence class 7, stationary,
RCS >= 10 dBsm) and does NOT hold on the unfiltered object list: both are asserted, so
the test fails if either the filter or the recording's nature is misdescribed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
LR_LOG = REAL / "can" / "ars408" / "candump-2026-06-24_154259.log"
SR_DAT = REAL / "serial" / "ti_iwr6843" / "xwr68xx_processed_stream_2019_12_04T21_44_51_663.dat"
NOTED = [(5.6, 0.6), (11.4, 0.2), (17.6, -0.4)]  # RECORDING_NOTES.md, IDs 56, 32, 0

needs_lr = pytest.mark.skipif(not LR_LOG.is_file(), reason=f"real ARS408 recording not found at {LR_LOG}")
needs_sr = pytest.mark.skipif(not SR_DAT.is_file(), reason=f"real IWR6843 capture not found at {SR_DAT}")


def decode_json(capsys, *args: str, status: int = 0) -> dict:
    assert main(["radar", "decode", *args, "--json"]) == status
    return json.loads(capsys.readouterr().out)


def near_noted(track: dict, radius_m: float = 0.5) -> bool:
    """Is the track one of the noted objects? 0.5 m: object 0 is a WIDE object whose
    reported lateral position wanders (a 6.5 s track of it averages y = -0.13 m, 0.33 m
    from the noted -0.4 m); the nearest unrelated return is 0.85 m away (x 18.45 m)."""
    return any(math.hypot(track["mean_x_m"] - x, track["mean_y_m"] - y) < radius_m for x, y in NOTED)


@pytest.fixture(scope="module")
def default_report():
    from argparse import Namespace

    from controller.cli.radar import decode

    if not LR_LOG.is_file():
        pytest.skip(f"real ARS408 recording not found at {LR_LOG}")
    return decode(Namespace(file=str(LR_LOG), format="ars408", dbc=None, sensor_id=None, channel=None,
                            min_prob_of_exist=None, min_rcs_dbsm=None, dyn_prop=None, all_objects=False))


@needs_lr
def test_real_candump_counts(default_report):
    r = default_report
    assert (r["frames"], r["decoded"], r["rejected"]) == (9579, 9579, {})
    assert r["cycles"]["complete"] == 515 and r["cycles"]["dropped"] == 0
    assert r["radar"]["version"] == "4.30.2" and not r["radar"]["stale_at_end"]
    assert r["filter"] == {"min_prob_of_exist": 0.999, "min_rcs_dbsm": 10.0, "dyn_props": ["stationary"]}


@needs_lr
def test_default_filter_meets_the_issue_criterion(default_report):
    tracks = default_report["tracks"]
    for x, y in NOTED:
        assert any(math.hypot(t["mean_x_m"] - x, t["mean_y_m"] - y) < 0.3 for t in tracks), (x, y)
    others = [t for t in tracks if not near_noted(t)]
    assert others and all(t["confirmed_s"] <= 2.0 for t in others), others


@needs_lr
def test_unfiltered_object_list_has_other_persistent_objects(capsys):
    r = decode_json(capsys, str(LR_LOG), "--all-objects")
    assert r["filter"] == {"min_prob_of_exist": 0.0, "min_rcs_dbsm": None, "dyn_props": None}
    long_others = [t for t in r["tracks"] if not near_noted(t) and t["confirmed_s"] > 2.0]
    # e.g. a near return at x 1.7 m held for > 20 s: real, but not one of the noted objects
    assert len(long_others) >= 3, long_others
    assert r["detections"] > 2 * default_detections(capsys)


def default_detections(capsys) -> int:
    return decode_json(capsys, str(LR_LOG))["detections"]


@needs_lr
def test_text_report_names_the_filter(capsys):
    assert main(["radar", "decode", str(LR_LOG), "--dyn-prop", "any", "--min-rcs-dbsm", "0"]) == 0
    out = capsys.readouterr().out
    assert "9579 frames, 9579 decoded, 0 rejected" in out
    assert "cycles: 515 complete" in out
    assert out.rstrip().splitlines()[-1] == "object filter: probability of existence >= 0.999, RCS >= 0 dBsm"


@needs_lr
def test_wrong_sensor_id_reports_stale_not_crash(capsys):
    r = decode_json(capsys, str(LR_LOG), "--sensor-id", "1", status=1)  # decoded, not healthy
    assert not r["healthy"] and "no frame of ARS408 sensor ID 1" in r["problems"][0]
    assert r["decoded"] == 0 and r["rejected"] == {"unknown_id": 9579}
    assert r["cycles"]["complete"] == 0
    assert r["radar"]["stale_at_end"] and "stale" in r["radar"]["faults_at_end"]
    assert r["tracks"] == []


@needs_sr
def test_iwr6843_capture(capsys):
    r = decode_json(capsys, str(SR_DAT), "--format", "iwr6843")
    assert r["format"] == "iwr6843" and r["frames"] == 101 and r["rejected"] == {}
    assert main(["radar", "decode", str(SR_DAT), "--format", "iwr6843"]) == 0
    assert "101 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing.log"], "CAN log not found"),
        (["{tmp}/garbage.log"], "malformed CAN log"),
        (["{tmp}/garbage.log", "--dbc", "{tmp}/garbage.log"], "invalid DBC"),
        (["{tmp}/missing.dat", "--format", "iwr6843"], "cannot read capture"),
        (["{tmp}/garbage.log", "--format", "iwr6843", "--sensor-id", "1"], "--sensor-id: applies to --format ars408 only"),
        (["{tmp}/garbage.log", "--format", "iwr6843", "--dbc", "x.dbc"], "--dbc: applies to --format ars408 only"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "garbage.log").write_text("this is not a candump line\n")
    argv = ["radar", "decode", *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("args", [["--sensor-id", "8"], ["--min-prob-of-exist", "1.5"], ["--dyn-prop", "flying"],
                                  ["--format", "pcap"]])
def test_bad_options_are_rejected_by_the_parser(args):
    with pytest.raises(SystemExit) as exc:
        main(["radar", "decode", "x.log", *args])
    assert exc.value.code == 2


def test_garbage_iwr6843_bytes_report_not_raise(tmp_path, capsys):
    p = tmp_path / "noise.dat"
    p.write_bytes(bytes(range(256)) * 8)
    r = decode_json(capsys, str(p), "--format", "iwr6843", status=1)
    assert r["frames"] == 0 and r["garbage_bytes"] > 0 and not r["healthy"]
