"""``qiki modbus read --rig RIG DEVICE [QUANTITY ...]``.

Emulated rigs (memory and RTU over a pty) are read in-process; a rig without emulation
opens its url (here a pymodbus TCP server on 127.0.0.1 started by the test). Failed reads
exit 1 naming the failure; bad input exits 2 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write_rig(tmp_path: Path, edit=None, src: str = "virtual.yaml") -> str:
    data = yaml.safe_load((ROOT / "rigs" / src).read_text())
    if edit is not None:
        edit(data)
    folder = tmp_path / "rigs"
    folder.mkdir(exist_ok=True)
    p = folder / f"rig{len(list(folder.iterdir()))}.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def lines(out: str) -> dict[str, str]:
    d = {}
    for line in out.strip().splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
        else:
            k, v = line.split(": ", 1)
        d[k] = v
    return d


def test_reads_every_quantity_of_the_emulated_pdu(capsys):
    assert main(["modbus", "read", "--rig", str(ROOT / "rigs/virtual.yaml"), "pdu"]) == 0
    got = lines(capsys.readouterr().out)
    assert got["valve_rail_enabled"] == "off" and got["mcu_power_enabled"] == "on"
    assert got["fault_flags"] == "0x0"
    assert got["bus_voltage_v"].endswith(" V") and 25.0 < float(got["bus_voltage_v"].split()[0]) < 28.0


@pytest.mark.parametrize("src", ["virtual.yaml", pytest.param("virtual_rtu.yaml", marks=pytest.mark.realtime)])
def test_reads_named_bms_quantities_from_the_emulated_battery(tmp_path, capsys, src):
    def edit(d):
        d["emulation"]["battery"] = {"start_soc_pct": 42.0, "start_temperature_c": 31.0}

    rc = main(["modbus", "read", "--rig", write_rig(tmp_path, edit, src), "bms", "soc_pct", "cell_count",
               "battery_temperature_1_c"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert lines(out) == {"soc_pct": "42 %", "cell_count": "8", "battery_temperature_1_c": "31 degC"}


@pytest.mark.parametrize("fault, expect", [
    ({"fault": "silent"}, "FAILED timeout"),
    ({"fault": "exception", "exception_code": 2}, "FAILED exception 2"),
    ({"fault": "wrong_unit"}, "FAILED wrong_unit"),
    ({"fault": "corrupt"}, "FAILED corrupt"),
])
def test_failed_read_names_the_failure_and_exits_1(tmp_path, capsys, fault, expect):
    def edit(d):
        d["emulation"]["faults"] = [{"at_s": 0.0, "target": "bms", **fault}]

    rc = main(["modbus", "read", "--rig", write_rig(tmp_path, edit), "bms", "soc_pct"])
    got = lines(capsys.readouterr().out)
    assert rc == 1
    assert got["soc_pct"].startswith(expect)


@pytest.mark.realtime
def test_rtu_emulated_corrupt_frames_are_failures_not_values(tmp_path, capsys):
    def edit(d):
        d["emulation"]["faults"] = [{"at_s": 0.0, "target": "bms", "fault": "corrupt"}]

    rc = main(["modbus", "read", "--rig", write_rig(tmp_path, edit, "virtual_rtu.yaml"), "bms", "soc_pct", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["values"] == {} and out["failures"]["soc_pct"]["kind"] == "corrupt"


def test_json_output(capsys):
    assert main(["modbus", "read", "--rig", str(ROOT / "rigs/virtual.yaml"), "bms", "soc_pct", "alarms", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "bms" and out["failures"] == {}
    assert out["values"]["soc_pct"] == 90.0 and out["values"]["alarms"]["raw"] == 0


@pytest.fixture
def tcp_server():
    from controller.clock import MonotonicClock
    from controller.config import load_profile
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
    from firmware_bridge.emulation.power import BatteryModel, JkBmsEmulator, PowerWorld

    clock = MonotonicClock()
    world = PowerWorld(BatteryModel(soc=0.55))
    bms = JkBmsEmulator(load_profile(ROOT / "rigs/profiles/jk_bms.yaml"), world, clock, 1)
    server = ModbusEmulatorServer({1: bms}, "tcp").start()
    try:
        yield server
    finally:
        server.stop()


def _real_rig(tmp_path: Path, url: str) -> str:
    def edit(d):
        d.pop("emulation")
        d["buses"]["power"] = {"kind": "modbus", "url": url, "timeout_s": 0.2}

    return write_rig(tmp_path, edit)


@pytest.mark.realtime
def test_real_rig_opens_its_url(tmp_path, capsys, tcp_server):
    rig = _real_rig(tmp_path, f"tcp://127.0.0.1:{tcp_server.port}")
    assert main(["modbus", "read", "--rig", rig, "bms", "soc_pct", "cell_count"]) == 0
    assert lines(capsys.readouterr().out) == {"soc_pct": "55 %", "cell_count": "8"}


def test_real_rig_nobody_listening_is_a_failed_read(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["modbus", "read", "--rig", _real_rig(tmp_path, f"tcp://127.0.0.1:{port}"), "bms", "soc_pct"])
    assert rc == 1
    assert lines(capsys.readouterr().out)["soc_pct"].startswith("FAILED transport")


@pytest.mark.parametrize("argv, expect", [
    (["bms", "nope"], "unknown quantity 'nope'"),
    (["valves"], "no Modbus device 'valves'"),
    (["ghost"], "no Modbus device 'ghost'"),
    (["bms", "--timeout", "0"], "--timeout: must be > 0"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expect):
    rc = main(["modbus", "read", "--rig", str(ROOT / "rigs/virtual.yaml"), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("url, expect", [
    ("memory://power", "exists only on emulated rigs"),
    ("rtu://emulated", "exists only on emulated rigs"),
    ("ftp://x", "scheme must be tcp, rtu or memory"),
    ("tcp://nohostport", "expected tcp://HOST:PORT"),
])
def test_bad_url_on_real_rig_is_exit_2(tmp_path, capsys, url, expect):
    rc = main(["modbus", "read", "--rig", _real_rig(tmp_path, url), "bms"])
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and len(err.strip().splitlines()) == 1


def test_missing_rig_is_exit_2(capsys):
    assert main(["modbus", "read", "--rig", "rigs/does_not_exist.yaml", "bms"]) == 2
    assert "does_not_exist.yaml" in capsys.readouterr().err
