"""The radars' emulation: the far end of the ARS408's CAN node and the IWR6843's UART.

Part of the composition room (:mod:`controller.rig`), the only place that imports
:mod:`firmware_bridge.emulation`. The emulators (synthetic from ``emulation.obstacles``,
or replays of ``--lr-replay`` / ``--sr-replay`` recordings) are stepped from the
simulation behind gates in ``sim.extra``. :func:`controller.rig.radar.build` builds them
beside the drivers on an emulated rig; :func:`emulate` builds them alone, for the far end
of a two-process rig (``qiki emulate``, :mod:`controller.rig.far_end`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import Ars408DeviceCfg, Iwr6843DeviceCfg
from controller.errors import ConfigError
from firmware_bridge.emulation.ars408 import Ars408ReplayEmulator
from firmware_bridge.emulation.faults import FaultParams
from firmware_bridge.protocols.frames import Mount, Pose2D, compose, rotate
from hal.errors import BusConfigError, HalError

if TYPE_CHECKING:
    import can

    from hal.can.codec import DbcCodec

__all__ = ["emulate"]


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

    @property
    def next_due_s(self) -> float:
        """Time (s) from which :meth:`step` acts (inf: never); the simulation steps it then."""
        due = self._due_s
        return math.inf if due is None else due

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
        self._kept, self._skipped_tail, self._error = self._read(path, self.rx_ids)
        self.emu = Ars408ReplayEmulator(bus, self._frames(), start_s=start_s)
        self._last_due_s = start_s
        self._period_s = 0.072

    @staticmethod
    def _read(path: Path, ids: frozenset[int]) -> tuple[list[tuple[int, can.Message]], int, BusConfigError | None]:
        """Parse the log once for every pass: the kept frames, each with the frames skipped before it.

        Returns ``(kept, skipped_after_the_last, error)``: ``error`` is the
        :class:`BusConfigError` of a log damaged after its start (raised by :meth:`_frames`
        where reading it would have raised, after the frames before the damage).
        """
        from hal.can.replay import iter_can_log

        kept: list[tuple[int, can.Message]] = []
        skipped = 0
        try:
            for m in iter_can_log(path):
                if (m.is_error_frame or m.is_remote_frame or m.is_extended_id
                        or (ids and m.arbitration_id not in ids)):
                    skipped += 1
                    continue
                kept.append((skipped, m))
                skipped = 0
        except BusConfigError as exc:
            return kept, skipped, exc
        return kept, skipped, None

    def _frames(self) -> Iterator[can.Message]:
        """One pass over the log's kept frames, in file order, with their recorded timestamps.

        Counts the skipped frames (not the radar's) as a pass reaches them, as reading
        the file lazily did.
        """
        for skipped, m in self._kept:
            self.frames_skipped += skipped
            yield m
        self.frames_skipped += self._skipped_tail
        if self._error is not None:
            raise self._error

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


def _emulate_lr(ctx: Any, dev_name: str, dev: Ars408DeviceCfg, codec: DbcCodec, rx_ids: frozenset[int],
                start_s: float, obstacles: list[Any]) -> tuple[str, Any]:
    """Build the ARS408's emulator on its own CAN node and step it from ``ctx.sim``.

    Synthetic (from ``obstacles``) or, with the ``lr_replay`` option, a replay of a CAN
    log; registered as the fault-plan target of ``dev_name``. Shared by the in-process
    build (:func:`build`) and the far end of a two-process rig (:func:`emulate`).

    Returns
    -------
    (mode, feed)
        ``"synthetic"`` or ``"replay"``, and the feed the radar summary reads.
    """
    opts = ctx.options or {}
    emu_bus = ctx.open_emulator_can(dev.bus)
    if opts.get("lr_replay"):
        path = _replay_path(opts["lr_replay"], "--lr-replay")
        _check_lr_replay(path, rx_ids, dev.sensor_id)
        replay_feed = _Ars408ReplayFeed(emu_bus, path, start_s, rx_ids)
        ctx.sim.extra.append(_Gate(replay_feed, replay_feed.next_due))
        if ctx.faults is not None:
            ctx.faults.add(dev_name, replay_feed)
        return "replay", replay_feed
    from firmware_bridge.emulation.ars408 import Ars408Emulator

    lr_emu = Ars408Emulator(emu_bus, codec, sensor_id=dev.sensor_id, start_s=start_s)
    synth_feed = _Ars408SyntheticFeed(lr_emu, ctx.world, dev.mount, obstacles)
    ctx.sim.extra.append(_Gate(lr_emu, synth_feed.next_due, synth_feed.before))
    if ctx.faults is not None:
        ctx.faults.add(dev_name, lr_emu)
    return "synthetic", synth_feed


def _emulate_sr(ctx: Any, sr_name: str, sr_dev: Iwr6843DeviceCfg, mount: Mount, start_s: float,
                obstacles: list[Any]) -> tuple[str, Any]:
    """Build the IWR6843's emulator on the device end of its serial link, stepped from ``ctx.sim``.

    Synthetic (from ``obstacles``) or, with the ``sr_replay`` option, a looped UART
    capture; registered as the fault-plan target of ``sr_name``. Shared by :func:`build`
    and :func:`emulate`.

    Returns
    -------
    (mode, emulator)
        ``"synthetic"`` or ``"replay"``, and the :class:`Iwr6843Emulator`.

    Raises
    ------
    ConfigError
        A capture that cannot be read or holds no valid packet.
    """
    from firmware_bridge.emulation.iwr6843 import (
        Iwr6843Emulator,
        SensorTarget,
        world_to_sensor,
    )

    opts = ctx.options or {}
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
        mode = "replay"
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
        mode = "synthetic"

    def sr_next_due(_emu: Iwr6843Emulator = sr_emu) -> float | None:
        return _emu.next_due_s

    ctx.sim.extra.append(_Gate(sr_emu, sr_next_due))
    if ctx.faults is not None:
        ctx.faults.add(sr_name, sr_emu)
    return mode, sr_emu


def emulate(ctx: Any) -> None:
    """Build the radars' emulators only: the far end of a two-process rig.

    What :func:`build` adds to ``ctx.sim`` on an emulated rig, without drivers or the
    radar subsystem (``qiki emulate``, :func:`controller.rig.far_end.build_far_end`). As
    in :func:`build`, no ARS408 emulator is built when the bus's DBC lacks its messages.

    Parameters
    ----------
    ctx : controller.rig.context.BuildContext
        The far end's context: ``sim``, ``world``, ``faults``, ``open_emulator_can``,
        ``emulator_serial``, ``options``; no host port.

    Raises
    ------
    ConfigError
        A replay file with nothing usable in it.
    """
    from hal.devices.ars408 import Ars408Driver, config_from_mapping

    rig = ctx.cfg
    start_s = ctx.clock.now_s()
    obstacles = list(rig.emulation.obstacles) if rig.emulation is not None else []
    for dev_name, dev in rig.devices.items():
        if isinstance(dev, Ars408DeviceCfg):
            codec = ctx.can_codecs[dev.bus]
            try:  # only for its receive IDs, as in check()
                driver = Ars408Driver(codec, config_from_mapping(dev.model_dump(), name=dev_name))
            except HalError:
                continue  # K02: the controller's POST names what the DBC lacks
            _emulate_lr(ctx, dev_name, dev, codec, frozenset(driver.rx_ids), start_s, obstacles)
            break  # check(): at most one
    for sr_name, sr_dev in rig.devices.items():
        if isinstance(sr_dev, Iwr6843DeviceCfg):
            _emulate_sr(ctx, sr_name, sr_dev, Mount.from_config(sr_dev.mount), start_s, obstacles)
            break
