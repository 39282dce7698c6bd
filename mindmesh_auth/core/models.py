"""Frozen value objects that cross the ports.

Every datetime is timezone-aware UTC with millisecond precision (the coarsest
precision any backend keeps). Secret-bearing fields are kept out of ``repr``.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

import attrs

__all__ = [
    "CORE_USER_FIELDS",
    "AuditEvent",
    "AuditEventType",
    "LoginChallenge",
    "LoginResult",
    "OtpChallenge",
    "RequestContext",
    "ResetToken",
    "RetiredRefreshToken",
    "Session",
    "SessionWithUser",
    "TokenPair",
    "User",
]


class Profile(dict[str, Any]):
    """A read-only dict of the app's extra user fields (picklable, copyable)."""

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("User.profile is read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[Profile], tuple[dict[str, Any]]]:
        return (Profile, (dict(self),))

    def __copy__(self) -> Profile:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Profile:
        return Profile(copy.deepcopy(dict(self), memo))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


def _freeze(value: Mapping[str, Any] | None) -> Profile:
    return value if isinstance(value, Profile) else Profile(value or {})


@attrs.frozen
class User:
    """An account. ``profile`` holds the app's extra fields (also readable as attributes)."""

    id: str
    email: str
    password_hash: str = attrs.field(repr=False)
    created_at: datetime
    updated_at: datetime
    email_verified: bool = False
    blocked: bool = False
    profile: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: expose profile extras as attributes.
        if name.startswith("_") or name == "profile":
            raise AttributeError(name)
        try:
            return self.profile[name]
        except KeyError:
            raise AttributeError(name) from None

    def public_dict(self) -> dict[str, Any]:
        """The user without its password hash, JSON-friendly."""
        return {
            "id": self.id,
            "email": self.email,
            "email_verified": self.email_verified,
            "blocked": self.blocked,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            **dict(self.profile),
        }


CORE_USER_FIELDS = frozenset(a.name for a in attrs.fields(User))


@attrs.frozen
class Session:
    """A login session. ``refresh_hash`` is the keyed hash of its live refresh token."""

    id: str
    user_id: str
    refresh_hash: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime  # absolute lifetime; refresh never extends it
    last_active_at: datetime  # set at creation and on every refresh
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@attrs.frozen
class SessionWithUser:
    session: Session
    user: User


@attrs.frozen
class RetiredRefreshToken:
    """A refresh token that was rotated away (kept for reuse detection)."""

    token_hash: str = attrs.field(repr=False)
    session_id: str
    rotated_at: datetime
    expires_at: datetime  # same as the session's absolute expiry; purge after


@attrs.frozen
class OtpChallenge:
    """A one-time code bound to (email, purpose). Only its keyed hash is stored.

    ``status`` is ``"pending"`` while the mail is being sent and ``"sent"``
    once delivered; only a sent challenge can be verified.
    """

    id: str
    email: str
    purpose: str
    code_hash: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime
    user_id: str | None = None
    attempts: int = 0
    status: str = "pending"
    consumed_at: datetime | None = None


@attrs.frozen
class ResetToken:
    """A password reset token; only its keyed hash is stored."""

    id: str
    user_id: str
    token_hash: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None


class AuditEventType(enum.StrEnum):
    LOGIN_SUCCESS = "LOGIN_SUCCESS"
    LOGIN_FAILED = "LOGIN_FAILED"
    OTP_SENT = "OTP_SENT"
    OTP_SEND_FAILED = "OTP_SEND_FAILED"
    OTP_VERIFIED = "OTP_VERIFIED"
    OTP_FAILED = "OTP_FAILED"
    PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"
    PASSWORD_RESET_COMPLETED = "PASSWORD_RESET_COMPLETED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    ACCOUNT_BLOCKED = "ACCOUNT_BLOCKED"
    ACCOUNT_UNBLOCKED = "ACCOUNT_UNBLOCKED"
    ACCOUNT_DELETED = "ACCOUNT_DELETED"
    EMAIL_CHANGED = "EMAIL_CHANGED"
    EMAIL_VERIFIED = "EMAIL_VERIFIED"
    REGISTRATION_SUCCESS = "REGISTRATION_SUCCESS"
    REGISTRATION_FAILED = "REGISTRATION_FAILED"
    LOGOUT = "LOGOUT"
    SESSION_REFRESHED = "SESSION_REFRESHED"
    SESSION_REVOKED = "SESSION_REVOKED"
    REFRESH_REUSE_DETECTED = "REFRESH_REUSE_DETECTED"
    RATE_LIMITED = "RATE_LIMITED"


@attrs.frozen
class AuditEvent:
    """One audit row. Never holds a password, code or token.

    ``id`` is assigned by the store on append (``None`` before).
    """

    type: AuditEventType = attrs.field(converter=AuditEventType)
    occurred_at: datetime
    user_id: str | None = None
    email: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
    reason: str | None = None
    id: str | None = None


@attrs.frozen
class RequestContext:
    """Who is calling: the client IP (as the app trusts it) and user agent."""

    ip_address: str | None = None
    user_agent: str | None = None


@attrs.frozen
class LoginChallenge:
    """Result of step one of login: a code was e-mailed.

    ``handle`` binds the code to this login: pass it to ``verify_otp(..., handle=...)``
    so the submission counts in the bound budget, which a stranger who knows only
    the address cannot spend (docs/security.md). Secret-like: never logged."""

    otp_required: bool = True
    handle: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class TokenPair:
    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    session_id: str
    expires_in: int  # seconds until the access token expires


@attrs.frozen
class LoginResult:
    """Result of a verified login: tokens, the user and the new session."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    user: User
    session_id: str
    expires_in: int
    device_token: str | None = attrs.field(default=None, repr=False)  # for login(..., device_token=...)
