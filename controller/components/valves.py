"""The thruster valve board as a component: POST, its freshness conditions, the command.

Every tick the board gets one ``VB_Command`` frame with a duty per valve: zero is
commanded actively, never implied (SAFETY.md T03: the board closes every valve when
commands stop). Thrust per thruster becomes a duty through the valve commander (PWM
period, minimum impulse bit, valve delays) or, without one, ``thrust / max`` in percent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import can

from controller.components.seam import ComponentBase, Condition, DevicePost, Telemetry, TickView, condition
from hal.errors import one_line
from hal.snapshot import JsonValue, State, apply, capture, part

if TYPE_CHECKING:
    from controller.valve_command import ValveCommander
    from hal.can.port import CanPort
    from hal.devices.valve_board import ValveBoardDriver

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())
#: ``/valves`` keys ``duty_pct_<i>``, made once (the record phase runs every tick).
_DUTY_KEYS = tuple(f"duty_pct_{i}" for i in range(64))
#: ``/valves`` row layouts by valve count (:func:`_valves_keys`): fixed, made once per count.
_VALVES_KEYS: dict[int, tuple[str, ...]] = {}


def _valves_keys(n_valves: int) -> tuple[str, ...]:
    """Return the ``/valves`` keys for ``n_valves`` valves: ``tick``, ``t_s``, ``duty_pct_0..n-1``."""
    keys = _VALVES_KEYS.get(n_valves)
    if keys is None:
        duty = _DUTY_KEYS[:n_valves] if n_valves <= len(_DUTY_KEYS) else tuple(
            f"duty_pct_{i}" for i in range(n_valves))
        keys = _VALVES_KEYS[n_valves] = ("tick", "t_s", *duty)
    return keys


@functools.cache
def _board_conditions(foreign: bool, boot: bool, status_fresh: bool, heartbeat_fresh: bool,
                      rebooted: bool) -> tuple[Condition, ...]:
    """Return the board's conditions for these verdicts (made once per combination: immutable).

    Parameters
    ----------
    foreign : bool
        Another node sends our command ID (B09).
    boot : bool
        The FSM is in ``boot`` (only B09 is judged then).
    status_fresh, heartbeat_fresh : bool
        ``VB_Status`` / ``VB_Heartbeat`` fresh (B01-B03).
    rebooted : bool
        The board rebooted (D08).

    Returns
    -------
    tuple of Condition
        In the order B09, ``vb_status``, ``vb_heartbeat``, ``vb_reboot``.
    """
    out: list[Condition] = []
    if foreign:
        out.append(Condition("b09", "another node sends our thruster command ID", event=None))
    if not boot:
        out.append(condition("vb_status", None if status_fresh else "valve board status stale"))
        out.append(condition("vb_heartbeat", None if heartbeat_fresh else "valve board heartbeat lost"))
        out.append(condition("vb_reboot", "valve board rebooted" if rebooted else None))
    return tuple(out)


class ValveBoardComponent(ComponentBase):
    """Runtime logic of the valve board.

    Parameters
    ----------
    name : str
        Device name in the rig (POST key).
    driver : ValveBoardDriver
        Driver on the board's CAN bus.
    port : CanPort
        The CAN port the board hangs on (commands are sent through it).
    accepted_firmware : str
        Accepted firmware spec (POST, SAFETY.md D07).
    thruster_valves : sequence of int, shape (N,)
        Valve index of each thruster.
    n_valves : int
        Valves on the board; the command frame carries one duty per valve.
    max_thrust_n : sequence of float, shape (N,)
        Per-thruster maximum (N), for the duty without a valve commander.
    modulator : ValveCommander, optional
        ``duty_pct(thrust_n (N,), tick) -> (N,)`` percent, and ``reset()``.
    """

    def __init__(self, name: str, driver: ValveBoardDriver, port: CanPort, accepted_firmware: str,
                 thruster_valves: Sequence[int], n_valves: int, max_thrust_n: Sequence[float],
                 modulator: ValveCommander | None = None, clock: Callable[[], float] | None = None,
                 max_command_age_s: float = 0.01) -> None:
        self.name = name
        #: Real time only: the run clock (tapped, so a replay reads the same values), read
        #: just before a command leaves (see :meth:`write`); None in lockstep.
        self.clock = clock
        self.max_command_age_s = max_command_age_s
        #: Real time: the longest gap between two ticks' starts (s) after which the later
        #: tick's command leaves as zero (3 control periods, the inputs' stale limit).
        self.max_tick_gap_s = 3.0 * max_command_age_s
        #: Non-zero commands replaced by zero because they were older than
        #: ``max_command_age_s`` or their tick came more than ``max_tick_gap_s`` after the last.
        self.stale_commands = 0
        #: The start of the tick that last wrote (s, run clock), None before the first.
        self._last_write_s: float | None = None
        self.driver = driver
        self.port = port
        self.accepted_firmware = accepted_firmware
        self.thruster_valves = list(thruster_valves)
        self.n_valves = n_valves
        #: Valves 0..n_valves-1 in order: when ``thruster_valves`` equals it (thruster i on
        #: valve i) and a duty comes for every valve, :meth:`write` copies the duties in one
        #: call instead of placing them one by one (compared every tick: never stale).
        self._valve_order = list(range(n_valves))
        self.max_thrust_n = list(max_thrust_n)
        self.modulator = modulator
        #: Run time our own command ID was first heard from the bus (SAFETY.md B09).
        self.foreign_command_s: float | None = None
        #: True when this tick's frame (if any) commanded every valve to zero.
        self.last_frame_zero = False
        #: Duty per valve (%) of the last command built by :meth:`write` (telemetry).
        self.last_duty_pct: list[float] = [0.0] * n_valves
        self._was_allowed = False

    # ------------------------------------------------------------------ snapshot
    #: The component's own state in a snapshot (issue 12 part 4); the driver and the PWM
    #: carry of the valve commander are nested beside it, the CAN port is the vehicle's.
    SNAPSHOT_FIELDS = ("foreign_command_s", "last_frame_zero", "last_duty_pct", "_was_allowed", "_last_write_s")

    def snapshot(self) -> State:
        """Return the B09 latch, the last command, the driver's and the valve commander's state."""
        out: State = {**capture(self, self.SNAPSHOT_FIELDS), "driver": self.driver.snapshot()}
        if self.modulator is not None:
            out["modulator"] = self.modulator.snapshot()
        return out

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self.driver.restore(part(state, "driver"))
        if self.modulator is not None:
            self.modulator.restore(part(state, "modulator"))

    # ------------------------------------------------------------------ bus handler
    def on_foreign_command(self, msg: can.Message, now_s: float) -> None:
        """CAN handler for our own command ID heard from the bus (SAFETY.md B09).

        We never receive our own frames, so another node sends our command: a latched
        E-stop-class condition; our TX to the board stops for good.

        Parameters
        ----------
        msg : can.Message
            The frame heard (not decoded).
        now_s : float
            Time it was polled (s).
        """
        if self.foreign_command_s is None:
            self.foreign_command_s = now_s

    @property
    def valve_fault_mask(self) -> int:
        """The board's latest per-valve fault bits (0 before the first status)."""
        st = self.driver.status
        return int(st.valve_fault_mask) if st is not None else 0

    # ------------------------------------------------------------------ the seam
    def post(self, view: TickView) -> Mapping[str, DevicePost]:
        """POST of the board: heartbeat, status, firmware (SAFETY.md D05, D07)."""
        ok, reason = self.driver.post_report(view.now_s, self.accepted_firmware)
        return {self.name: DevicePost(bool(ok), reason)}

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Check B09, then outside ``boot`` the board's freshness and reboots.

        B09 (another node sends our command: E-stop), then outside ``boot`` the board's
        status and heartbeat freshness (B01-B03) and a reboot (D08). The verdicts are
        judged every tick; the conditions for a combination of them are made once
        (:func:`_board_conditions`).
        """
        foreign = self.foreign_command_s is not None
        if view.state == "boot":
            return _board_conditions(foreign, True, True, True, False)
        d = self.driver
        now_s = view.now_s
        return _board_conditions(foreign, False, d.status_fresh(now_s), d.heartbeat_fresh(now_s), d.rebooted)

    def arming_check(self, view: TickView) -> str | None:
        """Refuse ``arm`` while ``VB_Status`` arrives below its rate (SAFETY.md B02, O01).

        The freshness rule alone lets a stream under 50 % random loss through about half
        the time (:meth:`hal.devices.valve_board.ValveBoardDriver.status_rate_low`).
        """
        return self.driver.status_rate_low()

    def events(self, view: TickView) -> Sequence[str]:
        """``estop`` while another node sends our command ID (B09)."""
        return ("estop",) if self.foreign_command_s is not None and view.state != "estop" else ()

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Send this tick's command: duties from ``thrust_n`` in ``allocate``, else zero.

        Real time: a command older than ``max_command_age_s`` (one control period) when it
        is about to leave (the run clock read here, after the tick's work) is sent as zero
        and counted (``stale_commands``): a process stopped mid-tick (SAFETY.md T03) must
        not send the command it computed before the stop when it wakes. Likewise the
        command of a tick that starts more than ``max_tick_gap_s`` after the previous
        tick: a process stopped between ticks wakes to inputs that piled up while it
        slept, and its first tick must not command thrust on them (SAFETY.md T03).
        """
        allow = view.outputs == "allocate"
        mod = self.modulator
        if allow:
            per_thruster = mod.duty_pct(thrust_n, view.tick) if mod is not None else [
                # strict=False: thrust_n comes from the caller (the output guard), its length
                # is not fixed by this class; keep the historical truncating behaviour
                100.0 * t / m for t, m in zip(thrust_n, self.max_thrust_n, strict=False)]
            self._was_allowed = True  # (before the placing below, which may raise)
            tv, n = self.thruster_valves, self.n_valves
            if len(per_thruster) == n == len(tv) and tv == self._valve_order:
                # thruster i on valve i, every valve: what the loop gives (a copy: the
                # commander's list is its own; valve indices are ints, config/rig.py checks)
                duty = list(per_thruster)
            else:
                duty = [0.0] * self.n_valves
                for i, v in enumerate(tv):
                    duty[v] = per_thruster[i]
        else:
            duty = [0.0] * self.n_valves
            if mod is not None and self._was_allowed:
                mod.reset()
            self._was_allowed = False
        now_s = view.now_s
        last_s, self._last_write_s = self._last_write_s, now_s
        if allow and self.clock is not None and (
                self.clock() - now_s > self.max_command_age_s
                or (last_s is not None and now_s - last_s > self.max_tick_gap_s)):
            # T03: the process was stopped (SIGSTOP, a stall) between the tick's start and
            # now, or between the last tick and this one: a command computed before the
            # stall, or on what piled up during it, must not leave after it
            duty = [0.0] * self.n_valves
            self.stale_commands += 1
        self.last_duty_pct = duty
        if self.foreign_command_s is None:  # B09: our TX to the board stops for good
            self.port.send(self.driver.command_frame(duty), now_s)
            self.last_frame_zero = not any(duty)

    def telemetry(self, view: TickView) -> Telemetry:
        """Return ``/valves`` as a row: ``tick``, ``t_s``, ``duty_pct_<i>`` per valve (% of the PWM period).

        The duty of this tick's command; the layout is made once per valve count
        (:func:`_valves_keys`), the tick builds only the values tuple.
        """
        duty = self.last_duty_pct
        return {"/valves": (_valves_keys(len(duty)), (view.tick, view.now_s, *duty))}

    def send_zero(self, now_s: float) -> bool:
        """Send one all-zero command now, best effort (exception barrier, forced stop).

        Returns
        -------
        bool
            True when the frame was handed to the CAN port.
        """
        if self.foreign_command_s is not None:
            return False
        try:
            self.port.send(self.driver.command_frame([0.0] * self.n_valves), now_s)
        except Exception as exc:  # noqa: BLE001 - nothing more can be done from here
            logger.error("zero valve command could not be sent: %s", one_line(exc))
            return False
        self.last_frame_zero = True
        return True
