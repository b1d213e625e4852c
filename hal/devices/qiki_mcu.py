"""Host driver of the QIKI MCU board (IMU, pose feed, E-stop input, valve-rail enable line).

Speaks :mod:`firmware_bridge.protocols.qiki_mcu` over a :class:`hal.serial.link.SerialLink`.
The driver has no policy: it keeps the latest value of each stream with its receipt time on
the controller's clock, answers freshness questions, reports POST, and keeps the MCU's
host watchdog fed. What to do about a stale stream or a pressed E-stop is the controller's
business (controller/safety, the FSM).

Per tick (ARCHITECTURE.md section 3): ``poll(now_s)`` in the read phase, ``service(now_s,
host_state_code)`` in the write phase. Neither ever raises for wire input or a failed
link: a :class:`~hal.errors.BusError` marks the link down and is counted; with a link that
offers ``reopen()`` the driver retries with exponential backoff (SAFETY.md D12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import firmware_version as fwv
from firmware_bridge.protocols import qiki_mcu as proto
from firmware_bridge.protocols.framing import FrameDecoder
from firmware_bridge.protocols.qiki_mcu import (
    FaultFlag,
    Hello,
    HelloRequest,
    HostHeartbeat,
    HostState,
    Imu,
    McuMessage,
    McuStatus,
    MsgId,
    Pose,
    RailRequest,
    WatchdogState,
)
from hal.errors import BusConfigError, BusError
from hal.serial.link import SerialLink
from hal.snapshot import JsonValue, State, apply, capture, capture_all, part, restore_all

__all__ = ["McuDriver", "firmware_accepted", "parse_firmware_spec"]

def parse_firmware_spec(spec: str) -> list[tuple[str, tuple[int, int, int]]]:
    """Parse an accepted-firmware spec such as ``">=1.0.0"`` or ``">=1.2, <2"``.

    Short versions are allowed (missing parts are 0); the grammar is
    :mod:`firmware_bridge.protocols.firmware_version` with ``full=False``.

    Returns
    -------
    list of (str, tuple of int)
        ``(op, (major, minor, patch))`` clauses, all of which must hold.

    Raises
    ------
    BusConfigError
        One line naming the spec, if it does not parse.
    """
    try:
        return fwv.parse_spec(spec, full=False)
    except ProtocolError as exc:
        raise BusConfigError(f"accepted firmware {exc}") from exc


def firmware_accepted(version: tuple[int, int, int], spec: str) -> bool:
    """Return True if ``version`` satisfies every clause of ``spec``.

    Parameters
    ----------
    version : tuple of int
        ``(major, minor, patch)`` as reported in HELLO.
    spec : str
        Accepted-firmware spec (grammar of :func:`parse_firmware_spec`).

    Returns
    -------
    bool

    Raises
    ------
    BusConfigError
        If ``spec`` does not parse.
    """
    return fwv.spec_holds(version, parse_firmware_spec(spec))


def _host_state(code: Any) -> HostState:
    if isinstance(code, str):
        return HostState.__members__.get(code.strip().upper(), HostState.OTHER)
    try:
        return HostState(int(code))
    except (ValueError, TypeError):
        return HostState.OTHER


class McuDriver:
    """Driver of the QIKI MCU board over a serial link.

    Parameters
    ----------
    link : SerialLink
        The host end of the MCU's UART (PySerialLink, PipeLink end, ...).
    heartbeat_period_s : float, optional
        HOST_HEARTBEAT period in s (default 0.05; the MCU drops the rail after 0.2 s without).
    stale_after_periods : float, optional
        A stream is stale when its last message is older than this many periods
        (default 3, SAFETY.md defaults).
    imu_period_s, pose_period_s, status_period_s : float, optional
        Expected stream periods in s (defaults 0.01, 0.01, 0.1).
    max_rx_bytes_per_poll : int, optional
        Ingress bound per tick in bytes (default 16384, ~18 ticks of a saturated 921600
        baud line at 100 Hz); the rest stays in the OS buffer for the next tick
        (SAFETY.md B08/F05).
    reopen_backoff_s : tuple of float, optional
        ``(first, max)`` delay between reopen attempts after a link failure, doubling
        (default ``(0.1, 2.0)``). Only used when the link has ``reopen()``.
    name : str, optional
        Board name used in POST reasons (default ``"mcu"``).

    Attributes
    ----------
    hello, status, imu, pose : message or None
        Latest valid message of each kind, None until one is received.
    hello_rx_s, status_rx_s, imu_rx_s, pose_rx_s : float or None
        Receipt times in s on the ``now_s`` clock given to :meth:`poll` (SAFETY.md B03:
        judged by receipt time, never by the MCU's timestamps).
    link_up : bool
        False after a BusError until a successful reopen.
    """

    def __init__(
        self,
        link: SerialLink,
        *,
        heartbeat_period_s: float = 0.05,
        stale_after_periods: float = 3,
        imu_period_s: float = 0.01,
        pose_period_s: float = 0.01,
        status_period_s: float = 0.1,
        max_rx_bytes_per_poll: int = 16384,
        reopen_backoff_s: tuple[float, float] = (0.1, 2.0),
        name: str = "mcu",
    ) -> None:
        for key, value in (
            ("heartbeat_period_s", heartbeat_period_s),
            ("stale_after_periods", stale_after_periods),
            ("imu_period_s", imu_period_s),
            ("pose_period_s", pose_period_s),
            ("status_period_s", status_period_s),
        ):
            if not (value > 0):
                raise BusConfigError(f"{name}: {key} must be > 0, got {value}")
        self.link = link
        self.name = name
        self.heartbeat_period_s = float(heartbeat_period_s)
        self.stale_after_periods = float(stale_after_periods)
        self.imu_period_s = float(imu_period_s)
        self.pose_period_s = float(pose_period_s)
        self.status_period_s = float(status_period_s)
        self.max_rx_bytes_per_poll = int(max_rx_bytes_per_poll)
        self.reopen_backoff_s = (float(reopen_backoff_s[0]), float(reopen_backoff_s[1]))
        self._decoder = FrameDecoder()
        self.hello: Hello | None = None
        self.status: McuStatus | None = None
        self.imu: Imu | None = None
        self.pose: Pose | None = None
        self.hello_rx_s: float | None = None
        self.status_rx_s: float | None = None
        self.imu_rx_s: float | None = None
        self.pose_rx_s: float | None = None
        self.link_up = True
        self.last_link_error: str = ""
        self._tx_seq: dict[int, int] = {}
        self._rx_seq: dict[int, int] = {}
        self._next_heartbeat_s: float | None = None
        self._next_reopen_s: float | None = None
        self._backoff_s = self.reopen_backoff_s[0]
        self._counters: dict[str, int] = {
            "unknown": 0,
            "invalid": 0,
            "seq_gaps": 0,
            "seq_anomalies": 0,
            "bytes_rx": 0,
            "bytes_tx": 0,
            "frames_tx": 0,
            "tx_short": 0,
            "bus_errors": 0,
            "reopen_attempts": 0,
            "reopens": 0,
            "mcu_reboots": 0,
            "heartbeats_tx": 0,
        }
        self._seq_gaps_by_id: dict[str, int] = {}

    # ------------------------------------------------------------------ snapshot
    #: A snapshot's fields (issue 12 part 4): the latest messages, sequence numbers, timers,
    #: counters; the decoder's partial frame beside them.
    SNAPSHOT_FIELDS = ("hello", "status", "imu", "pose", "hello_rx_s", "status_rx_s", "imu_rx_s", "pose_rx_s",
                       "link_up", "last_link_error", "_tx_seq", "_rx_seq", "_next_heartbeat_s", "_next_reopen_s",
                       "_backoff_s", "_counters", "_seq_gaps_by_id")

    def snapshot(self) -> State:
        """Return the driver's state (:mod:`hal.snapshot`): latest values, counters, partial input."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "decoder": capture_all(self._decoder)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a driver built from the same configuration."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        restore_all(self._decoder, part(state, "decoder"))

    # ------------------------------------------------------------------ read phase
    def poll(self, now_s: float) -> int:
        """Drain the link (bounded), decode, and update the latest values.

        Parameters
        ----------
        now_s : float
            Controller time in s (SimClock or MonotonicClock); stamped as receipt time.

        Returns
        -------
        int
            Number of valid messages taken in this call.

        Notes
        -----
        Per-tick function (read phase). Never raises for wire input or a link failure.
        """
        if not self.link_up:
            self._maybe_reopen(now_s)
            if not self.link_up:
                return 0
        taken = 0
        budget = self.max_rx_bytes_per_poll
        decode = proto.decode
        while budget > 0:
            try:
                data = self.link.read(min(4096, budget))
            except BusError as exc:
                self._link_failed(now_s, exc)
                break
            if not data:
                break
            budget -= len(data)
            self._counters["bytes_rx"] += len(data)
            for frame in self._decoder.feed(data):
                msg = decode(frame)
                if msg is None:
                    self._counters["unknown" if not proto.is_known_id(frame.msg_id) else "invalid"] += 1
                    continue
                # _track_seq and _take inlined for the common case (the next sequence
                # number, a POSE): the rare cases call them as before
                msg_id, seq = frame.msg_id, frame.seq
                rx_seq = self._rx_seq
                last = rx_seq.get(msg_id)
                if last is None or (seq - last - 1) & 0xFF:
                    self._track_seq(msg_id, seq)
                else:
                    rx_seq[msg_id] = seq
                if type(msg) is Pose:
                    self.pose, self.pose_rx_s = msg, now_s
                else:
                    self._take(msg, now_s)
                taken += 1
        return taken

    def _track_seq(self, msg_id: int, seq: int) -> None:
        last = self._rx_seq.get(msg_id)
        self._rx_seq[msg_id] = seq
        if last is None:
            return
        missed = (seq - last - 1) & 0xFF
        if missed == 0:
            return
        if missed < 128:
            self._counters["seq_gaps"] += missed
            key = MsgId(msg_id).name
            self._seq_gaps_by_id[key] = self._seq_gaps_by_id.get(key, 0) + missed
        else:
            self._counters["seq_anomalies"] += 1  # repeat, reorder or sender restart

    def _take(self, msg: McuMessage, now_s: float) -> None:
        # keep in step with poll(): an in-order Pose is taken inline there (issue 16)
        if type(msg) is Pose:
            self.pose, self.pose_rx_s = msg, now_s
        elif type(msg) is Imu:
            self.imu, self.imu_rx_s = msg, now_s
        elif type(msg) is McuStatus:
            prev = self.status
            if prev is not None and msg.uptime_ms < prev.uptime_ms and prev.uptime_ms < 0xF0000000:
                self._mcu_rebooted()
            self.status, self.status_rx_s = msg, now_s
        elif type(msg) is Hello:
            self.hello, self.hello_rx_s = msg, now_s
        else:
            self._counters["invalid"] += 1  # a host->MCU message on the MCU's line

    def _mcu_rebooted(self) -> None:
        self._counters["mcu_reboots"] += 1
        self._rx_seq.clear()

    # ------------------------------------------------------------------ write phase
    def service(self, now_s: float, host_state_code: HostState | int | str) -> None:
        """Send HOST_HEARTBEAT when due (first call sends at once).

        Parameters
        ----------
        now_s : float
            Controller time in s.
        host_state_code : HostState, int or str
            The vehicle FSM state: a :class:`HostState`, its integer code, or the FSM state
            name (``"safe_mode"``, case-insensitive). Anything else is sent as
            ``HostState.OTHER``.

        Notes
        -----
        Per-tick function (write phase). Late calls send once and re-anchor the schedule
        (no bursts). Never raises for a link failure.
        """
        if not self.link_up:
            return
        due = self._next_heartbeat_s
        if due is not None and now_s + 1e-9 < due:
            return
        state = _host_state(host_state_code)
        if self._send(HostHeartbeat(int(now_s * 1000.0) & 0xFFFFFFFF, state)):
            self._counters["heartbeats_tx"] += 1
        if due is None or now_s - due >= self.heartbeat_period_s:
            self._next_heartbeat_s = now_s + self.heartbeat_period_s
        else:
            self._next_heartbeat_s = due + self.heartbeat_period_s

    def request_hello(self) -> bool:
        """Send HELLO_REQUEST; the MCU answers with HELLO. Returns True if written."""
        return self._send(HelloRequest(proto.PROTOCOL_VERSION))

    def request_rail(self, enable: bool) -> bool:
        """Send RAIL_REQUEST; the MCU answers with MCU_STATUS. Returns True if written.

        The MCU grants ``enable`` only while host heartbeats arrive and the E-stop is
        released; watch ``status.rail_enabled`` for the outcome.
        """
        return self._send(RailRequest(bool(enable)))

    def _send(self, msg: McuMessage) -> bool:
        if not self.link_up:
            return False
        msg_id = proto.MESSAGE_TYPES[type(msg)]
        seq = self._tx_seq.get(msg_id, 0)
        self._tx_seq[msg_id] = (seq + 1) & 0xFF
        try:
            frame = proto.encode(msg, seq)
        except ProtocolError:
            self._counters["invalid"] += 1
            return False
        try:
            n = self.link.write(frame)
        except BusError as exc:
            self._link_failed(None, exc)
            return False
        self._counters["bytes_tx"] += n
        self._counters["frames_tx"] += 1
        if n < len(frame):
            self._counters["tx_short"] += 1
            return False
        return True

    # ------------------------------------------------------------------ link health
    def _link_failed(self, now_s: float | None, exc: BusError) -> None:
        self.link_up = False
        self.last_link_error = str(exc)
        self._counters["bus_errors"] += 1
        self._backoff_s = self.reopen_backoff_s[0]
        self._next_reopen_s = None if now_s is None else now_s + self._backoff_s

    def _maybe_reopen(self, now_s: float) -> None:
        reopen = getattr(self.link, "reopen", None)
        if reopen is None:
            return
        if self._next_reopen_s is None:
            self._next_reopen_s = now_s + self._backoff_s
            return
        if now_s + 1e-9 < self._next_reopen_s:
            return
        self._counters["reopen_attempts"] += 1
        try:
            reopen()
        except (BusError, BusConfigError) as exc:
            self.last_link_error = str(exc)
            self._backoff_s = min(self._backoff_s * 2.0, self.reopen_backoff_s[1])
            self._next_reopen_s = now_s + self._backoff_s
            return
        self._counters["reopens"] += 1
        self.link_up = True
        self._decoder.reset()
        self._rx_seq.clear()
        self._next_heartbeat_s = None
        self._next_reopen_s = None
        self._backoff_s = self.reopen_backoff_s[0]

    # ------------------------------------------------------------------ freshness
    def _fresh(self, rx_s: float | None, period_s: float, now_s: float) -> bool:
        return rx_s is not None and now_s - rx_s <= self.stale_after_periods * period_s + 1e-9

    def pose_fresh(self, now_s: float) -> bool:
        """Return True if a POSE arrived within ``stale_after_periods * pose_period_s`` of ``now_s``."""
        return self._fresh(self.pose_rx_s, self.pose_period_s, now_s)

    def imu_fresh(self, now_s: float) -> bool:
        """Return True if an IMU message arrived within ``stale_after_periods * imu_period_s``."""
        return self._fresh(self.imu_rx_s, self.imu_period_s, now_s)

    def status_fresh(self, now_s: float) -> bool:
        """Return True if an MCU_STATUS arrived within ``stale_after_periods * status_period_s``."""
        return self._fresh(self.status_rx_s, self.status_period_s, now_s)

    @property
    def estop_pressed(self) -> bool:
        """The E-stop as last reported by MCU_STATUS; False until the first status arrives.

        This is the *event* source (SAFETY.md D09: a reported press -> ``estop``). It does
        not claim a press nobody reported: before the first MCU_STATUS the answer would
        otherwise latch ``estop`` at every boot in real-time runs. A stale status keeps
        its last value (a press is never forgotten by silence); staleness itself is judged
        by :meth:`status_fresh`. Guards that need positive evidence of a released button
        (``arm``, ``reset``) use :meth:`estop_released_confirmed`.
        """
        return self.status is not None and self.status.estop_pressed

    @property
    def mcu_reboots(self) -> int:
        """How many MCU reboots were detected (MCU_STATUS uptime going back); cheap, per tick."""
        return self._counters["mcu_reboots"]

    def estop_released_confirmed(self, now_s: float) -> bool:
        """Return True only if a fresh MCU_STATUS says the E-stop is released (fail-safe guard).

        Parameters
        ----------
        now_s : float
            Controller time in s.

        Returns
        -------
        bool
            False while unknown, stale or pressed.
        """
        return self.status is not None and self.status_fresh(now_s) and not self.status.estop_pressed

    @property
    def rail_enabled(self) -> bool:
        """The valve-rail output as last reported; False while unknown."""
        return False if self.status is None else self.status.rail_enabled

    # ------------------------------------------------------------------ POST, stats
    def post_report(self, now_s: float, accepted_firmware: str = ">=1.0.0") -> tuple[bool, str]:
        """Power-on self-test verdict for this board (SAFETY.md D07).

        Parameters
        ----------
        now_s : float
            Controller time in s (for status freshness).
        accepted_firmware : str, optional
            Accepted firmware versions, e.g. ``">=1.0.0"`` or ``">=1.2,<2"``
            (:func:`parse_firmware_spec`).

        Returns
        -------
        passed : bool
        reason : str
            One line naming the board; the first failed check, or a summary when passed.

        Raises
        ------
        BusConfigError
            If ``accepted_firmware`` does not parse (a configuration error).

        Notes
        -----
        Checks in order: link up; HELLO received; protocol version equal to
        :data:`~firmware_bridge.protocols.qiki_mcu.PROTOCOL_VERSION`; firmware accepted;
        a fresh MCU_STATUS; no fault flags; watchdog OK (host heartbeats reach the MCU).
        The E-stop is not a POST item: it raises its own event.
        """
        spec = parse_firmware_spec(accepted_firmware)
        n = self.name
        if not self.link_up:
            return False, f"{n}: serial link down ({self.last_link_error})"
        h = self.hello
        if h is None:
            return False, f"{n}: no HELLO received (board absent, unpowered or silent)"
        if h.protocol_version != proto.PROTOCOL_VERSION:
            return False, (
                f"{n}: protocol version {h.protocol_version}, host speaks {proto.PROTOCOL_VERSION}"
            )
        fw = "{}.{}.{}".format(*h.firmware_version)
        if not fwv.spec_holds(h.firmware_version, spec):
            return False, f"{n}: firmware {fw} not accepted ({accepted_firmware})"
        if not self.status_fresh(now_s):
            return False, f"{n}: no fresh MCU_STATUS"
        st = self.status
        assert st is not None
        if st.fault_flags:
            names = [str(f.name) for f in FaultFlag if f and st.fault_flags & f] or [f"0x{st.fault_flags:02X}"]
            return False, f"{n}: fault flags set: {', '.join(names)} (0x{st.fault_flags:02X})"
        if st.watchdog_state != WatchdogState.OK:
            return False, f"{n}: watchdog state {st.watchdog_state.name} (host heartbeats not reaching the MCU)"
        return True, f"{n}: ok (firmware {fw}, protocol {h.protocol_version}, serial 0x{h.board_serial:08X})"

    def stats(self) -> dict[str, Any]:
        """Counters for the run record: framing, decoding, sequence, link health.

        Returns
        -------
        dict
            ``frames_ok, crc_errors, cobs_errors, too_long, runts, bytes_dropped`` (framing),
            ``unknown`` (unknown id), ``invalid`` (known id, bad payload), ``seq_gaps``
            (frames missed, total) and ``seq_gaps_by_id``, ``seq_anomalies`` (repeats,
            restarts), ``bytes_rx, bytes_tx, frames_tx, tx_short, heartbeats_tx``,
            ``bus_errors, reopen_attempts, reopens, link_up``, ``mcu_reboots``; and from
            links that queue their writes (:class:`hal.serial.link.PySerialLink`)
            ``tx_overflows`` (frames refused, queue full) and ``tx_dropped_bytes``.
        """
        out: dict[str, Any] = self._decoder.stats.as_dict()
        out.update(self._counters)
        for key in ("tx_overflows", "tx_dropped_bytes"):
            value = getattr(self.link, key, None)
            if value is not None:
                out[key] = value
        out["seq_gaps_by_id"] = dict(self._seq_gaps_by_id)
        out["link_up"] = self.link_up
        return out
