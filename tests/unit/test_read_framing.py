"""``FrameDecoder.feed`` (one split per chunk, the frame check inline) against its previous loop.

Issue 16 item 4 (read phase, 2026-12-07e): the oracle below is the ``feed`` that found
each delimiter with ``bytes.find`` and decoded each frame through ``_decode_one`` and
``_checked_frame``. Random streams (valid frames, corrupted frames, runs of garbage and
long runs, cut into random chunks) must give the same frames, counters and buffered
state after every chunk.
"""

from __future__ import annotations

from binascii import crc_hqx

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.protocols.framing import (
    _MIN_DECODED_LEN,
    FrameDecoder,
    RawFrame,
    _cobs_unstuff,
    encode_frame,
)


class _LoopDecoder(FrameDecoder):
    """The previous ``feed``: ``bytes.find`` per delimiter, two helper calls per frame."""

    def feed(self, data: bytes) -> list[RawFrame]:
        frames: list[RawFrame] = []
        data = bytes(data)
        n = len(data)
        start = 0
        buf = self._buf
        stats = self.stats
        limit = self.max_frame_len
        while start < n:
            z = data.find(0, start)
            if z < 0:
                rest = n - start
                if self._discarding:
                    stats.bytes_dropped += rest
                elif len(buf) + rest > limit:
                    stats.too_long += 1
                    stats.bytes_dropped += len(buf) + rest
                    buf.clear()
                    self._discarding = True
                else:
                    buf += data[start:]
                break
            if self._discarding:
                stats.bytes_dropped += z - start
                self._discarding = False
                start = z + 1
                continue
            if buf:
                if len(buf) + (z - start) > limit:
                    stats.too_long += 1
                    stats.bytes_dropped += len(buf) + (z - start)
                    buf.clear()
                    start = z + 1
                    continue
                buf += data[start:z]
                enc = bytes(buf)
                buf.clear()
            else:
                enc = data[start:z]
                if len(enc) > limit:
                    stats.too_long += 1
                    stats.bytes_dropped += len(enc)
                    start = z + 1
                    continue
            start = z + 1
            if enc:
                frame = self._decode_one_loop(enc)
                if frame is not None:
                    frames.append(frame)
        return frames

    def _decode_one_loop(self, enc: bytes) -> RawFrame | None:
        stats = self.stats
        decoded = _cobs_unstuff(enc)
        if decoded is None:
            stats.cobs_errors += 1
            stats.bytes_dropped += len(enc)
            return None
        if len(decoded) < _MIN_DECODED_LEN:
            stats.runts += 1
            stats.bytes_dropped += len(enc)
            return None
        body = decoded[:-2]
        if crc_hqx(body, 0xFFFF) != (decoded[-2] | (decoded[-1] << 8)):
            stats.crc_errors += 1
            stats.bytes_dropped += len(enc)
            return None
        stats.frames_ok += 1
        return RawFrame(body[0], body[1], body[2:])


_frame = st.builds(encode_frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=60))
_corrupt = st.tuples(_frame, st.integers(0, 10_000), st.integers(1, 255)).map(
    lambda t: bytes(b ^ t[2] if i == t[1] % len(t[0]) else b for i, b in enumerate(t[0])))
_piece = st.one_of(_frame, _frame, _corrupt, st.binary(max_size=40), st.binary(min_size=30, max_size=90).map(
    lambda b: b.replace(b"\x00", b"\x05")), st.just(b"\x00\x00"))


@settings(max_examples=300, deadline=None)
@given(st.lists(_piece, max_size=12), st.lists(st.integers(0, 80), max_size=12), st.integers(5, 70))
def test_feed_equals_the_previous_loop(pieces: list[bytes], cuts: list[int], max_len: int) -> None:
    stream = b"".join(pieces)
    new, old = FrameDecoder(max_frame_len=max_len), _LoopDecoder(max_frame_len=max_len)
    at = 0
    for size in [*cuts, len(stream)]:
        chunk = stream[at:at + size]
        at += size
        assert new.feed(chunk) == old.feed(bytearray(chunk))
        assert new.stats == old.stats
        assert (bytes(new._buf), new._discarding) == (bytes(old._buf), old._discarding)


def test_feed_splits_frames_across_chunks() -> None:
    wire = encode_frame(0x21, 7, b"\x00\x01\x00") + encode_frame(0x20, 8, b"abc")
    dec = FrameDecoder()
    assert dec.feed(wire[:5]) == []
    assert dec.pending_bytes == 5
    assert dec.feed(wire[5:]) == [RawFrame(0x21, 7, b"\x00\x01\x00"), RawFrame(0x20, 8, b"abc")]
    assert dec.stats.frames_ok == 2 and dec.pending_bytes == 0
