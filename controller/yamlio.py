"""Strict YAML loading for every QIKI data file, and pydantic errors as one-liners.

PyYAML silently keeps the last of two duplicate keys and reads ``on``/``off``/``yes``/``no``
as booleans. Both are refused here, before any schema runs (SAFETY.md K03), with the file
and the key path: ``rigs/x.yaml: states.on: key is a bool ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from controller.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_STR_TAG = "tag:yaml.org,2002:str"


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _check_node(node: yaml.Node, path: str, file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(file, path, f"mapping key at line {key_node.start_mark.line + 1} is not a plain name")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(file, path, "YAML merge keys ('<<') are not allowed")
            if key_node.tag != _STR_TAG:
                raise ConfigError(
                    file,
                    _child(path, key_node.value),
                    f"key {key_node.value!r} is read by YAML as {key_node.tag.rsplit(':', 1)[-1]}, "
                    "not a name (quote it)",
                )
            name = key_node.value
            line = key_node.start_mark.line + 1
            if name in seen:
                raise ConfigError(
                    file, _child(path, name), f"duplicate key (lines {seen[name]} and {line})"
                )
            seen[name] = line
            _check_node(value_node, _child(path, name), file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_node(item, _child(path, i), file)


def load_yaml(path: str | Path, display_name: str | None = None) -> Any:
    """Load one YAML document strictly.

    Parameters
    ----------
    path : str or Path
        File to read.
    display_name : str, optional
        Name used in error messages (defaults to ``str(path)``).

    Returns
    -------
    Any
        The document as plain Python data.

    Raises
    ------
    ConfigError
        File missing or unreadable, not YAML, empty, duplicate keys, non-string keys.
    """
    name = display_name or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, "", f"cannot read file: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(name, "", f"not valid YAML{where}: {problem}") from None
    if node is None:
        raise ConfigError(name, "", "file is empty")
    _check_node(node, "", name)
    return yaml.safe_load(text)


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
    """Load a YAML file strictly and validate it against ``model``."""
    name = display_name or str(path)
    return validate(model, load_yaml(path, name), name)
