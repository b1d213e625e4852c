"""The PDU in the power component: its health, its energy counter and the valve-rail relay.

:class:`PduUnit` is what :class:`controller.components.power.PowerSubsystem` does with a
QIKI PDU (SAFETY.md D10, D11, O01):

* **the tick's snapshot** (:meth:`PduUnit.observe`, read phase): the PDU snapshot is read
  from the poller once per tick; health, the relay checks and the safe stop judge that
  one (issue 16: a recorded snapshot read is an input of the tick, taped per call);
* **health** (:meth:`PduUnit.health`, per tick): stale or missing data, or a fault flag;
  judged once per new snapshot while the data is fresh (then it depends on the snapshot
  only), every tick otherwise (a stale reason names the data's age);
* **energy** (:meth:`PduUnit.observe`, per tick): the PDU's energy counter, first and last
  finite sample, for the ``power`` summary;
* **valve-rail relay**: :meth:`PduUnit.request_rail` queues one absolute coil write with
  read-back (never blocks, never retried); :meth:`PduUnit.rail_condition` judges the
  read-back within :data:`RELAY_CONFIRM_TIMEOUT_S` and, once confirmed, checks that later
  fresh polls agree (the relay can drop out on its own); :meth:`PduUnit.open_rail_at_close`
  leaves the relay open at the end of a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from hal.devices.pdu import RELAY_QUANTITIES, Pdu, pdu_health
from hal.modbus.poller import DeviceSnapshot, Ticket
from hal.snapshot import JsonValue, SnapshotError, State, apply, capture

__all__ = ["RELAY_CONFIRM_TIMEOUT_S", "PduUnit"]

#: Bound (s) for the PDU's read-back to confirm a valve-rail relay command. The write goes
#: out at the next poll step (lockstep: next tick; real time: the worker is woken), and
#: costs one write plus one read, each bounded by the bus timeout (<= 0.1 s by default);
#: 0.5 s leaves room for a BMS poll in flight on the same half-duplex bus.
RELAY_CONFIRM_TIMEOUT_S = 0.5


class PduUnit:
    """One PDU of the power component: health, energy counter, valve-rail relay.

    Parameters
    ----------
    name : str
        Device name (events and POST).
    pdu : Pdu
        The driver (its poller publishes the snapshots and executes the writes).
    log : callable ``(now_s, kind, **fields)``
        Event sink (the power component adds the tick).
    realtime : bool
        True: a worker thread executes the writes (the end-of-run open waits for it,
        bounded); False: lockstep, the end-of-run open steps the poller itself.

    Attributes
    ----------
    rail_closed_requested : bool
        The valve-rail state last commanded (False before any command).
    relay_confirmed, relay_failures : int
        Relay commands confirmed by read-back / not confirmed (summary).
    """

    def __init__(self, name: str, pdu: Pdu, log: Callable[..., None], realtime: bool) -> None:
        self.name = name
        self.pdu = pdu
        self._log = log
        self.realtime = realtime
        self.rail_closed_requested = False
        self.relay_confirmed = 0
        self.relay_failures = 0
        self._ticket: Ticket | None = None
        self._requested_at_s = 0.0
        self._confirmed_at_s: float | None = None
        self._confirm_reported = False
        self._judged_snap: DeviceSnapshot | None = None
        self._judged_reason: str | None = None
        self._seen: DeviceSnapshot | None = None
        #: The snapshot read by this tick's :meth:`observe` (None before the first read,
        #: and after :meth:`restore`: :meth:`tick_snapshot` then asks the poller).
        self._tick_snap: DeviceSnapshot | None = None
        self._energy_first_wh: float | None = None
        self._energy_last_wh: float | None = None

    # ------------------------------------------------------------------ snapshot
    #: The unit's state in a snapshot (issue 12 part 4), besides the pending relay write.
    SNAPSHOT_FIELDS = ("rail_closed_requested", "relay_confirmed", "relay_failures", "_requested_at_s",
                       "_confirmed_at_s", "_confirm_reported", "_judged_snap", "_judged_reason", "_seen",
                       "_energy_first_wh", "_energy_last_wh")

    def snapshot(self) -> State:
        """Return the relay bookkeeping, health verdict and energy samples, and the last relay write.

        The write (the valve-rail coil, to ``rail_closed_requested``) is named, not its
        outcome: asking a ticket whether it is done is an input of the tick (recorded when
        first seen), so a snapshot never asks; :meth:`restore` has the poller resume it
        from the record.
        """
        return {**capture(self, self.SNAPSHOT_FIELDS), "relay_operations": self.pdu.relay_operations,
                "ticket": self._ticket is not None}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`; the last relay write is resumed by the poller.

        Raises
        ------
        SnapshotError
            When a relay write was made and the poller cannot resume one (only a replay's
            poller can: it reads the write and its outcome back from the record).
        """
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._tick_snap = None
        ops = state.get("relay_operations")
        self.pdu.relay_operations = ops if isinstance(ops, int) else 0
        self._ticket = None
        if state.get("ticket") is True:
            resume = getattr(self.pdu.poller, "resume_write", None)
            if resume is None:
                raise SnapshotError(f"{self.name}: this poller cannot resume a relay write")
            self._ticket = resume(self.pdu.device, RELAY_QUANTITIES["valve_rail"], self.rail_closed_requested)

    # ------------------------------------------------------------------ health, energy
    def tick_snapshot(self) -> DeviceSnapshot:
        """Return this tick's PDU snapshot (read by :meth:`observe`; from the poller before any read)."""
        snap = self._tick_snap
        return self.pdu.snapshot() if snap is None else snap

    def health(self, now_s: float) -> str | None:
        """Why the PDU is not healthy, or None (per tick; :func:`hal.devices.pdu.pdu_health`).

        Fresh data: the verdict depends on the snapshot only (no data, fault flags), so it
        is computed once per new snapshot. Stale or missing data: computed each call (the
        reason names the age at ``now_s``).
        """
        snap = self.tick_snapshot()
        if not snap.is_fresh(now_s):
            return pdu_health(snap, now_s)
        if snap is not self._judged_snap:
            self._judged_snap = snap
            self._judged_reason = pdu_health(snap, now_s)
        return self._judged_reason

    def observe(self) -> None:
        """Read phase (per tick): read the tick's PDU snapshot; keep the first and last finite energy sample.

        The snapshot is read from the poller here only, once per tick (after the lockstep
        poll step); :meth:`health`, :meth:`rail_condition` and
        :meth:`open_rail_found_closed` use it (:meth:`rail_open_confirmed`, the safe
        stop's, reads the poller itself).
        """
        snap = self._tick_snap = self.pdu.snapshot()
        if snap is self._seen:
            return
        self._seen = snap
        e = snap.values.get("energy_used_wh")
        if isinstance(e, float) and math.isfinite(e):
            if self._energy_first_wh is None:
                self._energy_first_wh = e
            self._energy_last_wh = e

    def energy_used_wh(self) -> float | None:
        """Energy the PDU counted over the run (last minus first sample), Wh; None without samples."""
        if self._energy_first_wh is not None and self._energy_last_wh is not None:
            return self._energy_last_wh - self._energy_first_wh
        return None

    # ------------------------------------------------------------------ valve-rail relay
    def request_rail(self, now_s: float, closed: bool) -> None:
        """Queue one absolute coil write with read-back (never blocks, never retried).

        :meth:`rail_condition` judges the read-back.
        """
        self.rail_closed_requested = closed
        self._ticket = self.pdu.request_relay("valve_rail", closed)
        self._requested_at_s = now_s
        self._confirmed_at_s = None
        self._confirm_reported = False
        self._log(now_s, "relay_command", device=self.name, relay="valve_rail", closed=closed)

    def open_rail_found_closed(self, now_s: float) -> bool:
        """In ``boot``: command the valve-rail relay open if this run finds it closed (once).

        A controller killed while armed leaves the relay closed (the PDU latches its coil;
        SAFETY.md T04): the restart must land in ``idle``, so it opens the relay itself
        rather than fail POST on "valve rail closed at POST". Only before this run has sent
        any relay command, and only on a fresh sample that reads the relay closed; POST
        still waits for a later sample that reads it open (:func:`hal.devices.pdu.pdu_post_report`).

        Parameters
        ----------
        now_s : float
            Tick time, s.

        Returns
        -------
        bool
            True when the open command was queued on this call.
        """
        if self._ticket is not None or self.rail_closed_requested:
            return False
        snap = self.tick_snapshot()
        if not snap.is_fresh(now_s) or snap.values.get("valve_rail_enabled") is not True:
            return False
        self._log(now_s, "relay_found_closed", device=self.name, relay="valve_rail")
        self.request_rail(now_s, False)
        return True

    def rail_open_confirmed(self) -> bool:
        """Tell whether the valve-rail relay is confirmed open (safe stop, per tick).

        Returns
        -------
        bool
            True when the last relay command was "open" and its read-back confirmed it,
            or no command was ever sent and the last PDU sample reads the relay open.
        """
        t = self._ticket
        if t is None:  # read from the poller, not the tick's copy: the safe stop decides on
            # the newest sample even when a tick's read phase failed before :meth:`observe`
            return self.pdu.snapshot().values.get("valve_rail_enabled") in (False, 0)
        return (not self.rail_closed_requested) and t.done.is_set() and bool(t.ok)

    def _failed(self, now_s: float, want: str, reason: str) -> None:
        """Count and log a relay command that was not confirmed (once per command)."""
        if not self._confirm_reported:
            self._confirm_reported = True
            self.relay_failures += 1
            self._log(now_s, "relay_failed", relay="valve_rail", want=want, reason=reason)

    def rail_condition(self, now_s: float) -> str | None:
        """Fault reason of the valve-rail relay (per tick), or None.

        Not confirmed by read-back, not confirmed within :data:`RELAY_CONFIRM_TIMEOUT_S`,
        or confirmed and then read in the other state by a later fresh poll.
        """
        t = self._ticket
        if t is None:
            return None
        want = "closed" if self.rail_closed_requested else "open"
        if t.done.is_set():
            if not t.ok:
                self._failed(now_s, want, t.reason)
                return f"PDU: valve-rail relay not confirmed {want}: {t.reason}"
            if self._confirmed_at_s is None:
                self._confirmed_at_s = now_s
                self.relay_confirmed += 1
                self._log(now_s, "relay_confirmed", relay="valve_rail", closed=self.rail_closed_requested)
        elif now_s - self._requested_at_s > RELAY_CONFIRM_TIMEOUT_S:
            self._failed(now_s, want, "no read-back")
            return f"PDU: valve-rail relay read-back not confirmed {want} within {RELAY_CONFIRM_TIMEOUT_S} s"
        else:
            return None
        # confirmed: a later fresh poll must agree (the relay can drop out on its own)
        snap = self.tick_snapshot()
        if snap.sample_time_s is not None and snap.sample_time_s >= self._confirmed_at_s and snap.is_fresh(now_s):
            actual = snap.values.get("valve_rail_enabled")
            if actual is not None and bool(actual) != self.rail_closed_requested:
                return f"PDU: valve-rail relay reads {'closed' if actual else 'open'}, commanded {want}"
        return None

    def open_rail_at_close(self) -> None:
        """End the run: command the valve-rail relay open and flush the write.

        A run that stops in ``armed``/``active`` (duration elapsed) or right after a
        ``disable_valve_rail`` whose write is still queued must not leave the relay closed.
        Bounded: real time waits at most :data:`RELAY_CONFIRM_TIMEOUT_S` for the worker;
        lockstep executes the queued writes at once.
        """
        t = self._ticket
        pending = t is not None and not t.done.is_set()
        if not (self.rail_closed_requested or pending):
            return
        if self.rail_closed_requested:
            self.rail_closed_requested = False
            self._ticket = self.pdu.request_relay("valve_rail", False)
            try:
                self._log(self.pdu.poller.clock.now_s(), "relay_command", device=self.name, relay="valve_rail",
                          closed=False, reason="end of run")
            except Exception:  # noqa: BLE001 - the record may already be closed
                pass
        ticket = self._ticket
        assert ticket is not None  # closed requested or pending: a command was sent
        if self.realtime:
            ticket.done.wait(RELAY_CONFIRM_TIMEOUT_S)
        else:
            self.pdu.poller.step()
        if ticket.done.is_set() and ticket.ok:
            self.relay_confirmed += 1
        else:
            self.relay_failures += 1
