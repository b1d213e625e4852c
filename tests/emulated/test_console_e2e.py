"""End to end over a real WebSocket against ``qiki run --serve`` in lockstep on the virtual rig (issue 14).

One served run, two consoles: take control, arm with hold, start the mission, see a
waypoint; E-stop from the other console -> ``estop`` and zero duty on the bus; reset
refused while the button is pressed (a fault plan presses it), accepted after release;
the non-holder's arm refused with the reason; a lost heartbeat disarms within 0.5 s of
run time. Timing is judged on the run clock (telemetry ``t_s``, the record), never by
sleeps. Then the served run replays bit-exact with ``--check``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from controller.console.client import Client
from controller.record.replay import read_record
from controller.run_replay import replay_run

PRESS_S, RELEASE_S = 9.0, 12.0


def _stop(proc: subprocess.Popen[str], tmp_path: Path) -> Path:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_status"] == 130 and summary["shutdown"]["complete"], summary
    return Path(summary["run_folder"])


async def _scenario(url: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    async with Client(url, "op") as op, Client(url, "obs") as obs:
        assert op.welcome["role"] == "operator" and op.welcome["v"] == 1
        r = await op.command("request_control")
        assert r["status"] == "accepted" and r["code"] == 231
        await op.until(lambda: op.telemetry.get("state") == "idle")
        # the other console does not hold the lock: its arm is refused with the reason
        r = await obs.command("arm", hold_ms=1500)
        assert (r["status"], r["refusal"], r["code"]) == ("refused", "no_control", 242)
        assert "held by op@" in r["reason"]
        r = await op.command("arm")  # no hold-to-confirm
        assert (r["status"], r["refusal"], r["code"]) == ("refused", "no_confirm", 243)
        r = await op.command("arm", hold_ms=1200)
        assert (r["status"], r["code"], r["state"]) == ("accepted", 201, "armed"), r
        r = await op.command("mission_start")
        assert (r["status"], r["code"], r["state"]) == ("accepted", 301, "active"), r
        await op.until(lambda: (op.telemetry.get("setpoint") or {}).get("waypoints_reached", 0) >= 1)
        tel = op.telemetry
        assert tel["control_holder"].startswith("op@") and tel["armed"] and tel["pose"]["age_s"] is not None
        assert {c["name"] for c in tel["arming_checks"]} >= {"post", "faults", "mcu"}
        # E-stop from the console that does not hold the lock
        r = await obs.command("estop")
        assert (r["status"], r["code"], r["state"]) == ("accepted", 901, "estop"), r
        marks["estop_tick"] = r["tick"]
        await op.until(lambda: op.telemetry.get("state") == "estop" and op.telemetry["tick"] > r["tick"])
        assert all(x == 0.0 for x in op.telemetry["thrust_n"])
        # the button (fault plan) is pressed from PRESS_S to RELEASE_S of run time
        await op.until(lambda: op.telemetry.get("t_s", 0) > PRESS_S + 0.3, 30)
        r = await op.command("reset")
        assert (r["status"], r["refusal"], r["code"]) == ("refused", "fsm_refused", 213), r
        assert "E-stop is still pressed" in r["reason"]
        await op.until(lambda: op.telemetry.get("t_s", 0) > RELEASE_S + 0.5, 30)
        r = await op.command("reset")
        assert (r["status"], r["code"], r["state"]) == ("accepted", 203, "idle"), r
        r = await op.command("arm", hold_ms=1000)
        assert r["status"] == "accepted", r
        r = await op.command("mission_start")
        assert r["status"] == "accepted", r
        op.stop_heartbeat()
        await op.until(lambda: op.telemetry.get("state") == "idle", 10)
        assert any(c["change"] == "link_lost" for c in op.controls)
        assert op.telemetry["control_holder"] is None
    return marks


@pytest.mark.timeout(240)
def test_served_run_end_to_end_and_replay(tmp_path: Path, rig_with_faults, serve_run) -> None:
    rig = rig_with_faults([{"at_s": PRESS_S, "target": "mcu", "fault": "estop_press"},
                           {"at_s": RELEASE_S, "target": "mcu", "fault": "estop_release"}])
    proc, url = serve_run(rig)
    try:
        marks = asyncio.run(_scenario(url))
    finally:
        if proc.poll() is None:
            folder = _stop(proc, tmp_path)
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    console = [e for e in events if e["kind"] == "console"]
    actions = [e["action"] for e in console]
    assert {"control_granted", "command", "refused_no_control", "refused_no_confirm", "link_lost"} <= set(actions)
    assert not any("token" in json.dumps(e) for e in console)
    run = read_record(folder / "run.mcap")
    # zero duty on the bus: every valve command after the E-stop's tick is all zero
    valves = [rec for topic, rec in run.messages if topic == "/valves" and int(rec["tick"]) > marks["estop_tick"]]
    assert valves and all(all(float(v) == 0.0 for k, v in rec.items() if k.startswith("duty"))
                          for rec in valves[:50]), valves[:2]
    # link loss: the disarm within 0.5 s of run time after the last heartbeat the tick saw
    lost = next(e for e in events if e["kind"] == "console" and e["action"] == "link_lost")
    assert lost["link_loss_action"] == "disarm"
    hb_ticks = [int(rec["tick"]) for topic, rec in run.messages
                if topic == "/in/console" and rec["kind"] == "heartbeat" and int(rec["tick"]) <= lost["tick"]]
    disarm = next(e for e in events if e["kind"] == "transition" and e["event"] == "disarm"
                  and e["tick"] >= lost["tick"])
    rate_hz = 100.0
    assert (disarm["tick"] - max(hb_ticks)) / rate_hz <= 0.5
    # the served run, console commands included, replays bit-exact
    result = replay_run(folder)
    assert result.report.identical, "\n".join(result.report.lines())
    assert result.report.per_topic["/events"]["recorded"] > 0
