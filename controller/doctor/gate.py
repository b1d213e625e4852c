"""The doctor's part in arming: a component that refuses ``arm`` after a failed doctor.

When a rig sets ``controller.require_doctor: true``, ``qiki run`` runs the doctor before the
build (:func:`controller.doctor.run_doctor`, a 1 s jitter probe) and adds a
:class:`DoctorGate` to the vehicle's components: its :meth:`arming_check` is one more reason
the vehicle's ``arming_checks_pass`` guard gives (SAFETY.md O01), and its summary block
(``summary.json`` -> ``doctor``) is the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from controller.components.seam import ComponentBase, TickView

if TYPE_CHECKING:
    from controller.doctor.runner import DoctorReport


class DoctorGate(ComponentBase):
    """Refuse arming while the doctor's report has a failed check.

    Parameters
    ----------
    report : DoctorReport
        The doctor's verdicts on this rig, taken before the run.
    """

    name = "doctor"

    def __init__(self, report: DoctorReport) -> None:
        self.report = report

    def arming_check(self, view: TickView) -> str | None:
        """Why the vehicle may not arm: the failed checks, by name (per tick, O(failures))."""
        failed = self.report.failures
        if not failed:
            return None
        return "doctor failed: " + "; ".join(f"{v.name}: {v.detail}" for v in failed)

    def summary(self) -> Mapping[str, object]:
        """Return the report (``summary.json`` -> ``doctor``)."""
        return self.report.as_dict()
