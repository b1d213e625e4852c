"""Pose control and thrust allocation of the vehicle, with their statistics (per tick).

In a state whose outputs are ``allocate`` the mission gives a setpoint, the PD law
(:func:`controller.control.pose_pd_wrench`) a body-frame wrench, and the allocator splits
it into thrusts. Failed thrusters (a valve the board reports faulted, SAFETY.md D06) are
dropped from the allocation until the vehicle is back in ``idle``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from controller.components.seam import TickView
from controller.control import PoseGains, pose_pd_wrench
from controller.mission import MissionExecutor
from hal.snapshot import JsonValue, Snapshottable, State, apply, capture, part


class AllocationResult(Protocol):
    """What an allocator returns: thrusts (N,) in N; optional diagnostics."""

    thrust_n: Sequence[float]


class Allocator(Protocol):
    """What the vehicle needs of an allocator (:mod:`controller.allocation`)."""

    def allocate(self, wrench: Sequence[float]) -> AllocationResult:
        """Split a body-frame wrench (3,) ``[fx_n, fy_n, mz_nm]`` into thrusts; per tick."""
        ...


#: The native float64 and bool dtypes: an array's ``dtype is`` one of them selects the
#: one-call ``tolist()`` paths of :meth:`PoseControl.step` (an identity test, about 3x
#: cheaper than ``dtype == np.float64``); any other dtype takes the element-wise path,
#: which gives the same Python values.
_F64, _BOOL = np.dtype(np.float64), np.dtype(np.bool_)


class ControlStep(NamedTuple):
    """One tick of control: the thrust demand (None: none) and what happened.

    A ``NamedTuple``: built every allocating tick, cheaper than a frozen dataclass
    (see :class:`controller.components.seam.PoseEstimate`).
    """

    demand_n: list[float] | None
    waypoint_reached: int | None = None
    mission_complete: bool = False


class PoseControl:
    """Mission, pose PD and allocation, with the allocation statistics of the run.

    Parameters
    ----------
    allocator : Allocator
        Over the thruster geometry.
    gains : PoseGains
        PD gains and error clips.
    mission : MissionExecutor or None
        The mission to fly (None: no demand).
    """

    def __init__(self, allocator: Allocator, gains: PoseGains, mission: MissionExecutor | None) -> None:
        self.allocator = allocator
        self.gains = gains
        self.mission = mission
        self.alloc_ticks = 0
        self.saturated_ticks = 0
        self.unallocated_sq = 0.0
        self.failed_thrusters: set[int] = set()
        self.failures_handled: list[dict[str, object]] = []
        self._span_reason: str | None = None
        #: The last allocating tick's setpoint (x_m, y_m, yaw_rad; world frame), body-frame
        #: wrench demand (fx_n, fy_n, mz_nm), achieved wrench and saturation (telemetry).
        self.last_setpoint: tuple[float, float, float] | None = None
        self.last_wrench: tuple[float, float, float] | None = None
        self.last_achieved: tuple[float, float, float] | None = None
        self.last_saturated = False

    #: The controller's own state in a snapshot (issue 12 part 4): counters, failed
    #: thrusters and the last step's values; the mission and the allocator are nested.
    SNAPSHOT_FIELDS = ("alloc_ticks", "saturated_ticks", "unallocated_sq", "failed_thrusters", "failures_handled",
                       "_span_reason", "last_setpoint", "last_wrench", "last_achieved", "last_saturated")

    def snapshot(self) -> State:
        """Return the counters, failed thrusters, last values, mission progress and allocator state."""
        out: State = capture(self, self.SNAPSHOT_FIELDS)
        out["mission"] = None if self.mission is None else self.mission.snapshot()
        out["allocator"] = self.allocator.snapshot() if isinstance(self.allocator, Snapshottable) else None
        return out

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`.

        An allocator without a snapshot of its own is re-planned around the failed
        thrusters, as :meth:`thruster_failures` did (its plan is a function of them).
        """
        apply(self, state, self.SNAPSHOT_FIELDS)
        if self.mission is not None:
            self.mission.restore(part(state, "mission"))
        if isinstance(self.allocator, Snapshottable):
            self.allocator.restore(part(state, "allocator"))
        else:
            set_failures = getattr(self.allocator, "set_failures", None)
            if set_failures is not None:
                set_failures(stuck_closed=sorted(self.failed_thrusters))

    def step(self, view: TickView) -> ControlStep:
        """Per tick, in ``allocate``: the thrust demand (N,) in N, or None without a pose."""
        p = view.pose
        if p is None or self.mission is None:
            return ControlStep(None)
        pose = (p.x_m, p.y_m, p.yaw_rad)
        vel = (p.vx_world_mps, p.vy_world_mps, p.yaw_rate_radps)
        prog = self.mission.update(view.now_s, pose, math.hypot(vel[0], vel[1]))
        reached = self.mission.waypoints_reached - 1 if prog.reached_now else None
        if prog.complete:
            return ControlStep(None, reached, mission_complete=True)
        wrench = pose_pd_wrench(self.gains, pose, vel, prog.setpoint)
        result = self.allocator.allocate(wrench)
        tn = result.thrust_n
        # float64 arrays: tolist() gives the same Python floats as float(v), in one call
        thrust = tn.tolist() if type(tn) is np.ndarray and tn.dtype is _F64 else [float(v) for v in tn]
        self.alloc_ticks += 1
        self.last_setpoint, self.last_wrench = prog.setpoint, wrench
        un = getattr(result, "unallocated_wrench", None)
        if un is not None:
            if type(un) is np.ndarray and un.dtype is _F64:
                u = un.tolist()  # Python floats already: the same products, summed in the same order
                self.unallocated_sq += float(sum([v * v for v in u]))
                self.last_achieved = (wrench[0] - u[0], wrench[1] - u[1], wrench[2] - u[2])
            else:
                self.unallocated_sq += float(sum(float(v) * float(v) for v in un))
                self.last_achieved = (wrench[0] - float(un[0]), wrench[1] - float(un[1]), wrench[2] - float(un[2]))
        else:
            self.last_achieved = None
        sat = getattr(result, "saturated", None)
        if type(sat) is np.ndarray and sat.dtype is _BOOL:
            self.last_saturated = True in sat.tolist()  # Python bools; cheaper than ndarray.any() on (N,)
        else:
            self.last_saturated = sat is not None and any(bool(s) for s in sat)
        if self.last_saturated:
            self.saturated_ticks += 1
        return ControlStep(thrust, reached)

    def thruster_failures(self, now_s: float, valve_fault_mask: int, thruster_valves: Sequence[int],
                          log: Callable[..., None]) -> str | None:
        """Mark thrusters on faulted valves failed and re-plan (SAFETY.md D06).

        Returns the fault reason when the remaining thrusters no longer span the wrench
        space; None while the re-planned allocation can go on. With no valve fault bit
        set and no thruster failed it does nothing and returns None
        (:meth:`controller.vehicle.Vehicle._own_conditions` skips the call then).
        """
        # no faulted valve (every healthy tick): no thruster can be newly failed
        newly = [i for i, v in enumerate(thruster_valves)
                 if valve_fault_mask >> v & 1 and i not in self.failed_thrusters] if valve_fault_mask else None
        if newly:
            self.failed_thrusters.update(newly)
            self.failures_handled.append({"time_s": round(now_s, 6), "thrusters": sorted(newly)})
            log("thruster_failed", thrusters=sorted(newly), all_failed=sorted(self.failed_thrusters))
            set_failures = getattr(self.allocator, "set_failures", None)
            if set_failures is not None:
                set_failures(stuck_closed=sorted(self.failed_thrusters))
                ok, why = self.allocator.spans()  # type: ignore[attr-defined]
                self._span_reason = None if ok else why
            else:
                self._span_reason = "allocator cannot re-plan around failed thrusters"
        if self.failed_thrusters and self._span_reason is not None:
            return f"failed thrusters {sorted(self.failed_thrusters)}: geometry no longer spans ({self._span_reason})"
        return None

    def clear_failures(self) -> None:
        """Back in ``idle``: every thruster is planned again."""
        if self.failed_thrusters:
            self.failed_thrusters.clear()
            self._span_reason = None
            set_failures = getattr(self.allocator, "set_failures", None)
            if set_failures is not None:
                set_failures(stuck_closed=())
