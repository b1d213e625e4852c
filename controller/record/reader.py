"""Reading a flight record (``run.mcap``): messages by topic, attachments, metadata, checks, recovery.

A *finished* file (``FlightRecorder.close`` ran: summary section, indexes, footer) is
read with the ``mcap`` library's seeking reader (:func:`mcap.reader.make_reader`). An
*unfinished* one (the process was killed, the machine lost power) has no summary; it is
read front to back with :class:`mcap.stream_reader.StreamReader`, tolerantly: every
record up to the first one that is cut short or does not check out (a chunk whose CRC or
decompression fails) is used, the rest is ignored (:mod:`controller.record.mcap_scan`).
:func:`recover` writes what was read into a finished file; it and :class:`RecoverReport`
live in :mod:`controller.record.recover` and are re-exported here, as is
:class:`RecordFileError` (defined in :mod:`controller.record.mcap_scan`).

Messages are decoded from JSON into dicts. Errors that make a file unreadable (not an
MCAP file, not a JSON-Schema record) raise :class:`RecordFileError`, whose text is one
line naming the file (the CLI prints it and exits 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mcap.reader import make_reader
from mcap.records import Attachment, Channel, Message, Metadata, Schema

from controller.record.mcap_scan import RecordFileError, ScanState, scan_records
from controller.record.recover import RecoverReport, recover

__all__ = [
    "ChannelInfo",
    "FlightRecord",
    "RecordAttachment",
    "RecordFileError",
    "RecordMessage",
    "RecoverReport",
    "recover",
    "validate",
]

#: Problems :func:`validate` lists per channel before it only counts them.
MAX_PROBLEMS_PER_CHANNEL = 10


@dataclass(frozen=True)
class RecordMessage:
    """One decoded message.

    Attributes
    ----------
    topic : str
        Channel topic.
    log_time_ns : int
        Run-clock time (ns).
    data : dict
        The JSON message.
    channel_id : int
        Channel id in the file.
    """

    topic: str
    log_time_ns: int
    data: dict[str, object]
    channel_id: int


@dataclass(frozen=True)
class RecordAttachment:
    """One attachment (``rig.yaml``, ``mission.yaml``, ...).

    Attributes
    ----------
    name, media_type : str
        As written.
    data : bytes
        Its bytes.
    log_time_ns : int
        Its log time (ns).
    """

    name: str
    media_type: str
    data: bytes
    log_time_ns: int


@dataclass(frozen=True)
class ChannelInfo:
    """A channel and its schema.

    Attributes
    ----------
    id : int
        Channel id.
    topic, message_encoding : str
        As registered (``json`` for QIKI's channels).
    schema_name, schema_encoding : str
        Schema name and encoding (``jsonschema``); empty without a schema.
    schema_data : bytes
        The schema's bytes (a JSON Schema document for QIKI's channels).
    message_count : int
        Messages on the channel that were read (finished file: from the statistics).
    """

    id: int
    topic: str
    message_encoding: str
    schema_name: str
    schema_encoding: str
    schema_data: bytes
    message_count: int


def _decode_json(path: Path, topic: str, data: bytes) -> dict[str, object]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFileError(path, f"{topic}: message is not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise RecordFileError(path, f"{topic}: message is not a JSON object")
    return obj


class FlightRecord:
    """Read access to one flight record, finished or not.

    Parameters
    ----------
    path : Path
        The ``.mcap`` file (or a ``run.mcap.part`` being or left written).

    Raises
    ------
    RecordFileError
        Missing or unreadable file, or not an MCAP file.

    Notes
    -----
    A finished file is read through its summary and indexes; an unfinished one by a
    tolerant scan (see the module docstring). :attr:`finished` tells which.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordFileError(self.path, "no such file")
        self.finished = False
        try:
            with open(self.path, "rb") as f:
                summary = make_reader(f).get_summary()
            self.finished = summary is not None
        except Exception:  # noqa: BLE001 - no or damaged summary: read it front to back
            self.finished = False
        self._channels: dict[int, ChannelInfo] | None = None
        if not self.finished:
            with open(self.path, "rb") as f:  # check the magic now: bad input fails here
                next(iter(scan_records(f, self.path, ScanState())), None)

    # ------------------------------------------------------------------ whole-file reads
    def _records(self, scan: ScanState | None = None) -> Iterator[object]:
        with open(self.path, "rb") as f:
            yield from scan_records(f, self.path, scan or ScanState())

    def channels(self) -> dict[str, ChannelInfo]:
        """Return the channels by topic (with message counts)."""
        if self._channels is None:
            self._channels = self._read_channels()
        return {c.topic: c for c in self._channels.values()}

    def _read_channels(self) -> dict[int, ChannelInfo]:
        schemas: dict[int, Schema] = {}
        chans: dict[int, Channel] = {}
        counts: dict[int, int] = {}
        if self.finished:
            with open(self.path, "rb") as f:
                summary = make_reader(f).get_summary()
            assert summary is not None
            schemas = dict(summary.schemas)
            chans = dict(summary.channels)
            if summary.statistics is not None:
                counts = dict(summary.statistics.channel_message_counts)
        else:
            for rec in self._records():
                if isinstance(rec, Schema):
                    schemas.setdefault(rec.id, rec)
                elif isinstance(rec, Channel):
                    chans.setdefault(rec.id, rec)
                elif isinstance(rec, Message):
                    counts[rec.channel_id] = counts.get(rec.channel_id, 0) + 1
        out: dict[int, ChannelInfo] = {}
        for cid, ch in chans.items():
            sc = schemas.get(ch.schema_id)
            out[cid] = ChannelInfo(id=cid, topic=ch.topic, message_encoding=ch.message_encoding,
                                   schema_name=sc.name if sc else "", schema_encoding=sc.encoding if sc else "",
                                   schema_data=bytes(sc.data) if sc else b"", message_count=counts.get(cid, 0))
        return out

    def topics(self) -> list[str]:
        """Return the topics in the file, sorted."""
        return sorted(self.channels())

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[RecordMessage]:
        """Yield the decoded messages of ``topics`` (default: all) in log-time order.

        Parameters
        ----------
        topics : iterable of str or None
            Topics to read (unknown ones give nothing).

        Yields
        ------
        RecordMessage

        Raises
        ------
        RecordFileError
            A message that is not a JSON object.
        """
        wanted = None if topics is None else set(topics)
        if self.finished:
            with open(self.path, "rb") as f:
                reader = make_reader(f)
                for _schema, channel, msg in reader.iter_messages(
                        topics=None if wanted is None else sorted(wanted), log_time_order=True):
                    yield RecordMessage(channel.topic, msg.log_time, _decode_json(self.path, channel.topic, msg.data),
                                        channel.id)
            return
        chans: dict[int, str] = {}
        pending: list[RecordMessage] = []
        for rec in self._records():
            if isinstance(rec, Channel):
                chans.setdefault(rec.id, rec.topic)
            elif isinstance(rec, Message):
                topic = chans.get(rec.channel_id)
                if topic is None or (wanted is not None and topic not in wanted):
                    continue
                pending.append(RecordMessage(topic, rec.log_time, _decode_json(self.path, topic, rec.data),
                                             rec.channel_id))
        pending.sort(key=lambda m: m.log_time_ns)  # stable: file order within one time
        yield from pending

    def topic(self, name: str) -> list[dict[str, object]]:
        """Return the messages of one topic as dicts (``log_time_ns`` added to each)."""
        return [{**m.data, "log_time_ns": m.log_time_ns} for m in self.messages([name])]

    def attachments(self) -> list[RecordAttachment]:
        """Return every attachment, in file order."""
        if self.finished:
            with open(self.path, "rb") as f:
                return [RecordAttachment(a.name, a.media_type, bytes(a.data), a.log_time)
                        for a in make_reader(f).iter_attachments()]
        return [RecordAttachment(r.name, r.media_type, bytes(r.data), r.log_time)
                for r in self._records() if isinstance(r, Attachment)]

    def attachment(self, name: str) -> bytes | None:
        """Return the bytes of the attachment ``name`` (the first of that name), or None."""
        for a in self.attachments():
            if a.name == name:
                return a.data
        return None

    def metadata(self) -> dict[str, dict[str, str]]:
        """Return the metadata records by name (a later record of a name wins)."""
        if self.finished:
            with open(self.path, "rb") as f:
                return {m.name: dict(m.metadata) for m in make_reader(f).iter_metadata()}
        return {r.name: dict(r.metadata) for r in self._records() if isinstance(r, Metadata)}

    def statistics(self) -> dict[str, int | None]:
        """Return message, chunk, channel counts and the log-time span (ns) of the file."""
        if self.finished:
            with open(self.path, "rb") as f:
                summary = make_reader(f).get_summary()
            st = summary.statistics if summary is not None else None
            if st is not None:
                return {"messages": st.message_count, "chunks": st.chunk_count, "channels": st.channel_count,
                        "attachments": st.attachment_count, "metadata": st.metadata_count,
                        "start_ns": st.message_start_time if st.message_count else None,
                        "end_ns": st.message_end_time if st.message_count else None}
        scan = ScanState()
        n = atts = metas = 0
        start: int | None = None
        end: int | None = None
        chans: set[int] = set()
        for rec in self._records(scan):
            if isinstance(rec, Message):
                n += 1
                start = rec.log_time if start is None else min(start, rec.log_time)
                end = rec.log_time if end is None else max(end, rec.log_time)
            elif isinstance(rec, Channel):
                chans.add(rec.id)
            elif isinstance(rec, Attachment):
                atts += 1
            elif isinstance(rec, Metadata):
                metas += 1
        return {"messages": n, "chunks": scan.chunks, "channels": len(chans), "attachments": atts,
                "metadata": metas, "start_ns": start, "end_ns": end}


# ---------------------------------------------------------------------- validation
def validate(path: Path | str) -> list[str]:
    """Check a flight record: every message against its channel's JSON Schema.

    Checks that the file is finished and its summary reads, that each channel has a
    ``jsonschema`` schema that is itself a valid JSON Schema and ``json`` messages, that
    each message is a JSON object (no NaN/Infinity) valid against the schema, and that
    the statistics' message count matches the messages read.

    Parameters
    ----------
    path : Path or str
        The ``.mcap`` file.

    Returns
    -------
    list of str
        One line per problem (at most :data:`MAX_PROBLEMS_PER_CHANNEL` per channel, then
        a count); empty when the file is valid.

    Raises
    ------
    RecordFileError
        The file cannot be read at all.
    """
    from jsonschema import exceptions as js_exceptions
    from jsonschema.validators import Draft202012Validator, validator_for

    rec = FlightRecord(path)
    problems: list[str] = []
    if not rec.finished:
        problems.append(f"{rec.path}: not finished (no summary or footer); `qiki runs recover` finishes it")
    channels = rec.channels()
    validators: dict[str, object] = {}
    for topic, ch in sorted(channels.items()):
        if ch.message_encoding != "json":
            problems.append(f"{topic}: message encoding {ch.message_encoding!r}, expected 'json'")
            continue
        if ch.schema_encoding != "jsonschema":
            problems.append(f"{topic}: schema encoding {ch.schema_encoding!r}, expected 'jsonschema'")
            continue
        try:
            schema = json.loads(ch.schema_data)
            cls = validator_for(schema, default=Draft202012Validator)
            cls.check_schema(schema)
            validators[topic] = cls(schema)
        except (ValueError, js_exceptions.SchemaError) as exc:
            problems.append(f"{topic}: schema {ch.schema_name!r} is not a valid JSON Schema: "
                            f"{' '.join(str(exc).split())[:200]}")
    bad: dict[str, int] = {}
    seen = 0

    def _no_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    with open(rec.path, "rb") as f:
        if rec.finished:
            stream = ((c.topic, m) for _s, c, m in make_reader(f).iter_messages(log_time_order=False))
        else:
            chan_topic = {c.id: c.topic for c in channels.values()}
            stream = ((chan_topic.get(m.channel_id, f"<channel {m.channel_id}>"), m)
                      for m in scan_records(f, rec.path, ScanState()) if isinstance(m, Message))
        for topic, msg in stream:
            seen += 1
            where = f"{topic} @ {msg.log_time} ns"
            errs: list[str] = []
            try:
                obj = json.loads(msg.data, parse_constant=_no_constant)
            except (ValueError, UnicodeDecodeError) as exc:
                errs.append(f"{where}: not JSON ({exc})")
            else:
                v = validators.get(topic)
                if v is not None:
                    for e in v.iter_errors(obj):  # type: ignore[attr-defined]
                        loc = "/".join(str(p) for p in e.absolute_path) or "(root)"
                        errs.append(f"{where}: {loc}: {e.message}")
            for e in errs:
                bad[topic] = bad.get(topic, 0) + 1
                if bad[topic] <= MAX_PROBLEMS_PER_CHANNEL:
                    problems.append(e)
    for topic, n in sorted(bad.items()):
        if n > MAX_PROBLEMS_PER_CHANNEL:
            problems.append(f"{topic}: {n - MAX_PROBLEMS_PER_CHANNEL} more problems not listed")
    if rec.finished:
        st = rec.statistics()
        if st["messages"] != seen:
            problems.append(f"{rec.path}: statistics count {st['messages']} messages, {seen} read")
    return problems
