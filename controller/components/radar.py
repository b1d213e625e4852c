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

What is particular to each radar kind (its driver, its scans as detections, its health,
POST verdict and summary block) is in :mod:`controller.components.radar_units`
(:class:`~controller.components.radar_units.LrRadar`,
:class:`~controller.components.radar_units.SrRadar`); this module fuses, tracks and guards.

Emulation (emulated rigs only; wired by :mod:`controller.rig.radar`, the only place that
imports the emulators; the radar units hold only their feeds' summaries): the emulators are
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
from dataclasses import asdict, dataclass

from controller.components.radar_rows import cycle_tracks, speed_long_mps, track_rows, tracker_config
from controller.components.radar_units import LrFeed, LrRadar, SrRadar
from controller.components.seam import ComponentBase, Condition, DevicePost, TickView, condition
from controller.config import RadarCfg
from controller.tracking import (
    BAND_LR,
    BAND_SR,
    Detection,
    Pose2D,
    Threat,
    Tracker,
    as_pose,
    body_to_world,
    select_by_band,
    world_to_body_point,
)
from controller.tracking.threats import check_limits, relative_geometry, vehicle_motion
from controller.tracking.tracker import ConfirmedHit
from hal.snapshot import JsonValue, State, apply, capture, part

__all__ = ["LrFeed", "LrRadar", "RadarSubsystem", "SrRadar", "speed_long_mps", "tracker_config"]


#: A TTC breach needs a closing speed this many standard deviations above zero.
TTC_CLOSING_SIGMAS = 2.0

#: 1-sigma of a radar's Doppler (range-rate) measurement, m/s, for the Doppler check of a
#: TTC breach. The IWR6843's velocity resolution with the out-of-box chirp profile is about
#: 0.1 m/s (TI mmWave SDK demo, "Radial velocity resolution"); one resolution cell is taken
#: as the sigma (conservative against the emulator's 0.05 m/s noise).
DOPPLER_STD_MPS = 0.1


def _doppler_confirms_closing(range_rate_mps: float | None) -> bool:
    """Tell whether the radar's own Doppler, where it measures one, sees the target closing.

    A TTC breach outside the keep-out rests on the track's velocity, an estimate built
    from successive positions; a few clutter points that happen to line up make a
    confirmed track with a large, confident and false velocity (a 10-minute hold on the
    virtual rig made one closing at 4.3 m/s from three near-range clutter points of the
    IWR6843, each with zero Doppler). The radar measures the range rate directly, so a
    closing the Doppler does not show is not trusted: the measured closing speed
    ``-range_rate_mps`` must exceed ``TTC_CLOSING_SIGMAS * DOPPLER_STD_MPS``. Range-rate
    (Doppler) measurements as evidence of target motion: Bar-Shalom, Willett and Tian,
    *Tracking and Data Fusion* (2011), section 11.4 (range-rate measurements).

    Parameters
    ----------
    range_rate_mps : float or None
        Doppler of the detection that last updated the track, m/s, positive receding;
        None (or non-finite) when the radar gave none (the ARS408 object list): then the
        track's own velocity decides, as before.

    Returns
    -------
    bool
        True when there is no Doppler to contradict, or it shows a significant closing.
    """
    if range_rate_mps is None or not math.isfinite(range_rate_mps):
        return True
    return -range_rate_mps > TTC_CLOSING_SIGMAS * DOPPLER_STD_MPS


# --------------------------------------------------------------------------- run record
@dataclass
class _Closest:
    """Closest approach over the run among the assessed tracks (summary): m, s, track ids."""

    range_m: float = math.inf
    range_track: int | None = None
    range_at_s: float | None = None
    ttc_s: float = math.inf
    ttc_track: int | None = None
    ttc_at_s: float | None = None


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
    lr : LrRadar or None
        The long-range ARS408 (driver, CAN port, optional emulator feed).
    sr : SrRadar or None
        The short-range IWR6843 (driver, optional emulator).
    record : callable ``(tick, time_s, kind, **fields)``
        Event sink.
    """

    name = "radar"

    def __init__(self, radar_cfg: RadarCfg, lr: LrRadar | None, sr: SrRadar | None,
                 record: Callable[..., None]) -> None:
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
        self._cycle_bands: set[str] = set()  # bands that completed a scan this tick (telemetry)
        self.breaches = _Breaches()
        self.closest = _Closest()
        self._pose: tuple[float, float, float] | None = None
        self._vel: tuple[float, float] = (0.0, 0.0)
        self._yaw_rate_radps = 0.0
        # conditions: the last (key, reason) pairs and the conditions made from them
        # (returned again while the pairs do not change; see conditions)
        self._tick_pairs: list[tuple[str, str | None]] | None = None
        self._tick_conds: tuple[Condition, ...] = ()

    # ------------------------------------------------------------------ snapshot
    #: The component's own state in a snapshot (issue 12 part 4): the last good pose it
    #: projects with, the keep-out record; the tracker and each radar unit are nested.
    SNAPSHOT_FIELDS = ("no_pose_scans", "_cycle_bands", "breaches", "closest", "_pose", "_vel", "_yaw_rate_radps")
    #: Each radar unit's counters (its driver is nested beside them).
    _LR_FIELDS = ("status", "detections", "scans")
    _SR_FIELDS = ("detections", "scans", "stale")

    def snapshot(self) -> State:
        """Return the tracker, each radar's driver and counters, and the keep-out record."""
        out: State = {**capture(self, self.SNAPSHOT_FIELDS), "tracker": self.tracker.snapshot()}
        if self.lr is not None:
            out["lr"] = {**capture(self.lr, self._LR_FIELDS),
                         "driver": None if self.lr.driver is None else self.lr.driver.snapshot()}
        if self.sr is not None:
            out["sr"] = {**capture(self.sr, self._SR_FIELDS),
                         "driver": None if self.sr.driver is None else self.sr.driver.snapshot()}
        return out

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self.tracker.restore(part(state, "tracker"))
        if self.lr is not None:
            lr = part(state, "lr")
            apply(self.lr, lr, self._LR_FIELDS)
            if self.lr.driver is not None:
                self.lr.driver.restore(part(lr, "driver"))
        if self.sr is not None:
            sr = part(state, "sr")
            apply(self.sr, sr, self._SR_FIELDS)
            if self.sr.driver is not None:
                self.sr.driver.restore(part(sr, "driver"))

    # ------------------------------------------------------------------ read
    def read(self, view: TickView) -> None:
        """Read phase (per tick): radar health, completed scans -> fusion -> tracker."""
        now_s = view.now_s
        p = view.pose
        if p is not None and all(map(math.isfinite, (p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps, p.vy_world_mps))):
            self._pose = (p.x_m, p.y_m, p.yaw_rad)
            self._vel = (p.vx_world_mps, p.vy_world_mps)
            self._yaw_rate_radps = p.yaw_rate_radps if math.isfinite(p.yaw_rate_radps) else 0.0
        scans: list[tuple[str, list[Detection]]] = []
        if self.lr is not None:
            scans += [(BAND_LR, dets) for dets in self.lr.poll(now_s)]
        if self.sr is not None:
            scans += [(BAND_SR, dets) for dets in self.sr.poll(now_s)]
        if not scans:
            return
        if self._pose is None:
            self.no_pose_scans += len(scans)
            return
        pose, thr = as_pose(self._pose), self.sr_threshold_m  # one Pose2D (its cos/sin) for the scans
        self._cycle_bands.update(band for band, _ in scans)
        for band, dets in scans:
            if band == BAND_LR:
                body = select_by_band(dets, (), thr)
            else:
                body = select_by_band((), dets, thr)
            self.tracker.step(now_s, body_to_world(body, pose), in_coverage=self._coverage(band, pose, thr))

    @staticmethod
    def _coverage(band: str, pose: Pose2D, thr: float) -> Callable[[float, float], bool]:
        # An LR scan says nothing about the SR band and vice versa (no miss charged there).
        def covered(x_m: float, y_m: float) -> bool:
            bx, by = world_to_body_point(x_m, y_m, pose)
            inside = math.hypot(bx, by) < thr
            return inside if band == BAND_SR else not inside
        return covered

    # ------------------------------------------------------------------ health
    def _radar_conditions(self) -> list[tuple[str, str | None]]:
        """Each radar's own health (B01, D02, D03), LR first: ``(key, reason or None)``."""
        return ((self.lr.conditions() if self.lr is not None else [])
                + (self.sr.conditions() if self.sr is not None else []))

    def threats(self, now_s: float) -> list[Threat]:
        """Keep-out / TTC breaches of the confirmed tracks at ``now_s`` (per tick).

        Assessed: confirmed tracks whose last covering scan detected them (``misses ==
        0``); a TTC breach (outside the keep-out disc) further needs a closing speed
        significant against the track's velocity uncertainty (:data:`TTC_CLOSING_SIGMAS`)
        and, when the radar measured the Doppler of the track's last detection (IWR6843),
        a measured closing speed (:func:`_doppler_confirms_closing`).
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
        hits = self.tracker.confirmed_hits()
        if not hits:
            return []
        keep_out_m, min_ttc_s = self.cfg.keep_out_radius_m, self.cfg.min_ttc_s
        check_limits(keep_out_m, min_ttc_s)
        x0, y0, vvx, vvy = vehicle_motion(self._pose, self._vel)
        rr = keep_out_m * keep_out_m
        # (ttc_s, range_m, track_id, hit, x_m, y_m, geometry): sorted most urgent first,
        # as assess_threats sorts (ids are unique, so the rest is never compared)
        rows = []
        for h in hits:
            dt = max(0.0, now_s - h.time_s)
            x_m = h.x_m + h.vx_mps * dt
            y_m = h.y_m + h.vy_mps * dt
            geo = relative_geometry(x_m - x0, y_m - y0, h.vx_mps - vvx, h.vy_mps - vvy, rr)
            rows.append((geo[4], geo[0], h.track_id, h, x_m, y_m, geo))
        rows.sort()
        c = self.closest
        out: list[Threat] = []
        for ttc_s, range_m, track_id, h, x_m, y_m, geo in rows:
            inside = geo[5]
            ttc_breach = ttc_s < min_ttc_s
            if not (inside or not ttc_breach
                    or (self._closing_significant(range_m, geo[1], x_m, y_m, h)
                        and _doppler_confirms_closing(h.range_rate_mps))):
                continue
            if range_m < c.range_m:
                c.range_m, c.range_track, c.range_at_s = range_m, track_id, now_s
            if ttc_s < c.ttc_s:
                c.ttc_s, c.ttc_track, c.ttc_at_s = ttc_s, track_id, now_s
            if inside or ttc_breach:
                out.append(Threat(track_id=int(track_id), range_m=range_m, closing_speed_mps=geo[1],
                                  time_to_cpa_s=geo[2], cpa_distance_m=geo[3], ttc_s=ttc_s,
                                  inside_keep_out=inside, ttc_breach=ttc_breach))
        return out

    def _closing_significant(self, range_m: float, closing_speed_mps: float, x_m: float, y_m: float,
                             trk: ConfirmedHit) -> bool:
        """Tell whether the track closes significantly against its velocity uncertainty.

        Is the track's closing speed more than ``TTC_CLOSING_SIGMAS`` standard
        deviations of its velocity estimate along the line of sight?

        A young track of a static object carries a velocity that is mostly noise (one-point
        initiation with a wide prior, Bar-Shalom et al. 2001 section 3.4 on track
        initiation); a TTC computed from it would trip on every static object near the
        keep-out. ``sigma^2 = u^T P_v u`` with ``u`` the unit line of sight from the
        vehicle to the track's position ``(x_m, y_m)`` (world, m) at ``range_m`` (m).
        """
        if self._pose is None or range_m <= 0.0:
            return True
        ux = (x_m - self._pose[0]) / range_m
        uy = (y_m - self._pose[1]) / range_m
        var = ux * ux * trk.pvv_xx + 2.0 * ux * uy * trk.pvv_xy + uy * uy * trk.pvv_yy
        return closing_speed_mps > TTC_CLOSING_SIGMAS * math.sqrt(max(var, 0.0))

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Fault conditions (per tick, outside ``boot``): B01 stale, D02, D03, keep-out/TTC.

        Keys are ``radar.<key>``. Counts breach ticks for the summary. The reasons are
        judged every tick; while they equal the last tick's, the same (immutable)
        conditions are returned.
        """
        if view.state == "boot":
            return []
        now_s = view.now_s
        out = self._radar_conditions()
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
        if out != self._tick_pairs:
            self._tick_pairs = out
            name = self.name
            self._tick_conds = tuple(condition(f"{name}.{key}", why) for key, why in out)
        return self._tick_conds

    def arming_check(self, view: TickView) -> str | None:
        """Refuse ``arm`` while a radar is stale or reports an error (SAFETY.md D02, O01)."""
        for _key, reason in self._radar_conditions():
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
        if self.lr is not None:
            out[self.lr.name] = self.lr.post_verdict()
        verdict = self.sr.post_verdict() if self.sr is not None else None
        if self.sr is not None and verdict is not None:
            out[self.sr.name] = verdict
        return out

    # ------------------------------------------------------------------ write
    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Write phase (per tick): ARS408 ego speed and yaw rate when due (every cycle)."""
        now_s = view.now_s
        lr = self.lr
        if lr is None or lr.driver is None or lr.port is None or self._pose is None:
            return
        if not lr.driver.ego_motion_due(now_s):  # sent once per object-list cycle
            return
        speed = speed_long_mps(self._vel[0], self._vel[1], self._pose[2])
        for msg in lr.driver.ego_motion_frames(now_s, speed, self._yaw_rate_radps):
            lr.port.send(msg, now_s)

    # ------------------------------------------------------------------ report
    def telemetry(self, view: TickView) -> Mapping[str, Mapping[str, object]]:
        """Return ``/radar/<band>/tracks`` for each band that completed a cycle this tick (:func:`cycle_tracks`)."""
        if not self._cycle_bands:  # most ticks: no cycle completed
            return {}
        bands, self._cycle_bands = self._cycle_bands, set()
        return {f"/radar/{band}/tracks": cycle_tracks(self.tracker, band, view.tick, view.now_s)
                for band in sorted(bands)}

    def summary(self) -> dict[str, object]:
        """Block ``radar`` of ``summary.json``.

        Per radar frames, cycles, rejects, detections (:meth:`LrRadar.summary_block`,
        :meth:`SrRadar.summary_block`) and the confirmed tracks at the end (radar and world
        frame).
        """
        out: dict[str, object] = {"sr_threshold_m": None if math.isinf(self.sr_threshold_m) else self.sr_threshold_m}
        if self.lr is not None:
            block = self.lr.summary_block()
            block["tracks"] = track_rows(self.tracker, BAND_LR, self.lr.mount, self._pose)
            out[self.lr.name] = block
        if self.sr is not None:
            block = self.sr.summary_block()
            block["tracks"] = track_rows(self.tracker, BAND_SR, self.sr.mount, self._pose)
            out[self.sr.name] = block
        tr = self.tracker
        out["tracker"] = {"scans": tr.scans, "initiated": tr.tracks_initiated, "confirmed": tr.tracks_confirmed,
                          "deleted": tr.tracks_deleted, "scans_without_pose": self.no_pose_scans}
        out["keep_out"] = {"radius_m": self.cfg.keep_out_radius_m, "min_ttc_s": self.cfg.min_ttc_s,
                           "first_breach_s": None if self.breaches.first_s is None else round(self.breaches.first_s, 6),
                           "first_breach": self.breaches.first_reason, "breach_ticks": self.breaches.ticks,
                           "closest": {k: (None if isinstance(v, float) and math.isinf(v) else
                                           round(v, 3) if isinstance(v, float) else v)
                                       for k, v in asdict(self.closest).items()}}
        return out

    def close(self) -> None:
        """Nothing owned beyond what the rig closes (buses, links); safe twice."""


# --------------------------------------------------------------------------- build
