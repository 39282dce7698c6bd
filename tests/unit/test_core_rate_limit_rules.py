"""Rate limits: exact budgets, fixed windows from the first hit, retry_after, separate keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mindmesh_auth import InvalidCredentials, Limit, RateLimited

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def send(env, email: str = EMAIL) -> None:
    env.auth.otp.send(email, "email_verify")


def retry_after_of(call) -> int:
    with pytest.raises(RateLimited) as info:
        call()
    return info.value.retry_after


@pytest.fixture
def limited_env(make_env):
    """Sending allows 2 codes per 10-minute window."""
    env = make_env(otp_send_limit=Limit(2, timedelta(minutes=10)))
    env.auth.auth.register(EMAIL, PASSWORD)
    return env


def test_exactly_the_configured_count_passes_in_a_window(limited_env) -> None:
    env = limited_env
    send(env)
    send(env)
    with pytest.raises(RateLimited):
        send(env)
    assert len(env.outbox) == 2


def test_retry_after_is_the_whole_window_right_after_the_first_hit(limited_env) -> None:
    env = limited_env
    send(env)
    send(env)
    assert retry_after_of(lambda: send(env)) == 600


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(seconds=1, milliseconds=500), 599),  # 598.5 s left: rounded up
        (timedelta(seconds=2), 598),  # whole seconds stay as they are
        (timedelta(seconds=2, milliseconds=1), 598),  # 597.999 s left
        (timedelta(minutes=5), 300),
        (timedelta(minutes=9, seconds=59, milliseconds=500), 1),
        (timedelta(minutes=9, seconds=59, milliseconds=999), 1),
        (timedelta(minutes=9, seconds=58, milliseconds=500), 2),
    ],
)
def test_retry_after_counts_whole_seconds_up_to_the_end_of_the_window(limited_env, elapsed, expected) -> None:
    env = limited_env
    send(env)
    send(env)
    env.clock.advance(elapsed)
    assert retry_after_of(lambda: send(env)) == expected


def test_the_window_starts_at_the_first_hit_and_is_not_extended_by_refused_calls(limited_env) -> None:
    env = limited_env
    send(env)
    env.clock.advance(minutes=4)
    send(env)
    env.clock.advance(minutes=3)
    assert retry_after_of(lambda: send(env)) == 180
    env.clock.advance(minutes=2)
    assert retry_after_of(lambda: send(env)) == 60
    env.clock.advance(minutes=1)
    send(env)  # a fresh window
    send(env)
    assert retry_after_of(lambda: send(env)) == 600


def test_budgets_of_different_accounts_do_not_mix(limited_env) -> None:
    env = limited_env
    env.auth.auth.register("bob@example.com", PASSWORD)
    send(env)
    send(env)
    send(env, "bob@example.com")
    send(env, "bob@example.com")
    with pytest.raises(RateLimited):
        send(env)
    with pytest.raises(RateLimited):
        send(env, "bob@example.com")


def test_login_budgets_are_per_client_ip(make_env) -> None:
    env = make_env(login_ip_limit=Limit(2, timedelta(minutes=15)), login_email_limit=Limit(50, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    with env.auth.context(ip_address="203.0.113.1"):
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                env.auth.auth.login(EMAIL, "wrong password!")
        with pytest.raises(RateLimited):
            env.auth.auth.login(EMAIL, PASSWORD)
    with env.auth.context(ip_address="203.0.113.2"):
        assert env.auth.auth.login(EMAIL, PASSWORD).otp_required is True


def test_a_cleared_budget_starts_again_from_zero(make_env) -> None:
    env = make_env(login_email_limit=Limit(2, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, "wrong password!")
    env.auth.auth.login(EMAIL, PASSWORD)  # a success clears the failures
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(EMAIL, "wrong password!")
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_stored_counter_keys_are_fixed_width_keyed_hashes_that_hold_no_address(env) -> None:
    long_email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    for email in (EMAIL, long_email):
        env.auth.auth.register(email, PASSWORD)
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(email, "not the password at all")
    keys = sorted(env.store.rate_limits._counters)
    assert keys and all(len(key.partition(":")[2]) == 64 for key in keys), keys
    assert not any("@" in key or "example" in key for key in keys), keys
    limiter = env.auth._kernel.limiter
    assert limiter.stored_key(f"login-fail:{EMAIL}") in keys
    assert limiter.stored_key(f"login-fail:{long_email}") in keys
    assert limiter.stored_key(f"login-fail:{EMAIL}").startswith("login-fail:")
    assert limiter.stored_key("otp-fail:x") != limiter.stored_key("otp-send:x")  # the kind is hashed too


def test_counter_keys_depend_on_the_server_secret(make_env) -> None:
    one = make_env()
    other = make_env(refresh_secret="another refresh secret that is long enough 0123456789")
    name = f"login-fail:{EMAIL}"
    assert one.auth._kernel.limiter.stored_key(name) != other.auth._kernel.limiter.stored_key(name)


def test_the_readable_part_of_a_stored_key_is_the_kind_before_the_first_colon(env) -> None:
    # IPv6 buckets hold colons of their own: the kind still ends at the first one.
    key = env.auth._kernel.limiter.stored_key("login-ip:2001:db8::/64")
    kind, _, digest = key.partition(":")
    assert kind == "login-ip" and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
