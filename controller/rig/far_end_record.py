"""The far end's own record: what the emulated valve board and MCU saw, and when.

``qiki emulate`` writes it as JSON lines (one object per line, ``kind`` first) so a test or
a person can judge the hardware's side of a run without trusting the controller's record
(issue 13, T03: a dead controller's valves close within the board's command timeout):

* ``start`` -- ``monotonic_s_at_t0`` (``time.monotonic()`` when the emulators' clock read
  0: times of other processes on the same machine convert with it), the rig, the
  endpoints, ``command_timeout_s``, ``heartbeat_timeout_s``, ``physics_step_s``;
* ``state`` -- at the first physics step and at every step where one of these changed:
  ``open`` (per valve, 1 when it was physically open during the step), ``cmd_nonzero``
  (the board's latest accepted command asks some duty), ``cmd_timeout`` (the board holds
  every valve closed for lack of commands), ``rail_enabled`` (the MCU's valve-rail
  output), ``rail_powered`` (the board's supply: the MCU's rail and the PDU relay);
  with ``last_cmd_s`` (step that accepted the latest valid valve command) and
  ``last_hb_s`` (step that received the latest host heartbeat), s on the emulators' clock;
* ``fault_injected`` / ``fault_cleared`` -- the fault plan's events;
* ``lag`` -- the physics fell more than :data:`LAG_REPORT_S` behind the clock (``lag_s``);
  ``gc`` -- a garbage collection took more than :data:`GC_REPORT_S` (``took_s``);
* ``end`` -- the same times, ``max_lag_s``, the counters of the board, the MCU and each
  slcan bridge.

:func:`judge_host_loss` reads it back and measures how long the hardware took to go safe
after the host's last command and heartbeat.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from controller.rig.far_end import FarEnd

__all__ = ["EmulatorRecord", "HostLossVerdict", "judge_host_loss", "read_record"]

#: A record row (JSON object).
Row = dict[str, object]

#: The physics this far behind the clock (s) is written down as a ``lag`` row: the
#: emulators were late (the process was not scheduled, a garbage collection...).
LAG_REPORT_S = 0.02
#: A garbage collection that took this long (s) is written down as a ``gc`` row.
GC_REPORT_S = 0.005


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _any_open(row: Row) -> bool:
    opened = row.get("open")
    return isinstance(opened, list) and any(opened)


class EmulatorRecord:
    """JSON-lines record of a far end, written as the emulators run.

    Parameters
    ----------
    path : Path
        The file (created or truncated).

    Notes
    -----
    :meth:`observe` runs on the emulator thread at every physics step and writes a row
    only on a change; :meth:`flush` (the caller's thread, e.g. every 0.1 s) makes the rows
    visible to a reader while the run goes on. Writes are serialised by a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._f: IO[str] = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._far: FarEnd | None = None
        self._last_key: tuple[object, ...] | None = None
        self._commands_seen = 0
        self.last_cmd_s: float | None = None
        self.rows_n = 0
        #: Largest lag of the physics behind the clock seen (s): the emulator thread was late.
        self.max_lag_s = 0.0
        self._lagging = False
        self._gc_t0: float | None = None

    def _write(self, row: Row) -> None:
        line = json.dumps(row, separators=(",", ":"))
        with self._lock:
            if not self._f.closed:
                self._f.write(line + "\n")
                self.rows_n += 1

    def event(self, tick: int, time_s: float, kind: str, **fields: object) -> None:
        """Event sink of the far end's build (the fault plan's ``fault_injected`` / ``fault_cleared``)."""
        self._write({"kind": kind, "t_s": round(float(time_s), 6), **fields})

    def attach(self, far: FarEnd) -> None:
        """Observe ``far``'s simulation at every physics step (before :meth:`FarEnd.start`)."""
        self._far = far
        far.sim.observers.append(self.observe)

    def start(self, far: FarEnd, endpoints: dict[str, dict[str, object]]) -> None:
        """Write the ``start`` row (as ``FarEnd.start(on_clock_start=...)``: the clock just started)."""
        emu = far.checked.cfg.emulation
        self._write({"kind": "start", "t_s": 0.0, "monotonic_s_at_t0": time.monotonic() - far.clock.now_s(),
                     "rig": str(far.checked.path), "endpoints": endpoints,
                     "command_timeout_s": emu.command_timeout_s if emu is not None else None,
                     "heartbeat_timeout_s": emu.heartbeat_timeout_s if emu is not None else None,
                     "physics_step_s": far.sim.dt_s})
        self.flush()

    def observe(self, t_s: float, fractions: Sequence[float]) -> None:
        """Physics-step observer ``(t_s, open_fractions)``: a ``state`` row when something changed."""
        far = self._far
        if far is None:
            return
        vb, mcu = far.valve_board, far.mcu
        lag = far.clock.now_s() - t_s
        if lag > self.max_lag_s:
            self.max_lag_s = lag
        if lag > LAG_REPORT_S and not self._lagging:
            self._write({"kind": "lag", "t_s": round(t_s, 6), "lag_s": round(lag, 6)})
        self._lagging = lag > LAG_REPORT_S
        if vb.commands_accepted != self._commands_seen:
            self._commands_seen = vb.commands_accepted
            self.last_cmd_s = t_s
        opened = tuple(1 if f > 0.0 else 0 for f in fractions)
        key = (opened, any(d > 0.0 for d in vb.duty_commanded), vb.cmd_timeout, mcu.rail_enabled, vb.rail_powered)
        if key == self._last_key:
            return
        self._last_key = key
        hb = mcu.last_host_heartbeat_rx_s
        self._write({"kind": "state", "t_s": round(t_s, 6), "open": list(opened), "cmd_nonzero": key[1],
                     "cmd_timeout": key[2], "rail_enabled": key[3], "rail_powered": key[4],
                     "last_cmd_s": None if self.last_cmd_s is None else round(self.last_cmd_s, 6),
                     "last_hb_s": None if hb is None else round(hb, 6)})

    def watch_gc(self) -> None:
        """Write a ``gc`` row for every garbage collection longer than :data:`GC_REPORT_S`."""
        import gc

        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        if self._gc_t0 is None:
            return
        took = time.perf_counter() - self._gc_t0
        self._gc_t0 = None
        if took > GC_REPORT_S and self._far is not None:
            self._write({"kind": "gc", "t_s": round(self._far.clock.now_s(), 6), "took_s": round(took, 6),
                         "generation": info.get("generation"), "collected": info.get("collected")})

    def flush(self) -> None:
        """Make the rows written so far visible to readers."""
        with self._lock:
            if not self._f.closed:
                self._f.flush()

    def close(self, far: FarEnd | None = None) -> None:
        """Write the ``end`` row (counters of ``far``) and close the file; idempotent."""
        if far is not None:
            vb, mcu = far.valve_board, far.mcu
            hb = mcu.last_host_heartbeat_rx_s
            self._write({"kind": "end", "t_s": round(far.clock.now_s(), 6),
                         "last_cmd_s": self.last_cmd_s, "last_hb_s": hb, "max_lag_s": round(self.max_lag_s, 6),
                         "valve_board": {"commands_accepted": vb.commands_accepted, "rx_rejects": dict(vb.rx_rejects),
                                         "frames_sent": vb.frames_sent, "cmd_timeout": vb.cmd_timeout},
                         "mcu": {"rail_enabled": mcu.rail_enabled, "counters": dict(getattr(mcu, "counters", {}))},
                         "can": {name: b.stats() for name, b in far.bridges.items()}})
        import gc

        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        with self._lock:
            if not self._f.closed:
                self._f.close()


def read_record(path: Path) -> list[Row]:
    """Read an emulator record; a last line cut short (the writer was killed) is skipped."""
    rows: list[Row] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class HostLossVerdict(dict[str, object]):
    """What :func:`judge_host_loss` measured (a dict, JSON-ready), times in s.

    Keys: ``last_cmd_s``, ``thrusting_at_last_cmd`` (the last accepted command asked some
    duty), ``valves_closed_s`` (first step from which no valve was open again; None:
    still open at the end of the record), ``valves_closed_after_cmd_s``,
    ``cmd_timeout_s`` (first step flagging the board's command timeout after the last
    command), ``last_hb_s``, ``rail_dropped_s`` (first step with the MCU's rail off
    after the last heartbeat), ``rail_dropped_after_hb_s``, ``physics_step_s``.
    """


def judge_host_loss(rows: Sequence[Row]) -> HostLossVerdict:
    """Measure, from a far end's record, how the hardware went safe once the host fell silent.

    The host's last valve command and last heartbeat are the record's latest
    (``end`` row, else the last ``state`` row): the host is taken to be gone after them.

    Parameters
    ----------
    rows : sequence of dict
        :func:`read_record` of a run whose host died or stopped before the record ended.

    Returns
    -------
    HostLossVerdict
    """
    states = [r for r in rows if r.get("kind") == "state"]
    end = next((r for r in reversed(rows) if r.get("kind") == "end"), states[-1] if states else {})
    start = next((r for r in rows if r.get("kind") == "start"), {})
    last_cmd = _num(end.get("last_cmd_s"))
    last_hb = _num(end.get("last_hb_s"))
    verdict = HostLossVerdict(last_cmd_s=last_cmd, last_hb_s=last_hb, physics_step_s=start.get("physics_step_s"))
    before = [r for r in states if last_cmd is not None and (_num(r.get("t_s")) or 0.0) <= last_cmd]
    verdict["thrusting_at_last_cmd"] = bool(before and before[-1].get("cmd_nonzero"))
    closed_s: float | None = None
    open_rows = [i for i, r in enumerate(states) if _any_open(r)]
    if not open_rows:
        closed_s = 0.0  # never open
    elif open_rows[-1] + 1 < len(states):
        closed_s = _num(states[open_rows[-1] + 1].get("t_s"))
    verdict["valves_closed_s"] = closed_s
    verdict["valves_closed_after_cmd_s"] = (None if closed_s is None or last_cmd is None
                                            else max(0.0, closed_s - last_cmd))
    cut = next((_num(r.get("t_s")) for r in states if r.get("cmd_timeout") and last_cmd is not None
                and (_num(r.get("t_s")) or 0.0) > last_cmd), None)
    verdict["cmd_timeout_s"] = cut
    drop = next((_num(r.get("t_s")) for r in states if not r.get("rail_enabled") and last_hb is not None
                 and (_num(r.get("t_s")) or 0.0) > last_hb), None)
    verdict["rail_dropped_s"] = drop
    verdict["rail_dropped_after_hb_s"] = None if drop is None or last_hb is None else drop - last_hb
    return verdict
