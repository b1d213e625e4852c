"""Modbus device profiles: the register map of one device as data, and its codec.

Pure module (ARCHITECTURE.md section 2, rule 1): no I/O, no sleeping, no threads. It is
shared by the host-side drivers (``hal/devices/bms.py``, ``hal/devices/pdu.py``), the
poller (``hal/modbus/poller.py``) and the emulators (``firmware_bridge/emulation/``), so
that both ends of the wire read the same map.

A *profile* (YAML under ``rigs/profiles/``, loaded by
:func:`controller.config.load_profile`) names each *quantity*: table, address,
data type, word order, scale and unit. This module holds the schema (pydantic v2,
``extra="forbid"``, strict) and the register codec.

Wire representation (Modbus Application Protocol Specification V1.1b3, section 4.2):
every register is 16 bits sent high byte first. Wider values span consecutive registers;
their *word order* is a device property::

    u32 / i32 / f32, word_order "big" (high word first, the common case, JK BMS)

        register  A        A+1
                 +--------+--------+
                 | hi 16  | lo 16  |      value = (reg[A] << 16) | reg[A+1]
                 +--------+--------+

    word_order "little" (low word first)

                 +--------+--------+
                 | lo 16  | hi 16  |      value = (reg[A+1] << 16) | reg[A]
                 +--------+--------+

    u8 (one byte of a register)          register A = | byte "hi" | byte "lo" |

``f32`` is IEEE 754 binary32 over the same 32 bits. ``i16``/``i32`` are two's complement.
A ``bitfield`` is an unsigned 16- or 32-bit word whose named bits are reported as a dict
``{name: bool}`` plus the raw word under ``"raw"``.

Addressing: most devices number registers consecutively (``addressing: register``: the
register after ``A`` is ``A+1``). The JK BMS numbers its map in *bytes*
(``addressing: byte``): a field at byte offset ``o`` of the live-data block is read at
address ``0x1200 + o`` and the next 16-bit register is at ``+2``. A read of ``count``
registers at ``A`` then returns ``2*count`` bytes starting at byte ``A``. The codec
handles both through :attr:`DeviceProfile.address_stride`.

Decoded physical value = raw integer (or float) x ``scale``, in ``unit``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from firmware_bridge.errors import ProtocolError

Table = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["u8", "u16", "i16", "u32", "i32", "f32", "bitfield"]
WordOrder = Literal["big", "little"]

REGISTER_TABLES: tuple[str, ...] = ("holding", "input")
BIT_TABLES: tuple[str, ...] = ("coil", "discrete")

#: Largest register read in one request (Modbus spec 6.3/6.4: 125 registers).
MAX_READ_REGISTERS = 125
#: Largest bit read in one request (Modbus spec 6.1/6.2: 2000 bits).
MAX_READ_BITS = 2000
#: Last wire address of any table (16-bit PDU address field, Modbus spec 4.4).
MAX_ADDRESS = 0xFFFF
#: Longest poll period (s): a profile's device is a watched stream, like a DBC message
#: (``controller.config.MAX_WATCHED_PERIOD_S``, 1 s).
MAX_POLL_PERIOD_S = 1.0
#: ``stale_after_polls`` bounds: SAFETY.md D10 "value stale after N polls", with N within
#: the 2..5 periods every watched stream gets (``controller.config``; SAFETY.md B01: 3).
MIN_STALE_AFTER_POLLS = 2
MAX_STALE_AFTER_POLLS = 5
#: Most quantities in one profile, and named bits in one bitfield.
MAX_QUANTITIES = 1000
MAX_BITS = 32

_REGISTERS_PER_TYPE: dict[str, int] = {
    "u8": 1, "u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2,
}

Value = int | float | bool | dict[str, int | bool]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Quantity(_Strict):
    """One named value of a device.

    Attributes
    ----------
    name : str
        Unique name within the profile, with its unit (``pack_voltage_v``).
    table : {"holding", "input", "coil", "discrete"}
        Modbus table (function codes 3/6/16, 4, 1/5, 2).
    address : int
        Wire address of the first register or bit, 0..65535 (PDU addressing, no 4xxxx
        offset).
    data_type : {"u8", "u16", "i16", "u32", "i32", "f32", "bitfield"}
        Register encoding (ignored for bit tables, which are booleans).
    word_order : {"big", "little"}
        Order of 16-bit words in 32-bit types.
    byte : {"hi", "lo"} or None
        Which byte of the register a ``u8`` occupies (required for ``u8`` only).
    width_bits : {16, 32}
        Width of a ``bitfield`` (default 16).
    bits : dict of str to int
        Named bits of a ``bitfield`` (bit index, 0 = least significant).
    scale : float
        Physical value = raw x scale (finite, non-zero).
    unit : str
        Unit of the physical value (``V``, ``A``, ``%``, ``degC``; empty for counts).
    writable : bool
        True if the host may write it (coils, holding registers).
    description : str
        Free text; cite the source (datasheet row) here.
    """

    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    table: Table
    address: int = Field(ge=0, le=MAX_ADDRESS)
    data_type: DataType = "u16"
    word_order: WordOrder = "big"
    byte: Literal["hi", "lo"] | None = None
    width_bits: Literal[16, 32] = 16
    bits: dict[str, int] = Field(default_factory=dict, max_length=MAX_BITS)
    scale: float = 1.0
    unit: str = ""
    writable: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Quantity:
        if not math.isfinite(self.scale) or self.scale == 0.0:
            raise ValueError("scale must be finite and non-zero")
        if self.data_type == "u8" and self.byte is None:
            raise ValueError("data_type u8 needs byte: hi or lo")
        if self.data_type != "u8" and self.byte is not None:
            raise ValueError("byte is only for data_type u8")
        if self.bits and self.data_type != "bitfield":
            raise ValueError("bits are only for data_type bitfield")
        for bit_name, index in self.bits.items():
            if not 0 <= index < self.width_bits:
                raise ValueError(f"bit {bit_name!r} index {index} outside 0..{self.width_bits - 1}")
        if self.writable and self.table in ("input", "discrete"):
            raise ValueError(f"table {self.table} is read-only, cannot be writable")
        if self.writable and self.registers > 1:
            raise ValueError("only single-register quantities are writable (function 6)")
        return self

    @property
    def is_bit(self) -> bool:
        """True for coil and discrete-input quantities."""
        return self.table in BIT_TABLES

    @property
    def registers(self) -> int:
        """Number of 16-bit registers (or bits, for bit tables) the quantity spans."""
        if self.is_bit:
            return 1
        if self.data_type == "bitfield":
            return self.width_bits // 16
        return _REGISTERS_PER_TYPE[self.data_type]


class DeviceProfile(_Strict):
    """The register map of one device model, with its polling policy.

    Attributes
    ----------
    name : str
        Device model name (``jk_bms``).
    description : str
        Free text, with the source document.
    addressing : {"register", "byte"}
        How addresses count: ``register`` (next register = address + 1, standard) or
        ``byte`` (next register = address + 2, JK BMS).
    poll_period_s : float
        Period at which the poller reads every quantity, 0 < period <= 1 s
        (:data:`MAX_POLL_PERIOD_S`).
    poll_deadline_s : float
        Budget for one whole poll of the device (all its reads), 0 < deadline <= period.
    stale_after_polls : int
        The device's data is stale when no complete poll succeeded for this many periods,
        2..5 (SAFETY.md D10, default 3): detection within 5 s at the longest.
    max_gap_registers : int
        Unmapped registers a single read may span to merge two quantities (0 = only
        adjacent quantities share a read). Only for devices whose map is contiguous.
    max_read_registers : int
        Largest register count per read request (<= 125).
    quantities : list of Quantity
        Unique names, at most :data:`MAX_QUANTITIES`; every register (or bit) of a
        quantity lies within 0..65535 (``address`` + span - 1, the span counted in address
        units of the profile's ``addressing``); on register tables no two quantities
        overlap unless both are ``u8`` halves of the same register.
    """

    name: str = Field(min_length=1)
    description: str = ""
    addressing: Literal["register", "byte"] = "register"
    poll_period_s: float = Field(gt=0.0, le=MAX_POLL_PERIOD_S)
    poll_deadline_s: float = Field(gt=0.0, le=60.0)
    stale_after_polls: int = Field(default=3, ge=MIN_STALE_AFTER_POLLS, le=MAX_STALE_AFTER_POLLS)
    max_gap_registers: int = Field(default=0, ge=0, le=MAX_READ_REGISTERS)
    max_read_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    quantities: list[Quantity] = Field(min_length=1, max_length=MAX_QUANTITIES)

    @model_validator(mode="after")
    def _check(self) -> DeviceProfile:
        if not (math.isfinite(self.poll_period_s) and math.isfinite(self.poll_deadline_s)):
            raise ValueError("poll_period_s and poll_deadline_s must be finite")
        if self.poll_deadline_s > self.poll_period_s:
            raise ValueError("poll_deadline_s must not exceed poll_period_s")
        seen: dict[str, int] = {}
        for i, q in enumerate(self.quantities):
            if q.name in seen:
                raise ValueError(f"quantities[{i}].name: duplicate quantity {q.name!r}")
            seen[q.name] = i
            if self.addressing == "byte" and not q.is_bit and q.address % 2:
                raise ValueError(
                    f"quantities[{i}].address: odd address {q.address:#06x} with byte addressing"
                )
        stride = self.address_stride
        for i, q in enumerate(self.quantities):
            last = q.address + (q.registers - 1) * (1 if q.is_bit else stride)
            if last > MAX_ADDRESS:
                raise ValueError(
                    f"quantities[{i}].address: {q.name!r} spans {q.registers} register(s) from "
                    f"{q.address:#06x} to {last:#x}, past the last address {MAX_ADDRESS:#06x}"
                )
        cells: dict[tuple[str, int], tuple[int, str | None]] = {}
        for i, q in enumerate(self.quantities):
            for k in range(q.registers):
                cell = (q.table, q.address + k * (stride if not q.is_bit else 1))
                half = q.byte if q.data_type == "u8" else None
                if cell in cells:
                    j, other_half = cells[cell]
                    if half is None or other_half is None or half == other_half:
                        raise ValueError(
                            f"quantities[{i}].address: {q.name!r} overlaps "
                            f"{self.quantities[j].name!r} at {q.table} {cell[1]:#06x}"
                        )
                cells[cell] = (i, half)
        return self

    @property
    def address_stride(self) -> int:
        """Address units per 16-bit register (1 for ``register``, 2 for ``byte``)."""
        return 2 if self.addressing == "byte" else 1

    def quantity(self, name: str) -> Quantity:
        """Return the quantity called ``name``.

        Raises
        ------
        KeyError
            With the known names, if there is none.
        """
        for q in self.quantities:
            if q.name == name:
                return q
        known = ", ".join(q.name for q in self.quantities)
        raise KeyError(f"{self.name}: no quantity {name!r} (known: {known})")

    @property
    def names(self) -> list[str]:
        """Names of all quantities, in profile order."""
        return [q.name for q in self.quantities]


# --------------------------------------------------------------------------- codec


def _check_words(words: list[int], n: int, what: str) -> None:
    if len(words) != n:
        raise ProtocolError(f"{what}: expected {n} register(s), got {len(words)}")
    for w in words:
        if not isinstance(w, int) or not 0 <= w <= 0xFFFF:
            raise ProtocolError(f"{what}: register value {w!r} outside 0..65535")


def _join32(words: list[int], order: str) -> int:
    hi, lo = (words[0], words[1]) if order == "big" else (words[1], words[0])
    return (hi << 16) | lo


def _split32(raw: int, order: str) -> list[int]:
    hi, lo = (raw >> 16) & 0xFFFF, raw & 0xFFFF
    return [hi, lo] if order == "big" else [lo, hi]


def decode_raw(q: Quantity, words: list[int]) -> int | float:
    """Decode the raw (unscaled) number held in a quantity's registers.

    Parameters
    ----------
    q : Quantity
        A register-table quantity.
    words : list of int
        Exactly ``q.registers`` register values (0..65535), in wire order.

    Returns
    -------
    int or float
        Two's complement applied for signed types; float for ``f32``.

    Raises
    ------
    ProtocolError
        Wrong number of registers, value out of range, or a bit-table quantity.

    Notes
    -----
    Layouts: see the module docstring (Modbus spec V1.1b3 section 4.2; IEEE 754).
    """
    if q.is_bit:
        raise ProtocolError(f"{q.name}: bit quantity has no register encoding")
    _check_words(words, q.registers, q.name)
    dt = q.data_type
    if dt == "u8":
        return (words[0] >> 8) & 0xFF if q.byte == "hi" else words[0] & 0xFF
    if dt == "u16":
        return words[0]
    if dt == "i16":
        return words[0] - 0x10000 if words[0] & 0x8000 else words[0]
    if dt == "bitfield":
        return words[0] if q.width_bits == 16 else _join32(words, q.word_order)
    raw = _join32(words, q.word_order)
    if dt == "u32":
        return raw
    if dt == "i32":
        return raw - 0x1_0000_0000 if raw & 0x8000_0000 else raw
    # f32
    value: float = struct.unpack(">f", raw.to_bytes(4, "big"))[0]
    return value


def decode(q: Quantity, words: list[int] | list[bool]) -> Value:
    """Decode a quantity to its physical value.

    Parameters
    ----------
    q : Quantity
        The quantity.
    words : list of int, or list of bool
        Its ``q.registers`` registers, or one bit for coils/discrete inputs.

    Returns
    -------
    float, bool or dict
        ``raw * scale`` in ``q.unit`` for numbers (always float); ``bool`` for bits; for a
        ``bitfield``, ``{"raw": int, <bit name>: bool, ...}``.

    Raises
    ------
    ProtocolError
        Malformed input (see :func:`decode_raw`).
    """
    if q.is_bit:
        if len(words) != 1:
            raise ProtocolError(f"{q.name}: expected 1 bit, got {len(words)}")
        return bool(words[0])
    raw = decode_raw(q, list(words))
    if q.data_type == "bitfield":
        out: dict[str, int | bool] = {"raw": int(raw)}
        for bit_name, index in q.bits.items():
            out[bit_name] = bool((int(raw) >> index) & 1)
        return out
    return float(raw) * q.scale


def encode(q: Quantity, value: Value, current_word: int = 0) -> list[int] | list[bool]:
    """Encode a physical value into a quantity's registers (inverse of :func:`decode`).

    Parameters
    ----------
    q : Quantity
        The quantity.
    value : float, int, bool or dict
        Physical value in ``q.unit`` (divided by ``q.scale`` and rounded to the nearest
        integer for integer types); for a bitfield an ``int`` raw word or a dict of
        ``{bit name: bool}`` (unnamed bits zero); for bit tables a bool.
    current_word : int, optional
        Present register content, whose other byte a ``u8`` keeps (default 0).

    Returns
    -------
    list of int, or list of bool
        ``q.registers`` register values in wire order, or ``[bool]`` for bit tables.

    Raises
    ------
    ProtocolError
        Value not finite or out of the type's range, or unknown bit name.
    """
    if q.is_bit:
        return [bool(value)]
    dt = q.data_type
    if dt == "bitfield":
        if isinstance(value, dict):
            raw = 0
            for bit_name, on in value.items():
                if bit_name == "raw":
                    continue
                if bit_name not in q.bits:
                    raise ProtocolError(f"{q.name}: unknown bit {bit_name!r}")
                if on:
                    raw |= 1 << q.bits[bit_name]
        else:
            raw = int(value)
        if not 0 <= raw < (1 << q.width_bits):
            raise ProtocolError(f"{q.name}: bitfield {raw} outside {q.width_bits} bits")
        return [raw] if q.width_bits == 16 else _split32(raw, q.word_order)
    x = float(value)  # type: ignore[arg-type]
    if not math.isfinite(x):
        raise ProtocolError(f"{q.name}: value {value!r} is not finite")
    if dt == "f32":
        raw = int.from_bytes(struct.pack(">f", x / q.scale), "big")
        return _split32(raw, q.word_order)
    n = round(x / q.scale)
    lo, hi = {
        "u8": (0, 0xFF), "u16": (0, 0xFFFF), "i16": (-0x8000, 0x7FFF),
        "u32": (0, 0xFFFF_FFFF), "i32": (-0x8000_0000, 0x7FFF_FFFF),
    }[dt]
    if not lo <= n <= hi:
        raise ProtocolError(f"{q.name}: {value!r} {q.unit} -> raw {n} outside {dt} range")
    if dt == "u8":
        cur = int(current_word) & 0xFFFF
        return [(cur & 0x00FF) | (n << 8)] if q.byte == "hi" else [(cur & 0xFF00) | n]
    if dt in ("u16", "i16"):
        return [n & 0xFFFF]
    return _split32(n & 0xFFFF_FFFF, q.word_order)


# --------------------------------------------------------------------------- read plans


@dataclass(frozen=True)
class ReadBlock:
    """One read request covering several quantities of one table.

    Attributes
    ----------
    table : str
        ``holding``, ``input``, ``coil`` or ``discrete``.
    address : int
        Wire address of the first register/bit.
    count : int
        Number of registers/bits to request.
    members : tuple of (Quantity, int)
        Each quantity with its index (in registers/bits) into the reply.
    """

    table: str
    address: int
    count: int
    members: tuple[tuple[Quantity, int], ...] = field(default_factory=tuple)


def plan_reads(profile: DeviceProfile, names: list[str] | None = None) -> list[ReadBlock]:
    """Group quantities into as few read requests as the profile allows.

    Quantities of one table merge into one request while the span stays within
    ``max_read_registers`` (125 registers / 2000 bits, Modbus spec 6.1-6.4) and the hole
    between neighbours is at most ``max_gap_registers``. Bit tables merge only adjacent
    bits.

    Parameters
    ----------
    profile : DeviceProfile
        The device map.
    names : list of str, optional
        Only these quantities (default: all).

    Returns
    -------
    list of ReadBlock
        Ordered by table then address.

    Raises
    ------
    KeyError
        An unknown name.
    """
    qs = [profile.quantity(n) for n in names] if names is not None else list(profile.quantities)
    stride = profile.address_stride
    blocks: list[ReadBlock] = []
    for table in ("coil", "discrete", "holding", "input"):
        items = sorted((q for q in qs if q.table == table), key=lambda q: (q.address, q.name))
        if not items:
            continue
        is_bit = table in BIT_TABLES
        step = 1 if is_bit else stride
        limit = MAX_READ_BITS if is_bit else profile.max_read_registers
        gap = 0 if is_bit else profile.max_gap_registers
        start = items[0].address
        end = start + items[0].registers * step  # exclusive, in address units
        members: list[Quantity] = [items[0]]

        for q in items[1:]:
            q_end = q.address + q.registers * step
            new_end = max(end, q_end)
            hole = (q.address - end) // step
            if hole <= gap and (new_end - start) // step <= limit:
                end = new_end
                members.append(q)
            else:
                blocks.append(_read_block(table, start, end, step, members))
                start, end, members = q.address, q_end, [q]
        blocks.append(_read_block(table, start, end, step, members))
    return blocks


def _read_block(table: str, start: int, end: int, step: int, members: list[Quantity]) -> ReadBlock:
    """One block from ``start`` up to ``end`` (exclusive, address units) of ``step`` per register/bit."""
    return ReadBlock(table, start, (end - start) // step, tuple((m, (m.address - start) // step) for m in members))


def decode_block(block: ReadBlock, reply: list[int] | list[bool]) -> dict[str, Value]:
    """Decode every quantity of a read block from the reply values.

    Parameters
    ----------
    block : ReadBlock
        The request that was sent.
    reply : list of int, or list of bool
        The reply's registers or bits; its length must equal ``block.count`` (a reply of
        another length is never taken as data, SAFETY.md D11).

    Returns
    -------
    dict of str to value
        Physical values by quantity name (see :func:`decode`).

    Raises
    ------
    ProtocolError
        Reply of the wrong length or malformed values.
    """
    if len(reply) != block.count:
        raise ProtocolError(
            f"{block.table} {block.address:#06x}: reply has {len(reply)} values, expected {block.count}"
        )
    out: dict[str, Value] = {}
    for q, index in block.members:
        out[q.name] = decode(q, list(reply[index:index + q.registers]))
    return out


# --------------------------------------------------------------------------- wire model


@dataclass(frozen=True)
class ModbusRequest:
    """One Modbus request as the application sees it (no framing).

    Attributes
    ----------
    unit_id : int
        Addressed unit (1..247; 0 is broadcast and not used by QIKI).
    function : {"read", "write"}
        Read of ``count`` values or write of one value.
    table : str
        ``holding``, ``input``, ``coil`` or ``discrete``.
    address : int
        First address.
    count : int
        Values to read (1 for writes).
    value : int or bool or None
        Value to write (register 0..65535 or coil bool).
    """

    unit_id: int
    function: Literal["read", "write"]
    table: str
    address: int
    count: int = 1
    value: int | bool | None = None


ReplyKind = Literal["values", "exception", "silent", "wrong_unit", "corrupt"]


@dataclass(frozen=True)
class ModbusReply:
    """What an emulated device answers to a :class:`ModbusRequest`.

    Attributes
    ----------
    kind : {"values", "exception", "silent", "wrong_unit", "corrupt"}
        ``values``: a normal reply; ``exception``: a Modbus exception response with
        ``exception_code`` (spec section 7); ``silent``: no reply at all; ``wrong_unit``:
        a reply carrying another unit id; ``corrupt``: a reply damaged on the wire (bad CRC
        on RTU, malformed ADU on TCP).
    values : tuple
        Register values or bits (for ``values``, ``wrong_unit`` and ``corrupt``).
    exception_code : int
        1 illegal function, 2 illegal data address, 3 illegal data value, 4 device
        failure, 6 busy (for ``exception``).
    delay_s : float
        Time the device takes to answer (slow-response fault); a reply later than the
        client's timeout is a timeout.
    """

    kind: ReplyKind = "values"
    values: tuple[int, ...] | tuple[bool, ...] = ()
    exception_code: int = 0
    delay_s: float = 0.0


#: Modbus exception codes (spec section 7).
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4
SERVER_DEVICE_BUSY = 6


@runtime_checkable
class ModbusResponder(Protocol):
    """The device end of a Modbus transaction: an emulated device.

    Served in-process by :class:`hal.modbus.link.MemoryModbusLink` and over the wire by
    :class:`firmware_bridge.emulation.modbus_server.ModbusEmulatorServer`.
    """

    def respond(self, request: ModbusRequest) -> ModbusReply:
        """Answer one request (per transaction; pure with respect to the wire)."""
        ...


# --------------------------------------------------------------------------- RTU framing


def _modbus_crc_table() -> tuple[int, ...]:
    """CRC-16/MODBUS lookup table: the register after shifting each byte value 8 times."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_MODBUS_CRC_TABLE = _modbus_crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS of an RTU frame's bytes (without the CRC field).

    Polynomial 0xA001 (0x8005 reflected), initial value 0xFFFF; the frame carries it low
    byte first. Source: Modbus over Serial Line Specification V1.02, section 6.2.2 (its
    table-driven variant, one lookup per byte).

    Parameters
    ----------
    data : bytes
        Unit id, function code and data of the frame.

    Returns
    -------
    int
        The CRC, 0..0xFFFF (``crc16_modbus(b"123456789") == 0x4B37``).
    """
    table = _MODBUS_CRC_TABLE
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc
