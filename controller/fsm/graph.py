"""Draw a state machine: Mermaid ``stateDiagram-v2`` and Graphviz DOT text.

Pure string building, used by ``qiki fsm graph FILE`` (ARCHITECTURE.md 4). ``source: "*"``
is drawn as one edge per state so the picture shows what the engine does. Edge labels are
``event [guard1 & guard2]``; timeouts are dashed edges labelled ``event (after N s)``.
Latched states are marked ``(latched)``; states with ``outputs: allocate`` are marked
``(allocate)``. State names are plain identifiers (checked at load), so they are safe as
node ids in both languages.
"""

from __future__ import annotations

from controller.fsm.model import FsmModel, StateSpec

__all__ = ["to_dot", "to_mermaid"]


def _edge_label(event: str, guards: tuple[str, ...]) -> str:
    return f"{event} [{' & '.join(guards)}]" if guards else event


def _edges(model: FsmModel) -> list[tuple[str, str, str, bool]]:
    """``(source, target, label, is_timeout)`` in file order, ``*`` expanded."""
    out: list[tuple[str, str, str, bool]] = []
    for t in model.transitions:
        for s in model.sources_of(t):
            out.append((s, t.target, _edge_label(t.event, t.guard), False))
    rules = model.rule_table()
    for to in model.timeouts:
        for rule in rules.get((to.state, to.event), ()):
            label = f"{_edge_label(to.event, rule.guard)} (after {to.after_s:g} s)"
            out.append((to.state, rule.target, label, True))
    return out


def _action_lists(spec: StateSpec) -> list[tuple[str, str]]:
    """``[("enter", "a, b"), ("exit", "c")]``, leaving out an empty list."""
    return [(word, ", ".join(names)) for word, names in (("enter", spec.enter), ("exit", spec.exit)) if names]


def _marks(model: FsmModel, state: str) -> str:
    spec = model.states[state]
    marks = [m for m, on in (("latched", spec.latched), ("allocate", spec.outputs == "allocate")) if on]
    return f" ({', '.join(marks)})" if marks else ""


def to_mermaid(model: FsmModel) -> str:
    """Render ``model`` as a Mermaid ``stateDiagram-v2``.

    Parameters
    ----------
    model : FsmModel
        A checked machine.

    Returns
    -------
    str
        Mermaid source, newline-terminated. Every state appears as
        ``state "name (marks)" as name``; every edge as ``src --> dst: label``; latched
        states also get the ``latched`` class (red).
    """
    lines = ["stateDiagram-v2", f"    %% {model.name}"]
    for s, spec in model.states.items():
        lines.append(f'    state "{s}{_marks(model, s)}" as {s}')
        lines += [f"    {s} : {word} {names}" for word, names in _action_lists(spec)]
    lines.append(f"    [*] --> {model.initial}")
    for src, dst, label, _ in _edges(model):
        lines.append(f"    {src} --> {dst}: {label}")
    latched = [s for s, spec in model.states.items() if spec.latched]
    if latched:
        lines.append("    classDef latched fill:#f99,stroke:#900,stroke-width:2px")
        lines.append(f"    class {','.join(latched)} latched")
    return "\n".join(lines) + "\n"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(model: FsmModel) -> str:
    """Render ``model`` as Graphviz DOT.

    Parameters
    ----------
    model : FsmModel
        A checked machine.

    Returns
    -------
    str
        A ``digraph``; latched states are double-bordered and red, ``allocate`` states
        bold; timeout edges dashed.
    """
    lines = [f"digraph {_dot_str(model.name)} {{", "    rankdir=LR;",
             '    node [shape=box, style=rounded, fontname="Helvetica"];',
             '    edge [fontname="Helvetica", fontsize=10];',
             '    "__start" [shape=point, label=""];']
    for s, spec in model.states.items():
        label = s + _marks(model, s) + "".join(f"\\n{word}: {names}" for word, names in _action_lists(spec))
        attrs = [f'label="{label}"']
        if spec.latched:
            attrs += ["peripheries=2", "color=red"]
        if spec.outputs == "allocate":
            attrs.append("penwidth=2")
        lines.append(f"    {_dot_str(s)} [{', '.join(attrs)}];")
    lines.append(f'    "__start" -> {_dot_str(model.initial)};')
    for src, dst, label, timeout in _edges(model):
        style = ", style=dashed" if timeout else ""
        lines.append(f"    {_dot_str(src)} -> {_dot_str(dst)} [label={_dot_str(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
