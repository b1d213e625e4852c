"""The real-time path of the flight recorder: a bounded queue, drops, dropout runs, the writer thread.

In real time :meth:`controller.record.flight.FlightRecorder.write` only hands the tuple
``(channel_id, log_time_ns, message)`` to :meth:`RecordQueue.offer`, which appends it to
a C ``queue.SimpleQueue`` (never blocks, never encodes JSON in the caller). When the
queue holds ``capacity`` items the message is dropped and counted; the next message
that finds room queues a dropout message ``{first_dropped_ns, last_dropped_ns, count}``
for ``/record/dropouts`` first. The capacity is a soft bound: control items (channels,
attachments, metadata, the dropout message, the stop marker) are never refused. The
writer thread runs :meth:`controller.record.flight_writer.RecordWriter.run`.
"""

from __future__ import annotations

import queue
import threading

from controller.record.flight_writer import STOP, ControlItem, JsonMessage, RecordWriter

__all__ = ["RecordQueue"]


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

    Attributes
    ----------
    dropped : int
        Messages refused because the queue was full.
    high_water : int
        Most items seen in the queue by an :meth:`offer`.
    dropout_channel : int
        Channel id of ``/record/dropouts`` (set by the recorder once registered).
    """

    def __init__(self, writer: RecordWriter, capacity: int, gate: threading.Event | None) -> None:
        self._w = writer
        self.capacity = capacity
        self.dropped = 0
        self.high_water = 0
        self.dropout_channel = 0
        self._pending_first_ns: int | None = None
        self._pending_last_ns = 0
        self._pending_count = 0
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=writer.run, args=(self._q, gate), name="qiki-flight-record",
                                        daemon=True)
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
        self._q.put(STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
