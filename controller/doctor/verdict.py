"""The doctor's verdict: one line of its table, and the order of badness.

See :mod:`controller.doctor.checks` for the checks that give them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail", "skip"]

#: Order of badness, for the worst of several verdicts.
RANK: dict[str, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Verdict:
    """One line of the doctor's table.

    Attributes
    ----------
    name : str
        What was checked (``can0: bitrate``, ``rt priority``).
    status : {"pass", "warn", "fail", "skip"}
        ``skip`` says why the check does not apply (in ``detail``).
    detail : str
        What was found, one line.
    hint : str
        How to fix it (empty when it passed).
    """

    name: str
    status: Status
    detail: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the verdict as JSON-ready text fields."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


def info(link: Mapping[str, object], key: str) -> dict[str, object]:
    """Return ``link["linkinfo"][key]`` of an ``ip -json link`` object ({} when absent)."""
    li = link.get("linkinfo")
    if not isinstance(li, dict):
        return {}
    v = li.get(key)
    return v if isinstance(v, dict) else {}


def as_int(v: object) -> int | None:
    """Return an int from JSON (an int or a string of digits), else None (bools are not ints)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def worst(verdicts: Iterable[Verdict]) -> Status:
    """Return the worst status of ``verdicts`` (``skip`` when there are none)."""
    out: Status = "skip"
    for v in verdicts:
        if RANK[v.status] > RANK[out]:
            out = v.status
    return out
