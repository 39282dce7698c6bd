"""Rate-limit policy over the storage port's atomic counters.

Each limit is a fixed window that starts at its first hit. ``consume`` counts
first and checks after (one atomic round trip), so N parallel callers never
get more than the limit through.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .config import Limit
from .errors import RateLimited
from .ports import RateLimitRepository

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
        state = self._counters.hit(self.stored_key(key), now, now + limit.window)
        if state.count > limit.count:
            raise RateLimited(retry_after=_seconds_until(state.expires_at, now))

    def clear(self, key: str) -> None:
        self._counters.reset(self.stored_key(key))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))
