"""Library behind ``qiki modbus read --rig RIG DEVICE [QUANTITY ...]``, and profile loading.

The CLI (wired by ``controller/cli.py`` and ``controller/rig.py``) resolves the rig's bus
and device into a link, a profile and a unit id, then calls :func:`read_quantities` and
prints :func:`format_readings`. Reads are one pass, no retries; a failed read names the
quantities it would have carried and why (timeout, exception code, wrong unit, CRC).

URLs understood by :func:`open_link` (the ``url`` of a ``kind: modbus`` bus):

* ``tcp://HOST:PORT`` -- Modbus TCP;
* ``rtu:///dev/ttyUSB0?baudrate=115200&parity=N`` -- Modbus RTU on a serial device;
* ``memory://NAME`` -- in-process (needs the emulated devices, only ``rig.py`` has them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

from controller.errors import ConfigError
from controller.paths import resolve_data_path
from controller.yamlio import load_model
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import DeviceProfile, Value, decode_block, plan_reads
from hal.errors import BusConfigError
from hal.modbus.link import MemoryModbusLink, ModbusFailure, ModbusLink, ModbusResponder, PymodbusRtuLink, PymodbusTcpLink


def load_profile(path: str | Path, relative_to: str | Path | None = None) -> DeviceProfile:
    """Load and validate a device profile YAML (strict; unknown keys rejected).

    Parameters
    ----------
    path : str or Path
        Profile file, as written by the user or the rig (``rigs/profiles/jk_bms.yaml``).
    relative_to : str or Path, optional
        The rig file naming it (see :func:`controller.paths.resolve_data_path`).

    Returns
    -------
    DeviceProfile

    Raises
    ------
    ConfigError
        One line with file and key path (SAFETY.md K03/K04).
    """
    return load_model(DeviceProfile, resolve_data_path(path, relative_to), str(path))


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


@dataclass
class Readings:
    """Result of :func:`read_quantities`.

    Attributes
    ----------
    values : dict of str to value
        Decoded physical values by quantity name (only successfully read ones).
    failures : dict of str to ModbusFailure
        Quantities that could not be read, with why.
    """

    values: dict[str, Value] = field(default_factory=dict)
    failures: dict[str, ModbusFailure] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every requested quantity was read."""
        return not self.failures


def read_quantities(link: ModbusLink, profile: DeviceProfile, unit_id: int,
                    names: list[str] | None = None) -> Readings:
    """Read named quantities of one device once (grouped into as few requests as allowed).

    Parameters
    ----------
    link : ModbusLink
        The bus.
    profile : DeviceProfile
        The device's map.
    unit_id : int
        Its unit id.
    names : list of str, optional
        Quantities to read (default: all).

    Returns
    -------
    Readings

    Raises
    ------
    ConfigError
        An unknown quantity name (lists the known ones); file is the profile name.
    """
    try:
        blocks = plan_reads(profile, names or None)
    except KeyError as exc:
        raise ConfigError(profile.name, "quantities", str(exc.args[0])) from None
    out = Readings()
    for block in blocks:
        if block.table in ("coil", "discrete"):
            res = link.read_bits(block.table, block.address, block.count, unit_id)
        else:
            res = link.read_registers(block.table, block.address, block.count, unit_id)
        if isinstance(res, ModbusFailure):
            for q, _ in block.members:
                out.failures[q.name] = res
            continue
        try:
            out.values.update(decode_block(block, res))
        except ProtocolError as exc:
            for q, _ in block.members:
                out.failures[q.name] = ModbusFailure("corrupt", detail=str(exc))
    return out


def _fmt(value: Value) -> str:
    if isinstance(value, dict):
        on = [k for k, v in value.items() if k != "raw" and v is True]
        return f"{int(value['raw']):#x}" + (f" ({', '.join(on)})" if on else "")
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:.6g}"


def format_readings(profile: DeviceProfile, readings: Readings, names: list[str] | None = None) -> list[str]:
    """Lines ``name = value unit`` (or ``name: FAILED kind detail``) in profile order."""
    lines = []
    for q in profile.quantities:
        if names and q.name not in names:
            continue
        if q.name in readings.values:
            unit = f" {q.unit}" if q.unit else ""
            lines.append(f"{q.name} = {_fmt(readings.values[q.name])}{unit}")
        elif q.name in readings.failures:
            f = readings.failures[q.name]
            code = f" {f.exception_code}" if f.kind == "exception" else ""
            lines.append(f"{q.name}: FAILED {f.kind}{code} {f.detail}".rstrip())
    return lines
