"""sd_notify(3) without libsystemd: one datagram per message to ``$NOTIFY_SOCKET``.

systemd starts a ``Type=notify`` service with ``NOTIFY_SOCKET`` naming an AF_UNIX datagram
socket (a path, or ``@name`` in the abstract namespace), and with ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``) when the unit sets ``WatchdogSec=``. The service sends newline-separated
``KEY=VALUE`` assignments: ``READY=1`` when start-up is complete (here: POST passed),
``WATCHDOG=1`` at least every ``WatchdogSec`` once ready, ``STOPPING=1`` when it begins to
stop, ``STATUS=...`` free text for ``systemctl status``. Without ``NOTIFY_SOCKET`` every
call is a no-op, so ``qiki run`` behaves the same outside systemd.

:class:`ServiceNotifier` is what the main job holds: :meth:`~ServiceNotifier.on_tick` is
called once per control tick with the vehicle's state; it sends ``READY=1`` on the first
state out of ``boot`` that is not a failed POST, and ``WATCHDOG=1`` at most once every
half watchdog period (the rule of sd_watchdog_enabled(3)). A send never raises: a full or
vanished socket is logged once and the loop goes on (the valve board's own command
timeout, not systemd, is what keeps the vehicle safe: SAFETY.md T03).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["POST_FAILED_STATES", "ServiceNotifier", "notify_address", "sd_notify", "watchdog_period_s"]

logger = logging.getLogger(__name__)

#: States out of ``boot`` that mean POST failed (fsm_configs/qiki_vehicle.yaml): no READY.
POST_FAILED_STATES = frozenset({"safe_mode", "fault"})


def notify_address(value: str | None) -> str | bytes | None:
    r"""Turn ``$NOTIFY_SOCKET`` into a ``socket.sendto`` address.

    Parameters
    ----------
    value : str or None
        The variable's value: an absolute path, or ``@name`` for the Linux abstract
        namespace (sd_notify(3)).

    Returns
    -------
    str, bytes or None
        The path; ``b"\0name"`` for an abstract socket; None when unset, empty or not a
        socket address (``vsock:`` addresses are not supported and are ignored).
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    r"""Send one notification datagram to ``$NOTIFY_SOCKET``.

    Parameters
    ----------
    message : str
        Newline-separated assignments, e.g. ``"READY=1\nSTATUS=idle"``.
    env : mapping, optional
        Where to read ``NOTIFY_SOCKET`` (default: ``os.environ``).

    Returns
    -------
    bool
        True when the datagram was sent; False when there is no socket to send to.

    Raises
    ------
    OSError
        The socket exists but refused the datagram (caller decides; :class:`ServiceNotifier`
        logs it).
    """
    addr = notify_address((os.environ if env is None else env).get("NOTIFY_SOCKET"))
    if addr is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), addr)
    return True


def watchdog_period_s(env: Mapping[str, str], pid: int) -> float | None:
    """Return the watchdog period systemd asked for (s), or None (sd_watchdog_enabled(3)).

    Parameters
    ----------
    env : mapping
        The environment: ``WATCHDOG_USEC`` (microseconds) and optional ``WATCHDOG_PID``.
    pid : int
        This process's id; a ``WATCHDOG_PID`` naming another process disables the watchdog.

    Returns
    -------
    float or None
        ``WATCHDOG_USEC`` in seconds; None when unset, malformed, not positive or meant
        for another process.
    """
    usec = env.get("WATCHDOG_USEC", "")
    want_pid = env.get("WATCHDOG_PID", "")
    if want_pid:
        try:
            if int(want_pid) != pid:
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class ServiceNotifier:
    """The main job's link to systemd: READY after POST, WATCHDOG from the tick, STOPPING at the end.

    Parameters
    ----------
    env : mapping, optional
        Environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID`` from
        (default: ``os.environ``, read once here).
    clock : callable, optional
        Monotonic seconds for the watchdog pacing (default ``time.monotonic``).
    pid : int, optional
        This process's id (default ``os.getpid()``).

    Attributes
    ----------
    enabled : bool
        ``NOTIFY_SOCKET`` names a socket; when False every method returns at once.
    ready_sent : bool
        ``READY=1`` went out.
    watchdog_interval_s : float or None
        Least spacing of ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC`` (s); None: no pings.
    sent : list of str
        Every message sent, in order (for tests and the log).
    """

    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 pid: int | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._clock = clock
        self.enabled = notify_address(self._env.get("NOTIFY_SOCKET")) is not None
        period_s = watchdog_period_s(self._env, os.getpid() if pid is None else pid)
        self.watchdog_interval_s = None if period_s is None or not self.enabled else period_s / 2.0
        self.ready_sent = False
        self.sent: list[str] = []
        self._last_ping_s: float | None = None
        self._failed = False
        self._state: str | None = None

    def send(self, message: str) -> bool:
        """Send ``message`` (never raises; a refused send is logged once).

        Returns
        -------
        bool
            True when the datagram left.
        """
        if not self.enabled:
            return False
        try:
            ok = sd_notify(message, self._env)
        except OSError as exc:
            if not self._failed:
                logger.warning("sd_notify to %s failed: %s", self._env.get("NOTIFY_SOCKET"), exc)
                self._failed = True
            return False
        if ok:
            self.sent.append(message)
        return ok

    def on_tick(self, state: str) -> None:
        """Call once per control tick, after the vehicle's tick, with its state.

        Sends ``READY=1`` (with ``STATUS=``) on the first state out of ``boot`` unless POST
        failed (:data:`POST_FAILED_STATES`: then only ``STATUS=``), ``STATUS=`` on every
        state change, and ``WATCHDOG=1`` when at least :attr:`watchdog_interval_s` passed
        since the last ping.
        """
        if not self.enabled:
            return
        if state != self._state:
            self._state = state
            if not self.ready_sent and state != "boot" and state not in POST_FAILED_STATES:
                self.ready_sent = self.send(f"READY=1\nSTATUS=POST passed, state {state}")
            else:
                self.send(f"STATUS=state {state}")
        if self.watchdog_interval_s is not None:
            now_s = self._clock()
            if self._last_ping_s is None or now_s - self._last_ping_s >= self.watchdog_interval_s:
                if self.send("WATCHDOG=1"):
                    self._last_ping_s = now_s

    def stopping(self, reason: str = "") -> None:
        """Send ``STOPPING=1`` (and the reason as ``STATUS=``): the loop ended, teardown begins."""
        if self.enabled:
            self.send("STOPPING=1" + (f"\nSTATUS=stopping: {reason}" if reason else ""))
