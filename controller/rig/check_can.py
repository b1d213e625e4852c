"""The rig check's CAN side: each CAN bus's interface and DBCs, and the watched periods.

Used by :func:`controller.rig.check.check_rig` (its step 4, and the watched periods of
steps 5, 6 and 8: SAFETY.md K01, B01-B03); the loaded DBCs of a bus are its
:class:`CheckedCanBus`, from which the builders take the bus codec. No port is opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.config import MAX_WATCHED_PERIOD_S, CanBusCfg, RigCfg
from controller.errors import ConfigError
from controller.paths import resolve_data_path

if TYPE_CHECKING:
    from hal.can.codec import DbcCodec

__all__ = ["CheckedCanBus", "check_can_bus", "check_dbc_signals", "check_watched_period"]


@dataclass(frozen=True)
class CheckedCanBus:
    """The DBCs of one CAN bus, loaded and checked (:func:`~controller.rig.check.check_rig`).

    Attributes
    ----------
    dbc_paths : tuple of Path
        The bus's DBC files, resolved against the rig file.
    codec : DbcCodec
        Every message of those files (ID offset 0); drivers derive node codecs from it.
    sources : dict of str to str
        DBC file defining each message, by message name (for one-line errors).
    """

    dbc_paths: tuple[Path, ...]
    codec: DbcCodec
    sources: dict[str, str]


def check_dbc_signals(path: str, codec: DbcCodec) -> None:
    """Refuse DBC signals no value can pass through: scale 0, non-finite scale or offset.

    A scale of 0 makes every encode divide by zero (``VB_Command`` mid-run, issue 10) and
    every decode return the offset whatever the wire says.

    Raises
    ------
    ConfigError
        ``<dbc file>: <message>.<signal>: ...``, the first bad signal.
    """
    for msg_name in codec.message_names:
        for sig in codec.message(msg_name).signals:
            scale, offset = float(sig.scale), float(sig.offset)
            if scale == 0.0 or not math.isfinite(scale):
                raise ConfigError(path, f"{msg_name}.{sig.name}",
                                  f"signal scale is {sig.scale}: no physical value can be encoded or decoded")
            if not math.isfinite(offset):
                raise ConfigError(path, f"{msg_name}.{sig.name}", f"signal offset is {sig.offset}")


def check_can_bus(rig: RigCfg, name: str, rig_path: Path, bus_name: str, bus: CanBusCfg) -> CheckedCanBus:
    """Interface and DBCs of one CAN bus, without opening it.

    Raises
    ------
    ConfigError
        An emulated rig's bus is not ``virtual``; a real rig's interface is not a
        python-can interface; a DBC file is missing; a signal has scale 0
        (:func:`check_dbc_signals`).
    BusConfigError
        A DBC that cantools refuses, truncated, or two files sharing an ID or a message
        name (one line naming the file, SAFETY.md K01).
    """
    import can

    from hal.can.codec import DbcCodec

    if rig.emulation is not None:
        if bus.interface != "virtual":
            raise ConfigError(name, f"buses.{bus_name}.interface", "an emulated rig needs the 'virtual' CAN interface")
    elif bus.interface not in can.interfaces.VALID_INTERFACES:
        raise ConfigError(name, f"buses.{bus_name}.interface",
                          f"{bus.interface!r} is not a python-can interface "
                          f"(known: {', '.join(sorted(can.interfaces.VALID_INTERFACES))})")
    dbc_paths = tuple(resolve_data_path(p, rig_path) for p in bus.dbc)
    for given, resolved in zip(bus.dbc, dbc_paths, strict=True):
        if not resolved.exists() and not resolved.is_symlink():
            raise ConfigError(name, f"buses.{bus_name}.dbc", f"DBC file {given!r} not found")
    sources: dict[str, str] = {}
    for path in dbc_paths:
        one = DbcCodec([path], compile_now=False)  # checked and listed, never encodes
        check_dbc_signals(str(path), one)
        for msg_name in one.message_names:
            sources.setdefault(msg_name, str(path))
    return CheckedCanBus(dbc_paths, DbcCodec(list(dbc_paths)), sources)


def check_watched_period(bus: CheckedCanBus, message: str, period_s: float | None, who: str,
                          tick_s: float | None) -> None:
    """Check that a stream a driver judges stale has a usable period (SAFETY.md B01-B03).

    Parameters
    ----------
    bus : CheckedCanBus
        The bus carrying the message (names the DBC file in errors).
    message : str
        DBC message name.
    period_s : float or None
        The period the driver expects (s): the DBC ``GenMsgCycleTime``; None when the DBC
        gives none (absent or 0).
    who : str
        The driver, for the message.
    tick_s : float or None
        Control tick (s) for streams expected once per period (the driver's rhythm check
        needs at most one frame per tick); None for list streams.

    Raises
    ------
    ConfigError
        ``<dbc file>: <message>: ...`` when the period is missing, above
        :data:`~controller.config.MAX_WATCHED_PERIOD_S` (stale detection would take more
        than 5 periods x 1 s), or shorter than the tick.
    """
    where = bus.sources.get(message, ", ".join(str(p) for p in bus.dbc_paths))
    if period_s is None or not period_s > 0.0:
        raise ConfigError(where, message, f"GenMsgCycleTime is 0 or missing: the {who} watches this message's "
                          "freshness and needs its period (SAFETY.md B01)")
    if period_s > MAX_WATCHED_PERIOD_S + 1e-9:
        raise ConfigError(where, message, f"GenMsgCycleTime {period_s * 1000:g} ms is above "
                          f"{MAX_WATCHED_PERIOD_S * 1000:g} ms: the {who} would detect its loss too late")
    if tick_s is not None and period_s < tick_s - 1e-9:
        raise ConfigError(where, message, f"GenMsgCycleTime {period_s * 1000:g} ms is shorter than the "
                          f"{tick_s * 1000:g} ms control tick: the {who} cannot judge its rhythm")
