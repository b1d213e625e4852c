"""Benchmark: what hostile YAML costs the strict loader, end to end through ``qiki``.

Prints one JSON object. Each case writes one file (an alias bomb of ~400 bytes, 5,000-deep
flow nesting, a rig with 100,000 emulated faults, a rig just under the 1 MiB size cap with
~22,000 faults, a 1 MiB flow list, the largest mission the schema accepts) and runs
``controller.yamlio.load_yaml`` on it (``load_yaml_s``, the loader alone), then ``qiki rig
check FILE`` (or a mission load) in the same fresh child process with a wall-clock limit,
reporting the command's elapsed time (``elapsed_s``, s, imports included), the child's
peak resident memory (MiB), the exit status and the first line of stderr. A child still running at the limit is
killed and reported as ``timed_out``. Speed is measured here, never asserted by the tests
(ARCHITECTURE.md 8); the issue-10 criterion is "exit 2, one line, within 5 s".

Usage: ``python bench/yaml_loader.py [--limit-s 60] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: time one CLI call (or a mission load) and print JSON on stdout.
_CHILD = r"""
import contextlib, io, json, resource, sys, time
sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
kind, path = sys.argv[1], sys.argv[2]
from controller.errors import ConfigError
from controller.yamlio import load_yaml
t_load = time.perf_counter()
try:
    load_yaml(path)
    load_outcome = "loaded"
except ConfigError:
    load_outcome = "ConfigError"
except BaseException as exc:  # noqa: BLE001 - the bench reports what escaped
    load_outcome = type(exc).__name__
load_yaml_s = time.perf_counter() - t_load
err = io.StringIO()
t0 = time.perf_counter()
status = None
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    if kind == "mission":
        from controller.config import load_mission
        from controller.errors import ConfigError
        try:
            load_mission(path)
            status = 0
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            status = 2
        except BaseException as exc:  # noqa: BLE001 - the bench reports what escaped
            print(f"{type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            status = 1
    else:
        from controller.cli import main
        try:
            status = main(["rig", "check", path])
        except BaseException as exc:  # noqa: BLE001 - the bench reports what escaped
            print(f"{type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            status = 1
elapsed_s = time.perf_counter() - t0
lines = err.getvalue().splitlines()
print(json.dumps({
    "load_yaml_s": round(load_yaml_s, 4),
    "load_yaml": load_outcome,
    "elapsed_s": round(elapsed_s, 4),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    "exit": status,
    "stderr_lines": len(lines),
    "stderr_first": (lines[0][:200] if lines else ""),
}))
"""


def _rig_head() -> str:
    """The reference virtual rig's text, with its data paths made absolute."""
    text = (ROOT / "rigs" / "virtual.yaml").read_text(encoding="utf-8")
    for rel in ("dbc/qiki.dbc", "dbc/ars408.dbc", "fsm_configs/qiki_vehicle.yaml",
                "rigs/profiles/jk_bms.yaml", "rigs/profiles/qiki_pdu.yaml"):
        text = text.replace(rel, str(ROOT / rel))
    return text


def alias_bomb() -> str:
    """Billion laughs: 9 levels of 9 aliases (9**9 = 387 million leaves), ~400 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_flow_seq(depth: int) -> str:
    return "name: x\nvehicle: " + "[" * depth + "]" * depth + "\n"


def deep_flow_map(depth: int) -> str:
    return "name: x\nvehicle: " + "{a: " * depth + "1" + "}" * depth + "\n"


def rig_with_faults(n_faults: int) -> str:
    entry = "    - {at_s: 1.0, target: mcu, fault: silent}\n"
    text = _rig_head().replace("  faults: []\n", "  faults:\n" + entry * n_faults)
    return text


def flow_list_bytes(n_bytes: int) -> str:
    body = "0," * ((n_bytes - 20) // 2)
    return f"name: x\nv: [{body}0]\n"


def max_mission(n_waypoints: int) -> str:
    wp = "  - {x_m: 1.0, y_m: 0.0, yaw_deg: 0.0, hold_s: 0.0}\n"
    return "name: big\nwaypoints:\n" + wp * n_waypoints


CASES = {
    "alias_bomb": ("rig", alias_bomb),
    "deep_seq_5000": ("rig", lambda: deep_flow_seq(5000)),
    "deep_map_5000": ("rig", lambda: deep_flow_map(5000)),
    "rig_100000_faults": ("rig", lambda: rig_with_faults(100_000)),
    "rig_22000_faults_under_1mib": ("rig", lambda: rig_with_faults(22_000)),
    "flow_list_1mib": ("rig", lambda: flow_list_bytes((1 << 20) - 64)),
    "mission_10000_waypoints": ("mission", lambda: max_mission(10_000)),
    "virtual_rig_reference": ("rig", _rig_head),
}


def run_case(name: str, limit_s: float, folder: Path) -> dict:
    kind, make = CASES[name]
    text = make()
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return {"file_bytes": len(text.encode()), "timed_out": True, "limit_s": limit_s}
    wall_s = time.perf_counter() - t0
    out = {"file_bytes": len(text.encode()), "child_wall_s": round(wall_s, 3)}
    try:
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        out.update({"crashed": True, "returncode": proc.returncode, "stderr_tail": proc.stderr[-300:]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit-s", type=float, default=60.0, help="kill a case after this many seconds")
    ap.add_argument("--only", nargs="*", choices=sorted(CASES), default=None)
    args = ap.parse_args(argv)
    names = args.only or list(CASES)
    with tempfile.TemporaryDirectory(prefix="qiki-yaml-bench-") as tmp:
        results = {n: run_case(n, args.limit_s, Path(tmp)) for n in names}
    print(json.dumps({"bench": "yaml_loader", "python": sys.version.split()[0], "cases": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
