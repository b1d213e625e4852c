"""``qiki radar decode FILE --format iwr6843``: report on a TI IWR6843 UART capture.

Library half of the command (the CLI wires it): read the file in fixed chunks through
the same sans-IO parser the driver uses, convert points to body-frame detections through
the mount pose, run the tracker on them, and return a JSON-ready report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.errors import ConfigError
from firmware_bridge.protocols.frames import apply_inverse
from firmware_bridge.protocols.iwr6843 import (
    DEFAULT_MAX_FRAME_LEN,
    MAGIC_WORD,
    Iwr6843Parser,
    TlvType,
    format_version,
    platform_name,
)

__all__ = ["decode_iwr6843_file"]


def decode_iwr6843_file(
    path: str | Path,
    *,
    chunk_bytes: int = 4096,
    max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
    frame_period_s: float = 0.1,
    mount: Any = (0.0, 0.0, 0.0),
    track: bool = True,
    tracker_config: Any = None,
) -> dict:
    """Decode a raw IWR6843 UART capture and report frames, TLVs, rejects and tracks.

    Parameters
    ----------
    path : str or Path
        The capture: raw bytes of the radar's data UART (``.dat``).
    chunk_bytes : int
        Read size, bytes; the result does not depend on it (the parser takes any chunking).
    max_frame_len : int
        Parser bound on ``totalPacketLen``, bytes.
    frame_period_s : float
        Frame period, s (``frameCfg`` periodicity; 100 ms in the reference config). Scan
        times for the tracker are ``(frameNumber - first) * frame_period_s``.
    mount : Mount, (x_m, y_m, yaw_deg), mapping or object (see
        :func:`hal.devices.iwr6843.parse_mount`)
        Radar pose in the body frame; the default puts the radar frame on the body frame
        (x along the boresight, y left), and the vehicle sits at the world origin, so
        track positions are in the radar frame.
    track : bool
        Run :class:`controller.tracking.tracker.Tracker` on the detections.
    tracker_config : controller.tracking.tracker.TrackerConfig, optional
        Tracker tuning (default: its defaults).

    Returns
    -------
    dict
        ``format``, ``file``, ``bytes``, ``frames`` (accepted packets), ``frame_numbers``
        (first, last), ``frame_number_gaps``, ``sdk_version``, ``platform``, ``tlvs``
        (type name -> count), ``rejected`` (reason -> count), ``resyncs``,
        ``garbage_bytes``, ``trailing_bytes`` (an unfinished packet at the end of the
        file), ``points``, ``frames_with_points``, ``frames_without_points``, ``tracks``
        (every track ever confirmed: ``id``, mean ``x_m``/``y_m`` over its confirmed
        scans in the radar frame, ``x_world_m``/``y_world_m`` likewise in the world frame,
        ``confirmed_scans``, ``confirmed_s``, ``hits``, ``confirmed_at_end``) and
        ``confirmed_at_end`` (count), ``headers`` (every readable frame header, accepted
        or not, by ``"SDK <major>.<minor> / <platform>"``), ``unsupported`` (packets
        refused for their SDK or platform, same keys), ``healthy`` (at least one valid
        frame) and ``problems`` (e.g. ``"receiving packets, all rejected: unsupported SDK
        2.1 / xWR14xx"``).

    Raises
    ------
    ConfigError
        If the file cannot be read (one line naming it).
    """
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read capture: {exc.strerror or exc}") from exc
    parser = Iwr6843Parser(max_frame_len=max_frame_len)
    frames = []
    with fh:
        while True:
            try:
                chunk = fh.read(chunk_bytes)
            except OSError as exc:
                raise ConfigError(str(path), "", f"cannot read capture: {exc.strerror or exc}") from exc
            if not chunk:
                break
            frames.extend(parser.feed(chunk))

    stats = parser.stats()
    trailing = parser.buffered_bytes
    rejects = stats["rejects"]
    tlv_counts = stats["tlvs"]
    assert isinstance(rejects, dict) and isinstance(tlv_counts, dict)  # Iwr6843Parser.stats: counters by name
    rejected = dict(rejects)
    # Bytes left at the end: an unfinished packet when they start with the magic word.
    tail_is_packet = trailing >= len(MAGIC_WORD)
    if tail_is_packet:
        rejected["truncated_at_end"] = rejected.get("truncated_at_end", 0) + 1

    gaps = 0
    # consecutive pairs: the second sequence is one shorter by construction
    for a, b in zip(frames, frames[1:], strict=False):
        step = (b.frame_number - a.frame_number) & 0xFFFFFFFF
        if 1 < step < 0x80000000:
            gaps += step - 1
    tlv_names = {int(t): t.name.lower() for t in TlvType}
    report: dict[str, Any] = {
        "format": "iwr6843",
        "file": str(path),
        "bytes": stats["bytes_in"],
        "frames": len(frames),
        "frame_numbers": [frames[0].frame_number, frames[-1].frame_number] if frames else None,
        "frame_number_gaps": gaps,
        "sdk_version": format_version(frames[0].header.version) if frames else None,
        "platform": hex(frames[0].header.platform) if frames else None,
        "platform_name": platform_name(frames[0].header.platform) if frames else None,
        "headers": stats["headers"],
        "unsupported": stats["unsupported"],
        "tlvs": {tlv_names.get(t, f"type_{t}"): n for t, n in tlv_counts.items()},
        "rejected": rejected,
        "resyncs": stats["resyncs"],
        "garbage_bytes": stats["garbage_bytes"],
        "trailing_bytes": trailing,
        "points": stats["points"],
        "frames_with_points": sum(1 for f in frames if f.points),
        "frames_without_points": sum(1 for f in frames if not f.points),
        "tracks": [],
        "confirmed_at_end": 0,
    }
    problems = []
    if not frames:
        why = parser.rejection_text()
        if why is not None:
            problems.append(f"receiving packets, all rejected: {why}")
        elif stats["bytes_in"]:
            problems.append("no packet start (magic word) with a complete packet in the capture")
        else:
            problems.append("the capture is empty")
    report["healthy"] = not problems
    report["problems"] = problems
    if track and frames:
        report["tracks"], report["confirmed_at_end"] = _track(frames, frame_period_s, mount, tracker_config)
    return report


def _track(frames, frame_period_s: float, mount: Any, tracker_config: Any) -> tuple[list[dict], int]:
    """Run the tracker over the frames; return (confirmed-track summaries, count at end)."""
    from controller.tracking.detections import sr_tracking_detection
    from controller.tracking.tracker import Tracker
    from hal.devices.iwr6843 import frame_to_detections, parse_mount

    mount_pose = parse_mount(mount)
    tracker = Tracker(tracker_config) if tracker_config is not None else Tracker()
    first = frames[0].frame_number
    sums: dict[int, list[float]] = {}
    last_tracks = []
    for f in frames:
        now_s = ((f.frame_number - first) & 0xFFFFFFFF) * frame_period_s
        dets = [sr_tracking_detection(d) for d in frame_to_detections(f, mount_pose)]
        last_tracks = tracker.step(now_s, dets)
        for t in last_tracks:
            if t.confirmed:
                acc = sums.setdefault(t.track_id, [0.0, 0.0, 0, now_s, now_s, 0])
                acc[0] += t.x_m
                acc[1] += t.y_m
                acc[2] += 1
                acc[4] = now_s
                acc[5] = t.hits
    at_end = {t.track_id for t in last_tracks if t.confirmed}
    out = []
    for tid, (sx, sy, n, t0, t1, hits) in sorted(sums.items()):
        # World frame = body frame here (vehicle at the origin, zero yaw); radar frame is
        # the body frame moved by the mount.
        wx, wy = sx / n, sy / n
        rx, ry = apply_inverse(mount_pose, (wx, wy))
        out.append(
            {
                "id": tid,
                "x_m": round(rx, 3),
                "y_m": round(ry, 3),
                "x_world_m": round(wx, 3),
                "y_world_m": round(wy, 3),
                "confirmed_scans": n,
                "confirmed_s": round(t1 - t0, 3),
                "hits": hits,
                "confirmed_at_end": tid in at_end,
            }
        )
    return out, len(at_end)
