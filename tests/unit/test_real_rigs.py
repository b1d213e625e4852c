"""The real rig files pass ``qiki rig check`` and say what the hardware is (issue 13, part 1).

``rigs/qiki1_pi.yaml``: SocketCAN ``can0`` at 500 kbit/s (valve board, ARS408), the MCU
and the IWR6843 on ``/dev/qiki-*`` udev names, JK BMS and PDU on Modbus RTU over the
RS-485 adapter, SCHED_FIFO + CPU affinity + mlockall. ``rigs/field_laptop.yaml``: the
same vehicle through a python-can USB adapter. Both keep the vehicle of
``rigs/virtual.yaml`` and have no emulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import can
import pytest

from controller.cli import main
from controller.config import CanBusCfg, ModbusBusCfg, SerialBusCfg, load_rig
from controller.monitor.source import LISTEN_ONLY_OPTIONS
from controller.rig import CheckedRig, check_rig

ROOT = Path(__file__).resolve().parents[2]


def _checked(name: str) -> CheckedRig:
    rig, path = load_rig(ROOT / "rigs" / name)
    return check_rig(rig, path)


@pytest.mark.parametrize("name", ["qiki1_pi.yaml", "field_laptop.yaml"])
def test_real_rig_same_vehicle_as_virtual(name: str) -> None:
    checked = _checked(name)
    virtual, _ = load_rig(ROOT / "rigs" / "virtual.yaml")
    rig = checked.cfg
    assert rig.emulation is None
    assert rig.vehicle == virtual.vehicle and rig.thrusters == virtual.thrusters
    assert rig.devices == virtual.devices
    assert checked.valve_board_name == "valves" and checked.mcu_name == "mcu"
    mcu, sr, power = rig.buses["mcu"], rig.buses["sr"], rig.buses["power"]
    assert isinstance(mcu, SerialBusCfg) and mcu.url == "/dev/qiki-mcu" and mcu.baudrate == 921_600
    assert isinstance(sr, SerialBusCfg) and sr.url == "/dev/qiki-iwr6843"
    assert isinstance(power, ModbusBusCfg) and power.url == "rtu:///dev/qiki-rs485?baudrate=115200"
    can0 = rig.buses["can0"]
    assert isinstance(can0, CanBusCfg) and can0.bitrate_bps == 500_000
    assert can0.interface in can.interfaces.VALID_INTERFACES


def test_pi_rig_socketcan_and_realtime_knobs() -> None:
    rig = _checked("qiki1_pi.yaml").cfg
    can0 = rig.buses["can0"]
    assert isinstance(can0, CanBusCfg)
    assert (can0.interface, can0.channel) == ("socketcan", "can0")
    rt = rig.controller.realtime
    assert rt.sched_fifo_priority is not None and rt.sched_fifo_priority > 50  # above the IRQ threads
    assert rt.cpu_affinity == [3] and rt.mlockall and rt.gc_freeze
    assert rig.controller.require_doctor


def test_laptop_rig_usb_adapter_listen_only_capable() -> None:
    rig = _checked("field_laptop.yaml").cfg
    can0 = rig.buses["can0"]
    assert isinstance(can0, CanBusCfg)
    assert (can0.interface, can0.channel) == ("pcan", "PCAN_USBBUS1")
    # qiki monitor puts this adapter in listen-only mode (controller/monitor/source.py)
    assert can0.interface in LISTEN_ONLY_OPTIONS
    assert rig.controller.realtime.sched_fifo_priority is None


@pytest.mark.parametrize("name", ["qiki1_pi.yaml", "field_laptop.yaml"])
def test_qiki_rig_check_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rig", "check", str(ROOT / "rigs" / name)]) == 0
    assert "ok (8 thrusters, 4 buses, 6 devices)" in capsys.readouterr().out


def test_two_process_rig_slcan_options() -> None:
    """The two-process bench rig opens its slcan adapter with QIKI's bulk-reading interface
    (hal/can/slcan_bus.py) and without the 2 s sleep after opening."""
    rig, path = load_rig(ROOT / "rigs" / "bench_two_process.yaml")
    can0 = check_rig(rig, path).cfg.buses["can0"]
    assert isinstance(can0, CanBusCfg) and can0.interface == "qiki_slcan"
    assert can0.options == {"sleep_after_open": 0}


def test_can_options_reach_can_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CAN bus's ``options`` are passed to ``can.Bus`` as keyword arguments, nothing else added."""
    import controller.rig as rig_mod
    import hal.can.bus as bus_mod

    seen: list[dict[str, object]] = []
    real_bus = can.Bus

    def spy(**kwargs: object) -> can.BusABC:
        seen.append(dict(kwargs))
        return real_bus(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bus_mod.can, "Bus", spy)
    cfg, path = load_rig(ROOT / "rigs" / "virtual.yaml")
    can0 = cfg.buses["can0"]
    assert isinstance(can0, CanBusCfg)
    cfg.buses["can0"] = can0.model_copy(update={"options": {"preserve_timestamps": True}})
    # real time: a lockstep build opens no python-can bus on an emulated rig (LockstepBus)
    built = rig_mod.build_rig(cfg, path, mission=None, record=lambda *a, **k: None, realtime=True)
    built.close()
    host = [kw for kw in seen if kw.get("preserve_timestamps") is True]
    assert len(host) == 1  # the controller's port; the emulators' own node gets no options
    assert host[0]["interface"] == "virtual"


@pytest.mark.parametrize("options, key", [({"bitrate": 250000}, "bitrate"), ({"not-a-name": 1}, "not-a-name"),
                                           ({"timeout": [0]}, "timeout")])
def test_bad_can_options_refused(tmp_path: Path, options: dict[str, object], key: str) -> None:
    import yaml

    from controller.errors import ConfigError

    data = yaml.safe_load((ROOT / "rigs" / "bench_two_process.yaml").read_text())
    data["buses"]["can0"]["options"] = options
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_rig(p)
    msg = str(err.value)
    assert "\n" not in msg and "rig.yaml" in msg and "buses.can0" in msg and key in msg


def test_real_can_port_reopens_a_fresh_bus_emulated_and_replay_probe(tmp_path: Path) -> None:
    """B07 on real hardware: the port's ``reopen`` opens the adapter afresh (tapped when
    recorded); emulated and replayed buses get none (the port probes the same bus)."""
    from controller.record.ingress import Ingress
    from controller.rig.build import host_reopen

    opened: list[can.BusABC] = []

    def open_host() -> can.BusABC:
        bus = can.Bus(channel=f"reopen-{tmp_path.name}", interface="virtual")
        opened.append(bus)
        return bus

    assert host_reopen("can0", open_host, emulated=True, ingress=None) is None
    fresh = host_reopen("can0", open_host, emulated=False, ingress=None)
    assert fresh is not None
    a, b = fresh(), fresh()
    assert a is not b and opened == [a, b]
    class Replaying:
        replaying = True

    assert host_reopen("can0", open_host, emulated=False, ingress=cast(Ingress, Replaying())) is None
    for bus in opened:
        bus.shutdown()
