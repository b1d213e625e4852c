"""A python-can bus for lockstep runs: shared frames, routing by ID, nothing spent when idle.

python-can's ``virtual`` interface deep-copies every frame once per receiver and goes
through a locked ``queue.Queue`` whose empty ``recv`` raises and catches ``queue.Empty``
inside python-can: about a fifth of a lockstep run (issue 16). :class:`LockstepBus` keeps
python-can's contract (:class:`can.BusABC`: ``send``, ``recv`` with a timeout,
``can_filters``, ``shutdown``, ``state``) and the virtual interface's semantics (every node
opened on the same channel name hears every other node; its own frames only with
``receive_own_messages``), with three differences of cost:

* **One snapshot per frame, shared.** ``send`` copies the frame once (its slots, the data
  as a fresh ``bytearray``) and puts that one object in the queue of every receiver. A
  receiver must not mutate a frame it received (QIKI's receivers only read them: the
  drivers, the emulators, the flight record's taps and the CAN log); the sender may reuse
  its own message object after ``send`` returns.
* **Routing by arbitration ID.** A node that set ``can_filters`` is only handed the
  frames its filters pass (python-can's filter rule: ``id & can_mask == can_id &
  can_mask``, and ``extended`` when given); the receivers of each (ID, extended) pair are
  computed once and cached until a node joins, leaves or changes its filters.
* **Free when empty.** ``recv(timeout=0)`` on an empty queue is a deque check, no
  exception; a positive timeout waits on a condition only then.

Timestamps are the sender's (``msg.timestamp``, the emulation clock in a lockstep run),
never the wall clock: nothing in QIKI reads a received frame's timestamp (``B03``).
The bus keeps no frame limit: a lockstep run drains every queue between ticks.

Not for real time: ``qiki run --realtime`` and ``qiki emulate`` keep python-can's own
interfaces (the virtual rig opens this bus only for lockstep builds,
:func:`controller.rig.build.build_rig`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import can
from can.typechecking import CanFilters

__all__ = ["LockstepBus", "is_lockstep_channel", "open_lockstep_bus", "snapshot"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

_channels: dict[str, _Channel] = {}
_channels_lock = threading.Lock()

_new_message = can.Message.__new__


def snapshot(msg: can.Message) -> can.Message:
    """Return a copy of ``msg`` that shares nothing mutable with it (the data is copied).

    About twenty times cheaper than ``copy.deepcopy`` of a ``can.Message`` (which goes
    through ``Message.__init__`` and the ``copy`` module's memo).

    Parameters
    ----------
    msg : can.Message

    Returns
    -------
    can.Message
        Same slots; ``data`` a new ``bytearray``.
    """
    m = _new_message(can.Message)
    m.timestamp = msg.timestamp
    m.arbitration_id = msg.arbitration_id
    m.is_extended_id = msg.is_extended_id
    m.is_remote_frame = msg.is_remote_frame
    m.is_error_frame = msg.is_error_frame
    m.channel = msg.channel
    m.dlc = msg.dlc
    m.data = bytearray(msg.data)
    m.is_fd = msg.is_fd
    m.is_rx = msg.is_rx
    m.bitrate_switch = msg.bitrate_switch
    m.error_state_indicator = msg.error_state_indicator
    return m


class _Channel:
    """The nodes opened on one channel name, and the receivers cached per (ID, extended)."""

    __slots__ = ("name", "nodes", "routes", "lock")

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[LockstepBus] = []
        self.routes: dict[tuple[int, bool], tuple[LockstepBus, ...]] = {}
        self.lock = threading.Lock()

    def receivers(self, arbitration_id: int, extended: bool) -> tuple[LockstepBus, ...]:
        """Return the nodes whose filters pass this ID, cached per ``(ID, extended)``.

        :meth:`LockstepBus.send` reads the cache (``routes``) inline and calls this on a miss.
        """
        key = (arbitration_id, extended)
        hit = self.routes.get(key)  # a dict read is atomic; the lock only on a miss
        if hit is None:
            with self.lock:
                hit = tuple(n for n in self.nodes if n._accepts(arbitration_id, extended))
                self.routes[key] = hit
        return hit

    def changed(self) -> None:
        with self.lock:
            self.routes = {}


class LockstepBus(can.BusABC):
    """A node on an in-process CAN channel for lockstep runs (python-can ``BusABC``).

    Parameters
    ----------
    channel : str
        Channel name; every ``LockstepBus`` opened with the same name is on the same bus.
    can_filters : list of dict, optional
        python-can filters (``can_id``, ``can_mask``, optional ``extended``); None or
        empty: every frame. Applied at the sender (routing), never by dropping in ``recv``.
    receive_own_messages : bool, optional
        Also deliver this node's own frames back to it (default False), as a separate
        copy with ``is_rx`` False.
    **kwargs
        Accepted and ignored (``bitrate``, ...), as python-can's virtual interface does.

    Attributes
    ----------
    channel_info : str
        ``"lockstep channel NAME"``.
    frames_received : int
        Frames queued to this node since it was opened.

    Notes
    -----
    Thread safe for one sender thread per node and any number of receiving nodes (a
    ``deque`` per node; a condition only for a ``recv`` that waits).
    """

    def __init__(self, channel: str, can_filters: CanFilters | None = None,
                 receive_own_messages: bool = False, **kwargs: object) -> None:
        self.channel_id = str(channel)
        self.channel_info = f"lockstep channel {self.channel_id}"
        self.receive_own_messages = bool(receive_own_messages)
        self._rx: deque[can.Message] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0
        self._open = True
        self.frames_received = 0
        self._filter_list: tuple[tuple[int, int, bool | None], ...] | None = None
        with _channels_lock:
            ch = _channels.get(self.channel_id)
            if ch is None:
                ch = _channels[self.channel_id] = _Channel(self.channel_id)
            self._channel = ch
        super().__init__(channel=self.channel_id, can_filters=can_filters)
        with ch.lock:
            ch.nodes.append(self)
            ch.routes = {}

    # ---------------------------------------------------------------- filters
    def _apply_filters(self, filters: CanFilters | None) -> None:
        if not filters:
            self._filter_list = None
        else:
            self._filter_list = tuple(
                (int(f["can_id"]), int(f["can_mask"]),
                 bool(f["extended"]) if "extended" in f else None)
                for f in filters)
        ch = getattr(self, "_channel", None)
        if ch is not None:
            ch.changed()

    def _accepts(self, arbitration_id: int, extended: bool) -> bool:
        flist = self._filter_list
        if flist is None:
            return True
        for can_id, mask, ext in flist:
            if ext is not None and ext != extended:
                continue
            if (can_id ^ arbitration_id) & mask == 0:
                return True
        return False

    # ---------------------------------------------------------------- I/O
    def _check_open(self) -> None:
        if not self._open:
            raise can.CanOperationError(f"{self.channel_info}: the bus is shut down")

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Queue one snapshot of ``msg`` to every other node whose filters pass it.

        Parameters
        ----------
        msg : can.Message
            The frame; not kept (a copy is), so the caller may reuse it.
        timeout : float, optional
            Ignored: queues are unbounded, a send never waits.

        Raises
        ------
        can.CanOperationError
            After :meth:`shutdown`.
        """
        if not self._open:
            self._check_open()
        frame = snapshot(msg)
        frame.channel = self.channel_id
        frame.is_rx = True
        ch = self._channel
        key = (frame.arbitration_id, bool(frame.is_extended_id))
        nodes = ch.routes.get(key)  # _Channel.receivers' hit inline (the call was the cost per frame)
        if nodes is None:
            nodes = ch.receivers(*key)
        for node in nodes:
            if node is self:
                if not self.receive_own_messages:
                    continue
                own = snapshot(frame)
                own.is_rx = False
                node._put(own)
            elif node._open:  # _put inline (the call was the cost per frame), in its order
                node._rx.append(frame)
                node.frames_received += 1
                if node._waiting:
                    with node._cond:
                        node._cond.notify_all()

    def _put(self, frame: can.Message) -> None:
        """Queue ``frame`` on this node and wake a waiting ``recv``.

        :meth:`send` does the same inline for the other nodes (the call was its cost
        per frame, issue 16); keep the two in step.
        """
        if not self._open:
            return
        self._rx.append(frame)
        self.frames_received += 1
        if self._waiting:
            with self._cond:
                self._cond.notify_all()

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Return the oldest queued frame, or None when none arrives within ``timeout``.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait (0: do not wait; None: wait until a frame arrives).

        Returns
        -------
        can.Message or None
            A frame shared with the other receivers of it: read it, never mutate it.

        Raises
        ------
        can.CanOperationError
            After :meth:`shutdown`.
        """
        rx = self._rx
        if rx:
            return rx.popleft()
        if not self._open:
            self._check_open()
        if timeout is not None and timeout <= 0:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while not rx:
                    if not self._open:
                        self._check_open()
                    if deadline is None:
                        self._cond.wait(0.1)
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return None
                        self._cond.wait(left)
                return rx.popleft()
            finally:
                self._waiting -= 1

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        return self.recv(timeout), True

    @property
    def pending(self) -> int:
        """Frames queued for this node and not yet received."""
        return len(self._rx)

    def flush_tx_buffer(self) -> None:
        """Nothing to flush: a send is delivered before it returns."""

    def shutdown(self) -> None:
        """Leave the channel and drop queued frames; safe to call twice."""
        if self._open:
            self._open = False
            ch = self._channel
            with ch.lock:
                if self in ch.nodes:
                    ch.nodes.remove(self)
                ch.routes = {}
                empty = not ch.nodes
            if empty:
                with _channels_lock:
                    if _channels.get(ch.name) is ch and not ch.nodes:
                        del _channels[ch.name]
            self._rx.clear()
            with self._cond:
                self._cond.notify_all()
        super().shutdown()


def is_lockstep_channel(channel: str) -> bool:
    """Whether a :class:`LockstepBus` node is open on the channel name ``channel`` now.

    For a node that knows only a run's channel name (the safety campaign's independent
    monitor, :class:`controller.safety.monitor.BusMonitor`): a lockstep run's channel names
    are unique to the run, so an open lockstep channel of that name is that run's bus.

    Parameters
    ----------
    channel : str
        Channel name.

    Returns
    -------
    bool
    """
    with _channels_lock:
        ch = _channels.get(str(channel))
        return ch is not None and bool(ch.nodes)


def open_lockstep_bus(channel: str, *, can_filters: CanFilters | None = None,
                      receive_own_messages: bool = False) -> LockstepBus:
    """Open a node on the lockstep channel ``channel`` (see :class:`LockstepBus`).

    Parameters
    ----------
    channel : str
        Channel name (unique per run on an emulated rig).
    can_filters : list of dict, optional
        python-can filters of this node (None: every frame).
    receive_own_messages : bool, optional
        Deliver the node's own frames back to it.

    Returns
    -------
    LockstepBus
    """
    return LockstepBus(channel, can_filters=can_filters, receive_own_messages=receive_own_messages)
