"""The one-pass builder behind :func:`controller.yamlio.load_yaml`: parser events to plain data.

PyYAML's composer recurses once per nesting level and expands aliases; :class:`EventBuilder`
takes the parser's events instead, keeps an explicit stack, checks every rule of
:mod:`controller.yamlio` as the events arrive (anchors, aliases, tags, merge keys, key
types, duplicate keys, the :class:`~controller.yamlio.YamlLimits`) and constructs the
Python data directly, scalars through PyYAML's own ``SafeConstructor`` functions and
resolver. Every refusal is a :class:`~controller.errors.ConfigError` with the key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
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

if TYPE_CHECKING:
    from controller.yamlio import YamlLimits

_YAML = "tag:yaml.org,2002:"
_STR_TAG = _YAML + "str"
_INT_TAG = _YAML + "int"
_FLOAT_TAG = _YAML + "float"
_MERGE_TAG = _YAML + "merge"

#: Longest key or value text quoted in a message (characters).
_SHOWN_CHARS = 60


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


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = _key_name(key)
    return f"{path}.{name}" if path else name


def _tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:binary`` -> ``!!binary``; other tags as written, cut short."""
    shown = "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


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


class EventBuilder:
    """Builds the document from the parser's events in one iterative pass, checking every rule.

    PyYAML's composer recurses once per nesting level and expands aliases into shared
    nodes that a checker then walks again and again; this builder keeps an explicit stack,
    refuses anchors and aliases at first sight, counts as it goes and constructs the
    Python data directly (scalars through PyYAML's own ``SafeConstructor`` functions), so
    the cost of any refusal is bounded by :class:`YamlLimits`, never by the input.

    Parameters
    ----------
    loader : yaml.SafeLoader
        A parser over the file's text, not yet read (``yaml.CSafeLoader`` or
        ``yaml.SafeLoader``); the caller disposes of it.
    name : str
        The file as messages show it.
    limits : YamlLimits
        The bounds to enforce.
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
