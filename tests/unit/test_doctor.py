"""``qiki doctor``: the checks on prepared host trees, the virtual rig's clean pass, the arming gate.

The trees under ``tests/fixtures/doctor/`` are small text files in the layout of
:mod:`controller.doctor.host` (sysfs, procfs, /dev, ``ip -details -statistics -json link``
output in iproute2's real JSON layout); ``rig_pi.yaml`` is a real-hardware rig (SocketCAN
``can0``, serial devices on udev symlinks, Modbus RTU, SCHED_FIFO 80 on CPU 3, mlockall).
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.doctor import DoctorReport, Host, JitterResult, Verdict, host_from_tree, run_doctor
from controller.doctor import checks as C
from controller.doctor.gate import DoctorGate

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "doctor"
RIG = str(FIX / "rig_pi.yaml")


def steady(rate_hz: float, probe_s: float, knobs: object) -> JitterResult:
    """A probe result well inside the budget (the live probe is tested on its own)."""
    return JitterResult(rate_hz, probe_s, int(rate_hz * probe_s), 12.0, 40.0, 90.0, 0, "test")


def doctor(tree: str, rig: str = RIG) -> DoctorReport:
    return run_doctor(rig, host=host_from_tree(FIX / tree), probe_s=1.0, jitter_probe=steady)


# ---------------------------------------------------------------------- the judged fixture verdicts
@pytest.mark.parametrize("tree, check, status, words", [
    ("can_down", "can0: link can0", "fail", "down"),
    ("bus_off", "can0: controller state", "fail", "BUS-OFF"),
    ("wrong_bitrate", "can0: bitrate", "fail", "250000"),
    ("no_serial", "mcu: /dev/qiki-mcu", "fail", "does not exist"),
    ("no_rt", "rt priority", "fail", "RLIMIT_RTPRIO 0"),
])
def test_fixture_trees_give_the_expected_verdict(tree, check, status, words):
    report = doctor(tree)
    v = report.by_name(check)
    assert (v.status, words in v.detail) == (status, True), v
    assert v.hint  # a fix hint on every line that did not pass
    assert not report.passed and report.status == "fail"


def test_each_fixture_fails_only_where_it_differs_from_the_clean_tree():
    expected = {
        "can_down": {"can0: link can0", "can0: controller state"},
        "bus_off": {"can0: link can0", "can0: controller state", "can0: error counters"},
        "wrong_bitrate": {"can0: bitrate", "can0: controller state", "can0: error counters"},
        "no_serial": {"mcu: /dev/qiki-mcu"},
        "no_rt": {"rt priority", "memlock"},
    }
    for tree, names in expected.items():
        assert {v.name for v in doctor(tree).failures} == names, tree


def test_bus_off_tree_also_warns_about_restart_ms_and_skips_nothing_it_can_read():
    report = doctor("bus_off")
    assert report.by_name("can0: restart-ms").status == "warn"
    assert "1 bus-off" in report.by_name("can0: error counters").detail


def test_missing_serial_device_skips_the_hello_with_the_reason():
    v = doctor("no_serial").by_name("mcu: hello")
    assert v.status == "skip" and "unusable" in v.detail


def test_clean_tree_passes_every_check_of_the_real_rig():
    report = doctor("clean")
    assert [v for v in report.verdicts if v.status != "pass"] == []
    assert report.status == "pass" and not report.emulated
    names = {v.name for v in report.verdicts}
    for n in ("can0: bitrate", "can0: restart-ms", "can0: txqueuelen", "mcu: hello", "bms: answer", "pdu: answer",
              "real-time kernel", "memlock", "cpu governor", "cpu throttling", "isolated cpus", "timer jitter",
              "free disk", "clock sync", "sr: /dev/qiki-radar-data", "power: /dev/qiki-rs485"):
        assert n in names, n


# ---------------------------------------------------------------------- the virtual rig
def test_virtual_rig_is_a_clean_pass_with_a_real_probe():
    report = run_doctor("rigs/virtual.yaml", host=host_from_tree(FIX / "clean"), probe_s=0.2, apply_knobs=False)
    assert report.emulated and report.passed
    jitter = report.by_name("timer jitter")
    assert jitter.status in ("pass", "warn") and "20 ticks" in jitter.detail  # a loaded CI machine may warn
    others = [v for v in report.verdicts if v is not jitter]
    assert {v.status for v in others} <= {"pass", "skip"}, [v for v in others if v.status not in ("pass", "skip")]
    skipped = [v for v in report.verdicts if v.name.endswith((": bus", ": device"))]
    assert skipped and all(v.status == "skip" and "emulated" in v.detail for v in skipped)


def test_virtual_rig_on_this_machine_exits_0(capsys):
    assert main(["doctor", "--rig", "rigs/virtual.yaml", "--probe-s", "0.2", "--json", "--no-knobs"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["emulated"] and out["passed"] and out["status"] in ("pass", "warn")


def test_emulated_rig_host_failures_are_advisory():
    report = run_doctor("rigs/virtual.yaml", host=host_from_tree(FIX / "no_rt"), probe_s=0)
    v = report.by_name("rt priority")
    assert v.status == "warn" and "advisory" in v.detail and report.passed


# ---------------------------------------------------------------------- the CLI
def test_cli_fixture_failure_exits_1_with_a_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    rc = main(["doctor", "--rig", RIG, "--host-root", str(FIX / "can_down"), "--probe-s", "0"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "can0 is down" in out and "sudo ip link set can0 up" in out and "fail" in out


def test_cli_json_lists_every_check(capsys):
    assert main(["doctor", "--rig", RIG, "--host-root", str(FIX / "clean"), "--probe-s", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "pass"  # the jitter probe skipped counts as skip
    assert {c["status"] for c in out["checks"]} == {"pass", "skip"}


@pytest.mark.parametrize("args, what", [
    (["--rig", "nope.yaml"], "nope.yaml"),
    (["--probe-s", "-1"], "--probe-s"),
    (["--probe-s", "nan"], "--probe-s"),
    (["--host-root", "/nonexistent/tree"], "--host-root"),
])
def test_cli_bad_input_is_one_line_exit_2(capsys, args, what):
    assert main(["doctor", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and what in err[0]


# ---------------------------------------------------------------------- single checks
def link(**info: object) -> dict[str, object]:
    base: dict[str, object] = {"state": "ERROR-ACTIVE", "berr_counter": {"tx": 0, "rx": 0}, "restart_ms": 100,
                               "bittiming": {"bitrate": 500000}}
    base.update(info)
    return {"ifname": "can0", "flags": ["NOARP", "UP", "LOWER_UP", "ECHO"], "operstate": "UP", "txqlen": 100,
            "linkinfo": {"info_kind": "can", "info_data": base}}


def test_bitrate_against_the_dbc(tmp_path):
    dbc = tmp_path / "bus.dbc"
    dbc.write_text('VERSION ""\nBA_DEF_ "Baudrate" INT 0 1000000;\nBA_ "Baudrate" 250000;\n')
    bps = C.dbc_bitrate_bps(dbc.read_text())
    assert bps == 250000 and C.dbc_bitrate_bps((ROOT / "dbc" / "qiki.dbc").read_text()) is None
    v = C.check_can_bitrate("can0", "can0", link(), 500000, {"bus.dbc": 250000})
    assert v.status == "fail" and "bus.dbc says Baudrate 250000" in v.detail
    assert C.check_can_bitrate("can0", "can0", link(), 500000, {"bus.dbc": 500000}).status == "pass"
    fixed = link(bittiming=None, bittiming_bitrate=500000)
    assert C.check_can_bitrate("can0", "can0", fixed, 500000, {}).status == "pass"


@pytest.mark.parametrize("state, status", [("ERROR-ACTIVE", "pass"), ("ERROR-WARNING", "warn"),
                                           ("ERROR-PASSIVE", "fail"), ("BUS-OFF", "fail"), ("STOPPED", "fail")])
def test_can_state_rule(state, status):
    assert C.check_can_state("can0", "can0", link(state=state)).status == status


@pytest.mark.parametrize("tx, rx, status", [(0, 0, "pass"), (95, 0, "pass"), (0, 96, "warn"), (128, 0, "fail")])
def test_error_counter_limits_of_iso_11898(tx, rx, status):
    assert C.check_can_errors("can0", "can0", link(berr_counter={"tx": tx, "rx": rx})).status == status


@pytest.mark.parametrize("n, status", [(5, "warn"), (10, "pass"), (1000, "pass"), (10000, "warn")])
def test_txqueuelen_range(n, status):
    lk = link()
    lk["txqlen"] = n
    assert C.check_can_txqueuelen("can0", "can0", lk, Host()).status == status


@pytest.mark.parametrize("p99_us, overruns, status", [(500.0, 0, "pass"), (1001.0, 0, "warn"), (5001.0, 0, "fail"),
                                                       (100.0, 12, "fail")])
def test_jitter_rule_half_a_period_fails_a_tenth_warns(p99_us, overruns, status):
    r = JitterResult(100.0, 2.0, 200, 10.0, p99_us, p99_us, overruns)
    assert C.check_jitter(r, max_overruns_per_s=5).status == status


def test_live_jitter_probe_uses_the_project_loop():
    from controller.doctor.probes import jitter_probe

    r = jitter_probe(200.0, 0.1)
    assert r.ticks == 20 and 0.0 <= r.p50_us <= r.p99_us <= r.max_us and r.knobs == "no real-time knobs"


def test_throttling_bits(tmp_path):
    host = Host(sys_root=tmp_path)
    f = tmp_path / C.RPI_THROTTLED
    f.parent.mkdir(parents=True)
    for text, status in (("0", "pass"), ("50000", "warn"), ("50005", "fail")):
        f.write_text(text + "\n")
        assert C.check_throttling(host).status == status, text


def test_governor_and_isolation(tmp_path):
    cpu = tmp_path / "devices" / "system" / "cpu"
    for c, gov in ((0, "ondemand"), (1, "performance")):
        (cpu / f"cpu{c}" / "cpufreq").mkdir(parents=True)
        (cpu / f"cpu{c}" / "cpufreq" / "scaling_governor").write_text(gov)
    (cpu / "online").write_text("0-1\n")
    (cpu / "isolated").write_text("\n")
    host = Host(sys_root=tmp_path)
    assert C.check_governor(host, None).status == "warn"
    assert C.check_governor(host, [1]).status == "pass"
    assert C.check_isolated(host, [1]).status == "warn"
    assert C.check_isolated(host, [7]).status == "fail"
    (cpu / "isolated").write_text("1\n")
    assert C.check_isolated(host, [1]).status == "pass"
    assert C.check_isolated(host, None).status == "skip"
    assert C.parse_cpulist("0-2,5") == {0, 1, 2, 5}


def test_serial_permission_names_the_group(tmp_path):
    (tmp_path / "qiki-mcu").write_text("")
    host = Host(dev_root=tmp_path, access=lambda p, m: False, group_of=lambda p: "dialout")
    v = C.check_serial_device("mcu", "/dev/qiki-mcu", host)
    assert v.status == "fail" and "usermod -aG dialout" in v.hint


def test_rt_limits_by_capability_or_rlimit(tmp_path):
    (tmp_path / "self").mkdir()
    status = tmp_path / "self" / "status"

    def host(capeff: int, rtprio: int, memlock: int) -> Host:
        status.write_text(f"CapEff:\t{capeff:016x}\n")
        lim = {resource.RLIMIT_RTPRIO: (rtprio, rtprio), resource.RLIMIT_MEMLOCK: (memlock, memlock)}
        return Host(proc_root=tmp_path, rlimit=lambda r: lim[r], euid=1000)

    assert C.check_rt_priority(host(1 << C.CAP_SYS_NICE, 0, 0), 80).status == "pass"
    assert C.check_rt_priority(host(0, 80, 0), 80).status == "pass"
    assert C.check_rt_priority(host(0, 79, 0), 80).status == "fail"
    assert C.check_rt_priority(host(0, 0, 0), None).status == "skip"
    assert C.check_memlock(host(1 << C.CAP_IPC_LOCK, 0, 0), True).status == "pass"
    assert C.check_memlock(host(0, 0, C.RLIM_INFINITY), True).status == "pass"
    assert C.check_memlock(host(0, 0, 64 << 20), True).status == "fail"


def test_disk_and_clock(tmp_path):
    for free, status in ((2**29, "fail"), (2 * 2**30, "warn"), (50 * 2**30, "pass")):
        assert C.check_disk(Host(disk_free_bytes=lambda p, f=free: f), "runs").status == status
    assert C.check_clock_sync(Host(timedatectl=lambda: "NTP=yes\nNTPSynchronized=no\n")).status == "warn"
    assert C.check_clock_sync(Host(timedatectl=lambda: "NTPSynchronized=yes\n")).status == "pass"
    assert C.check_clock_sync(Host(run_root=tmp_path)).status == "warn"
    (tmp_path / "systemd" / "timesync").mkdir(parents=True)
    (tmp_path / "systemd" / "timesync" / "synchronized").write_text("")
    assert C.check_clock_sync(Host(run_root=tmp_path)).status == "pass"


def test_slcan_adapter_is_checked_as_a_serial_device(tmp_path):
    data = yaml.safe_load((FIX / "rig_pi.yaml").read_text())
    data["buses"]["can0"].update(interface="slcan", channel="/dev/ttyACM0@115200")
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    report = run_doctor(str(rig), host=host_from_tree(FIX / "clean"), probe_s=0)
    v = report.by_name("can0: slcan adapter: /dev/ttyACM0")
    assert v.status == "fail" and "does not exist" in v.detail


# ---------------------------------------------------------------------- the arming gate and the record
def test_gate_refuses_arming_only_after_a_failed_doctor():
    ok = DoctorReport("r", "r.yaml", [Verdict("a", "pass", "fine"), Verdict("b", "warn", "meh", "fix")])
    bad = DoctorReport("r", "r.yaml", [Verdict("can0: bitrate", "fail", "250000", "fix it")])
    assert DoctorGate(ok).arming_check(None) is None  # type: ignore[arg-type]
    assert DoctorGate(bad).arming_check(None) == "doctor failed: can0: bitrate: 250000"  # type: ignore[arg-type]
    assert DoctorGate(bad).summary()["passed"] is False
    assert bad.metadata() == {"status": "fail", "rig": "r", "can0: bitrate": "fail: 250000"}


def _require_doctor_rig(tmp_path: Path) -> str:
    data = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())
    data["controller"]["require_doctor"] = True
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_run_with_require_doctor_records_the_report_and_flies(tmp_path):
    from controller.record.reader import FlightRecord
    from controller.run import RunOptions, run_main_job

    status, summary, folder = run_main_job(RunOptions(rig=_require_doctor_rig(tmp_path), runs_dir=str(tmp_path / "runs"),
                                                      progress=False))
    assert status == 0, summary["result"]
    assert summary["doctor"]["passed"] and summary["doctor"]["emulated"]
    meta = FlightRecord(folder / "run.mcap").metadata()
    assert meta["doctor"]["status"] in ("pass", "warn") and "timer jitter" in meta["doctor"]


def test_run_with_a_failed_doctor_refuses_arm(tmp_path, monkeypatch):
    import controller.run as run_mod

    bad = DoctorReport("qiki1-virtual", "rig.yaml", [Verdict("rt priority", "fail", "SCHED_FIFO 50 refused", "x")])
    monkeypatch.setattr(run_mod, "run_doctor", lambda *a, **k: bad)
    status, summary, _ = run_mod.run_main_job(run_mod.RunOptions(rig=_require_doctor_rig(tmp_path),
                                                                 runs_dir=str(tmp_path / "runs"), progress=False))
    assert status == 1
    assert "doctor failed: rt priority" in summary["result"]


def test_require_doctor_defaults_off():
    from controller.config import load_rig

    rig, _ = load_rig("rigs/virtual.yaml")
    assert rig.controller.require_doctor is False
    assert os.path.isdir(FIX / "clean" / "sys")


# ---------------------------------------------------------------------- the live device probes
def _pty_mcu(firmware: tuple[int, int, int]):
    """An emulated MCU on the master end of a pty, stepped by a thread; yields the slave path."""
    import threading
    import time
    from types import SimpleNamespace

    from firmware_bridge.emulation.qiki_mcu import McuEmulator
    from hal.serial.link import open_pty_pair

    master, slave = open_pty_pair("mcu")
    world = SimpleNamespace(x_m=0.0, y_m=0.0, yaw_rad=0.0, vx_mps=0.0, vy_mps=0.0, yaw_rate_radps=0.0,
                            ax_body_mps2=0.0, ay_body_mps2=0.0)
    emu = McuEmulator(master, world, firmware_version=firmware)
    stop = threading.Event()

    def loop() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            emu.step(time.monotonic() - t0)
            time.sleep(0.002)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return slave, lambda: (stop.set(), th.join(1.0), master.close())


@pytest.mark.parametrize("accepted, ok, words", [(">=1.0.0", True, "firmware 1.0.0"),
                                                  (">=2.0.0", False, "not accepted")])
def test_mcu_hello_probe_asks_the_board(accepted, ok, words):
    from controller.config import McuDeviceCfg, SerialBusCfg
    from controller.doctor.probes import mcu_hello

    slave, close = _pty_mcu((1, 0, 0))
    try:
        got = mcu_hello(SerialBusCfg(kind="serial", url=slave),
                        McuDeviceCfg(driver="qiki_mcu", bus="mcu", accepted_firmware=accepted), "mcu", 1.0)
    finally:
        close()
    assert got[0] is ok and words in got[1], got


def test_mcu_hello_probe_times_out_on_a_silent_port():
    from controller.config import McuDeviceCfg, SerialBusCfg
    from controller.doctor.probes import mcu_hello
    from hal.serial.link import open_pty_pair

    master, slave = open_pty_pair("silent")
    try:
        ok, detail = mcu_hello(SerialBusCfg(kind="serial", url=slave), McuDeviceCfg(driver="qiki_mcu", bus="mcu"),
                               "mcu", 0.2)
    finally:
        master.close()
    assert not ok and "no HELLO within 0.2 s" in detail
    ok, detail = mcu_hello(SerialBusCfg(kind="serial", url="/dev/qiki-no-such-port"),
                           McuDeviceCfg(driver="qiki_mcu", bus="mcu"), "mcu", 0.2)
    assert not ok and "cannot open" in detail


def test_modbus_probe_reads_the_device_and_names_a_failure():
    import socket

    from controller.clock import MonotonicClock
    from controller.config import ModbusBusCfg, load_profile
    from controller.doctor.probes import modbus_answer
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
    from firmware_bridge.emulation.power import BatteryModel, JkBmsEmulator, PowerWorld

    rig = ROOT / "rigs" / "virtual.yaml"
    bms = JkBmsEmulator(load_profile(ROOT / "rigs/profiles/jk_bms.yaml"), PowerWorld(BatteryModel(soc=0.5)),
                        MonotonicClock(), 1)
    server = ModbusEmulatorServer({1: bms}, "tcp").start()
    try:
        bus = ModbusBusCfg(kind="modbus", url=f"tcp://127.0.0.1:{server.port}", timeout_s=0.5)
        ok, detail = modbus_answer(bus, "power", rig, "rigs/profiles/jk_bms.yaml", 1)
        assert ok and "quantities read" in detail, detail
    finally:
        server.stop()
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = ModbusBusCfg(kind="modbus", url=f"tcp://127.0.0.1:{port}", timeout_s=0.2)
    ok, detail = modbus_answer(bus, "power", rig, "rigs/profiles/jk_bms.yaml", 1)
    assert not ok and "unit 1" in detail, detail


def test_a_run_refused_by_its_doctor_replays_identically(tmp_path, monkeypatch):
    """The replay is gated by the recorded verdicts, not by the machine it runs on."""
    import controller.run as run_mod
    from controller.run_replay import replay_run

    bad = DoctorReport("r", "rig.yaml", [Verdict("rt priority", "fail", "RLIMIT_RTPRIO is 0")])
    monkeypatch.setattr(run_mod, "run_doctor", lambda *a, **k: bad)
    status, summary, folder = run_mod.run_main_job(run_mod.RunOptions(rig=_require_doctor_rig(tmp_path),
                                                                      runs_dir=str(tmp_path / "runs"), progress=False,
                                                                      duration_s=2.0))
    assert status == 1 and "doctor failed" in summary["result"]
    monkeypatch.setattr(run_mod, "run_doctor", lambda *a, **k: pytest.fail("a replay must not run the doctor"))
    result = replay_run(folder)
    assert result.report.identical, "\n".join(result.report.lines())
