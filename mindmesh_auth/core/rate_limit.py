"""Rate-limit policy over the storage port's atomic counters.

Each limit is a fixed window that starts at its first hit. ``consume`` counts
first and checks after (one atomic round trip), so N parallel callers never
get more than the limit through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from .config import Limit
from .errors import RateLimited
from .ports import CounterState, RateLimitRepository

__all__ = ["RateLimiter"]


class RateLimiter:
    """Limits named ``kind:subject`` (``otp-fail:ada@example.com``, ``login-ip:203.0.113.7``).

    The stored counter key is ``kind:`` and a keyed hash of the whole name
    (``digest``: hex HMAC-SHA256), 64 characters after the kind whatever the
    subject: every valid address fits every backend's key column, and the
    counters table holds no address or IP in clear.
    """

    def __init__(self, counters: RateLimitRepository, digest: Callable[[str], str]) -> None:
        self._counters = counters
        self._digest = digest

    def stored_key(self, name: str) -> str:
        kind, _, _subject = name.partition(":")
        return f"{kind}:{self._digest(name)}"

    def consume(self, key: str, limit: Limit, now: datetime) -> None:
        """Count one event; raise ``RateLimited`` if it is over the limit."""
        self.enforce(self._counters.hit(self.stored_key(key), now, now + limit.window), limit, now)

    @staticmethod
    def enforce(state: CounterState, limit: Limit, now: datetime) -> None:
        """``RateLimited`` if a counted ``state`` is over ``limit``."""
        if state.count > limit.count:
            raise RateLimited(retry_after=_seconds_until(state.expires_at, now, limit.window))

    def count(self, key: str, window: timedelta, now: datetime) -> CounterState:
        """Count one event in a counter with no limit of its own (the caller decides)."""
        return self._counters.hit(self.stored_key(key), now, now + window)

    def peek(self, key: str, now: datetime) -> CounterState | None:
        """The live state of ``key`` without counting (``None`` when there is none)."""
        state = self._counters.hit(self.stored_key(key), now, now, amount=0)
        return state if state.expires_at > now else None

    def refund(self, key: str, now: datetime) -> None:
        """Take back one counted event (a success that was counted before it was known).

        A counter that expired meanwhile is restarted already expired, so a refund
        never leaves a live negative count (an extra allowance) behind."""
        self._counters.hit(self.stored_key(key), now, now, amount=-1)

    def count_many(self, counters: Sequence[tuple[str, timedelta]], now: datetime) -> list[CounterState]:
        """Count one event in each ``(name, window)`` at once (one round trip where the
        store can); their states in the same order. The caller applies the limits."""
        return self._counters.hit_many([(self.stored_key(name), now + window) for name, window in counters], now)

    def clear(self, key: str) -> None:
        self._counters.reset(self.stored_key(key))

    def clear_many(self, keys: Iterable[str]) -> None:
        """Clear several counters (one statement where the store can)."""
        stored = list(dict.fromkeys(self.stored_key(key) for key in keys))
        if stored:
            self._counters.reset_many(stored)


def _seconds_until(moment: datetime, now: datetime, window: timedelta | None = None) -> int:
    """Whole seconds until ``moment``, at least 1; at most ``window`` when given: a counter
    ending further ahead was started before the clock stepped back, and the hint never
    reads longer than one window (the counter itself still ends when it was set to)."""
    seconds = (moment - now).total_seconds()
    if window is not None:
        seconds = min(seconds, window.total_seconds())
    return max(1, int(seconds + 0.999))
