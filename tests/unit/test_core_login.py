"""Register and two-step login: uniform failures, rate limits, IP buckets, email canonicalisation."""

from __future__ import annotations

import re

import pytest

from mindmesh_auth import (
    AuditEventType,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidEmail,
    LoginChallenge,
    RateLimited,
    RequestContext,
    ValidationError,
)

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def events(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types) if types else None, limit=10000)


def test_full_login_flow_returns_tokens_for_the_user(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    assert challenge.otp_required is True and challenge.handle  # the handle binds the code to this login
    assert isinstance(challenge, LoginChallenge) and challenge.handle not in repr(challenge)
    mail = env.outbox.last(EMAIL, "otp")
    assert mail.to == EMAIL
    result = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL))
    assert result.user.id == user.id
    assert result.expires_in == 900
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    assert [s.id for s in env.auth.sessions.list(user.id)] == [result.session_id]
    kinds = [e.type for e in events(env)]
    assert kinds == [
        AuditEventType.REGISTRATION_SUCCESS,
        AuditEventType.OTP_SENT,
        AuditEventType.OTP_VERIFIED,
        AuditEventType.LOGIN_SUCCESS,
    ]


def test_login_code_is_exactly_six_ascii_digits(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(3):
        env.auth.auth.login(EMAIL, PASSWORD)
        mail = env.outbox.last(EMAIL, "otp")
        code = mail.data["code"]
        assert re.fullmatch(r"[0-9]{6}", code), code
        assert code.isascii()
        assert code in mail.text


def _failure(env, email: str, password: str) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as info:
        env.auth.auth.login(email, password)
    return info.value


def test_unknown_email_wrong_password_and_blocked_account_fail_identically(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    blocked = env.auth.auth.register("blocked@example.com", PASSWORD)
    env.auth.user.block(blocked.id)
    env.outbox.clear()
    unknown = _failure(env, "nobody@example.com", PASSWORD)
    wrong = _failure(env, EMAIL, PASSWORD + "x")
    is_blocked = _failure(env, "blocked@example.com", PASSWORD)
    assert str(unknown) == str(wrong) == str(is_blocked)
    assert unknown.code == wrong.code == is_blocked.code == "invalid_credentials"
    assert unknown.status == wrong.status == is_blocked.status == 401
    assert type(unknown) is type(wrong) is type(is_blocked) is InvalidCredentials
    assert len(env.outbox) == 0
    failed = events(env, AuditEventType.LOGIN_FAILED)
    assert [e.email for e in failed] == ["nobody@example.com", EMAIL, "blocked@example.com"]
    assert failed[2].user_id == blocked.id
    assert not events(env, AuditEventType.OTP_SENT)


def test_per_ip_login_limit_refuses_the_11th_attempt_and_recovers_after_the_window(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.set_context(ip_address="203.0.113.5")
    for i in range(10):
        _failure(env, f"nobody{i}@example.com", PASSWORD)
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(EMAIL, PASSWORD)
    assert 0 < info.value.retry_after <= 15 * 60
    assert info.value.code == "rate_limited"
    assert len(env.outbox) == 0
    limited = events(env, AuditEventType.RATE_LIMITED)
    assert limited and limited[-1].ip_address == "203.0.113.5"
    # Another IP is not affected.
    env.auth.auth.login(EMAIL, PASSWORD, context=RequestContext(ip_address="198.51.100.7"))
    env.clock.advance(minutes=15)
    env.auth.auth.login(EMAIL, PASSWORD)
    assert len(env.outbox.for_address(EMAIL, "otp")) == 2


def test_retry_after_counts_down_with_the_clock(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5")
    for i in range(10):
        _failure(env, f"nobody{i}@example.com", PASSWORD)
    env.clock.advance(minutes=10)
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(EMAIL, PASSWORD)
    assert 0 < info.value.retry_after <= 5 * 60


def test_ten_wrong_passwords_for_one_account_lock_even_the_right_password(env) -> None:
    assert env.auth.config.login_email_limit.count == 10
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(10):
        _failure(env, EMAIL, "wrong password!")
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(EMAIL, PASSWORD)
    assert info.value.retry_after > 0
    assert len(env.outbox) == 0
    env.clock.advance(minutes=15)
    env.auth.auth.login(EMAIL, PASSWORD)
    assert len(env.outbox) == 1


def test_per_account_failure_limit_spans_ip_addresses(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(10):
        with env.auth.context(ip_address=f"198.51.100.{i + 1}"):
            _failure(env, EMAIL, "wrong password!")
    with pytest.raises(RateLimited), env.auth.context(ip_address="192.0.2.99"):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_successful_login_clears_the_account_failure_counter(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(9):
        _failure(env, EMAIL, "wrong password!")
    env.auth.auth.login(EMAIL, PASSWORD)
    for _ in range(9):
        _failure(env, EMAIL, "wrong password!")
    env.auth.auth.login(EMAIL, PASSWORD)  # would be the 20th attempt in the window
    assert len(env.outbox) == 2


def test_ipv6_addresses_in_one_slash_64_share_a_bucket(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(10):
        with env.auth.context(ip_address=f"2001:db8:1:2::{i + 1:x}"):
            _failure(env, f"nobody{i}@example.com", PASSWORD)
    with pytest.raises(RateLimited), env.auth.context(ip_address="2001:db8:1:2:ffff:ffff:ffff:fffe"):
        env.auth.auth.login(EMAIL, PASSWORD)
    with env.auth.context(ip_address="2001:db8:1:3::1"):  # the next /64
        env.auth.auth.login(EMAIL, PASSWORD)
    assert len(env.outbox) == 1


def test_ipv4_mapped_ipv6_counts_as_the_ipv4_address(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(5):
        with env.auth.context(ip_address="203.0.113.5"):
            _failure(env, f"nobody{i}@example.com", PASSWORD)
    for i in range(5, 10):
        with env.auth.context(ip_address="::ffff:203.0.113.5"):
            _failure(env, f"nobody{i}@example.com", PASSWORD)
    with pytest.raises(RateLimited), env.auth.context(ip_address="::ffff:cb00:7105"):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert {e.ip_address for e in events(env, AuditEventType.LOGIN_FAILED)} == {"203.0.113.5"}


@pytest.mark.parametrize("ip", ["not-an-ip", "256.1.1.1", "203.0.113.5, 10.0.0.1", "1" * 100, "203.0.113.5/24"])
def test_invalid_ip_is_a_validation_error(env, ip: str) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(ValidationError) as info:
        env.auth.set_context(ip_address=ip)
    assert info.value.field == "ip_address"
    with pytest.raises(ValidationError):
        env.auth.auth.login(EMAIL, PASSWORD, context=RequestContext(ip_address=ip))
    assert len(env.outbox) == 0


FORGED_EMAILS = [
    None,
    123,
    "a" * 300 + "@x.com",
    "a@b.com\r\nBcc: x@y.com",
    "Alice <a@b.com>",
    "a@b.com,c@d.com",
    "a@b.com;c@d.com",
    "",
    "no-at-sign",
    "a@b.com\x00",
    b"a@b.com",
]


@pytest.mark.parametrize("email", FORGED_EMAILS)
def test_forged_email_on_register_is_invalid_email_and_changes_nothing(env, email) -> None:
    with pytest.raises(InvalidEmail) as info:
        env.auth.auth.register(email, PASSWORD)
    assert info.value.code == "invalid_email"
    assert env.store.users.list() == []
    assert events(env) == []


@pytest.mark.parametrize("email", FORGED_EMAILS)
def test_forged_email_on_login_is_invalid_email_and_sends_nothing(env, email) -> None:
    env.auth.auth.register("a@b.com", PASSWORD)
    before = events(env)
    with pytest.raises(InvalidEmail):
        env.auth.auth.login(email, PASSWORD)
    assert len(env.outbox) == 0
    assert events(env) == before


def test_emails_are_canonicalised_and_unique_case_insensitively(env) -> None:
    user = env.auth.auth.register("Ada@Example.COM", PASSWORD)
    assert user.email == "ada@example.com"
    assert env.login("ada@example.com").user.id == user.id
    env.clock.advance(minutes=11)
    env.auth.auth.login("ADA@EXAMPLE.com", PASSWORD)
    code = env.outbox.last_code("ada@example.com")
    assert env.auth.auth.verify_otp("aDa@example.COM", code).user.id == user.id
    with pytest.raises(EmailAlreadyRegistered) as info:
        env.auth.auth.register("ADA@example.com", "another password here")
    assert info.value.code == "email_taken"
    failed = events(env, AuditEventType.REGISTRATION_FAILED)
    assert len(failed) == 1 and failed[0].email == "ada@example.com" and failed[0].reason == "email_taken"
    assert len(env.store.users.list()) == 1


def test_mail_goes_to_the_stored_canonical_address(env) -> None:
    env.auth.auth.register("Ada@Example.COM", PASSWORD)
    env.auth.auth.login("ADA@example.COM", PASSWORD)
    assert [m.to for m in env.outbox.messages] == ["ada@example.com"]


def test_profile_extras_come_back_as_attributes(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD, first_name="Ada", plan="pro", age=36)
    assert user.first_name == "Ada"
    stored = env.auth.user.get_by_id(user.id)
    assert (stored.first_name, stored.plan, stored.age) == ("Ada", "pro", 36)
    assert env.login(EMAIL).user.first_name == "Ada"
    with pytest.raises(AttributeError):
        _ = stored.last_name


@pytest.mark.parametrize("key", ["password_hash", "id", "Bad-Key", "blocked", "email_verified", "_private"])
def test_disallowed_profile_keys_are_a_validation_error(env, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.register(EMAIL, PASSWORD, **{key: "x"})
    assert info.value.field == key
    assert env.store.users.list() == []
    assert events(env) == []


def test_registering_with_a_profile_cannot_set_blocked_or_verified(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    assert user.blocked is False and user.email_verified is False


def test_registrations_are_limited_per_client_ip(make_env) -> None:
    from datetime import timedelta

    from mindmesh_auth import Limit, RateLimited, RequestContext

    env = make_env(register_ip_limit=Limit(3, timedelta(hours=1)))
    ctx = RequestContext(ip_address="203.0.113.50")
    for i in range(3):
        env.auth.auth.register(f"user{i}@example.com", "correct horse battery", context=ctx)
    with pytest.raises(RateLimited) as caught:
        env.auth.auth.register("user9@example.com", "correct horse battery", context=ctx)
    assert caught.value.retry_after > 0
    assert env.auth.user.get_by_email("user9@example.com") is None
    other = RequestContext(ip_address="198.51.100.1")
    env.auth.auth.register("user9@example.com", "correct horse battery", context=other)
    env.clock.advance(hours=1)
    env.auth.auth.register("user10@example.com", "correct horse battery", context=ctx)
