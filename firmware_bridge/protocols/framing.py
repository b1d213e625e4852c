"""Sans-IO byte framing for the QIKI serial links: COBS + CRC-16/CCITT-FALSE + 0x00.

Every message on a QIKI UART (921600 baud, 8N1) travels as one frame::

    wire frame:   +--------------------------------------+------+
                  |  COBS( body || crc16_le )            | 0x00 |
                  +--------------------------------------+------+
                     n + 1 bytes, never contains 0x00       delimiter

    body:         +--------+-------+---------------------------+
                  | msg_id |  seq  |  payload (little-endian)  |
                  |   u8   |  u8   |  0 .. MAX_PAYLOAD_LEN B   |
                  +--------+-------+---------------------------+
                   byte 0   byte 1   bytes 2 ..

    crc16_le:     +---------+---------+
                  | crc & ff| crc >> 8|   CRC-16/CCITT-FALSE over ``body``
                  +---------+---------+

Consistent Overhead Byte Stuffing (COBS) removes every 0x00 from the frame so that 0x00
can serve as an unambiguous delimiter; a receiver that joins mid-stream, or that has seen
garbage, resynchronises at the next 0x00 (S. Cheshire and M. Baker, "Consistent Overhead
Byte Stuffing", IEEE/ACM Transactions on Networking 7(2), 1999). For a decoded frame of
``n <= 254`` bytes the overhead is exactly one byte, so every QIKI frame (payload at most
:data:`MAX_PAYLOAD_LEN`) costs ``payload + 5`` bytes on the wire plus the delimiter.

CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR;
check value 0x29B1 over ASCII ``"123456789"`` (catalogue of parametrised CRC algorithms,
R. Williams' Rocksoft model; ITU-T V.41 polynomial). It is computed with the standard
library's C implementation :func:`binascii.crc_hqx` (same polynomial and register
convention), far cheaper per frame than a Python table loop; the tests hold it to an
independent bit-by-bit implementation.

Nothing here does I/O: :func:`encode_frame` returns bytes to write and
:class:`FrameDecoder` is fed whatever bytes the port returned.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from dataclasses import asdict, dataclass
from typing import NamedTuple

from firmware_bridge.errors import ProtocolError

__all__ = [
    "DELIMITER",
    "MAX_PAYLOAD_LEN",
    "MAX_WIRE_FRAME_LEN",
    "DecoderStats",
    "FrameDecoder",
    "RawFrame",
    "cobs_decode",
    "cobs_encode",
    "crc16_ccitt_false",
    "decode_frame",
    "encode_frame",
    "seal_body",
]

DELIMITER = b"\x00"
#: Largest payload accepted by :func:`encode_frame`. Chosen so that the decoded frame
#: (2 header + payload + 2 CRC = 252 B) fits one COBS block: one byte of overhead, and the
#: encoded frame (253 B) fits the default ``FrameDecoder(max_frame_len=256)``.
MAX_PAYLOAD_LEN = 248
#: Length of the longest encoded frame :func:`encode_frame` produces, delimiter excluded.
MAX_WIRE_FRAME_LEN = MAX_PAYLOAD_LEN + 5

_HEADER_LEN = 2
_CRC_LEN = 2
_MIN_DECODED_LEN = _HEADER_LEN + _CRC_LEN
#: The one-byte ``bytes`` of every value 0..255 (a COBS block code), indexed by value.
_BYTE = tuple(bytes((i,)) for i in range(256))
_pack_crc_le = struct.Struct("<H").pack


class RawFrame(NamedTuple):
    """One frame that passed COBS and CRC checks; the payload is not interpreted.

    Attributes
    ----------
    msg_id : int
        Message identifier, 0..255 (body byte 0).
    seq : int
        Sender's sequence counter, 0..255, wraps (body byte 1).
    payload : bytes
        Payload bytes, little-endian fields, ``0 .. MAX_PAYLOAD_LEN`` long.
    """

    msg_id: int
    seq: int
    payload: bytes


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``.

    Parameters
    ----------
    data : bytes-like
        Bytes to checksum.
    crc : int, optional
        Register start value; 0xFFFF (default) is the CCITT-FALSE initial value. Pass a
        previous result to continue a running CRC over split data.

    Returns
    -------
    int
        16-bit CRC, 0..0xFFFF. ``crc16_ccitt_false(b"123456789") == 0x29B1``.

    Notes
    -----
    Poly 0x1021, init 0xFFFF, refin/refout false, xorout 0 (Rocksoft parameter model).
    """
    return crc_hqx(data, crc)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (Cheshire & Baker 1999, section 3); no delimiter appended.

    Parameters
    ----------
    data : bytes-like
        Any bytes, zeros allowed.

    Returns
    -------
    bytes
        ``len(data) + 1 + len(data) // 254`` bytes at most, none of them 0x00. A trailing
        run of exactly 254 non-zero bytes ends with its 0xFF block (no extra 0x01 group),
        which is the canonical form of the paper.

    Notes
    -----
    Each zero-delimited piece of the input becomes blocks ``code || up to 254 bytes``,
    where ``code = len + 1`` and ``code == 0xFF`` means "254 bytes, no implied zero".
    Splitting on zeros with :meth:`bytes.split` keeps the loop per block, not per byte;
    input shorter than 254 bytes (every QIKI frame) has no piece of 254 bytes or more and
    is joined in one pass.
    """
    data = bytes(data)
    if len(data) < 254:  # one block per piece, none long: every QIKI frame
        return b"".join([_BYTE[len(piece) + 1] + piece for piece in data.split(b"\x00")])
    out = bytearray()
    pieces = data.split(b"\x00")
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        n = len(piece)
        if n < 254:
            out.append(n + 1)
            out += piece
            continue
        start = 0
        while n - start >= 254:
            out.append(0xFF)
            out += piece[start : start + 254]
            start += 254
        rest = n - start
        if rest == 0 and index == last:
            break  # canonical: no empty group after a final 0xFF block
        out.append(rest + 1)
        out += piece[start:]
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS-encoded frame (delimiter already removed).

    Parameters
    ----------
    encoded : bytes-like
        The bytes between two delimiters.

    Returns
    -------
    bytes
        The original data.

    Raises
    ------
    ProtocolError
        If ``encoded`` contains 0x00 or a block's code points past the end.
    """
    enc = bytes(encoded)
    if enc.find(0) >= 0:
        raise ProtocolError("COBS: 0x00 inside an encoded frame")
    out = _cobs_unstuff(enc)
    if out is None:
        raise ProtocolError(f"COBS: a block code runs past the end of the {len(enc)} B frame")
    return out


def _cobs_unstuff(enc: bytes) -> bytes | None:
    """COBS-decode ``enc`` (known to hold no 0x00); None if a block code runs past the end."""
    n = len(enc)
    i = 0
    if n < 255:  # no room for a 0xFF block (254 bytes after its code): a zero between blocks
        parts = []
        while i < n:
            j = i + enc[i]
            if j > n:
                return None
            parts.append(enc[i + 1 : j])
            i = j
        return b"\x00".join(parts)
    out = bytearray()
    while i < n:
        code = enc[i]
        j = i + code
        if j > n:
            return None
        out += enc[i + 1 : j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def _checked_frame(decoded: bytes) -> RawFrame | None:
    """Split a decoded frame of >= 4 bytes into header and payload; None on a CRC mismatch.

    :meth:`FrameDecoder.feed` does the same inline per frame (the call was its cost, issue
    16); keep the two in step.
    """
    body = decoded[:-2]
    if crc_hqx(body, 0xFFFF) != (decoded[-2] | (decoded[-1] << 8)):
        return None
    return RawFrame(body[0], body[1], body[2:])


def encode_frame(msg_id: int, seq: int, payload: bytes = b"") -> bytes:
    """Build one wire frame: ``COBS(msg_id | seq | payload | crc16_le) || 0x00``.

    Parameters
    ----------
    msg_id : int
        Message identifier, 0..255.
    seq : int
        Sequence counter; taken modulo 256.
    payload : bytes-like
        Little-endian payload, at most :data:`MAX_PAYLOAD_LEN` bytes.

    Returns
    -------
    bytes
        ``len(payload) + 6`` bytes, the last one the 0x00 delimiter.

    Raises
    ------
    ProtocolError
        If ``msg_id`` is out of range or the payload is too long.

    Notes
    -----
    Per-tick function (every outgoing message). Byte layout in the module docstring.
    """
    if not 0 <= msg_id <= 0xFF:
        raise ProtocolError(f"msg_id {msg_id} out of range 0..255")
    if len(payload) > MAX_PAYLOAD_LEN:
        raise ProtocolError(f"payload of {len(payload)} B exceeds {MAX_PAYLOAD_LEN} B")
    return seal_body(bytes((msg_id, seq & 0xFF)) + bytes(payload))


def seal_body(body: bytes) -> bytes:
    """Build the wire frame of a complete body: ``COBS(body | crc16_le) || 0x00``.

    The last step of :func:`encode_frame`, for callers that pack header and payload in
    one ``struct`` call (the MCU emulator's streams); same bytes as :func:`encode_frame`
    of the body's parts.

    Parameters
    ----------
    body : bytes
        ``msg_id | seq | payload``: 2 to ``2 + MAX_PAYLOAD_LEN`` bytes (not checked here;
        :func:`encode_frame` checks its arguments).

    Returns
    -------
    bytes
        ``len(body) + 4`` bytes, the last one the 0x00 delimiter.

    Notes
    -----
    Per-tick function. CRC-16/CCITT-FALSE by :func:`binascii.crc_hqx` (module docstring),
    appended little-endian; COBS as :func:`cobs_encode`.
    """
    data = body + _pack_crc_le(crc_hqx(body, 0xFFFF))
    if len(data) < 254:
        parts = [_BYTE[len(piece) + 1] + piece for piece in data.split(b"\x00")]
        parts.append(DELIMITER)
        return b"".join(parts)
    return cobs_encode(data) + DELIMITER


def decode_frame(encoded: bytes) -> RawFrame:
    """Strict one-shot decode of one frame (delimiter optional at the end).

    Parameters
    ----------
    encoded : bytes-like
        One COBS-encoded frame, with or without its trailing 0x00.

    Returns
    -------
    RawFrame

    Raises
    ------
    ProtocolError
        On a COBS error, a frame shorter than header + CRC, or a CRC mismatch.
        (Use :class:`FrameDecoder` for stream input: it counts instead of raising.)
    """
    enc = bytes(encoded)
    if enc.endswith(b"\x00"):
        enc = enc[:-1]
    decoded = cobs_decode(enc)
    if len(decoded) < _MIN_DECODED_LEN:
        raise ProtocolError(f"frame of {len(decoded)} B shorter than {_MIN_DECODED_LEN} B")
    frame = _checked_frame(decoded)
    if frame is None:
        crc, crc_rx = crc_hqx(decoded[:-2], 0xFFFF), decoded[-2] | (decoded[-1] << 8)
        raise ProtocolError(f"CRC mismatch: computed 0x{crc:04X}, frame says 0x{crc_rx:04X}")
    return frame


@dataclass(slots=True)
class DecoderStats:
    """Counters of a :class:`FrameDecoder`, monotonically increasing.

    Attributes
    ----------
    frames_ok : int
        Frames that passed COBS and CRC.
    cobs_errors : int
        Frames whose COBS structure was invalid (a code pointing past the delimiter).
    crc_errors : int
        Frames whose CRC did not match (SAFETY.md F01).
    too_long : int
        Delimiter-less runs longer than ``max_frame_len`` (each run counted once).
    runts : int
        Frames that decoded to fewer than 4 bytes (cannot hold header + CRC).
    bytes_dropped : int
        Wire bytes discarded for any of the reasons above (delimiters not counted).
    """

    frames_ok: int = 0
    cobs_errors: int = 0
    crc_errors: int = 0
    too_long: int = 0
    runts: int = 0
    bytes_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict (for stats and the run record)."""
        return asdict(self)


class FrameDecoder:
    """Incremental frame decoder: feed any chunks of the byte stream, get whole frames.

    Parameters
    ----------
    max_frame_len : int, optional
        Longest accepted encoded frame in bytes, delimiter excluded (default 256; QIKI
        frames are at most :data:`MAX_WIRE_FRAME_LEN` = 253). Longer runs are dropped up to
        the next 0x00 and counted in ``stats.too_long``; memory stays bounded by this.

    Notes
    -----
    * Never raises on wire input: bad frames are counted in :attr:`stats` and dropped
      (SAFETY.md D08, F01, F05). Resynchronisation is at the next 0x00 (COBS property).
    * The stream start counts as a frame boundary: a receiver that opens a port mid-frame
      loses (and counts) that first partial frame.
    * Empty frames (consecutive 0x00, e.g. a sender flushing the line) are ignored silently.
    * Per-tick: :meth:`feed` costs O(bytes fed) with C-level scans for delimiters.
    """

    __slots__ = ("max_frame_len", "stats", "_buf", "_discarding")

    def __init__(self, max_frame_len: int = 256) -> None:
        if max_frame_len < _MIN_DECODED_LEN + 1:
            raise ValueError(f"max_frame_len must be >= {_MIN_DECODED_LEN + 1}")
        self.max_frame_len = int(max_frame_len)
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._discarding = False

    def reset(self) -> None:
        """Forget any partial frame (after a port reopen); counters are kept."""
        self._buf.clear()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of the current, not yet delimited frame held in the buffer."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[RawFrame]:
        """Consume a chunk of the stream and return every complete, valid frame in it.

        Parameters
        ----------
        data : bytes-like
            Any number of bytes, any alignment with frame boundaries.

        Returns
        -------
        list of RawFrame
            Frames completed by this chunk, in wire order (possibly empty).

        Notes
        -----
        Per-tick function; never raises for any input bytes.
        """
        frames: list[RawFrame] = []
        stats = self.stats
        limit = self.max_frame_len
        buf = self._buf
        # One C split finds every delimiter: each piece but the last ended at a 0x00.
        pieces = bytes(data).split(b"\x00")
        tail = pieces.pop()
        if pieces:
            # The first delimited piece ends a discarded run, or the frame the buffer holds.
            first = pieces[0]
            if self._discarding:
                stats.bytes_dropped += len(first)
                self._discarding = False
                pieces[0] = b""
            elif buf:
                if len(buf) + len(first) > limit:
                    stats.too_long += 1
                    stats.bytes_dropped += len(buf) + len(first)
                    pieces[0] = b""
                else:
                    buf += first
                    pieces[0] = bytes(buf)
                buf.clear()
            for enc in pieces:
                n = len(enc)
                if not n:
                    continue  # an empty frame (consecutive 0x00): ignored
                if n > limit:
                    stats.too_long += 1
                    stats.bytes_dropped += n
                    continue
                decoded = _cobs_unstuff(enc)  # enc holds no 0x00: it was split on the delimiter
                if decoded is None:
                    stats.cobs_errors += 1
                    stats.bytes_dropped += n
                    continue
                if len(decoded) < _MIN_DECODED_LEN:
                    stats.runts += 1
                    stats.bytes_dropped += n
                    continue
                # _checked_frame inline (the call was a cost per frame, issue 16)
                body = decoded[:-2]
                if crc_hqx(body, 0xFFFF) != (decoded[-2] | (decoded[-1] << 8)):
                    stats.crc_errors += 1
                    stats.bytes_dropped += n
                    continue
                stats.frames_ok += 1
                frames.append(RawFrame(body[0], body[1], body[2:]))
        if tail:
            # No delimiter in the rest of the chunk: keep (bounded) or discard.
            rest = len(tail)
            if self._discarding:
                stats.bytes_dropped += rest
            elif len(buf) + rest > limit:
                stats.too_long += 1
                stats.bytes_dropped += len(buf) + rest
                buf.clear()
                self._discarding = True
            else:
                buf += tail
        return frames
