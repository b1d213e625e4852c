"""The campaign's independent monitor: its own python-can node and plain cantools.

It shares nothing with the controller: it opens its own node on the run's CAN channel,
decodes the valve command with cantools straight from ``dbc/qiki.dbc`` (not QIKI's codec
or drivers), and reads the emulated valve board's physical valve state. The campaign
(:mod:`controller.safety.campaign`) judges every run from what it saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import can
import cantools

from hal.can.lockstep import LockstepBus, is_lockstep_channel

__all__ = ["BusMonitor", "CommandFrame", "ValveState"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: The valve board's command message in ``dbc/qiki.dbc``.
COMMAND_MESSAGE = "VB_Command"


class ValveState(Protocol):
    """The emulated valve board's physical valves (``ValveBoardEmulator.valves_open``)."""

    def valves_open(self, now_s: float) -> tuple[bool, ...]:
        """Per valve, whether it is physically open at ``now_s`` (s)."""
        ...


@dataclass(frozen=True)
class CommandFrame:
    """One valve command seen on the bus.

    Attributes
    ----------
    t_s : float
        Run time of the tick after which it was read, s.
    duties : tuple of float
        Duty per valve, 0..1 (cantools-decoded physical values).
    """

    t_s: float
    duties: tuple[float, ...]

    @property
    def nonzero(self) -> bool:
        """True when any valve is commanded open."""
        return any(d > 0.0 for d in self.duties)


@dataclass
class BusMonitor:
    """A separate python-can node decoding every valve command with plain cantools.

    Parameters
    ----------
    channel : str
        The run's channel (``BuiltRig.can_channels``): a :class:`hal.can.lockstep.LockstepBus`
        node when a lockstep build opened it, else a python-can ``virtual`` node.
    dbc_path : Path
        ``dbc/qiki.dbc`` (loaded with ``strict=True``).

    Attributes
    ----------
    frames : list of CommandFrame
        Every command frame seen, in order.
    ticks_silent : list of float
        Tick times at which no command frame was seen.
    undecodable_n : int
        Command-ID frames cantools refused (wrong length, foreign garbage).
    """

    channel: str
    dbc_path: Path
    frames: list[CommandFrame] = field(default_factory=list)
    ticks_silent: list[float] = field(default_factory=list)
    undecodable_n: int = 0

    def __post_init__(self) -> None:
        db = cantools.database.load_file(str(self.dbc_path), strict=True)
        if not isinstance(db, cantools.database.can.Database):
            raise ValueError(f"{self.dbc_path}: not a CAN database")
        self._msg = db.get_message_by_name(COMMAND_MESSAGE)
        self._duty_names = sorted((s.name for s in self._msg.signals if "Duty" in s.name),
                                  key=lambda n: int("".join(c for c in n if c.isdigit()) or 0))
        # its own node, on whichever in-process bus the run opened (a lockstep build's or python-can's)
        self._bus: can.BusABC = (LockstepBus(self.channel) if is_lockstep_channel(self.channel)
                                 else can.Bus(interface="virtual", channel=self.channel, receive_own_messages=False))

    def read(self, now_s: float) -> list[CommandFrame]:
        """Drain the node; return the command frames read at ``now_s`` (s)."""
        got: list[CommandFrame] = []
        while (m := self._bus.recv(timeout=0.0)) is not None:
            if m.arbitration_id != self._msg.frame_id or m.is_extended_id or m.is_error_frame or m.is_remote_frame:
                continue
            try:
                sig = self._msg.decode_simple(bytes(m.data), scaling=True)
                duties = tuple(float(sig[n]) for n in self._duty_names)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - anything cantools refuses is counted, never judged as data
                self.undecodable_n += 1
                continue
            got.append(CommandFrame(now_s, duties))
        if not got:
            self.ticks_silent.append(now_s)
        self.frames.extend(got)
        return got

    def close(self) -> None:
        """Shut the node down."""
        self._bus.shutdown()
