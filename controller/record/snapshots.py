"""Snapshots in the flight record: when a run takes one, what it holds, where a replay resumes.

A run writes the controller's state on the ``/snapshot`` channel of ``run.mcap`` (issue 12
part 4) between two ticks: after tick ``k`` and everything the loop does after it, before
tick ``k + 1``. :class:`SnapshotSchedule` says when: every time the run clock crosses a
multiple of the rig's ``record.snapshot_period_s`` (default 5 s), and after every tick
that raised a new fault. A message holds the tick, its run time, why, and ``state``:

=============  ==========================================================================
``vehicle``    :meth:`controller.vehicle.Vehicle.snapshot` (components, drivers, ports'
               counters, FSM, mission, allocator warm start, guard, fault book)
``run``        the main job's own state (operator script, duration flags, a stop signal)
``loop``       :meth:`controller.loop.FixedRateLoop.snapshot` (next tick; in real time the
               deadline grid and the overruns of the last second)
``cursor``     the tick cursor's call counters at that point (real time: the clock reads
               of the tick's end; a replay's ports continue the count)
=============  ==========================================================================

``qiki replay RUN --from T`` (:func:`controller.run_replay.replay_run`) takes the newest
snapshot at or before T (:func:`pick`), builds the replay rig as usual, puts the state
back and runs from tick ``k + 1``; the outputs of every tick after ``k`` are compared with
the record. A replay writes snapshots too, and ``/snapshot`` is a compared channel: every
later snapshot of a replay must equal the recorded one, field for field -- a state that a
snapshot forgot shows there as well as in the outputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.record.taps import Record
from hal.snapshot import JsonValue, SnapshotError

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: The flight record's channel of snapshots.
SNAPSHOT_TOPIC = "/snapshot"


class SnapshotSchedule:
    """When a run takes a snapshot: each crossed multiple of the period, each new fault.

    Parameters
    ----------
    period_s : float
        The rig's ``record.snapshot_period_s`` (s), > 0.

    Notes
    -----
    The schedule depends only on the ticks' run times and the fault book, so a replay
    (resumed or not) takes its snapshots after the same ticks as the recorded run.
    """

    def __init__(self, period_s: float) -> None:
        if not period_s > 0:
            raise ValueError("snapshot period must be > 0 s")
        self.period_s = float(period_s)
        #: ``floor(t / period_s)`` of the last tick's start ``t`` (0 before the first): the
        #: period it started in, so a tick computes one division.
        self._prev_period = 0
        self._faults: frozenset[str] = frozenset()

    def due(self, now_s: float, active_faults: Iterable[str]) -> str | None:
        """Tell whether to snapshot after the tick that started at ``now_s`` (per tick).

        Parameters
        ----------
        now_s : float
            The tick's start on the run clock (s).
        active_faults : iterable of str
            The fault book's active condition keys after the tick.

        Returns
        -------
        str or None
            ``"fault"`` (a condition became active in this tick), ``"period"`` (the tick
            crossed a multiple of the period) or None.
        """
        if not active_faults and not self._faults:  # the usual tick: no fault before, none now
            new = False
        else:
            faults = frozenset(active_faults)
            new = not faults <= self._faults
            self._faults = faults
        period = math.floor(now_s / self.period_s)
        crossed = period > self._prev_period
        self._prev_period = period
        if new:
            return "fault"
        return "period" if crossed else None

    def resume(self, now_s: float, active_faults: Iterable[str]) -> None:
        """Go on after a snapshot taken after the tick at ``now_s`` (a replay from it)."""
        self._prev_period = math.floor(now_s / self.period_s)
        self._faults = frozenset(active_faults)


def message(tick: int, now_s: float, reason: str, state: Mapping[str, JsonValue]) -> Record:
    """Return one ``/snapshot`` message.

    Parameters
    ----------
    tick : int
        The tick after which it was taken (a replay from it starts at ``tick + 1``).
    now_s : float
        That tick's start on the run clock (s).
    reason : str
        ``"period"`` or ``"fault"``.
    state : mapping
        ``vehicle``, ``run``, ``loop``, ``cursor`` (see the module doc).
    """
    return {"tick": tick, "t_s": float(now_s), "reason": reason, "state": dict(state)}


@dataclass(frozen=True)
class ResumePoint:
    """A recorded snapshot to start a replay from."""

    tick: int
    t_s: float
    reason: str
    state: dict[str, JsonValue]

    def part(self, key: str) -> dict[str, JsonValue]:
        """Return ``state[key]`` (``vehicle``, ``run``, ``loop``, ``cursor``).

        Raises
        ------
        SnapshotError
            When the snapshot lacks it.
        """
        v = self.state.get(key)
        if not isinstance(v, dict):
            raise SnapshotError(f"snapshot of tick {self.tick} lacks {key!r}")
        return v


def pick(messages: Iterable[tuple[str, Mapping[str, object]]], from_s: float) -> ResumePoint | None:
    """Return the newest snapshot taken after a tick that started at or before ``from_s``.

    Parameters
    ----------
    messages : iterable of (topic, record)
        The record's messages.
    from_s : float
        Run time (s) to replay from.

    Returns
    -------
    ResumePoint or None
        None when no snapshot is that early (the replay starts at tick 0).
    """
    best: Mapping[str, object] | None = None
    for topic, rec in messages:
        if topic != SNAPSHOT_TOPIC:
            continue
        t, k = rec.get("t_s"), rec.get("tick")
        if not isinstance(t, float | int) or not isinstance(k, int) or t > from_s + 1e-9:
            continue
        if best is None or k > best["tick"]:  # type: ignore[operator]
            best = rec
    if best is None:
        return None
    state = best.get("state")
    if not isinstance(state, dict):
        raise SnapshotError(f"snapshot of tick {best['tick']} has no state")
    return ResumePoint(int(best["tick"]), float(best["t_s"]), str(best.get("reason", "")), state)  # type: ignore[call-overload, arg-type]
