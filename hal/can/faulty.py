"""Fault-injecting wrapper around a python-can bus (virtual rig and tests only).

Produces the CAN rows of SAFETY.md on a healthy bus: refused sends (B06), bus-off /
error-passive states (B04, B05), an unplugged adapter or a dead receive path (B07),
late delivery from a buffering adapter (B03), a babbling node (B08), a foreign node
sending our command ID (B09), a stepped wall clock in the frame timestamps (B10), lost,
corrupted, frozen or wrong-DLC frames (B02, D01, F01-F03), injected error and remote
frames (F04) and random frames (F05).

Every knob is a plain attribute (or :meth:`FaultyBus.start_flood`) changed between
steps: by a unit test, or by a rig's fault plan through
``controller/rig/fault_plan.py:CanBusFaults`` (an ``emulation.faults`` entry whose
``target`` is the CAN bus name; ``docs/fault-plans.md``). On an emulated rig every host
bus is wrapped, so a nominal run goes through it unchanged.

Randomness comes from a seeded ``random.Random`` and rates from the injected clock, so a
lockstep run is deterministic.
"""

from __future__ import annotations

import copy
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Final

import can
import can.bus
from can import BusState

__all__ = ["ANY_ID", "MAX_QUEUED_FRAMES", "FaultyBus"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: python-can's own logger of ``BusABC.recv`` (``can.bus``), where :meth:`FaultyBus.recv` logs too.
_CAN_LOG = can.bus.LOG

#: Frames an injected flood or a late-delivery buffer may hold at most (bounded memory).
MAX_QUEUED_FRAMES: Final = 200_000

#: Runs of consecutive dropped frames kept in :attr:`FaultyBus.drop_runs` (bounded memory).
MAX_DROP_RUNS: Final = 1000

#: ``fault_id`` value meaning every arbitration ID.
ANY_ID: Final = -1


class FaultyBus(can.BusABC):
    """A python-can bus that forwards to ``inner`` and injects faults.

    Parameters
    ----------
    inner : can.BusABC
        The real (usually ``virtual``) bus.
    seed : int, optional
        Seed of the random faults (default 0).
    clock : callable ``() -> float``, optional
        Run clock, s, for rates (``babble``, ``fuzz``, ``foreign_command``) and delays
        (``late``). Without one those faults are refused by :meth:`apply_fault`.

    Attributes
    ----------
    fail_sends : int
        The next this-many sends raise ``can.CanOperationError`` ("buffer full"; B06).
    send_fail_always : bool
        Every send raises (bus-off / unplugged).
    unplugged : bool
        ``recv`` and ``send`` raise ``can.CanOperationError`` (B07).
    rx_dead : bool
        ``recv`` raises, sends still go out (the receive path died; B07).
    forced_state : can.BusState or None
        Reported by :attr:`state` instead of the inner bus's (B04 ERROR, B05 PASSIVE).
    rx_drop_prob : float
        Probability a received frame is silently lost.
    rx_corrupt_prob : float
        Probability one payload bit of a received frame is flipped (F01).
    rx_dlc_error_prob : float
        Probability a received frame loses its last byte (F03).
    fault_id : int
        The arbitration ID the three probabilities above apply to (-1: every ID).
    frozen_ids : dict of int to can.Message or None
        Frames with these IDs are replaced by a copy of the last one received before the
        freeze (payload and counter not moving; D01, F02).
    delay_s : float
        Received frames are held this long before ``recv`` returns them (B03).
    timestamp_offset_s : float
        Added to every received frame's ``timestamp`` (a wall-clock step; B10).
    flushed : int
        ``flush_tx_buffer`` calls.
    injected_n : int
        Frames injected (floods, error and remote frames) since construction.
    rx_dropped : int
        Frames dropped by ``rx_drop_prob`` since construction.
    drop_runs : list of (float, int)
        Runs of two or more consecutive dropped frames of the faulted ID: (clock time of
        the run's first drop, s; frames in the run), oldest first, at most
        :data:`MAX_DROP_RUNS` kept. A judge tells a trip that three lost frames in a row
        must cause (SAFETY.md F02/B01 budget: stale after 3 periods) from a false one.
    """

    def __init__(self, inner: can.BusABC, *, seed: int = 0, clock: Callable[[], float] | None = None) -> None:
        self._inner = inner
        self._rng = random.Random(seed)
        self._clock = clock
        self._injected: deque[can.Message] = deque()
        self._held: deque[tuple[float, can.Message]] = deque()
        self._floods: dict[str, tuple[float, float, int]] = {}  # name -> (rate, last_s, id)
        self.fail_sends = 0
        self.send_fail_always = False
        self.unplugged = False
        self.rx_dead = False
        self.forced_state: BusState | None = None
        self.rx_drop_prob = 0.0
        self.rx_corrupt_prob = 0.0
        self.rx_dlc_error_prob = 0.0
        self.fault_id = ANY_ID
        self.frozen_ids: dict[int, can.Message | None] = {}
        self._last_seen: dict[int, can.Message] = {}
        self.delay_s = 0.0
        self.timestamp_offset_s = 0.0
        self.flushed = 0
        self.injected_n = 0
        self.rx_dropped = 0
        self.drop_runs: list[tuple[float, int]] = []
        self._drop_run: tuple[float, int] | None = None  # the run in progress
        super().__init__(channel=getattr(inner, "channel_info", "faulty"))
        self.channel_info = f"faulty({getattr(inner, 'channel_info', '?')})"

    # ------------------------------------------------------------------ injection
    def inject(self, msg: can.Message) -> None:
        """Queue ``msg`` to be returned by a later ``recv`` before inner frames (bounded)."""
        if len(self._injected) < MAX_QUEUED_FRAMES:
            self._injected.append(msg)
            self.injected_n += 1

    def _now(self) -> float:
        return self._clock() if self._clock is not None else 0.0

    def _pump(self, now_s: float) -> None:
        """Queue the flood frames owed since the last call (rates on the run clock)."""
        rng = self._rng
        for name, (rate, last_s, arb) in list(self._floods.items()):
            owed = int((now_s - last_s) * rate)
            if owed <= 0:
                continue
            self._floods[name] = (rate, last_s + owed / rate, arb)
            for _ in range(min(owed, MAX_QUEUED_FRAMES)):
                if name == "fuzz":
                    dlc = rng.randrange(9)
                    msg = can.Message(arbitration_id=rng.randrange(0x800), is_extended_id=False,
                                      data=bytes(rng.randrange(256) for _ in range(dlc)), timestamp=now_s)
                elif name == "babble":
                    msg = can.Message(arbitration_id=arb, is_extended_id=False,
                                      data=bytes(rng.randrange(256) for _ in range(8)), timestamp=now_s)
                else:  # foreign_command: a zero command from another node
                    msg = can.Message(arbitration_id=arb, is_extended_id=False, data=bytes(8), timestamp=now_s)
                self.inject(msg)

    def start_flood(self, kind: str, frames_per_s: float, now_s: float, arbitration_id: int = 0) -> None:
        """Start injecting frames at ``frames_per_s`` from ``now_s`` (run clock, s).

        Parameters
        ----------
        kind : str
            ``babble`` (random bytes on ``arbitration_id``), ``fuzz`` (random ID, DLC and
            bytes) or ``foreign_command`` (zero payload on ``arbitration_id``).
        frames_per_s : float
            Rate, frames per second (> 0).
        now_s : float
            Start time on the clock given to the constructor, s.
        arbitration_id : int, optional
            11-bit ID of ``babble`` / ``foreign_command`` frames.

        Raises
        ------
        ValueError
            No clock was given, an unknown ``kind`` or a rate <= 0.
        """
        if self._clock is None:
            raise ValueError("a flood needs a FaultyBus built with a clock")
        if kind not in ("babble", "fuzz", "foreign_command") or not frames_per_s > 0.0:
            raise ValueError(f"bad flood {kind!r} at {frames_per_s!r} frames/s")
        self._floods[kind] = (float(frames_per_s), float(now_s), int(arbitration_id))

    def stop_flood(self, kind: str) -> None:
        """Stop the flood ``kind`` (frames already queued are still delivered)."""
        self._floods.pop(kind, None)

    # ------------------------------------------------------------------ python-can
    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Return the next frame (faults applied), or None when none is there within ``timeout``.

        python-can's ``BusABC.recv`` contract. A non-blocking call (``timeout`` <= 0, every
        ``CanPort.poll`` read) on a bus without software filters (a ``FaultyBus`` is built
        without any) goes to :meth:`_recv_internal` once, with no ``BusABC.recv`` layer
        (its clock reads and filter loop were the cost per frame, issue 16); it returns
        what that layer would: the frame, else None, and logs a received frame at
        ``RECV_LOGGING_LEVEL`` on python-can's logger when that level is enabled. Any
        other call (a wait, filters set) is ``BusABC.recv``.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait (<= 0: do not wait; None: until a frame arrives).

        Returns
        -------
        can.Message or None

        Raises
        ------
        can.CanOperationError
            An injected unplugged adapter or dead receive path (B07), or the inner bus's.
        """
        if timeout is None or timeout > 0 or self._filters is not None:
            return super().recv(timeout)
        msg = self._recv_internal(timeout)[0]
        if msg is not None and _CAN_LOG.isEnabledFor(self.RECV_LOGGING_LEVEL):
            _CAN_LOG.log(self.RECV_LOGGING_LEVEL, "Received: %s", msg)
        return msg

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self.unplugged:
            raise can.CanOperationError("adapter unplugged (injected)")
        if self.rx_dead:
            raise can.CanOperationError("receive path dead (injected)")
        if self._floods:
            self._pump(self._now())
        if self._injected:
            return self._injected.popleft(), False
        if self.delay_s > 0.0 or self._held:
            return self._recv_late(timeout), False
        return self._recv_inner(timeout), False

    def _recv_late(self, timeout: float | None) -> can.Message | None:
        now = self._now()
        while len(self._held) < MAX_QUEUED_FRAMES:
            msg = self._recv_inner(0.0)
            if msg is None:
                break
            self._held.append((now + self.delay_s, msg))
        if self._held and self._held[0][0] <= now + 1e-12:
            return self._held.popleft()[1]
        return None

    def _recv_inner(self, timeout: float | None) -> can.Message | None:
        while True:
            msg = self._inner.recv(timeout=0.0 if timeout is None else timeout)
            if msg is None:
                return None
            rng = self._rng
            applies = self.fault_id == ANY_ID or msg.arbitration_id == self.fault_id
            if self.timestamp_offset_s:
                msg = copy.copy(msg)  # never mutate a possibly shared received frame
                msg.timestamp += self.timestamp_offset_s
            if msg.arbitration_id in self.frozen_ids:
                frozen = self.frozen_ids[msg.arbitration_id]
                if frozen is None:
                    frozen = self.frozen_ids[msg.arbitration_id] = self._last_seen.get(msg.arbitration_id, msg)
                msg = can.Message(arbitration_id=frozen.arbitration_id, is_extended_id=frozen.is_extended_id,
                                  data=bytes(frozen.data), dlc=frozen.dlc, timestamp=msg.timestamp)
            else:
                self._last_seen[msg.arbitration_id] = msg
            if not applies:
                return msg
            if self.rx_drop_prob and rng.random() < self.rx_drop_prob:
                self._count_drop()
                continue
            self._drop_run = None
            if self.rx_corrupt_prob and len(msg.data) and rng.random() < self.rx_corrupt_prob:
                msg = copy.copy(msg)  # a received frame may be shared (LockstepBus): never mutate it
                data = bytearray(msg.data)
                bit = rng.randrange(len(data) * 8)
                data[bit // 8] ^= 1 << (bit % 8)
                msg.data = data
            if self.rx_dlc_error_prob and len(msg.data) and \
                    rng.random() < self.rx_dlc_error_prob:
                msg = copy.copy(msg)
                msg.data = bytearray(msg.data[:-1])
                msg.dlc = len(msg.data)
            return msg

    def _count_drop(self) -> None:
        self.rx_dropped += 1
        run = self._drop_run
        run = (self._now(), 1) if run is None else (run[0], run[1] + 1)
        self._drop_run = run
        if run[1] == 2 and len(self.drop_runs) < MAX_DROP_RUNS:
            self.drop_runs.append(run)
        elif run[1] > 2 and self.drop_runs and self.drop_runs[-1][0] == run[0]:
            self.drop_runs[-1] = run

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Send through the inner bus unless an injected fault refuses it (``CanOperationError``)."""
        if self.unplugged:
            raise can.CanOperationError("adapter unplugged (injected)")
        if self.send_fail_always or self.forced_state is BusState.ERROR:
            raise can.CanOperationError("transmit refused (injected)")
        if self.fail_sends > 0:
            self.fail_sends -= 1
            raise can.CanOperationError("Transmit buffer full (injected)")
        self._inner.send(msg, timeout=timeout)

    @property
    def state(self) -> BusState:
        """The forced state if one is set, else the inner bus's state."""
        if self.forced_state is not None:
            return self.forced_state
        return self._inner.state

    @state.setter
    def state(self, new_state: BusState) -> None:
        self.forced_state = new_state

    def flush_tx_buffer(self) -> None:
        """Count the flush (the tests read ``flushed``); nothing is queued here."""
        self.flushed += 1

    def shutdown(self) -> None:
        """Shut down this wrapper and the inner bus."""
        super().shutdown()
        self._inner.shutdown()
