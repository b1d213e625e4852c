"""Schema of the flight record's settings: the rig's ``record:`` section (docs/flight-record.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from controller.config.common import Strict

#: Longest period between two snapshots (s): a replay ``--from T`` never runs more than
#: this much of the record before T.
MAX_SNAPSHOT_PERIOD_S = 3600.0


class RecordCfg(Strict):
    """What ``run.mcap`` holds besides the run itself (issue 12).

    Attributes
    ----------
    snapshot_period_s : float
        A ``/snapshot`` of the controller's state every this much run time (s; default
        5 s), besides one at every new fault: ``qiki replay RUN --from T`` starts from the
        newest one at or before T. One snapshot costs about a millisecond of the tick
        that ends the period and some 20 kB of record.
    """

    snapshot_period_s: Annotated[float, Field(gt=0.0, le=MAX_SNAPSHOT_PERIOD_S)] = 5.0
