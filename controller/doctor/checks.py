"""The doctor's checks: one small function per check, over a :class:`~controller.doctor.host.Host` view.

Each returns a :class:`Verdict` (``pass``, ``warn``, ``fail`` or ``skip``) with a one-line
detail and, unless it passed, a fix hint. They read nothing but what they are given, so the
tests run them on prepared trees (``tests/fixtures/doctor/``). Every rule and its source is
in docs/doctor.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.doctor.host import RLIM_INFINITY, Host

Status = Literal["pass", "warn", "fail", "skip"]

#: Order of badness, for the worst of several verdicts.
RANK: dict[str, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}

#: Linux capability bits (linux/capability.h).
CAP_IPC_LOCK = 14
CAP_SYS_NICE = 23

#: ISO 11898-1 fault confinement: error-warning limit and error-passive threshold (counts).
CAN_ERROR_WARNING_N = 96
CAN_ERROR_PASSIVE_N = 128

#: ``txqueuelen`` outside this range is a warning (frames): below, a short burst gets
#: ENOBUFS; above, a stalled bus queues seconds of stale commands (docs/doctor.md).
TXQUEUELEN_RANGE_N = (10, 1000)

#: Free disk for run folders: below the first fail, below the second warn (bytes).
DISK_FAIL_BYTES = 1 * 2**30
DISK_WARN_BYTES = 5 * 2**30

#: Jitter rule: p99 period error above these fractions of the period (fail, warn).
JITTER_FAIL_FRACTION = 0.5
JITTER_WARN_FRACTION = 0.1

#: Where the Raspberry Pi firmware driver exposes the throttling flags (hex bit mask).
RPI_THROTTLED = "devices/platform/soc/soc:firmware/get_throttled"


@dataclass(frozen=True)
class Verdict:
    """One line of the doctor's table.

    Attributes
    ----------
    name : str
        What was checked (``can0: bitrate``, ``rt priority``).
    status : {"pass", "warn", "fail", "skip"}
        ``skip`` says why the check does not apply (in ``detail``).
    detail : str
        What was found, one line.
    hint : str
        How to fix it (empty when it passed).
    """

    name: str
    status: Status
    detail: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the verdict as JSON-ready text fields."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


# ---------------------------------------------------------------------- helpers
def parse_cpulist(text: str | None) -> set[int]:
    """Parse the kernel's cpulist format (``"0-2,5"`` -> ``{0, 1, 2, 5}``; empty/None -> empty).

    Raises
    ------
    ValueError
        Text that is not a cpulist.
    """
    out: set[int] = set()
    for part in (text or "").strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def parse_ip_links(text: str | None) -> dict[str, dict[str, object]] | None:
    """Index the output of ``ip -details -json link show`` by interface name.

    Returns
    -------
    dict or None
        ``{ifname: link object}``; None when the text is missing or not the JSON array
        iproute2 prints.
    """
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    return {str(d["ifname"]): d for d in data if isinstance(d, dict) and "ifname" in d}


def _info(link: Mapping[str, object], key: str) -> dict[str, object]:
    li = link.get("linkinfo")
    if not isinstance(li, dict):
        return {}
    v = li.get(key)
    return v if isinstance(v, dict) else {}


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def link_bitrate_bps(link: Mapping[str, object]) -> int | None:
    """Return the configured nominal bitrate of a CAN link (bit/s), or None when not set.

    ``linkinfo.info_data.bittiming.bitrate``; devices with fixed bitrates report it as
    ``info_data.bittiming_bitrate`` (iproute2 ``ip/iplink_can.c``).
    """
    data = _info(link, "info_data")
    bt = data.get("bittiming")
    if isinstance(bt, dict) and _int(bt.get("bitrate")):
        return _int(bt.get("bitrate"))
    return _int(data.get("bittiming_bitrate")) or None


def dbc_bitrate_bps(text: str) -> int | None:
    """Return the network attribute ``BA_ "Baudrate" N;`` of a DBC (bit/s), or None.

    Vector's CANdb++ convention for the bus speed a database was written for.
    """
    m = re.search(r'^\s*BA_\s+"Baudrate"\s+(\d+)\s*;', text, re.MULTILINE)
    return int(m.group(1)) if m else None


def cap_effective(host: Host) -> int | None:
    """Return the effective capability mask of the doctor's process (``CapEff`` of /proc/self/status)."""
    text = host.read_text(host.proc_root / "self" / "status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return None
    return None


def _has_cap(host: Host, bit: int) -> bool:
    caps = cap_effective(host)
    if caps is None:
        return host.euid == 0
    return bool(caps >> bit & 1)


# ---------------------------------------------------------------------- CAN (SocketCAN)
def check_can_link(bus: str, channel: str, link: Mapping[str, object] | None, host: Host) -> Verdict:
    """Check that the interface exists and is up (``ip`` link flags/operstate, else sysfs ``operstate``)."""
    name = f"{bus}: link {channel}"
    sys_state = host.read_text(host.sys_root / "class" / "net" / channel / "operstate")
    if link is None and sys_state is None:
        return Verdict(name, "fail", f"no network interface {channel}",
                       f"load the CAN driver (Pi: dtoverlay=mcp2515-can0 or mcp251xfd in config.txt; "
                       f"USB: plug the adapter), then `ip link show {channel}`")
    if link is not None:
        flags = link.get("flags")
        flags = flags if isinstance(flags, list) else []
        state = str(link.get("operstate", "?")).upper()
        admin_up = "UP" in flags or state == "UP"
        carrier = state == "UP" or ("LOWER_UP" in flags and "NO-CARRIER" not in flags)
    else:
        state = str(sys_state).upper()
        admin_up = carrier = state == "UP"
    if not admin_up:
        return Verdict(name, "fail", f"{channel} is down (operstate {state})",
                       f"sudo ip link set {channel} up type can bitrate <rig bitrate> restart-ms 100 "
                       "(or enable its systemd-networkd file)")
    if not carrier:
        return Verdict(name, "fail", f"{channel} is up but has no carrier (operstate {state}): bus-off or stopped",
                       "see the controller state below")
    return Verdict(name, "pass", f"{channel} up")


def check_can_bitrate(bus: str, channel: str, link: Mapping[str, object] | None, rig_bps: int,
                      dbc_bps: Mapping[str, int]) -> Verdict:
    """Check that the link's bitrate equals the rig's ``bitrate_bps`` and every DBC's ``Baudrate``."""
    name = f"{bus}: bitrate"
    for dbc, bps in dbc_bps.items():
        if bps != rig_bps:
            return Verdict(name, "fail", f"rig says {rig_bps} bit/s but {dbc} says Baudrate {bps}",
                           f"make buses.{bus}.bitrate_bps and the DBC agree (the DBC describes the network)")
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    got = link_bitrate_bps(link)
    src = f" (as {', '.join(dbc_bps)})" if dbc_bps else " (no DBC states a Baudrate)"
    if got is None:
        return Verdict(name, "fail", f"{channel} has no bitrate set",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can bitrate {rig_bps}; "
                       f"sudo ip link set {channel} up")
    if got != rig_bps:
        return Verdict(name, "fail", f"{channel} runs at {got} bit/s; the rig says {rig_bps}{src}",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can bitrate {rig_bps} "
                       f"restart-ms 100; sudo ip link set {channel} up")
    return Verdict(name, "pass", f"{got} bit/s as the rig says{src}")


def check_can_state(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """Judge the controller state (``info_data.state``): ERROR-ACTIVE passes, ERROR-WARNING warns."""
    name = f"{bus}: controller state"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    state = str(_info(link, "info_data").get("state", "")).upper()
    if state == "ERROR-ACTIVE":
        return Verdict(name, "pass", state)
    if not state:
        return Verdict(name, "warn", f"{channel} reports no CAN state (not a SocketCAN CAN device?)",
                       f"ip -details link show {channel}")
    wiring = "check wiring, 120 ohm termination at both ends and that every node uses the same bitrate"
    if state == "ERROR-WARNING":
        return Verdict(name, "warn", f"{state}: error counters above {CAN_ERROR_WARNING_N}", wiring)
    if state == "BUS-OFF":
        return Verdict(name, "fail", "BUS-OFF: the controller left the bus after too many errors",
                       f"{wiring}; then sudo ip link set {channel} type can restart (or set restart-ms)")
    if state == "ERROR-PASSIVE":
        return Verdict(name, "fail", "ERROR-PASSIVE: the vehicle refuses to arm on an error-passive bus", wiring)
    return Verdict(name, "fail", f"{state}: not on the bus", f"sudo ip link set {channel} up")


def check_can_restart(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """``restart-ms`` > 0: the kernel restarts the controller after a bus-off by itself."""
    name = f"{bus}: restart-ms"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    ms = _int(_info(link, "info_data").get("restart_ms"))
    if not ms:
        return Verdict(name, "warn", "restart-ms 0: after a bus-off the bus stays off until someone restarts it",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can restart-ms 100; "
                       f"sudo ip link set {channel} up (networkd: RestartSec=100ms)")
    return Verdict(name, "pass", f"restart-ms {ms}")


def check_can_errors(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """Error counters (``berr_counter``) below the ISO 11898-1 limits; bus-offs since up (``info_xstats``)."""
    name = f"{bus}: error counters"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    bc = _info(link, "info_data").get("berr_counter")
    tx = _int(bc.get("tx")) if isinstance(bc, dict) else None
    rx = _int(bc.get("rx")) if isinstance(bc, dict) else None
    xs = _info(link, "info_xstats")
    bus_off, restarts = _int(xs.get("bus_off")), _int(xs.get("restarts"))
    parts = [f"tx {tx} rx {rx}" if tx is not None else "counters not reported"]
    if bus_off is not None:
        parts.append(f"{bus_off} bus-off, {restarts or 0} restarts since up")
    detail = "; ".join(parts)
    worst = max(tx or 0, rx or 0)
    hint = "check wiring, termination and bitrate of every node; the counters fall with error-free traffic"
    if worst >= CAN_ERROR_PASSIVE_N:
        return Verdict(name, "fail", f"{detail} (>= {CAN_ERROR_PASSIVE_N}: error-passive)", hint)
    if worst >= CAN_ERROR_WARNING_N:
        return Verdict(name, "warn", f"{detail} (>= {CAN_ERROR_WARNING_N}: error-warning)", hint)
    if bus_off:
        return Verdict(name, "warn", detail, f"{hint}; find out why it went bus-off (dmesg)")
    return Verdict(name, "pass", detail)


def check_can_txqueuelen(bus: str, channel: str, link: Mapping[str, object] | None, host: Host) -> Verdict:
    """``txqueuelen`` within :data:`TXQUEUELEN_RANGE_N` (``ip`` ``txqlen``, else sysfs ``tx_queue_len``)."""
    name = f"{bus}: txqueuelen"
    n = _int(link.get("txqlen")) if link is not None else None
    if n is None:
        n = _int(host.read_text(host.sys_root / "class" / "net" / channel / "tx_queue_len"))
    if n is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    lo, hi = TXQUEUELEN_RANGE_N
    fix = f"sudo ip link set {channel} txqueuelen 100"
    if n < lo:
        return Verdict(name, "warn", f"txqueuelen {n} < {lo}: a short burst gets ENOBUFS", fix)
    if n > hi:
        return Verdict(name, "warn", f"txqueuelen {n} > {hi}: a stalled bus queues seconds of stale commands", fix)
    return Verdict(name, "pass", f"txqueuelen {n}")


def can_checks(bus: str, channel: str, host: Host, links: Mapping[str, Mapping[str, object]] | None,
               rig_bps: int, dbc_bps: Mapping[str, int]) -> list[Verdict]:
    """Every SocketCAN check of one bus, in table order."""
    link = links.get(channel) if links is not None else None
    return [check_can_link(bus, channel, link, host), check_can_bitrate(bus, channel, link, rig_bps, dbc_bps),
            check_can_state(bus, channel, link), check_can_restart(bus, channel, link),
            check_can_errors(bus, channel, link), check_can_txqueuelen(bus, channel, link, host)]


# ---------------------------------------------------------------------- serial devices
def check_serial_device(label: str, path: str, host: Host) -> Verdict:
    """Check that a serial device node exists and that the user may read and write it."""
    name = f"{label}: {path}"
    p = host.dev_path(path)
    if not p.exists():
        return Verdict(name, "fail", f"{path} does not exist",
                       "plug the adapter in; check the udev rule that makes the symlink "
                       "(qiki install writes them) and `ls -l /dev/serial/by-id/`")
    if not host.access(p, os.R_OK | os.W_OK):
        group = host.group_of(p) or "dialout"
        return Verdict(name, "fail", f"{path}: no read/write permission",
                       f"sudo usermod -aG {group} $USER (then log in again), or run as the service user")
    target = ""
    if p.is_symlink():
        target = f" -> {os.readlink(p)}"
    return Verdict(name, "pass", f"{path}{target} present, read/write")


# ---------------------------------------------------------------------- device answers
def check_answer(label: str, what: str, ok: bool | None, detail: str, hint: str) -> Verdict:
    """Judge a device's answer: ``ok`` True answered, False did not, None not asked (``detail``: why)."""
    if ok is None:
        return Verdict(f"{label}: {what}", "skip", detail)
    return Verdict(f"{label}: {what}", "pass" if ok else "fail", detail, "" if ok else hint)


# ---------------------------------------------------------------------- real time
def check_rt_kernel(host: Host) -> Verdict:
    """Check for a PREEMPT_RT kernel (``/sys/kernel/realtime`` is 1, or the version names PREEMPT_RT)."""
    name = "real-time kernel"
    flag = host.read_text(host.sys_root / "kernel" / "realtime")
    version = host.read_text(host.proc_root / "sys" / "kernel" / "version") or ""
    if flag == "1" or "PREEMPT_RT" in version:
        return Verdict(name, "pass", f"PREEMPT_RT ({version or 'sys/kernel/realtime = 1'})")
    return Verdict(name, "warn", f"not PREEMPT_RT ({version or 'version unknown'})",
                   "install a PREEMPT_RT kernel (Raspberry Pi OS: linux-image-rpi-v8-rt / the 6.12 RT build; "
                   "Debian: linux-image-rt-arm64); the jitter probe shows what this one gives")


def check_rt_priority(host: Host, priority: int | None) -> Verdict:
    """SCHED_FIFO at the rig's priority is allowed: CAP_SYS_NICE, or RLIMIT_RTPRIO >= priority."""
    import resource

    name = "rt priority"
    if priority is None:
        return Verdict(name, "skip", "the rig asks no SCHED_FIFO (controller.realtime.sched_fifo_priority)")
    soft, _hard = host.rlimit(resource.RLIMIT_RTPRIO)
    lim = "unlimited" if soft == RLIM_INFINITY else str(soft)
    if _has_cap(host, CAP_SYS_NICE):
        return Verdict(name, "pass", f"SCHED_FIFO {priority} allowed (CAP_SYS_NICE)")
    if soft == RLIM_INFINITY or soft >= priority:
        return Verdict(name, "pass", f"SCHED_FIFO {priority} allowed (RLIMIT_RTPRIO {lim})")
    return Verdict(name, "fail", f"SCHED_FIFO {priority} refused: RLIMIT_RTPRIO {lim}, no CAP_SYS_NICE",
                   f"run as the service (LimitRTPRIO={priority}, qiki install) or add "
                   f"'@qiki - rtprio {priority}' to /etc/security/limits.d/qiki.conf and log in again")


def check_memlock(host: Host, wanted: bool) -> Verdict:
    """``mlockall`` is allowed: CAP_IPC_LOCK, or RLIMIT_MEMLOCK unlimited."""
    import resource

    name = "memlock"
    if not wanted:
        return Verdict(name, "skip", "the rig asks no mlockall (controller.realtime.mlockall)")
    soft, _hard = host.rlimit(resource.RLIMIT_MEMLOCK)
    if _has_cap(host, CAP_IPC_LOCK):
        return Verdict(name, "pass", "mlockall allowed (CAP_IPC_LOCK)")
    if soft == RLIM_INFINITY:
        return Verdict(name, "pass", "mlockall allowed (RLIMIT_MEMLOCK unlimited)")
    return Verdict(name, "fail", f"RLIMIT_MEMLOCK {soft // 1024} KiB: mlockall(MCL_CURRENT|MCL_FUTURE) "
                   "cannot lock the controller's pages",
                   "run as the service (LimitMEMLOCK=infinity, qiki install) or add "
                   "'@qiki - memlock unlimited' to /etc/security/limits.d/qiki.conf")


def _cpus(host: Host) -> list[int]:
    base = host.sys_root / "devices" / "system" / "cpu"
    online = parse_cpulist(host.read_text(base / "online"))
    if online:
        return sorted(online)
    try:
        return sorted(int(p.name[3:]) for p in base.glob("cpu[0-9]*"))
    except OSError:
        return []


def check_governor(host: Host, cpus: Sequence[int] | None) -> Verdict:
    """Every CPU the controller runs on uses the ``performance`` cpufreq governor."""
    name = "cpu governor"
    base = host.sys_root / "devices" / "system" / "cpu"
    ids = list(cpus) if cpus else _cpus(host)
    govs = {c: host.read_text(base / f"cpu{c}" / "cpufreq" / "scaling_governor") for c in ids}
    known = {c: g for c, g in govs.items() if g}
    if not known:
        return Verdict(name, "skip", "no cpufreq governor (fixed frequency, VM or container)")
    slow = {c: g for c, g in known.items() if g != "performance"}
    if slow:
        listed = ", ".join(f"cpu{c} {g}" for c, g in sorted(slow.items()))
        return Verdict(name, "warn", listed,
                       "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor "
                       "(Pi: cpufreq.default_governor=performance on the kernel command line)")
    return Verdict(name, "pass", f"performance on cpu {','.join(map(str, sorted(known)))}")


def check_throttling(host: Host) -> Verdict:
    """No throttling: the Pi firmware's ``get_throttled`` bits, or x86 ``thermal_throttle`` counts."""
    name = "cpu throttling"
    fix = "cool the board (heatsink, fan), use the 5 V 5 A supply, check the cable"
    raw = host.read_text(host.sys_root / RPI_THROTTLED)
    if raw:
        try:
            bits = int(raw, 16)
        except ValueError:
            bits = -1
        if bits < 0:
            return Verdict(name, "warn", f"get_throttled unreadable: {raw!r}", "vcgencmd get_throttled")
        words = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}
        now = [w for b, w in words.items() if bits >> b & 1]
        since = [w for b, w in words.items() if bits >> (b + 16) & 1]
        if now:
            return Verdict(name, "fail", f"now: {', '.join(now)} (get_throttled 0x{bits:x})", fix)
        if since:
            return Verdict(name, "warn", f"since boot: {', '.join(since)} (get_throttled 0x{bits:x})", fix)
        return Verdict(name, "pass", "get_throttled 0x0")
    counts: list[int] = []
    for c in _cpus(host):
        n = host.read_text(host.sys_root / "devices" / "system" / "cpu" / f"cpu{c}" / "thermal_throttle"
                           / "core_throttle_count")
        if n is not None and n.isdigit():
            counts.append(int(n))
    if counts:
        total = sum(counts)
        if total:
            return Verdict(name, "warn", f"{total} thermal throttling events since boot", fix)
        return Verdict(name, "pass", "no thermal throttling since boot")
    return Verdict(name, "skip", "no throttling indicator on this machine (get_throttled, thermal_throttle)")


def check_isolated(host: Host, cpus: Sequence[int] | None) -> Verdict:
    """Check that the rig's ``cpu_affinity`` CPUs exist and are isolated (sysfs ``cpu/isolated``)."""
    name = "isolated cpus"
    if not cpus:
        return Verdict(name, "skip", "the rig pins no CPU (controller.realtime.cpu_affinity)")
    base = host.sys_root / "devices" / "system" / "cpu"
    online = set(_cpus(host))
    want = set(cpus)
    if online and not want <= online:
        return Verdict(name, "fail", f"cpu {sorted(want - online)} not online (online: {sorted(online)})",
                       "fix controller.realtime.cpu_affinity in the rig")
    try:
        isolated = parse_cpulist(host.read_text(base / "isolated"))
    except ValueError:
        isolated = set()
    lst = ",".join(map(str, sorted(want)))
    if not want <= isolated:
        return Verdict(name, "warn", f"cpu {lst} not isolated (isolated: {sorted(isolated) or 'none'})",
                       f"add isolcpus={lst} nohz_full={lst} rcu_nocbs={lst} to the kernel command line "
                       "(Pi: /boot/firmware/cmdline.txt)")
    return Verdict(name, "pass", f"cpu {lst} isolated")


@dataclass(frozen=True)
class JitterResult:
    """What the timer-jitter probe measured (:func:`controller.doctor.probes.jitter_probe`).

    Attributes
    ----------
    rate_hz : float
        Loop rate (Hz).
    probe_s : float
        Length of the probe (s).
    ticks : int
        Ticks run.
    p50_us, p99_us, max_us : float
        Period error (tick start minus deadline) percentiles (us).
    overruns : int
        Ticks that ended after the next deadline.
    knobs : str
        The real-time knobs in force during the probe (one line).
    """

    rate_hz: float
    probe_s: float
    ticks: int
    p50_us: float
    p99_us: float
    max_us: float
    overruns: int
    knobs: str = ""


def check_jitter(result: JitterResult | None, max_overruns_per_s: int) -> Verdict:
    """p99 period error of the project's loop against the rig's period (docs/doctor.md).

    Fail above :data:`JITTER_FAIL_FRACTION` of the period or with more overruns than the
    lag monitor allows in one second (``controller.safety.max_overruns_per_s``, SAFETY.md
    T02); warn above :data:`JITTER_WARN_FRACTION`.
    """
    name = "timer jitter"
    if result is None:
        return Verdict(name, "skip", "not probed")
    period_us = 1e6 / result.rate_hz
    frac = result.p99_us / period_us
    detail = (f"p99 {result.p99_us:.0f} us, max {result.max_us:.0f} us of a {period_us:.0f} us period "
              f"({result.ticks} ticks in {result.probe_s:g} s at {result.rate_hz:g} Hz, {result.overruns} overruns"
              + (f"; {result.knobs}" if result.knobs else "") + ")")
    hint = ("use a PREEMPT_RT kernel, SCHED_FIFO (LimitRTPRIO), an isolated CPU and the performance governor; "
            "or lower controller.rate_hz")
    per_s = result.overruns / result.probe_s if result.probe_s > 0 else 0.0
    if frac > JITTER_FAIL_FRACTION or per_s > max_overruns_per_s:
        return Verdict(name, "fail", detail + f" > {JITTER_FAIL_FRACTION:.0%} of the period", hint)
    if frac > JITTER_WARN_FRACTION:
        return Verdict(name, "warn", detail + f" > {JITTER_WARN_FRACTION:.0%} of the period", hint)
    return Verdict(name, "pass", detail)


# ---------------------------------------------------------------------- disk and clock
def check_disk(host: Host, runs_dir: str) -> Verdict:
    """Free space for run folders: fail below 1 GiB, warn below 5 GiB."""
    name = "free disk"
    try:
        free = host.disk_free_bytes(Path(runs_dir))
    except OSError as exc:
        return Verdict(name, "warn", f"{runs_dir}: cannot tell ({exc.strerror or exc})", "df -h")
    gib = free / 2**30
    hint = f"delete or archive old run folders under {runs_dir} (qiki runs list), or use a larger --runs-dir"
    if free < DISK_FAIL_BYTES:
        return Verdict(name, "fail", f"{gib:.2f} GiB free for {runs_dir}", hint)
    if free < DISK_WARN_BYTES:
        return Verdict(name, "warn", f"{gib:.1f} GiB free for {runs_dir}", hint)
    return Verdict(name, "pass", f"{gib:.0f} GiB free for {runs_dir}")


def _kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def check_clock_sync(host: Host) -> Verdict:
    """Check that the clock is synchronised (``timedatectl show`` NTPSynchronized, or timesyncd's flag)."""
    name = "clock sync"
    hint = "enable time sync: sudo timedatectl set-ntp true (systemd-timesyncd or chrony), check the network"
    text = host.timedatectl()
    if text is not None:
        kv = _kv(text)
        synced = kv.get("NTPSynchronized")
        if synced == "yes":
            return Verdict(name, "pass", "NTPSynchronized=yes (timedatectl)")
        if synced == "no":
            return Verdict(name, "warn", f"not synchronised (NTP={kv.get('NTP', '?')}): record times drift", hint)
    if (host.run_root / "systemd" / "timesync" / "synchronized").exists():
        return Verdict(name, "pass", "systemd-timesyncd synchronised (/run/systemd/timesync/synchronized)")
    return Verdict(name, "warn", "cannot tell (no timedatectl answer, no /run/systemd/timesync/synchronized)", hint)


def worst(verdicts: Iterable[Verdict]) -> Status:
    """Return the worst status of ``verdicts`` (``skip`` when there are none)."""
    out: Status = "skip"
    for v in verdicts:
        if RANK[v.status] > RANK[out]:
            out = v.status
    return out
