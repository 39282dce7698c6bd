"""A store whose rate-limit counters live elsewhere (e.g. Redis) than the rest.

``CompositeStore(base, rate_limits=...)`` takes users, sessions, codes, reset
tokens and the audit log, and the units of work, from ``base`` (a SQL, MongoDB
or memory store), and the counters from ``rate_limits``::

    from mindmesh_auth.adapters.composite import CompositeStore
    from mindmesh_auth.adapters.peewee import PeeweeStore
    from mindmesh_auth.adapters.redis import RedisRateLimits

    store = CompositeStore(
        PeeweeStore.from_url("postgresql://auth@db/auth"),
        rate_limits=RedisRateLimits.from_url("redis://127.0.0.1:6379/0"),
    )

Only the counters can come from another backend: every other repository's
writes belong to the base's units of work (a session opened with its audit row,
a password replaced with the sessions revoked), which one transaction, or one
compensation log, can only keep all or nothing within one database.

Units of work (:meth:`CompositeStore.atomic`) are the base's, and the counters
are not part of them (see ``docs/redis.md``):

* a **hit** inside a unit counts at once and stays counted when the unit rolls
  back or is retried after a ``StorageConflict``: a counted attempt stays
  counted, as the port allows for rate-limit hits (``Store.atomic``);
* a **reset** inside a unit (a right code or a new password clears the
  failure counter) is held back until the outermost unit commits, and dropped
  when it rolls back: a failed success does not clear the counter. If the
  held-back reset then fails, the committed operation stands and a warning is
  logged (the counter runs out at the end of its window). A hit inside the same
  unit on a key with a held-back reset runs that reset first, so the unit sees
  its own writes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime

from ..core.errors import AuthError, ConfigurationError
from ..core.ports import CounterState, RateLimitRepository, Store
from ..core.schema import MigrationPlan, SchemaStatus

__all__ = ["CompositeStore"]

log = logging.getLogger("mindmesh_auth")


class _Units(threading.local):
    """Per thread: one set of held-back resets per open unit, outermost first."""

    def __init__(self) -> None:
        self.frames: list[dict[str, None]] = []


class _UnitAwareCounters(RateLimitRepository):
    """The counters as the composite's units see them (resets held back, see the module doc)."""

    def __init__(self, inner: RateLimitRepository, units: _Units) -> None:
        self.inner = inner
        self._units = units

    def _run_held_reset(self, key: str) -> None:
        frames = self._units.frames
        if any(key in frame for frame in frames):
            for frame in frames:
                frame.pop(key, None)
            self.inner.reset(key)

    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        self._run_held_reset(key)
        return self.inner.hit(key, now, expires_at, amount)

    def reset(self, key: str) -> None:
        frames = self._units.frames
        if frames:
            frames[-1][key] = None
        else:
            self.inner.reset(key)

    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        return self.inner.purge_expired(now, limit=limit)


class CompositeStore(Store):
    """``base``'s repositories and units of work, with the rate-limit counters of
    ``rate_limits`` (see the module doc). :meth:`close` closes both."""

    def __init__(self, base: Store, *, rate_limits: RateLimitRepository) -> None:
        if not isinstance(base, Store):
            raise ConfigurationError("base must be a Store.", variable="base")
        if not isinstance(rate_limits, RateLimitRepository):
            raise ConfigurationError("rate_limits must be a RateLimitRepository.", variable="rate_limits")
        self.base = base
        self.counters = rate_limits
        self._units = _Units()
        self.users = base.users
        self.sessions = base.sessions
        self.otps = base.otps
        self.reset_tokens = base.reset_tokens
        self.audit = base.audit
        self.rate_limits = _UnitAwareCounters(rate_limits, self._units)

    @classmethod
    def from_urls(cls, database_url: str, rate_limit_url: str, *, prefix: str | None = None) -> CompositeStore:
        """The store of ``database_url`` (any URL :func:`~mindmesh_auth.wiring.store_from_url`
        takes) with the counters on the Redis server of ``rate_limit_url``
        (e.g. ``redis://127.0.0.1:6379/0``; ``prefix`` as :class:`RedisRateLimits`)."""
        from ..wiring import store_from_url
        from .redis import DEFAULT_PREFIX, RedisRateLimits

        counters = RedisRateLimits.from_url(rate_limit_url, prefix=DEFAULT_PREFIX if prefix is None else prefix)
        return cls(store_from_url(database_url), rate_limits=counters)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """The base's unit; resets of the counters wait for the outermost commit."""
        frames = self._units.frames
        frames.append({})
        committed = False
        try:
            with self.base.atomic():
                yield
            committed = True
        finally:
            held = frames.pop()
            if committed and frames:
                frames[-1].update(held)  # an inner block's resets wait for the outer commit
            elif committed:
                self._run_resets(list(held))

    def _run_resets(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.counters.reset(key)
            except AuthError as exc:
                # The unit committed: its outcome stands. The counter ends with its window.
                log.warning(
                    "A rate-limit counter could not be cleared after a committed unit of work (%s)",
                    exc.code,
                    extra={"mindmesh_auth_event": "rate_limit_reset_failed", "mindmesh_error": exc.code},
                )

    def create_schema(self) -> None:
        self.base.create_schema()

    def schema_status(self) -> SchemaStatus:
        return self.base.schema_status()

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        return self.base.migrate(dry_run=dry_run)

    def close(self) -> None:
        try:
            self.base.close()
        finally:
            close = getattr(self.counters, "close", None)
            if callable(close):
                close()
