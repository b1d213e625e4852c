"""Safe stop, the tick's exception barrier and truthful results (ISSUE 10 parts 1-3).

Lockstep, in-process: a stop request at a chosen tick stands in for the signal (the
signal handlers themselves are exercised in ``tests/emulated/test_signals_realtime.py``).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import can
import pytest
import yaml

from controller.run import RunOptions, run_main_job
from controller.stop import StopRequest

VB_COMMAND_ID = 0x101


class StopAtTick(StopRequest):
    """A stop request that 'receives' ``signum`` when the loop asks for the ``tick``-th time."""

    def __init__(self, tick: int, signum: int) -> None:
        super().__init__()
        self._tick = tick
        self._sig = signum
        self._asked = 0

    @property
    def requested(self) -> bool:  # type: ignore[override]
        self._asked += 1
        if self.signum is None and self._asked > self._tick:
            self.signum = self._sig
        return self.signum is not None


def _commands(folder: Path) -> list[tuple[float, bytes]]:
    return [(m.timestamp, bytes(m.data[:6])) for m in can.LogReader(str(folder / "can0.asc"))
            if m.arbitration_id == VB_COMMAND_ID and not m.is_rx]


def _events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def run_opts(tmp_path: Path, repo_root: Path):
    """``run_opts(**kw) -> RunOptions``: the square mission on the virtual rig, runs in tmp_path."""

    def make(**kw) -> RunOptions:
        base = dict(rig=str(repo_root / "rigs/virtual.yaml"), mission=str(repo_root / "missions/square.yaml"),
                    runs_dir=str(tmp_path / "runs"), progress=False)
        base.update(kw)
        return RunOptions(**base)

    return make


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_stop_during_thrust_zeroes_valves_disarms_and_opens_the_rail(run_opts, signum, status):
    stop_tick = 1500  # 15 s: flying the first leg, valves pulsing
    code, summary, folder = run_main_job(run_opts(), stop=StopAtTick(stop_tick, signum))
    name = signal.Signals(signum).name
    assert code == status
    assert summary["result"] == f"interrupted ({name})"
    assert summary["exit_status"] == status
    assert summary["final_state"] == "idle"
    sd = summary["shutdown"]
    assert sd["complete"] and sd["disarmed"] and sd["rail_open_confirmed"] and sd["relay_open_confirmed"] is True
    assert sd["zero_command_ticks"] >= 3
    t_stop = sd["started_s"]
    cmds = _commands(folder)
    before = [d for t, d in cmds if t < t_stop - 1e-9]
    after = [d for t, d in cmds if t >= t_stop - 1e-9]
    assert any(d != bytes(6) for d in before[-50:]), "no thrust before the stop: the test proves nothing"
    assert len(after) >= 3 and all(d == bytes(6) for d in after)
    assert cmds[-1][1] == bytes(6)
    # within 0.5 s of run time, and the run did not go on flying
    assert summary["sim_time_s"] <= t_stop + 0.5 + 0.02
    kinds = [(e["kind"], e.get("event")) for e in _events(folder)]
    assert ("shutdown", None) in kinds and ("transition", "disarm") in kinds
    # the PDU's read-back confirmed the relay open after the stop
    ev = _events(folder)
    assert any(e["kind"] == "relay_confirmed" and e["closed"] is False and e["time_s"] >= t_stop for e in ev)
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["result"] == summary["result"]


def test_stop_while_booting_sends_zero_and_reports_interrupted(run_opts):
    code, summary, folder = run_main_job(run_opts(), stop=StopAtTick(2, signal.SIGTERM))
    assert code == 143 and summary["result"] == "interrupted (SIGTERM)"
    assert summary["final_state"] == "boot"
    cmds = _commands(folder)
    assert cmds and all(d == bytes(6) for _, d in cmds)
    assert summary["shutdown"]["zero_command_ticks"] >= 3


def test_exception_in_a_tick_is_a_fault_not_a_crash(run_opts, monkeypatch):
    from controller.allocation import ExactAllocator

    real = ExactAllocator.allocate
    calls = {"n": 0}

    def flaky(self, wrench):
        calls["n"] += 1
        if calls["n"] == 800:  # mid-flight
            raise RuntimeError("solver blew up\nsecond line")
        return real(self, wrench)

    monkeypatch.setattr(ExactAllocator, "allocate", flaky)
    code, summary, folder = run_main_job(run_opts())
    assert code == 1
    assert summary["final_state"] == "safe_mode"
    assert summary["result"] == "safe_mode: exception in tick: RuntimeError: solver blew up second line (event 911)"
    assert summary["exceptions"]["count"] == 1
    ev = _events(folder)
    exc = [e for e in ev if e["kind"] == "exception"]
    assert len(exc) == 1 and "Traceback" in exc[0]["traceback"] and "flaky" in exc[0]["traceback"]
    t_exc = exc[0]["time_s"]
    cmds = _commands(folder)
    assert any(d != bytes(6) for t, d in cmds if t < t_exc)
    after = [d for t, d in cmds if t >= t_exc - 1e-9]
    assert after and all(d == bytes(6) for d in after)


def test_exception_every_tick_still_zero_and_ends(run_opts, monkeypatch):
    """A read phase that raises on every tick from 12 s on: zero frames keep going out."""
    from hal.can.port import CanPort

    real = CanPort.poll

    def broken(self, now_s):
        if now_s >= 12.0:
            raise ZeroDivisionError("float division by zero")
        return real(self, now_s)

    monkeypatch.setattr(CanPort, "poll", broken)
    code, summary, folder = run_main_job(run_opts())
    assert code == 1 and summary["final_state"] == "safe_mode"
    assert summary["result"].startswith("safe_mode: exception in tick: ZeroDivisionError")
    assert summary["exceptions"]["count"] > 50
    after = [d for t, d in _commands(folder) if t >= 12.0 - 1e-9]
    assert len(after) > 50 and all(d == bytes(6) for d in after)


def test_mission_timeout_is_not_completed(tmp_path, run_opts, repo_root):
    m = yaml.safe_load((repo_root / "missions/square.yaml").read_text())
    m["timeout_s"] = 5.0
    p = tmp_path / "short.yaml"
    p.write_text(yaml.safe_dump(m))
    code, summary, _ = run_main_job(run_opts(mission=str(p)))
    assert code == 1
    assert summary["result"] == "mission timed out (0/4 waypoints)"
    assert summary["final_state"] == "idle"


def test_no_arm_run_that_never_passes_post_exits_1(run_opts):
    code, summary, _ = run_main_job(run_opts(arm=False, duration_s=0.3))
    assert code == 1
    assert summary["final_state"] == "boot"
    assert summary["result"].startswith("duration elapsed in boot: POST not passed")


def test_duration_that_cuts_the_mission_short_is_incomplete(run_opts):
    code, summary, _ = run_main_job(run_opts(duration_s=3.0))
    assert code == 1
    assert summary["result"] == "duration elapsed: mission incomplete (0/4 waypoints)"
    assert summary["final_state"] == "idle"


def test_an_error_outside_the_vehicle_barrier_leaves_zero_and_a_finished_record(run_opts, monkeypatch):
    """An exception in the run's record phase (after the vehicle's tick) propagates, but the last
    valve command on the bus is zero and run.mcap is finished."""
    import controller.vehicle.telemetry as telemetry_mod
    from controller.record.reader import validate

    real = telemetry_mod.tick_row

    def failing(vehicle, crc=None, view=None):
        if any(vehicle.valves.last_duty_pct):  # the first tick that commanded thrust
            raise RuntimeError("record phase blew up")
        return real(vehicle, crc, view)

    monkeypatch.setattr(telemetry_mod, "tick_row", failing)
    with pytest.raises(RuntimeError, match="record phase blew up"):
        run_main_job(run_opts())
    folder = next((Path(run_opts().runs_dir)).iterdir())
    cmds = _commands(folder)
    assert any(d != bytes(6) for _, d in cmds)
    assert cmds[-1][1] == bytes(6)
    assert (folder / "run.mcap").is_file() and validate(folder / "run.mcap") == []
