"""The vehicle manager with tiny fake components: no emulator, no bus, milliseconds.

Every (state, event) pair of ``fsm_configs/qiki_vehicle.yaml`` goes through the real
:class:`controller.vehicle.Vehicle` (its guards, actions, fault book and POST), the
registry binding is checked at build, and the barrier and the safe stop are exercised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from controller.errors import ConfigError
from controller.fsm import EVENTS, FsmEngine, load_fsm
from controller.fsm import registry as fsm_registry
from controller.safety.output_guard import OutputGuard
from controller.vehicle import ComponentBase, Condition, DevicePost, PoseControl, PoseEstimate, TickView, Vehicle
from controller.vehicle.bindings import GUARD_IMPLS, check_bindings

ROOT = Path(__file__).resolve().parents[2]
MODEL = load_fsm(ROOT / "fsm_configs" / "qiki_vehicle.yaml", "fsm_configs/qiki_vehicle.yaml")
STATES = ("boot", "idle", "armed", "active", "safe_mode", "estop")
IGN = "ignored"
# Outcome with every guard passing (as tests/fsm/test_fsm_vehicle_table.py, through the vehicle)
EXPECTED: dict[str, dict[str, str]] = {
    "boot": {"post_passed": "idle", "post_failed": "safe_mode", "fault": "safe_mode", "estop": "estop",
             "arm": IGN, "disarm": IGN, "start_mission": IGN, "reset": IGN, "mission_complete": IGN},
    "idle": {"arm": "armed", "fault": "safe_mode", "estop": "estop", "post_passed": IGN, "post_failed": IGN,
             "disarm": IGN, "start_mission": IGN, "reset": IGN, "mission_complete": IGN},
    "armed": {"start_mission": "active", "disarm": "idle", "fault": "safe_mode", "estop": "estop", "arm": IGN,
              "post_passed": IGN, "post_failed": IGN, "reset": IGN, "mission_complete": IGN},
    "active": {"mission_complete": "armed", "disarm": "idle", "fault": "safe_mode", "estop": "estop", "arm": IGN,
               "start_mission": IGN, "post_passed": IGN, "post_failed": IGN, "reset": IGN},
    "safe_mode": {"reset": "idle", "fault": "safe_mode", "estop": "estop", "arm": IGN, "disarm": IGN,
                  "start_mission": IGN, "post_passed": IGN, "post_failed": IGN, "mission_complete": IGN},
    "estop": {"reset": "idle", "estop": "estop", "fault": IGN, "arm": IGN, "disarm": IGN, "start_mission": IGN,
              "post_passed": IGN, "post_failed": IGN, "mission_complete": IGN},
}


class FakeDriver:
    def __init__(self) -> None:
        self.heartbeats: list[str] = []

    def service(self, now_s: float, state: str) -> None:
        self.heartbeats.append(state)


class FakeValves(ComponentBase):
    """Stands in for ValveBoardComponent: records what it was told to write."""

    name = "valves"

    def __init__(self) -> None:
        self.thruster_valves = [0, 1, 2]
        self.valve_fault_mask = 0
        self.last_frame_zero = False
        self.frames: list[tuple[str, list[float]]] = []
        self.zero_sent = 0
        self.fail_write = False

    def post(self, view: TickView) -> Mapping[str, DevicePost]:
        return {"valves": DevicePost(True, "ok")}

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        if self.fail_write:
            raise ZeroDivisionError("float division by zero")
        self.frames.append((view.outputs, list(thrust_n)))
        self.last_frame_zero = view.outputs != "allocate" or not any(thrust_n)

    def send_zero(self, now_s: float) -> bool:
        self.zero_sent += 1
        self.last_frame_zero = True
        return True


class FakeMcu(ComponentBase):
    """Stands in for McuComponent: POST, E-stop input, rail line, a fixed pose."""

    name = "mcu"

    def __init__(self) -> None:
        self.driver = FakeDriver()
        self.ready = True
        self.estop = False
        self.rail = False
        self.rail_calls: list[bool] = []
        self.hello = 0
        self.pose = PoseEstimate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        return {"mcu": DevicePost(True, "ok")} if self.ready else None

    def events(self, view: TickView) -> Sequence[str]:
        return ("estop",) if self.estop and view.state != "estop" else ()

    def arming_check(self, view: TickView) -> str | None:
        return "E-stop is pressed or its state is unknown" if self.estop else None

    def estop_released(self, now_s: float) -> bool:
        return not self.estop

    def action_handlers(self):
        return {"run_post": lambda v: setattr(self, "hello", self.hello + 1),
                "enable_valve_rail": lambda v: self._rail(True), "disable_valve_rail": lambda v: self._rail(False)}

    def _rail(self, on: bool) -> None:
        self.rail = on
        self.rail_calls.append(on)

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        self.driver.service(view.now_s, view.state)

    def rail_off_confirmed_since(self, since_s: float) -> bool:
        return not self.rail


class FakeSensor(ComponentBase):
    """A third component with one switchable fault condition."""

    name = "sensor"

    def __init__(self) -> None:
        self.fault: str | None = None
        self.reads: list[int] = []

    def read(self, view: TickView) -> None:
        self.reads.append(view.tick)

    def conditions(self, view: TickView) -> Sequence[Condition]:
        return [Condition("sensor.level", self.fault)]

    def arming_check(self, view: TickView) -> str | None:
        return self.fault


class FakeAllocator:
    def allocate(self, wrench):
        class R:
            thrust_n = [0.5, 0.0, 0.25]
        return R()


class FakeMission:
    waypoints_reached = 0

    def start(self, now_s: float) -> None:
        self.started = now_s

    def update(self, now_s, pose, speed):
        class P:
            reached_now = False
            complete = False
            setpoint = (1.0, 0.0, 0.0)
        return P()


class Rig:
    def __init__(self) -> None:
        self.valves, self.mcu, self.sensor = FakeValves(), FakeMcu(), FakeSensor()
        self.events: list[tuple] = []
        self.v = Vehicle(fsm=FsmEngine(MODEL, now_s=0.0), can_ports={}, valves=self.valves, mcu=self.mcu,
                         components=[self.sensor], control=PoseControl(FakeAllocator(), _gains(), FakeMission()),
                         guard=OutputGuard([1.0, 1.0, 1.0], 1000.0), record=self._record, post_timeout_s=1.0)
        self.k = 0

    def _record(self, tick, time_s, kind, **fields):
        self.events.append((tick, kind, fields))

    def tick(self, *commands: str) -> str:
        for c in commands:
            self.v.command(c)
        self.v.tick(self.k, self.k * 0.01, 0.01)
        self.k += 1
        return self.v.state


def _gains():
    from controller.control import PoseGains

    return PoseGains(1.0, 1.0, 1.0, 1.0, 0.2, 0.5)


def rig_in(state: str) -> Rig:
    r = Rig()
    if state == "boot":
        r.mcu.ready = False
        r.tick()
        return r
    r.tick()  # POST passes on the first tick
    path = {"idle": [], "armed": ["arm"], "active": ["arm", "start_mission"], "safe_mode": ["fault"],
            "estop": ["estop"]}[state]
    for e in path:
        r.tick(e)
    assert r.v.state == state
    return r


def test_the_table_covers_every_pair():
    assert set(EXPECTED) == set(STATES)
    for row in EXPECTED.values():
        assert set(row) == set(EVENTS)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_state_event_pair_through_the_vehicle(state, event):
    r = rig_in(state)  # in boot, POST is still waiting
    expected = EXPECTED[state][event]
    r.tick(event)
    assert r.v.state == (state if expected == IGN else expected)


def test_post_waits_for_every_component_then_passes_and_runs_post_once():
    r = Rig()
    r.mcu.ready = False
    assert r.tick() == "boot" and not r.v.post_passed
    r.mcu.ready = True
    assert r.tick() == "idle"
    assert r.v.post_result == {"valves": {"passed": True, "reason": "ok"}, "mcu": {"passed": True, "reason": "ok"}}
    assert r.mcu.hello == 1  # run_post: the vehicle's part and the MCU's part, once


def test_post_times_out_into_safe_mode():
    r = Rig()
    r.mcu.ready = False
    while r.k < 101:
        r.tick()
    assert r.v.state == "safe_mode"
    assert ("post_failed" in [t[2] for t in r.v.transitions])


def test_arming_is_the_union_of_the_component_checks_with_the_reason():
    r = rig_in("idle")
    r.sensor.fault = "sensor level low"
    r.tick()  # the condition is active: a fault, safe_mode
    assert r.v.state == "safe_mode" and r.v.first_fault == "sensor level low"
    r.sensor.fault = None
    assert r.tick("reset") == "idle"
    r.sensor.fault = "sensor level low"
    r.v.faults.active.clear()  # as if the fault had not been seen yet: the guard asks the component
    (tr,) = r.v.fsm.step(r.k * 0.01, ["arm"], lambda g: GUARD_IMPLS[g](r.v, r.v.view()))
    assert tr.refused and tr.reason == "sensor level low"
    r2 = rig_in("idle")
    r2.mcu.estop = True
    r2.tick("arm")
    assert r2.v.state == "estop"  # the input itself raises estop first (O04 arbiter order)
    r3 = rig_in("idle")
    r3.v.post_passed = False
    r3.tick("arm")
    assert r3.v.last_refusal == ("arm", "POST has not passed")


def test_rail_actions_reach_the_mcu_component():
    r = rig_in("armed")
    assert r.mcu.rail_calls == [False, True]  # idle's entry opened it, armed's entry closed it
    r.tick("disarm")
    assert r.mcu.rail_calls[-1] is False


def test_outputs_reach_the_actuator_only_in_active():
    r = rig_in("armed")
    r.tick()
    assert r.valves.frames[-1] == ("zero", [0.0, 0.0, 0.0])
    t_start = r.k * 0.01
    r.tick("start_mission")
    assert r.v.mission.started == t_start  # start_mission_clock ran with the tick's time
    r.tick()
    outputs, thrust = r.valves.frames[-1]
    assert outputs == "allocate" and thrust == [0.5, 0.0, 0.25]
    assert r.mcu.driver.heartbeats[-1] == "active"


def test_exception_barrier_zeroes_and_lands_in_safe_mode():
    r = rig_in("active")
    r.valves.fail_write = True
    r.tick()
    assert r.v.state == "safe_mode"
    assert r.v.exception_reason == "exception in tick: ZeroDivisionError: float division by zero"
    assert r.valves.zero_sent == 1
    kinds = [e[1] for e in r.events]
    assert "exception" in kinds
    r.valves.fail_write = False
    r.tick("reset")
    r.tick("arm")
    r.tick("start_mission")
    r.tick()
    assert all(o == "zero" for o, _ in r.valves.frames[-3:])  # inhibited for good


def test_safe_stop_disarms_and_counts_zero_ticks():
    r = rig_in("active")
    r.v.begin_shutdown("interrupted (SIGTERM)", r.k * 0.01)
    for _ in range(3):
        r.tick()
    st = r.v.shutdown_status(r.k * 0.01)
    assert r.v.state == "idle" and st.disarmed and st.zero_ticks == 3 and st.rail_open_confirmed and st.complete


def test_components_read_in_order_with_the_fresh_view():
    r = rig_in("idle")
    assert r.sensor.reads == list(range(r.k))


def test_unimplemented_registry_names_fail_at_build(monkeypatch):
    monkeypatch.setattr(fsm_registry, "GUARDS", {**fsm_registry.GUARDS, "tank_pressure_ok": "new guard"})
    with pytest.raises(ConfigError, match="guards.tank_pressure_ok: registered but not implemented"):
        Rig()
    monkeypatch.undo()
    monkeypatch.setattr(fsm_registry, "ACTIONS", {**fsm_registry.ACTIONS, "vent_tank": "new action"})
    with pytest.raises(ConfigError, match="actions.vent_tank: registered but not implemented"):
        Rig()


def test_a_component_action_that_is_not_registered_fails_at_build():
    with pytest.raises(ConfigError, match="actions.open_hatch: implemented but not registered"):
        check_bindings(["run_post", "enable_valve_rail", "disable_valve_rail", "open_hatch"])
