"""Emulated valve board firmware, stepped by the caller's clock (never sleeps).

Model
-----
* Commands: every ``VB_Command`` of this node is checked as the firmware would (DLC 8,
  standard ID, 12-bit E2E CRC in bits 52..63, counter not repeated, raw duties <= 50); a bad frame is
  ignored and counted in :attr:`ValveBoardEmulator.rx_rejects`. During BOOT commands are
  ignored.
* PWM: free running, period ``pwm_period_s`` from the board's reset time t_b. At every
  period start t0 = t_b + k P the latest commanded duty d of each valve is latched and
  the coil is energised over [t0, t0 + d P). The valve is *physically* open over
  [t0 + open_delay_s, t0 + d P + close_delay_s) (nothing when d == 0). When the coil
  stays energised across a period boundary (d = 100 % followed by d > 0), the valve does
  not move: the open interval continues.
* Cuts: the rail going unpowered (:attr:`rail_powered` False at a step), a command
  timeout (no valid command for ``command_timeout_s``: cut at the deadline itself), a
  reboot, or a valve marked stuck closed end every open interval at once.
* Telemetry: ``VB_Status`` every 20 ms and ``VB_Heartbeat`` every 100 ms, on a schedule
  from the reset time; a late step sends once and skips to the next future slot (no
  bursts).

:meth:`ValveBoardEmulator.open_fractions` integrates the open intervals exactly, so the
world can integrate impulse at 1 kHz without sampling error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

import can
from can.interfaces.virtual import VirtualBus

from firmware_bridge.emulation.faults import FaultParam, FaultParams, FaultSpec
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import DbcCodec
from hal.can.lockstep import LockstepBus

__all__ = ["ValveBoardEmulator"]

_HISTORY_S = 1.0  # open intervals kept this long after they end
_STATUS_MEMO_N = 4096  # sealed VB_Status payloads kept (a square mission sees ~100 keys)
_COMMAND_MEMO_N = 8192  # unpacked VB_Command payloads kept (a square mission: 7,564 commands, 2,252 distinct)


#: :meth:`ValveBoardEmulator._status_key`: open mask, fault mask, rail voltage (V), command
#: timeout, rail off, over temperature, board temperature (degC), n_valves, alive counter,
#: the types of the two floats.
_StatusKey = tuple[int, int, float, bool, bool, bool, float, int, int, type, type]


class _CommandFields(NamedTuple):
    """A VB_Command payload as the firmware reads it (:meth:`ValveBoardEmulator._command_fields`)."""

    checksum_ok: bool  # CRC-12 right; the other fields are read only then
    counter: int  # alive counter, raw
    raw_max: int  # largest raw duty of the eight signals
    duty: tuple[float, ...]  # per valve of the board, fraction 0..1


class ValveBoardEmulator:
    """One emulated valve board on a CAN bus.

    Parameters
    ----------
    bus : can.BusABC
        The board's side of the bus (a :class:`hal.can.lockstep.LockstepBus` in lockstep,
        a python-can ``virtual`` bus); a LockstepBus's filters are set to the command ID.
    codec : hal.can.codec.DbcCodec
        Codec holding ``dbc/qiki.dbc``; the node offset ``node_id - 1`` is added.
    node_id : int, optional
        Node ID (default 1).
    n_valves : int, optional
        Valves fitted, 1..8 (default 8).
    pwm_period_s : float, optional
        PWM period P, s (default 0.05).
    open_delay_s, close_delay_s : float, optional
        Solenoid opening / closing delays after the coil switches, s (defaults 3 ms and
        2 ms).
    command_timeout_s : float, optional
        Valves close when no valid command arrived for this long, s (default 0.2,
        SAFETY.md defaults).
    firmware_version : tuple of int, optional
        Reported (major, minor, patch), default (1, 2, 0).
    rail_voltage_v : float, optional
        Rail voltage reported while powered, V (default 24.0).

    Attributes
    ----------
    rail_powered : bool
        Valve rail power line, set by the rig wiring before each step (default True).
    stuck_closed : set of int
        Valves (0-based) that never open; reported in ``VB_Sts_ValveFault``.
    silent : bool
        When True the board transmits nothing.
    board_temp_c : float
        Reported board temperature, degC (default 35).
    over_temp : bool
        Reported over-temperature flag.
    rx_rejects : dict
        Command frames ignored, by reason (``checksum``, ``counter``, ``dlc``, ``range``,
        ``boot``).

    Notes
    -----
    Fault-plan target (:mod:`firmware_bridge.emulation.faults`): see :data:`FAULTS`.
    """

    #: Faults of a plan (``emulation.faults`` entries whose target is the valve board).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("transmits nothing (status and heartbeat stop)"),
        "valve_stuck_closed": FaultSpec(
            "one valve never opens; reported in VB_Sts_ValveFault",
            MappingProxyType({"valve": FaultParam(int, 0, 0, vb.MAX_VALVES - 1, "valve index, 0-based")})),
        "reboot": FaultSpec("the board resets: valves close, BOOT for 0.5 s, uptime restarts", windowed=False),
    })

    def __init__(self, bus: can.BusABC, codec: DbcCodec, *, node_id: int = 1, n_valves: int = 8,
                 pwm_period_s: float = 0.05, open_delay_s: float = 0.003,
                 close_delay_s: float = 0.002, command_timeout_s: float = 0.2,
                 firmware_version: tuple[int, int, int] = (1, 2, 0),
                 rail_voltage_v: float = 24.0) -> None:
        if not 1 <= n_valves <= vb.MAX_VALVES:
            raise ValueError(f"n_valves must be 1..8, got {n_valves}")
        if pwm_period_s <= 0 or command_timeout_s <= 0:
            raise ValueError("pwm_period_s and command_timeout_s must be > 0")
        self._bus = bus
        self._codec = codec.with_offset(codec.id_offset + int(node_id) - 1)
        self.node_id = int(node_id)
        self.n_valves = int(n_valves)
        self.pwm_period_s = float(pwm_period_s)
        self.open_delay_s = float(open_delay_s)
        self.close_delay_s = float(close_delay_s)
        self.command_timeout_s = float(command_timeout_s)
        major, minor, patch = firmware_version
        self.firmware_version = (int(major), int(minor), int(patch))
        self.rail_voltage_v = float(rail_voltage_v)
        self._cmd_id = self._codec.frame_id(vb.COMMAND)
        self._status_id = self._codec.frame_id(vb.STATUS)
        self._heartbeat_id = self._codec.frame_id(vb.HEARTBEAT)
        # on a lockstep bus the board hears only its command frame (routed at the sender);
        # not elsewhere: python-can's recv(timeout=0) gives up at the first frame a filter drops
        if type(bus) is LockstepBus:
            bus.set_filters([{"can_id": self._cmd_id, "can_mask": 0x7FF, "extended": False}])

        self.rail_powered = True
        self.stuck_closed: set[int] = set()
        self.silent = False
        self.board_temp_c = 35.0
        self.over_temp = False
        self.rx_rejects: dict[str, int] = {}
        self.commands_accepted = 0
        self.tx_failures = 0
        self.frames_sent = 0

        self._boot_s: float | None = None
        # VB_Status frames as the codec builds and seal() completes them (the message and
        # its payload) by status fields and alive counter (:meth:`_status_key`): a pure
        # function of the key (the codec and the node are fixed), so an entry never goes stale.
        self._status_frames: dict[_StatusKey, tuple[can.Message, bytes]] = {}
        # A LockstepBus and python-can's virtual bus queue a copy of a sent message: a kept
        # VB_Status message may be sent again (only its timestamp set); other buses get a new one.
        self._bus_copies = type(bus) is LockstepBus or type(bus) is VirtualBus
        # What the firmware's check and the DBC make of a VB_Command payload, by payload
        # (:meth:`_command_fields`): a pure function of the 8 bytes (the ID, the codec and
        # n_valves are fixed), so an entry never goes stale.
        self._command_memo: dict[bytes, _CommandFields] = {}
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        n = self.n_valves
        self._duty_cmd = [0.0] * n            # latest commanded duty, fraction 0..1
        self._last_cmd_counter: int | None = None
        self._last_valid_cmd_s: float | None = None
        self._timed_out = True                # no valid command yet
        # Per valve: closed open intervals [start, end) plus the current one.
        self._intervals: list[list[list[float]]] = [[] for _ in range(n)]
        self._coil_off_s = [-math.inf] * n    # end of the coil's energised span
        self._next_pwm_s = math.inf
        self._next_status_s = math.inf
        self._next_hb_s = math.inf
        self._boot_end_s = math.inf
        self._status_counter = 0
        self._hb_counter = 0
        self._rail_was_powered = True
        self._stuck_applied: frozenset[int] = frozenset()
        self._next_due_s = -math.inf
        # Changed by every change of the intervals (_latch, _cut, _prune, a new list here):
        # open_segment's last answer holds while it is the same (and the list the same).
        self._intervals_version = getattr(self, "_intervals_version", 0) + 1
        self._segment: tuple[int, list[list[list[float]]], float, float, tuple[float, ...]] | None = None
        # After a _prune: (_intervals_version, the list, earliest end of a first interval,
        # inf if none). While version and list are the same, no interval's end has moved:
        # a step whose horizon is not past that end would prune nothing.
        self._pruned: tuple[int, list[list[list[float]]], float] | None = None

    def _power_up(self, now_s: float) -> None:
        self._boot_s = now_s
        self._boot_end_s = now_s + vb.BOOT_DURATION_S
        self._next_pwm_s = now_s
        self._next_status_s = now_s
        self._next_hb_s = now_s
        self._next_due_s = now_s

    @property
    def state(self) -> vb.BoardState:
        """Board state (BOOT until 0.5 s after reset, then OPERATIONAL)."""
        return vb.BoardState.BOOT if self._in_boot else vb.BoardState.OPERATIONAL

    @property
    def _in_boot(self) -> bool:
        return self._boot_s is None or self._last_step_s < self._boot_end_s

    @property
    def cmd_timeout(self) -> bool:
        """True while the board holds every valve closed for lack of valid commands."""
        return self._timed_out

    @property
    def duty_commanded(self) -> tuple[float, ...]:
        """Latest accepted duty per valve, fraction 0..1 (latched at period starts)."""
        return tuple(self._duty_cmd)

    def reboot(self, now_s: float) -> None:
        """Reset the board at ``now_s``: valves close, uptime restarts, BOOT for 0.5 s.

        Parameters
        ----------
        now_s : float
            Emulation time of the reset, s.
        """
        self._cut_all(now_s)
        intervals = self._intervals
        self._reset_state()
        self._intervals = intervals
        self._power_up(now_s)
        self._last_step_s = now_s

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of :data:`FAULTS` at ``now_s`` (s) (fault-plan target protocol)."""
        if fault == "silent":
            self.silent = True
        elif fault == "valve_stuck_closed":
            self.stuck_closed.add(int(params["valve"]))
        elif fault == "reboot":
            self.reboot(now_s)
        else:
            raise KeyError(f"ValveBoardEmulator has no fault {fault!r}")

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End a windowed fault (``silent``, ``valve_stuck_closed``) at ``now_s`` (s)."""
        if fault == "silent":
            self.silent = False
        elif fault == "valve_stuck_closed":
            self.stuck_closed.discard(int(params["valve"]))

    # ------------------------------------------------------------------ event-driven stepping
    @property
    def next_due_s(self) -> float:
        """Earliest time (s) at which :meth:`step` acts without new input.

        The next PWM period start, status or heartbeat slot, or command-timeout deadline
        (``-inf`` before power-up). Without a received frame, a change of
        :attr:`rail_powered` or of :attr:`stuck_closed`, a step before this time takes the
        cheap path and changes nothing.
        """
        return self._next_due_s

    @property
    def input_pending(self) -> bool | None:
        """Whether frames wait on the bus; None when the bus cannot tell.

        A :class:`~hal.can.lockstep.LockstepBus` and python-can's ``virtual`` bus can (any
        frame queued, the board's or not); other interfaces and wrappers cannot.
        """
        bus = self._bus
        if type(bus) is LockstepBus:
            return bus.pending > 0
        if type(bus) is VirtualBus:
            return bool(bus.queue.queue)
        return None

    def open_segment(self, t_s: float) -> tuple[list[float], float]:
        """Return the valves' open state at ``t_s`` and how long it lasts (current intervals).

        Parameters
        ----------
        t_s : float
            Time (s), within the kept history and not before the last :meth:`step`'s cuts.

        Returns
        -------
        fractions : list of float
            Per valve 1.0 if physically open at ``t_s`` (``start <= t_s < end``), else 0.0.
        end_s : float
            The first interval boundary after ``t_s`` (inf: none). For any window
            ``[a, b]`` with ``t_s <= a < b <= end_s``, :meth:`open_fractions` returns
            exactly ``fractions`` (until the next :meth:`step` changes the intervals).
        """
        intervals = self._intervals
        seg = self._segment  # the last answer: the same for any t_s in [its t_s, its end_s)
        if (seg is not None and seg[0] == self._intervals_version and seg[1] is intervals
                and seg[2] <= t_s < seg[3]):
            return list(seg[4]), seg[3]
        out = []
        end_s = math.inf
        for ivs in intervals:
            if not ivs or ivs[-1][1] <= t_s:  # closed, no later interval
                out.append(0.0)
                continue
            is_open = 0.0
            nxt = math.inf
            for start, end in reversed(ivs):
                if end <= t_s:
                    break
                if start <= t_s:
                    is_open = 1.0
                    nxt = end
                    break
                nxt = start  # a later interval: its start is the next boundary so far
            out.append(is_open)
            if nxt < end_s:
                end_s = nxt
        self._segment = (self._intervals_version, intervals, t_s, end_s, tuple(out))
        return out, end_s

    # ------------------------------------------------------------------ step
    _last_step_s = -math.inf

    def step(self, now_s: float) -> None:
        """Advance the firmware to ``now_s``. Per-tick (may be called at 1 kHz).

        Drains and checks commands, applies rail / timeout / stuck-valve cuts, latches
        duties at PWM period starts and sends status and heartbeat when due.

        Parameters
        ----------
        now_s : float
            Emulation time, s (the caller's SimClock); must not go backwards.
        """
        if self._boot_s is None:
            self._power_up(now_s)
        self._last_step_s = now_s
        # Command timeout first (a command seen now arrived after the deadline); the
        # firmware's timer cuts the valves at the deadline itself.
        if not self._timed_out:
            assert self._last_valid_cmd_s is not None  # not timed out: a valid command was seen
            deadline = self._last_valid_cmd_s + self.command_timeout_s
            if now_s >= deadline:
                self._timed_out = True
                self._duty_cmd = [0.0] * self.n_valves
                self._cut_all(deadline)
        got_cmd = self._drain(now_s)
        rail = self.rail_powered
        if (not got_cmd and now_s < self._next_due_s and rail == self._rail_was_powered
                and self.stuck_closed == self._stuck_applied):
            return  # nothing due: the cheap path
        if not rail and self._rail_was_powered:
            self._cut_all(now_s)
        self._rail_was_powered = rail
        if self.stuck_closed != self._stuck_applied:
            stuck = frozenset(self.stuck_closed)
            for i in stuck - self._stuck_applied:
                if 0 <= i < self.n_valves:
                    self._cut(i, now_s)
            self._stuck_applied = stuck
        # PWM period starts (catch up exactly if steps are coarser than P).
        while now_s >= self._next_pwm_s:
            self._latch(self._next_pwm_s)
            self._next_pwm_s += self.pwm_period_s
        if not self.silent:
            if now_s >= self._next_status_s:
                self._send_status(now_s)
            if now_s >= self._next_hb_s:
                self._send_heartbeat(now_s)
        if now_s >= self._next_status_s:  # else _advance_slot returns the slot as it is
            self._next_status_s = self._advance_slot(self._next_status_s, vb.STATUS_PERIOD_S, now_s)
        if now_s >= self._next_hb_s:
            self._next_hb_s = self._advance_slot(self._next_hb_s, vb.HEARTBEAT_PERIOD_S, now_s)
        due = min(self._next_pwm_s, self._next_status_s, self._next_hb_s)
        if not self._timed_out:
            assert self._last_valid_cmd_s is not None  # not timed out: a valid command was seen
            due = min(due, self._last_valid_cmd_s + self.command_timeout_s)
        self._next_due_s = due
        pruned = self._pruned
        if (pruned is None or pruned[0] != self._intervals_version or pruned[1] is not self._intervals
                or now_s - _HISTORY_S > pruned[2]):
            self._prune(now_s)

    @staticmethod
    def _advance_slot(slot_s: float, period_s: float, now_s: float) -> float:
        if now_s < slot_s:
            return slot_s
        k = math.floor((now_s - slot_s) / period_s) + 1
        return slot_s + k * period_s

    def _drain(self, now_s: float) -> bool:
        got = False
        bus = self._bus
        while True:
            try:
                msg = bus.recv(timeout=0.0)
            except can.CanError:
                return got
            if msg is None:
                return got
            if msg.arbitration_id != self._cmd_id or msg.is_extended_id \
                    or msg.is_error_frame or msg.is_remote_frame:
                continue
            if self._accept_command(msg, now_s):
                got = True

    def _reject(self, reason: str) -> bool:
        self.rx_rejects[reason] = self.rx_rejects.get(reason, 0) + 1
        return False

    @staticmethod
    def _checksum_ok(arbitration_id: int, data: bytes | bytearray) -> bool:
        """Return whether a command's 12-bit CRC (bits 52..63) is right: the firmware's check (issue 15)."""
        return vb.command_checksum_ok(arbitration_id, data)

    def _command_fields(self, msg: can.Message) -> _CommandFields:
        """Check and unpack an 8-byte VB_Command of the board's ID (the firmware's receive path).

        Its CRC-12 (bits 52..63, issue 15), then the DBC's unpack (dbc/qiki.dbc is the only
        statement of the bit layout): the alive counter, the largest raw duty and the
        duties as fractions 0..1 of the board's valves.
        """
        if not self._checksum_ok(msg.arbitration_id, msg.data):
            return _CommandFields(False, 0, 0, ())
        decoded = self._codec.decode(msg)
        assert decoded is not None  # the command's id is in the codec (it was looked up by it)
        raw = decoded.raw
        raws = [raw[name] for name in vb.DUTY_SIGNALS]
        return _CommandFields(True, raw[vb.COUNTER_SIGNALS[vb.COMMAND]], max(raws),
                              tuple([raws[i] * vb.DUTY_STEP_PCT / 100.0 for i in range(self.n_valves)]))

    def _accept_command(self, msg: can.Message, now_s: float) -> bool:
        data = msg.data
        if msg.dlc != 8 or len(data) != 8:
            return self._reject("dlc")
        key = bytes(data)
        memo = self._command_memo
        fields = memo.get(key)
        if fields is None:
            fields = self._command_fields(msg)
            if len(memo) >= _COMMAND_MEMO_N:
                memo.clear()
            memo[key] = fields
        if not fields.checksum_ok:
            return self._reject("checksum")
        counter = fields.counter
        if self._last_cmd_counter is not None and counter == self._last_cmd_counter:
            return self._reject("counter")
        if fields.raw_max > vb.DUTY_RAW_MAX:
            return self._reject("range")
        if self._in_boot:
            return self._reject("boot")
        self._last_cmd_counter = counter
        self._duty_cmd = list(fields.duty)
        self._last_valid_cmd_s = now_s
        self._timed_out = False
        self.commands_accepted += 1
        return True

    # ------------------------------------------------------------------ PWM model
    def _latch(self, t0: float) -> None:
        self._intervals_version += 1
        P = self.pwm_period_s
        powered = self.rail_powered and not self._timed_out and not self._in_boot_at(t0)
        for i in range(self.n_valves):
            d = self._duty_cmd[i] if powered else 0.0
            if d <= 0.0 or i in self.stuck_closed:
                self._coil_off_s[i] = -math.inf
                continue
            coil_on, coil_off = t0, t0 + d * P
            ivs = self._intervals[i]
            if self._coil_off_s[i] >= coil_on and ivs and ivs[-1][1] >= coil_on:
                ivs[-1][1] = coil_off + self.close_delay_s  # coil never switched off
            else:
                start, end = coil_on + self.open_delay_s, coil_off + self.close_delay_s
                if end <= start:  # pulse shorter than the valve can follow
                    self._coil_off_s[i] = coil_off
                    continue
                if ivs and ivs[-1][1] >= start:
                    ivs[-1][1] = max(ivs[-1][1], end)
                else:
                    ivs.append([start, end])
            self._coil_off_s[i] = coil_off

    def _in_boot_at(self, t: float) -> bool:
        return t < self._boot_end_s

    def _cut(self, i: int, t: float) -> None:
        self._intervals_version += 1
        ivs = self._intervals[i]
        while ivs and ivs[-1][0] >= t:
            ivs.pop()
        if ivs and ivs[-1][1] > t:
            ivs[-1][1] = t
        self._coil_off_s[i] = -math.inf

    def _cut_all(self, t: float) -> None:
        for i in range(self.n_valves):
            self._cut(i, t)

    def _prune(self, now_s: float) -> None:
        """Drop the intervals that ended before ``now_s - _HISTORY_S`` (s); note what is left (:attr:`_pruned`)."""
        horizon = now_s - _HISTORY_S
        intervals = self._intervals
        oldest_end = math.inf
        for ivs in intervals:
            while ivs and ivs[0][1] < horizon:
                ivs.pop(0)
                self._intervals_version += 1
            if ivs and ivs[0][1] < oldest_end:
                oldest_end = ivs[0][1]
        self._pruned = (self._intervals_version, intervals, oldest_end)

    def valves_open(self, now_s: float) -> tuple[bool, ...]:
        """Per valve (0-based), whether it is physically open at ``now_s``."""
        out = []
        for ivs in self._intervals:
            is_open = False
            if not ivs or ivs[-1][1] <= now_s:  # every interval ended
                out.append(is_open)
                continue
            for start, end in reversed(ivs):
                if start <= now_s < end:
                    is_open = True
                    break
                if end <= now_s:
                    break
            out.append(is_open)
        return tuple(out)

    def open_fractions(self, t0_s: float, t1_s: float) -> list[float]:
        """Exact fraction of [t0_s, t1_s] each valve was physically open.

        Parameters
        ----------
        t0_s, t1_s : float
            Window, s, ``t1_s > t0_s``, within the last second of emulation (older
            intervals are pruned) and not after the last :meth:`step` (later intervals
            may still be cut).

        Returns
        -------
        list of float
            One value in [0, 1] per valve (0-based).
        """
        span = t1_s - t0_s
        if span <= 0:
            return [0.0] * self.n_valves
        out = []
        exact_zero = span == span  # 0.0 / span is 0.0 unless the window is NaN
        for ivs in self._intervals:
            if exact_zero and (not ivs or ivs[-1][1] <= t0_s):  # every interval ended before
                out.append(0.0)
                continue
            total = 0.0
            for start, end in reversed(ivs):
                if end <= t0_s:
                    break
                lo = start if start > t0_s else t0_s
                hi = end if end < t1_s else t1_s
                if hi > lo:
                    total += hi - lo
            out.append(min(1.0, total / span))
        return out

    # ------------------------------------------------------------------ telemetry
    def _send(self, msg: can.Message) -> None:
        try:
            self._bus.send(msg, timeout=0.0)
        except can.CanError:
            self.tx_failures += 1
            return
        self.frames_sent += 1

    def _status_key(self, now_s: float) -> _StatusKey:
        """Return the VB_Status fields at ``now_s`` (in ``ValveBoardStatus`` order), the counter, and the floats' types.

        Everything the sealed VB_Status depends on (the codec and the node are fixed): the
        frame memo's key, and the status itself is made from it (one place, so the key
        cannot miss a field). The types make it exact where equal values round differently
        (:func:`~firmware_bridge.protocols.valve_board.status_signals` rounds the floats).
        """
        fault = 0
        n = self.n_valves
        for i in self.stuck_closed:
            if 0 <= i < n:
                fault |= 1 << i
        open_mask = 0
        for i, ivs in enumerate(self._intervals):  # valves_open(now_s) as a mask
            if not ivs or ivs[-1][1] <= now_s:
                continue
            for start, end in reversed(ivs):
                if start <= now_s < end:
                    open_mask |= 1 << i
                    break
                if end <= now_s:
                    break
        rail = self.rail_powered
        rail_v = self.rail_voltage_v if rail else 0.0
        temp = self.board_temp_c
        return (open_mask, fault, rail_v, self._timed_out, not rail, self.over_temp, temp, n,
                self._status_counter, type(rail_v), type(temp))

    def _send_status(self, now_s: float) -> None:
        key = self._status_key(now_s)
        frames = self._status_frames
        frame = frames.get(key)
        if frame is None:  # encoded by the DBC and sealed once per distinct key
            status = vb.ValveBoardStatus(*key[:8])
            enc = self._codec.encode(vb.STATUS, vb.status_signals(status, self._status_counter))
            msg = can.Message(arbitration_id=enc.arbitration_id, is_extended_id=enc.is_extended_id,
                              is_fd=False, dlc=enc.dlc, data=vb.seal(enc.arbitration_id, enc.data))
            frame = (msg, bytes(msg.data))
            if len(frames) >= _STATUS_MEMO_N:
                frames.clear()
            frames[key] = frame
        template, data = frame
        if self._bus_copies:  # the bus sends a copy: the kept message is sent as it is
            msg = template
            msg.timestamp = now_s
        else:
            msg = can.Message(arbitration_id=template.arbitration_id, is_extended_id=template.is_extended_id,
                              is_fd=False, dlc=template.dlc, data=bytearray(data), timestamp=now_s)
        self._status_counter = vb.next_counter(self._status_counter)
        self._send(msg)

    def _send_heartbeat(self, now_s: float) -> None:
        assert self._boot_s is not None  # heartbeats start at power-up
        hb = vb.ValveBoardHeartbeat(uptime_s=now_s - self._boot_s,
                                    firmware_version=self.firmware_version,
                                    state=self.state)
        msg = self._codec.encode(vb.HEARTBEAT, vb.heartbeat_signals(hb, self._hb_counter))
        msg.data = bytearray(vb.seal(msg.arbitration_id, msg.data))
        self._hb_counter = vb.next_counter(self._hb_counter)
        msg.timestamp = now_s
        self._send(msg)
