"""How the composition room opens ports for a recorded or a replayed run (:class:`Ingress`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import can

from controller.record.modbus_taps import ReplayPoller, TapPoller
from controller.record.replay_ports import ReplayBus, ReplayClock, ReplayInputs, ReplayLink
from controller.record.taps import IngressSink, TapBus, TapClock, TapLink, TickCursor
from hal.clock import Clock
from hal.modbus.poller import ModbusPoller
from hal.serial.link import SerialLink


@dataclass(frozen=True)
class Ingress:
    """How the composition room opens ports for a recorded or a replayed run.

    Attributes
    ----------
    cursor : TickCursor
        The run's tick cursor.
    sink : IngressSink
        Where taps (recording) or replay ports (their outputs) write.
    replay : ReplayInputs or None
        None: open the real (or emulated) ports and tap them. Set: open replay ports
        over these inputs instead, and build no emulator and no world.
    """

    cursor: TickCursor
    sink: IngressSink
    replay: ReplayInputs | None = None
    #: A replay of a record that ends early: its last tick.
    last_tick: int | None = None
    #: A replay from a snapshot: the tick after which it starts (the pollers seek there).
    resume_tick: int | None = None

    @property
    def replaying(self) -> bool:
        """True for a replay."""
        return self.replay is not None

    def can_bus(self, name: str, open_bus: Callable[[], can.BusABC]) -> can.BusABC:
        """Return the host side of CAN bus ``name``: a replay bus, or the opened bus tapped."""
        if self.replay is not None:
            return ReplayBus(name, self.cursor, self.replay, self.sink)
        return TapBus(open_bus(), name, self.cursor, self.sink)

    def serial_link(self, name: str, link: SerialLink) -> SerialLink:
        """Return the host side of serial bus ``name`` tapped (recording only)."""
        return TapLink(link, name, self.cursor, self.sink)

    def replay_link(self, name: str) -> ReplayLink:
        """Return the replay link of serial bus ``name``."""
        assert self.replay is not None  # only while replaying
        return ReplayLink(name, self.cursor, self.replay, self.sink)

    def poller(self, poller: ModbusPoller, run_clock: Clock) -> TapPoller:
        """Return a poller as the components see it, tapped (recording only); its ``clock`` is ``run_clock``."""
        return TapPoller(poller, self.cursor, self.sink, run_clock)

    def replay_poller(self, devices: list[str], clock: Clock) -> ReplayPoller:
        """Return the replay poller of these devices (no bus)."""
        assert self.replay is not None  # only while replaying
        poller = ReplayPoller(devices, clock, self.cursor, self.replay, self.sink)
        if self.resume_tick is not None:
            poller.seek(self.resume_tick)
        return poller

    def clock(self, clock: Clock, realtime: bool) -> Clock:
        """Return the run clock: a lockstep SimClock as is; real time tapped or replayed."""
        if not realtime:
            return clock
        if self.replay is not None:
            rc = ReplayClock(self.cursor, self.replay, self.sink)
            rc.last_tick = self.last_tick
            return rc
        return TapClock(clock, self.cursor, self.sink)
