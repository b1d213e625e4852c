"""Fault scenarios x seeds, judged by an independent monitor that reads the CAN bus.

The monitor is its own python-can node on the run's virtual channel. It decodes the
valve command (0x101) with cantools directly from ``dbc/qiki.dbc`` -- not through QIKI's
codec -- and knows only when each fault was injected. It checks SAFETY.md's figures: after
the fault's detection bound every command frame is zero (0 unsafe frames), the vehicle
ends safe, and faults that must not trip (garbage the framer resynchronises from) don't.

SAFETY.md ids: D09 (``estop_press``), T03 (``host_heartbeat_loss``: the MCU's watchdog),
D04 and B01 (``valve_board_silent``: status and heartbeat stop), D08 (``mcu_silent``,
and the serial garbage test), D05 (``valve_board_reboot``). The campaign
(``qiki safety run``, ``tests/safety/``) covers every id with phases and seeds.
"""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest

T = 0.01

# scenario id -> ((target device, fault), detection bound after injection in s, expected final states)
SCENARIOS = {
    "estop_press": (("mcu", "estop_press"), 2 * T, {"estop"}),
    "host_heartbeat_loss": (("mcu", "host_heartbeat_loss"), 0.2 + 0.1 + 2 * T, {"safe_mode"}),
    "valve_board_silent": (("valves", "silent"), 0.3 + 2 * T, {"safe_mode"}),
    "mcu_silent": (("mcu", "silent"), 0.3 + 2 * T, {"safe_mode"}),
    "valve_board_reboot": (("valves", "reboot"), 0.2 + 2 * T, {"safe_mode"}),
}


@pytest.fixture(scope="module")
def command_message(repo_root):
    """The valve command (0x101) read with cantools straight from the DBC."""
    return cantools.database.load_file(str(repo_root / "dbc" / "qiki.dbc"), strict=True).get_message_by_frame_id(0x101)


def fly_watched(fly, cmd, rig_path: Path, seed: int, until_s: float | None = None):
    """Fly ``rig_path`` with the operator script while the monitor decodes every command frame."""
    frames: list[tuple[float, list[float]]] = []
    node = {}

    def plug_in(flight):
        node["monitor"] = flight.built.open_can_node("can0")

    def watch(flight, k, now):
        while (m := node["monitor"].recv(timeout=0)) is not None:
            if m.arbitration_id == 0x101 and not m.is_extended_id:
                sig = cmd.decode(m.data, scaling=True)
                frames.append((now, [sig[f"VB_Cmd_Duty{i}"] for i in range(1, 9)]))

    # Data paths in the rig resolve against the checkout (controller.paths).
    flight = fly(rig_path, until_s, seed=seed, setup=plug_in, after=watch)
    return flight.vehicle, flight.script, frames


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fault", sorted(SCENARIOS))
def test_no_unsafe_frame_after_detection_bound(fly, command_message, rig_with_faults, fault, seed):
    t_fault = 11.0 + 1.37 * seed
    (target, name), bound_s, final_states = SCENARIOS[fault]
    plan = [{"at_s": t_fault, "target": target, "fault": name}]
    v, script, frames = fly_watched(fly, command_message, rig_with_faults(plan), seed)
    assert v.state in final_states, (v.state, v.first_fault)
    active_before = [f for t, f in frames if t < t_fault and any(f)]
    assert active_before, "no thrust before the fault: the scenario proves nothing"
    unsafe = [(t, f) for t, f in frames if t >= t_fault + bound_s and any(f)]
    assert unsafe == [], f"{len(unsafe)} non-zero command frames after the bound, first at {unsafe[0][0]:.3f} s"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_serial_garbage_is_survived_without_false_trip(fly, command_message, rig_with_faults, seed):
    faults = [{"at_s": 8.0 + i * 2.5, "target": "mcu", "fault": "serial_garbage", "length": 200} for i in range(5)]
    v, script, frames = fly_watched(fly, command_message, rig_with_faults(faults), seed)
    assert script.result == "completed", script.result
    assert v.mcu.driver.stats()["bytes_dropped"] > 0
