"""The terminal console driven by Textual's pilot against a gateway speaking the protocol.

The gateway is tests/console/fake_gateway.py (the protocol of docs/console-protocol.md
over a real WebSocket on 127.0.0.1). Time waits poll the console's own state.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.console.tui.app import ConsoleApp, RecordConsoleApp, open_console
from controller.console.tui.live import LiveLink
from controller.console.tui.record_view import RecordTimeline

REPO = Path(__file__).resolve().parents[2]
SIZE = (140, 42)


async def press(pilot, *keys: str) -> None:
    """Send key events as a terminal would, without Pilot.press's wait for an idle process
    (the gateway thread and the 10 Hz redraw keep it busy: Pilot.press would take 2 s a key)."""
    from textual import events

    for key in keys:
        chars = {"space": " ", "exclamation_mark": "!", "full_stop": ".", "comma": ","}
        ev = events.Key(key, chars.get(key, key if len(key) == 1 else None))
        ev.set_sender(pilot.app)
        pilot.app._driver.send_message(ev)
        await pilot.pause(0.01)


async def until(pilot, cond, timeout_s: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


def last(app: ConsoleApp, name: str):
    recs = [r for r in app.link.history if r.name == name]
    return recs[-1] if recs else None


async def hold_key(pilot, key: str, seconds: float, until_sent: str | None = None) -> None:
    """Key repeat as a terminal sends it: one event every 50 ms, for ``seconds`` or, with
    ``until_sent``, until that command was sent (at most 10 s: a loaded machine stretches
    the gaps, and a gap over the repeat window restarts the hold)."""
    t0 = time.monotonic()
    n0 = len([r for r in pilot.app.link.history if r.name == until_sent])
    while time.monotonic() - t0 < (10.0 if until_sent else seconds):
        if until_sent and len([r for r in pilot.app.link.history if r.name == until_sent]) > n0:
            return
        await press(pilot, key)
        await pilot.pause(0.05)


@pytest.mark.asyncio
async def test_fly_the_square_from_the_keyboard(gateway) -> None:
    app = open_console(link=LiveLink(gateway.url, client_name="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.view.state == "idle", what="telemetry")
        # arm without control: refused with the reason
        await hold_key(pilot, "a", 1.2, until_sent="arm")
        await until(pilot, lambda: last(app, "arm") and last(app, "arm").status == "refused")
        assert "control lock" in last(app, "arm").reason
        await press(pilot, "c")
        await until(pilot, lambda: app.link.you_hold, what="control granted")
        await until(pilot, lambda: app.current_view().i_hold_control)
        # a short press is no arm
        await press(pilot, "a")
        await pilot.pause(0.3)
        assert len([r for r in app.link.history if r.name == "arm"]) == 1
        app.hold.cancel()
        # hold for >= 1 s: the progress bar fills, then arm is sent with hold_ms
        await hold_key(pilot, "a", 1.3, until_sent="arm")
        await until(pilot, lambda: last(app, "arm").status == "accepted", what="arm accepted")
        assert gateway.commands[-1]["confirm"]["hold_ms"] >= 1000
        await until(pilot, lambda: app.link.view.state == "armed")
        await press(pilot, "m")
        await until(pilot, lambda: (app.link.view.waypoints_reached or 0) >= 2, what="waypoints arriving")
        await press(pilot, "space")
        await until(pilot, lambda: app.link.view.state == "estop", what="estop")
        await until(pilot, lambda: app.link.view.thrust_n and max(app.link.view.thrust_n) == 0.0)
        await press(pilot, "r")
        await until(pilot, lambda: last(app, "reset") and last(app, "reset").status == "refused")
        assert "E-stop" in last(app, "reset").reason
        header = app.query_one("#header").render()
        assert "ESTOP" in str(header)


@pytest.mark.asyncio
async def test_press_then_confirm_arms(gateway) -> None:
    app = open_console(link=LiveLink(gateway.url, client_name="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.view.state == "idle")
        await press(pilot, "c")
        await until(pilot, lambda: app.link.you_hold)
        await press(pilot, "a")
        await pilot.pause(1.1)
        assert app.hold.progress(time.monotonic()) == 1.0
        await press(pilot, "y")
        await until(pilot, lambda: last(app, "arm") and last(app, "arm").status == "accepted")


@pytest.mark.asyncio
async def test_estop_from_an_observer_console_without_control(gateway) -> None:
    app = open_console(link=LiveLink(gateway.url + "?observer=1", client_name="watch"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.role == "observer")
        await press(pilot, "d")
        await until(pilot, lambda: last(app, "disarm") and last(app, "disarm").status == "refused")
        assert "read-only" in last(app, "disarm").reason
        await press(pilot, "exclamation_mark")
        await until(pilot, lambda: last(app, "estop") and last(app, "estop").status == "accepted")


@pytest.mark.asyncio
async def test_wrong_token_is_refused(token_gateway) -> None:
    app = open_console(link=LiveLink(token_gateway.url, token="wrong", client_name="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.link.closed.is_set(), what="link refused")
        assert "4401" in (app.link.error or "") or "403" in (app.link.error or "")
        assert "wrong" not in (app.link.error or "")
        assert "DOWN" in str(app.query_one("#header").render())
    good = open_console(link=LiveLink(token_gateway.url, token="s3cret-token", client_name="tui"))
    async with good.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: good.link.view.state == "idle")


@pytest.mark.asyncio
async def test_recorded_run_with_time_slider() -> None:
    app = open_console(timeline=RecordTimeline(REPO / "tests" / "replay_corpus" / "nominal.mcap"))
    assert isinstance(app, RecordConsoleApp)
    async with app.run_test(size=SIZE) as pilot:
        assert app.index == 0
        await press(pilot, "right")
        assert app.index == 10
        await press(pilot, "full_stop")
        assert app.index == 11
        await press(pilot, "pagedown")
        await press(pilot, "end")
        assert app.index == len(app.timeline) - 1
        await press(pilot, "home")
        await press(pilot, "pagedown")
        await press(pilot, "pageup")
        await press(pilot, "right", "right", "right", "right", "right", "right", "right", "right", "right", "right")
        v = app.current_view()
        assert v.read_only and v.state is not None
        # command keys do nothing in a record
        await press(pilot, "a", "d", "c")
        assert "record" in str(app.query_one("#header").render())
