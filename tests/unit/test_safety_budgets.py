"""Safety budgets are bounded data (issue 10, part 6) and every list has a length bound
(part 7): each bound at its edge, accepted on one side and refused with one exact line on
the other (``controller/config/common.py`` module docstring lists them with their sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.config import load_mission, load_rig
from controller.errors import ConfigError
from controller.yamlio import validate
from firmware_bridge.protocols.modbus_profile import DeviceProfile


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated objects are written out in full: the loader refuses YAML aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


ROOT = Path(__file__).resolve().parents[2]


def rig_file(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())
    data["buses"]["can0"]["dbc"] = [str(ROOT / p) for p in data["buses"]["can0"]["dbc"]]
    edit(data)
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.dump(Dumper=_NoAliasDumper, data=data, sort_keys=False))
    return p


def refused(tmp_path: Path, edit) -> str:
    p = rig_file(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_rig(p)
    text = str(info.value)
    assert text.startswith(f"{p}: ") and "\n" not in text
    return text.removeprefix(f"{p}: ")


def accepted(tmp_path: Path, edit) -> None:
    load_rig(rig_file(tmp_path, edit))


def _set(path: str, value):
    def edit(data):
        *parents, last = path.split(".")
        node = data
        for k in parents:
            node = node[k]
        node[last] = value
    return edit


# --------------------------------------------------------------------------- rig budgets
@pytest.mark.parametrize("key, ok_values, bad_value, message", [
    ("controller.safety.stale_after_periods", [2, 3, 5], 6, "Input should be less than or equal to 5 (got 6)"),
    ("controller.safety.stale_after_periods", [], 1, "Input should be greater than or equal to 2 (got 1)"),
    ("controller.safety.stale_after_periods", [], 100, "Input should be less than or equal to 5 (got 100)"),
    ("controller.safety.max_overruns_per_s", [1, 10], 11, "Input should be less than or equal to 10 (got 11)"),
    ("controller.output_guard.max_nonfinite_ticks", [1, 10], 11, "Input should be less than or equal to 10 (got 11)"),
    ("emulation.command_timeout_s", [0.2], 0.21, "Input should be less than or equal to 0.2 (got 0.21)"),
    ("emulation.heartbeat_timeout_s", [0.2], 0.5, "Input should be less than or equal to 0.2 (got 0.5)"),
    ("devices.valves.command_timeout_s", [0.2, 0.02], 0.3, "Input should be less than or equal to 0.2 (got 0.3)"),
    ("devices.mcu.watchdog_timeout_s", [0.2, 0.1], 1.0, "Input should be less than or equal to 0.2 (got 1.0)"),
    ("devices.radar_sr.frame_period_s", [1.0], 1.5, "Input should be less than or equal to 1 (got 1.5)"),
    ("devices.valves.node_id", [1, 13], 14, "Input should be less than or equal to 13 (got 14)"),
])
def test_schema_budget_edges(tmp_path, key, ok_values, bad_value, message):
    for v in ok_values:
        accepted(tmp_path, _set(key, v))
    assert refused(tmp_path, _set(key, bad_value)) == f"{key}: {message}"


@pytest.mark.parametrize("rate_hz, period_s, gap_ms", [
    (100.0, 0.1, None),    # 100 ms = watchdog 0.2 s / 2
    (100.0, 0.101, 110),   # rounded up to 11 ticks of 10 ms
    (30.0, 0.1, None),     # three 33.3 ms ticks
    (40.0, 0.09, None),    # 3.6 -> four 25 ms ticks = 100 ms, exactly half
    (40.0, 0.11, 125),     # 4.4 -> five 25 ms ticks
])
def test_heartbeat_is_at_most_half_the_watchdog_in_whole_ticks(tmp_path, rate_hz, period_s, gap_ms):
    def edit(d):
        d["controller"]["rate_hz"] = rate_hz
        d["devices"]["mcu"]["heartbeat_period_s"] = period_s
    if gap_ms is None:
        accepted(tmp_path, edit)
        return
    assert refused(tmp_path, edit) == (
        f"devices.mcu.heartbeat_period_s: heartbeats {gap_ms} ms apart (at {rate_hz:g} Hz ticks) exceed half the "
        "MCU watchdog devices.mcu.watchdog_timeout_s = 0.2 s (heartbeat period <= watchdog / 2)")


def test_heartbeat_checked_against_the_emulated_watchdog_too(tmp_path):
    def edit(d):
        d["emulation"]["heartbeat_timeout_s"] = 0.08
    assert refused(tmp_path, edit) == (
        "devices.mcu.heartbeat_period_s: heartbeats 50 ms apart (at 100 Hz ticks) exceed half the MCU watchdog "
        "emulation.heartbeat_timeout_s = 0.08 s (heartbeat period <= watchdog / 2)")


def test_real_rig_uses_the_device_watchdog(tmp_path):
    def edit(d):
        del d["emulation"]
        d["devices"]["mcu"].update(heartbeat_period_s=0.06, watchdog_timeout_s=0.1)
    assert refused(tmp_path, edit) == (
        "devices.mcu.heartbeat_period_s: heartbeats 60 ms apart (at 100 Hz ticks) exceed half the MCU watchdog "
        "devices.mcu.watchdog_timeout_s = 0.1 s (heartbeat period <= watchdog / 2)")


def test_valve_command_period_is_at_most_half_the_command_timeout(tmp_path):
    # 10 Hz: one command every 100 ms = half of 0.2 s, accepted by the budget
    accepted(tmp_path, lambda d: (d["controller"].update(rate_hz=10.0),
                                  d["controller"]["safety"].update(max_overruns_per_s=5)))

    def edit(d):
        d["emulation"]["command_timeout_s"] = 0.15
        d["controller"]["rate_hz"] = 10.0
    assert refused(tmp_path, edit) == (
        "controller.rate_hz: one valve command per tick, 100 ms apart, exceeds half the valve board command "
        "timeout emulation.command_timeout_s = 0.15 s (command period <= timeout / 2)")


def test_overrun_limit_must_be_reachable(tmp_path):
    def edit(d):
        d["controller"]["rate_hz"] = 10.0
        d["controller"]["safety"]["max_overruns_per_s"] = 10
    assert refused(tmp_path, edit) == (
        "controller.safety.max_overruns_per_s: 10 overruns in 1 s cannot happen at 10 Hz: the lag monitor would "
        "never trip (SAFETY.md T02)")


# --------------------------------------------------------------------------- list bounds
def _thrusters(n):
    def edit(d):
        d["thrusters"] = [dict(d["thrusters"][i % 8], name=f"t{i}") for i in range(n)]
    return edit


@pytest.mark.parametrize("edit, message", [
    (_thrusters(17), "thrusters: List should have at most 16 items after validation, not 17"),
    (lambda d: d["buses"].update({f"x{i}": {"kind": "serial", "url": f"pipe://x{i}"} for i in range(13)}),
     "buses: Dictionary should have at most 16 items after validation, not more"),
    (lambda d: d["devices"].update({f"m{i}": {"driver": "qiki_mcu", "bus": "mcu"} for i in range(27)}),
     "devices: Dictionary should have at most 32 items after validation, not more"),
    (lambda d: d["emulation"].update(faults=[{"at_s": 1.0, "fault": "mcu_silent"}] * 1001),
     "emulation.faults: List should have at most 1000 items after validation, not 1001"),
    (lambda d: d["emulation"].update(power_faults=[{"device": "bms", "kind": "silent"}] * 1001),
     "emulation.power_faults: List should have at most 1000 items after validation, not 1001"),
    (lambda d: d["emulation"].update(obstacles=[{"x_m": 3.0, "y_m": 0.0}] * 257),
     "emulation.obstacles: List should have at most 256 items after validation, not 257"),
    (lambda d: d["controller"]["allocation"].update(axis_weights=[1.0] * 7),
     "controller.allocation.axis_weights: List should have at most 6 items after validation, not 7 "
     "(got [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])"),
    (lambda d: d["controller"]["allocation"].update(axis_priorities=[["Mz"]] * 7),
     "controller.allocation.axis_priorities: List should have at most 6 items after validation, not 7"),
    (lambda d: d["controller"]["allocation"].update(axis_priorities=[["Mz"] * 7]),
     "controller.allocation.axis_priorities[0]: List should have at most 6 items after validation, not 7"),
    (lambda d: d["buses"]["can0"].update(dbc=d["buses"]["can0"]["dbc"] * 5),
     "buses.can0.dbc: List should have at most 8 items after validation, not 10"),
])
def test_rig_lists_are_bounded(tmp_path, edit, message):
    assert refused(tmp_path, edit) == message


def test_the_bounds_leave_room_for_the_limits(tmp_path):
    accepted(tmp_path, lambda d: d["emulation"].update(faults=[{"at_s": 100.0, "fault": "mcu_silent"}] * 1000,
                                                        obstacles=[{"x_m": 30.0, "y_m": 0.0}] * 256))


def test_mission_waypoints_are_bounded(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(yaml.dump(Dumper=_NoAliasDumper, data={"name": "long", "waypoints": [{"x_m": 0.0, "y_m": 0.0}] * 10_001}))
    with pytest.raises(ConfigError) as info:
        load_mission(p)
    # the loader's generic cap (10,000 entries per list) meets the schema's bound first
    assert str(info.value) == f"{p}: waypoints: list longer than 10000 items (line 20005)"


# --------------------------------------------------------------------------- profiles
HEAD = {"name": "t", "poll_period_s": 0.5, "poll_deadline_s": 0.25}


def profile(**kw) -> dict:
    return {**HEAD, **kw}


def profile_error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate(DeviceProfile, data, "p.yaml")
    return str(info.value)


@pytest.mark.parametrize("polls, ok", [(1, False), (2, True), (3, True), (5, True), (6, False), (1000, False)])
def test_profile_stale_after_polls_is_2_to_5(polls, ok):
    data = profile(stale_after_polls=polls, quantities=[{"name": "a", "table": "input", "address": 0}])
    if ok:
        assert DeviceProfile.model_validate(data).stale_after_polls == polls
    else:
        bound = "greater than or equal to 2" if polls < 2 else "less than or equal to 5"
        assert profile_error(data) == f"p.yaml: stale_after_polls: Input should be {bound} (got {polls})"


def test_profile_poll_period_is_at_most_1_s():
    q = [{"name": "a", "table": "input", "address": 0}]
    DeviceProfile.model_validate(profile(poll_period_s=1.0, quantities=q))
    assert profile_error(profile(poll_period_s=1.5, quantities=q)) == (
        "p.yaml: poll_period_s: Input should be less than or equal to 1 (got 1.5)")


@pytest.mark.parametrize("q, addressing, last", [
    ({"table": "input", "address": 65535}, "register", None),
    ({"table": "coil", "address": 65535}, "register", None),
    ({"table": "input", "address": 65534, "data_type": "u32"}, "register", None),
    ({"table": "input", "address": 65535, "data_type": "u32"}, "register", "0xffff to 0x10000"),
    ({"table": "holding", "address": 65535, "data_type": "f32"}, "register", "0xffff to 0x10000"),
    ({"table": "input", "address": 65535, "data_type": "bitfield", "width_bits": 32}, "register", "0xffff to 0x10000"),
    ({"table": "input", "address": 65534}, "byte", None),
    ({"table": "input", "address": 65532, "data_type": "u32"}, "byte", None),
    ({"table": "input", "address": 65534, "data_type": "i32"}, "byte", "0xfffe to 0x10000"),
])
def test_profile_quantities_end_within_the_address_space(q, addressing, last):
    data = profile(addressing=addressing, quantities=[{"name": "a", **q}])
    if last is None:
        DeviceProfile.model_validate(data)
    else:
        assert profile_error(data) == (
            f"p.yaml: quantities[0].address: 'a' spans 2 register(s) from {last}, past the last address 0xffff")


def test_profile_lists_are_bounded():
    many = [{"name": f"q{i}", "table": "input", "address": i} for i in range(1001)]
    assert profile_error(profile(quantities=many)) == (
        "p.yaml: quantities: List should have at most 1000 items after validation, not 1001")
    DeviceProfile.model_validate(profile(quantities=many[:1000]))
    bits = {f"b{i}": i % 32 for i in range(33)}
    assert profile_error(profile(quantities=[{"name": "f", "table": "input", "address": 0, "data_type": "bitfield",
                                              "width_bits": 32, "bits": bits}])) == (
        "p.yaml: quantities[0].bits: Dictionary should have at most 32 items after validation, not more")


def test_shipped_profiles_are_within_the_bounds():
    from controller.config import load_profile

    for p in sorted((ROOT / "rigs" / "profiles").glob("*.yaml")):
        prof = load_profile(p)
        assert 2 <= prof.stale_after_polls <= 5 and prof.poll_period_s <= 1.0
        assert prof.stale_after_polls * prof.poll_period_s <= 5.0


def test_shipped_dbc_watched_cycle_times_are_within_the_bounds():
    """The messages the drivers watch: > 0, <= 1 s (MAX_WATCHED_PERIOD_S)."""
    from controller.config import MAX_WATCHED_PERIOD_S
    from hal.can.codec import DbcCodec

    codec = DbcCodec([ROOT / "dbc" / "qiki.dbc", ROOT / "dbc" / "ars408.dbc"])
    for name in ("VB_Status", "VB_Heartbeat", "ARS408_ObjStatus", "ARS408_RadarState"):
        period = codec.cycle_time_s(name)
        assert period is not None and 0 < period <= MAX_WATCHED_PERIOD_S, name
