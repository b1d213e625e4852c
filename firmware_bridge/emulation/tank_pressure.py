"""Emulated tank-pressure sensor, stepped by the caller's clock (never sleeps).

Model
-----
* The tank: cold gas, isothermal blow-down. Pressure falls by ``bar_per_valve_s`` for
  every second one valve is physically open (the valve board emulator's exact open
  fractions), plus a constant ``leak_bar_per_s``. QIKI-1's default, 1.5 bar per valve
  second, is a 1 L nitrogen bottle at 200 bar feeding 1 N thrusters at a specific impulse
  of 60 s: 1.7 g/s per open valve, 0.23 kg of gas, about 0.87 bar per gram.
* Telemetry: ``TANK_Status`` every :data:`~firmware_bridge.protocols.tank_pressure.STATUS_PERIOD_S`
  on a schedule from the first step; a late step sends once and skips to the next future
  slot (no bursts).
* Faults (:data:`TankPressureEmulator.FAULTS`, a fault-plan target of
  :mod:`firmware_bridge.emulation.faults`): ``silent`` sends nothing; ``sensor_fault`` sets
  the transducer's fault bit. Both are also plain attributes a test may set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

import can

from firmware_bridge.emulation.faults import FaultParams, FaultSpec
from firmware_bridge.protocols import tank_pressure as tp
from hal.can.codec import DbcCodec

__all__ = ["TankPressureEmulator"]

#: ``(t0_s, t1_s) -> [fraction open per valve]`` over a window (ValveBoardEmulator.open_fractions).
OpenFractions = Callable[[float, float], "list[float]"]


class TankPressureEmulator:
    """One emulated tank-pressure sensor on a CAN bus.

    Parameters
    ----------
    bus : can.BusABC
        The sensor's side of the bus (e.g. a python-can ``virtual`` bus).
    codec : hal.can.codec.DbcCodec
        Codec holding ``dbc/tank.dbc``.
    open_fractions : callable ``(t0_s, t1_s) -> list of float``, optional
        Fraction of the window each valve was open (None: no consumption by the valves).
    start_pressure_bar : float, optional
        Pressure at the first step (bar, absolute; default 200).
    bar_per_valve_s : float, optional
        Pressure drop per second of one valve open (bar/s; default 1.5).
    leak_bar_per_s : float, optional
        Constant leak (bar/s; default 0).
    temperature_c : float, optional
        Reported gas temperature (degC; default 20).

    Attributes
    ----------
    pressure_bar : float
        The tank's true pressure (bar).
    silent : bool
        When True the sensor transmits nothing (set by hand or by the ``silent`` fault).
    sensor_fault : bool
        Reported transducer fault bit (set by hand or by the ``sensor_fault`` fault).
    frames_sent, tx_failures : int
    """

    #: Faults of a plan (``emulation.faults`` entries whose target is the tank sensor).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("the sensor sends nothing"),
        "sensor_fault": FaultSpec("TANK_Status carries the transducer's fault bit"),
    })

    def __init__(self, bus: can.BusABC, codec: DbcCodec, *, open_fractions: OpenFractions | None = None,
                 start_pressure_bar: float = 200.0, bar_per_valve_s: float = 1.5,
                 leak_bar_per_s: float = 0.0, temperature_c: float = 20.0) -> None:
        self._bus = bus
        self._codec = codec
        self._open_fractions = open_fractions
        self.pressure_bar = float(start_pressure_bar)
        self.bar_per_valve_s = float(bar_per_valve_s)
        self.leak_bar_per_s = float(leak_bar_per_s)
        self.temperature_c = float(temperature_c)
        self.silent = False
        self.sensor_fault = False
        self.frames_sent = 0
        self.tx_failures = 0
        self._counter = 0
        self._last_s: float | None = None
        self._next_tx_s = -math.inf

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of :data:`FAULTS` (fault-plan target protocol); acts from the next frame."""
        if fault == "silent":
            self.silent = True
        elif fault == "sensor_fault":
            self.sensor_fault = True
        else:
            raise KeyError(f"TankPressureEmulator has no fault {fault!r}")

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End a fault of :data:`FAULTS` at ``now_s`` (s)."""
        if fault == "silent":
            self.silent = False
        elif fault == "sensor_fault":
            self.sensor_fault = False

    @property
    def next_due_s(self) -> float:
        """Time (s) from which :meth:`step` acts (-inf before the first step)."""
        return -math.inf if self._last_s is None else self._next_tx_s

    def step(self, t_s: float) -> None:
        """Advance the tank and the sensor to ``t_s`` (s). Per physics step (1 kHz).

        Parameters
        ----------
        t_s : float
            Emulation time, s; must not go backwards.
        """
        if self._last_s is None:
            self._last_s = self._next_tx_s = t_s
        if t_s < self._next_tx_s:
            return  # nothing due: the cheap path (the tank is integrated once per frame)
        self._drain()
        self._integrate(t_s)
        if not self.silent:
            self._send(t_s)
        k = math.floor((t_s - self._next_tx_s) / tp.STATUS_PERIOD_S) + 1
        self._next_tx_s += k * tp.STATUS_PERIOD_S

    def _drain(self) -> None:
        """Discard what the bus delivered.

        The sensor listens to nothing, but a virtual bus queues every frame for every
        node: an undrained node would grow without end.
        """
        bus = self._bus
        while True:
            try:
                if bus.recv(timeout=0.0) is None:
                    return
            except can.CanError:
                return

    def _integrate(self, t_s: float) -> None:
        """Blow the tank down from the last integration to ``t_s``.

        Windows are at most one frame period, well inside the 1 s ``open_fractions`` keeps.
        """
        last = self._last_s
        assert last is not None
        if t_s <= last:
            return
        dt = t_s - last
        used_valve_s = 0.0
        if self._open_fractions is not None:
            used_valve_s = float(sum(self._open_fractions(last, t_s))) * dt
        self.pressure_bar = max(0.0, self.pressure_bar - self.bar_per_valve_s * used_valve_s
                                - self.leak_bar_per_s * dt)
        self._last_s = t_s

    def _send(self, t_s: float) -> None:
        reading = tp.TankReading(self.pressure_bar, self.temperature_c, self.sensor_fault)
        msg = self._codec.encode(tp.STATUS, tp.status_signals(reading, self._counter))
        msg.timestamp = t_s
        self._counter = tp.next_counter(self._counter)
        try:
            self._bus.send(msg, timeout=0.0)
        except can.CanError:
            self.tx_failures += 1
            return
        self.frames_sent += 1

    def summary(self) -> dict[str, object]:
        """Return the emulated truth at the end: pressure (at the last frame slot), frames sent."""
        return {"end_pressure_bar": round(self.pressure_bar, 3), "frames_sent": self.frames_sent}
