"""The layer contracts of pyproject.toml [tool.importlinter] hold (docs/layers.md).

Runs import-linter's ``lint-imports`` from the interpreter's own environment, so every
``make test`` (and CI) enforces: protocols <- hal <- controller, hal never imports
controller, emulation imported only by the composition room, runtime never imports the
CLI or the field tools, pure cores free of I/O, no import cycles.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> Path:
    exe = Path(sys.executable).parent / ("lint-imports.exe" if sys.platform == "win32" else "lint-imports")
    if not exe.exists():
        pytest.fail(f"{exe} missing: install the test extras (pip install -e '.[test]')")
    return exe


def test_import_contracts_are_kept():
    # the checkout under test, whatever the environment's install points at
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([str(_lint_imports()), "--no-cache", str(ROOT / "pyproject.toml")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout
