"""One fault-plan dialect for every emulator: typed entries, a stepped plan, a target protocol.

A fault plan is a list of :class:`FaultEntry`: at ``at_s`` the plan asks the emulator named
``target`` to apply ``fault`` with typed parameters, and for a windowed fault it asks the
same emulator to clear it at ``until_s``. Every emulator that can be faulted is a
:class:`FaultTarget`: it declares the faults it knows in a class-level ``FAULTS`` mapping
(name -> :class:`FaultSpec`, parameters with types, defaults and bounds) and implements
:meth:`~FaultTarget.apply_fault` / :meth:`~FaultTarget.clear_fault`. The rig file's
``emulation.faults`` (``docs/fault-plans.md``) is checked against those specs before a
run starts, so an unknown target, fault or parameter never surfaces mid-run.

A :class:`FaultPlan` is stepped with time by whoever owns its targets' time: the
:class:`~firmware_bridge.emulation.sim.Simulation` at every physics step for the
emulators it steps, an emulated Modbus device at every request it answers (its faults
are only seen in its replies). Nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

__all__ = [
    "NO_PARAMS",
    "FaultEntry",
    "FaultEventSink",
    "FaultParam",
    "FaultParams",
    "FaultPlan",
    "FaultPlanError",
    "FaultSpec",
    "FaultTarget",
    "resolve_entry",
]

#: Parameter values of one fault: name -> int or float (already checked against the spec).
FaultParams = Mapping[str, int | float]
#: Told about every change a plan makes: ``(now_s, entry, applied)``; ``applied`` is
#: False when a windowed fault is cleared at its ``until_s``.
FaultEventSink = Callable[[float, "FaultEntry", bool], None]

#: Times within this much of a physics step count as reached (float time from integer ns).
TIME_TOLERANCE_S: Final = 1e-12


@dataclass(frozen=True)
class FaultParam:
    """Type, default and bounds of one fault parameter.

    Attributes
    ----------
    kind : type
        ``int`` (an integer in the rig file) or ``float`` (any finite number).
    default : int or float
        Value when the entry does not give one.
    min, max : float
        Inclusive bounds.
    doc : str
        What the parameter means, with its unit.
    """

    kind: type[int] | type[float]
    default: int | float
    min: float
    max: float
    doc: str

    def check(self, value: object) -> int | float:
        """Return ``value`` as this parameter's type.

        Raises
        ------
        ValueError
            Not a number of the right kind (a bool or a string never is), not finite, or
            out of ``[min, max]``; the message says which.
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {'an integer' if self.kind is int else 'a number'}, got {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise ValueError(f"must be an integer, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        if not self.min <= value <= self.max:
            raise ValueError(f"must be in [{self.min:.12g}, {self.max:.12g}], got {value!r}")
        return int(value) if self.kind is int else float(value)


@dataclass(frozen=True)
class FaultSpec:
    """What a fault does and the parameters it takes.

    Attributes
    ----------
    doc : str
        One line: what the emulator does while the fault is applied.
    params : mapping of str to FaultParam
        The parameters it accepts (others are refused).
    windowed : bool
        True: the fault is a state that ``until_s`` can end (``clear_fault``). False: an
        instant event (a press, a reboot, a burst of bytes); ``until_s`` is refused.
    """

    doc: str
    params: Mapping[str, FaultParam] = field(default_factory=lambda: MappingProxyType({}))
    windowed: bool = True


#: Empty parameter mapping (the parameters of a fault that takes none).
NO_PARAMS: Final[FaultParams] = MappingProxyType({})


@dataclass(frozen=True)
class FaultEntry:
    """One entry of a fault plan (one item of a rig's ``emulation.faults``).

    Attributes
    ----------
    at_s : float
        Simulated (run-clock) time at which the fault is applied, s.
    target : str
        Device name in the rig (e.g. ``valves``, ``mcu``, ``bms``, ``tank``, ``radar_lr``).
    fault : str
        A key of the target's ``FAULTS``.
    until_s : float or None
        End of a windowed fault, s (exclusive; None: for good).
    params : mapping of str to int or float
        Every parameter of the fault, defaults filled in (:func:`resolve_entry`).
    index : int
        Position in ``emulation.faults`` (for messages and event records).
    """

    at_s: float
    target: str
    fault: str
    until_s: float | None = None
    params: FaultParams = field(default_factory=lambda: NO_PARAMS)
    index: int = 0


@runtime_checkable
class FaultTarget(Protocol):
    """An emulator a fault plan can fault.

    ``FAULTS`` is a class-level constant (``Final`` in the implementations): the names of
    the faults it knows and their parameter specs. The plan calls :meth:`apply_fault` at
    ``at_s`` and, for a windowed fault with ``until_s``, :meth:`clear_fault` at
    ``until_s``. Both run on the thread that steps the plan and must not block. The plan
    counts overlapping windows of one fault with equal parameters, so a target sees one
    apply and one clear for them (a target needs no counting of its own).
    """

    @property
    def FAULTS(self) -> Mapping[str, FaultSpec]:  # noqa: N802 - a class-level constant in the targets
        """The faults the target knows, by name (a class-level ``Final`` mapping)."""
        ...

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start ``fault`` (a key of ``FAULTS``) with checked ``params`` at ``now_s`` (s)."""
        ...

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End the windowed ``fault`` applied with ``params`` at ``now_s`` (s).

        The parameters tell two instances of one fault apart (two stuck valves, two
        alarm words); the plan clears exactly what it applied.
        """
        ...


class FaultPlanError(ValueError):
    """A fault-plan entry that no target can take.

    Parameters
    ----------
    key : str
        Key of the entry's field at fault, relative to the entry (``target``, ``fault``,
        ``until_s`` or a parameter name).
    message : str
        What is wrong.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def resolve_entry(index: int, at_s: float, target: str, fault: str, until_s: float | None,
                  given: Mapping[str, object], specs: Mapping[str, Mapping[str, FaultSpec]]) -> FaultEntry:
    """Check one raw plan entry against the specs of the rig's targets; fill in defaults.

    Parameters
    ----------
    index : int
        Position of the entry in the plan.
    at_s, until_s : float, float or None
        Window (s); ``until_s`` must be after ``at_s`` (the rig schema checks it).
    target, fault : str
        Device name and fault name.
    given : mapping of str to object
        The parameters the entry gives.
    specs : mapping of str to mapping of str to FaultSpec
        ``FAULTS`` of every target of the rig, by device name.

    Returns
    -------
    FaultEntry

    Raises
    ------
    FaultPlanError
        Unknown target, unknown fault for the target, ``until_s`` on an instant fault, a
        parameter the fault does not take, or a bad parameter value.
    """
    faults = specs.get(target)
    if faults is None:
        raise FaultPlanError("target", f"{target!r} is not a device with an emulator in this rig "
                                       f"(known: {', '.join(sorted(specs)) or 'none'})")
    spec = faults.get(fault)
    if spec is None:
        raise FaultPlanError("fault", f"{target!r} has no fault {fault!r} (known: {', '.join(sorted(faults))})")
    if until_s is not None and not spec.windowed:
        raise FaultPlanError("until_s", f"{fault!r} is an instant event: it takes no until_s")
    params: dict[str, int | float] = {}
    for key in given:
        if key not in spec.params:
            takes = ", ".join(sorted(spec.params)) or "none"
            raise FaultPlanError(key, f"{fault!r} takes no parameter {key!r} (takes: {takes})")
    for key, p in spec.params.items():
        try:
            params[key] = p.check(given[key]) if key in given else p.default
        except ValueError as exc:
            raise FaultPlanError(key, str(exc)) from None
    return FaultEntry(at_s, target, fault, until_s, MappingProxyType(params), index)


class FaultPlan:
    """Entries applied and cleared as time passes, dispatched to their targets.

    Parameters
    ----------
    entries : iterable of FaultEntry
        The plan (any order; entries with equal times keep their order).
    targets : mapping of str to FaultTarget
        The emulator of every entry's target, by device name.
    on_event : callable ``(now_s, entry, applied) -> None``, optional
        Told about every apply and clear (the run's event log).

    Raises
    ------
    ValueError
        An entry whose target is not in ``targets`` or whose fault is not in the target's
        ``FAULTS`` (the rig check refuses these first, naming the rig key).

    Notes
    -----
    Changes are processed in time order (file order at equal times, applies before
    clears). Windowed faults of one target with equal parameters are counted: the target
    is told at the first apply and at the last clear, so back-to-back windows ``[2, 5)``
    and ``[5, 7)`` of one fault are one apply at 2 and one clear at 7. An entry whose
    window lies wholly inside one step is applied, then cleared, in that step. Instant
    faults are told every time.
    """

    def __init__(self, entries: Iterable[FaultEntry], targets: Mapping[str, FaultTarget],
                 on_event: FaultEventSink | None = None) -> None:
        self.targets = dict(targets)
        self.on_event = on_event
        self._changes: list[tuple[float, int, int, FaultEntry]] = []
        self._next = 0
        self._active: dict[tuple[str, str, tuple[tuple[str, int | float], ...]], int] = {}
        for e in entries:
            self.add(e)

    def add(self, entry: FaultEntry) -> None:
        """Add one entry (before or during the run; a past ``at_s`` applies at the next step).

        Raises
        ------
        ValueError
            Unknown target or fault (see the class).
        """
        target = self.targets.get(entry.target)
        if target is None:
            raise ValueError(f"fault plan entry {entry.index}: no emulator {entry.target!r} "
                             f"(known: {', '.join(sorted(self.targets))})")
        if entry.fault not in target.FAULTS:
            raise ValueError(f"fault plan entry {entry.index}: {entry.target!r} has no fault {entry.fault!r}")
        pending = self._changes[self._next:]
        seq = len(self._changes)
        pending.append((entry.at_s, 0, seq, entry))
        if entry.until_s is not None:
            pending.append((entry.until_s, 1, seq, entry))
        pending.sort(key=lambda c: (c[0], c[1], c[2]))
        self._changes[self._next:] = pending

    @property
    def pending(self) -> int:
        """Applies and clears not yet reached."""
        return len(self._changes) - self._next

    @property
    def next_due_s(self) -> float:
        """Time (s) of the next apply or clear (inf: none left); :meth:`step` acts from then."""
        return self._changes[self._next][0] - TIME_TOLERANCE_S if self._next < len(self._changes) else math.inf

    def step(self, now_s: float) -> None:
        """Apply and clear every change due at ``now_s`` (s), in time order. Per step.

        Cheap when nothing is due (one comparison).
        """
        changes = self._changes
        limit = now_s + TIME_TOLERANCE_S
        while self._next < len(changes) and changes[self._next][0] <= limit:
            _, is_clear, _, entry = changes[self._next]
            self._next += 1
            target = self.targets[entry.target]
            if not target.FAULTS[entry.fault].windowed:
                target.apply_fault(entry.fault, entry.params, now_s)
            else:
                key = (entry.target, entry.fault, tuple(sorted(entry.params.items())))
                count = self._active.get(key, 0)
                if not is_clear:
                    self._active[key] = count + 1
                    if count == 0:
                        target.apply_fault(entry.fault, entry.params, now_s)
                else:
                    self._active[key] = count - 1
                    if count == 1:
                        target.clear_fault(entry.fault, entry.params, now_s)
            if self.on_event is not None:
                self.on_event(now_s, entry, not is_clear)
