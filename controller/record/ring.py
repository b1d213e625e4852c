"""The ring buffer of the event-triggered record (:mod:`controller.record.triggered`).

A deque of fixed-size blocks (lists of at most :data:`BLOCK_N` items). Appending is O(1)
(a ``list.append`` into the newest block, or a new block); the front is trimmed by log
time and by count, a whole block at a time where it can (a jump of the clock costs one
step per block). A block is never changed except by appending to the newest one, so a
:meth:`RingBuffer.snapshot` -- the tuple of blocks, the head index and the newest block's
length -- stays valid while the ring moves on, and costs one reference per block: the
tick hands it to a writer thread without copying the items. At most ``max_n`` items are
live; dead items held by the first block are fewer than :data:`BLOCK_N`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping

__all__ = ["BLOCK_N", "Item", "RingBuffer", "Snapshot"]

#: Items per block (a snapshot costs one reference per block).
BLOCK_N = 256

#: One buffered record: topic, log time (ns, run clock), the record.
Item = tuple[str, int, Mapping[str, object]]
#: A stable view of the ring: (blocks, index of the oldest live item in the first, length of the newest).
Snapshot = tuple[tuple[list[Item], ...], int, int]


class RingBuffer:
    """Items of the last stretch of log time, at most ``max_n``: blocks of :data:`BLOCK_N`, appended at the back only.

    Parameters
    ----------
    max_n : int
        Most live items (>= 1); the oldest go first.

    Attributes
    ----------
    n : int
        Live items now.
    high_water_n : int
        Most live items at once.
    """

    __slots__ = ("blocks", "head", "n", "max_n", "high_water_n")

    def __init__(self, max_n: int) -> None:
        self.blocks: deque[list[Item]] = deque()
        self.head = 0  # index of the oldest live item in blocks[0]
        self.n = 0
        self.max_n = max_n
        self.high_water_n = 0

    def append(self, item: Item, lo_ns: int) -> None:
        """Add ``item``; drop the front while older than ``lo_ns`` or over ``max_n``."""
        blocks = self.blocks
        if blocks and len(blocks[-1]) < BLOCK_N:
            blocks[-1].append(item)
        else:
            blocks.append([item])
        self.n += 1
        if self.n > self.max_n:
            self._pop()
        # whole blocks first (a jump of the clock costs one step per block, not per item)
        while len(blocks) > 1 and blocks[0][-1][1] < lo_ns:
            self.n -= len(blocks.popleft()) - self.head
            self.head = 0
        while self.n and blocks[0][self.head][1] < lo_ns:
            self._pop()
        if self.n > self.high_water_n:
            self.high_water_n = self.n

    def _pop(self) -> None:
        self.head += 1
        self.n -= 1
        if self.head >= len(self.blocks[0]):
            self.blocks.popleft()
            self.head = 0

    def snapshot(self) -> Snapshot:
        """Return ``(blocks, head, newest block length)``: a stable view (blocks only grow at the back)."""
        blocks = tuple(self.blocks)
        return blocks, self.head, len(blocks[-1]) if blocks else 0

    @staticmethod
    def items(snap: Snapshot) -> Iterator[Item]:
        """Iterate the items of a :meth:`snapshot`, oldest first."""
        blocks, head, last_n = snap
        for i, block in enumerate(blocks):
            start = head if i == 0 else 0
            stop = last_n if i == len(blocks) - 1 else len(block)
            yield from block[start:stop]
