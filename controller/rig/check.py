"""The rig check: every rule :func:`build_rig` relies on, without opening a port.

``qiki rig check`` prints its verdict, :func:`controller.rig.build_rig` builds from the
:class:`CheckedRig` it returns, and ``qiki run`` calls it before creating its run folder,
so a rig ``qiki run`` refuses is refused by ``qiki rig check`` with the same line
(issue 10, part 5; ``docs/rig-check.md``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import (
    MAX_WATCHED_PERIOD_S,
    CanBusCfg,
    McuDeviceCfg,
    RigCfg,
    SerialBusCfg,
    ValveBoardDeviceCfg,
)
from controller.errors import ConfigError
from controller.paths import resolve_data_path
from controller.valve_command import ValveCommander
from controller.vehicle import Allocator

if TYPE_CHECKING:
    from controller.fsm.model import FsmModel
    from firmware_bridge.emulation.faults import FaultEntry
    from firmware_bridge.protocols.modbus_profile import DeviceProfile
    from hal.can.codec import DbcCodec
    from hal.devices.valve_board import ValveBoardDriver

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())


def build_allocator(rig: RigCfg, name: str):
    """Build the allocator chosen by ``controller.allocation.method``.

    Parameters
    ----------
    rig : RigCfg
        A validated rig (planar thruster positions).
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ExactAllocator or PinvClipAllocator
        Over the effectiveness matrix ``B`` (3, N) of the thrusters
        (:func:`controller.allocation.effectiveness`), limits ``[0, max_thrust_n]`` (N).

    Raises
    ------
    ConfigError
        When the thruster geometry does not positively span the planar wrench space
        (SAFETY.md K06), or the axis weights or priorities do not fit it.
    """
    from controller.allocation import (
        ExactAllocator,
        PinvClipAllocator,
        axis_names,
        check_positive_span,
        effectiveness,
    )

    positions = [t.position_m for t in rig.thrusters]
    dirs = [t.force_dir for t in rig.thrusters]
    if len(positions[0]) != 2:
        raise ConfigError(name, "thrusters", "the virtual rig's world is planar: positions must be [x, y]")
    B = effectiveness(positions, dirs)
    ok, reason = check_positive_span(B)
    if not ok:
        raise ConfigError(name, "thrusters", f"geometry cannot produce the needed wrench space: {reason}")
    u_max = [t.max_thrust_n for t in rig.thrusters]
    alloc_cfg = rig.controller.allocation
    kwargs: dict[str, Any] = {}
    if alloc_cfg.axis_weights is not None:
        if len(alloc_cfg.axis_weights) != B.shape[0]:
            raise ConfigError(name, "controller.allocation.axis_weights", f"needs {B.shape[0]} weights")
        kwargs["axis_weights"] = alloc_cfg.axis_weights
    if alloc_cfg.axis_priorities is not None:
        key = "controller.allocation.axis_priorities"
        if alloc_cfg.method != "exact":
            raise ConfigError(name, key, "axis priorities need method: exact")
        names = [a.lower() for a in axis_names(B.shape[0])]
        groups: list[list[int]] = []
        seen: set[str] = set()
        for gi, group in enumerate(alloc_cfg.axis_priorities):
            idx = []
            for a in group:
                if a.lower() not in names:
                    raise ConfigError(name, f"{key}.{gi}", f"unknown axis {a!r} (axes: {', '.join(axis_names(B.shape[0]))})")
                if a.lower() in seen:
                    raise ConfigError(name, f"{key}.{gi}", f"axis {a!r} named twice")
                seen.add(a.lower())
                idx.append(names.index(a.lower()))
            groups.append(idx)
        kwargs["axis_priorities"] = groups
    if alloc_cfg.method == "exact":
        return ExactAllocator(B, u_max, **kwargs)
    return PinvClipAllocator(B, u_max, **kwargs)


def build_valve_commander(rig: RigCfg, name: str) -> ValveCommander:
    """Build the valve board's duty source from the rig (PWM period, delays, impulse bit).

    Parameters
    ----------
    rig : RigCfg
        A validated rig with one valve board.
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ValveCommander
        Valve delays from the valve board's ``open_delay_s``/``close_delay_s``, else the
        emulated world's, else 0.

    Raises
    ------
    ConfigError
        ``devices.<valve board>``: the PWM period is not a whole number of control ticks,
        the duty step is too coarse for the minimum impulse bit, or the valve closes a
        whole period later than it opens.
    """
    vb_name, vb = next((k, d) for k, d in rig.devices.items() if isinstance(d, ValveBoardDeviceCfg))
    emu = rig.emulation
    w_delays = (emu.world.valve_open_delay_s, emu.world.valve_close_delay_s) if emu is not None else (0.0, 0.0)
    try:
        return ValveCommander(
            [t.max_thrust_n for t in rig.thrusters],
            vb.pwm_period_s,
            1.0 / rig.controller.rate_hz,
            vb.min_impulse_bit_s,
            open_delay_s=vb.open_delay_s if vb.open_delay_s is not None else w_delays[0],
            close_delay_s=vb.close_delay_s if vb.close_delay_s is not None else w_delays[1],
        )
    except ValueError as exc:  # period vs tick rate, delays, minimum impulse bit vs duty step
        raise ConfigError(name, f"devices.{vb_name}", str(exc)) from exc


@dataclass(frozen=True)
class CheckedCanBus:
    """The DBCs of one CAN bus, loaded and checked (:func:`check_rig`).

    Attributes
    ----------
    dbc_paths : tuple of Path
        The bus's DBC files, resolved against the rig file.
    codec : DbcCodec
        Every message of those files (ID offset 0); drivers derive node codecs from it.
    sources : dict of str to str
        DBC file defining each message, by message name (for one-line errors).
    """

    dbc_paths: tuple[Path, ...]
    codec: DbcCodec
    sources: dict[str, str]


@dataclass
class CheckedRig:
    """Everything :func:`check_rig` verified and computed; :func:`build_rig` builds from it.

    Attributes
    ----------
    cfg : RigCfg
        The validated rig.
    path : Path
        The rig file (data paths resolve against it); ``str(path)`` names it in errors.
    fsm : FsmModel
        The vehicle state machine, loaded and checked (SAFETY.md K05).
    allocator : Allocator
        Over the thruster geometry (K06).
    commander : ValveCommander
        The valve board's duty source (PWM period vs tick, delays, impulse bit).
    can : dict of str to CheckedCanBus
        Per CAN bus, its DBCs.
    valve_board_name, mcu_name : str
        Device names of the one valve board and the one MCU.
    valve_board_driver : ValveBoardDriver
        Built on the bus codec: the DBC holds what it needs (K02), its watched messages
        have sane cycle times, its node ID is accepted.
    profiles : dict of str to DeviceProfile
        The profile of each power device (BMS, PDU), by device name.
    faults : tuple of FaultEntry
        ``emulation.faults`` resolved against the emulators (:mod:`controller.rig.fault_plan`).

    Notes
    -----
    Stateful parts (allocator, commander, driver) are fresh: one ``CheckedRig`` feeds one
    build.
    """

    cfg: RigCfg
    path: Path
    fsm: FsmModel
    allocator: Allocator
    commander: ValveCommander
    can: dict[str, CheckedCanBus]
    valve_board_name: str
    mcu_name: str
    valve_board_driver: ValveBoardDriver
    profiles: dict[str, DeviceProfile]
    faults: tuple[FaultEntry, ...] = ()

    @property
    def valve_board(self) -> ValveBoardDeviceCfg:
        """The valve board's device entry."""
        dev = self.cfg.devices[self.valve_board_name]
        assert isinstance(dev, ValveBoardDeviceCfg)
        return dev

    @property
    def mcu(self) -> McuDeviceCfg:
        """The MCU's device entry."""
        dev = self.cfg.devices[self.mcu_name]
        assert isinstance(dev, McuDeviceCfg)
        return dev

    def describe(self) -> str:
        """``"8 thrusters, 4 buses, 6 devices"`` (the ``qiki rig check`` ok line)."""
        rig = self.cfg
        return f"{len(rig.thrusters)} thrusters, {len(rig.buses)} buses, {len(rig.devices)} devices"


def _check_dbc_signals(path: str, codec: DbcCodec) -> None:
    """Refuse DBC signals no value can pass through: scale 0, non-finite scale or offset.

    A scale of 0 makes every encode divide by zero (``VB_Command`` mid-run, issue 10) and
    every decode return the offset whatever the wire says.

    Raises
    ------
    ConfigError
        ``<dbc file>: <message>.<signal>: ...``, the first bad signal.
    """
    for msg_name in codec.message_names:
        for sig in codec.message(msg_name).signals:
            scale, offset = float(sig.scale), float(sig.offset)
            if scale == 0.0 or not math.isfinite(scale):
                raise ConfigError(path, f"{msg_name}.{sig.name}",
                                  f"signal scale is {sig.scale}: no physical value can be encoded or decoded")
            if not math.isfinite(offset):
                raise ConfigError(path, f"{msg_name}.{sig.name}", f"signal offset is {sig.offset}")


def _check_can_bus(rig: RigCfg, name: str, rig_path: Path, bus_name: str, bus: CanBusCfg) -> CheckedCanBus:
    """Interface and DBCs of one CAN bus, without opening it.

    Raises
    ------
    ConfigError
        An emulated rig's bus is not ``virtual``; a real rig's interface is not a
        python-can interface; a DBC file is missing; a signal has scale 0
        (:func:`_check_dbc_signals`).
    BusConfigError
        A DBC that cantools refuses, truncated, or two files sharing an ID or a message
        name (one line naming the file, SAFETY.md K01).
    """
    import can

    from hal.can.codec import DbcCodec

    if rig.emulation is not None:
        if bus.interface != "virtual":
            raise ConfigError(name, f"buses.{bus_name}.interface", "an emulated rig needs the 'virtual' CAN interface")
    elif bus.interface not in can.interfaces.VALID_INTERFACES:
        raise ConfigError(name, f"buses.{bus_name}.interface",
                          f"{bus.interface!r} is not a python-can interface "
                          f"(known: {', '.join(sorted(can.interfaces.VALID_INTERFACES))})")
    dbc_paths = tuple(resolve_data_path(p, rig_path) for p in bus.dbc)
    for given, resolved in zip(bus.dbc, dbc_paths):
        if not resolved.exists() and not resolved.is_symlink():
            raise ConfigError(name, f"buses.{bus_name}.dbc", f"DBC file {given!r} not found")
    sources: dict[str, str] = {}
    for path in dbc_paths:
        one = DbcCodec([path])
        _check_dbc_signals(str(path), one)
        for msg_name in one.message_names:
            sources.setdefault(msg_name, str(path))
    return CheckedCanBus(dbc_paths, DbcCodec(list(dbc_paths)), sources)


def _check_watched_period(bus: CheckedCanBus, message: str, period_s: float | None, who: str,
                          tick_s: float | None) -> None:
    """A stream a driver judges stale has a usable period (SAFETY.md B01-B03).

    Parameters
    ----------
    bus : CheckedCanBus
        The bus carrying the message (names the DBC file in errors).
    message : str
        DBC message name.
    period_s : float or None
        The period the driver expects (s): the DBC ``GenMsgCycleTime``; None when the DBC
        gives none (absent or 0).
    who : str
        The driver, for the message.
    tick_s : float or None
        Control tick (s) for streams expected once per period (the driver's rhythm check
        needs at most one frame per tick); None for list streams.

    Raises
    ------
    ConfigError
        ``<dbc file>: <message>: ...`` when the period is missing, above
        :data:`~controller.config.MAX_WATCHED_PERIOD_S` (stale detection would take more
        than 5 periods x 1 s), or shorter than the tick.
    """
    where = bus.sources.get(message, ", ".join(str(p) for p in bus.dbc_paths))
    if period_s is None or not period_s > 0.0:
        raise ConfigError(where, message, f"GenMsgCycleTime is 0 or missing: the {who} watches this message's "
                          "freshness and needs its period (SAFETY.md B01)")
    if period_s > MAX_WATCHED_PERIOD_S + 1e-9:
        raise ConfigError(where, message, f"GenMsgCycleTime {period_s * 1000:g} ms is above "
                          f"{MAX_WATCHED_PERIOD_S * 1000:g} ms: the {who} would detect its loss too late")
    if tick_s is not None and period_s < tick_s - 1e-9:
        raise ConfigError(where, message, f"GenMsgCycleTime {period_s * 1000:g} ms is shorter than the "
                          f"{tick_s * 1000:g} ms control tick: the {who} cannot judge its rhythm")


def check_rig(cfg: RigCfg, rig_path: Path, *, options: Mapping[str, object] | None = None) -> CheckedRig:
    """Check everything :func:`build_rig` needs, without opening a port.

    The one implementation of the rig checks: ``qiki rig check`` prints its verdict and
    :func:`build_rig` calls it first, so a rig ``qiki run`` refuses is refused by ``qiki
    rig check`` with the same line (issue 10, part 5). What it verifies, in order (see
    ``docs/rig-check.md``):

    1. the state machine file loads and passes its checks (SAFETY.md K05);
    2. the thruster geometry spans the wrench space; allocation weights/priorities fit
       (K06); the valve commander accepts the PWM period, tick and delays;
    3. one valve board on a CAN bus, one MCU on a serial bus;
    4. every CAN bus: interface (``virtual`` on emulated rigs, a python-can name
       otherwise), every DBC exists and loads strictly (K01), no signal of scale 0;
       every serial bus: ``pipe://`` only on emulated rigs;
    5. the valve board driver accepts the DBC (K02: ``VB_Command``, ``VB_Status``,
       ``VB_Heartbeat`` and their signals; 0-100 % duty encodable) and its node ID; the
       messages it watches have a ``GenMsgCycleTime`` > 0, at most 1 s and not shorter
       than the tick;
    6. the radars (:func:`controller.rig.radar.check`): count, bus kinds, replay
       options, tracker settings; the ARS408's watched periods at most 1 s; no CAN ID
       received by two drivers;
    7. the power devices (:func:`controller.rig.power.check`): count, bus kinds,
       device profiles load and are bounded, hold what the drivers need, Modbus urls
       fit the rig;
    8. the tank-pressure sensor (:func:`controller.rig.tank.check`): at most one, on a
       CAN bus whose DBCs hold ``TANK_Status``, with a usable ``GenMsgCycleTime``;
       the fault plan (:func:`controller.rig.fault_plan.check`): every entry's target,
       fault and parameters fit the target's emulator;
    9. a serial bus carries one device.

    The budgets that need no file but the rig (stale periods, heartbeat vs watchdog,
    command period vs command timeout) are checked when the rig loads
    (:func:`controller.config.load_rig`).

    Parameters
    ----------
    cfg : RigCfg
        A rig from :func:`controller.config.load_rig`.
    rig_path : Path
        The rig file; relative data paths resolve against it and ``str(rig_path)`` names
        it in errors.
    options : mapping, optional
        Run options that change what is built (``lr_replay``, ``sr_replay``).

    Returns
    -------
    CheckedRig

    Raises
    ------
    ConfigError, BusConfigError, ProtocolError
        One line naming the file (rig, FSM, DBC or profile) and the key, message or
        signal at fault; the CLI exits with status 2.
    """
    from controller.fsm import load_fsm
    from controller.rig import fault_plan
    from controller.rig import power as power_sub
    from controller.rig import radar as radar_sub
    from controller.rig import tank as tank_sub
    from hal.devices.valve_board import ValveBoardDriver

    rig = cfg
    name = str(rig_path)
    fsm_model = load_fsm(resolve_data_path(rig.controller.fsm, rig_path))
    allocator = build_allocator(rig, name)
    commander = build_valve_commander(rig, name)

    # ---------------------------------------------------------------- devices vs buses
    boards = [k for k, d in rig.devices.items() if isinstance(d, ValveBoardDeviceCfg)]
    mcus = [k for k, d in rig.devices.items() if isinstance(d, McuDeviceCfg)]
    if not boards:
        raise ConfigError(name, "devices", "a rig needs one valve_board device")
    if len(boards) > 1:
        raise ConfigError(name, "devices", f"a rig needs exactly one valve_board device (got {', '.join(boards)})")
    if not mcus:
        raise ConfigError(name, "devices", "a rig needs one qiki_mcu device")
    if len(mcus) > 1:
        raise ConfigError(name, "devices", f"a rig needs exactly one qiki_mcu device (got {', '.join(mcus)})")
    vb_name, mcu_name = boards[0], mcus[0]
    vb = rig.devices[vb_name]
    mcu = rig.devices[mcu_name]
    assert isinstance(vb, ValveBoardDeviceCfg) and isinstance(mcu, McuDeviceCfg)
    if not isinstance(rig.buses[vb.bus], CanBusCfg):
        raise ConfigError(name, f"devices.{vb_name}.bus", "the valve board needs a CAN bus")
    if not isinstance(rig.buses[mcu.bus], SerialBusCfg):
        raise ConfigError(name, f"devices.{mcu_name}.bus", "the MCU needs a serial bus")

    # ---------------------------------------------------------------- buses
    can_buses: dict[str, CheckedCanBus] = {}
    for bus_name, bus in rig.buses.items():
        if isinstance(bus, CanBusCfg):
            can_buses[bus_name] = _check_can_bus(rig, name, rig_path, bus_name, bus)
        elif isinstance(bus, SerialBusCfg):
            if rig.emulation is None and bus.url.startswith("pipe://"):
                raise ConfigError(name, f"buses.{bus_name}.url", "pipe:// links exist only on emulated rigs")

    # ---------------------------------------------------------------- valve board
    tick_s = 1.0 / rig.controller.rate_hz
    vb_bus = can_buses[vb.bus]
    vb_driver = ValveBoardDriver(vb_bus.codec, node_id=vb.node_id, n_valves=vb.n_valves,
                                 stale_after_periods=rig.controller.safety.stale_after_periods)
    for message, period_s in vb_driver.watched_periods_s.items():
        _check_watched_period(vb_bus, message, period_s, "valve board driver", tick_s)

    # ---------------------------------------------------------------- radars
    radar = radar_sub.check(rig, name, {k: b.codec for k, b in can_buses.items()}, options)
    for bus_name, periods in radar.watched_periods_s.items():
        for message, period_s in periods.items():
            _check_watched_period(can_buses[bus_name], message, period_s, "ARS408 driver", None)
    # ---------------------------------------------------------------- power, tank
    profiles = power_sub.check(rig, name, rig_path)
    tank_streams = tank_sub.check(rig, name, can_buses)
    for bus_name, message, period_s in tank_streams:
        _check_watched_period(can_buses[bus_name], message, period_s, "tank pressure driver", tick_s)
    faults = fault_plan.check(rig, name, options)

    # ---------------------------------------------------------------- one owner per CAN ID
    # CanPort.register refuses a second handler for an ID: refuse the rig here, in one line
    owners: dict[tuple[str, int], str] = {(vb.bus, vb_driver.command_id): f"{vb_name} (VB_Command)"}
    owners.update({(vb.bus, i): vb_name for i in vb_driver.arbitration_ids})
    claims = [(bus_name, arb_id, "the ars408 radar") for bus_name, rx_ids in radar.can_rx_ids.items()
              for arb_id in rx_ids]
    claims += [(bus_name, can_buses[bus_name].codec.frame_id(message), "the tank pressure sensor")
               for bus_name, message, _ in tank_streams]
    for bus_name, arb_id, who in claims:
        other = owners.setdefault((bus_name, arb_id), who)
        if other != who:
            raise ConfigError(name, f"buses.{bus_name}",
                              f"arbitration ID 0x{arb_id:X} is used by both {other} and {who}")

    # ---------------------------------------------------------------- sharing (after the kinds)
    serial_owner: dict[str, str] = {}
    for dev_name, dev in rig.devices.items():
        if isinstance(rig.buses[dev.bus], SerialBusCfg):
            if dev.bus in serial_owner:
                raise ConfigError(name, f"devices.{dev_name}.bus",
                                  f"serial bus {dev.bus!r} already carries device {serial_owner[dev.bus]!r} "
                                  "(one device per serial link)")
            serial_owner[dev.bus] = dev_name

    _log.debug("%s: rig checked (%d CAN buses, %d profiles)", name, len(can_buses), len(profiles))
    return CheckedRig(
        cfg=rig,
        path=rig_path,
        fsm=fsm_model,
        allocator=allocator,
        commander=commander,
        can=can_buses,
        valve_board_name=vb_name,
        mcu_name=mcu_name,
        valve_board_driver=vb_driver,
        profiles=profiles,
        faults=faults,
    )


