"""Contract of the ModbusLink port, one suite over every backend.

memory (lockstep, in-process), tcp (pymodbus server on 127.0.0.1, ephemeral port) and rtu
(pymodbus server on a pty pair). Each fault is produced by the same emulated device's
fault plan; on the wire backends it really goes over the wire (wrong unit id byte, broken
CRC / truncated ADU, no reply). SAFETY.md D10/D11.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clock import SimClock
from controller.yamlio import load_model
from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
from firmware_bridge.emulation.power import JkBmsEmulator, PowerWorld, QikiPduEmulator
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.modbus.link import MemoryModbusLink, ModbusFailure, ModbusLink, PymodbusRtuLink, PymodbusTcpLink

ROOT = Path(__file__).resolve().parents[2]
BMS_UNIT, PDU_UNIT = 1, 2
TIMEOUT_S = 0.15


class Rig:
    def __init__(self, link: ModbusLink, bms: JkBmsEmulator, pdu: QikiPduEmulator, world: PowerWorld) -> None:
        self.link, self.bms, self.pdu, self.world = link, bms, pdu, world


@pytest.fixture(params=["memory", pytest.param("tcp", marks=pytest.mark.realtime),
                        pytest.param("rtu", marks=pytest.mark.realtime)])
def rig(request):
    jk = load_model(DeviceProfile, ROOT / "rigs/profiles/jk_bms.yaml")
    pp = load_model(DeviceProfile, ROOT / "rigs/profiles/qiki_pdu.yaml")
    clock = SimClock()
    world = PowerWorld()
    bms = JkBmsEmulator(jk, world, clock, BMS_UNIT)
    pdu = QikiPduEmulator(pp, world, clock, PDU_UNIT)
    devices = {BMS_UNIT: bms, PDU_UNIT: pdu}
    server = None
    if request.param == "memory":
        link: ModbusLink = MemoryModbusLink(devices, TIMEOUT_S)
    else:
        server = ModbusEmulatorServer(devices, request.param).start()
        if request.param == "tcp":
            link = PymodbusTcpLink(server.host, server.port, TIMEOUT_S)
        else:
            link = PymodbusRtuLink(server.client_path, 115200, TIMEOUT_S)
    try:
        yield Rig(link, bms, pdu, world)
    finally:
        link.close()
        if server is not None:
            server.stop()
            assert not server.alive, "server thread still running after stop()"


def test_is_a_modbus_link(rig):
    assert isinstance(rig.link, ModbusLink)


def test_reads_holding_registers(rig):
    # CellCount (settings 0x106C, UINT32, high word first) = 8 cells
    assert rig.link.read_registers("holding", 0x106C, 2, BMS_UNIT) == [0, 8]
    assert rig.link.stats().ok == 1


def test_reads_input_registers_and_coils(rig):
    regs = rig.link.read_registers("input", 0, 3, PDU_UNIT)
    assert isinstance(regs, list) and len(regs) == 3
    assert regs[0] == round(rig.world.battery.terminal_voltage_v / 0.01)
    assert rig.link.read_bits("coil", 0, 3, PDU_UNIT) == [False, True, True]


def test_write_coil_switches_relay_and_reads_back(rig):
    assert rig.link.write_coil(0, True, PDU_UNIT) is True
    assert rig.world.relay("valve_rail") is True
    assert rig.link.read_bits("coil", 0, 1, PDU_UNIT) == [True]
    assert rig.link.write_coil(0, False, PDU_UNIT) is True
    assert rig.world.relay("valve_rail") is False
    assert rig.world.relay_operations == 2


def test_write_to_read_only_register_is_exception(rig):
    res = rig.link.write_register(0x1290, 1, BMS_UNIT)
    assert isinstance(res, ModbusFailure) and res.kind == "exception" and res.exception_code == 2
    assert not res


@pytest.mark.parametrize(
    "fault, kind, counter",
    [
        (("exception", {"exception_code": 4}), "exception", "exceptions"),
        (("exception", {"exception_code": 6}), "exception", "exceptions"),
        (("wrong_unit", {}), "wrong_unit", "wrong_unit"),
        (("corrupt", {}), "corrupt", "corrupt"),
        (("silent", {}), "timeout", "timeouts"),
        (("slow", {"delay_s": TIMEOUT_S * 3}), "timeout", "timeouts"),
    ],
)
def test_faults_are_failures_never_data(rig, fault, kind, counter):
    name, params = fault
    rig.bms.apply_fault(name, params, 0.0)
    res = rig.link.read_registers("holding", 0x1290, 2, BMS_UNIT)
    assert isinstance(res, ModbusFailure), f"fault {name} returned data {res}"
    assert res.kind == kind
    if kind == "exception":
        assert res.exception_code == params["exception_code"]
        assert rig.link.stats().exception_codes == {params["exception_code"]: 1}
    st = rig.link.stats()
    assert getattr(st, counter) == 1 and st.ok == 0 and st.requests == 1
    # the link recovers once the fault is gone: the next good reply is data again
    rig.bms.clear_faults()
    assert rig.link.read_registers("holding", 0x106C, 2, BMS_UNIT) == [0, 8]


def test_slow_but_in_time_reply_is_data(rig):
    rig.bms.apply_fault("slow", {"delay_s": TIMEOUT_S / 5}, 0.0)
    assert rig.link.read_registers("holding", 0x106C, 2, BMS_UNIT) == [0, 8]


def test_intermittent_noise_counted_per_request(rig):
    rig.bms.apply_fault("corrupt", {"every": 2}, 0.0)
    results = [rig.link.read_registers("holding", 0x106C, 2, BMS_UNIT) for _ in range(4)]
    assert [isinstance(r, ModbusFailure) for r in results] == [False, True, False, True]
    assert all(r == [0, 8] for r in results if not isinstance(r, ModbusFailure))
    assert rig.link.stats().corrupt == 2


def test_unknown_unit_times_out(rig):
    res = rig.link.read_registers("holding", 0x106C, 2, 9)
    assert isinstance(res, ModbusFailure) and res.kind == "timeout"


def test_illegal_address_is_exception_2(rig):
    res = rig.link.read_registers("holding", 0x2000, 2, BMS_UNIT)
    assert isinstance(res, ModbusFailure) and (res.kind, res.exception_code) == ("exception", 2)


@pytest.mark.parametrize(
    "call",
    [
        lambda link: link.read_registers("coil", 0, 1, 1),
        lambda link: link.read_registers("holding", 0, 0, 1),
        lambda link: link.read_registers("holding", 0, 126, 1),
        lambda link: link.read_bits("holding", 0, 1, 1),
        lambda link: link.read_registers("holding", 0, 1, 0),
        lambda link: link.write_register(0, 70000, 1),
    ],
)
def test_invalid_requests_raise_before_the_wire(rig, call):
    with pytest.raises(ValueError):
        call(rig.link)
    assert rig.link.stats().requests == 0


def test_closed_link_returns_closed(rig):
    rig.link.close()
    res = rig.link.read_registers("holding", 0x106C, 2, BMS_UNIT)
    assert isinstance(res, ModbusFailure) and res.kind == "closed"
