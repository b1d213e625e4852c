"""`qiki rig check` is the check `qiki run` makes (issue 10, part 5).

Every broken rig below is derived from ``rigs/virtual.yaml`` by one mutation, written to
``tmp_path`` with its data files (DBCs, profiles) next to it, and must be refused by
BOTH ``qiki rig check`` and ``qiki run`` with exit status 2 and the SAME single line,
which is asserted exactly (file, key/message/signal, reason). The three "no exception
barrier" crash inputs of the issue (GenMsgCycleTime 0, signal scale 0, a profile quantity
at register 65535) are among them: before, they passed ``rig check`` and crashed mid-run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.config import load_rig
from controller.errors import ConfigError


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated objects are written out in full: the loader refuses YAML aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


ROOT = Path(__file__).resolve().parents[2]
QIKI_DBC = ROOT / "dbc" / "qiki.dbc"
ARS_DBC = ROOT / "dbc" / "ars408.dbc"
PDU = ROOT / "rigs" / "profiles" / "qiki_pdu.yaml"
BMS = ROOT / "rigs" / "profiles" / "jk_bms.yaml"


class Rig:
    """A mutable copy of ``rigs/virtual.yaml`` with absolute data paths, in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = tmp / "rig.yaml"
        d = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())
        d["buses"]["can0"]["dbc"] = [str(QIKI_DBC), str(ARS_DBC)]
        d["devices"]["bms"]["profile"] = str(BMS)
        d["devices"]["pdu"]["profile"] = str(PDU)
        d["controller"]["fsm"] = str(ROOT / "fsm_configs" / "qiki_vehicle.yaml")
        self.data = d

    def file(self, name: str, text: str) -> Path:
        p = self.tmp / name
        p.write_text(text)
        return p

    def qiki_dbc(self, edit: Callable[[str], str]) -> Path:
        """Write an edited qiki.dbc and put it on can0 in place of the original."""
        text = QIKI_DBC.read_text()
        new = edit(text)
        assert new != text, "the edit did not apply"
        p = self.file("qiki_edit.dbc", new)
        self.data["buses"]["can0"]["dbc"] = [str(p), str(ARS_DBC)]
        return p

    def ars_dbc(self, edit: Callable[[str], str]) -> Path:
        text = ARS_DBC.read_text()
        new = edit(text)
        assert new != text, "the edit did not apply"
        p = self.file("ars_edit.dbc", new)
        self.data["buses"]["can0"]["dbc"] = [str(QIKI_DBC), str(p)]
        return p

    def pdu_profile(self, edit: Callable[[str], str]) -> Path:
        text = PDU.read_text()
        new = edit(text)
        assert new != text, "the edit did not apply"
        p = self.file("pdu_edit.yaml", new)
        self.data["devices"]["pdu"]["profile"] = str(p)
        return p

    def bms_profile(self, edit: Callable[[str], str]) -> Path:
        text = BMS.read_text()
        new = edit(text)
        assert new != text, "the edit did not apply"
        p = self.file("bms_edit.yaml", new)
        self.data["devices"]["bms"]["profile"] = str(p)
        return p

    def write(self) -> Path:
        self.path.write_text(yaml.dump(Dumper=_NoAliasDumper, data=self.data, sort_keys=False))
        return self.path


def _drop_heartbeat(text: str) -> str:
    """qiki.dbc without VB_Heartbeat: its BO_ block and every line naming ID 1793."""
    text = re.sub(r"BO_ 1793 VB_Heartbeat:.*?\n\n", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if " 1793 " not in line) + "\n"


# Each case: (mutation of a Rig returning the expected refusal line given the rig path).
Mutation = Callable[[Rig], Callable[[Path], str]]


def _hb_cycle_0(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('BO_ 1793 100;', 'BO_ 1793 0;'))
    return lambda rig: (f"{dbc}: VB_Heartbeat: GenMsgCycleTime is 0 or missing: the valve board driver watches "
                        "this message's freshness and needs its period (SAFETY.md B01)")


def _hb_cycle_10s(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('BO_ 1793 100;', 'BO_ 1793 10000;'))
    return lambda rig: (f"{dbc}: VB_Heartbeat: GenMsgCycleTime 10000 ms is above 1000 ms: "
                        "the valve board driver would detect its loss too late")


def _status_cycle_below_tick(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('BO_ 385 20;', 'BO_ 385 5;'))
    return lambda rig: (f"{dbc}: VB_Status: GenMsgCycleTime 5 ms is shorter than the 10 ms control tick: "
                        "the valve board driver cannot judge its rhythm")


def _status_cycle_missing(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('BA_ "GenMsgCycleTime" BO_ 385 20;\n', ''))
    return lambda rig: (f"{dbc}: VB_Status: GenMsgCycleTime is 0 or missing: the valve board driver watches "
                        "this message's freshness and needs its period (SAFETY.md B01)")


def _duty_scale_0(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('VB_Cmd_Duty1 : 0|6@1+ (2,0)', 'VB_Cmd_Duty1 : 0|6@1+ (0,0)'))
    return lambda rig: (f"{dbc}: VB_Command.VB_Cmd_Duty1: signal scale is 0: "
                        "no physical value can be encoded or decoded")


def _radar_scale_0(r: Rig):
    dbc = r.ars_dbc(lambda t: t.replace("SG_ dist_long_m : 15|13@0+ (0.2,-500)", "SG_ dist_long_m : 15|13@0+ (0,-500)"))
    return lambda rig: (f"{dbc}: ARS408_ObjGeneral.dist_long_m: signal scale is 0: "
                        "no physical value can be encoded or decoded")


def _duty_range_half(r: Rig):
    dbc = r.qiki_dbc(lambda t: t.replace('VB_Cmd_Duty1 : 0|6@1+ (2,0) [0|100]', 'VB_Cmd_Duty1 : 0|6@1+ (2,0) [0|50]'))
    return lambda rig: (f"{dbc}, {ARS_DBC}: VB_Command cannot carry 100 % duty: VB_Command: "
                        'Expected signal "VB_Cmd_Duty1" value smaller than or equal to 50 in message "VB_Command", '
                        'but got 100.0.')


def _no_heartbeat(r: Rig):
    dbc = r.qiki_dbc(_drop_heartbeat)
    return lambda rig: f"{dbc}, {ARS_DBC}: required message 'VB_Heartbeat' is missing"


def _ars_objstatus_5s(r: Rig):
    dbc = r.ars_dbc(lambda t: t.replace('BA_ "GenMsgCycleTime" BO_ 1546 72;', 'BA_ "GenMsgCycleTime" BO_ 1546 5000;'))
    return lambda rig: (f"{dbc}: ARS408_ObjStatus: GenMsgCycleTime 5000 ms is above 1000 ms: "
                        "the ARS408 driver would detect its loss too late")


def _dbc_missing(r: Rig):
    r.data["buses"]["can0"]["dbc"] = [str(r.tmp / "nope.dbc")]
    return lambda rig: f"{rig}: buses.can0.dbc: DBC file '{r.tmp / 'nope.dbc'}' not found"


def _mcu_on_can0(r: Rig):
    r.data["devices"]["mcu"]["bus"] = "can0"
    return lambda rig: f"{rig}: devices.mcu.bus: the MCU needs a serial bus"


def _valves_on_serial(r: Rig):
    r.data["devices"]["valves"]["bus"] = "mcu"
    return lambda rig: f"{rig}: devices.valves.bus: the valve board needs a CAN bus"


def _lr_on_serial(r: Rig):
    r.data["devices"]["radar_lr"]["bus"] = "sr"
    return lambda rig: f"{rig}: devices.radar_lr.bus: the ars408 needs a CAN bus"


def _sr_on_can(r: Rig):
    r.data["devices"]["radar_sr"]["bus"] = "can0"
    return lambda rig: f"{rig}: devices.radar_sr.bus: the iwr6843 needs a serial bus"


def _bms_on_can(r: Rig):
    r.data["devices"]["bms"]["bus"] = "can0"
    return lambda rig: f"{rig}: devices.bms.bus: bus 'can0' is not a modbus bus"


def _two_on_one_serial(r: Rig):
    r.data["devices"]["radar_sr"]["bus"] = "mcu"
    return lambda rig: f"{rig}: devices.radar_sr.bus: serial bus 'mcu' already carries device 'mcu' (one device per serial link)"


def _two_valve_boards(r: Rig):
    r.data["devices"]["valves2"] = dict(r.data["devices"]["valves"], node_id=2)
    return lambda rig: f"{rig}: devices: a rig needs exactly one valve_board device (got valves, valves2)"


def _node_id_14(r: Rig):
    r.data["devices"]["valves"]["node_id"] = 14
    return lambda rig: f"{rig}: devices.valves.node_id: Input should be less than or equal to 13 (got 14)"


def _stale_periods_100(r: Rig):
    r.data["controller"]["safety"]["stale_after_periods"] = 100
    return lambda rig: f"{rig}: controller.safety.stale_after_periods: Input should be less than or equal to 5 (got 100)"


def _heartbeat_1s(r: Rig):
    r.data["devices"]["mcu"]["heartbeat_period_s"] = 1.0
    return lambda rig: (f"{rig}: devices.mcu.heartbeat_period_s: heartbeats 1000 ms apart (at 100 Hz ticks) exceed "
                        "half the MCU watchdog devices.mcu.watchdog_timeout_s = 0.2 s (heartbeat period <= watchdog / 2)")


def _emulated_watchdog_short(r: Rig):
    r.data["emulation"]["heartbeat_timeout_s"] = 0.05
    return lambda rig: (f"{rig}: devices.mcu.heartbeat_period_s: heartbeats 50 ms apart (at 100 Hz ticks) exceed "
                        "half the MCU watchdog emulation.heartbeat_timeout_s = 0.05 s (heartbeat period <= watchdog / 2)")


def _command_timeout_5s(r: Rig):
    r.data["emulation"]["command_timeout_s"] = 5.0
    return lambda rig: f"{rig}: emulation.command_timeout_s: Input should be less than or equal to 0.2 (got 5.0)"


def _command_timeout_vs_tick(r: Rig):
    r.data["devices"]["valves"]["command_timeout_s"] = 0.015
    return lambda rig: (f"{rig}: controller.rate_hz: one valve command per tick, 10 ms apart, exceeds half the valve "
                        "board command timeout devices.valves.command_timeout_s = 0.015 s (command period <= timeout / 2)")


def _sr_frame_period_10s(r: Rig):
    r.data["devices"]["radar_sr"]["frame_period_s"] = 10.0
    return lambda rig: f"{rig}: devices.radar_sr.frame_period_s: Input should be less than or equal to 1 (got 10.0)"


def _faults_1001(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "mcu", "fault": "estop_press"}
                                     for _ in range(1001)]  # distinct: no YAML aliases
    return lambda rig: f"{rig}: emulation.faults: List should have at most 1000 items after validation, not 1001"


def _obstacles_257(r: Rig):
    r.data["emulation"]["obstacles"] = [{"x_m": 5.0, "y_m": 5.0} for _ in range(257)]
    return lambda rig: f"{rig}: emulation.obstacles: List should have at most 256 items after validation, not 257"


def _dbc_list_9(r: Rig):
    r.data["buses"]["can0"]["dbc"] = [str(QIKI_DBC)] * 9
    return lambda rig: f"{rig}: buses.can0.dbc: List should have at most 8 items after validation, not 9"


def _modbus_url_on_emulated(r: Rig):
    r.data["buses"]["power"]["url"] = "rtu:///dev/ttyUSB0"
    return lambda rig: f"{rig}: buses.power.url: on an emulated rig a modbus url is memory://NAME or rtu://emulated"


def _fault_target_unknown(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "valve", "fault": "silent"}]
    return lambda rig: (f"{rig}: emulation.faults[0].target: 'valve' is not a device with an emulator in this rig "
                        "(known: bms, can0, host, mcu, pdu, radar_lr, radar_sr, valves)")


def _fault_unknown_for_target(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "mcu", "fault": "silent"},
                                     {"at_s": 2.0, "target": "valves", "fault": "mcu_silent"}]
    return lambda rig: (f"{rig}: emulation.faults[1].fault: 'valves' has no fault 'mcu_silent' "
                        "(known: reboot, silent, valve_stuck_closed)")


def _fault_param_not_taken(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "mcu", "fault": "silent", "valve": 2}]
    return lambda rig: f"{rig}: emulation.faults[0].valve: 'silent' takes no parameter 'valve' (takes: none)"


def _fault_param_out_of_range(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "valves", "fault": "valve_stuck_closed", "valve": 8}]
    return lambda rig: f"{rig}: emulation.faults[0].valve: must be in [0, 7], got 8"


def _fault_param_string(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "mcu", "fault": "serial_garbage", "length": "64"}]
    return lambda rig: f"{rig}: emulation.faults[0].length: must be an integer, got '64'"


def _fault_window_on_instant(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "until_s": 2.0, "target": "mcu", "fault": "estop_press"}]
    return lambda rig: f"{rig}: emulation.faults[0].until_s: 'estop_press' is an instant event: it takes no until_s"


def _fault_power_kind(r: Rig):
    r.data["emulation"]["faults"] = [{"at_s": 1.0, "target": "bms", "fault": "alarm", "alarm_bits": -1}]
    return lambda rig: f"{rig}: emulation.faults[0].alarm_bits: must be in [0, 4294967295], got -1"


def _can_interface_not_virtual(r: Rig):
    r.data["buses"]["can0"]["interface"] = "socketcan"
    return lambda rig: f"{rig}: buses.can0.interface: an emulated rig needs the 'virtual' CAN interface"


# --------------------------------------------------------------------------- profiles
def _pdu_register_65535(r: Rig):
    prof = r.pdu_profile(lambda t: t.replace("address: 9, data_type: u32", "address: 65535, data_type: u32"))
    return lambda rig: (f"{prof}: quantities[12].address: 'relay_operations' spans 2 register(s) from 0xffff to "
                        "0x10000, past the last address 0xffff")


def _bms_register_byte_edge(r: Rig):
    # byte addressing: a u32 at 0xFFFE spans 0xFFFE and 0x10000
    prof = r.bms_profile(lambda t: t.replace("address: 0x1290, data_type: u32", "address: 0xFFFE, data_type: u32"))
    return lambda rig: (f"{prof}: quantities[22].address: 'pack_voltage_v' spans 2 register(s) from 0xfffe to "
                        "0x10000, past the last address 0xffff")


def _pdu_stale_polls_1000(r: Rig):
    prof = r.pdu_profile(lambda t: t.replace("stale_after_polls: 3", "stale_after_polls: 1000"))
    return lambda rig: f"{prof}: stale_after_polls: Input should be less than or equal to 5 (got 1000)"


def _pdu_stale_polls_1(r: Rig):
    prof = r.pdu_profile(lambda t: t.replace("stale_after_polls: 3", "stale_after_polls: 1"))
    return lambda rig: f"{prof}: stale_after_polls: Input should be greater than or equal to 2 (got 1)"


def _bms_poll_period_10s(r: Rig):
    prof = r.bms_profile(lambda t: t.replace("poll_period_s: 0.5", "poll_period_s: 10.0"))
    return lambda rig: f"{prof}: poll_period_s: Input should be less than or equal to 1 (got 10.0)"


def _pdu_unknown_key(r: Rig):
    prof = r.pdu_profile(lambda t: t.replace("addressing: register", "addressing: register\ncolour: red"))
    return lambda rig: f"{prof}: colour: unknown key"


def _pdu_scale_0(r: Rig):
    prof = r.pdu_profile(lambda t: t.replace("data_type: u16, scale: 0.01, unit: V, description: \"battery",
                                             "data_type: u16, scale: 0.0, unit: V, description: \"battery"))
    return lambda rig: f"{prof}: quantities[3]: scale must be finite and non-zero"


def _pdu_lacks_rail(r: Rig):
    r.pdu_profile(lambda t: t.replace("  - {name: valve_rail_enabled, table: coil, address: 0, writable: true, "
                                      "description: \"relay K1: valve board supply\"}\n", ""))
    return lambda rig: f"{rig}: devices.pdu.profile: profile 'qiki_pdu' lacks valve_rail_enabled (the driver needs them)"


def _bms_lacks_cells(r: Rig):
    r.data["devices"]["pdu"]["profile"] = str(BMS)
    r.data["devices"]["bms"]["profile"] = str(PDU)
    return lambda rig: (f"{rig}: devices.bms.profile: profile 'qiki_pdu' lacks cell_count, soc_pct, pack_voltage_v, "
                        "pack_current_a, alarms, cell_00_voltage_v, cell_01_voltage_v, cell_02_voltage_v, "
                        "cell_03_voltage_v, cell_04_voltage_v, cell_05_voltage_v, cell_06_voltage_v, "
                        "cell_07_voltage_v (the driver needs them)")


def _pdu_profile_missing(r: Rig):
    r.data["devices"]["pdu"]["profile"] = str(r.tmp / "absent.yaml")
    return lambda rig: f"{r.tmp / 'absent.yaml'}: file not found"


def _pdu_quantities_1001(r: Rig):
    lines = ["name: big", "poll_period_s: 0.1", "poll_deadline_s: 0.05", "quantities:"]
    lines += [f"  - {{name: q{i}, table: input, address: {i}}}" for i in range(1001)]
    prof = r.file("big.yaml", "\n".join(lines) + "\n")
    r.data["devices"]["pdu"]["profile"] = str(prof)
    return lambda rig: f"{prof}: quantities: List should have at most 1000 items after validation, not 1001"


CASES: dict[str, Mutation] = {
    # DBC: the crash inputs of issue 10 and their neighbours
    "dbc_heartbeat_cycle_0": _hb_cycle_0,
    "dbc_heartbeat_cycle_10s": _hb_cycle_10s,
    "dbc_status_cycle_missing": _status_cycle_missing,
    "dbc_status_cycle_below_tick": _status_cycle_below_tick,
    "dbc_duty_scale_0": _duty_scale_0,
    "dbc_radar_scale_0": _radar_scale_0,
    "dbc_duty_range_half": _duty_range_half,
    "dbc_missing_heartbeat": _no_heartbeat,
    "dbc_ars408_objstatus_5s": _ars_objstatus_5s,
    "dbc_file_missing": _dbc_missing,
    "dbc_list_too_long": _dbc_list_9,
    # bus/driver compatibility and ids
    "mcu_on_can0": _mcu_on_can0,
    "valve_board_on_serial": _valves_on_serial,
    "ars408_on_serial": _lr_on_serial,
    "iwr6843_on_can": _sr_on_can,
    "bms_on_can": _bms_on_can,
    "two_devices_one_serial_bus": _two_on_one_serial,
    "two_valve_boards": _two_valve_boards,
    "valve_board_node_id_14": _node_id_14,
    "can_interface_on_emulated_rig": _can_interface_not_virtual,
    "modbus_url_on_emulated_rig": _modbus_url_on_emulated,
    # fault plan (docs/fault-plans.md)
    "fault_target_unknown": _fault_target_unknown,
    "fault_unknown_for_target": _fault_unknown_for_target,
    "fault_param_not_taken": _fault_param_not_taken,
    "fault_param_out_of_range": _fault_param_out_of_range,
    "fault_param_string": _fault_param_string,
    "fault_window_on_instant": _fault_window_on_instant,
    "fault_power_param": _fault_power_kind,
    # budgets
    "stale_after_periods_100": _stale_periods_100,
    "heartbeat_1s_vs_watchdog": _heartbeat_1s,
    "emulated_watchdog_vs_heartbeat": _emulated_watchdog_short,
    "command_timeout_5s": _command_timeout_5s,
    "command_timeout_vs_tick": _command_timeout_vs_tick,
    "iwr6843_frame_period_10s": _sr_frame_period_10s,
    "faults_1001": _faults_1001,
    "obstacles_257": _obstacles_257,
    # device profiles
    "profile_register_65535_count_2": _pdu_register_65535,
    "profile_byte_addressing_edge": _bms_register_byte_edge,
    "profile_stale_after_polls_1000": _pdu_stale_polls_1000,
    "profile_stale_after_polls_1": _pdu_stale_polls_1,
    "profile_poll_period_10s": _bms_poll_period_10s,
    "profile_unknown_key": _pdu_unknown_key,
    "profile_scale_0": _pdu_scale_0,
    "profile_lacks_relay": _pdu_lacks_rail,
    "profile_lacks_cells": _bms_lacks_cells,
    "profile_missing": _pdu_profile_missing,
    "profile_quantities_1001": _pdu_quantities_1001,
}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_rig_is_refused_by_rig_check_and_run_alike(capsys, tmp_path, case):
    r = Rig(tmp_path)
    expected = CASES[case](r)
    rig = r.write()
    want = expected(rig)

    status, out, err = _cli(capsys, "rig", "check", str(rig))
    assert (status, out, err) == (2, "", want + "\n")

    status, out, err = _cli(capsys, "run", "--rig", str(rig), "--no-progress", "--runs-dir", str(tmp_path / "runs"))
    assert status == 2
    assert err == want + "\n"
    assert "Traceback" not in out + err


def test_the_unmutated_copy_passes(capsys, tmp_path):
    """The table's base rig is good: every refusal above comes from its one mutation."""
    rig = Rig(tmp_path).write()
    status, out, err = _cli(capsys, "rig", "check", str(rig))
    assert (status, err) == (0, "")
    assert out == f"{rig}: ok (8 thrusters, 4 buses, 6 devices)\n"


RIGS = sorted((ROOT / "rigs").glob("*.yaml"))


@pytest.mark.parametrize("path", RIGS, ids=[p.name for p in RIGS])
def test_every_shipped_rig_passes_check_rig(path):
    from controller.rig import check_rig

    cfg, resolved = load_rig(path)
    checked = check_rig(cfg, resolved)
    assert checked.describe() == f"{len(cfg.thrusters)} thrusters, {len(cfg.buses)} buses, {len(cfg.devices)} devices"
    assert set(checked.profiles) == {n for n, d in cfg.devices.items() if d.driver in ("bms", "pdu")}


def test_shipped_rigs_exist():
    assert [p.name for p in RIGS] == ["bench_two_process.yaml", "field_laptop.yaml", "qiki1_pi.yaml", "virtual.yaml",
                                      "virtual_rtu.yaml", "virtual_tank.yaml"]


def test_rig_check_opens_no_port(tmp_path, monkeypatch):
    """check_rig builds no bus, link or server: a real rig on absent hardware passes."""
    import can

    import hal.serial.link as serial_link

    def refuse(*a, **k):
        raise AssertionError("check_rig opened a port")

    monkeypatch.setattr(can, "Bus", refuse)
    monkeypatch.setattr(serial_link, "PySerialLink", refuse)
    r = Rig(tmp_path)
    del r.data["emulation"]
    r.data["buses"]["can0"].update(interface="socketcan", channel="can7")
    r.data["buses"]["mcu"]["url"] = "/dev/ttyQIKI-absent0"
    r.data["buses"]["sr"]["url"] = "/dev/ttyQIKI-absent1"
    r.data["buses"]["power"]["url"] = "tcp://192.0.2.1:502"
    cfg, path = load_rig(r.write())
    from controller.rig import check_rig

    assert check_rig(cfg, path).describe() == "8 thrusters, 4 buses, 6 devices"


@pytest.mark.parametrize("url, why", [
    ("memory://power", "'memory://power' exists only on emulated rigs"),
    ("tcp://192.0.2.1", "'tcp://192.0.2.1': expected tcp://HOST:PORT"),
    ("tcp://192.0.2.1:port", "'tcp://192.0.2.1:port': expected tcp://HOST:PORT"),
    ("rtu:///dev/ttyUSB0?baudrate=fast", "'rtu:///dev/ttyUSB0?baudrate=fast': baudrate 'fast' is not a positive integer"),
    ("http://192.0.2.1:502", "'http://192.0.2.1:502': scheme must be tcp or rtu"),
])
def test_real_rig_bus_urls_are_checked_without_opening(tmp_path, url, why):
    from controller.rig import check_rig

    r = Rig(tmp_path)
    del r.data["emulation"]
    r.data["buses"]["can0"].update(interface="socketcan", channel="can7")
    r.data["buses"]["mcu"]["url"] = "/dev/ttyQIKI-absent0"
    r.data["buses"]["sr"]["url"] = "/dev/ttyQIKI-absent1"
    r.data["buses"]["power"]["url"] = url
    cfg, path = load_rig(r.write())
    with pytest.raises(ConfigError) as info:
        check_rig(cfg, path)
    assert str(info.value) == f"{path}: buses.power.url: {why}"


def test_real_rig_refuses_pipe_and_unknown_can_interface(tmp_path):
    from controller.rig import check_rig

    r = Rig(tmp_path)
    del r.data["emulation"]
    r.data["buses"]["can0"].update(interface="socketcan", channel="can7")
    r.data["buses"]["power"]["url"] = "tcp://192.0.2.1:502"
    r.data["buses"]["sr"]["url"] = "/dev/ttyQIKI-absent1"
    cfg, path = load_rig(r.write())
    with pytest.raises(ConfigError) as info:
        check_rig(cfg, path)
    assert str(info.value) == f"{path}: buses.mcu.url: pipe:// links exist only on emulated rigs"

    r.data["buses"]["mcu"]["url"] = "/dev/ttyQIKI-absent0"
    r.data["buses"]["can0"]["interface"] = "socketcna"
    cfg, path = load_rig(r.write())
    with pytest.raises(ConfigError) as info:
        check_rig(cfg, path)
    assert str(info.value).startswith(f"{path}: buses.can0.interface: 'socketcna' is not a python-can interface (known: ")


def test_build_rig_runs_check_rig_once_and_builds_from_it(tmp_path, monkeypatch):
    import controller.rig as rig_mod
    import controller.rig.build as build_mod

    calls = []
    real = build_mod.check_rig

    def spy(cfg, path, *, options=None):
        checked = real(cfg, path, options=options)
        calls.append(checked)
        return checked

    monkeypatch.setattr(build_mod, "check_rig", spy)
    cfg, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    built = rig_mod.build_rig(cfg, path, mission=None, record=lambda *a, **k: None)
    try:
        assert len(calls) == 1
        checked = calls[0]
        assert built.vehicle.valves.driver is checked.valve_board_driver
        assert built.vehicle.control.allocator is checked.allocator
    finally:
        built.close()


@pytest.mark.parametrize("node_id", [1, 2, 13])
def test_valve_board_node_offsets_once(tmp_path, node_id):
    """Node n adds n - 1 to every ID of dbc/qiki.dbc (its CM_ BU_ VB1 comment), once."""
    from controller.rig import check_rig

    r = Rig(tmp_path)
    r.data["devices"]["valves"]["node_id"] = node_id
    cfg, path = load_rig(r.write())
    drv = check_rig(cfg, path).valve_board_driver
    k = node_id - 1
    assert drv.command_id == 0x101 + k
    assert drv.arbitration_ids == (0x181 + k, 0x701 + k)


def test_schema_and_driver_agree_on_node_ids():
    from controller.config import ValveBoardDeviceCfg
    from hal.can.codec import DbcCodec
    from hal.devices.valve_board import NODE_ID_MAX, ValveBoardDriver
    from hal.errors import BusConfigError

    assert NODE_ID_MAX == 13  # the schema takes its bound from the driver (below)
    field = ValveBoardDeviceCfg.model_fields["node_id"]
    assert [m.le for m in field.metadata if hasattr(m, "le")] == [NODE_ID_MAX]
    codec = DbcCodec([QIKI_DBC])
    ValveBoardDriver(codec, node_id=NODE_ID_MAX)
    with pytest.raises(BusConfigError):
        ValveBoardDriver(codec, node_id=NODE_ID_MAX + 1)


def test_watched_periods_come_from_the_dbc():
    from hal.can.codec import DbcCodec
    from hal.devices.valve_board import ValveBoardDriver

    drv = ValveBoardDriver(DbcCodec([QIKI_DBC]))
    assert drv.watched_periods_s == {"VB_Status": 0.02, "VB_Heartbeat": 0.1}


def test_radar_ids_shared_with_the_valve_board_are_refused(tmp_path):
    """VB_Heartbeat moved to 0x6FF, board node 2: the heartbeat arrives on 0x700, the
    ARS408 VersionId of sensor 0. Two drivers would claim one ID (CanPort.register raises
    mid-build); check_rig names the clash."""
    r = Rig(tmp_path)
    r.qiki_dbc(lambda t: t.replace("1793", "1791"))
    r.data["devices"]["valves"]["node_id"] = 2
    rig = r.write()
    cfg, path = load_rig(rig)
    from controller.rig import check_rig

    with pytest.raises(ConfigError) as info:
        check_rig(cfg, path)
    assert str(info.value) == f"{path}: buses.can0: arbitration ID 0x700 is used by both valves and the ars408 radar"


def test_replay_options_are_checked_too(tmp_path):
    from controller.rig import check_rig

    cfg, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    missing = tmp_path / "absent.log"
    with pytest.raises(ConfigError) as info:
        check_rig(cfg, path, options={"lr_replay": str(missing)})
    assert str(info.value) == f"{missing}: --lr-replay: replay file not found"

