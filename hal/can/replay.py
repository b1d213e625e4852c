"""Reading recorded CAN logs, and replaying them on a caller's clock.

Any format python-can's :func:`can.LogReader` reads is accepted, chosen by file suffix:
candump ``-l`` ``.log``, Vector ``.asc`` and ``.blf``, PEAK ``.trc``, python-can ``.csv``
and ``.db``, each optionally ``.gz``-compressed. python-can is the reader; this module only
adds what QIKI needs around it:

* vendor exceptions (``ValueError`` for an unknown suffix, ``OSError``, parser errors) are
  translated once into :class:`~hal.errors.BusConfigError` with one line naming the file;
* :class:`LogReplay` hands out the frames that are due at ``now_s`` with the recorded
  spacing kept relative to a start time, optionally keeping only one recorded channel.
  It never sleeps: the caller's clock (SimClock in lockstep, MonotonicClock in real time)
  drives it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import can

from hal.errors import BusConfigError, one_line

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = ["channel_key", "channel_matches", "iter_can_log", "read_can_log", "LogReplay"]


def channel_key(channel: str | int | None) -> str | None:
    """Return the comparable form of a recorded or requested CAN channel.

    python-can's readers do not agree on the type of ``Message.channel`` (python-can
    4.6, checked on files written by its own writers and on real candump logs):

    =============  ==========================================  ======================
    format         channel in the file                          ``msg.channel``
    =============  ==========================================  ======================
    candump .log   interface name (``can1``)                    ``"can1"`` (str)
    Vector .asc    1-based number (``1`` = CAN 1)               file number - 1 (int)
    Vector .blf    1-based number                               file number - 1 (int)
    PEAK .trc      1-based bus (v1.3 / v2.x column ``B``)       file number (int), 1
                                                                when the file has none
    python-can     not recorded                                  ``None``
    .csv
    =============  ==========================================  ======================

    QIKI compares channels in one normalised form: the decimal string of an integer
    channel, the stripped string otherwise, so ``--channel 0`` (a str from the command
    line) matches the int ``0`` an ASC or BLF reader gives for the file's channel 1, and
    ``--channel can1`` matches a candump frame. The numbering is python-can's, as the
    table says; :func:`controller.tools.radar_decode.decode_can_log` lists the channels present
    in that form so a filter that matches nothing can be corrected.

    Parameters
    ----------
    channel : str, int or None
        A ``Message.channel`` as a reader produced it, or a requested channel.

    Returns
    -------
    str or None
        ``None`` for ``None`` (no channel recorded); else the normalised string.
    """
    if channel is None:
        return None
    if isinstance(channel, bool):  # never a channel; keep it distinct from 0/1
        return str(channel)
    if isinstance(channel, int):
        return str(channel)
    text = str(channel).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return str(int(text))  # "00" / "+1" -> "0" / "1"
    return text


def channel_matches(msg_channel: str | int | Sequence[int] | None, wanted: str | int | None) -> bool:
    """Return True when a recorded channel equals a requested one (see :func:`channel_key`).

    Parameters
    ----------
    msg_channel : str, int, sequence of int or None
        ``Message.channel`` as the reader gave it (python-can's type; a sequence never
        matches).
    wanted : str, int or None
        The requested channel; ``None`` matches every frame.

    Returns
    -------
    bool
    """
    if wanted is None:
        return True
    if not isinstance(msg_channel, (str, int)):
        return False
    key = channel_key(msg_channel)
    return key is not None and key == channel_key(wanted)



def iter_can_log(path: str | Path, *, channel: str | int | None = None) -> Iterator[can.Message]:
    """Yield the frames of a recorded CAN log in file order.

    Parameters
    ----------
    path : str or Path
        Log file; the format comes from the suffix (``.log``, ``.asc``, ``.blf``, ``.trc``,
        ``.csv``, ``.db``, optionally ``.gz``).
    channel : str or int, optional
        Keep only frames recorded on this channel (e.g. ``"can1"`` for candump, ``0`` or
        ``"0"`` for the first channel of an ASC/BLF file); compared in the normalised
        form of :func:`channel_key`, whatever type the reader produced. None keeps all.

    Yields
    ------
    can.Message
        As python-can parsed it: ``timestamp`` in the log's own time base (s),
        ``channel`` as recorded.

    Raises
    ------
    BusConfigError
        ``<path>: <reason>`` when the file is missing, its suffix unknown, or a line or
        block cannot be parsed. Raised at the first ``next()``, or mid-iteration for a
        file damaged after its start.
    """
    p = Path(path)
    if not p.is_file():
        raise BusConfigError(f"{path}: CAN log not found")
    try:
        reader = can.LogReader(str(p))
    except Exception as exc:  # ValueError (unknown suffix), OSError, format errors
        raise BusConfigError(f"{path}: cannot read CAN log: {one_line(exc)}") from exc
    try:
        it = iter(reader)
        while True:
            try:
                msg = next(it)
            except StopIteration:
                return
            except Exception as exc:  # parser errors of any reader
                raise BusConfigError(f"{path}: malformed CAN log: {one_line(exc)}") from exc
            if channel is None or channel_matches(msg.channel, channel):
                yield msg
    finally:
        stop = getattr(reader, "stop", None)
        if stop is not None:
            try:
                stop()
            except Exception as exc:  # closing a half-read file must not mask the real error
                logger.debug("closing the CAN log %s failed: %s", path, exc)


def read_can_log(path: str | Path, *, channel: str | int | None = None) -> list[can.Message]:
    """Return every frame of a recorded CAN log (see :func:`iter_can_log`).

    Raises
    ------
    BusConfigError
        As :func:`iter_can_log`.
    """
    return list(iter_can_log(path, channel=channel))


class LogReplay:
    """Hand out recorded frames when they are due on the caller's clock. Per-tick.

    Frame ``k`` with recorded timestamp ``t_k`` is due at ``start_s + (t_k - t_0)``, where
    ``t_0`` is the first kept frame's timestamp, so the recorded spacing (e.g. the
    ARS408's ~72 ms cycle) is preserved exactly in simulated time.

    Parameters
    ----------
    frames : iterable of can.Message
        Recorded frames in time order (a list, or the lazy :func:`iter_can_log`: at most
        one frame is read ahead).
    start_s : float, optional
        Caller-clock time at which the first frame is due, s. Default 0.
    speed : float, optional
        Replay speed factor (> 0); 1.0 keeps the recorded timing.

    Notes
    -----
    A recorded timestamp that goes backwards is treated as "due immediately after its
    predecessor" (never reorders frames).
    """

    __slots__ = ("_it", "_start_s", "_speed", "_t0", "_next", "_next_due_s", "sent", "_done")

    def __init__(self, frames: Iterable[can.Message], *, start_s: float = 0.0, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"LogReplay speed must be > 0, got {speed!r}")
        self._it = iter(frames)
        self._start_s = float(start_s)
        self._speed = float(speed)
        self._t0: float | None = None
        self._next: can.Message | None = None
        self._next_due_s = 0.0
        self.sent = 0
        self._done = False
        self._advance()

    def _advance(self) -> None:
        try:
            msg = next(self._it)
        except StopIteration:
            self._next = None
            self._done = True
            return
        if self._t0 is None:
            self._t0 = msg.timestamp
        due = self._start_s + (msg.timestamp - self._t0) / self._speed
        self._next = msg
        self._next_due_s = max(due, self._next_due_s)

    @property
    def done(self) -> bool:
        """True when every frame has been handed out."""
        return self._done

    @property
    def next_due_s(self) -> float | None:
        """Caller-clock time the next frame is due, s; None when done."""
        return None if self._done else self._next_due_s

    def due(self, now_s: float, *, limit: int | None = None) -> list[can.Message]:
        """Return the frames due at ``now_s``, in recorded order. Per-tick.

        Parameters
        ----------
        now_s : float
            Caller-clock time, s.
        limit : int, optional
            At most this many frames (the rest stay due for the next call).

        Returns
        -------
        list of can.Message
            The recorded frames, unchanged (the caller maps them onto its bus).
        """
        out: list[can.Message] = []
        while self._next is not None and self._next_due_s <= now_s:
            if limit is not None and len(out) >= limit:
                break
            out.append(self._next)
            self.sent += 1
            self._advance()
        return out
