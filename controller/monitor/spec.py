"""What the monitor expects of one message: :class:`MessageSpec`, and the DBC's bounds and choices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hal.can.codec import DbcCodec

__all__ = ["ChecksumFn", "MessageSpec", "signal_bounds", "signal_choices"]

ChecksumFn = Callable[[int, bytes], int]
"""``(arbitration_id, data) -> expected checksum``."""


@dataclass(frozen=True)
class MessageSpec:
    """What the monitor knows about one arbitration ID of the bus.

    Parameters
    ----------
    arbitration_id : int
        The ID on the wire (node or sensor offset applied).
    is_extended : bool
        29-bit ID.
    name : str
        DBC message name (the driver's name for a vendor DBC mapped by layout).
    codec : DbcCodec
        A codec that decodes this ID (offset applied).
    length : int
        DLC the DBC gives, bytes.
    device : str, optional
        Rig device the message belongs to (``valves``, ``radar_lr``), or ``""``.
    period_s : float or None, optional
        Cycle time, s (None: no cycle check).
    list_message : bool, optional
        Sent many times per cycle (no per-frame cycle check).
    counter_signal : str or None, optional
        Alive counter signal (None: no counter check).
    counter_modulo : int, optional
        The counter wraps to 0 here (default 16).
    checksum_signal : str or None, optional
        Checksum signal (None: no checksum check).
    checksum_fn : callable ``(arbitration_id, data) -> int``, optional
        Expected checksum of a frame; required with ``checksum_signal``.
    bounds : tuple of (str, float or None, float or None), optional
        Signal physical ``(name, low, high)`` limits (already widened by the rounding
        tolerance), from :func:`signal_bounds`.
    choices : tuple of (str, frozenset of int), optional
        Signals with a VAL_ table and the raw values it names, from :func:`signal_choices`.
    """

    arbitration_id: int
    is_extended: bool
    name: str
    codec: DbcCodec
    length: int
    device: str = ""
    period_s: float | None = None
    list_message: bool = False
    counter_signal: str | None = None
    counter_modulo: int = 16
    checksum_signal: str | None = None
    checksum_fn: ChecksumFn | None = None
    bounds: tuple[tuple[str, float | None, float | None], ...] = ()
    choices: tuple[tuple[str, frozenset[int]], ...] = ()

    @property
    def label(self) -> str:
        """``0x181 VB_Status`` (with ``@device`` when the message belongs to one)."""
        wide = 8 if self.is_extended else 3
        at = f" @{self.device}" if self.device else ""
        return f"0x{self.arbitration_id:0{wide}X} {self.name}{at}"


def signal_bounds(codec: DbcCodec, message: str) -> tuple[tuple[str, float | None, float | None], ...]:
    """Physical limits of every signal of ``message`` with a DBC ``[min|max]``.

    Each limit is widened by a millionth of the signal's scale, as the controller's
    ingress does (a value at the limit that rounding moved by one ulp is not a violation).
    """
    out = []
    for sig in codec.message(message).signals:
        lo, hi = sig.minimum, sig.maximum
        if lo is None and hi is None:
            continue
        tol = abs(sig.scale) * 1e-6 + 1e-12
        out.append((sig.name, None if lo is None else lo - tol, None if hi is None else hi + tol))
    return tuple(out)


def signal_choices(codec: DbcCodec, message: str) -> tuple[tuple[str, frozenset[int]], ...]:
    """Signals of ``message`` with a VAL_ table, with the raw values the table names."""
    return tuple((sig.name, frozenset(int(k) for k in sig.choices))
                 for sig in codec.message(message).signals if sig.choices)


