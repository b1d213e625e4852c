"""The base of every config model, shared field types, and the bounds the schemas enforce.

Safety budgets (SAFETY.md) are bounded by the schemas, so that no file can stretch a
detection time beyond what SAFETY.md promises (issue 10, part 6). The bounds, and where
they come from:

==========================================  =========================  ==========================
what                                        bound                      source
==========================================  =========================  ==========================
``controller.safety.stale_after_periods``   2 .. 5                     B01-B03: stale after 3
                                                                       missed periods; 2 is the
                                                                       least that survives the
                                                                       ingress rhythm tolerance
                                                                       (a gap up to 1.75 periods
                                                                       is regular)
period of every watched stream (DBC         <= 1 s                     :data:`MAX_WATCHED_PERIOD_S`
``GenMsgCycleTime``, IWR6843 frame period,
Modbus profile poll period)
device-side timeouts (valve board command   <= 0.2 s                   T03: device-side timeouts
timeout, MCU host watchdog), emulated or                               zero the valves within
real                                                                   200 ms
MCU heartbeat period                        <= watchdog / 2, counted   "heartbeat period <=
                                            in whole control ticks     watchdog / 2" (issue 10)
valve command period (one control tick)     <= command timeout / 2     same rule, D04/T03
``controller.safety.max_overruns_per_s``    1 .. 10, and below the     T02: safe after > 5
                                            tick rate                  overruns in 1 s
``output_guard.max_nonfinite_ticks``        1 .. 10                    O03: repeated -> safe
==========================================  =========================  ==========================

Every list and mapping has a maximum length, so that a file cannot make the loader or the
controller do unbounded work (issue 10, part 7; SAFETY.md F05 "bounded memory").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from firmware_bridge.errors import ProtocolError


class Strict(BaseModel):
    """Base of every config model: unknown keys, wrong types and NaN are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]

#: Longest period (s) of any stream whose freshness the controller watches (DBC
#: ``GenMsgCycleTime`` of a watched message, IWR6843 frame period, Modbus poll period).
#: With :data:`MAX_STALE_AFTER_PERIODS` it bounds every detection time to 5 s. The slowest
#: stream QIKI-1 watches is the ARS408 RadarState at 1 s (ARS408-21 technical
#: documentation); everything safety-critical is 10-100x faster.
MAX_WATCHED_PERIOD_S = 1.0
#: ``controller.safety.stale_after_periods`` bounds (SAFETY.md: stale after 3 periods).
MIN_STALE_AFTER_PERIODS = 2
MAX_STALE_AFTER_PERIODS = 5
#: Longest device-side timeout (s): SAFETY.md T03, "device-side timeouts zero the valves
#: within 200 ms; the MCU drops the valve rail". Applies to the valve board's command
#: timeout and the MCU's host-watchdog timeout, real or emulated.
MAX_DEVICE_TIMEOUT_S = 0.2

#: List and mapping length bounds (issue 10, part 7).
MAX_THRUSTERS = 16
MAX_BUSES = 16
MAX_DEVICES = 32
MAX_DBC_FILES = 8
MAX_FAULTS = 1000
MAX_OBSTACLES = 256
MAX_WAYPOINTS = 10_000


def _checked(fn: Callable[..., object], text: str, **kw: bool) -> str:
    """Run a firmware-version parser at load time; its message becomes the field error."""
    try:
        fn(text, **kw)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None
    return text
