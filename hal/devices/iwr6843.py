"""Driver of the TI IWR6843 short-range radar on its data UART (a ``SerialLink``).

Per tick the driver drains the link (bounded), feeds the sans-IO parser of
:mod:`firmware_bridge.protocols.iwr6843`, turns every accepted frame into a
:class:`RadarScan` of detections in the vehicle BODY frame, and keeps the radar's
freshness (SAFETY.md B01: stale when no complete frame for ``stale_after_periods``
frame periods).

Frames
------
* SENSOR frame (TI, as on the wire): x to the right looking out of the antenna, y along
  the boresight, z up (TI mmWave SDK convention; the output-format page gives no axes,
  see :mod:`firmware_bridge.protocols.iwr6843`).
* RADAR frame: the sensor frame turned to the house convention, x along the boresight,
  y to the left: ``x_radar = y_sensor``, ``y_radar = -x_sensor``.
* BODY frame (ARCHITECTURE.md section 6): x forward, y left, z up. The mount
  (:class:`firmware_bridge.protocols.frames.Mount`, ``{x_m, y_m, yaw_deg}`` in the rig)
  places the radar frame in it, yaw counter-clockwise from body x to the boresight:
  ``p_body = [x_m, y_m] + R(yaw) p_radar`` (:func:`firmware_bridge.protocols.frames.apply`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from firmware_bridge.protocols.frames import FrameError, Mount, apply, wrap_angle
from firmware_bridge.protocols.iwr6843 import (
    DEFAULT_MAX_FRAME_LEN,
    FrameStatistics,
    Iwr6843Parser,
    PointGate,
    RadarFrame,
    gate_points,
    sensor_to_radar,
)
from hal.can.ingress import gap_exceeds, to_ns
from hal.errors import BusConfigError, HalError
from hal.serial.link import SerialLink
from hal.snapshot import JsonValue, State, capture, capture_all, part, restore_all
from hal.snapshot import apply as apply_state

__all__ = [
    "Iwr6843Driver",
    "MountFields",
    "MountSpec",
    "RadarScan",
    "SrDetection",
    "frame_to_detections",
    "parse_mount",
    "sensor_to_body",
]


class MountFields(Protocol):
    """A mount as the rig gives it (e.g. ``controller.config.MountCfg``): m, m, deg."""

    @property
    def x_m(self) -> float:
        """Radar position x in the body frame, m."""

    @property
    def y_m(self) -> float:
        """Radar position y in the body frame, m."""

    @property
    def yaw_deg(self) -> float:
        """Boresight, counter-clockwise from body x, degrees."""


#: A mount in any shape a configuration gives it in (what :func:`parse_mount` takes): a
#: :class:`Mount`, ``(x_m, y_m, yaw_deg)``, a mapping with those keys or a
#: :class:`MountFields` object.
MountSpec = Mount | MountFields | Mapping[str, float] | Sequence[float]

#: The driver's default mount: at the body origin, boresight along body x.
_BODY_ORIGIN = Mount()


@dataclass(frozen=True, slots=True)
class SrDetection:
    """One IWR6843 point as a detection in the vehicle BODY frame.

    Attributes
    ----------
    x_body_m, y_body_m, z_body_m : float
        Position in the body frame (x forward, y left, z up), m. ``z_body_m`` is the
        sensor's z unchanged (the mount height is not modelled).
    range_m : float
        Slant range from the radar, m (``|p_sensor|``).
    azimuth_body_rad : float
        Bearing of the line of sight, counter-clockwise from body x, rad in (-pi, pi]
        (radar azimuth plus mount yaw; what the tracker's ``Detection.azimuth_rad`` wants).
    azimuth_radar_rad : float
        Bearing counter-clockwise from the boresight, rad.
    doppler_mps : float
        Radial velocity as reported, m/s, positive when the range grows.
    snr_db, noise_db : float or None
        Side info (TLV type 7) when present, dB.
    frame_number : int
        The radar frame it came from.
    source : str
        Sensor/range band name (``"sr"`` by default).
    """

    x_body_m: float
    y_body_m: float
    z_body_m: float
    range_m: float
    azimuth_body_rad: float
    azimuth_radar_rad: float
    doppler_mps: float
    snr_db: float | None
    noise_db: float | None
    frame_number: int
    source: str = "sr"


@dataclass(frozen=True, slots=True)
class RadarScan:
    """The detections of one radar frame.

    Attributes
    ----------
    frame_number : int
        Header ``frameNumber``.
    received_s : float
        Time of the poll that completed the frame, s on the controller's monotonic clock.
    time_cpu_cycles : int
        Header ``timeCpuCycles`` (radar CPU time, u32, wraps).
    detections : tuple of SrDetection
        Body-frame detections, one per point, wire order.
    stats : FrameStatistics or None
        The radar's data-path statistics (TLV type 6) when sent.
    """

    frame_number: int
    received_s: float
    time_cpu_cycles: int
    detections: tuple[SrDetection, ...]
    stats: FrameStatistics | None


def parse_mount(mount: MountSpec) -> Mount:
    """Return a configured mount as a :class:`Mount` (degrees converted there, once).

    Parameters
    ----------
    mount : MountSpec
        Radar pose in the body frame: m, m, deg CCW from body x to the boresight. A
        :class:`Mount`, ``(x_m, y_m, yaw_deg)``, a mapping with those keys (``yaw_deg``
        optional), or an object with those attributes (e.g. a rig ``MountCfg``).

    Returns
    -------
    Mount

    Raises
    ------
    BusConfigError
        If the shape is wrong or a value is not a finite number.
    """
    try:
        return Mount.from_config(mount)
    except FrameError as exc:
        raise BusConfigError(f"iwr6843 {exc}") from exc


def sensor_to_body(
    x_sensor_m: float, y_sensor_m: float, mount: MountSpec
) -> tuple[float, float]:
    """Map a point from the TI SENSOR frame to the vehicle BODY frame.

    Parameters
    ----------
    x_sensor_m : float
        TI x (to the right of the boresight), m.
    y_sensor_m : float
        TI y (along the boresight), m.
    mount : MountSpec
        Radar pose in the body frame (any shape :func:`parse_mount` takes).

    Returns
    -------
    (float, float)
        ``(x_body_m, y_body_m)``: ``[x_m, y_m] + R(yaw) [y_sensor, -x_sensor]``.

    Raises
    ------
    BusConfigError
        If ``mount`` is malformed.
    """
    return apply(parse_mount(mount), sensor_to_radar(x_sensor_m, y_sensor_m))


def frame_to_detections(
    frame: RadarFrame, mount: Mount, *, source: str = "sr"
) -> tuple[SrDetection, ...]:
    """Turn the points of one frame into BODY-frame detections through the mount pose.

    Per frame; the same maths as :func:`sensor_to_body` (``p_body = [x_m, y_m] +
    R(yaw) [y_sensor, -x_sensor]``).

    Parameters
    ----------
    frame : RadarFrame
        A decoded packet; its points are in the TI SENSOR frame, m and m/s.
    mount : Mount
        Radar pose in the body frame (see :func:`parse_mount`).
    source : str
        Name put on every detection.

    Returns
    -------
    tuple of SrDetection
        One per point, wire order.
    """
    yaw = mount.yaw_rad
    hypot, atan2 = math.hypot, math.atan2
    number = frame.frame_number
    dets = []
    for p in frame.points:
        fwd, left = sensor_to_radar(p.x_m, p.y_m)
        az = atan2(left, fwd)
        x_body_m, y_body_m = apply(mount, (fwd, left))
        dets.append(
            SrDetection(
                x_body_m=x_body_m,
                y_body_m=y_body_m,
                z_body_m=p.z_m,
                range_m=hypot(p.x_m, p.y_m, p.z_m),
                azimuth_body_rad=wrap_angle(az + yaw),
                azimuth_radar_rad=az,
                doppler_mps=p.doppler_mps,
                snr_db=p.snr_db,
                noise_db=p.noise_db,
                frame_number=number,
                source=source,
            )
        )
    return tuple(dets)


class Iwr6843Driver:
    """IWR6843 driver on a ``SerialLink`` (hal/serial/link.py).

    Parameters
    ----------
    link : SerialLink
        The radar's data UART: ``read(max_bytes) -> bytes`` (non-blocking, ``b""`` when
        empty). Optional ``is_open`` and ``reopen()`` are used to recover (SAFETY.md D12).
    mount : Mount
        Radar pose in the body frame (m, m, rad CCW from body x to the boresight); build
        it from a rig ``MountCfg`` with :func:`parse_mount` or :meth:`Mount.from_config`.
        Default: at the body origin, boresight along body x.
    frame_period_s : float
        Configured frame period, s (``frameCfg`` periodicity: 100 ms in the reference
        ``profile_3d_automated_doors_ISK.cfg``).
    stale_after_periods : float
        The radar is stale when no new frame arrived for more than this many periods
        (SAFETY.md B01; default 3).
    max_frame_len : int
        Parser bound on ``totalPacketLen``, bytes.
    max_read_bytes_per_poll : int
        Ingress bound per poll, bytes (SAFETY.md B08); the rest waits in the link.
    read_chunk_bytes : int
        Size of each ``link.read`` request, bytes.
    reopen_backoff_s : (float, float)
        First and largest wait between reopen attempts after a link failure, s
        (doubling in between).
    source : str
        Name put on detections (range band for fusion), default ``"sr"``.
    point_gate : PointGate, optional
        Where a point may lie (default: the reference chirp's 18 m and the configured
        +-90 deg angle-of-arrival window); points outside are dropped before detection
        and counted by reason (``points_dropped`` in :meth:`stats`).
    max_frame_jump : int, optional
        Largest forward step of ``frameNumber`` counted as lost frames (default 1000,
        100 s at 10 Hz); a larger step, or a step backwards, is a jump (``frame_number_jumps``:
        a reboot or a corrupted header, which has no CRC), accepted and resynchronised.

    Raises
    ------
    BusConfigError
        On a mount that is not a finite :class:`Mount`, or a non-positive period/bound.

    Notes
    -----
    Freshness counts only frames with a new ``frameNumber``: a radar that repeats its
    last frame (frozen, SAFETY.md D01) goes stale. All times come from the caller's
    monotonic clock (``now_s``), never the radar's CPU counter, and staleness compares
    integer nanoseconds (:func:`hal.can.ingress.gap_exceeds`). Header consistency (TLV
    lengths against ``totalPacketLen``, point counts against the TLV lengths) is the
    parser's (:class:`~firmware_bridge.protocols.iwr6843.RejectReason`).
    """

    def __init__(
        self,
        link: SerialLink,
        *,
        mount: Mount = _BODY_ORIGIN,
        frame_period_s: float = 0.1,
        stale_after_periods: float = 3,
        max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
        max_read_bytes_per_poll: int = 65536,
        read_chunk_bytes: int = 4096,
        reopen_backoff_s: tuple[float, float] = (0.5, 5.0),
        source: str = "sr",
        point_gate: PointGate | None = None,
        max_frame_jump: int = 1000,
    ) -> None:
        if not (isinstance(mount, Mount) and mount.is_finite()):
            raise BusConfigError(f"iwr6843 mount must be a finite Mount (see parse_mount), got {mount!r}")
        self._mount = mount
        if not (frame_period_s > 0 and math.isfinite(frame_period_s)):
            raise BusConfigError(f"iwr6843 frame_period_s must be > 0, got {frame_period_s!r}")
        if not stale_after_periods > 0:
            raise BusConfigError(f"iwr6843 stale_after_periods must be > 0, got {stale_after_periods!r}")
        if max_read_bytes_per_poll <= 0 or read_chunk_bytes <= 0:
            raise BusConfigError("iwr6843 read bounds must be > 0")
        self.link = link
        self.frame_period_s = float(frame_period_s)
        self.stale_after_periods = float(stale_after_periods)
        self.stale_after_s = self.frame_period_s * self.stale_after_periods
        self.stale_after_ns = to_ns(self.stale_after_s)
        self.point_gate = point_gate if point_gate is not None else PointGate()
        self.max_frame_jump = int(max_frame_jump)
        self.max_read_bytes_per_poll = int(max_read_bytes_per_poll)
        self.read_chunk_bytes = int(read_chunk_bytes)
        self.source = source
        self._backoff_first_s, self._backoff_max_s = (float(v) for v in reopen_backoff_s)
        self._backoff_s = self._backoff_first_s
        self._next_reopen_s: float | None = None
        self._max_frame_len = int(max_frame_len)
        self.parser = Iwr6843Parser(max_frame_len=self._max_frame_len)
        self._first_poll_s: float | None = None
        self._last_fresh_s: float | None = None
        self._last_frame_number: int | None = None
        self._was_stale = False
        self.last_scan: RadarScan | None = None
        #: Counters (see :meth:`stats`).
        self.bytes_read = 0
        self.scans = 0
        self.detections = 0
        self.frame_number_gaps = 0
        self.frame_number_repeats = 0
        self.frame_number_jumps = 0
        self.points_dropped: dict[str, int] = {}
        self.read_budget_hits = 0
        self.link_errors = 0
        self.reopens = 0
        self.stale_events = 0
        self.last_link_error = ""

    # ------------------------------------------------------------------ snapshot
    #: A snapshot's fields (issue 12 part 4): freshness, reopen backoff, frame numbering,
    #: counters; the parser's partial packet beside them.
    SNAPSHOT_FIELDS = ("_backoff_s", "_next_reopen_s", "_first_poll_s", "_last_fresh_s", "_last_frame_number",
                       "_was_stale", "last_scan", "bytes_read", "scans", "detections", "frame_number_gaps",
                       "frame_number_repeats", "read_budget_hits", "link_errors", "reopens", "stale_events",
                       "last_link_error", "frame_number_jumps", "points_dropped")

    def snapshot(self) -> State:
        """Return the driver's state (:mod:`hal.snapshot`): latest values, counters, partial input."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "parser": capture_all(self.parser)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a driver built from the same configuration."""
        apply_state(self, state, self.SNAPSHOT_FIELDS)
        restore_all(self.parser, part(state, "parser"))

    @property
    def mount(self) -> Mount:
        """Radar pose in the body frame."""
        return self._mount

    # -- per tick --------------------------------------------------------------------

    def poll(self, now_s: float) -> list[RadarScan]:
        """Drain the link, parse, and return the scans completed since the last poll.

        Per-tick; never blocks (the link read is non-blocking) and never raises on wire
        content. A link failure (``HalError``) is counted, the parser is reset, and a
        reopen is tried with backoff on later polls; meanwhile the radar goes stale.

        Parameters
        ----------
        now_s : float
            Controller time, s (monotonic clock).

        Returns
        -------
        list of RadarScan
            In stream order; usually zero or one per poll.
        """
        if self._first_poll_s is None:
            self._first_poll_s = now_s
        scans: list[RadarScan] = []
        if not self._link_usable(now_s):
            self._update_stale(now_s)
            return scans
        budget = self.max_read_bytes_per_poll
        while budget > 0:
            try:
                data = self.link.read(min(self.read_chunk_bytes, budget))
            except HalError as exc:
                self._on_link_error(now_s, exc)
                break
            if not data:
                break
            budget -= len(data)
            self.bytes_read += len(data)
            for frame in self.parser.feed(data):
                scan = self._on_frame(frame, now_s)
                if scan is not None:
                    scans.append(scan)
        else:
            self.read_budget_hits += 1
        self._update_stale(now_s)
        return scans

    def is_stale(self, now_s: float) -> bool:
        """Return True when no new frame arrived for more than ``stale_after_s``.

        Before the first frame the age counts from the first :meth:`poll`; a driver that
        was never polled is stale.

        Parameters
        ----------
        now_s : float
            Controller time, s.
        """
        ref = self._last_fresh_s if self._last_fresh_s is not None else self._first_poll_s
        if ref is None:
            return True
        return gap_exceeds(now_s, ref, self.stale_after_ns)

    def age_s(self, now_s: float) -> float | None:
        """Seconds since the last new frame, or None before the first one."""
        return None if self._last_fresh_s is None else now_s - self._last_fresh_s

    def stats(self) -> dict[str, object]:
        """Return the driver's and the parser's counters as a JSON-ready dict."""
        p = self.parser.stats()
        return {
            "bytes_read": self.bytes_read,
            "frames": self.scans,
            "detections": self.detections,
            "rejects": p["rejects"],
            "resyncs": p["resyncs"],
            "garbage_bytes": p["garbage_bytes"],
            "tlvs": p["tlvs"],
            "frame_number_gaps": self.frame_number_gaps,
            "frame_number_repeats": self.frame_number_repeats,
            "frame_number_jumps": self.frame_number_jumps,
            "points_dropped": dict(sorted(self.points_dropped.items())),
            "read_budget_hits": self.read_budget_hits,
            "link_errors": self.link_errors,
            "reopens": self.reopens,
            "stale_events": self.stale_events,
            "last_frame_number": self._last_frame_number,
            "headers": p["headers"],
            "unsupported": p["unsupported"],
        }

    def waiting_text(self) -> str:
        """Why no frame was accepted yet, for POST (boot only).

        Returns
        -------
        str
            ``"receiving packets, all rejected: unsupported SDK 2.1 / xWR14xx"`` when
            packets arrived and every one was refused (the reasons named by
            :meth:`Iwr6843Parser.rejection_text`), ``"receiving bytes (N), no valid
            packet yet"`` when bytes but no packet arrived, ``"no frame yet"`` when
            nothing arrived. The radar component reports it after ``"waiting: "``.
        """
        why = self.parser.rejection_text()
        if why is not None:
            return f"receiving packets, all rejected: {why}"
        if self.bytes_read:
            return f"receiving bytes ({self.bytes_read}), no valid packet yet"
        return "no frame yet"

    # -- internals -------------------------------------------------------------------

    def _link_usable(self, now_s: float) -> bool:
        is_open = getattr(self.link, "is_open", True)
        if is_open:
            return True
        reopen = getattr(self.link, "reopen", None)
        if reopen is None:
            return False
        if self._next_reopen_s is None:
            self._next_reopen_s = now_s + self._backoff_s
        if now_s < self._next_reopen_s:
            return False
        try:
            reopen()
        except HalError as exc:
            self.last_link_error = str(exc)
            self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
            self._next_reopen_s = now_s + self._backoff_s
            return False
        self.reopens += 1
        self._backoff_s = self._backoff_first_s
        self._next_reopen_s = None
        return True

    def _on_link_error(self, now_s: float, exc: HalError) -> None:
        self.link_errors += 1
        self.last_link_error = str(exc)
        # Bytes of a half-received packet are worthless after a reconnect.
        old = self.parser
        self.parser = Iwr6843Parser(max_frame_len=self._max_frame_len)
        self.parser.rejects.update(old.rejects)
        self.parser.resyncs = old.resyncs
        self.parser.garbage_bytes = old.garbage_bytes
        self.parser.tlv_counts.update(old.tlv_counts)
        self.parser.headers.update(old.headers)
        self.parser.unsupported.update(old.unsupported)
        self._next_reopen_s = now_s + self._backoff_s

    def _update_stale(self, now_s: float) -> None:
        stale = self.is_stale(now_s)
        if stale and not self._was_stale:
            self.stale_events += 1
        self._was_stale = stale

    def _on_frame(self, frame: RadarFrame, now_s: float) -> RadarScan | None:
        last = self._last_frame_number
        if last is not None:
            if frame.frame_number == last:
                self.frame_number_repeats += 1
                return None
            step = (frame.frame_number - last) & 0xFFFFFFFF
            if 1 < step <= self.max_frame_jump:
                self.frame_number_gaps += step - 1
            elif step > self.max_frame_jump:
                self.frame_number_jumps += 1
        self._last_frame_number = frame.frame_number
        self._last_fresh_s = now_s
        kept, dropped = gate_points(frame.points, self.point_gate)
        if dropped:
            for why in dropped:
                self.points_dropped[why] = self.points_dropped.get(why, 0) + 1
            frame = dataclasses.replace(frame, points=kept)
        dets = frame_to_detections(frame, self._mount, source=self.source)
        scan = RadarScan(
            frame_number=frame.frame_number,
            received_s=now_s,
            time_cpu_cycles=frame.time_cpu_cycles,
            detections=dets,
            stats=frame.stats,
        )
        self.scans += 1
        self.detections += len(dets)
        self.last_scan = scan
        return scan
