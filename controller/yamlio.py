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
with it, else the pure-Python one, feeds its events to :class:`_Builder`, which checks
them and constructs the Python data directly (scalars through PyYAML's own
``SafeConstructor`` functions and resolver, so values mean what ``yaml.safe_load`` makes
of them). PyYAML's composer is never used: it recurses per nesting level and expands
aliases. The limits and the error format are described for users in
``docs/config-loading.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from controller.errors import ConfigError
from hal.fileio import MAX_CONFIG_BYTES, FileRefusedError, read_regular_text

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

M = TypeVar("M", bound=BaseModel)

_YAML = "tag:yaml.org,2002:"
_STR_TAG = _YAML + "str"
_INT_TAG = _YAML + "int"
_FLOAT_TAG = _YAML + "float"
_MERGE_TAG = _YAML + "merge"
#: libyaml's own nesting cap (levels, libyaml >= 0.2.5); its scanner reads a flow
#: collection ahead and may meet it before the builder meets ``YamlLimits.max_depth``.
_LIBYAML_MAX_DEPTH = 1000
#: Longest key or value text quoted in a message (characters).
_SHOWN_CHARS = 60


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


def _short(text: str) -> str:
    """``repr`` of ``text``, cut to :data:`_SHOWN_CHARS` characters (for messages)."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[: _SHOWN_CHARS - 3]) + "..."
    return repr(text)


def _key_name(key: str) -> str:
    """Show a key as in a key path: itself when short and printable, else :func:`_short`."""
    if len(key) <= _SHOWN_CHARS and key.isprintable() and key.strip() == key and key:
        return key
    return _short(key)


def _display(name: str) -> str:
    """Show a file name as messages do: as written, or its ``repr`` when unprintable.

    The ``repr`` when it holds a line break, a NUL or another unprintable character (a rig
    may name any string as a profile path; the error must still be one line).
    """
    return name if name.isprintable() else repr(name)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = _key_name(key)
    return f"{path}.{name}" if path else name


def _tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:binary`` -> ``!!binary``; other tags as written, cut short."""
    shown = "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


#: The pure-Python parser (the fallback; the tests run every rule through both parsers).
_PURE_LOADER: type[yaml.SafeLoader] = yaml.SafeLoader
#: libyaml's parser when PyYAML was built with it (several times faster), else the fallback.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Plain data only: the tags a scalar, a list or a mapping may carry (implicitly or
#: explicitly: ``!!str 0x12`` is fine). ``!!binary``, ``!!set``, ``!!omap``, ``!!python/*``
#: and local ``!tags`` are not data QIKI reads.
_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_SEQ_TAG = _YAML + "seq"
_MAP_TAG = _YAML + "map"

Data = Any  # a YAML document as plain Python data: dict, list, str, int, float, bool, None


@dataclass
class _Open:
    """A list or mapping being built: its data, its key in the parent and the keys seen."""

    data: dict[str, Data] | list[Data]
    key: str | int | None  # its key (mapping) or index (list) in its parent; None at the top
    seen: dict[str, int] = field(default_factory=dict)  # key -> line (mappings)
    pending_key: str | None = None  # a mapping's key waiting for its value


class _Builder:
    """Builds the document from the parser's events in one iterative pass, checking every rule.

    PyYAML's composer recurses once per nesting level and expands aliases into shared
    nodes that a checker then walks again and again; this builder keeps an explicit stack,
    refuses anchors and aliases at first sight, counts as it goes and constructs the
    Python data directly (scalars through PyYAML's own ``SafeConstructor`` functions), so
    the cost of any refusal is bounded by :class:`YamlLimits`, never by the input.
    """

    def __init__(self, loader: yaml.SafeLoader, name: str, limits: YamlLimits) -> None:
        self.loader = loader
        self.name = name
        self.limits = limits
        self.stack: list[_Open] = []
        self.n_nodes = 0

    # ------------------------------------------------------------------ messages
    def _path(self, child: bool = True) -> str:
        """Key path of the open containers (and of the next node added, with ``child``)."""
        path = ""
        for entry in self.stack:
            if entry.key is not None:
                path = _child(path, entry.key)
        if child and self.stack:
            top = self.stack[-1]
            if isinstance(top.data, list):
                path = _child(path, len(top.data))
            elif top.pending_key is not None:
                path = _child(path, top.pending_key)
        return path

    def _refuse(self, message: str, path: str | None = None) -> ConfigError:
        return ConfigError(self.name, self._path() if path is None else path, message)

    # ------------------------------------------------------------------ the stream
    def build(self) -> tuple[bool, Data]:
        """Return ``(True, document)``, or ``(False, None)`` for a file holding no document.

        Raises
        ------
        ConfigError
            Any rule of the module docstring broken (PyYAML's own errors pass through).
        """
        loader = self.loader
        loader.get_event()  # StreamStartEvent
        if loader.check_event(StreamEndEvent):
            return False, None
        loader.get_event()  # DocumentStartEvent
        if loader.check_event(ScalarEvent):  # a document of one scalar: "---" alone is empty
            event = loader.peek_event()
            if event.value == "" and event.implicit[0] and event.tag is None and event.anchor is None:
                return False, None  # plain and empty: '' (quoted) is a document, an empty string
        document = self._build_document()
        loader.get_event()  # DocumentEndEvent
        if loader.check_event(DocumentStartEvent):
            second = loader.peek_event()
            raise self._refuse(
                f"more than one YAML document (the second starts at line {second.start_mark.line + 1})", "")
        return True, document

    def _build_document(self) -> Data:
        loader, limits, stack = self.loader, self.limits, self.stack
        while True:
            event: Event = loader.get_event()
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                value: Data = stack.pop().data
            elif isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
                raise self._refuse(f"YAML aliases/anchors are not allowed (line {line})")
            elif isinstance(event, ScalarEvent):
                self._count(line)
                value = self._scalar(event, line)
            elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                self._count(line)
                top = stack[-1] if stack else None
                if top is not None and isinstance(top.data, dict) and top.pending_key is None:
                    raise self._refuse(f"mapping key at line {line} is not a plain name", self._path(child=False))
                if len(stack) >= limits.max_depth:
                    raise self._refuse(f"nesting deeper than {limits.max_depth} levels (line {line})", "")
                is_seq = isinstance(event, SequenceStartEvent)
                self._check_tag(event, line, _SEQ_TAG if is_seq else _MAP_TAG)
                key: str | int | None = None
                if top is not None:
                    key = len(top.data) if isinstance(top.data, list) else top.pending_key
                stack.append(_Open([] if is_seq else {}, key))
                continue
            else:  # pragma: no cover - the parser emits only node events inside a document
                raise self._refuse(f"not valid YAML at line {line}: unexpected {type(event).__name__}")
            if not stack:
                return value
            self._add(stack[-1], value, line)

    def _count(self, line: int) -> None:
        self.n_nodes += 1
        if self.n_nodes > self.limits.max_nodes:
            raise self._refuse(f"more than {self.limits.max_nodes} YAML nodes (line {line}): "
                               "far larger than any QIKI file", "")

    def _check_tag(self, event: SequenceStartEvent | MappingStartEvent, line: int, expected: str) -> None:
        tag = event.tag
        if tag is not None and tag != "!" and tag != expected:
            raise self._refuse(f"YAML tag {_tag_name(tag or '')!r} is not allowed (line {line}): plain data only")

    def _scalar(self, event: ScalarEvent, line: int) -> Data:
        """Resolve and construct one scalar (PyYAML's safe rules) within the limits."""
        loader, limits = self.loader, self.limits
        tag = event.tag
        explicit = tag is not None and tag != "!"
        if not explicit:
            tag = loader.resolve(ScalarNode, event.value, event.implicit)
        if tag == _MERGE_TAG:
            path = self._path(child=False) if self._at_key() else None
            raise self._refuse(f"YAML merge keys ('<<') are not allowed (line {line})", path)
        if tag not in _SCALAR_TAGS:
            if explicit:
                raise self._refuse(f"YAML tag {_tag_name(tag or '')!r} is not allowed (line {line}): plain data only")
            raise self._refuse(f"value {_short(event.value)} at line {line} is read by YAML as "
                               f"{_tag_name(tag or '')}, not plain data (quote it)")
        if tag == _STR_TAG:
            return _Key(event.value, tag) if self._at_key() else event.value
        if tag in (_INT_TAG, _FLOAT_TAG) and len(event.value) > limits.max_number_chars:
            raise self._refuse(f"number at line {line} is {len(event.value)} characters long "
                               f"(at most {limits.max_number_chars})")
        if self._at_key():  # refused in _add with the key path; never constructed
            return _Key(event.value, tag)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark,  # type: ignore[arg-type]  # libyaml's Mark
                          style=event.style)
        try:
            return loader.yaml_constructors[tag](loader, node)
        except (ValueError, OverflowError) as exc:
            raise self._refuse(f"cannot read {_short(event.value)} (line {line}) as {_tag_name(tag)}: {exc}") from None

    def _at_key(self) -> bool:
        top = self.stack[-1] if self.stack else None
        return top is not None and isinstance(top.data, dict) and top.pending_key is None

    def _add(self, parent: _Open, value: Data, line: int) -> None:
        """Put a finished value into its list or mapping; the key checks happen here (K03)."""
        limits = self.limits
        if isinstance(parent.data, list):
            if len(parent.data) >= limits.max_items:
                raise self._refuse(f"list longer than {limits.max_items} items (line {line})", self._path(child=False))
            parent.data.append(value)
            return
        if parent.pending_key is not None:
            parent.data[parent.pending_key] = value
            parent.pending_key = None
            return
        key = value
        if not isinstance(key, _Key):  # pragma: no cover - collections as keys are refused at their start
            raise self._refuse(f"mapping key at line {line} is not a plain name", self._path(child=False))
        if key.tag != _STR_TAG:
            raise self._refuse(
                f"key {_short(key.text)} is read by YAML as {key.tag.rsplit(':', 1)[-1]}, not a name (quote it)",
                _child(self._path(child=False), key.text),
            )
        name = key.text
        if name in parent.seen:
            raise self._refuse(f"duplicate key (lines {parent.seen[name]} and {line})",
                               _child(self._path(child=False), name))
        if len(parent.seen) >= limits.max_items:
            raise self._refuse(f"mapping with more than {limits.max_items} keys (line {line})", self._path(child=False))
        parent.seen[name] = line
        parent.pending_key = name


@dataclass(frozen=True)
class _Key:
    """A mapping key as read: its text and the tag YAML resolved it to (checked in ``_add``)."""

    text: str
    tag: str


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
        found, document = _Builder(loader, name, limits).build()
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
