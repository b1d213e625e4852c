"""Mission executor: flies waypoints in order, holds each, and keeps the score.

Per-tick and pure (no I/O). A waypoint counts as *reached* when the position error is
within ``reach_tolerance_m``, the speed below ``reach_speed_mps`` and the yaw error within
``reach_yaw_tolerance_deg``; from then the hold timer runs for ``hold_s`` and the worst
position error during the hold is recorded (``max_hold_error_m`` of the run summary).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.config import MissionCfg
from firmware_bridge.protocols.frames import wrap_angle
from hal.snapshot import JsonValue, State, apply, capture


@dataclass(slots=True)
class MissionProgress:
    """What the executor reports after one tick."""

    setpoint: tuple[float, float, float]
    complete: bool
    reached_now: bool


class MissionExecutor:
    """Sequence the waypoints of a :class:`MissionCfg`.

    Parameters
    ----------
    mission : MissionCfg
        Validated mission.
    """

    def __init__(self, mission: MissionCfg) -> None:
        self.mission = mission
        self.targets = [(w.x_m, w.y_m, math.radians(w.yaw_deg)) for w in mission.waypoints]
        self.holds_s = [w.hold_s for w in mission.waypoints]
        self.index = 0
        self.reached_at_s: float | None = None
        self.waypoints_reached = 0
        self.max_hold_error_m = 0.0
        self.started_at_s: float | None = None
        self._yaw_tol = math.radians(mission.reach_yaw_tolerance_deg)

    #: The mission's progress in a snapshot (issue 12 part 4); the waypoints are configuration.
    SNAPSHOT_FIELDS = ("index", "reached_at_s", "waypoints_reached", "max_hold_error_m", "started_at_s")

    def snapshot(self) -> State:
        """Return the mission's progress: waypoint index, hold start, reached count, hold error."""
        return capture(self, self.SNAPSHOT_FIELDS)

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of the same mission."""
        apply(self, state, self.SNAPSHOT_FIELDS)

    @property
    def waypoints_total(self) -> int:
        """Number of waypoints in the mission."""
        return len(self.targets)

    @property
    def complete(self) -> bool:
        """True once every waypoint was reached and held."""
        return self.index >= len(self.targets)

    def start(self, now_s: float) -> None:
        """Begin (or resume) the mission clock at ``now_s``."""
        if self.started_at_s is None:
            self.started_at_s = now_s

    def timed_out(self, now_s: float) -> bool:
        """Tell whether the mission has run longer than its ``timeout_s``."""
        return self.started_at_s is not None and now_s - self.started_at_s > self.mission.timeout_s

    def update(self, now_s: float, pose: tuple[float, float, float], speed_mps: float) -> MissionProgress:
        """Advance the sequence with the current pose (per tick).

        Parameters
        ----------
        now_s : float
            Time (s) on the run clock.
        pose : (x_m, y_m, yaw_rad)
            Current pose, world frame.
        speed_mps : float
            Current speed over ground (m/s).
        """
        targets = self.targets
        n = len(targets)
        index = self.index
        if index >= n:  # complete
            return MissionProgress(targets[-1], True, False)
        target = targets[index]
        err = math.hypot(target[0] - pose[0], target[1] - pose[1])
        reached_now = False
        if self.reached_at_s is None:
            yaw_err = abs(wrap_angle(target[2] - pose[2]))
            m = self.mission
            if err <= m.reach_tolerance_m and speed_mps <= m.reach_speed_mps and yaw_err <= self._yaw_tol:
                self.reached_at_s = now_s
                self.waypoints_reached += 1
                reached_now = True
        if self.reached_at_s is not None:
            hold_s = self.holds_s[index]
            if hold_s > 0.0:
                self.max_hold_error_m = max(self.max_hold_error_m, err)
            if now_s - self.reached_at_s >= hold_s:
                index = self.index = index + 1
                self.reached_at_s = None
        done = index >= n
        return MissionProgress(targets[n - 1 if done else index], done, reached_now)
