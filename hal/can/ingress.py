"""Per-message ingress checks on every received CAN frame.

A received frame becomes data only after these checks, in this order (SAFETY.md):

1. ``unknown_id`` -- the arbitration ID (or its standard/extended format) is not one the
   checker was given; error and remote frames are counted as ``error_frame`` /
   ``remote_frame`` and never decoded (F04).
2. ``dlc`` -- wrong DLC for a known ID: treated as unknown, never decoded (F03).
3. ``checksum`` -- the message's checksum signal differs from ``checksum_fn(id, data)``
   (F01).
4. ``counter`` -- alive counter repeat or skip raises a wrong-counter score (+1); an
   in-sequence frame lowers it (-1). At ``counter_invalid_score`` (5) the stream turns
   invalid and every frame is rejected until the score has decayed back to 0 (F02, D01).
   A repeated counter is always rejected (it is old data); a skip is accepted (frames
   were lost, the data is new) unless the stream is invalid. After the stream went
   stale, the next frame resynchronises the counter without a penalty (AUTOSAR E2E
   Profile 1 behaviour after a timeout).
5. ``range`` / ``enum`` -- a physical value outside the DBC ``[min|max]``, or a raw value
   of a signal with a VAL_ table that the table does not list (D03). A test that no raw
   value of the signal's field can fail (bounds spanning the whole field, a table naming
   every raw value; proved at build on the codec's own decode, see ``_field_within``)
   is not run per frame: its answer is always "pass".

Freshness (B01-B03) is judged from the receipt time of *accepted* frames on the caller's
monotonic clock (``now_s``), never ``msg.timestamp``: a stream is stale once no frame was
accepted for ``stale_after_periods`` x its period (DBC ``GenMsgCycleTime`` or
``IngressSpec.period_s``). With ``IngressSpec.regular=True`` (one frame per period
expected) the checker also watches the rhythm: a gap outside (1 +- 0.75) x period is
*irregular* (+1 to a score, a regular gap -1); a score >= 3 raises
:meth:`IngressChecker.timing_warning` (B02 "warning"), a score >= 6 makes the stream not
fresh (B02 "safe if it persists"), and a stream that is new or went stale becomes fresh
only after ``recover_frames`` (3) consecutive regular gaps, so one late frame or a burst
never makes it fresh (B02).

Every time comparison is made in integer nanoseconds (:func:`to_ns`), never on a float
boundary: with a 20 ms period and 3 periods allowed, two consecutive lost frames make a gap
of exactly 60 ms, which ``0.13 - 0.07 > 0.06`` would call stale (float rounding) and
``130_000_000 - 70_000_000 > 60_000_000`` does not; three lost frames (80 ms) are stale.

The checker is generic: the valve board protocol passes its CRC and counter/checksum
signal names; the ARS408 driver uses it with DLC/range/freshness only. No I/O, no sleep.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import can
from cantools.database.can import Signal

from hal.can.codec import DbcCodec, Decoded, _Entry
from hal.errors import BusConfigError, HalError
from hal.snapshot import JsonValue, SnapshotError, State, apply, capture, encode

#: Accepted frames of a regular stream over which :meth:`IngressChecker.received_fraction`
#: measures the receive rate (25 gaps: 0.5 s of a 50 Hz stream).
RATE_WINDOW_GAPS = 25

__all__ = ["IngressSpec", "StreamState", "IngressChecker", "REJECT_REASONS", "to_ns", "gap_exceeds"]

REJECT_REASONS = ("unknown_id", "error_frame", "remote_frame", "dlc", "checksum",
                  "counter", "range", "enum")

ChecksumFn = Callable[[int, bytes], int]


def to_ns(t_s: float) -> int:
    """Return a time or duration in integer nanoseconds.

    Parameters
    ----------
    t_s : float
        Time on the caller's clock or a duration, s.

    Returns
    -------
    int
        ``round(t_s * 1e9)``, ns. Loop times are multiples of the tick period, far coarser
        than 1 ns, so rounding removes the float error of sums and differences of them.
        :func:`gap_exceeds` and ``IngressChecker._accept`` (per frame) compute it inline:
        keep them in step.
    """
    return round(t_s * 1e9)


def gap_exceeds(later_s: float, earlier_s: float, limit_ns: int) -> bool:
    """Return True when ``later_s - earlier_s`` exceeds ``limit_ns``, compared in integer ns.

    Parameters
    ----------
    later_s, earlier_s : float
        Two times on the same clock, s.
    limit_ns : int
        The allowed gap, ns (e.g. :attr:`StreamState.stale_after_ns`).

    Returns
    -------
    bool
        ``to_ns(later_s) - to_ns(earlier_s) > limit_ns``: exactly the limit is not exceeded,
        whatever the float rounding of the two times (issue 15: two lost frames never trip).
    """
    return round(later_s * 1e9) - round(earlier_s * 1e9) > limit_ns  # to_ns inlined (per tick)


@dataclass(frozen=True)
class IngressSpec:
    """What to check on one message.

    Parameters
    ----------
    message : str
        DBC message name.
    counter_signal : str, optional
        Alive counter signal name (None: no counter check).
    counter_modulo : int, optional
        Counter wraps to 0 at this value (default 16, a 4-bit counter).
    checksum_signal : str, optional
        Checksum signal name (None: no checksum check).
    checksum_fn : callable ``(arbitration_id: int, data: bytes) -> int``, optional
        Expected checksum of a frame; required with ``checksum_signal``.
    period_s : float, optional
        Expected period, s. Default: the DBC ``GenMsgCycleTime``; when neither exists the
        stream's freshness is not tracked.
    check_range : bool, optional
        Check DBC min/max and VAL_ tables (default True).
    regular : bool, optional
        One frame per period is expected (default False): enables the rhythm checks
        (timing warning, recovery after stale). Leave False for list messages sent many
        times per cycle (ARS408 0x60B..0x60D).
    """

    message: str
    counter_signal: str | None = None
    counter_modulo: int = 16
    checksum_signal: str | None = None
    checksum_fn: ChecksumFn | None = None
    period_s: float | None = None
    check_range: bool = True
    regular: bool = False


class StreamState:
    """Live state of one message stream (read it, do not write it).

    Attributes
    ----------
    name : str
        Message name.
    period_s : float or None
        Expected period, s.
    last_rx_s : float or None
        Receipt time (caller's clock) of the last accepted frame.
    accepted : int
        Frames accepted.
    counter_score : int
        Wrong-counter score (0 = healthy).
    counter_invalid : bool
        True from the score reaching the limit until it decays to 0.
    irregular_score : int
        Rhythm score (regular streams only).
    recovering : bool
        Regular stream that went stale and has not yet shown ``recover_frames`` good gaps.
    stale_after_s : float or None
        Gap without an accepted frame after which the stream is stale, s (informative).
    stale_after_ns : int or None
        The same gap in integer ns: what every staleness comparison uses.
    rx_window_ns : deque of int
        Receipt times (integer ns) of the last ``RATE_WINDOW_GAPS + 1`` accepted frames
        (regular streams; :meth:`IngressChecker.received_fraction`).
    """

    __slots__ = ("name", "period_s", "stale_after_s", "stale_after_ns", "last_rx_s", "accepted",
                 "last_counter", "counter_score", "counter_invalid", "irregular_score",
                 "recovering", "good_gaps", "last_seen_s", "rx_window_ns")

    #: The fields that change per frame (a snapshot's part; the rest is configuration).
    STATE = ("last_rx_s", "accepted", "last_counter", "counter_score", "counter_invalid", "irregular_score",
             "recovering", "good_gaps", "last_seen_s", "rx_window_ns")

    def __init__(self, name: str, period_s: float | None, stale_after_s: float | None,
                 regular: bool) -> None:
        self.name = name
        self.period_s = period_s
        self.stale_after_s = stale_after_s
        self.stale_after_ns = None if stale_after_s is None else to_ns(stale_after_s)
        self.last_rx_s: float | None = None
        self.accepted = 0
        self.last_counter: int | None = None
        self.counter_score = 0
        self.counter_invalid = False
        self.irregular_score = 0
        self.recovering = regular  # a regular stream must first show good rhythm
        self.good_gaps = 0
        self.last_seen_s: float | None = None
        self.rx_window_ns: deque[int] = deque(maxlen=RATE_WINDOW_GAPS + 1)


def _field_within(entry: _Entry, sig: Signal, low: float, high: float) -> bool:
    """Tell whether every raw value of ``sig``'s field decodes to a physical value in ``[low, high]``.

    Then the per-frame range test of that signal can never reject, and the checker skips
    it (the DBC's ``[min|max]`` of most ARS408 and QIKI signals spans the whole field).
    Proved on the codec's own compiled ``unpack`` (the function every frame goes
    through): the field's two extreme raw values (``0`` and ``2**n - 1``, or
    ``-2**(n-1)`` and ``2**(n-1) - 1`` signed) are packed by cantools (``scaling=False``,
    every other signal 0) and decoded; the decode of a field is ``raw``, or ``raw``
    through a multiplication, a division and an addition by constants, each rounded
    monotonically, so every other raw value lands between the two extremes' values.

    Parameters
    ----------
    entry : _Entry
        The message's decode plan.
    sig : cantools.database.can.Signal
        One of its signals.
    low, high : float
        The bounds the per-frame test uses (physical units; +-inf: open).

    Returns
    -------
    bool
        False (keep the per-frame test) for a message without a compiled ``unpack``
        (multiplexed, container, float signals: cantools decodes them), a float signal, a
        decode that does not give an ``int`` or ``float``, or an extreme outside the bounds.
    """
    # entry.fallback, not entry.unpack: with compile_now=False the entry may still hold its
    # stand-in (not None) for a message cantools decodes; fallback reads the compiled result
    if entry.fallback or sig.is_float or sig.multiplexer_ids or sig.is_multiplexer:
        return False
    n = int(sig.length)
    if n < 1:
        return False
    extremes = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if sig.is_signed else (0, (1 << n) - 1)
    raw = {s.name: 0 for s in entry.message.signals}
    for r in extremes:
        raw[sig.name] = r
        try:
            data = entry.message.encode(raw, scaling=False, strict=False)
            unpack = entry.unpack  # the stand-in may have put the generated function in place
            if unpack is None:
                return False
            fields, values = unpack(data)
        except Exception:  # noqa: BLE001 - anything odd: keep the per-frame test
            return False
        v = values.get(sig.name)
        if fields.get(sig.name) != r or not isinstance(v, (int, float)) or type(v) is bool or not low <= v <= high:
            return False
    return True


def _field_named(entry: _Entry, sig: Signal, allowed: frozenset[int]) -> bool:
    """Tell whether the VAL_ table of ``sig`` names every raw value its field can hold.

    The compiled ``unpack`` extracts a field with a shift and a mask (sign-extended when
    signed), so its raw value is one of the field's ``2**n`` values; when ``allowed``
    holds all of them the per-frame enum test can never reject. False for a message
    without a compiled ``unpack``, a float signal or a field above 16 bits.
    """
    if entry.fallback or sig.is_float or not 1 <= sig.length <= 16:  # fallback: see _field_within
        return False
    n = int(sig.length)
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if sig.is_signed else (0, (1 << n) - 1)
    return all(r in allowed for r in range(lo, hi + 1))


class _Plan:
    __slots__ = ("spec", "entry", "frame_id", "stream", "bounds", "bounds_proved", "choices",
                 "counter_signal", "checksum_signal", "checksum_fn", "modulo", "rhythm_ns")
    spec: IngressSpec
    entry: _Entry
    frame_id: int
    stream: StreamState
    bounds: list[tuple[str, float, float]]  # (signal, low, high), physical units; -inf/inf: no bound
    bounds_proved: list[tuple[str, str]]  # (signal, "range" or "enum"): passed by every raw value, not run
    choices: list[tuple[str, frozenset[int]]]  # (signal, the raw values the DBC names)
    counter_signal: str | None
    checksum_signal: str | None
    checksum_fn: ChecksumFn | None
    modulo: int
    # regular streams: the shortest and longest regular gap, integer ns, decided at build
    rhythm_ns: tuple[int, int] | None


class IngressChecker:
    """Checks every received frame of a set of messages; counts rejects by reason.

    Parameters
    ----------
    codec : DbcCodec
        Codec of the bus (its ``id_offset`` gives the arbitration IDs).
    specs : iterable of IngressSpec
        One per message to accept.
    stale_after_periods : float, optional
        A stream is stale after this many periods without an accepted frame (default 3,
        SAFETY.md defaults).
    counter_invalid_score : int, optional
        Wrong-counter score at which a stream turns invalid (default 5, SAFETY.md F02).
    recover_frames : int, optional
        Regular streams: consecutive regular gaps needed to become fresh again after
        being stale (default 3).
    timing_warning_score : int, optional
        Regular streams: irregular-gap score that raises the timing warning (default 3);
        at twice this score the stream counts as not fresh (B02 "persists").
    rhythm_tolerance : float, optional
        Regular streams: a gap between accepted frames is regular when it lies within
        (1 +- rhythm_tolerance) x period (default 0.75: a 20 ms stream polled by a 10 ms
        tick shows 10/20/30 ms gaps and stays regular; half rate, 40 ms, does not).

    Raises
    ------
    BusConfigError
        A spec names a message or signal the DBC lacks (K02), or has a checksum signal
        without ``checksum_fn``.
    """

    def __init__(self, codec: DbcCodec, specs: Iterable[IngressSpec], *,
                 stale_after_periods: float = 3.0, counter_invalid_score: int = 5,
                 recover_frames: int = 3, timing_warning_score: int = 3,
                 rhythm_tolerance: float = 0.75) -> None:
        self._codec = codec
        self._stale_after_periods = float(stale_after_periods)
        self._invalid_score = int(counter_invalid_score)
        self._recover_frames = int(recover_frames)
        self._warn_score = int(timing_warning_score)
        self._tolerance = float(rhythm_tolerance)
        self._score_cap = 4 * self._warn_score
        self._plans: dict[int, _Plan] = {}
        self._streams: dict[str, StreamState] = {}
        self._rejects: Counter[str] = Counter()
        for spec in specs:
            self._add(spec)

    def _add(self, spec: IngressSpec) -> None:
        codec = self._codec
        needed = [s for s in (spec.counter_signal, spec.checksum_signal) if s]
        codec.require({spec.message: needed})
        if spec.checksum_signal and spec.checksum_fn is None:
            raise BusConfigError(
                f"{spec.message}: checksum_signal {spec.checksum_signal!r} needs checksum_fn")
        frame_id = codec.frame_id(spec.message)
        entry = codec.lookup(frame_id)
        if entry is None:  # pragma: no cover - frame_id comes from the codec
            raise BusConfigError(f"{spec.message}: not in the codec")
        period_s = spec.period_s if spec.period_s is not None else codec.cycle_time_s(
            spec.message)
        stale_after_s = None if not period_s else period_s * self._stale_after_periods
        plan = _Plan()
        plan.spec = spec
        plan.entry = entry
        plan.frame_id = frame_id
        plan.stream = StreamState(spec.message, period_s, stale_after_s, spec.regular)
        plan.counter_signal = spec.counter_signal
        plan.checksum_signal = spec.checksum_signal
        plan.checksum_fn = spec.checksum_fn
        plan.modulo = int(spec.counter_modulo)
        plan.rhythm_ns = None
        if spec.regular and period_s:
            period_ns = to_ns(period_s)
            plan.rhythm_ns = (round(period_ns * (1.0 - self._tolerance)), round(period_ns * (1.0 + self._tolerance)))
        plan.bounds = []
        plan.bounds_proved = []
        plan.choices = []
        if spec.check_range:
            for sig in entry.message.signals:
                if sig.choices:
                    allowed = frozenset(int(k) for k in sig.choices)
                    if _field_named(entry, sig, allowed):
                        plan.bounds_proved.append((sig.name, "enum"))
                    else:
                        plan.choices.append((sig.name, allowed))
                lo, hi = sig.minimum, sig.maximum
                if lo is None and hi is None:
                    continue
                tol = abs(sig.scale) * 1e-6 + 1e-12
                low = -math.inf if lo is None else lo - tol
                high = math.inf if hi is None else hi + tol
                if _field_within(entry, sig, low, high):
                    plan.bounds_proved.append((sig.name, "range"))
                else:
                    plan.bounds.append((sig.name, low, high))
        self._plans[frame_id] = plan
        self._streams[spec.message] = plan.stream

    # ------------------------------------------------------------------ queries
    @property
    def arbitration_ids(self) -> tuple[int, ...]:
        """Arbitration IDs this checker accepts (register them with the port)."""
        return tuple(self._plans)

    @property
    def rejects(self) -> dict[str, int]:
        """Rejected frames by reason (a copy), e.g. ``{"checksum": 2}``."""
        return dict(self._rejects)

    def reject_items(self) -> tuple[tuple[str, int], ...]:
        """Rejected frames by reason as ``(reason, count)`` pairs, in :attr:`rejects`'s order. Per-tick.

        Lets a caller read the counts without copying the counter into a dict.
        """
        return tuple(self._rejects.items())

    def stream(self, name: str) -> StreamState:
        """Return the live :class:`StreamState` of message ``name``.

        Raises
        ------
        HalError
            If the checker has no spec for ``name``.
        """
        try:
            return self._streams[name]
        except KeyError:
            raise HalError(f"ingress checker has no message {name!r}") from None

    def age_s(self, name: str, now_s: float) -> float | None:
        """Seconds since the last accepted frame of ``name`` (None: never received)."""
        st = self.stream(name)
        return None if st.last_rx_s is None else now_s - st.last_rx_s

    def is_fresh(self, name: str, now_s: float) -> bool:
        """Whether stream ``name`` is fresh at ``now_s`` (caller's monotonic clock).

        Fresh: an accepted frame within ``stale_after_periods`` x period, the counter not
        invalid, and (regular streams) not still recovering from a stale episode.

        Raises
        ------
        HalError
            If the stream has no period (no DBC cycle time and no ``period_s``).
        """
        st = self.stream(name)
        if st.stale_after_s is None:
            raise HalError(f"message {name!r} has no cycle time: give IngressSpec.period_s")
        if st.last_rx_s is None or st.counter_invalid or st.recovering:
            return False
        if st.irregular_score >= 2 * self._warn_score:
            return False
        assert st.stale_after_ns is not None  # set together with stale_after_s
        return not gap_exceeds(now_s, st.last_rx_s, st.stale_after_ns)

    def is_stale(self, name: str, now_s: float) -> bool:
        """Whether no frame of ``name`` was accepted for more than its stale window.

        Compared in integer ns (:func:`gap_exceeds`). False before the first frame and for
        a stream without a period (nothing to compare against).
        """
        st = self.stream(name)
        if st.last_rx_s is None or st.stale_after_ns is None:
            return False
        return gap_exceeds(now_s, st.last_rx_s, st.stale_after_ns)

    def counter_valid(self, name: str) -> bool:
        """Return False while the stream's wrong-counter score holds it invalid (F02)."""
        return not self.stream(name).counter_invalid

    def received_fraction(self, name: str) -> float | None:
        """Fraction of the expected frames of regular stream ``name`` received lately.

        Over the last :data:`RATE_WINDOW_GAPS` gaps between accepted frames:
        ``gaps * period / (t_last - t_first)`` (1.0 at the nominal rate, 0.5 at half rate or
        under 50 % random loss, above 1 for bursts). The rhythm score
        (:meth:`timing_warning`) is a random walk without drift under 50 % random loss, so
        it judges such a stream fresh about half the time; this rate does not (SAFETY.md
        B02, used to refuse arming: :meth:`hal.devices.valve_board.ValveBoardDriver.status_rate_low`).

        Parameters
        ----------
        name : str
            Message name (a stream the checker watches).

        Returns
        -------
        float or None
            The fraction (dimensionless); None before two frames or for a stream without a
            period.

        Raises
        ------
        HalError
            For a message the checker does not watch.
        """
        st = self.stream(name)
        w = st.rx_window_ns
        if st.period_s is None or len(w) < 2 or w[-1] <= w[0]:
            return None
        return (len(w) - 1) * to_ns(st.period_s) / (w[-1] - w[0])

    def timing_warning(self, name: str) -> bool:
        """Return True when a regular stream arrives at the wrong rhythm (half rate, bursts)."""
        return self.stream(name).irregular_score >= self._warn_score

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> State:
        """Return the checker's state: rejects by reason, each stream's freshness and counters (issue 12)."""
        return {"rejects": encode(self._rejects),
                "streams": {name: capture(st, StreamState.STATE) for name, st in self._streams.items()}}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` of a checker built with the same specs.

        Raises
        ------
        SnapshotError
            When the snapshot names a stream this checker does not have.
        """
        apply(self, {"_rejects": state["rejects"]})
        streams = state["streams"]
        assert isinstance(streams, dict)
        for name, st in streams.items():
            if name not in self._streams or not isinstance(st, dict):
                raise SnapshotError(f"ingress checker has no stream {name!r}")
            apply(self._streams[name], st, StreamState.STATE)

    # ------------------------------------------------------------------ per frame
    def check(self, msg: can.Message, now_s: float) -> Decoded | None:
        """Check one received frame; return its decoded values if accepted. Per-frame.

        Parameters
        ----------
        msg : can.Message
            The received frame (``msg.timestamp`` is ignored, B03).
        now_s : float
            Receipt time on the caller's monotonic clock, s.

        Returns
        -------
        Decoded or None
            None when rejected (the reason is counted in :attr:`rejects`).

        Notes
        -----
        Never raises for any frame content (F05).
        """
        if msg.is_error_frame:
            self._rejects["error_frame"] += 1
            return None
        if msg.is_remote_frame:
            self._rejects["remote_frame"] += 1
            return None
        plan = self._plans.get(msg.arbitration_id)
        if plan is None or msg.is_extended_id != plan.entry.is_extended:
            self._rejects["unknown_id"] += 1
            return None
        data = msg.data
        if msg.dlc != plan.entry.length or len(data) != plan.entry.length:
            self._rejects["dlc"] += 1
            return None
        try:
            decoded = DbcCodec.decode_entry(plan.entry, data, msg.arbitration_id)
        except Exception:  # noqa: BLE001 - F05: nothing escapes ingress
            decoded = None
        if decoded is None:
            self._rejects["dlc"] += 1
            return None
        raw = decoded.raw
        if plan.checksum_signal is not None:
            assert plan.checksum_fn is not None  # IngressSpec: a checksum signal has its function
            if raw.get(plan.checksum_signal) != plan.checksum_fn(msg.arbitration_id,
                                                                   bytes(data)):
                self._rejects["checksum"] += 1
                return None
        st = plan.stream
        if plan.counter_signal is not None:
            if not self._counter_ok(plan, st, int(raw[plan.counter_signal]), now_s):
                self._rejects["counter"] += 1
                return None
        if plan.bounds or plan.choices:
            reason = self._range_reason(plan, decoded)
            if reason is not None:
                self._rejects[reason] += 1
                return None
        self._accept(plan, st, now_s)
        return decoded

    def _counter_ok(self, plan: _Plan, st: StreamState, counter: int, now_s: float) -> bool:
        last = st.last_counter
        # Resync only after a silence: time since the last authentic frame (accepted
        # or not), so a frozen counter never resyncs itself (D01).
        seen = st.last_seen_s
        stale = (seen is not None and st.stale_after_ns is not None
                 and gap_exceeds(now_s, seen, st.stale_after_ns))
        st.last_seen_s = now_s
        st.last_counter = counter
        if last is None or (stale and not st.counter_invalid):
            return not st.counter_invalid  # first frame / resync after timeout
        delta = (counter - last) % plan.modulo
        if delta == 1:
            if st.counter_score > 0:
                st.counter_score -= 1
            if st.counter_invalid and st.counter_score == 0:
                st.counter_invalid = False
            return not st.counter_invalid
        st.counter_score += 1
        if st.counter_score >= self._invalid_score:
            st.counter_invalid = True
        if delta == 0:
            return False  # repeat: old data
        return not st.counter_invalid  # skip: frames lost, this one is new

    @staticmethod
    def _range_reason(plan: _Plan, decoded: Decoded) -> str | None:
        phys = decoded.signals
        for name, lo, hi in plan.bounds:
            v = phys.get(name)
            # False for NaN too; an absent bound is -inf/inf (even an infinite value passes it)
            if v is not None and not lo <= v <= hi:
                return "range"
        raw = decoded.raw
        for name, allowed in plan.choices:
            v = raw.get(name)
            if v is not None and v not in allowed:
                return "enum"
        return None

    def _accept(self, plan: _Plan, st: StreamState, now_s: float) -> None:
        last = st.last_rx_s
        st.accepted += 1
        rhythm = plan.rhythm_ns  # a regular stream's gap bounds, computed once at build
        if rhythm is not None:
            now_ns = round(now_s * 1e9)  # to_ns inlined (per frame)
            st.rx_window_ns.append(now_ns)
            if last is not None:
                gap_ns = now_ns - round(last * 1e9)
                if st.stale_after_ns is not None and gap_ns > st.stale_after_ns:
                    st.recovering = True
                    st.good_gaps = 0
                    st.irregular_score += 1
                elif not rhythm[0] <= gap_ns <= rhythm[1]:
                    # late (half rate, gaps) or early (burst, buffering)
                    st.good_gaps = 0
                    st.irregular_score += 1
                else:
                    st.good_gaps += 1
                    if st.irregular_score > 0:
                        st.irregular_score -= 1
                if st.irregular_score > self._score_cap:
                    st.irregular_score = self._score_cap
            if st.recovering and st.good_gaps >= self._recover_frames:
                st.recovering = False
        st.last_rx_s = now_s
