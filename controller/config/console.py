"""Schema of a rig's ``console:`` section: the operator console gateway (issue 14, docs/console-gateway.md).

All keys are optional; a rig without the section gets the defaults. The token itself is
never in the rig file: ``token_env`` names the environment variable that holds it
(default ``QIKI_CONSOLE_TOKEN``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.config.common import Strict

__all__ = ["DEFAULT_LISTEN", "DEFAULT_TOKEN_ENV", "ConsoleCfg", "parse_listen"]

#: Where ``qiki run --serve`` listens without ``--listen`` (loopback only).
DEFAULT_LISTEN = "127.0.0.1:8765"
#: The environment variable that holds the console token, by default.
DEFAULT_TOKEN_ENV = "QIKI_CONSOLE_TOKEN"


class ConsoleCfg(Strict):
    """The ``console:`` section of a rig.

    Attributes
    ----------
    telemetry_hz : float
        Telemetry rate to the consoles (Hz, 1..20; default 20). The tick publishes a
        snapshot every ``round(rate_hz / telemetry_hz)`` ticks.
    heartbeat_timeout_s : float
        The controlling console is lost when its last heartbeat is older than this (s of
        run time, 0.1..0.4; default 0.4: on a loaded 2-core machine a console
        process went unscheduled for up to 0.36 s): the lock drops and, while ``armed``/``active``,
        ``link_loss_action`` runs. At most 0.4 s so that the action comes within 0.5 s
        of the last heartbeat (issue 14 part 3).
    link_loss_action : {"disarm", "estop"}
        What a lost controlling console does to an armed vehicle (default ``disarm``:
        zero thrust, back to ``idle``; ``estop`` latches).
    takeover_timeout_s : float
        ``take_control`` while another console holds the lock is granted when repeated at
        least this long (s, 0.5..30; default 2) after the first request and within 10 s.
    token_env : str
        Environment variable with the token required on a non-loopback listen address
        (default ``QIKI_CONSOLE_TOKEN``).
    observers_without_token : bool
        On a non-loopback address, accept connections without a token as read-only
        observers (default False: refuse them).
    allowed_origins : list of str
        WebSocket ``Origin`` values accepted besides the gateway's own ``http://HOST:PORT``.
    queue_size : int
        Bound of the command queue (default 64); a command that finds it full is refused
        ``queue_full``.
    """

    telemetry_hz: Annotated[float, Field(ge=1.0, le=20.0)] = 20.0
    heartbeat_timeout_s: Annotated[float, Field(ge=0.1, le=0.4)] = 0.4
    link_loss_action: Literal["disarm", "estop"] = "disarm"
    takeover_timeout_s: Annotated[float, Field(ge=0.5, le=30.0)] = 2.0
    token_env: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = (
        DEFAULT_TOKEN_ENV)
    observers_without_token: bool = False
    allowed_origins: Annotated[list[str], Field(max_length=32)] = Field(default_factory=list)
    queue_size: Annotated[int, Field(ge=4, le=4096)] = 64

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for o in v:
            if not re.fullmatch(r"https?://[^/\s]+", o):
                raise ValueError(f"{o!r} is not an origin (scheme://host[:port], no path)")
        return v


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8765`` for IPv6).

    Parameters
    ----------
    text : str
        ``127.0.0.1:8765``, ``0.0.0.0:0`` (port 0: any free port).

    Returns
    -------
    (host, port)

    Raises
    ------
    ValueError
        Not ``HOST:PORT`` or a port outside 0..65535.
    """
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:\s\[\]]+):(\d{1,5})", text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port
