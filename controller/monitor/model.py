"""What the monitor expects on one CAN bus of a rig: every message, its checks, its devices.

:func:`bus_model` loads the rig's DBCs for the bus (the same checks as ``qiki rig
check``, :func:`controller.rig.check_can.check_can_bus`), then places each device's
messages at the device's IDs through its own driver, so a valve board with node ID 2 or an
ARS408 with sensor ID 1 (and a vendor DBC mapped by layout) is known at the IDs it really
uses:

* valve board (:class:`hal.devices.valve_board.ValveBoardDriver`): ``VB_Command``,
  ``VB_Status``, ``VB_Heartbeat`` with their alive counter (4 bit) and E2E checksum
  (:data:`firmware_bridge.protocols.valve_board.CHECKSUM_FNS`: CRC-12 on the command,
  CRC-8 SAE J1850 on status and heartbeat);
* ARS408 (:class:`hal.devices.ars408.Ars408Driver`): its messages, the object frames as
  list messages (no per-frame cycle time; the ``ObjStatus`` carries the cycle). The
  radar's ``meas_counter`` is not checked as an alive counter: the real ARS408-21
  (firmware 4.30) steps it by 2 per object list.

Every other message of the bus's DBCs is known at its DBC ID (offset 0), with its DBC
cycle time and value checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.config import Ars408DeviceCfg, CanBusCfg, RigCfg, ValveBoardDeviceCfg
from controller.errors import ConfigError
from controller.monitor.checks import MessageSpec, signal_bounds, signal_choices
from controller.monitor.vehicle import RadarView, ValveBoardView
from firmware_bridge.protocols import ars408 as ars
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec

__all__ = ["BusModel", "bus_model", "can_bus_names"]

#: ARS408 messages sent many times per object-list cycle (one per object).
ARS408_LIST_MESSAGES = frozenset({ars.MSG_OBJ_GENERAL, ars.MSG_OBJ_QUALITY, ars.MSG_OBJ_EXTENDED,
                                  ars.MSG_OBJ_WARNING})


@dataclass(frozen=True)
class BusModel:
    """The monitor's knowledge of one CAN bus.

    Attributes
    ----------
    bus_name : str
        The rig's bus name (``can0``).
    bus : CanBusCfg
        The bus as the rig gives it (interface, channel, bit rate, DBCs).
    specs : tuple of MessageSpec
        Every known arbitration ID.
    valve_boards : dict of str to ValveBoardView
        Fresh views of the bus's valve boards, by device name.
    radars : dict of str to RadarView
        Fresh views of the bus's ARS408 radars, by device name.
    dbc_paths : tuple of Path
        The DBC files, resolved.
    """

    bus_name: str
    bus: CanBusCfg
    specs: tuple[MessageSpec, ...]
    valve_boards: dict[str, ValveBoardView]
    radars: dict[str, RadarView]
    dbc_paths: tuple[Path, ...]


def can_bus_names(rig: RigCfg) -> list[str]:
    """Return the rig's CAN bus names, in file order."""
    return [name for name, bus in rig.buses.items() if isinstance(bus, CanBusCfg)]


def _spec(codec: DbcCodec, name: str, device: str = "", **kw: object) -> MessageSpec:
    msg = codec.message(name)
    return MessageSpec(
        arbitration_id=codec.frame_id(name), is_extended=bool(msg.is_extended_frame), name=name,
        codec=codec, length=int(msg.length), device=device, period_s=codec.cycle_time_s(name),
        bounds=signal_bounds(codec, name), choices=signal_choices(codec, name), **kw)  # type: ignore[arg-type]


def bus_model(rig: RigCfg, rig_path: Path, rig_name: str, bus_name: str | None = None) -> BusModel:
    """Build the monitor's model of one CAN bus of a rig.

    Parameters
    ----------
    rig : RigCfg
        The loaded rig (:func:`controller.config.load_rig`).
    rig_path : Path
        The resolved rig file (DBC paths are relative to it).
    rig_name : str
        The rig file as the user named it (for one-line errors).
    bus_name : str, optional
        The CAN bus to watch; default the rig's only CAN bus.

    Returns
    -------
    BusModel

    Raises
    ------
    ConfigError
        The rig has no CAN bus, several and none was named, or the named one is not a
        CAN bus; a DBC is missing (``qiki rig check``'s own errors).
    BusConfigError
        A DBC that does not load, or lacks what a device's driver needs (K01, K02).
    """
    from controller.rig.check_can import check_can_bus
    from hal.devices.ars408 import Ars408Config, Ars408Driver
    from hal.devices.valve_board import ValveBoardDriver

    names = can_bus_names(rig)
    if bus_name is None:
        if len(names) != 1:
            raise ConfigError(rig_name, "buses", f"the rig has {len(names)} CAN buses "
                              f"({', '.join(names) or 'none'}): name one with --bus")
        bus_name = names[0]
    bus = rig.buses.get(bus_name)
    if not isinstance(bus, CanBusCfg):
        raise ConfigError(rig_name, f"buses.{bus_name}", f"not a CAN bus (CAN buses: {', '.join(names) or 'none'})")
    checked = check_can_bus(rig, rig_name, rig_path, bus_name, bus)
    codec = checked.codec
    specs: list[MessageSpec] = []
    claimed: set[str] = set()
    boards: dict[str, ValveBoardView] = {}
    radars: dict[str, RadarView] = {}
    for dev_name, dev in rig.devices.items():
        if dev.bus != bus_name:
            continue
        if isinstance(dev, ValveBoardDeviceCfg):
            drv = ValveBoardDriver(codec, node_id=dev.node_id, n_valves=dev.n_valves)
            for name in (vb.COMMAND, vb.STATUS, vb.HEARTBEAT):
                specs.append(_spec(drv.codec, name, dev_name, counter_signal=vb.COUNTER_SIGNALS.get(name),
                                   counter_modulo=vb.COUNTER_MODULO, checksum_signal=vb.CHECKSUM_SIGNALS.get(name),
                                   checksum_fn=vb.CHECKSUM_FNS.get(name)))
                claimed.add(name)
            period = drv.codec.cycle_time_s(vb.COMMAND) or vb.COMMAND_PERIOD_S
            boards[dev_name] = ValveBoardView(dev_name, dev.n_valves, period, [0.0] * dev.n_valves)
        elif isinstance(dev, Ars408DeviceCfg):
            radar = Ars408Driver(codec, Ars408Config(sensor_id=dev.sensor_id, name=dev_name))
            for name in radar.codec.message_names:
                if not name.startswith("ARS408_"):
                    continue
                specs.append(_spec(radar.codec, name, dev_name, list_message=name in ARS408_LIST_MESSAGES))
                claimed.add(name)
            radars[dev_name] = RadarView(dev_name, dev.sensor_id)
    for name in codec.message_names:
        if name not in claimed:
            specs.append(_spec(codec, name))
    # a second message on an ID already known (two devices' IDs colliding) is left out;
    # the rig check refuses such rigs for the IDs the drivers receive
    seen: set[tuple[int, bool]] = set()
    unique = []
    for s in specs:
        key = (s.arbitration_id, s.is_extended)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return BusModel(bus_name, bus, tuple(unique), boards, radars, checked.dbc_paths)
