"""The event code registry: one stable 3-digit code per event the controller records (issue 12).

One table, :data:`EVENT_CODES`. Families by the hundreds digit:

====  ==========================
1xx   boot and POST
2xx   arming and commands
3xx   mission
4xx   bus health
5xx   device faults
6xx   power
7xx   radar and keep-out
8xx   timing
9xx   E-stop and safety
====  ==========================

An event is a ``kind`` (the ``events.jsonl`` kind: ``transition``, ``fault``, ``post``,
...) and its fields. Some kinds are one code; others are told apart by one field:
``transition`` and ``refused`` by ``event`` (the FSM event), ``fault`` by ``source`` (the
fault condition's key, :class:`controller.components.seam.Condition`), ``post`` by
``passed``. Keys that carry a device or bus name from the rig (``<tank>.stale``,
``radar.<device>.stale``, ``<bus>_busoff``) are matched by pattern.

A ``fault`` event with ``reason`` null is the condition clearing; it has the code of the
condition (the code names *what*, the reason says whether it holds).

Catch-alls: an event the table does not know gets the family's ``x00`` code, the family
chosen from its kind (and for a fault, its key) by keyword (:func:`family_of`); a kind
with no keyword lands in ``900`` so that it stands out. A test
(``tests/unit/test_event_codes.py``) scans the source for every kind and fault key the
code emits and fails when one of them falls into a catch-all. Codes are never reused or
renumbered: a retired event keeps its number in the table, marked retired.

``docs/event-codes.md`` lists the table; regenerate it with
``python -m controller.record.codes > docs/event-codes.md`` (a test checks that it lists
every code).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CATCH_ALL",
    "EVENT_CODES",
    "FAMILIES",
    "EventCode",
    "code_for",
    "entry",
    "family_of",
    "markdown_table",
]


@dataclass(frozen=True)
class EventCode:
    """One row of the registry.

    Attributes
    ----------
    code : int
        The stable 3-digit code.
    kind : str
        Event kind it applies to (``*`` for a family catch-all).
    field : str or None
        Field that tells events of this kind apart (None: every event of the kind).
    pattern : str or None
        Regular expression the field's value (as ``str``) must match in full.
    title : str
        What the event means, one line.
    """

    code: int
    kind: str
    field: str | None
    pattern: str | None
    title: str

    @property
    def family(self) -> int:
        """The hundreds digit (1..9)."""
        return self.code // 100

    @property
    def catch_all(self) -> bool:
        """True for a family's ``x00`` catch-all code."""
        return self.code % 100 == 0

    def matches(self, kind: str, fields: Mapping[str, object]) -> bool:
        """Return True when this row applies to ``kind`` with ``fields``."""
        if self.kind != kind:
            return False
        if self.field is None or self.pattern is None:
            return True
        return self.field in fields and re.fullmatch(self.pattern, str(fields[self.field])) is not None


#: Family names by hundreds digit.
FAMILIES: dict[int, str] = {
    1: "boot and POST",
    2: "arming and commands",
    3: "mission",
    4: "bus health",
    5: "device faults",
    6: "power",
    7: "radar and keep-out",
    8: "timing",
    9: "E-stop and safety",
}

#: A device or bus name from the rig inside a key pattern (no dot).
_NAME = r"[^.]+"

#: The registry. Inside one kind the first matching row with a field wins; a row without
#: a field is the kind's fallback.
EVENT_CODES: tuple[EventCode, ...] = (
    # 1xx boot and POST
    EventCode(100, "*", None, None, "boot or POST event without a code of its own"),
    EventCode(101, "post", "passed", "True", "POST report: every device passed"),
    EventCode(102, "post", "passed", "False", "POST report: a device has not passed (waiting or failed)"),
    EventCode(103, "transition", "event", "post_passed", "POST passed: boot -> idle"),
    EventCode(104, "transition", "event", "post_failed", "POST failed or timed out: boot -> safe_mode"),
    EventCode(110, "power_buses", None, None, "power buses built (transport and URL per bus)"),
    # 2xx arming and commands
    EventCode(200, "*", None, None, "arming or command event without a code of its own"),
    EventCode(201, "transition", "event", "arm", "armed: idle -> armed (valve rail on)"),
    EventCode(202, "transition", "event", "disarm", "disarmed: armed/active -> idle"),
    EventCode(203, "transition", "event", "reset", "reset: safe_mode/estop -> idle"),
    EventCode(210, "refused", None, None, "command refused (an event without a refusal code of its own)"),
    EventCode(211, "refused", "event", "arm", "arm refused (arming checks, or no re-arm in a disarming tick)"),
    EventCode(213, "refused", "event", "reset", "reset refused (faults not cleared, E-stop still pressed)"),
    EventCode(214, "refused", "event", "start_mission", "start_mission refused (no re-arm in a disarming tick)"),
    EventCode(215, "refused", "event", "mission_complete", "mission_complete refused (no re-arm in a disarming tick)"),
    # 23x-24x the operator console (issue 14): kind ``console``, told apart by ``action``
    EventCode(230, "console", None, None, "console event without a code of its own"),
    EventCode(231, "console", "action", "control_granted", "console: control lock granted"),
    EventCode(232, "console", "action", "control_released", "console: control lock released"),
    EventCode(233, "console", "action", "control_taken_over", "console: control lock taken over (holder silent)"),
    EventCode(234, "console", "action", "control_disconnected", "console: the holder disconnected, lock free"),
    EventCode(235, "console", "action", "command", "console: command passed to the arbiter"),
    EventCode(240, "console", "action", "refused", "console: command refused (no code of its own)"),
    EventCode(241, "console", "action", "refused_stale", "console: command refused, time-to-live ran out"),
    EventCode(242, "console", "action", "refused_no_control", "console: command refused, console holds no control"),
    EventCode(243, "console", "action", "refused_no_confirm", "console: arm refused, no hold-to-confirm proof"),
    EventCode(244, "console", "action", "refused_read_only", "console: command refused, read-only observer"),
    EventCode(245, "console", "action", "refused_held_by_other", "console: control refused, another console holds it"),
    EventCode(246, "console", "action", "refused_takeover_too_early",
              "console: takeover refused, the holder's heartbeat is recent"),
    EventCode(247, "console", "action", "refused_not_holder", "console: release refused, not the holder"),
    EventCode(248, "console", "action", "refused_shutting_down", "console: command refused, the run is stopping"),
    # 3xx mission
    EventCode(300, "*", None, None, "mission event without a code of its own"),
    EventCode(301, "transition", "event", "start_mission", "mission started: armed -> active"),
    EventCode(302, "transition", "event", "mission_complete", "mission complete: active -> armed"),
    EventCode(303, "waypoint_reached", None, None, "waypoint reached (index)"),
    # 4xx bus health
    EventCode(400, "*", None, None, "bus health event without a code of its own"),
    EventCode(401, "fault", "source", rf"{_NAME}_busoff", "CAN bus off (<bus>_busoff)"),
    EventCode(402, "fault", "source", rf"{_NAME}_send", "CAN bus: 3 or more consecutive send failures (<bus>_send)"),
    EventCode(403, "fault", "source", "b09", "another node sends our thruster command ID (B09)"),
    EventCode(404, "fault", "source", rf"{_NAME}_rx", "CAN bus: receive path dead (<bus>_rx, B07)"),
    EventCode(405, "bus_error_passive", None, None,
              "warning: CAN bus went error-passive (bus, B05); arming refused while passive"),
    # 5xx device faults
    EventCode(500, "*", None, None, "device fault without a code of its own"),
    EventCode(501, "fault", "source", "vb_status", "valve board status stale"),
    EventCode(502, "fault", "source", "vb_heartbeat", "valve board heartbeat lost"),
    EventCode(503, "fault", "source", "vb_reboot", "valve board rebooted"),
    EventCode(511, "fault", "source", "mcu_status", "MCU status stale"),
    EventCode(512, "fault", "source", "mcu_pose", "MCU pose stale"),
    EventCode(513, "fault", "source", "mcu_reboot", "MCU rebooted"),
    EventCode(521, "fault", "source", "thrusters", "failed thrusters: the geometry no longer spans"),
    EventCode(522, "thruster_failed", None, None, "thruster(s) newly failed (allocation works around them)"),
    EventCode(531, "fault", "source", rf"(?!power\.|radar\.){_NAME}\.stale",
              "tank pressure sensor stale (<tank>.stale)"),
    EventCode(532, "fault", "source", rf"{_NAME}\.implausible",
              "tank pressure sensor implausible (<tank>.implausible)"),
    EventCode(533, "fault", "source", rf"(?!power\.|radar\.){_NAME}\.low", "tank pressure below minimum (<tank>.low)"),
    EventCode(590, "fault_injected", None, None, "emulation: a fault of the rig's fault plan injected"),
    EventCode(591, "fault_cleared", None, None, "emulation: a windowed fault of the fault plan cleared (until_s)"),
    # 6xx power
    EventCode(600, "*", None, None, "power event without a code of its own"),
    EventCode(601, "fault", "source", r"power\.battery",
              "battery: BMS stale (D10), alarm, low SoC or over-temperature"),
    EventCode(602, "fault", "source", r"power\.pdu", "PDU stale or unhealthy"),
    EventCode(603, "fault", "source", r"power\.valve_rail_relay", "valve-rail relay not confirmed as commanded"),
    EventCode(611, "relay_command", None, None, "relay command sent"),
    EventCode(612, "relay_confirmed", None, None, "relay state confirmed by read-back"),
    EventCode(613, "relay_failed", None, None, "relay command failed or not read back"),
    EventCode(614, "relay_found_closed", None, None,
              "valve-rail relay found closed in boot (a killed run left it so): commanded open (T04)"),
    # 7xx radar and keep-out
    EventCode(700, "*", None, None, "radar event without a code of its own"),
    EventCode(701, "fault", "source", r"radar\.keep_out", "keep-out breach or time to collision below the minimum"),
    EventCode(711, "fault", "source", rf"radar\.{_NAME}\.stale", "radar stale (radar.<device>.stale)"),
    EventCode(712, "fault", "source", rf"radar\.{_NAME}\.error", "radar reports an error (radar.<device>.error)"),
    EventCode(713, "fault", "source", rf"radar\.{_NAME}\.values",
              "radar out-of-range values in consecutive cycles (radar.<device>.values)"),
    # 8xx timing
    EventCode(800, "*", None, None, "timing event without a code of its own"),
    EventCode(801, "fault", "source", "lag", "system lagging: too many loop overruns in 1 s"),
    # 9xx E-stop and safety
    EventCode(900, "*", None, None, "safety event without a code of its own (also: an unknown kind)"),
    EventCode(901, "transition", "event", "estop", "E-stop: any state -> estop"),
    EventCode(902, "transition", "event", "fault", "fault: -> safe_mode (latched)"),
    EventCode(903, "fault", "source", "output_guard", "output guard: non-finite demand for too many ticks"),
    EventCode(904, "fault", "source", "rail", "valve rail dropped by the MCU (E-stop chain or heartbeat loss)"),
    EventCode(910, "exception", None, None, "exception caught by the tick's barrier (outputs zero)"),
    EventCode(911, "fault", "source", "tick_exception", "fault: exception in a tick"),
    EventCode(920, "shutdown", None, None, "safe stop started (signal): zero outputs, disarm"),
    EventCode(930, "console", "action", "link_lost", "console: controlling console's heartbeat lost; link-loss action"),
)

#: The family catch-all code by family digit.
CATCH_ALL: dict[int, int] = {e.family: e.code for e in EVENT_CODES if e.catch_all}

_BY_KIND: dict[str, list[EventCode]] = {}
for _e in EVENT_CODES:
    if not _e.catch_all:
        _BY_KIND.setdefault(_e.kind, []).append(_e)
for _rows in _BY_KIND.values():
    _rows.sort(key=lambda e: e.field is None)  # a kind's field-less row is its fallback: tried last
_BY_CODE: dict[int, EventCode] = {e.code: e for e in EVENT_CODES}

#: Keywords of the catch-all's family, tried in order on the kind (and a fault's key).
_FAMILY_WORDS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (9, ("estop", "e_stop", "safety", "exception", "shutdown", "guard")),
    (7, ("radar", "track", "keep_out", "ttc")),
    (6, ("power", "battery", "bms", "pdu", "relay", "rail")),
    (4, ("bus", "can", "_send", "frame")),
    (8, ("lag", "overrun", "timing", "loop", "clock", "dropout")),
    (3, ("mission", "waypoint")),
    (2, ("arm", "command", "refus", "reset")),
    (1, ("post", "boot")),
)


def family_of(kind: str, fields: Mapping[str, object]) -> int:
    """Return the family (1..9) of an event the table does not know, by keyword.

    A ``fault`` is judged by its key (``source``) and falls back to 5 (device faults);
    another kind by its name, falling back to 9 (so an uncoded event stands out).
    """
    if kind == "fault":
        text = str(fields.get("source", "")).lower()
        default = 5
    elif kind == "transition":
        target = str(fields.get("target", ""))
        return 9 if target in ("safe_mode", "estop") else 2
    elif kind == "refused":
        return 2
    else:
        text = kind.lower()
        default = 9
    for fam, words in _FAMILY_WORDS:
        if any(w in text for w in words):
            return fam
    return default


def code_for(kind: str, fields: Mapping[str, object]) -> int:
    """Return the event code of an event.

    Parameters
    ----------
    kind : str
        The event's kind (``transition``, ``fault``, ``post``, ...).
    fields : mapping
        Its fields (``event``, ``source``, ``passed``, ...).

    Returns
    -------
    int
        The row's code, or the catch-all ``x00`` of the family :func:`family_of` picks.
    """
    for e in _BY_KIND.get(kind, ()):
        if e.matches(kind, fields):
            return e.code
    return CATCH_ALL[family_of(kind, fields)]


def entry(code: int) -> EventCode | None:
    """Return the registry row of ``code`` (None: not a code)."""
    return _BY_CODE.get(code)


def markdown_table() -> str:
    """Return ``docs/event-codes.md``: the registry as Markdown, family by family."""
    lines = [
        "# Event codes",
        "",
        "Every event of a run carries a stable 3-digit code from one registry,",
        "`controller/record/codes.py` (`EVENT_CODES`); the flight record's `/events` messages",
        "carry it as `code` beside `kind`. Generated by `python -m controller.record.codes`;",
        "`tests/unit/test_event_codes.py` checks that this page lists every code and that every",
        "event kind and fault key the controller emits has a code of its own.",
        "",
        "How an event is matched: by its `kind`, and for some kinds by one field -- `transition`",
        "and `refused` by `event` (the FSM event), `fault` by `source` (the fault condition's",
        "key; `<tank>`, `<device>` and `<bus>` stand for names from the rig), `post` by",
        "`passed`. A `fault` with `reason` null is the condition clearing; it keeps the",
        "condition's code. An event the table does not know gets its family's `x00` code",
        "(family picked from the kind or key by keyword; an unknown kind with no keyword",
        "gets 900). Codes are never renumbered or reused.",
        "",
    ]
    for fam, name in FAMILIES.items():
        lines += [f"## {fam}xx {name}", "", "| code | kind | matched on | meaning |", "|---|---|---|---|"]
        for e in EVENT_CODES:
            if e.family != fam:
                continue
            on = "(catch-all)" if e.catch_all else ("-" if e.field is None else f"`{e.field}` = `{e.pattern}`")
            kind = "any" if e.kind == "*" else f"`{e.kind}`"
            lines.append(f"| {e.code} | {kind} | {on.replace('|', '&#124;')} | {e.title} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the doc generator
    print(markdown_table(), end="")
