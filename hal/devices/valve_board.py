"""Host driver of the thruster valve board (CAN, ``dbc/qiki.dbc``).

Consumes ``VB_Status`` and ``VB_Heartbeat`` through the generic ingress checker (DLC,
E2E checksum, alive counter, DBC range, freshness; the heartbeat carries the same
CRC-8/counter protection as the status since issue 15), produces ``VB_Command`` frames with
counter and 12-bit CRC filled (issue 15: HD 5 over the frame, where the CRC-8 had 3).
No I/O of its own: the loop registers
:meth:`ValveBoardDriver.on_frame` with a :class:`~hal.can.port.CanPort` for every ID in
:attr:`ValveBoardDriver.arbitration_ids` and sends what :meth:`command_frame` returns.

Protocol: ``firmware_bridge/protocols/valve_board.py`` (byte layout, checksum rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import can

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import valve_board as vb
from hal.can.codec import CanEncodeError, DbcCodec
from hal.can.ingress import IngressChecker, IngressSpec
from hal.errors import BusConfigError
from hal.snapshot import JsonValue, State, apply, capture, part

__all__ = ["NODE_ID_MAX", "WATCHED_MESSAGES", "ValveBoardDriver"]

#: Least fraction of ``VB_Status`` frames received (last 25 gaps) to allow arming (B02):
#: 1 % loss reads 0.96 at worst with one loss in the window, 50 % loss about 0.5.
MIN_STATUS_FRACTION = 0.8

#: Highest node ID: node n adds n - 1 to every ID of ``dbc/qiki.dbc``, and the heartbeat
#: IDs 0x701..0x70D of nodes 1..13 stay below 0x70E/0x70F, kept free for moving the
#: heartbeat (see ``firmware_bridge/protocols/valve_board.py``, "ID hazard").
NODE_ID_MAX = 13

#: Messages whose freshness the driver watches (one frame per DBC ``GenMsgCycleTime``
#: expected; SAFETY.md D04 heartbeat lost, B01 stale status).
WATCHED_MESSAGES = (vb.STATUS, vb.HEARTBEAT)


class ValveBoardDriver:
    """Driver of one valve board node.

    Parameters
    ----------
    codec : DbcCodec
        Codec of the bus holding ``dbc/qiki.dbc``. The driver derives a node codec with
        ID offset ``codec.id_offset + node_id - 1``.
    node_id : int, optional
        Board node ID, 1..:data:`NODE_ID_MAX` (default 1: IDs 0x101, 0x181, 0x701).
    n_valves : int, optional
        Valves fitted, 1..8 (default 8).
    stale_after_periods : float, optional
        A stream is stale after this many missed periods (default 3, SAFETY.md).

    Raises
    ------
    BusConfigError
        If the DBC lacks a message or signal the driver needs (K02), cannot encode the
        extreme commands (0 % and 100 % duty, counters 0 and 15: a signal range or scale
        that would make :meth:`command_frame` fail mid-run), or the arguments are out of
        range.
    """

    def __init__(self, codec: DbcCodec, *, node_id: int = 1, n_valves: int = 8,
                 stale_after_periods: float = 3.0) -> None:
        if not 1 <= int(node_id) <= NODE_ID_MAX:
            raise BusConfigError(f"valve board node_id must be 1..{NODE_ID_MAX}, got {node_id}")
        if not 1 <= int(n_valves) <= vb.MAX_VALVES:
            raise BusConfigError(f"valve board n_valves must be 1..8, got {n_valves}")
        codec.require(vb.REQUIRED_SIGNALS)
        self.node_id = int(node_id)
        self.n_valves = int(n_valves)
        self._codec = codec.with_offset(codec.id_offset + self.node_id - 1)
        self._checker = IngressChecker(
            self._codec,
            [IngressSpec(vb.STATUS, counter_signal=vb.COUNTER_SIGNALS[vb.STATUS],
                         checksum_signal=vb.CHECKSUM_SIGNALS[vb.STATUS],
                         checksum_fn=vb.e2e_checksum, regular=True),
             IngressSpec(vb.HEARTBEAT, counter_signal=vb.COUNTER_SIGNALS[vb.HEARTBEAT],
                         checksum_signal=vb.CHECKSUM_SIGNALS[vb.HEARTBEAT],
                         checksum_fn=vb.e2e_checksum, regular=True)],
            stale_after_periods=stale_after_periods)
        for duty_raw, counter in ((0, 0), (vb.DUTY_RAW_MAX, vb.COUNTER_MODULO - 1)):
            try:
                self._codec.encode(vb.COMMAND, vb.command_signals([duty_raw] * vb.MAX_VALVES, counter))
            except CanEncodeError as exc:
                raise BusConfigError(
                    f"{', '.join(codec.dbc_paths)}: {vb.COMMAND} cannot carry "
                    f"{vb.raw_to_duty_pct(duty_raw):g} % duty: {exc}") from exc
        self._require_command_checksum_layout(codec)
        self._command_id = self._codec.frame_id(vb.COMMAND)
        self._command_extended = bool(self._codec.message(vb.COMMAND).is_extended_frame)
        #: The duties of the last raw-path command and their fields OR-ed into a word (no
        #: counter): a command repeats the last duties on most ticks (85 % of the default
        #: job's), then only the counter and the CRC are new. Keyed on the values and
        #: their types (``duty_pct_to_raw`` answers by type too: ``np.float32(1.0) ==
        #: 1.0`` but gives raw 0), so it cannot go stale.
        self._tick_duty_memo: tuple[tuple[object, ...], tuple[type, ...], int] | None = None
        #: Shifts of the duty fields (one per fitted valve) and of the counter in the
        #: command's little-endian 64-bit word when the DBC lets raw values be packed
        #: directly (:meth:`_raw_command_layout`), else None (the codec packs).
        self._raw_layout = self._raw_command_layout()
        self._status_id = self._codec.frame_id(vb.STATUS)
        self._heartbeat_id = self._codec.frame_id(vb.HEARTBEAT)
        self._counter = 0
        self.status: vb.ValveBoardStatus | None = None
        self.heartbeat: vb.ValveBoardHeartbeat | None = None
        self._rebooted = False
        self.reboot_count = 0
        self._seen_operational = False

    def _require_command_checksum_layout(self, codec: DbcCodec) -> None:
        """Refuse a DBC whose ``VB_Cmd_Checksum`` is not the 12 bits :func:`vb.seal_command` fills (K02)."""
        sig = vb.command_signals([0] * vb.MAX_VALVES, 0)
        sig[vb.CHECKSUM_SIGNALS[vb.COMMAND]] = (1 << vb.COMMAND_CHECKSUM_BITS) - 1
        try:
            data = bytes(self._codec.encode(vb.COMMAND, sig).data)
        except CanEncodeError as exc:
            data = None
            why = str(exc)
        want = ((1 << vb.COMMAND_CHECKSUM_BITS) - 1) << vb.COMMAND_CHECKSUM_START_BIT
        if data is None or int.from_bytes(data, "little") != want:
            got = "" if data is None else f"; it encodes as {data.hex()}"
            raise BusConfigError(
                f"{', '.join(codec.dbc_paths)}: {vb.COMMAND} checksum must be 12 bits at bit "
                f"{vb.COMMAND_CHECKSUM_START_BIT} (CRC-12, issue 15){got}"
                + (f": {why}" if data is None else ""))

    def _raw_command_layout(self) -> tuple[tuple[int, ...], int] | None:
        """Return the duty and counter shifts of ``VB_Command`` when raw packing is exact.

        :meth:`command_frame` ORs the raw duties and the counter into one little-endian
        integer instead of building a signal dict for :meth:`DbcCodec.encode`. That gives
        the very bytes the codec gives when every duty field is a little-endian unsigned
        field of at least 6 bits with scale :data:`vb.DUTY_STEP_PCT` and offset 0 (the codec
        maps ``2 * raw`` % back to ``raw`` exactly), the counter one of at least 4 bits
        with scale 1 and offset 0, the message holds no other signal, is 8 bytes long
        (the checksum's 12 bits at bit 52 are checked by
        :meth:`_require_command_checksum_layout`), and the DBC ranges admit 0..100 % and
        0..15 (checked by the extreme encodes in ``__init__``). Checked once more here on
        three frames against the codec.

        Returns
        -------
        (tuple of int, int) or None
            The shift of each fitted valve's duty field (``n_valves`` entries) and the
            counter's shift; None when the DBC is laid out otherwise.
        """
        msg = self._codec.message(vb.COMMAND)
        sigs = {s.name: s for s in msg.signals}
        counter_name = vb.COUNTER_SIGNALS[vb.COMMAND]
        if msg.length != 8 or set(sigs) != set(vb.REQUIRED_SIGNALS[vb.COMMAND]):
            return None

        def plain(name: str, scale: float, min_bits: int) -> bool:
            s = sigs[name]
            return (s.byte_order == "little_endian" and not s.is_signed and s.length >= min_bits
                    and not getattr(s, "is_float", False) and s.scale == scale and s.offset == 0)

        if not all(plain(n, vb.DUTY_STEP_PCT, 6) for n in vb.DUTY_SIGNALS) or not plain(counter_name, 1, 4):
            return None
        shifts = tuple(int(sigs[n].start) for n in vb.DUTY_SIGNALS[:self.n_valves])
        counter_shift = int(sigs[counter_name].start)
        for raws, counter in (([vb.DUTY_RAW_MAX] * vb.MAX_VALVES, vb.COUNTER_MODULO - 1),
                              ([1, 2, 4, 8, 16, 32, 49, 50], 5), ([0] * vb.MAX_VALVES, 0)):
            word = counter << counter_shift
            for r, shift in zip(raws, shifts, strict=False):
                word |= r << shift
            frame = self._codec.encode(vb.COMMAND, vb.command_signals(raws[:self.n_valves], counter))
            if word.to_bytes(8, "little") != bytes(frame.data):
                return None
        return shifts, counter_shift

    # ------------------------------------------------------------------ snapshot
    #: A snapshot's fields (issue 12 part 4): what the driver learnt from its bus; the rest is configuration.
    SNAPSHOT_FIELDS = ("_counter", "status", "heartbeat", "_rebooted", "reboot_count", "_seen_operational")

    def snapshot(self) -> State:
        """Return the driver's state (:mod:`hal.snapshot`): latest values, counters, partial input."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "checker": self._checker.snapshot()}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` into a driver built from the same configuration."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._checker.restore(part(state, "checker"))

    # ------------------------------------------------------------------ identity
    @property
    def arbitration_ids(self) -> tuple[int, ...]:
        """IDs this driver consumes (``VB_Status``, ``VB_Heartbeat`` of its node)."""
        return (self._status_id, self._heartbeat_id)

    @property
    def watched_periods_s(self) -> dict[str, float | None]:
        """Expected period (s) of each watched message, from the DBC ``GenMsgCycleTime``.

        None when the DBC gives no cycle time (absent or 0): freshness cannot be judged
        and the rig must be refused before it runs (``controller.rig.check_rig``).
        """
        return {name: self._checker.stream(name).period_s for name in WATCHED_MESSAGES}

    @property
    def command_id(self) -> int:
        """Arbitration ID of this node's ``VB_Command`` (for bus monitors, B09)."""
        return self._command_id

    @property
    def codec(self) -> DbcCodec:
        """The node codec (ID offset applied)."""
        return self._codec

    @property
    def checker(self) -> IngressChecker:
        """The ingress checker (streams, rejects)."""
        return self._checker

    @property
    def ingress_rejects(self) -> dict[str, int]:
        """Rejected frames by reason (``checksum``, ``counter``, ``dlc``, ``range``...)."""
        return self._checker.rejects

    @property
    def status_rx_s(self) -> float | None:
        """Receipt time of the last accepted ``VB_Status``, s on the loop clock (None: never)."""
        return self._checker.stream(vb.STATUS).last_rx_s

    @property
    def heartbeat_rx_s(self) -> float | None:
        """Receipt time of the last accepted ``VB_Heartbeat``, s on the loop clock (None: never)."""
        return self._checker.stream(vb.HEARTBEAT).last_rx_s

    # ------------------------------------------------------------------ receive
    def on_frame(self, msg: can.Message, now_s: float) -> bool:
        """Check, decode and apply one received frame. Per-frame (called from the poll).

        Parameters
        ----------
        msg : can.Message
            A frame with one of :attr:`arbitration_ids`.
        now_s : float
            Receipt time on the loop's monotonic clock, s.

        Returns
        -------
        bool
            True when the frame was accepted and applied.
        """
        decoded = self._checker.check(msg, now_s)
        if decoded is None:
            return False
        if decoded.name == vb.STATUS:
            self.status = vb.status_from_signals(decoded.signals, self.n_valves)
            return True
        try:
            hb = vb.heartbeat_from_signals(decoded.signals)
        except ProtocolError:  # the range/enum check rejects these first
            return False
        self._track_reboot(hb)
        self.heartbeat = hb
        return True

    def _track_reboot(self, hb: vb.ValveBoardHeartbeat) -> None:
        prev = self.heartbeat
        rebooted = False
        if prev is not None and hb.uptime_s < prev.uptime_s:
            # A 32-bit millisecond uptime wraps after 49.7 days: not a reboot.
            wrapped = prev.uptime_s > vb.UPTIME_WRAP_S - 60.0 and hb.uptime_s < 60.0
            rebooted = not wrapped
        if hb.state is vb.BoardState.BOOT and self._seen_operational:
            rebooted = True
        if rebooted:
            self._rebooted = True
            self.reboot_count += 1
            self._seen_operational = False
        if hb.state is vb.BoardState.OPERATIONAL:
            self._seen_operational = True

    @property
    def rebooted(self) -> bool:
        """Latched: the board reset since the last passing POST (D05).

        Set when the heartbeat uptime goes backwards or the board reports BOOT after
        OPERATIONAL. Cleared only by a passing :meth:`post_report`.
        """
        return self._rebooted

    def status_fresh(self, now_s: float) -> bool:
        """Whether ``VB_Status`` is fresh (accepted within 3 periods, counter valid)."""
        return self._checker.is_fresh(vb.STATUS, now_s)

    def status_rate_low(self, min_fraction: float = MIN_STATUS_FRACTION) -> str | None:
        """Why ``VB_Status`` arrives too seldom to arm on, or None (SAFETY.md B02).

        Parameters
        ----------
        min_fraction : float
            Least fraction of the expected frames received over the last 25 gaps
            (:meth:`hal.can.ingress.IngressChecker.received_fraction`).

        Returns
        -------
        str or None
            E.g. ``"valve board status at 52 % of its rate"``; None at a healthy rate or
            before two frames (freshness judges those).
        """
        frac = self._checker.received_fraction(vb.STATUS)
        if frac is None or frac >= min_fraction:
            return None
        return (f"valve board status at {100.0 * frac:.0f} % of its rate "
                f"(half rate or loss; needs {100.0 * min_fraction:.0f} %)")

    def heartbeat_fresh(self, now_s: float) -> bool:
        """Whether ``VB_Heartbeat`` is fresh (accepted within 3 periods; D04)."""
        return self._checker.is_fresh(vb.HEARTBEAT, now_s)

    def _why_not_fresh(self, name: str, now_s: float) -> str:
        st = self._checker.stream(name)
        age = self._checker.age_s(name, now_s)
        if st.counter_invalid:
            return "invalid (wrong counters)"
        if age is not None and self._checker.is_stale(name, now_s):
            return f"stale ({age * 1000:.0f} ms old)"
        if self._checker.timing_warning(name) and not st.recovering:
            return "irregular (half rate or bursts)"
        return "not steady yet (needs regular periods)"

    # ------------------------------------------------------------------ transmit
    def command_frame(self, duty_pct: Sequence[float]) -> can.Message:
        """Build the next ``VB_Command`` frame. Per-tick.

        Parameters
        ----------
        duty_pct : sequence of float, length n_valves
            Duty cycle per valve (0-based), % of the board's PWM period. Rounded to the
            2 % wire step, clamped to [0, 100]; NaN/inf give 0 (fail safe).

        Returns
        -------
        can.Message
            Standard-ID frame with the alive counter (+1 per call) and the 12-bit E2E CRC
            (:func:`firmware_bridge.protocols.valve_board.seal_command`).

        Raises
        ------
        ValueError
            If ``len(duty_pct) != n_valves``.
        """
        if len(duty_pct) != self.n_valves:
            raise ValueError(f"expected {self.n_valves} duties, got {len(duty_pct)}")
        layout = self._raw_layout
        if layout is None:
            raw = [vb.duty_pct_to_raw(d) for d in duty_pct]
            msg = self._codec.encode(vb.COMMAND, vb.command_signals(raw, self._counter))
            msg.data = bytearray(vb.seal_command(msg.arbitration_id, msg.data))
        else:
            # the raw fields OR-ed straight into the payload (the codec's bytes, see
            # _raw_command_layout), then sealed with the CRC-12 like the codec's path
            shifts, counter_shift = layout
            duties = tuple(duty_pct)
            types = tuple(map(type, duties))
            memo = self._tick_duty_memo
            if memo is not None and memo[1] == types and memo[0] == duties:  # types first: no cross-type cast
                fields = memo[2]
            else:
                to_raw = vb.duty_pct_to_raw
                fields = 0
                for d, shift in zip(duties, shifts, strict=True):
                    fields |= to_raw(d) << shift
                self._tick_duty_memo = (duties, types, fields)
            word = fields | (self._counter << counter_shift)
            msg = can.Message(arbitration_id=self._command_id, is_extended_id=self._command_extended,
                              is_fd=False, dlc=8,
                              data=bytearray(vb.seal_command(self._command_id, word.to_bytes(8, "little"))))
        self._counter = vb.next_counter(self._counter)
        return msg

    # ------------------------------------------------------------------ POST
    def post_report(self, now_s: float, accepted_firmware: str) -> tuple[bool, str]:
        """Power-on self test of the board (SAFETY.md D07, D05).

        Parameters
        ----------
        now_s : float
            Loop time, s.
        accepted_firmware : str
            Firmware acceptance spec, e.g. ``">=1.2.0"`` or ``">=1.2.0,<2.0.0"``.

        Returns
        -------
        (bool, str)
            ``(True, "valve board node N: ok, firmware X.Y.Z")`` or ``(False, reason)``
            naming the board and the first failed check: heartbeat absent/stale, status
            absent/stale, state not OPERATIONAL, firmware rejected, valve fault,
            over-temperature. A pass clears the :attr:`rebooted` latch.

        Raises
        ------
        ProtocolError
            If ``accepted_firmware`` is malformed.
        """
        who = f"valve board node {self.node_id}"
        if self.heartbeat is None:
            return False, f"{who}: absent (no heartbeat received)"
        if not self.heartbeat_fresh(now_s):
            return False, f"{who}: heartbeat {self._why_not_fresh(vb.HEARTBEAT, now_s)}"
        if self.status is None:
            return False, f"{who}: no status received"
        if not self.status_fresh(now_s):
            return False, f"{who}: status {self._why_not_fresh(vb.STATUS, now_s)}"
        hb = self.heartbeat
        version = ".".join(str(v) for v in hb.firmware_version)
        if not vb.firmware_accepted(hb.firmware_version, accepted_firmware):
            return False, f"{who}: firmware {version} not accepted ({accepted_firmware})"
        if hb.state is not vb.BoardState.OPERATIONAL:
            return False, f"{who}: state {hb.state.name}"
        st = self.status
        if st.valve_fault_mask & ((1 << self.n_valves) - 1):
            bad = [i for i, f in enumerate(st.valve_fault) if f]
            return False, f"{who}: valve fault on valves {bad} (0-based)"
        if st.over_temp:
            return False, f"{who}: over temperature ({st.board_temp_c:.0f} degC)"
        self._rebooted = False
        return True, f"{who}: ok, firmware {version}"
