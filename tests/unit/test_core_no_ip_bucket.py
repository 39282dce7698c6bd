"""Requests without a client IP share one bucket per kind (limit x ``no_ip_limit_factor``): no bypass."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    ConfigurationError,
    InvalidCredentials,
    Limit,
    RateLimited,
    RequestContext,
    ValidationError,
)

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
IP_CTX = RequestContext(ip_address="203.0.113.9")
LIMIT = Limit(2, timedelta(hours=1))
BIG = Limit(1000, timedelta(hours=1))


def rate_limited_rows(env):
    return env.auth.audit.query(types=[AuditEventType.RATE_LIMITED], limit=1000)


def no_ip_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.name == "mindmesh_auth" and r.levelno == logging.WARNING and "client address is unknown" in r.getMessage()
    ]


def wrong_login(env, email: str, **kw) -> None:
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(email, "wrong password!", **kw)


# -- register ---------------------------------------------------------------------------------------


def test_registrations_without_a_client_ip_are_refused_after_limit_times_factor(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT, no_ip_limit_factor=3)
    for i in range(6):
        env.auth.auth.register(f"user{i}@example.com", PASSWORD)
    with pytest.raises(RateLimited) as caught:
        env.auth.auth.register("user6@example.com", PASSWORD)
    assert caught.value.retry_after == 3600
    assert env.auth.user.get_by_email("user6@example.com") is None
    [row] = rate_limited_rows(env)
    assert (row.reason, row.email, row.ip_address) == ("register", "user6@example.com", None)
    env.clock.advance(hours=1)
    env.auth.auth.register("user7@example.com", PASSWORD)


def test_a_factor_of_one_gives_the_shared_bucket_the_per_ip_limit(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT, no_ip_limit_factor=1)
    env.auth.auth.register("u1@example.com", PASSWORD)
    env.auth.auth.register("u2@example.com", PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.register("u3@example.com", PASSWORD)


def test_the_default_factor_is_ten(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT)
    for i in range(20):
        env.auth.auth.register(f"user{i}@example.com", PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.register("user20@example.com", PASSWORD)


# -- login ------------------------------------------------------------------------------------------


def test_logins_without_a_client_ip_are_refused_after_limit_times_factor(make_env) -> None:
    env = make_env(login_ip_limit=LIMIT, login_email_limit=BIG, no_ip_limit_factor=3)
    env.auth.auth.register(EMAIL, PASSWORD)
    for i in range(6):
        wrong_login(env, f"x{i}@example.com")
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)  # even the right password: the bucket is spent
    assert len(env.outbox) == 0
    [row] = rate_limited_rows(env)
    assert (row.reason, row.email, row.ip_address) == ("login", EMAIL, None)
    env.clock.advance(hours=1)
    assert env.auth.auth.login(EMAIL, PASSWORD).otp_required is True


# -- password reset request -------------------------------------------------------------------------


def test_reset_requests_without_a_client_ip_stop_mailing_after_limit_times_factor(make_env) -> None:
    env = make_env(reset_ip_limit=LIMIT, reset_email_limit=BIG, no_ip_limit_factor=3)
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(6):
        env.auth.password.request_reset(EMAIL)
    assert len(env.outbox) == 6
    env.auth.password.request_reset(EMAIL)  # returns normally, sends nothing
    assert len(env.outbox) == 6
    [row] = rate_limited_rows(env)
    assert (row.reason, row.email, row.ip_address) == ("password_reset", EMAIL, None)
    env.clock.advance(hours=1)
    env.auth.password.request_reset(EMAIL)
    assert len(env.outbox) == 7


# -- one shared bucket, separate from the per-IP buckets ---------------------------------------------


def test_different_requests_without_a_client_ip_share_one_bucket(make_env) -> None:
    env = make_env(register_ip_limit=Limit(1, timedelta(hours=1)), no_ip_limit_factor=3)
    env.auth.auth.register("u1@example.com", PASSWORD)  # the ambient context: no IP
    env.auth.auth.register("u2@example.com", PASSWORD, context=RequestContext(user_agent="agent-a"))
    with env.auth.context(user_agent="agent-b"):
        env.auth.auth.register("u3@example.com", PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.register("u4@example.com", PASSWORD, context=RequestContext(ip_address="", user_agent="agent-c"))


def test_each_kind_has_its_own_shared_bucket(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT, login_ip_limit=LIMIT, reset_ip_limit=LIMIT, no_ip_limit_factor=1)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.register("bob@example.com", PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.register("carol@example.com", PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    assert len(env.outbox) == 2


def test_requests_with_a_client_ip_are_unaffected_by_the_spent_shared_bucket(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT, login_ip_limit=LIMIT, login_email_limit=BIG, no_ip_limit_factor=1)
    env.auth.auth.register("u1@example.com", PASSWORD)
    env.auth.auth.register("u2@example.com", PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.register("u3@example.com", PASSWORD)
    env.auth.auth.register("u3@example.com", PASSWORD, context=IP_CTX)
    wrong_login(env, "x1@example.com")
    wrong_login(env, "x2@example.com")
    with pytest.raises(RateLimited):
        env.auth.auth.login("u1@example.com", PASSWORD)
    assert env.auth.auth.login("u1@example.com", PASSWORD, context=IP_CTX).otp_required is True


def test_requests_without_a_client_ip_are_unaffected_by_a_spent_per_ip_bucket(make_env) -> None:
    env = make_env(register_ip_limit=LIMIT, login_ip_limit=LIMIT, login_email_limit=BIG, no_ip_limit_factor=1)
    env.auth.auth.register("u1@example.com", PASSWORD, context=IP_CTX)
    env.auth.auth.register("u2@example.com", PASSWORD, context=IP_CTX)
    with pytest.raises(RateLimited):
        env.auth.auth.register("u3@example.com", PASSWORD, context=IP_CTX)
    env.auth.auth.register("u3@example.com", PASSWORD)
    wrong_login(env, "x1@example.com", context=IP_CTX)
    wrong_login(env, "x2@example.com", context=IP_CTX)
    with pytest.raises(RateLimited):
        env.auth.auth.login("u1@example.com", PASSWORD, context=IP_CTX)
    assert env.auth.auth.login("u1@example.com", PASSWORD).otp_required is True


# -- the warning ------------------------------------------------------------------------------------


def test_the_shared_bucket_warning_is_logged_once_per_facade(make_env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mindmesh_auth")
    env = make_env(login_email_limit=BIG)
    env.auth.auth.register(EMAIL, PASSWORD, context=IP_CTX)
    env.auth.auth.login(EMAIL, PASSWORD, context=IP_CTX)
    assert no_ip_warnings(caplog) == []
    env.auth.auth.register("bob@example.com", PASSWORD)
    wrong_login(env, "x@example.com")
    env.auth.auth.login(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    [record] = no_ip_warnings(caplog)
    assert record.mindmesh_auth_event == "no_client_ip"  # type: ignore[attr-defined]
    message = record.getMessage()
    assert "trusted_proxies" in message and "deployment" in message
    for secret in (EMAIL, "bob@example.com", "x@example.com", IP_CTX.ip_address):
        assert secret not in message
    other = make_env()
    other.auth.auth.register("carol@example.com", PASSWORD)
    assert len(no_ip_warnings(caplog)) == 2  # a second facade warns once too


# -- a malformed address is still an error, not "no address" ---------------------------------------


@pytest.mark.parametrize("address", ["not-an-ip", "203.0.113", "unix", "999.1.1.1"])
def test_a_malformed_client_address_is_a_validation_error_and_counts_nothing(make_env, address: str) -> None:
    env = make_env(register_ip_limit=LIMIT, no_ip_limit_factor=1)
    with pytest.raises(ValidationError):
        env.auth.auth.register("u1@example.com", PASSWORD, context=RequestContext(ip_address=address))
    with pytest.raises(ValidationError), env.auth.context(ip_address=address):
        pass
    env.auth.auth.register("u1@example.com", PASSWORD)
    env.auth.auth.register("u2@example.com", PASSWORD)


@pytest.mark.parametrize("ip", ["203.0.113.7", None])
def test_per_ip_counters_are_stored_under_their_kind(make_env, ip) -> None:
    env = make_env()
    ctx = RequestContext(ip_address=ip)
    env.auth.auth.register(EMAIL, PASSWORD, context=ctx)
    wrong_login(env, EMAIL, context=ctx)
    env.auth.password.request_reset(EMAIL, context=ctx)
    env.auth.wait_for_background_work()
    limiter = env.auth._kernel.limiter
    stored = set(env.store.rate_limits._counters)
    subject = ip if ip is not None else "none"
    for kind in ("register-ip", "login-ip", "reset-ip"):
        assert limiter.stored_key(f"{kind}:{subject}") in stored, kind


def test_the_no_ip_warning_says_what_is_shared_and_how_to_fix_it(make_env, caplog) -> None:
    env = make_env()
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
        env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(ip_address=None))
    (record,) = no_ip_warnings(caplog)
    assert record.getMessage() == (
        "A request without a client IP address was counted by a per-IP rate limit: per-IP limits are shared by "
        "all such requests because the client address is unknown. Configure trusted proxies "
        '(trusted_proxies, with "unix" behind a Unix socket) so the client address is known; '
        "see docs/deployment.md and docs/integrations.md."
    )


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_the_factor_must_be_a_whole_number_of_at_least_one(make_env, bad) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_env(no_ip_limit_factor=bad)
    assert caught.value.message == "no_ip_limit_factor (AUTH_NO_IP_LIMIT_FACTOR) must be a whole number of at least 1."
