"""``auth.user``, ``auth.sessions`` and ``auth.audit``: administration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .account import delete_account
from .deps import Kernel
from .errors import SessionNotFound, UserNotFound, ValidationError
from .login import add_new_user, check_new_user
from .models import AuditEvent, AuditEventType, RequestContext, Session, User

__all__ = ["MAX_LIST_LIMIT", "MAX_LIST_OFFSET", "AuditService", "SessionService", "UserService"]

MAX_LIST_LIMIT = 1000
# The largest offset every backend takes (SQLite and MongoDB reject values past
# 64 bits with untyped driver errors; 32-bit signed is safe everywhere).
MAX_LIST_OFFSET = 2**31 - 1


class UserService:
    def __init__(self, k: Kernel) -> None:
        self._k = k

    def create(
        self,
        email: str,
        password: str,
        *,
        email_verified: bool = False,
        context: RequestContext | None = None,
        **profile: Any,
    ) -> User:
        """Create an account as an administrator; extra keyword arguments are the app's profile fields.

        The checks of ``auth.auth.register`` (address, password policy, profile
        fields) without the public sign-up's guards: no per-IP registration
        count, and ``before_register`` is not called (it screens self-service
        sign-ups); ``after_register`` runs once the account is stored. Audited
        ``REGISTRATION_SUCCESS`` with reason ``admin``; ``email_verified=True``
        stores the address as verified. A taken address: ``EmailAlreadyRegistered``."""
        k = self._k
        ctx = k.context(context)
        if not isinstance(email_verified, bool):
            raise ValidationError("email_verified must be a boolean.", field="email_verified")
        canonical, extras = check_new_user(k, email, password, profile)
        return add_new_user(k, canonical, password, extras, ctx, k.now(), email_verified=email_verified, reason="admin")

    def get_by_id(self, user_id: str) -> User:
        user = self._k.store.users.get(self._k.identifier(user_id, "user_id"))
        if user is None:
            raise UserNotFound()
        return user

    def get_by_email(self, email: str) -> User | None:
        return self._k.store.users.get_by_email(self._k.email(email))

    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        """Users in creation order: ``limit`` in 1..1000, ``offset`` in 0..2**31-1 (whole numbers, not booleans)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}.", field="limit")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_LIST_OFFSET:
            raise ValidationError(f"offset must be a whole number from 0 to {MAX_LIST_OFFSET}.", field="offset")
        return self._k.store.users.list(limit=limit, offset=offset)

    def block(self, user_id: str, *, context: RequestContext | None = None) -> None:
        """Block the user and revoke every session; their access tokens fail at once. Idempotent."""
        k = self._k
        ctx = k.context(context)
        user = self.get_by_id(user_id)
        now = k.now()


        def block() -> None:
            k.store.users.set_blocked(user.id, True, now)
            k.store.sessions.revoke_all_for_user(user.id, now, "blocked")
            k.auditor.record(AuditEventType.ACCOUNT_BLOCKED, now, ctx, user_id=user.id, email=user.email)

        k.unit(block)

    def unblock(self, user_id: str, *, context: RequestContext | None = None) -> None:
        """Allow login again; old sessions stay revoked. Idempotent."""
        k = self._k
        ctx = k.context(context)
        user = self.get_by_id(user_id)
        now = k.now()


        def unblock() -> None:
            k.store.users.set_blocked(user.id, False, now)
            k.auditor.record(AuditEventType.ACCOUNT_UNBLOCKED, now, ctx, user_id=user.id, email=user.email)

        k.unit(unblock)

    def delete(self, user_id: str, *, context: RequestContext | None = None) -> None:
        """Delete the user as an administrator (no password): every session is revoked,
        reset tokens and pending codes go, the address is free again; audited
        ``ACCOUNT_DELETED`` with reason ``admin`` (see :mod:`.account`).
        ``UserNotFound`` for an unknown (or already deleted) id."""
        k = self._k
        ctx = k.context(context)
        if not delete_account(k, self.get_by_id(user_id), ctx, by="admin"):
            raise UserNotFound()

    def mark_email_verified(self, user_id: str, *, context: RequestContext | None = None) -> None:
        k = self._k
        ctx = k.context(context)
        user = self.get_by_id(user_id)
        now = k.now()


        def verified() -> None:
            k.store.users.set_email_verified(user.id, now)
            k.auditor.record(AuditEventType.EMAIL_VERIFIED, now, ctx, user_id=user.id, email=user.email)

        k.unit(verified)


class SessionService:
    def __init__(self, k: Kernel) -> None:
        self._k = k

    def list(self, user_id: str, *, include_inactive: bool = False) -> list[Session]:
        uid = self._k.identifier(user_id, "user_id")
        return self._k.store.sessions.list_for_user(uid, now=self._k.now(), include_inactive=include_inactive)

    def get(self, session_id: str) -> Session:
        session = self._k.store.sessions.get(self._k.identifier(session_id, "session_id"))
        if session is None:
            raise SessionNotFound()
        return session

    def revoke(self, session_id: str, *, user_id: str | None = None, context: RequestContext | None = None) -> bool:
        """Revoke one session; ``True`` if it was live. Unknown ids raise ``SessionNotFound``.

        With ``user_id``, only that user's own session is revoked: another user's
        session raises ``SessionNotFound`` exactly like an unknown id, and is not
        touched, so the caller learns nothing about it.
        """
        k = self._k
        ctx = k.context(context)
        owner = k.identifier(user_id, "user_id") if user_id is not None else None
        session = self.get(session_id)
        if owner is not None and session.user_id != owner:
            raise SessionNotFound()
        now = k.now()


        def revoke() -> bool:
            revoked = k.store.sessions.revoke(session.id, now, "revoked")
            if revoked:
                k.auditor.record(AuditEventType.SESSION_REVOKED, now, ctx, user_id=session.user_id, session_id=session.id)
            return revoked

        return k.unit(revoke)

    def revoke_all(self, user_id: str, *, context: RequestContext | None = None) -> int:
        k = self._k
        ctx = k.context(context)
        uid = k.identifier(user_id, "user_id")
        now = k.now()


        def revoke_all() -> int:
            count = k.store.sessions.revoke_all_for_user(uid, now, "revoked")
            if count:
                k.auditor.record(AuditEventType.SESSION_REVOKED, now, ctx, user_id=uid, reason=f"all:{count}")
            return count

        return k.unit(revoke_all)


class AuditService:
    def __init__(self, k: Kernel) -> None:
        self._k = k

    def query(
        self,
        *,
        user_id: str | None = None,
        email: str | None = None,
        types: Sequence[AuditEventType | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Audit events, oldest first."""
        k = self._k
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise ValidationError("limit must be 1..10000.", field="limit")
        try:
            kinds = [AuditEventType(t) for t in types] if types is not None else None
        except ValueError:
            raise ValidationError("Unknown audit event type.", field="types") from None
        for bound in (since, until):
            if bound is not None and (not isinstance(bound, datetime) or bound.tzinfo is None):
                raise ValidationError("since/until must be timezone-aware datetimes.", field="since")
        return k.store.audit.query(
            user_id=k.identifier(user_id, "user_id") if user_id is not None else None,
            email=k.email(email) if email is not None else None,
            types=kinds,
            since=since,
            until=until,
            limit=limit,
        )
