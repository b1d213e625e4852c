"""The doctor's checks: one small function per check, over a :class:`~controller.doctor.host.Host` view.

Each returns a :class:`Verdict` (``pass``, ``warn``, ``fail`` or ``skip``) with a one-line
detail and, unless it passed, a fix hint. The SocketCAN checks live in
:mod:`controller.doctor.can` and are re-exported here. They read nothing but what they are given, so the
tests run them on prepared trees (``tests/fixtures/doctor/``). Every rule and its source is
in docs/doctor.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.doctor.can import (
    CAN_ERROR_PASSIVE_N,
    CAN_ERROR_WARNING_N,
    TXQUEUELEN_RANGE_N,
    can_checks,
    check_can_bitrate,
    check_can_errors,
    check_can_link,
    check_can_restart,
    check_can_state,
    check_can_txqueuelen,
    dbc_bitrate_bps,
    link_bitrate_bps,
    parse_ip_links,
)
from controller.doctor.host import RLIM_INFINITY, Host
from controller.doctor.verdict import RANK, Status, Verdict, worst

__all__ = ["CAN_ERROR_PASSIVE_N", "CAN_ERROR_WARNING_N", "CAP_IPC_LOCK", "CAP_SYS_NICE", "DISK_FAIL_BYTES",
           "DISK_WARN_BYTES", "JITTER_FAIL_FRACTION", "JITTER_WARN_FRACTION", "RANK", "RLIM_INFINITY",
           "RPI_THROTTLED", "TXQUEUELEN_RANGE_N", "JitterResult", "Status", "Verdict", "can_checks", "cap_effective",
           "check_answer", "check_can_bitrate", "check_can_errors", "check_can_link", "check_can_restart",
           "check_can_state", "check_can_txqueuelen", "check_clock_sync", "check_disk", "check_governor",
           "check_isolated", "check_jitter", "check_memlock", "check_rt_kernel", "check_rt_priority",
           "check_serial_device", "check_throttling", "dbc_bitrate_bps", "link_bitrate_bps", "parse_cpulist",
           "parse_ip_links", "worst"]

#: Linux capability bits (linux/capability.h).
CAP_IPC_LOCK = 14
CAP_SYS_NICE = 23


#: Free disk for run folders: below the first fail, below the second warn (bytes).
DISK_FAIL_BYTES = 1 * 2**30
DISK_WARN_BYTES = 5 * 2**30

#: Jitter rule: p99 period error above these fractions of the period (fail, warn).
JITTER_FAIL_FRACTION = 0.5
JITTER_WARN_FRACTION = 0.1

#: Where the Raspberry Pi firmware driver exposes the throttling flags (hex bit mask).
RPI_THROTTLED = "devices/platform/soc/soc:firmware/get_throttled"


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
