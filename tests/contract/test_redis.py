"""Rate-limit counters on Redis: the shared contract through a CompositeStore, and
what is particular to the Redis adapter and to the composite's units of work.

Server: ``MINDMESH_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Each test
uses its own key prefix and deletes its keys afterwards (never ``FLUSHDB``); an
unreachable server skips the Redis tests locally and fails them under CI.

* ``TestRedisCountersOnMemory``: the whole ``StoreContract`` (every port case, the
  flows, the fault cases, the model-based check) on ``CompositeStore(MemoryStore(),
  rate_limits=RedisRateLimits(...))``.
* ``TestRedisCountersOnSqlite``: the counters' case, the flows and the fault cases
  with a SQLite base (real transactions; counters outside them).
* ``TestRedisCountersOnPostgres``: the same on PostgreSQL (one connection per thread).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _ci import require, skip_or_fail
from _servers import server_url, unique_prefix

from mindmesh_auth.adapters.composite import CompositeStore
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.adapters.redis import RedisRateLimits
from mindmesh_auth.core.errors import ConfigurationError, StorageError, StorageUnavailable, ValidationError
from mindmesh_auth.core.models import User
from mindmesh_auth.core.ports import CounterState
from mindmesh_auth.testing.contract import (
    T0,
    FacadeFlowContract,
    FaultContract,
    RateLimitRepositoryContract,
    StoreContract,
)
from mindmesh_auth.testing.contract import _user as build_user

redis = require("redis", "the Redis rate-limit adapter")

REDIS_URL = os.environ.get("MINDMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
END = T0 + timedelta(minutes=10)


@functools.cache
def _probe() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()
    return None


def _client() -> Any:
    error = _probe()
    if error is not None:
        skip_or_fail(f"Redis not reachable at {REDIS_URL} ({error}); set MINDMESH_TEST_REDIS_URL to run")
    return redis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)


def _delete_prefix(client: Any, prefix: str) -> None:
    pattern = "".join("\\" + ch if ch in "\\*?[]^" else ch for ch in prefix) + "*"
    keys = list(client.scan_iter(match=pattern, count=1000))
    if keys:
        client.unlink(*keys)


@pytest.fixture
def counters() -> Iterator[RedisRateLimits]:
    """Counters under a prefix of their own, deleted afterwards."""
    client = _client()
    prefix = f"mmt:{uuid.uuid4().hex}:"
    try:
        yield RedisRateLimits(client, prefix=prefix)
    finally:
        _delete_prefix(client, prefix)
        client.close()


# -- the shared contract ------------------------------------------------------------


@pytest.mark.redis
class TestRedisCountersOnMemory(StoreContract):
    @pytest.fixture
    def store(self, counters: RedisRateLimits) -> Iterator[CompositeStore]:
        yield CompositeStore(MemoryStore(), rate_limits=counters)


@functools.cache
def _user_model() -> type:
    """A user model with the suite's profile fields (``profile_fields``), built once."""
    import peewee

    from mindmesh_auth.adapters.peewee import BaseUserModel

    class RedisContractUser(BaseUserModel):
        first_name = peewee.CharField(max_length=100, null=True)
        role = peewee.CharField(max_length=32, null=True)

    return RedisContractUser


@pytest.mark.redis
class TestRedisCountersOnSqlite(RateLimitRepositoryContract, FacadeFlowContract, FaultContract):
    race_threads = 8  # as the SQLite binding: one writer at a time

    @pytest.fixture
    def store(self, tmp_path: Path, counters: RedisRateLimits) -> Iterator[CompositeStore]:
        from mindmesh_auth.adapters.peewee import PeeweeStore

        base = PeeweeStore.from_url(f"sqlite:///{tmp_path}/auth.db", user_model=_user_model())
        store = CompositeStore(base, rate_limits=counters)
        store.create_schema()
        yield store
        store.base.close()


@pytest.mark.redis
@pytest.mark.postgres
class TestRedisCountersOnPostgres(RateLimitRepositoryContract, FacadeFlowContract):
    @pytest.fixture
    def store(self, counters: RedisRateLimits) -> Iterator[CompositeStore]:
        from mindmesh_auth.adapters.peewee import PeeweeStore

        base = PeeweeStore.from_url(server_url("postgres"), user_model=_user_model(), table_prefix=unique_prefix())
        base.create_schema()
        try:
            yield CompositeStore(base, rate_limits=counters)
        finally:
            base.drop_schema()
            base.close()


@pytest.mark.redis
def test_a_failed_right_code_keeps_its_counted_attempt_and_a_retry_clears_it(
    tmp_path: Path, counters: RedisRateLimits
) -> None:
    """verify_otp's unit (counter hit, redeem, session, counter reset, audit rows) fails at
    its last write on a SQLite base: the SQL writes roll back, the Redis hit stays counted and
    the held-back reset never runs; the retry with the same code logs in and clears it."""
    from mindmesh_auth import MindmeshAuth
    from mindmesh_auth.adapters.mail import Outbox
    from mindmesh_auth.adapters.peewee import PeeweeStore
    from mindmesh_auth.testing import FakeClock, FaultyStore, test_config

    base = PeeweeStore.from_url(f"sqlite:///{tmp_path}/auth.db")
    faulty = FaultyStore(CompositeStore(base, rate_limits=counters))
    faulty.create_schema()
    outbox = Outbox()
    auth = MindmeshAuth(store=faulty, mailer=outbox, config=test_config(), clock=FakeClock(T0))
    email = "redis-unit@example.test"
    user = auth.auth.register(email, "correct horse battery")
    handle = auth.auth.login(email, "correct horse battery").handle  # bound: counted under otp-fail:
    code = outbox.last_code(email)

    def failure_counters() -> list[int]:
        keys = counters.client.scan_iter(match=counters.prefix + "otp-fail:*")
        return [int(counters.client.hget(key, "c")) for key in keys]

    assert failure_counters() == []
    other = "redis-unit-2@example.test"  # a throw-away account shows the writes of a right code
    auth.auth.register(other, "correct horse battery")
    other_handle = auth.auth.login(other, "correct horse battery").handle
    with faulty.recording() as writes:
        auth.auth.verify_otp(other, outbox.last_code(other), "login", handle=other_handle)
    assert writes[0] == "rate_limits.hit_many" and writes[-2:] == ["rate_limits.reset_many", "audit.append_many"], writes
    faulty.fail_at(len(writes))  # the audit rows, written last in the unit, after the (held-back) reset
    with pytest.raises(StorageUnavailable):
        auth.auth.verify_otp(email, code, "login", handle=handle)
    faulty.disarm()
    assert auth.sessions.list(user.id) == []
    assert failure_counters() == [1]  # counted; not cleared by the rolled-back success
    result = auth.auth.verify_otp(email, code, "login", handle=handle)
    assert auth.auth.authenticate(result.access_token).user.id == user.id
    assert failure_counters() == []
    auth.close()


# -- the Redis adapter --------------------------------------------------------------


@pytest.mark.redis
def test_counters_live_under_the_prefix_with_a_ttl_past_their_window(counters: RedisRateLimits) -> None:
    counters.hit("login-fail:abc", T0, END)
    counters.hit("login-fail:abc", T0 + timedelta(minutes=1), END + timedelta(minutes=1))
    name = counters.prefix + "login-fail:abc"
    stored = counters.client.hgetall(name)
    assert {k.decode(): v.decode() for k, v in stored.items()} == {
        "c": "2",
        "e": str((END - datetime(1970, 1, 1, tzinfo=END.tzinfo)) // timedelta(milliseconds=1)),
    }
    # Redis's expiry only cleans up: the window (10 min) plus the slack (1 min), set at the start.
    ttl = counters.client.pttl(name)
    assert timedelta(minutes=10) < timedelta(milliseconds=ttl) <= timedelta(minutes=11)
    assert counters.get("login-fail:abc", END - timedelta(milliseconds=1)) == CounterState(2, END)
    assert counters.get("login-fail:abc", END) is None


@pytest.mark.redis
def test_expiry_is_decided_by_the_callers_clock_not_by_redis(counters: RedisRateLimits) -> None:
    # A caller whose clock stands still long after its window (a fake clock, a skewed host):
    # the counter keeps counting by the stored expiry, whatever Redis's own time says.
    past = datetime(2001, 1, 1, tzinfo=T0.tzinfo)
    counters.hit("k", past, past + timedelta(seconds=1))
    assert counters.hit("k", past, past + timedelta(seconds=1)).count == 2
    assert counters.client.pttl(counters.prefix + "k") > 0
    restarted = counters.hit("k", past + timedelta(seconds=1), past + timedelta(seconds=2))
    assert restarted == CounterState(1, past + timedelta(seconds=2))


@pytest.mark.redis
def test_purge_leaves_other_prefixes_and_live_counters(counters: RedisRateLimits) -> None:
    client = counters.client
    neighbour = RedisRateLimits(client, prefix=counters.prefix + "x*")  # a prefix that extends ours, with a glob char
    other = RedisRateLimits(client, prefix=counters.prefix[:-1] + "*")  # as a glob it would match our keys
    try:
        counters.hit("a", T0, T0 + timedelta(minutes=1))
        counters.hit("b", T0, END)
        other.hit("a", T0, T0 + timedelta(minutes=1))
        client.set(counters.prefix + "plain-string", "not a counter")
        later = T0 + timedelta(minutes=5)
        assert other.purge_expired(later) == 1
        neighbour.hit("n", T0, T0 + timedelta(minutes=1))
        # ours finds "a" and the neighbour's counter (its keys start with our prefix), never a string key
        assert counters.purge_expired(later) == 2
        assert counters.get("b", later) == CounterState(1, END)
        assert client.get(counters.prefix + "plain-string") == b"not a counter"
    finally:
        _delete_prefix(client, other.prefix)


@pytest.mark.redis
def test_bad_input_raises_a_validation_error_and_writes_nothing(counters: RedisRateLimits) -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValidationError):
        counters.hit("k", naive, END)
    with pytest.raises(ValidationError):
        counters.hit("k", T0, END, amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        counters.hit("", T0, END)
    with pytest.raises(ValidationError):
        counters.purge_expired(T0, limit=-1)
    assert list(counters.client.scan_iter(match=counters.prefix + "*")) == []


@pytest.mark.redis
def test_a_key_of_another_type_is_a_storage_error(counters: RedisRateLimits, caplog: pytest.LogCaptureFixture) -> None:
    counters.client.set(counters.prefix + "k", "secret-looking-value")
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"), pytest.raises(StorageError) as info:
        counters.hit("k", T0, END)
    assert type(info.value) is StorageError
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "ResponseError" in caplog.text
    assert "secret-looking-value" not in caplog.text and "WRONGTYPE" not in caplog.text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_storage_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    counters = RedisRateLimits.from_url(f"redis://:hunter2-pass@127.0.0.1:{_closed_port()}/0", timeout=2)
    try:
        with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
            for call in (
                lambda: counters.hit("k", T0, END),
                lambda: counters.reset("k"),
                lambda: counters.purge_expired(T0),
            ):
                with pytest.raises(StorageUnavailable) as info:
                    call()
                assert info.value.__cause__ is None
        assert caplog.text.count("ConnectionError") == 3
        assert "hunter2" not in caplog.text
    finally:
        counters.close()


def test_an_invalid_url_is_a_configuration_error_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisRateLimits.from_url("http://user:hunter2-pass@127.0.0.1:6379/0")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError):
        RedisRateLimits(object(), prefix="p:")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RedisRateLimits.from_url("redis://127.0.0.1:6379/0", prefix="")


# -- the composite's units of work --------------------------------------------------
# The held-back resets are the composite's own: these run on memory counters.


def _composite() -> tuple[CompositeStore, MemoryStore]:
    counters = MemoryStore()
    return CompositeStore(MemoryStore(), rate_limits=counters.rate_limits), counters


def test_a_reset_in_a_unit_waits_for_the_commit() -> None:
    store, counters = _composite()
    store.rate_limits.hit("k", T0, END, amount=3)
    with store.atomic():
        store.rate_limits.reset("k")
        assert counters.rate_limits.get("k", T0) == CounterState(3, END)  # not yet
    assert counters.rate_limits.get("k", T0) is None


def test_a_reset_in_a_unit_that_rolls_back_is_dropped_and_hits_stay() -> None:
    store, counters = _composite()
    store.rate_limits.hit("k", T0, END, amount=3)
    with pytest.raises(RuntimeError), store.atomic():
        store.rate_limits.hit("k", T0, END)
        store.rate_limits.reset("k")
        store.users.add(_user())
        raise RuntimeError("boom")
    assert counters.rate_limits.get("k", T0) == CounterState(4, END)  # the hit counted, the reset never ran
    assert store.users.get(_user().id) is None  # the base's unit rolled back


def test_an_inner_unit_that_rolls_back_drops_only_its_own_resets() -> None:
    store, counters = _composite()
    for key in ("outer", "inner"):
        store.rate_limits.hit(key, T0, END)
    with store.atomic():
        store.rate_limits.reset("outer")
        with pytest.raises(RuntimeError), store.atomic():
            store.rate_limits.reset("inner")
            raise RuntimeError("boom")
        with store.atomic():
            pass
        assert counters.rate_limits.get("outer", T0) is not None
    assert counters.rate_limits.get("outer", T0) is None
    assert counters.rate_limits.get("inner", T0) == CounterState(1, END)


def test_a_hit_after_a_reset_in_the_same_unit_sees_it() -> None:
    store, counters = _composite()
    store.rate_limits.hit("k", T0, END, amount=5)
    later = END + timedelta(minutes=1)
    with store.atomic():
        store.rate_limits.reset("k")
        assert store.rate_limits.hit("k", T0, later) == CounterState(1, later)
    assert counters.rate_limits.get("k", T0) == CounterState(1, later)


def test_a_reset_failing_after_the_commit_is_logged_and_the_unit_stands(caplog: pytest.LogCaptureFixture) -> None:
    counters = RedisRateLimits.from_url(f"redis://127.0.0.1:{_closed_port()}/0", timeout=2)
    store = CompositeStore(MemoryStore(), rate_limits=counters)
    try:
        with caplog.at_level(logging.WARNING, logger="mindmesh_auth"), store.atomic():
            store.users.add(_user())
            store.rate_limits.reset("login-fail:abc")
        assert store.users.get(_user().id) is not None
        assert any(getattr(r, "mindmesh_auth_event", None) == "rate_limit_reset_failed" for r in caplog.records)
        assert "login-fail:abc" not in caplog.text
        with pytest.raises(StorageUnavailable):  # outside a unit a reset fails the call
            store.rate_limits.reset("k")
    finally:
        store.close()


def test_the_composite_refuses_what_is_not_a_store_or_counters() -> None:
    with pytest.raises(ConfigurationError):
        CompositeStore(object(), rate_limits=MemoryStore().rate_limits)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        CompositeStore(MemoryStore(), rate_limits=MemoryStore())  # type: ignore[arg-type]


@pytest.mark.redis
def test_from_urls_builds_the_base_and_the_counters() -> None:
    _client().close()  # skip (fail under CI) without a server
    prefix = f"mmt:{uuid.uuid4().hex}:"
    store = CompositeStore.from_urls("memory://", REDIS_URL, prefix=prefix)
    try:
        assert isinstance(store.base, MemoryStore) and isinstance(store.counters, RedisRateLimits)
        assert store.rate_limits.hit("k", T0, END) == CounterState(1, END)
        assert store.counters.client.exists(prefix + "k") == 1
    finally:
        _delete_prefix(store.counters.client, prefix)
        store.close()


def _user() -> User:
    return build_user(1, email="composite@example.com")
