"""Register, login and verify_otp rules: exact audit rows, the per-call context, limits, sessions opened."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from mindmesh_auth import (
    AuditEventType,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidOtp,
    InvalidPassword,
    InvalidRefreshToken,
    InvalidToken,
    Limit,
    MindmeshAuth,
    RateLimited,
    RequestContext,
    ValidationError,
)
from mindmesh_auth.core.passwords import PasswordHasher
from mindmesh_auth.testing import test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
CTX = RequestContext(ip_address="203.0.113.77", user_agent="login-rules-agent/1.0")
AMBIENT = {"ip_address": "198.51.100.1", "user_agent": "ambient-agent"}
JWT_SECRET = test_config().jwt_secret


def events(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types) if types else None, limit=10000)


def row_fields(row) -> tuple:
    return (row.user_id, row.email, row.session_id, row.reason, row.ip_address, row.user_agent)


def wrong_login(env, email: str, password: str = "wrong password!", **kw) -> None:
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(email, password, **kw)


# -- register -----------------------------------------------------------------------------------------


def test_registration_row_names_user_canonical_email_time_and_explicit_context(env) -> None:
    env.clock.advance(minutes=1)
    with env.auth.context(**AMBIENT):
        user = env.auth.auth.register("Ada@Example.COM", PASSWORD, context=CTX)
    [row] = events(env, AuditEventType.REGISTRATION_SUCCESS)
    assert row_fields(row) == (user.id, EMAIL, None, None, CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    assert (user.created_at, user.updated_at) == (env.clock.now(), env.clock.now())
    assert env.auth.user.get_by_id(user.id).email == EMAIL


def test_registration_row_uses_the_ambient_context_without_an_explicit_one(env) -> None:
    with env.auth.context(**AMBIENT):
        env.auth.auth.register(EMAIL, PASSWORD)
    [row] = events(env, AuditEventType.REGISTRATION_SUCCESS)
    assert (row.ip_address, row.user_agent) == (AMBIENT["ip_address"], AMBIENT["user_agent"])


def test_duplicate_registration_row_has_email_reason_context_and_no_user(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.clock.advance(minutes=1)
    with pytest.raises(EmailAlreadyRegistered):
        env.auth.auth.register("ADA@example.com", "another good passphrase", context=CTX)
    [row] = events(env, AuditEventType.REGISTRATION_FAILED)
    assert row_fields(row) == (None, EMAIL, None, "email_taken", CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()


def test_registered_password_is_the_one_that_logs_in(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    wrong_login(env, EMAIL, PASSWORD + "!")
    assert env.login(EMAIL).user.id == user.id


def test_password_equal_to_the_canonical_email_local_part_is_refused(env) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.auth.register("AdaLovelace@Example.com", "adalovelace")
    with pytest.raises(InvalidPassword):
        env.auth.auth.register("AdaLovelace@Example.com", "adalovelace@example.com")
    assert env.store.users.list() == []


@pytest.mark.parametrize("key", ["Bad-Key", "password_hash"])
def test_refused_profile_field_is_named_in_the_error(env, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.register(EMAIL, PASSWORD, **{key: "x"})
    assert str(info.value) == f"Profile field {key!r} is not allowed."
    assert info.value.field == key


def test_register_limit_uses_the_explicit_context_not_the_ambient_one(make_env) -> None:
    env = make_env(register_ip_limit=Limit(2, timedelta(hours=1)))
    with env.auth.context(**AMBIENT):
        env.auth.auth.register("u1@example.com", PASSWORD, context=CTX)
        env.auth.auth.register("u2@example.com", PASSWORD, context=CTX)
        env.clock.advance(minutes=1)
        with pytest.raises(RateLimited):
            env.auth.auth.register("U3@Example.com", PASSWORD, context=CTX)
        env.auth.auth.register("u4@example.com", PASSWORD)  # the ambient IP has its own budget
    [row] = events(env, AuditEventType.RATE_LIMITED)
    assert row_fields(row) == (None, "u3@example.com", None, "register", CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    assert env.auth.user.get_by_email("u3@example.com") is None


def test_registrations_without_a_client_ip_share_one_bucket_at_limit_times_factor(make_env) -> None:
    env = make_env(register_ip_limit=Limit(1, timedelta(hours=1)), no_ip_limit_factor=3)
    for i in range(3):
        env.auth.auth.register(f"user{i}@example.com", PASSWORD)
    assert len(env.store.users.list()) == 3
    assert events(env, AuditEventType.RATE_LIMITED) == []
    with pytest.raises(RateLimited):
        env.auth.auth.register("user3@example.com", PASSWORD)


def test_register_limit_is_separate_from_the_login_limit(make_env) -> None:
    env = make_env(register_ip_limit=Limit(2, timedelta(hours=1)), login_ip_limit=Limit(50, timedelta(minutes=15)))
    env.auth.auth.register("u1@example.com", PASSWORD, context=CTX)
    env.auth.auth.register("u2@example.com", PASSWORD, context=CTX)
    with pytest.raises(RateLimited):
        env.auth.auth.register("u3@example.com", PASSWORD, context=CTX)
    env.auth.auth.login("u1@example.com", PASSWORD, context=CTX)


def test_register_limit_shares_one_budget_per_ipv6_slash_64(make_env) -> None:
    env = make_env(register_ip_limit=Limit(2, timedelta(hours=1)))
    env.auth.auth.register("u1@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:1:2::1"))
    env.auth.auth.register("u2@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:1:2::ff"))
    with pytest.raises(RateLimited):
        env.auth.auth.register("u3@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:1:2:ffff::1"))
    env.auth.auth.register("u4@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:1:3::1"))


def test_register_limit_window_is_the_configured_one(make_env) -> None:
    env = make_env(register_ip_limit=Limit(1, timedelta(minutes=5)))
    env.auth.auth.register("u1@example.com", PASSWORD, context=CTX)
    env.clock.advance(minutes=4, seconds=59)
    with pytest.raises(RateLimited) as info:
        env.auth.auth.register("u2@example.com", PASSWORD, context=CTX)
    assert info.value.retry_after == 1
    env.clock.advance(seconds=1)
    env.auth.auth.register("u2@example.com", PASSWORD, context=CTX)


# -- login: step one ----------------------------------------------------------------------------------


def test_failed_login_rows_carry_user_reason_time_and_explicit_context(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    blocked = env.auth.auth.register("blocked@example.com", PASSWORD)
    env.auth.user.block(blocked.id)
    env.clock.advance(minutes=1)
    with env.auth.context(**AMBIENT):
        wrong_login(env, "Nobody@Example.com", PASSWORD, context=CTX)
        wrong_login(env, "ADA@example.com", context=CTX)
        wrong_login(env, "blocked@example.com", PASSWORD, context=CTX)
        wrong_login(env, "blocked@example.com", "wrong password!", context=CTX)
    rows = events(env, AuditEventType.LOGIN_FAILED)
    assert [row_fields(r) for r in rows] == [
        (None, "nobody@example.com", None, "invalid_credentials", CTX.ip_address, CTX.user_agent),
        (user.id, EMAIL, None, "invalid_credentials", CTX.ip_address, CTX.user_agent),
        (blocked.id, "blocked@example.com", None, "blocked", CTX.ip_address, CTX.user_agent),
        (blocked.id, "blocked@example.com", None, "invalid_credentials", CTX.ip_address, CTX.user_agent),
    ]
    assert {r.occurred_at for r in rows} == {env.clock.now()}


def test_login_rate_limited_row_has_email_reason_time_and_explicit_context(make_env) -> None:
    env = make_env(login_ip_limit=Limit(2, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    with env.auth.context(**AMBIENT):
        wrong_login(env, "x1@example.com", context=CTX)
        wrong_login(env, "x2@example.com", context=CTX)
        env.clock.advance(minutes=1)
        with pytest.raises(RateLimited):
            env.auth.auth.login("ADA@Example.com", PASSWORD, context=CTX)
        env.auth.auth.login(EMAIL, PASSWORD)  # the ambient IP is not limited
    [row] = events(env, AuditEventType.RATE_LIMITED)
    assert row_fields(row) == (None, EMAIL, None, "login", CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    assert len(env.outbox.for_address(EMAIL, "otp")) == 1


def test_per_ip_login_limit_uses_its_own_count_and_window(make_env) -> None:
    env = make_env(login_ip_limit=Limit(3, timedelta(minutes=2)), login_email_limit=Limit(20, timedelta(hours=1)))
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(3):
        wrong_login(env, f"x{i}@example.com", context=CTX)
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(EMAIL, PASSWORD, context=CTX)
    assert info.value.retry_after == 120
    env.clock.advance(minutes=2)
    env.auth.auth.login(EMAIL, PASSWORD, context=CTX)


def test_per_account_login_limit_uses_its_own_count_and_window(make_env) -> None:
    env = make_env(login_ip_limit=Limit(20, timedelta(hours=1)), login_email_limit=Limit(3, timedelta(minutes=2)))
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(3):
        wrong_login(env, EMAIL, context=RequestContext(ip_address=f"198.51.100.{i + 10}"))
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(EMAIL, PASSWORD, context=CTX)
    # Past the free failures the account is delayed, not locked: login_delay_base (2 s) first.
    assert info.value.retry_after == 2
    [row] = events(env, AuditEventType.RATE_LIMITED)
    assert (row.email, row.reason) == (EMAIL, "login")
    env.clock.advance(seconds=2)
    env.auth.auth.login(EMAIL, PASSWORD, context=CTX)


def test_per_account_limit_counts_the_canonical_address(make_env) -> None:
    env = make_env(login_email_limit=Limit(2, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    wrong_login(env, "ADA@example.com")
    wrong_login(env, "ada@EXAMPLE.com")
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_logins_without_client_ip_share_one_ip_bucket_at_limit_times_factor(make_env) -> None:
    env = make_env(login_ip_limit=Limit(1, timedelta(minutes=15)), no_ip_limit_factor=4)
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(3):
        wrong_login(env, f"x{i}@example.com")
    env.auth.auth.login(EMAIL, PASSWORD)  # successes are not counted
    assert len(env.outbox) == 1
    wrong_login(env, "x3@example.com")  # the fourth failure fills the shared bucket (1 x 4)
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_login_code_mail_row_carries_the_explicit_context(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    with env.auth.context(**AMBIENT):
        env.auth.auth.login(EMAIL, PASSWORD, context=CTX)
    [row] = events(env, AuditEventType.OTP_SENT)
    assert (row.user_id, row.email, row.ip_address, row.user_agent) == (user.id, EMAIL, CTX.ip_address, CTX.user_agent)
    assert events(env, AuditEventType.LOGIN_FAILED) == []


def test_login_with_a_non_string_password_is_a_password_error_and_counts_nothing(make_env) -> None:
    env = make_env(login_email_limit=Limit(1, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(InvalidPassword):
        env.auth.auth.login(EMAIL, None)  # type: ignore[arg-type]
    env.auth.auth.login(EMAIL, PASSWORD)


def test_login_upgrades_a_hash_made_with_a_lower_cost(make_env) -> None:
    env = make_env()
    user = env.auth.auth.register(EMAIL, PASSWORD)
    stronger = PasswordHasher(5)
    assert stronger.needs_rehash(env.auth.user.get_by_id(user.id).password_hash)
    upgraded = MindmeshAuth(
        store=env.store, mailer=env.outbox, config=env.auth.config.with_changes(bcrypt_rounds=5), clock=env.clock
    )
    env.clock.advance(minutes=1)
    with pytest.raises(InvalidCredentials):
        upgraded.auth.login(EMAIL, "wrong password!")
    assert stronger.needs_rehash(upgraded.user.get_by_id(user.id).password_hash)
    upgraded.auth.login(EMAIL, PASSWORD)
    stored = upgraded.user.get_by_id(user.id)
    assert not stronger.needs_rehash(stored.password_hash)
    assert stronger.verify(PASSWORD, stored.password_hash)
    assert stored.updated_at == env.clock.now()
    upgraded.close()


def test_login_keeps_a_hash_that_already_has_the_configured_cost(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    before = env.auth.user.get_by_id(user.id)
    env.clock.advance(minutes=1)
    env.auth.auth.login(EMAIL, PASSWORD)
    after = env.auth.user.get_by_id(user.id)
    assert (after.password_hash, after.updated_at) == (before.password_hash, before.updated_at)


# -- verify_otp: step two -----------------------------------------------------------------------------


def test_verify_otp_opens_a_session_with_time_lifetime_and_explicit_context(make_env) -> None:
    env = make_env(session_ttl=timedelta(days=2), access_token_ttl=timedelta(minutes=5))
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    env.clock.advance(minutes=1)
    now = env.clock.now()
    with env.auth.context(**AMBIENT):
        result = env.auth.auth.verify_otp("Ada@Example.com", env.outbox.last_code(EMAIL), context=CTX)
    assert result.user.id == user.id
    assert result.expires_in == 300
    session = env.auth.sessions.get(result.session_id)
    assert session.user_id == user.id
    assert (session.created_at, session.last_active_at, session.expires_at) == (now, now, now + timedelta(days=2))
    assert (session.ip_address, session.user_agent) == (CTX.ip_address, CTX.user_agent)
    assert session.revoked_at is None
    claims = jwt.decode(
        result.access_token, JWT_SECRET, algorithms=["HS256"], audience="mindmesh-app", options={"verify_exp": False}
    )
    assert (claims["sub"], claims["sid"], claims["email"]) == (user.id, result.session_id, EMAIL)
    assert claims["exp"] - claims["iat"] == 300
    assert env.auth.auth.refresh(result.refresh_token).session_id == result.session_id


def test_verify_otp_rows_name_user_email_session_reason_and_explicit_context(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    env.clock.advance(seconds=30)
    with env.auth.context(**AMBIENT):
        result = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), context=CTX)
    [verified] = events(env, AuditEventType.OTP_VERIFIED)
    [success] = events(env, AuditEventType.LOGIN_SUCCESS)
    assert row_fields(verified) == (user.id, EMAIL, None, "login", CTX.ip_address, CTX.user_agent)
    assert row_fields(success) == (user.id, EMAIL, result.session_id, None, CTX.ip_address, CTX.user_agent)
    assert verified.occurred_at == success.occurred_at == env.clock.now()


def test_wrong_login_code_row_has_email_reason_and_explicit_context(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    env.clock.advance(seconds=30)
    with env.auth.context(**AMBIENT), pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp("ADA@example.com", wrong, context=CTX)
    [row] = events(env, AuditEventType.LOGIN_FAILED)
    assert row_fields(row) == (None, EMAIL, None, "invalid_otp", CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    [otp_row] = events(env, AuditEventType.OTP_FAILED)
    assert (otp_row.ip_address, otp_row.user_agent) == (CTX.ip_address, CTX.user_agent)
    assert env.auth.sessions.list(env.auth.user.get_by_email(EMAIL).id) == []


def test_correct_code_after_the_account_was_blocked_opens_no_session(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.auth.user.block(user.id)
    env.clock.advance(seconds=30)
    with env.auth.context(**AMBIENT), pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, context=CTX)
    [row] = events(env, AuditEventType.LOGIN_FAILED)
    assert row_fields(row) == (user.id, EMAIL, None, "blocked", CTX.ip_address, CTX.user_agent)
    assert row.occurred_at == env.clock.now()
    assert events(env, AuditEventType.LOGIN_SUCCESS) == []
    assert events(env, AuditEventType.OTP_VERIFIED) == []
    assert env.auth.sessions.list(user.id, include_inactive=True) == []


@pytest.mark.parametrize("purpose", ["email_verify", "password_reset", "LOGIN", "", None])
def test_verify_otp_only_completes_logins(env, purpose) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    with pytest.raises(ValidationError) as info:
        env.auth.auth.verify_otp(EMAIL, code, purpose)
    assert info.value.field == "purpose"
    assert env.auth.auth.verify_otp(EMAIL, code).user.email == EMAIL  # the code was not spent


def test_verify_otp_for_another_configured_purpose_points_to_otp_verify(env) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.verify_otp(EMAIL, "123456", "email_verify")
    assert str(info.value) == (
        "This endpoint completes a login only; codes for other purposes are checked by the one-time code endpoint."
    )


def test_verify_otp_with_explicit_login_purpose_works(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), "login").user.id == user.id


def test_a_code_for_another_purpose_does_not_log_in(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL))
    assert env.auth.sessions.list(user.id) == []


# -- authenticate -------------------------------------------------------------------------------------


def test_authenticate_returns_the_live_session_and_its_user(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    found = env.auth.auth.authenticate(result.access_token)
    assert (found.user.id, found.session.id, found.session.user_id) == (user.id, result.session_id, user.id)


def test_access_token_dies_exactly_when_its_session_expires(make_env) -> None:
    env = make_env(session_ttl=timedelta(minutes=10), access_token_ttl=timedelta(minutes=15))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.clock.advance(minutes=10, milliseconds=-1)
    env.auth.auth.authenticate(result.access_token)
    env.clock.advance(milliseconds=1)
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(result.access_token)


def test_access_token_dies_exactly_at_the_idle_timeout(make_env) -> None:
    env = make_env(session_idle_timeout=timedelta(minutes=5))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.clock.advance(minutes=5, milliseconds=-1)
    env.auth.auth.authenticate(result.access_token)
    env.clock.advance(milliseconds=1)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_access_token_of_a_revoked_session_is_refused(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.auth.sessions.revoke(result.session_id)
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(result.access_token)


def test_access_token_of_a_blocked_user_with_a_live_session_is_refused(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    # Another process set the flag and has not revoked the sessions yet.
    assert env.store.users.set_blocked(user.id, True, env.clock.now())
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(result.access_token)


def test_access_token_of_an_unknown_session_is_refused(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    claims = jwt.decode(
        result.access_token, JWT_SECRET, algorithms=["HS256"], audience="mindmesh-app", options={"verify_exp": False}
    )
    header = jwt.get_unverified_header(result.access_token)
    claims.update(sid="00000000-0000-4000-8000-000000000000", sessionId="00000000-0000-4000-8000-000000000000")
    forged = jwt.encode(claims, JWT_SECRET, algorithm="HS256", headers={"typ": "at+jwt", "kid": header["kid"]})
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(forged)


def _logged_in(env):
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    return env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL))


def test_logout_by_refresh_token_revokes_that_session_once_the_access_token_expired(env) -> None:
    result = _logged_in(env)
    env.clock.advance(minutes=16)  # the access token has expired; the refresh token has not
    assert env.auth.auth.logout_by_refresh_token(result.refresh_token, context=CTX) is True
    (session,) = env.auth.sessions.list(result.user.id, include_inactive=True)
    assert session.revoked_at == env.clock.now() and session.revoke_reason == "logout"
    (row,) = events(env, AuditEventType.LOGOUT)
    assert (row.user_id, row.session_id, row.ip_address) == (result.user.id, result.session_id, CTX.ip_address)
    assert env.auth.auth.logout_by_refresh_token(result.refresh_token) is False  # idempotent: already revoked


@pytest.mark.parametrize("token", [None, "", "x" * 128, "not a token", 42])
def test_logout_by_refresh_token_refuses_a_malformed_or_unknown_token_and_revokes_nothing(env, token) -> None:
    result = _logged_in(env)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.logout_by_refresh_token(token)
    assert len(env.auth.sessions.list(result.user.id)) == 1
    assert events(env, AuditEventType.LOGOUT) == []


def test_logout_by_refresh_token_refuses_a_rotated_away_token(env) -> None:
    result = _logged_in(env)
    env.auth.auth.refresh(result.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.logout_by_refresh_token(result.refresh_token)
    assert len(env.auth.sessions.list(result.user.id)) == 1
