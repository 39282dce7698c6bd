"""Rate-limit counters on Redis (redis-py), for a :class:`~.composite.CompositeStore`.

:class:`RedisRateLimits` implements :class:`~mindmesh_auth.core.ports.RateLimitRepository`:

* **One round trip per hit.** ``hit`` is one Lua script (``EVALSHA``), so it is
  atomic against every other client: a live counter grows (``HINCRBY``) and
  keeps its expiry; a missing or expired one restarts at ``amount`` with the
  given ``expires_at``. Each counter is a hash ``{c: count, e: expires_at}``
  (milliseconds since the Unix epoch) under ``prefix + key``.
* **Time is the caller's.** Whether a counter has expired is decided only by the
  ``now`` passed in, compared with the stored ``e``. Redis's own expiry only
  cleans up: a restarted counter gets ``PEXPIRE (expires_at - now) + expiry_slack``
  (Redis's clock then runs the same length of time as the caller's, so the key
  goes only after the port already treats it as expired, whatever the offset
  between the two clocks; the slack covers a caller's clock that stands still,
  as a test's fake clock does).
* **purge_expired** walks the prefix with ``SCAN`` (hash keys only) and deletes,
  in a script, the counters whose stored ``e <= now``; it returns how many it
  deleted, which leaves out the counters Redis's own expiry removed first. It
  visits every key of the database that matches the prefix, so it is a
  maintenance job, never a hot-path call.
* **Errors**: a refused, lost or timed-out connection raises
  ``StorageUnavailable``; any other Redis error ``StorageError``. Each is logged
  once on the ``mindmesh_auth`` logger with the driver's exception class only
  (never a key or a reply); the driver's exception is dropped (``from None``).

Standalone Redis (or the primary of a Sentinel setup). A Redis Cluster is not
supported: the purge script takes keys of several hash slots.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar

import redis
import redis.exceptions

from ..core.errors import ConfigurationError, StorageError, StorageUnavailable, ValidationError
from ..core.ports import CounterState, RateLimitRepository

__all__ = ["DEFAULT_PREFIX", "RedisRateLimits"]

DEFAULT_PREFIX = "mindmesh:rl:"
"""The default key prefix of :class:`RedisRateLimits`."""

log = logging.getLogger("mindmesh_auth")

P = ParamSpec("P")
R = TypeVar("R")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_LOGGED = "_mindmesh_logged"
_PURGE_ALL = -1

# KEYS[1] counter; ARGV: now (ms), expires_at (ms), amount, ttl (ms). Returns {count, expires_at}.
_HIT = """
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > tonumber(ARGV[1]) then
  return {redis.call('HINCRBY', KEYS[1], 'c', ARGV[3]), e}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'c', ARGV[3], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {ARGV[3], ARGV[2]}
"""

# KEYS: candidate counters; ARGV: now (ms), limit (-1: none). Deletes those with e <= now.
_PURGE = """
local now, limit, n = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for _, key in ipairs(KEYS) do
  if limit >= 0 and n >= limit then break end
  local e = redis.call('HGET', key, 'e')
  if e and tonumber(e) <= now then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


def _report(error: StorageError, driver: BaseException) -> StorageError:
    label = type(driver).__name__
    error.driver_error = label  # type: ignore[attr-defined]
    if not getattr(error, _LOGGED, False):
        setattr(error, _LOGGED, True)
        log.warning(
            "Storage failure %s from the Redis driver: %s",
            error.code,
            label,
            extra={"mindmesh_error": error.code, "driver_error": label},
        )
    return error


@contextmanager
def _translate() -> Iterator[None]:
    """redis-py errors -> ``StorageUnavailable`` / ``StorageError`` (logged once, no message kept)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise _report(StorageUnavailable(), exc) from None
    except redis.exceptions.RedisError as exc:
        raise _report(StorageError(), exc) from None


def _storage_op(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _translate():
            return fn(*args, **kwargs)

    return wrapper


def _ms(value: object, field: str) -> int:
    """An aware datetime as whole milliseconds since the epoch (exact integer arithmetic)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{field} must be a timezone-aware datetime.", field=field)
    return (value - _EPOCH) // _MS


def _datetime(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _text(value: object, field: str) -> str:
    if type(value) is not str or not value:
        raise ValidationError(f"{field} must be a non-empty string.", field=field)
    return value


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern (``SCAN MATCH``)."""
    return "".join("\\" + ch if ch in "\\*?[]^" else ch for ch in text)


def _int(reply: Any) -> int:
    return int(reply.decode() if isinstance(reply, bytes) else reply)


class RedisRateLimits(RateLimitRepository):
    """Rate-limit counters on a redis-py client (see the module doc).

    ``client``
        A ``redis.Redis`` (thread-safe: it holds a connection pool). Give it
        socket timeouts (``from_url`` sets them): the hit is on the login path.
    ``prefix``
        Prepended to every counter key (default ``"mindmesh:rl:"``); one
        deployment, one prefix. ``purge_expired`` only looks under it.
    ``expiry_slack``
        Added to the Redis TTL of each counter beyond its window (default one
        minute, at least zero).
    ``scan_count``
        The ``COUNT`` hint of each ``SCAN`` step of ``purge_expired``.
    ``owns_client``
        Whether :meth:`close` closes the client (true for :meth:`from_url`).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        expiry_slack: timedelta = timedelta(minutes=1),
        scan_count: int = 1000,
        owns_client: bool = False,
    ) -> None:
        if not isinstance(client, redis.Redis):
            raise ConfigurationError("client must be a redis.Redis.", variable="client")
        if type(prefix) is not str or not prefix:
            raise ConfigurationError("prefix must be a non-empty string.", variable="prefix")
        if not isinstance(expiry_slack, timedelta) or expiry_slack < timedelta(0):
            raise ConfigurationError("expiry_slack must be a timedelta of zero or more.", variable="expiry_slack")
        if type(scan_count) is not int or scan_count < 1:
            raise ConfigurationError("scan_count must be a positive integer.", variable="scan_count")
        self.client = client
        self.prefix = prefix
        self._slack_ms = expiry_slack // _MS
        self._scan_count = scan_count
        self._owns_client = owns_client
        self._hit = client.register_script(_HIT)
        self._purge = client.register_script(_PURGE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
        expiry_slack: timedelta = timedelta(minutes=1),
    ) -> RedisRateLimits:
        """Counters on the Redis server at ``url`` (``redis://``, ``rediss://``, ``unix://``;
        e.g. ``redis://127.0.0.1:6379/0``), with ``timeout`` seconds for connecting and
        for each reply. Nothing connects until the first call."""
        from ..wiring import redact_url

        if type(url) is not str or not url:
            raise ConfigurationError("The Redis URL must be a non-empty string.", variable="AUTH_RATE_LIMIT_URL")
        try:
            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except (ValueError, redis.exceptions.RedisError) as exc:
            raise ConfigurationError(
                f"Invalid Redis URL {redact_url(url)} ({type(exc).__name__}).", variable="AUTH_RATE_LIMIT_URL"
            ) from None
        return cls(client, prefix=prefix, expiry_slack=expiry_slack, owns_client=True)

    def _key(self, key: object) -> str:
        return self.prefix + _text(key, "key")

    @_storage_op
    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        name = self._key(key)
        now_ms, until_ms = _ms(now, "now"), _ms(expires_at, "expires_at")
        if type(amount) is not int:
            raise ValidationError("amount must be an integer.", field="amount")
        ttl_ms = max(until_ms - now_ms, 0) + self._slack_ms
        count, until = self._hit(keys=[name], args=[now_ms, until_ms, amount, max(ttl_ms, 1)])
        return CounterState(_int(count), _datetime(_int(until)))

    @_storage_op
    def get(self, key: str, now: datetime) -> CounterState | None:
        """The live counter ``key`` (``now < expires_at``), or ``None``. Reads only; not a
        port method (the core never reads a counter without counting)."""
        count, until = self.client.hmget(self._key(key), ["c", "e"])
        if count is None or until is None or _int(until) <= _ms(now, "now"):
            return None
        return CounterState(_int(count), _datetime(_int(until)))

    @_storage_op
    def reset(self, key: str) -> None:
        self.client.delete(self._key(key))

    @_storage_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        now_ms = _ms(now, "now")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ValidationError("limit must be a non-negative integer.", field="limit")
        pattern = _glob_escape(self.prefix) + "*"
        deleted, cursor = 0, 0
        while limit is None or deleted < limit:
            cursor, keys = self.client.scan(cursor, match=pattern, count=self._scan_count, _type="hash")
            if keys:
                left = _PURGE_ALL if limit is None else limit - deleted
                deleted += _int(self._purge(keys=list(keys), args=[now_ms, left]))
            if _int(cursor) == 0:
                break
        return deleted

    @_storage_op
    def ping(self) -> bool:
        """Whether the server answers (raises ``StorageUnavailable`` when it does not)."""
        return bool(self.client.ping())

    def close(self) -> None:
        """Close the client if this object made it (:meth:`from_url`)."""
        if self._owns_client:
            self.client.close()
