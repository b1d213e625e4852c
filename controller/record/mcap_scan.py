"""Tolerant front-to-back reading of an MCAP stream, and the error of an unreadable record.

A flight record whose writer never finished it (the process was killed, the machine lost
power) has no summary and no footer; :func:`scan_records` reads it front to back with
:class:`mcap.stream_reader.StreamReader`, tolerantly: every record up to the first one
that is cut short or does not check out (a chunk whose CRC or decompression fails) is
yielded, the rest is ignored, and :class:`ScanState` says where and why reading stopped.
:class:`controller.record.reader.FlightRecord`, :func:`controller.record.reader.validate`
and :func:`controller.record.recover.recover` read unfinished files through it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mcap.records import Chunk, Footer, Header
from mcap.stream_reader import StreamReader, breakup_chunk

from controller.errors import ControllerError

__all__ = ["MCAP_MAGIC", "RecordFileError", "ScanState", "scan_records"]

#: The eight bytes an MCAP file starts (and a finished one ends) with.
MCAP_MAGIC = bytes([137, 77, 67, 65, 80, 48, 13, 10])

#: What the stream reader raises on a record cut short (besides :class:`mcap.exceptions.McapError`).
_TRUNCATION_ERRORS = (EOFError, struct.error, ValueError, KeyError, IndexError, UnicodeDecodeError, MemoryError)


class RecordFileError(ControllerError):
    """A flight record that cannot be read at all (one line, naming the file).

    Parameters
    ----------
    path : Path or str
        The file.
    message : str
        What is wrong.
    """

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        self.message = " ".join(str(message).split())
        super().__init__(f"{self.path}: {self.message}")


@dataclass
class ScanState:
    """Outcome of a tolerant front-to-back read (filled in by :func:`scan_records`).

    Attributes
    ----------
    finished : bool
        A footer was read (the file was finished).
    stop_reason : str
        Why reading stopped (``end of file``, ``cut short or damaged after byte N ...``).
    bytes_used : int
        Bytes up to the end of the last record used.
    chunks : int
        Complete chunks read.
    header : mcap.records.Header or None
        The file's header, once read.
    errors : list of str
        Unused today (kept for callers that note problems alongside the scan).
    """

    finished: bool = False
    stop_reason: str = ""
    bytes_used: int = 0
    chunks: int = 0
    header: Header | None = None
    errors: list[str] = field(default_factory=list)


def scan_records(f: IO[bytes], path: Path, scan: ScanState) -> Iterator[object]:
    """Yield the records of an MCAP stream (chunks broken up), stopping at the first bad one.

    Parameters
    ----------
    f : binary file
        The stream, positioned at the magic.
    path : Path
        The file, for error texts.
    scan : ScanState
        Filled in as reading goes (read it after the iteration ends).

    Raises
    ------
    RecordFileError
        The file does not start with the MCAP magic.
    """
    from mcap.exceptions import InvalidMagic, McapError

    size = os.fstat(f.fileno()).st_size
    start = f.tell()
    magic = f.read(8)
    f.seek(start)
    if len(magic) < 8 or magic != MCAP_MAGIC:
        raise RecordFileError(path, "empty file (nothing was recorded)" if size == 0
                              else "not an MCAP file (bad magic)")
    reader = StreamReader(f, emit_chunks=True, validate_crcs=False, record_size_limit=max(size, 1))
    it = iter(reader.records)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            scan.stop_reason = "end of file"
            return
        except InvalidMagic:
            # the closing magic after the footer is missing or cut: everything else was read
            scan.stop_reason = "closing magic missing or damaged"
            return
        except (McapError, *_TRUNCATION_ERRORS) as exc:
            scan.stop_reason = f"cut short or damaged after byte {scan.bytes_used} ({type(exc).__name__}: {exc})"[:200]
            return
        if isinstance(rec, Chunk):
            try:
                inner = breakup_chunk(rec, validate_crc=True)
            except Exception as exc:  # noqa: BLE001 - zstd/lz4/CRC errors: the chunk is damaged
                scan.stop_reason = f"chunk after byte {scan.bytes_used} does not check out ({type(exc).__name__})"
                return
            scan.chunks += 1
            scan.bytes_used = f.tell()
            yield from inner
            continue
        scan.bytes_used = f.tell()
        if isinstance(rec, Header):
            scan.header = rec
        if isinstance(rec, Footer):
            scan.finished = True
        yield rec
