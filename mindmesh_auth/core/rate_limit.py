"""Rate-limit policy over the storage port's atomic counters.

Each limit is a fixed window that starts at its first hit. ``consume`` counts
first and checks after (one atomic round trip), so N parallel callers never
get more than the limit through.
"""

from __future__ import annotations

from datetime import datetime

from .config import Limit
from .errors import RateLimited
from .ports import RateLimitRepository

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, counters: RateLimitRepository) -> None:
        self._counters = counters

    def consume(self, key: str, limit: Limit, now: datetime) -> None:
        """Count one event; raise ``RateLimited`` if it is over the limit."""
        state = self._counters.hit(key, now, now + limit.window)
        if state.count > limit.count:
            raise RateLimited(retry_after=_seconds_until(state.expires_at, now))

    def clear(self, key: str) -> None:
        self._counters.reset(key)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))
