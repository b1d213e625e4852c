"""The flight log: topics and JSON Schemas of ``run.mcap``, fed by the taps and the tick.

:class:`FlightLog` is the :class:`~controller.record.taps.IngressSink` of a recorded run:
it registers each topic's channel with its JSON Schema the first time the topic is used
and writes every record at the log time of the tick that produced it (the run clock).
:class:`MemorySink` keeps the records of a replay in memory for the comparison.

Topic families (docs/flight-record.md):

=========================  ==========================================================
``/in/can/<bus>``          every frame the controller received (or the receive error)
``/in/can/<bus>/state``    the bus state as the port read it, when it changed
``/in/can/<bus>/flush``    the outcome of each TX-buffer flush
``/out/can/<bus>``         every frame sent, with the outcome
``/in/serial/<link>``      every non-empty read (or error)
``/out/serial/<link>``     every write, with the count accepted (or error)
``/in/modbus/<dev>``       every new snapshot the tick read
``/in/modbus/<dev>/ticket``  a write's result, when the tick first saw it
``/out/modbus/<dev>``      every write request (relay commands)
``/in/clock``              real time: every control-thread clock reading
``/in/stop``               a stop signal, at the tick that took it
``/tick``                  telemetry of each tick (flat scalars, for plotting)
``/loop``                  real time: each tick's period error and duration
``/events``                every event of ``events.jsonl``, with its code
``/valves``                the duty command per valve, per tick
``/power/bms``             per new BMS sample: SoC, voltage, current and age
``/radar/<name>/tracks``   per radar cycle: the tracks (world frame)
``/snapshot``              the controller's state between two ticks (every period, every
                           new fault; :mod:`controller.record.snapshots`)
=========================  ==========================================================
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol

from controller.record.flight_writer import row_record
from controller.record.taps import RowAppender, TickCursor

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

_TICK_CALL = {"tick": {"type": "integer"}, "call": {"type": "integer", "minimum": 0}}
_ERROR = {"error_type": {"type": "string"}, "error": {"type": "string"}}
_FLOATISH = {"type": ["number", "string"]}  # finite floats, or "nan"/"inf"/"-inf"

_FRAME = {
    "id": {"type": "integer", "minimum": 0, "maximum": 0x1FFFFFFF}, "ext": {"type": "boolean"},
    "rtr": {"type": "boolean"}, "err": {"type": "boolean"}, "fd": {"type": "boolean"},
    "brs": {"type": "boolean"}, "esi": {"type": "boolean"}, "dlc": {"type": "integer", "minimum": 0, "maximum": 64},
    "data": {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
}


def _obj(title: str, props: dict[str, object], required: list[str]) -> dict[str, object]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "type": "object",
            "properties": props, "required": required}


SCHEMAS: dict[str, tuple[str, dict[str, object]]] = {
    "can_rx": ("qiki.CanRx", _obj("CAN frame received, or the receive error",
                                  {**_TICK_CALL, **_FRAME, **_ERROR}, ["tick", "call"])),
    "can_tx": ("qiki.CanTx", _obj("CAN frame sent, with the outcome",
                                  {**_TICK_CALL, **_FRAME, "ok": {"type": "boolean"}, **_ERROR},
                                  ["tick", "call", "id", "dlc", "data", "ok"])),
    "can_state": ("qiki.CanState", _obj("CAN bus state as read by the port",
                                        {**_TICK_CALL, "state": {"type": ["string", "null"]}, **_ERROR},
                                        ["tick", "call", "state"])),
    "can_flush": ("qiki.CanFlush", _obj("TX-buffer flush outcome", {**_TICK_CALL, "ok": {"type": "boolean"}, **_ERROR},
                                        ["tick", "call", "ok"])),
    "serial_rx": ("qiki.SerialRx", _obj("bytes read from a serial link, or the read error",
                                        {**_TICK_CALL, "data": {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
                                         **_ERROR}, ["tick", "call"])),
    "serial_tx": ("qiki.SerialTx", _obj("bytes written to a serial link",
                                        {**_TICK_CALL, "data": {"type": "string", "pattern": "^([0-9a-f]{2})*$"},
                                         "n": {"type": "integer", "minimum": 0}, **_ERROR},
                                        ["tick", "call", "data"])),
    "modbus_snapshot": ("qiki.ModbusSnapshot", _obj(
        "a Modbus device snapshot the tick read (values of the last good poll, counters)",
        {**_TICK_CALL, "values": {"type": "object"}, "sample_time_s": {"type": ["number", "string", "null"]},
         "stale_after_s": _FLOATISH, "stale_after_polls": {"type": "integer"},
         "polls_ok": {"type": "integer"}, "polls_failed": {"type": "integer"},
         "consecutive_failures": {"type": "integer"}, "deadline_misses": {"type": "integer"},
         "transactions": {"type": "integer"}, "failures_by_kind": {"type": "object"},
         "last_failure": {"type": ["object", "null"]}},
        ["tick", "call", "values", "sample_time_s", "polls_ok", "polls_failed"])),
    "modbus_ticket": ("qiki.ModbusWriteResult", _obj(
        "a Modbus write's result when the tick first saw it",
        {**_TICK_CALL, "seq": {"type": "integer"}, "ok": {"type": "boolean"}, "reason": {"type": "string"},
         "readback": {}, "failure": {"type": ["object", "null"]}}, ["tick", "call", "seq", "ok"])),
    "modbus_write": ("qiki.ModbusWrite", _obj(
        "a Modbus write request", {**_TICK_CALL, "seq": {"type": "integer"}, "quantity": {"type": "string"},
                                   "value": {}}, ["tick", "call", "seq", "quantity", "value"])),
    "clock": ("qiki.ClockReading", _obj("a control-thread reading of the run clock",
                                        {**_TICK_CALL, "s": {"type": "number"}, "ns": {"type": "integer"}},
                                        ["tick", "call"])),
    "stop": ("qiki.StopSignal", _obj("a stop signal taken at a tick",
                                     {**_TICK_CALL, "signal": {"type": "string"}}, ["tick", "call", "signal"])),
    "console": ("qiki.ConsoleInput", _obj("a console input a tick drained (issue 14; controller/console/desk.py)",
                                          {**_TICK_CALL, "kind": {"type": "string"}, "session": {"type": "string"},
                                           "age_s": {"type": "number"}}, ["tick", "call", "kind", "session"])),
    "tick": ("qiki.Tick", {**_obj("telemetry of one tick (world frame; NaN when unknown is written as null)",
                                  {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                   "state": {"type": "string"}, "armed": {"type": "boolean"}},
                                  ["tick", "t_s", "state", "armed"]),
                           "additionalProperties": {"type": ["number", "boolean", "string", "null"]}}),
    "loop": ("qiki.LoopTiming", _obj("real-time loop timing of one tick",
                                     {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                      "period_error_s": {"type": "number"}, "tick_duration_s": {"type": "number"},
                                      "overrun": {"type": "boolean"}},
                                     ["tick", "t_s", "period_error_s", "tick_duration_s", "overrun"])),
    "event": ("qiki.Event", {**_obj("an event of the run (events.jsonl) with its code",
                                    {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                     "code": {"type": "integer", "minimum": 100, "maximum": 999},
                                     "kind": {"type": "string"}, "text": {"type": "string"}},
                                    ["tick", "t_s", "code", "kind", "text"])}),
    "valves": ("qiki.ValveCommand", {**_obj("the duty command per valve (percent of the PWM period)",
                                            {"tick": {"type": "integer"}, "t_s": {"type": "number"}},
                                            ["tick", "t_s"]),
                                     "additionalProperties": {"type": ["number", "boolean"]}}),
    "bms": ("qiki.BmsSample", {**_obj("a BMS sample as the tick saw it",
                                      {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                       "age_s": {"type": "number"}}, ["tick", "t_s", "age_s"]),
                               "additionalProperties": {"type": ["number", "null"]}}),
    "snapshot": ("qiki.Snapshot", _obj("the controller's state after a tick (issue 12 part 4)",
                                       {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                        "reason": {"enum": ["period", "fault"]},
                                        "state": {"type": "object", "required": ["vehicle", "run", "loop", "cursor"]}},
                                       ["tick", "t_s", "reason", "state"])),
    "tracks": ("qiki.RadarTracks", _obj("the tracks of one radar cycle (world frame)",
                                        {"tick": {"type": "integer"}, "t_s": {"type": "number"},
                                         "count": {"type": "integer"},
                                         "tracks": {"type": "array", "items": {"type": "object"}}},
                                        ["tick", "t_s", "count", "tracks"])),
}


#: Schemas whose messages hold no NaN or infinity: the taps write ints, hex strings and
#: floats through :func:`~controller.record.taps.enc_float` (non-finite as text).
FINITE_SCHEMAS = frozenset({"can_rx", "can_tx", "can_state", "can_flush", "serial_rx", "serial_tx",
                            "modbus_snapshot", "modbus_ticket", "modbus_write", "clock", "stop"})


def schema_key(topic: str) -> str:
    """Return the :data:`SCHEMAS` key of a topic.

    Raises
    ------
    KeyError
        For a topic of no known family.
    """
    parts = topic.strip("/").split("/")
    head = parts[0]
    if head in ("in", "out") and len(parts) >= 3:
        family, last = parts[1], parts[-1]
        if family == "can":
            if head == "out":
                return "can_tx"
            return {"state": "can_state", "flush": "can_flush"}.get(last, "can_rx") if len(parts) == 4 else "can_rx"
        if family == "serial":
            return "serial_rx" if head == "in" else "serial_tx"
        if family == "modbus":
            if head == "out":
                return "modbus_write"
            return "modbus_ticket" if len(parts) == 4 and last == "ticket" else "modbus_snapshot"
    if topic == "/in/clock":
        return "clock"
    if topic == "/in/stop":
        return "stop"
    if topic == "/in/console":
        return "console"
    simple = {"/tick": "tick", "/loop": "loop", "/events": "event", "/emulation/events": "event", "/valves": "valves",
              "/power/bms": "bms", "/snapshot": "snapshot"}
    if topic in simple:
        return simple[topic]
    if head == "radar" and parts[-1] == "tracks":
        return "tracks"
    raise KeyError(f"no schema for topic {topic!r}")


class Recorder(Protocol):
    """What the flight log needs of the MCAP writer.

    :class:`controller.record.flight.FlightRecorder` (in-process) or
    :class:`controller.record.flight_proc.ProcessRecorder` (a child process; ``run.mcap``).
    """

    def channel(self, topic: str, schema_name: str, schema: dict[str, object], *, finite: bool = False) -> int:
        """Register a JSON channel; return its id (``finite``: its messages hold no NaN or infinity)."""
        ...

    def write(self, channel_id: int, log_time_ns: int, message: Mapping[str, object]) -> None:
        """Write one message (never blocks the tick in real time)."""
        ...

    def idle(self, remaining_s: float) -> None:
        """Real time: the control thread sleeps ``remaining_s`` (s) until the next tick."""
        ...

    def write_row(self, channel_id: int, log_time_ns: int, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Write the message :func:`~controller.record.taps.row_record` ``(keys, values)`` (same bytes)."""
        ...


class FlightLog:
    """Sink of every record of a run: the channel of each topic, written at the tick's time.

    Parameters
    ----------
    recorder : Recorder
        The MCAP writer.
    cursor : TickCursor
        Gives the log time (the tick's start on the run clock).
    """

    def __init__(self, recorder: Recorder, cursor: TickCursor) -> None:
        self.recorder = recorder
        self.cursor = cursor
        self._channels: dict[str, int] = {}
        # a channel's first message may come from another thread (the emulator's fault
        # events): registration numbers channels in order, so it is serialised
        self._register_lock = threading.Lock()

    def _channel(self, topic: str) -> int:
        """Return the channel of ``topic``, registering it with its schema on first use."""
        with self._register_lock:
            ch = self._channels.get(topic)
            if ch is None:
                key = schema_key(topic)
                name, schema = SCHEMAS[key]
                ch = self.recorder.channel(topic, name, schema, finite=key in FINITE_SCHEMAS)
                self._channels[topic] = ch
        return ch

    def put(self, topic: str, record: Mapping[str, object]) -> None:
        """Write ``record`` on ``topic`` at the current tick's time (any thread).

        Raises
        ------
        KeyError
            For a topic of no known family (:func:`schema_key`).
        """
        ch = self._channels.get(topic)
        if ch is None:
            ch = self._channel(topic)
        self.recorder.write(ch, self.cursor.now_ns, record)

    def row(self, topic: str, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Write the record :func:`~controller.record.taps.row_record` ``(keys, values)`` on ``topic`` (a tap's row).

        The recorder builds the record (the writer process, off the tick); the file holds
        the same bytes as :meth:`put` of that record.

        Raises
        ------
        KeyError
            For a topic of no known family (:func:`schema_key`).
        """
        ch = self._channels.get(topic)
        if ch is None:
            ch = self._channel(topic)
        self.recorder.write_row(ch, self.cursor.now_ns, keys, values)

    def appender(self, topic: str) -> RowAppender:
        """Return ``append(keys, values)``: :meth:`row` of ``topic`` with the topic bound (a tap's, made once).

        The channel is registered on the first call, as by :meth:`row` (so channels are
        numbered in the order of their first message, as before). With a recorder that
        has ``row_appender`` (the writer process's
        :meth:`~controller.record.flight_proc.ProcessRecorder.row_appender`) the row goes
        straight into its list: one Python call a row. The file holds the same bytes.
        """
        def channel() -> int:
            ch = self._channels.get(topic)
            return ch if ch is not None else self._channel(topic)
        make = getattr(self.recorder, "row_appender", None)
        if callable(make):
            append: RowAppender = make(channel, self.cursor)
            return append
        write_row, cursor = self.recorder.write_row, self.cursor
        ch = -1  # registered on the first row

        def append_row(keys: tuple[str, ...], values: tuple[object, ...]) -> None:
            nonlocal ch
            if ch < 0:
                ch = channel()
            write_row(ch, cursor.now_ns, keys, values)
        return append_row

    def idle(self, remaining_s: float) -> None:
        """Real time: the control thread sleeps ``remaining_s`` (s) until the next tick (the writer's window)."""
        self.recorder.idle(remaining_s)


class MemorySink:
    """Records kept in memory, in order (a replay's outputs; tests)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Mapping[str, object]]] = []

    def put(self, topic: str, record: Mapping[str, object]) -> None:
        """Append ``(topic, record)``."""
        self.records.append((topic, record))

    def row(self, topic: str, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Append ``(topic, row_record(keys, values))``."""
        self.records.append((topic, row_record(keys, values)))

    def appender(self, topic: str) -> RowAppender:
        """Return ``append(keys, values)``: :meth:`row` of ``topic`` with the topic bound."""
        records = self.records

        def append(keys: tuple[str, ...], values: tuple[object, ...]) -> None:
            records.append((topic, row_record(keys, values)))
        return append
