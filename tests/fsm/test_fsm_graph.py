"""Mermaid and Graphviz output show every state and every edge (ARCHITECTURE.md 4)."""

from __future__ import annotations

import re

from controller.fsm import to_dot, to_mermaid


def _expected_edges(model) -> list[tuple[str, str, str]]:
    edges = []
    for t in model.transitions:
        label = t.event + (f" [{' & '.join(t.guard)}]" if t.guard else "")
        for s in model.sources_of(t):
            edges.append((s, t.target, label))
    return edges


def test_mermaid_has_every_state_and_edge(vehicle) -> None:
    text = to_mermaid(vehicle)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> boot" in lines
    for s in vehicle.states:
        assert any(re.fullmatch(rf'    state "{s}( \(.*\))?" as {s}', line) for line in lines), s
    for src, dst, label in _expected_edges(vehicle):
        assert f"    {src} --> {dst}: {label}" in lines
    assert "    boot --> safe_mode: post_failed (after 5 s)" in lines
    edge_lines = [line for line in lines if " --> " in line and "[*]" not in line]
    assert len(edge_lines) == len(_expected_edges(vehicle)) + len(vehicle.timeouts)
    assert "    estop --> idle: reset [estop_released & faults_cleared]" in lines
    assert "    idle --> armed: arm [arming_checks_pass]" in lines


def test_mermaid_marks_latched_and_allocate_states(vehicle) -> None:
    text = to_mermaid(vehicle)
    assert 'state "estop (latched)" as estop' in text
    assert 'state "safe_mode (latched)" as safe_mode' in text
    assert 'state "active (allocate)" as active' in text
    assert 'state "idle" as idle' in text
    assert "    class safe_mode,estop latched" in text.splitlines()


def test_dot_has_every_state_and_edge(vehicle) -> None:
    text = to_dot(vehicle)
    assert text.startswith('digraph "qiki_vehicle" {') and text.rstrip().endswith("}")
    for s, spec in vehicle.states.items():
        node = [line for line in text.splitlines() if line.startswith(f'    "{s}" [')]
        assert len(node) == 1, s
        assert ("peripheries=2" in node[0]) == spec.latched
    for src, dst, label in _expected_edges(vehicle):
        assert f'    "{src}" -> "{dst}" [label="{label}"];' in text
    assert '    "boot" -> "safe_mode" [label="post_failed (after 5 s)", style=dashed];' in text
    assert '    "__start" -> "boot";' in text
