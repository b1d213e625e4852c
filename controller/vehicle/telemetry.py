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


_NO_POSE: dict[str, None] = dict.fromkeys(("x_m", "y_m", "yaw_rad", "vx_mps", "vy_mps", "yaw_rate_radps"))
_SETPOINT_KEYS = ("sp_x_m", "sp_y_m", "sp_yaw_rad")
_WRENCH_KEYS = ("fx_n", "fy_n", "mz_nm")
_ACHIEVED_KEYS = ("achieved_fx_n", "achieved_fy_n", "achieved_mz_nm")
#: ``thrust_n_<i>`` keys, made once (not per tick).
_THRUST_KEYS = tuple(f"thrust_n_{i}" for i in range(64))


def tick_record(v: Vehicle, ingress_crc32: int | None = None) -> Record:
    """Return the ``/tick`` record of the tick the vehicle just ran.

    Parameters
    ----------
    v : Vehicle
        After :meth:`Vehicle.tick`.
    ingress_crc32 : int or None, optional
        The tick's ingress CRC-32 (:attr:`controller.record.taps.TickCursor.crc32`), put
        last as ``ingress_crc32`` (None: no such field).

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
    g = v.guard
    state = v.state
    # every recorded tick: a plain finite float is taken as is, anything else goes through _num
    rec: Record = {"tick": v.tick_index, "t_s": v.now_s, "state": state, "armed": state in ARMING_STATES,
                   "outputs": v.fsm.outputs}
    if p:
        for key, x in (("x_m", p.x_m), ("y_m", p.y_m), ("yaw_rad", p.yaw_rad), ("vx_mps", p.vx_world_mps),
                       ("vy_mps", p.vy_world_mps), ("yaw_rate_radps", p.yaw_rate_radps)):
            rec[key] = x if x.__class__ is float and x - x == 0.0 else _num(x)
    else:
        rec.update(_NO_POSE)
    for keys, xs in ((_SETPOINT_KEYS, sp), (_WRENCH_KEYS, w), (_ACHIEVED_KEYS, a)):
        if xs:
            for key, x in zip(keys, (xs[0], xs[1], xs[2]), strict=True):
                rec[key] = x if x.__class__ is float and x - x == 0.0 else _num(x)
        else:
            rec.update(dict.fromkeys(keys))
    rec["saturated"] = bool(c.last_saturated) if allocating else False
    rec["clamped_total"] = g.clamped_total
    rec["rate_limited_total"] = g.rate_limited_total
    rec["faults_active"] = len(v.faults.active)
    rec["waypoints_reached"] = m.waypoints_reached if m is not None else 0
    thrust = g.last_n
    thrust_keys = _THRUST_KEYS if len(thrust) <= len(_THRUST_KEYS) else [f"thrust_n_{i}" for i in range(len(thrust))]
    for key, x in zip(thrust_keys, thrust, strict=False):  # keys for up to 64 thrusters
        rec[key] = x if x.__class__ is float and x - x == 0.0 else _num(x)
    if ingress_crc32 is not None:
        rec["ingress_crc32"] = ingress_crc32
    return rec


def component_records(v: Vehicle) -> list[tuple[str, Mapping[str, object]]]:
    """Return every component's flight-record messages of this tick, ``(topic, record)``.

    The record phase of the tick (after write): each component's
    :meth:`~controller.components.seam.Component.telemetry`, in tick order.
    """
    view = v.view()
    return [(topic, rec) for c in v.components for topic, rec in c.telemetry(view).items()]
