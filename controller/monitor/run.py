"""Running the monitor: frames from a listen-only bus or a log, through the checks, to the sinks.

One reader thread takes the frames (``bus.recv`` or the log), checks them
(:class:`Monitor`) and hands them to the sinks (``--log``, ``--mcap``) at once, so a
frame's time is taken as it arrives and never waits for the display; the caller's thread
asks for a report (:meth:`Monitor.report`) at its own pace (the live table at 4 Hz) and at
the end. The two meet under one lock.

Times: a live frame's time is its ``timestamp`` as the interface set it (socketcan: the
kernel's receive time; slcan: when python-can parsed the line), or with ``receipt_time``
the monotonic clock when ``recv`` returned it; a replayed frame's time is the recorded
timestamp. Reported times are seconds since the first frame.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import can

from controller.monitor.checks import BusChecker
from controller.monitor.model import BusModel
from controller.monitor.source import CanLogSink, ListenOnlyBus, LogSource, McapSink, open_listen_only
from controller.monitor.vehicle import VehicleView

__all__ = ["Monitor", "MonitorOptions", "run_monitor"]

logger = logging.getLogger(__name__)

#: How long one ``recv`` may block before the reader looks at the stop flag, s.
RECV_TIMEOUT_S = 0.05


class Monitor:
    """The checks and the inferred vehicle of one bus, safe to share between two threads.

    Parameters
    ----------
    model : BusModel
        What the bus carries (:func:`controller.monitor.model.bus_model`).
    tolerance : float, optional
        Cycle-time tolerance, fraction of the cycle (default 0.5).
    stale_after_periods : float, optional
        Silence (cycle times) that is a timeout (default 3).
    """

    def __init__(self, model: BusModel, *, tolerance: float = 0.5, stale_after_periods: float = 3.0) -> None:
        self.model = model
        self.view = VehicleView(model.valve_boards, model.radars)
        self.checker = BusChecker(model.specs, tolerance=tolerance, stale_after_periods=stale_after_periods,
                                  sinks=[self.view])
        self.lock = threading.Lock()
        self._last_t: float | None = None
        self._last_mono: float | None = None

    def feed(self, msg: can.Message, t_s: float) -> float:
        """Check one frame at ``t_s``; return its time since the first frame, s. Takes the lock."""
        with self.lock:
            self.checker.feed(msg, t_s)
            self._last_t = t_s
            self._last_mono = time.monotonic()
            return t_s - (self.checker.t0 if self.checker.t0 is not None else t_s)

    def now(self, live: bool) -> float | None:
        """Return the time now on the frames' clock: the last frame's, plus (live) the time since it came."""
        if self._last_t is None or self._last_mono is None:
            return None
        return self._last_t + (time.monotonic() - self._last_mono if live else 0.0)

    def report(self, now_s: float | None) -> dict[str, object]:
        """Return the report at ``now_s`` (frames' clock; None: at the last frame), JSON-ready. Takes the lock.

        Counts a ``timeout`` for each periodic message silent too long at ``now_s``.
        """
        with self.lock:
            ch = self.checker
            if now_s is not None:
                ch.check_timeouts(now_s)
            t0 = ch.t0
            now_rel = 0.0 if t0 is None else ((now_s if now_s is not None else (self._last_t or t0)) - t0)
            seen = set(ch.stats)
            not_seen = [s.label for key, s in sorted(ch.specs.items()) if key not in seen]
            messages = [st.as_dict() for _key, st in sorted(ch.stats.items())]
            violations = [v.as_dict() for v in ch.tally.items()]
            return {
                "bus": self.model.bus_name,
                "frames": ch.frames,
                "duration_s": round(now_rel, 6),
                "messages": messages,
                "not_seen": not_seen,
                "violations": violations,
                "violations_by_kind": ch.tally.by_kind(),
                "violation_total": ch.tally.total,
                "vehicle": self.view.snapshot(now_rel),
            }


@dataclass
class MonitorOptions:
    """How to run the monitor (the ``qiki monitor`` options).

    Attributes
    ----------
    interface, channel : str
        python-can interface and channel (live bus).
    bitrate_bps : int
        Bit rate, bit/s.
    bus_options : dict
        Further ``can.Bus`` options.
    adapter_listen_only : bool
        Ask the adapter for listen-only mode.
    replay : Path or None
        Read this log instead of a bus.
    fast : bool
        Replay without waiting for the recorded spacing.
    speed : float
        Replay pacing factor.
    duration_s : float or None
        Stop after this long (wall clock, s); None: until the log ends or a stop.
    log_path, mcap_path : Path or None
        Also write the frames here.
    tolerance : float
        Cycle-time tolerance.
    receipt_time : bool
        Time live frames on the monotonic clock at receipt instead of their timestamps.
    metadata : dict of str to str
        Written into the MCAP file.
    freeze_gc : bool
        Before the first frame, collect and ``gc.freeze()`` everything built so far (the
        CLI does): a full collection of the DBC and rig objects takes ~70 ms on the
        reference machine, long enough to bunch a 72 ms radar cycle into the next one
        when the frames are timed at receipt (slcan).
    """

    interface: str = "virtual"
    channel: str = "qiki-can0"
    bitrate_bps: int = 500_000
    bus_options: dict[str, object] = field(default_factory=dict)
    adapter_listen_only: bool = True
    replay: Path | None = None
    fast: bool = False
    speed: float = 1.0
    duration_s: float | None = None
    log_path: Path | None = None
    mcap_path: Path | None = None
    tolerance: float = 0.5
    receipt_time: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    freeze_gc: bool = False


def _live_frames(bus: ListenOnlyBus, stop: threading.Event, receipt_time: bool) -> Iterator[tuple[can.Message, float]]:
    while not stop.is_set():
        msg = bus.recv(timeout=RECV_TIMEOUT_S)
        if msg is None:
            continue
        if receipt_time or not msg.timestamp:
            yield msg, time.monotonic()
        else:
            yield msg, msg.timestamp


def run_monitor(model: BusModel, opts: MonitorOptions, *, stop: threading.Event | None = None,
                on_update: Callable[[dict[str, object]], None] | None = None, update_period_s: float = 0.25,
                on_open: Callable[[str], None] | None = None) -> dict[str, object]:
    """Run the monitor until the duration ends, the log ends, or ``stop`` is set.

    Parameters
    ----------
    model : BusModel
        The bus.
    opts : MonitorOptions
    stop : threading.Event, optional
        Set it to end the run (a signal handler does).
    on_update : callable ``(report) -> None``, optional
        Called every ``update_period_s`` with the report so far (the live display).
    update_period_s : float, optional
        Period of ``on_update``, s (default 0.25: 4 Hz).
    on_open : callable ``(str) -> None``, optional
        Told how the source was opened (the listen-only mode, or the log).

    Returns
    -------
    dict
        The final report (:meth:`Monitor.report`) with ``source`` and ``listen_only``
        added, and ``send_attempts`` (always 0).

    Raises
    ------
    BusConfigError, DeviceUnavailableError
        The bus or a file cannot be opened (one line).
    """
    stop = stop or threading.Event()
    mon = Monitor(model, tolerance=opts.tolerance)
    bus: ListenOnlyBus | None = None
    live = opts.replay is None
    log_sink = CanLogSink(opts.log_path) if opts.log_path is not None else None
    mcap_sink = None
    try:
        if opts.mcap_path is not None:
            mcap_sink = McapSink(opts.mcap_path, model.bus_name, realtime=not (opts.replay and opts.fast),
                                 metadata={**opts.metadata, "bus": model.bus_name})
        if opts.freeze_gc:  # before the adapter opens: no frame waits for the collection
            gc.collect()
            gc.freeze()
        if live:
            bus, mode = open_listen_only(opts.interface, opts.channel, opts.bitrate_bps,
                                         options=opts.bus_options, adapter_listen_only=opts.adapter_listen_only)
            source = f"{opts.interface} {opts.channel}"
            frames: Iterator[tuple[can.Message, float]] = _live_frames(bus, stop, opts.receipt_time)
        else:
            assert opts.replay is not None
            mode = "log replay (nothing is sent anywhere)"
            source = str(opts.replay)
            log_src = LogSource(opts.replay, fast=opts.fast, speed=opts.speed)
            frames = ((m, m.timestamp) for m in log_src.frames(stop))
        if on_open is not None:
            on_open(f"{source}: {mode}")
        errors: list[BaseException] = []
        done = threading.Event()

        def reader() -> None:
            try:
                for msg, t in frames:
                    rel = mon.feed(msg, t)
                    if log_sink is not None:
                        log_sink.put(msg)
                    if mcap_sink is not None:
                        mcap_sink.put(msg, rel)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=reader, name="qiki-monitor-rx", daemon=True)
        t_start = time.monotonic()
        thread.start()
        next_update = t_start + update_period_s
        try:
            while not done.is_set() and not stop.is_set():
                if opts.duration_s is not None and time.monotonic() - t_start >= opts.duration_s:
                    break
                now = time.monotonic()
                if on_update is not None and now >= next_update:
                    # never more than one update per period, however late this one is
                    next_update += update_period_s
                    if next_update <= now:
                        next_update = now + update_period_s
                    on_update(mon.report(mon.now(live)))
                    now = time.monotonic()
                wait_s = 0.05 if on_update is None else min(max(0.0, next_update - now), 0.05)
                if opts.duration_s is not None:
                    wait_s = min(wait_s, max(0.0, t_start + opts.duration_s - now))
                done.wait(wait_s)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a live monitor normally: the report and the files are finished
        finally:
            stop.set()
            thread.join(timeout=5.0)
        if errors:
            raise errors[0]
        ended_by_log = not live and done.is_set()
        report = mon.report(None if ended_by_log else mon.now(live))
        report["source"] = source
        report["listen_only"] = mode
        report["send_attempts"] = 0 if bus is None else bus.send_attempts
        if mcap_sink is not None:
            mcap_sink.close(json.dumps(report, sort_keys=True).encode())
            mcap_sink = None
        return report
    finally:
        if bus is not None:
            bus.shutdown()
        if log_sink is not None:
            log_sink.close()
        if mcap_sink is not None:
            mcap_sink.close()
