"""Error tree of the hardware abstraction layer.

Vendor exceptions (python-can, cantools, pyserial, pymodbus) are translated once at the
backend boundary into these classes and chained with ``raise ... from``. An expected
timeout is a return value, never an exception.
"""


def one_line(exc: object, max_chars: int | None = 400) -> str:
    r"""Fold a vendor message onto one line for an error of ours (K01/K02: one-line errors).

    Parameters
    ----------
    exc : object
        An exception or any text; an exception with an empty message gives its type name.
    max_chars : int or None, optional
        Longest result (default 400 characters); a longer text is cut and ends in
        ``...``. None: no limit.

    Returns
    -------
    str
        Runs of white space (new lines included) folded to single spaces; other control
        characters and unprintable code points (a vendor parser quoting binary garbage)
        shown as ``\xNN``/``\uNNNN`` escapes, so the line is safe on any terminal.
    """
    text = " ".join(str(exc).split())
    if not text and isinstance(exc, BaseException):
        return type(exc).__name__
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return text


class HalError(Exception):
    """Base class of every error raised by :mod:`hal`."""


class BusConfigError(HalError):
    """A bus or database description is unusable (bad DBC, unknown interface, bad URL).

    The message is one line and names the file (and signal/message) at fault, so that the
    command line can print it as is and exit with status 2 (SAFETY.md K01/K02).
    """


class BusError(HalError):
    """A bus failed at run time (adapter gone, send refused, port closed)."""


class DeviceUnavailableError(BusError):
    """A port or adapter that the rig names cannot be opened.

    Missing, busy, or permission denied (the CLI prints one line and exits with its
    "hardware unavailable" status).

    The message is one line naming the device and the OS reason, e.g.
    ``serial link /dev/ttyUSB0: cannot open: [Errno 2] No such file or directory``.
    """
