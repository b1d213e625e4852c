"""The vehicle's own guards and actions, bound to the registry's names (load-time checked).

Guards answer ``(ok, reason)``; the arming check is the vehicle's own conditions (POST,
active faults, CAN error-passive) and the union of its components' checks, each with its
reason (SAFETY.md O01). Actions here are the vehicle's part; components add theirs
through :meth:`~controller.components.seam.Component.action_handlers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.vehicle.bindings import action, guard

if TYPE_CHECKING:
    from controller.components.seam import TickView
    from controller.vehicle.manager import Vehicle


# ---------------------------------------------------------------------- guards
@guard("arming_checks_pass")
def _arming_checks_pass(v: Vehicle, view: TickView) -> tuple[bool, str]:
    if not v.post_passed:
        return False, "POST has not passed"
    if v.faults.active:
        return False, "active fault: " + "; ".join(sorted(v.faults.active.values()))
    why = v.mcu.arming_check(view)
    if why is not None:
        return False, why
    for name, port in v.can_ports.items():
        if port.error_passive:
            return False, f"CAN bus {name} is error-passive"
    for c in v.components:
        if c is not v.mcu:
            why = c.arming_check(view)
            if why is not None:
                return False, why
    return True, ""


@guard("faults_cleared")
def _faults_cleared(v: Vehicle, view: TickView) -> tuple[bool, str]:
    if v.faults.active:
        return False, "fault still active: " + "; ".join(sorted(v.faults.active.values()))
    return True, ""


@guard("estop_released")
def _estop_released(v: Vehicle, view: TickView) -> tuple[bool, str]:
    if not v.mcu.estop_released(view.now_s):
        return False, "E-stop is still pressed (or no fresh MCU status says released)"
    return True, ""


# ---------------------------------------------------------------------- actions (the vehicle's part)
@action("run_post")
def _run_post(v: Vehicle, view: TickView) -> None:
    v.post_started_s, v.post_passed, v.post_result = view.now_s, False, {}


@action("latch_fault")
def _latch_fault(v: Vehicle, view: TickView) -> None:
    for reason in v.faults.active.values():
        if reason not in v.faults.latched:
            v.faults.latched.append(reason)


@action("clear_faults")
def _clear_faults(v: Vehicle, view: TickView) -> None:
    v.faults.latched.clear()


@action("start_mission_clock")
def _start_mission_clock(v: Vehicle, view: TickView) -> None:
    if v.control.mission is not None:
        v.control.mission.start(view.now_s)
