"""Telemetry of one tick, as flat records for the flight log (issue 12, the tick's record phase).

Flat scalars (one number per field), because plotting tools (Foxglove, PlotJuggler) plot
arrays poorly. Positions and setpoints are in the world frame (x east, y north, yaw
counter-clockwise from x, rad); wrenches in the body frame (``fx_n``, ``fy_n``,
``mz_nm``). A value that is unknown this tick (no pose yet, not allocating) is None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from controller.components.seam import ARMING_STATES, ComponentBase, Telemetry, TelemetryRow, TickView
from controller.record.flight_writer import NumberKeys, row_record

if TYPE_CHECKING:
    from controller.record.session import FlightSession
    from controller.record.taps import Record, RowAppender
    from controller.vehicle.manager import Vehicle


_NO_POSE: dict[str, None] = dict.fromkeys(("x_m", "y_m", "yaw_rad", "vx_mps", "vy_mps", "yaw_rate_radps"))
_SETPOINT_KEYS = ("sp_x_m", "sp_y_m", "sp_yaw_rad")
_WRENCH_KEYS = ("fx_n", "fy_n", "mz_nm")
_ACHIEVED_KEYS = ("achieved_fx_n", "achieved_fy_n", "achieved_mz_nm")
#: ``thrust_n_<i>`` keys, made once (not per tick).
_THRUST_KEYS = tuple(f"thrust_n_{i}" for i in range(64))
_NONE_6 = (None,) * 6
_NONE_3 = (None,) * 3
#: :meth:`ComponentBase.telemetry <controller.components.seam.ComponentBase.telemetry>`: no messages, ever.
_NO_TELEMETRY = ComponentBase.telemetry


#: ``/tick`` row layouts by thruster count (:func:`tick_row`), made once per count.
_TICK_KEYS: dict[tuple[int, bool], NumberKeys] = {}
#: Index of the first number (``x_m``) in a ``/tick`` row, and of the first thrust.
_FIRST_NUMBER = 5
_FIRST_THRUST = _FIRST_NUMBER + 15 + 5


def _tick_keys(n_thrusters: int, with_crc: bool) -> NumberKeys:
    """Return the ``/tick`` layout for ``n_thrusters`` thrusters (and ``ingress_crc32`` last when ``with_crc``).

    A :class:`~controller.record.flight_writer.NumberKeys`: the pose, setpoint, wrench,
    achieved wrench and thrust values are cleaned by whoever builds the record.
    """
    keys = _TICK_KEYS.get((n_thrusters, with_crc))
    if keys is None:
        thrust = _THRUST_KEYS[:n_thrusters] if n_thrusters <= len(_THRUST_KEYS) else tuple(
            f"thrust_n_{i}" for i in range(n_thrusters))
        names = ("tick", "t_s", "state", "armed", "outputs", *_NO_POSE, *_SETPOINT_KEYS, *_WRENCH_KEYS,
                 *_ACHIEVED_KEYS, "saturated", "clamped_total", "rate_limited_total", "faults_active",
                 "waypoints_reached", *thrust, *(("ingress_crc32",) if with_crc else ()))
        assert names[_FIRST_NUMBER] == "x_m" and names[_FIRST_THRUST - 5] == "saturated"
        numbers = (*range(_FIRST_NUMBER, _FIRST_NUMBER + 15), *range(_FIRST_THRUST, _FIRST_THRUST + n_thrusters))
        keys = _TICK_KEYS[(n_thrusters, with_crc)] = NumberKeys(names, numbers)
    return keys


def tick_row(v: Vehicle, ingress_crc32: int | None = None,
             view: TickView | None = None) -> tuple[tuple[str, ...], tuple[object, ...]]:
    """Return the ``/tick`` record of the tick the vehicle just ran as a row ``(keys, values)``.

    The layout (``keys``) is made once per thruster count; per tick only the values tuple
    is built, so the tick builds no dict: the recorder builds the record
    (:func:`~controller.record.flight_writer.row_record`, the writer process in a
    recorded run). The numbers (pose, setpoint, wrenches, thrusts) are handed as they
    are: the layout is a :class:`~controller.record.flight_writer.NumberKeys`, and
    ``row_record`` makes each a float, or None when missing or not finite.
    ``row_record(keys, values)`` is :func:`tick_record` of the same arguments, key order
    included.

    Parameters
    ----------
    v : Vehicle
        After :meth:`Vehicle.tick`.
    ingress_crc32 : int or None, optional
        As :func:`tick_record`.
    view : TickView or None, optional
        ``v.view()`` of this very moment, when the caller has it (:class:`TickTelemetry`
        hands the one it gives the components); None: ``v.view()`` is taken here. The
        tick, time, state, outputs and pose are read from it (the view holds the very
        objects the vehicle does).

    Returns
    -------
    keys : NumberKeys
        The fields of :func:`tick_record`, in its order (shared, not to be changed).
    values : tuple
        One value per key: JSON scalars, and the numbers raw (a float, None, NaN...).
    """
    if view is None:
        view = v.view()
    p = view.pose
    allocating = v.demand_n is not None
    c = v.control
    m = c.mission  # Vehicle.mission, without the property call
    g = v.guard
    state = view.state
    thrust = g.last_n
    pose = ((p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps, p.vy_world_mps, p.yaw_rate_radps) if p
            else _NONE_6)
    sp = (allocating and c.last_setpoint) or _NONE_3
    w = (allocating and c.last_wrench) or _NONE_3
    a = (allocating and c.last_achieved) or _NONE_3
    values = (view.tick, view.now_s, state, state in ARMING_STATES, view.outputs, *pose, sp[0], sp[1], sp[2],
              w[0], w[1], w[2], a[0], a[1], a[2],
              bool(c.last_saturated) if allocating else False, g.clamped_total, g.rate_limited_total,
              len(v.faults.active), m.waypoints_reached if m is not None else 0, *thrust,
              *((ingress_crc32,) if ingress_crc32 is not None else ()))
    keys = _TICK_KEYS.get((len(thrust), ingress_crc32 is not None)) or _tick_keys(len(thrust),
                                                                                 ingress_crc32 is not None)
    return keys, values


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
    return cast("Record", row_record(*tick_row(v, ingress_crc32)))  # the values are Record's scalars


def component_records(v: Vehicle) -> list[tuple[str, Mapping[str, object] | TelemetryRow]]:
    """Return every component's flight-record messages of this tick, ``(topic, record or row)``.

    Each component's :meth:`~controller.components.seam.Component.telemetry` after
    write, in tick order. A message is a record or a
    :data:`~controller.components.seam.TelemetryRow`
    (:func:`~controller.components.seam.telemetry_record` gives its record). The run's
    record phase does not call this: it uses :class:`TickTelemetry`, whose
    :meth:`TickTelemetry.record` holds an inline copy of this loop (the same messages,
    in the same order). This function gives the console desk its messages when the run
    does not record, and is the reference the copy is tested against.
    """
    view = v.view()
    return [(topic, rec) for c in v.components for topic, rec in c.telemetry(view).items()]


class TickTelemetry:
    """The record phase of a recorded run: ``/tick`` and every component's messages, handed to the session.

    Made once per run (``controller.run``), it holds what every tick would otherwise look
    up again: each component's bound ``telemetry`` method (a vehicle's components are fixed
    when it is built; one that keeps :class:`~controller.components.seam.ComponentBase`'s,
    which never has a message, is not asked), the session's appender of ``/tick`` and of each row topic
    (:meth:`FlightSession.appender <controller.record.session.FlightSession.appender>`, the
    ones :meth:`~controller.record.session.FlightSession.row` uses). The row topics'
    appenders are cached here too, although ``FlightSession.appender`` caches them: the
    local ``dict.get`` costs about 11 ns a row where calling ``session.appender(topic)``
    costs about 47 ns (CPython 3.11, timeit, the call included). Per tick,
    :meth:`record` takes one :meth:`Vehicle.view <controller.vehicle.manager.Vehicle.view>`
    for ``/tick`` (:func:`tick_row`) and the components alike, and skips a component's
    empty answer without iterating it. The messages, their order and their contents are
    those of :func:`tick_row` then :func:`component_records`, handed as
    ``FlightSession.row`` (a :data:`~controller.components.seam.TelemetryRow`) or
    ``FlightSession.put`` (a record) would.

    Parameters
    ----------
    vehicle : Vehicle
        The run's vehicle.
    session : FlightSession
        The run's open flight record.
    """

    __slots__ = ("_vehicle", "_session", "_telemetry", "_append_tick", "_appenders")

    def __init__(self, vehicle: Vehicle, session: FlightSession) -> None:
        self._vehicle = vehicle
        self._session = session
        # ComponentBase's telemetry is always {}: a component that keeps it is not asked
        self._telemetry: tuple[Callable[[TickView], Telemetry], ...] = tuple(
            c.telemetry for c in vehicle.components if getattr(c.telemetry, "__func__", None) is not _NO_TELEMETRY)
        self._append_tick = session.appender("/tick")
        self._appenders: dict[str, RowAppender] = {}

    def record(self, ingress_crc32: int,
               out: list[tuple[str, Mapping[str, object] | TelemetryRow]] | None = None) -> None:
        """Hand this tick's ``/tick`` row and the components' messages to the session (after write).

        Call it only while the session records (``session.cursor.recording``), as the
        run does; once the session is closed nothing is handed (as ``row``/``put``).

        Each component is asked and its messages handed before the next is asked: when
        a component's ``telemetry`` raises, the messages of the components before it in
        this tick (and ``/tick``) are already handed to the session, those after it are
        not, and the exception propagates. A ``telemetry`` that returns None (or any
        empty value) is skipped silently, as one that returns ``{}``.

        Parameters
        ----------
        ingress_crc32 : int
            The tick's ingress CRC-32 (``session.cursor.crc32``), ``/tick``'s last field.
        out : list or None, optional
            When given, each component message is also appended to it as
            ``(topic, record or row)``: :func:`component_records` of this tick (the
            console desk reads them).
        """
        v = self._vehicle
        session = self._session
        view = v.view()
        live = not session.closed
        if live:
            self._append_tick(*tick_row(v, ingress_crc32, view))
        for telemetry in self._telemetry:
            messages = telemetry(view)
            if not messages:  # most components, most ticks
                continue
            for topic, rec in messages.items():
                if out is not None:
                    out.append((topic, rec))
                if not live:
                    continue
                if isinstance(rec, tuple):  # a row (TelemetryRow): the recorder builds the record
                    append = self._appenders.get(topic)
                    if append is None:
                        append = self._appenders[topic] = session.appender(topic)
                    append(*rec)
                else:
                    session.put(topic, rec)
