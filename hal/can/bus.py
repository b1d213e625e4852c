"""Opening a CAN bus: python-can's ``BusABC`` *is* QIKI's CAN port.

Nothing wraps the bus for normal use; :class:`hal.can.port.CanPort` only adds the per-tick
bounded drain, dispatch and counters around it.
"""

from __future__ import annotations

from typing import Any

import can

from hal.errors import BusConfigError, one_line

__all__ = ["open_can_bus"]


def open_can_bus(interface: str, channel: str, bitrate_bps: int, *,
                 receive_own_messages: bool = False, **kwargs: Any) -> can.BusABC:
    """Open a python-can bus.

    Parameters
    ----------
    interface : str
        Any python-can interface name (``socketcan``, ``virtual``, ``pcan``, ``slcan``,
        ``gs_usb``, ``udp_multicast``...).
    channel : str
        Interface channel (``can0``, ``PCAN_USBBUS1``, a virtual bus name...).
    bitrate_bps : int
        Nominal bit rate, bit/s (QIKI-1: 500000). Ignored by interfaces configured
        outside the process (socketcan: ``ip link``).
    receive_own_messages : bool, optional
        Deliver our own transmitted frames back to us (default False).
    **kwargs
        Passed to ``can.Bus`` (interface-specific options).

    Returns
    -------
    can.BusABC
        The open bus. Close it with ``bus.shutdown()``.

    Raises
    ------
    BusConfigError
        One line ``CAN interface '<interface>' channel '<channel>': <reason>`` when the
        interface is unknown, the driver or adapter is missing, or the channel cannot be
        opened (python-can errors translated here, chained with ``from``).
    """
    if not isinstance(bitrate_bps, int) or isinstance(bitrate_bps, bool) or bitrate_bps <= 0:
        raise BusConfigError(
            f"CAN interface {interface!r} channel {channel!r}: bitrate_bps must be a "
            f"positive integer, got {bitrate_bps!r}")
    try:
        return can.Bus(interface=interface, channel=channel, bitrate=bitrate_bps,
                       receive_own_messages=receive_own_messages, **kwargs)
    except Exception as exc:  # CanError, ImportError, OSError, ValueError, ...
        detail = one_line(exc)
        raise BusConfigError(
            f"CAN interface {interface!r} channel {channel!r}: {detail}") from exc
