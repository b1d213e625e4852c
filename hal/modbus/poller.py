"""Polling Modbus devices without ever blocking the control tick.

The tick only *reads* :class:`DeviceSnapshot` objects (immutable, replaced whole after
every poll) and *submits* writes (:meth:`ModbusPoller.submit_write`, returns at once).
All bus traffic happens in :class:`ModbusPoller`:

* real time: :meth:`ModbusPoller.start` runs one worker thread per poller (one per bus:
  RS-485 is half duplex, transactions are serial anyway). Each device is polled on its
  own ``poll_period_s`` with a ``poll_deadline_s`` budget; missed periods are skipped,
  never caught up in a burst. Queued writes go first.
* lockstep: :meth:`ModbusPoller.step` does the same synchronously at the simulated time
  the loop passes in (no thread, no sleeping).

A poll is all-or-nothing: the snapshot's values change only when every read of the
device succeeded within the deadline, so one snapshot never mixes two polls. Freshness
(SAFETY.md D10): a device is *stale* when no complete poll succeeded for
``stale_after_polls`` periods, or when the last ``stale_after_polls`` polls all failed.
Failed polls never touch the values (SAFETY.md D11: exception responses, wrong unit ids
and CRC noise never reach the snapshot); they are counted per device and per kind.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.modbus_profile import DeviceProfile, Value, decode, decode_block, encode, plan_reads
from hal.clock import Clock
from hal.modbus.link import ModbusFailure, ModbusLink, frozen_replace


@dataclass(frozen=True)
class PolledDevice:
    """One device on a poller.

    Attributes
    ----------
    name : str
        Device name in the rig (``bms``, ``pdu``).
    link : ModbusLink
        The bus it hangs on.
    profile : DeviceProfile
        Its register map and polling policy.
    unit_id : int
        Its Modbus unit id (1..247).
    quantities : tuple of str or None
        Quantities to poll (default: all in the profile).
    """

    name: str
    link: ModbusLink
    profile: DeviceProfile
    unit_id: int
    quantities: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeviceSnapshot:
    """Latest known state of one device (immutable; read by the tick).

    Attributes
    ----------
    device : str
        Device name.
    values : mapping of str to value
        Physical values of the last complete successful poll (empty before the first).
    sample_time_s : float or None
        Clock time (s) at which that poll completed; None before the first.
    stale_after_s : float
        ``stale_after_polls * poll_period_s`` (s).
    stale_after_polls : int
        The profile's limit of consecutive failed polls.
    polls_ok, polls_failed : int
        Complete polls that succeeded / failed.
    consecutive_failures : int
        Failed polls since the last good one.
    deadline_misses : int
        Polls abandoned because they overran ``poll_deadline_s``.
    transactions : int
        Modbus transactions issued for this device (polls and writes).
    failures_by_kind : mapping of str to int
        Failed transactions by :attr:`ModbusFailure.kind` (plus ``deadline``, ``decode``).
    last_failure : ModbusFailure or None
        Most recent failed transaction.
    """

    device: str
    values: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    sample_time_s: float | None = None
    stale_after_s: float = 0.0
    stale_after_polls: int = 3
    polls_ok: int = 0
    polls_failed: int = 0
    consecutive_failures: int = 0
    deadline_misses: int = 0
    transactions: int = 0
    failures_by_kind: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_failure: ModbusFailure | None = None

    def age_s(self, now_s: float) -> float:
        """Seconds since the last good poll (``inf`` if none)."""
        return float("inf") if self.sample_time_s is None else now_s - self.sample_time_s

    def is_fresh(self, now_s: float) -> bool:
        """Return True if the values may be used at ``now_s`` (see module doc). Per-tick function."""
        t = self.sample_time_s  # age_s inlined (three calls a tick)
        return t is not None and now_s - t <= self.stale_after_s and self.consecutive_failures < self.stale_after_polls

    @property
    def failures(self) -> int:
        """All failed transactions of this device."""
        return sum(self.failures_by_kind.values())

    def as_dict(self) -> dict[str, object]:
        """Counters as a plain dict (for ``summary.json``)."""
        return {
            "transactions": self.transactions, "failures": self.failures,
            "failures_by_kind": dict(self.failures_by_kind), "polls_ok": self.polls_ok,
            "polls_failed": self.polls_failed, "deadline_misses": self.deadline_misses,
        }


@dataclass
class WriteTicket:
    """A queued absolute write with read-back (returned at once by ``submit_write``).

    Attributes
    ----------
    device, quantity : str
        Target.
    value : bool or float
        Requested physical value.
    done : threading.Event
        Set when the write and read-back finished (either way).
    ok : bool
        True when the write was acknowledged AND the read-back equals ``value``.
    readback : value or None
        Value read back after the write.
    failure : ModbusFailure or None
        The failed transaction (write or read-back); None when both were answered, also
        when the read-back differs from ``value`` (then only ``reason`` says so).
    reason : str
        One line for the operator ("" when ok).
    """

    device: str
    quantity: str
    value: object
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    readback: object = None
    failure: ModbusFailure | None = None
    reason: str = ""


#: One block's last decode: the reply's values, their types, ``decode_block``'s result.
_BlockDecode = tuple[list[int] | list[bool], list[type], dict[str, Value]]


def _block_values(st: _DeviceState, index: int, reply: list[int] | list[bool]) -> dict[str, Value]:
    """Return ``decode_block(st.blocks[index], reply)``, decoded again only when the reply changed.

    A block whose reply holds the same values of the same types as the last one decodes
    to the same values (``decode_block`` is a function of the block, fixed per run, and
    of the reply's values and their types: a float or a numpy integer equal to an int is
    refused where the int is taken), so the last result is returned (about half of a
    lockstep run's blocks, issue 16). The result is the poller's own: the caller copies
    what it hands on (:meth:`ModbusPoller._poll` copies the bitfields' dicts).

    Raises
    ------
    ProtocolError
        As :func:`decode_block` (nothing is remembered then).
    """
    types = list(map(type, reply))
    last = st.decoded[index]
    if last is None or last[1] != types or last[0] != reply:  # types first: list == list cannot raise
        last = st.decoded[index] = (list(reply), types, decode_block(st.blocks[index], reply))
    return last[2]


class _DeviceState:
    def __init__(self, dev: PolledDevice, first_due_ns: int) -> None:
        self.dev = dev
        self.blocks = plan_reads(dev.profile, list(dev.quantities) if dev.quantities is not None else None)
        # per block: the quantities decoded to a dict (bitfields), and the last decode (_block_values)
        self.bitfields = [tuple(q.name for q, _ in b.members if not q.is_bit and q.data_type == "bitfield")
                          for b in self.blocks]
        self.decoded: list[_BlockDecode | None] = [None] * len(self.blocks)
        # integer nanoseconds: periods never drift against the SimClock
        self.next_due_ns = first_due_ns
        self.period_ns = int(round(dev.profile.poll_period_s * 1e9))
        p = dev.profile
        self.snapshot = DeviceSnapshot(
            device=dev.name, stale_after_s=p.stale_after_polls * p.poll_period_s,
            stale_after_polls=p.stale_after_polls,
        )


class TicketDone(Protocol):
    """The ``done`` flag of a write ticket (a ``threading.Event`` on the live poller)."""

    def is_set(self) -> bool:
        """Return True once the write and its read-back finished."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the write to finish; return :meth:`is_set`."""
        ...


class Ticket(Protocol):
    """What the tick reads of a queued write (:class:`WriteTicket`, or a recorded one)."""

    @property
    def done(self) -> TicketDone:
        """Set when the write and read-back finished."""
        ...

    @property
    def ok(self) -> bool:
        """True when the write was acknowledged and read back equal."""
        ...

    @property
    def reason(self) -> str:
        """One line for the operator ("" when ok)."""
        ...


class PollerPort(Protocol):
    """What the tick uses of a Modbus poller: snapshots and queued writes (never blocks).

    :class:`ModbusPoller` is the live one; the flight record taps it and a replay stands
    in for it (``controller.record.taps.TapPoller``, ``controller.record.replay_ports.ReplayPoller``).
    """

    @property
    def devices(self) -> list[str]:
        """Device names on this poller."""
        ...

    @property
    def clock(self) -> Clock:
        """The poller's clock."""
        ...

    def snapshot(self, device: str) -> DeviceSnapshot:
        """Return the latest snapshot of ``device``."""
        ...

    def submit_write(self, device: str, quantity: str, value: object) -> Ticket:
        """Queue an absolute write with read-back."""
        ...

    def step(self, now_s: float | None = None) -> None:
        """Lockstep: run the polls due at ``now_s``."""
        ...

    def align_to_grid(self, origin_s: float, period_s: float) -> None:
        """Real time: move the worker's polls between the control ticks."""
        ...

    def start(self) -> object:
        """Start the worker thread."""
        ...

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the worker thread; True when it ended."""
        ...


class ModbusPoller:
    """Polls devices on their periods and publishes snapshots (see module doc).

    Parameters
    ----------
    devices : sequence of PolledDevice
        Devices, at least one, unique names.
    clock : hal.clock.Clock
        Time source: a SimClock in lockstep (with :meth:`step`), MonotonicClock in real
        time (with :meth:`start`).

    Raises
    ------
    ValueError
        No device (the worker's wake-up and :meth:`step` need one), or duplicate device
        names.
    """

    def __init__(self, devices: Sequence[PolledDevice], clock: Clock) -> None:
        names = [d.name for d in devices]
        if not names:
            raise ValueError("a ModbusPoller needs at least one device")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate device names in {names}")
        self.clock = clock
        now_ns = clock.now_ns()
        self._states = {d.name: _DeviceState(d, now_ns) for d in devices}
        self._commands: deque[WriteTicket] = deque()
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_errors = 0
        self.last_worker_error = ""
        self._grid_ns: tuple[int, int] | None = None

    # ------------------------------------------------------------------ tick side

    def snapshot(self, device: str) -> DeviceSnapshot:
        """Latest snapshot of ``device`` (never blocks). Per-tick function.

        Raises
        ------
        KeyError
            Unknown device.
        """
        return self._states[device].snapshot

    @property
    def devices(self) -> list[str]:
        """Device names."""
        return list(self._states)

    def submit_write(self, device: str, quantity: str, value: object) -> WriteTicket:
        """Queue one absolute write (coil or single holding register) with read-back.

        Never blocks; the worker (or the next :meth:`step`) executes it before any poll.
        Never retried: on failure the caller decides (SAFETY.md: no retries on writes).

        Raises
        ------
        KeyError
            Unknown device or quantity.
        ValueError
            Quantity not writable.
        """
        q = self._states[device].dev.profile.quantity(quantity)
        if not q.writable:
            raise ValueError(f"{device}.{quantity} is not writable")
        ticket = WriteTicket(device, quantity, value)
        self._commands.append(ticket)
        self._wake.set()
        return ticket

    def align_to_grid(self, origin_s: float, period_s: float) -> None:
        """Start every later poll half a control period after a tick deadline.

        The worker's Python work (transactions, decoding, publishing) needs the GIL; if it
        starts when a tick is due, the tick waits for it. Poll periods are whole numbers of
        control periods, so once the polls sit between the ticks they stay there.

        Called from the tick thread while the worker runs, without the bus lock (which a
        transaction may hold for a whole timeout): the grid is set before any due time is
        moved, and the worker passes every due time it writes through :meth:`_on_grid`, so
        whichever thread writes last leaves it on the grid.

        Parameters
        ----------
        origin_s : float
            A tick deadline (clock seconds), e.g. the first tick's start.
        period_s : float
            Control period (s), > 0.

        Raises
        ------
        ValueError
            ``period_s`` not positive and finite.
        """
        if not (period_s > 0 and math.isfinite(period_s) and math.isfinite(origin_s)):
            raise ValueError(f"period_s must be positive and finite, got {period_s}")
        self._grid_ns = (int(round(origin_s * 1e9)), int(round(period_s * 1e9)))
        for st in self._states.values():
            st.next_due_ns = self._on_grid(st.next_due_ns)

    def _on_grid(self, t_ns: int) -> int:
        """Return the first mid-period instant of the control grid at or after ``t_ns``."""
        if self._grid_ns is None:
            return t_ns
        origin, period = self._grid_ns
        mid = origin + period // 2
        return mid + -(-(t_ns - mid) // period) * period

    # ------------------------------------------------------------------ bus side

    def _count(self, st: _DeviceState, result: object, n_tx: int = 1) -> None:
        snap = st.snapshot
        if isinstance(result, ModbusFailure):
            kinds = dict(snap.failures_by_kind)
            kinds[result.kind] = kinds.get(result.kind, 0) + 1
            st.snapshot = frozen_replace(snap, transactions=snap.transactions + n_tx,
                                         failures_by_kind=MappingProxyType(kinds), last_failure=result)
        else:  # the failure counts and the last failure stay (the same immutable mapping)
            st.snapshot = frozen_replace(snap, transactions=snap.transactions + n_tx)

    def _execute_write(self, t: WriteTicket) -> None:
        st = self._states[t.device]
        dev = st.dev
        q = dev.profile.quantity(t.quantity)
        try:
            words = encode(q, t.value)  # type: ignore[arg-type]
        except ProtocolError as exc:
            t.reason = f"{t.device}.{t.quantity}: {exc}"
            t.done.set()
            return
        if q.is_bit:
            res = dev.link.write_coil(q.address, bool(words[0]), dev.unit_id)
        else:
            res = dev.link.write_register(q.address, int(words[0]), dev.unit_id)
        self._count(st, res)
        if isinstance(res, ModbusFailure):
            t.failure, t.reason = res, f"{t.device}.{t.quantity}: write failed ({res.kind}: {res.detail})"
            t.done.set()
            return
        back = (dev.link.read_bits(q.table, q.address, 1, dev.unit_id) if q.is_bit
                else dev.link.read_registers(q.table, q.address, q.registers, dev.unit_id))
        self._count(st, back)
        if isinstance(back, ModbusFailure):
            t.failure, t.reason = back, f"{t.device}.{t.quantity}: read-back failed ({back.kind}: {back.detail})"
            t.done.set()
            return
        t.readback = decode(q, back)
        t.ok = t.readback == decode(q, words)
        if not t.ok:
            t.reason = f"{t.device}.{t.quantity}: read-back {t.readback!r} != written {t.value!r}"
        t.done.set()

    def _poll(self, st: _DeviceState) -> None:
        dev = st.dev
        t0 = self.clock.now_s()
        values: dict[str, Value] = {}
        failure: ModbusFailure | None = None
        for index, block in enumerate(st.blocks):
            if self.clock.now_s() - t0 > dev.profile.poll_deadline_s:
                failure = ModbusFailure("timeout", detail=f"{dev.name}: poll overran {dev.profile.poll_deadline_s} s")
                kinds = dict(st.snapshot.failures_by_kind)
                kinds["deadline"] = kinds.get("deadline", 0) + 1
                st.snapshot = frozen_replace(st.snapshot, deadline_misses=st.snapshot.deadline_misses + 1,
                                             failures_by_kind=MappingProxyType(kinds))
                break
            if block.table in ("coil", "discrete"):
                res = dev.link.read_bits(block.table, block.address, block.count, dev.unit_id)
            else:
                res = dev.link.read_registers(block.table, block.address, block.count, dev.unit_id)
            self._count(st, res)
            if isinstance(res, ModbusFailure):
                failure = res
                break
            try:
                values.update(_block_values(st, index, res))
            except ProtocolError as exc:
                failure = ModbusFailure("corrupt", detail=f"{dev.name}: {exc}")
                break
            for name in st.bitfields[index]:  # each snapshot its own dicts, as a fresh decode gives
                v = values[name]
                if type(v) is dict:
                    values[name] = dict(v)
        snap = st.snapshot
        if failure is None:
            st.snapshot = frozen_replace(snap, values=MappingProxyType(values), sample_time_s=self.clock.now_s(),
                                         polls_ok=snap.polls_ok + 1, consecutive_failures=0)
        else:
            st.snapshot = frozen_replace(snap, polls_failed=snap.polls_failed + 1,
                                         consecutive_failures=snap.consecutive_failures + 1, last_failure=failure)

    def _run_once(self, now_ns: int) -> None:
        """Commands, then due polls (the worker then asks :meth:`_next_due_s`; a lockstep step does not)."""
        with self._io_lock:
            while self._commands:
                self._execute_write(self._commands.popleft())
            for st in self._states.values():
                if st.next_due_ns <= now_ns:
                    self._poll(st)
                    st.next_due_ns += st.period_ns
                    if st.next_due_ns <= self.clock.now_ns():  # behind: skip, never burst
                        st.next_due_ns = self.clock.now_ns() + st.period_ns
                    st.next_due_ns = self._on_grid(st.next_due_ns)

    def _next_due_s(self) -> float:
        """Return the earliest next poll time of the devices (s): the worker's wake-up."""
        with self._io_lock:
            return min(st.next_due_ns for st in self._states.values()) * 1e-9

    def step(self, now_s: float | None = None) -> None:
        """Lockstep: execute queued writes and every poll due at ``now_s``, synchronously.

        Parameters
        ----------
        now_s : float, optional
            Simulated time (default ``clock.now_s()``).
        """
        self._run_once(self.clock.now_ns() if now_s is None else int(round(now_s * 1e9)))

    # ------------------------------------------------------------------ real time

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                self._run_once(self.clock.now_ns())
                next_due = self._next_due_s()
            except Exception as exc:  # noqa: BLE001 - counted, never dies silently
                self.worker_errors += 1
                self.last_worker_error = f"{type(exc).__name__}: {exc}"
                next_due = self.clock.now_s() + 0.1
            wait_s = min(max(0.0, next_due - self.clock.now_s()), 0.1)
            if self._wake.wait(wait_s):
                self._wake.clear()

    def start(self) -> ModbusPoller:
        """Start the real-time worker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._worker, name="qiki-modbus-poller", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the worker; join within ``timeout_s``. Returns True if it ended.

        The join may take up to one link timeout if a transaction is in flight.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def worker_alive(self) -> bool:
        """True while the real-time worker runs."""
        return self._thread is not None and self._thread.is_alive()
