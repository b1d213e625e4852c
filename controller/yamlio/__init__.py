"""Strict, bounded YAML loading for every QIKI data file, and pydantic errors as one-liners.

Every rig, mission, state machine and device profile is read by :func:`load_yaml`. The
file comes from a user, so it is treated as hostile input (SAFETY.md K01-K04; issue 10,
part 7): whatever it holds, the answer is the document as plain Python data or ONE
:class:`~controller.errors.ConfigError` (``PATH: key.path: what is wrong``, printed by
the CLI as one line with exit status 2), never a hang, a traceback or unbounded memory.

What is refused, and why:

* Anything but a regular file of at most 1 MiB, and bytes that are not UTF-8
  (:func:`hal.fileio.read_regular_text`: a FIFO, device or directory is refused at once,
  without blocking).
* Aliases and anchors (``&a``/``*a``). PyYAML expands an alias into a shared node, so a
  ~400-byte "billion laughs" document stands for 9**9 scalars; no QIKI file needs them.
  Refused the moment the parser reports the first anchor, before anything is composed.
* Nesting deeper than :attr:`YamlLimits.max_depth`, more than
  :attr:`YamlLimits.max_nodes` nodes, a list or mapping with more than
  :attr:`YamlLimits.max_items` entries, numbers longer than
  :attr:`YamlLimits.max_number_chars` characters (CPython refuses int conversions above
  4300 digits, and sexagesimal ``1:2:3:...`` integers cost quadratic time). All are
  checked on the parser's event stream by an iterative builder, before anything
  deeper is read, so no input reaches Python's recursion limit.
* More than one YAML document in a file, explicit tags outside plain data (``!!python/*``,
  ``!!binary``, ``!!set``, local ``!tags``), merge keys ``<<``.
* Duplicate keys (PyYAML silently keeps the last) and keys YAML reads as something other
  than a string (``on``/``off``/``yes``/``no`` become booleans), with the key path:
  ``rigs/x.yaml: states.on: key 'on' is read by YAML as bool, not a name (quote it)``.

The text is parsed once: libyaml's parser (``yaml.CSafeLoader``) when PyYAML was built
with it, else the pure-Python one, feeds its events to
:class:`~controller.yamlio.builder.EventBuilder` (``controller/yamlio/builder.py``),
which checks them and constructs the Python data directly (scalars through PyYAML's own
``SafeConstructor`` functions and resolver, so values mean what ``yaml.safe_load`` makes
of them). PyYAML's composer is never used: it recurses per nesting level and expands
aliases. This module reads the file, turns parser errors and pydantic errors into one
line each (:func:`validate`, :func:`load_model`). The limits and the error format are
described for users in ``docs/config-loading.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from controller.errors import ConfigError
from controller.yamlio.builder import EventBuilder
from hal.fileio import MAX_CONFIG_BYTES, FileRefusedError, read_regular_text

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

M = TypeVar("M", bound=BaseModel)

#: libyaml's own nesting cap (levels, libyaml >= 0.2.5); its scanner reads a flow
#: collection ahead and may meet it before the builder meets ``YamlLimits.max_depth``.
_LIBYAML_MAX_DEPTH = 1000


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML data file; the loader's generic backstop (schemas bound more).

    The defaults are far above any QIKI file (the JK BMS profile, the largest shipped, has
    ~740 nodes and depth 4; the largest mission the schema accepts, 10,000 waypoints, has
    ~90,000 nodes and depth 3) and far below what costs a second to read.

    Attributes
    ----------
    max_file_bytes : int
        Largest file accepted (bytes), default 1 MiB (:data:`hal.fileio.MAX_CONFIG_BYTES`).
    max_depth : int
        Deepest nesting of lists and mappings (levels; the top-level mapping is 1).
    max_nodes : int
        Most nodes (scalars, lists and mappings, keys included) in the document.
    max_items : int
        Most entries in one list, or keys in one mapping.
    max_number_chars : int
        Longest scalar YAML reads as an int or float (characters).
    """

    max_file_bytes: int = MAX_CONFIG_BYTES
    max_depth: int = 64
    max_nodes: int = 100_000
    max_items: int = 10_000
    max_number_chars: int = 100


DEFAULT_LIMITS = YamlLimits()


def _display(name: str) -> str:
    """Show a file name as messages do: as written, or its ``repr`` when unprintable.

    The ``repr`` when it holds a line break, a NUL or another unprintable character (a rig
    may name any string as a profile path; the error must still be one line).
    """
    return name if name.isprintable() else repr(name)


#: The pure-Python parser (the fallback; the tests run every rule through both parsers).
_PURE_LOADER: type[yaml.SafeLoader] = yaml.SafeLoader
#: libyaml's parser when PyYAML was built with it (several times faster), else the fallback.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_error_line(name: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    """One line for a parser, scanner, reader or constructor error (with its line)."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = ord(exc.character) if isinstance(exc.character, str) else exc.character
        shown = f"0x{char:02x}" if isinstance(char, int) else repr(char)
        return ConfigError(name, "", f"not valid YAML: {exc.reason} (character {shown} at position {exc.position})")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
        problem += " (a tab: YAML indents with spaces only)"
    return ConfigError(name, "", f"not valid YAML{where}: {problem}")


def _char_at(text: str, line: int, column: int) -> str:
    """Return the character at 0-based ``line``/``column`` of ``text`` ('' when outside it)."""
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    index = start + column
    return text[index] if index < len(text) else ""


def load_yaml(path: str | Path, display_name: str | None = None, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """Load one YAML document strictly, within bounds (see the module docstring).

    Parameters
    ----------
    path : str or Path
        File to read.
    display_name : str, optional
        Name used in error messages (defaults to ``str(path)``).
    limits : YamlLimits, optional
        Size, depth, node-count, item-count and number-length caps (default
        :data:`DEFAULT_LIMITS`).

    Returns
    -------
    Any
        The document as plain Python data (dict, list, str, int, float, bool, None, and
        ``datetime`` for unquoted timestamps).

    Raises
    ------
    ConfigError
        One line, ``PATH: [key.path: ]reason``: file missing, unreadable, not a regular
        file, above ``limits.max_file_bytes``, not UTF-8 (with the byte offset); not YAML
        (with the line); empty; more than one document; an alias or anchor, a merge key, a
        non-data tag; a limit exceeded (with the line); duplicate or non-string keys (with
        the key path; SAFETY.md K03). Never ``RecursionError``, ``ValueError`` or a
        PyYAML exception.
    """
    name = _display(display_name or str(path))
    try:
        text = read_regular_text(path, limits.max_file_bytes, name)
    except FileRefusedError as exc:
        raise ConfigError(name, "", exc.reason) from None
    stray_bom = text.find("\ufeff", 1)
    if stray_bom >= 0:  # libyaml refuses it, the pure-Python parser makes it part of a name
        line = text.count("\n", 0, stray_bom) + 1
        raise ConfigError(name, "", f"not valid YAML at line {line}: a byte-order mark (U+FEFF) inside the file")
    loader: yaml.SafeLoader | None = None
    try:
        loader = _LOADER(text)
        found, document = EventBuilder(loader, name, limits).build()
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own cap, met first
            mark = getattr(exc, "problem_mark", None)  # when its scanner reads ahead of our builder
            where = f" (line {mark.line + 1})" if mark is not None else ""
            depth = min(limits.max_depth, _LIBYAML_MAX_DEPTH)
            raise ConfigError(name, "", f"nesting deeper than {depth} levels{where}") from None
        raise _yaml_error_line(name, text, exc) from None
    except RecursionError:  # defensive: the builder is iterative and depth is capped
        raise ConfigError(name, "", "nesting too deep to read") from None
    except (ValueError, OverflowError) as exc:  # defensive: constructors' own errors
        raise ConfigError(name, "", f"cannot read the document: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not found:
        raise ConfigError(name, "", "file is empty")
    return document


def format_loc(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into a dotted key path with ``[i]`` indices."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _data_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Keep only the parts of a pydantic location that index the input data.

    Discriminated unions put the tag (``valve_board``) into the location; the user's file
    has no such key, so it is dropped by walking the data along the path.
    """
    out = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and 0 < i < len(loc) - 1:
            continue  # a union tag: never the last part (a missing key is)
        out.append(part)
        if not isinstance(node, (dict, list)):
            node = None
    return tuple(out)


def validate(model: type[M], data: Any, name: str, key_prefix: str = "") -> M:
    """Validate plain data against a pydantic model, turning the first error into one line.

    Raises
    ------
    ConfigError
        With the key path of the first failing field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = format_loc(_data_loc(tuple(err.get("loc", ())), data))
        key = ".".join(p for p in (key_prefix, loc) if p)
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
        elif "input" in err and err.get("type") not in ("missing",):
            shown = repr(err["input"])
            if len(shown) < 40:
                msg = f"{msg} (got {shown})"
        raise ConfigError(name, key, msg) from None


def load_model(model: type[M], path: str | Path, display_name: str | None = None) -> M:
    """Load a YAML file strictly (:func:`load_yaml`) and validate it against ``model``.

    Raises
    ------
    ConfigError
        As :func:`load_yaml`, or the first schema error with its key path (:func:`validate`).
    """
    name = _display(display_name or str(path))
    return validate(model, load_yaml(path, name), name)
