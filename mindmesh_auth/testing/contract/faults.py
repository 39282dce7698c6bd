"""The contract's fault cases: every operation is all or nothing, whatever write fails.

For each facade operation that writes, the case first records how many
storage writes it makes (n), then, for every k in 1..n and for a write that
fails before it runs and one whose reply is lost after it ran, makes the k-th
write fail (:class:`~mindmesh_auth.testing.faults.FaultyStore`) and checks:

* the operation either raised a storage error or succeeded, nothing else;
* the safety invariants (SPEC "All or nothing"): a failed registration leaves
  the address free; a failed ``verify_otp`` leaves no live session; a failed
  ``refresh`` can be retried with the same token (no reuse alarm); a failed
  reset leaves the token usable or the reset done, and never a new password
  beside a live old session; a failed block leaves the user unblocked, or
  blocked with every session revoked; a failed account deletion leaves the
  account whole (its password still works) or gone with every session revoked
  and its address free; a failed e-mail change leaves the account at its old
  address with the code still good for a retry, or wholly at the new one;
* a failed operation left no success audit row, and retrying it (no fault)
  completes it with its whole effect.

Each iteration uses a fresh account, so one store serves every k.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from ...adapters.mail import Outbox
from ...core.config import Limit
from ...core.errors import InvalidCredentials, InvalidToken, StorageError
from ...core.models import AuditEventType, LoginResult
from ...core.ports import Store
from ...facade import MindmeshAuth
from ..clock import FakeClock
from ..config import test_config
from ..faults import FaultyStore
from ._support import PASSWORD, StoreFixtures

__all__ = ["FaultContract"]

NEW_PASSWORD = "a brand new passphrase"
_BIG = Limit(1_000_000, timedelta(hours=1))
FaultEnv = tuple[MindmeshAuth, Outbox, FaultyStore]


class FaultContract(StoreFixtures):
    """Every facade operation that writes is all or nothing on this store (see the
    module docstring). Part of :class:`~mindmesh_auth.testing.StoreContract`."""

    @pytest.fixture
    def faulty(self, store: Store) -> FaultyStore:
        return FaultyStore(store)

    @pytest.fixture
    def fault_env(self, faulty: FaultyStore, clock: FakeClock) -> Iterator[FaultEnv]:
        outbox = Outbox()
        config = test_config(
            otp_send_limit=_BIG,
            otp_account_failure_limit=_BIG,
            login_ip_limit=_BIG,
            login_email_limit=_BIG,
            register_ip_limit=_BIG,
            reset_email_limit=_BIG,
            reset_ip_limit=_BIG,
        )
        auth = MindmeshAuth(store=faulty, mailer=outbox, config=config, clock=clock)
        yield auth, outbox, faulty
        faulty.disarm()
        auth.wait_for_background_work()

    # -- the driver ----------------------------------------------------------
    _serial = itertools.count(1)

    def _email(self) -> str:
        return f"fault{next(self._serial)}@example.com"

    def _run_faults(
        self,
        faulty: FaultyStore,
        setup: Callable[[], Any],
        op: Callable[[Any], Any],
        check: Callable[[Any, bool], None],
    ) -> int:
        """Run ``op`` once to count its writes, then once per (k, when) on fresh state."""
        ctx = setup()
        with faulty.recording() as writes:
            op(ctx)
        check(ctx, False)
        assert writes, "the operation made no storage write"
        for when in ("before", "after"):
            for k in range(1, len(writes) + 1):
                ctx = setup()
                faulty.fail_at(k, when=when)  # type: ignore[arg-type]
                failed = False
                try:
                    op(ctx)
                except StorageError:
                    failed = True
                finally:
                    fired = faulty.fired
                    faulty.disarm()
                assert fired, f"write {k} ({when}) was never made: the operation wrote {writes}"
                check(ctx, failed)
        return len(writes)

    @staticmethod
    def _events(auth: MindmeshAuth, type: AuditEventType, *, user_id: str | None = None, email: str | None = None) -> int:
        return len(auth.audit.query(types=[type], user_id=user_id, email=email, limit=10_000))

    def _login(self, auth: MindmeshAuth, outbox: Outbox, email: str, password: str = PASSWORD) -> LoginResult:
        auth.auth.login(email, password)
        return auth.auth.verify_otp(email, outbox.last_code(email), "login")

    def _account(self, auth: MindmeshAuth, outbox: Outbox) -> tuple[str, LoginResult]:
        email = self._email()
        auth.auth.register(email, PASSWORD)
        return email, self._login(auth, outbox, email)

    @staticmethod
    def _live(auth: MindmeshAuth, login: LoginResult) -> bool:
        try:
            auth.auth.authenticate(login.access_token)
        except InvalidToken:
            return False
        return True

    def _password_works(self, auth: MindmeshAuth, email: str, password: str) -> bool:
        try:
            auth.auth.login(email, password)
        except InvalidCredentials:
            return False
        return True

    # -- registration ----------------------------------------------------------
    def test_fault_in_register_leaves_the_address_free(self, fault_env: FaultEnv) -> None:
        auth, _outbox, faulty = fault_env

        def check(email: str, failed: bool) -> None:
            if failed:
                assert auth.user.get_by_email(email) is None
                assert self._events(auth, AuditEventType.REGISTRATION_SUCCESS, email=email) == 0
                auth.auth.register(email, PASSWORD)  # the retry succeeds
            assert auth.user.get_by_email(email) is not None
            assert self._events(auth, AuditEventType.REGISTRATION_SUCCESS, email=email) == 1

        self._run_faults(faulty, self._email, lambda email: auth.auth.register(email, PASSWORD), check)

    # -- login: password step, then the code ------------------------------------
    def test_fault_in_login_then_a_retry_logs_in(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> str:
            email = self._email()
            auth.auth.register(email, PASSWORD)
            return email

        def check(email: str, failed: bool) -> None:
            if failed:
                auth.auth.login(email, PASSWORD)
            result = auth.auth.verify_otp(email, outbox.last_code(email), "login")
            assert self._live(auth, result)

        self._run_faults(faulty, setup, lambda email: auth.auth.login(email, PASSWORD), check)

    def test_fault_in_verify_otp_leaves_no_live_session(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> tuple[str, str, str]:
            email = self._email()
            user = auth.auth.register(email, PASSWORD)
            auth.auth.login(email, PASSWORD)
            return email, outbox.last_code(email), user.id

        def check(ctx: tuple[str, str, str], failed: bool) -> None:
            email, _code, user_id = ctx
            if failed:
                assert auth.sessions.list(user_id) == []
                assert self._events(auth, AuditEventType.LOGIN_SUCCESS, user_id=user_id) == 0
                result = self._login(auth, outbox, email)  # a new login completes
                assert self._live(auth, result)
            assert len(auth.sessions.list(user_id)) == 1
            assert self._events(auth, AuditEventType.LOGIN_SUCCESS, user_id=user_id) == 1

        self._run_faults(faulty, setup, lambda ctx: auth.auth.verify_otp(ctx[0], ctx[1], "login"), check)

    # -- refresh and logout ----------------------------------------------------------
    def test_fault_in_refresh_can_be_retried_with_the_same_token(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def check(ctx: tuple[str, LoginResult], failed: bool) -> None:
            _email, login = ctx
            if failed:
                assert self._events(auth, AuditEventType.SESSION_REFRESHED, user_id=login.user.id) == 0
                pair = auth.auth.refresh(login.refresh_token)  # no reuse alarm, no revocation
                assert self._live(auth, login)
                assert pair.session_id == login.session_id
            assert self._events(auth, AuditEventType.REFRESH_REUSE_DETECTED, user_id=login.user.id) == 0
            assert self._events(auth, AuditEventType.SESSION_REFRESHED, user_id=login.user.id) == 1
            assert len(auth.sessions.list(login.user.id)) == 1

        self._run_faults(
            faulty, lambda: self._account(auth, outbox), lambda ctx: auth.auth.refresh(ctx[1].refresh_token), check
        )

    def test_fault_in_logout_then_a_retry_ends_the_session(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def check(ctx: tuple[str, LoginResult], failed: bool) -> None:
            _email, login = ctx
            if failed:
                assert self._events(auth, AuditEventType.LOGOUT, user_id=login.user.id) == 0
                auth.auth.logout(login.session_id)
            assert not self._live(auth, login)

        self._run_faults(faulty, lambda: self._account(auth, outbox), lambda ctx: auth.auth.logout(ctx[1].session_id), check)

    # -- passwords -------------------------------------------------------------------
    def _no_new_password_beside_an_old_session(self, auth: MindmeshAuth, email: str, login: LoginResult) -> bool:
        """The invariant; returns whether the new password is in force."""
        changed = self._password_works(auth, email, NEW_PASSWORD)
        if changed:
            assert not self._live(auth, login), "the new password works while a session from before is alive"
        else:
            assert self._password_works(auth, email, PASSWORD)
        return changed

    def test_fault_in_password_reset_never_leaves_an_old_session_beside_the_new_password(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> tuple[str, LoginResult, str]:
            email, login = self._account(auth, outbox)
            auth.password.request_reset(email)
            return email, login, outbox.last_reset_token(email)

        def check(ctx: tuple[str, LoginResult, str], failed: bool) -> None:
            email, login, token = ctx
            if failed:
                if not self._no_new_password_beside_an_old_session(auth, email, login):
                    assert self._events(auth, AuditEventType.PASSWORD_RESET_COMPLETED, user_id=login.user.id) == 0
                    auth.password.reset(token, NEW_PASSWORD)  # the token still works
            assert not self._live(auth, login)
            assert self._password_works(auth, email, NEW_PASSWORD)
            assert self._events(auth, AuditEventType.PASSWORD_RESET_COMPLETED, user_id=login.user.id) >= 1

        self._run_faults(faulty, setup, lambda ctx: auth.password.reset(ctx[2], NEW_PASSWORD), check)

    def test_fault_in_password_change_never_leaves_an_old_session_beside_the_new_password(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> tuple[str, LoginResult, LoginResult]:
            email, kept = self._account(auth, outbox)
            other = self._login(auth, outbox, email)
            return email, kept, other

        def change(ctx: tuple[str, LoginResult, LoginResult]) -> None:
            _email, kept, _other = ctx
            auth.password.change(kept.user.id, PASSWORD, NEW_PASSWORD, keep_session_id=kept.session_id)

        def check(ctx: tuple[str, LoginResult, LoginResult], failed: bool) -> None:
            email, kept, other = ctx
            if failed:
                if not self._no_new_password_beside_an_old_session(auth, email, other):
                    assert self._events(auth, AuditEventType.PASSWORD_CHANGED, user_id=kept.user.id) == 0
                    change(ctx)
            assert not self._live(auth, other)
            assert self._password_works(auth, email, NEW_PASSWORD)

        self._run_faults(faulty, setup, change, check)

    def test_fault_in_reset_request_leaves_no_dead_mail(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> str:
            email = self._email()
            auth.auth.register(email, PASSWORD)
            return email

        def check(email: str, failed: bool) -> None:
            mailed = outbox.for_address(email, "password_reset")
            if mailed:  # every token that reached the user works
                auth.password.reset(outbox.last_reset_token(email), NEW_PASSWORD)
                assert self._password_works(auth, email, NEW_PASSWORD)
            else:
                auth.password.request_reset(email)
                assert outbox.for_address(email, "password_reset")

        self._run_faults(faulty, setup, lambda email: auth.password.request_reset(email), check)

    # -- purpose codes -------------------------------------------------------------
    def test_fault_in_otp_send_and_verify_then_a_retry_verifies(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> tuple[str, str]:
            email = self._email()
            user = auth.auth.register(email, PASSWORD)
            return email, user.id

        def send_check(ctx: tuple[str, str], failed: bool) -> None:
            email, user_id = ctx
            if failed:
                auth.otp.send(email, "email_verify")
            assert auth.otp.verify(email, outbox.last_code(email), "email_verify") is True
            assert auth.user.get_by_id(user_id).email_verified

        self._run_faults(faulty, setup, lambda ctx: auth.otp.send(ctx[0], "email_verify"), send_check)

        def verify_setup() -> tuple[str, str, str]:
            email, user_id = setup()
            auth.otp.send(email, "email_verify")
            return email, user_id, outbox.last_code(email)

        def verify_check(ctx: tuple[str, str, str], failed: bool) -> None:
            email, user_id, code = ctx
            if failed:
                assert not auth.user.get_by_id(user_id).email_verified
                assert self._events(auth, AuditEventType.EMAIL_VERIFIED, user_id=user_id) == 0
                assert auth.otp.verify(email, code, "email_verify") is True  # the code still works
            assert auth.user.get_by_id(user_id).email_verified
            assert self._events(auth, AuditEventType.EMAIL_VERIFIED, user_id=user_id) == 1

        self._run_faults(faulty, verify_setup, lambda ctx: auth.otp.verify(ctx[0], ctx[2], "email_verify"), verify_check)

    # -- administration --------------------------------------------------------------
    def test_fault_in_block_leaves_the_user_unblocked_or_blocked_without_sessions(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def check(ctx: tuple[str, LoginResult], failed: bool) -> None:
            _email, login = ctx
            user = auth.user.get_by_id(login.user.id)
            if user.blocked:
                assert not self._live(auth, login)
                assert auth.sessions.list(user.id) == []
            if failed:
                if not user.blocked:
                    assert self._events(auth, AuditEventType.ACCOUNT_BLOCKED, user_id=user.id) == 0
                auth.user.block(user.id)
            assert auth.user.get_by_id(login.user.id).blocked
            assert not self._live(auth, login)
            assert self._events(auth, AuditEventType.ACCOUNT_BLOCKED, user_id=login.user.id) >= 1

        self._run_faults(faulty, lambda: self._account(auth, outbox), lambda ctx: auth.user.block(ctx[1].user.id), check)

    def test_fault_in_unblock_and_mark_verified_then_a_retry_completes(self, fault_env: FaultEnv) -> None:
        auth, _outbox, faulty = fault_env

        def blocked_user() -> str:
            email = self._email()
            user = auth.auth.register(email, PASSWORD)
            auth.user.block(user.id)
            return user.id

        def unblock_check(user_id: str, failed: bool) -> None:
            if failed:
                if auth.user.get_by_id(user_id).blocked:
                    assert self._events(auth, AuditEventType.ACCOUNT_UNBLOCKED, user_id=user_id) == 0
                auth.user.unblock(user_id)
            assert not auth.user.get_by_id(user_id).blocked
            assert self._events(auth, AuditEventType.ACCOUNT_UNBLOCKED, user_id=user_id) >= 1

        self._run_faults(faulty, blocked_user, lambda uid: auth.user.unblock(uid), unblock_check)

        def user() -> str:
            return auth.auth.register(self._email(), PASSWORD).id

        def verified_check(user_id: str, failed: bool) -> None:
            if failed:
                if not auth.user.get_by_id(user_id).email_verified:
                    assert self._events(auth, AuditEventType.EMAIL_VERIFIED, user_id=user_id) == 0
                auth.user.mark_email_verified(user_id)
            assert auth.user.get_by_id(user_id).email_verified
            assert self._events(auth, AuditEventType.EMAIL_VERIFIED, user_id=user_id) >= 1

        self._run_faults(faulty, user, lambda uid: auth.user.mark_email_verified(uid), verified_check)

    def test_fault_in_session_revocation_then_a_retry_revokes(self, fault_env: FaultEnv) -> None:
        auth, outbox, faulty = fault_env

        def revoke_check(ctx: tuple[str, LoginResult], failed: bool) -> None:
            _email, login = ctx
            if failed:
                auth.sessions.revoke(login.session_id)
            assert not self._live(auth, login)

        self._run_faults(
            faulty, lambda: self._account(auth, outbox), lambda ctx: auth.sessions.revoke(ctx[1].session_id), revoke_check
        )

        def revoke_all_check(ctx: tuple[str, LoginResult], failed: bool) -> None:
            _email, login = ctx
            if failed:
                auth.sessions.revoke_all(login.user.id)
            assert not self._live(auth, login)
            assert auth.sessions.list(login.user.id) == []

        self._run_faults(
            faulty, lambda: self._account(auth, outbox), lambda ctx: auth.sessions.revoke_all(ctx[1].user.id), revoke_all_check
        )

    def test_fault_in_account_deletion_leaves_the_account_whole_or_gone_without_sessions(
        self, fault_env: FaultEnv
    ) -> None:
        auth, outbox, faulty = fault_env

        def check(ctx: tuple[str, LoginResult], failed: bool, delete: Callable[[str], None]) -> None:
            email, login = ctx
            uid = login.user.id
            if auth.user.get_by_email(email) is None:  # gone: wholly, sessions and audit row too
                assert not self._live(auth, login)
                assert self._events(auth, AuditEventType.ACCOUNT_DELETED, user_id=uid) >= 1
            elif failed:
                assert self._events(auth, AuditEventType.ACCOUNT_DELETED, user_id=uid) == 0
                assert self._password_works(auth, email, PASSWORD)
                delete(uid)
            assert auth.user.get_by_email(email) is None
            assert not self._live(auth, login)
            assert auth.sessions.list(uid) == []
            assert self._events(auth, AuditEventType.ACCOUNT_DELETED, user_id=uid) >= 1
            assert auth.auth.register(email, PASSWORD).id != uid  # the address is free again

        def by_owner(uid: str) -> None:
            auth.account.delete(uid, PASSWORD)

        def by_admin(uid: str) -> None:
            auth.user.delete(uid)

        for delete in (by_owner, by_admin):
            self._run_faults(
                faulty,
                lambda: self._account(auth, outbox),
                lambda ctx, delete=delete: delete(ctx[1].user.id),  # type: ignore[misc]
                lambda ctx, failed, delete=delete: check(ctx, failed, delete),  # type: ignore[misc]
            )

    def test_fault_in_email_change_leaves_the_old_address_and_a_good_code_or_the_whole_change(
        self, fault_env: FaultEnv
    ) -> None:
        auth, outbox, faulty = fault_env

        def setup() -> tuple[str, str, LoginResult, str]:
            email, login = self._account(auth, outbox)
            new = "new." + email
            auth.account.request_email_change(login.user.id, PASSWORD, new)
            return email, new, login, outbox.last_code(new)

        def confirm(ctx: tuple[str, str, LoginResult, str]) -> None:
            _email, new, login, code = ctx
            auth.account.confirm_email_change(login.user.id, new, code)

        def check(ctx: tuple[str, str, LoginResult, str], failed: bool) -> None:
            email, new, login, _code = ctx
            uid = login.user.id
            if failed and auth.user.get_by_id(uid).email == email:
                assert self._events(auth, AuditEventType.EMAIL_CHANGED, user_id=uid) == 0
                assert auth.user.get_by_email(new) is None
                confirm(ctx)  # the same code finishes the change
            user = auth.user.get_by_id(uid)
            assert (user.email, user.email_verified) == (new, True)
            assert auth.user.get_by_email(email) is None
            assert self._events(auth, AuditEventType.EMAIL_CHANGED, user_id=uid) >= 1
            assert self._live(auth, login)  # sessions stay
            assert self._password_works(auth, new, PASSWORD)

        self._run_faults(faulty, setup, confirm, check)
