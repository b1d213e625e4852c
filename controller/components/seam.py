"""The component seam: what every device's runtime logic offers the vehicle, and what it sees.

Every board on the rig (valve board, MCU, radars, BMS, PDU, and whatever comes next) joins
the tick through one typed protocol, :class:`Component` -- the shape of ros2_control's
hardware components under its controller manager: the manager
(:class:`controller.vehicle.Vehicle`) calls ``read`` on every component, then updates
(safety conditions, POST, the state machine, control), then calls ``write`` on every
component. A component never sees the vehicle: it gets a frozen :class:`TickView` with
what it may know about the tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from hal.snapshot import JsonValue, State

#: FSM states in which the valve rail is (or is being) enabled.
ARMING_STATES = frozenset({"armed", "active"})

#: A flight-record message handed as a row: its layout (the keys, made once per channel,
#: shared, never changed) and this tick's values, one JSON scalar per key (no bytes). The
#: recorder builds the record ``dict(zip(keys, values))`` off the tick (the writer
#: process; :func:`controller.record.flight_writer.row_record`).
TelemetryRow = tuple[tuple[str, ...], tuple[object, ...]]
#: What :meth:`Component.telemetry` returns: per topic a record, or a row.
Telemetry = Mapping[str, Mapping[str, object] | TelemetryRow]


def telemetry_record(message: Mapping[str, object] | TelemetryRow) -> Mapping[str, object]:
    """Return a telemetry message as its record (a row as ``dict(zip(keys, values))``, a record as is).

    Parameters
    ----------
    message : mapping or TelemetryRow
        One value of :meth:`Component.telemetry`.

    Returns
    -------
    mapping
        The record the flight record holds for it.
    """
    if isinstance(message, tuple):
        keys, values = message
        return dict(zip(keys, values, strict=True))
    return message


class PoseEstimate(NamedTuple):
    """The vehicle's pose and velocity estimate (world frame), as the MCU reports it.

    Immutable, built once per new pose message (:attr:`McuComponent.pose
    <controller.components.mcu.McuComponent.pose>`), up to once a tick as the MCU
    reports. A ``NamedTuple`` rather than a frozen dataclass: a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__`` (about 2.4x the cost,
    timeit; issue 16). Read
    it by field name; it is not a flight-record row (it never reaches the recorder).

    Attributes
    ----------
    x_m, y_m : float
        Position in the world frame (m).
    yaw_rad : float
        Heading, counter-clockwise from the world x axis (rad).
    vx_world_mps, vy_world_mps : float
        Velocity in the world frame (m/s).
    yaw_rate_radps : float
        Yaw rate (rad/s).
    """

    x_m: float
    y_m: float
    yaw_rad: float
    vx_world_mps: float
    vy_world_mps: float
    yaw_rate_radps: float


class TickView(NamedTuple):
    """What a component may know about the tick it runs in (read-only, per tick).

    Immutable; a ``NamedTuple`` for the cost of building it (two or three a tick, see
    :class:`PoseEstimate`). Read it by field name; it is not a flight-record row.

    Attributes
    ----------
    tick : int
        Tick index from 0.
    now_s : float
        The tick's time on the run clock (s).
    state : str
        FSM state at the time of the call (before the update in ``read``, after it in
        ``write``).
    outputs : str
        The state's outputs mode: ``"zero"`` or ``"allocate"``.
    pose : PoseEstimate or None
        The latest pose estimate (None before the first one).
    """

    tick: int
    now_s: float
    state: str
    outputs: str
    pose: PoseEstimate | None


@dataclass(frozen=True, slots=True)
class DevicePost:
    """One device's power-on self test verdict (SAFETY.md D05/D07)."""

    passed: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        """Return the device's entry in ``summary.json`` -> ``post``."""
        return {"passed": self.passed, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Condition:
    """One fault condition, re-evaluated every tick.

    Attributes
    ----------
    key : str
        Stable key (``vb_status``, ``radar.lr_stale``); the fault book's key.
    reason : str or None
        Why it holds (one line), or None when it does not hold (clears it).
    event : str or None
        Event raised when the condition newly becomes active (``"fault"`` by default;
        None: recorded, no event).
    """

    key: str
    reason: str | None
    event: str | None = "fault"


#: The clear :class:`Condition` of each key, made once (see :func:`condition`).
_CLEAR: dict[str, Condition] = {}


def condition(key: str, reason: str | None) -> Condition:
    """Return ``Condition(key, reason)``; the clear one (``reason`` None) is made once per key.

    Conditions are re-evaluated every tick and almost all of them are clear: sharing the
    immutable clear instance saves building one per condition per tick (issue 16, the lean
    tick). Equal to ``Condition(key, reason)`` in every field (``event`` ``"fault"``).

    Parameters
    ----------
    key : str
        The fault book's key.
    reason : str or None
        Why it holds, or None when it does not.

    Returns
    -------
    Condition
    """
    if reason is None:
        try:
            return _CLEAR[key]  # a subscript, not a .get() call: the common case is the hit
        except KeyError:
            c = _CLEAR[key] = Condition(key, None)
            return c
    return Condition(key, reason)


class ConditionSet:
    """A component's fixed list of condition keys, answered as one tuple per set of reasons.

    :meth:`of` returns the very same tuple object while the reasons are the same as on
    the previous call (compared as one tuple, in C), so a quiet tick builds no
    :class:`Condition`, and the manager skips a tuple it has already applied
    (:meth:`controller.vehicle.Vehicle._monitor`, issue 12). Equal, condition by
    condition, to ``tuple(condition(k, r) for k, r in zip(keys, reasons))``.

    Parameters
    ----------
    keys : sequence of str
        The fault book's keys, in the order :meth:`of` takes the reasons.
    """

    __slots__ = ("keys", "_reasons", "_conds")

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self._reasons: tuple[str | None, ...] | None = None
        self._conds: tuple[Condition, ...] = ()

    def of(self, reasons: tuple[str | None, ...]) -> tuple[Condition, ...]:
        """Return the conditions for ``reasons`` (one per key; None: clear), per tick.

        Raises
        ------
        ValueError
            When there are not as many reasons as keys.
        """
        if reasons == self._reasons:
            return self._conds
        conds = tuple(condition(k, r) for k, r in zip(self.keys, reasons, strict=True))
        self._reasons, self._conds = reasons, conds
        return conds


#: An FSM action's implementation in a component, called with the tick's view.
ActionHandler = Callable[[TickView], None]


@runtime_checkable
class Component(Protocol):
    """The runtime logic of one device (or one device family) on the vehicle.

    Methods are per tick unless noted and never block: a slow bus is read from a snapshot
    a worker keeps. Implementations live in :mod:`controller.components`; the composition
    root (:mod:`controller.rig`) builds them.
    """

    #: Name of the component; its block in ``summary.json`` when it writes one.
    name: str

    def read(self, view: TickView) -> None:
        """Read phase, after the buses were drained: take new data, update freshness."""

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        """POST verdict per device (boot only), or None while still waiting for data."""

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Fault conditions of this tick (an empty sequence when there are none).

        A component may return the very same tuple as on its previous call when its
        conditions did not change (:class:`ConditionSet` does it): the manager then
        skips applying it (a tuple is never changed in place; a list is always applied).
        """

    def events(self, view: TickView) -> Sequence[str]:
        """Events to raise this tick regardless of conditions (the E-stop input)."""

    def arming_check(self, view: TickView) -> str | None:
        """Why the vehicle may not arm now (SAFETY.md O01), or None."""

    def action_handlers(self) -> Mapping[str, ActionHandler]:
        """Return this component's part of FSM actions, by registered action name (once)."""

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Write phase: ``thrust_n`` (N,) is what the output guard let through (N)."""

    def valve_rail_open_confirmed(self) -> bool | None:
        """Tell whether this component confirmed the valve rail open (safe stop).

        None: it has no part in the rail; True/False: its own read-back.
        """

    def telemetry(self, view: TickView) -> Telemetry:
        """Return this tick's flight-record messages by topic (the record phase; {} for none).

        After write, per tick: e.g. the valve board's ``/valves`` duties, a radar cycle's
        ``/radar/<name>/tracks``, a new BMS sample's ``/power/bms``. Flat scalars where a
        viewer plots them (docs/flight-record.md); no side effects. A message is a record
        (a mapping) or, for one sent every tick, a :data:`TelemetryRow` (keys made once,
        a values tuple per tick: the tick builds no dict; :func:`telemetry_record` turns
        it into the record).
        """

    def summary(self) -> Mapping[str, object]:
        """Return the component's block of ``summary.json`` (once, at the end; {} for none)."""

    def snapshot(self) -> State:
        """Return the component's state at the end of a tick, as JSON values (issue 12 part 4).

        Everything that decides its later outputs: what its drivers learnt (latest values,
        freshness, counters, partial frames), its own latches and timers, filters and
        trackers -- never a port, bus, thread, clock or sink. Encoded with
        :mod:`hal.snapshot` (floats exact). A component says here what state it has; a
        stateless one returns ``{}``.
        """

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a component built from the same rig (a replay)."""

    def close(self) -> None:
        """Stop threads, close links (once, at the end of a run; safe twice)."""


class ComponentBase:
    """Do-nothing defaults of :class:`Component`, for components that need few hooks."""

    name = "component"

    def read(self, view: TickView) -> None:
        """Nothing to read."""

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        """No device to test."""
        return {}

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """No conditions."""
        return ()

    def events(self, view: TickView) -> Sequence[str]:
        """No events."""
        return ()

    def arming_check(self, view: TickView) -> str | None:
        """Never refuses arming."""
        return None

    def action_handlers(self) -> Mapping[str, ActionHandler]:
        """Take part in no action."""
        return {}

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Nothing to write."""

    def valve_rail_open_confirmed(self) -> bool | None:
        """No part in the valve rail."""
        return None

    def telemetry(self, view: TickView) -> Telemetry:
        """No flight-record messages."""
        return {}

    def summary(self) -> Mapping[str, object]:
        """No summary block."""
        return {}

    def snapshot(self) -> State:
        """No state (a component with state overrides this and :meth:`restore`)."""
        return {}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Nothing to put back."""

    def close(self) -> None:
        """Nothing to close."""
