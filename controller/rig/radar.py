"""Composition of the radars: checks, drivers, the radar component and its emulation.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. :func:`check` runs every build-time rule without opening
a port (called by :func:`controller.rig.check_rig`); :func:`build` builds the drivers, the
runtime :class:`~controller.components.radar.RadarSubsystem` and, on an emulated rig, the
emulators (synthetic from ``emulation.obstacles``, or replays of ``--lr-replay`` /
``--sr-replay`` recordings) behind gates in ``sim.extra``. See
:mod:`controller.components.radar` for what the radars do in the tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
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
from controller.tracking import BAND_SR
from firmware_bridge.emulation.ars408 import Ars408ReplayEmulator
from firmware_bridge.emulation.faults import FaultParams
from firmware_bridge.protocols.frames import Mount, Pose2D, compose, rotate
from hal.errors import HalError

if TYPE_CHECKING:
    from hal.can.codec import DbcCodec

__all__ = ["RadarCheck", "build", "check"]


# --------------------------------------------------------------------------- emulation
class _Gate:
    """Calls ``inner.step(t_s)`` only when ``next_due()`` says something is due.

    Keeps the 1 kHz physics loop cheap: the emulators act every 72-100 ms, so stepping
    them every millisecond would only burn time (and drain their bus queue for nothing).
    ``before(t_s)`` runs right before each real step (the synthetic radar's scene update).
    """

    def __init__(self, inner: Any, next_due: Callable[[], float | None],
                 before: Callable[[float], None] | None = None) -> None:
        self.inner = inner
        self._next_due = next_due
        self._before = before
        self._due_s: float | None = -math.inf

    def step(self, t_s: float) -> None:
        due = self._due_s
        if due is None or t_s < due:
            return
        if self._before is not None:
            self._before(t_s)
        self.inner.step(t_s)
        self._due_s = self._next_due()


class _Ars408SyntheticFeed:
    """Feeds an :class:`Ars408Emulator` its scene; the gate asks the emulator when it is due."""

    def __init__(self, emu: Any, world: Any, mount: Any, obstacles: list[Any]) -> None:
        from firmware_bridge.emulation.ars408 import RadarTarget

        self.emu = emu
        self.world = world
        self.mount = Mount.from_config(mount)
        self.obstacles = list(obstacles)
        self._target = RadarTarget

    def before(self, t_s: float) -> None:
        w, m = self.world, self.mount
        body = Pose2D(w.x_m, w.y_m, w.yaw_rad)
        pose = compose(body, m)
        # radar velocity = vehicle velocity + omega x r (mount lever arm), world frame
        lx, ly = rotate(body, (m.x_m, m.y_m))
        vel = (w.vx_mps - w.yaw_rate_radps * ly, w.vy_mps + w.yaw_rate_radps * lx)
        targets = [self._target(o.x_m + o.vx_mps * t_s, o.y_m + o.vy_mps * t_s, o.vx_mps, o.vy_mps,
                                o.rcs_dbsm, target_id=i) for i, o in enumerate(self.obstacles)]
        self.emu.set_scene(pose, targets, vel)

    def next_due(self) -> float:
        return self.emu.next_due_s

    def replay_summary(self) -> dict[str, object] | None:
        """Not a replay: no ``replay`` block."""
        return None


class _Ars408ReplayFeed:
    """Loops an :class:`Ars408ReplayEmulator` and keeps its (never read) bus queue empty.

    Only data frames on the radar's own IDs (``rx_ids``: RadarState, the object list,
    VersionId of the configured sensor ID) are injected: a recording of a whole bus -- a
    QIKI run's own CAN log with its valve commands and heartbeats, 0x300/0x301 ego-motion
    frames, error or remote frames, other nodes -- must never put those frames on the
    rig's bus (recorded valve commands would trip the foreign-command E-stop, B09).
    """

    def __init__(self, bus: Any, path: Path, start_s: float, rx_ids: frozenset[int] = frozenset()) -> None:
        from firmware_bridge.emulation.ars408 import Ars408ReplayEmulator

        self._cls = Ars408ReplayEmulator
        self.bus = bus
        self.path = path
        self.rx_ids = frozenset(rx_ids)
        self.passes = 1
        self.frames_sent = 0
        self.frames_skipped = 0
        self.emu = Ars408ReplayEmulator(bus, self._frames(), start_s=start_s)
        self._last_due_s = start_s
        self._period_s = 0.072

    def _frames(self):
        from hal.can.replay import iter_can_log

        ids = self.rx_ids
        for m in iter_can_log(self.path):
            if (m.is_error_frame or m.is_remote_frame or m.is_extended_id
                    or (ids and m.arbitration_id not in ids)):
                self.frames_skipped += 1
                continue
            yield m

    def step(self, t_s: float) -> None:
        for _ in range(1024):  # the emulator end never reads the bus: drop what queued up
            if self.bus.recv(timeout=0.0) is None:
                break
        self.emu.step(t_s)
        if self.emu.done:
            # Start again one object-list period after the last frame: no stale gap.
            self.frames_sent += self.emu.frames_sent
            silent = self.emu.silent
            self.emu = self._cls(self.bus, self._frames(), start_s=t_s + self._period_s)
            self.emu.silent = silent  # a fault outlives the pass
            self.passes += 1

    def next_due(self) -> float | None:
        nxt = self.emu.next_due_s
        return nxt if nxt is not None else -math.inf

    @property
    def total_frames_sent(self) -> int:
        return self.frames_sent + self.emu.frames_sent

    #: Fault-plan target: the replayed radar's faults (``silent``), kept across passes.
    FAULTS = Ars408ReplayEmulator.FAULTS

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of the replayed radar (fault-plan target protocol)."""
        self.emu.apply_fault(fault, params, now_s)

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End a fault of the replayed radar at ``now_s`` (s)."""
        self.emu.clear_fault(fault, params, now_s)

    def replay_summary(self) -> dict[str, object] | None:
        """Return the ``replay`` block: file, passes, frames sent, frames skipped (not the radar's)."""
        return {"file": str(self.path), "passes": self.passes, "frames_sent": self.total_frames_sent,
                "frames_skipped_not_radar": self.frames_skipped}


def _check_lr_replay(path: Path, rx_ids: frozenset[int], sensor_id: int) -> None:
    """Refuse (one line) a CAN log that holds no data frame on the radar's IDs."""
    from hal.can.replay import iter_can_log
    from hal.errors import BusConfigError

    total = 0
    try:
        for m in iter_can_log(path):
            total += 1
            if (not (m.is_error_frame or m.is_remote_frame or m.is_extended_id)
                    and m.arbitration_id in rx_ids):
                return
    except BusConfigError as exc:
        raise ConfigError(str(path), "--lr-replay", str(exc).removeprefix(f"{path}: ")) from exc
    ids = ", ".join(f"0x{i:03X}" for i in sorted(rx_ids))
    raise ConfigError(str(path), "--lr-replay",
                      f"no frame of the ARS408 with sensor ID {sensor_id} ({ids}) among {total} frames: "
                      f"nothing to replay")


def _check_sr_replay(path: Path, data: bytes) -> None:
    """Refuse (one line) a UART capture in which no packet is valid."""
    from firmware_bridge.protocols.iwr6843 import Iwr6843Parser

    parser = Iwr6843Parser()
    if parser.feed(data):
        return
    why = parser.rejection_text()
    detail = (f"every packet rejected: {why}" if why is not None
              else f"no IWR6843 packet start (magic word) with a complete packet in {len(data)} bytes")
    raise ConfigError(str(path), "--sr-replay", f"no valid IWR6843 packet in the capture ({detail}): nothing to replay")


def _replay_path(value: Any, key: str) -> Path:
    p = Path(str(value)).expanduser()
    if not p.is_file():
        raise ConfigError(str(value), key, "replay file not found")
    return p


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
    opts = ctx.options or {}
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
                emu_bus = ctx.open_emulator_can(dev.bus)
                if opts.get("lr_replay"):
                    path = _replay_path(opts["lr_replay"], "--lr-replay")
                    rx_ids = frozenset(lr.driver.rx_ids)
                    _check_lr_replay(path, rx_ids, dev.sensor_id)
                    replay_feed = _Ars408ReplayFeed(emu_bus, path, start_s, rx_ids)
                    lr.mode, lr.feed = "replay", replay_feed
                    ctx.sim.extra.append(_Gate(replay_feed, replay_feed.next_due))
                    if ctx.faults is not None:
                        ctx.faults.add(dev_name, replay_feed)
                else:
                    from firmware_bridge.emulation.ars408 import Ars408Emulator

                    lr_emu = Ars408Emulator(emu_bus, codec, sensor_id=dev.sensor_id, start_s=start_s)
                    synth_feed = _Ars408SyntheticFeed(lr_emu, ctx.world, dev.mount, obstacles)
                    lr.mode, lr.feed = "synthetic", synth_feed
                    ctx.sim.extra.append(_Gate(lr_emu, synth_feed.next_due, synth_feed.before))
                    if ctx.faults is not None:
                        ctx.faults.add(dev_name, lr_emu)

    sr = None
    if srs:
        sr_name, sr_dev = srs[0]
        sr = SrRadar(sr_name, sr_dev, sr_dev.bus)
        mount = Mount.from_config(sr_dev.mount)
        sr.driver = Iwr6843Driver(ctx.serial_links[sr_dev.bus], mount=mount, frame_period_s=sr_dev.frame_period_s,
                                  stale_after_periods=stale_n, source=BAND_SR)
        if emulated:
            from firmware_bridge.emulation.iwr6843 import (
                Iwr6843Emulator,
                SensorTarget,
                world_to_sensor,
            )

            link = ctx.emulator_serial[sr_dev.bus]
            if opts.get("sr_replay"):
                path = _replay_path(opts["sr_replay"], "--sr-replay")
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise ConfigError(str(path), "--sr-replay", f"cannot read capture: {exc.strerror or exc}") from exc
                _check_sr_replay(path, data)
                sr_emu = Iwr6843Emulator(link, data, frame_period_s=sr_dev.frame_period_s, seed=ctx.seed,
                                      start_s=start_s, loop=True)
                sr.mode = "replay"
            else:
                world = ctx.world

                def targets(t_s: float, _obs=obstacles, _mount=mount, _world=world) -> list[Any]:
                    pose = Pose2D(_world.x_m, _world.y_m, _world.yaw_rad)
                    out = []
                    for o in _obs:
                        ox, oy = o.x_m + o.vx_mps * t_s, o.y_m + o.vy_mps * t_s
                        xs, ys = world_to_sensor(ox, oy, pose, _mount)
                        rng = math.hypot(xs, ys)
                        # range rate: relative velocity along the line of sight
                        rvx, rvy = o.vx_mps - _world.vx_mps, o.vy_mps - _world.vy_mps
                        dx, dy = ox - _world.x_m, oy - _world.y_m
                        dist = math.hypot(dx, dy)
                        rr = (rvx * dx + rvy * dy) / dist if dist > 0 else 0.0
                        if rng > 0:
                            out.append(SensorTarget(xs, ys, 0.0, rr))
                    return out

                sr_emu = Iwr6843Emulator(link, targets, frame_period_s=sr_dev.frame_period_s, seed=ctx.seed,
                                      start_s=start_s)
                sr.mode = "synthetic"
            sr.emulator = sr_emu

            def sr_next_due(_emu: Iwr6843Emulator = sr_emu) -> float | None:
                return _emu.next_due_s

            ctx.sim.extra.append(_Gate(sr_emu, sr_next_due))
            if ctx.faults is not None:
                ctx.faults.add(sr_name, sr_emu)
    return RadarSubsystem(radar_cfg, lr, sr, ctx.record)
