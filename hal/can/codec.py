"""DBC codec: CAN frames <-> physical signal values, over cantools.

One :class:`DbcCodec` holds every message of every DBC file of one bus. It is the only
place frames are built (so python-can's extended-ID default never leaks onto the wire) and
the first decode step of every received frame.

Rules it enforces (SAFETY.md):

* K01 -- every file is loaded with cantools ``strict=True``; a missing, truncated or
  overlapping file is a one-line :class:`~hal.errors.BusConfigError` naming the file.
* K02 -- :meth:`DbcCodec.require` names the message or signal a driver needs and the DBC
  lacks.
* F03 -- :meth:`DbcCodec.decode` returns ``None`` (unknown) for a frame of a known ID whose
  DLC or ID format does not match the DBC.

Third-party databases
---------------------
* Vector CANdb++ exports hold signals that belong to no message in a placeholder message
  ``BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX``; cantools drops it (and its
  signals) on purpose. The truncation check counts the ``BO_``/``SG_`` definitions of the
  text without that placeholder, so such files load.
* A vendor ARS408 database (Continental's ``ARS408_id0.dbc`` .. ``ARS408_id7.dbc``, or any
  database of the same wire layout under other names) is recognised by its arbitration
  IDs and signal layouts (:data:`firmware_bridge.protocols.ars408.WIRE_LAYOUT`): each
  message of the layout found at ``base ID + 0x10 * n`` is renamed to the driver's name
  (``Obj_1_General`` -> ``ARS408_ObjGeneral``) with the signals whose start bit, length,
  byte order, sign, scale and offset match renamed to the driver's signal names
  (``Obj_DistLong`` -> ``dist_long_m``); signals of no known layout are left out, so is
  every other ARS408 message (clusters, collision detection, filters: the driver does not
  use them, and cluster 0x701 would otherwise collide with the valve board's heartbeat);
  the mapped messages take the protocol's cycle times (Continental's file gives RadarState
  50 ms, firmware 4.30 sends it once a second). The sensor ID stays in the IDs:
  :class:`hal.devices.ars408.Ars408Driver` reads it back. What was mapped is in
  :attr:`DbcCodec.vendor_notes`.

Compiled codec (encoding and decoding cost)
-------------------------------------------
cantools stays the parser and the oracle; the hot path does not go through it. At the
codec's load (or, with ``compile_now=False``, at its first encode or decode), every plain
message gets two generated Python functions (:func:`_compile_message`, the source built
from the parsed DBC and ``exec``-ed once per message, shared with the
:meth:`DbcCodec.with_offset` copies):

* ``unpack(data)``: one ``int.from_bytes`` per byte order, then a shift and a mask per
  signal (sign extension by ``(x ^ s) - s``), scale and offset inlined; the raw and
  physical dicts come out in cantools' key order.
* ``pack(signals)``: per signal the same conversion arithmetic as cantools (``round``,
  ``divmod`` for integer scales), the strict range check against precomputed bounds
  (``minimum - |scale| * 1e-6``, ``maximum + |scale| * 1e-6``, skipped for a VAL_ value,
  as cantools does) and the field's raw range, then shifts OR-ed into one integer.
  Anything that is not the plain case (missing or unknown signal, a value that is not a
  plain int or float, NaN, out of range) returns None and :meth:`DbcCodec.encode` runs
  cantools itself, which raises its own error (the same message as before) or encodes it.

Multiplexed and container messages and messages with float signals are not compiled: they
go through cantools (``decode_simple`` / ``encode``); :attr:`DbcCodec.not_compiled` lists
them. ``tests/unit/test_can_codec_compiled.py`` checks both functions bit-exact against
cantools on every message of ``dbc/*.dbc`` with hypothesis-generated values and on the
real ARS408 log.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import can
import cantools
from cantools.database.can import Message as CantoolsMessage

from hal.errors import BusConfigError, HalError, one_line
from hal.fileio import FileRefusedError, read_regular_file

__all__ = ["CanEncodeError", "Decoded", "DbcCodec", "VECTOR_PLACEHOLDER"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Largest DBC accepted (bytes): real vehicle databases run to a few MB.
MAX_DBC_BYTES = 16 << 20

#: Name of the Vector CANdb++ placeholder message for unassigned signals (cantools drops it).
VECTOR_PLACEHOLDER = "VECTOR__INDEPENDENT_SIG_MSG"


class CanEncodeError(HalError, ValueError):
    """A message cannot be encoded (unknown name, missing signal, value out of range)."""


class Decoded:
    """One decoded CAN frame.

    Attributes
    ----------
    name : str
        DBC message name.
    frame_id : int
        Arbitration ID as received (offset included).
    signals : dict[str, float | int]
        Physical values (scale and offset applied, enum values left as numbers, i.e.
        cantools ``decode_choices=False``), in the DBC's units.
    raw : dict[str, int]
        Raw integer field values before scaling (float signals: the unpacked float).
    """

    __slots__ = ("name", "frame_id", "signals", "raw")

    def __init__(self, name: str, frame_id: int, signals: dict[str, Any],
                 raw: dict[str, Any]) -> None:
        self.name = name
        self.frame_id = frame_id
        self.signals = signals
        self.raw = raw

    def __repr__(self) -> str:
        return f"Decoded({self.name!r}, 0x{self.frame_id:X}, {self.signals!r})"


_Pack = Callable[[Mapping[str, Any]], bytes | None]
_Unpack = Callable[[bytes | bytearray], tuple[dict[str, Any], dict[str, Any]]]


class _Compiled:
    """One message's generated functions, made at their first use (private).

    Shared by a codec and its :meth:`DbcCodec.with_offset` copies (the functions do not
    depend on the ID offset); :func:`_compile_message` runs once per message and codec
    family: at load (``compile_now``, the default), else when a frame of the message is
    first encoded or decoded, :meth:`DbcCodec.require` names it or
    :attr:`DbcCodec.not_compiled` is read.
    """

    __slots__ = ("message", "source", "_result")

    def __init__(self, message: CantoolsMessage, source: str) -> None:
        self.message = message
        self.source = source
        self._result: tuple[_Pack | None, _Unpack | None, str | None] | None = None

    @property
    def ready(self) -> bool:
        """True once the functions are generated."""
        return self._result is not None

    def get(self) -> tuple[_Pack | None, _Unpack | None, str | None]:
        """Return ``(pack, unpack, reason)`` of :func:`_compile_message`, generating them once."""
        result = self._result
        if result is None:
            result = self._result = _compile_message(self.message)
            if result[2] is not None:
                logger.debug("%s: message %s not compiled (%s): encoded and decoded by cantools",
                             self.source, self.message.name, result[2])
        return result


class _Entry:
    """Per-message encode/decode plan (private).

    ``pack`` and ``unpack`` are the message's generated functions (see
    :func:`_compile_message`); both None when the message is not compiled (``fallback``
    True, ``reason`` says why). Until the first call they are stand-ins that generate
    the functions (:class:`_Compiled`), put them in place and answer as they would.
    """

    __slots__ = ("message", "name", "length", "is_extended", "frame_id", "pack", "unpack",
                 "_compiled")

    def __init__(self, message: CantoolsMessage, frame_id: int, compiled: _Compiled) -> None:
        self.message = message
        self.name = message.name
        self.length = message.length
        self.is_extended = bool(message.is_extended_frame)
        self.frame_id = frame_id
        self._compiled = compiled
        self.pack: _Pack | None = self._first_pack
        self.unpack: _Unpack | None = self._first_unpack
        if compiled.ready:
            self._resolve()

    def _resolve(self) -> None:
        self.pack, self.unpack, _ = self._compiled.get()

    def _first_pack(self, signals: Mapping[str, Any]) -> bytes | None:
        self._resolve()
        return None if self.pack is None else self.pack(signals)

    def _first_unpack(self, data: bytes | bytearray) -> tuple[dict[str, Any], dict[str, Any]]:
        self._resolve()
        return _cantools_unpack(self.message, data) if self.unpack is None else self.unpack(data)

    @property
    def fallback(self) -> bool:
        """True when the message is encoded and decoded through cantools (not compiled)."""
        return self._compiled.get()[1] is None

    @property
    def reason(self) -> str | None:
        """Why the message is not compiled, or None."""
        return self._compiled.get()[2]


def _cantools_unpack(message: CantoolsMessage, data: bytes | bytearray
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Raw and physical values of a payload of a message that is not compiled (cantools decodes)."""
    raw: dict[str, Any] = message.decode_simple(
        bytes(data), decode_choices=False, scaling=False, allow_excess=False)
    phys: dict[str, Any] = {}
    for sig in message.signals:
        value = raw.get(sig.name)
        if value is None:  # multiplexed signal not present in this frame
            continue
        scale, offset = sig.scale, sig.offset
        phys[sig.name] = value if scale == 1 and offset == 0 else value * scale + offset
    return raw, phys


_BO_LINE = re.compile(r"[ \t]*BO_[ \t]+\S+[ \t]+([A-Za-z0-9_]+)")
_SG_LINE = re.compile(r"[ \t]*SG_[ \t]")
_BO_START = re.compile(r"[ \t]*BO_[ \t]")


def count_definitions(text: str) -> tuple[int, int]:
    """Count the message and signal definitions of a DBC text as cantools parses them.

    ``BO_`` lines and the ``SG_`` lines that follow each are counted, except the Vector
    CANdb++ placeholder message :data:`VECTOR_PLACEHOLDER` and its signals, which
    cantools drops on purpose.

    Parameters
    ----------
    text : str
        The whole DBC file.

    Returns
    -------
    (int, int)
        ``(messages, signals)``.
    """
    n_bo = n_sg = 0
    in_placeholder = False
    for line in text.splitlines():
        if _BO_START.match(line):
            m = _BO_LINE.match(line)
            in_placeholder = m is not None and m.group(1) == VECTOR_PLACEHOLDER
            if not in_placeholder:
                n_bo += 1
        elif _SG_LINE.match(line):
            if not in_placeholder:
                n_sg += 1
    return n_bo, n_sg


def _same(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))


def _layout_matches(sig: Any, layout: Any) -> bool:
    return (sig.byte_order == "big_endian" and not sig.is_signed
            and sig.start == layout.start_bit and sig.length == layout.length_bits
            and not getattr(sig, "is_float", False) and sig.multiplexer_ids is None
            and _same(sig.scale, layout.scale) and _same(sig.offset, layout.offset))


def _map_ars408(messages: list[CantoolsMessage], path: str
                ) -> tuple[list[CantoolsMessage], str | None]:
    """Rename a vendor ARS408 database's messages onto the driver's (see module notes).

    Returns the messages to keep and a one-line note, or the messages unchanged and None
    when the file is not an ARS408 database by layout or already uses the driver's names.
    """
    from firmware_bridge.protocols import ars408 as proto

    names = {m.name for m in messages}
    if any(layout.name in names for layout in proto.WIRE_LAYOUT):
        return messages, None  # the driver's own names: nothing to map
    by_id = {m.frame_id: m for m in messages if not m.is_extended_frame}
    status = proto.WIRE_LAYOUT_BY_NAME[proto.MSG_OBJ_STATUS]
    general = proto.WIRE_LAYOUT_BY_NAME[proto.MSG_OBJ_GENERAL]

    def looks_like(layout: Any, msg: CantoolsMessage | None) -> bool:
        if msg is None or msg.length != layout.dlc:
            return False
        hits = sum(1 for lay in layout.signals for sig in msg.signals if _layout_matches(sig, lay))
        return hits * 2 >= len(layout.signals)

    sensors = [n for n in range(proto.MAX_SENSOR_ID + 1)
               if looks_like(status, by_id.get(status.base_id + proto.SENSOR_ID_STEP * n))
               and looks_like(general, by_id.get(general.base_id + proto.SENSOR_ID_STEP * n))]
    if len(sensors) != 1:
        if len(sensors) > 1:
            logger.warning("%s: ARS408 object lists of several sensor IDs %s: names left as they are",
                           path, sensors)
        return messages, None
    n = sensors[0]
    step = proto.SENSOR_ID_STEP * n
    mapped: dict[int, CantoolsMessage] = {}
    renamed = []
    for layout in proto.WIRE_LAYOUT:
        vm = by_id.get(layout.base_id + step)
        if vm is None or vm.length != layout.dlc or not looks_like(layout, vm):
            continue
        sigs = []
        for lay in layout.signals:
            for sig in vm.signals:
                if _layout_matches(sig, lay):
                    new = copy.copy(sig)
                    new.name = lay.name
                    sigs.append(new)
                    break
        mapped[vm.frame_id] = CantoolsMessage(
            frame_id=vm.frame_id, name=layout.name, length=vm.length, signals=sigs,
            comment=vm.comment, senders=list(vm.senders or []), cycle_time=layout.cycle_time_ms,
            is_extended_frame=False, strict=True)
        renamed.append(f"{vm.name}->{layout.name}")
    family = {b + step for b in proto.FAMILY_BASE_IDS}
    kept: list[CantoolsMessage] = []
    left_out = []
    for m in messages:
        if m.frame_id in mapped and not m.is_extended_frame:
            kept.append(mapped[m.frame_id])
        elif m.frame_id in family and not m.is_extended_frame:
            left_out.append(f"0x{m.frame_id:03X} {m.name}")
        else:
            kept.append(m)
    note = (f"{path}: vendor ARS408 database for sensor ID {n}: {len(mapped)} messages mapped "
            f"onto the driver's names by layout ({', '.join(renamed)})"
            + (f"; {len(left_out)} ARS408 messages the driver does not use left out "
               f"({', '.join(left_out)})" if left_out else ""))
    logger.info("%s", note)
    return kept, note


# ---------------------------------------------------------------------- compiled codec
#: Why a message is not compiled (it is then encoded and decoded through cantools).
_NOT_COMPILED_MUX = "multiplexed"
_NOT_COMPILED_CONTAINER = "container"
_NOT_COMPILED_FLOAT = "float signal"
_NOT_COMPILED_CONVERSION = "unknown conversion"
_NOT_COMPILED_LENGTH = "signal beyond the frame"


def _conversion_kind(conv: Any) -> str | None:
    """Return ``'identity'``, ``'int'`` or ``'linear'`` for a cantools conversion, else None."""
    from cantools.database import conversion as cconv

    inner = conv._conversion if type(conv) is cconv.NamedSignalConversion else conv
    kind = type(inner)
    if kind is cconv.IdentityConversion:
        return "identity"
    if kind is cconv.LinearIntegerConversion:
        return "int"
    if kind is cconv.LinearConversion:
        return "linear"
    return None


def _network_start(sig: Any) -> int:
    """Return cantools' ``start_bit`` (Motorola MSB, network bit order) of a big-endian signal."""
    start = int(sig.start)
    return 8 * (start // 8) + (7 - (start % 8))


def _compile_message(message: CantoolsMessage
                     ) -> tuple[Callable[[Mapping[str, Any]], bytes | None] | None,
                                Callable[[bytes | bytearray], tuple[dict[str, Any], dict[str, Any]]] | None,
                                str | None]:
    """Generate the pack and unpack functions of one message (see :class:`DbcCodec` notes).

    Parameters
    ----------
    message : cantools Message
        A message parsed with ``strict=True``.

    Returns
    -------
    (pack, unpack, reason)
        ``pack(signals)`` returns the payload bytes, or None whenever the frame is not the
        plain case (a missing or unknown signal, a value that is not a plain int or float,
        out of the DBC range or of the field's raw range, NaN): the caller then encodes
        through cantools, which raises its own error or encodes the odd case itself.
        ``unpack(data)`` takes a payload of exactly the DBC length and returns
        ``(raw, physical)`` dicts in cantools' key order. Both are None, with the reason,
        when the message is multiplexed, a container, or holds a float or an unknown
        conversion.
    """
    codecs = getattr(message, "_codecs", None)
    if message.is_container:
        return None, None, _NOT_COMPILED_CONTAINER
    if codecs is None or codecs.get("multiplexers") or any(
            s.multiplexer_ids is not None or s.is_multiplexer for s in message.signals):
        return None, None, _NOT_COMPILED_MUX
    n_bytes = message.length
    n_bits = 8 * n_bytes
    ns: dict[str, Any] = {"_from": int.from_bytes}
    pack_lines = ["def pack(signals):",
                  f"    if len(signals) != {len(message.signals)}:",
                  "        return None",
                  "    try:"]
    big_terms: list[str] = []
    little_terms: list[str] = []
    unpack_raw: dict[str, str] = {}
    for i, sig in enumerate(message.signals):
        conv = sig.conversion
        if conv.is_float or getattr(sig, "is_float", False):
            return None, None, _NOT_COMPILED_FLOAT
        kind = _conversion_kind(conv)
        if kind is None:
            return None, None, _NOT_COMPILED_CONVERSION
        length = sig.length
        mask = (1 << length) - 1
        if sig.byte_order == "big_endian":
            shift = n_bits - _network_start(sig) - length
            word = "b"
        else:
            shift = sig.start
            word = "l"
        if shift < 0 or shift + length > n_bits:
            return None, None, _NOT_COMPILED_LENGTH
        if sig.is_signed:
            rmin, rmax = -(1 << (length - 1)), (1 << (length - 1)) - 1
        else:
            rmin, rmax = 0, mask
        ns[f"N{i}"] = sig.name
        ns[f"SC{i}"] = conv.scale
        ns[f"OF{i}"] = conv.offset
        # -- pack: the same arithmetic, in the same order, as cantools' conversion and
        # range check (Message._assert_signal_values_valid, numeric_scaled_to_raw)
        p = pack_lines.append
        p(f"        v = signals[N{i}]")
        p("        t = type(v)")
        p("        if t is not int and t is not float or v != v:")
        p("            return None")
        if kind == "identity":
            p("        r = round(v)")
        elif kind == "int":
            p(f"        d = v - OF{i}")
            p(f"        q, m = divmod(d, SC{i})")
            p(f"        r = round(q) if m == 0 else round(d / SC{i})")
        else:
            p(f"        r = round((v - OF{i}) / SC{i})")
        checks = []
        if sig.minimum is not None:
            ns[f"LO{i}"] = sig.minimum - abs(conv.scale) * 1e-6
            checks.append(f"v < LO{i}")
        if sig.maximum is not None:
            ns[f"HI{i}"] = sig.maximum + abs(conv.scale) * 1e-6
            checks.append(f"v > HI{i}")
        if checks:
            cond = " or ".join(checks)
            if conv.choices:
                ns[f"CH{i}"] = frozenset(conv.choices)
                cond = f"r not in CH{i} and ({cond})"
            p(f"        if {cond}:")
            p("            return None")
        p(f"        if r < {rmin} or r > {rmax}:")
        p("            return None")
        term = f"(r & {mask}) << {shift}" if sig.is_signed else f"r << {shift}"
        p(f"        w{word}{i} = {term}")
        (big_terms if word == "b" else little_terms).append(f"w{word}{i}")
        # -- unpack
        expr = f"({word} >> {shift}) & {mask}" if shift else f"{word} & {mask}"
        if sig.is_signed:
            sign = 1 << (length - 1)
            expr = f"(({expr}) ^ {sign}) - {sign}"
        unpack_raw[sig.name] = expr
    pack_lines += ["    except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError):",
                   "        return None"]
    big = " | ".join(big_terms) or "0"
    if little_terms:
        little = " | ".join(little_terms)
        pack_lines.append(f"    return (({big}) | _from(({little}).to_bytes({n_bytes}, 'little'),"
                          f" 'big')).to_bytes({n_bytes}, 'big')")
    else:
        pack_lines.append(f"    return ({big}).to_bytes({n_bytes}, 'big')")
    # raw keys in cantools' order: big-endian signals by network start bit, then the
    # little-endian ones as its little format lists them (reverse definition order)
    be = sorted((s for s in message.signals if s.byte_order == "big_endian"), key=_network_start)
    le = [s for s in message.signals[::-1] if s.byte_order != "big_endian"]
    index = {s.name: i for i, s in enumerate(message.signals)}
    unpack_lines = ["def unpack(data):"]
    if any(s.byte_order == "big_endian" for s in message.signals):
        unpack_lines.append("    b = _from(data, 'big')")
    if le:
        unpack_lines.append("    l = _from(data, 'little')")
    for s in be + le:
        unpack_lines.append(f"    r{index[s.name]} = {unpack_raw[s.name]}")
    raw_items = ", ".join(f"N{index[s.name]}: r{index[s.name]}" for s in be + le)
    phys_items = []
    for i, sig in enumerate(message.signals):
        if sig.scale == 1 and sig.offset == 0:
            phys_items.append(f"N{i}: r{i}")  # DbcCodec's identity rule (no scaling)
        else:
            ns[f"S{i}"] = sig.scale
            ns[f"O{i}"] = sig.offset
            phys_items.append(f"N{i}: r{i} * S{i} + O{i}")
    unpack_lines.append(f"    return {{{raw_items}}}, {{{', '.join(phys_items)}}}")
    source = "\n".join(pack_lines) + "\n\n" + "\n".join(unpack_lines) + "\n"
    code = compile(source, f"<dbc codec {message.name}>", "exec")
    exec(code, ns)  # noqa: S102 -- source generated above from the parsed DBC only
    return ns["pack"], ns["unpack"], None


class DbcCodec:
    """Every message of one CAN bus, from one or more DBC files.

    Parameters
    ----------
    dbc_paths : sequence of str or Path
        DBC files, each loaded with cantools ``strict=True`` (SAFETY.md K01). Relative
        paths are used as given (resolve them with ``controller.paths.resolve_data_path``
        first if they come from a config file).
    id_offset : int, optional
        Added to every DBC arbitration ID on encode and expected on decode (default 0).
        A device family with a node ID (valve board node n: offset n - 1) gets its own
        codec through :meth:`with_offset`.
    compile_now : bool, optional
        Generate every message's pack and unpack functions at load (default True: no
        first-use cost in a tick). False generates a message's functions at its first
        encode or decode, or when :meth:`require` names it: for a codec built only to
        check or list a DBC (``controller/rig/check_can.py``'s per-file codecs).

    Raises
    ------
    BusConfigError
        One line ``<file>: <what is wrong>`` when a file is missing, unreadable, not a
        valid DBC, has overlapping signals or signals beyond the DLC, holds no message, or
        two files define the same arbitration ID.

    Notes
    -----
    Source of the rules: Vector "DBC File Format Documentation" 1.0.5 (``BO_``, ``SG_``,
    ``BA_ "GenMsgCycleTime"``); cantools' strict mode implements the overlap and length
    checks.
    """

    def __init__(self, dbc_paths: Sequence[str | Path], *, id_offset: int = 0,
                 compile_now: bool = True) -> None:
        if isinstance(dbc_paths, (str, Path)):
            dbc_paths = [dbc_paths]
        self._paths = tuple(str(p) for p in dbc_paths)
        self._id_offset = int(id_offset)
        self._by_name: dict[str, CantoolsMessage] = {}
        self._source: dict[str, str] = {}
        notes: list[str] = []
        base_ids: dict[tuple[int, bool], str] = {}
        for path in self._paths:
            db = self._load(path)
            messages, note = _map_ars408(list(db.messages), path)
            if note:
                notes.append(note)
            for msg in messages:
                key = (msg.frame_id, bool(msg.is_extended_frame))
                if key in base_ids:
                    raise BusConfigError(
                        f"{path}: message {msg.name} reuses arbitration ID 0x{msg.frame_id:X}"
                        f" of {base_ids[key]} ({self._source[base_ids[key]]})")
                if msg.name in self._by_name:
                    raise BusConfigError(
                        f"{path}: message name {msg.name} already defined in "
                        f"{self._source[msg.name]}")
                base_ids[key] = msg.name
                self._by_name[msg.name] = msg
                self._source[msg.name] = path
        self.vendor_notes: tuple[str, ...] = tuple(notes)
        self._compiled = {name: _Compiled(msg, self._source[name]) for name, msg in self._by_name.items()}
        if compile_now:  # a real-time tick must not pay for a message's first use
            for compiled in self._compiled.values():
                compiled.get()
        self._build_index()

    @staticmethod
    def _load(path: str) -> cantools.database.can.Database:
        p = Path(path)
        try:
            # a regular file of sane size, checked without blocking (a FIFO or /dev/zero
            # named as a DBC is refused at once, ISSUE 10 part 7)
            raw = read_regular_file(p, MAX_DBC_BYTES, str(path))
        except FileRefusedError as exc:
            raise BusConfigError(f"{path}: DBC {exc.reason}") from exc
        try:
            # parse the bytes already read (cantools' own default encoding for DBC files),
            # never the path again: the file was checked as a bounded regular file above
            db = cantools.database.load_string(raw.decode("cp1252"), database_format="dbc", strict=True)
        except Exception as exc:  # cantools raises many types; translated once, here.
            detail = one_line(exc)
            raise BusConfigError(f"{path}: invalid DBC: {detail}") from exc
        if not isinstance(db, cantools.database.can.Database):
            raise BusConfigError(f"{path}: not a CAN database")
        if not db.messages:
            raise BusConfigError(f"{path}: DBC defines no message (empty or truncated file)")
        for m in db.messages:
            # ISO 11898-1: a classic CAN frame carries at most 8 data bytes, CAN FD 64
            limit = 64 if m.is_fd else 8
            if not 0 <= m.length <= limit:
                raise BusConfigError(
                    f"{path}: message {m.name} (0x{m.frame_id:X}): length {m.length} bytes is outside "
                    f"0..{limit} ({'CAN FD' if m.is_fd else 'classic CAN'})")
        # cantools' parser silently drops an incomplete trailing statement (a DBC cut
        # inside an SG_ line loads with the signal missing): count the definitions in
        # the text and compare with what was parsed (without Vector's placeholder
        # message, which cantools drops on purpose).
        text = raw.decode("utf-8", errors="replace")
        n_bo, n_sg = count_definitions(text)
        parsed_bo = len(db.messages)
        parsed_sg = sum(len(m.signals) for m in db.messages)
        if (n_bo, n_sg) != (parsed_bo, parsed_sg):
            raise BusConfigError(
                f"{path}: truncated or malformed DBC: {n_bo} BO_ / {n_sg} SG_ definitions "
                f"in the text, {parsed_bo} / {parsed_sg} parsed")
        return db

    def _build_index(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._named: dict[str, _Entry] = {}
        for name, msg in self._by_name.items():
            entry = _Entry(msg, msg.frame_id + self._id_offset, self._compiled[name])
            self._entries[entry.frame_id] = entry
            self._named[name] = entry

    # ------------------------------------------------------------------ properties
    @property
    def id_offset(self) -> int:
        """Offset added to every DBC arbitration ID (int)."""
        return self._id_offset

    @property
    def dbc_paths(self) -> tuple[str, ...]:
        """The DBC files this codec was loaded from, as given."""
        return self._paths

    @property
    def not_compiled(self) -> dict[str, str]:
        """Messages encoded and decoded through cantools, with the reason (name -> reason).

        Multiplexed and container messages and messages with a float signal are not
        compiled; every other message uses its generated pack/unpack functions.
        """
        out = {}
        for name, compiled in self._compiled.items():
            reason = compiled.get()[2]
            if reason is not None:
                out[name] = reason
        return out

    @property
    def message_names(self) -> tuple[str, ...]:
        """Every message name, in load order."""
        return tuple(self._by_name)

    def with_offset(self, id_offset: int) -> DbcCodec:
        """Return a codec over the same parsed DBCs with another ID offset.

        Parameters
        ----------
        id_offset : int
            Offset added to every DBC arbitration ID.

        Returns
        -------
        DbcCodec
            Shares the cantools messages (no file is read again).
        """
        other = object.__new__(DbcCodec)
        other._paths = self._paths
        other._id_offset = int(id_offset)
        other._by_name = self._by_name
        other._source = self._source
        other._compiled = self._compiled
        other.vendor_notes = self.vendor_notes
        other._build_index()
        return other

    # ------------------------------------------------------------------ lookups
    def message(self, name: str) -> CantoolsMessage:
        """Return the cantools message called ``name``.

        Raises
        ------
        BusConfigError
            If no loaded DBC defines it (one line naming the files).
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise BusConfigError(
                f"{', '.join(self._paths)}: no message {name!r}") from None

    def frame_id(self, name: str) -> int:
        """Return the arbitration ID of message ``name`` on the wire (offset included)."""
        return self.message(name).frame_id + self._id_offset

    def cycle_time_s(self, name: str) -> float | None:
        """Return the message's ``GenMsgCycleTime`` in seconds, or None when absent/0."""
        ms = self.message(name).cycle_time
        if not ms:
            return None
        return ms / 1000.0

    def require(self, spec: Mapping[str, Iterable[str]]) -> None:
        """Check that the DBCs define every message and signal a driver needs (K02).

        Parameters
        ----------
        spec : mapping of str to iterable of str
            Message name -> signal names.

        Raises
        ------
        BusConfigError
            One line naming the first missing message or signal and the DBC files.

        Notes
        -----
        Also generates the named messages' pack and unpack functions (:class:`_Compiled`),
        so a driver's first tick does not pay for them (real time).
        """
        files = ", ".join(self._paths)
        for msg_name, signal_names in spec.items():
            msg = self._by_name.get(msg_name)
            if msg is None:
                raise BusConfigError(f"{files}: required message {msg_name!r} is missing")
            have = {s.name for s in msg.signals}
            for sig in signal_names:
                if sig not in have:
                    raise BusConfigError(
                        f"{self._source[msg_name]}: message {msg_name!r} lacks required "
                        f"signal {sig!r}")
            # a driver's messages are generated now, at set-up, not in its first tick
            self._compiled[msg_name].get()

    # ------------------------------------------------------------------ encode
    def encode(self, message_name: str, signals: Mapping[str, float | int | str]
               ) -> can.Message:
        """Build a CAN frame from physical signal values.

        Parameters
        ----------
        message_name : str
            DBC message name.
        signals : mapping of str to float, int or str
            Every signal of the message in physical units (str: a VAL_ choice name).
            Counters and checksums are ordinary signals here.

        Returns
        -------
        can.Message
            ``arbitration_id`` = DBC ID + ``id_offset``, ``is_extended_id`` and ``dlc``
            from the DBC, classic CAN.

        Raises
        ------
        CanEncodeError
            Unknown message, missing or unknown signal, value outside the DBC range.
        """
        entry = self._named.get(message_name)
        if entry is None:
            raise CanEncodeError(f"unknown message {message_name!r}")
        pack = entry.pack
        data = pack(signals) if pack is not None else None
        if data is None:  # not compiled, or not the plain case: cantools encodes or raises
            try:
                data = entry.message.encode(dict(signals), scaling=True, padding=False,
                                            strict=True)
            except Exception as exc:  # cantools EncodeError / KeyError / ValueError
                raise CanEncodeError(f"{message_name}: {one_line(exc)}") from exc
        return can.Message(arbitration_id=entry.frame_id, is_extended_id=entry.is_extended,
                           is_fd=False, dlc=entry.length, data=data)

    def encode_cantools(self, message_name: str, signals: Mapping[str, float | int | str]
                        ) -> bytes:
        """Encode a payload through cantools only (the oracle of the compiled codec).

        Parameters
        ----------
        message_name : str
            DBC message name.
        signals : mapping of str to float, int or str
            Every signal of the message in physical units.

        Returns
        -------
        bytes
            The payload cantools ``Message.encode(..., strict=True)`` builds.

        Raises
        ------
        CanEncodeError
            As :meth:`encode`.
        """
        msg = self._by_name.get(message_name)
        if msg is None:
            raise CanEncodeError(f"unknown message {message_name!r}")
        try:
            return bytes(msg.encode(dict(signals), scaling=True, padding=False, strict=True))
        except Exception as exc:  # cantools EncodeError / KeyError / ValueError
            raise CanEncodeError(f"{message_name}: {one_line(exc)}") from exc

    # ------------------------------------------------------------------ decode
    def decode(self, msg: can.Message) -> Decoded | None:
        """Decode a received frame into physical values. Per-tick (called per frame).

        Parameters
        ----------
        msg : can.Message
            A received frame.

        Returns
        -------
        Decoded or None
            None when the ID is not in the DBCs, the ID format (standard/extended) or
            the DLC differs from the DBC (F03), or the frame is an error/remote frame
            (F04).
        """
        entry = self._entries.get(msg.arbitration_id)
        if entry is None or msg.is_error_frame or msg.is_remote_frame:
            return None
        if msg.is_extended_id != entry.is_extended:
            return None
        return self.decode_entry(entry, msg.data, msg.arbitration_id)

    def lookup(self, arbitration_id: int) -> _Entry | None:
        """Return the private decode plan of ``arbitration_id`` (for ingress checks)."""
        return self._entries.get(arbitration_id)

    @staticmethod
    def decode_entry(entry: _Entry, data: bytes | bytearray, frame_id: int
                     ) -> Decoded | None:
        """Decode ``data`` with a plan from :meth:`lookup`. Per-frame.

        Parameters
        ----------
        entry : _Entry
            Decode plan of the frame's arbitration ID (from :meth:`lookup`).
        data : bytes-like
            Frame payload.
        frame_id : int
            Arbitration ID as received, stored in the result.

        Returns
        -------
        Decoded or None
            Physical values (DBC units) and raw fields; None if ``len(data)`` differs
            from the DBC length (F03). ID format, error and remote frames are not
            checked here (:meth:`decode` and the ingress checker do).
        """
        if len(data) != entry.length:
            return None
        unpack = entry.unpack
        if unpack is not None:
            fields, values = unpack(data)
        else:
            fields, values = _cantools_unpack(entry.message, data)
        return Decoded(entry.name, frame_id, values, fields)
