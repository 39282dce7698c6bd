"""Configuration: one frozen object, read from the environment in one entry point."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from .errors import ConfigurationError

__all__ = ["MIN_SECRET_LENGTH", "AuthConfig", "Limit"]

MIN_SECRET_LENGTH = 32
_PLACEHOLDERS = {
    "your-secret-key-here",
    "your-refresh-secret-here",
    "changeme",
    "secret",
}


@attrs.frozen
class Limit:
    """At most ``count`` events per fixed ``window``."""

    count: int
    window: timedelta

    def __attrs_post_init__(self) -> None:
        if self.count < 1 or self.window <= timedelta(0):
            raise ConfigurationError("A rate limit needs a positive count and window.")


def _check_secret(value: str, variable: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{variable} is not set.", variable=variable)
    if value.strip().lower() in _PLACEHOLDERS:
        raise ConfigurationError(f"{variable} is a placeholder value; set a random secret.", variable=variable)
    if len(value.encode("utf-8")) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{variable} is too short: use at least {MIN_SECRET_LENGTH} random characters "
            '(for example: python -c "import secrets; print(secrets.token_urlsafe(48))").',
            variable=variable,
        )


@attrs.frozen(repr=False)
class AuthConfig:
    """Every rule's knob. Defaults follow the npm package and ``SPEC.md`` section 3.

    ``jwt_secret`` signs access tokens (HS256). ``refresh_secret`` keys the
    hashes of refresh tokens, one-time codes and reset tokens. Both must be
    at least 32 characters. ``previous_jwt_secrets`` still verify tokens
    during a key rotation.
    """

    jwt_secret: str
    refresh_secret: str
    previous_jwt_secrets: tuple[str, ...] = ()
    jwt_issuer: str = "mindmesh-auth"
    jwt_audience: str = "mindmesh-app"
    access_token_ttl: timedelta = timedelta(minutes=15)
    jwt_leeway: timedelta = timedelta(seconds=30)
    session_ttl: timedelta = timedelta(days=7)
    session_idle_timeout: timedelta | None = None
    refresh_grace_period: timedelta = timedelta(0)
    refresh_race_window: timedelta = timedelta(seconds=2)
    reset_delivery_in_background: bool = True
    audit_retention: timedelta | None = None
    otp_ttl: timedelta = timedelta(minutes=5)
    otp_max_attempts: int = 5
    otp_hash: str = "hmac"  # or "bcrypt"
    otp_purposes: tuple[str, ...] = ("login", "email_verify")
    otp_send_limit: Limit = Limit(3, timedelta(minutes=10))
    otp_account_failure_limit: Limit = Limit(20, timedelta(hours=1))
    login_ip_limit: Limit = Limit(10, timedelta(minutes=15))
    login_email_limit: Limit = Limit(10, timedelta(minutes=15))
    register_ip_limit: Limit = Limit(20, timedelta(hours=1))
    reset_email_limit: Limit = Limit(3, timedelta(hours=1))
    reset_ip_limit: Limit = Limit(20, timedelta(hours=1))
    no_ip_limit_factor: int = 10  # requests without a client IP share one bucket per kind, at limit x factor
    reset_token_ttl: timedelta = timedelta(hours=1)
    password_min_length: int = 8
    password_max_length: int = 1024
    password_pepper: str = ""
    bcrypt_rounds: int = 12
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "mindmesh-auth <no-reply@localhost>"
    smtp_security: str = "starttls"  # "starttls", "tls" or "none"
    smtp_timeout: float = 10.0
    app_name: str = "Mindmesh"
    reset_url: str | None = None  # e.g. "https://app.example/reset#token={token}"
    database_url: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_secret(self.jwt_secret, "AUTH_JWT_SECRET")
        _check_secret(self.refresh_secret, "AUTH_REFRESH_SECRET")
        for old in self.previous_jwt_secrets:
            _check_secret(old, "AUTH_JWT_PREVIOUS_SECRETS")
        if self.jwt_secret == self.refresh_secret:
            raise ConfigurationError(
                "AUTH_JWT_SECRET and AUTH_REFRESH_SECRET must differ.", variable="AUTH_REFRESH_SECRET"
            )
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigurationError("bcrypt_rounds must be between 4 and 31.", variable="AUTH_BCRYPT_ROUNDS")
        if not 1 <= self.password_min_length <= self.password_max_length:
            raise ConfigurationError(
                "AUTH_PASSWORD_MIN_LENGTH must be at least 1 and at most password_max_length.",
                variable="AUTH_PASSWORD_MIN_LENGTH",
            )
        if self.password_max_length > 4096:
            raise ConfigurationError("password_max_length must be at most 4096.", variable="password_max_length")
        if self.otp_hash not in ("hmac", "bcrypt"):
            raise ConfigurationError('otp_hash must be "hmac" or "bcrypt".', variable="AUTH_OTP_HASH")
        if not timedelta(0) < self.otp_ttl <= timedelta(minutes=10):
            raise ConfigurationError("OTP_EXPIRY_MINUTES must be between 1 and 10.", variable="OTP_EXPIRY_MINUTES")
        if self.otp_max_attempts < 1:
            raise ConfigurationError("otp_max_attempts must be positive.", variable="otp_max_attempts")
        if not timedelta(0) <= self.refresh_grace_period <= timedelta(seconds=30):
            raise ConfigurationError(
                "The refresh grace period must be between 0 and 30 seconds.", variable="AUTH_REFRESH_GRACE_SECONDS"
            )
        factor = self.no_ip_limit_factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ConfigurationError(
                "no_ip_limit_factor (AUTH_NO_IP_LIMIT_FACTOR) must be a whole number of at least 1.",
                variable="AUTH_NO_IP_LIMIT_FACTOR",
            )
        if self.session_ttl <= timedelta(0):
            raise ConfigurationError("SESSION_DAYS must be positive.", variable="SESSION_DAYS")
        if self.access_token_ttl <= timedelta(0):
            raise ConfigurationError("ACCESS_TOKEN_MINUTES must be positive.", variable="ACCESS_TOKEN_MINUTES")
        if "login" not in self.otp_purposes:
            raise ConfigurationError('otp_purposes must include "login".', variable="otp_purposes")
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigurationError("SMTP_PORT must be between 1 and 65535.", variable="SMTP_PORT")
        if self.smtp_security not in ("starttls", "tls", "none"):
            raise ConfigurationError(
                'SMTP_SECURITY must be "starttls", "tls" or "none".', variable="SMTP_SECURITY"
            )

    def __repr__(self) -> str:
        return (
            f"AuthConfig(jwt_issuer={self.jwt_issuer!r}, session_ttl={self.session_ttl!r}, "
            f"otp_ttl={self.otp_ttl!r}, smtp_host={self.smtp_host!r}, secrets=<redacted>)"
        )

    def with_changes(self, **changes: Any) -> AuthConfig:
        return attrs.evolve(self, **changes)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike[str] | None = ".env",
        **overrides: Any,
    ) -> AuthConfig:
        """Read the seed's variables from the environment and the app's ``.env``.

        The process environment wins over the ``.env`` file; ``overrides``
        win over both. A missing or short secret raises
        :class:`ConfigurationError` naming the variable.
        """
        values: dict[str, str] = {}
        if env_file is not None and os.path.exists(env_file):
            values.update(_read_dotenv(env_file))
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values, **overrides)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], **overrides: Any) -> AuthConfig:
        """Build a config from variables named as in the npm package's ``.env``."""
        kw: dict[str, Any] = {}

        def text(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def number(name: str, kind: type = int) -> Any:
            value = text(name)
            if value is None:
                return None
            try:
                result = kind(value)
            except ValueError:
                raise ConfigurationError(f"{name} must be a number.", variable=name) from None
            if not math.isfinite(result) or not 0 <= result <= 1_000_000:
                raise ConfigurationError(f"{name} must be a number between 0 and 1000000.", variable=name)
            return result

        kw["jwt_secret"] = text("AUTH_JWT_SECRET") or ""
        kw["refresh_secret"] = text("AUTH_REFRESH_SECRET") or ""
        if (prev := text("AUTH_JWT_PREVIOUS_SECRETS")) is not None:
            kw["previous_jwt_secrets"] = tuple(p.strip() for p in prev.split(",") if p.strip())
        if (v := number("OTP_EXPIRY_MINUTES", float)) is not None:
            kw["otp_ttl"] = timedelta(minutes=v)
        if (v := number("SESSION_DAYS", float)) is not None:
            kw["session_ttl"] = timedelta(days=v)
        if (v := number("ACCESS_TOKEN_MINUTES", float)) is not None:
            kw["access_token_ttl"] = timedelta(minutes=v)
        if (v := number("AUTH_REFRESH_GRACE_SECONDS", float)) is not None:
            kw["refresh_grace_period"] = timedelta(seconds=v)
        if (v := number("AUTH_BCRYPT_ROUNDS")) is not None:
            kw["bcrypt_rounds"] = v
        if (v := number("AUTH_PASSWORD_MIN_LENGTH")) is not None:
            kw["password_min_length"] = v
        if (v := text("AUTH_PASSWORD_PEPPER")) is not None:
            kw["password_pepper"] = v
        if (v := number("AUTH_NO_IP_LIMIT_FACTOR")) is not None:
            kw["no_ip_limit_factor"] = v
        if (v := text("AUTH_OTP_HASH")) is not None:
            kw["otp_hash"] = v
        if (v := text("SMTP_HOST")) is not None:
            kw["smtp_host"] = v
        if (v := number("SMTP_PORT")) is not None:
            kw["smtp_port"] = v
        if (v := text("SMTP_USER")) is not None:
            kw["smtp_user"] = v
        if (v := text("SMTP_PASS")) is not None:
            kw["smtp_password"] = v
        if (v := text("SMTP_FROM")) is not None:
            kw["smtp_from"] = v
        if (v := text("SMTP_SECURITY")) is not None:
            kw["smtp_security"] = v.lower()
        elif kw.get("smtp_port") == 465:
            kw["smtp_security"] = "tls"  # 465 is the implicit-TLS port; an explicit SMTP_SECURITY wins
        if (v := number("SMTP_TIMEOUT", float)) is not None:
            kw["smtp_timeout"] = v
        if (v := text("AUTH_APP_NAME")) is not None:
            kw["app_name"] = v
        if (v := text("AUTH_RESET_URL")) is not None:
            kw["reset_url"] = v
        if (v := text("AUTH_DATABASE_URL") or text("DATABASE_URL")) is not None:
            kw["database_url"] = v
        kw.update(overrides)
        return cls(**kw)


def _read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    # python-dotenv parses the file; imported here so the core's import-time
    # dependencies stay attrs, bcrypt, jwt and the standard library.
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
