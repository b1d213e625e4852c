"""Bounded, non-blocking reads of the data files QIKI is given (rigs, DBCs, profiles...).

A path handed to QIKI may name anything: a FIFO (``open()`` blocks until a writer comes),
a character device (``/dev/zero`` never ends), a directory, or a file far larger than any
configuration. :func:`read_regular_file` refuses all of these without blocking and without
reading more than its cap (SAFETY.md K01-K03: bad input is one line, never a hang).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from hal.errors import HalError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Default size cap of one configuration file (bytes): 1 MiB.
MAX_CONFIG_BYTES = 1 << 20


class FileRefusedError(HalError):
    """A data file cannot be used: missing, unreadable, not a regular file, or too large.

    Parameters
    ----------
    path : str
        The file as the user named it.
    reason : str
        One line: what is wrong (``file not found``, ``not a regular file (FIFO)``...).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.path}: {self.reason}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES, display_name: str | None = None) -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes, never blocking.

    The file is opened with ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a
    writer) and checked with ``fstat`` on the open descriptor (no race between check and
    read); at most ``max_bytes + 1`` bytes are ever read, so a file that grows while it
    is read is refused too.

    Parameters
    ----------
    path : str or Path
        The file to read.
    max_bytes : int, optional
        Largest accepted size (bytes), default :data:`MAX_CONFIG_BYTES` (1 MiB).
    display_name : str, optional
        Name used in the error (default ``str(path)``).

    Returns
    -------
    bytes
        The file's content.

    Raises
    ------
    FileRefusedError
        Missing, permission denied, a name the OS cannot take (too long, a NUL byte), a
        directory/FIFO/device/socket, or larger than ``max_bytes``; the message is one
        line naming the file and the reason.
    """
    name = display_name or str(path)
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefusedError(name, "file not found") from None
    except IsADirectoryError:
        raise FileRefusedError(name, "is a directory, not a file") from None
    except PermissionError:
        raise FileRefusedError(name, "cannot read file: permission denied") from None
    except OSError as exc:
        raise FileRefusedError(name, f"cannot open file: {exc.strerror or exc}") from None
    except ValueError:  # os.open refuses a name holding a NUL byte (a YAML "\0" escape)
        raise FileRefusedError(name, "cannot open file: the name holds a NUL byte") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefusedError(name, f"is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise FileRefusedError(name, f"file is {st.st_size} bytes, above the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileRefusedError(name, f"file is above the {max_bytes}-byte limit")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefusedError(name, f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_regular_text(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES, display_name: str | None = None,
                      encoding: str = "utf-8") -> str:
    """:func:`read_regular_file`, decoded (``encoding``, default UTF-8).

    Raises
    ------
    FileRefusedError
        As :func:`read_regular_file`, and when the bytes are not valid ``encoding``
        (the message names the byte offset).
    """
    name = display_name or str(path)
    data = read_regular_file(path, max_bytes, name)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileRefusedError(name, f"not {encoding} text: byte {exc.start} is 0x{data[exc.start]:02x}") from None
