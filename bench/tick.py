"""Benchmark: QIKI's real-time control tick against a reference tick and cyclictest beside it.

Issue 16 part 5. Per condition (``knobs_on``: the rig's real-time knobs as shipped, and
``knobs_off``: none, SCHED_OTHER), in one invocation, order shuffled by ``--seed``:

* ``qiki emulate rigs/virtual.yaml`` (the emulators in their own process) and
  ``qiki run --rig <copy of rigs/bench_two_process.yaml> --realtime`` at its 100 Hz, as in
  :mod:`bench.two_process_rt` (docs/two-process.md);
* beside it, ``../shared/bench/reference_tick.py --rate 100`` (an integrated reference
  control tick: CAN recv + cantools decode, 8 Kalman tracks, a 6x12 daqp allocation, encode
  and send), ``--tuned`` when the knobs are on;
* beside both, ``cyclictest`` at the controller's priority and policy (``-p 50`` SCHED_FIFO
  with knobs, ``--policy=other`` without) and its 10 ms interval.

Figures per condition: the controller's tick wall time p50/p99 (``tick_duration_s`` of
the ``/loop`` rows of ``run.mcap``) against the reference tick's ``work_us`` p50/p99 --
the ratios take the ticks in ``active`` (flying: the work the reference tick models;
``tick_us_active``) when there are at least ``MIN_ACTIVE_TICKS``, else every tick
(``tick_ratio_ticks`` says which; ``tick_p50_ratio_all``/``tick_p99_ratio_all`` and
``tick_us`` cover every tick, boot's first-time costs included); the
controller's period error p99 against cyclictest's p99; the controller process's CPU use
(``utime + stime`` of ``/proc/<pid>/stat`` over the measured stretch, % of one core); the
run's result and final state (a ``safe_mode`` with "system lagging" shows there). Ratios:
``tick_p50_ratio``, ``tick_p99_ratio`` (target <= 1.0), ``period_p99_ratio_vs_cyclictest``
(target <= 1.2), ``cpu_pct_of_core`` (target <= 35). Missing tools or the reference script
skip their part with a reason in the JSON.

Usage: ``python bench/tick.py [--duration S] [--seed N] [--ct-delay S] [--out FILE]``
(default 20 s per condition: about 2 x (20 + 15) s). Never part of the test run; timing
figures are only meaningful as ratios of one run on this shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.two_process_rt import (  # noqa: E402
    INTERVAL_US,
    _start_controller,
    _start_emulator,
    _stop,
    _summary_us,
    _write_rig,
    cyclictest_samples,
    emit_json,
)

REFERENCE = ROOT.parent / "shared" / "bench" / "reference_tick.py"
RATE_HZ = 100
CONDITIONS = (("knobs_on", True), ("knobs_off", False))
MIN_ACTIVE_TICKS = 100  # fewer flying ticks than this: the ratios take every tick
TARGETS = {"tick_p50_ratio": 1.0, "tick_p99_ratio": 1.0, "period_p99_ratio_vs_cyclictest": 1.2,
           "cpu_pct_of_core": 35.0}


def _cpu_s(pid: int) -> float | None:
    """CPU time (user + system, s) of one process from ``/proc/<pid>/stat``; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loop_rows(run_dir: Path, states: frozenset[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every tick's wall duration and period error (us) from ``run.mcap``'s ``/loop`` topic.

    With ``states``, only the ticks whose ``/tick`` record names one of them (joined on
    the tick index), e.g. ``{"active"}``: the flying ticks, whose work is the one the
    reference tick models, without boot's first-time costs.
    """
    from controller.record.reader import FlightRecord

    mcaps = sorted(run_dir.rglob("run.mcap"))
    if not mcaps:
        return np.empty(0), np.empty(0)
    rec = FlightRecord(mcaps[-1])
    rows = rec.topic("/loop")
    if states is not None:
        keep = {r["tick"] for r in rec.topic("/tick") if r.get("state") in states}
        rows = [r for r in rows if r.get("tick") in keep]
    dur = [float(r["tick_duration_s"]) * 1e6 for r in rows if "tick_duration_s" in r]  # type: ignore[arg-type]
    err = [float(r["period_error_s"]) * 1e6 for r in rows if "period_error_s" in r]  # type: ignore[arg-type]
    return np.sort(np.array(dur)), np.sort(np.array(err))


def one_condition(folder: Path, name: str, knobs: bool, args: argparse.Namespace,
                  tools: dict[str, str | None]) -> dict[str, object]:
    """Run one condition: emulator, controller, reference tick and cyclictest side by side."""
    folder.mkdir(parents=True)
    out: dict[str, object] = {"condition": name, "knobs": knobs}
    emu = ctl = ct = ref = None
    ct_json = folder / "cyclictest.json"
    try:
        emu, endpoints = _start_emulator(folder, knobs, args.seed)
        rig, prio = _write_rig(folder, endpoints, knobs)
        out["priority"] = prio if prio is not None else "SCHED_OTHER"
        summary_path = folder / "summary.json"
        t0 = time.monotonic()
        ctl = _start_controller(folder, rig, args.duration, args.seed, summary_path)
        time.sleep(args.ct_delay)  # the controller's build; then all measure the same stretch
        measure_s = max(args.duration - args.ct_delay - 1.0, 1.0)
        if tools["cyclictest"]:
            policy = ["-p", str(prio)] if prio is not None else ["--policy=other", "-p", "0"]
            ct = subprocess.Popen([tools["cyclictest"], "-m", *policy, "-i", str(INTERVAL_US), "-q",
                                   "-D", str(int(measure_s)), "-h", "20000", f"--json={ct_json}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if REFERENCE.is_file():
            ref = subprocess.Popen([sys.executable, str(REFERENCE), "--rate", str(RATE_HZ), "--duration",
                                    str(measure_s), "--label", name, *(["--tuned"] if knobs else [])],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        c0, w0 = _cpu_s(ctl.pid), time.monotonic()
        c1, w1 = c0, w0
        while ctl.poll() is None and time.monotonic() - w0 < measure_s:
            time.sleep(0.25)  # sampling the controller's CPU time, not timing anything
            c = _cpu_s(ctl.pid)
            if c is not None:
                c1, w1 = c, time.monotonic()
        if c0 is not None and c1 is not None and w1 > w0:
            out["cpu_pct_of_core"] = round(100.0 * (c1 - c0) / (w1 - w0), 1)
        ctl.wait(timeout=args.duration + 90)
        out["controller_wall_s"] = round(time.monotonic() - t0, 1)
        out["exit_code"] = ctl.returncode
        s = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        out["result"], out["final_state"] = s.get("result"), s.get("final_state")
        out["first_fault"] = (s.get("faults") or [None])[0]  # summary.json has no first_fault key
        dur, err = _loop_rows(folder / "runs")
        out["tick_us"] = _summary_us(dur)
        out["period_error_us"] = _summary_us(err)
        act, _ = _loop_rows(folder / "runs", frozenset({"active"}))
        out["tick_us_active"] = _summary_us(act)
        # the ratios compare the flying ticks (the work the reference tick models) when
        # the run flew long enough; otherwise every tick (boot and idle included)
        ratio_ticks = "active" if act.size >= MIN_ACTIVE_TICKS else "all"
        out["tick_ratio_ticks"] = ratio_ticks
        if ref is not None:
            rout, rerr = ref.communicate(timeout=measure_s + 60)
            try:
                rdoc = json.loads(rout.decode().strip().splitlines()[-1])
                out["reference_tick"] = {"work_us": rdoc["work_us"], "period_err_us": rdoc["period_err_us"],
                                         "tuned": rdoc["tuned"]}
                t50, t99 = out["tick_us"]["p50"], out["tick_us"]["p99"]  # type: ignore[index]
                if t50 is not None:
                    out["tick_p50_ratio_all"] = round(t50 / rdoc["work_us"]["p50"], 3)
                    out["tick_p99_ratio_all"] = round(t99 / rdoc["work_us"]["p99"], 3)
                src = out["tick_us_active"] if ratio_ticks == "active" else out["tick_us"]
                t50, t99 = src["p50"], src["p99"]  # type: ignore[index]
                if t50 is not None:
                    out["tick_p50_ratio"] = round(t50 / rdoc["work_us"]["p50"], 3)
                    out["tick_p99_ratio"] = round(t99 / rdoc["work_us"]["p99"], 3)
            except (ValueError, IndexError, KeyError) as exc:
                out["reference_error"] = f"{type(exc).__name__}: {rerr.decode()[-300:]}"
        else:
            out["reference_tick"] = f"skipped: {REFERENCE} absent"
        if ct is not None:
            _, cerr = ct.communicate(timeout=measure_s + 30)
            if ct_json.exists():
                samples, overflows = cyclictest_samples(json.loads(ct_json.read_text()))
                out["cyclictest_us"] = {**_summary_us(samples), "overflows": overflows}
                c99, t99c = out["period_error_us"]["p99"], out["cyclictest_us"]["p99"]  # type: ignore[index]
                if c99 is not None and t99c:
                    out["period_p99_ratio_vs_cyclictest"] = round(c99 / t99c, 3)
            else:
                out["cyclictest_error"] = f"exit {ct.returncode}: {cerr.decode()[-300:]}"
        else:
            out["cyclictest_us"] = "skipped: cyclictest not found on PATH"
    except Exception as exc:  # a bench: report the failure of this condition and go on
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _stop(ct, signal.SIGINT)
        _stop(ref, signal.SIGTERM)
        _stop(ctl, signal.SIGTERM, 20.0)
        _stop(emu, signal.SIGTERM)
    out["verdicts"] = {k: (out[k] <= v) for k, v in TARGETS.items()  # type: ignore[operator]
                       if isinstance(out.get(k), (int, float))}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both conditions once, interleaved, and print (and optionally write) one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, metavar="S", help="run time per condition (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="order of the conditions and emulation seed")
    ap.add_argument("--ct-delay", type=float, default=4.0, metavar="S",
                    help="start cyclictest and the reference S s after the controller (default 4)")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep every file here (default: temporary)")
    ap.add_argument("--out", default=None, metavar="FILE", help="also write the JSON here")
    args = ap.parse_args(argv)
    tools = {"cyclictest": shutil.which("cyclictest")}
    order = list(CONDITIONS)
    random.Random(args.seed).shuffle(order)
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="qiki-tick-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        results = [one_condition(base / f"{i}-{name}", name, knobs, args, tools)
                   for i, (name, knobs) in enumerate(order)]
    doc = {"bench": "tick", "rate_hz": RATE_HZ, "duration_s": args.duration, "seed": args.seed,
           "targets": TARGETS, "cpus": os.cpu_count(), "loadavg_start": load_start,
           "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "wall_s": round(time.monotonic() - started, 1),
           "conditions": {r["condition"]: r for r in results}}
    emit_json(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
