"""ruff and mypy run at zero findings on the configuration in pyproject.toml (docs/habits.md).

Both run as subprocesses with the executables next to the interpreter running the tests
(the venv's), from the repository root, so ``make test`` and CI enforce them. mypy keeps
its cache in ``.mypy_cache`` (about 6 s cold, 1 s warm on the reference machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    if not exe.exists():
        pytest.fail(f"{exe} not found: install the test extras (pip install -e '.[test]')")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean() -> None:
    r = _run("ruff", "check", "--no-cache", ".")
    assert r.returncode == 0, f"ruff check . found:\n{r.stdout}{r.stderr}"


def test_mypy_is_clean() -> None:
    r = _run("mypy")  # files, strictness and cache dir from [tool.mypy] in pyproject.toml
    assert r.returncode == 0, f"mypy found:\n{r.stdout}{r.stderr}"
