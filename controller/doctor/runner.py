"""Compose the checks a rig needs into one :class:`DoctorReport`.

What a rig needs follows from its file: every CAN bus (SocketCAN checks, or the serial
device of an slcan adapter), every serial and Modbus RTU device node, the MCU's HELLO and
every Modbus device's answer, the real-time knobs it asks for (priority, memlock, isolated
CPUs), and always the kernel, governor, throttling, timer jitter at its rate, free disk and
clock sync.

An emulated rig (one with an ``emulation`` block: ``rigs/virtual.yaml``) has no hardware to
check: its bus, device and answer checks are ``skip`` with the reason, and the host checks
are advisory (a ``fail`` is reported as ``warn``), since nothing real is commanded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from controller.doctor import checks as C
from controller.doctor.checks import JitterResult, Verdict
from controller.doctor.host import Host, live_host

if TYPE_CHECKING:
    from controller.config import RealtimeKnobsCfg, RigCfg

log = logging.getLogger(__name__)

#: Default length of the timer-jitter probe of ``qiki doctor`` (s).
DEFAULT_PROBE_S = 10.0
#: Length of the probe when ``qiki run`` runs the doctor (``controller.require_doctor``) (s).
RUN_PROBE_S = 1.0

#: ``(rate_hz, probe_s, knobs) -> JitterResult``: the probe (injectable for tests).
JitterProbe = Callable[[float, float, "RealtimeKnobsCfg | None"], JitterResult]


@dataclass
class DoctorReport:
    """The doctor's verdicts on one rig.

    Attributes
    ----------
    rig : str
        The rig's ``name``.
    rig_path : str
        The rig file as given.
    verdicts : list of Verdict
        In table order.
    emulated : bool
        The rig has an ``emulation`` block (hardware checks skipped, host checks advisory).
    """

    rig: str
    rig_path: str
    verdicts: list[Verdict] = field(default_factory=list)
    emulated: bool = False

    @property
    def status(self) -> C.Status:
        """The worst verdict (``skip`` when there is none)."""
        return C.worst(self.verdicts)

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings and skips pass)."""
        return self.status != "fail"

    @property
    def failures(self) -> list[Verdict]:
        """The failed checks."""
        return [v for v in self.verdicts if v.status == "fail"]

    def by_name(self, name: str) -> Verdict:
        """Return the verdict called ``name``.

        Raises
        ------
        KeyError
            No such check in the report.
        """
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(name)

    def as_dict(self) -> dict[str, object]:
        """Return ``{"rig", "rig_path", "emulated", "status", "passed", "checks": [...]}`` (``--json``, summary)."""
        return {"rig": self.rig, "rig_path": self.rig_path, "emulated": self.emulated, "status": self.status,
                "passed": self.passed, "checks": [v.as_dict() for v in self.verdicts]}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], rig_path: str = "") -> DoctorReport:
        """Rebuild a report from the flight record's ``doctor`` metadata (a replay's gate).

        The hints are not recorded: they come back empty.
        """
        verdicts = []
        for name, text in meta.items():
            if name in ("status", "rig"):
                continue
            status, _, detail = text.partition(": ")
            if status in ("pass", "warn", "fail", "skip"):
                verdicts.append(Verdict(name, status, detail))  # type: ignore[arg-type]  # checked above
        return cls(meta.get("rig", ""), rig_path, verdicts)

    def metadata(self) -> dict[str, str]:
        """Return the flight record's ``doctor`` metadata: status, then ``name -> "status: detail"``."""
        out = {"status": self.status, "rig": self.rig}
        for v in self.verdicts:
            out[v.name] = f"{v.status}: {v.detail}"
        return out


def _dbc_bitrates(dbcs: list[str], rig_path: Path) -> dict[str, int]:
    from controller.paths import resolve_data_path

    out: dict[str, int] = {}
    for name in dbcs:
        try:
            bps = C.dbc_bitrate_bps(resolve_data_path(name, rig_path).read_text(errors="replace"))
        except OSError:
            continue  # a missing DBC is `qiki rig check`'s to report
        if bps is not None:
            out[name] = bps
    return out


def _device_path(url: str) -> str | None:
    """Return the device node of a serial url or ``rtu://`` Modbus url (None: not a device node)."""
    if url.startswith("/"):
        return url.split("@", 1)[0]
    parts = urlsplit(url)
    if parts.scheme == "rtu" and parts.path.startswith("/"):
        return parts.path
    return None


def bus_checks(rig: RigCfg, rig_path: Path, host: Host) -> tuple[list[Verdict], dict[str, bool]]:
    """Check every bus of a real rig; tell per bus whether its device node is usable.

    Returns
    -------
    (verdicts, usable)
        ``usable[bus]`` is False when the bus's device node or interface failed (its
        devices are then not asked).
    """
    links = C.parse_ip_links(host.ip_link_json())
    out: list[Verdict] = []
    usable: dict[str, bool] = {}
    for name, bus in rig.buses.items():
        if bus.kind == "can":
            if bus.interface == "socketcan":
                vs = C.can_checks(name, bus.channel, host, links, bus.bitrate_bps, _dbc_bitrates(bus.dbc, rig_path))
            elif _device_path(bus.channel):
                vs = [C.check_serial_device(f"{name}: {bus.interface} adapter", _device_path(bus.channel) or "",
                                            host)]
            else:
                vs = [Verdict(f"{name}: bus", "skip", f"python-can interface {bus.interface!r}: the doctor reads "
                              "SocketCAN links and serial adapters only; python-can opens it at run")]
        else:
            path = _device_path(bus.url)
            if path is None:
                vs = [Verdict(f"{name}: bus", "skip", f"{bus.url}: not a device node (asked in the answer check)")]
            else:
                vs = [C.check_serial_device(name, path, host)]
        usable[name] = all(v.status != "fail" for v in vs)
        out += vs
    return out, usable


def answer_checks(rig: RigCfg, rig_path: Path, host: Host, usable: dict[str, bool]) -> list[Verdict]:
    """Check that the MCU answers HELLO and every Modbus device answers (live, or from a host tree)."""
    from controller.config import BmsDeviceCfg, McuDeviceCfg, PduDeviceCfg
    from controller.doctor import probes

    out: list[Verdict] = []
    for name, dev in rig.devices.items():
        if isinstance(dev, McuDeviceCfg):
            what, hint = "hello", "check the MCU's power, the UART wiring (TX/RX crossed) and the baud rate"
        elif isinstance(dev, (BmsDeviceCfg, PduDeviceCfg)):
            what, hint = "answer", "check the RS-485 wiring (A/B), termination, unit id and baud rate"
        else:
            continue
        ok: bool | None
        if not usable.get(dev.bus, True):
            ok, detail = None, f"bus {dev.bus} unusable (see above)"
        elif not host.live:
            rec = host.probes.get(name)
            if rec is None:
                ok, detail = None, "no answer recorded in the host tree"
            else:
                ok, detail = "error" not in rec, str(rec.get("error") or rec.get("detail") or "answered")
        else:
            bus = rig.buses[dev.bus]
            if isinstance(dev, McuDeviceCfg) and bus.kind == "serial":
                ok, detail = probes.mcu_hello(bus, dev, name)
            elif isinstance(dev, (BmsDeviceCfg, PduDeviceCfg)) and bus.kind == "modbus":
                ok, detail = probes.modbus_answer(bus, dev.bus, rig_path, dev.profile, dev.unit_id)
            else:
                ok, detail = None, f"bus {dev.bus} is a {bus.kind} bus"
        out.append(C.check_answer(name, what, ok, detail, hint))
    return out


def host_checks(rig: RigCfg, host: Host, runs_dir: str, jitter: JitterResult | None) -> list[Verdict]:
    """Kernel, real-time limits, CPUs, timer jitter, disk and clock: the machine under the rig."""
    rt = rig.controller.realtime
    return [
        C.check_rt_kernel(host),
        C.check_rt_priority(host, rt.sched_fifo_priority),
        C.check_memlock(host, rt.mlockall),
        C.check_governor(host, rt.cpu_affinity),
        C.check_throttling(host),
        C.check_isolated(host, rt.cpu_affinity),
        C.check_jitter(jitter, rig.controller.safety.max_overruns_per_s),
        C.check_disk(host, runs_dir),
        C.check_clock_sync(host),
    ]


def _advisory(v: Verdict) -> Verdict:
    if v.status != "fail":
        return v
    return replace(v, status="warn", detail=f"{v.detail} (advisory on an emulated rig)")


def run_doctor(rig_path: str, *, host: Host | None = None, probe_s: float = DEFAULT_PROBE_S,
               runs_dir: str = "runs", apply_knobs: bool = True,
               jitter_probe: JitterProbe | None = None) -> DoctorReport:
    """Run every check the rig needs.

    Parameters
    ----------
    rig_path : str
        Rig YAML (looked up like ``qiki run --rig``).
    host : Host, optional
        The machine's view; default :func:`~controller.doctor.host.live_host`.
    probe_s : float, optional
        Length of the timer-jitter probe (s); 0 skips it.
    runs_dir : str, optional
        Where run folders go (the free-disk check).
    apply_knobs : bool, optional
        Apply the rig's real-time knobs during the probe (restored after).
    jitter_probe : callable, optional
        Replaces :func:`controller.doctor.probes.jitter_probe` (tests).

    Returns
    -------
    DoctorReport

    Raises
    ------
    ConfigError
        The rig file is refused (as ``qiki rig check``); a non-finite or negative ``probe_s``.
    """
    import math

    from controller.config import load_rig
    from controller.errors import ConfigError

    if not (isinstance(probe_s, (int, float)) and math.isfinite(probe_s) and 0 <= probe_s <= 600):
        raise ConfigError("qiki doctor", "--probe-s", f"must be a number of seconds in 0..600 (got {probe_s!r})")
    rig, path = load_rig(rig_path)
    host = host if host is not None else live_host()
    report = DoctorReport(rig=rig.name, rig_path=str(rig_path), emulated=rig.emulation is not None)
    if report.emulated:
        for name, bus in rig.buses.items():
            where = getattr(bus, "channel", None) or getattr(bus, "url", "")
            report.verdicts.append(Verdict(f"{name}: bus", "skip", f"emulated ({bus.kind} {where})"))
        for name in rig.devices:
            report.verdicts.append(Verdict(f"{name}: device", "skip", "emulated (checked by POST at run)"))
    else:
        vs, usable = bus_checks(rig, path, host)
        report.verdicts += vs
        report.verdicts += answer_checks(rig, path, host, usable)
    jitter = None
    if probe_s > 0:
        from controller.doctor.probes import jitter_probe as real_probe

        probe = jitter_probe or real_probe
        jitter = probe(rig.controller.rate_hz, probe_s, rig.controller.realtime if apply_knobs else None)
    hv = host_checks(rig, host, runs_dir, jitter)
    report.verdicts += [_advisory(v) for v in hv] if report.emulated else hv
    for v in report.verdicts:
        log.info("doctor: %s: %s: %s", v.name, v.status, v.detail)
    return report
