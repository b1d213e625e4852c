"""Snapshot codec: controller-side state as exact JSON, and back (issue 12 part 4).

A snapshot is what a run's controller *knows* at the end of a tick (the FSM, mission
progress, tracker, ingress counters and freshness, PWM carry, allocator warm start,
partial frames in a decoder, ...), never its ports, buses, threads, clocks or sinks.
Every stateful class offers ``snapshot() -> dict`` and ``restore(dict)``; the dicts are
JSON values built with :func:`encode` and read back with :func:`decode`, so a snapshot
written into the flight record restores the very same values:

* floats are exact (JSON keeps a float's shortest repr, which round-trips); NaN and the
  infinities are tagged (``{"$f": "nan"}``), since JSON has no such numbers;
* tuples, sets (members sorted by their encoded JSON, so the text does not depend on the
  process's hash seed), ``Counter``, ``deque``, ``bytes``/``bytearray``, numpy arrays (dtype and
  shape kept) and numpy scalars, enums, dataclass instances and mapping proxies are tagged
  objects (``{"$t": [...]}``, ``{"$nd": ..., "dtype": ..., "shape": ...}``...), dicts
  with non-string keys are ``{"$d": [[key, value], ...]}``;
* a value of any other type raises :class:`SnapshotError` naming its type: a new field
  that cannot be snapshotted fails the round-trip test, not a replay months later.

Dataclasses and enums are rebuilt by their ``module:qualname``, only from QIKI's own
packages and python-can (``can.BusState``): a record cannot make a replay import anything
else. Lives in ``hal`` (the lowest room that holds state) so drivers, ports and the
controller's pure cores can all use it (docs/layers.md).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import logging
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["JsonValue", "SnapshotError", "Snapshottable", "State", "apply", "capture", "capture_all", "part",
           "decode", "encode", "restore_all"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
"""A JSON value (what ``json.loads`` returns)."""

State = dict[str, JsonValue]
"""One object's snapshot: field name -> encoded value."""

_isfinite = math.isfinite

#: Packages whose dataclasses and enums a snapshot may name (and a restore may import).
_TRUSTED = ("controller.", "hal.", "firmware_bridge.", "can.")


class SnapshotError(TypeError):
    """A value that has no snapshot encoding, or a snapshot that does not decode."""


@runtime_checkable
class Snapshottable(Protocol):
    """Anything whose state can be taken and put back (issue 12 part 4)."""

    def snapshot(self) -> State:
        """Return the object's state as JSON values (:func:`encode`)."""
        ...

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a state returned by :meth:`snapshot` (of an object built the same way)."""
        ...


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: object) -> type:
    if not isinstance(name, str) or ":" not in name:
        raise SnapshotError(f"bad class name in snapshot: {name!r}")
    module, qual = name.split(":", 1)
    if not (module + ".").startswith(_TRUSTED):
        raise SnapshotError(f"snapshot names a class outside QIKI: {name}")
    obj: object = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise SnapshotError(f"{name} is not a class")
    return obj


def _float(x: float) -> JsonValue:
    """Return a float as a JSON value: itself when finite, else tagged (``{"$f": "nan"}``).

    :func:`encode` has inline copies for a plain float (its commonest value) and for a
    float array's elements: the call was a large share of a snapshot's cost.
    """
    return x if math.isfinite(x) else {"$f": repr(x)}


def _order_key(encoded: JsonValue) -> str:
    """Sort key of an encoded set member: its canonical JSON text."""
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"))


def encode(v: object) -> JsonValue:
    """Return ``v`` as a JSON value that :func:`decode` turns back into an equal value.

    Raises
    ------
    SnapshotError
        For a value of a type with no encoding (an object that is not plain data: it
        must offer its own ``snapshot()``).

    Notes
    -----
    The plain JSON types, tuples and string-keyed dicts are told by their exact type
    first (most of a snapshot's values; the same encoding as the checks below give
    them), everything else by the ``isinstance`` checks in their order.
    """
    t = type(v)
    if t is float:  # inline copy of _float: the commonest value
        return v if _isfinite(v) else {"$f": repr(v)}  # type: ignore[arg-type, return-value]
    if t is int or t is str or t is bool or v is None:
        return v  # type: ignore[return-value]
    if t is list:
        return [encode(x) for x in v]  # type: ignore[attr-defined]
    if t is dict:
        return _encode_dict(v)  # type: ignore[arg-type]
    if t is tuple:
        return {"$t": [encode(x) for x in v]}  # type: ignore[attr-defined]
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, enum.Enum):  # before int: IntEnum members are ints
        return {"$enum": _name(type(v)), "name": v.name}
    if isinstance(v, int) and type(v) is int:
        return v
    if isinstance(v, float) and type(v) is float:
        return _float(v)
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, tuple) and not hasattr(v, "_fields"):
        return {"$t": [encode(x) for x in v]}
    if isinstance(v, Counter):
        return {"$counter": [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, dict):
        return _encode_dict(v)
    if isinstance(v, MappingProxyType):
        return {"$mp": encode(dict(v))}
    if isinstance(v, (set, frozenset)):
        # members in a fixed order: a set of strings iterates in hash order, which differs
        # between processes (PYTHONHASHSEED), and a replay compares snapshots byte for byte
        members = sorted((encode(x) for x in v), key=_order_key)
        return {"$fset" if isinstance(v, frozenset) else "$set": members}
    if isinstance(v, deque):
        return {"$deque": [encode(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, bytearray):
        return {"$ba": bytes(v).hex()}
    if isinstance(v, bytes):
        return {"$b": v.hex()}
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise SnapshotError(f"numpy array of dtype {v.dtype} has no snapshot encoding")
        items = v.reshape(-1).tolist()
        flat: list[JsonValue] = ([x if _isfinite(x) else {"$f": repr(x)} for x in map(float, items)]  # as _float
                                 if v.dtype.kind == "f" else [int(x) for x in items])
        return {"$nd": flat, "dtype": v.dtype.str, "shape": list(v.shape)}
    if isinstance(v, np.generic):
        kind = v.dtype.kind
        if kind == "b":
            return {"$np": v.dtype.str, "v": bool(v)}
        if kind in "iu":
            return {"$np": v.dtype.str, "v": int(v)}
        if kind == "f":
            return {"$np": v.dtype.str, "v": _float(float(v))}
        raise SnapshotError(f"numpy scalar of dtype {v.dtype} has no snapshot encoding")
    if isinstance(v, tuple):  # a NamedTuple
        return {"$nt": _name(type(v)), "v": [encode(x) for x in v]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        # every attribute, not only the fields: __post_init__ may have derived others
        return {"$dc": _name(type(v)), "f": {n: encode(getattr(v, n)) for n in _all_names(v)}}
    if isinstance(v, float):  # a float subclass
        return _float(float(v))
    if isinstance(v, int):
        return int(v)
    raise SnapshotError(f"a {type(v).__module__}.{type(v).__qualname__} has no snapshot encoding "
                        "(plain data only; an object gives its own snapshot())")


def _encode_dict(v: dict[object, object]) -> JsonValue:
    """Encode a dict: an object when every key is a string not starting with ``$``, else ``{"$d": pairs}``."""
    for k in v:
        if not isinstance(k, str) or k.startswith("$"):
            return {"$d": [[encode(k), encode(x)] for k, x in v.items()]}
    return {k: encode(x) for k, x in v.items()}  # type: ignore[misc]  # every key is a str


def _items(v: JsonValue) -> list[JsonValue]:
    if not isinstance(v, list):
        raise SnapshotError(f"expected a list in snapshot, got {type(v).__name__}")
    return v


def decode(j: JsonValue) -> object:
    """Invert :func:`encode`.

    Raises
    ------
    SnapshotError
        For a malformed snapshot or one that names a class outside QIKI.
    """
    if j is None or isinstance(j, (bool, int, float, str)):
        return j
    if isinstance(j, list):
        return [decode(x) for x in j]
    if not isinstance(j, dict):
        raise SnapshotError(f"not a JSON value: {type(j).__name__}")
    tags = [k for k in j if k.startswith("$")]
    if not tags:
        return {k: decode(x) for k, x in j.items()}
    tag = tags[0]
    body = j[tag]
    if tag == "$f":
        return float(str(body))
    if tag == "$t":
        return tuple(decode(x) for x in _items(body))
    if tag == "$counter":
        return Counter({_key(p[0]): decode(p[1]) for p in _pairs(body)})
    if tag == "$d":
        return {_key(p[0]): decode(p[1]) for p in _pairs(body)}
    if tag == "$mp":
        inner = decode(body)
        assert isinstance(inner, dict)
        return MappingProxyType(inner)
    if tag == "$set":
        return {_key(x) for x in _items(body)}
    if tag == "$fset":
        return frozenset(_key(x) for x in _items(body))
    if tag == "$deque":
        maxlen = j.get("maxlen")
        return deque((decode(x) for x in _items(body)), maxlen=maxlen if isinstance(maxlen, int) else None)
    if tag == "$ba":
        return bytearray.fromhex(str(body))
    if tag == "$b":
        return bytes.fromhex(str(body))
    if tag == "$nd":
        dtype = np.dtype(str(j["dtype"]))
        shape = tuple(int(s) for s in _items(j["shape"]))  # type: ignore[arg-type]
        values = [decode(x) for x in _items(body)]
        return np.array(values, dtype=dtype).reshape(shape)
    if tag == "$np":
        return np.dtype(str(body)).type(decode(j["v"]))
    if tag == "$enum":
        return _class(body)[str(j["name"])]  # type: ignore[index]
    if tag == "$nt":
        return _class(body)(*(decode(x) for x in _items(j["v"])))
    if tag == "$dc":
        cls = _class(body)
        fields = j["f"]
        if not isinstance(fields, dict):
            raise SnapshotError(f"{body}: fields missing")
        obj: object = object.__new__(cls)
        for name, x in fields.items():
            object.__setattr__(obj, name, decode(x))
        return obj
    raise SnapshotError(f"unknown snapshot tag {tag}")


def _pairs(body: JsonValue) -> list[list[JsonValue]]:
    out = []
    for p in _items(body):
        if not isinstance(p, list) or len(p) != 2:
            raise SnapshotError("expected [key, value] pairs in snapshot")
        out.append(p)
    return out


def _key(j: JsonValue) -> object:
    """Decode a dict key or set member: lists become tuples (hashable)."""
    v = decode(j)
    return tuple(v) if isinstance(v, list) else v


def capture(obj: object, names: Iterable[str]) -> State:
    """Return the named attributes of ``obj`` encoded (:func:`encode`)."""
    out: State = {}
    for n in names:
        try:
            out[n] = encode(getattr(obj, n))
        except SnapshotError as exc:
            raise SnapshotError(f"{type(obj).__qualname__}.{n}: {exc}") from None
    return out


def apply(obj: object, state: Mapping[str, JsonValue], names: Iterable[str] | None = None) -> None:
    """Set the attributes of ``obj`` from a :func:`capture` (only ``names`` when given).

    Raises
    ------
    SnapshotError
        When ``names`` is given and the state lacks one of them.
    """
    if names is None:
        for n, j in state.items():
            setattr(obj, n, decode(j))
        return
    for n in names:
        if n not in state:
            raise SnapshotError(f"{type(obj).__qualname__}: snapshot lacks {n!r}")
        setattr(obj, n, decode(state[n]))


def _all_names(obj: object) -> list[str]:
    names = list(vars(obj)) if hasattr(obj, "__dict__") else []
    for cls in type(obj).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in names and not s.startswith("__") and hasattr(obj, s):
                names.append(s)
    return names


def capture_all(obj: object, exclude: Iterable[str] = ()) -> State:
    """Return every instance attribute of a plain-data object, encoded.

    For small state holders of another room that offer no ``snapshot()`` of their own
    (a protocol decoder's partial frame, a cycle assembler): all their fields are state.
    """
    skip = set(exclude)
    return capture(obj, [n for n in _all_names(obj) if n not in skip])


def restore_all(obj: object, state: Mapping[str, JsonValue]) -> None:
    """Put back a :func:`capture_all` into an object of the same class."""
    apply(obj, state)


def part(state: Mapping[str, JsonValue], key: str) -> dict[str, JsonValue]:
    """Return the nested snapshot ``state[key]`` (a collaborator's own snapshot).

    Raises
    ------
    SnapshotError
        When it is missing or not an object.
    """
    v = state.get(key)
    if not isinstance(v, dict):
        raise SnapshotError(f"snapshot lacks the part {key!r}")
    return v
