"""Telemetry of one tick, as flat records for the flight log (issue 12, the tick's record phase).

Flat scalars (one number per field), because plotting tools (Foxglove, PlotJuggler) plot
arrays poorly. Positions and setpoints are in the world frame (x east, y north, yaw
counter-clockwise from x, rad); wrenches in the body frame (``fx_n``, ``fy_n``,
``mz_nm``). A value that is unknown this tick (no pose yet, not allocating) is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from controller.components.seam import ARMING_STATES, TelemetryRow

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


#: ``/tick`` row layouts by thruster count (:func:`tick_row`), made once per count.
_TICK_KEYS: dict[tuple[int, bool], tuple[str, ...]] = {}


def _tick_keys(n_thrusters: int, with_crc: bool) -> tuple[str, ...]:
    """Return the ``/tick`` keys for ``n_thrusters`` thrusters (and ``ingress_crc32`` last when ``with_crc``)."""
    keys = _TICK_KEYS.get((n_thrusters, with_crc))
    if keys is None:
        thrust = _THRUST_KEYS[:n_thrusters] if n_thrusters <= len(_THRUST_KEYS) else tuple(
            f"thrust_n_{i}" for i in range(n_thrusters))
        keys = ("tick", "t_s", "state", "armed", "outputs", *_NO_POSE, *_SETPOINT_KEYS, *_WRENCH_KEYS,
                *_ACHIEVED_KEYS, "saturated", "clamped_total", "rate_limited_total", "faults_active",
                "waypoints_reached", *thrust, *(("ingress_crc32",) if with_crc else ()))
        _TICK_KEYS[(n_thrusters, with_crc)] = keys
    return keys


def tick_row(v: Vehicle, ingress_crc32: int | None = None) -> tuple[tuple[str, ...], tuple[object, ...]]:
    """Return the ``/tick`` record of the tick the vehicle just ran as a row ``(keys, values)``.

    The layout (``keys``) is made once per thruster count; per tick only the values tuple
    is built, so the tick builds no dict: the recorder builds the record
    (:func:`~controller.record.flight_writer.row_record`, the writer process in a
    recorded run). ``dict(zip(keys, values))`` is :func:`tick_record` of the same
    arguments, key order included.

    Parameters
    ----------
    v : Vehicle
        After :meth:`Vehicle.tick`.
    ingress_crc32 : int or None, optional
        As :func:`tick_record`.

    Returns
    -------
    keys : tuple of str
        The fields of :func:`tick_record`, in its order (shared, not to be changed).
    values : tuple
        One JSON scalar per key (a non-finite or missing number as None).
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
    nums: list[object] = ([p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps, p.vy_world_mps, p.yaw_rate_radps] if p
                          else [None] * 6)
    for xs in (sp, w, a):
        if xs:
            nums += (xs[0], xs[1], xs[2])
        else:
            nums += (None, None, None)
    thrust = g.last_n
    # a plain finite float is taken as is, anything else goes through _num (None stays None)
    num = [x if x.__class__ is float and x - x == 0.0 else _num(x) for x in nums]  # type: ignore[arg-type]
    th = [x if x.__class__ is float and x - x == 0.0 else _num(x) for x in thrust]
    values = (v.tick_index, v.now_s, state, state in ARMING_STATES, v.fsm.outputs, *num,
              bool(c.last_saturated) if allocating else False, g.clamped_total, g.rate_limited_total,
              len(v.faults.active), m.waypoints_reached if m is not None else 0, *th,
              *((ingress_crc32,) if ingress_crc32 is not None else ()))
    return _tick_keys(len(th), ingress_crc32 is not None), values


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
        ``waypoints_reached``. The same as :func:`tick_row` as a dict.
    """
    keys, values = tick_row(v, ingress_crc32)
    return cast("Record", dict(zip(keys, values, strict=True)))  # the values are Record's scalars


def component_records(v: Vehicle) -> list[tuple[str, Mapping[str, object] | TelemetryRow]]:
    """Return every component's flight-record messages of this tick, ``(topic, record or row)``.

    The record phase of the tick (after write): each component's
    :meth:`~controller.components.seam.Component.telemetry`, in tick order. A message is
    a record or a :data:`~controller.components.seam.TelemetryRow` (the run hands a row
    to the recorder as one; :func:`~controller.components.seam.telemetry_record` gives
    its record).
    """
    view = v.view()
    return [(topic, rec) for c in v.components for topic, rec in c.telemetry(view).items()]
