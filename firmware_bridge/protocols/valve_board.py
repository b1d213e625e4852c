"""Valve board CAN protocol (sans-IO): layout, CRC-8 checksum, counters, typed values.

Shared by the host driver (``hal/devices/valve_board.py``) and the emulated firmware
(``firmware_bridge/emulation/valve_board.py``). The bit layout lives in ``dbc/qiki.dbc``
(cantools does the packing); this module adds what a DBC cannot say: the end-to-end
protection (checksum and alive counter), the duty quantisation, the board states, the
firmware-version acceptance rule, and the typed values both sides exchange.

Frames (node 1; node n adds n - 1 to every arbitration ID), classic CAN, standard 11-bit
IDs, DLC 8, Intel (little-endian) signals; bit b of the frame is bit (b % 8) of byte b // 8::

    VB_Command  0x101  host -> board, every 10 ms
    byte:  |    0    |    1    |    2    |    3    |    4    |    5    |    6    |    7    |
    bits:   7      0  15     8  23    16  31    24  39    32  47    40  55    48  63    56
           [D2lo|D1 ][D3lo|D2hi][ D4 |D3hi][D6lo|D5 ][D7lo|D6hi][ D8 |D7hi][Clo |CNT][ C hi  ]
      D1..D8  VB_Cmd_Duty1..8  6 bits each at bits 0,6,12,...,42; raw r -> duty 2*r %;
              raw 0..50 valid (0..100 %), raw 51..63 invalid (the board drops the frame)
      CNT     VB_Cmd_Counter   bits 48-51, 0..15, +1 per frame
      C       VB_Cmd_Checksum  bits 52-63, a 12-bit CRC (Intel: its low nibble is byte 6's
              high nibble, its high 8 bits byte 7), see "Command checksum" below

    Before issue 15 bits 52-55 were reserved and byte 7 held a CRC-8 SAE J1850 as in the
    status: 27 of 20,000 corrupted zero-duty commands opened a valve in the emulator.

    VB_Status  0x181  board -> host, every 20 ms
    byte:  |    0    |    1    |    2    |        3          |    4    |  5  |    6    |  7  |
           [ OPEN    ][ FAULT   ][ RAIL lo ][r|OT|RO|CT|RAIL hi][ TEMP    ][rsv][rsv |CNT][CRC ]
      OPEN  VB_Sts_ValveOpen   byte 0, bit i = valve i+1 open
      FAULT VB_Sts_ValveFault  byte 1, bit i = valve i+1 faulted
      RAIL  VB_Sts_RailVoltage bits 16-27, 0.01 V/bit (0..40.95 V)
      CT    VB_Sts_CmdTimeout  bit 28;  RO VB_Sts_RailOff bit 29;  OT VB_Sts_OverTemp bit 30
      r     bit 31 reserved 0
      TEMP  VB_Sts_BoardTemp   byte 4, 1 degC/bit, offset -40 degC
      CNT   VB_Sts_Counter     bits 48-51;  CRC VB_Sts_Checksum byte 7

    VB_Heartbeat  0x701  board -> host, every 100 ms
    byte:  |  0  |  1  |  2  |  3  |    4    |    5    |    6    |    7    |
           [ UPTIME (uint32 LE, 1 ms/bit) ][MIN|MAJ  ][PAT|MIN ][CNT|ST|PAT][  CRC  ]
      MAJ/MIN/PAT VB_HB_FwMajor/Minor/Patch  6 bits each at bits 32, 38, 44 (0..63)
      ST    VB_HB_State    bits 50-51: 0 BOOT, 1 OPERATIONAL, 2 FAULT (3 invalid)
      CNT   VB_HB_Counter  bits 52-55;  CRC VB_HB_Checksum byte 7

    Before issue 15 the heartbeat had no counter and no checksum (8-bit version fields and
    an 8-bit state): 53 % of corrupted heartbeats were accepted and one in three corrupted
    frames caused a false "rebooted" (``bench/fuzz_valve.py``). It now carries the same E2E
    protection as status and command.

ID hazard (open): the heartbeat sits on CANopen's 0x700 + node, but an ARS408-21 radar with
sensor ID 0 on the same bus sends 0x701 Cluster_1_General (DLC 8; also 0x700 VersionID,
0x702 Cluster_2_Quality; +0x10 per sensor ID, Continental ``ARS408_id0.dbc``) when its
output type is clusters. The heartbeat's checksum covers the data ID, so such a frame
passes only at the CRC-8 residual rate (and then the counter check). QIKI runs the radar
in object mode; 0x703..0x70F (nodes 1..13) are free if the ID has to move -- a one-line
change in ``dbc/qiki.dbc``, nothing else hard-codes it.

Checksum (E2E protection) of status and heartbeat
--------------------------------------------------
``CRC-8 SAE J1850`` (polynomial 0x1D, initial value 0xFF, final XOR 0xFF, no reflection;
check value 0x4B over ASCII "123456789") computed over the *data ID* byte -- the low byte
of the frame's arbitration ID, so a frame received on the wrong ID fails -- followed by
bytes 0..6. This is the scheme of AUTOSAR E2E Profile 1 (AUTOSAR_PRS_E2EProtocol, Profile
1: CRC-8-SAE J1850 with the Data ID included in the CRC, 4-bit alive counter); the CRC
parameters are AUTOSAR_SWS_CRCLibrary section 7.2.1 "8-bit SAE J1850 CRC Calculation".

Command checksum
----------------
``VB_Command`` carries a 12-bit CRC (:mod:`firmware_bridge.protocols.crc12`: Koopman's
0xBAE, "CRC-12F/5", polynomial 0x75D, init 0xFFF, final XOR 0xFFF) over the data ID byte,
bytes 0..5 and the counter nibble (bits 48..51, MSB first): the 52 transmitted data bits
are within the polynomial's HD=5 length (53 bits, Koopman's "Good HD=5 Polynomials"
table), so any 1 to 4 corrupted bits of the frame are refused, where the CRC-8 above has
HD 3 on this frame. See :func:`command_checksum`, :func:`seal_command`,
:func:`command_checksum_ok`. Status and heartbeat keep the CRC-8: the heartbeat has no
free bit, and neither frame actuates anything (a corrupted status or heartbeat that
passes can at worst make the host trip falsely or see a fault one period late; the
command is the frame that opens a valve).

Counter: 4 bits, 0..15 then back to 0; the receiver accepts +1, counts a repeat (same
value) or a skip as a wrong counter (SAFETY.md F02).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols import crc12 as _crc12
from firmware_bridge.protocols.firmware_version import firmware_accepted, parse_version

__all__ = [
    "BoardState", "COMMAND", "STATUS", "HEARTBEAT", "DUTY_SIGNALS", "COUNTER_SIGNALS",
    "CHECKSUM_SIGNALS", "REQUIRED_SIGNALS", "COUNTER_MODULO", "DUTY_STEP_PCT",
    "DUTY_RAW_MAX", "MAX_VALVES", "STATUS_PERIOD_S", "HEARTBEAT_PERIOD_S",
    "COMMAND_PERIOD_S", "BOOT_DURATION_S",
    "crc8_sae_j1850", "e2e_checksum", "seal", "checksum_ok", "command_checksum",
    "seal_command", "command_checksum_ok", "CHECKSUM_FNS", "COMMAND_CHECKSUM_START_BIT",
    "COMMAND_CHECKSUM_BITS", "next_counter",
    "counter_delta", "duty_pct_to_raw", "raw_to_duty_pct", "mask_to_tuple",
    "tuple_to_mask", "ValveBoardStatus", "ValveBoardHeartbeat", "parse_version",
    "firmware_accepted", "status_from_signals", "heartbeat_from_signals",
    "status_signals", "heartbeat_signals", "command_signals",
]

COMMAND = "VB_Command"
STATUS = "VB_Status"
HEARTBEAT = "VB_Heartbeat"

MAX_VALVES = 8
DUTY_SIGNALS = tuple(f"VB_Cmd_Duty{i}" for i in range(1, MAX_VALVES + 1))
COUNTER_SIGNALS = {COMMAND: "VB_Cmd_Counter", STATUS: "VB_Sts_Counter", HEARTBEAT: "VB_HB_Counter"}
CHECKSUM_SIGNALS = {COMMAND: "VB_Cmd_Checksum", STATUS: "VB_Sts_Checksum", HEARTBEAT: "VB_HB_Checksum"}
STATUS_SIGNAL_NAMES = ("VB_Sts_ValveOpen", "VB_Sts_ValveFault", "VB_Sts_RailVoltage",
                       "VB_Sts_CmdTimeout", "VB_Sts_RailOff", "VB_Sts_OverTemp",
                       "VB_Sts_BoardTemp", "VB_Sts_Counter", "VB_Sts_Checksum")
HEARTBEAT_SIGNAL_NAMES = ("VB_HB_Uptime", "VB_HB_FwMajor", "VB_HB_FwMinor",
                          "VB_HB_FwPatch", "VB_HB_State", "VB_HB_Counter", "VB_HB_Checksum")
#: Largest value of one heartbeat firmware-version field (6 bits each).
FW_FIELD_MAX = 63
#: What the DBC must define for the driver and the emulator (SAFETY.md K02).
REQUIRED_SIGNALS = {
    COMMAND: DUTY_SIGNALS + ("VB_Cmd_Counter", "VB_Cmd_Checksum"),
    STATUS: STATUS_SIGNAL_NAMES,
    HEARTBEAT: HEARTBEAT_SIGNAL_NAMES,
}

COUNTER_MODULO = 16
DUTY_STEP_PCT = 2.0
DUTY_RAW_MAX = 50           # 50 * 2 % = 100 %; raw 51..63 invalid
COMMAND_PERIOD_S = 0.010    # the DBC's GenMsgCycleTime, repeated for the emulator's
STATUS_PERIOD_S = 0.020     # schedule (the codec reads them from the DBC; tests check
HEARTBEAT_PERIOD_S = 0.100  # that both agree)
BOOT_DURATION_S = 0.5
UPTIME_WRAP_S = (1 << 32) * 0.001


class BoardState(enum.IntEnum):
    """``VB_HB_State`` values (VAL_ table of ``dbc/qiki.dbc``)."""

    BOOT = 0
    OPERATIONAL = 1
    FAULT = 2


# ---------------------------------------------------------------------------- CRC-8
def _make_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_J1850_TABLE = _make_table(0x1D)


def crc8_sae_j1850(data: bytes | bytearray | Sequence[int], *, init: int = 0xFF,
                   xorout: int = 0xFF) -> int:
    """CRC-8 SAE J1850 of ``data``.

    Parameters
    ----------
    data : bytes-like or sequence of int (0..255)
        The bytes to protect.
    init : int, optional
        Initial register value (default 0xFF).
    xorout : int, optional
        Final XOR (default 0xFF).

    Returns
    -------
    int
        The CRC, 0..255. ``crc8_sae_j1850(b"123456789") == 0x4B``.

    Notes
    -----
    Polynomial 0x1D (x^8 + x^4 + x^3 + x^2 + 1), MSB first, no reflection: SAE J1850,
    AUTOSAR_SWS_CRCLibrary section 7.2.1. Table driven (one lookup per byte).
    """
    crc = init & 0xFF
    table = _J1850_TABLE
    for b in data:
        crc = table[crc ^ b]
    return crc ^ xorout


def e2e_checksum(arbitration_id: int, data: bytes | bytearray) -> int:
    """Return the expected ``*_Checksum`` value of a valve board frame.

    Parameters
    ----------
    arbitration_id : int
        The frame's arbitration ID on the wire; its low byte is the data ID.
    data : bytes-like, length >= 7
        Frame payload; bytes 0..6 are protected (byte 7 holds the checksum).

    Returns
    -------
    int
        CRC-8 SAE J1850 over ``[arbitration_id & 0xFF] + data[0:7]`` (AUTOSAR E2E
        Profile 1 style, Data ID in the CRC).

    Notes
    -----
    This is the ``checksum_fn`` the generic CAN ingress checker is given. Per frame: the
    table walk of :func:`crc8_sae_j1850` inlined, without building the protected bytes.
    """
    table = _J1850_TABLE
    crc = table[0xFF ^ (arbitration_id & 0xFF)]
    for b in data[:7]:
        crc = table[crc ^ b]
    return crc ^ 0xFF


def seal(arbitration_id: int, data: bytes | bytearray) -> bytes:
    """Return ``data`` (8 bytes) with byte 7 replaced by its E2E checksum.

    Parameters
    ----------
    arbitration_id : int
        The arbitration ID the frame is sent on (its low byte is the data ID).
    data : bytes-like, length 8
        Frame payload; byte 7 is overwritten.

    Returns
    -------
    bytes
        8 bytes, byte 7 = :func:`e2e_checksum` of the rest.

    Raises
    ------
    ProtocolError
        If ``data`` is not 8 bytes long.
    """
    if len(data) != 8:
        raise ProtocolError(f"valve board frames are 8 bytes, got {len(data)}")
    out = bytearray(data)
    out[7] = e2e_checksum(arbitration_id, out)
    return bytes(out)


def checksum_ok(arbitration_id: int, data: bytes | bytearray) -> bool:
    """Return True when an 8-byte frame's byte 7 matches :func:`e2e_checksum` (F01)."""
    return len(data) == 8 and data[7] == e2e_checksum(arbitration_id, data)


# ---------------------------------------------------------------------------- CRC-12 (command)
#: ``VB_Cmd_Checksum`` position and width (``dbc/qiki.dbc``; the driver checks they agree).
COMMAND_CHECKSUM_START_BIT = 52
COMMAND_CHECKSUM_BITS = 12



def _command_crc_tables() -> tuple[int, tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Positional tables of the command CRC: ``(crc of the all-zero word, byte tables, nibble table)``.

    The CRC of the fixed 60-bit word (data ID, bytes 0..5, counter nibble) is affine in
    the word: the CRC of the all-zero word (init 0xFFF, xorout 0xFFF), XOR, per position,
    the zero-init CRC of the word holding only that position's value. Each table is built
    from its 8 (nibble: 4) single-bit entries by XOR (linearity);
    ``tests/unit/test_lean_devices.py`` compares :func:`command_checksum` with
    :func:`firmware_bridge.protocols.crc12.crc12`.
    """
    def table(n_values: int, word: Callable[[int], tuple[bytes, int]]) -> tuple[int, ...]:
        out = [0] * n_values
        bit = 1
        while bit < n_values:
            data, nibble = word(bit)
            out[bit] = _crc12.crc12(data, nibble, init=0, xorout=0)
            bit <<= 1
        for v in range(1, n_values):
            low = v & -v
            if v != low:
                out[v] = out[v ^ low] ^ out[low]
        return tuple(out)

    def at(pos: int) -> Callable[[int], tuple[bytes, int]]:
        return lambda v: (bytes(pos) + bytes((v,)) + bytes(6 - pos), 0)

    zero = _crc12.crc12(bytes(7), 0)
    return zero, tuple(table(256, at(pos)) for pos in range(7)), table(16, lambda v: (bytes(7), v))


_CMD_CRC_ZERO, _CMD_CRC_BYTES, _CMD_CRC_NIBBLE = _command_crc_tables()


def command_checksum(arbitration_id: int, data: bytes | bytearray) -> int:
    """Return the expected ``VB_Cmd_Checksum`` (12 bits) of a ``VB_Command`` frame.

    Parameters
    ----------
    arbitration_id : int
        The frame's arbitration ID on the wire; its low byte is the data ID.
    data : bytes-like, length >= 7
        Frame payload; bytes 0..5 and bits 48..51 (the counter, low nibble of byte 6) are
        protected (bits 52..63 hold the checksum).

    Returns
    -------
    int
        0..4095: :func:`firmware_bridge.protocols.crc12.crc12` of
        ``[arbitration_id & 0xFF] + data[0:6]`` followed by the nibble ``data[6] & 0x0F``.

    Notes
    -----
    The ``checksum_fn`` of ``VB_Command`` (:data:`CHECKSUM_FNS`). Per frame: one lookup
    per byte position in the positional tables of :func:`_command_crc_tables` (the same
    CRC as the byte-wise table walk of :func:`~firmware_bridge.protocols.crc12.crc12`,
    without its shifts). Hamming distance 5 over the 64 frame bits (module docstring,
    "Command checksum").
    """
    t0, t1, t2, t3, t4, t5, t6 = _CMD_CRC_BYTES
    return (_CMD_CRC_ZERO ^ t0[arbitration_id & 0xFF] ^ t1[data[0]] ^ t2[data[1]] ^ t3[data[2]]
            ^ t4[data[3]] ^ t5[data[4]] ^ t6[data[5]] ^ _CMD_CRC_NIBBLE[data[6] & 0xF])


def seal_command(arbitration_id: int, data: bytes | bytearray) -> bytes:
    """Return a ``VB_Command`` payload with bits 52..63 replaced by its 12-bit checksum.

    Parameters
    ----------
    arbitration_id : int
        The arbitration ID the command is sent on (its low byte is the data ID).
    data : bytes-like, length 8
        Frame payload; the high nibble of byte 6 and byte 7 are overwritten.

    Returns
    -------
    bytes
        8 bytes: byte 6 high nibble = checksum bits 0..3, byte 7 = checksum bits 4..11
        (the Intel 12-bit signal at bit 52 of ``dbc/qiki.dbc``).

    Raises
    ------
    ProtocolError
        If ``data`` is not 8 bytes long.
    """
    if len(data) != 8:
        raise ProtocolError(f"valve board frames are 8 bytes, got {len(data)}")
    out = bytearray(data)
    crc = command_checksum(arbitration_id, out)
    out[6] = (out[6] & 0x0F) | ((crc & 0x0F) << 4)
    out[7] = crc >> 4
    return bytes(out)


def command_checksum_ok(arbitration_id: int, data: bytes | bytearray) -> bool:
    """Return True when an 8-byte ``VB_Command``'s bits 52..63 match :func:`command_checksum` (F01)."""
    return len(data) == 8 and ((data[6] >> 4) | (data[7] << 4)) == command_checksum(arbitration_id, data)


#: The ``checksum_fn`` of each message's checksum signal (CRC-12 command, CRC-8 status and
#: heartbeat), for ingress checkers and bus monitors.
CHECKSUM_FNS = {COMMAND: command_checksum, STATUS: e2e_checksum, HEARTBEAT: e2e_checksum}


def next_counter(counter: int) -> int:
    """Alive counter after ``counter`` (0..15 rolling)."""
    return (counter + 1) % COUNTER_MODULO


def counter_delta(previous: int, current: int) -> int:
    """Return the steps from ``previous`` to ``current`` modulo 16 (1 = in sequence, 0 = repeat)."""
    return (current - previous) % COUNTER_MODULO


# ---------------------------------------------------------------------------- duty
def duty_pct_to_raw(duty_pct: float) -> int:
    """Quantise a commanded duty to the wire's 2 % step.

    Parameters
    ----------
    duty_pct : float
        Duty cycle in percent of the PWM period. Clamped to [0, 100]; NaN or infinite
        values give 0 (fail safe: a bad number never opens a valve).

    Returns
    -------
    int
        Raw value 0..50 (round half up to the nearest 2 %).
    """
    if duty_pct.__class__ is float:
        # the per-tick case, the same answers as the general rule below: NaN fails both
        # comparisons, +inf is not finite, every float in (0, 100) quantises to 1..50
        if 0.0 < duty_pct < 100.0:
            return min(DUTY_RAW_MAX, math.floor(duty_pct / DUTY_STEP_PCT + 0.5))
        return DUTY_RAW_MAX if duty_pct >= 100.0 and duty_pct != math.inf else 0
    if not isinstance(duty_pct, (int, float)) or not math.isfinite(duty_pct):
        return 0
    if duty_pct <= 0.0:
        return 0
    if duty_pct >= 100.0:
        return DUTY_RAW_MAX
    return min(DUTY_RAW_MAX, int(math.floor(duty_pct / DUTY_STEP_PCT + 0.5)))


def raw_to_duty_pct(raw: int) -> float:
    """Physical duty (%) of a raw 6-bit duty field (no validity check)."""
    return raw * DUTY_STEP_PCT


def mask_to_tuple(mask: int, n: int = MAX_VALVES) -> tuple[bool, ...]:
    """Bit mask -> tuple of ``n`` booleans (bit i -> element i)."""
    return tuple(bool((mask >> i) & 1) for i in range(n))


def tuple_to_mask(flags: Sequence[bool]) -> int:
    """Sequence of booleans -> bit mask (element i -> bit i)."""
    mask = 0
    for i, f in enumerate(flags):
        if f:
            mask |= 1 << i
    return mask


def command_signals(duty_raw: Sequence[int], counter: int) -> dict[str, float]:
    """Physical signal dict of a ``VB_Command`` (checksum 0, to be sealed).

    Parameters
    ----------
    duty_raw : sequence of int, length <= 8
        Raw duties 0..50 (2 %/bit); missing valves are sent as 0.
    counter : int
        Alive counter; taken modulo 16.

    Returns
    -------
    dict of str to float
        ``VB_Cmd_Duty1..8`` in % and ``VB_Cmd_Counter``, ``VB_Cmd_Checksum`` (0), for
        ``DbcCodec.encode`` followed by :func:`seal_command`.
    """
    sigs: dict[str, float] = {name: 0 for name in DUTY_SIGNALS}
    # fewer than 8 duties: the missing valves stay 0
    for name, raw in zip(DUTY_SIGNALS, duty_raw, strict=False):
        sigs[name] = raw_to_duty_pct(int(raw))
    sigs["VB_Cmd_Counter"] = counter % COUNTER_MODULO
    sigs["VB_Cmd_Checksum"] = 0
    return sigs


# ---------------------------------------------------------------------------- values
@dataclass(frozen=True)
class ValveBoardStatus:
    """Decoded ``VB_Status``.

    Attributes
    ----------
    valve_open_mask : int
        Bit i set: valve i (0-based) physically open when sampled.
    valve_fault_mask : int
        Bit i set: valve i faulted.
    rail_voltage_v : float
        Valve power rail voltage, V.
    cmd_timeout : bool
        No valid command within the board's command timeout; valves closed.
    rail_off : bool
        Valve rail not powered; valves closed.
    over_temp : bool
        Board over temperature.
    board_temp_c : float
        Board temperature, degC.
    n_valves : int
        Number of valves fitted (length of the tuples).
    """

    valve_open_mask: int
    valve_fault_mask: int
    rail_voltage_v: float
    cmd_timeout: bool
    rail_off: bool
    over_temp: bool
    board_temp_c: float
    n_valves: int = MAX_VALVES

    @property
    def valve_open(self) -> tuple[bool, ...]:
        """Per valve (0-based), physically open."""
        return mask_to_tuple(self.valve_open_mask, self.n_valves)

    @property
    def valve_fault(self) -> tuple[bool, ...]:
        """Per valve (0-based), faulted."""
        return mask_to_tuple(self.valve_fault_mask, self.n_valves)


@dataclass(frozen=True)
class ValveBoardHeartbeat:
    """Decoded ``VB_Heartbeat``.

    Attributes
    ----------
    uptime_s : float
        Seconds since the board's last reset (1 ms resolution, wraps at 2**32 ms).
    firmware_version : tuple of int
        (major, minor, patch).
    state : BoardState
        Board state.
    """

    uptime_s: float
    firmware_version: tuple[int, int, int]
    state: BoardState


def _require_finite(message: str, sig: Mapping[str, float], names: Sequence[str]) -> None:
    """Raise :class:`ProtocolError` naming the first of ``names`` whose value is NaN or infinite."""
    for name in names:
        v = sig[name]
        if not math.isfinite(v):
            raise ProtocolError(f"{message}: signal {name} is {v!r}, not a finite number")


_STATUS_NAMES = ("VB_Sts_ValveOpen", "VB_Sts_ValveFault", "VB_Sts_RailVoltage", "VB_Sts_CmdTimeout",
                 "VB_Sts_RailOff", "VB_Sts_OverTemp", "VB_Sts_BoardTemp")
_HEARTBEAT_NAMES = ("VB_HB_Uptime", "VB_HB_FwMajor", "VB_HB_FwMinor", "VB_HB_FwPatch", "VB_HB_State")


def status_from_signals(sig: Mapping[str, float], n_valves: int = MAX_VALVES) -> ValveBoardStatus:
    """Build a :class:`ValveBoardStatus` from decoded ``VB_Status`` physical signals.

    Parameters
    ----------
    sig : dict of str to float
        ``Decoded.signals`` of a ``VB_Status`` frame (DBC units: V, degC).
    n_valves : int, optional
        Valves fitted, 1..8 (length of the per-valve tuples).

    Returns
    -------
    ValveBoardStatus

    Raises
    ------
    ProtocolError
        If a signal is NaN or infinite (issue 15: the protocol's own error, not a bare
        ``ValueError`` from ``int(nan)``).
    KeyError
        If a ``VB_Sts_*`` signal of :data:`REQUIRED_SIGNALS` is missing.
    """
    _require_finite(STATUS, sig, _STATUS_NAMES)
    return ValveBoardStatus(
        valve_open_mask=int(sig["VB_Sts_ValveOpen"]),
        valve_fault_mask=int(sig["VB_Sts_ValveFault"]),
        rail_voltage_v=float(sig["VB_Sts_RailVoltage"]),
        cmd_timeout=bool(sig["VB_Sts_CmdTimeout"]),
        rail_off=bool(sig["VB_Sts_RailOff"]),
        over_temp=bool(sig["VB_Sts_OverTemp"]),
        board_temp_c=float(sig["VB_Sts_BoardTemp"]),
        n_valves=n_valves,
    )


def heartbeat_from_signals(sig: Mapping[str, float]) -> ValveBoardHeartbeat:
    """Build a :class:`ValveBoardHeartbeat` from decoded ``VB_Heartbeat`` signals.

    Parameters
    ----------
    sig : dict of str to float
        ``Decoded.signals`` of a ``VB_Heartbeat`` frame (uptime in s).

    Returns
    -------
    ValveBoardHeartbeat

    Raises
    ------
    ProtocolError
        Unknown state value (the ingress range check rejects it first), or a signal that
        is NaN or infinite (issue 15: the protocol's own error, not a bare ``ValueError``).
    KeyError
        If a ``VB_HB_*`` signal is missing.
    """
    _require_finite(HEARTBEAT, sig, _HEARTBEAT_NAMES)
    try:
        state = BoardState(int(sig["VB_HB_State"]))
    except ValueError as exc:
        raise ProtocolError(f"unknown valve board state {sig['VB_HB_State']}") from exc
    return ValveBoardHeartbeat(
        uptime_s=float(sig["VB_HB_Uptime"]),
        firmware_version=(int(sig["VB_HB_FwMajor"]), int(sig["VB_HB_FwMinor"]),
                          int(sig["VB_HB_FwPatch"])),
        state=state,
    )


def status_signals(status: ValveBoardStatus, counter: int) -> dict[str, float | int]:
    """Physical signal dict of a ``VB_Status`` (checksum 0, to be sealed).

    Parameters
    ----------
    status : ValveBoardStatus
        Values to send; the rail voltage is rounded to 0.01 V and clamped to
        0..40.95 V, the board temperature rounded to 1 degC and clamped to -40..215 degC
        (the DBC field ranges).
    counter : int
        Alive counter; taken modulo 16.

    Returns
    -------
    dict of str to float or int
        Every ``VB_Sts_*`` signal in DBC units, for ``DbcCodec.encode`` then :func:`seal`.
    """
    rail_raw = max(0, min(4095, int(round(status.rail_voltage_v * 100.0))))
    temp = max(-40, min(215, int(round(status.board_temp_c))))
    return {
        "VB_Sts_ValveOpen": status.valve_open_mask & 0xFF,
        "VB_Sts_ValveFault": status.valve_fault_mask & 0xFF,
        "VB_Sts_RailVoltage": rail_raw * 0.01,
        "VB_Sts_CmdTimeout": int(status.cmd_timeout),
        "VB_Sts_RailOff": int(status.rail_off),
        "VB_Sts_OverTemp": int(status.over_temp),
        "VB_Sts_BoardTemp": temp,
        "VB_Sts_Counter": counter % COUNTER_MODULO,
        "VB_Sts_Checksum": 0,
    }


def heartbeat_signals(hb: ValveBoardHeartbeat, counter: int = 0) -> dict[str, float | int]:
    """Physical signal dict of a ``VB_Heartbeat``.

    Parameters
    ----------
    hb : ValveBoardHeartbeat
        Values to send; the uptime is floored to 1 ms and wraps at 2**32 ms; each firmware
        version field must be 0..:data:`FW_FIELD_MAX` (the codec refuses more).
    counter : int, optional
        Alive counter, taken modulo 16.

    Returns
    -------
    dict of str to float or int
        Every ``VB_HB_*`` signal in DBC units (uptime in s), checksum 0: apply
        :func:`seal` to the encoded bytes.
    """
    uptime_ms = int(math.floor(hb.uptime_s * 1000.0 + 1e-6)) % (1 << 32)
    major, minor, patch = hb.firmware_version
    return {
        "VB_HB_Uptime": uptime_ms * 0.001,
        "VB_HB_FwMajor": major,
        "VB_HB_FwMinor": minor,
        "VB_HB_FwPatch": patch,
        "VB_HB_State": int(hb.state),
        "VB_HB_Counter": counter % COUNTER_MODULO,
        "VB_HB_Checksum": 0,
    }


# ---------------------------------------------------------------------------- firmware
# Versions are MAJOR.MINOR.PATCH in full on this board (VB_HB_Fw* signals): full=True.
