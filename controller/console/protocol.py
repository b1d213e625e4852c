"""The operator console's JSON protocol over WebSocket (issue 14): one pydantic model per message.

Every message is one JSON object with ``type`` (which message) and ``v`` (the protocol
version, :data:`PROTOCOL_VERSION`). Clients send :class:`Hello`, :class:`Command` and
:class:`Heartbeat`; the gateway sends :class:`Welcome`, :class:`Telemetry`,
:class:`CommandReply`, :class:`ControlStatus`, :class:`ServerHeartbeat` and
:class:`ErrorMessage`. The WebSocket path is :data:`WS_PATH`; ``docs/console-protocol.md``
describes the exchange and ``docs/console-schemas/*.json`` are the JSON Schemas of these
models (:func:`json_schemas`; regenerate with ``python -m controller.console.protocol``).

Compatibility: within one ``v`` changes are additive only (a new optional field, a new
command name, a new refusal code). A client must ignore fields it does not know.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "ARM_HOLD_MS",
    "CLIENT_MESSAGES",
    "COMMAND_NAMES",
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "REFUSAL_REASONS",
    "SERVER_MESSAGES",
    "WS_PATH",
    "ArmingCheck",
    "BusHealth",
    "ClientMessage",
    "Command",
    "CommandName",
    "CommandReply",
    "Confirm",
    "ControlStatus",
    "ErrorMessage",
    "Fault",
    "Heartbeat",
    "Hello",
    "LoopStats",
    "Pose",
    "PostItem",
    "Power",
    "RadarTrack",
    "ServerHeartbeat",
    "ServerMessage",
    "Setpoint",
    "Telemetry",
    "Welcome",
    "json_schemas",
    "parse_client_message",
]

#: The protocol version every message carries in ``v``.
PROTOCOL_VERSION: Literal[1] = 1
#: The WebSocket endpoint of the gateway.
WS_PATH = "/ws"
#: Largest client message the gateway reads (bytes); a longer one is an ``error``.
MAX_MESSAGE_BYTES = 4096
#: Shortest hold (ms) a console must prove for ``arm`` (hold-to-confirm, issue 14 part 3).
ARM_HOLD_MS = 1000

#: Command names. ``request_control``/``release_control``/``take_control`` are the control
#: lock; the others go to the vehicle's arbiter (SAFETY.md O04) as the FSM events noted.
CommandName = Literal[
    "request_control",  # ask for the lock; granted when nobody holds it
    "release_control",  # give the lock back
    "take_control",     # take the lock from a holder whose heartbeat is older than the takeover timeout
    "arm",              # FSM ``arm`` (needs ``confirm.hold_ms >= 1000`` and the lock)
    "disarm",           # FSM ``disarm`` (lock; no confirm)
    "estop",            # FSM ``estop`` (from any console, lock or not)
    "reset",            # FSM ``reset`` (lock)
    "mission_start",    # FSM ``start_mission`` (lock)
    "mission_abort",    # FSM ``disarm`` while a mission flies (lock): zero thrust, back to idle
]
COMMAND_NAMES: tuple[str, ...] = CommandName.__args__  # type: ignore[attr-defined]

#: Refusal reasons a :class:`CommandReply` may carry in ``refusal`` (a stable token; the
#: human text is in ``reason``).
REFUSAL_REASONS: dict[str, str] = {
    "stale": "the command's time-to-live ran out before a tick took it",
    "no_control": "this console does not hold the control lock",
    "no_confirm": "arm needs a hold-to-confirm proof (confirm.hold_ms >= 1000)",
    "read_only": "this console is a read-only observer",
    "held_by_other": "another console holds the control lock",
    "takeover_too_early": "the holder's heartbeat is younger than the takeover timeout",
    "not_holder": "release_control from a console that does not hold the lock",
    "fsm_refused": "the state machine refused the event (guard failed or no transition from this state)",
    "queue_full": "the gateway's command queue is full",
    "shutting_down": "the run is stopping",
}

Refusal = Literal["stale", "no_control", "no_confirm", "read_only", "held_by_other", "takeover_too_early",
                  "not_holder", "fsm_refused", "queue_full", "shutting_down"]


class _Msg(BaseModel):
    """Base of every message: strict about unknown fields on input, ``v`` checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION


# ---------------------------------------------------------------------- client -> gateway
class Confirm(BaseModel):
    """The proof of a hold-to-confirm gesture in the console (``arm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold_ms: Annotated[int, Field(ge=0, le=60_000)]
    """How long the operator held the control (ms)."""


class Hello(_Msg):
    """Optional first message of a client: who it is (shown as the control holder)."""

    type: Literal["hello"] = "hello"
    client: Annotated[str, Field(min_length=1, max_length=64)]


class Command(_Msg):
    """A command: answered by one :class:`CommandReply` with the same ``id``.

    ``ttl_ms`` is counted from the moment the gateway received the command; a command
    that no tick took within it is refused ``stale``.
    """

    type: Literal["command"] = "command"
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: CommandName
    ttl_ms: Annotated[int, Field(ge=1, le=10_000)] = 500
    confirm: Confirm | None = None


class Heartbeat(_Msg):
    """The link heartbeat of a console (the controlling one must send it, >= 5 Hz)."""

    type: Literal["heartbeat"] = "heartbeat"
    seq: Annotated[int, Field(ge=0)] = 0


ClientMessage = Annotated[Hello | Command | Heartbeat, Field(discriminator="type")]
_CLIENT_ADAPTER: TypeAdapter[Hello | Command | Heartbeat] = TypeAdapter(ClientMessage)


def parse_client_message(raw: str | bytes) -> Hello | Command | Heartbeat:
    """Validate one client message.

    Parameters
    ----------
    raw : str or bytes
        The WebSocket text frame.

    Returns
    -------
    Hello or Command or Heartbeat

    Raises
    ------
    ValueError
        Too long, not JSON, or not one of the client messages (a pydantic
        ``ValidationError`` is a ``ValueError``).
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
    return _CLIENT_ADAPTER.validate_json(raw)


# ---------------------------------------------------------------------- gateway -> client
class Welcome(_Msg):
    """First message of the gateway on a new connection."""

    type: Literal["welcome"] = "welcome"
    session: str
    """This connection's id (the control holder is named by it and the client name)."""
    role: Literal["operator", "observer"]
    """``observer``: read-only (every command but none is refused ``read_only``)."""
    rig: str
    rate_hz: float
    telemetry_hz: float
    heartbeat_timeout_s: float
    """A controlling console silent this long loses the link (the rig's link-loss action)."""
    takeover_timeout_s: float
    link_loss_action: str
    commands: list[str]
    arm_hold_ms: int = ARM_HOLD_MS


class CommandReply(_Msg):
    """The outcome of one :class:`Command`, sent after the tick that processed it."""

    type: Literal["reply"] = "reply"
    id: str
    name: str
    status: Literal["accepted", "refused"]
    code: int
    """Event code (``controller/record/codes.py``, ``docs/event-codes.md``)."""
    reason: str
    """Empty when accepted; the exact reason when refused (the FSM guard's text)."""
    refusal: Refusal | None = None
    tick: int | None = None
    """The tick that processed it (None: refused before any tick took it)."""
    t_s: float | None = None
    """Run time of that tick (s)."""
    state: str | None = None
    """FSM state after that tick."""


class ControlStatus(_Msg):
    """Who holds the control lock; sent on every change and after ``welcome``."""

    type: Literal["control"] = "control"
    holder: str | None
    """Holding console (``<client>@<session>``) or None."""
    you_hold: bool
    change: Literal["initial", "granted", "released", "taken_over", "link_lost", "disconnected"]
    t_s: float


class ServerHeartbeat(_Msg):
    """Sent at 1 Hz when nothing else is, so a console can tell a dead link."""

    type: Literal["heartbeat"] = "heartbeat"
    t_s: float


class ErrorMessage(_Msg):
    """A client message that was not understood (it reached nothing)."""

    type: Literal["error"] = "error"
    error: Literal["malformed", "too_long", "unknown_type", "rate_limited"]
    detail: str


class Pose(BaseModel):
    """Pose estimate (world frame: x east, y north, yaw counter-clockwise from x)."""

    model_config = ConfigDict(frozen=True)
    x_m: float
    y_m: float
    yaw_rad: float
    vx_mps: float
    vy_mps: float
    yaw_rate_radps: float
    age_s: float | None


class Setpoint(BaseModel):
    """The mission's setpoint and progress."""

    model_config = ConfigDict(frozen=True)
    x_m: float | None
    y_m: float | None
    yaw_rad: float | None
    waypoints_reached: int
    waypoints_total: int
    waypoints: list[list[float]]
    """``[x_m, y_m, yaw_rad]`` of each waypoint."""
    started: bool
    complete: bool
    age_s: float | None


class Fault(BaseModel):
    """One fault: its key, code and reason."""

    model_config = ConfigDict(frozen=True)
    key: str
    code: int
    reason: str


class ArmingCheck(BaseModel):
    """One arming check: passes, or the reason it fails (the FSM guard's own text)."""

    model_config = ConfigDict(frozen=True)
    name: str
    ok: bool
    reason: str


class PostItem(BaseModel):
    """One device's POST result."""

    model_config = ConfigDict(frozen=True)
    device: str
    passed: bool
    reason: str


class Power(BaseModel):
    """Battery and PDU, as the power component reports them (None: no power on the rig)."""

    model_config = ConfigDict(frozen=True)
    values: dict[str, float | int | bool | str | None]
    age_s: float | None


class BusHealth(BaseModel):
    """One CAN bus's health."""

    model_config = ConfigDict(frozen=True)
    name: str
    bus_off: bool
    error_passive: bool
    send_failures: int


class RadarTrack(BaseModel):
    """One confirmed radar track (world frame)."""

    model_config = ConfigDict(frozen=True)
    id: int
    x_m: float
    y_m: float
    vx_mps: float | None = None
    vy_mps: float | None = None


class LoopStats(BaseModel):
    """The control loop: rate and timing (real time only; None in lockstep)."""

    model_config = ConfigDict(frozen=True)
    rate_hz: float
    ticks: int
    overruns_last_s: int | None
    tick_duration_p99_ms: float | None


class Telemetry(_Msg):
    """The tick's published snapshot, 10-20 Hz.

    Every ``age_s`` is seconds on the run clock since that value was last updated (None: never).
    """

    type: Literal["telemetry"] = "telemetry"
    seq: int
    tick: int
    t_s: float
    state: str
    time_in_state_s: float
    armed: bool
    outputs: str
    control_holder: str | None
    link_age_s: float | None
    """Age of the controlling console's last heartbeat (s; None: no holder)."""
    recording: bool
    pose: Pose | None
    setpoint: Setpoint | None
    faults_active: list[Fault]
    faults_latched: list[str]
    arming_checks: list[ArmingCheck]
    arm_ready: bool
    post: list[PostItem]
    post_passed: bool
    power: Power | None
    buses: list[BusHealth]
    radar_tracks: list[RadarTrack]
    radar_age_s: float | None
    estop_pressed: bool | None
    thrust_n: list[float]
    loop: LoopStats
    last_refusal: list[str] | None
    """``[event, reason]`` of the FSM's last refusal."""


ServerMessage = Annotated[Welcome | Telemetry | CommandReply | ControlStatus | ServerHeartbeat | ErrorMessage,
                          Field(discriminator="type")]

#: Schema file name -> model, for ``docs/console-schemas/``.
CLIENT_MESSAGES: dict[str, type[BaseModel]] = {"hello": Hello, "command": Command, "heartbeat": Heartbeat}
SERVER_MESSAGES: dict[str, type[BaseModel]] = {
    "welcome": Welcome, "telemetry": Telemetry, "reply": CommandReply, "control": ControlStatus,
    "server_heartbeat": ServerHeartbeat, "error": ErrorMessage,
}


def json_schemas() -> dict[str, dict[str, object]]:
    """Return the JSON Schema of every message, by file stem (``client.command`` ...)."""
    out: dict[str, dict[str, object]] = {}
    for side, models in (("client", CLIENT_MESSAGES), ("server", SERVER_MESSAGES)):
        for stem, model in models.items():
            out[f"{side}.{stem}"] = model.model_json_schema()
    return out


def write_schemas(folder: Path) -> list[Path]:
    """Write :func:`json_schemas` as ``<folder>/<stem>.json``; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, schema in json_schemas().items():
        p = folder / f"{stem}.json"
        p.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(p)
    return paths


if __name__ == "__main__":  # pragma: no cover - regenerates docs/console-schemas/
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console-schemas")):
        print(path)
