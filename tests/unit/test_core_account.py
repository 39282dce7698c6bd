"""Account deletion: by the owner with the password (``auth.account.delete``) and by an
administrator (``auth.user.delete``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    InvalidOtp,
    InvalidPassword,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidToken,
    RateLimited,
    UserNotFound,
)
from mindmesh_auth.aio import AsyncMindmeshAuth

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def events(env, kind: AuditEventType):
    return env.auth.audit.query(types=[kind], limit=10_000)


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def test_the_owner_deletes_the_account_and_everything_that_acts_for_it(env, user) -> None:
    first, second = env.login(EMAIL), env.login(EMAIL)
    env.auth.password.request_reset(EMAIL)
    reset_token = env.outbox.last_reset_token(EMAIL)
    challenge = env.auth.auth.login(EMAIL, PASSWORD)  # a login code left pending
    code = env.outbox.last_code(EMAIL)

    env.auth.account.delete(user.id, PASSWORD)

    assert env.auth.user.get_by_email(EMAIL) is None
    with pytest.raises(UserNotFound):
        env.auth.user.get_by_id(user.id)
    for session in (first, second):
        with pytest.raises(InvalidToken):
            env.auth.auth.get_user_from_token(session.access_token)
        with pytest.raises(InvalidRefreshToken):
            env.auth.auth.refresh(session.refresh_token)
    assert [s.revoke_reason for s in env.auth.sessions.list(user.id, include_inactive=True)] == ["account_deleted"] * 2
    assert env.store.reset_tokens.get(env.auth._kernel.keys.digest("reset", reset_token)) is None
    assert env.store.otps.get(EMAIL, "login") is None
    with pytest.raises(InvalidOtp):
        env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle)
    [deleted] = events(env, AuditEventType.ACCOUNT_DELETED)
    assert (deleted.user_id, deleted.email, deleted.reason) == (user.id, EMAIL, "self")
    notice = env.outbox.last(EMAIL, "account_deleted")
    assert PASSWORD not in notice.text and "deleted" in notice.subject
    again = env.auth.auth.register(EMAIL, PASSWORD)  # the address is free at once
    assert again.id != user.id
    env.clock.advance(minutes=11)  # the address's send budget (3 codes per 10 minutes) is not the account's
    assert env.login(EMAIL).user.id == again.id


def test_a_wrong_password_changes_nothing_and_counts_as_a_failed_login(env, user) -> None:
    session = env.login(EMAIL)
    for _ in range(10):
        with pytest.raises(InvalidPassword) as info:
            env.auth.account.delete(user.id, "not the password at all")
    assert info.value.field == "password" and "not the password" not in info.value.message
    assert env.auth.auth.get_user_from_token(session.access_token).id == user.id
    assert events(env, AuditEventType.ACCOUNT_DELETED) == []
    assert env.outbox.for_address(EMAIL, "account_deleted") == []
    with pytest.raises(RateLimited):  # the account's password budget is spent, even for the right one
        env.auth.account.delete(user.id, PASSWORD)
    assert env.auth.user.get_by_id(user.id).id == user.id
    env.clock.advance(minutes=15)
    env.auth.account.delete(user.id, PASSWORD)
    assert env.auth.user.get_by_email(EMAIL) is None


def test_deletion_clears_the_failure_counters_the_next_owner_would_inherit(make_env) -> None:
    env = make_env()
    user = env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(EMAIL, "not the password at all")
    env.auth.user.delete(user.id)
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(9):  # a fresh budget: nine more failures are let through without a delay
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(EMAIL, "not the password at all")


def test_an_administrator_deletes_without_a_password_and_unknown_ids_are_not_found(env, user) -> None:
    env.auth.user.block(user.id)
    env.auth.user.delete(user.id)
    [deleted] = events(env, AuditEventType.ACCOUNT_DELETED)
    assert (deleted.user_id, deleted.reason) == (user.id, "admin")
    with pytest.raises(UserNotFound):
        env.auth.user.delete(user.id)
    with pytest.raises(UserNotFound):
        env.auth.account.delete(user.id, PASSWORD)
    assert len(events(env, AuditEventType.ACCOUNT_DELETED)) == 1


def test_a_failed_notice_leaves_the_account_deleted_and_says_so_in_the_audit(env, user) -> None:
    env.outbox.fail_next()
    env.auth.account.delete(user.id, PASSWORD)
    assert env.auth.user.get_by_email(EMAIL) is None
    reasons = sorted(e.reason or "" for e in events(env, AuditEventType.ACCOUNT_DELETED))
    assert reasons == ["notice_delivery_failed", "self"]


def test_parallel_deletions_delete_once(env, user) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def delete() -> None:
        barrier.wait()
        try:
            env.auth.user.delete(user.id)
            outcomes.append("deleted")
        except UserNotFound:
            outcomes.append("not_found")

    threads = [threading.Thread(target=delete) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["deleted"] + ["not_found"] * 7
    assert len(events(env, AuditEventType.ACCOUNT_DELETED)) == 1
    assert len(env.outbox.for_address(EMAIL, "account_deleted")) == 1


def test_the_async_facade_deletes_on_the_hashing_pool(env, user) -> None:
    aio = AsyncMindmeshAuth(env.auth)

    async def run() -> None:
        with pytest.raises(InvalidPassword):
            await aio.account.delete(user.id, "not the password at all")
        await aio.account.delete(user.id, PASSWORD)
        with pytest.raises(UserNotFound):
            await aio.user.delete(user.id)
        await aio.aclose()

    asyncio.run(run())
    assert env.auth.user.get_by_email(EMAIL) is None


# -- e-mail change ---------------------------------------------------------------------
NEW = "ada.new@example.com"


def test_an_email_change_moves_the_account_once_the_new_address_is_proven(env, user) -> None:
    session = env.login(EMAIL)
    env.auth.password.request_reset(EMAIL)
    reset_token = env.outbox.last_reset_token(EMAIL)
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    mail = env.outbox.last(NEW, "otp")
    assert "e-mail change" in mail.subject
    assert env.auth.user.get_by_id(user.id).email == EMAIL  # nothing changed yet
    env.clock.advance(minutes=1)

    changed = env.auth.account.confirm_email_change(user.id, NEW, env.outbox.last_code(NEW))

    assert (changed.id, changed.email, changed.email_verified) == (user.id, NEW, True)
    stored = env.auth.user.get_by_id(user.id)
    assert (stored.email, stored.email_verified, stored.updated_at) == (NEW, True, env.clock.now())
    assert env.auth.user.get_by_email(EMAIL) is None
    assert env.auth.auth.get_user_from_token(session.access_token).email == NEW  # the session stays
    with pytest.raises(InvalidResetToken):  # the reset token mailed to the old address is gone
        env.auth.password.reset(reset_token, "a brand new passphrase")
    [row] = events(env, AuditEventType.EMAIL_CHANGED)
    assert (row.user_id, row.email, row.reason) == (user.id, NEW, f"from:{EMAIL}")
    notice = env.outbox.last(EMAIL, "email_changed")
    assert NEW in notice.text
    env.clock.advance(minutes=11)
    assert env.login(NEW).user.id == user.id
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)
    env.auth.auth.register(EMAIL, PASSWORD)  # the old address is free


def test_a_request_checks_the_address_then_the_password_and_changes_nothing(env, user) -> None:
    from mindmesh_auth import InvalidEmail, ValidationError

    with pytest.raises(InvalidEmail):
        env.auth.account.request_email_change(user.id, PASSWORD, "not an address")
    with pytest.raises(ValidationError) as same:
        env.auth.account.request_email_change(user.id, PASSWORD, EMAIL.upper())
    assert same.value.field == "new_email"
    with pytest.raises(InvalidPassword):
        env.auth.account.request_email_change(user.id, "not the password at all", NEW)
    assert env.outbox.for_address(NEW) == []
    assert env.auth.user.get_by_id(user.id).email == EMAIL


def test_a_wrong_code_or_another_accounts_code_changes_nothing(env, user) -> None:
    other = env.auth.auth.register("bob@example.com", PASSWORD)
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    code = env.outbox.last_code(NEW)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(InvalidOtp):
        env.auth.account.confirm_email_change(user.id, NEW, wrong)
    with pytest.raises(InvalidOtp):  # bob cannot take the address with ada's code
        env.auth.account.confirm_email_change(other.id, NEW, code)
    assert env.auth.user.get_by_id(other.id).email == "bob@example.com"
    assert env.auth.user.get_by_id(user.id).email == EMAIL
    assert events(env, AuditEventType.EMAIL_CHANGED) == []
    reasons = {e.reason for e in events(env, AuditEventType.OTP_FAILED)}
    assert "email_change:wrong_code" in reasons


def test_an_address_taken_meanwhile_is_refused_and_the_code_stays_unspent(env, user) -> None:
    from mindmesh_auth import EmailAlreadyRegistered

    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    code = env.outbox.last_code(NEW)
    squatter = env.auth.auth.register(NEW, PASSWORD)
    with pytest.raises(EmailAlreadyRegistered):
        env.auth.account.confirm_email_change(user.id, NEW, code)
    assert env.auth.user.get_by_id(user.id).email == EMAIL
    assert events(env, AuditEventType.EMAIL_CHANGED) == []
    env.auth.user.delete(squatter.id)  # the address is free again: the same code finishes the change
    assert env.auth.account.confirm_email_change(user.id, NEW, code).email == NEW


def test_email_change_codes_are_not_a_purpose_of_the_code_endpoints(env, user) -> None:
    from mindmesh_auth import ConfigurationError, ValidationError
    from mindmesh_auth.testing import test_config

    with pytest.raises(ValidationError):
        env.auth.otp.send(EMAIL, "email_change")
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    with pytest.raises(ValidationError):
        env.auth.otp.verify(NEW, env.outbox.last_code(NEW), "email_change")
    with pytest.raises(ConfigurationError):
        test_config(otp_purposes=("login", "email_change"))


def test_email_change_sends_are_budgeted_per_new_address(env, user) -> None:
    for _ in range(3):
        env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    with pytest.raises(RateLimited):
        env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    assert len(env.outbox.for_address(NEW, "otp")) == 3


def test_errors_name_the_argument_they_are_about(env, user) -> None:
    from mindmesh_auth import InvalidEmail

    with pytest.raises(InvalidEmail) as bad_address:
        env.auth.account.request_email_change(user.id, PASSWORD, "not an address")
    assert bad_address.value.field == "new_email"
    with pytest.raises(InvalidEmail) as bad_confirm:
        env.auth.account.confirm_email_change(user.id, "not an address", "123456")
    assert bad_confirm.value.field == "new_email"
    with pytest.raises(InvalidPassword) as short:
        env.auth.password.change(user.id, PASSWORD, "short")
    assert short.value.field == "new_password"
    with pytest.raises(InvalidPassword) as long_current:
        env.auth.password.change(user.id, "x" * 10_000, "a brand new passphrase")
    assert long_current.value.field == "current_password"


# -- what the audit rows and errors carry (mutation testing found these unchecked) ----------
def test_the_request_context_reaches_every_row_of_the_lifecycle_calls(env, user) -> None:
    from mindmesh_auth import RequestContext

    ctx = RequestContext(ip_address="203.0.113.7", user_agent="lifecycle-test")
    env.auth.account.request_email_change(user.id, PASSWORD, NEW, context=ctx)
    env.auth.account.confirm_email_change(user.id, NEW, env.outbox.last_code(NEW), context=ctx)
    env.auth.account.delete(user.id, PASSWORD, context=ctx)
    rows = env.auth.audit.query(user_id=user.id, limit=100)
    kinds = {AuditEventType.OTP_SENT, AuditEventType.EMAIL_CHANGED, AuditEventType.ACCOUNT_DELETED}
    mine = [r for r in rows if r.type in kinds]
    assert {r.type for r in mine} == kinds
    assert all((r.ip_address, r.user_agent) == ("203.0.113.7", "lifecycle-test") for r in mine), mine


def test_failed_notices_are_audited_on_the_account(env, user) -> None:
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    env.outbox.fail_next()
    env.auth.account.confirm_email_change(user.id, NEW, env.outbox.last_code(NEW))
    failed = [e for e in events(env, AuditEventType.EMAIL_CHANGED) if e.reason == "notice_delivery_failed"]
    assert [(e.user_id, e.email) for e in failed] == [(user.id, NEW)]
    env.outbox.fail_next()
    env.auth.account.delete(user.id, PASSWORD)
    failed = [e for e in events(env, AuditEventType.ACCOUNT_DELETED) if e.reason == "notice_delivery_failed"]
    assert [(e.user_id, e.email) for e in failed] == [(user.id, NEW)]


def test_a_taken_address_is_audited_as_a_failed_code_of_the_account(env, user) -> None:
    from mindmesh_auth import EmailAlreadyRegistered

    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    code = env.outbox.last_code(NEW)
    env.auth.auth.register(NEW, PASSWORD)
    with pytest.raises(EmailAlreadyRegistered):
        env.auth.account.confirm_email_change(user.id, NEW, code)
    taken = [e for e in events(env, AuditEventType.OTP_FAILED) if e.reason == "email_change:email_taken"]
    assert [(e.user_id, e.email) for e in taken] == [(user.id, NEW)]


def test_an_email_change_ends_the_old_addresses_pending_codes_and_returns_the_stored_user(env, user) -> None:
    env.auth.auth.login(EMAIL, PASSWORD)  # a login code pending for the old address
    env.auth.otp.send(EMAIL, "email_verify")
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)
    env.clock.advance(seconds=30)
    changed = env.auth.account.confirm_email_change(user.id, NEW, env.outbox.last_code(NEW))
    assert env.store.otps.get(EMAIL, "login") is None
    assert env.store.otps.get(EMAIL, "email_verify") is None
    assert changed == env.auth.user.get_by_id(user.id)  # every field, updated_at included


def test_error_messages_and_fields_of_the_lifecycle_calls(env, user) -> None:
    from mindmesh_auth import InvalidEmail, ValidationError

    with pytest.raises(ValidationError) as same:
        env.auth.account.request_email_change(user.id, PASSWORD, EMAIL)
    assert same.value.message == "That is already the account's address."
    with pytest.raises(InvalidEmail) as plain:
        env.auth.auth.register("not an address", PASSWORD)
    with pytest.raises(InvalidEmail) as renamed:
        env.auth.account.request_email_change(user.id, PASSWORD, "not an address")
    assert renamed.value.message == plain.value.message  # the reason is kept, only the field is renamed
    for call in (
        lambda: env.auth.account.delete("", PASSWORD),
        lambda: env.auth.account.request_email_change("", PASSWORD, NEW),
        lambda: env.auth.account.confirm_email_change("", NEW, "123456"),
    ):
        with pytest.raises(ValidationError) as bad_id:
            call()
        assert bad_id.value.field == "user_id"


def test_deletion_clears_the_code_failure_counters_of_every_purpose(make_env) -> None:
    from datetime import timedelta

    from mindmesh_auth import Limit

    env = make_env(otp_account_failure_limit=Limit(3, timedelta(hours=1)))
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send(EMAIL, "email_verify")
    for _ in range(3):
        assert env.auth.otp.verify(EMAIL, "000000", "email_verify") is False
    with pytest.raises(RateLimited):
        env.auth.otp.verify(EMAIL, "000000", "email_verify")
    env.auth.user.delete(user.id)
    env.auth.auth.register(EMAIL, PASSWORD)
    assert env.auth.otp.verify(EMAIL, "000000", "email_verify") is False  # counted afresh, not refused


def test_the_password_check_uses_the_accounts_login_budget(env, user) -> None:
    from mindmesh_auth import InvalidEmail

    for _ in range(9):  # wrong passwords here count where wrong logins count
        with pytest.raises(InvalidPassword) as wrong:
            env.auth.account.request_email_change(user.id, "not the password at all", NEW)
    assert wrong.value.message == "The password is wrong."
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, "not the password at all")  # the tenth failure of the account
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)
    env.clock.advance(minutes=15)
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(EMAIL, "not the password at all")
    env.auth.account.request_email_change(user.id, PASSWORD, NEW)  # a right password clears the budget
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login(EMAIL, "not the password at all")
    with pytest.raises(InvalidEmail) as not_text:
        env.auth.account.request_email_change(user.id, PASSWORD, 12345)  # type: ignore[arg-type]
    assert (not_text.value.message, not_text.value.field) == ("The email address must be a string.", "new_email")


def test_a_deletion_that_finds_the_account_gone_changes_nothing_more(env, user, monkeypatch) -> None:
    """The loser of two deletions (both read the user, one deletes first), made deterministic."""
    from mindmesh_auth import RequestContext
    from mindmesh_auth.core.account import delete_account

    stale = env.auth.user.get_by_id(user.id)
    env.auth.user.delete(user.id)
    rows = len(events(env, AuditEventType.ACCOUNT_DELETED))
    notices = len(env.outbox.for_address(EMAIL, "account_deleted"))
    assert delete_account(env.auth._kernel, stale, RequestContext(), by="admin") is False
    monkeypatch.setattr(env.store.users, "get", lambda _uid: stale)  # the owner's call read it before it went
    with pytest.raises(UserNotFound):
        env.auth.account.delete(user.id, PASSWORD)
    with pytest.raises(UserNotFound):
        env.auth.user.delete(user.id)
    assert len(events(env, AuditEventType.ACCOUNT_DELETED)) == rows
    assert len(env.outbox.for_address(EMAIL, "account_deleted")) == notices


def test_an_administrators_deletion_is_audited_with_the_request_context(env, user) -> None:
    from mindmesh_auth import RequestContext

    env.auth.user.delete(user.id, context=RequestContext(ip_address="198.51.100.4", user_agent="admin-console"))
    [row] = events(env, AuditEventType.ACCOUNT_DELETED)
    assert (row.ip_address, row.user_agent, row.reason) == ("198.51.100.4", "admin-console", "admin")


def test_a_reset_names_the_new_password_in_its_errors(env, user) -> None:
    env.auth.password.request_reset(EMAIL)
    token = env.outbox.last_reset_token(EMAIL)
    for bad in ("short", "x" * 10_000, 42):
        with pytest.raises(InvalidPassword) as info:
            env.auth.password.reset(token, bad)  # type: ignore[arg-type]
        assert info.value.field == "new_password"
    env.auth.password.reset(token, "a brand new passphrase")  # refused before the token was spent
