"""One-screen table of every bench figure against its target (``make bench``, issue 16).

Reads the JSON files the benches wrote into one folder (``allocation.json``,
``codec.json``, ``lockstep.json``, ``tick.json``, ``record.json``, ``console.json``; each optional) and
prints one row per figure: bench, figure, value, target, verdict (``ok``, ``MISS``, or
``-`` when the figure has no target or is absent). Figures are ratios of one run where
the issue asks for ratios (this is a shared 2-core machine).

Usage: ``python bench/report.py DIR``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Row = tuple[str, str, Any, str, str]


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    p = folder / f"{name}.json"
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
    except ValueError:
        return {"_error": f"{p.name}: not JSON"}
    return doc if isinstance(doc, dict) else {"_error": f"{p.name}: not an object"}


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _row(bench: str, figure: str, value: Any, op: str | None = None, target: float | None = None) -> Row:
    if value is None:
        return (bench, figure, "absent", f"{op} {target}" if op else "", "-")
    if op is None or target is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return (bench, figure, value, "", "-")
    ok = value >= target if op == ">=" else value <= target
    return (bench, figure, value, f"{op} {target:g}", "ok" if ok else "MISS")


def rows(folder: Path) -> list[Row]:
    """Every figure of every bench JSON found in ``folder``."""
    out: list[Row] = []
    lock = _load(folder, "lockstep")
    if lock is None:
        out.append(("lockstep", "(not run)", "absent", "", "-"))
    else:
        out.append(_row("lockstep", "sim speed factor, median", lock.get("median_sim_speed_factor"), ">=", 100))
    alloc = _load(folder, "allocation")
    if alloc is None:
        out.append(("allocation", "(not run)", "absent", "", "-"))
    else:
        r = _get(alloc, "6x12", "all") or {}
        out.append(_row("allocation", "6x12 median / daqp median", r.get("ratio_median_vs_daqp"), "<=", 0.5))
        out.append(_row("allocation", "6x12 p99 / daqp p99", r.get("ratio_p99_vs_daqp"), "<=", 1.0))
        inf = _get(alloc, "6x12", "infeasible") or {}
        out.append(_row("allocation", "6x12 infeasible p99 / daqp p99", inf.get("ratio_p99_vs_daqp"), "<=", 1.0))
        out.append(_row("allocation", "6x12 lsq_linear median / ours", r.get("speedup_median"), ">=", 10))
        acc = _get(alloc, "6x12", "accuracy_vs_bvls", "worst_relative_error_difference")
        out.append(_row("allocation", "6x12 worst rel. error vs BVLS", acc, "<=", 1e-9))
        if "daqp_note" in alloc:
            out.append(("allocation", "daqp", alloc["daqp_note"], "", "-"))
    codec = _load(folder, "codec")
    if codec is None:
        out.append(("codec", "(not run)", "absent", "", "-"))
    else:
        for label in ("vb_command", "ars408_obj_general"):
            out.append(_row("codec", f"{label} encode / cantools", _get(codec, label, "encode_ratio"), "<=", 1.0))
            out.append(_row("codec", f"{label} decode / cantools", _get(codec, label, "decode_ratio_vs_cantools"),
                            "<=", 1.0))
        out.append(_row("codec", "CRC-8 E2E / previous", _get(codec, "crc8_e2e", "ratio"), "<=", 1.0))
        out.append(_row("codec", "CRC-16/MODBUS / previous", _get(codec, "crc16_modbus_40B", "ratio"), "<=", 1.0))
    tick = _load(folder, "tick")
    if tick is None:
        out.append(("tick", "(not run)", "absent", "", "-"))
    else:
        for name, c in sorted((tick.get("conditions") or {}).items()):
            out.append(_row("tick", f"{name}: tick p50 / reference p50", c.get("tick_p50_ratio"), "<=", 1.0))
            out.append(_row("tick", f"{name}: tick p99 / reference p99", c.get("tick_p99_ratio"), "<=", 1.0))
            out.append(_row("tick", f"{name}: period err p99 / cyclictest", c.get("period_p99_ratio_vs_cyclictest"),
                            "<=", 1.2))
            out.append(_row("tick", f"{name}: controller CPU % of a core", c.get("cpu_pct_of_core"), "<=", 35))
            out.append(_row("tick", f"{name}: final state", c.get("final_state")))
            if "error" in c:
                out.append(_row("tick", f"{name}: error", c["error"]))
    for name in ("record", "console"):
        doc = _load(folder, name)
        if doc is None:
            out.append((name, "(not run or absent)", "absent", "", "-"))
            continue
        verdict = doc.get("verdict")
        budget = doc.get("budget") or {}
        if isinstance(verdict, dict):
            for key, val in verdict.items():
                if isinstance(val, (list, dict)):
                    continue
                if key == "speed_ratio" and "speed_ratio_min" in budget:
                    out.append(_row(name, key, val, ">=", budget["speed_ratio_min"]))
                elif key == "tick_p99_diff_us" and "tick_p99_diff_max_us" in budget:
                    out.append(_row(name, key, val, "<=", budget["tick_p99_diff_max_us"]))
                else:
                    out.append(_row(name, key, val))
        else:
            for key, val in doc.items():
                if isinstance(val, (int, float, str)) and key != "bench":
                    out.append(_row(name, key, val))
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table for the folder given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "runs/bench")
    table = rows(folder)
    widths = [max(len(str(r[i])) for r in table) for i in range(5)]
    widths = [min(w, 40) for w in widths]
    head = ("bench", "figure", "value", "target", "verdict")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(str(c)[:40].ljust(w) for c, w in zip(r, widths, strict=True)))
    misses = sum(1 for r in table if r[4] == "MISS")
    print(f"\n{misses} figure(s) miss their target; JSON in {folder}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
