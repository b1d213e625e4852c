"""The radar component: ARS408 (long range, CAN) and IWR6843 (short range, UART) in the tick.

Built by :func:`controller.rig.radar.build` from the rig (``devices`` entries with
``driver: ars408`` / ``driver: iwr6843`` and the ``radar`` block); joins the vehicle's tick
through the component seam (:class:`controller.components.seam.Component`).

Per tick (:meth:`RadarSubsystem.read`)::

    ARS408 driver.poll -> take_cycles -> body-frame detections (mount pose)  --+
    IWR6843 driver.poll -> scans      -> body-frame detections (mount pose)  --+
        -> select_by_band (SR inside sr_threshold_m, LR beyond)
        -> body_to_world (MCU pose) -> Tracker.step, once per completed scan

and in :meth:`RadarSubsystem.write` the ARS408 ego speed / yaw-rate frames (0x300/0x301),
due once per object-list period, from the MCU pose (the sensor expects them every cycle,
ARS408-21 technical documentation, "Ego motion input").

Safety (:meth:`RadarSubsystem.conditions`, outside ``boot``; SAFETY.md):

* B01 -- a radar with no complete cycle / frame for 3 periods is stale -> ``fault``;
* D02 -- radar-reported errors (persistent, temporary, temperature, voltage,
  interference, wrong sensor ID, RadarState missing) -> ``fault``; arming refused;
* D03 -- out-of-range / unknown-enum values in ``reject_streak_limit`` consecutive cycles
  -> ``fault`` (single rejects are only counted);
* keep-out -- a confirmed track inside ``radar.keep_out_radius_m`` of the vehicle or with
  time to collision under ``radar.min_ttc_s`` (:func:`controller.tracking.assess_threats`)
  -> ``fault``: the vehicle goes to ``safe_mode`` and the output guard zeroes thrust from
  that very tick (the monitor runs before the FSM step and the write phase). Only tracks
  the latest covering scan confirmed are assessed (no trip on a coasting extrapolation),
  and a TTC breach needs a closing speed significant against the track's velocity
  uncertainty (no trip on the noise velocity of a young track of a static object); see
  :meth:`RadarSubsystem.threats`.

Emulation (emulated rigs only; wired by :mod:`controller.rig.radar`, the only place that
imports the emulators; this module holds only their feeds' summaries): the emulators are
appended to ``sim.extra`` behind a small gate that calls them only when they have
something due, so the 1 kHz physics loop pays one comparison per step:

* ARS408 synthetic (:class:`Ars408Emulator`): targets = ``emulation.obstacles`` (moving
  with their ``vx_mps``/``vy_mps``), scene from the world pose composed with the mount;
* ARS408 replay (``options["lr_replay"]``): :class:`Ars408ReplayEmulator` of the log onto
  the rig's CAN channel, data frames on the radar's own IDs only (a whole-bus recording's
  valve commands, ego-motion, error and remote frames are skipped and counted); a log
  with no such frame is refused at build (one line, exit 2). **The replay loops**: a recording (38 s) shorter than the
  mission (76 s) would otherwise make the radar stale and fault the run for a reason that
  is not a radar failure; the recording is of a stationary scene, so starting it again is
  seamless (the object-list cycle period is kept across the seam). The summary reports
  ``replay.passes`` so a looped replay is never mistaken for a longer recording.
  Genuine silence (B01) is tested with the synthetic emulator's ``silent`` knob.
* IWR6843 synthetic from the obstacles, or ``options["sr_replay"]`` replay of a ``.dat``
  capture (looped for the same reason); a capture with no valid packet (e.g. every packet
  from another SDK or platform) is refused at build in one line, exit 2, instead of being
  sent whole every frame period.

No I/O of its own beyond the drivers' ports; never blocks; no threads (in real time the
emulators run on the emulator thread through ``sim.extra``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from controller.components.seam import ComponentBase, Condition, DevicePost, TickView
from controller.config import Ars408DeviceCfg, Iwr6843DeviceCfg, RadarCfg
from controller.errors import ConfigError
from controller.tracking import (
    BAND_LR,
    BAND_SR,
    Detection,
    Tracker,
    TrackerConfig,
    TrackingError,
    assess_threats,
    body_to_world,
    select_by_band,
    world_to_body_point,
)
from controller.tracking.detections import tracking_detection
from firmware_bridge.protocols.frames import (
    Mount,
    Pose2D,
    apply_inverse,
    rotate_inverse,
)

__all__ = ["LrFeed", "RadarSubsystem", "speed_long_mps", "tracker_config"]

#: ARS408 status faults that are the radar's own report (SAFETY.md D02), as opposed to
#: ``stale`` (B01) and ``values_rejected`` (D03), which have their own fault keys.
_NOT_D02 = frozenset({"stale", "values_rejected"})


class _TrackNow(NamedTuple):
    """A confirmed track extrapolated to the tick time (what ``assess_threats`` reads)."""

    track_id: int
    confirmed: bool
    x_m: float
    y_m: float
    vx_mps: float
    vy_mps: float
    pvv: Any  # 2x2 velocity covariance, (m/s)^2


#: A TTC breach needs a closing speed this many standard deviations above zero.
TTC_CLOSING_SIGMAS = 2.0


def speed_long_mps(vx_world_mps: float, vy_world_mps: float, yaw_rad: float) -> float:
    """Vehicle speed along its body x axis, m/s (what ARS408 SpeedInformation carries).

    Parameters
    ----------
    vx_world_mps, vy_world_mps : float
        Vehicle velocity in the world frame, m/s.
    yaw_rad : float
        Vehicle heading, world frame, CCW, rad.

    Returns
    -------
    float
        ``v . x_body`` (negative when reversing), m/s.
    """
    return rotate_inverse(Pose2D(0.0, 0.0, yaw_rad), (vx_world_mps, vy_world_mps))[0]


def tracker_config(radar_cfg: RadarCfg, *, source: str = "radar") -> TrackerConfig:
    """Map the rig's ``radar`` block onto the tracker's tuning.

    Parameters
    ----------
    radar_cfg : RadarCfg
        ``confirm_m`` of the last ``confirm_n`` scans confirm a track (M-of-N),
        ``delete_misses`` consecutive misses delete it, ``meas_std_m`` is the 1-sigma
        position accuracy per axis, m.
    source : str
        File named in the error.

    Returns
    -------
    TrackerConfig

    Raises
    ------
    ConfigError
        When the combination is invalid (e.g. ``confirm_m > confirm_n``).
    """
    try:
        return TrackerConfig(confirm_m=radar_cfg.confirm_m, confirm_n=radar_cfg.confirm_n,
                             delete_misses=radar_cfg.delete_misses, meas_std_m=radar_cfg.meas_std_m)
    except TrackingError as exc:
        raise ConfigError(source, "radar", str(exc)) from exc


class LrFeed(Protocol):
    """What the radar component knows of an emulated ARS408 feed (built by the rig room)."""

    def replay_summary(self) -> dict[str, object] | None:
        """Return the ``replay`` block of the radar's summary (None: not a replay)."""
        ...


# --------------------------------------------------------------------------- radars
@dataclass
class _Lr:
    name: str
    cfg: Ars408DeviceCfg
    bus: str
    driver: Any = None
    port: Any = None
    build_error: str | None = None
    mode: str = "hardware"
    feed: LrFeed | None = None
    status: Any = None
    detections: int = 0
    scans: int = 0


@dataclass
class _Sr:
    name: str
    cfg: Iwr6843DeviceCfg
    bus: str
    driver: Any = None
    mode: str = "hardware"
    emulator: Any = None
    detections: int = 0
    scans: int = 0
    stale: bool = True


@dataclass
class _Breaches:
    first_s: float | None = None
    first_reason: str | None = None
    ticks: int = 0


class RadarSubsystem(ComponentBase):
    """The radars, the tracker and the radar guards of one vehicle (a :class:`~controller.components.seam.Component`).

    Built by :func:`build`; every method but :meth:`summary`/:meth:`close` is per tick.

    Parameters
    ----------
    radar_cfg : RadarCfg
        The rig's ``radar`` block (band threshold, keep-out radius, TTC limit, tracker
        confirmation and deletion, measurement standard deviation).
    lr : _Lr or None
        The long-range ARS408 (driver, CAN port, optional emulator feed).
    sr : _Sr or None
        The short-range IWR6843 (driver, optional emulator).
    record : callable ``(tick, time_s, kind, **fields)``
        Event sink.
    """

    name = "radar"

    def __init__(self, radar_cfg: RadarCfg, lr: _Lr | None, sr: _Sr | None, record: Callable[..., None]) -> None:
        self.cfg = radar_cfg
        self.lr = lr
        self.sr = sr
        self.record = record
        # One radar alone covers every range: the band split needs both.
        if lr is not None and sr is not None:
            self.sr_threshold_m = float(radar_cfg.sr_threshold_m)
        elif lr is not None:
            self.sr_threshold_m = 0.0
        else:
            self.sr_threshold_m = math.inf
        self.tracker = Tracker(tracker_config(radar_cfg))
        self.no_pose_scans = 0
        self.breaches = _Breaches()
        #: Closest approach over the run among the assessed tracks (summary).
        self.closest: dict[str, Any] = {"range_m": math.inf, "range_track": None, "range_at_s": None,
                                        "ttc_s": math.inf, "ttc_track": None, "ttc_at_s": None}
        self._pose: tuple[float, float, float] | None = None
        self._vel: tuple[float, float] = (0.0, 0.0)
        self._yaw_rate_radps = 0.0

    # ------------------------------------------------------------------ read
    def read(self, view: TickView) -> None:
        """Read phase (per tick): radar health, completed scans -> fusion -> tracker."""
        now_s = view.now_s
        p = view.pose
        if p is not None and all(math.isfinite(v) for v in (p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps, p.vy_world_mps)):
            self._pose = (p.x_m, p.y_m, p.yaw_rad)
            self._vel = (p.vx_world_mps, p.vy_world_mps)
            self._yaw_rate_radps = p.yaw_rate_radps if math.isfinite(p.yaw_rate_radps) else 0.0
        scans: list[tuple[str, list[Detection]]] = []
        lr = self.lr
        if lr is not None and lr.driver is not None:
            lr.status = lr.driver.poll(now_s)
            for cycle in lr.driver.take_cycles():
                dets = [tracking_detection(d, source=BAND_LR) for d in lr.driver.detections(cycle)]
                lr.detections += len(dets)
                lr.scans += 1
                scans.append((BAND_LR, dets))
        sr = self.sr
        if sr is not None and sr.driver is not None:
            for scan in sr.driver.poll(now_s):
                dets = [Detection(d.x_body_m, d.y_body_m, BAND_SR, range_m=d.range_m,
                                  azimuth_rad=d.azimuth_body_rad) for d in scan.detections]
                sr.detections += len(dets)
                sr.scans += 1
                scans.append((BAND_SR, dets))
            sr.stale = sr.driver.is_stale(now_s)
        if not scans:
            return
        if self._pose is None:
            self.no_pose_scans += len(scans)
            return
        pose, thr = self._pose, self.sr_threshold_m
        for band, dets in scans:
            if band == BAND_LR:
                body = select_by_band(dets, (), thr)
            else:
                body = select_by_band((), dets, thr)
            self.tracker.step(now_s, body_to_world(body, pose), in_coverage=self._coverage(band, pose, thr))

    @staticmethod
    def _coverage(band: str, pose: tuple[float, float, float], thr: float) -> Callable[[float, float], bool]:
        # An LR scan says nothing about the SR band and vice versa (no miss charged there).
        def covered(x_m: float, y_m: float) -> bool:
            bx, by = world_to_body_point(x_m, y_m, pose)
            inside = math.hypot(bx, by) < thr
            return inside if band == BAND_SR else not inside
        return covered

    # ------------------------------------------------------------------ health
    def _lr_conditions(self) -> list[tuple[str, str | None]]:
        lr = self.lr
        if lr is None:
            return []
        n = lr.name
        if lr.driver is None:
            return [(f"{n}.error", f"{n}: {lr.build_error}")]
        st = lr.status
        if st is None:
            return []
        d02 = [f for f in st.faults if f not in _NOT_D02]
        return [
            (f"{n}.stale", f"{n} stale: no complete object-list cycle for "
                           f"{lr.driver.config.stale_after_periods:g} periods" if st.stale else None),
            (f"{n}.error", f"{n} reports {', '.join(d02)}" if d02 else None),
            (f"{n}.values", f"{n}: out-of-range values in {lr.driver.config.reject_streak_limit} "
                            "consecutive cycles" if "values_rejected" in st.faults else None),
        ]

    def _sr_conditions(self) -> list[tuple[str, str | None]]:
        sr = self.sr
        if sr is None or sr.driver is None:
            return []
        return [(f"{sr.name}.stale", f"{sr.name} stale: no new frame for "
                 f"{sr.driver.stale_after_periods:g} periods" if sr.stale else None)]

    def threats(self, now_s: float) -> list[Any]:
        """Keep-out / TTC breaches of the confirmed tracks at ``now_s`` (per tick).

        Assessed: confirmed tracks whose last covering scan detected them (``misses ==
        0``); a TTC breach (outside the keep-out disc) further needs a closing speed
        significant against the track's velocity uncertainty (:data:`TTC_CLOSING_SIGMAS`).
        A coasting track is one the authoritative radar of its band just failed to see; its
        straight-line extrapolation is a guess, not evidence, and must not trip
        the vehicle (a real obstacle that is missed for one scan is assessed again at the
        next hit, one scan later). Tracks are extrapolated from their scan time to
        ``now_s`` with their own velocity (constant-velocity model); the vehicle is taken
        at its last MCU pose and velocity.

        Returns
        -------
        list of controller.tracking.Threat
            Breaches, most urgent first; empty without a pose.
        """
        if self._pose is None:
            return []
        now_tracks = []
        for t in self.tracker.confirmed():
            if t.misses:
                continue
            dt = max(0.0, now_s - t.time_s)
            now_tracks.append(_TrackNow(t.track_id, True, t.x_m + t.vx_mps * dt, t.y_m + t.vy_mps * dt,
                                        t.vx_mps, t.vy_mps, t.covariance[2:4, 2:4]))
        if not now_tracks:
            return []
        assessed = assess_threats(now_tracks, self._pose, self._vel, self.cfg.keep_out_radius_m,
                                  self.cfg.min_ttc_s, include_all=True)
        by_id = {t.track_id: t for t in now_tracks}
        assessed = [a for a in assessed if a.inside_keep_out or not a.ttc_breach
                    or self._closing_significant(a, by_id[a.track_id])]
        c = self.closest
        for a in assessed:
            if a.range_m < c["range_m"]:
                c["range_m"], c["range_track"], c["range_at_s"] = a.range_m, a.track_id, now_s
            if a.ttc_s < c["ttc_s"]:
                c["ttc_s"], c["ttc_track"], c["ttc_at_s"] = a.ttc_s, a.track_id, now_s
        return [a for a in assessed if a.is_breach]

    def _closing_significant(self, threat: Any, trk: _TrackNow) -> bool:
        """Tell whether the track closes significantly against its velocity uncertainty.

        Is the track's closing speed more than ``TTC_CLOSING_SIGMAS`` standard
        deviations of its velocity estimate along the line of sight?

        A young track of a static object carries a velocity that is mostly noise (one-point
        initiation with a wide prior, Bar-Shalom et al. 2001 section 3.4 on track
        initiation); a TTC computed from it would trip on every static object near the
        keep-out. ``sigma^2 = u^T P_v u`` with ``u`` the unit line of sight.
        """
        if self._pose is None or threat.range_m <= 0.0:
            return True
        ux = (trk.x_m - self._pose[0]) / threat.range_m
        uy = (trk.y_m - self._pose[1]) / threat.range_m
        p = trk.pvv
        var = ux * ux * p[0, 0] + 2.0 * ux * uy * p[0, 1] + uy * uy * p[1, 1]
        return threat.closing_speed_mps > TTC_CLOSING_SIGMAS * math.sqrt(max(var, 0.0))

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Fault conditions (per tick, outside ``boot``): B01 stale, D02, D03, keep-out/TTC.

        Keys are ``radar.<key>``. Counts breach ticks for the summary.
        """
        if view.state == "boot":
            return []
        now_s = view.now_s
        out = self._lr_conditions() + self._sr_conditions()
        threats = self.threats(now_s)
        reason = None
        if threats:
            t = threats[0]
            reason = (f"radar track {t.track_id} at {t.range_m:.2f} m "
                      + (f"inside keep-out {self.cfg.keep_out_radius_m:g} m" if t.inside_keep_out
                         else f"closing, time to collision {t.ttc_s:.2f} s < {self.cfg.min_ttc_s:g} s"))
            self.breaches.ticks += 1
            if self.breaches.first_s is None:
                self.breaches.first_s = now_s
                self.breaches.first_reason = reason
        out.append(("keep_out", reason))
        return [Condition(f"{self.name}.{key}", why) for key, why in out]

    def arming_check(self, view: TickView) -> str | None:
        """Refuse ``arm`` while a radar is stale or reports an error (SAFETY.md D02, O01)."""
        for _key, reason in self._lr_conditions() + self._sr_conditions():
            if reason is not None:
                return reason
        if self.lr is not None and self.lr.driver is not None and self.lr.status is None:
            return f"{self.lr.name}: no status yet"
        return None

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        """POST verdict per radar (see :meth:`post_report`)."""
        return {dev: DevicePost(bool(ok), why) for dev, (ok, why) in self.post_report(view.now_s).items()}

    def post_report(self, now_s: float) -> dict[str, tuple[bool, str]]:
        """POST verdict per radar (boot only): present, fresh, state clean, version.

        A radar not yet ready is reported ``(False, "waiting: ...")`` rather than None, so
        that when POST times out (``post_timeout_s``) the report names the radar and the
        reason (SAFETY.md D07).
        """
        out: dict[str, tuple[bool, str]] = {}
        lr = self.lr
        if lr is not None:
            st = lr.status
            if lr.driver is None:
                out[lr.name] = (False, lr.build_error or "driver not built")
            elif st is None or st.cycles_complete == 0:
                out[lr.name] = (False, "waiting: no complete object-list cycle yet")
            elif st.health is None:
                out[lr.name] = (False, "waiting: no RadarState (0x201) yet")
            elif st.faults:
                out[lr.name] = (False, "radar reports " + ", ".join(st.faults))
            elif not st.fresh:
                out[lr.name] = (False, "waiting: object-list cycles not yet regular")
            else:
                version = ".".join(str(v) for v in st.version) if st.version else "not seen (0x700)"
                warn = f"; warnings: {', '.join(st.warnings)}" if st.warnings else ""
                out[lr.name] = (True, f"firmware {version}{warn}")
        sr = self.sr
        if sr is not None and sr.driver is not None:
            if sr.scans == 0:
                # Name what arrives: packets of another SDK / platform are not "no frame".
                out[sr.name] = (False, "waiting: " + sr.driver.waiting_text())
            elif sr.stale:
                out[sr.name] = (False, "stale")
            else:
                out[sr.name] = (True, f"{sr.scans} frames")
        return out

    # ------------------------------------------------------------------ write
    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Write phase (per tick): ARS408 ego speed and yaw rate when due (every cycle)."""
        now_s = view.now_s
        lr = self.lr
        if lr is None or lr.driver is None or self._pose is None:
            return
        speed = speed_long_mps(self._vel[0], self._vel[1], self._pose[2])
        for msg in lr.driver.ego_motion_frames(now_s, speed, self._yaw_rate_radps):
            lr.port.send(msg, now_s)

    # ------------------------------------------------------------------ report
    def _track_rows(self, band: str, mount: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        pose = self._pose
        if pose is None:
            return rows
        radar = Mount.from_config(mount)
        for t in self.tracker.confirmed():
            if t.source_band != band:
                continue
            rx, ry = apply_inverse(radar, world_to_body_point(t.x_m, t.y_m, pose))
            rows.append({
                "id": t.track_id,
                "x_m": round(rx, 3),
                "y_m": round(ry, 3),
                "x_world_m": round(t.x_m, 3),
                "y_world_m": round(t.y_m, 3),
                "age_s": round(t.age_s, 3),
                "hits": t.hits,
            })
        return rows

    def summary(self) -> dict[str, Any]:
        """Block ``radar`` of ``summary.json``.

        Per radar frames, cycles, rejects, detections and the confirmed tracks at the end
        (radar and world frame).
        """
        out: dict[str, Any] = {"sr_threshold_m": None if math.isinf(self.sr_threshold_m) else self.sr_threshold_m}
        lr = self.lr
        if lr is not None:
            st = lr.status
            block: dict[str, Any] = {"driver": "ars408", "mode": lr.mode}
            if lr.driver is None:
                block["error"] = lr.build_error
            elif st is not None:
                block.update({
                    "frames": st.frames, "decoded": st.decoded, "cycles": st.cycles_complete,
                    "cycles_dropped": st.cycles_dropped, "rejects": dict(sorted(st.rejects.items())),
                    "detections": lr.detections, "stale_at_end": st.stale,
                    "faults_at_end": list(st.faults), "warnings_at_end": list(st.warnings),
                    "version": ".".join(str(v) for v in st.version) if st.version else None,
                })
            replay = lr.feed.replay_summary() if lr.feed is not None else None
            if replay is not None:
                block["replay"] = replay
            block["tracks"] = self._track_rows(BAND_LR, lr.cfg.mount)
            out[lr.name] = block
        sr = self.sr
        if sr is not None:
            block = {"driver": "iwr6843", "mode": sr.mode}
            if sr.driver is not None:
                s = sr.driver.stats()
                block.update({"frames": s["frames"], "cycles": s["frames"], "rejects": s["rejects"],
                              "resyncs": s["resyncs"], "detections": sr.detections,
                              "stale_at_end": sr.stale})
            if sr.emulator is not None and sr.mode == "replay":
                block["replay"] = {"frames_in_capture": sr.emulator.replay_frames,
                                   "frames_sent": sr.emulator.frames_sent}
            block["tracks"] = self._track_rows(BAND_SR, sr.cfg.mount)
            out[sr.name] = block
        tr = self.tracker
        out["tracker"] = {"scans": tr.scans, "initiated": tr.tracks_initiated, "confirmed": tr.tracks_confirmed,
                          "deleted": tr.tracks_deleted, "scans_without_pose": self.no_pose_scans}
        out["keep_out"] = {"radius_m": self.cfg.keep_out_radius_m, "min_ttc_s": self.cfg.min_ttc_s,
                           "first_breach_s": None if self.breaches.first_s is None else round(self.breaches.first_s, 6),
                           "first_breach": self.breaches.first_reason, "breach_ticks": self.breaches.ticks,
                           "closest": {k: (None if isinstance(v, float) and math.isinf(v) else
                                           round(v, 3) if isinstance(v, float) else v)
                                       for k, v in self.closest.items()}}
        return out

    def close(self) -> None:
        """Nothing owned beyond what the rig closes (buses, links); safe twice."""


# --------------------------------------------------------------------------- build
