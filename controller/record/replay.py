"""``qiki replay RUN --check``: the recorded inputs through the real controller, outputs compared.

A replay rebuilds the run from the record (the run options in its metadata, the files it
was built from, checked against the attachments), with the replay ports of
:mod:`controller.record.replay_ports` in place of every bus, link, poller and (for a
real-time run) clock, and no emulator or world. Every tick consumes what the recorded tick
consumed, so a deterministic controller produces the same outputs: the frames and serial
bytes sent, the Modbus writes, the duty per valve, the events with their codes and the
telemetry, compared exactly (floats bit for bit: JSON keeps a float's shortest repr).

The first divergence is reported by tick and channel, with both messages.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.records import Chunk
from mcap.stream_reader import get_chunk_data_stream
from mcap.summary import Summary

from controller.errors import ConfigError
from controller.paths import resolve_data_path
from controller.record.flight_writer import encode_message
from controller.record.replay_ports import ReplayInputs
from controller.record.snapshots import SNAPSHOT_TOPIC
from controller.record.taps import Record

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Topic prefixes a replay does not reproduce: the inputs it is fed, what the emulated far
#: end logged (no emulator runs in a replay), the recorder's own dropouts.
NOT_COMPARED_PREFIXES = ("/in/", "/emulation/", "/record/")


def compared(topic: str) -> bool:
    """Return True for a topic whose messages a replay must reproduce exactly.

    Every output (``/out/...``), event, and telemetry channel (``/tick``, ``/valves``,
    ``/loop``, ``/radar/...``, ``/power/...``).
    """
    return not topic.startswith(NOT_COMPARED_PREFIXES)


@dataclass
class RecordedRun:
    """What a replay needs from a record: options, versions, attachments and messages.

    The messages are kept as read, ``(topic, JSON bytes)`` in file order (:attr:`raw`):
    a replay decodes only the inputs it feeds (:meth:`decoded`) and compares the outputs
    as bytes (:func:`compare`). :attr:`messages` decodes all of them (once, on first use).
    """

    path: Path
    options: dict[str, object]
    versions: dict[str, str]
    attachments: dict[str, bytes]
    raw: list[tuple[str, bytes]]
    #: False for a record that ends early (recovered after a kill: no ``run_end`` metadata).
    complete: bool = True
    #: Every metadata record by name (``doctor``: the doctor's verdicts the run was gated by).
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    _decoded: list[tuple[str, Record]] | None = field(default=None, repr=False, compare=False)

    @property
    def messages(self) -> list[tuple[str, Record]]:
        """Every message decoded, ``(topic, record)`` in file order (decoded on first use)."""
        if self._decoded is None:
            self._decoded = [(t, _loads(d)) for t, d in self.raw]
        return self._decoded

    def decoded(self, want: Callable[[str], bool]) -> Iterator[tuple[str, Record]]:
        """Yield ``(topic, record)`` of the messages whose topic ``want`` accepts, decoding only those."""
        if self._decoded is not None:
            yield from ((t, r) for t, r in self._decoded if want(t))
            return
        for t, d in self.raw:
            if want(t):
                yield t, _loads(d)

    @property
    def last_tick(self) -> int:
        """The last tick with a ``/tick`` record (-1: none)."""
        return max((_raw_tick(d) for t, d in self.raw if t == "/tick"), default=-1)


def read_record(path: Path) -> RecordedRun:
    """Read a finished ``run.mcap`` (or the run folder holding it).

    Raises
    ------
    ConfigError
        When the file is missing, unfinished (run ``qiki runs recover``) or not a QIKI record.
    """
    from mcap.reader import make_reader

    p = Path(path)
    if p.is_dir():
        p = p / "run.mcap"
    if not p.is_file():
        raise ConfigError(str(p), "", "no flight record here")
    options: dict[str, object] = {}
    versions: dict[str, str] = {}
    attachments: dict[str, bytes] = {}
    messages: list[tuple[str, bytes]] = []
    complete = False
    event_window = False
    all_meta: dict[str, dict[str, str]] = {}
    try:
        with p.open("rb") as f:
            reader = make_reader(f)
            for m in reader.iter_metadata():
                all_meta[m.name] = dict(m.metadata)
                if m.name == "run_options":
                    options = {k: json.loads(v) for k, v in m.metadata.items()}
                elif m.name == "versions":
                    versions = dict(m.metadata)
                elif m.name == "run_end":
                    complete = True
                elif m.name == "event":
                    event_window = True
            for a in reader.iter_attachments():
                attachments[a.name] = bytes(a.data)
            summary = reader.get_summary()
            if summary is not None and summary.chunk_indexes:
                messages.extend(_chunk_messages(f, summary))
            else:
                for _schema, channel, message in reader.iter_messages(log_time_order=False):
                    messages.append((channel.topic, bytes(message.data)))
    except (McapError, ValueError, OSError, EOFError) as exc:
        raise ConfigError(str(p), "", f"not a finished flight record ({exc}); "
                          "`qiki runs recover` rewrites an unfinished one") from exc
    if not options:
        raise ConfigError(str(p), "", "metadata 'run_options' missing: not a QIKI flight record")
    if event_window:
        raise ConfigError(str(p), "", "an event-triggered record holds a window of the run, not its start: "
                          "only a record of the whole run (run.mcap) replays")
    return RecordedRun(p, options, versions, attachments, messages, complete, all_meta)


def drift(run: RecordedRun, current_version: str) -> list[str]:
    """Return why the current checkout differs from the recorded one (empty: no drift).

    Compares QIKI's version and every attached file against the file the same name
    resolves to now (:func:`controller.paths.resolve_data_path`).
    """
    out: list[str] = []
    rec_version = run.versions.get("qiki", "")
    if rec_version and rec_version != current_version:
        out.append(f"QIKI version {current_version} differs from the recorded {rec_version}")
    for name, data in sorted(run.attachments.items()):
        p = resolve_data_path(name)
        try:
            now = p.read_bytes()
        except OSError:
            out.append(f"{name}: recorded, not found now")
            continue
        if now != data:
            out.append(f"{name}: differs from the recorded file")
    return out


@dataclass
class Divergence:
    """The first difference on one channel."""

    topic: str
    index: int
    tick: int
    recorded: Mapping[str, object] | None
    replayed: Mapping[str, object] | None


@dataclass
class CheckReport:
    """The comparison of a replay with its record."""

    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    first: Divergence | None = None

    @property
    def identical(self) -> bool:
        """True when every compared channel matched message for message."""
        return self.first is None

    def lines(self) -> list[str]:
        """Return the report as lines for the terminal."""
        out = []
        if self.first is None:
            out.append("replay identical to the record")
        else:
            d = self.first
            out.append(f"first divergence: tick {d.tick}, channel {d.topic}, message {d.index}")
            out.append(f"  recorded: {json.dumps(d.recorded, sort_keys=True)}")
            out.append(f"  replayed: {json.dumps(d.replayed, sort_keys=True)}")
        for topic, c in sorted(self.per_topic.items()):
            out.append(f"  {topic:<28} recorded {c['recorded']:>7}  replayed {c['replayed']:>7}  "
                       f"differing {c['differing']:>7}")
        return out


def _tick(rec: Mapping[str, object]) -> int:
    t = rec.get("tick")
    return t if isinstance(t, int) else -1


_TICK_HEAD = b'{"tick":'


def _raw_tick(data: bytes) -> int:
    """Return the ``tick`` of one encoded message (-1: none), without decoding it when it comes first.

    Every message the run records starts with its tick (``{"tick":N,...``); anything
    else is decoded.
    """
    if data.startswith(_TICK_HEAD):
        end = data.find(b",", 8)
        if end < 0:
            end = data.find(b"}", 8)
        try:
            return int(data[8:end])
        except ValueError:
            pass
    try:
        return _tick(_loads(data))
    except ValueError:
        return -1


Message = Mapping[str, object]
"""One decoded message of a channel."""

#: A recorded message for :func:`compare`: decoded, or its JSON bytes as the file holds them.
RecordedMessage = Message | bytes


def _by_topic(records: Iterable[tuple[str, RecordedMessage]], until_tick: int | None,
              after_tick: int | None = None) -> dict[str, list[RecordedMessage]]:
    lists: dict[str, list[RecordedMessage] | None] = {}  # per topic its list, None: not compared
    bounded = until_tick is not None or after_tick is not None
    for topic, rec in records:
        if topic in lists:
            lst = lists[topic]
        else:
            lst = lists[topic] = [] if compared(topic) else None
        if lst is None:
            continue
        if bounded:
            k = _raw_tick(rec) if isinstance(rec, bytes) else _tick(rec)
            if until_tick is not None and k > until_tick:
                continue
            if after_tick is not None and k <= after_tick:
                continue
        lst.append(rec)
    return {t: lst for t, lst in lists.items() if lst}


#: A message record inside a chunk: opcode (u8), record length (u64), channel id (u16),
#: sequence (u32), log time (u64), publish time (u64), then the data.
_RECORD_HEAD = struct.Struct("<BQ")
_CHANNEL_ID = struct.Struct("<H")
_OP_MESSAGE = 0x05
_MESSAGE_FIXED_BYTES = 22


def _chunk_messages(f: BinaryIO, summary: Summary) -> Iterator[tuple[str, bytes]]:
    """Yield ``(topic, data)`` of every message of a finished record, chunk by chunk in file order.

    The order ``mcap``'s ``iter_messages(log_time_order=False)`` gives; each chunk's
    records are parsed with ``struct`` instead of one Python object per record (about
    twice as fast on a 75 s record).

    Raises
    ------
    McapError
        A compression the ``mcap`` library does not read, or a chunk cut short.
    """
    topics = {cid: ch.topic for cid, ch in summary.channels.items()}
    unpack_head, unpack_ch = _RECORD_HEAD.unpack_from, _CHANNEL_ID.unpack_from
    for index in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
        f.seek(index.chunk_start_offset + 1 + 8)
        chunk = Chunk.read(ReadDataStream(f))
        if chunk.compression == "zstd":
            data = zstandard.decompress(chunk.data, chunk.uncompressed_size)
        elif chunk.compression == "":
            data = chunk.data
        else:  # lz4 and the rest: as the library decompresses them
            stream, _n = get_chunk_data_stream(chunk)
            data = stream.read(_n)
        pos, end = 0, len(data)
        while pos < end:
            op, length = unpack_head(data, pos)
            pos += 9
            if pos + length > end:
                raise McapError(f"chunk at {index.chunk_start_offset}: record cut short")
            if op == _OP_MESSAGE:
                yield topics[unpack_ch(data, pos)[0]], data[pos + _MESSAGE_FIXED_BYTES:pos + length]
            pos += length


def _loads(data: bytes) -> Record:
    """Decode one message's JSON (``orjson``; the standard library's parser for what it refuses).

    Both parse a float's shortest repr back to the same double; ``orjson`` is several
    times faster on these messages.
    """
    try:
        out = orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits
        out = json.loads(data)
    return out  # a JSON object: every message is one


def _encoded(rec: RecordedMessage) -> bytes:
    """Return a message as the recorder encodes it (what the file holds)."""
    return rec if isinstance(rec, bytes) else encode_message(rec, check_nonfinite=False)[0]


def _same_array(recorded: list[RecordedMessage], replayed: list[RecordedMessage]) -> bool:
    """Return True when the replayed messages, encoded as the recorder encodes them, are the recorded bytes.

    The replayed list is encoded as one JSON array (one ``orjson`` call: compact JSON
    of a list is its items' own encodings joined by commas) and compared with the
    recorded bytes joined the same way; each item is one JSON object, so the two arrays
    are equal exactly when every message is. False (compare message by message) when a
    recorded message is decoded rather than bytes, or the array did not encode as the
    recorder encodes one message.
    """
    if not all(type(r) is bytes for r in recorded):
        return False
    # the bytes only: whether a null stands for a NaN does not matter here
    got = encode_message(replayed, check_nonfinite=False)[0]  # type: ignore[arg-type]
    return got == b"[" + b",".join(recorded) + b"]"  # type: ignore[arg-type]


def compare(recorded: Iterable[tuple[str, RecordedMessage]], replayed: Iterable[tuple[str, Mapping[str, object]]],
            until_tick: int | None = None, after_tick: int | None = None) -> CheckReport:
    """Compare the compared channels message by message, in order.

    Parameters
    ----------
    recorded : iterable of (topic, record or bytes)
        The record's messages: decoded, or their JSON bytes (:attr:`RecordedRun.raw`).
    replayed : iterable of (topic, record)
        The replay's messages (a :class:`~controller.record.flight_log.MemorySink`).
    until_tick : int, optional
        Ignore messages of later ticks.
    after_tick : int, optional
        Ignore messages of this and earlier ticks (a replay from the snapshot after it).

    Returns
    -------
    CheckReport
        Per compared topic the counts recorded / replayed / differing, and the first
        divergence (lowest tick over all topics), None when identical.

    Notes
    -----
    Each replayed message is encoded as the recorder encodes it
    (:func:`~controller.record.flight_writer.encode_message`) and compared with the
    recorded bytes; equal bytes are equal messages, and no message is decoded. Only
    when the bytes differ are both decoded and compared as JSON values (floats bit for
    bit: JSON keeps a float's shortest repr), so a record written by another JSON
    encoder (key spacing, exponent form) still compares by value.

    ``/snapshot`` is compared when the record holds snapshots: a replay takes them after
    the same ticks, and each must equal the recorded one (issue 12 part 4).
    """
    recorded = list(recorded)
    a = _by_topic(recorded, until_tick, after_tick)
    b = _by_topic(replayed, until_tick, after_tick)
    if not any(topic == SNAPSHOT_TOPIC for topic, _ in recorded):
        # a record from before snapshots (or a bare test list): the replay's own are not compared
        b.pop(SNAPSHOT_TOPIC, None)
    report = CheckReport()
    for topic in sorted(set(a) | set(b)):
        ra = a.get(topic, [])
        mb = b.get(topic, [])
        if len(ra) == len(mb) and _same_array(ra, mb):  # the usual case: one encoding, one comparison
            report.per_topic[topic] = {"recorded": len(ra), "replayed": len(mb), "differing": 0}
            continue
        # the bytes only: whether a null stands for a NaN does not matter here
        rb = [encode_message(r, check_nonfinite=False)[0] for r in mb]  # type: ignore[arg-type]
        if ra == rb:  # every recorded message as bytes, all equal
            report.per_topic[topic] = {"recorded": len(ra), "replayed": len(rb), "differing": 0}
            continue
        differing = 0
        first: Divergence | None = None
        for i in range(max(len(ra), len(rb))):
            x = _encoded(ra[i]) if i < len(ra) else None
            y = rb[i] if i < len(rb) else None
            if x == y:
                continue
            dx = None if x is None else _loads(x)
            dy = None if y is None else _loads(y)
            if dx == dy:
                continue
            differing += 1
            if first is None:
                tick = min(_tick(r) for r in (dx, dy) if r is not None)
                first = Divergence(topic, i, tick, dx, dy)
        report.per_topic[topic] = {"recorded": len(ra), "replayed": len(rb), "differing": differing}
        if first is not None and (report.first is None or first.tick < report.first.tick):
            report.first = first
    return report


def _is_input(topic: str) -> bool:
    return topic.startswith(("/in/", "/out/"))


def inputs_of(run: RecordedRun) -> ReplayInputs:
    """Index the recorded inputs (and send outcomes) of a run for the replay ports (decoding only those).

    The messages already decoded when :attr:`RecordedRun.messages` was read; else the
    encoded ones, each input topic decoded in one go (:meth:`ReplayInputs.from_json`).
    """
    if run._decoded is not None:
        return ReplayInputs.from_records(run.decoded(_is_input))
    return ReplayInputs.from_json(run.raw, _loads)
