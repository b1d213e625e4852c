"""Real-time knobs of the controller process: SCHED_FIFO, CPU affinity, mlockall, GC freeze.

Applied at the start of a real-time run (``controller.realtime`` in the rig,
:class:`controller.config.RealtimeKnobsCfg`) and by the test suite's real-time step
(``tests/conftest.py``, ``--rt-knobs``). Never fatal: every knob the OS refuses is reported
with its reason and the run goes on. :meth:`RealtimeKnobsReport.restore` undoes what was
applied, so an in-process run (a test) does not leave the interpreter SCHED_FIFO.

Scope: the scheduler and the affinity are set on the *calling thread* (``pid`` 0 of
sched_setscheduler(2) and sched_setaffinity(2) is the calling thread on Linux). Threads
created afterwards inherit both (pthread_create(3): ``PTHREAD_INHERIT_SCHED`` is the
default), so apply the knobs before the rig starts its bus, worker and emulator threads.
``mlockall`` and the GC freeze are process-wide.

Sources: man 2 sched_setscheduler, man 7 sched, man 2 sched_setaffinity, man 2 mlockall,
and the Python ``gc.freeze`` documentation. See docs/realtime.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config import RealtimeKnobsCfg

log = logging.getLogger(__name__)

KNOBS = ("sched_fifo_priority", "cpu_affinity", "mlockall", "gc_freeze")

# mlockall(2) flags: asm-generic values; alpha, powerpc and sparc use their own.
_MCL_OWN = {"alpha": (0x2000, 0x4000), "ppc": (0x2000, 0x4000), "powerpc": (0x2000, 0x4000),
            "sparc": (0x2000, 0x4000)}


def _mcl_flags() -> int:
    machine = platform.machine().lower()
    for prefix, (current, future) in _MCL_OWN.items():
        if machine.startswith(prefix):
            return current | future
    return 1 | 2  # MCL_CURRENT | MCL_FUTURE


def errno_text(code: int | None) -> str:
    """Return ``"EPERM: Operation not permitted"`` for an errno value.

    Parameters
    ----------
    code : int or None
        An errno value (``OSError.errno``).

    Returns
    -------
    str
        The symbolic name and the C library's message; ``"unknown error"`` for None.
    """
    if code is None:
        return "unknown error"
    return f"{errno.errorcode.get(code, f'errno {code}')}: {os.strerror(code)}"


def _cpu_ranges(cpus: set[int] | list[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2,5"``, the kernel's cpulist format."""
    out: list[str] = []
    ids = sorted(cpus)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out) or "none"


def _parse_cpulist(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def online_cpus() -> set[int]:
    """Return the ids of the CPUs online on this machine.

    Returns
    -------
    set of int
        From ``/sys/devices/system/cpu/online``; else ``range(os.cpu_count())``.
    """
    try:
        return _parse_cpulist(Path("/sys/devices/system/cpu/online").read_text())
    except (OSError, ValueError):
        return set(range(os.cpu_count() or 1))


def _locked_kib() -> int | None:
    """``VmLck`` of this process in KiB (proc(5)), None where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_POLICY_NAMES = {
    getattr(os, name): name
    for name in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
    if hasattr(os, name)
}


def current_state() -> dict[str, Any]:
    """Describe the calling thread's scheduling and the process's memory and GC state.

    Returns
    -------
    dict
        ``policy`` (name, e.g. ``"SCHED_FIFO"``), ``priority`` (int), ``cpus`` (list of
        int), ``locked_kib`` (``VmLck``, KiB) and ``gc_frozen_objects`` (int); a value is
        None where the platform cannot tell.
    """
    policy = priority = cpus = None
    if hasattr(os, "sched_getscheduler"):
        try:
            raw = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
            policy = _POLICY_NAMES.get(raw, str(raw))
            priority = os.sched_getparam(0).sched_priority
        except OSError:
            pass
    if hasattr(os, "sched_getaffinity"):
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except OSError:
            pass
    frozen = gc.get_freeze_count() if hasattr(gc, "get_freeze_count") else None
    return {"policy": policy, "priority": priority, "cpus": cpus, "locked_kib": _locked_kib(),
            "gc_frozen_objects": frozen}


@dataclass
class KnobOutcome:
    """What became of one knob.

    Attributes
    ----------
    asked : object
        The value the rig asked for (priority, CPU list, True), or None when not asked.
    applied : bool
        The OS accepted it.
    refused : str or None
        Why not, one line (``"EPERM: Operation not permitted"``); None when applied or
        not asked.
    """

    asked: Any = None
    applied: bool = False
    refused: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"asked": ..., "applied": bool, "refused": str | None}``."""
        asked = list(self.asked) if isinstance(self.asked, (list, tuple, set)) else self.asked
        return {"asked": asked, "applied": self.applied, "refused": self.refused}


@dataclass
class RealtimeKnobsReport:
    """The outcome of :func:`apply_realtime_knobs`, and the means to undo it.

    Attributes
    ----------
    knobs : dict of str to KnobOutcome
        One entry per knob of :data:`KNOBS`, in that order.
    skipped : str or None
        Why nothing was tried (e.g. a lockstep run); None when the knobs were applied.
    effective : dict
        :func:`current_state` right after applying.
    """

    knobs: dict[str, KnobOutcome] = field(default_factory=lambda: {k: KnobOutcome() for k in KNOBS})
    skipped: str | None = None
    effective: dict[str, Any] = field(default_factory=dict)
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list, repr=False)

    @property
    def refused(self) -> dict[str, str]:
        """Knobs asked for and refused, with their reasons."""
        return {k: o.refused for k, o in self.knobs.items() if o.refused is not None}

    def as_dict(self) -> dict[str, Any]:
        """Return the ``realtime_knobs`` block of ``summary.json`` (plain JSON types).

        Returns
        -------
        dict
            ``{"skipped": str | None, "all_applied": bool, "sched_fifo_priority":
            {"asked", "applied", "refused"}, "cpu_affinity": {...}, "mlockall": {...},
            "gc_freeze": {...}, "effective": {...}}``. ``all_applied`` is True when every
            knob asked for was applied (also when none was asked).
        """
        out: dict[str, Any] = {"skipped": self.skipped, "all_applied": not self.refused}
        out.update({k: o.as_dict() for k, o in self.knobs.items()})
        out["effective"] = dict(self.effective)
        return out

    def restore(self) -> dict[str, str]:
        """Undo every applied knob, newest first; calling it again does nothing.

        The scheduler and affinity go back to what the calling thread had before (call it
        from the thread that applied them), the memory is unlocked (``munlockall``) only if
        it was not locked before, and ``gc.unfreeze()`` puts the frozen objects back into
        the oldest generation, only if nothing was frozen before.

        Returns
        -------
        dict of str to str
            Knobs whose undo failed, with the reason; empty when all were undone. Never
            raises.
        """
        failed: dict[str, str] = {}
        while self._undo:
            name, undo = self._undo.pop()
            try:
                undo()
            except OSError as exc:
                failed[name] = errno_text(exc.errno)
                log.warning("real-time knob %s: restore failed: %s", name, failed[name])
        return failed


def skipped_report(cfg: RealtimeKnobsCfg, reason: str) -> RealtimeKnobsReport:
    """Return a report for a run that does not apply the knobs (e.g. a lockstep run).

    Parameters
    ----------
    cfg : RealtimeKnobsCfg
        What the rig asked for; shown as ``asked``, none applied.
    reason : str
        Why nothing was tried, e.g. ``"lockstep run"``.

    Returns
    -------
    RealtimeKnobsReport
        With ``skipped`` set; ``all_applied`` is True as nothing was refused.
    """
    rep = RealtimeKnobsReport(skipped=reason)
    for name, asked in _asked(cfg).items():
        rep.knobs[name].asked = asked
    rep.effective = current_state()
    return rep


def _asked(cfg: RealtimeKnobsCfg) -> dict[str, Any]:
    return {
        "sched_fifo_priority": cfg.sched_fifo_priority,
        "cpu_affinity": list(cfg.cpu_affinity) if cfg.cpu_affinity is not None else None,
        "mlockall": True if cfg.mlockall else None,
        "gc_freeze": True if cfg.gc_freeze else None,
    }


def _apply_gc_freeze(rep: RealtimeKnobsReport) -> None:
    if not hasattr(gc, "freeze"):
        rep.knobs["gc_freeze"].refused = f"gc.freeze needs Python 3.7+ (have {platform.python_version()})"
        return
    was_frozen = gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    rep.knobs["gc_freeze"].applied = True
    if not was_frozen:  # gc.unfreeze() would also thaw what someone else froze
        rep._undo.append(("gc_freeze", gc.unfreeze))


def _apply_mlockall(rep: RealtimeKnobsReport, libc_loader: Callable[[], Any]) -> None:
    o = rep.knobs["mlockall"]
    if not sys.platform.startswith("linux"):
        o.refused = f"mlockall is not supported on {sys.platform}"
        return
    try:
        libc = libc_loader()
    except OSError as exc:
        o.refused = f"C library not loadable: {exc}"
        return
    was_locked = (_locked_kib() or 0) > 0
    ctypes.set_errno(0)
    if libc.mlockall(_mcl_flags()) != 0:
        code = ctypes.get_errno()
        hint = " (RLIMIT_MEMLOCK too low or no CAP_IPC_LOCK)" if code in (errno.ENOMEM, errno.EPERM) else ""
        o.refused = errno_text(code) + hint
        return
    o.applied = True

    def undo() -> None:
        if not was_locked and libc.munlockall() != 0:
            raise OSError(ctypes.get_errno(), "munlockall")

    rep._undo.append(("mlockall", undo))


def _apply_affinity(rep: RealtimeKnobsReport, cpus: list[int]) -> None:
    o = rep.knobs["cpu_affinity"]
    if not hasattr(os, "sched_setaffinity"):
        o.refused = f"CPU affinity is not supported on {sys.platform}"
        return
    have = online_cpus()
    missing = sorted(set(cpus) - have)
    if missing:
        which = ", ".join(str(c) for c in missing)
        o.refused = f"CPU {which} not present (have {_cpu_ranges(have)})"
        return
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        hint = " (outside this process's cpuset?)" if exc.errno == errno.EINVAL else ""
        o.refused = errno_text(exc.errno) + hint
        return
    o.applied = True
    rep._undo.append(("cpu_affinity", lambda: os.sched_setaffinity(0, before)))


def _apply_fifo(rep: RealtimeKnobsReport, priority: int) -> None:
    o = rep.knobs["sched_fifo_priority"]
    if not hasattr(os, "sched_setscheduler"):
        o.refused = f"SCHED_FIFO is not supported on {sys.platform}"
        return
    lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not lo <= priority <= hi:
        o.refused = f"priority {priority} outside SCHED_FIFO's {lo}..{hi}"
        return
    try:
        policy = os.sched_getscheduler(0)
        param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        hint = " (needs CAP_SYS_NICE or RLIMIT_RTPRIO, and RT time in this cgroup)" if exc.errno == errno.EPERM else ""
        o.refused = errno_text(exc.errno) + hint
        return
    o.applied = True
    rep._undo.append(("sched_fifo_priority", lambda: os.sched_setscheduler(0, policy, param)))


def _load_libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def apply_realtime_knobs(cfg: RealtimeKnobsCfg, *,
                         libc_loader: Callable[[], Any] = _load_libc) -> RealtimeKnobsReport:
    """Apply the knobs the rig asks for to the calling thread / process; never raise.

    Order: GC (``gc.collect()`` then ``gc.freeze()``), ``mlockall(MCL_CURRENT |
    MCL_FUTURE)``, CPU affinity, SCHED_FIFO last (the set-up work before it runs at the
    normal policy). Each refused knob is logged as a warning and reported; the others are
    still applied.

    Parameters
    ----------
    cfg : RealtimeKnobsCfg
        The rig's ``controller.realtime`` section.
    libc_loader : callable, optional
        Returns the C library (a ``ctypes.CDLL`` made with ``use_errno=True``); for tests.

    Returns
    -------
    RealtimeKnobsReport
        ``as_dict()`` is the ``summary.json`` block; ``restore()`` undoes what was applied
        (call it from the same thread, at the end of the run).

    Notes
    -----
    SCHED_FIFO (sched(7)) runs until the thread blocks or yields: a busy loop at a high
    priority can starve the machine's other work on that CPU (the kernel's RT throttling,
    ``/proc/sys/kernel/sched_rt_runtime_us``, leaves 5 % by default). The control loop
    sleeps between ticks; moderate priorities (50) are the recommended start.
    Sources: sched_setscheduler(2), sched_setaffinity(2), mlockall(2).
    """
    rep = RealtimeKnobsReport()
    for name, asked in _asked(cfg).items():
        rep.knobs[name].asked = asked
    if cfg.gc_freeze:
        _apply_gc_freeze(rep)
    if cfg.mlockall:
        _apply_mlockall(rep, libc_loader)
    if cfg.cpu_affinity is not None:
        _apply_affinity(rep, list(cfg.cpu_affinity))
    if cfg.sched_fifo_priority is not None:
        _apply_fifo(rep, cfg.sched_fifo_priority)
    rep.effective = current_state()
    for name, o in rep.knobs.items():
        if o.refused is not None:
            log.warning("real-time knob %s=%s refused: %s", name, o.asked, o.refused)
        elif o.applied:
            log.info("real-time knob %s=%s applied", name, o.asked)
    return rep
