"""The lean tick, vehicle side (issue 12/16, 2026-12-07): plain-Python paths against the previous ones.

The PWM latch and the valve commander's duties lost numpy (N is about 8); every value
must be the same float, bit for bit, as the numpy code gave (kept here as the oracle).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.allocation import PwmModulator
from controller.valve_command import ValveCommander
from hal.snapshot import decode, encode

PERIOD_S = 0.05
FMAX = [1.0, 1.0, 0.8, 1.2, 1.0, 1.0, 0.5, 1.0]


class _NumpyLatch:
    """The previous :meth:`PwmModulator.latch` (numpy on (N,) arrays), the oracle."""

    def __init__(self, mod: PwmModulator) -> None:
        n = mod.n_valves
        self.mod = mod
        self.owed = np.zeros(n)
        self.commanded = np.zeros(n)
        self.delivered = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)

    def latch(self, thrust_n: object) -> np.ndarray:
        m = self.mod
        f = np.asarray(thrust_n, dtype=float)
        if f.shape != (m.n_valves,) or not np.isfinite(f).all():
            raise ValueError("bad thrust")
        fmax = m.max_thrust_n
        f = np.minimum(np.maximum(f, 0.0), fmax)
        T = m.pwm_period_s
        commanded = f * T
        want_ns = self.owed + commanded
        full_ns = fmax * T
        want_steps = want_ns / (full_ns * m.duty_step)
        steps = np.rint(want_steps)
        small = want_steps < m.min_steps
        steps = np.where(small, np.where(want_steps >= 0.5 * m.min_steps, m.min_steps, 0), steps)
        steps = np.clip(steps, 0, m.full_steps).astype(np.int64)
        delivered = steps * (m.duty_step * full_ns)
        self.owed = want_ns - delivered
        self.commanded += commanded
        self.delivered += delivered
        self.steps = steps
        return steps * m.duty_step


def _bits(a: object) -> list[str]:
    return [float(v).hex() for v in np.asarray(a, dtype=float).reshape(-1)]


_thrust = st.one_of(
    st.floats(-2.0, 3.0, allow_nan=False),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-12, 0.04, 0.08, 0.02 * 0.5]),
    st.integers(-1, 2),
)


@settings(max_examples=60, deadline=None)
@given(periods=st.lists(st.lists(_thrust, min_size=8, max_size=8), min_size=1, max_size=40),
       mib_s=st.sampled_from([0.001, 0.004, 0.006, 0.02]), as_array=st.booleans())
def test_latch_matches_the_numpy_latch_bit_for_bit(periods, mib_s, as_array):
    mod = PwmModulator(8, PERIOD_S, mib_s, FMAX)
    ref = _NumpyLatch(PwmModulator(8, PERIOD_S, mib_s, FMAX))
    for thrust in periods:
        arg = np.array(thrust, dtype=float) if as_array else thrust
        assert _bits(mod.latch(arg)) == _bits(ref.latch(arg))
        assert mod.duty_steps.dtype == np.int64
        np.testing.assert_array_equal(mod.duty_steps, ref.steps)
        assert _bits(mod.commanded_impulse_ns) == _bits(ref.commanded)
        assert _bits(mod.delivered_impulse_ns) == _bits(ref.delivered)
        assert _bits(mod.impulse_error_ns) == _bits(ref.commanded - ref.delivered)


@pytest.mark.parametrize("bad", [[1.0] * 7, [math.nan] + [1.0] * 7, [math.inf] + [0.0] * 7,
                                 np.ones((2, 8)), [[1.0]] * 8, "abcdefgh"])
def test_latch_refuses_bad_thrusts_with_a_value_error(bad):
    with pytest.raises(ValueError):
        PwmModulator(8, PERIOD_S, 0.004, FMAX).latch(bad)


def test_snapshot_encodes_the_carry_as_the_numpy_arrays_did_and_restores_it():
    mod = PwmModulator(8, PERIOD_S, 0.004, FMAX)
    ref = _NumpyLatch(PwmModulator(8, PERIOD_S, 0.004, FMAX))
    rng = np.random.default_rng(5)
    for _ in range(7):
        t = (rng.uniform(-0.1, 1.1, 8) * np.array(FMAX)).tolist()
        mod.latch(t)
        ref.latch(t)
    snap = mod.snapshot()
    assert snap == {"_owed_ns": encode(ref.owed), "_commanded_ns": encode(ref.commanded),
                    "_delivered_ns": encode(ref.delivered), "_duty_steps": encode(ref.steps)}
    other = PwmModulator(8, PERIOD_S, 0.004, FMAX)
    other.restore(decode(encode(snap)))  # type: ignore[arg-type]
    t = [0.3] * 8
    assert _bits(other.latch(t)) == _bits(mod.latch(t))
    assert other.snapshot() == mod.snapshot()


@settings(max_examples=40, deadline=None)
@given(periods=st.lists(st.lists(_thrust, min_size=8, max_size=8), min_size=1, max_size=30),
       delays=st.sampled_from([(0.0, 0.0), (0.003, 0.001), (0.001, 0.006), (0.004, 0.0)]))
def test_valve_commander_duties_match_the_numpy_path(periods, delays):
    open_s, close_s = delays
    vc = ValveCommander(FMAX, PERIOD_S, 0.01, 0.004, open_delay_s=open_s, close_delay_s=close_s)
    ref_vc = ValveCommander(FMAX, PERIOD_S, 0.01, 0.004, open_delay_s=open_s, close_delay_s=close_s)
    ref = _NumpyLatch(ref_vc.modulator)
    mod = vc.modulator
    for p, thrust in enumerate(periods):
        got = vc.duty_pct(thrust, p * vc.ticks_per_period)
        ref.latch(thrust)
        steps = ref.steps
        if ref_vc.bias_steps:
            steps = np.where(steps > 0, np.clip(steps + ref_vc.bias_steps, 0, mod.full_steps), 0)
        want = [float(s) * mod.duty_step * 100.0 for s in steps]
        assert [v.hex() for v in got] == [v.hex() for v in want]
        assert vc.duty_pct([0.0] * 8, p * vc.ticks_per_period + 1) is got  # repeated, same list


# ---------------------------------------------------------------------- the monitor's quiet skip
def _vehicle_rig(sensors: list[object], can_ports=None, overruns=None):  # a Vehicle with tiny fakes (as test_vehicle_manager.py)
    from pathlib import Path

    from controller.control import PoseGains
    from controller.fsm import FsmEngine, load_fsm
    from controller.safety.output_guard import OutputGuard
    from controller.vehicle import ComponentBase, DevicePost, PoseControl, PoseEstimate, Vehicle

    root = Path(__file__).resolve().parents[2]
    model = load_fsm(root / "fsm_configs" / "qiki_vehicle.yaml", "fsm_configs/qiki_vehicle.yaml")

    class Valves(ComponentBase):
        name = "valves"
        thruster_valves = [0, 1, 2]
        valve_fault_mask = 0
        last_frame_zero = False

        def post(self, view):
            return {"valves": DevicePost(True, "ok")}

        def send_zero(self, now_s):
            return True

    class Mcu(ComponentBase):
        name = "mcu"
        pose = PoseEstimate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

        def post(self, view):
            return {"mcu": DevicePost(True, "ok")}

        def estop_released(self, now_s):
            return True

        def rail_off_confirmed_since(self, since_s):
            return True

        def action_handlers(self):
            return {"enable_valve_rail": lambda view: None, "disable_valve_rail": lambda view: None}

    records: list[tuple] = []
    v = Vehicle(fsm=FsmEngine(model, now_s=0.0), can_ports=can_ports or {}, valves=Valves(), mcu=Mcu(),
                components=sensors, control=PoseControl(None, PoseGains(1.0, 1.0, 1.0, 1.0, 0.2, 0.5), None),
                guard=OutputGuard([1.0, 1.0, 1.0], 1000.0),
                record=lambda tick, t, kind, **f: records.append((tick, kind, sorted(f.items()))),
                overruns_last_second=overruns)
    return v, records


class _Sensor:
    """A component whose conditions follow a script; ``cached`` returns the same tuple while unchanged."""

    def __init__(self, name: str, keys: list[str], cached: bool) -> None:
        from controller.vehicle import ComponentBase

        self.base = ComponentBase()
        self.name, self.keys, self.cached = name, keys, cached
        self.reasons: list[str | None] = [None] * len(keys)
        self._last: tuple | None = None
        self._last_reasons: list[str | None] | None = None

    def __getattr__(self, attr: str):
        return getattr(self.base, attr)

    def conditions(self, view):
        from controller.vehicle import Condition

        if self.cached and self._last is not None and self._last_reasons == self.reasons:
            return self._last
        self._last_reasons = list(self.reasons)
        out = tuple(Condition(k, r) for k, r in zip(self.keys, self.reasons, strict=True))
        self._last = out
        return out if self.cached else list(out)


@settings(max_examples=40, deadline=None)
@given(script=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.sampled_from([None, "a", "b"]),
                                 st.sampled_from([None, "fault", "reset"])), min_size=1, max_size=40))
def test_monitor_skip_of_an_unchanged_tuple_changes_nothing(script):
    # the same component scripts, returning fresh lists (never skipped) and cached tuples;
    # the third sensor shares a key with the first (a pathological book, still the same answers)
    runs = []
    for cached in (False, True):
        sensors = [_Sensor("s0", ["s.a", "s.b"], cached), _Sensor("s1", ["t.a", "t.b"], cached),
                   _Sensor("s2", ["s.a", "u.b"], cached)]
        v, records = _vehicle_rig(sensors)
        trace = []
        for k, (who, which, reason, cmd) in enumerate(script):
            sensors[who].reasons[which] = reason
            if cmd is not None:
                v.command(cmd)
            v.tick(k, k * 0.01, 0.01)
            if k == len(script) // 2:
                v.faults.set("s.b", "external")  # a change made outside the monitor
            trace.append((v.state, dict(v.faults.active), list(v.faults.latched)))
        runs.append((trace, records))
    assert runs[0] == runs[1]


# ---------------------------------------------------------------------- the condition set, the output guard
def test_condition_set_returns_the_same_tuple_while_the_reasons_hold():
    from controller.components.seam import Condition, ConditionSet

    cs = ConditionSet(["a", "b"])
    first = cs.of((None, None))
    assert first == (Condition("a", None), Condition("b", None))
    assert cs.of((None, None)) is first
    second = cs.of((None, "b broke"))
    assert second == (Condition("a", None), Condition("b", "b broke")) and second is not first
    assert cs.of((None, "b" + " broke")) is second  # equal reasons, another string object
    with pytest.raises(ValueError):
        cs.of((None,))


def _guard_by_index(guard, demand_n, allow, dt_s):  # the previous OutputGuard.apply, the oracle
    n = len(guard.max_thrust_n)
    if not allow or demand_n is None:
        guard.last_n = [0.0] * n
        return guard.last_n
    if not all(map(math.isfinite, demand_n)):
        guard.nonfinite_ticks += 1
        guard.nonfinite_total += 1
        if guard.nonfinite_ticks >= guard.max_nonfinite_ticks and guard.fault_reason is None:
            guard.fault_reason = f"non-finite thrust demand for {guard.nonfinite_ticks} ticks"
        guard.last_n = [0.0] * n
        return guard.last_n
    guard.nonfinite_ticks = 0
    step = guard.rate_n_per_s * max(dt_s, 0.0)
    out = []
    for i, v in enumerate(demand_n):
        hi = guard.max_thrust_n[i]
        c = hi if v > hi else (0.0 if v < 0.0 else v)
        if c != v:
            guard.clamped_total += 1
        prev = guard.last_n[i]
        if c > prev + step:
            c = prev + step
            guard.rate_limited_total += 1
        out.append(c)
    guard.last_n = out
    return out


@settings(max_examples=60, deadline=None)
@given(ticks=st.lists(st.tuples(
    st.one_of(st.none(), st.lists(st.one_of(st.floats(-1.0, 2.0), st.sampled_from([math.nan, math.inf, -0.0])),
                                  min_size=2, max_size=4)),
    st.booleans(), st.sampled_from([0.01, 0.0, -0.01, 0.5])), min_size=1, max_size=30))
def test_output_guard_matches_the_index_loop(ticks):
    from controller.safety.output_guard import OutputGuard

    new, ref = OutputGuard([1.0, 0.5, 1.5], 20.0), OutputGuard([1.0, 0.5, 1.5], 20.0)
    for demand, allow, dt_s in ticks:
        got = want = None
        try:
            got = new.apply(demand, allow, dt_s)
        except IndexError:
            got = "IndexError"
        try:
            want = _guard_by_index(ref, demand, allow, dt_s)
        except IndexError:
            want = "IndexError"
        assert repr(got) == repr(want)
        assert new.snapshot() == ref.snapshot()


# ---------------------------------------------------------------------- the vehicle's own conditions
class _Port:
    """A CAN port's health flags, set by a script (what the monitor reads of a CanPort)."""

    def __init__(self) -> None:
        self.bus_off, self.entered_error_passive = False, False
        self.rx_fault: str | None = None
        self.consecutive_send_failures = 0
        self.flushes = 0

    def poll(self, now_s: float) -> int:
        return 0

    def flush_tx(self) -> bool:
        self.flushes += 1
        return True


def _own_as_a_list(v, view):  # the previous own-conditions code (a new list every tick), the oracle
    from controller.components.seam import Condition, condition

    own = []
    if view.state != "boot":
        own.append(condition("thrusters", v.control.thruster_failures(
            view.now_s, v.valves.valve_fault_mask, v.valves.thruster_valves, v._log)))
    active = v.faults.active
    for name, port, busoff, rx_clear, send_clear in v._port_conds:
        if port.bus_off:
            if busoff.key not in active:
                port.flush_tx()
            own.append(Condition(busoff.key, f"CAN bus {name} bus-off"))
        else:
            own.append(busoff)
        if port.entered_error_passive:
            v._log("bus_error_passive", bus=name, reason=f"CAN bus {name} is error-passive")
        rx = port.rx_fault
        own.append(rx_clear if rx is None else Condition(rx_clear.key, f"CAN bus {name}: {rx}"))
        n = port.consecutive_send_failures
        own.append(send_clear if n < 3 else Condition(send_clear.key, f"CAN bus {name}: {n} consecutive send failures"))
    if v.guard.fault_reason is not None and not v._guard_faulted:
        v._guard_faulted = True
        own.append(Condition("output_guard", v.guard.fault_reason))
    if v.overruns_last_second is not None:
        n = v.overruns_last_second(view.now_s)
        own.append(condition("lag", f"system lagging: {n} overruns in 1 s" if n > v.max_overruns_per_s else None))
    return own


@settings(max_examples=30, deadline=None)
@given(script=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(["bus_off", "passive", "rx", "send", "lag"]),
                                 st.booleans(), st.sampled_from([None, "fault", "reset"])), min_size=1, max_size=40))
def test_own_conditions_tuple_matches_the_list_applied_every_tick(script):
    # two CAN buses and the lag check, scripted; the vehicle's own conditions as the shared
    # all-clear tuple (skipped on an unchanged book) against the previous list, applied every tick
    runs = []
    for oracle in (False, True):
        ports = {"can0": _Port(), "can1": _Port()}
        lag = [0]
        v, records = _vehicle_rig([], ports, lambda now_s, lag=lag: lag[0])
        if oracle:
            v._own_conditions = lambda view, v=v: _own_as_a_list(v, view)
        trace = []
        for k, (bus, what, on, cmd) in enumerate(script):
            p = ports[("can0", "can1")[bus]]
            if what == "bus_off":
                p.bus_off = on
            elif what == "passive":
                p.entered_error_passive = on
            elif what == "rx":
                p.rx_fault = "OSError: gone" if on else None
            elif what == "send":
                p.consecutive_send_failures = 3 if on else 0
            else:
                lag[0] = 9 if on else 0
            if cmd is not None:
                v.command(cmd)
            v.tick(k, k * 0.01, 0.01)
            trace.append((v.state, dict(v.faults.active), list(v.faults.latched), [q.flushes for q in ports.values()]))
        runs.append((trace, records))
    assert runs[0] == runs[1]

