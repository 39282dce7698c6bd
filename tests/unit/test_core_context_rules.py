"""Request context rules: IP parsing and normalisation, user agents, precedence, IP buckets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    Limit,
    RateLimited,
    RequestContext,
    ValidationError,
)
from mindmesh_auth.core.context import current_context

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def registered_row(env, email: str = EMAIL, **context: object):
    """Register with a per-call context and return the audit row it wrote."""
    env.auth.auth.register(email, PASSWORD, context=RequestContext(**context))  # type: ignore[arg-type]
    return env.auth.audit.query(email=email, types=[AuditEventType.REGISTRATION_SUCCESS])[0]


# -- IP addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.0.2.10", "192.0.2.10"),
        ("  192.0.2.10\n", "192.0.2.10"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::FFFF:C633:6407", "198.51.100.7"),
        ("::1", "::1"),
    ],
)
def test_set_context_stores_the_normalised_ip(env, given: str, stored: str) -> None:
    env.auth.set_context(ip_address=given)
    assert current_context().ip_address == stored
    env.auth.auth.register(EMAIL, PASSWORD)
    assert env.auth.audit.query(email=EMAIL)[0].ip_address == stored


@pytest.mark.parametrize("empty", [None, ""])
def test_a_missing_or_empty_ip_and_user_agent_mean_unknown(env, empty: str | None) -> None:
    env.auth.set_context(ip_address=empty, user_agent=empty)
    assert current_context() == RequestContext(ip_address=None, user_agent=None)
    row = registered_row(env, ip_address=empty, user_agent=empty)
    assert (row.ip_address, row.user_agent) == (None, None)


@pytest.mark.parametrize("malformed", ["999.1.1.1", "not-an-ip", "192.0.2", "2001:db8::1::2", "192.0.2.1/24"])
def test_a_malformed_ip_is_a_validation_error_naming_the_field(env, malformed: str) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.set_context(ip_address=malformed)
    assert info.value.field == "ip_address"
    assert info.value.message == "ip_address is not a valid IP address."
    assert current_context() == RequestContext()


@pytest.mark.parametrize("wrong_type", [3232235777, b"192.0.2.1", ["192.0.2.1"]])
def test_an_ip_that_is_not_a_string_is_a_validation_error(env, wrong_type: object) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.set_context(ip_address=wrong_type)  # type: ignore[arg-type]
    assert info.value.field == "ip_address"
    assert info.value.message == "ip_address must be an IP address string."


def test_an_ip_string_of_64_characters_is_parsed_and_65_is_refused(env) -> None:
    padded = "192.0.2.44".rjust(64)
    env.auth.set_context(ip_address=padded)
    assert current_context().ip_address == "192.0.2.44"
    with pytest.raises(ValidationError) as info:
        env.auth.set_context(ip_address=" " + padded)
    assert info.value.field == "ip_address"
    assert info.value.message == "ip_address must be an IP address string."


def test_a_malformed_per_call_ip_refuses_the_call_and_changes_nothing(env) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(ip_address="300.0.0.1"))
    assert info.value.field == "ip_address"
    assert env.auth.audit.query() == []
    env.auth.auth.register(EMAIL, PASSWORD)  # the email was not taken


# -- user agents -------------------------------------------------------------------------------


def test_the_user_agent_is_kept_as_given_up_to_512_characters(env) -> None:
    agent = "Mozilla/5.0 " + "x" * 500  # exactly 512 characters
    assert len(agent) == 512
    env.auth.set_context(user_agent=agent)
    assert current_context().user_agent == agent


def test_a_longer_user_agent_is_cut_to_its_first_512_characters(env) -> None:
    agent = "".join(chr(ord("a") + i % 26) for i in range(700))
    env.auth.set_context(user_agent=agent)
    assert current_context().user_agent == agent[:512]


@pytest.mark.parametrize("wrong_type", [42, b"curl/8.0", {"ua": "x"}])
def test_a_user_agent_that_is_not_a_string_is_a_validation_error(env, wrong_type: object) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.set_context(user_agent=wrong_type)  # type: ignore[arg-type]
    assert info.value.field == "user_agent"
    assert info.value.message == "user_agent must be a string."


def test_a_per_call_user_agent_that_is_not_a_string_refuses_the_call(env) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(user_agent=42))  # type: ignore[arg-type]
    assert info.value.field == "user_agent"
    assert env.auth.audit.query() == []


# -- precedence and scope ----------------------------------------------------------------------


def test_per_call_context_replaces_the_ambient_one_entirely(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5", user_agent="ambient-agent")
    row = registered_row(env, user_agent="per-call-agent")
    # The per-call context wins as a whole: its missing IP is not filled from the ambient one.
    assert (row.ip_address, row.user_agent) == (None, "per-call-agent")
    other = registered_row(env, "eve@example.com", ip_address="198.51.100.9")
    assert (other.ip_address, other.user_agent) == ("198.51.100.9", None)


def test_per_call_context_does_not_change_the_ambient_one(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5", user_agent="ambient-agent")
    registered_row(env, ip_address="198.51.100.9", user_agent="per-call-agent")
    assert current_context() == RequestContext(ip_address="203.0.113.5", user_agent="ambient-agent")
    env.auth.auth.login(EMAIL, PASSWORD)
    row = env.auth.audit.query(types=[AuditEventType.OTP_SENT])[0]
    assert (row.ip_address, row.user_agent) == ("203.0.113.5", "ambient-agent")


def test_without_a_per_call_context_the_ambient_one_is_used(env) -> None:
    env.auth.set_context(ip_address="203.0.113.77", user_agent="ambient-agent")
    env.auth.auth.register(EMAIL, PASSWORD)
    row = env.auth.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS])[0]
    assert (row.ip_address, row.user_agent) == ("203.0.113.77", "ambient-agent")


@pytest.mark.parametrize("not_a_context", [{"ip_address": "192.0.2.1"}, ("192.0.2.1", "ua"), "192.0.2.1"])
def test_a_per_call_context_that_is_not_a_request_context_is_refused(env, not_a_context: object) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.auth.register(EMAIL, PASSWORD, context=not_a_context)  # type: ignore[arg-type]
    assert info.value.field == "context"
    assert info.value.message == "context must be a RequestContext."
    assert env.auth.audit.query() == []


def test_the_context_manager_yields_the_normalised_context(env) -> None:
    with env.auth.context(ip_address="::ffff:192.0.2.9", user_agent="scoped") as ctx:
        assert ctx == RequestContext(ip_address="192.0.2.9", user_agent="scoped")
        assert current_context() == ctx
    assert current_context() == RequestContext()


def test_nested_context_managers_restore_each_level(env) -> None:
    with env.auth.context(ip_address="192.0.2.1"):
        with env.auth.context(ip_address="192.0.2.2", user_agent="inner"):
            assert current_context() == RequestContext(ip_address="192.0.2.2", user_agent="inner")
        assert current_context() == RequestContext(ip_address="192.0.2.1")
    assert current_context() == RequestContext()


# -- IP buckets for the per-IP rate limits -----------------------------------------------------


def failed_login_from(env, ip: str, n: int) -> None:
    """A login for a fresh unknown email (so only the per-IP limit can trip)."""
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(f"nobody{n}@example.com", PASSWORD, context=RequestContext(ip_address=ip))


def refused_login_from(env, ip: str, n: int) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        env.auth.auth.login(f"nobody{n}@example.com", PASSWORD, context=RequestContext(ip_address=ip))
    return info.value


def test_ipv6_addresses_in_the_same_64_share_one_login_limit(make_env) -> None:
    env = make_env(login_ip_limit=Limit(2, timedelta(minutes=15)))
    failed_login_from(env, "2001:db8:1:2::1", 1)
    failed_login_from(env, "2001:db8:1:2:8000::2", 2)
    refused_login_from(env, "2001:db8:1:2:ffff:ffff:ffff:ffff", 3)
    # The neighbouring /64 has its own budget.
    failed_login_from(env, "2001:db8:1:3::1", 4)
    failed_login_from(env, "2001:db8:1:1:ffff::1", 5)


def test_ipv4_addresses_each_have_their_own_login_limit(make_env) -> None:
    env = make_env(login_ip_limit=Limit(2, timedelta(minutes=15)))
    failed_login_from(env, "192.0.2.1", 1)
    failed_login_from(env, "192.0.2.1", 2)
    refused_login_from(env, "192.0.2.1", 3)
    failed_login_from(env, "192.0.2.2", 4)


def test_an_ipv4_mapped_address_counts_against_its_ipv4_address(make_env) -> None:
    env = make_env(login_ip_limit=Limit(2, timedelta(minutes=15)))
    failed_login_from(env, "192.0.2.1", 1)
    failed_login_from(env, "::ffff:192.0.2.1", 2)
    refused_login_from(env, "192.0.2.1", 3)


def test_registration_limit_is_per_ipv6_64(make_env) -> None:
    env = make_env(register_ip_limit=Limit(1, timedelta(hours=1)))
    env.auth.auth.register("a@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:5:6::a"))
    with pytest.raises(RateLimited):
        env.auth.auth.register("b@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:5:6::b"))
    env.auth.auth.register("c@example.com", PASSWORD, context=RequestContext(ip_address="2001:db8:5:7::c"))
    row = env.auth.audit.query(types=[AuditEventType.RATE_LIMITED])[0]
    assert (row.email, row.ip_address, row.reason) == ("b@example.com", "2001:db8:5:6::b", "register")
