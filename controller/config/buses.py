"""Schemas of the buses a rig opens: CAN (python-can), serial links and Modbus links.

``BusCfg`` is the union a rig's ``buses:`` mapping holds, told apart by ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.config.common import MAX_DBC_FILES, Strict


class CanBusCfg(Strict):
    """A CAN bus opened through python-can (``interface`` is any python-can name)."""

    kind: Literal["can"]
    interface: str
    channel: str
    bitrate_bps: Annotated[int, Field(gt=0, le=8_000_000)] = 500_000
    dbc: list[str] = Field(min_length=1, max_length=MAX_DBC_FILES)
    max_rx_frames_per_tick: Annotated[int, Field(gt=0, le=10_000)] = 256
    #: Interface-specific keyword arguments passed to ``can.Bus`` (python-can's own names),
    #: e.g. for ``slcan``: ``{sleep_after_open: 0, timeout: 0}`` -- python-can's defaults
    #: wait 2 s after opening the serial port and block 1 ms in every empty ``recv`` (its
    #: serial read timeout), which a 100 Hz tick cannot afford. Scalars only.
    options: dict[str, bool | int | float | str] = Field(default_factory=dict, max_length=16)

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict[str, bool | int | float | str]) -> dict[str, bool | int | float | str]:
        reserved = {"interface", "channel", "bitrate", "receive_own_messages"}
        for key in v:
            if not key.isidentifier() or key in reserved:
                raise ValueError(f"option {key!r} is not an interface option name "
                                 f"(set {', '.join(sorted(reserved))} through the bus's own keys)")
        return v


class SerialBusCfg(Strict):
    """A serial link: ``pipe://NAME`` (in-process, lockstep) or any pyserial URL."""

    kind: Literal["serial"]
    url: str
    baudrate: Annotated[int, Field(gt=0, le=20_000_000)] = 921_600
    #: Only for pyserial URL handlers without a file descriptor (``loop://``): longest a
    #: write may block. ttys, ptys and ``socket://`` never block on write (bounded queue,
    #: see ``hal.serial.link.PySerialLink``).
    write_timeout_s: Annotated[float, Field(gt=0.0, le=5.0)] = 0.05


class ModbusBusCfg(Strict):
    """A Modbus link: ``memory://NAME``, ``tcp://127.0.0.1:PORT`` or ``rtu:///dev/tty...``."""

    kind: Literal["modbus"]
    url: str
    timeout_s: Annotated[float, Field(gt=0.0, le=5.0)] = 0.1
    baudrate: Annotated[int, Field(gt=0, le=20_000_000)] = 115_200


BusCfg = Annotated[CanBusCfg | SerialBusCfg | ModbusBusCfg, Field(discriminator="kind")]
