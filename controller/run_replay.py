"""Replay a recorded run through the real controller and compare (``qiki replay``).

See :mod:`controller.record.replay` for what is compared and why it is exact.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from controller.errors import ConfigError
from controller.record.flight_log import MemorySink
from controller.record.replay import CheckReport, RecordedRun, compare, drift, inputs_of, read_record
from controller.record.session import qiki_version, replay_session
from controller.record.snapshots import ResumePoint, pick
from controller.run import RunOptions, run_main_job

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())


@dataclass
class ReplayResult:
    """A replay's outcome: the comparison, the replayed run's exit status and summary."""

    report: CheckReport
    exit_status: int
    summary: dict[str, object]
    ticks: int
    #: The snapshot the replay started from (``from_s``), None: from tick 0.
    resumed: ResumePoint | None = None


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def replay_run(record: Path | RecordedRun, *, allow_drift: bool = False, until_s: float | None = None,
               from_s: float | None = None, sink: MemorySink | None = None) -> ReplayResult:
    """Replay a record and compare every output with it.

    Parameters
    ----------
    record : Path or RecordedRun
        ``run.mcap``, its run folder, or a record already read.
    allow_drift : bool
        Replay even when the QIKI version or a file the run was built from changed.
    until_s : float, optional
        Compare only ticks that started at or before this run time (s).
    from_s : float, optional
        Start from the newest snapshot taken at or before this run time (s): its state is
        put back into the rebuilt controller, the replay runs from the tick after it and
        only later ticks are compared (issue 12 part 4). Before the first snapshot: from
        tick 0.
    sink : MemorySink, optional
        Where the replayed messages go (kept for the caller); default a new one.

    Raises
    ------
    ConfigError
        For an unreadable record, or a drift without ``allow_drift`` (the reasons, one line).
    """
    run = record if isinstance(record, RecordedRun) else read_record(Path(record))
    problems = drift(run, qiki_version())
    if problems and not allow_drift:
        raise ConfigError(str(run.path), "", f"the checkout differs from the record ({'; '.join(problems)}); "
                          "--allow-drift replays anyway")
    o = run.options
    sink = sink if sink is not None else MemorySink()
    # a record that ends early (recovered after a kill) lost its last chunk: its last tick
    # may be partial, so the replay runs up to it and compares the ticks before it
    last_tick = None if run.complete else run.last_tick
    resume = pick(run.messages, from_s) if from_s is not None else None
    session = replay_session(inputs_of(run), sink, last_tick, None if resume is None else resume.tick)
    session.recorded_metadata = run.metadata
    rate_ticks = None
    with tempfile.TemporaryDirectory(prefix="qiki-replay-") as tmp:
        opts = RunOptions(
            rig=str(o["rig"]), mission=_opt_str(o.get("mission")), realtime=bool(o.get("realtime", False)),
            duration_s=None if o.get("duration_s") is None else float(o["duration_s"]),  # type: ignore[arg-type]
            seed=int(o.get("seed", 0)),  # type: ignore[call-overload]
            runs_dir=tmp, progress=False, arm=bool(o.get("arm", True)),
            lr_replay=_opt_str(o.get("lr_replay")), sr_replay=_opt_str(o.get("sr_replay")),
            record=False, replay=session, resume=resume, serve=bool(o.get("serve", False)))
        status, summary, _folder = run_main_job(opts)
    until_tick = None if last_tick is None else last_tick - 1
    if until_s is not None:
        ticks = [(int(r["tick"]), float(r["t_s"]))  # type: ignore[arg-type]
                 for _t, r in run.decoded(lambda t: t == "/tick")]
        u = max((k for k, t in ticks if t <= until_s + 1e-9), default=-1)
        until_tick = u if until_tick is None else min(u, until_tick)
    report = compare(run.raw, sink.records, until_tick, None if resume is None else resume.tick)
    rate_ticks = sum(1 for t, _ in sink.records if t == "/tick")
    return ReplayResult(report, status, summary, rate_ticks, resume)
