"""Refresh rotation rules: grace period, race window, reuse detection, liveness checks, logout and their audit rows."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidRefreshToken,
    InvalidToken,
    RefreshTokenReused,
    RequestContext,
    ValidationError,
)
from mindmesh_auth.testing import test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
GRACE = timedelta(seconds=10)
CTX = RequestContext(ip_address="203.0.113.77", user_agent="refresh-rules-agent/1.0")
JWT_SECRET = test_config().jwt_secret


def events(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types) if types else None, limit=10000)


def claims_of(token: str) -> dict:
    return jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="mindmesh-app", options={"verify_exp": False})


def start(make_env, **overrides):
    env = make_env(**overrides)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    return env, user, env.login(EMAIL)


def assert_exact_type(info: pytest.ExceptionInfo, kind: type) -> None:
    assert type(info.value) is kind


# -- grace period: a repeat returns the current successor only while the session is usable ----------


def test_grace_replay_after_the_chain_rotated_on_is_reuse_not_a_new_pair(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    second = env.auth.auth.refresh(first.refresh_token)
    third = env.auth.auth.refresh(second.refresh_token)  # the chain moved on past `second`
    env.clock.advance(seconds=5)  # inside the grace period, outside the race window
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token)
    assert env.auth.sessions.get(first.session_id).revoked_at is not None
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(third.access_token)


def test_grace_replay_after_the_chain_rotated_on_within_the_race_window_is_refused_without_revoking(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    second = env.auth.auth.refresh(first.refresh_token)
    third = env.auth.auth.refresh(second.refresh_token)
    env.clock.advance(seconds=1)
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(first.refresh_token)
    assert_exact_type(info, InvalidRefreshToken)
    assert env.auth.sessions.get(first.session_id).revoked_at is None
    assert env.auth.auth.refresh(third.refresh_token).session_id == first.session_id


def test_grace_replay_returns_a_working_pair_for_the_same_session(make_env) -> None:
    env, user, first = start(make_env, refresh_grace_period=GRACE, access_token_ttl=timedelta(minutes=3))
    env.clock.advance(seconds=20)
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=4)
    again = env.auth.auth.refresh(first.refresh_token)
    assert again.refresh_token == second.refresh_token
    assert again.session_id == first.session_id
    assert again.expires_in == 180
    claims = claims_of(again.access_token)
    assert (claims["sub"], claims["sid"], claims["email"]) == (user.id, first.session_id, EMAIL)
    assert claims["iat"] == int(env.clock.now().timestamp())
    found = env.auth.auth.authenticate(again.access_token)
    assert (found.user.id, found.session.id) == (user.id, first.session_id)
    # The repeat is not a rotation: the successor stays the one live token.
    assert env.auth.auth.refresh(again.refresh_token).session_id == first.session_id


def test_grace_replay_after_logout_is_refused(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    env.auth.auth.refresh(first.refresh_token)
    assert env.auth.auth.logout(first.session_id) is True
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(first.refresh_token)
    assert_exact_type(info, InvalidRefreshToken)


def test_grace_replay_after_the_session_was_revoked_later_in_the_window_is_refused(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=6)
    assert env.auth.sessions.revoke(first.session_id) is True
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)


def test_grace_replay_after_the_user_was_blocked_is_refused(make_env) -> None:
    env, user, first = start(make_env, refresh_grace_period=GRACE)
    env.auth.auth.refresh(first.refresh_token)
    env.auth.user.block(user.id)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)


def test_grace_replay_for_a_blocked_user_whose_session_is_not_yet_revoked_is_refused(make_env) -> None:
    env, user, first = start(make_env, refresh_grace_period=GRACE)
    env.auth.auth.refresh(first.refresh_token)
    # Another process has set the flag but not yet revoked the sessions (block() does both, in that order).
    assert env.store.users.set_blocked(user.id, True, env.clock.now())
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)


def test_refresh_for_a_blocked_user_whose_session_is_not_yet_revoked_is_refused(make_env) -> None:
    env, user, first = start(make_env)
    assert env.store.users.set_blocked(user.id, True, env.clock.now())
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)
    assert events(env, AuditEventType.SESSION_REFRESHED) == []
    # Nothing was rotated: once unblocked, the same token still works.
    assert env.store.users.set_blocked(user.id, False, env.clock.now())
    assert env.auth.auth.refresh(first.refresh_token).session_id == first.session_id


def test_grace_replay_after_the_session_expired_is_refused(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE, session_ttl=timedelta(minutes=30))
    env.clock.advance(minutes=30, seconds=-5)
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5)  # exactly at the absolute expiry, 5 s into the grace period
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(second.refresh_token)


def test_grace_replay_one_millisecond_before_the_session_expires_still_works(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE, session_ttl=timedelta(minutes=30))
    env.clock.advance(minutes=30, seconds=-5)
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5, milliseconds=-1)
    assert env.auth.auth.refresh(first.refresh_token).refresh_token == second.refresh_token


def test_grace_replay_of_an_idle_session_is_refused(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE, session_idle_timeout=timedelta(seconds=5))
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5)  # idle since the rotation, still inside the grace period
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(second.refresh_token)


def test_grace_replay_just_before_the_idle_timeout_works(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE, session_idle_timeout=timedelta(seconds=5))
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5, milliseconds=-1)
    assert env.auth.auth.refresh(first.refresh_token).refresh_token == second.refresh_token


def test_refresh_of_an_idle_session_is_refused_exactly_at_the_idle_timeout(make_env) -> None:
    env, _user, first = start(make_env, session_idle_timeout=timedelta(minutes=10))
    env.clock.advance(minutes=10, milliseconds=-1)
    pair = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(minutes=10)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(pair.refresh_token)


# -- the boundaries of the grace period and the race window ----------------------------------------


def test_grace_replay_exactly_at_the_end_of_the_grace_period_returns_the_successor(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(GRACE)
    assert env.auth.auth.refresh(first.refresh_token).refresh_token == second.refresh_token
    assert env.auth.sessions.get(first.session_id).revoked_at is None


def test_replay_one_millisecond_after_the_grace_period_is_reuse(make_env) -> None:
    env, _user, first = start(make_env, refresh_grace_period=GRACE)
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(GRACE + timedelta(milliseconds=1))
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(second.refresh_token)


def test_replay_exactly_at_the_end_of_the_race_window_is_refused_without_revoking(make_env) -> None:
    env, _user, first = start(make_env, refresh_race_window=timedelta(seconds=5))
    second = env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5)
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(first.refresh_token)
    assert_exact_type(info, InvalidRefreshToken)
    assert env.auth.sessions.get(first.session_id).revoked_at is None
    assert events(env, AuditEventType.REFRESH_REUSE_DETECTED) == []
    env.auth.auth.refresh(second.refresh_token)


def test_replay_one_millisecond_after_the_race_window_is_reuse(make_env) -> None:
    env, _user, first = start(make_env, refresh_race_window=timedelta(seconds=5))
    env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(seconds=5, milliseconds=1)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token)


def test_zero_race_window_makes_even_an_immediate_replay_reuse(make_env) -> None:
    env, _user, first = start(make_env, refresh_race_window=timedelta(0))
    second = env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(second.refresh_token)


def test_without_grace_period_an_immediate_replay_is_refused_and_gets_no_successor(make_env) -> None:
    env, _user, first = start(make_env)
    second = env.auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(first.refresh_token)
    assert_exact_type(info, InvalidRefreshToken)
    assert env.auth.auth.refresh(second.refresh_token).session_id == first.session_id


# -- audit rows and the per-call context ------------------------------------------------------------


def test_refresh_audit_row_names_user_email_session_time_and_the_explicit_context(make_env) -> None:
    env, user, first = start(make_env)
    env.clock.advance(minutes=3)
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    [row] = events(env, AuditEventType.SESSION_REFRESHED)
    assert (row.user_id, row.email, row.session_id, row.reason) == (user.id, EMAIL, first.session_id, None)
    assert (row.ip_address, row.user_agent) == (CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()


def test_refresh_audit_row_uses_the_ambient_context_without_an_explicit_one(make_env) -> None:
    env, _user, first = start(make_env)
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        env.auth.auth.refresh(first.refresh_token)
    [row] = events(env, AuditEventType.SESSION_REFRESHED)
    assert (row.ip_address, row.user_agent) == ("198.51.100.1", "ambient")


def test_reuse_audit_row_names_user_session_time_and_context_and_is_written_once(make_env) -> None:
    env, user, first = start(make_env)
    env.auth.auth.refresh(first.refresh_token)
    env.clock.advance(minutes=1)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    revoked_at = env.clock.now()
    env.clock.advance(minutes=1)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    [row] = events(env, AuditEventType.REFRESH_REUSE_DETECTED)
    assert (row.user_id, row.session_id, row.email, row.reason) == (user.id, first.session_id, None, None)
    assert (row.ip_address, row.user_agent) == (CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == revoked_at
    session = env.auth.sessions.get(first.session_id)
    assert (session.revoked_at, session.revoke_reason) == (revoked_at, "refresh_reuse")


def test_reuse_after_logout_raises_reuse_but_writes_no_reuse_row(make_env) -> None:
    env, _user, first = start(make_env)
    env.auth.auth.refresh(first.refresh_token)
    env.auth.auth.logout(first.session_id)
    env.clock.advance(minutes=1)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token)
    assert events(env, AuditEventType.REFRESH_REUSE_DETECTED) == []
    assert env.auth.sessions.get(first.session_id).revoke_reason == "logout"


def test_failed_refreshes_write_no_refreshed_row(make_env) -> None:
    env, _user, _first = start(make_env)
    for token in ("A" * 128, "short"):
        with pytest.raises(InvalidRefreshToken):
            env.auth.auth.refresh(token)
    assert events(env, AuditEventType.SESSION_REFRESHED) == []


def test_refresh_pair_carries_the_configured_access_lifetime_and_a_valid_token(make_env) -> None:
    env, user, first = start(make_env, access_token_ttl=timedelta(minutes=7))
    env.clock.advance(minutes=2)
    pair = env.auth.auth.refresh(first.refresh_token)
    assert pair.expires_in == 420
    assert pair.session_id == first.session_id
    claims = claims_of(pair.access_token)
    assert (claims["sub"], claims["sid"], claims["email"]) == (user.id, first.session_id, EMAIL)
    assert claims["iat"] == int(env.clock.now().timestamp())
    assert claims["exp"] - claims["iat"] == 420
    assert env.auth.auth.get_user_from_token(pair.access_token).id == user.id


def test_refresh_resets_the_idle_clock_to_the_refresh_time(make_env) -> None:
    env, _user, first = start(make_env, session_idle_timeout=timedelta(minutes=10))
    env.clock.advance(minutes=6)
    env.auth.auth.refresh(first.refresh_token)
    assert env.auth.sessions.get(first.session_id).last_active_at == env.clock.now()


# -- logout -----------------------------------------------------------------------------------------


def test_logout_audit_row_names_user_session_time_and_explicit_context(make_env) -> None:
    env, user, first = start(make_env)
    env.clock.advance(minutes=2)
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        assert env.auth.auth.logout(first.session_id, context=CTX) is True
    [row] = events(env, AuditEventType.LOGOUT)
    assert (row.user_id, row.session_id, row.email, row.reason) == (user.id, first.session_id, None, None)
    assert (row.ip_address, row.user_agent) == (CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    session = env.auth.sessions.get(first.session_id)
    assert (session.revoked_at, session.revoke_reason) == (env.clock.now(), "logout")


def test_second_logout_returns_false_and_writes_no_row(make_env) -> None:
    env, _user, first = start(make_env)
    assert env.auth.auth.logout(first.session_id) is True
    env.clock.advance(minutes=1)
    assert env.auth.auth.logout(first.session_id) is False
    assert len(events(env, AuditEventType.LOGOUT)) == 1
    assert env.auth.sessions.get(first.session_id).revoked_at == env.clock.now() - timedelta(minutes=1)


def test_logout_of_an_unknown_session_returns_false_and_writes_no_row(make_env) -> None:
    env, user, first = start(make_env)
    assert env.auth.auth.logout("00000000-0000-4000-8000-000000000000") is False
    assert events(env, AuditEventType.LOGOUT) == []
    assert env.auth.auth.get_user_from_token(first.access_token).id == user.id


@pytest.mark.parametrize("session_id", [None, "", 42, "x" * 65, "bad\nid"])
def test_logout_with_a_malformed_session_id_is_a_validation_error(make_env, session_id) -> None:
    env, _user, _first = start(make_env)
    with pytest.raises(ValidationError) as info:
        env.auth.auth.logout(session_id)
    assert info.value.field == "session_id"
    assert events(env, AuditEventType.LOGOUT) == []


def test_logout_only_ends_the_named_session(make_env) -> None:
    env, user, first = start(make_env)
    other = env.login(EMAIL)
    env.auth.auth.logout(first.session_id)
    assert env.auth.auth.get_user_from_token(other.access_token).id == user.id
    assert env.auth.auth.refresh(other.refresh_token).session_id == other.session_id


# -- a refresh that loses the compare-and-swap gets no tokens ---------------------------------------


def test_a_refresh_that_loses_the_rotation_race_gets_no_tokens(make_env) -> None:
    # Another request rotates the same token between this request's lookup and its
    # compare-and-swap: the loser must not hand out a successor that was never stored.
    env, _user, first = start(make_env)
    sessions = env.store.sessions
    real_rotate = sessions.rotate
    winner: dict[str, str] = {}

    def rotate_after_a_concurrent_winner(session_id, old_hash, new_hash, now):
        winner["hash"] = "concurrent-winner-hash"
        assert real_rotate(session_id, old_hash, winner["hash"], now)  # the other request wins
        return real_rotate(session_id, old_hash, new_hash, now)  # ours fails: old_hash is gone

    sessions.rotate = rotate_after_a_concurrent_winner
    with pytest.raises(InvalidRefreshToken) as info:  # inside the race window: refused, not revoked
        env.auth.auth.refresh(first.refresh_token)
    assert_exact_type(info, InvalidRefreshToken)
    del sessions.rotate
    assert env.auth.sessions.get(first.session_id).refresh_hash == winner["hash"]
    assert env.auth.sessions.get(first.session_id).revoked_at is None
    assert events(env, AuditEventType.SESSION_REFRESHED) == []
