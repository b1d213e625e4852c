"""Benchmark: real-time tick period error with a healthy BMS versus a silent one.

SAFETY.md D10 says a silent Modbus device must never block the tick. This runs the real
main job (:func:`controller.run.run_main_job`, ``realtime=True``) on the virtual rig with
the power bus over Modbus TCP on 127.0.0.1 (``rigs/virtual.yaml``) and/or Modbus RTU over a
pty (``rigs/virtual_rtu.yaml``) and compares the period error (tick start minus its
deadline) of ticks while the BMS answers with ticks while it is silent. Neither case
arms (``RunOptions.arm=False``) unless ``--fly`` is given. Two designs:

``--design windows`` (default): paired, inside each run
    The BMS goes silent at ``--silent-at`` for ``--first-silent`` seconds: the battery
    data goes stale and the vehicle goes to ``safe_mode`` (latched, D10). From then on
    the fault plan switches the BMS healthy and silent in turn every ``--window`` seconds
    (healthy, silent, healthy, ...). From the first healthy window after ``safe_mode``
    every tick is counted for the condition of the window it started in, except in the
    first ``timeout_s`` of the power bus of each window (a poll sent just before the
    switch is still waiting out its timeout there). Both conditions
    share the process, the vehicle state and the machine's drifts (other load on a shared
    host), so what differs between them is the BMS alone: a silent window's polls each
    wait out the link timeout, a healthy window's are answered. The p99 ratio's 95 %
    confidence interval comes from a bootstrap over (healthy, silent) window pairs (whole
    windows are resampled, so the ticks' correlation inside a window is kept).

``--design runs``: separate runs, interleaved
    A healthy run and a run whose BMS goes silent at ``--silent-at`` and stays silent,
    alternating ``--repeat`` times; every tick of each case is pooled. The unarmed
    healthy run stays ``idle`` while the silent one goes ``idle -> safe_mode``. Run-to-run
    changes of the machine are not paired out, so this design needs many repeats.

Prints one JSON object: per transport the per-run digests (ticks, overruns, final state,
first fault, BMS failures by kind), pooled nearest-rank percentiles (us) per condition,
``p99_ratio`` = silent p99 / healthy p99 (target: within 10 %, i.e. <= 1.10) and, for the
window design, ``p99_ratio_ci95``. Rigs are written to a temporary folder; nothing is left
behind.

Usage: ``python bench/power_tick.py [--design windows|runs] [--duration S] [--window S]
[--first-silent S] [--transport tcp|rtu|both] [--silent-at S] [--repeat N] [--fly]
[--no-radars]`` (defaults: windows, 60 s runs, 1 s windows, both transports, 2 runs
each: about 4 minutes).
Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import controller.run as run_mod  # noqa: E402
from controller.loop import percentiles  # noqa: E402
from controller.run import RunOptions, run_main_job  # noqa: E402

RIGS = {"tcp": "virtual.yaml", "rtu": "virtual_rtu.yaml"}
LEVELS = (0.5, 0.9, 0.99, 0.999)
BOOTSTRAP_RESAMPLES = 2000


def _write_rig(folder: Path, src: str, faults: list[dict], radars: bool = True) -> Path:
    data = yaml.safe_load((ROOT / "rigs" / src).read_text())
    data["emulation"]["faults"] = faults
    if not radars:
        for name in [n for n, d in data["devices"].items() if d["driver"] in ("ars408", "iwr6843")]:
            del data["devices"][name]
    rigs = folder / "rigs"
    rigs.mkdir(exist_ok=True)
    path = rigs / f"{Path(src).stem}-{len(list(rigs.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def silent_windows(silent_at_s: float, first_silent_s: float, window_s: float, duration_s: float) -> list[dict]:
    """BMS fault plan of the window design.

    Silent in ``[a, a + F)`` (long enough for the data to go stale: safe_mode), then from
    ``o = a + F`` healthy and silent windows of ``W`` in turn: silent in
    ``[o + (2k+1)W, o + (2k+2)W)``, k = 0, 1, ... up to ``duration_s``.

    Returns
    -------
    list of dict
        ``emulation.faults`` entries (times on the run clock, s).
    """
    out = [{"target": "bms", "fault": "silent", "at_s": silent_at_s, "until_s": silent_at_s + first_silent_s}]
    origin = silent_at_s + first_silent_s
    k = 0
    while origin + (2 * k + 1) * window_s < duration_s:
        start = origin + (2 * k + 1) * window_s
        out.append({"target": "bms", "fault": "silent", "at_s": start, "until_s": start + window_s})
        k += 1
    return out


def _one_run(folder: Path, rig: Path, duration_s: float, fly: bool) -> tuple[dict, list[float], list[float]]:
    """One real-time run: its digest, every tick's period error (us) and every tick's start
    on the run clock (s, the clock of the fault plan and of the transitions)."""
    captured: dict = {}
    opts = RunOptions(rig=str(rig), mission=str(ROOT / "missions/square.yaml"), realtime=True,
                      duration_s=duration_s, runs_dir=str(folder / "runs"), progress=False, arm=fly,
                      on_loop_stats=lambda st: captured.setdefault("stats", st))
    _, s, _ = run_main_job(opts)
    loop = s["loop"]
    st = captured["stats"]
    safe_t = next((t[0] for t in s["transitions"] if t[3] == "safe_mode"), None)
    digest = {
        "ticks": loop["ticks"], "overruns": loop["overruns"],
        "period_error_us": loop["period_error_us"], "tick_duration_us": loop["tick_duration_us"],
        "final_state": s["final_state"], "first_fault": (s["faults"] or [None])[0],
        "safe_mode_at_s": safe_t,
        "bms_failures_by_kind": s["power"]["devices"]["bms"]["failures_by_kind"],
        "transport": s["power"]["buses"]["power"]["transport"],
    }
    starts = [st.origin_s + t for t in st.tick_starts_s]
    return digest, list(st.period_errors_us), starts


def _pooled(values) -> dict:
    """Nearest-rank percentiles (us) of pooled period errors."""
    return {"n": len(values), **percentiles(list(values), LEVELS)}


def split_by_window(errors_us: list[float], starts_s: list[float], origin_s: float, window_s: float,
                    count_from_s: float, guard_s: float = 0.0) -> dict[int, list[float]]:
    """Group ticks by window index ``j = floor((t - origin_s) / window_s)`` (even: BMS
    healthy, odd: silent; see :func:`silent_windows`), keeping ticks that started at or
    after ``max(origin_s, count_from_s)`` and not in the first ``guard_s`` of a window (a
    poll sent just before a switch is still waiting out its timeout there)."""
    groups: dict[int, list[float]] = {}
    start = max(origin_s, count_from_s)
    for e, t in zip(errors_us, starts_s, strict=True):
        if t >= start:
            j, into = divmod(t - origin_s, window_s)
            if into >= guard_s:
                groups.setdefault(int(j), []).append(e)
    return groups


def paired_ratio(pairs: list[tuple[list[float], list[float]]], seed: int = 0,
                 resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Silent/healthy p99 ratio over window pairs, with a bootstrap 95 % interval.

    Parameters
    ----------
    pairs : list of (silent ticks, healthy ticks)
        Period errors (us) of adjacent silent and healthy windows.
    seed : int
        Seed of the resampling.
    resamples : int
        Bootstrap resamples (0: the ratios only, no interval).

    Returns
    -------
    dict
        ``p99_ratio`` (pooled), ``p99_ratio_ci95`` (2.5 and 97.5 % of the ratio over
        :data:`BOOTSTRAP_RESAMPLES` resamples of whole pairs; Efron & Tibshirani 1993,
        percentile interval, resampling blocks as in Kunsch 1989; absent when
        ``resamples`` is 0), ``p50_ratio``.
    """
    s_arr = [np.asarray(s, float) for s, _ in pairs]
    h_arr = [np.asarray(h, float) for _, h in pairs]

    def q(arrays: list[np.ndarray], p: float) -> float:  # nearest rank (Hyndman & Fan 1996, def. 1)
        return float(np.quantile(np.concatenate(arrays), p, method="inverted_cdf"))

    out = {
        "pairs": len(pairs),
        "p99_ratio": round(q(s_arr, 0.99) / q(h_arr, 0.99), 3),
        "p50_ratio": round(q(s_arr, 0.5) / q(h_arr, 0.5), 3),
    }
    if resamples <= 0:
        return out
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, len(pairs), len(pairs))
        ratios[b] = q([s_arr[i] for i in idx], 0.99) / q([h_arr[i] for i in idx], 0.99)
    out["p99_ratio_ci95"] = [round(float(np.quantile(ratios, 0.025)), 3), round(float(np.quantile(ratios, 0.975)), 3)]
    return out


def _windows_design(folder: Path, tr: str, args) -> dict:
    faults = silent_windows(args.silent_at, args.first_silent, args.window, args.duration)
    rig = _write_rig(folder, RIGS[tr], faults, args.radars)
    origin = args.silent_at + args.first_silent
    # a BMS poll sent just before a switch waits out the bus timeout into the next window
    guard = float(yaml.safe_load(rig.read_text())["buses"]["power"]["timeout_s"])
    runs, pairs = [], []
    pooled: dict[str, list[float]] = {"healthy": [], "silent_bms": []}
    for _ in range(args.repeat):
        digest, errs, starts = _one_run(folder, rig, args.duration, args.fly)
        safe_t = digest["safe_mode_at_s"]
        if safe_t is None:
            raise SystemExit(f"power_tick: {tr}: the vehicle never reached safe_mode; lengthen --first-silent")
        # pairs start at a healthy window after safe_mode: both conditions in the same (latched) state
        count_from = origin + 2 * args.window * max(0, math.ceil((safe_t - origin) / (2 * args.window) - 1e-9))
        groups = split_by_window(errs, starts, origin, args.window, count_from, guard)
        run_pairs = []
        for j in sorted(groups):
            whole = origin + (j + 2) * args.window <= args.duration + 1e-9  # the run ends at --duration
            if j % 2 == 0 and j + 1 in groups and whole:
                run_pairs.append((groups[j + 1], groups[j]))  # (silent, healthy)
        if not run_pairs:
            raise SystemExit(f"power_tick: {tr}: no whole window pair after safe_mode; use a longer --duration")
        digest["counted_from_s"] = round(count_from, 3)
        digest["window_pairs"] = len(run_pairs)
        digest["p99_ratio"] = paired_ratio(run_pairs, resamples=0)["p99_ratio"]
        runs.append(digest)
        pairs += run_pairs
        for s, h in run_pairs:
            pooled["silent_bms"] += s
            pooled["healthy"] += h
    return {
        "guard_s": guard,
        "runs": runs,
        "pooled_period_error_us": {k: _pooled(v) for k, v in pooled.items()},
        **paired_ratio(pairs),
        "per_run_p99_ratio": [r["p99_ratio"] for r in runs],
    }


def _runs_design(folder: Path, tr: str, args) -> dict:
    healthy_rig = _write_rig(folder, RIGS[tr], [], args.radars)
    silent_rig = _write_rig(folder, RIGS[tr], [{"device": "bms", "kind": "silent", "start_s": args.silent_at}],
                            args.radars)
    runs: dict[str, list[dict]] = {"healthy": [], "silent_bms": []}
    pooled: dict[str, list[float]] = {"healthy": [], "silent_bms": []}
    for _ in range(args.repeat):  # interleaved, so slow drifts of the machine hit both
        for case, rig in (("healthy", healthy_rig), ("silent_bms", silent_rig)):
            digest, errs, _ = _one_run(folder, rig, args.duration, args.fly)
            runs[case].append(digest)
            pooled[case] += errs
    stats = {k: _pooled(v) for k, v in pooled.items()}
    return {
        "runs": runs,
        "pooled_period_error_us": stats,
        "p99_ratio": round(stats["silent_bms"]["p99"] / stats["healthy"]["p99"], 3),
        "p50_ratio": round(stats["silent_bms"]["p50"] / stats["healthy"]["p50"], 3),
        "per_run_p99_us": {k: [r["period_error_us"]["p99"] for r in v] for k, v in runs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", choices=("windows", "runs"), default="windows")
    ap.add_argument("--duration", type=float, default=60.0, metavar="S", help="run length (s), default 60")
    ap.add_argument("--window", type=float, default=1.0, metavar="S",
                    help="windows design: length of each healthy and silent window after the first silence (s), "
                         "default 1 (two BMS polls)")
    ap.add_argument("--transport", choices=("tcp", "rtu", "both"), default="both")
    ap.add_argument("--silent-at", type=float, default=2.0, metavar="S",
                    help="BMS first goes silent at S s (default 2)")
    ap.add_argument("--first-silent", type=float, default=3.0, metavar="S",
                    help="windows design: the first silence lasts S s, long enough for safe_mode (default 3)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per transport (windows) or pairs of runs (runs design); default 2")
    ap.add_argument("--fly", action="store_true",
                    help="arm and fly the square mission (runs design: the healthy run is then active while the "
                         "silent one sits in safe_mode, different tick work)")
    ap.add_argument("--no-radars", dest="radars", action="store_false",
                    help="leave the emulated radars out (their frame bursts are the loudest other thread)")
    args = ap.parse_args(argv)
    if args.design == "windows" and args.window * 2 > args.duration - args.silent_at - args.first_silent:
        ap.error("--duration must hold at least one silent and one healthy window after --silent-at")

    run_mod.LINGER_S = float("inf")  # keep ticking in safe_mode: every run lasts --duration
    transports = ["tcp", "rtu"] if args.transport == "both" else [args.transport]
    rate_hz = yaml.safe_load((ROOT / "rigs" / "virtual.yaml").read_text())["controller"]["rate_hz"]
    out: dict = {"design": args.design, "duration_s": args.duration, "silent_at_s": args.silent_at,
                 "window_s": args.window if args.design == "windows" else None, "repeat": args.repeat,
                 "radars": args.radars, "fly": args.fly, "rate_hz": rate_hz, "results": {}}
    with tempfile.TemporaryDirectory(prefix="qiki-bench-power-") as tmp:
        for tr in transports:
            design = _windows_design if args.design == "windows" else _runs_design
            out["results"][tr] = design(Path(tmp), tr, args)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
