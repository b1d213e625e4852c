"""``qiki emulate RIG``: the rig's emulated hardware in a process of its own.

Builds the far end of every bus of an emulated rig (the world, every emulator, the fault
plan: :func:`controller.rig.far_end.build_far_end`) and runs it in real time until SIGINT
or SIGTERM, reachable the way real hardware is: each CAN bus through an emulated slcan
adapter on a pty (python-can's ``slcan`` interface on the controller's side), each serial
device on a pty, each Modbus bus on 127.0.0.1 (TCP) or on a pty (RTU). It makes a stable
link ``DIR/<bus>`` to each pty, writes where every bus is in ``DIR/endpoints.json`` and
what the emulated valve board and MCU saw in ``DIR/emulator.jsonl``
(:mod:`controller.rig.far_end_record`). ``rigs/bench_two_process.yaml`` names the links::

    qiki emulate rigs/virtual.yaml &
    qiki run --rig rigs/bench_two_process.yaml --realtime

Exit status: 0 stopped by SIGINT or SIGTERM (or ``--duration`` ran out), 2 bad input (the
rig emulates nothing; another ``qiki emulate`` serves DIR), 3 a pty or port that cannot be
opened (``--modbus-port`` taken). See ``docs/two-process.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller.exit_codes import EXIT_OK

if TYPE_CHECKING:
    from controller.rig.far_end import FarEnd

#: Where the links, the endpoints file and the record go by default (``--dir``).
DEFAULT_DIR = "/tmp/qiki-emulate"
#: First TCP port of the Modbus buses by default (``--modbus-port``; one port per bus).
DEFAULT_MODBUS_PORT = 15020

_PID_FILE = "emulate.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_dir(folder: Path) -> Path:
    """Create ``folder`` and its pid file; refuse a folder another live ``qiki emulate`` serves."""
    from controller.errors import ConfigError

    folder.mkdir(parents=True, exist_ok=True)
    pid_file = folder / _PID_FILE
    try:
        other = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        other = 0
    if other and other != os.getpid() and _alive(other):
        raise ConfigError(str(folder), "--dir", f"another qiki emulate (pid {other}) serves this folder")
    pid_file.write_text(f"{os.getpid()}\n")
    return pid_file


def _link(target: str, link: Path) -> None:
    """Point ``link`` at ``target``, replacing whatever was there in one rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def endpoints_document(far: FarEnd, folder: Path) -> dict[str, object]:
    """Return the endpoints file's content: per bus, the device to open and its stable link.

    ``{"pid", "rig", "dir", "record", "buses": {"can0": {"kind": "can", "interface":
    "slcan", "channel": "/dev/pts/N", "link": "DIR/can0", "bitrate_bps": 500000},
    "mcu": {"kind": "serial", "url": "/dev/pts/M", "link": "DIR/mcu", "baudrate": ...},
    "power": {"kind": "modbus", "url": "tcp://127.0.0.1:PORT", "timeout_s": ...}}}``.
    An RTU bus's ``link`` is the pty its ``rtu://`` url names.
    """
    buses: dict[str, dict[str, object]] = {}
    for name, ep in far.endpoints.items():
        entry = dict(ep)
        device = ep.get("channel") if ep["kind"] == "can" else ep.get("url")
        if isinstance(device, str) and device.startswith("rtu://"):
            device = device.removeprefix("rtu://").split("?")[0]
        if isinstance(device, str) and device.startswith("/dev/"):
            entry["link"] = str(folder / name)
        buses[name] = entry
    return {"pid": os.getpid(), "rig": str(far.checked.path), "dir": str(folder),
            "record": str(folder / "emulator.jsonl"), "buses": buses}


def _make_links(doc: dict[str, object]) -> list[Path]:
    made: list[Path] = []
    buses = doc["buses"]
    assert isinstance(buses, dict)
    for ep in buses.values():
        link = ep.get("link")
        if not link:
            continue
        device = ep["channel"] if ep["kind"] == "can" else str(ep["url"]).removeprefix("rtu://").split("?")[0]
        _link(str(device), Path(link))
        made.append(Path(link))
    return made


def _cmd_emulate(args: argparse.Namespace) -> int:
    from controller.config import ModbusBusCfg, load_rig
    from controller.record.run_record import write_json_atomic
    from controller.rig import check_rig
    from controller.rig.far_end import build_far_end
    from controller.rig.far_end_record import EmulatorRecord
    from controller.rt_knobs import apply_realtime_knobs, skipped_report

    stop = threading.Event()
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        got.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rig, path = load_rig(args.rig)
        options: dict[str, str | Path | None] = {"lr_replay": args.lr_replay, "sr_replay": args.sr_replay}
        checked = check_rig(rig, path, options=options)
        folder = Path(args.dir).expanduser().resolve()
        pid_file = _claim_dir(folder)
        record_path = Path(args.record) if args.record else folder / "emulator.jsonl"
        json_path = Path(args.json) if args.json else folder / "endpoints.json"
        modbus = sorted(n for n, b in rig.buses.items() if isinstance(b, ModbusBusCfg))
        ports = {n: (args.modbus_port + i if args.modbus_port else 0) for i, n in enumerate(modbus)}
        # before the build: the emulator threads inherit the scheduling policy
        knobs = (skipped_report(rig.controller.realtime, "--no-rt-knobs") if args.no_rt_knobs
                 else apply_realtime_knobs(rig.controller.realtime))
        rec = EmulatorRecord(record_path)
        links: list[Path] = []
        far = None
        try:
            far = build_far_end(checked, seed=args.seed, record=rec.event, tcp_ports=ports, options=options)
            rec.attach(far)
            # what was built lives until the end: keep full collections from walking it
            # mid-run (tens of ms on a loaded machine; the valve board judges 200 ms)
            gc.collect()
            gc.freeze()
            doc = endpoints_document(far, folder)
            doc["record"] = str(record_path)
            doc["realtime_knobs"] = knobs.as_dict()
            links = _make_links(doc)
            rec.watch_gc()
            far.start(lambda: rec.start(far, doc["buses"]))  # type: ignore[arg-type]
            write_json_atomic(json_path, doc)
            for name, ep in doc["buses"].items():  # type: ignore[attr-defined]
                where = ep.get("channel") or ep.get("url")
                extra = f" (link {ep['link']})" if ep.get("link") else ""
                kind = f"{ep['interface']} " if ep["kind"] == "can" else ""
                print(f"{name}: {kind}{where}{extra}")
            print(f"endpoints: {json_path}\nrecord: {record_path}\nready (pid {os.getpid()}); "
                  "SIGINT or SIGTERM stops", flush=True)
            deadline = time.monotonic() + args.duration if args.duration else None
            while not stop.wait(0.1):
                rec.flush()
                if far.runner.error is not None:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            try:
                if far is not None:
                    far.close()
            finally:
                rec.close(far)
                for link in links:
                    link.unlink(missing_ok=True)
                if json_path.exists():
                    json_path.unlink()
                pid_file.unlink(missing_ok=True)
                knobs.restore()
                gc.unfreeze()
        if got:
            print(f"stopped by {signal.Signals(got[0]).name}", file=sys.stderr)
        return EXIT_OK
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``emulate`` to the ``qiki`` verbs."""
    e = sub.add_parser("emulate", help="run a rig's emulated hardware in its own process (ptys, slcan, TCP)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("rig", help="an emulated rig YAML (e.g. rigs/virtual.yaml)")
    e.add_argument("--dir", default=DEFAULT_DIR,
                   help=f"stable links to the ptys, endpoints.json and the record (default {DEFAULT_DIR})")
    e.add_argument("--json", default=None, metavar="PATH", help="write the endpoints here (default DIR/endpoints.json)")
    e.add_argument("--record", default=None, metavar="PATH",
                   help="the emulators' record, JSON lines (default DIR/emulator.jsonl)")
    e.add_argument("--seed", type=int, default=0, help="seed of every random source in the emulation")
    e.add_argument("--modbus-port", type=int, default=DEFAULT_MODBUS_PORT, metavar="PORT",
                   help=f"TCP port of the first Modbus bus on 127.0.0.1, the next bus +1... "
                        f"(default {DEFAULT_MODBUS_PORT}; 0: ephemeral)")
    e.add_argument("--duration", type=float, default=None, metavar="S", help="stop by itself after S seconds")
    e.add_argument("--no-rt-knobs", action="store_true",
                   help="do not apply the rig's controller.realtime knobs to this process")
    e.add_argument("--lr-replay", default=None, metavar="FILE", help="the long-range radar replays this CAN log")
    e.add_argument("--sr-replay", default=None, metavar="FILE", help="the short-range radar replays this capture")
    e.set_defaults(func=_cmd_emulate)
