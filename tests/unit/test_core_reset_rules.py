"""auth.password: the rules of reset and change that the broader tests leave open.

Rate-limit keys, the failed-login counter, token checks before the password policy,
the "password changed" notice when its mail fails, and the exact audit rows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    InvalidEmail,
    InvalidOtp,
    InvalidPassword,
    InvalidResetToken,
    InvalidToken,
    MindmeshAuth,
    RateLimited,
    UserNotFound,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.config import Limit
from mindmesh_auth.core.crypto import KeyRing
from mindmesh_auth.core.models import RequestContext, ResetToken
from mindmesh_auth.testing import FakeClock, Outbox, SeededRandomness, test_config

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase"
EMAIL = "ada@example.com"
IP = "203.0.113.7"
UA = "reset-rules-agent/1.0"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def rows(env, *types: AuditEventType) -> list[tuple]:
    """Every field an audit row carries (except the store's id), oldest first."""
    return [
        (e.type, e.user_id, e.email, e.session_id, e.reason, e.occurred_at, e.ip_address, e.user_agent)
        for e in env.auth.audit.query(types=list(types), limit=10000)
    ]


def request_token(env, email: str = EMAIL) -> str:
    env.auth.password.request_reset(email)
    return env.outbox.last_reset_token(email)


def fail_logins(env, times: int, email: str = EMAIL) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(email, "not the password at all")


def reset_requests_sent(env, email: str = EMAIL) -> int:
    return len(env.outbox.for_address(email, "password_reset"))


# -- a login code asked for before the password changed -----------------------------------------


def test_a_reset_discards_the_login_code_asked_for_with_the_old_password(env, user) -> None:
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.auth.password.reset(request_token(env), NEW_PASSWORD)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, "login", handle=challenge.handle)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id  # a new login's code works


def test_a_change_discards_the_pending_login_code_and_keeps_other_purposes(env, user) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    verify_code = env.outbox.last_code(EMAIL)
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, "login", handle=challenge.handle)
    assert env.auth.otp.verify(EMAIL, verify_code, "email_verify") is True


# -- the failed-login counter ------------------------------------------------------


def test_reset_gives_back_the_full_failed_login_budget(env, user) -> None:
    limit = env.auth.config.login_email_limit.count
    fail_logins(env, limit)  # the budget is used up: one more attempt would be rate limited
    env.auth.password.reset(request_token(env), NEW_PASSWORD)
    fail_logins(env, limit)  # a fresh budget, not the old counter
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, NEW_PASSWORD)


def test_reset_right_after_a_used_up_budget_lets_the_new_password_log_in(env, user) -> None:
    fail_logins(env, env.auth.config.login_email_limit.count)
    env.auth.password.reset(request_token(env), NEW_PASSWORD)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_a_right_current_password_clears_failed_logins_even_if_the_new_one_is_refused(env, user) -> None:
    limit = env.auth.config.login_email_limit.count
    fail_logins(env, limit - 1)
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, PASSWORD, "short")
    fail_logins(env, limit)
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_change_gives_back_the_full_failed_login_budget(env, user) -> None:
    limit = env.auth.config.login_email_limit.count
    fail_logins(env, limit - 1)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    fail_logins(env, limit)
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, NEW_PASSWORD)


def test_wrong_current_password_is_reported_as_such_and_counts_as_a_failed_login(env, user) -> None:
    limit = env.auth.config.login_email_limit.count
    with pytest.raises(InvalidPassword) as info:
        env.auth.password.change(user.id, "not the password", NEW_PASSWORD)
    assert info.value.message == "The current password is wrong."
    assert info.value.field == "current_password"
    fail_logins(env, limit - 1)
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_wrong_current_password_leaves_the_password_and_sessions_alone(env, user) -> None:
    session = env.login(EMAIL)
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, "not the password", NEW_PASSWORD)
    assert env.auth.auth.get_user_from_token(session.access_token).id == user.id
    assert rows(env, AuditEventType.PASSWORD_CHANGED) == []
    assert env.outbox.for_address(EMAIL, "password_changed") == []


# -- the new password ----------------------------------------------------------------


def test_reset_refuses_the_address_itself_as_the_new_password(make_env) -> None:
    env = make_env()
    email = "longlocalpart@example.com"
    env.auth.auth.register(email, PASSWORD)
    token = request_token(env, email)
    for refused in (email, "longlocalpart", "LongLocalPart", email.upper()):
        with pytest.raises(InvalidPassword) as info:
            env.auth.password.reset(token, refused)
        assert info.value.message == "The password must not be your email address."
    env.auth.password.reset(token, NEW_PASSWORD)


def test_change_refuses_the_address_itself_as_the_new_password(make_env) -> None:
    env = make_env()
    email = "longlocalpart@example.com"
    user = env.auth.auth.register(email, PASSWORD)
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, PASSWORD, "longlocalpart")
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, PASSWORD, email)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(email, "longlocalpart")


def test_reset_with_a_non_string_password_is_invalid_password(env, user) -> None:
    token = request_token(env)
    with pytest.raises(InvalidPassword):
        env.auth.password.reset(token, None)
    env.auth.password.reset(token, NEW_PASSWORD)


def test_change_with_a_non_string_current_password_is_invalid_password(env, user) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, 12345678, NEW_PASSWORD)
    assert env.login(EMAIL, PASSWORD).user.id == user.id


# -- the token is checked before the password policy ----------------------------------


def test_expired_token_with_a_policy_breaking_password_is_invalid_reset_token(env, user) -> None:
    token = request_token(env)
    env.clock.advance(hours=1)  # exactly the end of its lifetime
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, "short")


def test_live_token_with_a_policy_breaking_password_is_invalid_password(env, user) -> None:
    token = request_token(env)
    env.clock.advance(minutes=59, seconds=59)
    with pytest.raises(InvalidPassword):
        env.auth.password.reset(token, "short")


def test_unknown_token_with_a_policy_breaking_password_is_invalid_reset_token(env, user) -> None:
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset("B" * 43, "short")


def test_token_already_consumed_in_the_store_is_refused_before_the_policy(env, user) -> None:
    token = request_token(env)
    digest = KeyRing(env.auth.config.refresh_secret).digest("reset", token)
    # Another request consumed it a moment ago (its row stays until the user is updated).
    assert env.store.reset_tokens.consume(digest, env.clock.now()) is not None
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, "short")
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)
    assert env.login(EMAIL, PASSWORD).user.id == user.id


def test_token_whose_user_is_gone_is_invalid_reset_token(env, user) -> None:
    token = "C" * 43
    now = env.clock.now()
    env.store.reset_tokens.put(
        ResetToken(
            id="30000000-0000-4000-8000-000000000001",
            user_id="00000000-0000-4000-8000-00000000dead",
            token_hash=KeyRing(env.auth.config.refresh_secret).digest("reset", token),
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
    )
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)


def test_reset_token_lifetime_follows_the_config(make_env) -> None:
    env = make_env(reset_token_ttl=timedelta(minutes=30))
    env.auth.auth.register(EMAIL, PASSWORD)
    token = request_token(env)
    assert env.outbox.last(EMAIL, "password_reset").data["minutes"] == "30"
    env.clock.advance(minutes=30)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)


def test_reset_token_lifetime_shown_in_minutes_rounds_down(make_env) -> None:
    env = make_env(reset_token_ttl=timedelta(minutes=90, seconds=59))
    env.auth.auth.register(EMAIL, PASSWORD)
    request_token(env)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert mail.data["minutes"] == "90"
    assert "This expires in 90 minutes" in mail.text


def test_reset_mail_without_reset_url_carries_the_token_in_words(env, user) -> None:
    token = request_token(env)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert mail.to == EMAIL
    assert f"Your password reset token is: {token}" in mail.text
    assert mail.data["token"] == token
    assert "http" not in mail.text


def test_reset_mail_with_reset_url_says_to_open_the_link(make_env) -> None:
    env = make_env(reset_url="https://app.example/reset?t={token}&from=mail")
    env.auth.auth.register(EMAIL, PASSWORD)
    token = request_token(env)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert f"Open this link to choose a new password: https://app.example/reset?t={token}&from=mail" in mail.text
    assert "Your password reset token is" not in mail.text


def test_reset_mail_goes_to_the_stored_address_for_a_differently_written_one(env, user) -> None:
    env.auth.password.request_reset("ADA@EXAMPLE.COM")
    assert [m.to for m in env.outbox.messages if m.kind == "password_reset"] == [EMAIL]


# -- per-IP and per-email limits on reset requests ---------------------------------------


def test_two_ipv4_clients_have_independent_reset_budgets(env) -> None:
    limit = env.auth.config.reset_ip_limit.count
    for i in range(limit):
        env.auth.password.request_reset(f"a{i}@example.com", context=RequestContext(ip_address="198.51.100.1"))
    env.auth.password.request_reset("other@example.com", context=RequestContext(ip_address="198.51.100.2"))
    env.auth.password.request_reset("last@example.com", context=RequestContext(ip_address="198.51.100.1"))
    limited = rows(env, AuditEventType.RATE_LIMITED)
    assert [(r[2], r[6]) for r in limited] == [("last@example.com", "198.51.100.1")]


def test_ipv6_clients_in_different_slash_64s_have_independent_reset_budgets(env) -> None:
    limit = env.auth.config.reset_ip_limit.count
    for i in range(limit):
        with env.auth.context(ip_address=f"2001:db8:1:2::{i + 1:x}"):
            env.auth.password.request_reset(f"a{i}@example.com")
    with env.auth.context(ip_address="2001:db8:1:3::1"):
        env.auth.password.request_reset("neighbour@example.com")
    with env.auth.context(ip_address="2001:db8:1:2:ffff::1"):
        env.auth.password.request_reset("same-net@example.com")
    assert [r[2] for r in rows(env, AuditEventType.RATE_LIMITED)] == ["same-net@example.com"]


def test_reset_ip_limit_follows_the_config_and_its_window(make_env) -> None:
    env = make_env(reset_ip_limit=Limit(2, timedelta(minutes=10)))
    ctx = RequestContext(ip_address=IP)
    for i in range(3):
        env.auth.password.request_reset(f"n{i}@example.com", context=ctx)
    assert [r[2] for r in rows(env, AuditEventType.RATE_LIMITED)] == ["n2@example.com"]
    env.clock.advance(minutes=10)
    env.auth.password.request_reset("n3@example.com", context=ctx)
    assert [r[2] for r in rows(env, AuditEventType.RATE_LIMITED)] == ["n2@example.com"]


def test_reset_requests_without_an_ip_are_limited_per_email_only(env, user) -> None:
    limit = env.auth.config.reset_ip_limit.count
    for i in range(limit + 5):
        env.auth.password.request_reset(f"n{i}@example.com")
    assert rows(env, AuditEventType.RATE_LIMITED) == []


def test_reset_email_limit_counts_per_canonical_address(env, user) -> None:
    limit = env.auth.config.reset_email_limit.count
    for i in range(limit):
        env.auth.password.request_reset(EMAIL if i % 2 else EMAIL.upper())
    env.auth.password.request_reset("Ada@Example.com")
    assert reset_requests_sent(env) == limit
    env.auth.password.request_reset("bob@example.com")  # another address still has its own budget
    assert [r[2] for r in rows(env, AuditEventType.RATE_LIMITED)] == [EMAIL]


def test_reset_email_limit_follows_the_config(make_env) -> None:
    env = make_env(reset_email_limit=Limit(1, timedelta(minutes=5)))
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    env.auth.password.request_reset(EMAIL)
    assert reset_requests_sent(env) == 1
    env.clock.advance(minutes=5)
    env.auth.password.request_reset(EMAIL)
    assert reset_requests_sent(env) == 2


def test_rate_limited_reset_request_keeps_the_outstanding_token_valid(env, user) -> None:
    limit = env.auth.config.reset_email_limit.count
    for _ in range(limit):
        token = request_token(env)
    env.auth.password.request_reset(EMAIL)
    env.auth.password.reset(token, NEW_PASSWORD)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_reset_request_with_a_malformed_email_is_invalid_email(env) -> None:
    with pytest.raises(InvalidEmail):
        env.auth.password.request_reset("not an address")
    assert rows(env, AuditEventType.PASSWORD_RESET_REQUESTED, AuditEventType.RATE_LIMITED) == []


# -- the "password changed" notice -------------------------------------------------------


def test_failed_notice_after_reset_keeps_the_new_password_and_is_audited(env, user) -> None:
    token = request_token(env)
    now = env.clock.now()
    env.outbox.fail_next()
    with env.auth.context(ip_address=IP, user_agent=UA):
        assert env.auth.password.reset(token, NEW_PASSWORD) is None
    assert env.outbox.for_address(EMAIL, "password_changed") == []
    assert rows(env, AuditEventType.PASSWORD_RESET_COMPLETED) == [
        (AuditEventType.PASSWORD_RESET_COMPLETED, user.id, EMAIL, None, None, now, IP, UA),
        (AuditEventType.PASSWORD_RESET_COMPLETED, user.id, EMAIL, None, "notice_delivery_failed", now, IP, UA),
    ]
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_failed_notice_after_change_keeps_the_new_password_and_is_audited(env, user) -> None:
    now = env.clock.now()
    env.outbox.fail_next()
    ctx = RequestContext(ip_address=IP, user_agent=UA)
    assert env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD, context=ctx) is None
    assert rows(env, AuditEventType.PASSWORD_CHANGED) == [
        (AuditEventType.PASSWORD_CHANGED, user.id, EMAIL, None, None, now, IP, UA),
        (AuditEventType.PASSWORD_CHANGED, user.id, EMAIL, None, "notice_delivery_failed", now, IP, UA),
    ]
    assert env.login(EMAIL, NEW_PASSWORD).user.id == user.id


def test_change_sends_the_password_changed_notice_to_the_user(env, user) -> None:
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    notice = env.outbox.last(EMAIL, "password_changed")
    assert notice.to == EMAIL
    assert "was changed" in notice.text


# -- sessions -------------------------------------------------------------------------------


def test_reset_revokes_every_session_as_password_changed_at_that_moment(env, user) -> None:
    a = env.login(EMAIL)
    b = env.login(EMAIL)
    token = request_token(env)
    env.clock.advance(minutes=3)
    env.auth.password.reset(token, NEW_PASSWORD)
    for result in (a, b):
        session = env.auth.sessions.get(result.session_id)
        assert (session.revoke_reason, session.revoked_at) == ("password_changed", env.clock.now())


def test_change_keeps_exactly_the_named_session(env, user) -> None:
    a = env.login(EMAIL)
    keep = env.login(EMAIL)
    c = env.login(EMAIL)
    env.clock.advance(minutes=2)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD, keep_session_id=keep.session_id)
    assert [s.id for s in env.auth.sessions.list(user.id)] == [keep.session_id]
    assert env.auth.sessions.get(keep.session_id).revoked_at is None
    for result in (a, c):
        session = env.auth.sessions.get(result.session_id)
        assert (session.revoke_reason, session.revoked_at) == ("password_changed", env.clock.now())
        with pytest.raises(InvalidToken):
            env.auth.auth.get_user_from_token(result.access_token)
    assert env.auth.auth.get_user_from_token(keep.access_token).id == user.id


def test_change_without_keep_session_revokes_every_session_as_password_changed(env, user) -> None:
    a = env.login(EMAIL)
    b = env.login(EMAIL)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    assert env.auth.sessions.list(user.id) == []
    assert {env.auth.sessions.get(r.session_id).revoke_reason for r in (a, b)} == {"password_changed"}


def test_change_keeping_an_unknown_session_revokes_all_of_them(env, user) -> None:
    a = env.login(EMAIL)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD, keep_session_id="00000000-0000-4000-8000-000000000000")
    assert env.auth.sessions.get(a.session_id).revoke_reason == "password_changed"


def test_change_invalidates_every_outstanding_reset_token(env, user) -> None:
    token = request_token(env)
    env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, "yet another passphrase")


# -- change: who ----------------------------------------------------------------------------


def test_change_for_an_unknown_user_is_user_not_found_and_counts_nothing(env, user) -> None:
    with pytest.raises(UserNotFound) as info:
        env.auth.password.change("00000000-0000-4000-8000-000000000000", PASSWORD, NEW_PASSWORD)
    assert info.value.code == "user_not_found"
    fail_logins(env, env.auth.config.login_email_limit.count)


@pytest.mark.parametrize("bad", [None, "", "x" * 65, "tab\there"])
def test_change_with_a_malformed_user_id_is_a_validation_error(env, user, bad) -> None:
    with pytest.raises(ValidationError) as info:
        env.auth.password.change(bad, PASSWORD, NEW_PASSWORD)
    assert info.value.field == "user_id"


# -- audit rows ------------------------------------------------------------------------------


def test_reset_request_for_a_known_user_is_audited_with_user_and_context(env, user) -> None:
    env.clock.advance(minutes=1)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.password.request_reset("ADA@example.com")
    assert rows(env, AuditEventType.PASSWORD_RESET_REQUESTED) == [
        (AuditEventType.PASSWORD_RESET_REQUESTED, user.id, EMAIL, None, None, now, IP, UA)
    ]


def test_reset_request_for_an_unknown_email_is_audited_without_a_user(env) -> None:
    now = env.clock.now()
    env.auth.password.request_reset("Nobody@Example.com", context=RequestContext(ip_address=IP, user_agent=UA))
    assert rows(env, AuditEventType.PASSWORD_RESET_REQUESTED) == [
        (AuditEventType.PASSWORD_RESET_REQUESTED, None, "nobody@example.com", None, "unknown_email", now, IP, UA)
    ]
    assert len(env.outbox) == 0


def test_reset_request_whose_mail_fails_is_audited_as_delivery_failed(env, user) -> None:
    now = env.clock.now()
    env.outbox.fail_next()
    env.auth.password.request_reset(EMAIL, context=RequestContext(ip_address=IP, user_agent=UA))
    assert rows(env, AuditEventType.PASSWORD_RESET_REQUESTED) == [
        (AuditEventType.PASSWORD_RESET_REQUESTED, user.id, EMAIL, None, "delivery_failed", now, IP, UA)
    ]


def test_reset_request_whose_mail_fails_leaves_the_previous_token_unusable_too(env, user) -> None:
    old = request_token(env)
    env.outbox.fail_next()
    env.auth.password.request_reset(EMAIL)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(old, NEW_PASSWORD)


def test_rate_limited_reset_request_is_audited_with_the_canonical_email(env, user) -> None:
    limit = env.auth.config.reset_email_limit.count
    for _ in range(limit):
        env.auth.password.request_reset(EMAIL)
    env.clock.advance(seconds=5)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        assert env.auth.password.request_reset("ADA@EXAMPLE.COM") is None
    assert rows(env, AuditEventType.RATE_LIMITED) == [
        (AuditEventType.RATE_LIMITED, None, EMAIL, None, "password_reset", now, IP, UA)
    ]
    assert len(rows(env, AuditEventType.PASSWORD_RESET_REQUESTED)) == limit


def test_completed_reset_is_audited_once_with_user_and_context(env, user) -> None:
    token = request_token(env)
    env.clock.advance(minutes=7)
    now = env.clock.now()
    env.auth.password.reset(token, NEW_PASSWORD, context=RequestContext(ip_address=IP, user_agent=UA))
    assert rows(env, AuditEventType.PASSWORD_RESET_COMPLETED) == [
        (AuditEventType.PASSWORD_RESET_COMPLETED, user.id, EMAIL, None, None, now, IP, UA)
    ]
    assert rows(env, AuditEventType.PASSWORD_CHANGED) == []
    assert env.auth.user.get_by_id(user.id).updated_at == now


def test_change_is_audited_once_with_user_and_context(env, user) -> None:
    env.clock.advance(minutes=4)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    assert rows(env, AuditEventType.PASSWORD_CHANGED) == [
        (AuditEventType.PASSWORD_CHANGED, user.id, EMAIL, None, None, now, IP, UA)
    ]
    assert rows(env, AuditEventType.PASSWORD_RESET_COMPLETED) == []
    assert env.auth.user.get_by_id(user.id).updated_at == now


def test_explicit_context_wins_over_the_ambient_one_for_password_calls(env, user) -> None:
    explicit = RequestContext(ip_address="198.51.100.9", user_agent="explicit-agent")
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.password.request_reset(EMAIL, context=explicit)
        env.auth.password.request_reset("nobody@example.com", context=explicit)
        env.auth.password.reset(env.outbox.last_reset_token(EMAIL), NEW_PASSWORD, context=explicit)
        env.auth.password.change(user.id, NEW_PASSWORD, "a third fine passphrase", context=explicit)
    found = rows(
        env,
        AuditEventType.PASSWORD_RESET_REQUESTED,
        AuditEventType.PASSWORD_RESET_COMPLETED,
        AuditEventType.PASSWORD_CHANGED,
    )
    assert len(found) == 4
    assert {(r[6], r[7]) for r in found} == {("198.51.100.9", "explicit-agent")}


def test_background_reset_mail_is_audited_with_the_callers_context(make_env) -> None:
    env = make_env(reset_delivery_in_background=True)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    now = env.clock.now()
    with env.auth.context(ip_address=IP, user_agent=UA):
        env.auth.password.request_reset(EMAIL)
    env.auth.wait_for_background_work()
    assert rows(env, AuditEventType.PASSWORD_RESET_REQUESTED) == [
        (AuditEventType.PASSWORD_RESET_REQUESTED, user.id, EMAIL, None, None, now, IP, UA)
    ]


# -- the stored reset token ---------------------------------------------------------------


def test_reset_request_stores_a_complete_row_for_the_token(env, user) -> None:
    env.clock.advance(minutes=2)
    now = env.clock.now()
    token = request_token(env)
    row = env.store.reset_tokens.get(KeyRing(env.auth.config.refresh_secret).digest("reset", token))
    assert row is not None
    assert (row.user_id, row.created_at, row.expires_at, row.consumed_at) == (user.id, now, now + timedelta(hours=1), None)
    assert isinstance(row.id, str) and len(row.id) == 36
    another = request_token(env)
    newer = env.store.reset_tokens.get(KeyRing(env.auth.config.refresh_secret).digest("reset", another))
    assert newer is not None and newer.id != row.id


def test_reset_tokens_are_drawn_from_the_injected_randomness() -> None:
    def issue(seed: int) -> str:
        clock, outbox = FakeClock(), Outbox()
        auth = MindmeshAuth(
            store=MemoryStore(), mailer=outbox, config=test_config(), clock=clock, randomness=SeededRandomness(seed)
        )
        try:
            auth.auth.register(EMAIL, PASSWORD)
            auth.password.request_reset(EMAIL)
            token = outbox.last_reset_token(EMAIL)
            auth.password.reset(token, NEW_PASSWORD)
            return token
        finally:
            auth.close()

    assert issue(1) == issue(1)
    assert issue(1) != issue(2)


class _ConsumedByARacingRequest:
    """Reset-token storage where another request consumes every token between
    this request's read and its consume (the loser of a race for one token)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def consume(self, token_hash, now):
        self._inner.consume(token_hash, now)
        return None


def test_reset_that_loses_the_race_for_its_token_changes_nothing(env, user) -> None:
    session = env.login(EMAIL)
    token = request_token(env)
    env.store.reset_tokens = _ConsumedByARacingRequest(env.store.reset_tokens)
    with pytest.raises(InvalidResetToken):
        env.auth.password.reset(token, NEW_PASSWORD)
    assert rows(env, AuditEventType.PASSWORD_RESET_COMPLETED) == []
    assert env.outbox.for_address(EMAIL, "password_changed") == []
    assert env.auth.auth.get_user_from_token(session.access_token).id == user.id
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, NEW_PASSWORD)
    env.clock.advance(minutes=1)
    assert env.login(EMAIL, PASSWORD).user.id == user.id
