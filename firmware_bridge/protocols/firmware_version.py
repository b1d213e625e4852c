"""Firmware versions and acceptance specs, shared by every board's driver and the rig schema.

A version is ``MAJOR.MINOR.PATCH`` (non-negative integers, compared numerically, so
``1.10.0 > 1.9.0``). A spec is comma-separated clauses ``OP VERSION`` with OP one of
``>= > <= < == !=`` (no OP means ``==``), all of which must hold: ``">=1.2.0,<2.0.0"``.
Boards whose protocol always reports three parts take specs with full versions only
(``full=True``); where a spec may shorten a version (``">=1.2,<2"``, ``full=False``) the
missing parts are 0. The comparison rules follow Semantic Versioning 2.0.0 section 11
(precedence of the numeric core; pre-release tags are not used by our boards).
"""

from __future__ import annotations

import operator
import re

from firmware_bridge.errors import ProtocolError

__all__ = ["parse_version", "parse_spec", "spec_holds", "firmware_accepted"]

_FULL = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\.(\d+)\.(\d+)\s*$")
_SHORT = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}

Version = tuple[int, int, int]


def _clause(text: str, full: bool) -> tuple[str, Version] | None:
    m = (_FULL if full else _SHORT).match(text)
    if m is None:
        return None
    return m.group(1) or "==", tuple(int(g) if g is not None else 0 for g in m.group(2, 3, 4))  # type: ignore[return-value]


def parse_version(text: str, *, full: bool = True) -> Version:
    """Parse a version string.

    Parameters
    ----------
    text : str
        ``"MAJOR.MINOR.PATCH"`` (with ``full=False`` also ``"MAJOR"`` or ``"MAJOR.MINOR"``).
    full : bool
        Require all three parts.

    Returns
    -------
    (major, minor, patch) : tuple of int

    Raises
    ------
    ProtocolError
        If ``text`` is not a version (an operator is not allowed here).
    """
    c = _clause(text, full)
    if c is None or text.strip()[0] in "<>=!":
        raise ProtocolError(f"bad firmware version {text!r} (want MAJOR.MINOR.PATCH)")
    return c[1]


def parse_spec(spec: str, *, full: bool = True) -> list[tuple[str, Version]]:
    """Parse an acceptance spec into ``(op, version)`` clauses (all must hold).

    Parameters
    ----------
    spec : str
        Comma-separated clauses ``OP VERSION`` (grammar in the module docstring).
    full : bool
        Require three-part versions in every clause.

    Returns
    -------
    list of (str, (int, int, int))
        ``(op, (major, minor, patch))`` per clause, op one of ``>= > <= < == !=``.

    Raises
    ------
    ProtocolError
        Empty spec or a clause that does not parse (one line naming the spec and clause).
    """
    clauses = []
    parts = [p for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ProtocolError(f"empty firmware spec {spec!r}")
    for part in parts:
        c = _clause(part, full)
        if c is None:
            raise ProtocolError(f"firmware spec {spec!r}: cannot parse clause {part.strip()!r}")
        clauses.append(c)
    return clauses


def spec_holds(version: Version, clauses: list[tuple[str, Version]]) -> bool:
    """Return True when ``version`` satisfies every parsed clause.

    Parameters
    ----------
    version : (int, int, int)
        ``(major, minor, patch)``, compared numerically (SemVer 2.0.0 section 11).
    clauses : list of (str, (int, int, int))
        From :func:`parse_spec`.

    Returns
    -------
    bool
    """
    v = tuple(version)
    return all(_OPS[op](v, ref) for op, ref in clauses)


def firmware_accepted(version: Version, spec: str, *, full: bool = True) -> bool:
    """Whether ``version`` (major, minor, patch) satisfies ``spec``.

    Parameters
    ----------
    version : (int, int, int)
        ``(major, minor, patch)``.
    spec : str
        Acceptance spec, e.g. ``">=1.2.0,<2.0.0"`` (see :func:`parse_spec`).
    full : bool
        Require three-part versions in the spec.

    Returns
    -------
    bool

    Raises
    ------
    ProtocolError
        If ``spec`` is malformed (a configuration error, refused at rig load).
    """
    return spec_holds(version, parse_spec(spec, full=full))
