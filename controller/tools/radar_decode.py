"""``qiki radar decode FILE`` for CAN logs: what an ARS408 recording holds.

The library behind the command (the CLI wiring is in :mod:`controller.cli.radar`): it runs a
recorded CAN log through exactly the driver's ingress path (codec, ingress checks, cycle
assembly, radar-state interpretation) and the tracker, and returns a JSON-ready report:

* ``frames``, ``decoded``, ``rejected`` (by reason) -- every frame of the log (of the
  selected channel) is offered to the driver; error and remote frames count as
  ``error_frame`` / ``remote_frame``, QIKI's own ego-motion frames (0x300/0x301 + offset)
  as ``own_tx_id``, frames of other IDs (another sensor ID, other devices) as
  ``unknown_id``;
* ``channels`` -- the channels present in the log with their frame counts, in python-can's
  form (:func:`hal.can.replay.channel_key`: ``"can1"`` for candump, ``"0"`` for the first
  channel of an ASC/BLF file), the channel asked for and the frames kept;
* ``healthy`` and ``problems`` -- the verdict: frames kept, a complete object-list cycle
  decoded, the radar neither stale nor faulty at the end of the log. A channel filter that
  keeps no frame, a log with no frame of this sensor, or a radar that reports faults is
  not healthy, and the command exits 1;
* ``cycles`` -- complete and dropped object-list cycles, and their period statistics;
* ``radar`` -- the last RadarState (errors, sensor ID, motion input), firmware version,
  and whether the radar was stale at the end of the log / ever went stale;
* ``tracks`` -- every track the tracker confirmed, with its mean position while confirmed
  (radar frame == world frame here: the log carries no vehicle pose) and how long it
  stayed confirmed.

Time is the log's own receipt timestamps, made relative to the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.paths import resolve_data_path
from controller.tracking import Tracker
from controller.tracking.detections import tracking_detection
from firmware_bridge.protocols.frames import Mount
from hal.can.codec import DbcCodec
from hal.can.replay import channel_key, channel_matches, iter_can_log
from hal.devices.ars408 import Ars408Config, Ars408Driver, dbc_sensor_id

__all__ = ["DEFAULT_DBC", "decode_can_log", "format_report"]

#: DBC used when the caller names none.
DEFAULT_DBC = "dbc/ars408.dbc"


@dataclass
class _TrackStats:
    track_id: int
    first_confirmed_s: float
    last_confirmed_s: float
    n: int = 0
    sum_x_m: float = 0.0
    sum_y_m: float = 0.0
    last_x_m: float = 0.0
    last_y_m: float = 0.0


def decode_can_log(
    path: str | Path,
    *,
    dbc: Sequence[str | Path] | str | Path | None = None,
    sensor_id: int | None = 0,
    mount: Mount | None = None,
    channel: str | int | None = None,
    track: bool = True,
    tracker_config: Any = None,
    min_prob_of_exist: float = 0.0,
    min_rcs_dbsm: float = float("-inf"),
    dyn_props: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Decode an ARS408 CAN log into a report.

    Parameters
    ----------
    path : str or Path
        Any python-can log (candump ``.log``, ``.asc``, ``.blf``, ``.trc``...).
    dbc : path or sequence of paths, optional
        DBC file(s); default ``dbc/ars408.dbc`` (found by :func:`resolve_data_path`).
    sensor_id : int or None, optional
        Sensor ID the radar is expected to use (IDs + 0x10 * ID). Default 0. None: the
        sensor ID of the DBC's own IDs (0 for a base-ID DBC, ``k`` for a vendor
        ``ARS408_id<k>.dbc``).
    mount : Mount, optional
        Radar mount pose for body-frame detections (:meth:`Mount.from_degrees` from
        configuration units); default identity (report positions
        in the radar frame).
    channel : str or int, optional
        Only frames recorded on this channel, compared in the normalised form of
        :func:`hal.can.replay.channel_key` whatever type the log reader gives (``0`` or
        ``"0"`` for the first channel of an ASC/BLF file, ``"can1"`` for candump); default
        all.
    track : bool, optional
        Run the tracker over the complete cycles (default True).
    tracker_config : controller.tracking.TrackerConfig, optional
        Tracker tuning; default its defaults.
    min_prob_of_exist : float, optional
        Drop objects below this probability of existence before tracking (0..1).
    min_rcs_dbsm : float, optional
        Drop objects with a radar cross section below this before tracking, dBsm.
    dyn_props : sequence of str, optional
        Keep only objects whose dynamic property is one of these names
        (:data:`firmware_bridge.protocols.ars408.DYN_PROP`, e.g. ``"stationary"``);
        default keeps all.

    Returns
    -------
    dict
        JSON-serialisable report (see module docstring); ``tracks`` sorted by time
        confirmed, longest first.

    Raises
    ------
    hal.errors.BusConfigError
        Unreadable log or DBC, DBC lacking a message/signal the driver needs, bad sensor
        ID (one line naming the file).
    """
    if dbc is None:
        dbc_paths = [resolve_data_path(DEFAULT_DBC)]
    elif isinstance(dbc, (str, Path)):
        dbc_paths = [resolve_data_path(dbc)]
    else:
        dbc_paths = [resolve_data_path(p) for p in dbc]
    codec = DbcCodec([str(p) for p in dbc_paths])
    sensor_from_dbc = sensor_id is None
    if sensor_id is None:
        sensor_id = dbc_sensor_id(codec)
    cfg = Ars408Config(sensor_id=sensor_id, mount=mount or Mount(),
                       min_prob_of_exist=min_prob_of_exist, min_rcs_dbsm=min_rcs_dbsm,
                       name="ars408")
    Ars408Driver(codec, cfg)  # refuse a DBC lacking what the driver needs before reading
    channels_present: dict[str, int] = {}
    frames_read = 0

    def kept_frames():
        nonlocal frames_read
        for m in iter_can_log(path):
            frames_read += 1
            key = channel_key(m.channel)
            key = "none" if key is None else key
            if key in channels_present or len(channels_present) < 64:
                channels_present[key] = channels_present.get(key, 0) + 1
            if channel_matches(m.channel, channel):
                yield m

    frames = kept_frames()

    tracker = None
    if track:
        tracker = Tracker(tracker_config)
    stats: dict[int, _TrackStats] = {}

    driver: Ars408Driver | None = None
    t0: float | None = None
    t_last = 0.0
    next_poll = 0.0
    poll_dt = 0.01
    stale_episodes = 0
    was_stale = False
    cycle_times: list[float] = []
    detections_total = 0
    for msg in frames:
        if t0 is None or driver is None:
            t0 = msg.timestamp
            driver = Ars408Driver(codec, cfg, start_s=0.0)
        now = msg.timestamp - t0
        if now < t_last:  # never let a reordered log step time backwards
            now = t_last
        t_last = now
        if now >= next_poll:
            st = driver.poll(now)
            if st.stale and not was_stale:
                stale_episodes += 1
            was_stale = st.stale
            next_poll = now + poll_dt
        cycle = driver.on_frame(msg, now)
        if cycle is None:
            continue
        cycle_times.append(now)
        dets = driver.detections(cycle)
        if dyn_props is not None:
            dets = [d for d in dets if d.dyn_prop in dyn_props]
        detections_total += len(dets)
        if tracker is None:
            continue
        tracks = tracker.step(now, [tracking_detection(d) for d in dets])
        for trk in tracks:
            if not trk.confirmed:
                continue
            s = stats.get(trk.track_id)
            if s is None:
                s = stats[trk.track_id] = _TrackStats(trk.track_id, now, now)
            s.last_confirmed_s = now
            s.n += 1
            s.sum_x_m += trk.x_m
            s.sum_y_m += trk.y_m
            s.last_x_m, s.last_y_m = trk.x_m, trk.y_m

    if driver is None:  # empty log
        driver = Ars408Driver(codec, cfg, start_s=0.0)
    end_s = t_last
    status = driver.poll(end_s)
    if status.stale and not was_stale:
        stale_episodes += 1
    # consecutive pairs: the second sequence is one shorter by construction
    gaps = [b - a for a, b in zip(cycle_times, cycle_times[1:], strict=False)]
    h = status.health
    live = {t.track_id for t in tracker.confirmed()} if tracker is not None else set()
    problems: list[str] = []
    kept = status.frames
    if channel is not None and kept == 0:
        present = ", ".join(f"{k} ({v} frames)" for k, v in channels_present.items()) or "none"
        problems.append(f"channel {channel_key(channel)!r} matches no frame of {frames_read}; "
                        f"channels present: {present}")
    elif frames_read == 0:
        problems.append("the log holds no frame")
    elif status.decoded == 0:
        problems.append(f"no frame of ARS408 sensor ID {sensor_id} "
                        f"(ObjStatus at 0x{driver.codec.frame_id('ARS408_ObjStatus'):03X})")
    elif status.cycles_complete == 0:
        problems.append("no complete object-list cycle")
    if status.cycles_complete == 0 and "stale" not in status.faults:
        faults_at_end = ["stale", *status.faults]
        stale_at_end = True
    else:
        faults_at_end = list(status.faults)
        stale_at_end = status.stale
    if faults_at_end and not problems:
        problems.append("radar faults at the end of the log: " + ", ".join(faults_at_end))
    report: dict[str, Any] = {
        "file": str(path),
        "format": "can",
        "dbc": [str(p) for p in dbc_paths],
        "dbc_notes": list(codec.vendor_notes),
        "sensor_id": sensor_id,
        "sensor_id_from": "dbc" if sensor_from_dbc else "option",
        "healthy": not problems,
        "problems": problems,
        "channels": {
            "wanted": channel_key(channel),
            "present": dict(channels_present),
            "frames_read": frames_read,
            "frames_kept": kept,
        },
        "duration_s": round(end_s, 6),
        "frames": status.frames,
        "decoded": status.decoded,
        "rejected": dict(sorted(status.rejects.items())),
        "cycles": {
            "complete": status.cycles_complete,
            "dropped": status.cycles_dropped,
            "period_mean_s": round(sum(gaps) / len(gaps), 6) if gaps else None,
            "period_min_s": round(min(gaps), 6) if gaps else None,
            "period_max_s": round(max(gaps), 6) if gaps else None,
        },
        "detections": detections_total,
        "filter": {
            "min_prob_of_exist": min_prob_of_exist,
            "min_rcs_dbsm": None if min_rcs_dbsm == float("-inf") else min_rcs_dbsm,
            "dyn_props": None if dyn_props is None else sorted(dyn_props),
        },
        "radar": {
            "stale_at_end": stale_at_end,
            "stale_episodes": stale_episodes,
            "faults_at_end": faults_at_end,
            "warnings_at_end": list(status.warnings),
            "version": ".".join(str(v) for v in status.version) if status.version else None,
            "state": None if h is None else {
                "sensor_id": h.sensor_id,
                "persistent_error": h.persistent_error,
                "temporary_error": h.temporary_error,
                "temperature_error": h.temperature_error,
                "voltage_error": h.voltage_error,
                "interference": h.interference,
                "motion_rx_state": h.motion_rx_state,
                "output_type_cfg": h.output_type_cfg,
                "send_quality_cfg": h.send_quality_cfg,
                "send_ext_info_cfg": h.send_ext_info_cfg,
                "max_distance_cfg_m": h.max_distance_cfg_m,
            },
        },
        "tracks": None,
    }
    if tracker is not None:
        rows = []
        for s in stats.values():
            rows.append({
                "id": s.track_id,
                "mean_x_m": round(s.sum_x_m / s.n, 3),
                "mean_y_m": round(s.sum_y_m / s.n, 3),
                "last_x_m": round(s.last_x_m, 3),
                "last_y_m": round(s.last_y_m, 3),
                "confirmed_from_s": round(s.first_confirmed_s, 3),
                "confirmed_to_s": round(s.last_confirmed_s, 3),
                "confirmed_s": round(s.last_confirmed_s - s.first_confirmed_s, 3),
                "scans_confirmed": s.n,
                "live_at_end": s.track_id in live,
            })
        rows.sort(key=lambda r: (-r["confirmed_s"], r["id"]))
        report["tracks"] = rows
    return report


def format_report(report: dict[str, Any]) -> str:
    """Render a :func:`decode_can_log` report as short human-readable text.

    Parameters
    ----------
    report : dict
        As returned by :func:`decode_can_log`.

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    cyc = report["cycles"]
    radar = report["radar"]
    ch = report.get("channels") or {}
    lines = []
    if report.get("problems"):
        lines.append("NOT HEALTHY: " + "; ".join(report["problems"]))
    if ch.get("wanted") is not None:
        lines.append(f"channel {ch['wanted']!r}: {ch['frames_kept']} of {ch['frames_read']} frames kept "
                     f"(present: {', '.join(f'{k}: {v}' for k, v in ch['present'].items()) or 'none'})")
    lines += [
        f"{report['file']}: {report['frames']} frames, {report['decoded']} decoded, "
        f"{sum(report['rejected'].values())} rejected"
        + (f" ({', '.join(f'{k}: {v}' for k, v in report['rejected'].items())})"
           if report["rejected"] else ""),
        f"cycles: {cyc['complete']} complete, {cyc['dropped']} dropped"
        + (f", period {cyc['period_mean_s'] * 1e3:.1f} ms "
           f"({cyc['period_min_s'] * 1e3:.1f}..{cyc['period_max_s'] * 1e3:.1f})"
           if cyc["period_mean_s"] is not None else ""),
        f"radar: sensor_id {report['sensor_id']}"
        + (" (from the DBC)" if report.get("sensor_id_from") == "dbc" and report["sensor_id"] else "")
        + f", firmware {radar['version'] or '?'}, "
        f"{'STALE' if radar['stale_at_end'] else 'fresh'} at end, "
        f"faults {radar['faults_at_end'] or 'none'}, warnings {radar['warnings_at_end'] or 'none'}",
    ]
    for note in report.get("dbc_notes") or ():
        lines.append("dbc: " + note)
    tracks = report.get("tracks")
    if tracks is not None:
        lines.append(f"confirmed tracks: {len(tracks)}")
        for t in tracks:
            lines.append(
                f"  track {t['id']}: mean x {t['mean_x_m']:.2f} m, y {t['mean_y_m']:.2f} m, "
                f"confirmed {t['confirmed_s']:.1f} s")
    return "\n".join(lines)

