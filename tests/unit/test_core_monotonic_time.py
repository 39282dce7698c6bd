"""Time only moves forward for the rules: a clock stepping back never makes a code live
longer, a lockout shorter, a replayed refresh token acceptable, or the audit log out of
order; a few seconds of skew between servers (``clock_skew_tolerance``) are tolerated."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    ConfigurationError,
    InvalidOtp,
    InvalidRefreshToken,
    InvalidResetToken,
    RateLimited,
    RefreshTokenReused,
    RequestContext,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.audit import Auditor
from mindmesh_auth.core.config import AuthConfig
from mindmesh_auth.core.models import AuditEvent
from mindmesh_auth.core.rate_limit import RateLimiter
from mindmesh_auth.testing import FakeClock, test_config

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase for ada"
EMAIL = "ada@example.com"
CTX = RequestContext(ip_address="203.0.113.9", user_agent="monotonic-time/1.0")
HOUR_BACK = timedelta(hours=-1)
SKEW = timedelta(seconds=-3)  # inside the default 5 s tolerance


def start(make_env, **overrides):
    env = make_env(**overrides)
    env.auth.auth.register(EMAIL, PASSWORD)
    return env


def session_of(env, session_id):
    return env.store.sessions.get(session_id)


# -- the tolerance setting and the kernel helper ------------------------------------------------


def test_clock_skew_tolerance_defaults_to_five_seconds_and_is_read_from_the_environment() -> None:
    assert test_config().clock_skew_tolerance == timedelta(seconds=5)
    env = {"AUTH_JWT_SECRET": test_config().jwt_secret, "AUTH_REFRESH_SECRET": test_config().refresh_secret}
    config = AuthConfig.from_mapping({**env, "AUTH_CLOCK_SKEW_SECONDS": "12.5"})
    assert config.clock_skew_tolerance == timedelta(seconds=12.5)
    assert AuthConfig.from_mapping({**env, "AUTH_CLOCK_SKEW_SECONDS": "0"}).clock_skew_tolerance == timedelta(0)


@pytest.mark.parametrize("seconds", [-1, 60.5, 3600])
def test_clock_skew_tolerance_outside_zero_to_sixty_seconds_is_refused(seconds: float) -> None:
    with pytest.raises(ConfigurationError) as info:
        test_config(clock_skew_tolerance=timedelta(seconds=seconds))
    assert info.value.variable == "AUTH_CLOCK_SKEW_SECONDS"


def test_clock_skew_tolerance_must_be_a_timedelta() -> None:
    with pytest.raises(ConfigurationError):
        test_config(clock_skew_tolerance=5)


def test_from_the_future_is_strictly_beyond_the_tolerance(env) -> None:
    k = env.auth._kernel
    now = env.clock.now()
    assert not k.from_the_future(now, now)
    assert not k.from_the_future(now - timedelta(hours=1), now)
    assert not k.from_the_future(now + timedelta(seconds=5), now)
    assert k.from_the_future(now + timedelta(seconds=5, milliseconds=1), now)
    assert k.from_the_future(now + timedelta(hours=1), now)


# -- symptom 1: a replayed, already rotated refresh token after the clock stepped back -----------


def test_replayed_refresh_token_after_the_clock_stepped_back_an_hour_is_reuse(make_env) -> None:
    env = start(make_env)
    first = env.login(EMAIL)
    second = env.auth.auth.refresh(first.refresh_token, context=CTX)
    env.clock.advance(HOUR_BACK)  # the rotation now lies an hour in the future: negative age
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    assert session_of(env, first.session_id).revoked_at is not None
    assert session_of(env, first.session_id).revoke_reason == "refresh_reuse"
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(second.refresh_token, context=CTX)
    assert len(env.auth.audit.query(types=[AuditEventType.REFRESH_REUSE_DETECTED])) == 1


def test_replayed_refresh_token_after_the_clock_stepped_back_is_reuse_even_with_a_grace_period(make_env) -> None:
    env = start(make_env, refresh_grace_period=timedelta(seconds=30))
    first = env.login(EMAIL)
    env.auth.auth.refresh(first.refresh_token, context=CTX)
    env.clock.advance(HOUR_BACK)
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    assert session_of(env, first.session_id).revoked_at is not None


def test_replay_within_the_skew_tolerance_stays_a_refused_duplicate_without_revoking(make_env) -> None:
    env = start(make_env)
    first = env.login(EMAIL)
    second = env.auth.auth.refresh(first.refresh_token, context=CTX)
    env.clock.advance(SKEW)  # another server, 3 s behind: inside the race window as before
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(first.refresh_token, context=CTX)
    assert type(info.value) is InvalidRefreshToken
    assert session_of(env, first.session_id).revoked_at is None
    third = env.auth.auth.refresh(second.refresh_token, context=CTX)
    assert third.session_id == first.session_id


def test_grace_repeat_within_the_skew_tolerance_still_returns_the_successor(make_env) -> None:
    env = start(make_env, refresh_grace_period=timedelta(seconds=10))
    first = env.login(EMAIL)
    second = env.auth.auth.refresh(first.refresh_token, context=CTX)
    env.clock.advance(SKEW)
    again = env.auth.auth.refresh(first.refresh_token, context=CTX)
    assert again.refresh_token == second.refresh_token
    assert session_of(env, first.session_id).revoked_at is None


def test_refresh_after_the_clock_stepped_back_never_moves_last_active_at_back(make_env) -> None:
    env = start(make_env)
    first = env.login(EMAIL)
    env.clock.advance(minutes=10)
    second = env.auth.auth.refresh(first.refresh_token, context=CTX)
    recorded = session_of(env, first.session_id).last_active_at
    assert recorded == env.clock.now()
    env.clock.advance(HOUR_BACK)
    env.auth.auth.refresh(second.refresh_token, context=CTX)
    assert session_of(env, first.session_id).last_active_at == recorded
    # The token just rotated away at that stamp lies in the future: a replay is reuse.
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(second.refresh_token, context=CTX)


def test_sessions_created_before_the_clock_stepped_back_keep_working(make_env) -> None:
    env = start(make_env)
    first = env.login(EMAIL)
    env.clock.advance(HOUR_BACK)
    pair = env.auth.auth.refresh(first.refresh_token, context=CTX)
    assert env.auth.auth.get_user_from_token(pair.access_token).email == EMAIL


# -- symptom 2: a 5-minute code living for 65 minutes --------------------------------------------


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_code_issued_before_the_clock_stepped_back_an_hour_is_expired_and_not_consumed(make_env, otp_hash) -> None:
    env = start(make_env, otp_hash=otp_hash)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.clock.advance(HOUR_BACK)  # created_at now lies an hour ahead: expires_at alone would allow 65 minutes
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, context=CTX)
    challenge = env.store.otps.get(EMAIL, "login")
    assert challenge is not None and challenge.consumed_at is None and challenge.attempts == 0
    (failed,) = env.auth.audit.query(types=[AuditEventType.OTP_FAILED])
    assert failed.reason == "login:expired_or_used"
    assert env.auth.sessions.list(challenge.user_id) == []


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_code_within_the_skew_tolerance_still_verifies(make_env, otp_hash) -> None:
    env = start(make_env, otp_hash=otp_hash)
    env.auth.auth.login(EMAIL, PASSWORD)
    env.clock.advance(SKEW)
    result = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), context=CTX)
    assert result.user.email == EMAIL


def test_purpose_code_issued_before_the_clock_stepped_back_is_refused(make_env) -> None:
    env = start(make_env)
    env.auth.otp.send(EMAIL, "email_verify")
    code = env.outbox.last_code(EMAIL)
    env.clock.advance(minutes=-6)  # more than the tolerance, less than the code's 5-minute life
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert env.store.users.get_by_email(EMAIL).email_verified is False


# -- symptom 3: a lockout's retry_after reading 4,500 s -------------------------------------------


def exhaust(env) -> None:
    """Use up the per-account failure budget (the kernel's limiter, as the services count it)."""
    k = env.auth._kernel
    limit = k.config.login_email_limit
    for _ in range(limit.count):
        k.limiter.consume(f"login-fail:{EMAIL}", limit, k.now())


def over_the_limit(env) -> RateLimited:
    k = env.auth._kernel
    with pytest.raises(RateLimited) as info:
        k.limiter.consume(f"login-fail:{EMAIL}", k.config.login_email_limit, k.now())
    return info.value


def test_lockout_after_the_clock_stepped_back_says_at_most_the_window_and_stays_locked(make_env) -> None:
    env = start(make_env)
    exhaust(env)
    window = env.auth._kernel.config.login_email_limit.window
    env.clock.advance(HOUR_BACK)  # the window's end now lies 75 minutes ahead
    assert 1 <= over_the_limit(env).retry_after <= window.total_seconds()
    # Never shorter: the counter is not restarted by the step.
    env.clock.advance(window - timedelta(seconds=1))
    assert over_the_limit(env).retry_after == window.total_seconds()


def test_lockout_without_a_clock_step_still_counts_down_exactly(make_env) -> None:
    env = start(make_env)
    exhaust(env)
    env.clock.advance(minutes=5)
    assert over_the_limit(env).retry_after == 10 * 60
    env.clock.advance(SKEW)  # a server 3 s behind: the hint grows by those 3 s, within the window
    assert over_the_limit(env).retry_after == 10 * 60 + 3


def test_rate_limiter_caps_the_hint_at_the_window_for_a_counter_from_the_future() -> None:
    store = MemoryStore()
    limiter = RateLimiter(store.rate_limits, lambda name: name.replace(":", "-"))
    clock = FakeClock()
    limit = test_config().otp_send_limit
    for _ in range(limit.count):
        limiter.consume("otp-send:x", limit, clock.now())
    clock.advance(hours=-5)
    with pytest.raises(RateLimited) as info:
        limiter.consume("otp-send:x", limit, clock.now())
    assert info.value.retry_after == int(limit.window.total_seconds())


# -- symptom 4: the audit log sorting new events before old ones --------------------------------


def test_audit_rows_after_the_clock_stepped_back_keep_append_order(make_env) -> None:
    env = start(make_env)
    first = env.login(EMAIL)
    env.clock.advance(HOUR_BACK)
    env.auth.auth.logout(first.session_id, context=CTX)
    rows = env.auth.audit.query(limit=1000)
    types = [row.type for row in rows]
    assert types[-1] is AuditEventType.LOGOUT
    assert types[0] is AuditEventType.REGISTRATION_SUCCESS
    stamps = [row.occurred_at for row in rows]
    assert stamps == sorted(stamps)
    assert [int(row.id) for row in rows] == sorted(int(row.id) for row in rows)


def test_auditor_never_records_a_time_earlier_than_its_latest_across_threads() -> None:
    store = MemoryStore()
    auditor = Auditor(store.audit)
    clock = FakeClock()
    ctx = RequestContext()

    def write(name: str, step: timedelta) -> None:
        for _ in range(50):
            moment = clock.advance(step)
            auditor.record(AuditEventType.LOGOUT, moment, ctx, reason=name)

    steps = {"a": 7, "b": -5, "c": 3, "d": -11}
    threads = [threading.Thread(target=write, args=(name, timedelta(seconds=s))) for name, s in steps.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events: list[AuditEvent] = store.audit.query(limit=1000)
    assert len(events) == 200
    # Each writer's rows, in the order it wrote them, never go back in time, whatever the others did.
    for name in steps:
        mine = sorted((e for e in events if e.reason == name), key=lambda e: int(e.id or 0))
        stamps = [e.occurred_at for e in mine]
        assert len(stamps) == 50 and stamps == sorted(stamps)


def test_auditor_rows_in_a_unit_are_stamped_no_earlier_than_rows_written_before() -> None:
    store = MemoryStore()
    auditor = Auditor(store.audit)
    clock = FakeClock()
    ctx = RequestContext()
    auditor.record(AuditEventType.LOGIN_SUCCESS, clock.now(), ctx)
    later = clock.now()
    with auditor.batch():
        auditor.record(AuditEventType.LOGOUT, clock.advance(minutes=-30), ctx)
    first, second = store.audit.query()
    assert (first.type, second.type) == (AuditEventType.LOGIN_SUCCESS, AuditEventType.LOGOUT)
    assert second.occurred_at == later


def test_auditor_keeps_the_clock_when_it_moves_forward() -> None:
    store = MemoryStore()
    auditor = Auditor(store.audit)
    clock = FakeClock()
    auditor.record(AuditEventType.LOGIN_SUCCESS, clock.now(), RequestContext())
    auditor.record(AuditEventType.LOGOUT, clock.advance(seconds=2), RequestContext())
    assert [e.occurred_at for e in store.audit.query()] == [clock.now() - timedelta(seconds=2), clock.now()]


# -- reset tokens ----------------------------------------------------------------------------------


def reset_token(env) -> str:
    env.auth.password.request_reset(EMAIL)
    return env.outbox.last_reset_token(EMAIL)


def test_reset_token_issued_before_the_clock_stepped_back_is_invalid(make_env) -> None:
    env = start(make_env)
    token = reset_token(env)
    env.clock.advance(HOUR_BACK)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD, context=CTX)
    env.auth.auth.login(EMAIL, PASSWORD)  # the old password still works: nothing changed


def test_reset_token_within_the_skew_tolerance_still_works(make_env) -> None:
    env = start(make_env)
    token = reset_token(env)
    env.clock.advance(SKEW)
    env.auth.password.reset(token, NEW_PASSWORD, context=CTX)
    env.auth.auth.login(EMAIL, NEW_PASSWORD)
