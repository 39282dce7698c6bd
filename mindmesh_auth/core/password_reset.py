"""``auth.password``: reset by e-mailed token, and change with the current password."""

from __future__ import annotations

import re
from collections.abc import Callable

from .crypto import new_id, random_token
from .deps import Kernel
from .errors import DeliveryFailed, DeliveryUncertain, InvalidPassword, InvalidResetToken, RateLimited, UserNotFound
from .login import admit_password_attempt, login_counter_names
from .models import AuditEventType, RequestContext, ResetToken, User
from .otp import failure_counter_names

__all__ = ["PasswordService"]

RESET_TOKEN_BYTES = 32  # 256 bits
_RESET = re.compile(r"[A-Za-z0-9_-]{43}")

Scheduler = Callable[[Callable[[], None]], None]


class PasswordService:
    def __init__(self, k: Kernel, schedule: Scheduler) -> None:
        self._k = k
        self._schedule = schedule

    def request_reset(self, email: str, *, context: RequestContext | None = None) -> None:
        """Mail a reset token. Always returns normally for a well-formed email:
        unknown, blocked or rate-limited addresses and mail failures look the same.
        """
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        now = k.now()
        try:
            k.consume_ip("reset-ip", k.config.reset_ip_limit, ctx, now)
            k.limiter.consume(f"reset:{canonical}", k.config.reset_email_limit, now)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=canonical, reason="password_reset")
            return
        # The lookup, token creation and mail run off the caller's path when configured,
        # so known, unknown and blocked emails return after the same work (issue 11).
        if k.config.reset_delivery_in_background:
            self._schedule(lambda: self._request_for(canonical, ctx))
        else:
            self._request_for(canonical, ctx)

    def _request_for(self, email: str, ctx: RequestContext) -> None:
        """A blocked account is treated as an unknown address: no token, no mail."""
        k = self._k
        user = k.store.users.get_by_email(email)
        if user is None or user.blocked:
            reason = "unknown_email" if user is None else "blocked"
            k.auditor.record(
                AuditEventType.PASSWORD_RESET_REQUESTED, k.now(), ctx, user_id=None, email=email, reason=reason
            )
            return
        self._issue(user, ctx)

    def _issue(self, user: User, ctx: RequestContext) -> None:
        k = self._k
        now = k.now()
        token = random_token(k.rng, RESET_TOKEN_BYTES)
        record = ResetToken(
            id=new_id(k.rng),
            user_id=user.id,
            token_hash=k.keys.digest("reset", token),
            created_at=now,
            expires_at=now + k.config.reset_token_ttl,
        )
        k.store.reset_tokens.put(record)
        if k.config.reset_url:
            instructions = "Open this link to choose a new password: " + k.config.reset_url.replace("{token}", token)
        else:
            instructions = "Your password reset token is: " + token
        message = k.templates.render(
            "password_reset",
            to=user.email,
            token=token,
            reset_instructions=instructions,
            minutes=str(int(k.config.reset_token_ttl.total_seconds() // 60)),
        )
        try:
            k.mailer.send(message)
        except DeliveryUncertain:
            # The server may have taken the mail: the token stays valid (a copy that arrives must work).
            k.auditor.record(
                AuditEventType.PASSWORD_RESET_REQUESTED, now, ctx, user_id=user.id, email=user.email,
                reason="delivery_uncertain",
            )
            return
        except DeliveryFailed:
            k.store.reset_tokens.delete_for_user(user.id)
            k.auditor.record(
                AuditEventType.PASSWORD_RESET_REQUESTED, now, ctx, user_id=user.id, email=user.email, reason="delivery_failed"
            )
            return
        k.auditor.record(AuditEventType.PASSWORD_RESET_REQUESTED, now, ctx, user_id=user.id, email=user.email)

    def reset(self, token: str, new_password: str, *, context: RequestContext | None = None) -> None:
        """Set a new password with a reset token (one-time). Revokes every session
        and every other reset token; does not log in and does not unblock."""
        k = self._k
        ctx = k.context(context)
        if not isinstance(token, str) or not _RESET.fullmatch(token):
            raise InvalidResetToken()
        k.policy.check_type(new_password, field="new_password")
        now = k.now()
        # The hash under the current refresh secret; on a miss, under a previous one (a rotation).
        token_hash, pending = k.keys.find("reset", now, token, k.store.reset_tokens.get)
        if pending is None or pending.consumed_at is not None or now >= pending.expires_at:
            raise InvalidResetToken()
        if k.from_the_future(pending.created_at, now):  # the clock stepped back: never a longer life
            raise InvalidResetToken()
        user = k.store.users.get(pending.user_id)
        if user is None:
            raise InvalidResetToken()
        k.policy.check_new(new_password, email=user.email, field="new_password")
        new_hash = k.hasher.hash(new_password)
        found: User = user

        def apply() -> bool:
            # Spending the token and replacing the password are one unit: a failure
            # leaves the token usable for a retry, never a half-done reset.
            if k.store.reset_tokens.consume(token_hash, now) is None:
                return False
            self._replace_password_writes(found, new_hash, ctx, AuditEventType.PASSWORD_RESET_COMPLETED, keep_session=None)
            # A completed reset clears every failure counter of the account: the
            # password and code windows, delays and consecutive-failure caps.
            k.limiter.clear_many(
                (*login_counter_names(found.email), *failure_counter_names(found.email, k.config.otp_purposes))
            )
            return True

        if not k.unit(apply):
            raise InvalidResetToken()
        self._after_password_replaced(found, ctx, AuditEventType.PASSWORD_RESET_COMPLETED)

    def change(
        self,
        user_id: str,
        current_password: str,
        new_password: str,
        *,
        keep_session_id: str | None = None,
        context: RequestContext | None = None,
    ) -> None:
        """Change a password given the current one; other sessions are revoked.

        ``InvalidPassword`` names the argument it is about: ``current_password``
        (not a string, too long, or wrong: counted with failed logins) or
        ``new_password`` (the policy)."""
        k = self._k
        ctx = k.context(context)
        uid = k.identifier(user_id, "user_id")
        k.policy.check_type(current_password, field="current_password")
        user = k.store.users.get(uid)
        if user is None:
            raise UserNotFound()
        # Wrong current passwords count with failed logins (a guessing oracle otherwise).
        admit_password_attempt(k, user.email, k.now())
        if not k.hasher.verify(current_password, user.password_hash):
            raise InvalidPassword("The current password is wrong.", field="current_password")
        k.limiter.clear_many(login_counter_names(user.email))
        k.policy.check_new(new_password, email=user.email, field="new_password")
        new_hash = k.hasher.hash(new_password)
        found: User = user
        k.unit(
            lambda: self._replace_password_writes(
                found, new_hash, ctx, AuditEventType.PASSWORD_CHANGED, keep_session=keep_session_id
            )
        )
        self._after_password_replaced(found, ctx, AuditEventType.PASSWORD_CHANGED)

    def _replace_password_writes(
        self, user: User, new_hash: str, ctx: RequestContext, event: AuditEventType, keep_session: str | None
    ) -> None:
        """The writes of a password change, for one unit of work. Sessions are
        revoked BEFORE the hash is replaced: on a store that compensates instead
        of rolling back, a partial state is old password + revoked sessions,
        never the new password beside a live old session."""
        k = self._k
        now = k.now()
        if keep_session is None:
            k.store.sessions.revoke_all_for_user(user.id, now, "password_changed")
        else:
            for session in k.store.sessions.list_for_user(user.id, now=now):
                if session.id != keep_session:
                    k.store.sessions.revoke(session.id, now, "password_changed")
        k.store.users.set_password_hash(user.id, new_hash, now)
        k.store.reset_tokens.delete_for_user(user.id)
        # A login code asked for with the old password never finishes a login after the change.
        pending = k.store.otps.get(user.email, "login")
        if pending is not None:
            k.store.otps.discard(pending.id)
        k.limiter.clear(f"login-fail:{user.email}")
        k.auditor.record(event, now, ctx, user_id=user.id, email=user.email)

    def _after_password_replaced(self, user: User, ctx: RequestContext, event: AuditEventType) -> None:
        """After the unit committed: the app's hook, then the notice (never inside a unit)."""
        k = self._k
        k.hooks.after("password_change", user)
        now = k.now()
        try:
            k.mailer.send(k.templates.render("password_changed", to=user.email))
        except DeliveryFailed:
            k.auditor.record(event, now, ctx, user_id=user.id, email=user.email, reason="notice_delivery_failed")
