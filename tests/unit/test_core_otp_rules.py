"""One-time code rules: audit rows, explicit context, hash modes, limits per account, mail content."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    DeliveryFailed,
    InvalidOtp,
    Limit,
    MindmeshAuth,
    RateLimited,
    RequestContext,
    User,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing import FakeClock, FaultyStore, Outbox, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
OTHER = "bob@example.com"
CTX = RequestContext(ip_address="203.0.113.7", user_agent="otp-tests/1.0")


@pytest.fixture
def user(env) -> User:
    return env.auth.auth.register(EMAIL, PASSWORD)


def rows(env, *types: AuditEventType):
    return env.auth.audit.query(types=list(types), limit=10000)


def summary(env, *types: AuditEventType):
    return [(e.type, e.user_id, e.email, e.reason) for e in rows(env, *types)]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def send_code(env, email: str = EMAIL, purpose: str = "email_verify") -> str:
    env.auth.otp.send(email, purpose)
    return env.outbox.last_code(email)


def rebuilt(env, **overrides) -> MindmeshAuth:
    """Another facade on the same store, mailer and clock (a redeploy with another config)."""
    return MindmeshAuth(store=env.store, mailer=env.outbox, config=test_config(**overrides), clock=env.clock)


def stored_user(env, email: str = EMAIL) -> User:
    """An account written straight to the store (no bcrypt work for the password)."""
    now = env.clock.now()
    user = User(id=str(uuid.uuid4()), email=email, password_hash="unused", created_at=now, updated_at=now)
    return env.store.users.add(user)


# -- audit rows of sending --------------------------------------------------------


def test_sending_a_code_audits_otp_sent_with_user_email_purpose_and_time(env, user) -> None:
    env.clock.advance(minutes=1)
    env.auth.otp.send("Ada@Example.com", "email_verify")
    env.clock.advance(minutes=1)
    env.auth.auth.login(EMAIL, PASSWORD)
    sent = rows(env, AuditEventType.OTP_SENT)
    assert [(e.user_id, e.email, e.reason) for e in sent] == [(user.id, EMAIL, "email_verify"), (user.id, EMAIL, "login")]
    start = env.clock.now() - timedelta(minutes=2)
    assert [e.occurred_at for e in sent] == [start + timedelta(minutes=1), start + timedelta(minutes=2)]


@pytest.mark.parametrize("purpose", ["email_verify", "login"])
def test_a_failed_delivery_audits_otp_send_failed_and_nothing_sent(env, user, purpose: str) -> None:
    env.clock.advance(seconds=30)
    env.outbox.fail_next()
    if purpose == "login":
        with pytest.raises(DeliveryFailed):
            env.auth.auth.login(EMAIL, PASSWORD)
    else:
        env.auth.otp.send(EMAIL, purpose)  # an address-only path: audited, never raised
    assert summary(env, AuditEventType.OTP_SEND_FAILED) == [(AuditEventType.OTP_SEND_FAILED, user.id, EMAIL, purpose)]
    assert rows(env, AuditEventType.OTP_SEND_FAILED)[0].occurred_at == env.clock.now()
    assert rows(env, AuditEventType.OTP_SENT) == []


class SentButReportedFailed(Outbox):
    """A mailer whose message may have gone out although it reported a failure (SMTP timeout)."""

    def send(self, message) -> None:
        super().send(message)
        raise DeliveryFailed()


def test_a_code_whose_delivery_was_reported_failed_never_verifies() -> None:
    outbox = SentButReportedFailed()
    with MindmeshAuth(store=MemoryStore(), mailer=outbox, config=test_config(), clock=FakeClock()) as auth:
        auth.auth.register(EMAIL, PASSWORD)
        auth.otp.send(EMAIL, "email_verify")  # the failure is audited, not raised
        code = outbox.last_code(EMAIL)
        assert auth.otp.verify(EMAIL, code, "email_verify") is False
        failed = auth.audit.query(types=[AuditEventType.OTP_FAILED])
        assert [e.reason for e in failed] == ["email_verify:no_challenge"]
        with pytest.raises(DeliveryFailed):
            auth.auth.login(EMAIL, PASSWORD)
        with pytest.raises(InvalidOtp):
            auth.auth.verify_otp(EMAIL, outbox.last_code(EMAIL))


def test_the_send_limit_audits_rate_limited_before_any_account_lookup(env, user) -> None:
    for _ in range(3):
        env.auth.otp.send(EMAIL, "email_verify")
    env.clock.advance(seconds=5)
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    limited = rows(env, AuditEventType.RATE_LIMITED)
    # otp.send counts the request before it looks the address up: no user id, as for unknown ones.
    assert [(e.user_id, e.email, e.reason) for e in limited] == [(None, EMAIL, "otp_send")]
    assert limited[0].occurred_at == env.clock.now()


# -- audit rows of verifying ----------------------------------------------------------


def test_verifying_audits_otp_verified_and_email_verified_and_stamps_the_user(env, user) -> None:
    code = send_code(env)
    env.clock.advance(minutes=2)
    assert env.auth.otp.verify("ADA@example.com", code, "email_verify") is True
    now = env.clock.now()
    found = rows(env, AuditEventType.OTP_VERIFIED, AuditEventType.EMAIL_VERIFIED)
    assert [(e.type, e.user_id, e.email, e.reason, e.occurred_at) for e in found] == [
        (AuditEventType.OTP_VERIFIED, user.id, EMAIL, "email_verify", now),
        (AuditEventType.EMAIL_VERIFIED, user.id, EMAIL, None, now),
    ]
    updated = env.auth.user.get_by_id(user.id)
    assert updated.email_verified is True
    assert updated.updated_at == now


def test_an_app_purpose_audits_otp_verified_only(make_env) -> None:
    env = make_env(otp_purposes=("login", "email_verify", "delete_account"))
    user = env.auth.auth.register(EMAIL, PASSWORD)
    code = send_code(env, purpose="delete_account")
    assert env.auth.otp.verify(EMAIL, code, "delete_account") is True
    assert summary(env, AuditEventType.OTP_VERIFIED, AuditEventType.EMAIL_VERIFIED) == [
        (AuditEventType.OTP_VERIFIED, user.id, EMAIL, "delete_account")
    ]
    assert env.auth.user.get_by_id(user.id).email_verified is False


def test_verifying_without_any_code_audits_no_challenge_without_a_user(env, user) -> None:
    assert env.auth.otp.verify(EMAIL, "123456", "email_verify") is False
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, "123456")
    failed = rows(env, AuditEventType.OTP_FAILED)
    assert [(e.user_id, e.email, e.reason) for e in failed] == [
        (None, EMAIL, "email_verify:no_challenge"),
        (None, EMAIL, "login:no_challenge"),
    ]
    assert [e.occurred_at for e in failed] == [env.clock.now()] * 2


def test_a_wrong_code_audits_wrong_code_with_the_user(env, user) -> None:
    code = send_code(env)
    env.clock.advance(seconds=10)
    assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    failed = rows(env, AuditEventType.OTP_FAILED)
    assert [(e.user_id, e.email, e.reason, e.occurred_at) for e in failed] == [
        (user.id, EMAIL, "email_verify:wrong_code", env.clock.now())
    ]


def test_an_expired_or_used_code_audits_expired_or_used(env, user) -> None:
    code = send_code(env)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    env.auth.auth.login(EMAIL, PASSWORD)
    env.clock.advance(minutes=5)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL))
    assert summary(env, AuditEventType.OTP_FAILED) == [
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:expired_or_used"),
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "login:expired_or_used"),
    ]


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_every_failure_reason_names_the_challenge_owner_in_both_hash_modes(make_env, otp_hash: str) -> None:
    env = make_env(otp_hash=otp_hash)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    assert env.auth.otp.verify(EMAIL, "123456", "email_verify") is False
    code = send_code(env)
    assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True
    assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False  # a wrong code for a spent one
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False  # the right code, spent
    assert summary(env, AuditEventType.OTP_FAILED) == [
        (AuditEventType.OTP_FAILED, None, EMAIL, "email_verify:no_challenge"),
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:wrong_code"),
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:expired_or_used"),
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:expired_or_used"),
    ]


def test_a_right_login_code_commits_its_writes_as_one_unit_with_one_audit_write() -> None:
    # The writes of a keyed-hash verify_otp, in order: the counter hit and the redeemed code
    # first (the lock order of every verification), both audit rows in ONE append_many at the end.
    faulty = FaultyStore(MemoryStore())
    auth = MindmeshAuth(store=faulty, mailer=(outbox := Outbox()), config=test_config(), clock=FakeClock())
    auth.auth.register(EMAIL, PASSWORD)
    handle = auth.auth.login(EMAIL, PASSWORD).handle
    code = outbox.last_code(EMAIL)
    with faulty.recording() as wrong_writes:
        with pytest.raises(InvalidOtp):
            auth.auth.verify_otp(EMAIL, wrong(code), handle=handle)
    # The window and the consecutive count (one hit_many: one round trip where the store can),
    # then the code's attempt (a bound submission); OTP_FAILED and LOGIN_FAILED are written
    # outside any unit, one by one:
    hits = ["rate_limits.hit_many"]
    assert wrong_writes == [*hits, "otps.register_attempt", "audit.append", "audit.append"]
    with faulty.recording() as writes:
        auth.auth.verify_otp(EMAIL, code, handle=handle)
    resets = ["rate_limits.reset_many"]  # a bound success clears the bound and the unbound counters, at once
    assert writes == [*hits, "otps.redeem", "sessions.add", *resets, "audit.append_many"]
    assert [e.type for e in auth.audit.query(limit=1000)][-2:] == [AuditEventType.OTP_VERIFIED, AuditEventType.LOGIN_SUCCESS]


def test_a_correct_code_that_loses_the_race_to_a_parallel_caller_audits_expired_or_used(env, user, monkeypatch) -> None:
    code = send_code(env)
    real_redeem = env.store.otps.redeem

    def parallel_winner_first(challenge_id, now, max_attempts):
        assert real_redeem(challenge_id, now, max_attempts) is True  # the other request redeemed it just before us
        return real_redeem(challenge_id, now, max_attempts)

    monkeypatch.setattr(env.store.otps, "redeem", parallel_winner_first)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert summary(env, AuditEventType.OTP_FAILED) == [
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:expired_or_used")
    ]
    assert rows(env, AuditEventType.OTP_VERIFIED) == []
    assert env.auth.user.get_by_id(user.id).email_verified is False


def test_a_bcrypt_code_that_loses_the_race_to_a_parallel_caller_audits_already_used(make_env, monkeypatch) -> None:
    env = make_env(otp_hash="bcrypt")
    user = env.auth.auth.register(EMAIL, PASSWORD)
    code = send_code(env)
    real_consume = env.store.otps.consume

    def parallel_winner_first(challenge_id, now):
        assert real_consume(challenge_id, now) is True  # the other request consumed it just before us
        return real_consume(challenge_id, now)

    monkeypatch.setattr(env.store.otps, "consume", parallel_winner_first)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert summary(env, AuditEventType.OTP_FAILED) == [
        (AuditEventType.OTP_FAILED, user.id, EMAIL, "email_verify:already_used")
    ]
    assert rows(env, AuditEventType.OTP_VERIFIED) == []
    assert env.auth.user.get_by_id(user.id).email_verified is False


def test_a_blocked_user_verifying_audits_blocked_with_the_account(env, user) -> None:
    code = send_code(env)
    env.auth.user.block(user.id)
    env.clock.advance(seconds=3)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    failed = rows(env, AuditEventType.OTP_FAILED)
    assert [(e.user_id, e.email, e.reason, e.occurred_at) for e in failed] == [
        (user.id, EMAIL, "email_verify:blocked", env.clock.now())
    ]


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_the_failure_limit_audits_rate_limited_for_the_email(make_env, otp_hash: str) -> None:
    env = make_env(otp_account_failure_limit=Limit(2, timedelta(hours=1)), otp_hash=otp_hash)
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(2):
        assert env.auth.otp.verify(EMAIL, "123456", "email_verify") is False
    env.clock.advance(seconds=1)
    with pytest.raises(RateLimited):
        env.auth.otp.verify(EMAIL, "123456", "email_verify")
    limited = rows(env, AuditEventType.RATE_LIMITED)
    assert [(e.user_id, e.email, e.reason, e.occurred_at) for e in limited] == [
        (None, EMAIL, "otp_verify", env.clock.now())
    ]


# -- explicit context ---------------------------------------------------------------


def test_otp_send_records_an_explicit_context_over_the_ambient_one(env, user) -> None:
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        env.auth.otp.send(EMAIL, "email_verify", context=CTX)
        env.outbox.fail_next()
        env.auth.otp.send(EMAIL, "email_verify", context=CTX)  # failure audited, not raised
        env.auth.otp.send(EMAIL, "email_verify", context=CTX)
        with pytest.raises(RateLimited):
            env.auth.otp.send(EMAIL, "email_verify", context=CTX)
    found = rows(env, AuditEventType.OTP_SENT, AuditEventType.OTP_SEND_FAILED, AuditEventType.RATE_LIMITED)
    assert len(found) == 4
    assert {(e.ip_address, e.user_agent) for e in found} == {(CTX.ip_address, CTX.user_agent)}


def test_otp_verify_records_an_explicit_context_over_the_ambient_one(env, user) -> None:
    code = send_code(env)
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify", context=CTX) is False
        assert env.auth.otp.verify(EMAIL, code, "email_verify", context=CTX) is True
        env.auth.user.block(env.auth.user.get_by_email(EMAIL).id)
        assert env.auth.otp.verify(EMAIL, code, "email_verify", context=CTX) is False
    found = rows(env, AuditEventType.OTP_FAILED, AuditEventType.OTP_VERIFIED, AuditEventType.EMAIL_VERIFIED)
    assert len(found) == 4
    assert {(e.ip_address, e.user_agent) for e in found} == {(CTX.ip_address, CTX.user_agent)}


def test_without_an_explicit_context_the_ambient_one_is_recorded(env, user) -> None:
    with env.auth.context(ip_address="198.51.100.1", user_agent="ambient"):
        code = send_code(env)
        env.auth.otp.verify(EMAIL, code, "email_verify")
    found = rows(env, AuditEventType.OTP_SENT, AuditEventType.OTP_VERIFIED)
    assert {(e.ip_address, e.user_agent) for e in found} == {("198.51.100.1", "ambient")}


# -- user-visible messages ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["12345", "abcdef", None])
def test_a_malformed_code_says_it_must_be_six_digits(env, user, bad) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.otp.verify(EMAIL, bad, "email_verify")
    assert info.value.message == "The code must be exactly 6 digits."
    assert info.value.field == "code"
    with pytest.raises(ValidationError) as info:
        env.auth.auth.verify_otp(EMAIL, bad)
    assert info.value.message == "The code must be exactly 6 digits."


def test_otp_send_and_verify_point_login_codes_to_auth_login(env, user) -> None:
    for call in (lambda: env.auth.otp.send(EMAIL, "login"), lambda: env.auth.otp.verify(EMAIL, "123456", "login")):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.message == "Login codes are sent and checked by the login endpoints, not by this one."
        assert info.value.field == "purpose"


# -- hash modes -------------------------------------------------------------------------


def test_a_code_issued_in_hmac_mode_still_verifies_after_switching_to_bcrypt(env, user) -> None:
    code = send_code(env)
    env.auth.auth.login(EMAIL, PASSWORD)
    login_code = env.outbox.last_code(EMAIL)
    with rebuilt(env, otp_hash="bcrypt") as auth:
        assert auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
        assert auth.otp.verify(EMAIL, code, "email_verify") is True
        assert auth.auth.verify_otp(EMAIL, login_code).user.id == user.id


def test_a_bcrypt_code_is_refused_cleanly_after_switching_to_hmac(make_env) -> None:
    # In hmac mode only keyed hashes count: a plain bcrypt hash (which anyone with
    # write access to the table could compute) is never trusted there.
    env = make_env(otp_hash="bcrypt")
    user = env.auth.auth.register(EMAIL, PASSWORD)
    code = send_code(env)
    with rebuilt(env, otp_hash="hmac") as auth:
        assert auth.otp.verify(EMAIL, code, "email_verify") is False
        assert [e.reason for e in auth.audit.query(types=[AuditEventType.OTP_FAILED])] == ["email_verify:wrong_code"]
        assert auth.user.get_by_id(user.id).email_verified is False


@pytest.mark.parametrize(("rounds", "cost"), [(4, "04"), (6, "06"), (10, "10"), (11, "10"), (12, "10")])
def test_bcrypt_code_hashes_use_the_password_cost_capped_at_ten(make_env, rounds: int, cost: str) -> None:
    env = make_env(otp_hash="bcrypt", bcrypt_rounds=rounds)
    stored_user(env)
    code = send_code(env)
    code_hash = env.store.otps.get(EMAIL, "email_verify").code_hash
    assert code_hash.startswith(f"$2b${cost}$")
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True


# -- attempts, expiry, the per-account failure counter -------------------------------


def test_the_configured_max_attempts_is_honoured(make_env) -> None:
    env = make_env(otp_max_attempts=2)
    env.auth.auth.register(EMAIL, PASSWORD)
    code = send_code(env)
    assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True
    code = send_code(env)
    for _ in range(2):
        assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    reasons = [e.reason for e in rows(env, AuditEventType.OTP_FAILED)]
    assert reasons[-1] == "email_verify:expired_or_used"


def test_a_purpose_code_is_valid_until_the_last_millisecond_of_its_ttl(env, user) -> None:
    code = send_code(env)
    env.clock.advance(minutes=4, seconds=59, milliseconds=999)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True


def test_a_purpose_code_is_invalid_exactly_at_expiry(env, user) -> None:
    code = send_code(env)
    env.clock.advance(minutes=5)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_a_correct_code_clears_the_failure_counter_of_the_account(make_env, otp_hash: str) -> None:
    env = make_env(otp_account_failure_limit=Limit(3, timedelta(hours=1)), otp_hash=otp_hash)
    env.auth.auth.register(EMAIL, PASSWORD)
    code = send_code(env)
    for _ in range(2):
        assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True  # the 3rd counted try, then cleared
    code = send_code(env)
    for _ in range(3):
        assert env.auth.otp.verify(EMAIL, wrong(code), "email_verify") is False
    with pytest.raises(RateLimited):
        env.auth.otp.verify(EMAIL, wrong(code), "email_verify")


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_a_correct_login_code_clears_the_failure_counter_too(make_env, otp_hash: str) -> None:
    env = make_env(otp_account_failure_limit=Limit(3, timedelta(hours=1)), otp_hash=otp_hash)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    for _ in range(2):
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, wrong(code))
    env.auth.auth.verify_otp(EMAIL, code)
    for _ in range(3):
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, "000000" if code != "000000" else "000001")
    with pytest.raises(RateLimited):
        env.auth.auth.verify_otp(EMAIL, code)


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_failure_budgets_are_per_account(make_env, otp_hash: str) -> None:
    env = make_env(otp_account_failure_limit=Limit(2, timedelta(hours=1)), otp_hash=otp_hash)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.register(OTHER, PASSWORD)
    for _ in range(2):
        assert env.auth.otp.verify(EMAIL, "123456", "email_verify") is False
    with pytest.raises(RateLimited):
        env.auth.otp.verify(EMAIL, "123456", "email_verify")
    code = send_code(env, OTHER)
    assert env.auth.otp.verify(OTHER, wrong(code), "email_verify") is False
    assert env.auth.otp.verify(OTHER, code, "email_verify") is True


def test_send_budgets_are_per_account(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.register(OTHER, PASSWORD)
    for _ in range(3):
        env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    for _ in range(3):
        env.auth.otp.send(OTHER, "email_verify")
    assert len(env.outbox.for_address(OTHER, "otp")) == 3


def test_unknown_emails_have_their_own_send_budgets(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(3):
        env.auth.otp.send("ghost@example.com", "email_verify")
    with pytest.raises(RateLimited):
        env.auth.otp.send("ghost@example.com", "email_verify")
    for _ in range(3):
        env.auth.otp.send("phantom@example.com", "email_verify")
    for _ in range(3):
        env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 3


def test_a_blocked_account_spends_its_send_budget_without_mail(env, user) -> None:
    env.auth.user.block(user.id)
    for _ in range(3):
        env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 0


# -- the mail -------------------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "minutes"), [(timedelta(minutes=2), "2"), (timedelta(minutes=10), "10")])
def test_the_mail_carries_the_code_the_purpose_and_the_ttl_in_minutes(make_env, ttl: timedelta, minutes: str) -> None:
    env = make_env(otp_ttl=ttl)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send("Ada@Example.com", "email_verify")
    mail = env.outbox.last(EMAIL, "otp")
    code = env.outbox.last_code(EMAIL)
    assert mail.to == EMAIL
    assert "email verification" in mail.subject
    assert f"code is: {code}" in mail.text
    assert f"It expires in {minutes} minutes." in mail.text
    assert f"It expires in {minutes} minutes." in mail.html
    assert mail.data["minutes"] == minutes
    assert mail.data["purpose"] == "email_verify"
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is True
