"""Optional modules: subsystems that a build may or may not carry."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module_name: str) -> ModuleType | None:
    """Import ``module_name``; None only if that module itself is absent.

    An import error *inside* the module (a missing dependency of it) is re-raised, so a
    broken subsystem is never silently skipped.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
