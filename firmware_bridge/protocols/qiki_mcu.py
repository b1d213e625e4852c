"""QIKI MCU serial protocol: typed messages <-> framed bytes (sans-IO).

Transport: :mod:`firmware_bridge.protocols.framing` (COBS + CRC-16/CCITT-FALSE + 0x00), UART
921600 baud 8N1. Each sender keeps one 8-bit sequence counter per message id. All
multi-byte fields are little-endian; ``f32`` is IEEE 754 binary32. Payload layouts
(byte offsets within the payload)::

    0x01 HELLO_REQUEST  host->mcu  (1 B)
         0              protocol_version  u8

    0x02 HELLO          mcu->host  (8 B)
         0              fw_major          u8
         1              fw_minor          u8
         2              fw_patch          u8
         3              protocol_version  u8
         4..7           board_serial      u32

    0x10 HOST_HEARTBEAT host->mcu  (5 B)
         0..3           host_time_ms      u32   host monotonic clock, wraps
         4              host_state        u8    HostState code

    0x11 MCU_STATUS     mcu->host  (8 B)
         0..3           uptime_ms         u32
         4              estop_pressed     u8    0/1
         5              rail_enabled      u8    0/1 (valve-rail output as driven)
         6              watchdog_state    u8    WatchdogState code
         7              fault_flags       u8    FaultFlag bits

    0x20 IMU            mcu->host  (16 B)
         0..3           t_ms              u32   MCU uptime at sampling
         4..7           yaw_rate_radps    f32   body z, counter-clockwise positive
         8..11          accel_x_body_mps2 f32   body x (forward)
         12..15         accel_y_body_mps2 f32   body y (left)

    0x21 POSE           mcu->host  (28 B)   world frame, from the rig's motion capture
         0..3           t_ms              u32
         4..7           x_m               f32
         8..11          y_m               f32
         12..15         yaw_rad           f32
         16..19         vx_world_mps      f32
         20..23         vy_world_mps      f32
         24..27         yaw_rate_radps    f32

    0x30 RAIL_REQUEST   host->mcu  (1 B)
         0              enable            u8    0/1

The MCU answers every RAIL_REQUEST with an immediate MCU_STATUS (whether or not the rail
changed), which serves as the acknowledgement; no separate RAIL_ACK message is needed.

Decoding is strict: a known id with the wrong payload length, a bool byte other than 0/1,
an unknown enum code or a non-finite float yields ``None`` ("never used as data",
SAFETY.md F01/F03/D03); the caller counts it.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.framing import RawFrame, encode_frame, seal_body

__all__ = [
    "PROTOCOL_VERSION",
    "MsgId",
    "HostState",
    "WatchdogState",
    "FaultFlag",
    "HelloRequest",
    "Hello",
    "HostHeartbeat",
    "McuStatus",
    "Imu",
    "Pose",
    "RailRequest",
    "McuMessage",
    "MESSAGE_TYPES",
    "encode",
    "encode_imu",
    "encode_pose",
    "decode",
    "is_known_id",
]

#: Version of this payload layout; carried by HELLO_REQUEST and HELLO.
PROTOCOL_VERSION = 1


class MsgId(enum.IntEnum):
    """Message identifiers (frame body byte 0)."""

    HELLO_REQUEST = 0x01
    HELLO = 0x02
    HOST_HEARTBEAT = 0x10
    MCU_STATUS = 0x11
    IMU = 0x20
    POSE = 0x21
    RAIL_REQUEST = 0x30


class HostState(enum.IntEnum):
    """Host FSM state codes carried by HOST_HEARTBEAT (the MCU logs/display only)."""

    BOOT = 0
    IDLE = 1
    ARMED = 2
    ACTIVE = 3
    SAFE_MODE = 4
    ESTOP = 5
    OTHER = 255


class WatchdogState(enum.IntEnum):
    """MCU host-watchdog state carried by MCU_STATUS.

    OK: host heartbeats arrive within the timeout. HOST_TIMEOUT: none within the timeout
    (also the state at boot before the first heartbeat); the valve rail is forced off.
    RESET: the MCU came up from its own hardware-watchdog reset (latched until the next
    host heartbeat).
    """

    OK = 0
    HOST_TIMEOUT = 1
    RESET = 2


class FaultFlag(enum.IntFlag):
    """MCU_STATUS ``fault_flags`` bits. Any bit set fails POST."""

    NONE = 0
    IMU_FAULT = 0x01
    POSE_FEED_LOST = 0x02
    RAIL_FEEDBACK_MISMATCH = 0x04
    SUPPLY_UNDERVOLTAGE = 0x08
    INTERNAL = 0x80


@dataclass(frozen=True, slots=True)
class HelloRequest:
    """HELLO_REQUEST 0x01, host->mcu: ask the MCU to identify itself."""

    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Hello:
    """HELLO 0x02, mcu->host: firmware identity, sent at boot and on request."""

    fw_major: int
    fw_minor: int
    fw_patch: int
    protocol_version: int
    board_serial: int

    @property
    def firmware_version(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return (self.fw_major, self.fw_minor, self.fw_patch)


@dataclass(frozen=True, slots=True)
class HostHeartbeat:
    """HOST_HEARTBEAT 0x10, host->mcu: keeps the MCU watchdog (and the valve rail) alive.

    ``host_time_ms`` is the host monotonic clock in ms modulo 2**32.
    """

    host_time_ms: int
    host_state: HostState


@dataclass(frozen=True, slots=True)
class McuStatus:
    """MCU_STATUS 0x11, mcu->host: periodic (10 Hz) and on every change."""

    uptime_ms: int
    estop_pressed: bool
    rail_enabled: bool
    watchdog_state: WatchdogState
    fault_flags: int


@dataclass(frozen=True, slots=True)
class Imu:
    """IMU 0x20, mcu->host: body-frame rates and accelerations (x forward, y left, z up)."""

    t_ms: int
    yaw_rate_radps: float
    accel_x_body_mps2: float
    accel_y_body_mps2: float


@dataclass(frozen=True, slots=True)
class Pose:
    """POSE 0x21, mcu->host: planar pose and velocity in the world frame (motion capture)."""

    t_ms: int
    x_m: float
    y_m: float
    yaw_rad: float
    vx_world_mps: float
    vy_world_mps: float
    yaw_rate_radps: float


@dataclass(frozen=True, slots=True)
class RailRequest:
    """RAIL_REQUEST 0x30, host->mcu: request the valve-rail enable output on or off."""

    enable: bool


McuMessage = HelloRequest | Hello | HostHeartbeat | McuStatus | Imu | Pose | RailRequest

_SlotSet = Callable[[object, object], None]


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[_SlotSet, ...]:
    """Return the ``__set__`` of each named slot of ``cls``, in order (:func:`_new_pose`, :func:`_new_imu`).

    Raises
    ------
    TypeError
        ``names`` are not the dataclass's fields in order (a field added to the class, not the builder),
        or the class has a ``__post_init__`` (the slot builder would skip it).
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__: build it through its __init__")
    if tuple(f.name for f in fields(cls)) != names:
        raise TypeError(f"{cls.__name__}: fields {[f.name for f in fields(cls)]}, builder has {list(names)}")
    return tuple(getattr(cls, n).__set__ for n in names)


_new_object = object.__new__
_POSE_T, _POSE_X, _POSE_Y, _POSE_YAW, _POSE_VX, _POSE_VY, _POSE_R = _slot_setters(
    Pose, ("t_ms", "x_m", "y_m", "yaw_rad", "vx_world_mps", "vy_world_mps", "yaw_rate_radps"))
_IMU_T, _IMU_R, _IMU_AX, _IMU_AY = _slot_setters(
    Imu, ("t_ms", "yaw_rate_radps", "accel_x_body_mps2", "accel_y_body_mps2"))


def _new_pose(v: tuple[int, float, float, float, float, float, float]) -> Pose:
    """Build ``Pose(*v)`` without the frozen dataclass's ``__init__`` (per frame, 100 Hz).

    The same object: each slot set through its descriptor, in field order, where the
    generated ``__init__`` calls ``object.__setattr__`` per field (about half the cost,
    ``timeit``: 1.4 against 2.7 us; issue 16). :func:`_slot_setters` refuses, at import, a
    field list that is no longer the builder's; ``tests/unit/test_read_mcu_decode.py``
    compares the two.
    """
    m = _new_object(Pose)
    _POSE_T(m, v[0])
    _POSE_X(m, v[1])
    _POSE_Y(m, v[2])
    _POSE_YAW(m, v[3])
    _POSE_VX(m, v[4])
    _POSE_VY(m, v[5])
    _POSE_R(m, v[6])
    return m


def _new_imu(v: tuple[int, float, float, float]) -> Imu:
    """Build ``Imu(*v)`` without the frozen dataclass's ``__init__``, as :func:`_new_pose`."""
    m = _new_object(Imu)
    _IMU_T(m, v[0])
    _IMU_R(m, v[1])
    _IMU_AX(m, v[2])
    _IMU_AY(m, v[3])
    return m

_S_HELLO_REQUEST = struct.Struct("<B")
_S_HELLO = struct.Struct("<BBBBI")
_S_HEARTBEAT = struct.Struct("<IB")
_S_STATUS = struct.Struct("<IBBBB")
_S_IMU = struct.Struct("<Ifff")
_S_POSE = struct.Struct("<Iffffff")
_S_RAIL = struct.Struct("<B")

#: message class -> msg id
MESSAGE_TYPES: dict[type, MsgId] = {
    HelloRequest: MsgId.HELLO_REQUEST,
    Hello: MsgId.HELLO,
    HostHeartbeat: MsgId.HOST_HEARTBEAT,
    McuStatus: MsgId.MCU_STATUS,
    Imu: MsgId.IMU,
    Pose: MsgId.POSE,
    RailRequest: MsgId.RAIL_REQUEST,
}

_HOST_STATES = {int(s): s for s in HostState}
_WATCHDOG_STATES = {int(s): s for s in WatchdogState}
_isfinite = math.isfinite


def _payload(msg: McuMessage) -> bytes:
    try:
        if type(msg) is Imu:
            return _S_IMU.pack(
                msg.t_ms & 0xFFFFFFFF, msg.yaw_rate_radps, msg.accel_x_body_mps2,
                msg.accel_y_body_mps2,
            )
        if type(msg) is Pose:
            return _S_POSE.pack(
                msg.t_ms & 0xFFFFFFFF, msg.x_m, msg.y_m, msg.yaw_rad, msg.vx_world_mps,
                msg.vy_world_mps, msg.yaw_rate_radps,
            )
        if type(msg) is HostHeartbeat:
            return _S_HEARTBEAT.pack(msg.host_time_ms & 0xFFFFFFFF, int(HostState(msg.host_state)))
        if type(msg) is McuStatus:
            return _S_STATUS.pack(
                msg.uptime_ms & 0xFFFFFFFF, 1 if msg.estop_pressed else 0,
                1 if msg.rail_enabled else 0, int(WatchdogState(msg.watchdog_state)),
                msg.fault_flags,
            )
        if type(msg) is RailRequest:
            return _S_RAIL.pack(1 if msg.enable else 0)
        if type(msg) is HelloRequest:
            return _S_HELLO_REQUEST.pack(msg.protocol_version)
        if type(msg) is Hello:
            return _S_HELLO.pack(
                msg.fw_major, msg.fw_minor, msg.fw_patch, msg.protocol_version, msg.board_serial
            )
    except (struct.error, ValueError, TypeError) as exc:
        raise ProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc
    raise ProtocolError(f"not a QIKI MCU message: {type(msg).__name__}")


def encode(msg: McuMessage, seq: int) -> bytes:
    """Encode one message into a complete wire frame (delimiter included).

    Parameters
    ----------
    msg : McuMessage
        One of the message dataclasses of this module.
    seq : int
        Sender's sequence counter for this message id; taken modulo 256.

    Returns
    -------
    bytes
        The frame to write to the port (layout in the module docstring and in
        :mod:`firmware_bridge.protocols.framing`).

    Raises
    ------
    ProtocolError
        If ``msg`` is not a message of this protocol or a field is out of its range
        (u8 > 255, unknown enum code). Times (``*_ms``) wrap modulo 2**32.

    Notes
    -----
    Per-tick function (heartbeats, sensor messages).
    """
    msg_id = MESSAGE_TYPES.get(type(msg))
    if msg_id is None:
        raise ProtocolError(f"not a QIKI MCU message: {type(msg).__name__}")
    return encode_frame(msg_id, seq, _payload(msg))


# Header and payload in one pack (the streams' fast path: encode_imu, encode_pose)
_S_IMU_BODY = struct.Struct("<BBIfff")
_S_POSE_BODY = struct.Struct("<BBIffffff")
_ID_IMU = int(MsgId.IMU)
_ID_POSE = int(MsgId.POSE)


def encode_imu(seq: int, t_ms: int, yaw_rate_radps: float, accel_x_body_mps2: float,
               accel_y_body_mps2: float) -> bytes:
    """Encode an IMU message from its fields: ``encode(Imu(t_ms, ...), seq)`` without the object.

    Parameters
    ----------
    seq : int
        Sequence counter; taken modulo 256.
    t_ms : int
        MCU uptime (ms); taken modulo 2**32.
    yaw_rate_radps : float
        Body z rate (rad/s).
    accel_x_body_mps2, accel_y_body_mps2 : float
        Body-frame accelerations (m/s^2).

    Returns
    -------
    bytes
        The same frame as :func:`encode` of the :class:`Imu` (layout in the module docstring).

    Raises
    ------
    ProtocolError
        Where :func:`encode` raises it (a field of the wrong type). As there, a float
        beyond the f32 range raises ``struct``'s OverflowError.

    Notes
    -----
    Per-tick function (the MCU emulator's 100 Hz stream).
    """
    seq_byte = seq & 0xFF  # a non-int seq raises TypeError here, as in encode()
    try:
        body = _S_IMU_BODY.pack(_ID_IMU, seq_byte, t_ms & 0xFFFFFFFF, yaw_rate_radps,
                                accel_x_body_mps2, accel_y_body_mps2)
    except (struct.error, ValueError, TypeError) as exc:
        raise ProtocolError(f"cannot encode Imu: {exc}") from exc
    return seal_body(body)


def encode_pose(seq: int, t_ms: int, x_m: float, y_m: float, yaw_rad: float, vx_world_mps: float,
                vy_world_mps: float, yaw_rate_radps: float) -> bytes:
    """Encode a POSE message from its fields: ``encode(Pose(t_ms, ...), seq)`` without the object.

    Parameters
    ----------
    seq : int
        Sequence counter; taken modulo 256.
    t_ms : int
        MCU uptime (ms); taken modulo 2**32.
    x_m, y_m : float
        World position (m).
    yaw_rad : float
        Heading (rad).
    vx_world_mps, vy_world_mps : float
        World-frame velocity (m/s).
    yaw_rate_radps : float
        Yaw rate (rad/s).

    Returns
    -------
    bytes
        The same frame as :func:`encode` of the :class:`Pose`.

    Raises
    ------
    ProtocolError
        As :func:`encode_imu`.

    Notes
    -----
    Per-tick function (the MCU emulator's 100 Hz stream).
    """
    seq_byte = seq & 0xFF  # a non-int seq raises TypeError here, as in encode()
    try:
        body = _S_POSE_BODY.pack(_ID_POSE, seq_byte, t_ms & 0xFFFFFFFF, x_m, y_m, yaw_rad,
                                 vx_world_mps, vy_world_mps, yaw_rate_radps)
    except (struct.error, ValueError, TypeError) as exc:
        raise ProtocolError(f"cannot encode Pose: {exc}") from exc
    return seal_body(body)


def is_known_id(msg_id: int) -> bool:
    """Return True if ``msg_id`` (0..255) is a message id of this protocol."""
    return msg_id in _KNOWN_IDS


_KNOWN_IDS = frozenset(int(m) for m in MsgId)


def _bool(b: int) -> bool | None:
    return True if b == 1 else (False if b == 0 else None)


def decode(frame: RawFrame) -> McuMessage | None:
    """Interpret a CRC-checked frame as a typed message.

    Parameters
    ----------
    frame : RawFrame
        From :class:`~firmware_bridge.protocols.framing.FrameDecoder`.

    Returns
    -------
    McuMessage or None
        ``None`` for an unknown id, a payload of the wrong length, a bool byte other than
        0/1, an unknown enum code or a NaN/inf float. The caller counts ``None`` results
        (:func:`is_known_id` tells an unknown id from an invalid payload).

    Notes
    -----
    Per-tick function; never raises.
    """
    msg_id, _seq, p = frame
    n = len(p)
    if msg_id == 0x21:
        if n != 28:
            return None
        v = _S_POSE.unpack(p)
        if not all(map(_isfinite, v[1:])):
            return None
        return _new_pose(v)
    if msg_id == 0x20:
        if n != 16:
            return None
        v = _S_IMU.unpack(p)
        if not all(map(_isfinite, v[1:])):
            return None
        return _new_imu(v)
    if msg_id == 0x11:
        if n != 8:
            return None
        up, estop, rail, wd, flags = _S_STATUS.unpack(p)
        e, r, w = _bool(estop), _bool(rail), _WATCHDOG_STATES.get(wd)
        if e is None or r is None or w is None:
            return None
        return McuStatus(up, e, r, w, flags)
    if msg_id == 0x10:
        if n != 5:
            return None
        t, st = _S_HEARTBEAT.unpack(p)
        state = _HOST_STATES.get(st)
        return None if state is None else HostHeartbeat(t, state)
    if msg_id == 0x30:
        if n != 1:
            return None
        en = _bool(p[0])
        return None if en is None else RailRequest(en)
    if msg_id == 0x02:
        if n != 8:
            return None
        return Hello(*_S_HELLO.unpack(p))
    if msg_id == 0x01:
        if n != 1:
            return None
        return HelloRequest(p[0])
    return None
