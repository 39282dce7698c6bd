"""``auth.account``: what a signed-in user does to their own account (deletion).

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

from .deps import Kernel
from .errors import DeliveryFailed, InvalidPassword, UserNotFound
from .login import admit_password_attempt, login_counter_names
from .models import AuditEventType, RequestContext, User
from .otp import failure_counter_names

__all__ = ["AccountService", "delete_account"]


def delete_account(k: Kernel, user: User, ctx: RequestContext, *, by: str) -> bool:
    """Delete ``user`` and everything that lets anyone act as them, in one unit; then
    mail the notice. ``by`` is the audit reason (``"self"`` or ``"admin"``).
    ``False`` when the user was already gone (a parallel deletion): nothing is audited."""
    now = k.now()

    def writes() -> bool:
        k.store.sessions.revoke_all_for_user(user.id, now, "account_deleted")
        k.store.reset_tokens.delete_for_user(user.id)
        for purpose in k.config.otp_purposes:
            pending = k.store.otps.get(user.email, purpose)
            if pending is not None:
                k.store.otps.discard(pending.id)
        if not k.store.users.delete(user.id):
            return False
        k.limiter.clear_many((*login_counter_names(user.email), *failure_counter_names(user.email, k.config.otp_purposes)))
        k.auditor.record(AuditEventType.ACCOUNT_DELETED, now, ctx, user_id=user.id, email=user.email, reason=by)
        return True

    if not k.unit(writes):
        return False
    try:
        k.mailer.send(k.templates.render("account_deleted", to=user.email))
    except DeliveryFailed:
        k.auditor.record(
            AuditEventType.ACCOUNT_DELETED, k.now(), ctx, user_id=user.id, email=user.email, reason="notice_delivery_failed"
        )
    return True


class AccountService:
    def __init__(self, k: Kernel) -> None:
        self._k = k

    def delete(self, user_id: str, password: str, *, context: RequestContext | None = None) -> None:
        """Delete the signed-in user's own account, given its password.

        The password is checked as a password change checks the current one:
        counted with failed logins before bcrypt (``RateLimited`` past the
        account's budget) and ``InvalidPassword`` when wrong, which changes
        nothing. Every session, reset token and pending code of the account
        ends with it; ``UserNotFound`` if it is already gone."""
        k = self._k
        ctx = k.context(context)
        uid = k.identifier(user_id, "user_id")
        k.policy.check_type(password)
        user = k.store.users.get(uid)
        if user is None:
            raise UserNotFound()
        admit_password_attempt(k, user.email, k.now())
        if not k.hasher.verify(password, user.password_hash):
            raise InvalidPassword("The password is wrong.")
        if not delete_account(k, user, ctx, by="self"):
            raise UserNotFound()
