"""Fuzz the radar ingress with mutated REAL data: no point outside the gate reaches tracking.

Mutates the real ARS408-21 candump and the real IWR6843 UART capture of
``../shared/data/real/`` (see ``../shared/data/README.md``) and feeds them through the
drivers exactly as the controller does (:class:`hal.devices.ars408.Ars408Driver`,
:class:`hal.devices.iwr6843.Iwr6843Driver`). Neither protocol has a CRC, so corruption
that still decodes is expected; what matters is what reaches tracking:

* ARS408: each frame is mutated with probability ``--frame-prob`` (1-3 bit flips, or one
  random byte); counted are the mutated frames the ingress accepted (DLC, DBC range and
  enum checks), the objects of completed cycles ("before": what reached the tracker
  without the gate; "outside": of those, the ones outside the datasheet envelope) and
  the detections after the plausibility gate ("after"; "after_outside" must be 0).
* IWR6843: every packet is mutated (1-3 bit flips, or one random byte, anywhere in the
  packet); counted are the mutated packets the parser accepted, their points ("before",
  "outside" the point gate) and the detections after the gate ("after_outside" must be 0).

Prints one JSON object. Usage::

    .venv/bin/python bench/fuzz_ingress.py [--passes 10] [--seed 0] [--frame-prob 0.1]

``passes`` is how many times each recording is replayed mutated (10 passes: about 96,000
ARS408 frames and 1,010 TI packets).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import can  # noqa: E402

from firmware_bridge.protocols import ars408 as ars  # noqa: E402
from firmware_bridge.protocols import iwr6843 as ti  # noqa: E402
from hal.can.codec import DbcCodec  # noqa: E402
from hal.can.replay import read_can_log  # noqa: E402
from hal.devices.ars408 import Ars408Driver  # noqa: E402
from hal.devices.iwr6843 import Iwr6843Driver  # noqa: E402

REAL = (ROOT.parent / "shared").resolve() / "data" / "real"
ARS408_LOG = REAL / "can" / "ars408" / "candump-2026-06-24_154259.log"
TI_CAPTURE = REAL / "serial" / "ti_iwr6843" / "xwr68xx_processed_stream_2019_12_04T21_44_51_663.dat"
ARS408_DBC = ROOT / "dbc" / "ars408.dbc"


def mutate(data: bytes | bytearray, rng: random.Random) -> bytearray:
    """Return ``data`` with 1-3 random bit flips, or one byte replaced by a random value."""
    out = bytearray(data)
    if not out:
        return out
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            bit = rng.randrange(len(out) * 8)
            out[bit // 8] ^= 1 << (bit % 8)
    else:
        i = rng.randrange(len(out))
        out[i] = (out[i] + rng.randrange(1, 256)) & 0xFF
    return out


def _outside_envelope(o: ars.RadarObject, lim: ars.PlausibilityLimits) -> bool:
    """The static part of the ARS408 gate (no step check): True when ``o`` lies outside."""
    return ars.implausible_reason(o, None, ars.NOMINAL_CYCLE_S, lim) is not None


def fuzz_ars408(passes: int, seed: int, frame_prob: float, *, log: Path = ARS408_LOG,
                max_frames: int | None = None) -> dict[str, object]:
    """Replay the real candump ``passes`` times with mutated frames; count what gets through.

    Parameters
    ----------
    passes : int
        Replays of the recording (a fresh driver each).
    seed : int
        Seed of the mutations.
    frame_prob : float
        Probability that a frame is mutated, 0..1.
    log : Path
        The candump.
    max_frames : int, optional
        Stop each pass after this many frames (small budgets for tests).

    Returns
    -------
    dict
        Counts (see the module docstring); ``after_outside`` is the figure that must be 0.
    """
    rng = random.Random(seed)
    frames = read_can_log(log)
    if max_frames is not None:
        frames = frames[:max_frames]
    t0 = frames[0].timestamp
    codec = DbcCodec([ARS408_DBC])
    lim = ars.PlausibilityLimits()
    out = {"frames": 0, "mutated": 0, "mutated_accepted": 0, "cycles": 0, "objects_before": 0,
           "objects_before_outside": 0, "detections_after": 0, "after_outside": 0, "implausible": {}}
    implausible: dict[str, int] = {}
    for _ in range(passes):
        drv = Ars408Driver(codec)
        for m in frames:
            now_s = m.timestamp - t0
            msg = m
            mutated = rng.random() < frame_prob
            if mutated:
                msg = can.Message(arbitration_id=m.arbitration_id, data=mutate(m.data, rng),
                                  is_extended_id=m.is_extended_id, dlc=m.dlc)
            before = drv.decoded
            cycle = drv.on_frame(msg, now_s)
            out["frames"] += 1
            if mutated:
                out["mutated"] += 1
                out["mutated_accepted"] += drv.decoded - before
            if cycle is None:
                continue
            out["cycles"] += 1
            out["objects_before"] += len(cycle.objects)
            out["objects_before_outside"] += sum(_outside_envelope(o, lim) for o in cycle.objects)
            kept = cycle.plausible_objects()
            out["detections_after"] += len(drv.detections(cycle))
            out["after_outside"] += sum(_outside_envelope(o, lim) for o in kept)
        for k, v in drv.poll(frames[-1].timestamp - t0).implausible.items():
            implausible[k] = implausible.get(k, 0) + v
    out["implausible"] = dict(sorted(implausible.items()))
    return out


class _BytesLink:
    """A serial link that hands out a byte string (what the driver reads per poll)."""

    is_open = True

    def __init__(self) -> None:
        self.buf = bytearray()

    def read(self, max_bytes: int) -> bytes:
        chunk = bytes(self.buf[:max_bytes])
        del self.buf[:max_bytes]
        return chunk


def fuzz_iwr6843(passes: int, seed: int, *, capture: Path = TI_CAPTURE,
                 max_packets: int | None = None) -> dict[str, object]:
    """Replay the real TI capture ``passes`` times, every packet mutated; count what gets through.

    Parameters
    ----------
    passes : int
        Replays of the capture (a fresh driver each).
    seed : int
        Seed of the mutations.
    capture : Path
        The ``.dat`` capture.
    max_packets : int, optional
        Stop each pass after this many packets (small budgets for tests).

    Returns
    -------
    dict
        Counts (see the module docstring); ``after_outside`` is the figure that must be 0.
    """
    rng = random.Random(seed)
    chunks = ti.split_stream(capture.read_bytes())
    if max_packets is not None:
        chunks = chunks[:max_packets]
    gate = ti.PointGate()
    out = {"packets": 0, "mutated_accepted": 0, "points_before": 0, "points_before_outside": 0,
           "points_before_beyond_1km": 0, "detections_after": 0, "after_outside": 0, "points_dropped": {}}
    dropped: dict[str, int] = {}
    max_r = gate.max_range_m
    fov = math.radians(gate.fov_azimuth_deg)
    for _ in range(passes):
        link = _BytesLink()
        drv = Iwr6843Driver(link, frame_period_s=0.1)  # type: ignore[arg-type]
        for k, chunk in enumerate(chunks):
            now_s = 0.1 * k
            link.buf += mutate(chunk, rng)
            n_before, n_outside, n_far = _peek_points(drv, link)
            scans = drv.poll(now_s)
            out["packets"] += 1
            out["mutated_accepted"] += len(scans)
            for s in scans:
                for d in s.detections:
                    out["detections_after"] += 1
                    if not (gate.min_range_m < d.range_m <= max_r + 1e-9
                            and abs(d.azimuth_radar_rad) <= fov + 1e-9):
                        out["after_outside"] += 1
            out["points_before"] += n_before
            out["points_before_outside"] += n_outside
            out["points_before_beyond_1km"] += n_far
        for reason, n in drv.points_dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
    out["points_dropped"] = dict(sorted(dropped.items()))
    return out


def _peek_points(drv: Iwr6843Driver, link: _BytesLink) -> tuple[int, int, int]:
    """Points a parser in the driver's state accepts from the queued bytes, before the gate.

    Counted on a copy of the driver's parser: ``(points, outside the gate, beyond 1 km)``.
    """
    import copy

    parser = copy.deepcopy(drv.parser)
    frames = parser.feed(bytes(link.buf))
    gate = ti.PointGate()
    n = outside = far = 0
    for f in frames:
        if drv._last_frame_number is not None and f.frame_number == drv._last_frame_number:
            continue  # the driver drops a repeated frame number before the gate
        for p in f.points:
            n += 1
            outside += gate.reason(p) is not None
            far += math.sqrt(p.x_m ** 2 + p.y_m ** 2 + p.z_m ** 2) > 1000.0
    return n, outside, far


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frame-prob", type=float, default=0.1, help="ARS408: probability a frame is mutated")
    args = ap.parse_args()
    if not (ARS408_LOG.is_file() and TI_CAPTURE.is_file()):
        print(json.dumps({"skipped": f"real recordings not found under {REAL}"}))
        return 0
    out = {"ars408": fuzz_ars408(args.passes, args.seed, args.frame_prob),
           "iwr6843": fuzz_iwr6843(args.passes, args.seed)}
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
