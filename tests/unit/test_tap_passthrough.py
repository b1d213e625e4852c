"""TapLink and TapClock pass every public attribute of the objects they wrap through.

Their pass-throughs are a hand-written list (``_FromInner``, no ``__getattr__``): a
public attribute a link backend or a run clock gains must be added there, or a reader of
the tapped object gets AttributeError in a recorded run only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from controller.clock import MonotonicClock, SimClock
from controller.record.flight_log import MemorySink
from controller.record.taps import TapClock, TapLink, TickCursor, _FromInner
from hal.serial.link import FdLink, PipeLink, PySerialLink


def _public(obj: object) -> list[str]:
    return [name for name in dir(obj) if not name.startswith("_")]


def _check(tap: object, inner: object) -> None:
    for name in _public(inner):
        got = getattr(tap, name)  # AttributeError: the tap does not pass ``name`` through
        if isinstance(type(tap).__dict__.get(name), _FromInner):
            assert got == getattr(inner, name), name


def _pyserial() -> PySerialLink:
    try:
        return PySerialLink("loop://", 115200)  # pyserial's loopback: no hardware
    except Exception as exc:  # noqa: BLE001 - no usable pyserial here
        pytest.skip(f"PySerialLink not constructible without hardware: {exc}")


def _pipe() -> PipeLink:
    return PipeLink.pair("mcu")[0]


def _fd() -> Iterator[FdLink]:
    r, w = os.pipe()
    os.close(w)
    yield FdLink(r, name="pipe")


@pytest.mark.parametrize("make", [_pyserial, _pipe], ids=["PySerialLink", "PipeLink"])
def test_taplink_passes_every_public_attribute_of_the_link(make: Callable[[], object]) -> None:
    inner = make()
    try:
        _check(TapLink(inner, "mcu", TickCursor(), MemorySink()), inner)  # type: ignore[arg-type]
    finally:
        inner.close()  # type: ignore[attr-defined]


def test_taplink_passes_every_public_attribute_of_an_fd_link() -> None:
    for inner in _fd():
        try:
            _check(TapLink(inner, "mcu", TickCursor(), MemorySink()), inner)
        finally:
            inner.close()


@pytest.mark.parametrize("make", [MonotonicClock, SimClock], ids=["MonotonicClock", "SimClock"])
def test_tapclock_passes_every_public_attribute_of_the_run_clocks(make: Callable[[], object]) -> None:
    # real time taps a MonotonicClock; a lockstep SimClock is not tapped (Ingress.clock)
    # but TapClock passes its ``advance`` through too
    inner = make()
    _check(TapClock(inner, TickCursor(), MemorySink()), inner)  # type: ignore[arg-type]
