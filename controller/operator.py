"""The operator of the main job: a script that sends what a person at the console would.

``arm``, ``start_mission`` and ``disarm`` go through the vehicle's one arbiter (SAFETY.md
O04), as a console's commands will. The script's ``result`` is set once and never
overwritten by a rosier outcome (issue 10 part 3); a safe result names the root cause
and its event code (:func:`safe_cause`, issue 15 part 6), e.g.
``estop: E-stop pressed (event 901)``, not the rail drop the E-stop chain caused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.record.codes import code_for

if TYPE_CHECKING:
    from controller.vehicle import Vehicle

SAFE_STATES = ("safe_mode", "estop")
#: How long a run keeps ticking (recording zero output) after landing in a safe state.
LINGER_S = 1.0


class OperatorScript:
    """Plays the console operator for the main job: arm, start the mission, disarm.

    ``result`` is set once and never overwritten by a later, rosier outcome: a mission
    that timed out stays ``mission timed out`` after the disarm that follows it, and
    ``completed`` needs every waypoint reached and the vehicle back in ``idle``.
    """

    def __init__(self) -> None:
        self.armed_once = False
        self.started = False
        self.mission_done = False
        self.disarm_sent = False
        self.finished = False
        self.result: str | None = None
        self.safe_since_s: float | None = None
        self.arm_sent_s: float | None = None

    def step(self, vehicle: Vehicle, now_s: float) -> None:
        """Look at the vehicle after a tick and queue the next operator command (per tick).

        Parameters
        ----------
        vehicle : Vehicle
            The vehicle, after its tick.
        now_s : float
            The tick's time on the run clock (s).
        """
        st = vehicle.state
        if st in SAFE_STATES:
            if self.safe_since_s is None:
                self.safe_since_s = now_s
                self.result = safe_result(vehicle)
            elif now_s - self.safe_since_s >= LINGER_S:
                self.finished = True
            return
        m = vehicle.mission
        if st == "idle" and vehicle.post_passed and not self.armed_once:
            vehicle.command("arm")
            self.armed_once = True
            self.arm_sent_s = now_s
        elif st == "idle" and self.armed_once and not self.disarm_sent:
            # arm was refused (O01): report why and end the run instead of idling forever
            if vehicle.last_refusal is not None and vehicle.last_refusal[0] == "arm":
                self.result = f"arm refused: {vehicle.last_refusal[1]}"
                self.finished = True
        elif st == "armed" and not self.started:
            vehicle.command("start_mission")
            self.started = True
        elif st == "armed" and self.started and m is not None and m.complete and not self.disarm_sent:
            vehicle.command("disarm")
            self.disarm_sent = True
        elif st == "idle" and self.disarm_sent:
            if self.result is None:
                if m is None or (m.complete and m.waypoints_reached == m.waypoints_total):
                    self.result = "completed"
                else:
                    self.result = f"mission incomplete ({m.waypoints_reached}/{m.waypoints_total} waypoints)"
            self.finished = True
        if m is not None and st == "active" and not self.disarm_sent and m.timed_out(now_s):
            vehicle.command("disarm")
            self.result = f"mission timed out ({m.waypoints_reached}/{m.waypoints_total} waypoints)"
            self.disarm_sent = True


#: Fault keys that an E-stop press itself causes (the E-stop chain cuts the valve rail):
#: in a run that reached ``estop`` they are symptoms, never the root cause.
ESTOP_SYMPTOMS = frozenset({"rail"})
ESTOP_CAUSE = "E-stop pressed"


def _fault_key(vehicle: Vehicle, reason: str) -> str | None:
    """Return the condition key of an active fault with this reason (None: it has cleared)."""
    return next((k for k, r in vehicle.faults.active.items() if r == reason), None)


def safe_cause(vehicle: Vehicle) -> tuple[str, int]:
    """Why the vehicle is in ``safe_mode``/``estop``: the root cause and its event code.

    Parameters
    ----------
    vehicle : Vehicle
        The vehicle in (or after) a safe state.

    Returns
    -------
    (str, int)
        The cause's text and its code in ``controller/record/codes.py``, first match of:
        an exception caught by the tick's barrier (911); an E-stop press (901) when the
        first transition into a safe state was the ``estop`` event (or, with no
        transition recorded, the state is ``estop`` and the E-stop reads pressed), or when
        the run reached ``estop`` and the first fault is an E-stop symptom
        (:data:`ESTOP_SYMPTOMS`: the rail drop the E-stop chain causes, seen a tick before
        the press); the first fault (the code of its condition key while it is active,
        else 902 "fault -> safe_mode"); ``estop`` without a fault (901); a POST that never
        passed (the ``post_failed`` transition's code); else the state.
    """
    st = vehicle.state
    if vehicle.exception_reason is not None:
        return vehicle.exception_reason, code_for("fault", {"source": "tick_exception"})
    estop_code = code_for("transition", {"event": "estop"})
    into_safe = [t for t in vehicle.transitions if t[3] in SAFE_STATES]
    if into_safe and into_safe[0][2] == "estop":
        return ESTOP_CAUSE, estop_code
    if not into_safe and st == "estop" and vehicle.mcu.driver.estop_pressed:
        return ESTOP_CAUSE, estop_code
    first = vehicle.first_fault
    if first:
        key = _fault_key(vehicle, first)
        if key in ESTOP_SYMPTOMS and (st == "estop" or any(t[2] == "estop" for t in into_safe)):
            return ESTOP_CAUSE, estop_code
        if key is not None:
            return first, code_for("fault", {"source": key})
        return first, code_for("transition", {"event": "fault"})
    if st == "estop":
        return ESTOP_CAUSE, estop_code
    if not vehicle.post_passed:
        return "POST failed", code_for("transition", {"event": "post_failed"})
    return st, code_for("transition", {"event": st})


def safe_reason(vehicle: Vehicle) -> str:
    """Why the vehicle is in ``safe_mode``/``estop``: the root cause with its event code.

    Parameters
    ----------
    vehicle : Vehicle
        The vehicle in (or after) a safe state.

    Returns
    -------
    str
        ``"<cause> (event <code>)"`` from :func:`safe_cause`, e.g.
        ``"E-stop pressed (event 901)"``.
    """
    text, code = safe_cause(vehicle)
    return f"{text} (event {code})"


def safe_result(vehicle: Vehicle) -> str:
    """Return the run's result in a safe state: ``"<state>: <cause> (event <code>)"``."""
    return f"{vehicle.state}: {safe_reason(vehicle)}"
