"""Per-tick CAN port: bounded non-blocking drain, dispatch by ID, counters, bus health.

:class:`CanPort` sits around a python-can bus (which stays *the* port: it is not wrapped
for sending or configuration) and gives the control loop what a tick needs:

* :meth:`CanPort.poll` reads at most ``max_rx_frames_per_tick + max_drop_frames_per_tick``
  frames with ``bus.recv(timeout=0)`` and dispatches at most ``max_rx_frames_per_tick``
  of them to the handler registered for their arbitration ID; frames of IDs nobody
  handles (a babbling node) are filtered by ID before that budget, so they cost a count,
  never a dispatch slot. A handled frame past the budget is discarded and counted as
  ``dropped``; what is not read waits for the next tick (SAFETY.md B08: ingress work per
  tick is bounded, and a flood of foreign IDs never starves our own).
* The receive path has a heartbeat (SAFETY.md B07): every ``recv`` that returns (a frame
  or nothing) is a beat. One that raises (adapter unplugged, RX thread gone) marks the
  path dead at once: :attr:`CanPort.rx_fault` names it on the same poll, so the vehicle
  goes safe within the tick. While dead the port retries with exponential backoff
  (``rx_backoff_s`` doubling up to ``rx_backoff_max_s``): it calls ``reopen`` (a fresh
  bus) when given one, else probes the same bus; attempts and reopenings are counted.
  A recovered path clears the fault, and nothing re-arms: the vehicle stays where the
  fault put it until the operator resets.
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

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import can
from can import BusState

from hal.snapshot import JsonValue, State, apply, capture

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

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
    reopen : callable ``() -> can.BusABC``, optional
        Opens the bus afresh after a receive failure (B07); the old bus is shut down when
        the new one opens. Without it, the port probes the same bus.
    rx_backoff_s, rx_backoff_max_s : float, optional
        First retry delay after a receive failure and its cap, s (defaults 0.1 and 5.0;
        the delay doubles at every failed attempt).

    Notes
    -----
    Handlers are ``handler(msg, now_s)``. An exception from a handler is caught, counted
    (``handler_errors``) and kept in :attr:`last_handler_error`: nothing escapes ingress
    (F05). Per-tick object.
    """

    def __init__(self, bus: can.BusABC, *, max_rx_frames_per_tick: int = 256,
                 max_drop_frames_per_tick: int | None = None,
                 on_frame_logged: FrameLogger | None = None,
                 reopen: Callable[[], can.BusABC] | None = None,
                 rx_backoff_s: float = 0.1, rx_backoff_max_s: float = 5.0) -> None:
        if max_rx_frames_per_tick < 1:
            raise ValueError("max_rx_frames_per_tick must be >= 1")
        if not 0.0 < rx_backoff_s <= rx_backoff_max_s:
            raise ValueError("need 0 < rx_backoff_s <= rx_backoff_max_s")
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
        self._entered_passive = False  # this poll moved the state into PASSIVE (B05 warning)
        self.last_handler_error: BaseException | None = None
        self.last_send_error: BaseException | None = None
        self.last_rx_error: BaseException | None = None
        self._rx_checkers: list[RejectCounter] = []
        self._own_tx: set[tuple[int, bool]] = set()
        self._reopen = reopen
        self._backoff0_s = float(rx_backoff_s)
        self._backoff_max_s = float(rx_backoff_max_s)
        self._rx_dead_reason: str | None = None
        self._rx_dead_since_s: float | None = None
        self._rx_next_try_s = 0.0
        self._rx_backoff_s = self._backoff0_s
        self.rx_heartbeat_s: float | None = None

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
        if self._rx_dead_reason is not None and not self._retry_rx(now_s):
            self._update_state()
            return 0
        bus = self._bus
        log = self._log
        counts = self._counts
        handlers = self._handlers
        own_tx = self._own_tx
        dispatched = 0
        read_budget = self._max_rx + self._max_drop
        n = 0
        recv = bus.recv
        while n < read_budget:
            try:
                msg = recv(timeout=0.0)
            except (can.CanError, OSError) as exc:
                self._recv_failed(exc, now_s)
                break
            self._consecutive_rx_failures = 0
            self.rx_heartbeat_s = now_s
            if msg is None:
                break
            n += 1
            if log is not None:
                log(msg, now_s, True)
            if msg.is_error_frame:
                counts["received" if dispatched < self._max_rx else "dropped"] += 1
                counts["error_frames"] += 1
                self._on_error_frame(msg)
                continue
            key = (msg.arbitration_id, msg.is_extended_id)
            handler = None if msg.is_remote_frame else handlers.get(key)
            if handler is not None and dispatched >= self._max_rx:
                counts["dropped"] += 1  # our own ID past the dispatch budget (B08)
                continue
            counts["received"] += 1
            if msg.is_remote_frame:
                counts["remote_frames"] += 1
                continue
            if handler is None:
                # filtered by ID before the dispatch budget: a flood of foreign IDs costs a count
                if key in own_tx:
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
        self._update_state()
        return dispatched

    def _recv_failed(self, exc: Exception, now_s: float) -> None:
        """Count a ``recv`` that raised; the first one marks the receive path dead (B07)."""
        self._counts["rx_failures"] += 1
        self._consecutive_rx_failures += 1
        self.last_rx_error = exc
        if self._rx_dead_reason is None:
            self._rx_dead_reason = f"{type(exc).__name__}: {exc}"
            self._rx_dead_since_s = now_s
            self._rx_backoff_s = self._backoff0_s
            self._rx_next_try_s = now_s + self._rx_backoff_s
            _log.warning("CAN receive path dead at %.3f s: %s; retrying with backoff", now_s,
                         self._rx_dead_reason)

    def _retry_rx(self, now_s: float) -> bool:
        """While the receive path is dead: one attempt when the backoff is due. True if alive again."""
        if now_s < self._rx_next_try_s:
            return False
        self._counts["rx_reopen_attempts"] += 1
        if self._reopen is not None:
            try:
                new = self._reopen()
            except Exception as exc:  # noqa: BLE001 - any open failure is one failed attempt
                self.last_rx_error = exc
                self._rx_backoff()
                return False
            old, self._bus = self._bus, new
            try:
                old.shutdown()
            except Exception:  # noqa: BLE001 - the old adapter is gone anyway
                pass
        try:
            self._bus.recv(timeout=0.0)  # the probe (a frame read here is lost: the path was dead)
        except (can.CanError, OSError) as exc:
            self._counts["rx_failures"] += 1
            self._consecutive_rx_failures += 1
            self.last_rx_error = exc
            self._rx_backoff()
            return False
        self._counts["rx_reopens"] += 1
        _log.warning("CAN receive path back at %.3f s after %.3f s dead", now_s,
                     now_s - (self._rx_dead_since_s or now_s))
        self._rx_dead_reason = None
        self._rx_dead_since_s = None
        self._consecutive_rx_failures = 0
        self.rx_heartbeat_s = now_s
        return True

    def _rx_backoff(self) -> None:
        self._rx_backoff_s = min(2.0 * self._rx_backoff_s, self._backoff_max_s)
        self._rx_next_try_s += self._rx_backoff_s

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
        frame_state = self._frame_state
        # the same member twice (the healthy case of every tick): max() would return it
        new = bus_state if bus_state is frame_state else max(bus_state, frame_state, key=_SEVERITY.__getitem__)
        self._entered_passive = False
        if new is not self._state:
            if new is BusState.ERROR:
                self._counts["bus_off"] += 1
            elif new is BusState.PASSIVE:
                self._counts["error_passive"] += 1
                self._entered_passive = True
                _log.warning("CAN controller error-passive (B05)")
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
    def entered_error_passive(self) -> bool:
        """True when the last :meth:`poll` moved the bus into error-passive (B05: warn once per entry)."""
        return self._entered_passive

    @property
    def consecutive_send_failures(self) -> int:
        """Sends refused in a row (reset by an accepted send; B06: safe at 3)."""
        return self._consecutive_send_failures

    @property
    def rx_fault(self) -> str | None:
        """Why the receive path is dead (B07), or None while it beats.

        Set by the first ``recv`` that raises, in the same :meth:`poll`; cleared when a
        retry succeeds. The text is stable while the fault lasts.
        """
        return None if self._rx_dead_reason is None else f"receive path dead ({self._rx_dead_reason})"

    def rx_health(self) -> dict[str, Any]:
        """Receive-path health (B07).

        Returns
        -------
        dict
            ``alive`` (bool), ``heartbeat_s`` (last poll whose ``recv`` returned, s, or
            None), ``dead_since_s`` (s or None), ``next_attempt_s`` (s or None),
            ``backoff_s`` (current retry delay, s), ``reopen_attempts``, ``reopens`` (ints).
        """
        dead = self._rx_dead_reason is not None
        return {"alive": not dead, "heartbeat_s": self.rx_heartbeat_s, "dead_since_s": self._rx_dead_since_s,
                "next_attempt_s": self._rx_next_try_s if dead else None, "backoff_s": self._rx_backoff_s,
                "reopen_attempts": self._counts["rx_reopen_attempts"], "reopens": self._counts["rx_reopens"]}

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
            ``tx_flushes`` (ints), ``rx_reopen_attempts`` and ``rx_reopens`` (ints,
            present once non-zero; B07), ``state`` (str), ``unknown_ids`` (dict ID -> count,
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
