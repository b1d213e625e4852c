"""A 2-D map of the table drawn with braille dots (2 x 4 dots per terminal cell; pure, no Textual).

:func:`render_map` turns a :class:`~controller.console.tui.view.ConsoleView` and a trail
into a :class:`rich.text.Text` of ``width`` x ``height`` cells: the trail (blue dots),
the waypoints (numbered, green once reached), the keep-out circle around the vehicle
(red dots), the setpoint (``+``), the vehicle (``@`` and a heading dot) and the radar
tracks (``T<id>``, magenta). World ``x`` points right, ``y`` up; the scale keeps dots
square (a terminal cell is about twice as tall as wide, a braille dot 1/2 x 1/4 of it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from controller.console.tui.view import ConsoleView, is_stale

__all__ = ["MapFrame", "render_map"]

# braille dot bits by (column, row) inside a cell (Unicode U+2800 block)
_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))

# colour priority: a higher one wins a shared cell
_PRIO = {"grid": 0, "trail": 1, "keepout": 2, "track": 3, "vehicle": 4}
_STYLE = {"grid": "grey30", "trail": "dodger_blue2", "keepout": "red3", "track": "magenta", "vehicle": "bright_green"}


class MapFrame:
    """The world window a map shows: ``x_min..x_max``, ``y_min..y_max`` (m) on a dot grid.

    Parameters
    ----------
    points : sequence of (float, float)
        World points (m) that must be in view; the window is their bounding box plus
        ``margin_m``, widened so a dot is square.
    width, height : int
        Cells.
    margin_m : float
        Border around the points (m).
    """

    def __init__(self, points: Sequence[tuple[float, float]], width: int, height: int, margin_m: float = 0.4) -> None:
        self.width, self.height = max(1, width), max(1, height)
        xs = [p[0] for p in points] or [0.0]
        ys = [p[1] for p in points] or [0.0]
        x0, x1 = min(xs) - margin_m, max(xs) + margin_m
        y0, y1 = min(ys) - margin_m, max(ys) + margin_m
        dots_w, dots_h = self.width * 2, self.height * 4
        self.m_per_dot = max((x1 - x0) / dots_w, (y1 - y0) / dots_h, 1e-6)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self.x_min = cx - self.m_per_dot * dots_w / 2
        self.y_max = cy + self.m_per_dot * dots_h / 2

    def dot(self, x_m: float, y_m: float) -> tuple[int, int] | None:
        """Return the dot ``(column, row)`` of a world point, None outside the window."""
        c = int((x_m - self.x_min) / self.m_per_dot)
        r = int((self.y_max - y_m) / self.m_per_dot)
        if 0 <= c < self.width * 2 and 0 <= r < self.height * 4:
            return c, r
        return None


class _Grid:
    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.bits = [[0] * w for _ in range(h)]
        self.layer = [[""] * w for _ in range(h)]
        self.text: dict[tuple[int, int], tuple[str, str]] = {}

    def set(self, dot: tuple[int, int] | None, layer: str) -> None:
        if dot is None:
            return
        c, r = dot
        cx, cy = c // 2, r // 4
        self.bits[cy][cx] |= _BITS[c % 2][r % 4]
        old = self.layer[cy][cx]
        if not old or _PRIO[layer] >= _PRIO[old]:
            self.layer[cy][cx] = layer

    def put(self, dot: tuple[int, int] | None, s: str, style: str) -> None:
        if dot is None:
            return
        cx, cy = dot[0] // 2, dot[1] // 4
        for i, ch in enumerate(s):
            if cx + i < self.w:
                self.text[(cx + i, cy)] = (ch, style)

    def to_text(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for y in range(self.h):
            run: list[str] = []
            run_style = ""
            for x in range(self.w):
                if (x, y) in self.text:
                    ch, style = self.text[(x, y)]
                elif self.bits[y][x]:
                    ch, style = chr(0x2800 + self.bits[y][x]), _STYLE[self.layer[y][x]]
                else:
                    ch, style = " ", ""
                if style != run_style and run:
                    out.append("".join(run), run_style or None)
                    run = []
                run_style = style
                run.append(ch)
            if run:
                out.append("".join(run), run_style or None)
            if y < self.h - 1:
                out.append("\n")
        return out


def render_map(view: ConsoleView, trail: Sequence[tuple[float, float]], width: int, height: int) -> Text:
    """Draw the table at ``width`` x ``height`` cells.

    Parameters
    ----------
    view : ConsoleView
        Pose, setpoint, waypoints, keep-out radius, tracks.
    trail : sequence of (float, float)
        Past positions (m), oldest first.
    width, height : int
        Size in terminal cells.

    Returns
    -------
    rich.text.Text
        ``height`` lines of ``width`` cells; stale pose or tracks are drawn dim.
    """
    pts: list[tuple[float, float]] = [(w.x_m, w.y_m) for w in view.waypoints] + list(trail)
    if view.pose is not None:
        pts.append(view.pose[:2])
    if not pts:
        pts = [(0.0, 0.0), (1.0, 1.0)]
    frame = MapFrame(pts, width, height)
    g = _Grid(frame.width, frame.height)
    # a 0.5 m grid, every other dot, as a scale
    step = 0.5
    gx = math.floor(frame.x_min / step) * step
    x_max = frame.x_min + frame.m_per_dot * frame.width * 2
    y_min = frame.y_max - frame.m_per_dot * frame.height * 4
    while gx <= x_max:
        gy = math.floor(y_min / step) * step
        while gy <= frame.y_max:
            g.set(frame.dot(gx, gy), "grid")
            gy += step
        gx += step
    for x, y in trail:
        g.set(frame.dot(x, y), "trail")
    if view.pose is not None and view.keep_out_radius_m:
        px, py, _ = view.pose
        n = max(24, int(2 * math.pi * view.keep_out_radius_m / frame.m_per_dot))
        for i in range(n):
            a = 2 * math.pi * i / n
            g.set(frame.dot(px + view.keep_out_radius_m * math.cos(a), py + view.keep_out_radius_m * math.sin(a)),
                  "keepout")
    for i, w in enumerate(view.waypoints):
        g.put(frame.dot(w.x_m, w.y_m), str(i + 1), "bold green" if w.reached else "bold yellow")
    if view.setpoint is not None:
        g.put(frame.dot(view.setpoint[0], view.setpoint[1]), "+", "bold cyan")
    stale_tracks = is_stale(view.age("tracks"), 1.0)
    for tr in view.tracks:
        g.put(frame.dot(tr.x_m, tr.y_m), f"T{tr.id}", "grey50" if stale_tracks else "bold magenta")
    if view.pose is not None:
        px, py, yaw = view.pose
        for k in (1, 2, 3):
            d_m = k * frame.m_per_dot * 1.5
            g.set(frame.dot(px + d_m * math.cos(yaw), py + d_m * math.sin(yaw)), "vehicle")
        g.put(frame.dot(px, py), "@", "grey50" if is_stale(view.age("pose")) else "bold bright_green")
    return g.to_text()
