"""auth.user, auth.sessions and auth.audit: bounds, exact audit rows and explicit contexts."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    InvalidEmail,
    InvalidToken,
    SessionNotFound,
    UserNotFound,
    ValidationError,
)
from mindmesh_auth.core.models import RequestContext

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the _ci helper
from _ci import require  # noqa: E402

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
IP = "192.0.2.44"
UA = "admin-console/2.1"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def rows(env, *types: AuditEventType) -> list[tuple]:
    return [
        (e.type, e.user_id, e.email, e.session_id, e.reason, e.occurred_at, e.ip_address, e.user_agent)
        for e in env.auth.audit.query(types=list(types), limit=10000)
    ]


def register_many(env, n: int) -> list[str]:
    ids = []
    for i in range(n):
        env.clock.advance(seconds=1)
        ids.append(env.auth.auth.register(f"user{i:02d}@example.com", PASSWORD).id)
    return ids


# -- block / unblock / verify ------------------------------------------------------------


def test_block_revokes_every_session_at_once_and_is_audited(env, user) -> None:
    a = env.login(EMAIL)
    b = env.login(EMAIL)
    env.clock.advance(minutes=1)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        assert env.auth.user.block(user.id) is None
    assert env.auth.sessions.list(user.id) == []
    for result in (a, b):
        session = env.auth.sessions.get(result.session_id)
        assert (session.revoked_at, session.revoke_reason) == (now, "blocked")
        with pytest.raises(InvalidToken):
            env.auth.auth.get_user_from_token(result.access_token)
    assert rows(env, AuditEventType.ACCOUNT_BLOCKED) == [
        (AuditEventType.ACCOUNT_BLOCKED, user.id, EMAIL, None, None, now, IP, UA)
    ]
    blocked = env.auth.user.get_by_id(user.id)
    assert (blocked.blocked, blocked.updated_at) == (True, now)


def test_blocked_user_cannot_log_in(env, user) -> None:
    env.auth.user.block(user.id)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_block_leaves_other_users_sessions_alone(env, user) -> None:
    env.auth.auth.register("bob@example.com", PASSWORD)
    bob = env.login("bob@example.com")
    env.auth.user.block(user.id)
    assert env.auth.auth.get_user_from_token(bob.access_token).email == "bob@example.com"


def test_unblock_is_audited_and_lets_the_user_log_in_again(env, user) -> None:
    old = env.login(EMAIL)
    env.auth.user.block(user.id)
    env.clock.advance(minutes=2)
    now = env.clock.now()
    env.auth.user.unblock(user.id, context=RequestContext(ip_address=IP, user_agent=UA))
    assert rows(env, AuditEventType.ACCOUNT_UNBLOCKED) == [
        (AuditEventType.ACCOUNT_UNBLOCKED, user.id, EMAIL, None, None, now, IP, UA)
    ]
    unblocked = env.auth.user.get_by_id(user.id)
    assert (unblocked.blocked, unblocked.updated_at) == (False, now)
    assert env.auth.sessions.get(old.session_id).revoke_reason == "blocked"
    assert env.login(EMAIL).user.id == user.id


def test_unblock_unknown_user_is_user_not_found(env) -> None:
    with pytest.raises(UserNotFound):
        env.auth.user.unblock(UNKNOWN_ID)
    assert rows(env, AuditEventType.ACCOUNT_UNBLOCKED) == []


def test_block_unknown_user_writes_no_audit_row(env) -> None:
    with pytest.raises(UserNotFound):
        env.auth.user.block(UNKNOWN_ID)
    assert rows(env, AuditEventType.ACCOUNT_BLOCKED) == []


def test_mark_email_verified_sets_the_flag_and_is_audited(env, user) -> None:
    env.clock.advance(minutes=3)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        assert env.auth.user.mark_email_verified(user.id) is None
    verified = env.auth.user.get_by_id(user.id)
    assert (verified.email_verified, verified.updated_at) == (True, now)
    assert rows(env, AuditEventType.EMAIL_VERIFIED) == [(AuditEventType.EMAIL_VERIFIED, user.id, EMAIL, None, None, now, IP, UA)]


def test_mark_email_verified_for_unknown_user_is_user_not_found(env) -> None:
    with pytest.raises(UserNotFound):
        env.auth.user.mark_email_verified(UNKNOWN_ID)
    assert rows(env, AuditEventType.EMAIL_VERIFIED) == []


def test_explicit_context_wins_for_every_user_call(env, user) -> None:
    explicit = RequestContext(ip_address="198.51.100.20", user_agent="explicit/1")
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.user.block(user.id, context=explicit)
        env.auth.user.unblock(user.id, context=explicit)
        env.auth.user.mark_email_verified(user.id, context=explicit)
    found = rows(env, AuditEventType.ACCOUNT_BLOCKED, AuditEventType.ACCOUNT_UNBLOCKED, AuditEventType.EMAIL_VERIFIED)
    assert [r[0] for r in found] == [
        AuditEventType.ACCOUNT_BLOCKED,
        AuditEventType.ACCOUNT_UNBLOCKED,
        AuditEventType.EMAIL_VERIFIED,
    ]
    assert {(r[6], r[7]) for r in found} == {("198.51.100.20", "explicit/1")}


# -- get / list --------------------------------------------------------------------------


def test_get_by_email_canonicalizes_and_misses_quietly(env, user) -> None:
    assert env.auth.user.get_by_email("ADA@Example.COM").id == user.id
    assert env.auth.user.get_by_email("nobody@example.com") is None
    with pytest.raises(InvalidEmail):
        env.auth.user.get_by_email("not an email")


def test_get_by_id_returns_the_user(env, user) -> None:
    found = env.auth.user.get_by_id(user.id)
    assert (found.id, found.email) == (user.id, EMAIL)


def test_user_list_defaults_to_the_first_hundred(env) -> None:
    ids = register_many(env, 101)
    assert [u.id for u in env.auth.user.list()] == ids[:100]


def test_user_list_limit_and_offset_page_through(env) -> None:
    ids = register_many(env, 5)
    assert [u.id for u in env.auth.user.list(limit=1)] == ids[:1]
    assert [u.id for u in env.auth.user.list(limit=2, offset=3)] == ids[3:5]
    assert [u.id for u in env.auth.user.list(limit=1000, offset=0)] == ids
    assert env.auth.user.list(offset=5) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": 1.0}, "limit"),
        ({"limit": None}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": False}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "0"}, "offset"),
        ({"offset": 0.0}, "offset"),
        ({"offset": True}, "offset"),
        ({"offset": False}, "offset"),
        ({"offset": 2**31}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"offset": 10**30}, "offset"),
    ],
)
def test_user_list_rejects_bad_bounds_naming_the_field(env, kwargs, field) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.user.list(**kwargs)
    assert info.value.field == field
    bounds = "1 to 1000" if field == "limit" else "0 to 2147483647"
    assert info.value.message == f"{field} must be a whole number from {bounds}."


def test_user_list_takes_the_largest_offset(env) -> None:
    register_many(env, 2)
    assert env.auth.user.list(offset=2**31 - 1) == []
    assert len(env.auth.user.list(limit=1000, offset=1)) == 1


@pytest.mark.parametrize("backend", ["sqlite", "mongo"])
def test_user_list_bounds_are_typed_errors_on_real_backends(backend, tmp_path) -> None:
    # Before the bounds, SQLite raised an untyped OverflowError for a huge offset and took limit=True as 1.
    require("peewee" if backend == "sqlite" else "mongomock")
    from mindmesh_auth import MindmeshAuth
    from mindmesh_auth.testing import Outbox, test_config

    if backend == "sqlite":
        store: object = f"sqlite:///{tmp_path}/users.db"
    else:
        import mongomock

        from mindmesh_auth.adapters.mongo import MongoStore

        store = MongoStore(mongomock.MongoClient(tz_aware=True)["mm_admin_rules"])
    with MindmeshAuth(store=store, mailer=Outbox(), config=test_config()) as auth:
        auth.create_schema()
        user = auth.auth.register(EMAIL, PASSWORD)
        for kwargs, field in (({"offset": 2**63}, "offset"), ({"limit": True}, "limit"), ({"offset": True}, "offset")):
            with pytest.raises(ValidationError) as info:
                auth.user.list(**kwargs)
            assert info.value.field == field
        assert auth.user.list(offset=2**31 - 1) == []
        assert [u.id for u in auth.user.list(limit=1)] == [user.id]


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_list_shows_only_live_sessions_unless_asked(env, user) -> None:
    a = env.login(EMAIL)
    env.clock.advance(seconds=1)
    b = env.login(EMAIL)
    env.auth.sessions.revoke(a.session_id)
    assert [s.id for s in env.auth.sessions.list(user.id)] == [b.session_id]
    assert [s.id for s in env.auth.sessions.list(user.id, include_inactive=False)] == [b.session_id]
    assert [s.id for s in env.auth.sessions.list(user.id, include_inactive=True)] == [b.session_id, a.session_id]


def test_sessions_list_drops_sessions_past_their_lifetime(env, user) -> None:
    env.login(EMAIL)
    env.clock.advance(days=7)
    assert env.auth.sessions.list(user.id) == []
    assert len(env.auth.sessions.list(user.id, include_inactive=True)) == 1


def test_sessions_of_an_unknown_user_are_an_empty_list(env) -> None:
    assert env.auth.sessions.list(UNKNOWN_ID) == []


@pytest.mark.parametrize("bad", [None, "", "s" * 65, "a\x00b", 7])
def test_session_calls_validate_their_ids(env, bad) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.get(bad)
    assert info.value.field == "session_id"
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.revoke(bad)
    assert info.value.field == "session_id"
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.list(bad)
    assert info.value.field == "user_id"
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.revoke_all(bad)
    assert info.value.field == "user_id"


def test_sessions_get_returns_the_session_or_session_not_found(env, user) -> None:
    result = env.login(EMAIL)
    session = env.auth.sessions.get(result.session_id)
    assert (session.id, session.user_id) == (result.session_id, user.id)
    with pytest.raises(SessionNotFound):
        env.auth.sessions.get(UNKNOWN_ID)


def test_revoking_one_session_is_audited_with_its_ids(env, user) -> None:
    result = env.login(EMAIL)
    other = env.login(EMAIL)
    env.clock.advance(minutes=5)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        assert env.auth.sessions.revoke(result.session_id) is True
        assert env.auth.sessions.revoke(result.session_id) is False
    session = env.auth.sessions.get(result.session_id)
    assert (session.revoked_at, session.revoke_reason) == (now, "revoked")
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)
    assert env.auth.auth.get_user_from_token(other.access_token).id == user.id
    assert rows(env, AuditEventType.SESSION_REVOKED) == [
        (AuditEventType.SESSION_REVOKED, user.id, None, result.session_id, None, now, IP, UA)
    ]


def test_revoke_all_is_audited_once_with_the_count(env, user) -> None:
    a = env.login(EMAIL)
    b = env.login(EMAIL)
    env.login(EMAIL)
    env.auth.sessions.revoke(a.session_id)
    env.clock.advance(minutes=1)
    now = env.clock.now()
    assert env.auth.sessions.revoke_all(user.id, context=RequestContext(ip_address=IP, user_agent=UA)) == 2
    assert env.auth.sessions.revoke_all(user.id) == 0
    assert env.auth.sessions.get(b.session_id).revoke_reason == "revoked"
    assert env.auth.sessions.get(b.session_id).revoked_at == now
    assert rows(env, AuditEventType.SESSION_REVOKED)[1:] == [
        (AuditEventType.SESSION_REVOKED, user.id, None, None, "all:2", now, IP, UA)
    ]


def test_revoke_all_of_a_user_without_sessions_writes_nothing(env, user) -> None:
    assert env.auth.sessions.revoke_all(user.id) == 0
    assert rows(env, AuditEventType.SESSION_REVOKED) == []


def test_revoke_all_leaves_other_users_sessions_alone(env, user) -> None:
    env.auth.auth.register("bob@example.com", PASSWORD)
    bob = env.login("bob@example.com")
    env.login(EMAIL)
    assert env.auth.sessions.revoke_all(user.id) == 1
    assert env.auth.auth.get_user_from_token(bob.access_token).email == "bob@example.com"


def test_revoke_with_user_id_revokes_only_that_users_sessions(env, user) -> None:
    bob = env.auth.auth.register("bob@example.com", PASSWORD)
    mine = env.login(EMAIL)
    theirs = env.login("bob@example.com")
    # Another user's session fails exactly like an unknown one and is not touched.
    for target in (theirs.session_id, UNKNOWN_ID):
        with pytest.raises(SessionNotFound) as info:
            env.auth.sessions.revoke(target, user_id=user.id)
        assert (info.value.status, info.value.code) == (404, "session_not_found")
    assert env.auth.sessions.get(theirs.session_id).revoked_at is None
    assert env.auth.auth.get_user_from_token(theirs.access_token).id == bob.id
    assert rows(env, AuditEventType.SESSION_REVOKED) == []

    now = env.clock.now()
    assert env.auth.sessions.revoke(mine.session_id, user_id=user.id, context=RequestContext(ip_address=IP, user_agent=UA))
    assert env.auth.sessions.revoke(mine.session_id, user_id=user.id) is False
    assert env.auth.sessions.get(mine.session_id).revoked_at == now
    assert rows(env, AuditEventType.SESSION_REVOKED) == [
        (AuditEventType.SESSION_REVOKED, user.id, None, mine.session_id, None, now, IP, UA)
    ]


@pytest.mark.parametrize("bad", [None, "", "s" * 65, "a\x00b", 7])
def test_revoke_with_user_id_validates_both_ids(env, user, bad) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.revoke(bad, user_id=user.id)
    assert info.value.field == "session_id"
    if bad is None:
        return  # user_id=None: no owner to check (the administrator's call)
    with pytest.raises(ValidationError) as info:
        env.auth.sessions.revoke(UNKNOWN_ID, user_id=bad)
    assert info.value.field == "user_id"


def test_explicit_context_wins_for_session_calls(env, user) -> None:
    a = env.login(EMAIL)
    env.login(EMAIL)
    explicit = RequestContext(ip_address="2001:db8::7", user_agent="explicit/2")
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.sessions.revoke(a.session_id, context=explicit)
        env.auth.sessions.revoke_all(user.id, context=explicit)
    found = rows(env, AuditEventType.SESSION_REVOKED)
    assert [r[4] for r in found] == [None, "all:1"]
    assert {(r[6], r[7]) for r in found} == {("2001:db8::7", "explicit/2")}


# -- audit.query ---------------------------------------------------------------------------------


def test_audit_query_accepts_limits_from_one_to_ten_thousand(env, user) -> None:
    env.auth.auth.register("bob@example.com", PASSWORD)
    assert len(env.auth.audit.query(limit=1)) == 1
    assert len(env.auth.audit.query(limit=10000)) == 2
    assert len(env.auth.audit.query()) == 2


def test_audit_query_default_limit_is_one_hundred(env) -> None:
    for i in range(101):
        env.auth.password.request_reset(f"n{i}@example.com")
    assert len(env.auth.audit.query()) == 100


@pytest.mark.parametrize("limit", [0, -5, 10_001, "10", 2.0, None, True])
def test_audit_query_rejects_limits_outside_the_bounds(env, limit) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.audit.query(limit=limit)
    assert info.value.field == "limit"
    assert info.value.message == "limit must be 1..10000."


def test_audit_query_rejects_an_unknown_type_among_known_ones(env) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.audit.query(types=[AuditEventType.LOGIN_SUCCESS, "login_success"])
    assert info.value.field == "types"
    assert info.value.message == "Unknown audit event type."


def test_audit_query_takes_types_as_names_or_enum_members(env, user) -> None:
    env.auth.user.block(user.id)
    by_name = env.auth.audit.query(types=["ACCOUNT_BLOCKED"])
    by_member = env.auth.audit.query(types=(AuditEventType.ACCOUNT_BLOCKED,))
    assert [e.type for e in by_name] == [e.type for e in by_member] == [AuditEventType.ACCOUNT_BLOCKED]
    assert env.auth.audit.query(types=[]) == []


@pytest.mark.parametrize("bound", ["since", "until"])
@pytest.mark.parametrize("value", [datetime(2026, 1, 1, 12, 0), "2026-01-01T00:00:00+00:00", 1767268800])
def test_audit_query_rejects_naive_or_non_datetime_bounds(env, bound, value) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.audit.query(**{bound: value})
    assert info.value.field == "since"
    assert info.value.message == "since/until must be timezone-aware datetimes."


def test_audit_query_since_and_until_select_a_half_open_window(env, user) -> None:
    start = env.clock.now()  # REGISTRATION_SUCCESS happened here
    env.clock.advance(minutes=1)
    env.auth.user.block(user.id)
    env.clock.advance(minutes=1)
    env.auth.user.unblock(user.id)
    middle = start + timedelta(minutes=1)
    window = env.auth.audit.query(since=middle, until=middle + timedelta(minutes=1))
    assert [e.type for e in window] == [AuditEventType.ACCOUNT_BLOCKED]
    other_zone = timezone(timedelta(hours=2))
    assert [e.type for e in env.auth.audit.query(since=middle.astimezone(other_zone))] == [
        AuditEventType.ACCOUNT_BLOCKED,
        AuditEventType.ACCOUNT_UNBLOCKED,
    ]


def test_audit_query_by_user_and_email(env, user) -> None:
    bob = env.auth.auth.register("bob@example.com", PASSWORD)
    env.auth.user.block(bob.id)
    assert [e.type for e in env.auth.audit.query(user_id=bob.id)] == [
        AuditEventType.REGISTRATION_SUCCESS,
        AuditEventType.ACCOUNT_BLOCKED,
    ]
    assert [e.user_id for e in env.auth.audit.query(email="Bob@Example.com")] == [bob.id, bob.id]
    assert env.auth.audit.query(user_id=UNKNOWN_ID) == []


def test_audit_query_validates_user_id_and_email(env) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.audit.query(user_id="")
    assert info.value.field == "user_id"
    with pytest.raises(InvalidEmail):
        env.auth.audit.query(email="not an email")
