"""The lean tick (2026-12-07e): the cut paths against what the previous code gave.

* ``Vehicle.read`` builds the tick's views itself: the MCU reads with the view of the
  last pose, the others with the view after it, and ``view()`` returns that very view;
* ``FsmEngine.step`` returns at once on an eventless tick in a state without timeouts;
* ``ValveBoardComponent.write`` copies the duties in one call when thruster i drives
  valve i (the previous per-valve loop is the oracle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.components.seam import TickView
from controller.components.valves import ValveBoardComponent
from controller.errors import ControllerError
from controller.fsm import FsmEngine, load_fsm
from controller.vehicle import PoseEstimate

from .test_vehicle_manager import Rig

ROOT = Path(__file__).resolve().parents[2]
MODEL = load_fsm(ROOT / "fsm_configs" / "qiki_vehicle.yaml", "fsm_configs/qiki_vehicle.yaml")


# ---------------------------------------------------------------------- Vehicle.read
def test_read_hands_the_mcu_the_last_pose_and_the_others_the_new_one():
    r = Rig()
    r.tick()  # POST
    seen: list[tuple[str, TickView]] = []
    old = r.mcu.pose
    new = PoseEstimate(1.0, 2.0, 0.5, 0.0, 0.0, 0.0)

    def mcu_read(view: TickView) -> None:
        seen.append(("mcu", view))
        r.mcu.pose = new  # a new POSE message this tick

    r.mcu.read = mcu_read  # type: ignore[method-assign]
    r.sensor.read = lambda view: seen.append(("sensor", view))  # type: ignore[method-assign]
    r.v.tick_index, r.v.now_s = 7, 0.07
    view = r.v.read(0.07)
    (_, at_mcu), (_, at_sensor) = seen
    assert at_mcu == (7, 0.07, r.v.state, r.v.fsm.outputs, old) and at_mcu.pose is old
    assert at_sensor is view and view == (7, 0.07, r.v.state, r.v.fsm.outputs, new) and view.pose is new
    assert r.v.view() is view  # the cached view is the tick's


def test_read_without_a_new_pose_builds_one_view():
    r = Rig()
    r.tick()
    views: list[TickView] = []
    r.mcu.read = views.append  # type: ignore[method-assign]
    r.sensor.read = views.append  # type: ignore[method-assign]
    r.v.tick_index, r.v.now_s = 3, 0.03
    view = r.v.read(0.03)
    assert views[0] is views[1] is view is r.v.view()


# ---------------------------------------------------------------------- FsmEngine.step
def test_eventless_tick_without_timeouts_returns_nothing_and_keeps_the_time_rules():
    fsm = FsmEngine(MODEL, now_s=0.0)
    fsm.step(0.0, ["post_passed"], lambda name: (True, ""))
    assert fsm.state == "idle"
    fsm.ignored_last_step = (("idle", "x"),)  # the fast path still clears the last step's record
    assert fsm.step(1.0, [], lambda name: (True, "")) == [] and fsm.ignored_last_step == ()
    assert fsm.snapshot()["_last_now_s"] == 1.0
    with pytest.raises(ControllerError, match="backwards"):
        fsm.step(0.5, [], lambda name: (True, ""))
    with pytest.raises(ControllerError, match="finite"):
        fsm.step(float("nan"), (), lambda name: (True, ""))


def test_eventless_ticks_in_boot_still_fire_its_timeout():
    fsm = FsmEngine(MODEL, now_s=0.0)
    assert fsm.step(1.0, [], lambda name: (True, "")) == []
    out = fsm.step(10.0, [], lambda name: (True, ""))
    assert [(t.event, t.target, t.by_timeout) for t in out] == [("post_failed", "safe_mode", True)]


# ---------------------------------------------------------------------- ValveBoardComponent.write
class _Driver:
    def __init__(self) -> None:
        self.frames: list[list[float]] = []

    def command_frame(self, duty: Sequence[float]) -> list[float]:
        self.frames.append(list(duty))
        return list(duty)


class _Port:
    def send(self, msg: object, now_s: float) -> bool:
        return True


def _loop_duties(comp: ValveBoardComponent, thrust_n: Sequence[float]) -> list[float]:
    """The previous placement (the oracle): zeros, then each thruster's duty on its valve."""
    duty = [0.0] * comp.n_valves
    per = [100.0 * t / m for t, m in zip(thrust_n, comp.max_thrust_n, strict=False)]
    for i, v in enumerate(comp.thruster_valves):
        duty[v] = per[i]
    return duty


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 8), identity=st.booleans())
def test_valve_duties_match_the_per_valve_loop(data, n, identity):
    valves = list(range(n)) if identity else data.draw(st.permutations(range(n)))
    n_thrusters = data.draw(st.integers(1, n))
    valves = valves[:n_thrusters]
    max_n = [1.0] * n_thrusters
    comp = ValveBoardComponent("vb", _Driver(), _Port(), ">=0", valves, n, max_n)  # type: ignore[arg-type]
    thrust = data.draw(st.lists(st.floats(0.0, 1.0), min_size=n_thrusters, max_size=n_thrusters + 2))
    comp.write(TickView(0, 0.0, "active", "allocate", None), thrust)
    want = _loop_duties(comp, thrust)
    assert [v.hex() for v in comp.last_duty_pct] == [v.hex() for v in want]
    assert comp.driver.frames == [want]  # type: ignore[attr-defined]


def test_valve_duties_changed_mapping_after_build_is_honoured():
    comp = ValveBoardComponent("vb", _Driver(), _Port(), ">=0", [0, 1, 2], 3, [1.0, 1.0, 1.0])  # type: ignore[arg-type]
    comp.write(TickView(0, 0.0, "active", "allocate", None), [0.1, 0.2, 0.3])
    assert comp.last_duty_pct == [10.0, 20.0, 30.0]
    comp.thruster_valves = [2, 1, 0]  # compared every tick: the copy path is not taken
    comp.write(TickView(1, 0.01, "active", "allocate", None), [0.1, 0.2, 0.3])
    assert comp.last_duty_pct == [30.0, 20.0, 10.0]
    comp.write(TickView(2, 0.02, "idle", "zero", None), [0.1, 0.2, 0.3])
    assert comp.last_duty_pct == [0.0, 0.0, 0.0]


class _OwnListCommander:
    """A modulator that, like ValveCommander, returns its own latched list (not to be kept)."""

    def __init__(self) -> None:
        self.duty = [0.0, 0.0, 0.0]

    def duty_pct(self, thrust_n: Sequence[float], tick: int) -> list[float]:
        self.duty[:] = [100.0 * t for t in thrust_n]
        return self.duty


def test_valve_duties_copy_the_modulators_list():
    mod = _OwnListCommander()
    comp = ValveBoardComponent("vb", _Driver(), _Port(), ">=0", [0, 1, 2], 3, [1.0, 1.0, 1.0],  # type: ignore[arg-type]
                               modulator=mod)  # type: ignore[arg-type]
    comp.write(TickView(0, 0.0, "active", "allocate", None), [0.1, 0.2, 0.3])
    assert comp.last_duty_pct == [10.0, 20.0, 30.0] and comp.last_duty_pct is not mod.duty
    mod.duty[0] = 99.0  # the commander's next latch must not rewrite what was sent
    assert comp.last_duty_pct[0] == 10.0
