"""``auth.account``: what a signed-in user does to their own account: change its
e-mail address (proven by a code sent to the new one) and delete it.

An e-mail change takes two calls. :meth:`AccountService.request_email_change`
checks the password (counted with failed logins) and mails a code for the
purpose ``email_change`` to the NEW address; nothing about the account changes
and nothing says whether the new address belongs to another account (the code
goes out either way). :meth:`AccountService.confirm_email_change` checks the
code (the same budgets and one-time redemption as every code) and, in one unit,
moves the account to the new address (now verified), deletes its reset tokens
and the pending codes of the old address (mailed there, they must not outlive
the change) and audits ``EMAIL_CHANGED``; then the old address gets a notice.
An address taken meanwhile is ``EmailAlreadyRegistered`` and changes nothing.
Sessions stay; access tokens issued before carry the old address in their
``email`` claim until they expire (the token check returns the stored user).

Deleting an account is one unit of work: every session is revoked first (the
security-relevant write, so a store that compensates instead of rolling back
never leaves a live session of a deleted account), then the reset tokens and
pending codes go, the user row goes, the account's failure counters are
cleared and ``ACCOUNT_DELETED`` is audited. The address is free to register
again at once. The audit log keeps the account's earlier rows (a security
record; ``audit.purge_before`` ends them with the retention period), and the
revoked sessions stay until ``purge_expired`` removes them at their expiry.
A notice goes to the address after the unit committed (never inside it).
"""

from __future__ import annotations

import attrs

from .deps import Kernel
from .errors import (
    DeliveryFailed,
    DuplicateKeyError,
    EmailAlreadyRegistered,
    InvalidEmail,
    InvalidOtp,
    InvalidPassword,
    UserNotFound,
    ValidationError,
)
from .login import admit_password_attempt, login_counter_names
from .models import AuditEventType, OtpChallenge, RequestContext, User
from .otp import OtpEngine, failure_counter_names

__all__ = ["EMAIL_CHANGE", "AccountService", "delete_account"]

EMAIL_CHANGE = "email_change"
"""The purpose of the codes that prove a new address (reserved: not one of ``otp_purposes``)."""


def _discard_codes(k: Kernel, email: str) -> None:
    """Discard the pending code of every configured purpose mailed to ``email`` (in the caller's unit)."""
    for purpose in k.config.otp_purposes:
        pending = k.store.otps.get(email, purpose)
        if pending is not None:
            k.store.otps.discard(pending.id)


def delete_account(k: Kernel, user: User, ctx: RequestContext, *, by: str) -> bool:
    """Delete ``user`` and everything that lets anyone act as them, in one unit; then
    mail the notice. ``by`` is the audit reason (``"self"`` or ``"admin"``).
    ``False`` when the user was already gone (a parallel deletion): nothing is audited."""
    now = k.now()

    def writes() -> bool:
        k.store.sessions.revoke_all_for_user(user.id, now, "account_deleted")
        k.store.reset_tokens.delete_for_user(user.id)
        _discard_codes(k, user.email)
        if not k.store.users.delete(user.id):
            return False
        k.limiter.clear_many((*login_counter_names(user.email), *failure_counter_names(user.email, k.config.otp_purposes)))
        k.auditor.record(AuditEventType.ACCOUNT_DELETED, now, ctx, user_id=user.id, email=user.email, reason=by)
        return True

    if not k.unit(writes):
        return False
    k.hooks.after("delete", user)
    try:
        k.mailer.send(k.templates.render("account_deleted", to=user.email))
    except DeliveryFailed:
        k.auditor.record(
            AuditEventType.ACCOUNT_DELETED, k.now(), ctx, user_id=user.id, email=user.email, reason="notice_delivery_failed"
        )
    return True


def _new_address(k: Kernel, value: object) -> str:
    """The canonical new address; ``InvalidEmail`` names the ``new_email`` argument."""
    try:
        return k.email(value)
    except InvalidEmail as exc:
        raise InvalidEmail(exc.message, field="new_email") from None


class AccountService:
    def __init__(self, k: Kernel, engine: OtpEngine) -> None:
        self._k = k
        self._engine = engine

    def _reauthenticate(self, user_id: str, password: str) -> User:
        """The user, once ``password`` is theirs: counted with failed logins before bcrypt
        (``RateLimited`` past the budget), ``InvalidPassword`` when wrong; a right one
        clears that budget, as a right password at login does."""
        k = self._k
        uid = k.identifier(user_id, "user_id")
        k.policy.check_type(password)
        user = k.store.users.get(uid)
        if user is None:
            raise UserNotFound()
        admit_password_attempt(k, user.email, k.now())
        if not k.hasher.verify(password, user.password_hash):
            raise InvalidPassword("The password is wrong.")
        k.limiter.clear_many(login_counter_names(user.email))
        return user

    def request_email_change(
        self, user_id: str, password: str, new_email: str, *, context: RequestContext | None = None
    ) -> None:
        """Mail a code for ``email_change`` to ``new_email`` once the password is right.

        The new address is checked first (``InvalidEmail``; the account's own address
        is a ``ValidationError``), then the password as :meth:`delete` checks it. The
        send budget is the new address's (``otp_send_limit``); a failed delivery
        raises ``DeliveryFailed``. Nothing of the account changes until
        :meth:`confirm_email_change`; a newer request replaces the code."""
        k = self._k
        ctx = k.context(context)
        address = _new_address(k, new_email)
        user = self._reauthenticate(user_id, password)
        if address == user.email:
            raise ValidationError("That is already the account's address.", field="new_email")
        self._engine.issue(user, EMAIL_CHANGE, ctx, to=address)

    def confirm_email_change(
        self, user_id: str, new_email: str, code: str, *, context: RequestContext | None = None
    ) -> User:
        """Move the account to ``new_email`` with the code mailed there; returns the user.

        A wrong, used or expired code, or one another account asked for, is
        ``InvalidOtp`` (counted in the new address's ``email_change`` budget, like
        every code); an address that another account took meanwhile is
        ``EmailAlreadyRegistered`` (nothing changed, the code stays unspent)."""
        k = self._k
        ctx = k.context(context)
        uid = k.identifier(user_id, "user_id")
        address = _new_address(k, new_email)
        entered = self._engine.parse_code(code)
        moved: list[str] = []

        def move(challenge: OtpChallenge, *_: object) -> User | None:
            # In the unit that redeems the code: all of it, or none (the code stays unspent).
            user = k.store.users.get(uid) if challenge.user_id == uid else None
            if user is None:
                return None
            now = k.now()
            if not k.store.users.change_email(uid, address, now):
                return None
            k.store.reset_tokens.delete_for_user(uid)  # mailed to the old address
            _discard_codes(k, user.email)
            k.auditor.record(AuditEventType.EMAIL_CHANGED, now, ctx, user_id=uid, email=address, reason=f"from:{user.email}")
            moved.append(user.email)
            return attrs.evolve(user, email=address, email_verified=True, updated_at=now)

        try:
            outcome = self._engine.check(address, entered, EMAIL_CHANGE, ctx, on_success=move)
        except DuplicateKeyError:
            k.auditor.record(
                AuditEventType.OTP_FAILED, k.now(), ctx, user_id=uid, email=address, reason=f"{EMAIL_CHANGE}:email_taken"
            )
            raise EmailAlreadyRegistered() from None
        if outcome is None or outcome[1] is None:
            raise InvalidOtp()
        changed = outcome[1]
        k.hooks.after("email_change", changed, moved[0])
        try:
            k.mailer.send(k.templates.render("email_changed", to=moved[0], new_email=address))
        except DeliveryFailed:
            k.auditor.record(
                AuditEventType.EMAIL_CHANGED, k.now(), ctx, user_id=uid, email=address, reason="notice_delivery_failed"
            )
        return changed

    def delete(self, user_id: str, password: str, *, context: RequestContext | None = None) -> None:
        """Delete the signed-in user's own account, given its password.

        The password is checked as a password change checks the current one:
        counted with failed logins before bcrypt (``RateLimited`` past the
        account's budget) and ``InvalidPassword`` when wrong, which changes
        nothing. Every session, reset token and pending code of the account
        ends with it; ``UserNotFound`` if it is already gone."""
        k = self._k
        ctx = k.context(context)
        user = self._reauthenticate(user_id, password)
        if not delete_account(k, user, ctx, by="self"):
            raise UserNotFound()
