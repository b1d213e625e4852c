"""Suite-wide pytest set-up: the ``--rt-knobs`` option of the real-time step.

``make test`` runs the tests marked ``realtime`` (ARCHITECTURE.md 8) in a serial step of
their own, ``pytest -m realtime --rt-knobs``: once collection is done, the pytest process
gets the same knobs a rig can ask for (controller/rt_knobs.py): SCHED_FIFO at
``--rt-fifo-priority`` (default 50), a GC freeze, and ``mlockall`` with ``--rt-mlockall``.
The emulator, bus and worker threads the tests start inherit the scheduler. A refused knob
is shown in the report header and the tests still run; the knobs are undone at the end.
"""

from __future__ import annotations

import logging

import pytest

log = logging.getLogger(__name__)

_REPORT_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qiki real time")
    group.addoption("--rt-knobs", action="store_true", default=False,
                    help="apply real-time knobs (SCHED_FIFO, GC freeze) to the test process after collection")
    group.addoption("--rt-fifo-priority", type=int, default=50, metavar="P",
                    help="SCHED_FIFO priority with --rt-knobs, 1..99 (default 50)")
    group.addoption("--rt-mlockall", action="store_true", default=False,
                    help="also mlockall(MCL_CURRENT|MCL_FUTURE) with --rt-knobs")


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if not config.getoption("--rt-knobs"):
        return
    from controller.config import RealtimeKnobsCfg
    from controller.rt_knobs import apply_realtime_knobs

    cfg = RealtimeKnobsCfg(sched_fifo_priority=config.getoption("--rt-fifo-priority"), gc_freeze=True,
                           mlockall=bool(config.getoption("--rt-mlockall")))
    report = apply_realtime_knobs(cfg)
    config.stash[_REPORT_KEY] = report
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"real-time knobs: {_one_line(report.as_dict())}")


def pytest_unconfigure(config: pytest.Config) -> None:
    report = config.stash.get(_REPORT_KEY, None)
    if report is not None:
        failed = report.restore()
        if failed:
            log.warning("real-time knobs not restored: %s", failed)


def _one_line(d: dict) -> str:
    parts = []
    for name in ("sched_fifo_priority", "mlockall", "gc_freeze"):
        o = d[name]
        if o["asked"] is None:
            continue
        parts.append(f"{name}={o['asked']} " + ("applied" if o["applied"] else f"REFUSED ({o['refused']})"))
    eff = d["effective"]
    parts.append(f"now {eff['policy']} {eff['priority']} on CPUs {eff['cpus']}")
    return "; ".join(parts)
