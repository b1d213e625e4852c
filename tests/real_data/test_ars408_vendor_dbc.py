"""The real ARS408 recording decoded with our DBC and with Continental's own DBC.

Frame by frame, the driver fed through ``dbc/ars408.dbc`` and through the vendor's
``ARS408_id0.dbc`` (vendor names ``Obj_1_General``/``Obj_DistLong``..., mapped by layout)
must decode the same frames, complete the same cycles and produce identical objects.
``ARS408_id1.dbc`` (every ID + 0x10) decodes none of the frames: the sensor ID is read
from the DBC, and asking it for sensor ID 0 is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.cli import main
from hal.can.codec import DbcCodec
from hal.can.replay import read_can_log
from hal.devices.ars408 import Ars408Config, Ars408Driver


@pytest.fixture(scope="module")
def rec(shared_data):
    """The recording and Continental's DBCs for sensor IDs 0 and 1; skips when absent."""
    ars = shared_data / "can" / "ars408"
    r = SimpleNamespace(log=ars / "candump-2026-06-24_154259.log", id0=ars / "ARS408_id0.dbc",
                        id1=ars / "ARS408_id1.dbc")
    if not (r.log.is_file() and r.id0.is_file() and r.id1.is_file()):
        pytest.skip(f"real ARS408 recording / vendor DBCs not found in {ars}")
    return r


@pytest.fixture(scope="module")
def frames(rec):
    return read_can_log(rec.log)


def _run(dbc: Path, frames) -> tuple[Ars408Driver, list]:
    drv = Ars408Driver(DbcCodec([dbc]), Ars408Config(sensor_id=0))
    out = []
    for m in frames:
        t = m.timestamp - frames[0].timestamp
        cycle = drv.on_frame(m, t)
        out.append(cycle)
    return drv, out


def test_vendor_and_our_dbc_decode_identical_objects_frame_by_frame(rec, repo_root, frames):
    ours, cyc_ours = _run(repo_root / "dbc" / "ars408.dbc", frames)
    vendor, cyc_vendor = _run(rec.id0, frames)
    assert len(frames) == 9579
    n_objects = 0
    for a, b in zip(cyc_ours, cyc_vendor, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a == b
            n_objects += len(a.objects)
    st_o, st_v = ours.poll(frames[-1].timestamp - frames[0].timestamp), \
        vendor.poll(frames[-1].timestamp - frames[0].timestamp)
    assert (st_o.decoded, st_o.cycles_complete, st_o.rejects) == (9579, 515, {})
    assert (st_v.decoded, st_v.cycles_complete, st_v.rejects) == (9579, 515, {})
    assert n_objects == 2996
    assert st_o.version == st_v.version == (4, 30, 2)
    assert st_o.health == st_v.health and st_o.faults == st_v.faults == ()


def test_cli_reports_match_with_either_dbc(rec, capsys):
    assert main(["radar", "decode", str(rec.log), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["radar", "decode", str(rec.log), "--dbc", str(rec.id0), "--json"]) == 0
    vendor = json.loads(capsys.readouterr().out)
    for key in ("frames", "decoded", "rejected", "cycles", "detections", "tracks", "radar", "healthy"):
        assert ours[key] == vendor[key], key
    assert vendor["dbc_notes"] and "Obj_1_General->ARS408_ObjGeneral" in vendor["dbc_notes"][0]


def test_id1_dbc_decodes_nothing_and_is_not_healthy(rec, capsys):
    assert main(["radar", "decode", str(rec.log), "--dbc", str(rec.id1), "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["sensor_id"] == 1 and r["sensor_id_from"] == "dbc"
    assert r["decoded"] == 0 and r["rejected"] == {"unknown_id": 9579} and not r["healthy"]
    assert main(["radar", "decode", str(rec.log), "--dbc", str(rec.id1), "--sensor-id", "0"]) == 2
    assert "sensor ID 1" in capsys.readouterr().err
