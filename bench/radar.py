"""Benchmark: ARS408 ingress path versus bare cantools decoding, on the real candump.

Prints one JSON object: frames per second of

* ``bare_cantools`` -- ``cantools.Database.decode_message(frame_id, data)`` (defaults) over
  every frame, with our DBC;
* ``full_ingress`` -- :meth:`hal.devices.ars408.Ars408Driver.on_frame` over every frame:
  ID filter, ingress checks (error/remote, ID format, DLC, DBC range and VAL_ tables),
  decode, cycle assembly (515 cycles) and radar-state interpretation;

measured in the same run on the same frames (best of ``--repeat`` passes each, frames
already in memory), and ``cost_ratio`` = bare rate / full rate (target <= 3).

Usage: ``python bench/radar.py [--log FILE] [--repeat N]``. Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cantools  # noqa: E402

from hal.can.codec import DbcCodec  # noqa: E402
from hal.can.replay import read_can_log  # noqa: E402
from hal.devices.ars408 import Ars408Config, Ars408Driver  # noqa: E402

DEFAULT_LOG = ROOT.parent / "shared" / "data" / "real" / "can" / "ars408" / \
    "candump-2026-06-24_154259.log"
DBC = ROOT / "dbc" / "ars408.dbc"


def _best_rate(fn, n_frames: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_frames / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", default=str(DEFAULT_LOG))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    log = Path(args.log)
    if not log.is_file():
        print(json.dumps({"error": f"{log}: not found"}))
        return 2
    frames = read_can_log(log)
    t0 = frames[0].timestamp
    stamped = [(m, m.timestamp - t0) for m in frames]
    db = cantools.database.load_file(str(DBC), strict=True)
    codec = DbcCodec([DBC])
    pairs = [(m.arbitration_id, m.data) for m in frames]

    def bare() -> None:
        dec = db.decode_message
        for fid, data in pairs:
            dec(fid, data)

    result = {}

    def full() -> None:
        drv = Ars408Driver(codec, Ars408Config(), start_s=0.0)
        on_frame = drv.on_frame
        for m, now in stamped:
            on_frame(m, now)
        result["cycles"] = drv.assembler.cycles_complete
        result["rejects"] = drv.poll(stamped[-1][1]).rejects

    bare_fps = _best_rate(bare, len(frames), args.repeat)
    full_fps = _best_rate(full, len(frames), args.repeat)
    print(json.dumps({
        "log": str(log),
        "frames": len(frames),
        "repeat": args.repeat,
        "bare_cantools_frames_per_s": round(bare_fps),
        "full_ingress_frames_per_s": round(full_fps),
        "cost_ratio": round(bare_fps / full_fps, 3),
        "target_cost_ratio_max": 3.0,
        "cycles_complete": result["cycles"],
        "rejects": result["rejects"],
        "python": sys.version.split()[0],
        "cantools": cantools.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
