"""Error tree of the controller package.

Every error that reaches the command line is one line, ``PATH: key.path: what is wrong``,
and the command exits with status 2 (SAFETY.md K03-K06).
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base class of every error raised by :mod:`controller`."""


class ConfigError(ControllerError):
    """A configuration file (rig, mission, profile) is invalid.

    Parameters
    ----------
    path : str
        The file at fault, as the user named it.
    key : str
        Dotted key path inside the file (``thrusters[2].max_thrust_n``); empty when the
        whole file is at fault (missing, not YAML).
    message : str
        What is wrong, one line.
    """

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.message = " ".join(str(message).split())
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Return ``PATH: key: message`` (``PATH: message`` without a key)."""
        if self.key:
            return f"{self.path}: {self.key}: {self.message}"
        return f"{self.path}: {self.message}"


class FsmDefinitionError(ConfigError):
    """A state-machine YAML file fails a load-time check (SAFETY.md K05)."""
