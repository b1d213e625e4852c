"""Opening a Modbus link from the ``url`` of a ``kind: modbus`` bus.

URLs understood by :func:`open_link`:

* ``tcp://HOST:PORT`` -- Modbus TCP;
* ``rtu:///dev/ttyUSB0?baudrate=115200&parity=N`` -- Modbus RTU on a serial device;
* ``memory://NAME`` -- in-process, answered by the responders the caller passes (the
  emulated devices, which only the composition room builds).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from firmware_bridge.protocols.modbus_profile import ModbusResponder
from hal.errors import BusConfigError
from hal.modbus.link import MemoryModbusLink, ModbusLink, PymodbusRtuLink, PymodbusTcpLink

__all__ = ["open_link"]


def open_link(url: str, timeout_s: float = 0.1,
              memory_devices: Mapping[int, ModbusResponder] | None = None) -> ModbusLink:
    """Open a Modbus link from a bus URL (see module doc).

    Parameters
    ----------
    url : str
        ``tcp://HOST:PORT``, ``rtu://PATH?baudrate=N&parity=P`` or ``memory://NAME``.
    timeout_s : float, optional
        Reply timeout per transaction (s).
    memory_devices : mapping of int to ModbusResponder, optional
        Responders for ``memory://`` links.

    Returns
    -------
    ModbusLink

    Raises
    ------
    BusConfigError
        Unknown scheme or malformed URL.
    """
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname or parts.port is None:
            raise BusConfigError(f"modbus url {url!r}: expected tcp://HOST:PORT")
        return PymodbusTcpLink(parts.hostname, parts.port, timeout_s)
    if parts.scheme == "rtu":
        q = parse_qs(parts.query)
        path = parts.path or parts.netloc
        if not path:
            raise BusConfigError(f"modbus url {url!r}: expected rtu:///dev/ttyX?baudrate=N")
        try:
            baud = int(q.get("baudrate", ["115200"])[0])
        except ValueError as exc:
            raise BusConfigError(f"modbus url {url!r}: baudrate is not an integer") from exc
        return PymodbusRtuLink(path, baud, timeout_s, q.get("parity", ["N"])[0])
    if parts.scheme == "memory":
        return MemoryModbusLink(memory_devices or {}, timeout_s)
    raise BusConfigError(f"modbus url {url!r}: scheme must be tcp, rtu or memory")
