"""Both consoles against the real gateway: ``qiki run --serve`` in lockstep (paced to real time) on the virtual rig.

A fault plan presses the MCU's E-stop button at ``PRESS_S`` of run time (and never
releases it), so "reset refused while the button is pressed" is the vehicle's own guard.
The mission is two near waypoints so one arrives within a second of the start. Each test
serves its own run and stops it with SIGINT (the safe stop).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from controller.console.tui.app import open_console
from controller.console.tui.live import LiveLink
from controller.record.reader import FlightRecord

PRESS_S = 7.0
SIZE = (140, 42)


def stop(proc: subprocess.Popen[str], tmp_path: Path) -> Path:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    return Path(json.loads((tmp_path / "summary.json").read_text())["run_folder"])


@pytest.fixture
def served(tmp_path: Path, rig_with_faults, virtual_rig_data, serve_run):
    # the longest heartbeat timeout the rig allows: this machine is shared and loaded
    virtual_rig_data["console"] = {"heartbeat_timeout_s": 0.4}
    rig = rig_with_faults([{"at_s": PRESS_S, "target": "mcu", "fault": "estop_press"}])
    proc, url = serve_run(rig)
    yield url
    stop(proc, tmp_path)


async def press(pilot, *keys: str) -> None:
    from textual import events

    for key in keys:
        ev = events.Key(key, {"space": " "}.get(key, key if len(key) == 1 else None))
        ev.set_sender(pilot.app)
        pilot.app._driver.send_message(ev)
        await pilot.pause(0.01)


async def until(pilot, cond, timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def last(link: LiveLink, name: str):
    recs = [r for r in link.history if r.name == name]
    return recs[-1] if recs else None


def replied(link: LiveLink, name: str) -> bool:
    r = last(link, name)
    return r is not None and r.status != "sent"


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.asyncio
async def test_terminal_console_flies_and_estops(served) -> None:
    url = served
    app = open_console(link=LiveLink(url, client_name="tui"))
    other = LiveLink(url, client_name="other")
    other.start()
    try:
        async with app.run_test(size=SIZE) as pilot:
            link = app.link
            await until(pilot, lambda: link.view.state == "idle", what="idle")
            await press(pilot, "c")
            await until(pilot, lambda: link.you_hold, what="control")
            t0 = time.monotonic()
            # hold `a` (key repeat every 50 ms) until the console sends arm
            while last(link, "arm") is None and time.monotonic() - t0 < 10:
                await press(pilot, "a")
                await pilot.pause(0.04)
            await until(pilot, lambda: replied(link, "arm"), what="arm reply")
            assert last(link, "arm").status == "accepted", last(link, "arm")
            # the other console does not hold control: its arm is refused with the reason
            other.submit("arm", hold_ms=1500)
            await until(pilot, lambda: replied(other, "arm"), what="other's arm reply")
            assert last(other, "arm").status == "refused" and "held by tui@" in last(other, "arm").reason
            await press(pilot, "m")
            await until(pilot, lambda: (link.view.waypoints_reached or 0) >= 1, what="a waypoint")
            await press(pilot, "space")
            await until(pilot, lambda: replied(link, "estop"), what="estop reply")
            estop = last(link, "estop")
            assert estop.status == "accepted" and estop.code == 901
            await until(pilot, lambda: link.view.state == "estop" and link.view.thrust_n
                        and max(link.view.thrust_n) == 0.0, what="estop and zero thrust")
            await until(pilot, lambda: (link.view.t_s or 0.0) > PRESS_S + 0.3, what="button pressed")
            assert any(c.name == "mcu" and not c.ok for c in link.view.checks)
            if not link.you_hold:
                # a loaded machine can starve the heartbeat for over 0.4 s: the gateway then
                # drops the lock (link loss, recorded); the operator takes it back
                await press(pilot, "c")
                await until(pilot, lambda: link.you_hold, what="control again")
            await press(pilot, "r")
            await until(pilot, lambda: replied(link, "reset"), what="reset reply")
            assert last(link, "reset").status == "refused"
            assert "E-stop is still pressed" in last(link, "reset").reason
    finally:
        other.stop()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(240)
def test_web_console_flies_and_estops(served, browser) -> None:
    url = served
    http = url.replace("ws://", "http://").removesuffix("/ws")
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    page.goto(http + "/")
    page.wait_for_selector("body[data-state='idle']")
    page.click("#request-control")
    page.wait_for_function("window.qiki.youHold === true")
    box_ = page.locator("#arm").bounding_box()
    page.mouse.move(box_["x"] + box_["width"] / 2, box_["y"] + box_["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(1200)
    page.mouse.up()
    page.wait_for_selector("#history li[data-name='arm'][data-status='accepted']")
    # a second console in its own window (a background tab's timers are throttled to 1 Hz,
    # which would starve the first page's heartbeat): not the holder, its arm is refused
    ctx2 = browser.new_context(viewport={"width": 1280, "height": 900})
    page2 = ctx2.new_page()
    page2.set_default_timeout(15_000)
    page2.goto(http + "/")
    page2.wait_for_selector("body[data-state='armed']")
    b2 = page2.locator("#arm").bounding_box()
    page2.mouse.move(b2["x"] + b2["width"] / 2, b2["y"] + b2["height"] / 2)
    page2.mouse.down()
    page2.wait_for_timeout(1200)
    page2.mouse.up()
    page2.wait_for_selector("#history li[data-name='arm'][data-status='refused']")
    assert "held by web@" in page2.locator("#history li[data-name='arm']").first.inner_text()
    ctx2.close()
    page.click("#mission-start")
    page.wait_for_selector("body[data-state='active']")
    page.wait_for_function("window.qiki.tel.setpoint.waypoints_reached >= 1")
    page.click("#estop")
    page.wait_for_selector("body[data-state='estop']")
    page.wait_for_function("document.getElementById('thrust').textContent.split(' ').every(x => Number(x) === 0)")
    page.wait_for_function(f"window.qiki.tel.t_s > {PRESS_S + 0.3}")
    if not page.evaluate("window.qiki.youHold"):   # the lock dropped on a starved heartbeat
        page.click("#request-control")
        page.wait_for_function("window.qiki.youHold === true")
    page.click("#reset")
    page.wait_for_selector("#history li[data-name='reset'][data-status='refused']")
    assert "E-stop is still pressed" in page.locator("#history li[data-name='reset']").first.inner_text()
    assert "E-stop" in page.locator("#checks li.fail[data-name='mcu']").inner_text()
    ctx.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_zero_duty_after_estop_in_a_served_record(tmp_path: Path, rig_with_faults, virtual_rig_data,
                                                  serve_run) -> None:
    """E-stop from the terminal console's link; the run's record shows zero duty after it."""
    virtual_rig_data["console"] = {"heartbeat_timeout_s": 0.4}
    rig = rig_with_faults([])
    proc, url = serve_run(rig)
    try:
        link = LiveLink(url, client_name="tui")
        link.start()
        deadline = time.monotonic() + 15
        while link.view.state != "idle":
            assert time.monotonic() < deadline, "no telemetry"
            time.sleep(0.05)
        link.submit("request_control")
        while not link.you_hold:
            assert time.monotonic() < deadline, "no control"
            time.sleep(0.05)
        rec = link.submit("arm", hold_ms=1100)
        while rec.status == "sent":
            time.sleep(0.05)
        assert rec.status == "accepted", rec
        link.submit("mission_start")
        while (link.view.waypoints_reached or 0) < 1:
            assert time.monotonic() < deadline + 10, "no waypoint"
            time.sleep(0.05)
        est = link.submit("estop")
        while est.status == "sent":
            time.sleep(0.05)
        assert est.status == "accepted" and est.tick is not None
        time.sleep(0.5)
        link.stop()
    finally:
        folder = stop(proc, tmp_path)
    valves = [m for m in FlightRecord(folder / "run.mcap").topic("/valves") if int(m["tick"]) > est.tick]  # type: ignore[call-overload]
    assert valves and all(float(v) == 0.0 for m in valves for k, v in m.items() if k.startswith("duty"))  # type: ignore[arg-type]
