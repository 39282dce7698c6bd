"""Production implementations of the time and randomness ports."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from .ports import Clock, Randomness

__all__ = ["SystemClock", "SystemRandomness", "to_millis"]


def to_millis(moment: datetime) -> datetime:
    """Truncate to millisecond precision (the coarsest any backend keeps)."""
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


class SystemClock(Clock):
    """The wall clock, UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class SystemRandomness(Randomness):
    """The operating system's CSPRNG through :mod:`secrets`."""

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)
