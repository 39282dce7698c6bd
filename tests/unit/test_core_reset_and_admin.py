"""Password reset and change, blocking, users, sessions, logout, purge and audit queries."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    InvalidPassword,
    InvalidResetToken,
    InvalidToken,
    SessionNotFound,
    UserNotFound,
    ValidationError,
)
from mindmesh_auth.core.crypto import KeyRing

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase"
EMAIL = "ada@example.com"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def events(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types) if types else None, limit=10000)


def request_token(env) -> str:
    assert env.auth.password.request_reset(EMAIL) is None
    return env.outbox.last_reset_token(EMAIL)


def live_reset_rows(env) -> int:
    # purge_expired counts (and removes) every row that is consumed or expired by then: all of them, far ahead.
    return env.store.reset_tokens.purge_expired(env.clock.now() + timedelta(days=365))


# -- reset request -------------------------------------------------------------


def test_reset_request_for_unknown_email_is_silent_and_audited(env) -> None:
    assert env.auth.password.request_reset("nobody@example.com") is None
    assert len(env.outbox) == 0
    requested = events(env, AuditEventType.PASSWORD_RESET_REQUESTED)
    assert [(e.email, e.reason, e.user_id) for e in requested] == [("nobody@example.com", "unknown_email", None)]


def test_fourth_reset_request_within_the_hour_sends_nothing_and_does_not_raise(env, user) -> None:
    for _ in range(4):
        assert env.auth.password.request_reset(EMAIL) is None
    assert len(env.outbox.for_address(EMAIL, "password_reset")) == 3
    assert events(env, AuditEventType.RATE_LIMITED)[-1].reason == "password_reset"
    env.clock.advance(hours=1)
    env.auth.password.request_reset(EMAIL)
    assert len(env.outbox.for_address(EMAIL, "password_reset")) == 4


def test_reset_request_for_unknown_email_is_rate_limited_silently_too(env) -> None:
    for _ in range(5):
        assert env.auth.password.request_reset("nobody@example.com") is None
    assert len(events(env, AuditEventType.RATE_LIMITED)) == 2


def test_reset_token_is_43_url_safe_characters(env, user) -> None:
    token = request_token(env)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert env.outbox.last(EMAIL, "password_reset").data["token"] == token


def test_reset_changes_the_password_revokes_sessions_and_notifies(env, user) -> None:
    first = env.login(EMAIL)
    second = env.login(EMAIL)
    token = request_token(env)
    env.auth.password.reset(token, NEW_PASSWORD)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert env.auth.sessions.list(user.id) == []
    for result in (first, second):
        with pytest.raises(InvalidToken):
            env.auth.auth.get_user_from_token(result.access_token)
    changed = env.outbox.last(EMAIL, "password_changed")
    assert changed.kind == "password_changed"
    completed = events(env, AuditEventType.PASSWORD_RESET_COMPLETED)
    assert [(e.user_id, e.email) for e in completed] == [(user.id, EMAIL)]
    env.clock.advance(minutes=10)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_reset_token_works_only_once_and_its_row_is_gone(env, user) -> None:
    token = request_token(env)
    env.auth.password.reset(token, NEW_PASSWORD)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, "yet another passphrase")
    digest = KeyRing(env.auth.config.refresh_secret).digest("reset", token)
    assert env.store.reset_tokens.get(digest) is None
    assert live_reset_rows(env) == 0


def test_reset_token_is_stored_only_as_a_keyed_hash(env, user) -> None:
    token = request_token(env)
    digest = KeyRing(env.auth.config.refresh_secret).digest("reset", token)
    row = env.store.reset_tokens.get(digest)
    assert row is not None and row.user_id == user.id
    assert token not in row.token_hash and token not in repr(row)


def test_reset_does_not_unblock_a_blocked_user(env, user) -> None:
    token = request_token(env)
    env.auth.user.block(user.id)
    env.auth.password.reset(token, NEW_PASSWORD)
    assert env.auth.user.get_by_id(user.id).blocked is True
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, NEW_PASSWORD)


def test_reset_request_for_a_blocked_user_still_returns_none(env, user) -> None:
    env.auth.user.block(user.id)
    assert env.auth.password.request_reset(EMAIL) is None


def test_reset_token_expires_after_one_hour(env, user) -> None:
    token = request_token(env)
    env.clock.advance(hours=1)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)
    assert env.login(EMAIL, PASSWORD).user.id == user.id


def test_reset_token_is_accepted_just_before_expiry(env, user) -> None:
    token = request_token(env)
    env.clock.advance(minutes=59, seconds=59)
    env.auth.password.reset(token, NEW_PASSWORD)
    # The reset took effect: the new password logs in, the old one no longer does.
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_newer_reset_request_supersedes_the_older_token(env, user) -> None:
    old = request_token(env)
    new = request_token(env)
    assert old != new
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(old, NEW_PASSWORD)
    env.auth.password.reset(new, NEW_PASSWORD)


def test_bad_new_password_does_not_consume_the_token(env, user) -> None:
    token = request_token(env)
    with pytest.raises(InvalidPassword):
        env.auth.password.reset(token, "short")
    with pytest.raises(InvalidPassword):
        env.auth.password.reset(token, "ada")  # the email's local part, and short
    env.auth.password.reset(token, NEW_PASSWORD)
    env.clock.advance(minutes=1)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


@pytest.mark.parametrize("token", [None, 42, "", "short", "A" * 42, "A" * 44, "!" * 43, "A" * 42 + "\n"])
def test_malformed_reset_token_is_invalid_reset_token(env, user, token) -> None:
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)


def test_unknown_well_formed_reset_token_is_invalid_reset_token(env, user) -> None:
    request_token(env)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset("A" * 43, NEW_PASSWORD)


def test_mail_failure_on_reset_request_returns_none_and_leaves_no_token(env, user) -> None:
    env.outbox.fail_next()
    assert env.auth.password.request_reset(EMAIL) is None
    assert len(env.outbox) == 0
    assert live_reset_rows(env) == 0
    assert events(env, AuditEventType.PASSWORD_RESET_REQUESTED)[-1].reason == "delivery_failed"


def test_reset_url_puts_the_link_in_the_mail(make_env) -> None:
    env = make_env(reset_url="https://app.example/reset#token={token}")
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    token = env.outbox.last_reset_token(EMAIL)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert f"https://app.example/reset#token={token}" in mail.text
    assert f"https://app.example/reset#token={token}" in mail.html


def test_background_delivery_arrives_after_waiting(make_env) -> None:
    env = make_env(reset_delivery_in_background=True)
    env.auth.auth.register(EMAIL, PASSWORD)
    assert env.auth.password.request_reset(EMAIL) is None
    env.auth.wait_for_background_work()
    token = env.outbox.last_reset_token(EMAIL)
    env.auth.password.reset(token, NEW_PASSWORD)
    assert env.outbox.last(EMAIL, "password_changed")


def test_background_delivery_failure_never_reaches_the_caller(make_env) -> None:
    env = make_env(reset_delivery_in_background=True)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.outbox.fail_next()
    assert env.auth.password.request_reset(EMAIL) is None
    env.auth.wait_for_background_work()
    assert len(env.outbox) == 0
    assert live_reset_rows(env) == 0


# -- change ----------------------------------------------------------------------


def test_change_requires_the_current_password(env, user) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, "not the password", NEW_PASSWORD)
    assert env.login(EMAIL, PASSWORD).user.id == user.id


def test_change_revokes_other_sessions_but_keeps_the_given_one(env, user) -> None:
    keep = env.login(EMAIL)
    other = env.login(EMAIL)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD, keep_session_id=keep.session_id)
    assert env.auth.auth.get_user_from_token(keep.access_token).id == user.id
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(other.access_token)
    assert [s.id for s in env.auth.sessions.list(user.id)] == [keep.session_id]
    assert events(env, AuditEventType.PASSWORD_CHANGED)[-1].user_id == user.id
    env.clock.advance(minutes=10)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, NEW_PASSWORD)


def test_change_without_keep_session_revokes_every_session(env, user) -> None:
    result = env.login(EMAIL)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_change_invalidates_outstanding_reset_tokens(env, user) -> None:
    token = request_token(env)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, "attacker chosen password")


def test_change_for_unknown_user_is_user_not_found(env) -> None:
    with pytest.raises(UserNotFound):
        env.auth.password.change("00000000-0000-4000-8000-000000000000", PASSWORD, NEW_PASSWORD)


# -- block / users -----------------------------------------------------------------


def test_block_and_unblock_are_idempotent_and_audited(env, user) -> None:
    result = env.login(EMAIL)
    env.auth.user.block(user.id)
    env.auth.user.block(user.id)
    assert env.auth.user.get_by_id(user.id).blocked is True
    assert env.auth.sessions.get(result.session_id).revoke_reason == "blocked"
    env.auth.user.unblock(user.id)
    env.auth.user.unblock(user.id)
    assert env.auth.user.get_by_id(user.id).blocked is False
    kinds = [e.type for e in events(env, AuditEventType.ACCOUNT_BLOCKED, AuditEventType.ACCOUNT_UNBLOCKED)]
    assert kinds.count(AuditEventType.ACCOUNT_BLOCKED) == 2 and kinds.count(AuditEventType.ACCOUNT_UNBLOCKED) == 2


def test_unblock_does_not_revive_old_sessions(env, user) -> None:
    result = env.login(EMAIL)
    env.auth.user.block(user.id)
    env.auth.user.unblock(user.id)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)
    assert env.auth.sessions.list(user.id) == []
    env.clock.advance(minutes=10)
    assert env.login(EMAIL).user.id == user.id


def test_get_by_id_of_unknown_user_is_user_not_found(env) -> None:
    with pytest.raises(UserNotFound) as info:
        env.auth.user.get_by_id("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "user_not_found"
    assert info.value.status == 404


@pytest.mark.parametrize("bad", [None, 5, "", "x" * 65, "id\nwith-newline"])
def test_get_by_id_with_a_malformed_id_is_a_validation_error(env, bad) -> None:
    with pytest.raises(ValidationError):
        env.auth.user.get_by_id(bad)


def test_block_unknown_user_is_user_not_found(env) -> None:
    with pytest.raises(UserNotFound):
        env.auth.user.block("00000000-0000-4000-8000-000000000000")


def test_mark_email_verified(env, user) -> None:
    assert env.auth.user.get_by_id(user.id).email_verified is False
    env.auth.user.mark_email_verified(user.id)
    assert env.auth.user.get_by_id(user.id).email_verified is True
    assert events(env, AuditEventType.EMAIL_VERIFIED)[-1].user_id == user.id


def test_user_list_pages_and_validates(env, user) -> None:
    env.clock.advance(seconds=1)
    second = env.auth.auth.register("bob@example.com", PASSWORD)
    assert [u.id for u in env.auth.user.list()] == [user.id, second.id]
    assert [u.id for u in env.auth.user.list(limit=1, offset=1)] == [second.id]
    with pytest.raises(ValidationError):
        env.auth.user.list(limit=0)


# -- sessions / logout ---------------------------------------------------------------


def test_sessions_list_revoke_and_revoke_all(env, user) -> None:
    a = env.login(EMAIL)
    env.clock.advance(seconds=1)
    b = env.login(EMAIL)
    env.clock.advance(seconds=1)
    c = env.login(EMAIL)
    assert [s.id for s in env.auth.sessions.list(user.id)] == [c.session_id, b.session_id, a.session_id]
    assert env.auth.sessions.revoke(a.session_id) is True
    assert env.auth.sessions.revoke(a.session_id) is False
    assert [s.id for s in env.auth.sessions.list(user.id)] == [c.session_id, b.session_id]
    assert len(env.auth.sessions.list(user.id, include_inactive=True)) == 3
    assert env.auth.sessions.revoke_all(user.id) == 2
    assert env.auth.sessions.revoke_all(user.id) == 0
    assert env.auth.sessions.list(user.id) == []
    revoked = events(env, AuditEventType.SESSION_REVOKED)
    assert len(revoked) == 2


def test_revoking_an_unknown_session_is_session_not_found(env) -> None:
    with pytest.raises(SessionNotFound) as info:
        env.auth.sessions.revoke("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "session_not_found"


def test_logout_is_idempotent_and_audited_once(env, user) -> None:
    result = env.login(EMAIL)
    assert env.auth.auth.logout(result.session_id) is True
    assert env.auth.auth.logout(result.session_id) is False
    assert env.auth.auth.logout("00000000-0000-4000-8000-000000000000") is False
    logouts = events(env, AuditEventType.LOGOUT)
    assert [(e.user_id, e.session_id) for e in logouts] == [(user.id, result.session_id)]


# -- purge / audit -------------------------------------------------------------------


def test_purge_expired_returns_counts_and_removes_expired_rows(env, user) -> None:
    result = env.login(EMAIL)
    env.auth.auth.refresh(result.refresh_token)
    env.auth.otp.send(EMAIL, "email_verify")
    request_token(env)
    fresh = env.auth.purge_expired()
    assert fresh["sessions"] == 0 and fresh["reset_tokens"] == 0
    env.clock.advance(days=8)
    counts = env.auth.purge_expired()
    assert counts["sessions"] == 1
    assert counts["otp_challenges"] >= 1
    assert counts["reset_tokens"] == 1
    assert counts["rate_limits"] >= 1
    assert "audit_events" not in counts
    assert env.store.sessions.get(result.session_id) is None
    assert env.store.otps.get(EMAIL, "email_verify") is None
    assert env.auth.purge_expired() == {"sessions": 0, "otp_challenges": 0, "reset_tokens": 0, "rate_limits": 0}


def test_purge_expired_drops_old_audit_rows_when_retention_is_set(make_env) -> None:
    env = make_env(audit_retention=timedelta(days=30))
    env.auth.auth.register(EMAIL, PASSWORD)
    env.clock.advance(days=31)
    env.auth.auth.register("bob@example.com", PASSWORD)
    assert env.auth.purge_expired()["audit_events"] == 1
    assert [e.email for e in events(env)] == ["bob@example.com"]


def test_audit_query_filters_by_user_types_and_since(env, user) -> None:
    other = env.auth.auth.register("bob@example.com", PASSWORD)
    start = env.clock.now()
    env.clock.advance(minutes=1)
    env.login(EMAIL)
    mine = env.auth.audit.query(user_id=user.id)
    assert mine and all(e.user_id == user.id for e in mine)
    assert env.auth.audit.query(user_id=other.id)[0].type == AuditEventType.REGISTRATION_SUCCESS
    only = env.auth.audit.query(types=["LOGIN_SUCCESS"])
    assert [e.type for e in only] == [AuditEventType.LOGIN_SUCCESS]
    later = env.auth.audit.query(since=start + timedelta(seconds=30))
    assert AuditEventType.REGISTRATION_SUCCESS not in {e.type for e in later}
    assert {e.type for e in later} >= {AuditEventType.OTP_SENT, AuditEventType.LOGIN_SUCCESS}
    assert env.auth.audit.query(until=start + timedelta(seconds=30), types=[AuditEventType.LOGIN_SUCCESS]) == []
    assert [e.user_id for e in env.auth.audit.query(email="BOB@example.com")] == [other.id]
    assert len(env.auth.audit.query(limit=2)) == 2


@pytest.mark.parametrize("kwargs", [{"since": datetime(2026, 1, 1)}, {"until": datetime(2026, 1, 1)}, {"since": "2026-01-01"}])
def test_audit_query_rejects_naive_or_non_datetime_bounds(env, kwargs) -> None:
    with pytest.raises(ValidationError):
        env.auth.audit.query(**kwargs)


@pytest.mark.parametrize("kwargs", [{"types": ["NOT_A_TYPE"]}, {"limit": 0}, {"limit": 10_001}])
def test_audit_query_rejects_unknown_types_and_bad_limits(env, kwargs) -> None:
    with pytest.raises(ValidationError):
        env.auth.audit.query(**kwargs)


def test_reset_per_ip_limit_stops_one_ipv4_client(env) -> None:
    assert env.auth.config.reset_ip_limit.count == 20
    for i in range(21):
        with env.auth.context(ip_address="203.0.113.5"):
            env.auth.password.request_reset(f"nobody{i}@example.com")
    limited = events(env, AuditEventType.RATE_LIMITED)
    assert [e.email for e in limited] == ["nobody20@example.com"]


def test_reset_per_ip_limit_buckets_ipv6_by_slash_64(env) -> None:
    for i in range(21):
        with env.auth.context(ip_address=f"2001:db8:1:2::{i + 1:x}"):
            env.auth.password.request_reset(f"nobody{i}@example.com")
    limited = events(env, AuditEventType.RATE_LIMITED)
    assert [e.email for e in limited] == ["nobody20@example.com"]


def test_wrong_current_passwords_count_as_failed_logins(env, user) -> None:
    from mindmesh_auth import RateLimited

    for _ in range(10):
        with pytest.raises(InvalidPassword):
            env.auth.password.change(user.id, "not the password", "another good password")
    with pytest.raises(RateLimited):
        env.auth.password.change(user.id, PASSWORD, "another good password")
    with pytest.raises(RateLimited):
        env.auth.auth.login(user.email, PASSWORD)
    env.clock.advance(minutes=15)
    env.auth.password.change(user.id, PASSWORD, "another good password")
