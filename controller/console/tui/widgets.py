"""The terminal console's panels (Textual widgets), each drawing a :class:`ConsoleView`.

Every panel has ``show(view)``; a value whose age is over
:data:`~controller.console.tui.view.STALE_AFTER_S` is drawn grey (dim), as is every
value while the link is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from controller.console.tui.map_canvas import render_map
from controller.console.tui.view import ConsoleView, is_stale

__all__ = ["ChecksPanel", "FaultsPanel", "HeaderBar", "HistoryPanel", "MapPanel", "PowerPanel", "fmt"]

_STALE = "grey50"

_STATE_STYLE = {"estop": "bold white on red", "safe_mode": "bold black on yellow", "active": "bold black on green",
                "armed": "bold black on dark_orange", "idle": "bold white on blue", "boot": "bold white on grey37"}


def fmt(v: object, unit: str = "", digits: int = 2) -> str:
    """Format a value for a panel: ``-`` when unknown, a float to ``digits``, booleans as on/off."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _style(view: ConsoleView, group: str, style: str = "") -> str:
    if not view.connected or (not view.read_only and is_stale(view.age(group))):
        return _STALE
    return style


class HeaderBar(Static):
    """State, time in state, armed, control holder, link age, recording."""

    def show(self, view: ConsoleView, mode: str) -> None:
        """Draw ``view``; ``mode`` is ``live <url>`` or ``record <path>``."""
        t = Text(no_wrap=True, overflow="ellipsis")
        st = view.state or "?"
        t.append(f" {st.upper()} ", _STALE if not view.connected else _STATE_STYLE.get(st, "bold reverse"))
        t.append(f" {fmt(view.time_in_state_s, ' s', 1)} in state  ")
        armed = "ARMED" if view.armed else ("safe" if view.armed is not None else "?")
        t.append(armed, "bold red" if view.armed else "green")
        holder = view.holder or "nobody"
        if view.i_hold_control:
            holder += " (you)"
        t.append(f"  control: {holder}", "bold" if view.i_hold_control else "")
        if view.read_only and view.link_age_s is None:
            t.append("  read-only", "italic")
        else:
            link = "DOWN" if not view.connected else fmt(view.link_age_s, " s", 2)
            t.append(f"  link: {link}", "bold red" if not view.connected or is_stale(view.link_age_s) else "")
        if view.waypoints:
            t.append(f"  wp {view.waypoints_reached or 0}/{len(view.waypoints)}")
        t.append("  REC" if view.recording else "  no rec", "bold red" if view.recording else _STALE)
        t.append(f"  t={fmt(view.t_s, ' s', 2)}  {mode}", "grey62")
        self.update(t)


class MapPanel(Static):
    """The table: pose, trail, waypoints, keep-out, radar tracks (braille canvas)."""

    def show(self, view: ConsoleView, trail: Sequence[tuple[float, float]]) -> None:
        """Draw the map at the panel's size."""
        w = max(10, self.size.width)
        h = max(4, self.size.height)
        self.update(render_map(view, trail, w, h))


class ChecksPanel(Static):
    """The arming checklist, each failing check with its reason."""

    def show(self, view: ConsoleView) -> None:
        """Draw the checks."""
        st = _style(view, "checks")
        t = Text()
        t.append("Arming checks\n", "bold")
        if not view.checks:
            t.append("  (none reported)\n", _STALE)
        for c in view.checks:
            t.append("  ok " if c.ok else "  NO ", st or ("green" if c.ok else "bold red"))
            t.append(c.name, st)
            if c.reason and not c.ok:
                t.append(f": {c.reason}", st or "red")
            t.append("\n")
        self.update(t)


class FaultsPanel(Static):
    """Active and latched faults with codes and reasons."""

    def show(self, view: ConsoleView) -> None:
        """Draw the faults."""
        st = _style(view, "faults")
        t = Text()
        t.append("Faults\n", "bold")
        if not view.faults:
            t.append("  none\n", st or "green")
        for f in view.faults:
            code = f"[{f.code}] " if f.code is not None else ""
            t.append("  ACTIVE " if f.active else "  latched ", st or ("bold red" if f.active else "yellow"))
            t.append(f"{code}{f.name}: {f.reason}\n", st)
        for n in view.notes:
            t.append(f"  {n}\n", st or "yellow")
        self.update(t)


class PowerPanel(Static):
    """Battery and PDU readings, thrust per thruster."""

    def show(self, view: ConsoleView) -> None:
        """Draw battery, PDU and thrust."""
        tb = Table.grid(padding=(0, 1))
        tb.add_column()
        tb.add_column()
        sb = _style(view, "battery")
        b = view.battery
        tb.add_row(Text("Battery", "bold"), Text(f"age {fmt(view.age('battery'), ' s', 1)}", _STALE))
        soc = b.get("soc_pct")
        tb.add_row("SoC", Text(fmt(soc, " %", 0), sb or ("red" if soc is not None and soc < 30 else "")))
        tb.add_row("voltage", Text(fmt(b.get("voltage_v"), " V"), sb))
        tb.add_row("current", Text(fmt(b.get("current_a"), " A"), sb))
        tb.add_row("max temp", Text(fmt(b.get("max_temperature_c"), " C", 0), sb))
        sp = _style(view, "pdu")
        tb.add_row(Text("PDU", "bold"), "")
        for k, val in list(view.pdu.items())[:6]:
            if isinstance(val, dict):
                continue
            tb.add_row(k, Text(fmt(val), sp))
        if view.thrust_n:
            tb.add_row(Text("thrust", "bold"), Text(" ".join(f"{x:.2f}" for x in view.thrust_n), _style(view, "state")))
        self.update(tb)


class HistoryPanel(Static):
    """The commands sent and their replies, newest last."""

    def show(self, lines: Iterable[tuple[str, str]], title: str = "Commands") -> None:
        """Draw ``(text, status)`` lines under ``title``, newest first."""
        t = Text()
        t.append(f"{title} (newest first)\n", "bold")
        for text, status in lines:
            t.append(f"  {text}\n", {"accepted": "green", "refused": "bold red"}.get(status, "yellow"))
        self.update(t)
