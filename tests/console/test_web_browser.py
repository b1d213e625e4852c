"""The web console (controller/console/web/) in Debian's headless Chromium, driven by Playwright.

Against tests/console/fake_gateway.py, which serves the page and speaks the protocol of
docs/console-protocol.md. Skipped with the reason when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 8000


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ctx.close()


def history_item(page, name: str):
    return page.locator(f"#history li[data-name='{name}']").first


def hold(page, selector: str, ms: int) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(ms)
    page.mouse.up()


def test_fly_estop_and_reset_refused(page, gateway) -> None:
    page.goto(gateway.http + "/")
    page.wait_for_selector("body[data-state='idle']")
    assert page.locator("#estop").is_enabled()
    page.click("#request-control")
    page.wait_for_function("window.qiki.youHold === true")
    # a short press is no arm
    hold(page, "#arm", 300)
    page.wait_for_timeout(200)
    assert page.locator("#history li[data-name='arm']").count() == 0
    # press and hold >= 1 s
    hold(page, "#arm", 1300)
    page.wait_for_selector("#history li[data-name='arm'][data-status='accepted']")
    assert gateway.commands[-1]["confirm"]["hold_ms"] >= 1000
    page.wait_for_selector("body[data-state='armed']")
    page.click("#mission-start")
    page.wait_for_selector("body[data-state='active']")
    page.wait_for_function("['2/4', '3/4', '4/4'].includes(document.getElementById('waypoints').textContent)")
    page.click("#estop")
    page.wait_for_selector("body[data-state='estop']")
    page.wait_for_function("document.getElementById('thrust').textContent.split(' ').every(x => Number(x) === 0)")
    page.click("#reset")
    page.wait_for_selector("#history li[data-name='reset'][data-status='refused']")
    assert "E-stop" in history_item(page, "reset").inner_text()
    assert page.locator("#checks li.fail[data-name='mcu']").inner_text().endswith("E-stop pressed")
    gateway.release_estop()
    page.click("#reset")
    page.wait_for_selector("#history li[data-name='reset'][data-status='accepted']")


def test_space_is_estop_and_does_not_click_the_focused_button(page, gateway) -> None:
    page.goto(gateway.http + "/")
    page.wait_for_selector("body[data-state='idle']")
    page.focus("#request-control")
    page.keyboard.press(" ")
    page.wait_for_selector("body[data-state='estop']")
    page.wait_for_timeout(200)
    assert page.locator("#history li[data-name='request_control']").count() == 0


def test_observer_arm_is_refused_with_the_reason(page, gateway) -> None:
    page.goto(f"{gateway.http}/?ws={gateway.url}?observer=1")
    page.wait_for_function("window.qiki.welcome && window.qiki.welcome.role === 'observer'")
    assert page.locator("#arm").is_disabled() and page.locator("#estop").is_enabled()
    # the buttons are disabled; the protocol still refuses, with the reason
    page.evaluate("window.qiki.welcome.role = 'operator'")
    page.wait_for_function("!document.getElementById('arm').disabled")
    hold(page, "#arm", 1200)
    page.wait_for_selector("#history li[data-name='arm'][data-status='refused']")
    assert "read-only observer" in history_item(page, "arm").inner_text()


def test_wrong_token_is_refused(page, token_gateway) -> None:
    page.goto(token_gateway.http + "/?token=wrong")
    page.wait_for_function("document.body.dataset.closeCode === '4401'")
    assert "4401" in page.locator("#conn-error").inner_text()
    page.goto(token_gateway.http + "/?token=s3cret-token")
    page.wait_for_selector("body[data-state='idle']")
