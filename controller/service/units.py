"""The files that make a rig a service: a systemd unit, udev rules, systemd-networkd files.

:func:`render_service_files` turns a checked rig into the text of each file, keyed by the
path it is installed under (relative to ``/``); ``qiki install`` prints or writes them
(docs/deployment.md). Nothing here opens a port or touches the system.

* ``etc/systemd/system/qiki.service`` -- ``Type=notify`` (READY after POST, WATCHDOG from
  the tick: :mod:`controller.service.notify`), ``WatchdogSec``, ``Restart=on-failure``
  (bounded by ``StartLimitBurst``), the rig's real-time knobs as systemd settings
  (``CPUSchedulingPolicy=fifo``, ``CPUSchedulingPriority``, ``CPUAffinity``) and the
  limits that let the process apply them itself (``LimitRTPRIO``, ``LimitMEMLOCK``), stop
  by SIGTERM (the safe stop, docs/safe-stop.md) with ``TimeoutStopSec`` well above its
  bound, and the safe-stop exit statuses (128 + SIGHUP/SIGINT/SIGTERM) counted as success.
* ``etc/udev/rules.d/70-qiki.rules`` -- one rule per ``/dev/qiki-*`` name the rig's buses
  use (serial urls, Modbus RTU urls, slcan channels), with ``ATTRS{idVendor}``,
  ``ATTRS{idProduct}`` and ``ATTRS{serial}`` placeholders the user fills from ``udevadm
  info``.
* ``etc/systemd/network/80-qiki-<channel>.network`` -- per SocketCAN bus: ``[CAN]
  BitRate=`` from the rig and ``RestartSec=`` (the kernel's ``restart-ms``: a bus-off
  controller comes back by itself).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from controller.config import CanBusCfg, ModbusBusCfg, RigCfg, SerialBusCfg

__all__ = ["DEV_PREFIX", "PLACEHOLDER", "ServiceOptions", "UNIT_PATH", "UDEV_PATH", "network_path",
           "render_network", "render_service_files", "render_udev_rules", "render_unit", "symlink_names",
           "stop_timeout_s"]

#: Stable device names the rigs use; the udev rules create them.
DEV_PREFIX = "/dev/qiki-"
#: What the user replaces in the udev rules (``udevadm info -a -n /dev/ttyUSB0``).
PLACEHOLDER = "FILL-ME"
UNIT_PATH = "etc/systemd/system/qiki.service"
UDEV_PATH = "etc/udev/rules.d/70-qiki.rules"
#: Margin of ``TimeoutStopSec`` over the safe stop's in-loop bound (s): closing the buses,
#: the flight record and the summary after the loop ends.
STOP_MARGIN_S = 10.0


def network_path(channel: str) -> str:
    """Return the install path of the networkd file of SocketCAN ``channel`` (relative to ``/``)."""
    return f"etc/systemd/network/80-qiki-{channel}.network"


@dataclass(frozen=True)
class ServiceOptions:
    """What the unit runs and as whom.

    Attributes
    ----------
    rig_path : Path
        The rig file (absolute in the unit).
    qiki : str
        The ``qiki`` executable (absolute path; systemd does not search ``PATH``).
    mission : Path
        The mission ``qiki run`` flies (absolute).
    user : str or None
        ``User=`` (None: root).
    watchdog_s : float
        ``WatchdogSec`` (s): longest the loop may go without a tick before systemd
        restarts the service.
    start_timeout_s : float
        ``TimeoutStartSec`` (s): build, doctor and POST before ``READY=1``.
    restart_s : float
        ``RestartSec`` (s): pause before a restart after a failure.
    can_restart_ms : int
        networkd ``[CAN] RestartSec`` (ms): the kernel's automatic restart after bus-off.
    safe_stop_bound_s : float
        The safe stop's in-loop bound (s; ``qiki install`` passes
        :data:`controller.run.SHUTDOWN_TIMEOUT_S`): ``TimeoutStopSec`` is above it
        (:func:`stop_timeout_s`).
    """

    rig_path: Path
    qiki: str
    mission: Path
    user: str | None = "qiki"
    watchdog_s: float = 2.0
    start_timeout_s: float = 60.0
    restart_s: float = 5.0
    can_restart_ms: int = 100
    safe_stop_bound_s: float = 0.5


def stop_timeout_s(safe_stop_bound_s: float) -> float:
    """Return ``TimeoutStopSec`` (s): the safe stop's in-loop bound plus :data:`STOP_MARGIN_S`, whole seconds.

    Parameters
    ----------
    safe_stop_bound_s : float
        The safe stop's bound in the loop (s): :data:`controller.run.SHUTDOWN_TIMEOUT_S`
        (zero commands, disarm, valve rail open; docs/safe-stop.md). What follows
        (closing buses and records) is bounded by the margin; systemd sends SIGKILL only
        after this, so a safe stop is never cut short.
    """
    return float(math.ceil(safe_stop_bound_s + STOP_MARGIN_S))


def _sec(value_s: float) -> str:
    return f"{value_s:g}s"


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument (systemd.service(5) "Command lines"); ``%`` doubled."""
    arg = arg.replace("%", "%%")
    return shlex.quote(arg) if any(c in arg for c in " \t\"'\\;$") else arg


def render_unit(rig: RigCfg, opts: ServiceOptions) -> str:
    """Render the systemd service unit of ``rig`` (see the module docstring).

    Parameters
    ----------
    rig : RigCfg
        A checked rig (its ``controller.realtime`` knobs, its SocketCAN channels).
    opts : ServiceOptions
        Paths, user and timeouts.

    Returns
    -------
    str
        The unit file's text.
    """
    from controller.exit_codes import SIGNAL_EXIT
    from controller.paths import checkout_data_root

    rt = rig.controller.realtime
    argv = [opts.qiki, "run", "--rig", str(opts.rig_path), "--mission", str(opts.mission), "--realtime",
            "--no-progress", "--runs-dir", "runs"]
    can_devs = [f"sys-subsystem-net-devices-{b.channel}.device" for b in rig.buses.values()
                if isinstance(b, CanBusCfg) and b.interface == "socketcan"]
    after = " ".join(["systemd-networkd.service", *can_devs])
    docs = checkout_data_root() / "docs" / "deployment.md"
    lines = [
        "# Written by `qiki install` (docs/deployment.md). Edit the rig, then install again.",
        "[Unit]",
        f"Description=QIKI controller, rig {rig.name}",
        *([f"Documentation=file://{docs}"] if docs.is_file() else []),
        f"After={after}",
        *(f"Wants={d}" for d in can_devs),
        # a controller that keeps failing stays down: 3 starts in 2 minutes at most
        "StartLimitIntervalSec=120",
        "StartLimitBurst=3",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={' '.join(_systemd_quote(a) for a in argv)}",
        "StateDirectory=qiki",
        "WorkingDirectory=/var/lib/qiki",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if opts.user:
        lines += [f"User={opts.user}", "SupplementaryGroups=dialout"]
    lines += [
        f"WatchdogSec={_sec(opts.watchdog_s)}",
        f"TimeoutStartSec={_sec(opts.start_timeout_s)}",
        "Restart=on-failure",
        f"RestartSec={_sec(opts.restart_s)}",
        # SIGTERM is the safe stop (zero commands, disarm, valve rail open); its exit
        # statuses are a clean end, not a failure to restart from
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        f"TimeoutStopSec={_sec(stop_timeout_s(opts.safe_stop_bound_s))}",
        f"SuccessExitStatus={' '.join(str(v) for v in sorted(SIGNAL_EXIT.values()))}",
    ]
    if rt.sched_fifo_priority is not None:
        lines += ["CPUSchedulingPolicy=fifo", f"CPUSchedulingPriority={rt.sched_fifo_priority}",
                  f"LimitRTPRIO={rt.sched_fifo_priority}"]
    else:
        lines += ["# the rig asks no SCHED_FIFO priority (controller.realtime.sched_fifo_priority)", "LimitRTPRIO=0"]
    if rt.cpu_affinity:
        lines.append(f"CPUAffinity={' '.join(str(c) for c in rt.cpu_affinity)}")
    lines.append("LimitMEMLOCK=infinity" if rt.mlockall else "# the rig does not ask mlockall")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def symlink_names(rig: RigCfg) -> dict[str, str]:
    """Return the ``/dev/qiki-*`` names the rig's buses use, each with the bus that names it.

    Serial urls, Modbus RTU urls (``rtu:///dev/qiki-rs485?baudrate=115200``) and CAN
    channels (an slcan adapter's tty).

    Returns
    -------
    dict of str to str
        ``{"qiki-mcu": "mcu", ...}``: symlink name (under ``/dev``) to bus name, in the
        rig's bus order.
    """
    out: dict[str, str] = {}
    for bus_name, bus in rig.buses.items():
        path = ""
        if isinstance(bus, SerialBusCfg):
            path = bus.url
        elif isinstance(bus, ModbusBusCfg) and urlsplit(bus.url).scheme == "rtu":
            path = urlsplit(bus.url).path
        elif isinstance(bus, CanBusCfg):
            path = bus.channel
        if path.startswith(DEV_PREFIX):
            out.setdefault(path[len("/dev/"):], bus_name)
    return out


def render_udev_rules(rig: RigCfg) -> str:
    """Render the udev rules creating the rig's ``/dev/qiki-*`` symlinks (placeholders to fill).

    Returns
    -------
    str
        One commented rule per name of :func:`symlink_names`; ``FILL-ME`` marks the
        vendor, product and serial the user reads from ``udevadm info -a -n /dev/ttyUSB0``
        (docs/deployment.md). Members of ``dialout`` may open the devices.
    """
    devices: dict[str, list[str]] = {}
    for dev_name, dev in rig.devices.items():
        devices.setdefault(dev.bus, []).append(dev_name)
    lines = [
        "# Written by `qiki install` (docs/deployment.md): stable names for the rig's serial devices.",
        f"# Replace every {PLACEHOLDER} with the adapter's values from `udevadm info -a -n /dev/ttyUSB0`",
        "# (idVendor, idProduct, serial of the USB device), then:",
        "#   sudo udevadm control --reload && sudo udevadm trigger --subsystem-match=tty",
        "# A device on the Pi's own UART has no USB attributes: use the KERNEL line shown instead.",
    ]
    for link, bus_name in symlink_names(rig).items():
        who = ", ".join(devices.get(bus_name, [bus_name]))
        lines += [
            "",
            f"# /dev/{link}: bus {bus_name} ({who})",
            f'SUBSYSTEM=="tty", ATTRS{{idVendor}}=="{PLACEHOLDER}", ATTRS{{idProduct}}=="{PLACEHOLDER}", '
            f'ATTRS{{serial}}=="{PLACEHOLDER}", SYMLINK+="{link}", GROUP="dialout", MODE="0660"',
            f'# on the Pi UART instead: SUBSYSTEM=="tty", KERNEL=="ttyAMA0", SYMLINK+="{link}", '
            'GROUP="dialout", MODE="0660"',
        ]
    return "\n".join(lines) + "\n"


def render_network(bus: CanBusCfg, can_restart_ms: int) -> str:
    """Render the systemd-networkd file bringing up one SocketCAN bus at the rig's bit rate.

    Parameters
    ----------
    bus : CanBusCfg
        A ``socketcan`` bus (``channel`` is the interface name, ``bitrate_bps`` the rate).
    can_restart_ms : int
        ``[CAN] RestartSec`` (ms): automatic restart after bus-off (``restart-ms``).

    Returns
    -------
    str
        The ``.network`` file's text (systemd.network(5), ``[CAN]`` section).
    """
    return "\n".join([
        "# Written by `qiki install` (docs/deployment.md).",
        "[Match]",
        f"Name={bus.channel}",
        "",
        "[Link]",
        "RequiredForOnline=no",
        "",
        "[CAN]",
        f"BitRate={bus.bitrate_bps}",
        f"RestartSec={can_restart_ms}ms",
        "",
    ])


def render_service_files(rig: RigCfg, opts: ServiceOptions) -> Mapping[str, str]:
    """Render every file ``qiki install`` writes, by install path relative to ``/``.

    Parameters
    ----------
    rig : RigCfg
        A checked rig.
    opts : ServiceOptions
        See :class:`ServiceOptions`.

    Returns
    -------
    dict of str to str
        The unit; the udev rules when the rig names a ``/dev/qiki-*`` device; one
        ``.network`` file per SocketCAN bus.
    """
    files = {UNIT_PATH: render_unit(rig, opts)}
    if symlink_names(rig):
        files[UDEV_PATH] = render_udev_rules(rig)
    for bus in rig.buses.values():
        if isinstance(bus, CanBusCfg) and bus.interface == "socketcan":
            files[network_path(bus.channel)] = render_network(bus, opts.can_restart_ms)
    return files
