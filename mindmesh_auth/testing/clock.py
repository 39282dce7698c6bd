"""Test doubles an app needs: a controllable clock and seeded randomness."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

from ..core.ports import Clock, Randomness

__all__ = ["FakeClock", "SeededRandomness"]


class FakeClock(Clock):
    """A clock that moves only when told to (``advance``, ``set``). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware datetime")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


class SeededRandomness(Randomness):
    """Deterministic randomness for tests. Never use in production."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - test double
        self._lock = threading.Lock()

    def token_bytes(self, n: int) -> bytes:
        with self._lock:
            return self._random.randbytes(n)

    def randbelow(self, n: int) -> int:
        with self._lock:
            return self._random.randrange(n)
