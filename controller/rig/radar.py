"""Composition of the radars: checks, drivers, the radar component and its emulation.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` runs every build-time rule without opening
a port (called by :func:`controller.rig.check_rig`); :func:`build` builds the drivers, the
runtime :class:`~controller.components.radar.RadarSubsystem` and, on an emulated rig, the
emulators of :mod:`controller.rig.radar_emulation` (synthetic from ``emulation.obstacles``,
or replays of ``--lr-replay`` / ``--sr-replay`` recordings) behind gates in ``sim.extra``. See
:mod:`controller.components.radar` for what the radars do in the tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from controller.components.radar import (
    LrRadar,
    RadarSubsystem,
    SrRadar,
    tracker_config,
)
from controller.config import (
    Ars408DeviceCfg,
    CanBusCfg,
    Iwr6843DeviceCfg,
    RadarCfg,
    RigCfg,
    SerialBusCfg,
)
from controller.errors import ConfigError
from controller.rig.radar_emulation import (
    _Ars408ReplayFeed,  # noqa: F401 - importable from here, as before the split
    _check_lr_replay,  # noqa: F401
    _check_sr_replay,  # noqa: F401
    _emulate_lr,
    _emulate_sr,
    _replay_path,
    emulate,
)
from controller.tracking import BAND_SR
from firmware_bridge.protocols.frames import Mount
from hal.errors import HalError

if TYPE_CHECKING:
    from hal.can.codec import DbcCodec

__all__ = ["RadarCheck", "build", "check", "emulate"]


class RadarCheck(NamedTuple):
    """What :func:`check` learnt from the radar drivers, for the rig-wide checks.

    Attributes
    ----------
    can_rx_ids : dict of str to tuple of int
        Per CAN bus, the arbitration IDs the ARS408 driver receives (no two drivers may
        share one, ``CanPort.register``).
    watched_periods_s : dict of str to dict of str to float
        Per CAN bus, the period (s) the ARS408 driver expects of each stream it judges
        stale (object list, RadarState), by DBC message name.
    """

    can_rx_ids: dict[str, tuple[int, ...]]
    watched_periods_s: dict[str, dict[str, float]]


def check(rig: RigCfg, name: str, can_codecs: Mapping[str, DbcCodec],
          options: Mapping[str, object] | None = None) -> RadarCheck:
    """Every build-time check of the radars, without opening a port.

    Called by :func:`controller.rig.check_rig` (``qiki rig check`` and ``qiki run``)
    before anything is built. :func:`build` relies on it for every rule about the rig; it
    builds the drivers again (the ones built here only prove they can be) and reads the
    replay files, refusing one with nothing usable in it.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    name : str
        The rig file, for errors.
    can_codecs : mapping of str to DbcCodec
        The loaded codec of each CAN bus (ID offset 0).
    options : mapping, optional
        Run options (``lr_replay``, ``sr_replay``: recording paths).

    Returns
    -------
    RadarCheck

    Raises
    ------
    ConfigError
        More than one radar of a kind, a radar on a bus of the wrong kind, a replay
        option on a rig that is not emulated or without the radar, a replay file that
        does not exist, an invalid tracker configuration. A DBC that lacks the ARS408
        messages is not refused: POST fails naming the missing message (SAFETY.md K02).
    """
    from hal.devices.ars408 import Ars408Driver, config_from_mapping

    lrs = [(k, d) for k, d in rig.devices.items() if isinstance(d, Ars408DeviceCfg)]
    srs = [(k, d) for k, d in rig.devices.items() if isinstance(d, Iwr6843DeviceCfg)]
    out = RadarCheck({}, {})
    opts = options or {}
    if not lrs and not srs:
        for opt in ("lr_replay", "sr_replay"):
            if opts.get(opt):
                raise ConfigError(name, "devices", f"--{opt.replace('_', '-')} needs an "
                                  f"{'ars408' if opt == 'lr_replay' else 'iwr6843'} device")
        return out
    if len(lrs) > 1 or len(srs) > 1:
        raise ConfigError(name, "devices", "at most one ars408 and one iwr6843 radar are supported")
    emulated = rig.emulation is not None
    for opt in ("lr_replay", "sr_replay"):
        if opts.get(opt) and not emulated:
            raise ConfigError(name, "emulation", f"--{opt.replace('_', '-')} needs an emulated rig")
    if opts.get("lr_replay") and not lrs:
        raise ConfigError(name, "devices", "--lr-replay needs an ars408 device")
    if opts.get("sr_replay") and not srs:
        raise ConfigError(name, "devices", "--sr-replay needs an iwr6843 device")
    for opt, flag in (("lr_replay", "--lr-replay"), ("sr_replay", "--sr-replay")):
        if opts.get(opt):
            _replay_path(str(opts[opt]), flag)
    tracker_config(rig.radar if rig.radar is not None else RadarCfg(), source=name)
    if lrs:
        dev_name, dev = lrs[0]
        if not isinstance(rig.buses.get(dev.bus), CanBusCfg):
            raise ConfigError(name, f"devices.{dev_name}.bus", "the ars408 needs a CAN bus")
        entry = dev.model_dump()
        entry["stale_after_periods"] = rig.controller.safety.stale_after_periods
        try:
            driver = Ars408Driver(can_codecs[dev.bus], config_from_mapping(entry, name=dev_name))
        except HalError:
            driver = None  # K02: POST names what the DBC lacks (see build)
        if driver is not None:
            from firmware_bridge.protocols import ars408 as proto

            out.can_rx_ids[dev.bus] = tuple(driver.rx_ids)
            out.watched_periods_s[dev.bus] = {proto.MSG_OBJ_STATUS: driver.cycle_period_s,
                                              proto.MSG_RADAR_STATE: driver.state_period_s}
    if srs:
        sr_name, sr_dev = srs[0]
        if not isinstance(rig.buses.get(sr_dev.bus), SerialBusCfg):
            raise ConfigError(name, f"devices.{sr_name}.bus", "the iwr6843 needs a serial bus")
    return out


def build(ctx: Any) -> RadarSubsystem | None:
    """Build the radar subsystem of a rig, or None when the rig has no radar device.

    Parameters
    ----------
    ctx : controller.rig.context.BuildContext
        Validated rig, ports, links, simulation and run options (``lr_replay``,
        ``sr_replay``: recording paths).

    Returns
    -------
    RadarSubsystem or None

    Raises
    ------
    ConfigError
        A replay file with nothing usable in it. Everything else about the rig was
        refused by :func:`check` (called by :func:`controller.rig.check_rig` first).
        A CAN bus whose DBC lacks the ARS408 messages does not raise: POST fails naming
        the missing message (SAFETY.md K02).
    """
    from hal.devices.ars408 import Ars408Driver, config_from_mapping
    from hal.devices.iwr6843 import Iwr6843Driver

    rig = ctx.cfg
    lrs = [(k, d) for k, d in rig.devices.items() if isinstance(d, Ars408DeviceCfg)]
    srs = [(k, d) for k, d in rig.devices.items() if isinstance(d, Iwr6843DeviceCfg)]
    if not lrs and not srs:
        return None
    # every rule about the rig and the options was checked by check() (via check_rig)
    emulated = ctx.sim is not None
    radar_cfg = rig.radar if rig.radar is not None else RadarCfg()
    stale_n = rig.controller.safety.stale_after_periods
    start_s = ctx.clock.now_s()
    obstacles = list(rig.emulation.obstacles) if rig.emulation is not None else []

    lr = None
    if lrs:
        dev_name, dev = lrs[0]
        lr = LrRadar(dev_name, dev, dev.bus)
        codec = ctx.can_codecs[dev.bus]
        entry = dev.model_dump()
        entry["stale_after_periods"] = stale_n
        try:
            lr.driver = Ars408Driver(codec, config_from_mapping(entry, name=dev_name), start_s=start_s)
        except HalError as exc:  # K02: the DBC lacks what the driver needs -> POST fails
            lr.build_error = str(exc)
        if lr.driver is not None:
            lr.port = ctx.can_ports[dev.bus]
            for arb_id in lr.driver.rx_ids:
                lr.port.register(arb_id, lr.driver.on_frame)
            lr.port.add_checker_stats(lr.driver.ingress)
            declare = getattr(lr.port, "declare_tx_ids", None)
            if declare is not None:  # 0x300/0x301 heard on the bus count as own_tx_id
                declare(lr.driver.tx_ids)
            if emulated:
                lr.mode, lr.feed = _emulate_lr(ctx, dev_name, dev, codec, frozenset(lr.driver.rx_ids), start_s,
                                               obstacles)

    sr = None
    if srs:
        sr_name, sr_dev = srs[0]
        sr = SrRadar(sr_name, sr_dev, sr_dev.bus)
        mount = Mount.from_config(sr_dev.mount)
        sr.driver = Iwr6843Driver(ctx.serial_links[sr_dev.bus], mount=mount, frame_period_s=sr_dev.frame_period_s,
                                  stale_after_periods=stale_n, source=BAND_SR)
        if emulated:
            sr.mode, sr.emulator = _emulate_sr(ctx, sr_name, sr_dev, mount, start_s, obstacles)
    return RadarSubsystem(radar_cfg, lr, sr, ctx.record)
