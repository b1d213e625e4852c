"""Per-tick CAN port: bounded non-blocking drain, dispatch by ID, counters, bus health.

:class:`CanPort` sits around a python-can bus (which stays *the* port: it is not wrapped
for sending or configuration) and gives the control loop what a tick needs:

* :meth:`CanPort.poll` drains at most ``max_rx_frames_per_tick`` frames with
  ``bus.recv(timeout=0)`` and dispatches each to the handler registered for its
  arbitration ID; beyond the bound, up to ``max_drop_frames_per_tick`` more are read and
  discarded, counted as ``dropped`` (SAFETY.md B08: ingress work per tick is bounded).
* Error frames and remote frames are never dispatched as data (F04); error frames feed
  the bus health (SocketCAN error-class bits, ``linux/can/error.h``). Each has its own
  counter (``error_frames``, ``remote_frames``), never ``unknown_id``.
* A received data frame with no handler whose ID this port transmits (every ID passed to
  :meth:`CanPort.send`, or declared with :meth:`CanPort.declare_tx_ids`, e.g. the ARS408
  ego speed / yaw rate 0x300/0x301) is counted as ``own_tx_id``: another node, or a
  replayed recording, is sending one of our IDs. Other IDs are ``unknown_id``.
* :meth:`CanPort.send` never blocks the tick: ``bus.send(msg, timeout=0)``; a refused frame
  is counted (``send_failures``, ``consecutive_send_failures``, B06) and returns False.
* :attr:`CanPort.state` merges python-can's ``bus.state`` (where the interface reports it)
  with the error frames seen: ``ERROR`` is bus-off (B04), ``PASSIVE`` error-passive (B05).

Single-threaded by design (lockstep). In real time the loop owns the port; a Notifier
thread may instead feed a queue-backed bus (python-can ``BufferedReader``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import can
from can import BusState

from hal.snapshot import JsonValue, State, apply, capture

__all__ = ["CanPort", "FrameHandler", "CAN_ERR_BUSOFF", "CAN_ERR_CRTL",
           "CAN_ERR_RESTARTED"]

FrameHandler = Callable[[can.Message, float], Any]
FrameLogger = Callable[[can.Message, float, bool], Any]

# linux/can/error.h error classes (in the error frame's arbitration ID) and controller
# status bits (data[1] of a CAN_ERR_CRTL frame).
CAN_ERR_CRTL = 0x004
CAN_ERR_BUSOFF = 0x040
CAN_ERR_RESTARTED = 0x100
CAN_ERR_CRTL_RX_PASSIVE = 0x10
CAN_ERR_CRTL_TX_PASSIVE = 0x20
CAN_ERR_CRTL_ACTIVE = 0x40

_SEVERITY = {BusState.ACTIVE: 0, BusState.PASSIVE: 1, BusState.ERROR: 2}


class RejectCounter(Protocol):
    """Anything that counts rejected frames by reason (e.g. an IngressChecker)."""

    @property
    def rejects(self) -> Mapping[str, int]:
        """Rejected frames by reason."""
        ...


class CanPort:
    """Bounded per-tick receive, dispatch and non-blocking send over one CAN bus.

    Parameters
    ----------
    bus : can.BusABC
        An open python-can bus (from :func:`hal.can.bus.open_can_bus`).
    max_rx_frames_per_tick : int, optional
        Frames dispatched per :meth:`poll` at most (default 256).
    max_drop_frames_per_tick : int, optional
        Frames read and discarded per :meth:`poll` beyond the dispatch bound (default
        4 x ``max_rx_frames_per_tick``); whatever remains waits for the next tick.
    on_frame_logged : callable ``(msg, now_s, is_rx) -> None``, optional
        Called for every frame received (including unknown, error, remote and dropped
        ones) and every frame sent, for the raw bus log.

    Notes
    -----
    Handlers are ``handler(msg, now_s)``. An exception from a handler is caught, counted
    (``handler_errors``) and kept in :attr:`last_handler_error`: nothing escapes ingress
    (F05). Per-tick object.
    """

    def __init__(self, bus: can.BusABC, *, max_rx_frames_per_tick: int = 256,
                 max_drop_frames_per_tick: int | None = None,
                 on_frame_logged: FrameLogger | None = None) -> None:
        if max_rx_frames_per_tick < 1:
            raise ValueError("max_rx_frames_per_tick must be >= 1")
        self._bus = bus
        self._max_rx = int(max_rx_frames_per_tick)
        self._max_drop = (4 * self._max_rx if max_drop_frames_per_tick is None
                          else int(max_drop_frames_per_tick))
        self._log = on_frame_logged
        self._handlers: dict[tuple[int, bool], FrameHandler] = {}
        self._counts: Counter[str] = Counter()
        self._unknown_ids: Counter[int] = Counter()
        self._consecutive_send_failures = 0
        self._consecutive_rx_failures = 0
        self._frame_state = BusState.ACTIVE
        self._state = BusState.ACTIVE
        self.last_handler_error: BaseException | None = None
        self.last_send_error: BaseException | None = None
        self.last_rx_error: BaseException | None = None
        self._rx_checkers: list[RejectCounter] = []
        self._own_tx: set[tuple[int, bool]] = set()

    # ------------------------------------------------------------------ wiring
    @property
    def bus(self) -> can.BusABC:
        """The python-can bus underneath."""
        return self._bus

    def register(self, arbitration_id: int, handler: FrameHandler, *,
                 is_extended_id: bool = False) -> None:
        """Route data frames with ``arbitration_id`` to ``handler(msg, now_s)``.

        Parameters
        ----------
        arbitration_id : int
            11-bit (or 29-bit with ``is_extended_id``) arbitration ID.
        handler : callable
            Called once per received data frame with that ID, from :meth:`poll`.
        is_extended_id : bool, optional
            ID format (default standard 11-bit).

        Raises
        ------
        ValueError
            If the ID already has a handler (two drivers must not share an ID).
        """
        key = (int(arbitration_id), bool(is_extended_id))
        if key in self._handlers:
            raise ValueError(f"arbitration ID 0x{arbitration_id:X} already has a handler")
        self._handlers[key] = handler

    def declare_tx_ids(self, arbitration_ids: Iterable[int], *, is_extended_id: bool = False) -> None:
        """Declare IDs this port transmits before the first send (see ``own_tx_id``).

        Parameters
        ----------
        arbitration_ids : iterable of int
            11-bit (or 29-bit with ``is_extended_id``) arbitration IDs.
        is_extended_id : bool, optional
            ID format (default standard 11-bit).
        """
        for arb in arbitration_ids:
            self._own_tx.add((int(arb), bool(is_extended_id)))

    def add_checker_stats(self, checker: RejectCounter) -> None:
        """Merge ``checker.rejects`` (e.g. an IngressChecker) into :meth:`stats`."""
        self._rx_checkers.append(checker)

    # ------------------------------------------------------------------ per tick
    def poll(self, now_s: float) -> int:
        """Drain and dispatch received frames, bounded. Per-tick.

        Parameters
        ----------
        now_s : float
            Receipt time on the loop's monotonic clock, s (passed to handlers).

        Returns
        -------
        int
            Data frames dispatched to a handler.
        """
        bus = self._bus
        log = self._log
        counts = self._counts
        handlers = self._handlers
        dispatched = 0
        n = 0
        while n < self._max_rx:
            msg = self._recv(bus)
            if msg is None:
                break
            n += 1
            counts["received"] += 1
            if log is not None:
                log(msg, now_s, True)
            if msg.is_error_frame:
                counts["error_frames"] += 1
                self._on_error_frame(msg)
                continue
            if msg.is_remote_frame:
                counts["remote_frames"] += 1
                continue
            key = (msg.arbitration_id, msg.is_extended_id)
            handler = handlers.get(key)
            if handler is None:
                if key in self._own_tx:
                    counts["own_tx_id"] += 1
                    continue
                counts["unknown_id"] += 1
                if len(self._unknown_ids) < 64 or msg.arbitration_id in self._unknown_ids:
                    self._unknown_ids[msg.arbitration_id] += 1
                continue
            try:
                handler(msg, now_s)
            except Exception as exc:  # noqa: BLE001 - F05: nothing escapes ingress
                counts["handler_errors"] += 1
                self.last_handler_error = exc
            dispatched += 1
        else:
            # Bound reached: discard (bounded) whatever else is queued (B08).
            for _ in range(self._max_drop):
                msg = self._recv(bus)
                if msg is None:
                    break
                counts["dropped"] += 1
                if log is not None:
                    log(msg, now_s, True)
                if msg.is_error_frame:
                    counts["error_frames"] += 1
                    self._on_error_frame(msg)
        self._update_state()
        return dispatched

    def _recv(self, bus: can.BusABC) -> can.Message | None:
        try:
            msg = bus.recv(timeout=0.0)
        except (can.CanError, OSError) as exc:
            self._counts["rx_failures"] += 1
            self._consecutive_rx_failures += 1
            self.last_rx_error = exc
            return None
        self._consecutive_rx_failures = 0
        return msg

    def send(self, msg: can.Message, now_s: float) -> bool:
        """Transmit one frame without blocking the tick.

        Parameters
        ----------
        msg : can.Message
            Frame built by a :class:`~hal.can.codec.DbcCodec`.
        now_s : float
            Loop time, s (for the raw log).

        Returns
        -------
        bool
            True when the bus accepted the frame; False when it refused (buffer full,
            bus-off, adapter gone), counted in ``send_failures`` (SAFETY.md B06).
        """
        try:
            self._bus.send(msg, timeout=0.0)
        except (can.CanError, OSError) as exc:
            self._counts["send_failures"] += 1
            self._consecutive_send_failures += 1
            self.last_send_error = exc
            return False
        self._counts["sent"] += 1
        self._consecutive_send_failures = 0
        if len(self._own_tx) < 256:
            self._own_tx.add((msg.arbitration_id, bool(msg.is_extended_id)))
        if self._log is not None:
            self._log(msg, now_s, False)
        return True

    def flush_tx(self) -> bool:
        """Discard frames queued in the adapter's TX buffer (B04: no stale command).

        Returns
        -------
        bool
            False when the interface cannot flush (python-can ``NotImplementedError``)
            or failed.
        """
        try:
            self._bus.flush_tx_buffer()
        except (NotImplementedError, can.CanError, OSError):
            return False
        self._counts["tx_flushes"] += 1
        return True

    # ------------------------------------------------------------------ snapshot
    #: What a snapshot of the port holds: its counters, bus health and the IDs it sends.
    #: Not the bus, the handlers or the logger (wiring), nor the last exceptions (kept
    #: for a human; no tick reads them).
    SNAPSHOT_FIELDS = ("_counts", "_unknown_ids", "_consecutive_send_failures", "_consecutive_rx_failures",
                       "_frame_state", "_state", "_own_tx")

    def snapshot(self) -> State:
        """Return the port's state: counters, consecutive failures, bus state, own TX IDs (issue 12)."""
        return capture(self, self.SNAPSHOT_FIELDS)

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` (the checkers are restored by the drivers that own them)."""
        apply(self, state, self.SNAPSHOT_FIELDS)

    # ------------------------------------------------------------------ health
    def _on_error_frame(self, msg: can.Message) -> None:
        cls = msg.arbitration_id
        data = msg.data
        if cls & CAN_ERR_BUSOFF:
            self._frame_state = BusState.ERROR
        elif cls & CAN_ERR_RESTARTED:
            self._frame_state = BusState.ACTIVE
        elif cls & CAN_ERR_CRTL and len(data) > 1:
            ctrl = data[1]
            if ctrl & (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE):
                if self._frame_state is not BusState.ERROR:
                    self._frame_state = BusState.PASSIVE
            elif ctrl & CAN_ERR_CRTL_ACTIVE:
                self._frame_state = BusState.ACTIVE

    def _update_state(self) -> None:
        try:
            bus_state = self._bus.state
        except Exception:  # noqa: BLE001 - interfaces that cannot report
            bus_state = BusState.ACTIVE
        if not isinstance(bus_state, BusState):
            bus_state = BusState.ACTIVE
        new = max(bus_state, self._frame_state, key=_SEVERITY.__getitem__)
        if new is not self._state:
            if new is BusState.ERROR:
                self._counts["bus_off"] += 1
            elif new is BusState.PASSIVE:
                self._counts["error_passive"] += 1
            self._state = new

    @property
    def state(self) -> BusState:
        """Bus state as of the last :meth:`poll`: ACTIVE, PASSIVE (B05) or ERROR (B04)."""
        return self._state

    @property
    def bus_off(self) -> bool:
        """True when the controller is bus-off (SAFETY.md B04)."""
        return self._state is BusState.ERROR

    @property
    def error_passive(self) -> bool:
        """True when the controller is error-passive (SAFETY.md B05)."""
        return self._state is BusState.PASSIVE

    @property
    def consecutive_send_failures(self) -> int:
        """Sends refused in a row (reset by an accepted send; B06: safe at 3)."""
        return self._consecutive_send_failures

    @property
    def consecutive_rx_failures(self) -> int:
        """``recv`` calls that raised in a row (adapter gone, B07)."""
        return self._consecutive_rx_failures

    def stats(self) -> dict[str, Any]:
        """Counters since construction.

        Returns
        -------
        dict
            ``sent``, ``send_failures``, ``consecutive_send_failures``, ``received``,
            ``dropped``, ``unknown_id``, ``own_tx_id`` (received data frames on an
            ID this port transmits and no handler takes), ``error_frames``,
            ``remote_frames``, ``handler_errors``, ``rx_failures``, ``bus_off``, ``error_passive``,
            ``tx_flushes`` (ints), ``state`` (str), ``unknown_ids`` (dict ID -> count,
            first 64 IDs) and ``rejects`` (dict reason -> count merged from the checkers
            given to :meth:`add_checker_stats`).
        """
        out: dict[str, Any] = {k: 0 for k in (
            "sent", "send_failures", "received", "dropped", "unknown_id", "own_tx_id", "error_frames",
            "remote_frames", "handler_errors", "rx_failures", "bus_off", "error_passive",
            "tx_flushes")}
        out.update(self._counts)
        out["consecutive_send_failures"] = self._consecutive_send_failures
        out["state"] = self._state.name
        out["unknown_ids"] = dict(self._unknown_ids)
        rejects: Counter[str] = Counter()
        for checker in self._rx_checkers:
            rejects.update(checker.rejects)
        out["rejects"] = dict(rejects)
        return out
