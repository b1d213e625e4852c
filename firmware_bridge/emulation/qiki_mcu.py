"""Emulated QIKI MCU firmware: the far end of the MCU serial link on a virtual rig.

It speaks :mod:`firmware_bridge.protocols.qiki_mcu` over any
:class:`hal.serial.link.SerialLink` and models what the host's safety case relies on
(ARCHITECTURE.md section 5, item 3; SAFETY.md T03, D08, D09, D12):

* the valve-rail enable output is on only while the host requested it AND a host heartbeat
  arrived within ``heartbeat_timeout_s``; a heartbeat timeout or an E-stop press clears the
  request, so the rail stays off until the host asks again (never re-enabled by itself);
* MCU_STATUS goes out at ``status_rate_hz`` and at once on any change of E-stop, rail,
  watchdog state or fault flags, and in reply to every RAIL_REQUEST (the acknowledgement);
* IMU and POSE stream at their rates from the simulated ``world``.

Time comes only from the ``now_s`` passed to :meth:`McuEmulator.step` (lockstep SimClock or
real-time MonotonicClock); the emulator never sleeps and starts no thread.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol

from firmware_bridge.emulation.faults import FaultParam, FaultParams, FaultSpec
from firmware_bridge.protocols import qiki_mcu as proto
from firmware_bridge.protocols.framing import FrameDecoder
from firmware_bridge.protocols.qiki_mcu import (
    FaultFlag,
    Hello,
    HelloRequest,
    HostHeartbeat,
    McuMessage,
    McuStatus,
    RailRequest,
    WatchdogState,
)
from hal.errors import HalError
from hal.serial.link import PipeLink, SerialLink

__all__ = ["McuEmulator", "WorldState"]

_EPS_S = 1e-6  # tolerance on due times: SimClock ns -> float s rounding
_EARLY_S = 1e-9  # next-due times are given this much early: a step then is a no-op, never a miss
_ID_IMU = int(proto.MsgId.IMU)
_ID_POSE = int(proto.MsgId.POSE)


class WorldState(Protocol):
    """What the MCU emulator reads of the simulated world at each IMU/POSE send.

    World frame: ``x_m, y_m`` (m), ``yaw_rad`` (rad), ``vx_mps, vy_mps`` (m/s),
    ``yaw_rate_radps`` (rad/s); body frame: ``ax_body_mps2, ay_body_mps2`` (m/s^2).
    """

    x_m: float
    y_m: float
    yaw_rad: float
    vx_mps: float
    vy_mps: float
    yaw_rate_radps: float
    ax_body_mps2: float
    ay_body_mps2: float


class _Schedule:
    """Fixed-rate schedule anchored at a start time; skips missed slots (no bursts)."""

    __slots__ = ("period_s", "t0_s", "k", "skipped", "next_due_s")

    def __init__(self, rate_hz: float) -> None:
        self.period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.t0_s = 0.0
        self.k = 0
        self.skipped = 0
        #: Earliest time (s) at which :meth:`due` may say True (inf: disabled); kept by
        #: :meth:`start` and :meth:`due`, the only writers of ``t0_s`` and ``k``.
        self.next_due_s = self._next_due()

    def _next_due(self) -> float:
        if self.period_s <= 0.0:
            return math.inf
        return self.t0_s + self.k * self.period_s - _EPS_S - _EARLY_S

    def start(self, t0_s: float) -> None:
        self.t0_s = t0_s
        self.k = 0
        self.next_due_s = self._next_due()

    def due(self, now_s: float) -> bool:
        if self.period_s <= 0.0:
            return False
        due_s = self.t0_s + self.k * self.period_s
        if now_s + _EPS_S < due_s:
            return False
        # next slot strictly after now: late steps send once, never a burst
        k_now = int((now_s + _EPS_S - self.t0_s) / self.period_s)
        if k_now > self.k:
            self.skipped += k_now - self.k
        self.k = k = k_now + 1
        self.next_due_s = self.t0_s + k * self.period_s - _EPS_S - _EARLY_S  # _next_due(), period > 0
        return True


class McuEmulator:
    """Emulated QIKI MCU board.

    Parameters
    ----------
    link : SerialLink
        The MCU's end of the serial link (PipeLink end, pty master FdLink, ...).
    world : WorldState
        The simulated world: float attributes ``x_m, y_m, yaw_rad, vx_mps,
        vy_mps, yaw_rate_radps`` (world frame: m, rad, m/s, rad/s) and ``ax_body_mps2,
        ay_body_mps2`` (body frame, m/s^2). Read at each IMU/POSE send.
    firmware_version : tuple of int, optional
        ``(major, minor, patch)`` reported in HELLO (default ``(1, 0, 0)``).
    heartbeat_timeout_s : float, optional
        Host-watchdog timeout in s (default 0.2, SAFETY.md "device-side command timeout").
    imu_rate_hz, pose_rate_hz, status_rate_hz : float, optional
        Stream rates in Hz (defaults 100, 100, 10); 0 disables a stream.
    pose_noise_m : float, optional
        Standard deviation of Gaussian noise on ``x_m`` and ``y_m`` in m (default 0).
    yaw_noise_rad : float, optional
        Standard deviation of Gaussian noise on ``yaw_rad`` in rad (default 0).
    seed : int, optional
        Seed of the private ``random.Random`` used for noise, and of a second one for the
        bytes of the ``serial_garbage`` fault (deterministic runs).
    board_serial : int, optional
        u32 reported in HELLO.

    Attributes
    ----------
    rail_enabled : bool
        The valve-rail enable output as driven by the board.
    watchdog_state : WatchdogState
        HOST_TIMEOUT at boot until the first host heartbeat.
    estop_pressed : bool
        The E-stop input.
    fault_flags : int
        FaultFlag bits reported in MCU_STATUS (settable, e.g. to fail POST).
    drop_host_heartbeats : bool
        Fault knob: host heartbeats are lost on the wire (the watchdog will time out).
    silent : bool
        Fault knob: the MCU transmits nothing (its TX line is cut); it still listens.
    last_host_heartbeat_rx_s : float or None
        ``now_s`` of the step that received the last host heartbeat.

    Notes
    -----
    Fault-plan target (:mod:`firmware_bridge.emulation.faults`): see :data:`FAULTS`.
    """

    #: Faults of a plan (``emulation.faults`` entries whose target is the MCU).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("transmits nothing (TX line cut); still listens"),
        "host_heartbeat_loss": FaultSpec("host heartbeats are lost on the wire (the watchdog times out)"),
        "estop_press": FaultSpec("the E-stop is pressed", windowed=False),
        "estop_release": FaultSpec("the E-stop is released", windowed=False),
        "serial_garbage": FaultSpec(
            "random bytes on the TX line (seeded: same seed, same bytes)",
            MappingProxyType({"length": FaultParam(int, 64, 1, 100_000, "number of random bytes")}),
            windowed=False),
    })

    def __init__(
        self,
        link: SerialLink,
        world: WorldState,
        *,
        firmware_version: tuple[int, int, int] = (1, 0, 0),
        heartbeat_timeout_s: float = 0.2,
        imu_rate_hz: float = 100,
        pose_rate_hz: float = 100,
        status_rate_hz: float = 10,
        pose_noise_m: float = 0.0,
        yaw_noise_rad: float = 0.0,
        seed: int = 0,
        board_serial: int = 0x51494B31,
    ) -> None:
        if heartbeat_timeout_s <= 0:
            raise ValueError(f"heartbeat_timeout_s must be > 0, got {heartbeat_timeout_s}")
        if len(firmware_version) != 3:
            raise ValueError(f"firmware_version must be (major, minor, patch), got {firmware_version}")
        self.link = link
        self.world = world
        self.firmware_version = tuple(int(v) for v in firmware_version)
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        self.pose_noise_m = float(pose_noise_m)
        self.yaw_noise_rad = float(yaw_noise_rad)
        self.board_serial = int(board_serial)
        self._rng = random.Random(seed)
        self._garbage_rng = random.Random(seed)  # only the serial_garbage fault draws from it
        self._imu = _Schedule(imu_rate_hz)
        # IMU and POSE at the same rate share one schedule: two would say the same at
        # every step (same start, period and slot count), and it is asked once per step
        self._pose = self._imu if float(pose_rate_hz) == float(imu_rate_hz) else _Schedule(pose_rate_hz)
        self._status = _Schedule(status_rate_hz)
        self._decoder = FrameDecoder()
        self._seq: dict[int, int] = {}
        # board state
        self.estop_pressed = False
        self.rail_enabled = False
        self.rail_requested = False
        self.watchdog_state = WatchdogState.HOST_TIMEOUT
        self.fault_flags = int(FaultFlag.NONE)
        # fault knobs
        self.drop_host_heartbeats = False
        self.silent = False
        # bookkeeping
        self._booted = False
        self._boot_s = 0.0
        self._now_s = 0.0
        self.last_host_heartbeat_rx_s: float | None = None  # on the step() clock, s
        self._last_sent_status: tuple[bool, bool, WatchdogState, int] | None = None
        self.last_host_heartbeat: HostHeartbeat | None = None
        self.counters = {
            "host_heartbeats": 0,
            "heartbeats_dropped": 0,
            "rail_requests": 0,
            "rail_refused": 0,
            "hello_requests": 0,
            "invalid": 0,
            "frames_tx": 0,
            "link_errors": 0,
        }

    # ------------------------------------------------------------------ inputs (knobs)
    def press_estop(self) -> None:
        """Press the E-stop: the rail output drops at once, MCU_STATUS is sent at once."""
        self.estop_pressed = True
        self.rail_requested = False
        self._update_outputs()
        if self._booted:
            self._send_status_if_changed()

    def release_estop(self) -> None:
        """Release the E-stop; the rail stays off until the host requests it again."""
        self.estop_pressed = False
        self._update_outputs()
        if self._booted:
            self._send_status_if_changed()

    def reboot(self, now_s: float | None = None, *, by_watchdog: bool = False) -> None:
        """Fault knob: the board resets (brown-out, or its own hardware watchdog).

        ``now_s`` is accepted for symmetry with the other emulators and unused: the board
        boots at its next :meth:`step`.

        At the next :meth:`step` it boots again: uptime restarts at 0, sequence counters
        restart, the rail request is forgotten (rail off), HELLO is sent. The watchdog state
        reads RESET after a watchdog reset (until the next host heartbeat), else HOST_TIMEOUT.
        """
        self._booted = False
        self._seq.clear()
        self._decoder.reset()
        self.rail_requested = False
        self.rail_enabled = False
        self.last_host_heartbeat_rx_s = None
        self._last_sent_status = None
        self.watchdog_state = WatchdogState.RESET if by_watchdog else WatchdogState.HOST_TIMEOUT

    def inject_garbage(self, data: bytes) -> None:
        """Fault knob: put raw ``data`` on the MCU's TX line (SAFETY.md D08, F05)."""
        self._write(bytes(data))

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of :data:`FAULTS` (fault-plan target protocol).

        Parameters
        ----------
        fault : str
            A key of :data:`FAULTS`.
        params : mapping
            Checked parameters (``length`` for ``serial_garbage``).
        now_s : float
            Time of the step, s (unused: every fault acts from the next step).
        """
        if fault == "silent":
            self.silent = True
        elif fault == "host_heartbeat_loss":
            self.drop_host_heartbeats = True
        elif fault == "estop_press":
            self.press_estop()
        elif fault == "estop_release":
            self.release_estop()
        elif fault == "serial_garbage":
            rng = self._garbage_rng
            self.inject_garbage(bytes(rng.getrandbits(8) for _ in range(int(params["length"]))))
        else:
            raise KeyError(f"McuEmulator has no fault {fault!r}")

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End a windowed fault (``silent``, ``host_heartbeat_loss``) at ``now_s`` (s)."""
        if fault == "silent":
            self.silent = False
        elif fault == "host_heartbeat_loss":
            self.drop_host_heartbeats = False

    @property
    def decoder_stats(self) -> dict[str, int]:
        """Framing counters of what the MCU received from the host."""
        return self._decoder.stats.as_dict()

    # ------------------------------------------------------------------ event-driven stepping
    @property
    def next_due_s(self) -> float:
        """Earliest time (s) at which :meth:`step` may act without new input from the host.

        The next IMU, POSE or periodic MCU_STATUS slot and the host watchdog's expiry, each
        given slightly early (a step before the exact time does nothing); ``-inf`` before
        boot. A step between these times and without received bytes changes nothing, so
        the simulation steps the board only at them and when :meth:`input_pending` says so.
        """
        if not self._booted:
            return -math.inf
        due = min(self._imu.next_due_s, self._pose.next_due_s, self._status.next_due_s)
        if self.watchdog_state == WatchdogState.OK:
            last = self.last_host_heartbeat_rx_s
            if last is None:
                return -math.inf
            due = min(due, last + self.heartbeat_timeout_s - _EPS_S - _EARLY_S)
        return due

    @property
    def input_pending(self) -> bool | None:
        """Whether received bytes wait on the link; None when the link cannot tell (a pty)."""
        link = self.link
        if type(link) is PipeLink:
            return link.pending() > 0
        return None

    # ------------------------------------------------------------------ per tick
    def step(self, now_s: float) -> None:
        """Advance the firmware to ``now_s``: receive, run the watchdog, transmit what is due.

        Parameters
        ----------
        now_s : float
            Current time in s on the caller's clock (monotonic, never decreasing).

        Notes
        -----
        Per-tick function, up to 1 kHz; costs one non-blocking read plus a few comparisons
        when nothing is due. A link failure is counted and the step carries on.
        """
        self._now_s = now_s
        if not self._booted:
            self._booted = True
            self._boot_s = now_s
            for sched in (self._imu, self._pose, self._status):
                sched.start(now_s)
            self._send(self._hello())
        self._receive(now_s)
        self._update_watchdog_now(now_s)
        self._update_outputs()
        self._send_status_if_changed()
        # a schedule's due() is False, and changes nothing, before its next_due_s
        status, imu, pose = self._status, self._imu, self._pose
        if now_s >= status.next_due_s and status.due(now_s):
            self._send(self._status_msg())
        imu_due = now_s >= imu.next_due_s and imu.due(now_s)
        pose_due = imu_due if pose is imu else now_s >= pose.next_due_s and pose.due(now_s)
        if not (imu_due or pose_due):
            return
        # IMU and POSE: packed from the fields (proto.encode_imu/encode_pose), the same
        # bytes as encoding the message objects; one uptime for both (the same now_s);
        # the seeded noise is drawn even when silent
        t_ms = self._t_ms()
        w = self.world
        if imu_due and not self.silent:
            r, ax, ay = float(w.yaw_rate_radps), float(w.ax_body_mps2), float(w.ay_body_mps2)
            self._write(proto.encode_imu(self._next_seq(_ID_IMU), t_ms, r, ax, ay))
        if pose_due:
            x, y, yaw = self._pose_xy_yaw()
            if not self.silent:
                vx, vy, r = float(w.vx_mps), float(w.vy_mps), float(w.yaw_rate_radps)
                self._write(proto.encode_pose(self._next_seq(_ID_POSE), t_ms, x, y, yaw, vx, vy, r))

    # ------------------------------------------------------------------ internals
    def _t_ms(self) -> int:
        return int((self._now_s - self._boot_s) * 1000.0 + 1e-6) & 0xFFFFFFFF

    def _hello(self) -> Hello:
        major, minor, patch = self.firmware_version
        return Hello(major, minor, patch, proto.PROTOCOL_VERSION, self.board_serial)

    def _status_msg(self) -> McuStatus:
        return McuStatus(
            self._t_ms(), self.estop_pressed, self.rail_enabled, self.watchdog_state, self.fault_flags & 0xFF
        )

    def _pose_xy_yaw(self) -> tuple[float, float, float]:
        """Return the POSE's ``x_m, y_m`` (m) and ``yaw_rad`` (rad): the world's plus seeded noise."""
        w = self.world
        x, y, yaw = float(w.x_m), float(w.y_m), float(w.yaw_rad)
        if self.pose_noise_m > 0.0:
            x += self._rng.gauss(0.0, self.pose_noise_m)
            y += self._rng.gauss(0.0, self.pose_noise_m)
        if self.yaw_noise_rad > 0.0:
            yaw += self._rng.gauss(0.0, self.yaw_noise_rad)
        return x, y, yaw

    def _next_seq(self, msg_id: int) -> int:
        """Take the next sequence number of ``msg_id`` and count a frame sent (not silent)."""
        seqs = self._seq
        seq = seqs.get(msg_id, 0)
        seqs[msg_id] = (seq + 1) & 0xFF
        self.counters["frames_tx"] += 1
        return seq

    def _update_outputs(self) -> None:
        self.rail_enabled = bool(
            self.rail_requested and not self.estop_pressed and self.watchdog_state == WatchdogState.OK
        )

    def _send_status_if_changed(self) -> None:
        """Send MCU_STATUS when its fields (E-stop, rail, watchdog, fault flags) differ from the last sent."""
        key = (self.estop_pressed, self.rail_enabled, self.watchdog_state, self.fault_flags & 0xFF)
        if key != self._last_sent_status:
            self._send(self._status_msg())

    def _receive(self, now_s: float) -> None:
        try:
            data = self.link.read(4096)
        except HalError:  # link failure: counted, the board keeps running
            self.counters["link_errors"] += 1
            return
        if not data:
            return
        for frame in self._decoder.feed(data):
            msg = proto.decode(frame)
            if msg is None:
                self.counters["invalid"] += 1
            elif type(msg) is HostHeartbeat:
                if self.drop_host_heartbeats:
                    self.counters["heartbeats_dropped"] += 1
                    continue
                self.counters["host_heartbeats"] += 1
                self.last_host_heartbeat = msg
                self.last_host_heartbeat_rx_s = now_s
                if self.watchdog_state != WatchdogState.OK:
                    self.watchdog_state = WatchdogState.OK
            elif type(msg) is RailRequest:
                self.counters["rail_requests"] += 1
                self._update_watchdog_now(now_s)
                if msg.enable:
                    if self.estop_pressed or self.watchdog_state != WatchdogState.OK:
                        self.counters["rail_refused"] += 1
                    else:
                        self.rail_requested = True
                else:
                    self.rail_requested = False
                self._update_outputs()
                self._send(self._status_msg())  # acknowledgement, sent every time
            elif type(msg) is HelloRequest:
                self.counters["hello_requests"] += 1
                self._send(self._hello())
            else:
                self.counters["invalid"] += 1  # an MCU->host message on the host's line

    def _update_watchdog_now(self, now_s: float) -> None:
        """Host watchdog: expired once ``heartbeat_timeout_s`` has elapsed since the last one."""
        last = self.last_host_heartbeat_rx_s
        if last is None or now_s - last >= self.heartbeat_timeout_s - _EPS_S:
            if self.watchdog_state == WatchdogState.OK:
                self.watchdog_state = WatchdogState.HOST_TIMEOUT
                self.rail_requested = False  # the rail stays off until a new request

    def _send(self, msg: McuMessage) -> None:
        if type(msg) is McuStatus:
            self._last_sent_status = (msg.estop_pressed, msg.rail_enabled, msg.watchdog_state, msg.fault_flags)
        if self.silent:
            return
        self._write(proto.encode(msg, self._next_seq(proto.MESSAGE_TYPES[type(msg)])))

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
        except HalError:  # link failure: counted, never fatal
            self.counters["link_errors"] += 1
