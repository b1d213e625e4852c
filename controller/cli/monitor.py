"""``qiki monitor --rig RIG``: watch a CAN bus listen-only, check every frame, show it live.

Decodes every frame with the rig's DBCs at the devices' IDs and shows each message's rate
against its cycle time, counter and checksum errors, DLC errors, out-of-range values,
unknown IDs, the valve duties, the radar objects and the vehicle's phase as inferred from
the frames; each violation is counted with its first and last time. It never transmits
(docs/monitor.md). ``--replay FILE`` reads a recorded log instead of a bus.

Exit status: 0, or with ``--check`` 1 when any violation was counted; 2 bad input; 3 the
adapter cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import yaml

from controller.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED


def _bus_options(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--bus-option {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def _cmd_monitor(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from controller.config import load_rig
    from controller.monitor.model import bus_model
    from controller.monitor.run import MonitorOptions, run_monitor
    from controller.monitor.view import render_report, summary_line

    try:
        bus_options = _bus_options(args.bus_option)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.tolerance is not None and not 0.0 < args.tolerance < 1.0:
        print(f"--tolerance must be in (0, 1), got {args.tolerance}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.speed <= 0.0:
        print(f"--speed must be > 0, got {args.speed}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rig, rig_path = load_rig(args.rig)
    model = bus_model(rig, rig_path, args.rig, args.bus)
    bus = model.bus
    if args.interface is None or args.interface == bus.interface:
        # the rig's interface options (e.g. slcan's timeout) unless the command line overrides them
        bus_options = {**bus.options, **bus_options}
    opts = MonitorOptions(
        interface=args.interface or bus.interface, channel=args.channel or bus.channel,
        bitrate_bps=args.bitrate or bus.bitrate_bps, bus_options=bus_options,
        adapter_listen_only=not args.no_adapter_listen_only,
        replay=Path(args.replay) if args.replay else None, fast=args.fast, speed=args.speed,
        duration_s=args.duration, log_path=Path(args.log) if args.log else None,
        mcap_path=Path(args.mcap) if args.mcap else None, tolerance=args.tolerance or 0.5,
        receipt_time=args.receipt_time, freeze_gc=True,
        metadata={"rig": str(args.rig), "dbc": ",".join(str(p) for p in model.dbc_paths)})
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    err = Console(stderr=True)
    header = [""]

    def opened(line: str) -> None:
        header[0] = f"qiki monitor: {line}"
        if args.once:
            err.print(header[0])

    if args.once:
        report = run_monitor(model, opts, stop=stop, on_open=opened)
    else:
        with Live(render_report({"bus": model.bus_name}, "opening..."), console=Console(), auto_refresh=False,
                  transient=False) as live:
            def update(rep: dict[str, object]) -> None:
                live.update(render_report(rep, header[0]), refresh=True)
            report = run_monitor(model, opts, stop=stop, on_update=update, on_open=opened)
            live.update(render_report(report, header[0]), refresh=True)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
    else:
        if args.once:
            Console().print(render_report(report, header[0]))
        err.print(summary_line(report))
    if args.check and int(report["violation_total"]) > 0:  # type: ignore[call-overload]
        return EXIT_STOPPED
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``monitor`` to the ``qiki`` verbs."""
    m = sub.add_parser("monitor", help="watch a CAN bus listen-only: rates, counters, checksums, values, vehicle",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    m.add_argument("--rig", default="rigs/virtual.yaml", help="rig YAML: the bus and its DBCs and devices")
    m.add_argument("--bus", default=None, help="the rig's CAN bus to watch (default: its only one)")
    m.add_argument("--interface", default=None, help="python-can interface instead of the rig's (slcan, pcan...)")
    m.add_argument("--channel", default=None, help="channel instead of the rig's (/dev/ttyACM0, PCAN_USBBUS1...)")
    m.add_argument("--bitrate", type=int, default=None, metavar="BPS", help="bit rate instead of the rig's")
    m.add_argument("--bus-option", action="append", default=[], metavar="KEY=VALUE",
                   help="further can.Bus option, value as YAML (e.g. sleep_after_open=0 for slcan); repeatable")
    m.add_argument("--no-adapter-listen-only", action="store_true",
                   help="do not put the adapter in listen-only mode (it then ACKs frames; "
                        "the monitor still never sends)")
    m.add_argument("--replay", default=None, metavar="FILE", help="read this CAN log instead of a bus")
    m.add_argument("--fast", action="store_true", help="with --replay: do not wait for the recorded spacing")
    m.add_argument("--speed", type=float, default=1.0, help="with --replay: pacing factor (default 1)")
    m.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    m.add_argument("--once", action="store_true", help="no live view: run, then print the report once")
    m.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")
    m.add_argument("--log", default=None, metavar="FILE",
                   help="also write the frames to a CAN log (format by suffix: .asc .blf .log .trc .csv ...)")
    m.add_argument("--mcap", default=None, metavar="FILE", help="also write the frames to MCAP (/in/can/<bus>)")
    m.add_argument("--tolerance", type=float, default=None, metavar="F",
                   help="a gap is on time within (1 +- F) x the cycle time (default 0.5)")
    m.add_argument("--receipt-time", action="store_true",
                   help="time live frames at receipt (monotonic clock) instead of their timestamps")
    m.add_argument("--check", action="store_true", help="exit 1 when any violation was counted")
    m.set_defaults(func=_cmd_monitor)
