"""Schema of a rig's ``record:`` section: what the flight record of a run keeps (docs/flight-record.md).

``snapshot_period_s`` sets how often the record holds a ``/snapshot`` of the controller's
state (issue 12 part 4, :mod:`controller.record.snapshots`).

``mode`` chooses the sink of the run's records (:func:`controller.record.session.open_flight_record`):

``full`` (default)
    Everything, in ``runs/<ts>/run.mcap``.
``triggered``
    No ``run.mcap``: a rolling window of the last ``pre_s`` seconds of run time is kept
    in memory, and every trigger event writes the window plus the next ``post_s``
    seconds to its own ``runs/<ts>/event-<NNN>-<code>-<t_s>.mcap``
    (:mod:`controller.record.triggered`), for field runs too long to record whole.
``off``
    No flight record at all (``summary.json``, ``events.jsonl`` and the CAN logs stay).

``trigger_codes`` lists the event codes (:mod:`controller.record.codes`) that trigger;
absent (None): every fault event that is raised (kind ``fault`` with a reason; not its
clearing). An unknown code is refused when the rig loads (``qiki rig check``), naming
``record.trigger_codes[i]``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from controller.config.common import NonNegFloat, Strict
from controller.record.codes import entry

#: Longest period between two snapshots (s): a replay ``--from T`` never runs more than
#: this much of the record before T.
MAX_SNAPSHOT_PERIOD_S = 3600.0
#: Longest pre- or post-window (s of run time): bounds the memory of the ring buffer.
MAX_WINDOW_S = 600.0
#: Most trigger codes in one rig.
MAX_TRIGGER_CODES = 100


def _known_code(code: int) -> int:
    if entry(code) is None:
        raise ValueError(f"{code} is not an event code (docs/event-codes.md)")
    return code


class RecordCfg(Strict):
    """The ``record:`` section of a rig (all optional).

    Attributes
    ----------
    snapshot_period_s : float
        A ``/snapshot`` of the controller's state every this much run time (s; default
        5 s), besides one at every new fault: ``qiki replay RUN --from T`` starts from the
        newest one at or before T. One snapshot costs about a millisecond of the tick
        that ends the period and some 20 kB of record.
    mode : {"full", "triggered", "off"}
        Which flight record the run writes (module docstring). Default ``full``.
    pre_s : float
        Triggered mode: seconds of run time before a trigger written to its event file
        (0 .. :data:`MAX_WINDOW_S`). Default 10.
    post_s : float
        Triggered mode: seconds of run time after the (last) trigger written to the same
        file; a trigger inside a post-window extends it (0 .. :data:`MAX_WINDOW_S`).
        Default 5.
    trigger_codes : list of int or None
        Triggered mode: event codes that trigger (at most :data:`MAX_TRIGGER_CODES`, each
        a code of :data:`controller.record.codes.EVENT_CODES`); None: every raised fault.
    max_files : int
        Triggered mode: most event files one run writes (1 .. 10000); later triggers are
        counted, not written. Default 100.
    buffer_max_n : int
        Triggered mode: most messages the ring buffer holds (its memory bound besides
        ``pre_s``; the oldest go first). Default 100000 (about 170 s of the virtual rig
        at 100 Hz, which records about 600 messages per second).
    """

    snapshot_period_s: Annotated[float, Field(gt=0.0, le=MAX_SNAPSHOT_PERIOD_S)] = 5.0
    mode: Literal["full", "triggered", "off"] = "full"
    pre_s: Annotated[NonNegFloat, Field(le=MAX_WINDOW_S)] = 10.0
    post_s: Annotated[NonNegFloat, Field(le=MAX_WINDOW_S)] = 5.0
    trigger_codes: list[Annotated[int, AfterValidator(_known_code)]] | None = Field(
        default=None, max_length=MAX_TRIGGER_CODES)
    max_files: Annotated[int, Field(ge=1, le=10_000)] = 100
    buffer_max_n: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
