"""The package's one exception root and its typed errors.

Every error carries a stable ``code`` (and an HTTP-ish ``status`` hint) so an
HTTP layer maps errors without string matching. Messages never contain a
password, code, token or secret key.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigurationError",
    "DeliveryFailed",
    "DeliveryUncertain",
    "DuplicateKeyError",
    "EmailAlreadyRegistered",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidOtp",
    "InvalidPassword",
    "InvalidRefreshToken",
    "InvalidResetToken",
    "InvalidToken",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "RefreshTokenReused",
    "SchemaMismatch",
    "SessionNotFound",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "UserNotFound",
    "ValidationError",
]


class AuthError(Exception):
    """Root of every error raised by mindmesh-auth."""

    code: str = "auth_error"
    status: int = 400
    default_message: str = "Authentication error."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.default_message


class ConfigurationError(AuthError):
    """The configuration is missing or unsafe; raised at start-up.

    ``variable`` names the setting (or environment variable) at fault.
    """

    code = "configuration_error"
    status = 500

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class ValidationError(AuthError):
    """Input is malformed: nothing was changed."""

    code = "invalid_input"
    status = 422
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidEmail(ValidationError):
    code = "invalid_email"
    default_message = "The email address is not valid."

    def __init__(self, message: str | None = None, *, field: str = "email") -> None:
        super().__init__(message, field=field)


class InvalidPassword(ValidationError):
    """The password breaks the password policy (length, blocklist, type)."""

    code = "invalid_password"
    default_message = "The password does not meet the password policy."

    def __init__(self, message: str | None = None, *, field: str = "password") -> None:
        super().__init__(message, field=field)


class InvalidCredentials(AuthError):
    """Login failed. Identical for unknown email, wrong password and blocked account."""

    code = "invalid_credentials"
    status = 401
    default_message = "Invalid email or password."


class EmailAlreadyRegistered(AuthError):
    """Registration of an email that already has an account (documented trade-off)."""

    code = "email_taken"
    status = 409
    default_message = "An account with this email already exists."


class InvalidToken(AuthError):
    """An access token is malformed, forged, expired, or its session is gone."""

    code = "invalid_token"
    status = 401
    default_message = "Invalid or expired token."


class InvalidRefreshToken(InvalidToken):
    code = "invalid_refresh_token"
    default_message = "Invalid or expired refresh token."


class RefreshTokenReused(InvalidRefreshToken):
    """A rotated refresh token came back: its session has been revoked."""

    code = "refresh_token_reused"
    default_message = "Refresh token reuse detected; the session was revoked."


class InvalidOtp(AuthError):
    """The one-time code is wrong, expired, used up or superseded."""

    code = "invalid_otp"
    status = 401
    default_message = "Invalid or expired code."


class InvalidResetToken(AuthError):
    code = "invalid_reset_token"
    status = 400
    default_message = "Invalid or expired password reset token."


class RateLimited(AuthError):
    """Too many requests; ``retry_after`` is the number of seconds to wait."""

    code = "rate_limited"
    status = 429
    default_message = "Too many requests. Try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Overloaded(AuthError):
    """Too many password hashes are already queued: the call was refused at once and
    changed nothing. ``retry_after`` is the number of seconds to wait (HTTP 503 + Retry-After)."""

    code = "overloaded"
    status = 503
    default_message = "The server is busy. Try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class DeliveryFailed(AuthError):
    """The mail could not be sent; no usable code was left behind."""

    code = "delivery_failed"
    status = 503
    default_message = "The message could not be delivered. Try again later."


class DeliveryUncertain(DeliveryFailed):
    """The message may have been delivered: the connection ended, or the delivery
    deadline passed, after the whole message was sent and before the server's
    reply. A code or token in it is kept (a copy that did arrive still works)."""

    code = "delivery_uncertain"
    status = 503
    default_message = "The message may not have been delivered. If it does not arrive, try again later."


class NotFound(AuthError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_message = "Session not found."


class StorageError(AuthError):
    """The storage backend failed. Adapters translate driver errors to this."""

    code = "storage_error"
    status = 503
    default_message = "The storage backend failed."


class DuplicateKeyError(StorageError):
    """A unique constraint (e.g. the canonical email) was violated."""

    code = "duplicate_key"
    status = 409
    default_message = "A record with the same unique key already exists."


class StorageUnavailable(StorageError):
    code = "storage_unavailable"
    default_message = "The storage backend is unavailable."


class StorageConflict(StorageError):
    """The backend gave up on a unit of work to break a deadlock or a
    serialization conflict (MariaDB 1213, PostgreSQL 40001/40P01, SQLite busy).
    The core retries the whole unit a bounded number of times before raising it."""

    code = "storage_conflict"
    default_message = "The storage backend could not complete the operation because of concurrent changes; try again."


class SchemaMismatch(StorageError):
    """A table or column the store needs does not exist (the app's user model
    changed, or the schema was never created or migrated). Not a 503: retrying
    cannot help until the schema is fixed."""

    code = "schema_mismatch"
    status = 500
    default_message = "The database schema does not match the store: create the schema or run a migration."
