"""The host as the doctor sees it: injectable roots and callables, live or from a recorded tree.

Every check of :mod:`controller.doctor.checks` reads the machine only through a
:class:`Host`, so the same checks run on this machine (:func:`live_host`) and on a prepared
tree of small text files (:func:`host_from_tree`, the test fixtures under
``tests/fixtures/doctor/``; ``qiki doctor --host-root DIR``).

Tree layout (every file optional; a missing one reads as "not available")::

    sys/...            a sysfs root (class/net/can0/operstate, devices/system/cpu/...)
    proc/...           a procfs root (sys/kernel/version, self/status)
    dev/...            a /dev root (a device is a small file; its path below dev/)
    run/...            a /run root (systemd/timesync/synchronized)
    ip-link.json       the output of ``ip -details -statistics -json link show``
    timedatectl.txt    the output of ``timedatectl show``
    host.json          {"euid": 1000, "rlimit_rtprio": [0, 0], "rlimit_memlock": [8388608, 8388608],
                        "disk_free_bytes": 1e11, "access": {"qiki-mcu": "", ...},
                        "groups": {"qiki-mcu": "dialout"},
                        "probes": {"mcu": {"hello": "1.0.0"}, "bms": {"error": "timeout"}}}

``access`` maps a device path below ``dev/`` to the permissions the doctor's user has on
it (``"rw"``, ``"r"``, ``""``; default ``"rw"``): git keeps neither owners nor modes.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: ``resource.RLIM_INFINITY``, the "unlimited" of getrlimit(2).
RLIM_INFINITY = resource.RLIM_INFINITY

#: Longest an external command (``ip``, ``timedatectl``) may take (s).
COMMAND_TIMEOUT_S = 3.0


def _no_probes() -> dict[str, dict[str, str]]:
    return {}


@dataclass(frozen=True)
class Host:
    """A read-only view of the machine for the doctor's checks.

    Attributes
    ----------
    sys_root, proc_root, dev_root, run_root : Path
        Where ``/sys``, ``/proc``, ``/dev`` and ``/run`` are read.
    ip_link_json : callable ``() -> str or None``
        The text of ``ip -details -statistics -json link show`` (None: ``ip`` unavailable).
    timedatectl : callable ``() -> str or None``
        The text of ``timedatectl show`` (None: unavailable).
    rlimit : callable ``(resource) -> (soft, hard)``
        getrlimit(2) (``resource.RLIMIT_RTPRIO``, ``resource.RLIMIT_MEMLOCK``).
    euid : int
        Effective user id of the process that will run the controller.
    access : callable ``(path, mode) -> bool``
        access(2) on a path under ``dev_root`` (``os.R_OK | os.W_OK``).
    group_of : callable ``(path) -> str or None``
        Name of the group owning a device node (for the fix hint).
    disk_free_bytes : callable ``(path) -> int``
        Bytes available to an unprivileged user on the file system of ``path`` (statvfs(3)
        ``f_bavail * f_frsize``) of the nearest existing folder.
    probes : mapping
        Recorded device answers of a host tree (``{"mcu": {"hello": "1.0.0"}}``); empty
        on the live host, where the devices are asked (:mod:`controller.doctor.probes`).
    live : bool
        True for this machine; False for a recorded tree.
    """

    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    dev_root: Path = Path("/dev")
    run_root: Path = Path("/run")
    ip_link_json: Callable[[], str | None] = lambda: None
    timedatectl: Callable[[], str | None] = lambda: None
    rlimit: Callable[[int], tuple[int, int]] = resource.getrlimit
    euid: int = 0
    access: Callable[[Path, int], bool] = os.access
    group_of: Callable[[Path], str | None] = lambda p: None
    disk_free_bytes: Callable[[Path], int] = lambda p: 0
    probes: Mapping[str, Mapping[str, str]] = field(default_factory=_no_probes)
    live: bool = False

    def dev_path(self, device: str) -> Path:
        """Map a device path (``/dev/qiki-mcu``) into :attr:`dev_root`; other paths as given."""
        p = Path(device)
        try:
            return self.dev_root / p.relative_to("/dev")
        except ValueError:
            return p

    def read_text(self, path: Path) -> str | None:
        """Return a small text file stripped, or None when it cannot be read."""
        try:
            return path.read_text(errors="replace").strip()
        except OSError:
            return None


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s: %s", argv[0], exc)
        return None
    return r.stdout if r.returncode == 0 else None


def _group_of(path: Path) -> str | None:
    import grp

    try:
        return grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        return None


def _free_bytes(path: Path) -> int:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return int(st.f_bavail * st.f_frsize)


def live_host() -> Host:
    """Return the view of this machine (``/sys``, ``/proc``, ``/dev``, ``/run``, ``ip``, ``timedatectl``)."""
    return Host(
        ip_link_json=lambda: _run(["ip", "-details", "-statistics", "-json", "link", "show"]),
        timedatectl=lambda: _run(["timedatectl", "show"]),
        rlimit=resource.getrlimit,
        euid=os.geteuid(),
        access=os.access,
        group_of=_group_of,
        disk_free_bytes=_free_bytes,
        live=True,
    )


def host_from_tree(root: str | Path) -> Host:
    """Return the view of a recorded host tree (layout in the module docstring).

    Parameters
    ----------
    root : str or Path
        The tree's folder.

    Raises
    ------
    ValueError
        ``host.json`` is not a JSON object.
    """
    root = Path(root)
    meta: dict[str, object] = {}
    meta_path = root / "host.json"
    if meta_path.is_file():
        loaded = json.loads(meta_path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{meta_path}: not a JSON object")
        meta = loaded

    def text(name: str) -> Callable[[], str | None]:
        def read() -> str | None:
            p = root / name
            return p.read_text() if p.is_file() else None
        return read

    def limits(which: int) -> tuple[int, int]:
        key = {resource.RLIMIT_RTPRIO: "rlimit_rtprio", resource.RLIMIT_MEMLOCK: "rlimit_memlock"}.get(which)
        raw = meta.get(key or "", None)
        if not isinstance(raw, list) or len(raw) != 2:
            return (RLIM_INFINITY, RLIM_INFINITY) if key == "rlimit_memlock" else (99, 99)
        return tuple(RLIM_INFINITY if v is None or v == "unlimited" else int(v) for v in raw)  # type: ignore[return-value]

    dev_root = root / "dev"
    access_map = meta.get("access", {})
    groups = meta.get("groups", {})

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(dev_root))
        except ValueError:
            return str(p)

    def access(p: Path, mode: int) -> bool:
        perms = access_map.get(rel(p), "rw") if isinstance(access_map, dict) else "rw"
        need = ("r" if mode & os.R_OK else "") + ("w" if mode & os.W_OK else "")
        return p.exists() and all(c in str(perms) for c in need)

    def group_of(p: Path) -> str | None:
        g = groups.get(rel(p)) if isinstance(groups, dict) else None
        return str(g) if g is not None else None

    free = meta.get("disk_free_bytes", 100 * 2**30)
    probes = meta.get("probes", {})
    return Host(
        sys_root=root / "sys", proc_root=root / "proc", dev_root=dev_root, run_root=root / "run",
        ip_link_json=text("ip-link.json"), timedatectl=text("timedatectl.txt"), rlimit=limits,
        euid=int(meta.get("euid", 1000)),  # type: ignore[call-overload]
        access=access, group_of=group_of,
        disk_free_bytes=lambda p: int(free),  # type: ignore[call-overload]
        probes=probes if isinstance(probes, dict) else {}, live=False,
    )
