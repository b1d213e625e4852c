"""The vehicle's last line: the exception barrier in the tick, and the safe stop.

* **The exception barrier** (issue 10 part 2): an ``Exception`` raised in any phase of a
  tick is a fault, not a crash. The rest of the tick is skipped, one zero command is sent,
  the FSM takes ``fault`` (``safe_mode``) with the exception's one-line text as the
  reason, the traceback goes to the run record (an ``exception`` event), and the outputs
  stay zero for good (``output_inhibit``).
* **The safe stop** (:meth:`SafeStop.begin_shutdown`, from SIGINT/SIGTERM/SIGHUP): zero is
  commanded every tick from then on, an armed vehicle is disarmed through the state
  machine (``disarm`` -> ``idle``, whose entry opens the valve rail), and
  :meth:`SafeStop.shutdown_status` says when the stop is complete.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.components.seam import ARMING_STATES
from hal.errors import one_line

if TYPE_CHECKING:
    from controller.vehicle.manager import Vehicle

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Zero commands a shutdown sends, at least, before the stop may complete (ISSUE 10: >= 3).
SHUTDOWN_ZERO_TICKS = 3


@dataclass
class ShutdownStatus:
    """Where a shutdown stands (:meth:`Vehicle.shutdown_status`).

    Attributes
    ----------
    reason : str
        Why (``interrupted (SIGTERM)``).
    started_s : float
        Run time the shutdown began (s).
    zero_ticks : int
        Ticks since then that sent an all-zero valve command.
    disarmed : bool
        The FSM state is not ``armed``/``active``.
    rail_open_confirmed : bool
        A fresh MCU status received after the shutdown began says the valve rail is off.
    relay_open_confirmed : bool or None
        The PDU's read-back confirmed the valve-rail relay open (None: no PDU on the rig).
    complete : bool
        All of the above hold (the run may stop now).
    """

    reason: str
    started_s: float
    zero_ticks: int
    disarmed: bool
    rail_open_confirmed: bool
    relay_open_confirmed: bool | None
    complete: bool

    def as_dict(self) -> dict[str, Any]:
        """Return the ``shutdown`` block of ``summary.json``."""
        return {
            "reason": self.reason,
            "started_s": round(self.started_s, 6),
            "zero_command_ticks": self.zero_ticks,
            "disarmed": self.disarmed,
            "rail_open_confirmed": self.rail_open_confirmed,
            "relay_open_confirmed": self.relay_open_confirmed,
            "complete": self.complete,
        }



class SafeStop:
    """The barrier and the safe stop, as a base of :class:`~controller.vehicle.Vehicle`."""

    def __init__(self) -> None:
        #: Set for good by the exception barrier or a shutdown: outputs are zero from then on.
        self.output_inhibit: str | None = None
        #: The first exception caught by the barrier, one line (the ``safe_mode`` reason).
        self.exception_reason: str | None = None
        self.exceptions_caught = 0
        self.shutdown_reason: str | None = None
        self.shutdown_started_s = 0.0
        self.shutdown_zero_ticks = 0

    def tick(self: Vehicle, k: int, now_s: float, dt_s: float) -> None:  # type: ignore[misc]
        """Run one control tick (per tick): read, update, write, behind the barrier.

        Parameters
        ----------
        k : int
            Tick index (from the loop), written into every event of the tick.
        now_s : float
            The tick's time on the run clock (s).
        dt_s : float
            Time since the previous tick (s); the output guard's rate limit uses it.

        Notes
        -----
        ``BaseException`` that is not an ``Exception`` (a forced stop,
        ``KeyboardInterrupt``) passes through.
        """
        self.tick_index, self.now_s = k, now_s
        self.valves.last_frame_zero = False
        try:
            view = self.read(now_s)  # each phase hands the tick's view on (Vehicle.read, Vehicle.update)
            view = self.update(now_s, dt_s, view)
            self.write(now_s, dt_s, view)
        except Exception as exc:  # noqa: BLE001 - the barrier: every fault lands in safe_mode
            self.on_exception(exc, now_s)
        if self.shutdown_reason is not None and self.valves.last_frame_zero:
            self.shutdown_zero_ticks += 1

    def on_exception(self: Vehicle, exc: Exception, now_s: float) -> None:  # type: ignore[misc]
        """Act as the exception barrier: zero outputs, ``safe_mode``, traceback to the record."""
        self.exceptions_caught += 1
        first = self.exception_reason is None
        if first:
            self.exception_reason = f"exception in tick: {type(exc).__name__}: {one_line(exc)}"
            self.output_inhibit = self.exception_reason
            self._log("exception", reason=self.exception_reason, traceback=traceback.format_exc())
            logger.error("%s (tick %d); outputs zero from now on", self.exception_reason, self.tick_index)
        try:
            self._condition("tick_exception", self.exception_reason)
            if self.fsm.state not in ("safe_mode", "estop"):
                self._step_fsm(now_s, ["fault"])
        except Exception as exc2:  # noqa: BLE001 - the FSM itself failed: outputs stay zero
            if first:
                self._log("exception", reason=f"FSM step after the exception failed: {one_line(exc2)}")
        self.valves.send_zero(now_s)
        try:
            self.mcu.driver.service(now_s, self.fsm.state)
        except Exception as exc3:  # noqa: BLE001 - the MCU drops the rail when heartbeats stop
            logger.error("MCU heartbeat after an exception failed: %s", one_line(exc3))

    def send_zero(self: Vehicle, now_s: float) -> bool:  # type: ignore[misc]
        """Send one all-zero valve command now (forced stop); True when it was handed over."""
        return self.valves.send_zero(now_s)

    def begin_shutdown(self: Vehicle, reason: str, now_s: float) -> None:  # type: ignore[misc]
        """Start a safe stop (signals): zero outputs from now on, disarm if armed.

        Parameters
        ----------
        reason : str
            ``interrupted (SIGTERM)``...; recorded as a ``shutdown`` event.
        now_s : float
            Run time (s).
        """
        if self.shutdown_reason is not None:
            return
        self.shutdown_reason = reason
        self.shutdown_started_s = now_s
        self.output_inhibit = self.output_inhibit or reason
        self._log("shutdown", reason=reason)
        if self.fsm.state in ARMING_STATES:
            self.command("disarm")

    def shutdown_status(self: Vehicle, now_s: float) -> ShutdownStatus:  # type: ignore[misc]
        """Where the shutdown stands (per tick, after :meth:`tick`).

        The rail counts as confirmed off when an MCU status received after the shutdown
        began says so; the PDU relay when a component that owns it confirms it open.
        """
        rail_ok = self.mcu.rail_off_confirmed_since(self.shutdown_started_s)
        relay: bool | None = None
        for c in self.components:
            v = c.valve_rail_open_confirmed()
            if v is not None:
                relay = v if relay is None else (relay and v)
        disarmed = self.fsm.state not in ARMING_STATES
        complete = self.shutdown_zero_ticks >= SHUTDOWN_ZERO_TICKS and disarmed and rail_ok and relay is not False
        return ShutdownStatus(self.shutdown_reason or "", self.shutdown_started_s, self.shutdown_zero_ticks,
                              disarmed, rail_ok, relay, complete)
