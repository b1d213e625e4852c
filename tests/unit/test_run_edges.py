"""The edges of ``qiki run``: options, stop requests, exit codes, the raw log's flushing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import can
import pytest

from controller.cli import main
from controller.clock import MonotonicClock
from controller.exit_codes import HELP_TEXT, SIGNAL_EXIT
from controller.record.run_record import CAN_LOG_FLUSH_PERIOD_S, RunRecord, asc_channel
from controller.stop import ForcedStop, StopBeforeStart, StopRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args,key,what", [
    (["--duration", "nan"], "--duration", "got nan"),
    (["--duration", "inf"], "--duration", "got inf"),
    (["--duration", "-5"], "--duration", "got -5.0"),
    (["--duration", "0"], "--duration", "got 0.0"),
    (["--seed", "-1"], "--seed", "got -1"),
    (["--seed", str(2**64)], "--seed", "got 18446744073709551616"),
    (["--no-arm"], "--no-arm", "needs --duration"),
    (["--summary-json", "/nonexistent-qiki/s.json"], "--summary-json", "folder /nonexistent-qiki does not exist"),
    (["--lr-replay", "/nonexistent-qiki.asc"], "--lr-replay", "file not found"),
    (["--sr-replay", "/"], "--sr-replay", "not a regular file"),
])
def test_bad_options_are_one_line_exit_2_before_anything_is_created(tmp_path, capsys, args, key, what):
    runs = tmp_path / "runs"
    code = main(["run", "--no-progress", "--runs-dir", str(runs), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"qiki run: {key}: ") and what in err
    assert not runs.exists(), "a run folder was created for a refused option"


def test_summary_json_naming_a_directory_is_refused(tmp_path, capsys):
    assert main(["run", "--no-progress", "--runs-dir", str(tmp_path / "r"), "--summary-json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_unwritable_runs_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["run", "--no-progress", "--runs-dir", str(blocker / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("qiki run: --runs-dir: ") and "Not a directory" in err
    assert "Traceback" not in err


def test_version_and_exit_codes_in_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("qiki ")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit status:" in out and "143" in out and "hardware unavailable" in out
    assert SIGNAL_EXIT == {1: 129, 2: 130, 15: 143}
    assert "130 by SIGINT" in HELP_TEXT


def test_missing_serial_device_is_exit_3_one_line(tmp_path, capsys):
    rig = (ROOT / "rigs/virtual.yaml").read_text()
    import yaml

    data = yaml.safe_load(rig)
    data.pop("emulation")
    data["buses"]["mcu"]["url"] = "/dev/ttyQIKI-missing"
    data["buses"]["sr"]["url"] = "/dev/null"  # opens (not a tty: never reached, the MCU comes first)
    data["buses"]["power"]["url"] = "tcp://127.0.0.1:1"
    p = tmp_path / "real.yaml"
    # the rig's data paths resolve against the checkout
    p.write_text(yaml.safe_dump(data))
    code = main(["run", "--rig", str(p), "--no-progress", "--runs-dir", str(tmp_path / "runs"), "--duration", "1"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert code == 3, err
    assert err.startswith(f"{p}: buses.mcu: serial link /dev/ttyQIKI-missing: cannot open: ")
    assert "No such file or directory" in err
    assert main(["rig", "check", str(p)]) == 0  # the check opens no port: the rig itself is fine


# ----------------------------------------------------------------------------- stop requests
def test_stop_request_first_signal_requests_second_forces():
    s = StopRequest()
    assert not s.requested and s.name == ""
    s.request(signal.SIGTERM)
    assert s.requested and s.name == "SIGTERM" and s.signum == signal.SIGTERM
    s.request(signal.SIGINT)  # not forcing yet: ignored beyond counting
    assert s.count == 2 and s.signum == signal.SIGTERM
    s.force_enabled = True
    with pytest.raises(ForcedStop) as e:
        s.request(signal.SIGINT)
    assert e.value.signum == signal.SIGINT
    assert not s.force_enabled  # one forced stop only
    s.request(signal.SIGINT)  # no second ForcedStop


def test_stop_request_aborts_a_build():
    s = StopRequest()
    s.enable_abort()
    with pytest.raises(StopBeforeStart):
        s.request(signal.SIGTERM)
    t = StopRequest()
    t.request(signal.SIGHUP)
    with pytest.raises(StopBeforeStart):
        t.enable_abort()  # a signal that came before the build began


def test_stop_request_installs_and_restores_handlers():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    prev_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with StopRequest() as s:
            with s:  # nested use keeps the handlers
                pass
            assert signal.getsignal(signal.SIGTERM) == s._on_signal
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # nohup is respected
            os.kill(os.getpid(), signal.SIGTERM)
            assert s.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
    finally:
        signal.signal(signal.SIGHUP, prev_hup)


# ----------------------------------------------------------------------------- clock
def test_frozen_clock_reads_zero_until_started():
    c = MonotonicClock(frozen=True)
    assert c.now_s() == 0.0 and c.now_ns() == 0 and not c.started
    c.start()
    a = c.now_ns()
    c.start()  # idempotent: does not restart
    assert c.started and c.now_ns() >= a >= 0


# ----------------------------------------------------------------------------- raw CAN log
def test_can_log_reaches_the_disk_every_100ms_of_run_time(tmp_path):
    rec = RunRecord(tmp_path)
    log = rec.can_logger("can0")
    path = tmp_path / "can0.asc"
    for k in range(100):  # 1 s of frames at 100 Hz; never closed (as after SIGKILL)
        log(can.Message(arbitration_id=0x101, data=bytes([k, 0, 0, 0, 0, 0, 0, 0]), is_extended_id=False), k * 0.01, False)
    text = path.read_text()
    times = [float(line.split()[0]) for line in text.splitlines() if " 101 " in line]
    assert times, "nothing reached the disk"
    assert 0.99 - max(times) <= CAN_LOG_FLUSH_PERIOD_S + 1e-9
    rec.close()
    msgs = list(can.LogReader(str(path)))
    assert len(msgs) == 100 and msgs[0].timestamp == 0.0 and msgs[-1].timestamp == pytest.approx(0.99)
    assert {m.channel for m in msgs} == {0}  # channel 1 in the file: can0


def test_asc_time_is_the_run_clock_even_when_the_first_frame_is_late(tmp_path):
    rec = RunRecord(tmp_path)
    log = rec.can_logger("can1")
    log(can.Message(arbitration_id=0x1, data=b"", is_extended_id=False), 0.88, True)
    rec.close()
    (m,) = list(can.LogReader(str(tmp_path / "can1.asc")))
    assert m.timestamp == pytest.approx(0.88) and m.channel == 1


@pytest.mark.parametrize("name,ch", [("can0", 1), ("can1", 2), ("vcan12", 13), ("vehicle", 1)])
def test_asc_channel_follows_the_bus_name(name, ch):
    assert asc_channel(name) == ch
