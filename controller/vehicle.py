"""The vehicle: one control tick of read -> update -> write, wired to its collaborators.

It receives every collaborator ready-made (drivers, ports, FSM engine, allocator, guard,
mission, record): only :mod:`controller.rig` knows how they are built (ARCHITECTURE.md 2,
rule 3). One tick (ARCHITECTURE.md 3):

* **read**: drain the CAN port and the MCU link, decode, validate, update freshness;
* **update**: the safety monitor and the operator script raise events; the FSM steps (the
  engine orders the tick's events by priority: estop > fault > ... , SAFETY.md O04); the
  transitions' actions run; in an ``allocate`` state the pose controller computes a
  body-frame wrench and the allocator splits it into thrusts;
* **write**: the output guard has the last word; duties are encoded and sent every tick
  (zero is actively commanded, never implied); the host heartbeat goes to the MCU.

Two things stop the outputs for good, whatever the state machine says:

* an **exception inside a tick** (the exception barrier): it is a fault, not a crash.
  The tick's remaining phases are skipped, a zero command is sent, the FSM takes the
  ``fault`` event (``safe_mode``) with the exception's one-line text as the reason, and
  the traceback goes to the run record (an ``exception`` event). Later ticks run as
  usual but their outputs stay zero;
* a **shutdown** (:meth:`Vehicle.begin_shutdown`, from SIGINT/SIGTERM/SIGHUP): zero is
  commanded every tick from then on, an armed vehicle is disarmed through the state
  machine (``disarm`` -> ``idle``, whose entry opens the valve rail), and
  :meth:`Vehicle.shutdown_status` says when the stop is complete.
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from controller.control import PoseGains, pose_pd_wrench
from controller.mission import MissionExecutor
from controller.safety.output_guard import OutputGuard
from hal.errors import one_line

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: FSM states reported to the MCU in the host heartbeat.
ARMING_STATES = frozenset({"armed", "active"})
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
        """The ``shutdown`` block of ``summary.json``."""
        return {
            "reason": self.reason,
            "started_s": round(self.started_s, 6),
            "zero_command_ticks": self.zero_ticks,
            "disarmed": self.disarmed,
            "rail_open_confirmed": self.rail_open_confirmed,
            "relay_open_confirmed": self.relay_open_confirmed,
            "complete": self.complete,
        }


class Allocator(Protocol):
    """What the vehicle needs of an allocator (``controller.allocation``)."""

    def allocate(self, wrench: Sequence[float]) -> Any:
        """Split a body-frame wrench (3,) [fx_n, fy_n, mz_nm] into thrusts; per tick.

        Returns an object with ``thrust_n`` (N,) and, optionally,
        ``unallocated_wrench`` (3,) and ``saturated`` (N,) bool.
        """
        ...


@dataclass
class FaultBook:
    """Active fault conditions (re-evaluated every tick) and the latched record."""

    active: dict[str, str] = field(default_factory=dict)
    latched: list[str] = field(default_factory=list)

    def set(self, key: str, reason: str | None) -> bool:
        """Set (reason) or clear (None) one condition; True if it newly became active."""
        if reason is None:
            self.active.pop(key, None)
            return False
        new = key not in self.active
        self.active[key] = reason
        return new


@dataclass(frozen=True)
class DeviceSlot:
    """A device the vehicle talks to, as the rig built it."""

    name: str
    driver: Any
    accepted_firmware: str


class Vehicle:
    """The per-tick controller of one vehicle.

    Parameters
    ----------
    fsm : FsmEngine
        The state machine engine (``controller.fsm``).
    can_ports : dict[str, CanPort]
        CAN ports by bus name (polled in read, stats in the summary).
    valve_board : DeviceSlot
        The valve board (driver: ``hal.devices.valve_board.ValveBoardDriver``).
    mcu : DeviceSlot
        The MCU (driver: ``hal.devices.qiki_mcu.McuDriver``).
    valve_port : CanPort
        The CAN port the valve board hangs on.
    allocator : Allocator
        ``allocate(wrench (3,)) -> result`` with ``.thrust_n`` (N,).
    thruster_valves : sequence of int, shape (N,)
        Valve index of each thruster.
    n_valves : int
        Valves on the board; the command frame carries one duty per valve.
    max_thrust_n : sequence of float, shape (N,)
        Per-thruster maximum (N).
    guard : OutputGuard
    gains : PoseGains
    mission : MissionExecutor or None
    record : callable ``(tick, time_s, kind, **fields)``
        Event sink (the run record).
    post_timeout_s : float
        POST gives up (``post_failed``) after this long in ``boot``.
    modulator : ValveCommander, optional
        ``duty_pct(thrust_n (N,), tick_index) -> (N,)`` percent, and ``reset()``;
        default: thrust / max, in percent, every tick.
    overruns_last_second : callable ``(now_s) -> int``, optional
        From the real-time loop (T02).
    max_overruns_per_s : int
    subsystems : sequence of Subsystem
        Optional radars/power (``controller.subsystems``), called at fixed tick points.
    """

    def __init__(
        self,
        *,
        fsm,
        can_ports: dict,
        valve_board: DeviceSlot,
        mcu: DeviceSlot,
        valve_port,
        allocator: Allocator,
        thruster_valves: Sequence[int],
        n_valves: int,
        max_thrust_n: Sequence[float],
        guard: OutputGuard,
        gains: PoseGains,
        mission: MissionExecutor | None,
        record: Callable[..., None],
        post_timeout_s: float = 5.0,
        modulator=None,
        overruns_last_second: Callable[[float], int] | None = None,
        max_overruns_per_s: int = 5,
        subsystems: Sequence[Any] = (),
    ) -> None:
        self.fsm = fsm
        self.can_ports = can_ports
        self.vb = valve_board
        self.mcu = mcu
        self.valve_port = valve_port
        self.allocator = allocator
        self.thruster_valves = list(thruster_valves)
        self.n_valves = n_valves
        self.max_thrust_n = list(max_thrust_n)
        self.guard = guard
        self.gains = gains
        self.mission = mission
        self.record = record
        self.post_timeout_s = post_timeout_s
        self.modulator = modulator
        self.overruns_last_second = overruns_last_second
        self.max_overruns_per_s = max_overruns_per_s
        self.subsystems = list(subsystems)
        #: per CAN bus: (name, port, bus-off fault key, send-failure fault key)
        self._port_faults = [(n, p, f"{n}_busoff", f"{n}_send") for n, p in can_ports.items()]

        self.faults = FaultBook()
        self.tick_index = 0
        self.now_s = 0.0
        self.post_started_s: float | None = None
        self.post_result: dict[str, dict[str, Any]] = {}
        self.post_passed = False
        self.rail_requested = False
        self.rail_requested_at_s = 0.0
        self.pending_events: list[str] = []
        self.transitions: list[list[Any]] = []
        self.demand_n: list[float] | None = None
        self.first_fault: str | None = None
        self.unallocated_sq = 0.0
        self.alloc_ticks = 0
        self.saturated_ticks = 0
        self._guard_faulted = False
        self._was_allowed = False
        self.foreign_command_s: float | None = None
        self.last_refusal: tuple[str, str] | None = None
        self.failed_thrusters: set[int] = set()
        self.failures_handled: list[dict[str, Any]] = []
        self._span_reason: str | None = None
        #: Set for good by the exception barrier or a shutdown: outputs are zero from then on.
        self.output_inhibit: str | None = None
        #: The first exception caught by the barrier, one line (``safe_mode`` reason).
        self.exception_reason: str | None = None
        self.exceptions_caught = 0
        self.shutdown_reason: str | None = None
        self.shutdown_started_s = 0.0
        self.shutdown_zero_ticks = 0
        self._last_frame_zero = False
        self._actions = {
            "run_post": self._act_run_post,
            "enable_valve_rail": self._act_enable_rail,
            "disable_valve_rail": self._act_disable_rail,
            "latch_fault": self._act_latch_fault,
            "clear_faults": self._act_clear_faults,
            "start_mission_clock": self._act_start_mission,
        }
        for action in self.fsm.initial_actions:
            self._run_action(action)

    # ------------------------------------------------------------------ helpers
    @property
    def state(self) -> str:
        """Current FSM state name."""
        return self.fsm.state

    def command(self, event: str) -> None:
        """Queue an operator or mission event for the next update (O04 arbiter input)."""
        self.pending_events.append(event)

    def _log(self, kind: str, **fields: Any) -> None:
        self.record(self.tick_index, self.now_s, kind, **fields)

    def _condition(self, key: str, reason: str | None) -> bool:
        """Set (reason) or clear (None) a fault condition; log it and keep the first fault.

        Returns True when the condition newly became active.
        """
        if not self.faults.set(key, reason):
            return False
        self._log("fault", source=key, reason=reason)
        if self.first_fault is None:
            self.first_fault = reason
        return True

    # ------------------------------------------------------------------ actions
    def _run_action(self, name: str) -> None:
        self._actions[name]()
        for sub in self.subsystems:
            sub.on_action(name, self.now_s, self)

    def _act_run_post(self) -> None:
        self.post_started_s = self.now_s
        self.post_passed = False
        self.post_result = {}
        self.mcu.driver.request_hello()

    def _act_enable_rail(self) -> None:
        self.rail_requested = True
        self.rail_requested_at_s = self.now_s
        self.mcu.driver.request_rail(True)

    def _act_disable_rail(self) -> None:
        self.rail_requested = False
        self.mcu.driver.request_rail(False)

    def _act_latch_fault(self) -> None:
        for reason in self.faults.active.values():
            if reason not in self.faults.latched:
                self.faults.latched.append(reason)

    def _act_clear_faults(self) -> None:
        self.faults.latched.clear()

    def _act_start_mission(self) -> None:
        if self.mission is not None:
            self.mission.start(self.now_s)

    # ------------------------------------------------------------------ guards
    def _guard(self, name: str) -> tuple[bool, str]:
        if name == "arming_checks_pass":
            if not self.post_passed:
                return False, "POST has not passed"
            if self.faults.active:
                return False, "active fault: " + "; ".join(sorted(self.faults.active.values()))
            if not self.mcu.driver.estop_released_confirmed(self.now_s):
                return False, "E-stop is pressed or its state is unknown"
            for port_name, port in self.can_ports.items():
                if port.error_passive:
                    return False, f"CAN bus {port_name} is error-passive"
            for sub in self.subsystems:
                ok, reason = sub.arming_check(self.now_s, self)
                if not ok:
                    return False, reason
            return True, ""
        if name == "faults_cleared":
            if self.faults.active:
                return False, "fault still active: " + "; ".join(sorted(self.faults.active.values()))
            return True, ""
        if name == "estop_released":
            if not self.mcu.driver.estop_released_confirmed(self.now_s):
                return False, "E-stop is still pressed (or no fresh MCU status says released)"
            return True, ""
        return False, f"unknown guard {name}"

    # ------------------------------------------------------------------ the tick
    def tick(self, k: int, now_s: float, dt_s: float) -> None:
        """Run one control tick (per tick): read, update, write, behind the exception barrier.

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
        An ``Exception`` raised by any phase does not leave this method: see
        :meth:`_on_exception` (ISSUE 10 part 2; SAFETY.md: anything that can stop the
        process leaves the valves commanded to zero). ``BaseException`` that is not an
        ``Exception`` (a forced stop, ``KeyboardInterrupt``) passes through.
        """
        self.tick_index = k
        self.now_s = now_s
        self._last_frame_zero = False
        try:
            self.read(now_s)
            self.update(now_s, dt_s)
            self.write(now_s, dt_s)
        except Exception as exc:  # noqa: BLE001 - the barrier: every fault lands in safe_mode
            self._on_exception(exc, now_s)
        if self.shutdown_reason is not None and self._last_frame_zero:
            self.shutdown_zero_ticks += 1

    def _on_exception(self, exc: Exception, now_s: float) -> None:
        """The exception barrier: zero outputs, ``safe_mode``, traceback to the record."""
        self.exceptions_caught += 1
        reason = f"exception in tick: {type(exc).__name__}: {one_line(exc)}"
        first = self.exception_reason is None
        if first:
            self.exception_reason = reason
            self.output_inhibit = reason
            self._log("exception", reason=reason, traceback=traceback.format_exc())
            logger.error("%s (tick %d); outputs zero from now on", reason, self.tick_index)
        try:
            self._condition("tick_exception", self.exception_reason)
            if self.fsm.state not in ("safe_mode", "estop"):
                self._step_fsm(now_s, ["fault"])
        except Exception as exc2:  # noqa: BLE001 - the FSM itself failed: outputs stay zero
            if first:
                self._log("exception", reason=f"FSM step after the exception failed: {one_line(exc2)}")
        self.send_zero(now_s)
        try:
            self.mcu.driver.service(now_s, self.fsm.state)
        except Exception:  # noqa: BLE001 - the MCU drops the rail when heartbeats stop
            pass

    def send_zero(self, now_s: float) -> bool:
        """Send one all-zero valve command now, best effort (barrier, forced stop).

        Returns
        -------
        bool
            True when the frame was handed to the CAN port.
        """
        if self.foreign_command_s is not None:  # B09: our TX to the board stopped for good
            return False
        try:
            frame = self.vb.driver.command_frame([0.0] * self.n_valves)
            self.valve_port.send(frame, now_s)
        except Exception as exc:  # noqa: BLE001 - nothing more can be done from here
            logger.error("zero valve command could not be sent: %s", one_line(exc))
            return False
        self._last_frame_zero = True
        return True

    # ------------------------------------------------------------------ shutdown
    def begin_shutdown(self, reason: str, now_s: float) -> None:
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

    def shutdown_status(self, now_s: float) -> ShutdownStatus:
        """Where the shutdown stands (per tick, after :meth:`tick`).

        The valve rail counts as confirmed off when an MCU status received after the
        shutdown began says ``rail_enabled`` is false; the PDU relay (when the rig has a
        power subsystem with a PDU) when its read-back confirmed the relay open.
        """
        mcu = self.mcu.driver
        st = mcu.status
        rx_s = getattr(mcu, "status_rx_s", None)
        rail_ok = bool(st is not None and rx_s is not None and rx_s >= self.shutdown_started_s and not st.rail_enabled)
        relay: bool | None = None
        for sub in self.subsystems:
            confirm = getattr(sub, "valve_rail_open_confirmed", None)
            if confirm is not None:
                v = confirm()
                if v is not None:
                    relay = bool(v) if relay is None else (relay and bool(v))
        disarmed = self.fsm.state not in ARMING_STATES
        complete = (self.shutdown_zero_ticks >= SHUTDOWN_ZERO_TICKS and disarmed and rail_ok and relay is not False)
        return ShutdownStatus(self.shutdown_reason or "", self.shutdown_started_s, self.shutdown_zero_ticks,
                              disarmed, rail_ok, relay, complete)

    def read(self, now_s: float) -> None:
        """Read phase (per tick): drain every bus and decode; ``now_s`` is the tick time (s)."""
        for port in self.can_ports.values():
            port.poll(now_s)
        self.mcu.driver.poll(now_s)
        for sub in self.subsystems:
            sub.read(now_s, self)

    def _monitor(self, now_s: float) -> list[str]:
        """Safety monitor (per tick): set/clear fault conditions, return events to raise."""
        events: list[str] = []
        vb = self.vb.driver
        mcu = self.mcu.driver
        state = self.fsm.state
        booting = state == "boot"

        def cond(key: str, reason: str | None) -> None:
            if self._condition(key, reason):
                events.append("fault")

        if mcu.estop_pressed and state != "estop":
            events.append("estop")
        if self.foreign_command_s is not None:
            self._condition("b09", "another node sends our thruster command ID")  # raises estop, not fault
            if state != "estop":
                events.append("estop")
        if not booting:
            cond("mcu_status", None if mcu.status_fresh(now_s) else "MCU status stale")
            cond("mcu_pose", None if mcu.pose_fresh(now_s) else "MCU pose stale")
            cond("vb_status", None if vb.status_fresh(now_s) else "valve board status stale")
            cond("vb_heartbeat", None if vb.heartbeat_fresh(now_s) else "valve board heartbeat lost")
            cond("vb_reboot", "valve board rebooted" if vb.rebooted else None)
            cond("mcu_reboot", "MCU rebooted" if mcu.mcu_reboots else None)
            st = vb.status
            vfault = st.valve_fault_mask if st is not None else 0
            cond("thrusters", self._thruster_failures(int(vfault)))
            if state in ARMING_STATES and self.rail_requested and now_s - self.rail_requested_at_s > 0.1:
                status = mcu.status
                rail_on = bool(status is not None and status.rail_enabled)
                cond("rail", None if rail_on else "valve rail dropped by the MCU")
        for name, port, busoff_key, send_key in self._port_faults:
            if port.bus_off and busoff_key not in self.faults.active:
                port.flush_tx()  # B04: no stale command may leave after recovery
            cond(busoff_key, f"CAN bus {name} bus-off" if port.bus_off else None)
            fails = port.consecutive_send_failures
            cond(send_key, f"CAN bus {name}: {fails} consecutive send failures" if fails >= 3 else None)
        for sub in self.subsystems:
            for key, reason in sub.monitor(now_s, self):
                cond(f"{sub.name}.{key}", reason)
        if self.guard.fault_reason is not None and not self._guard_faulted:
            self._guard_faulted = True
            cond("output_guard", self.guard.fault_reason)
        if self.overruns_last_second is not None:
            n = self.overruns_last_second(now_s)
            cond("lag", f"system lagging: {n} overruns in 1 s" if n > self.max_overruns_per_s else None)
        return events

    def on_foreign_command(self, msg, now_s: float) -> None:
        """CAN handler for our own thruster command ID heard from the bus (SAFETY.md B09).

        We never receive our own frames, so another node is sending our command: a
        latched E-stop-class fault; all our TX to the valve board stops.

        Parameters
        ----------
        msg : can.Message
            The frame heard (not decoded).
        now_s : float
            Time it was polled (s).
        """
        if self.foreign_command_s is None:
            self.foreign_command_s = now_s

    def _thruster_failures(self, valve_fault_mask: int) -> str | None:
        """Mark thrusters on faulted valves failed and re-plan (SAFETY.md D06).

        Failures latch until the vehicle is back in ``idle``. The allocator drops failed
        thrusters; if the rest no longer spans the wrench space, the reason is returned
        (a fault condition); otherwise the run goes on with the re-planned allocation.
        """
        newly = [
            i for i, v in enumerate(self.thruster_valves)
            if valve_fault_mask >> v & 1 and i not in self.failed_thrusters
        ]
        if newly:
            self.failed_thrusters.update(newly)
            self.failures_handled.append({"time_s": round(self.now_s, 6), "thrusters": sorted(newly)})
            self._log("thruster_failed", thrusters=sorted(newly), all_failed=sorted(self.failed_thrusters))
            set_failures = getattr(self.allocator, "set_failures", None)
            if set_failures is not None:
                set_failures(stuck_closed=sorted(self.failed_thrusters))
                ok, why = self.allocator.spans()
                self._span_reason = None if ok else why
            else:
                self._span_reason = "allocator cannot re-plan around failed thrusters"
        if self.failed_thrusters and self._span_reason is not None:
            return f"failed thrusters {sorted(self.failed_thrusters)}: geometry no longer spans ({self._span_reason})"
        return None

    def _clear_thruster_failures(self) -> None:
        if self.failed_thrusters:
            self.failed_thrusters.clear()
            self._span_reason = None
            set_failures = getattr(self.allocator, "set_failures", None)
            if set_failures is not None:
                set_failures(stuck_closed=())

    def _post(self, now_s: float) -> list[str]:
        if self.fsm.state != "boot" or self.post_started_s is None or self.post_passed:
            return []
        report = {}
        for slot in (self.vb, self.mcu):
            ok, reason = slot.driver.post_report(now_s, slot.accepted_firmware)
            report[slot.name] = {"passed": bool(ok), "reason": reason}
        waiting = False
        for sub in self.subsystems:
            sub_report = sub.post_report(now_s)
            if sub_report is None:
                waiting = True
                continue
            for dev, (ok, reason) in sub_report.items():
                report[dev] = {"passed": bool(ok), "reason": reason}
        self.post_result = report
        if not waiting and all(r["passed"] for r in report.values()):
            self.post_passed = True
            self._log("post", passed=True, devices=report)
            return ["post_passed"]
        if now_s - self.post_started_s >= self.post_timeout_s:
            self._log("post", passed=False, devices=report)
            self.post_started_s = None
            return ["post_failed"]
        return []

    def update(self, now_s: float, dt_s: float) -> None:
        """Update phase (per tick): safety monitor, POST, FSM step, actions, control.

        ``now_s`` is the tick time (s); ``dt_s`` (s) is not used by this phase.
        """
        events = self._monitor(now_s)
        events += self._post(now_s)
        events += self.pending_events
        self.pending_events = []
        self._step_fsm(now_s, events)
        self.demand_n = None
        if self.fsm.outputs == "allocate":
            self.demand_n = self._control(now_s)

    def _step_fsm(self, now_s: float, events) -> None:
        for tr in self.fsm.step(now_s, events, self._guard):
            if tr.refused:
                self._log("refused", event=tr.event, state=tr.source, reason=tr.reason)
                self.last_refusal = (tr.event, tr.reason)
                continue
            self._log("transition", source=tr.source, event=tr.event, target=tr.target)
            self.transitions.append([round(tr.time_s, 6), tr.source, tr.event, tr.target])
            if tr.target == "idle":
                self._clear_thruster_failures()
            for a in tr.actions:
                self._run_action(a)

    def _control(self, now_s: float) -> list[float] | None:
        pose_msg = self.mcu.driver.pose
        if pose_msg is None or self.mission is None:
            return None
        pose = (pose_msg.x_m, pose_msg.y_m, pose_msg.yaw_rad)
        vel = (pose_msg.vx_world_mps, pose_msg.vy_world_mps, pose_msg.yaw_rate_radps)
        prog = self.mission.update(now_s, pose, math.hypot(vel[0], vel[1]))
        if prog.reached_now:
            self._log("waypoint_reached", index=self.mission.waypoints_reached - 1)
        if prog.complete:
            self.command("mission_complete")
            return None
        wrench = pose_pd_wrench(self.gains, pose, vel, prog.setpoint)
        result = self.allocator.allocate(wrench)
        thrust = [float(v) for v in result.thrust_n]
        self.alloc_ticks += 1
        un = getattr(result, "unallocated_wrench", None)
        if un is not None:
            self.unallocated_sq += float(sum(float(v) * float(v) for v in un))
        sat = getattr(result, "saturated", None)
        if sat is not None and any(bool(s) for s in sat):
            self.saturated_ticks += 1
        return thrust

    def write(self, now_s: float, dt_s: float) -> None:
        """Write phase: output guard, duty encoding, send; host heartbeat (per tick).

        ``dt_s`` is the real time since the previous tick (from the loop), which the
        output guard's rate limit uses (SAFETY.md T01).
        """
        allow = self.fsm.outputs == "allocate" and self.output_inhibit is None
        thrust = self.guard.apply(self.demand_n if allow else None, allow, dt_s)
        duty = [0.0] * self.n_valves
        if allow and self.modulator is not None:
            per_thruster = self.modulator.duty_pct(thrust, self.tick_index)
        elif allow:
            per_thruster = [100.0 * t / m for t, m in zip(thrust, self.max_thrust_n)]
        else:
            per_thruster = None
            if self.modulator is not None and self._was_allowed:
                self.modulator.reset()
        self._was_allowed = allow
        if per_thruster is not None:
            for i, v in enumerate(self.thruster_valves):
                duty[v] = per_thruster[i]
        if self.foreign_command_s is None:  # B09: our TX to the board stops for good
            frame = self.vb.driver.command_frame(duty)
            self.valve_port.send(frame, now_s)
            self._last_frame_zero = not any(duty)
        self.mcu.driver.service(now_s, self.fsm.state)
        for sub in self.subsystems:
            sub.write(now_s, self)
