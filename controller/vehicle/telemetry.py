"""Telemetry of one tick, as flat records for the flight log (issue 12, the tick's record phase).

Flat scalars (one number per field), because plotting tools (Foxglove, PlotJuggler) plot
arrays poorly. Positions and setpoints are in the world frame (x east, y north, yaw
counter-clockwise from x, rad); wrenches in the body frame (``fx_n``, ``fy_n``,
``mz_nm``). A value that is unknown this tick (no pose yet, not allocating) is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from controller.components.seam import ARMING_STATES

if TYPE_CHECKING:
    from controller.record.taps import Record
    from controller.vehicle.manager import Vehicle


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def tick_record(v: Vehicle) -> Record:
    """Return the ``/tick`` record of the tick the vehicle just ran.

    Parameters
    ----------
    v : Vehicle
        After :meth:`Vehicle.tick`.

    Returns
    -------
    dict
        ``tick``, ``t_s``, ``state``, ``armed``, ``outputs``, pose (``x_m``, ``y_m``,
        ``yaw_rad``, ``vx_mps``, ``vy_mps``, ``yaw_rate_radps``), setpoint (``sp_x_m``,
        ``sp_y_m``, ``sp_yaw_rad``), demanded and achieved wrench (``fx_n`` ...,
        ``achieved_fx_n`` ...), ``saturated``, ``thrust_n_<i>`` per thruster (N, the output
        guard's output of this tick),
        ``clamped_total``, ``rate_limited_total``, ``faults_active``,
        ``waypoints_reached``.
    """
    p = v.mcu.pose
    allocating = v.demand_n is not None
    c = v.control
    sp = c.last_setpoint if allocating else None
    w = c.last_wrench if allocating else None
    a = c.last_achieved if allocating else None
    m = v.mission
    rec: Record = {
        "tick": v.tick_index, "t_s": v.now_s, "state": v.state, "armed": v.state in ARMING_STATES,
        "outputs": v.fsm.outputs,
        "x_m": _num(p.x_m) if p else None, "y_m": _num(p.y_m) if p else None,
        "yaw_rad": _num(p.yaw_rad) if p else None,
        "vx_mps": _num(p.vx_world_mps) if p else None, "vy_mps": _num(p.vy_world_mps) if p else None,
        "yaw_rate_radps": _num(p.yaw_rate_radps) if p else None,
        "sp_x_m": _num(sp[0]) if sp else None, "sp_y_m": _num(sp[1]) if sp else None,
        "sp_yaw_rad": _num(sp[2]) if sp else None,
        "fx_n": _num(w[0]) if w else None, "fy_n": _num(w[1]) if w else None, "mz_nm": _num(w[2]) if w else None,
        "achieved_fx_n": _num(a[0]) if a else None, "achieved_fy_n": _num(a[1]) if a else None,
        "achieved_mz_nm": _num(a[2]) if a else None,
        "saturated": bool(c.last_saturated) if allocating else False,
        "clamped_total": v.guard.clamped_total, "rate_limited_total": v.guard.rate_limited_total,
        "faults_active": len(v.faults.active),
        "waypoints_reached": m.waypoints_reached if m is not None else 0,
    }
    for i, t in enumerate(v.guard.last_n):
        rec[f"thrust_n_{i}"] = _num(t)
    return rec


def component_records(v: Vehicle) -> list[tuple[str, Mapping[str, object]]]:
    """Return every component's flight-record messages of this tick, ``(topic, record)``.

    The record phase of the tick (after write): each component's
    :meth:`~controller.components.seam.Component.telemetry`, in tick order.
    """
    view = v.view()
    return [(topic, rec) for c in v.components for topic, rec in c.telemetry(view).items()]
