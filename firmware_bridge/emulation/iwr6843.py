"""Emulated TI IWR6843 radar: writes the out-of-box demo's UART packets on a link.

Two modes, picked by the second constructor argument:

* **synthetic** -- a callable ``targets_provider(now_s)`` returns the targets in the
  SENSOR frame (TI axes: x right, y boresight, z up); each frame the emulator turns
  them into a seeded, noisy point cloud (a few points per target inside the field of
  view, dropped with a miss probability, plus occasional clutter points), with side
  info and statistics, encoded by :func:`firmware_bridge.protocols.iwr6843.encode_packet`;
* **replay** -- ``bytes`` of a captured ``.dat`` stream, cut by
  :func:`~firmware_bridge.protocols.iwr6843.split_stream` into per-frame chunks (every
  byte kept, garbage included) and written one chunk per frame period.

:meth:`Iwr6843Emulator.step` is called by the lockstep loop (or an emulator thread) with
the current time; it writes whole packets when they are due and never sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from firmware_bridge.emulation.faults import FaultParams, FaultSpec
from firmware_bridge.protocols.frames import Mount, Pose2D, apply_inverse
from firmware_bridge.protocols.iwr6843 import (
    FrameStatistics,
    RadarPoint,
    encode_packet,
    radar_to_sensor,
    split_stream,
)
from hal.serial.link import SerialLink

__all__ = ["Iwr6843Emulator", "SensorTarget", "world_to_sensor"]

#: Radar CPU clock that drives ``timeCpuCycles``: 200 MHz, as the real capture shows
#: (20,000,000 cycles between frames 100 ms apart).
CPU_CLOCK_HZ = 200_000_000


@dataclass(frozen=True, slots=True)
class SensorTarget:
    """A target as the radar sees it, in the SENSOR frame.

    Attributes
    ----------
    x_m, y_m, z_m : float
        Centre position, TI sensor frame (x right, y boresight, z up), m.
    radial_velocity_mps : float
        Range rate, m/s, positive when receding.
    extent_m : float
        Radius over which points scatter around the centre, m.
    snr_db : float
        Mean SNR of its points, dB.
    """

    x_m: float
    y_m: float
    z_m: float = 0.0
    radial_velocity_mps: float = 0.0
    extent_m: float = 0.1
    snr_db: float = 20.0


def world_to_sensor(
    x_world_m: float,
    y_world_m: float,
    vehicle_pose: Pose2D,
    mount: Mount,
) -> tuple[float, float]:
    """Express a world-frame point in the TI SENSOR frame of a mounted radar.

    Parameters
    ----------
    x_world_m, y_world_m : float
        Point in the world frame, m.
    vehicle_pose : Pose2D
        Vehicle (body) pose in the world frame.
    mount : Mount
        Radar pose in the body frame.

    Returns
    -------
    (float, float)
        ``(x_sensor_m, y_sensor_m)``: x to the right of the boresight, y along it.
        Inverse of :func:`hal.devices.iwr6843.sensor_to_body` composed with the pose:
        world -> body -> radar (:func:`~firmware_bridge.protocols.frames.apply_inverse`)
        -> TI axes (:func:`~firmware_bridge.protocols.iwr6843.radar_to_sensor`).
    """
    body = apply_inverse(vehicle_pose, (x_world_m, y_world_m))
    return radar_to_sensor(*apply_inverse(mount, body))


class Iwr6843Emulator:
    """Emulated IWR6843 on the device end of a ``SerialLink``.

    Parameters
    ----------
    link : SerialLink
        Device end of the radar's UART (``write(bytes) -> int``).
    source : callable or bytes-like
        ``targets_provider(now_s) -> iterable of SensorTarget`` (synthetic mode) or the
        bytes of a captured stream (replay mode).
    frame_period_s : float
        Time between packets, s (100 ms in the reference chirp configuration).
    seed : int
        Seed of the noise generator (synthetic mode); same seed, same bytes.
    start_s : float, optional
        Time of the first packet, s (default: the first :meth:`step`).
    loop : bool
        Replay mode: start again after the last chunk (default False: fall silent).
    max_range_m : float
        Synthetic: farthest detectable range, m (``cfarFovCfg`` range 0..11.11 m).
    fov_azimuth_deg : float
        Synthetic: half field of view in azimuth, deg.
    range_std_m : float
        Synthetic: 1-sigma range noise, m (a few range bins of 4.4 cm in the reference
        configuration).
    azimuth_std_deg : float
        Synthetic: 1-sigma azimuth noise, deg.
    doppler_std_mps : float
        Synthetic: 1-sigma Doppler noise, m/s.
    points_per_target : (int, int)
        Synthetic: inclusive range of points drawn per visible target.
    miss_probability : float
        Synthetic: probability that a visible target yields no points in a frame.
    clutter_rate : float
        Synthetic: mean number of clutter points per frame (Poisson).
    first_frame_number : int
        ``frameNumber`` of the first synthetic packet.

    Raises
    ------
    ValueError
        If the period is not positive or ``source`` is neither callable nor bytes.

    Attributes
    ----------
    frames_sent, bytes_sent, frames_skipped : int
        Counters; ``frames_skipped`` counts due frames dropped because ``step`` was
        called more than ``max_frames_per_step`` periods late.
    silent : bool
        Fault knob: while True nothing is written (the radar stops sending, B01), though
        frame numbers keep counting.
    """

    max_frames_per_step = 50

    #: Faults of a plan (``emulation.faults`` entries whose target is this radar).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("writes nothing; frame numbers keep counting (SAFETY.md B01)"),
    })

    def __init__(
        self,
        link: SerialLink,
        source: Callable[[float], Iterable[SensorTarget]] | bytes | bytearray | memoryview,
        *,
        frame_period_s: float = 0.1,
        seed: int = 0,
        start_s: float | None = None,
        loop: bool = False,
        max_range_m: float = 11.11,
        fov_azimuth_deg: float = 60.0,
        range_std_m: float = 0.04,
        azimuth_std_deg: float = 1.0,
        doppler_std_mps: float = 0.05,
        points_per_target: tuple[int, int] = (1, 3),
        miss_probability: float = 0.05,
        clutter_rate: float = 0.2,
        first_frame_number: int = 0,
    ) -> None:
        if not (frame_period_s > 0 and math.isfinite(frame_period_s)):
            raise ValueError(f"frame_period_s must be > 0, got {frame_period_s!r}")
        self.link = link
        self.frame_period_s = float(frame_period_s)
        self._period_ns = int(round(frame_period_s * 1e9))
        self._provider: Callable[[float], Iterable[SensorTarget]] | None
        if callable(source):
            self._provider = source
            self._chunks: list[bytes] | None = None
        elif isinstance(source, (bytes, bytearray, memoryview)):
            self._provider = None
            self._chunks = split_stream(source)
        else:
            raise ValueError("source must be a targets_provider callable or captured bytes")
        self.loop = bool(loop)
        self._rng = np.random.default_rng(seed)
        self.max_range_m = float(max_range_m)
        self.fov_azimuth_rad = math.radians(fov_azimuth_deg)
        self.range_std_m = float(range_std_m)
        self.azimuth_std_rad = math.radians(azimuth_std_deg)
        self.doppler_std_mps = float(doppler_std_mps)
        self.points_per_target = (int(points_per_target[0]), int(points_per_target[1]))
        self.miss_probability = float(miss_probability)
        self.clutter_rate = float(clutter_rate)
        self._next_due_ns: int | None = None if start_s is None else int(round(start_s * 1e9))
        self._frame_number = int(first_frame_number)
        self._replay_index = 0
        self._tx = bytearray()
        self.silent = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_skipped = 0
        self.tx_dropped_bytes = 0

    @property
    def replay_done(self) -> bool:
        """Replay mode: True once every chunk has been written (never with ``loop``)."""
        return self._chunks is not None and not self.loop and self._replay_index >= len(self._chunks)

    @property
    def replay_frames(self) -> int:
        """Replay mode: number of per-frame chunks in the capture (0 in synthetic mode)."""
        return 0 if self._chunks is None else len(self._chunks)

    @property
    def next_due_s(self) -> float | None:
        """Time at which the next packet is due, s.

        None before the first :meth:`step` when no ``start_s`` was given; :meth:`step` at
        a time ``>=`` this writes it.
        """
        return None if self._next_due_ns is None else self._next_due_ns * 1e-9

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``silent`` (fault-plan target protocol)."""
        if fault != "silent":
            raise KeyError(f"Iwr6843Emulator has no fault {fault!r}")
        self.silent = True

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End ``silent`` at ``now_s`` (s)."""
        if fault == "silent":
            self.silent = False

    def inject_bytes(self, data: bytes) -> None:
        """Fault knob: write raw bytes (garbage, a truncated packet) on the link now."""
        self._write(bytes(data))

    def step(self, now_s: float) -> int:
        """Write every packet that is due at ``now_s``; return how many were written.

        Per-tick; never sleeps. Packets are due at ``start + k * frame_period_s``; a step
        that comes several periods late writes the missed packets in order (the real
        radar would have sent them), at most ``max_frames_per_step``.

        Parameters
        ----------
        now_s : float
            Emulation time, s.

        Returns
        -------
        int
            Packets (or replay chunks) written by this call.
        """
        now_ns = int(round(now_s * 1e9))
        if self._next_due_ns is None:
            self._next_due_ns = now_ns
        written = 0
        self._flush()
        while self._next_due_ns <= now_ns:
            due_ns = self._next_due_ns
            self._next_due_ns += self._period_ns
            if written >= self.max_frames_per_step:
                self.frames_skipped += 1
                continue
            packet = self._next_packet(due_ns)
            if packet is None:
                continue
            if not self.silent:
                self._write(packet)
                self.frames_sent += 1
                written += 1
        return written

    # -- internals -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._tx += data
        self._flush()

    def _flush(self) -> None:
        if not self._tx:
            return
        n = self.link.write(bytes(self._tx))
        n = max(0, min(int(n), len(self._tx)))
        self.bytes_sent += n
        del self._tx[:n]
        if len(self._tx) > 1 << 20:  # a UART that never drains: drop, as a real FIFO would
            self.tx_dropped_bytes += len(self._tx)
            self._tx.clear()

    def _next_packet(self, due_ns: int) -> bytes | None:
        if self._chunks is not None:
            if self._replay_index >= len(self._chunks):
                if not self.loop or not self._chunks:
                    return None
                self._replay_index = 0
            chunk = self._chunks[self._replay_index]
            self._replay_index += 1
            return chunk
        due_s = due_ns * 1e-9
        assert self._provider is not None  # synthetic mode: no chunks, a provider
        points = self._synthesize(list(self._provider(due_s)))
        frame_number = self._frame_number & 0xFFFFFFFF
        self._frame_number += 1
        stats = FrameStatistics(
            inter_frame_processing_time_us=4000 + 20 * len(points),
            transmit_output_time_us=8500,
            inter_frame_processing_margin_us=76000,
            inter_chirp_processing_margin_us=0,
            active_frame_cpu_load_pct=0,
            inter_frame_cpu_load_pct=4,
        )
        return encode_packet(
            frame_number,
            points,
            time_cpu_cycles=(due_ns * CPU_CLOCK_HZ) // 1_000_000_000,
            stats=stats,
        )

    def _synthesize(self, targets: list[SensorTarget]) -> list[RadarPoint]:
        rng = self._rng
        pts: list[RadarPoint] = []
        lo, hi = self.points_per_target
        for t in targets:
            rng_m = math.hypot(t.x_m, t.y_m)
            az = math.atan2(t.x_m, t.y_m)  # from boresight, positive to the right (TI)
            if not (0.0 < rng_m <= self.max_range_m and abs(az) <= self.fov_azimuth_rad):
                continue
            if rng.random() < self.miss_probability:
                continue
            for _ in range(int(rng.integers(lo, hi + 1))):
                r = rng_m + rng.normal(0.0, self.range_std_m) + rng.uniform(-t.extent_m, t.extent_m)
                a = az + rng.normal(0.0, self.azimuth_std_rad)
                r = max(r, 0.05)
                snr = float(max(t.snr_db - 10.0 * math.log10(max(rng_m, 0.1)) + rng.normal(0.0, 2.0), 5.0))
                pts.append(
                    RadarPoint(
                        x_m=r * math.sin(a),
                        y_m=r * math.cos(a),
                        z_m=t.z_m,
                        doppler_mps=t.radial_velocity_mps + rng.normal(0.0, self.doppler_std_mps),
                        snr_db=round(snr, 1),
                        noise_db=round(float(75.0 + rng.normal(0.0, 3.0)), 1),
                    )
                )
        for _ in range(int(rng.poisson(self.clutter_rate))):
            r = rng.uniform(0.3, self.max_range_m)
            a = rng.uniform(-self.fov_azimuth_rad, self.fov_azimuth_rad)
            pts.append(
                RadarPoint(
                    x_m=r * math.sin(a),
                    y_m=r * math.cos(a),
                    z_m=0.0,
                    doppler_mps=0.0,
                    snr_db=round(float(rng.uniform(6.0, 12.0)), 1),
                    noise_db=round(float(75.0 + rng.normal(0.0, 3.0)), 1),
                )
            )
        return pts
