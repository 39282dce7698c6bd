"""One-time codes: expiry, attempts, supersession, one-time use, purposes, limits, delivery failure."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from mindmesh_auth import AuditEventType, DeliveryFailed, InvalidOtp, RateLimited, ValidationError

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def send_login_code(env) -> str:
    env.auth.auth.login(EMAIL, PASSWORD)
    return env.outbox.last_code(EMAIL)


def events(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types) if types else None, limit=10000)


def test_code_expires_after_the_otp_ttl(env, user) -> None:
    code = send_login_code(env)
    env.clock.advance(minutes=5)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)


def test_code_is_accepted_just_before_expiry(env, user) -> None:
    code = send_login_code(env)
    env.clock.advance(minutes=4, seconds=59)
    assert env.auth.auth.verify_otp(EMAIL, code).user.id == user.id


def test_configured_otp_ttl_is_honoured(make_env) -> None:
    env = make_env(otp_ttl=timedelta(minutes=2))
    env.auth.auth.register(EMAIL, PASSWORD)
    code = send_login_code(env)
    env.clock.advance(minutes=2)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)


def test_five_wrong_attempts_kill_the_code_even_for_the_right_value(env, user) -> None:
    # Bound submissions (with the login's handle) spend the code's own attempts.
    handle = env.auth.auth.login(EMAIL, PASSWORD).handle
    code = env.outbox.last_code(EMAIL)
    for _ in range(5):
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, wrong(code), handle=handle)
    assert env.store.otps.get(EMAIL, "login").attempts == 5
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, handle=handle)


def test_four_wrong_attempts_still_allow_the_right_code(env, user) -> None:
    code = send_login_code(env)
    for _ in range(4):
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, wrong(code))
    assert env.auth.auth.verify_otp(EMAIL, code).user.id == user.id


def test_a_new_login_supersedes_the_old_code(env, user) -> None:
    old = send_login_code(env)
    new = send_login_code(env)
    if old == new:  # astronomically unlikely, but keep the test meaningful
        new = send_login_code(env)
    assert old != new
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, old)
    assert env.auth.auth.verify_otp(EMAIL, new).user.id == user.id


def test_a_code_works_only_once(env, user) -> None:
    code = send_login_code(env)
    env.auth.auth.verify_otp(EMAIL, code)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)
    assert len(env.auth.sessions.list(user.id)) == 1


def test_an_email_verify_code_cannot_complete_a_login(env, user) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    code = env.outbox.last_code(EMAIL)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)
    with pytest.raises(ValidationError):
        env.auth.auth.verify_otp(EMAIL, code, "email_verify")
    assert env.auth.sessions.list(user.id) == []
    # ...and is still usable for its own purpose.
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True


def test_a_login_code_cannot_verify_an_email(env, user) -> None:
    code = send_login_code(env)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert env.auth.user.get_by_id(user.id).email_verified is False
    assert env.auth.auth.verify_otp(EMAIL, code).user.id == user.id


@pytest.mark.parametrize("purpose", ["login"])
def test_otp_send_refuses_the_login_purpose(env, user, purpose: str) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.otp.send(EMAIL, purpose)
    assert info.value.field == "purpose"
    assert len(env.outbox) == 0
    with pytest.raises(ValidationError):
        env.auth.otp.verify(EMAIL, "123456", purpose)


@pytest.mark.parametrize("purpose", ["unknown_purpose", "Email_Verify", "", None, 5, "email-verify", "a" * 40])
def test_unknown_purpose_is_a_validation_error(env, user, purpose) -> None:
    with pytest.raises(ValidationError):
        env.auth.otp.send(EMAIL, purpose)
    with pytest.raises(ValidationError):
        env.auth.otp.verify(EMAIL, "123456", purpose)
    assert len(env.outbox) == 0


def test_app_defined_purposes_are_separate(make_env) -> None:
    env = make_env(otp_purposes=("login", "email_verify", "delete_account"))
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send(EMAIL, "delete_account")
    code = env.outbox.last_code(EMAIL)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert env.auth.otp.verify(EMAIL, code, "delete_account") is True
    assert env.auth.user.get_by_email(EMAIL).email_verified is False


def test_email_verify_code_returns_true_once_marks_verified_and_audits(env, user) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    mail = env.outbox.last(EMAIL, "otp")
    assert "verification" in mail.subject
    code = env.outbox.last_code(EMAIL)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True
    assert env.auth.user.get_by_id(user.id).email_verified is True
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    verified = events(env, AuditEventType.OTP_VERIFIED, AuditEventType.EMAIL_VERIFIED)
    assert [(e.type, e.user_id) for e in verified] == [
        (AuditEventType.OTP_VERIFIED, user.id),
        (AuditEventType.EMAIL_VERIFIED, user.id),
    ]


MALFORMED = [
    "12345",
    "1234567",
    "12345a",
    "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
    "123456\n",
    " 123456",
    "123456 ",
    "",
    "\u0660\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic digits
    123456,
    None,
    b"123456",
]


@pytest.mark.parametrize("code", MALFORMED)
def test_malformed_login_code_is_a_validation_error_that_counts_no_attempt(env, user, code) -> None:
    real = send_login_code(env)
    with pytest.raises(ValidationError) as info:
        env.auth.auth.verify_otp(EMAIL, code)
    assert info.value.field == "code"
    assert env.store.otps.get(EMAIL, "login").attempts == 0
    assert events(env, AuditEventType.OTP_FAILED) == []
    assert env.auth.auth.verify_otp(EMAIL, real).user.id == user.id


@pytest.mark.parametrize("code", MALFORMED)
def test_malformed_purpose_code_is_a_validation_error_that_counts_no_attempt(env, user, code) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(ValidationError):
        env.auth.otp.verify(EMAIL, code, "email_verify")
    assert env.store.otps.get(EMAIL, "email_verify").attempts == 0


def test_many_malformed_codes_never_lock_the_account(env, user) -> None:
    real = send_login_code(env)
    for _ in range(30):
        with pytest.raises(ValidationError):
            env.auth.auth.verify_otp(EMAIL, "12345x")
    assert env.auth.auth.verify_otp(EMAIL, real).user.id == user.id


def test_fourth_send_within_ten_minutes_is_rate_limited(env, user) -> None:
    for _ in range(3):
        env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(RateLimited) as info:
        env.auth.otp.send(EMAIL, "email_verify")
    assert 0 < info.value.retry_after <= 600
    assert len(env.outbox) == 3
    env.clock.advance(minutes=10)
    env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 4


def test_send_limit_is_per_purpose(env, user) -> None:
    """Codes sent for one purpose never spend another purpose's send budget (issue 11)."""
    for _ in range(3):
        send_login_code(env)
        env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 6
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 6


def test_twenty_wrong_codes_across_fresh_codes_lock_otp_until_the_window_passes(env, user) -> None:
    assert env.auth.config.otp_account_failure_limit.count == 20
    for _batch in range(4):
        code = send_login_code(env)
        for _ in range(5):
            with pytest.raises(InvalidOtp):
                env.auth.auth.verify_otp(EMAIL, wrong(code))
        env.clock.advance(minutes=10)
    fresh = send_login_code(env)
    with pytest.raises(RateLimited) as info:
        env.auth.auth.verify_otp(EMAIL, fresh)
    assert 0 < info.value.retry_after <= 20 * 60
    assert env.auth.sessions.list(user.id) == []
    env.clock.advance(seconds=info.value.retry_after)
    fresh = send_login_code(env)
    assert env.auth.auth.verify_otp(EMAIL, fresh).user.id == user.id


def test_a_success_resets_the_account_failure_count(env, user) -> None:
    code = send_login_code(env)
    for _ in range(4):
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, wrong(code))
    env.auth.auth.verify_otp(EMAIL, code)
    for _ in range(3):
        env.clock.advance(minutes=10)
        code = send_login_code(env)
        for _ in range(4):
            with pytest.raises(InvalidOtp):
                env.auth.auth.verify_otp(EMAIL, wrong(code))
        env.auth.auth.verify_otp(EMAIL, code)  # 16 failures overall, never 20 in a row


def test_otp_send_for_an_unknown_email_returns_none_and_sends_nothing(env) -> None:
    assert env.auth.otp.send("nobody@example.com", "email_verify") is None
    assert len(env.outbox) == 0
    assert env.store.otps.get("nobody@example.com", "email_verify") is None


def test_otp_send_for_an_unknown_email_is_rate_limited_like_a_known_one(env) -> None:
    for _ in range(3):
        env.auth.otp.send("nobody@example.com", "email_verify")
    with pytest.raises(RateLimited):
        env.auth.otp.send("nobody@example.com", "email_verify")


def test_blocked_user_cannot_verify_a_code(env, user) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    code = env.outbox.last_code(EMAIL)
    env.auth.user.block(user.id)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert env.auth.user.get_by_id(user.id).email_verified is False
    assert events(env, AuditEventType.OTP_FAILED)[-1].reason == "email_verify:blocked"


def test_blocked_user_gets_no_code_from_otp_send(env, user) -> None:
    env.auth.user.block(user.id)
    assert env.auth.otp.send(EMAIL, "email_verify") is None
    assert len(env.outbox) == 0


def test_user_blocked_after_login_step_one_cannot_finish_login(env, user) -> None:
    code = send_login_code(env)
    env.auth.user.block(user.id)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)
    assert env.auth.sessions.list(user.id, include_inactive=True) == []


def test_mail_failure_on_login_is_delivery_failed_leaves_no_code_and_is_audited(env, user) -> None:
    env.outbox.fail_next()
    with pytest.raises(DeliveryFailed) as info:
        env.auth.auth.login(EMAIL, PASSWORD)
    assert info.value.code == "delivery_failed"
    assert env.store.otps.get(EMAIL, "login") is None
    failed = events(env, AuditEventType.OTP_SEND_FAILED)
    assert len(failed) == 1 and failed[0].user_id == user.id
    assert events(env, AuditEventType.OTP_SENT) == []
    # A retry works.
    code = send_login_code(env)
    assert env.auth.auth.verify_otp(EMAIL, code).user.id == user.id


def test_mail_failure_on_otp_send_leaves_no_code(env, user) -> None:
    env.outbox.fail_next()
    assert env.auth.otp.send(EMAIL, "email_verify") is None  # audited, not raised: no account oracle
    assert env.store.otps.get(EMAIL, "email_verify") is None


def test_a_challenge_that_was_never_marked_sent_cannot_be_verified(env, user) -> None:
    code = send_login_code(env)
    challenge = env.store.otps.get(EMAIL, "login")
    env.store.otps.put(attrs.evolve(challenge, status="pending"))
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code)


def test_code_is_stored_only_as_a_hash_and_never_audited(env, user) -> None:
    code = send_login_code(env)
    challenge = env.store.otps.get(EMAIL, "login")
    assert code not in challenge.code_hash
    assert len(challenge.code_hash) == 64  # hex HMAC-SHA256
    assert code not in repr(challenge)
    assert challenge.code_hash not in repr(challenge)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, wrong(code))
    env.auth.auth.verify_otp(EMAIL, code)
    for event in events(env):
        for value in attrs.asdict(event).values():
            assert code not in str(value)
            assert wrong(code) not in str(value)


def test_bcrypt_otp_hash_mode_works_and_stores_no_code(make_env) -> None:
    env = make_env(otp_hash="bcrypt")
    env.auth.auth.register(EMAIL, PASSWORD)
    code = send_login_code(env)
    challenge = env.store.otps.get(EMAIL, "login")
    assert challenge.code_hash.startswith("$2") and code not in challenge.code_hash
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, wrong(code))
    assert env.auth.auth.verify_otp(EMAIL, code).user.email == EMAIL
