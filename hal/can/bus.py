"""Opening a CAN bus: python-can's ``BusABC`` *is* QIKI's CAN port.

Nothing wraps the bus for normal use; :class:`hal.can.port.CanPort` only adds the per-tick
bounded drain, dispatch and counters around it.
"""

from __future__ import annotations

from typing import Any

import can

from hal.errors import BusConfigError, DeviceUnavailableError, one_line

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
        interface name is unknown to python-can or its settings are refused.
    DeviceUnavailableError
        One line ``CAN interface ... : cannot open: <reason>`` when the adapter, its
        driver library or the channel cannot be opened (unplugged, busy, permission
        denied). python-can errors are translated here, chained with ``from``.
    """
    if not isinstance(bitrate_bps, int) or isinstance(bitrate_bps, bool) or bitrate_bps <= 0:
        raise BusConfigError(
            f"CAN interface {interface!r} channel {channel!r}: bitrate_bps must be a "
            f"positive integer, got {bitrate_bps!r}")
    try:
        return can.Bus(interface=interface, channel=channel, bitrate=bitrate_bps,
                       receive_own_messages=receive_own_messages, **kwargs)
    except (can.CanInterfaceNotImplementedError, ValueError, TypeError) as exc:
        # an interface name python-can does not know, or settings it refuses: bad input
        raise BusConfigError(
            f"CAN interface {interface!r} channel {channel!r}: {one_line(exc)}") from exc
    except Exception as exc:  # CanInitializationError, OSError, ImportError of a vendor lib...
        # the adapter or its driver is not there (unplugged, busy, permission denied)
        raise DeviceUnavailableError(
            f"CAN interface {interface!r} channel {channel!r}: cannot open: {one_line(exc)}") from exc
