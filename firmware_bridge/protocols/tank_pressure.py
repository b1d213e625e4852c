"""Tank-pressure sensor CAN protocol (sans-IO): names, layout, typed reading, physical checks.

Shared by the host driver (``hal/devices/tank_pressure.py``) and the emulated sensor
(``firmware_bridge/emulation/tank_pressure.py``). The bit layout lives in ``dbc/tank.dbc``
(cantools does the packing); this module names the message and signals, gives the typed
value both sides exchange and the physical rules a DBC cannot say.

Frame, classic CAN, standard 11-bit ID, DLC 8, Intel (little-endian) signals; bit b of
the frame is bit (b % 8) of byte b // 8::

    TANK_Status  0x280  sensor -> host, every 100 ms (GenMsgCycleTime)
    byte:  |    0    |    1    |    2    |        3          |  4  |  5  |    6    |  7  |
    bits:   7      0  15     8  23    16  31    24             39 32 47 40 55    48  63 56
           [  PRESSURE lo/hi   ][ TEMP lo ][rsv|SF| TEMP hi ][ rsv ][ rsv ][rsv |CNT][rsv]
      PRESSURE TANK_Pressure     bits 0-15,  0.01 bar/bit (0..400 bar valid, absolute)
      TEMP     TANK_Temperature  bits 16-27, 0.1 degC/bit, offset -50 degC (-40..125 valid)
      SF       TANK_SensorFault  bit 28, 1 = the transducer's own diagnostics failed
      CNT      TANK_Counter      bits 48-51, 0..15, +1 per frame
      rsv      reserved, sent as 0

No checksum: the reading is advisory for the thrusters (a low tank only ends a mission);
the alive counter and the freshness watch (SAFETY.md B01, F02) are the end-to-end checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "STATUS", "PRESSURE", "TEMPERATURE", "SENSOR_FAULT", "COUNTER", "REQUIRED_SIGNALS",
    "COUNTER_MODULO", "STATUS_PERIOD_S", "PRESSURE_RANGE_BAR", "TankReading",
    "reading_from_signals", "status_signals", "next_counter", "implausible_reason",
]

STATUS = "TANK_Status"
PRESSURE = "TANK_Pressure"
TEMPERATURE = "TANK_Temperature"
SENSOR_FAULT = "TANK_SensorFault"
COUNTER = "TANK_Counter"

#: What the driver needs from the DBC (SAFETY.md K02).
REQUIRED_SIGNALS: Mapping[str, tuple[str, ...]] = {STATUS: (PRESSURE, TEMPERATURE, SENSOR_FAULT, COUNTER)}

COUNTER_MODULO = 16
#: Nominal period of ``TANK_Status`` (s); the DBC ``GenMsgCycleTime`` is the statement the
#: driver uses, the emulator sends at this rate.
STATUS_PERIOD_S = 0.1
#: Range of the transducer (bar, absolute), as the DBC ``[min|max]`` of ``TANK_Pressure``.
PRESSURE_RANGE_BAR = (0.0, 400.0)


@dataclass(frozen=True, slots=True)
class TankReading:
    """One ``TANK_Status`` in physical units.

    Attributes
    ----------
    pressure_bar : float
        Tank pressure, absolute (bar).
    temperature_c : float
        Gas temperature at the transducer (degC).
    sensor_fault : bool
        The transducer reports its own diagnostics failed.
    """

    pressure_bar: float
    temperature_c: float
    sensor_fault: bool


def reading_from_signals(signals: Mapping[str, float | int]) -> TankReading:
    """Typed reading from a decoded ``TANK_Status`` (physical values, DBC-checked)."""
    return TankReading(float(signals[PRESSURE]), float(signals[TEMPERATURE]), bool(signals[SENSOR_FAULT]))


def status_signals(reading: TankReading, counter: int) -> dict[str, float | int]:
    """Return the physical signal values of one ``TANK_Status`` for the codec.

    The pressure is clamped to the transducer range, as a real transducer saturates.
    """
    lo, hi = PRESSURE_RANGE_BAR
    return {
        PRESSURE: round(min(max(reading.pressure_bar, lo), hi), 2),
        TEMPERATURE: round(reading.temperature_c, 1),
        SENSOR_FAULT: int(reading.sensor_fault),
        COUNTER: int(counter) % COUNTER_MODULO,
    }


def next_counter(counter: int) -> int:
    """Return the alive counter after ``counter`` (0..15 rolling)."""
    return (int(counter) + 1) % COUNTER_MODULO


def implausible_reason(reading: TankReading, max_pressure_bar: float) -> str | None:
    """Why a fresh reading cannot be believed, or None.

    Parameters
    ----------
    reading : TankReading
    max_pressure_bar : float
        Highest pressure the tank may hold (its rated working pressure, bar); above it
        the reading is an over-pressure or a transducer drift: either way not flyable.
    """
    if reading.sensor_fault:
        return "transducer reports a sensor fault"
    if reading.pressure_bar > max_pressure_bar:
        return f"pressure {reading.pressure_bar:.1f} bar above the rated {max_pressure_bar:.1f} bar"
    return None
