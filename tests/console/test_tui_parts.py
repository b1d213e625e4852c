"""The terminal console's pure parts: hold gesture, telemetry mapping, map, recorded-run timeline."""

from __future__ import annotations

from pathlib import Path

from fake_gateway import FakeGateway

from controller.console.tui.hold import HoldGesture
from controller.console.tui.live import view_from_telemetry, with_token
from controller.console.tui.map_canvas import render_map
from controller.console.tui.record_view import RecordTimeline
from controller.console.tui.view import ConsoleView, Track, Waypoint, is_stale

REPO = Path(__file__).resolve().parents[2]
NOMINAL = REPO / "tests" / "replay_corpus" / "nominal.mcap"
FAULTS = REPO / "tests" / "replay_corpus" / "faults.mcap"


def test_hold_by_key_repeat_completes_after_one_second() -> None:
    h = HoldGesture()
    assert h.press(0.0) is None
    t = 0.0
    while t < 0.95:
        t += 0.05
        assert h.press(t) is None
    assert h.progress(0.96) > 0.9
    assert h.press(1.0) == 1000
    assert not h.active


def test_hold_released_early_then_confirm_within_window() -> None:
    h = HoldGesture()
    h.press(0.0)
    assert h.poll(0.9) is None            # repeats stopped: no arm by the timer
    assert h.confirm(0.5) is None         # too early: cancelled
    h.press(10.0)
    assert h.confirm(11.2) == 1200
    h.press(20.0)
    assert h.confirm(23.5) is None        # too late


def test_hold_poll_completes_a_held_key() -> None:
    h = HoldGesture()
    h.press(0.0)
    h.press(0.5)
    h.press(0.9)
    assert h.poll(1.01) == 1010


def test_view_from_telemetry_maps_protocol_fields() -> None:
    gw = FakeGateway()
    gw.estop_pressed = True
    gw.holder = "tui@c1"
    v = view_from_telemetry(gw.telemetry(3), me=None, you_hold=True)
    assert v.state == "idle" and v.armed is False
    assert v.holder == "tui@c1" and v.i_hold_control
    assert [w.x_m for w in v.waypoints] == [1.0, 1.0, 0.0, 0.0]
    assert any(c.name == "mcu" and not c.ok and "E-stop" in c.reason for c in v.checks)
    assert v.battery["soc_pct"] == 90.0 and "valve_rail_enabled" in v.pdu
    assert v.tracks[0].id == 7
    assert len(v.thrust_n) == 8


def test_view_from_telemetry_ignores_junk() -> None:
    v = view_from_telemetry({"state": "idle", "pose": "nope", "setpoint": {"waypoints": [[1], "x"]},
                             "arming_checks": [3], "radar_tracks": [{"id": "x"}], "unknown": 1})
    assert v.state == "idle" and v.pose is None and v.waypoints == []


def test_with_token() -> None:
    assert with_token("ws://h:1/ws", None) == "ws://h:1/ws"
    assert with_token("ws://h:1/ws?a=1", "t k") == "ws://h:1/ws?a=1&token=t+k"


def test_stale() -> None:
    assert is_stale(None) and is_stale(0.6) and not is_stale(0.1)


def test_map_draws_vehicle_waypoints_and_tracks() -> None:
    v = ConsoleView(pose=(0.5, 0.0, 0.0), waypoints=[Waypoint(1, 0, True), Waypoint(1, 1)],
                    tracks=[Track(12, 0.0, 1.0)], keep_out_radius_m=0.3, ages_s={"pose": 0.0, "tracks": 0.0})
    text = render_map(v, [(0.0, 0.0), (0.25, 0.0)], 40, 12).plain
    lines = text.split("\n")
    assert len(lines) == 12 and all(len(line) == 40 for line in lines)
    for mark in ("@", "1", "2", "T12"):
        assert mark in text
    assert any("\u2800" < ch <= "\u28ff" for ch in text)   # braille dots: trail, keep-out


def test_record_timeline_views_a_run() -> None:
    tl = RecordTimeline(NOMINAL)
    assert len(tl) > 900 and tl.duration_s > 9.0
    first, mid, last = tl.view(0), tl.view(len(tl) // 2), tl.view(len(tl) - 1)
    assert mid.state == "active" and mid.armed
    assert last.waypoints_reached is not None and mid.pose is not None
    assert len(mid.waypoints) == 4 and tl.keep_out_radius_m == 0.6
    assert any(c.name == "post:bms" and c.ok for c in mid.checks)
    assert mid.battery["soc_pct"] is not None
    assert first.read_only and tl.index_at(5.0) in range(490, 510)
    assert len(tl.trail(len(tl) - 1)) > 100


def test_record_timeline_shows_faults() -> None:
    tl = RecordTimeline(FAULTS)
    v = tl.view(len(tl) - 1)
    assert v.state == "safe_mode"
    assert any(f.code == 601 and "BMS" in f.reason for f in v.faults)
