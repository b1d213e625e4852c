"""Hold-to-confirm for a terminal, which reports key presses but no key release.

A terminal sends a held key as repeated key events (after the auto-repeat delay, about
0.25-0.6 s, then 20-40 a second). :class:`HoldGesture` turns them into a hold:

* the first press starts the hold (progress 0);
* a repeat of the same key within :attr:`HoldGesture.repeat_gap_s` keeps it going;
* once :attr:`HoldGesture.hold_s` has passed since the first press with the key still
  repeating, the hold is *complete* (:meth:`press` returns the hold duration in ms);
* if the repeats stop, the hold becomes a press-then-confirm: pressing the confirm key
  (``y``) between ``hold_s`` and ``confirm_window_s`` after the first press completes it
  (with the hold duration from the first press to the confirm); a confirm earlier than
  ``hold_s`` or later than ``confirm_window_s`` cancels it.

So an operator may hold ``a`` for one second, or press ``a``, watch the bar fill, and
press ``y`` within 1-3 s (``tmux send-keys a; sleep 1.2; tmux send-keys y`` does that
too). The rule is the gateway's: an arm command carries the hold duration, at least 1 s
(docs/console-protocol.md). Time comes from the caller (monotonic seconds), so the class
is pure and tested without sleeping.
"""

from __future__ import annotations

__all__ = ["HoldGesture"]


class HoldGesture:
    """A key held (or pressed then confirmed) for at least ``hold_s``.

    Parameters
    ----------
    hold_s : float
        Required hold (s), default 1.0 (the gateway's minimum).
    repeat_gap_s : float
        Longest gap (s) between key events that still counts as held; 0.7 s covers the
        usual auto-repeat delay.
    confirm_window_s : float
        Latest confirm (s after the first press), default 3.0.
    """

    def __init__(self, hold_s: float = 1.0, repeat_gap_s: float = 0.7, confirm_window_s: float = 3.0) -> None:
        self.hold_s = hold_s
        self.repeat_gap_s = repeat_gap_s
        self.confirm_window_s = confirm_window_s
        self.started_s: float | None = None
        self.last_s: float | None = None

    @property
    def active(self) -> bool:
        """Whether a hold is in progress."""
        return self.started_s is not None

    def cancel(self) -> None:
        """Forget the hold in progress."""
        self.started_s = self.last_s = None

    def progress(self, now_s: float) -> float:
        """Fraction 0..1 of ``hold_s`` elapsed; 0 without a hold, and after the window (cancelled)."""
        if self.started_s is None:
            return 0.0
        if now_s - self.started_s > self.confirm_window_s:
            self.cancel()
            return 0.0
        return min(1.0, (now_s - self.started_s) / self.hold_s)

    def holding(self, now_s: float) -> bool:
        """Whether the key is still repeating (the last event is within ``repeat_gap_s``)."""
        return self.last_s is not None and now_s - self.last_s <= self.repeat_gap_s

    def press(self, now_s: float) -> int | None:
        """Take a key event of the hold key; return the hold duration (ms) once complete, else None."""
        if self.started_s is None or now_s - self.started_s > self.confirm_window_s or not self.holding(now_s):
            if self.started_s is not None and now_s - self.started_s <= self.confirm_window_s:
                # pressed again after letting go: a confirm by the same key
                return self.confirm(now_s)
            self.started_s = self.last_s = now_s
            return None
        self.last_s = now_s
        return self._complete(now_s)

    def poll(self, now_s: float) -> int | None:
        """Check at a timer tick: return the hold duration (ms) if the key is still repeating and ``hold_s`` passed."""
        if self.started_s is None or not self.holding(now_s):
            return None
        return self._complete(now_s)

    def confirm(self, now_s: float) -> int | None:
        """Take the confirm key: return the hold duration (ms) if within ``hold_s .. confirm_window_s``, else cancel."""
        if self.started_s is None:
            return None
        elapsed = now_s - self.started_s
        if self.hold_s <= elapsed <= self.confirm_window_s:
            self.cancel()
            return round(elapsed * 1000)
        self.cancel()
        return None

    def _complete(self, now_s: float) -> int | None:
        assert self.started_s is not None
        elapsed = now_s - self.started_s
        if elapsed >= self.hold_s:
            self.cancel()
            return round(elapsed * 1000)
        return None
