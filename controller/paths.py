"""Finding the data folders (``dbc/``, ``fsm_configs/``, ``rigs/``, ``missions/``).

A relative path named by the user or by a config file is looked up, in order:

1. as given, relative to the current directory;
2. relative to the *data root* of the file that names it (the folder above ``rigs/``,
   ``missions/``...), so a rig in a checkout finds the checkout's ``dbc/``;
3. under the installed data root ``<prefix>/share/qiki`` (``pip install .`` puts the data
   folders there, see ``pyproject.toml``), so the default rig loads from a wheel.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

DATA_FOLDERS = ("dbc", "fsm_configs", "rigs", "missions")


def installed_data_root() -> Path | None:
    """Return ``<prefix>/share/qiki`` of the running interpreter if it exists."""
    for base in (sysconfig.get_path("data"), sys.prefix):
        root = Path(base) / "share" / "qiki"
        if root.is_dir():
            return root
    return None


def checkout_data_root() -> Path:
    """Return the source checkout's root (the folder holding ``controller/``)."""
    return Path(__file__).resolve().parent.parent


def resolve_data_path(name: str | Path, relative_to: str | Path | None = None) -> Path:
    """Find a data file by the rules in the module docstring.

    Parameters
    ----------
    name : str or Path
        Path as written by the user or in a config file.
    relative_to : str or Path, optional
        The config file that names ``name``; its data root is searched second.

    Returns
    -------
    Path
        The first existing candidate, or ``Path(name)`` unchanged when none exists (the
        caller's open then reports the missing file under the name the user wrote).
    """
    p = Path(name)
    if p.is_absolute() or p.exists():
        return p
    candidates: list[Path] = []
    if relative_to is not None:
        ref = Path(relative_to).resolve()
        candidates += [ref.parent / p, ref.parent.parent / p]
    candidates.append(checkout_data_root() / p)
    inst = installed_data_root()
    if inst is not None:
        candidates.append(inst / p)
    for c in candidates:
        if c.exists():
            return c
    return p
