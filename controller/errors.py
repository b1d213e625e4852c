"""Error tree of the controller package.

Every error that reaches the command line is one line, ``PATH: key.path: what is wrong``,
and the command exits with status 2 (SAFETY.md K03-K06).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hal.errors import DeviceUnavailableError


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


@contextmanager
def opening(path: str, key: str) -> Iterator[None]:
    """Name the rig key of a port that cannot be opened (ISSUE 10 part 4).

    A :class:`hal.errors.DeviceUnavailableError` raised inside the block is raised again
    as ``PATH: key: <device and OS reason>`` (same class, chained), so the CLI's one line
    names the rig file, the key, the device and the reason.

    Parameters
    ----------
    path : str
        The rig file as the user named it.
    key : str
        Key path of the bus in the rig (``buses.mcu``).
    """
    try:
        yield
    except DeviceUnavailableError as exc:
        raise DeviceUnavailableError(f"{path}: {key}: {exc}") from exc
