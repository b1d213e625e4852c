"""The terminal console application (Textual): live over the gateway, or a recorded run read-only.

Keys (live)
-----------
``a`` arm: hold it (key repeat) until the bar is full, 1 s; or press it, let the bar fill
and press ``y`` within 3 s (:mod:`controller.console.tui.hold`). ``d`` disarm,
``space`` or ``!`` E-stop (always, from any console), ``r`` reset, ``m`` mission start,
``x`` mission abort, ``c`` request control, ``t`` take control (after the holder's
heartbeat timed out), ``l`` release control, ``q`` quit.

Keys (recorded run)
-------------------
``left``/``right`` step 0.1 s, ``,``/``.`` one tick, ``pageup``/``pagedown`` 10 s,
``home``/``end`` start and end, ``space`` play/pause, ``q`` quit.
"""

from __future__ import annotations

import logging
import time

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, ProgressBar, Static

from controller.console.tui.hold import HoldGesture
from controller.console.tui.live import LiveLink
from controller.console.tui.record_view import RecordTimeline
from controller.console.tui.view import ConsoleView
from controller.console.tui.widgets import (
    ChecksPanel,
    FaultsPanel,
    HeaderBar,
    HistoryPanel,
    MapPanel,
    PowerPanel,
)

__all__ = ["ConsoleApp", "RecordConsoleApp", "open_console"]

log = logging.getLogger(__name__)

#: Screen refresh (s): 10 Hz, the telemetry's lower rate.
REFRESH_S = 0.1

_CSS = """
Screen { layout: vertical; }
#header { height: 1; background: $boost; }
#body { height: 1fr; }
#map { width: 3fr; height: 100%; border: round $primary; }
#side { width: 2fr; height: 100%; }
#checks { height: auto; max-height: 12; border: round $secondary; }
#faults { height: auto; max-height: 8; border: round $secondary; }
#power { height: auto; max-height: 16; border: round $secondary; }
#history { height: 1fr; min-height: 5; border: round $secondary; }
#armrow { height: 1; }
#armlabel { width: auto; padding: 0 1; }
#armbar { width: 30; }
#slider { height: 1; }
"""


class ConsoleApp(App[int]):
    """``qiki console``: a live gateway (``link``) or a recorded run (``timeline``).

    Parameters
    ----------
    link : LiveLink or None
        The gateway client (live mode).
    timeline : RecordTimeline or None
        The recorded run (read-only mode); exactly one of the two.
    """

    CSS = _CSS
    TITLE = "qiki console"

    BINDINGS = [
        Binding("space", "estop", "E-STOP", priority=True),
        Binding("exclamation_mark", "estop", "E-stop", show=False, priority=True),
        Binding("a", "arm", "arm (hold)"),
        Binding("y", "confirm", "confirm", show=False),
        Binding("d", "command('disarm')", "disarm"),
        Binding("r", "command('reset')", "reset"),
        Binding("m", "command('mission_start')", "mission"),
        Binding("x", "command('mission_abort')", "abort"),
        Binding("c", "command('request_control')", "control"),
        Binding("t", "command('take_control')", "take", show=False),
        Binding("l", "command('release_control')", "release"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, link: LiveLink | None = None, timeline: RecordTimeline | None = None) -> None:
        if (link is None) == (timeline is None):
            raise ValueError("ConsoleApp needs exactly one of link and timeline")
        if timeline is not None and not isinstance(self, RecordConsoleApp):
            raise ValueError("a recorded run opens in RecordConsoleApp (see open_console)")
        super().__init__()
        self.link = link
        self.timeline = timeline
        self.index = 0
        self.playing = False
        self.hold = HoldGesture()
        self._drawn: tuple[object, ...] | None = None


    def compose(self) -> ComposeResult:
        """Header, map beside the panels, the arm bar (live) or the time slider (record), footer."""
        yield HeaderBar(id="header")
        with Horizontal(id="body"):
            yield MapPanel(id="map")
            with Vertical(id="side"):
                yield ChecksPanel(id="checks")
                yield FaultsPanel(id="faults")
                yield PowerPanel(id="power")
                yield HistoryPanel(id="history")
        if self.link is not None:
            with Horizontal(id="armrow"):
                yield Static("arm hold", id="armlabel")
                yield ProgressBar(total=100, show_eta=False, show_percentage=False, id="armbar")
        else:
            yield Static(id="slider")
        yield Footer()

    async def on_mount(self) -> None:
        """Start the link (live) and the refresh timer."""
        self.query_one("#map").border_title = "table (x right, y up; grid 0.5 m)"
        if self.link is not None:
            self.link.start()
        self.set_interval(REFRESH_S, self._tick)
        self.refresh_view()

    async def on_unmount(self) -> None:
        """Close the link."""
        if self.link is not None:
            self.link.stop()

    # ------------------------------------------------------------------ view
    def current_view(self) -> ConsoleView:
        """Return the view on screen now (live: the latest telemetry; record: the slider's tick)."""
        if self.timeline is not None:
            return self.timeline.view(self.index)
        assert self.link is not None
        v = self.link.view
        v.link_age_s = self.link.link_age_s()
        v.connected = self.link.last_rx_s is not None and not self.link.closed.is_set()
        if self.link.error:
            v.notes = [self.link.error, *v.notes]
        return v

    def refresh_view(self, force: bool = True) -> None:
        """Redraw the panels; with ``force`` False only when the view, the history or the size changed."""
        v = self.current_view()
        if self.timeline is not None:
            mode = f"record {self.timeline.path}"
            key: tuple[object, ...] = (self.index, self.playing, self.size)
        else:
            assert self.link is not None
            mode = f"live {self.link.url.split('?')[0]}"
            if self.link.role == "observer":
                mode += " (observer)"
            key = (id(v), v.connected, self.size, tuple((r.id, r.status) for r in list(self.link.history)[-12:]))
        self.query_one(HeaderBar).show(v, mode)
        if self.link is not None:
            self._draw_hold()
        if not force and key == self._drawn:
            return
        self._drawn = key
        if self.timeline is not None:
            trail = self.timeline.trail(self.index)
        else:
            assert self.link is not None
            trail = list(self.link.trail)
        self.query_one(MapPanel).show(v, trail)
        self.query_one(ChecksPanel).show(v)
        self.query_one(FaultsPanel).show(v)
        self.query_one(PowerPanel).show(v)
        if self.link is not None:
            self.query_one(HistoryPanel).show((r.line(), r.status) for r in reversed(list(self.link.history)[-12:]))
        else:
            self.query_one(HistoryPanel).show(self._record_events(), title="Events")
            self._draw_slider()

    def _record_events(self) -> list[tuple[str, str]]:
        assert self.timeline is not None
        t = self.timeline.ticks.t_s[self.index] if len(self.timeline) else 0.0
        out = []
        for e in reversed(self.timeline.events.until(t)[-12:]):
            out.append((f"{float(e.get('t_s', 0.0)):7.2f} [{e.get('code')}] {e.get('text', '')}",  # type: ignore[arg-type]
                        "refused" if e.get("kind") in ("fault", "refused") else "accepted"))
        return out

    def _draw_hold(self) -> None:
        now = time.monotonic()
        p = self.hold.progress(now)
        self.query_one("#armbar", ProgressBar).update(progress=p * 100)
        label = "arm hold"
        if self.hold.active:
            label = "hold a ..." if p < 1.0 else "press y to ARM"
        self.query_one("#armlabel", Static).update(label)

    def _draw_slider(self) -> None:
        assert self.timeline is not None
        n = len(self.timeline)
        w = max(10, self.size.width - 40)
        pos = int(w * self.index / max(1, n - 1))
        t = Text(no_wrap=True)
        t.append(f" {'>' if self.playing else '||'} ")
        t.append("=" * pos, "cyan")
        t.append("O", "bold white")
        t.append("-" * (w - pos), "grey50")
        t.append(f" {self.timeline.ticks.t_s[self.index] if n else 0.0:7.2f} / {self.timeline.duration_s:.2f} s"
                 f"  tick {self.index + 1}/{n}")
        self.query_one("#slider", Static).update(t)

    async def _tick(self) -> None:
        if self.link is not None:
            hold_ms = self.hold.poll(time.monotonic())
            if hold_ms is not None:
                self.link.submit("arm", hold_ms=hold_ms)
        elif self.playing and self.timeline is not None:
            self._seek_s(REFRESH_S)
        try:
            self.refresh_view(force=False)
        except NoMatches:
            # the timer fired while the app was closing (its widgets are gone)
            log.debug("refresh after the widgets were removed")

    # ------------------------------------------------------------------ live actions
    async def action_estop(self) -> None:
        """E-stop: sent at once, from any console, lock or not."""
        self.hold.cancel()
        if self.link is not None:
            self.link.submit("estop")
        self.refresh_view()

    async def action_arm(self) -> None:
        """Take a key event of the arm hold."""
        if self.link is None:
            return
        hold_ms = self.hold.press(time.monotonic())
        if hold_ms is not None:
            self.link.submit("arm", hold_ms=hold_ms)
        self.refresh_view()

    async def action_confirm(self) -> None:
        """Confirm a press-then-confirm arm (``y`` within 1-3 s of ``a``)."""
        if self.link is None:
            return
        hold_ms = self.hold.confirm(time.monotonic())
        if hold_ms is not None:
            self.link.submit("arm", hold_ms=hold_ms)
        self.refresh_view()

    async def action_command(self, name: str) -> None:
        """Send a command without confirmation (disarm, reset, mission, control)."""
        self.hold.cancel()
        if self.link is not None:
            self.link.submit(name)
        self.refresh_view()

    # ------------------------------------------------------------------ record actions
    def _seek_s(self, dt_s: float) -> None:
        assert self.timeline is not None
        if not len(self.timeline):
            return
        t = self.timeline.ticks.t_s[self.index] + dt_s
        i = self.timeline.index_at(t + 1e-9)
        if i == self.index and dt_s > 0:
            i = min(len(self.timeline) - 1, i + 1)
        if i >= len(self.timeline) - 1:
            self.playing = False
        self.index = i

    def action_seek(self, dt_s: float) -> None:
        """Move the slider by ``dt_s`` seconds of run time."""
        if self.timeline is not None:
            self._seek_s(dt_s)
            self.refresh_view()

    def action_step(self, n: int) -> None:
        """Move the slider by ``n`` ticks."""
        if self.timeline is not None:
            self.index = max(0, min(len(self.timeline) - 1, self.index + n))
            self.refresh_view()

    def action_play(self) -> None:
        """Play (real time) or pause the recorded run."""
        self.playing = not self.playing
        self.refresh_view()


class RecordConsoleApp(ConsoleApp, inherit_bindings=False):
    """``qiki console RUN.mcap``: the same panels, read-only, with a time slider.

    Parameters
    ----------
    timeline : RecordTimeline
        The recorded run.
    """

    BINDINGS = [
        Binding("left", "seek(-0.1)", "-0.1 s"),
        Binding("right", "seek(0.1)", "+0.1 s"),
        Binding("comma", "step(-1)", "-tick", show=False),
        Binding("full_stop", "step(1)", "+tick", show=False),
        Binding("pageup", "seek(-10)", "-10 s"),
        Binding("pagedown", "seek(10)", "+10 s"),
        Binding("home", "seek(-1e9)", "start"),
        Binding("end", "seek(1e9)", "end"),
        Binding("space", "play", "play/pause", priority=True),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, timeline: RecordTimeline) -> None:
        super().__init__(timeline=timeline)


def open_console(link: LiveLink | None = None, timeline: RecordTimeline | None = None) -> ConsoleApp:
    """Return the console for a live link or a recorded run.

    Parameters
    ----------
    link : LiveLink or None
        Live: the gateway client.
    timeline : RecordTimeline or None
        Read-only: the recorded run.

    Raises
    ------
    ValueError
        Neither or both given.
    """
    if timeline is not None and link is None:
        return RecordConsoleApp(timeline)
    return ConsoleApp(link=link, timeline=timeline)
