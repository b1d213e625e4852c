"""The real-time path of the flight recorder: a bounded queue, drops, dropout runs, the writer thread.

In real time :meth:`controller.record.flight.FlightRecorder.write` only hands the tuple
``(channel_id, log_time_ns, message)`` to :meth:`RecordQueue.offer`, which appends it to
a C ``queue.SimpleQueue`` (never blocks, never encodes JSON in the caller). When the
queue holds ``capacity`` items the message is dropped and counted; the next message
that finds room queues a dropout message ``{first_dropped_ns, last_dropped_ns, count}``
for ``/record/dropouts`` first. The capacity is a soft bound: control items (channels,
attachments, metadata, the dropout message, the stop marker) are never refused. The
writer thread runs :meth:`controller.record.flight_writer.RecordWriter.run`.

Working between the ticks
-------------------------
Python runs one thread at a time (the GIL). A writer thread that encodes while the tick
runs takes the interpreter from the tick whenever the tick blocks for a moment (a
socket, a file write) and keeps it until it blocks itself or the switch interval
(5 ms) runs out: the tick waits. So the writer works while the control thread sleeps
between ticks. Before it sleeps, the control thread tells the :class:`IdleGate` how
long it will sleep (:meth:`IdleGate.idle`, from
:meth:`controller.record.taps.TapClock.sleep_until`); the writer then takes items until
``margin_s`` before the next tick is due, checking the time between items, and waits
for the next idle signal. Without idle signals for ``quiet_s`` (before the loop starts,
after it ends, a tick that stalls) it works freely, and so it does when the queue is
half full (a loop that overruns every period has no idle time; a dropout is worse) or
when the recorder is draining or closing. The queue stays bounded either way.
"""

from __future__ import annotations

import math
import queue
import threading
import time

from controller.record.flight_writer import STOP, ControlItem, JsonMessage, RecordWriter

__all__ = ["IdleGate", "RecordQueue"]


class IdleGate:
    """When the writer thread may work: while the control thread sleeps between ticks.

    Parameters
    ----------
    margin_s : float, optional
        The writer stops taking items this long before the next tick is due (s, default
        0.002: longer than the longest item it holds the interpreter for, a chunk close
        of 0.5 s of messages, about 0.3 ms on a loaded 2-core VM).
    quiet_s : float, optional
        Without an idle signal for this long (s, default 0.25) the writer works freely.

    Notes
    -----
    :meth:`idle` and :meth:`force` are called by the control thread, the rest by the
    writer thread. Times are ``time.monotonic()`` seconds.
    """

    __slots__ = ("margin_s", "quiet_s", "_until_s", "_signal_s", "_forced", "_event")

    def __init__(self, margin_s: float = 0.002, quiet_s: float = 0.25) -> None:
        self.margin_s = float(margin_s)
        self.quiet_s = float(quiet_s)
        self._until_s = 0.0
        self._signal_s = -math.inf
        self._forced = 0
        self._event = threading.Event()

    def idle(self, remaining_s: float) -> None:
        """Control thread: it is about to sleep ``remaining_s`` (s) until the next tick."""
        now = time.monotonic()
        self._until_s = now + remaining_s - self.margin_s
        self._signal_s = now
        self._event.set()

    def force(self, on: bool) -> None:
        """Let the writer work freely (``on``) until as many ``force(False)`` (draining, closing)."""
        self._forced += 1 if on else -1
        self._event.set()

    def gated(self) -> bool:
        """Writer: whether to keep to the idle windows (a loop is signalling, nothing forces)."""
        return self._forced <= 0 and time.monotonic() - self._signal_s < self.quiet_s

    def window_open(self) -> bool:
        """Writer: whether the current idle window is still open (or the gate is forced)."""
        return self._forced > 0 or time.monotonic() < self._until_s

    def wait(self) -> None:
        """Writer: block until the next idle signal (or ``quiet_s`` without one)."""
        self._event.wait(self.quiet_s)
        self._event.clear()


class RecordQueue:
    """The real-time path: a bounded queue to the writer thread, drops and dropout runs.

    Starts the writer thread (:meth:`RecordWriter.run`, daemon, ``qiki-flight-record``).
    Called from one thread (the tick's).

    Parameters
    ----------
    writer : RecordWriter
        The writing side, run by the thread.
    capacity : int
        Items the queue holds before messages are dropped (a soft bound: control items
        are never refused).
    gate : threading.Event or None
        Tests only: the writer thread waits for it before taking each item.
    idle : IdleGate or None, optional
        Keep the writer to the control thread's idle windows (None: work whenever there
        is an item).

    Attributes
    ----------
    idle : IdleGate or None
        As passed.
    dropped : int
        Messages refused because the queue was full.
    high_water : int
        Most items seen in the queue by an :meth:`offer`.
    dropout_channel : int
        Channel id of ``/record/dropouts`` (set by the recorder once registered).
    """

    def __init__(self, writer: RecordWriter, capacity: int, gate: threading.Event | None,
                 idle: IdleGate | None = None) -> None:
        self._w = writer
        self.capacity = capacity
        self.idle = idle
        self.dropped = 0
        self.high_water = 0
        self.dropout_channel = 0
        self._pending_first_ns: int | None = None
        self._pending_last_ns = 0
        self._pending_count = 0
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=writer.run, args=(self._q, gate, idle, max(1, capacity // 2)),
                                        name="qiki-flight-record", daemon=True)
        self._thread.start()

    def offer(self, channel_id: int, log_time_ns: int, message: JsonMessage) -> None:
        """Queue one message, or drop and count it when the queue is full (never blocks).

        The first message that finds room after a run of drops queues the dropout
        message of that run before itself.
        """
        q = self._q
        n = q.qsize()
        if n >= self.capacity:
            self.dropped += 1
            if self._pending_first_ns is None:
                self._pending_first_ns = log_time_ns
                self._pending_count = 0
            self._pending_last_ns = log_time_ns
            self._pending_count += 1
            return
        if n > self.high_water:
            self.high_water = n
        if self._pending_first_ns is not None:
            self.queue_dropout()
        q.put((channel_id, log_time_ns, message))

    def offer_advance(self, log_time_ns: int) -> None:
        """Queue a clock advance (dropped, uncounted, when the queue is full)."""
        q = self._q
        if q.qsize() < self.capacity:
            q.put((0, log_time_ns, None))

    def put(self, item: ControlItem) -> None:
        """Queue a control item (never refused)."""
        self._q.put(item)

    def queue_dropout(self) -> None:
        """Queue the dropout message of the pending run of drops, if there is one."""
        if self._pending_first_ns is None:
            return
        first, last, count = self._pending_first_ns, self._pending_last_ns, self._pending_count
        self._pending_first_ns = None
        self._pending_count = 0
        channel, w = self.dropout_channel, self._w
        self._q.put(ControlItem("dropout", lambda: w.write_dropout(channel, first, last, count)))

    def stop(self, timeout_s: float | None) -> bool:
        """Queue the stop marker and wait for the writer thread.

        Parameters
        ----------
        timeout_s : float or None
            Longest wait in seconds (None: no limit).

        Returns
        -------
        bool
            True when the thread ended, False when it was still busy at the timeout.
        """
        if self.idle is not None:
            self.idle.force(True)  # the loop has ended: write the rest at once
        self._q.put(STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
