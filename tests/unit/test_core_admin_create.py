"""``auth.user.create``: an administrator creates an account with the registration's checks,
outside the public sign-up's per-IP bucket and its ``before_register`` hook."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from mindmesh_auth import (
    AuditEventType,
    EmailAlreadyRegistered,
    Hooks,
    InvalidPassword,
    Limit,
    MindmeshAuth,
    RateLimited,
    RequestContext,
    User,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
ONE_AN_HOUR = Limit(1, timedelta(hours=1))


def events(env: Any, *types: AuditEventType) -> list[Any]:
    return env.auth.audit.query(types=list(types) if types else None, limit=10_000)


def test_creation_stores_the_user_with_its_profile_and_the_verified_flag(env) -> None:
    user = env.auth.user.create("Ada@Example.COM", PASSWORD, email_verified=True, first_name="Ada", plan="pro")
    stored = env.auth.user.get_by_id(user.id)
    assert stored == user
    assert (stored.email, stored.email_verified, stored.blocked) == (EMAIL, True, False)
    assert (stored.first_name, stored.plan) == ("Ada", "pro")
    assert stored.password_hash != PASSWORD and PASSWORD not in stored.password_hash
    assert env.login(EMAIL).user.id == user.id  # the password was hashed as a login checks it

    plain = env.auth.user.create("bob@example.com", PASSWORD)
    assert env.auth.user.get_by_id(plain.id).email_verified is False
    assert plain.profile == {}
    assert sorted(u.email for u in env.auth.user.list()) == [EMAIL, "bob@example.com"]


def test_creation_is_audited_with_reason_admin_and_the_callers_context(env) -> None:
    ctx = RequestContext(ip_address="198.51.100.7", user_agent="ops-console")
    user = env.auth.user.create(EMAIL, PASSWORD, context=ctx)
    public = env.auth.auth.register("bob@example.com", PASSWORD)
    rows = events(env, AuditEventType.REGISTRATION_SUCCESS)
    assert [(r.user_id, r.email, r.reason) for r in rows] == [(user.id, EMAIL, "admin"), (public.id, "bob@example.com", None)]
    assert (rows[0].ip_address, rows[0].user_agent) == ("198.51.100.7", "ops-console")
    assert all(PASSWORD not in repr(r) for r in events(env))


def test_admin_creation_does_not_spend_the_public_registration_bucket(make_env) -> None:
    env = make_env(register_ip_limit=ONE_AN_HOUR, no_ip_limit_factor=1)
    for i in range(3):
        env.auth.user.create(f"admin{i}@example.com", PASSWORD)
    env.auth.auth.register("public@example.com", PASSWORD)  # the bucket's one registration is still there
    with pytest.raises(RateLimited):
        env.auth.auth.register("late@example.com", PASSWORD)
    assert [r.reason for r in events(env, AuditEventType.RATE_LIMITED)] == ["register"]


def test_a_spent_public_bucket_does_not_block_admin_creation(make_env) -> None:
    env = make_env(register_ip_limit=ONE_AN_HOUR, no_ip_limit_factor=1)
    ctx = RequestContext(ip_address="203.0.113.9")
    env.auth.auth.register("first@example.com", PASSWORD)
    env.auth.auth.register("second@example.com", PASSWORD, context=ctx)
    for kw in ({}, {"context": ctx}):
        with pytest.raises(RateLimited):
            env.auth.auth.register("refused@example.com", PASSWORD, **kw)
    created = [env.auth.user.create(f"admin{i}@example.com", PASSWORD, context=ctx if i % 2 else None) for i in range(4)]
    assert all(env.auth.user.get_by_id(u.id).email == u.email for u in created)
    assert env.auth.user.get_by_email("refused@example.com") is None
    assert len(events(env, AuditEventType.RATE_LIMITED)) == 2


def test_a_taken_address_is_refused_and_audited(env) -> None:
    first = env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(EmailAlreadyRegistered):
        env.auth.user.create("ADA@example.com", "another good passphrase", email_verified=True, first_name="X")
    assert env.auth.user.get_by_email(EMAIL) == first
    assert env.auth.user.get_by_id(first.id).email_verified is False
    assert [u.id for u in env.auth.user.list()] == [first.id]
    [failed] = events(env, AuditEventType.REGISTRATION_FAILED)
    assert (failed.email, failed.reason, failed.user_id) == (EMAIL, "email_taken", None)
    assert len(events(env, AuditEventType.REGISTRATION_SUCCESS)) == 1


@pytest.mark.parametrize("password", ["short", "ada", "ADA@example.com", " " * 20])
def test_a_password_the_policy_refuses_stores_nothing(env, password: str) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.user.create(EMAIL, password)
    assert env.store.users.list() == []
    assert events(env) == []


@pytest.mark.parametrize("key", ["password_hash", "id", "Bad-Key", "blocked", "email_verified", "_private"])
def test_disallowed_profile_keys_are_refused_as_in_registration(env, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.user.create(EMAIL, PASSWORD, **{key: "x"})
    assert info.value.field == key
    assert env.store.users.list() == []


@pytest.mark.parametrize("address", ["not-an-address", "", "a@"])
def test_an_invalid_address_is_refused(env, address: str) -> None:
    with pytest.raises(ValidationError):
        env.auth.user.create(address, PASSWORD)
    assert env.store.users.list() == []


@pytest.mark.parametrize("flag", ["false", 1, None])
def test_email_verified_must_be_a_boolean(env, flag: Any) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.user.create(EMAIL, PASSWORD, email_verified=flag)
    assert (info.value.field, info.value.message) == ("email_verified", "email_verified must be a boolean.")
    assert env.store.users.list() == []


def test_after_register_runs_once_committed_and_before_register_is_not_called() -> None:
    store = MemoryStore()
    before: list[tuple[str, dict[str, Any]]] = []
    after: list[tuple[User | None, bool, int]] = []

    def before_register(email: str, profile: Mapping[str, Any]) -> None:
        before.append((email, dict(profile)))
        raise ValidationError("Sign-ups are closed.")

    auth: MindmeshAuth

    def after_register(user: User) -> None:
        # The stored row, whether a unit is still open, the hashing gate's admitted calls.
        after.append((store.users.get(user.id), bool(store._unit.frames), auth.hashing.admitted))

    hooks = Hooks(before_register=before_register, after_register=after_register)
    auth = MindmeshAuth(store=store, mailer=Outbox(), config=test_config(), clock=FakeClock(), hooks=hooks)
    try:
        with pytest.raises(ValidationError):
            auth.auth.register("public@example.com", PASSWORD, plan="free")  # the hook does guard sign-ups
        assert before == [("public@example.com", {"plan": "free"})]
        user = auth.user.create(EMAIL, PASSWORD, plan="pro")
        assert before == [("public@example.com", {"plan": "free"})]
        # Stored and committed when the hook ran, inside the hashing gate's slot.
        assert after == [(user, False, 1)]
        assert auth.hashing.admitted == 0
        with pytest.raises(EmailAlreadyRegistered):
            auth.user.create(EMAIL, PASSWORD)
        assert len(after) == 1
    finally:
        auth.close()


def test_the_async_facade_creates_users_on_the_hashing_pool() -> None:
    threads: list[str] = []
    hooks = Hooks(after_register=lambda user: threads.append(threading.current_thread().name))
    config = test_config(hash_workers=2, hash_queue_limit=4)
    sync = MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=config, clock=FakeClock(), hooks=hooks)

    async def flow() -> None:
        async with AsyncMindmeshAuth(sync, max_workers=2) as auth:
            user = await auth.user.create(EMAIL, PASSWORD, email_verified=True, first_name="Ada")
            stored = await auth.user.get_by_id(user.id)
            assert (stored.email, stored.email_verified, stored.first_name) == (EMAIL, True, "Ada")
            with pytest.raises(EmailAlreadyRegistered):
                await auth.user.create(EMAIL, PASSWORD)
            await auth.auth.register("bob@example.com", PASSWORD)

    asyncio.run(flow())
    assert len(threads) == 2
    assert all(name.startswith("mindmesh-auth-hash") for name in threads)
    rows = sync.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS])
    assert [r.reason for r in rows] == ["admin", None]
