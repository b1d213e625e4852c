"""Benchmark: the console gateway's E-stop round trip, and what a connected console costs the tick.

Runs the real main job served (:func:`controller.run.run_main_job`, ``serve=True``,
``realtime=True``) on the virtual rig, with one console in a *separate process* (as a
real console is) over a WebSocket on 127.0.0.1. The bench process listens on the virtual
CAN channel of the rig (python-can ``virtual``, ``qiki-can0``) and timestamps every
``VB_Command`` (0x101) frame.

Part 1, E-stop round trip (issue 14: p99 <= 30 ms on loopback in real time)
    Until ``--presses`` E-stops were sent (at most 3x as many attempts): the console
    resets, arms (hold proof), starts the mission, waits
    ``--settle`` s, then sends ``estop`` and notes the wall time (``time.time()``) just
    before the send. The round trip is the time from that send to the first
    ``VB_Command`` frame on the bus whose eight duties are all zero. A press counts only
    when the last frame before the send had a non-zero duty (otherwise "the first zero
    frame" proves nothing); ``presses_valid`` says how many did.

Part 2, the tick with a 20 Hz console connected versus not (issue 14: within 10 %)
    Paired windows inside one run, the design of ``bench/power_tick.py``: the console
    process connects for ``--window`` seconds (telemetry at 20 Hz, heartbeats at 10 Hz),
    then disconnects for ``--window`` seconds, ``--pairs`` times. Each window's span on the
    run clock is taken from the telemetry ``t_s`` the console saw (connected) and the gap
    between (disconnected); the first ``--guard`` s of each window are not counted. Both
    conditions share the process, the vehicle state (``idle``, served, snapshots published
    at 20 Hz either way) and the machine's drifts, so what differs is the connected
    console alone. Ratio of the connected/disconnected p99 of the tick duration (and of
    the period error) with a bootstrap 95 % interval over whole window pairs.

Prints one JSON object. Usage: ``python bench/console.py [--presses N] [--pairs N]
[--window S]`` (defaults 200 presses, 15 pairs of 2 s: about 2.5 minutes). Never part of
the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VB_COMMAND_ID = 0x101


# ---------------------------------------------------------------------- the console process
async def _client(url: str, args: argparse.Namespace) -> dict:
    from controller.console.client import Client

    out: dict = {"presses": [], "windows": []}
    async with Client(url, "bench") as c:
        r = await c.command("request_control")
        assert r["status"] == "accepted", r
        await c.until(lambda: c.telemetry.get("state") == "idle", 30)
        attempts = 0
        while len(out["presses"]) < args.presses and attempts < 3 * args.presses:
            attempts += 1
            if c.telemetry.get("state") != "idle":
                r = await c.command("reset")
                if r["status"] != "accepted":
                    await asyncio.sleep(0.1)
                    continue
            r = await c.command("arm", hold_ms=1000)
            if r["status"] != "accepted":
                await asyncio.sleep(0.1)
                continue
            r = await c.command("mission_start")
            if r["status"] != "accepted":
                continue
            await asyncio.sleep(args.settle)
            t_send = time.time()
            cid = await c.send_command("estop")
            await c.until(lambda cid=cid: cid in c.replies, 5)
            rep = c.replies[cid]
            out["presses"].append({"t_send": t_send, "status": rep["status"], "tick": rep["tick"]})
        r = await c.command("reset")
        await c.command("release_control")
    # part 2: connect for a window, disconnect for a window
    for _ in range(args.pairs):
        async with Client(url, "bench-w", heartbeat_s=0.1) as c:
            await c.until(lambda: bool(c.telemetry), 5)
            first = c.telemetry["t_s"]
            await asyncio.sleep(args.window)
            last = c.telemetry["t_s"]
        out["windows"].append([first, last])
        await asyncio.sleep(args.window)
    return out


def client_main(url: str, args: argparse.Namespace) -> None:
    """The console process: run both parts, write JSON to ``args.out``, stop the run (SIGINT)."""
    try:
        res = asyncio.run(_client(url, args))
    finally:
        os.kill(os.getppid(), signal.SIGINT)
    Path(args.out).write_text(json.dumps(res))


# ---------------------------------------------------------------------- the run process
class BusWatch:
    """Timestamps every VB_Command frame as it enters the rig's virtual CAN bus.

    The virtual rig's channel carries a per-run tag, so instead of a second listener
    this wraps python-can's ``VirtualBus.send`` in this process: the wall time
    (``time.time()``) at which the host hands the frame to the bus.
    """

    def __init__(self) -> None:
        from can.interfaces.virtual import VirtualBus

        self.frames: list[tuple[float, bool]] = []
        self._cls = VirtualBus
        self._orig = VirtualBus.send
        frames, orig = self.frames, self._orig

        def send(bus: VirtualBus, msg: object, timeout: float | None = None) -> None:
            if getattr(msg, "arbitration_id", None) == VB_COMMAND_ID:
                frames.append((time.time(), not any(bytes(msg.data)[:6])))  # type: ignore[attr-defined]
            orig(bus, msg, timeout)

        VirtualBus.send = send  # type: ignore[method-assign]

    def close(self) -> None:
        self._cls.send = self._orig  # type: ignore[method-assign]


def estop_round_trips(presses: list[dict], frames: list[tuple[float, bool]]) -> tuple[list[float], int]:
    """Round trips (ms) of the presses whose last frame before the send was non-zero."""
    import bisect

    ts = [t for t, _ in frames]
    out = []
    for p in presses:
        if p["status"] != "accepted":
            continue
        i = bisect.bisect_right(ts, p["t_send"])
        if i == 0 or frames[i - 1][1]:
            continue  # the bus was already at zero: not a measurement
        j = next((k for k in range(i, len(frames)) if frames[k][1]), None)
        if j is not None:
            out.append((frames[j][0] - p["t_send"]) * 1000.0)
    return out, len(presses)


def _q(values: list[float], p: float) -> float:
    import numpy as np

    return float(np.quantile(np.asarray(values, float), p, method="inverted_cdf"))


def window_groups(values: list[float], starts_s: list[float], windows: list[list[float]], window_s: float,
                  guard_s: float) -> list[tuple[list[float], list[float]]]:
    """Pairs ``(connected ticks, disconnected ticks)``: each connected window and the gap after it."""
    pairs = []
    for a, b in windows:
        on = [v for v, t in zip(values, starts_s, strict=True) if a + guard_s <= t <= b]
        off = [v for v, t in zip(values, starts_s, strict=True) if b + guard_s <= t <= b + window_s]
        if on and off:
            pairs.append((on, off))
    return pairs


def paired_ratio(pairs: list[tuple[list[float], list[float]]], seed: int = 0, resamples: int = 2000) -> dict:
    """Connected/disconnected p99 ratio over window pairs, bootstrap 95 % interval (as bench/power_tick.py)."""
    import numpy as np

    on = [np.asarray(a, float) for a, _ in pairs]
    off = [np.asarray(b, float) for _, b in pairs]

    def q(arrays: list, p: float) -> float:
        return float(np.quantile(np.concatenate(arrays), p, method="inverted_cdf"))

    out = {"pairs": len(pairs), "connected_p99_us": round(q(on, 0.99), 1),
           "disconnected_p99_us": round(q(off, 0.99), 1), "p99_ratio": round(q(on, 0.99) / q(off, 0.99), 3),
           "p50_ratio": round(q(on, 0.5) / q(off, 0.5), 3)}
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, len(pairs), len(pairs))
        ratios[b] = q([on[i] for i in idx], 0.99) / q([off[i] for i in idx], 0.99)
    out["p99_ratio_ci95"] = [round(float(np.quantile(ratios, 0.025)), 3), round(float(np.quantile(ratios, 0.975)), 3)]
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the bench (or, with ``--client``, the console process)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--settle", type=float, default=0.12, help="s active before each E-stop")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--guard", type=float, default=0.2)
    ap.add_argument("--client", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        client_main(args.client, args)
        return
    from controller.run import RunOptions, run_main_job

    with tempfile.TemporaryDirectory(prefix="qiki-console-bench-") as tmp:
        out_file = Path(tmp) / "client.json"
        captured: dict = {}
        procs: list[subprocess.Popen[bytes]] = []

        def on_gateway(url: str) -> None:
            procs.append(subprocess.Popen([sys.executable, __file__, "--client", url, "--out", str(out_file),
                                           "--presses", str(args.presses), "--settle", str(args.settle),
                                           "--pairs", str(args.pairs), "--window", str(args.window)]))

        watch = BusWatch()
        opts = RunOptions(rig=str(ROOT / "rigs" / "virtual.yaml"), mission=str(ROOT / "missions" / "square.yaml"),
                          realtime=True, serve=True, listen="127.0.0.1:0", runs_dir=str(Path(tmp) / "runs"),
                          progress=False, record=False, on_gateway=on_gateway,
                          on_loop_stats=lambda st: captured.setdefault("stats", st))
        try:
            _status, summary, _folder = run_main_job(opts)
        finally:
            watch.close()
            for p in procs:
                p.wait(30)
        res = json.loads(out_file.read_text())
        rts, n = estop_round_trips(res["presses"], watch.frames)
        st = captured["stats"]
        starts = [st.origin_s + t for t in st.tick_starts_s]
        dur = window_groups(list(st.tick_durations_us), starts, res["windows"], args.window, args.guard)
        err = window_groups(list(st.period_errors_us), starts, res["windows"], args.window, args.guard)
        report = {
            "estop_round_trip_ms": {
                "presses": n, "presses_valid": len(rts),
                "p50": round(_q(rts, 0.5), 2) if rts else None, "p99": round(_q(rts, 0.99), 2) if rts else None,
                "max": round(max(rts), 2) if rts else None, "target_p99_ms": 30.0},
            "tick_duration": paired_ratio(dur) if dur else None,
            "period_error": paired_ratio(err) if err else None,
            "tick_target": "p99_ratio <= 1.10",
            "loop": {k: summary.get("loop", {}).get(k) for k in ("ticks", "overruns")},
            "final_state": summary.get("final_state"), "faults": summary.get("faults"),
            "vb_frames": len(watch.frames), "vb_frames_nonzero": sum(1 for _t, z in watch.frames if not z),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
