"""The operator of the main job: a script that sends what a person at the console would.

``arm``, ``start_mission`` and ``disarm`` go through the vehicle's one arbiter (SAFETY.md
O04), as a console's commands will. The script's ``result`` is set once and never
overwritten by a rosier outcome (issue 10 part 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
                self.result = f"{st}: {safe_reason(vehicle)}"
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


def safe_reason(vehicle: Vehicle) -> str:
    """Why the vehicle is in ``safe_mode``/``estop``: the cause, not the first symptom.

    An exception caught by the tick's barrier comes first, then an E-stop press, then
    the first fault, then a POST that never passed.
    """
    st = vehicle.state
    if vehicle.exception_reason is not None:
        return vehicle.exception_reason
    if st == "estop" and vehicle.mcu.driver.estop_pressed:
        return "E-stop pressed"
    if vehicle.first_fault:
        return vehicle.first_fault
    if st == "estop":
        return "E-stop pressed"
    return "POST failed" if not vehicle.post_passed else st
