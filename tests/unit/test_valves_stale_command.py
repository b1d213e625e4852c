"""T03 host side: a command older than one control period when it is about to leave is sent as zero."""

from __future__ import annotations

import uuid
from pathlib import Path

import can
import cantools

from controller.components.seam import TickView
from controller.components.valves import ValveBoardComponent
from hal.can.codec import DbcCodec
from hal.can.port import CanPort
from hal.devices.valve_board import ValveBoardDriver

DBC = Path(__file__).resolve().parents[2] / "dbc" / "qiki.dbc"


def _duties(clock_s: float | None) -> tuple[list[float], int, list[int]]:
    """Write one tick at 1.0 s asking 0.5 N of a 1 N thruster; return the duties, the stale count, the wire duties."""
    channel = f"stale-{uuid.uuid4().hex[:8]}"
    host = can.Bus(channel=channel, interface="virtual")
    board = can.Bus(channel=channel, interface="virtual")
    try:
        comp = ValveBoardComponent("valves", ValveBoardDriver(DbcCodec([DBC])), CanPort(host), "1.x", [0], 8, [1.0],
                                   clock=None if clock_s is None else (lambda: clock_s), max_command_age_s=0.01)
        comp.write(TickView(tick=100, now_s=1.0, state="active", outputs="allocate", pose=None), [0.5])
        msg = board.recv(timeout=1.0)
        assert msg is not None
        sig = cantools.database.load_file(str(DBC)).decode_message(msg.arbitration_id, msg.data)
        return comp.last_duty_pct, comp.stale_commands, [int(sig[f"VB_Cmd_Duty{i}"]) for i in range(1, 9)]
    finally:
        host.shutdown()
        board.shutdown()


def test_fresh_command_leaves_as_computed() -> None:
    duty, stale, wire = _duties(1.004)  # 4 ms into the tick
    assert duty[0] == 50.0 and stale == 0 and wire[0] == 50


def test_command_computed_before_a_stall_leaves_as_zero() -> None:
    duty, stale, wire = _duties(1.5)  # the process was stopped 0.5 s mid-tick
    assert not any(duty) and stale == 1 and not any(wire)


def test_lockstep_has_no_clock_and_no_guard() -> None:
    duty, stale, wire = _duties(None)
    assert duty[0] == 50.0 and stale == 0 and wire[0] == 50


def test_first_tick_after_a_stall_between_ticks_leaves_as_zero_then_commands_resume() -> None:
    """A process stopped between ticks (SIGSTOP in its sleep) wakes 0.3 s later: that tick's
    command leaves as zero; the next, one period on, as computed."""
    channel = f"gap-{uuid.uuid4().hex[:8]}"
    host = can.Bus(channel=channel, interface="virtual")
    board = can.Bus(channel=channel, interface="virtual")
    now = [1.0]
    try:
        comp = ValveBoardComponent("valves", ValveBoardDriver(DbcCodec([DBC])), CanPort(host), "1.x", [0], 8, [1.0],
                                   clock=lambda: now[0], max_command_age_s=0.01)
        duties = []
        for tick, t in ((100, 1.0), (101, 1.01), (102, 1.31), (103, 1.32)):
            now[0] = t + 0.002
            comp.write(TickView(tick=tick, now_s=t, state="active", outputs="allocate", pose=None), [0.5])
            duties.append(comp.last_duty_pct[0])
        assert duties == [50.0, 50.0, 0.0, 50.0] and comp.stale_commands == 1
        assert comp.max_tick_gap_s == 0.03
    finally:
        host.shutdown()
        board.shutdown()
