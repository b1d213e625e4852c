"""Stop requests from the operating system: SIGINT, SIGTERM and SIGHUP during a run.

``systemctl stop`` sends SIGTERM, a terminal's Ctrl-C SIGINT, a closed SSH session SIGHUP.
None of them may leave a valve command on the bus (ISSUE 10, SAFETY.md: anything that can
stop the process leaves the valves commanded to zero). The handlers here never act on
the buses themselves: the first signal only *requests* a stop, which the control loop
reads at the next tick and turns into an orderly safe stop (zero commands, disarm, rail
open, logs closed, summary written). A second signal while a stop is under way raises
:class:`ForcedStop` in the main thread; the run then sends one zero command and exits at
once.

Exit statuses follow the shell convention 128 + signal number: SIGHUP 129, SIGINT 130,
SIGTERM 143 (:data:`controller.exit_codes.SIGNAL_EXIT`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Union

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Signals that request a safe stop.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Handler = Union[Callable[[int, FrameType | None], object], int, signal.Handlers, None]


class ForcedStop(BaseException):
    """Raised in the main thread by a second stop signal: stop now, one zero command.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that the tick's exception barrier,
    which catches ``Exception``, lets it through.

    Parameters
    ----------
    signum : int
        The signal that forced the stop.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"forced stop ({signal.Signals(signum).name})")


class StopBeforeStart(BaseException):
    """Raised by the first stop signal while the rig is being built (no tick has run).

    Nothing has been commanded yet, so the build is abandoned at once (the composition
    root closes what it opened) instead of finishing a build that may take seconds on
    a loaded machine.

    Parameters
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stop before start ({signal.Signals(signum).name})")


class StopRequest:
    """Turns SIGINT/SIGTERM/SIGHUP into a stop request for the control loop.

    Use as a context manager around the run; handlers are installed only in the main
    thread (Python allows no other) and the previous handlers are restored on exit.

    Attributes
    ----------
    signum : int or None
        The first stop signal received, None while no stop was asked.
    count : int
        Stop signals received.
    installed : bool
        True when the handlers are in place (False off the main thread).
    force_enabled : bool
        While True, a second signal raises :class:`ForcedStop`; the run turns it off
        once the loop has ended, so closing the buses and logs is never torn.
    """

    #: While True (the rig is being built), the first signal raises StopBeforeStart.
    abort_enabled: bool

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.installed = False
        self.force_enabled = False
        self._previous: dict[int, _Handler] = {}
        self._depth = 0
        self.abort_enabled = False

    @property
    def requested(self) -> bool:
        """True once a stop signal came."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """``SIGTERM``... of the first stop signal ('' when none came)."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def request(self, signum: int) -> None:
        """Request a stop as if ``signum`` had been received (tests, embedding code)."""
        self._on_signal(signum, None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = int(signum)
            if self.abort_enabled:
                self.abort_enabled = False
                raise StopBeforeStart(signum)
            return
        if self.force_enabled:
            self.force_enabled = False  # one ForcedStop only
            raise ForcedStop(signum)

    def enable_abort(self) -> None:
        """From now on the first signal raises :class:`StopBeforeStart` (raised at once
        if a signal already came).
        """
        if self.signum is not None:
            raise StopBeforeStart(self.signum)
        self.abort_enabled = True

    def __enter__(self) -> StopRequest:
        """Install the handlers (main thread only; re-entering is a no-op).

        A SIGINT or SIGHUP that is *ignored* when the run starts stays ignored: ``nohup``
        and a non-interactive shell's background jobs ask for that (POSIX: a signal
        ignored on entry to a non-interactive process is left ignored). SIGTERM is
        always handled.
        """
        self._depth += 1
        if self.installed or threading.current_thread() is not threading.main_thread():
            return self
        for sig in STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if previous is signal.SIG_IGN and sig != signal.SIGTERM:
                continue
            self._previous[int(sig)] = previous
            signal.signal(sig, self._on_signal)
        self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth > 0:
            return  # nested use: the outermost exit restores the handlers
        self.force_enabled = False
        if self.installed:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            self._previous.clear()
            self.installed = False
