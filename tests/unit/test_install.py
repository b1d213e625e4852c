"""``qiki install`` and the sd_notify protocol (issue 13, part 5).

The notify tests bind a real AF_UNIX datagram socket (a path in tmp, and the abstract
namespace) and read what :class:`ServiceNotifier` sends; the watchdog pacing runs on an
injected clock (no sleeps). The generated unit goes through ``systemd-analyze verify``
where it exists.
"""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_rig
from controller.service.notify import ServiceNotifier, notify_address, sd_notify, watchdog_period_s
from controller.service.units import (
    PLACEHOLDER,
    UDEV_PATH,
    UNIT_PATH,
    ServiceOptions,
    network_path,
    render_service_files,
    stop_timeout_s,
    symlink_names,
)

ROOT = Path(__file__).resolve().parents[2]
PI_RIG = ROOT / "rigs" / "qiki1_pi.yaml"


@pytest.fixture
def notify_sock(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound, non-blocking datagram socket and its NOTIFY_SOCKET value (a path)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def _drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_address_forms() -> None:
    assert notify_address(None) is None
    assert notify_address("") is None
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@qiki/notify") == b"\0qiki/notify"
    assert notify_address("vsock:2:1234") is None


def test_sd_notify_without_socket_is_a_no_op() -> None:
    assert sd_notify("READY=1", env={}) is False
    n = ServiceNotifier(env={})
    n.on_tick("boot")
    n.on_tick("idle")
    n.stopping("done")
    assert not n.enabled and n.sent == [] and not n.ready_sent


def test_watchdog_period_from_env() -> None:
    assert watchdog_period_s({"WATCHDOG_USEC": "2000000"}, pid=7) == 2.0
    assert watchdog_period_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, pid=7) == 2.0
    assert watchdog_period_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "x"}, pid=7) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "0"}, pid=7) is None
    assert watchdog_period_s({}, pid=7) is None


def test_ready_after_post_watchdog_paced_stopping(notify_sock: tuple[socket.socket, str]) -> None:
    sock, path = notify_sock
    now = [100.0]
    n = ServiceNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0], pid=1)
    assert n.enabled and n.watchdog_interval_s == 1.0
    n.on_tick("boot")                       # POST running: a ping, no READY
    msgs = _drain(sock)
    assert msgs == ["STATUS=state boot", "WATCHDOG=1"]
    now[0] += 0.5
    n.on_tick("boot")                       # half an interval: no ping
    assert _drain(sock) == []
    now[0] += 0.5
    n.on_tick("idle")                       # POST passed: READY, and the interval elapsed: a ping
    assert _drain(sock) == ["READY=1\nSTATUS=POST passed, state idle", "WATCHDOG=1"]
    assert n.ready_sent
    now[0] += 0.01
    n.on_tick("armed")                      # READY only once
    assert _drain(sock) == ["STATUS=state armed"]
    n.stopping("interrupted (SIGTERM)")
    assert _drain(sock) == ["STOPPING=1\nSTATUS=stopping: interrupted (SIGTERM)"]


def test_post_failed_sends_no_ready(notify_sock: tuple[socket.socket, str]) -> None:
    sock, path = notify_sock
    n = ServiceNotifier(env={"NOTIFY_SOCKET": path})
    assert n.watchdog_interval_s is None
    n.on_tick("boot")
    n.on_tick("safe_mode")
    assert _drain(sock) == ["STATUS=state boot", "STATUS=state safe_mode"]
    assert not n.ready_sent


def test_abstract_namespace_socket() -> None:
    name = f"qiki-test-notify-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(b"\0" + name.encode())
        sock.setblocking(False)
        assert sd_notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})
        assert _drain(sock) == ["READY=1"]
    finally:
        sock.close()


def test_vanished_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = ServiceNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "1000000"}, clock=lambda: 0.0)
    n.on_tick("boot")
    n.on_tick("idle")
    assert n.sent == [] and not n.ready_sent
    assert sum("sd_notify" in r.getMessage() for r in caplog.records) == 1


def _opts(tmp_path: Path) -> ServiceOptions:
    qiki = shutil.which("qiki") or sys.executable
    from controller.run import SHUTDOWN_TIMEOUT_S

    return ServiceOptions(rig_path=PI_RIG, qiki=qiki, mission=ROOT / "missions" / "square.yaml", user="qiki",
                          safe_stop_bound_s=SHUTDOWN_TIMEOUT_S)


def test_unit_holds_the_service_settings(tmp_path: Path) -> None:
    from controller.run import SHUTDOWN_TIMEOUT_S

    rig, _ = load_rig(PI_RIG)
    files = render_service_files(rig, _opts(tmp_path))
    assert set(files) == {UNIT_PATH, UDEV_PATH, network_path("can0")}
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(files[UNIT_PATH])
    svc = unit["Service"]
    assert svc["Type"] == "notify"
    assert svc["WatchdogSec"] == "2s"
    assert svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM"
    assert float(svc["TimeoutStopSec"].rstrip("s")) == stop_timeout_s(SHUTDOWN_TIMEOUT_S) > SHUTDOWN_TIMEOUT_S
    assert svc["CPUSchedulingPolicy"] == "fifo" and svc["CPUSchedulingPriority"] == "80"
    assert svc["LimitRTPRIO"] == "80" and svc["LimitMEMLOCK"] == "infinity" and svc["CPUAffinity"] == "3"
    assert set(svc["SuccessExitStatus"].split()) == {"129", "130", "143"}
    assert f"run --rig {PI_RIG} " in svc["ExecStart"] and svc["ExecStart"].split()[-4] == "--realtime"
    assert "sys-subsystem-net-devices-can0.device" in unit["Unit"]["After"]


def test_udev_rules_and_network_file(tmp_path: Path) -> None:
    rig, _ = load_rig(PI_RIG)
    assert symlink_names(rig) == {"qiki-mcu": "mcu", "qiki-iwr6843": "sr", "qiki-rs485": "power"}
    files = render_service_files(rig, _opts(tmp_path))
    rules = [ln for ln in files[UDEV_PATH].splitlines() if ln and not ln.startswith("#")]
    assert len(rules) == 3
    for link, rule in zip(("qiki-mcu", "qiki-iwr6843", "qiki-rs485"), rules, strict=True):
        keys = dict(part.strip().split("==", 1) if "==" in part else part.strip().split("=", 1)
                    for part in rule.split(", "))
        assert keys["SUBSYSTEM"] == '"tty"' and keys["SYMLINK+"] == f'"{link}"'
        assert keys["ATTRS{idVendor}"] == keys["ATTRS{idProduct}"] == keys["ATTRS{serial}"] == f'"{PLACEHOLDER}"'
    net = configparser.ConfigParser(interpolation=None)
    net.optionxform = str  # type: ignore[assignment,method-assign]
    net.read_string(files[network_path("can0")])
    assert net["Match"]["Name"] == "can0"
    assert net["CAN"]["BitRate"] == "500000" and net["CAN"]["RestartSec"] == "100ms"


def test_laptop_rig_has_no_network_file(tmp_path: Path) -> None:
    rig, _ = load_rig(ROOT / "rigs" / "field_laptop.yaml")
    files = render_service_files(rig, _opts(tmp_path))
    assert not any(k.endswith(".network") for k in files)
    assert "CPUSchedulingPolicy" not in files[UNIT_PATH]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent (Debian: apt install systemd)")
def test_generated_unit_passes_systemd_analyze_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--rig", str(PI_RIG), "--dest", str(tmp_path), "--user", "root"]) == 0
    unit = tmp_path / UNIT_PATH
    assert (tmp_path / UDEV_PATH).is_file() and (tmp_path / network_path("can0")).is_file()
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [ln for ln in (res.stdout + res.stderr).splitlines()
                if "qiki.service" in ln or "Unknown" in ln or "ignoring" in ln]
    assert res.returncode == 0 and problems == [], res.stdout + res.stderr


def test_cli_print_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--rig", str(PI_RIG), "--print"]) == 0
    out = capsys.readouterr().out
    assert f"# ---- /{UNIT_PATH}" in out and "Type=notify" in out and "BitRate=500000" in out
    assert main(["install", "--rig", str(PI_RIG)]) == 2
    assert main(["install", "--rig", str(PI_RIG), "--print", "--watchdog", "0"]) == 2
    assert main(["install", "--rig", str(ROOT / "missing.yaml"), "--print"]) == 2


def test_main_job_notifies_ready_and_stopping(notify_sock: tuple[socket.socket, str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A lockstep idle run under a fake systemd: READY once POST passed, STOPPING at the end."""
    from controller.run import RunOptions, run_main_job

    sock, path = notify_sock
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    status, summary, _ = run_main_job(RunOptions(rig=str(ROOT / "rigs" / "virtual.yaml"),
                                                 mission=str(ROOT / "missions" / "square.yaml"),
                                                 runs_dir=str(tmp_path / "runs"), progress=False, arm=False,
                                                 duration_s=2.0))
    assert status == 0, summary
    msgs = _drain(sock)
    ready = [m for m in msgs if m.startswith("READY=1")]
    assert len(ready) == 1 and "state idle" in ready[0]
    assert msgs.index(ready[0]) > msgs.index("STATUS=state boot")
    assert "WATCHDOG=1" in msgs
    assert msgs[-1].startswith("STOPPING=1")
