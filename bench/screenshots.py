"""Regenerate the console screenshots in docs/img/ (docs/console.md).

Starts ``qiki run --serve`` on the virtual rig (lockstep paced to real time) on a free
loopback port, takes control in the web console in headless Chromium (Debian's
/usr/bin/chromium through Playwright), arms by press-and-hold, starts the square mission,
and once the vehicle is on its way writes:

* ``docs/img/console-web.png``: the web console (Playwright screenshot);
* ``docs/img/console-tui.svg`` and ``.png``: the terminal console connected to the same
  gateway (Textual's ``save_screenshot``; the PNG is the SVG rendered by Chromium);
* ``docs/img/console-tui-record.svg`` and ``.png``: the terminal console on a recorded
  run (``tests/replay_corpus/nominal.mcap`` at 7 s).

Usage: ``.venv/bin/python bench/screenshots.py [--out docs/img] [--fly-s 8]``.
Leaves nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TUI_SIZE = (150, 44)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(port: int) -> subprocess.Popen[bytes]:
    qiki = Path(sys.executable).parent / "qiki"
    proc = subprocess.Popen([str(qiki), "run", "--serve", "--listen", f"127.0.0.1:{port}", "--rig",
                             "rigs/virtual.yaml", "--mission", "missions/square.yaml", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"qiki run --serve exited with {proc.returncode}")
    proc.terminate()
    raise RuntimeError("the gateway did not come up in 60 s")


async def tui_live(url: str, out: Path, wait_s: float) -> None:
    from controller.console.tui.app import open_console
    from controller.console.tui.live import LiveLink

    app = open_console(link=LiveLink(url, client_name="tui"))
    async with app.run_test(size=TUI_SIZE) as pilot:
        await pilot.pause(wait_s)
        app.refresh_view()
        await pilot.pause(0.2)
        app.save_screenshot(out.name, str(out.parent))


async def tui_record(mcap: Path, out: Path, at_s: float) -> None:
    from controller.console.tui.app import open_console
    from controller.console.tui.record_view import RecordTimeline

    app = open_console(timeline=RecordTimeline(mcap))
    async with app.run_test(size=TUI_SIZE) as pilot:
        app.action_seek(at_s)
        await pilot.pause(0.3)
        app.save_screenshot(out.name, str(out.parent))


def svg_to_png(browser: object, svg: Path, png: Path) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 1000})  # type: ignore[attr-defined]
    page.goto(svg.resolve().as_uri())
    page.locator("svg").first.screenshot(path=str(png))
    page.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--fly-s", type=float, default=8.0, help="seconds of mission before the screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_serve(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-state='idle']")
            page.click("#request-control")
            page.wait_for_function("window.qiki.youHold === true")
            box = page.locator("#arm").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.wait_for_timeout(1200)
            page.mouse.up()
            page.wait_for_selector("body[data-state='armed']")
            page.click("#mission-start")
            page.wait_for_selector("body[data-state='active']")
            # the terminal console joins as a second (observing) console meanwhile
            tui_svg = out / "console-tui.svg"
            t = threading.Thread(target=lambda: asyncio.run(tui_live(f"ws://127.0.0.1:{port}/ws", tui_svg,
                                                                     args.fly_s)))
            t.start()
            page.wait_for_timeout(int(args.fly_s * 1000))
            page.screenshot(path=str(out / "console-web.png"))
            t.join(timeout=60)
            page.click("#estop")
            page.wait_for_selector("body[data-state='estop']")
            rec_svg = out / "console-tui-record.svg"
            # Playwright's sync API runs a loop on this thread: Textual gets a thread of its own
            t = threading.Thread(target=lambda: asyncio.run(
                tui_record(ROOT / "tests" / "replay_corpus" / "nominal.mcap", rec_svg, 7.0)))
            t.start()
            t.join(timeout=60)
            for svg in (tui_svg, rec_svg):
                svg_to_png(browser, svg, svg.with_suffix(".png"))
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    for f in sorted(out.glob("console-*")):
        print(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
