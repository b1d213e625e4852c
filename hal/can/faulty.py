"""Fault-injecting wrapper around a python-can bus (virtual rig and tests only).

Used by fault plans to produce the CAN rows of SAFETY.md on a healthy bus: refused sends
(B06), bus-off / error-passive states (B04, B05), an unplugged adapter (B07), lost,
corrupted or wrong-DLC frames (F01-F03), injected error and remote frames (F04). Every
knob is a plain attribute changed between steps; randomness comes from a seeded
``random.Random`` so runs stay deterministic.
"""

from __future__ import annotations

import copy
import random
from collections import deque

import can
from can import BusState

__all__ = ["FaultyBus"]


class FaultyBus(can.BusABC):
    """A python-can bus that forwards to ``inner`` and injects faults.

    Parameters
    ----------
    inner : can.BusABC
        The real (usually ``virtual``) bus.
    seed : int, optional
        Seed of the random faults (default 0).

    Attributes
    ----------
    fail_sends : int
        The next this-many sends raise ``can.CanOperationError`` ("buffer full"; B06).
    send_fail_always : bool
        Every send raises (bus-off / unplugged).
    unplugged : bool
        ``recv`` and ``send`` raise ``can.CanOperationError`` (B07).
    forced_state : can.BusState or None
        Reported by :attr:`state` instead of the inner bus's (B04 ERROR, B05 PASSIVE).
    rx_drop_prob : float
        Probability a received frame is silently lost.
    rx_corrupt_prob : float
        Probability one payload bit of a received frame is flipped (F01).
    rx_dlc_error_prob : float
        Probability a received frame loses its last byte (F03).
    """

    def __init__(self, inner: can.BusABC, *, seed: int = 0) -> None:
        self._inner = inner
        self._rng = random.Random(seed)
        self._injected: deque[can.Message] = deque()
        self.fail_sends = 0
        self.send_fail_always = False
        self.unplugged = False
        self.forced_state: BusState | None = None
        self.rx_drop_prob = 0.0
        self.rx_corrupt_prob = 0.0
        self.rx_dlc_error_prob = 0.0
        self.flushed = 0
        super().__init__(channel=getattr(inner, "channel_info", "faulty"))
        self.channel_info = f"faulty({getattr(inner, 'channel_info', '?')})"

    def inject(self, msg: can.Message) -> None:
        """Queue ``msg`` to be returned by the next ``recv`` before inner frames."""
        self._injected.append(msg)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self.unplugged:
            raise can.CanOperationError("adapter unplugged (injected)")
        if self._injected:
            return self._injected.popleft(), False
        while True:
            msg = self._inner.recv(timeout=0.0 if timeout is None else timeout)
            if msg is None:
                return None, False
            rng = self._rng
            if self.rx_drop_prob and rng.random() < self.rx_drop_prob:
                continue
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
            return msg, False

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
