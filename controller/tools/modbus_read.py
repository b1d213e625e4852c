"""Library behind ``qiki modbus read --rig RIG DEVICE [QUANTITY ...]``.

The CLI (:mod:`controller.cli.modbus`) resolves the rig's bus and device into a link
(:func:`hal.modbus.url.open_link`), a profile (:func:`controller.config.load_profile`) and
a unit id, then calls :func:`read_quantities` and prints :func:`format_readings`. Reads are
one pass, no retries; a failed read names the quantities it would have carried and why
(timeout, exception code, wrong unit, CRC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.errors import ConfigError
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import DeviceProfile, Value, decode_block, plan_reads
from hal.modbus.link import ModbusFailure, ModbusLink


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
