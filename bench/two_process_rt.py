"""Benchmark: the two-process controller's period error against ``cyclictest`` beside it.

Issue 13 (docs/two-process.md): in the two-process set-up (``qiki emulate rigs/virtual.yaml``
plus ``qiki run --rig rigs/bench_two_process.yaml --realtime``) the controller's period
error p99 is compared with that of ``cyclictest`` (rt-tests) run beside it at the same
priority and period (10 ms), in four conditions, interleaved in one invocation (order
shuffled by ``--seed``):

``knobs_on``
    The rig as shipped (``controller.realtime``: SCHED_FIFO 50, ``gc_freeze``); ``qiki
    emulate`` applies its own rig's knobs (SCHED_FIFO 50); ``cyclictest -p 50`` (SCHED_FIFO).
``knobs_off``
    A temporary copy of the rig with ``controller.realtime`` emptied; ``qiki emulate
    --no-rt-knobs``; ``cyclictest --policy=other -p 0`` (SCHED_OTHER).
``..._stress``
    The same with ``stress-ng --cpu 2`` (one CPU hog per core of this 2-core machine, at
    SCHED_OTHER) running beside the three processes.

Every condition starts its own ``qiki emulate`` (its own ``--dir``, an ephemeral Modbus
port), a copy of ``rigs/bench_two_process.yaml`` pointed at it, then ``qiki run --mission
missions/square.yaml --realtime --duration D``; ``cyclictest -m -i 10000 -q -D D -h
HIST --json FILE`` starts ``--ct-delay`` s later (the controller's build: python-can's
slcan sleeps 2 s after opening the port), so both measure over the same stretch of the run.

The controller's figures come from the run's ``summary.json`` (``loop.period_error_us``:
nearest-rank p50/p99/max at 1 us) and each tick's ``period_error_s`` on the ``/loop``
topic of ``run.mcap``; cyclictest's from its JSON histogram (1 us bins; samples beyond
``--hist-us`` are counted as overflow and put at the reported max). Per condition:
controller p50/p99/max, cyclictest p50/p99/max, ``p99_ratio`` = controller p99 /
cyclictest p99 and its 95 % bootstrap interval (controller ticks resampled in blocks of
``--block-s`` to keep their correlation, Kunsch 1989; cyclictest samples resampled one by
one: its histogram has no order; percentile interval, Efron & Tibshirani 1993), plus the
run's result and final state. A missing ``cyclictest`` or ``stress-ng`` skips its part
with a reason in the JSON.

Usage: ``python bench/two_process_rt.py [--duration S] [--seed N] [--ct-delay S]
[--hist-us US] [--block-s S] [--resamples N]`` (defaults: 20 s, seed 0: about
4 x (20 + 12) s). Needs RT privileges for SCHED_FIFO (root here); without them the knobs
are refused and reported in each run's ``realtime_knobs``. Never part of the test run.
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
import yaml  # noqa: E402

QIKI = [sys.executable, "-c", "import sys; from controller.cli import main; sys.exit(main())"]
RIG = ROOT / "rigs" / "bench_two_process.yaml"
EMULATED_RIG = "rigs/virtual.yaml"
MISSION = "missions/square.yaml"
#: cyclictest's interval: the controller's period (rate_hz 100).
INTERVAL_US = 10_000
CONDITIONS = (("knobs_on", True, False), ("knobs_off", False, False),
              ("knobs_on_stress", True, True), ("knobs_off_stress", False, True))


def _pct(sorted_us: np.ndarray, p: float) -> float:
    """Nearest-rank quantile (Hyndman & Fan 1996, def. 1) of sorted values (us)."""
    return float(np.quantile(sorted_us, p, method="inverted_cdf"))


def _summary_us(values_us: np.ndarray) -> dict[str, float | int | None]:
    if values_us.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": int(values_us.size), "p50": round(_pct(values_us, 0.5), 1),
            "p99": round(_pct(values_us, 0.99), 1), "max": round(float(values_us.max()), 1)}


def cyclictest_samples(doc: dict[str, object]) -> tuple[np.ndarray, int]:
    """Expand cyclictest's ``--json`` histogram (one thread) into its samples (us).

    Returns
    -------
    (numpy.ndarray, int)
        Every sample's latency (us, 1 us bins; overflows put at the thread's ``max``) and
        the number of overflows (samples beyond ``-h``).
    """
    threads = doc["thread"]
    assert isinstance(threads, dict)
    out: list[np.ndarray] = []
    overflows = 0
    for th in threads.values():
        hist = {int(k): int(v) for k, v in th.get("histogram", {}).items()}
        counted = sum(hist.values())
        over = int(th["cycles"]) - counted
        overflows += max(over, 0)
        out.append(np.repeat(np.array(list(hist), float), list(hist.values())))
        if over > 0:
            out.append(np.full(over, float(th["max"])))
    return np.sort(np.concatenate(out)) if out else np.empty(0), overflows


def controller_samples(run_dir: Path) -> np.ndarray:
    """Every tick's period error (us, in tick order) from ``run.mcap``'s ``/loop`` topic."""
    from controller.record.reader import FlightRecord

    mcaps = sorted(run_dir.rglob("run.mcap"))
    if not mcaps:
        return np.empty(0)
    rows = FlightRecord(mcaps[-1]).topic("/loop")
    return np.array([float(r["period_error_s"]) * 1e6 for r in rows if "period_error_s" in r])  # type: ignore[arg-type]


def ratio_ci(ctrl_us: np.ndarray, ct_us: np.ndarray, block_n: int, resamples: int, seed: int) -> list[float] | None:
    """95 % bootstrap interval of controller p99 / cyclictest p99.

    Controller ticks are resampled in moving blocks of ``block_n`` ticks (their order
    kept); cyclictest samples one by one (its histogram has no order).
    """
    if resamples <= 0 or ctrl_us.size < block_n or ct_us.size == 0:
        return None
    rng = np.random.default_rng(seed)
    n_blocks = max(ctrl_us.size // block_n, 1)
    starts_max = ctrl_us.size - block_n
    ratios = np.empty(resamples)
    for b in range(resamples):
        starts = rng.integers(0, starts_max + 1, n_blocks)
        c = np.concatenate([ctrl_us[s:s + block_n] for s in starts])
        t = rng.choice(ct_us, ct_us.size, replace=True)
        denom = np.quantile(t, 0.99, method="inverted_cdf")
        ratios[b] = np.quantile(c, 0.99, method="inverted_cdf") / denom if denom > 0 else np.nan
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return None
    return [round(float(np.quantile(ratios, 0.025)), 3), round(float(np.quantile(ratios, 0.975)), 3)]


def _stop(p: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Signal one process we started, wait (bounded), then kill it."""
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)


def _start_emulator(folder: Path, knobs: bool, seed: int) -> tuple[subprocess.Popen[bytes], dict]:
    emu_dir = folder / "emu"
    cmd = [*QIKI, "emulate", EMULATED_RIG, "--dir", str(emu_dir), "--modbus-port", "0", "--seed", str(seed)]
    if not knobs:
        cmd.append("--no-rt-knobs")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(folder / "emulate.err", "wb"),  # noqa: SIM115
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    endpoints = emu_dir / "endpoints.json"
    deadline = time.monotonic() + 30.0
    while not endpoints.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qiki emulate did not come up: {(folder / 'emulate.err').read_text()[-600:]}")
        time.sleep(0.05)  # polling for a condition, not timing anything
    time.sleep(0.1)  # endpoints.json is written atomically; let the far end settle
    return proc, json.loads(endpoints.read_text())


def _start_controller(folder: Path, rig: Path, duration_s: float, seed: int,
                      summary_path: Path) -> subprocess.Popen[bytes]:
    """Start ``qiki run --realtime`` on ``rig`` flying the square for ``duration_s``; stderr to run.err."""
    return subprocess.Popen([*QIKI, "run", "--rig", str(rig), "--mission", MISSION, "--realtime",
                             "--duration", str(duration_s), "--seed", str(seed), "--no-progress",
                             "--runs-dir", str(folder / "runs"), "--summary-json", str(summary_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(folder / "run.err", "wb"),  # noqa: SIM115
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def emit_json(doc: dict[str, object], out: str | None) -> None:
    """Print a bench's JSON document and, with ``out``, also write it there."""
    text = json.dumps(doc, indent=1)
    if out:
        Path(out).write_text(text + "\n")
    print(text)


def _write_rig(folder: Path, endpoints: dict, knobs: bool) -> tuple[Path, int | None]:
    port = endpoints["buses"]["power"]["url"].rsplit(":", 1)[1]
    text = RIG.read_text().replace("/tmp/qiki-emulate/", f"{endpoints['dir']}/").replace(
        "127.0.0.1:15020", f"127.0.0.1:{port}")
    data = yaml.safe_load(text)
    prio = data["controller"].get("realtime", {}).get("sched_fifo_priority")
    if not knobs:
        data["controller"]["realtime"] = {}
        prio = None
    rig = folder / "rig.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False))
    return rig, prio


def one_condition(folder: Path, name: str, knobs: bool, stress: bool, args: argparse.Namespace,
                  tools: dict[str, str | None]) -> dict[str, object]:
    """Run one condition (emulator, controller, cyclictest, maybe stress-ng) and digest it."""
    folder.mkdir(parents=True)
    out: dict[str, object] = {"condition": name, "knobs": knobs, "stress": stress}
    emu = ctl = ct = hog = None
    endpoints: dict = {}
    ct_json = folder / "cyclictest.json"
    try:
        emu, endpoints = _start_emulator(folder, knobs, args.seed)
        rig, prio = _write_rig(folder, endpoints, knobs)
        out["priority"] = prio if prio is not None else "SCHED_OTHER"
        if stress and tools["stress-ng"]:
            hog = subprocess.Popen([tools["stress-ng"], "--cpu", "2", "--timeout", f"{int(args.duration + 30)}s",
                                    "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summary_path = folder / "summary.json"
        t0 = time.monotonic()
        ctl = _start_controller(folder, rig, args.duration, args.seed, summary_path)
        if tools["cyclictest"]:
            time.sleep(args.ct_delay)  # the controller's build; then both measure the same stretch
            policy = ["-p", str(prio)] if prio is not None else ["--policy=other", "-p", "0"]
            ct = subprocess.Popen([tools["cyclictest"], "-m", *policy, "-i", str(INTERVAL_US), "-q",
                                   "-D", str(int(round(args.duration))), "-h", str(args.hist_us),
                                   f"--json={ct_json}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ctl.wait(timeout=args.duration + 90)
        out["controller_wall_s"] = round(time.monotonic() - t0, 1)
        out["exit_code"] = ctl.returncode
        if ct is not None:
            _, err = ct.communicate(timeout=args.duration + 30)
            if ct.returncode != 0:
                out["cyclictest_error"] = f"exit {ct.returncode}: {err.decode()[-300:]}"
        s = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        out["result"] = s.get("result")
        out["final_state"] = s.get("final_state")
        loop = s.get("loop", {})
        out["controller_summary_us"] = {"ticks": loop.get("ticks"), "overruns": loop.get("overruns"),
                                        **(loop.get("period_error_us") or {})}
        knobs_rep = s.get("realtime_knobs")
        if knobs_rep is not None:
            out["controller_knobs"] = knobs_rep.get("effective")
        emu_knobs = endpoints.get("realtime_knobs")
        if isinstance(emu_knobs, dict):
            out["emulator_knobs"] = emu_knobs.get("effective")
        ctrl = controller_samples(folder / "runs")
        out["controller_us"] = _summary_us(np.sort(ctrl))
        if ct is not None and ct_json.exists():
            samples, overflows = cyclictest_samples(json.loads(ct_json.read_text()))
            out["cyclictest_us"] = {**_summary_us(samples), "overflows": overflows}
            c99, t99 = out["controller_us"]["p99"], out["cyclictest_us"]["p99"]  # type: ignore[index]
            if c99 is not None and t99:
                out["p99_ratio"] = round(c99 / t99, 3)
                block_n = max(int(round(args.block_s * 1e6 / INTERVAL_US)), 1)
                out["p99_ratio_ci95"] = ratio_ci(ctrl, samples, block_n, args.resamples, args.seed)
        elif not tools["cyclictest"]:
            out["cyclictest_us"] = None
    except Exception as exc:  # a bench: report the failure of this condition and go on
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _stop(ct, signal.SIGINT)
        _stop(ctl, signal.SIGTERM, 20.0)
        _stop(hog, signal.SIGTERM)
        _stop(emu, signal.SIGTERM)
    err_tail = (folder / "run.err").read_text()[-400:] if (folder / "run.err").exists() else ""
    if err_tail and out.get("exit_code") not in (0, None):
        out["run_stderr_tail"] = err_tail
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every condition once, interleaved, and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, metavar="S", help="run time per condition (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="order of the conditions, emulation and bootstrap seed")
    ap.add_argument("--ct-delay", type=float, default=3.0, metavar="S",
                    help="start cyclictest S s after the controller (its build; default 3)")
    ap.add_argument("--hist-us", type=int, default=20_000, metavar="US", help="cyclictest -h (default 20000)")
    ap.add_argument("--block-s", type=float, default=1.0, metavar="S", help="bootstrap block of controller ticks")
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: none)")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep every file here (default: a temporary folder)")
    args = ap.parse_args(argv)

    tools = {t: shutil.which(t) for t in ("cyclictest", "stress-ng")}
    skipped = {t: f"{t} not found on PATH" for t, p in tools.items() if p is None}
    order = list(CONDITIONS)
    random.Random(args.seed).shuffle(order)
    if not tools["stress-ng"]:
        order = [c for c in order if not c[2]]
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="qiki-rt-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        results = [one_condition(base / f"{i}-{name}", name, knobs, stress, args, tools)
                   for i, (name, knobs, stress) in enumerate(order)]
    doc = {
        "bench": "two_process_rt", "duration_s": args.duration, "seed": args.seed,
        "interval_us": INTERVAL_US, "order": [c[0] for c in order], "skipped": skipped,
        "cpus": os.cpu_count(), "loadavg_start": load_start, "wall_s": round(time.monotonic() - started, 1),
        "conditions": {r["condition"]: r for r in results},
    }
    doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
