"""The console's picture of the vehicle: plain data the widgets draw (no I/O, no Textual).

A :class:`ConsoleView` is built either from a gateway telemetry message
(:func:`controller.console.tui.sources.view_from_telemetry`) or from a recorded run at
one instant (:class:`controller.console.tui.sources.RecordTimeline`). Every value the
operator reads carries its age (s): the widgets grey a value whose age is over
:data:`STALE_AFTER_S`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["STALE_AFTER_S", "Check", "ConsoleView", "Fault", "Track", "Waypoint", "is_stale"]

#: A value older than this (s) is drawn greyed (stale). 0.5 s is five telemetry periods at
#: 10 Hz: one lost frame does not grey the screen, a stalled source does.
STALE_AFTER_S = 0.5


def is_stale(age_s: float | None, limit_s: float = STALE_AFTER_S) -> bool:
    """Whether a value of age ``age_s`` (s) is stale; an unknown age is stale.

    Parameters
    ----------
    age_s : float or None
        Seconds since the value was last updated (run clock); None: never.
    limit_s : float
        The threshold (s), default :data:`STALE_AFTER_S`.
    """
    return age_s is None or age_s > limit_s


@dataclass(frozen=True)
class Check:
    """One arming check.

    Attributes
    ----------
    name : str
        The check (``soc``, ``post``, ``estop_released``, ...).
    ok : bool
        Whether it passes.
    reason : str
        Why it fails (or what it saw).
    """

    name: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Fault:
    """One fault, active or latched.

    Attributes
    ----------
    code : int or None
        Its event code (docs/event-codes.md).
    name : str
        The fault.
    reason : str
        Its reason text.
    active : bool
        Active now (else latched only).
    """

    code: int | None
    name: str
    reason: str = ""
    active: bool = True


@dataclass(frozen=True)
class Track:
    """A radar track in the world frame.

    Attributes
    ----------
    id : int
        Track id.
    x_m, y_m : float
        Position (m).
    band : str
        ``lr`` or ``sr``.
    """

    id: int
    x_m: float
    y_m: float
    band: str = ""


@dataclass(frozen=True)
class Waypoint:
    """A mission waypoint.

    Attributes
    ----------
    x_m, y_m : float
        Position (m), world frame.
    reached : bool
        Whether the vehicle reached it.
    """

    x_m: float
    y_m: float
    reached: bool = False


@dataclass
class ConsoleView:
    """What the console shows at one instant.

    Attributes
    ----------
    t_s : float or None
        Run-clock time of the view (s).
    state : str or None
        The vehicle's state (``idle``, ``armed``, ``active``, ``estop``, ...).
    time_in_state_s : float or None
        Seconds in that state.
    armed : bool or None
        Whether the vehicle is armed.
    holder : str or None
        The console that holds control (None: nobody).
    me : str or None
        This console's id as the gateway named it.
    link_age_s : float or None
        Seconds since the last telemetry message arrived (wall clock; None in a record).
    recording : str or None
        The record being written (a path or ``yes``), or None.
    connected : bool
        Whether the link is up (a record: True).
    read_only : bool
        A recorded run, or an observer (no commands).
    pose : tuple of float or None
        ``(x_m, y_m, yaw_rad)``.
    setpoint : tuple of float or None
        ``(x_m, y_m, yaw_rad)``.
    waypoints : list of Waypoint
        The mission.
    waypoints_reached : int or None
        How many were reached.
    keep_out_radius_m : float or None
        The radar keep-out radius around the vehicle (m).
    tracks : list of Track
        Confirmed radar tracks.
    faults : list of Fault
        Active and latched faults.
    checks : list of Check
        The arming checks.
    battery : dict
        ``soc_pct``, ``voltage_v``, ``current_a``, ``max_temperature_c`` (any missing: unknown).
    pdu : dict
        The PDU's readings and relays (name to value).
    thrust_n : list of float
        The output guard's thrust per thruster (N).
    ages_s : dict
        Age (s) per group: ``state``, ``pose``, ``battery``, ``pdu``, ``tracks``, ``faults``, ``checks``.
    notes : list of str
        Anything the source wants the operator to read (a refusal, a decode problem).
    """

    t_s: float | None = None
    state: str | None = None
    time_in_state_s: float | None = None
    armed: bool | None = None
    holder: str | None = None
    me: str | None = None
    link_age_s: float | None = None
    recording: str | None = None
    connected: bool = False
    read_only: bool = False
    pose: tuple[float, float, float] | None = None
    setpoint: tuple[float, float, float] | None = None
    waypoints: list[Waypoint] = field(default_factory=list)
    waypoints_reached: int | None = None
    keep_out_radius_m: float | None = None
    tracks: list[Track] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    battery: dict[str, float | None] = field(default_factory=dict)
    pdu: dict[str, object] = field(default_factory=dict)
    thrust_n: list[float] = field(default_factory=list)
    ages_s: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def age(self, group: str) -> float | None:
        """Return the age (s) of a group of values, None when unknown.

        Parameters
        ----------
        group : str
            A key of :attr:`ages_s`.
        """
        return self.ages_s.get(group)

    @property
    def i_hold_control(self) -> bool:
        """Whether this console holds control."""
        return self.me is not None and self.holder == self.me
