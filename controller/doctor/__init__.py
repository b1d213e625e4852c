"""``qiki doctor``: a preflight check of the machine under a rig, pass/warn/fail with a fix hint.

* :mod:`controller.doctor.host` -- the machine as the checks see it (injectable roots);
* :mod:`controller.doctor.checks`, :mod:`controller.doctor.can` -- one small pure function per check,
  giving a :class:`Verdict` (:mod:`controller.doctor.verdict`);
* :mod:`controller.doctor.probes` -- the live questions (timer jitter, MCU HELLO, Modbus);
* :mod:`controller.doctor.runner` -- the checks a rig needs, in one :class:`DoctorReport`;
* :mod:`controller.doctor.gate` -- the component that refuses arming after a failed doctor.

Rules, sources and fix hints: docs/doctor.md.
"""

from __future__ import annotations

from controller.doctor.checks import JitterResult, Verdict
from controller.doctor.host import Host, host_from_tree, live_host
from controller.doctor.runner import DEFAULT_PROBE_S, RUN_PROBE_S, DoctorReport, run_doctor

__all__ = ["DEFAULT_PROBE_S", "RUN_PROBE_S", "DoctorReport", "Host", "JitterResult", "Verdict", "host_from_tree",
           "live_host", "run_doctor"]
