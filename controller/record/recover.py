"""Recovering a flight record: rewrite an unfinished ``run.mcap`` into a finished one.

:func:`recover` reads the source front to back with the tolerant scan of
:mod:`controller.record.mcap_scan` (every record up to the first one that is cut short or
does not check out) and writes what it read into a finished file; :class:`RecoverReport`
says what was kept. ``qiki runs recover RUN`` is the CLI verb. Both names are also
importable from :mod:`controller.record.reader`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mcap.records import Attachment, Channel, Message, Metadata, Schema
from mcap.writer import CompressionType, Writer

from controller.record.mcap_scan import RecordFileError, ScanState, scan_records

__all__ = ["RecoverReport", "recover"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoverReport:
    """What :func:`recover` kept.

    Attributes
    ----------
    source_finished : bool
        The source already had a summary and footer (it was copied, not repaired).
    messages_kept : int
        Messages written to the destination.
    last_log_time_ns : int or None
        Newest log time kept.
    chunks_kept : int
        Complete chunks read from the source.
    channels, attachments, metadata : int
        How many of each were kept.
    bytes_used, bytes_total : int
        Source bytes up to the end of the last record used, and the source's size.
    stop_reason : str
        Why reading stopped (``end of file`` for a finished source).
    """

    source_finished: bool
    messages_kept: int
    last_log_time_ns: int | None
    chunks_kept: int
    channels: int
    attachments: int
    metadata: int
    bytes_used: int
    bytes_total: int
    stop_reason: str

    def as_dict(self) -> dict[str, object]:
        """Return the report as a JSON-ready dict."""
        return dict(self.__dict__)


def recover(src: Path | str, dst: Path | str) -> RecoverReport:
    """Rewrite a flight record, finished or not, into a finished file.

    Reads ``src`` front to back with :class:`mcap.stream_reader.StreamReader`, keeping every
    schema, channel, attachment, metadata record and every message of every complete chunk
    up to the first record that is cut short or damaged, and writes them, in file order,
    to ``dst`` (written to ``dst`` + ``.tmp`` and renamed, so ``dst`` is never half
    written). Channel and schema ids may be renumbered; topics, schemas, log and publish
    times, sequence numbers and message bytes are kept as they were.

    Parameters
    ----------
    src : Path or str
        The file to read (``run.mcap.part``, or an unfinished ``run.mcap``).
    dst : Path or str
        The finished file to write; must not be ``src``.

    Returns
    -------
    RecoverReport

    Raises
    ------
    RecordFileError
        ``src`` is missing or not an MCAP file; ``dst`` is ``src``.
    OSError
        ``dst`` cannot be written.
    """
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise RecordFileError(src_p, "no such file")
    if dst_p.exists() and dst_p.resolve() == src_p.resolve():
        raise RecordFileError(src_p, "recover needs a destination other than the source")
    tmp = dst_p.with_name(dst_p.name + ".tmp")
    scan = ScanState()
    schema_ids: dict[int, int] = {}
    channel_ids: dict[int, int] = {}
    n_msgs = n_att = n_meta = 0
    last: int | None = None
    with open(src_p, "rb") as f, open(tmp, "wb") as out:
        writer: Writer | None = None
        try:
            for rec in scan_records(f, src_p, scan):
                if writer is None:
                    header = scan.header
                    writer = Writer(out, compression=CompressionType.ZSTD)
                    writer.start(profile=header.profile if header else "",
                                 library=f"qiki-recover/1 (from {header.library if header else '?'})")
                if isinstance(rec, Schema):
                    if rec.id not in schema_ids and rec.id != 0:
                        schema_ids[rec.id] = writer.register_schema(name=rec.name, encoding=rec.encoding,
                                                                    data=bytes(rec.data))
                elif isinstance(rec, Channel):
                    if rec.id not in channel_ids:
                        channel_ids[rec.id] = writer.register_channel(
                            topic=rec.topic, message_encoding=rec.message_encoding,
                            schema_id=schema_ids.get(rec.schema_id, 0), metadata=dict(rec.metadata))
                elif isinstance(rec, Message):
                    cid = channel_ids.get(rec.channel_id)
                    if cid is None:
                        log.warning("%s: message on unknown channel %d skipped", src_p, rec.channel_id)
                        continue
                    writer.add_message(channel_id=cid, log_time=rec.log_time, data=bytes(rec.data),
                                       publish_time=rec.publish_time, sequence=rec.sequence)
                    n_msgs += 1
                    last = rec.log_time if last is None else max(last, rec.log_time)
                elif isinstance(rec, Attachment):
                    writer.add_attachment(create_time=rec.create_time, log_time=rec.log_time, name=rec.name,
                                          media_type=rec.media_type, data=bytes(rec.data))
                    n_att += 1
                elif isinstance(rec, Metadata):
                    writer.add_metadata(name=rec.name, data=dict(rec.metadata))
                    n_meta += 1
            if writer is None:
                writer = Writer(out, compression=CompressionType.ZSTD)
                writer.start(profile="", library="qiki-recover/1")
            writer.finish()
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, dst_p)
    report = RecoverReport(source_finished=scan.finished, messages_kept=n_msgs, last_log_time_ns=last,
                           chunks_kept=scan.chunks, channels=len(channel_ids), attachments=n_att, metadata=n_meta,
                           bytes_used=scan.bytes_used, bytes_total=src_p.stat().st_size,
                           stop_reason=scan.stop_reason)
    log.info("%s -> %s: %d messages kept (%s)", src_p, dst_p, n_msgs, scan.stop_reason)
    return report
