"""Power-on self test across the vehicle's components (SAFETY.md D05, D07)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.components.seam import TickView
    from controller.vehicle.manager import Vehicle


def post_step(v: Vehicle, view: TickView) -> list[str]:
    """Run one tick of POST (in ``boot`` only) and return the event it decides, if any.

    Every component's :meth:`~controller.components.seam.Component.post` is asked; None
    from any of them means "still waiting". All passed -> ``post_passed``; otherwise after
    ``post_timeout_s`` in POST -> ``post_failed`` (the report names every device and why).

    Parameters
    ----------
    v : Vehicle
        The vehicle (its components, POST state and record).
    view : TickView
        This tick's view.

    Returns
    -------
    list of str
        ``["post_passed"]``, ``["post_failed"]`` or ``[]``.
    """
    if view.state != "boot" or v.post_started_s is None or v.post_passed:
        return []
    report: dict[str, dict[str, Any]] = {}
    waiting = False
    for c in v.components:
        r = c.post(view)
        if r is None:
            waiting = True
            continue
        report.update({dev: p.as_dict() for dev, p in r.items()})
    v.post_result = report
    if not waiting and all(r["passed"] for r in report.values()):
        v.post_passed = True
        v.record(v.tick_index, v.now_s, "post", passed=True, devices=report)
        return ["post_passed"]
    if view.now_s - v.post_started_s >= v.post_timeout_s:
        v.record(v.tick_index, v.now_s, "post", passed=False, devices=report)
        v.post_started_s = None
        return ["post_failed"]
    return []
