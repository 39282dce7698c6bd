"""Configuration: one frozen object, read from the environment in one entry point."""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from .errors import ConfigurationError


class _DotenvDefault(str):
    """Type of :data:`DOTENV`: tells "env_file not passed" from ``env_file=".env"``."""


DOTENV = _DotenvDefault(".env")
"""Default of ``from_env(env_file=...)``: ``./.env`` when ``environ`` is not given, no file otherwise."""

__all__ = ["MIN_SECRET_LENGTH", "AuthConfig", "Limit"]

MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 8  # a random 32-character hex secret has about 14 (fewer than 8: under 1 in 100,000)
MAX_CHARACTER_RUN = 7  # "aaaaaaaa" (8 or more of one character in a row) is refused
MAX_SIMILARITY = 0.6  # difflib ratio above which two secrets count as near-duplicates
_MIN_LEFT_OVER = 8  # characters a secret must keep once placeholder words are taken out
_PLACEHOLDER_WORDS = sorted(
    # Taken out (longest first) of the lowercased letters and digits of a secret; what is left must
    # still be a secret of _MIN_LEFT_OVER characters.
    {
        "placeholder", "characters", "changeme", "password", "another", "example", "refresh", "default",
        "replace", "insecure", "sample", "secret", "random", "change", "string", "dummy", "token", "value",
        "chars", "super", "your", "long", "here", "auth", "test", "demo", "todo", "fake", "jwt", "key",
        "use", "dev", "xxx", "padded", "padding", "length", "filler",
    },
    key=lambda word: (-len(word), word),
)
_SEQUENCE = "0123456789abcdefghijklmnopqrstuvwxyz"


@attrs.frozen
class Limit:
    """At most ``count`` events per fixed ``window``."""

    count: int
    window: timedelta

    def __attrs_post_init__(self) -> None:
        if self.count < 1 or self.window <= timedelta(0):
            raise ConfigurationError("A rate limit needs a positive count and window.")


_GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


def _collapsed(text: str) -> str:
    return "".join(ch for i, ch in enumerate(text) if i == 0 or ch != text[i - 1])


def _normalized(value: str) -> str:
    """Lowercase letters and digits only, repeats collapsed, trailing digits dropped:
    "  Change-Me!!!1 " and "changeme" are the same placeholder."""
    return _collapsed("".join(ch for ch in value.lower() if ch.isalnum())).rstrip("0123456789")


_PLACEHOLDERS = {
    _normalized(example)
    for example in (
        # The README's and the FastAPI example's secrets, and common placeholders.
        "use-a-long-random-secret-of-32+-chars-1",
        "use-another-long-random-secret-32+-ch-2",
        "example-jwt-secret-change-me-0123456789abcdef",
        "example-refresh-secret-change-me-0123456789",
        "your-secret-key-here",
        "your-refresh-secret-here",
        "changeme",
        "secret",
    )
}


def _without_sequences(text: str) -> str:
    """``text`` minus runs of 4+ consecutive characters of 0-9a-z ("0123", "6789abcdef")."""
    out: list[str] = []
    run: list[str] = []
    for ch in text + "\0":
        if run and _SEQUENCE.find(run[-1]) >= 0 and _SEQUENCE.find(run[-1]) + 1 == _SEQUENCE.find(ch):
            run.append(ch)
            continue
        if len(run) < 4:
            out.extend(run)
        run = [ch]
    return "".join(out)


def _is_mostly_placeholder_words(value: str) -> bool:
    text = "".join(ch for ch in value.lower() if ch.isalnum())
    for word in _PLACEHOLDER_WORDS:
        text = text.replace(word, "")
    return len(_without_sequences(_collapsed(text))) < _MIN_LEFT_OVER


def _is_low_variety(value: str) -> bool:
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return True
    run = 1
    for i in range(1, len(value)):
        run = run + 1 if value[i] == value[i - 1] else 1
        if run > MAX_CHARACTER_RUN:
            return True
    return value in (value + value)[1:-1]  # one shorter block repeated ("abcdefghij" * 4)


def _check_secret(value: str, variable: str) -> None:
    """Refuse a missing, short, example/placeholder or low-variety secret; the message names
    the variable, never the value."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{variable} is not set.", variable=variable)
    if _normalized(value) in _PLACEHOLDERS:
        raise ConfigurationError(f"{variable} is a placeholder value; set a random secret.", variable=variable)
    if len(value.encode("utf-8")) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{variable} is too short: use at least {MIN_SECRET_LENGTH} random characters (for example: {_GENERATE}).",
            variable=variable,
        )
    if _is_low_variety(value):
        raise ConfigurationError(
            f"{variable} is not random enough (too few distinct characters, a long run of one character, "
            f"or a repeated block); set a random secret (for example: {_GENERATE}).",
            variable=variable,
        )
    if _is_mostly_placeholder_words(value):
        raise ConfigurationError(
            f"{variable} is a placeholder value (example words and padding); set a random secret "
            f"(for example: {_GENERATE}).",
            variable=variable,
        )


def _near_duplicates(a: str, b: str) -> bool:
    x, y = a.lower(), b.lower()
    if x == y:
        return True
    matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
    return matcher.real_quick_ratio() > MAX_SIMILARITY and matcher.ratio() > MAX_SIMILARITY


def _check_distinct(named: list[tuple[str, str]]) -> None:
    """Every secret must differ clearly from every other (not equal ignoring case, not a few edits apart)."""
    for i, (first_variable, first) in enumerate(named):
        for second_variable, second in named[i + 1 :]:
            if first == second and first_variable != second_variable:
                raise ConfigurationError(f"{first_variable} and {second_variable} must differ.", variable=second_variable)
            if _near_duplicates(first, second):
                where = (
                    f"two values of {first_variable}"
                    if first_variable == second_variable
                    else f"{first_variable} and {second_variable}"
                )
                raise ConfigurationError(
                    f"{where} are equal or nearly equal; every secret must be generated separately.",
                    variable=second_variable,
                )


@attrs.frozen(repr=False)
class AuthConfig:
    """Every rule's knob. Defaults follow the npm package and ``SPEC.md`` section 3.

    ``jwt_secret`` signs access tokens (HS256). ``refresh_secret`` keys the
    hashes of refresh tokens, one-time codes and reset tokens. Both must be
    random secrets of at least 32 characters (docs/security.md, "Secrets").
    ``previous_jwt_secrets`` still verify tokens, and ``previous_refresh_secrets``
    still find refresh tokens, codes and reset links, during a key rotation;
    both are ignored from ``previous_secrets_expire_at`` (timezone-aware) on.
    ``password_pepper``, when set, must be a random secret of 32+ bytes too.
    """

    jwt_secret: str
    refresh_secret: str
    previous_jwt_secrets: tuple[str, ...] = ()
    previous_refresh_secrets: tuple[str, ...] = ()
    previous_secrets_expire_at: datetime | None = None
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
    smtp_deadline: float = 30.0  # one bound for a whole delivery: connect, TLS, login, send, reply
    smtp_retries: int = 0  # extra attempts, only while nothing was accepted and time remains
    mail_queue_size: int = 100  # background mail jobs waiting at most
    mail_shutdown_grace: float = 10.0  # seconds close()/exit waits for queued mail
    app_name: str = "Mindmesh"
    reset_url: str | None = None  # e.g. "https://app.example/reset#token={token}"
    otp_delivery_in_background: bool = True  # otp.send mails off the caller's path (no account oracle)
    token_cache_size: int = 10_000  # verified access tokens kept in process (0: verify every time)
    access_token_claims: str = "full"  # "lean": without the standard duplicates sub/sid
    # Lockout-free throttling (docs/security.md "Budgets"): growing delays past the free
    # failures of login_email_limit, a consecutive-failure cap per account and factor
    # (NIST SP 800-63B 5.2.2: at most 100), device tokens that keep the owner out of it.
    login_delay_base: timedelta = timedelta(seconds=2)
    login_delay_max: timedelta = timedelta(minutes=15)
    consecutive_failure_limit: int = 100
    device_token_ttl: timedelta = timedelta(days=90)
    clock_skew_tolerance: timedelta = timedelta(seconds=5)  # how far ahead a stored time may lie (servers' skew)
    hash_workers: int | None = None  # password hashes at once (None: CPU count - 1, at least 1); docs/performance.md
    hash_queue_limit: int | None = None  # hashing calls waiting at most, then Overloaded (None: 4 x hash_workers)
    database_url: str | None = None
    allow_test_email_domains: bool = False  # accept e.g. user@example.test (tests only); see configuration.md

    def __attrs_post_init__(self) -> None:
        named = [("AUTH_JWT_SECRET", self.jwt_secret), ("AUTH_REFRESH_SECRET", self.refresh_secret)]
        named += [("AUTH_JWT_PREVIOUS_SECRETS", old) for old in self.previous_jwt_secrets]
        named += [("AUTH_REFRESH_PREVIOUS_SECRETS", old) for old in self.previous_refresh_secrets]
        if self.password_pepper:
            named.append(("AUTH_PASSWORD_PEPPER", self.password_pepper))
        for variable, value in named:
            _check_secret(value, variable)
        _check_distinct(named)
        expire_at = self.previous_secrets_expire_at
        if expire_at is not None and (not isinstance(expire_at, datetime) or expire_at.utcoffset() is None):
            raise ConfigurationError(
                "AUTH_PREVIOUS_SECRETS_EXPIRE_AT must be a date and time with a timezone "
                "(ISO 8601, e.g. 2026-01-31T00:00:00+00:00).",
                variable="AUTH_PREVIOUS_SECRETS_EXPIRE_AT",
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
        if "email_change" in self.otp_purposes:
            raise ConfigurationError(
                'otp_purposes must not include "email_change": those codes belong to auth.account.', variable="otp_purposes"
            )
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigurationError("SMTP_PORT must be between 1 and 65535.", variable="SMTP_PORT")
        if self.smtp_security not in ("starttls", "tls", "none"):
            raise ConfigurationError(
                'SMTP_SECURITY must be "starttls", "tls" or "none".', variable="SMTP_SECURITY"
            )
        _check_mail_bounds(self)
        skew = self.clock_skew_tolerance
        if not isinstance(skew, timedelta) or not timedelta(0) <= skew <= timedelta(seconds=60):
            raise ConfigurationError(
                "The clock skew tolerance must be between 0 and 60 seconds.", variable="AUTH_CLOCK_SKEW_SECONDS"
            )
        if not timedelta(0) < self.login_delay_base <= self.login_delay_max:
            raise ConfigurationError(
                "login_delay_base must be positive and at most login_delay_max.", variable="login_delay_base"
            )
        cap = self.consecutive_failure_limit
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 100:
            raise ConfigurationError(
                "consecutive_failure_limit must be a whole number between 1 and 100 (NIST SP 800-63B 5.2.2).",
                variable="consecutive_failure_limit",
            )
        if self.device_token_ttl <= timedelta(0):
            raise ConfigurationError("device_token_ttl must be positive.", variable="device_token_ttl")
        size = self.token_cache_size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1_000_000:
            raise ConfigurationError(
                "token_cache_size (AUTH_TOKEN_CACHE_SIZE) must be a whole number between 0 and 1000000.",
                variable="AUTH_TOKEN_CACHE_SIZE",
            )
        if self.access_token_claims not in ("full", "lean"):
            raise ConfigurationError(
                'access_token_claims (AUTH_ACCESS_TOKEN_CLAIMS) must be "full" or "lean".',
                variable="AUTH_ACCESS_TOKEN_CLAIMS",
            )
        for name, variable, low, high in (
            ("hash_workers", "AUTH_HASH_WORKERS", 1, 1024),
            ("hash_queue_limit", "AUTH_HASH_QUEUE_LIMIT", 0, 100_000),
        ):
            bound = getattr(self, name)
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or not low <= bound <= high):
                raise ConfigurationError(
                    f"{name} ({variable}) must be empty or a whole number between {low} and {high}.", variable=variable
                )

    def __repr__(self) -> str:
        return (
            f"AuthConfig(jwt_issuer={self.jwt_issuer!r}, session_ttl={self.session_ttl!r}, "
            f"otp_ttl={self.otp_ttl!r}, smtp_host={self.smtp_host!r}, secrets=<redacted>)"
        )

    def weaknesses(self, now: datetime | None = None) -> list[str]:
        """Advice about settings that are allowed but weak (for ``doctor`` and the startup
        warning): no pepper, previous secrets without an expiry or past it. Never a secret."""
        advice = []
        if not self.password_pepper:
            advice.append(
                "AUTH_PASSWORD_PEPPER is not set: set a random pepper of at least 32 bytes so a stolen "
                f"database alone cannot be used to guess passwords (for example: {_GENERATE})."
            )
        if self.previous_jwt_secrets or self.previous_refresh_secrets:
            expire_at = self.previous_secrets_expire_at
            if expire_at is None:
                advice.append(
                    "AUTH_JWT_PREVIOUS_SECRETS / AUTH_REFRESH_PREVIOUS_SECRETS are set without "
                    "AUTH_PREVIOUS_SECRETS_EXPIRE_AT: previous secrets stay valid until removed; set an expiry."
                )
            elif (now or datetime.now(timezone.utc)) >= expire_at:
                advice.append(
                    "AUTH_PREVIOUS_SECRETS_EXPIRE_AT has passed: the previous secrets are ignored; remove them."
                )
        return advice

    def with_changes(self, **changes: Any) -> AuthConfig:
        return attrs.evolve(self, **changes)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | os.PathLike[str] | None = DOTENV,
        allow_weak_settings: bool = False,
        **overrides: Any,
    ) -> AuthConfig:
        """Read the seed's variables from the environment and the app's ``.env``.

        The process environment wins over the ``.env`` file; ``overrides``
        win over both. ``./.env`` is read only when ``environ`` is not given;
        with ``environ``, only an ``env_file`` passed explicitly is read.
        Reading a file is logged (path and variable names, never values). A
        missing or short secret, or a variable weaker than the policy (see
        :func:`_refuse_weak_settings`), raises :class:`ConfigurationError`
        naming the variable; ``allow_weak_settings=True`` (tests only) lifts
        the policy.
        """
        if env_file is DOTENV:
            env_file = ".env" if environ is None else None
        environment = os.environ if environ is None else environ
        values: dict[str, str] = {}
        if env_file is not None and os.path.exists(env_file):
            from_file = _read_dotenv(env_file)
            values.update(from_file)
            _log_dotenv(env_file, [name for name in from_file if name not in environment])
        values.update(environment)
        return cls.from_mapping(values, allow_weak_settings=allow_weak_settings, **overrides)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], *, allow_weak_settings: bool = False, **overrides: Any) -> AuthConfig:
        """Build a config from variables named as in the npm package's ``.env``.

        Values below the policy for environment settings are refused unless
        ``allow_weak_settings=True``; ``overrides`` are the caller's explicit
        choice and are checked only by the field bounds, as direct
        construction is.
        """
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
        if (prev := text("AUTH_REFRESH_PREVIOUS_SECRETS")) is not None:
            kw["previous_refresh_secrets"] = tuple(p.strip() for p in prev.split(",") if p.strip())
        if (v := text("AUTH_PREVIOUS_SECRETS_EXPIRE_AT")) is not None:
            kw["previous_secrets_expire_at"] = _timestamp(v, "AUTH_PREVIOUS_SECRETS_EXPIRE_AT")
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
        if (v := number("SMTP_DEADLINE", float)) is not None:
            kw["smtp_deadline"] = v
        if (v := number("SMTP_RETRIES")) is not None:
            kw["smtp_retries"] = v
        if (v := number("AUTH_MAIL_QUEUE_SIZE")) is not None:
            kw["mail_queue_size"] = v
        if (v := number("AUTH_MAIL_SHUTDOWN_GRACE", float)) is not None:
            kw["mail_shutdown_grace"] = v
        if (v := text("AUTH_APP_NAME")) is not None:
            kw["app_name"] = v
        if (v := text("AUTH_RESET_URL")) is not None:
            kw["reset_url"] = v
        if (v := number("AUTH_TOKEN_CACHE_SIZE")) is not None:
            kw["token_cache_size"] = v
        if (v := text("AUTH_ACCESS_TOKEN_CLAIMS")) is not None:
            kw["access_token_claims"] = v.lower()
        if (v := number("AUTH_CLOCK_SKEW_SECONDS", float)) is not None:
            kw["clock_skew_tolerance"] = timedelta(seconds=v)
        if (v := number("AUTH_HASH_WORKERS")) is not None:
            kw["hash_workers"] = v
        if (v := number("AUTH_HASH_QUEUE_LIMIT")) is not None:
            kw["hash_queue_limit"] = v
        if (v := text("AUTH_DATABASE_URL") or text("DATABASE_URL")) is not None:
            kw["database_url"] = v
        from_environment = set(kw) - set(overrides)
        kw.update(overrides)
        config = cls(**kw)
        if not allow_weak_settings:
            _refuse_weak_settings(config, from_environment)
        return config


# -- policy for settings read from the environment ------------------------------
#
# Direct construction (``AuthConfig(...)``, ``with_changes``, keyword overrides)
# is the programmer's explicit choice and is held only to the field bounds in
# ``__attrs_post_init__``. A value read from the environment or a ``.env`` file
# may come from a stray or copied file, so it must also meet this policy unless
# the caller passes ``allow_weak_settings=True`` (tests only). Nothing read from
# the environment can switch that on.

POLICY_MIN_BCRYPT_ROUNDS = 10  # OWASP Password Storage Cheat Sheet: bcrypt cost 10 or more
POLICY_MIN_PASSWORD_LENGTH = 8  # ASVS 6.2.1 (15 recommended: the password is the only real factor)
POLICY_MAX_SESSION_TTL = timedelta(days=30)  # R-G6, NIST 800-63B-4 AAL1 reauthentication
POLICY_MAX_ACCESS_TOKEN_TTL = timedelta(minutes=60)  # an access token cannot be revoked on its own
log = logging.getLogger("mindmesh_auth")


def _refuse_weak_settings(config: AuthConfig, from_environment: set[str]) -> None:
    """Refuse, naming the variable, a setting from the environment that is weaker than the policy."""
    hint = "; allow_weak_settings=True lifts this in tests only."
    minutes = POLICY_MAX_ACCESS_TOKEN_TTL // timedelta(minutes=1)
    rules = {
        "bcrypt_rounds": ("AUTH_BCRYPT_ROUNDS", f"must be at least {POLICY_MIN_BCRYPT_ROUNDS}"),
        "password_min_length": ("AUTH_PASSWORD_MIN_LENGTH", f"must be at least {POLICY_MIN_PASSWORD_LENGTH}"),
        "session_ttl": ("SESSION_DAYS", f"must be at most {POLICY_MAX_SESSION_TTL.days} days"),
        "access_token_ttl": ("ACCESS_TOKEN_MINUTES", f"must be at most {minutes} minutes"),
    }
    weak = {
        "bcrypt_rounds": config.bcrypt_rounds < POLICY_MIN_BCRYPT_ROUNDS,
        "password_min_length": config.password_min_length < POLICY_MIN_PASSWORD_LENGTH,
        "session_ttl": config.session_ttl > POLICY_MAX_SESSION_TTL,
        "access_token_ttl": config.access_token_ttl > POLICY_MAX_ACCESS_TOKEN_TTL,
    }
    for field, (variable, rule) in rules.items():
        if weak[field] and field in from_environment:
            raise ConfigurationError(f"{variable} {rule} when read from the environment{hint}", variable=variable)


def _log_dotenv(path: str | os.PathLike[str], names: list[str]) -> None:
    # The path and the names the file set (those the environment did not), never a value.
    log.info(
        "Configuration read from %s; it set: %s",
        os.path.abspath(path),
        ", ".join(sorted(names)) or "nothing",
        extra={"mindmesh_auth_event": "config.dotenv_read", "path": os.path.abspath(path), "variables": sorted(names)},
    )


def _timestamp(value: str, variable: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigurationError(
            f"{variable} must be an ISO 8601 date and time with a timezone (e.g. 2026-01-31T00:00:00+00:00).",
            variable=variable,
        ) from None


def _read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    # python-dotenv parses the file; imported here so the core's import-time
    # dependencies stay attrs, bcrypt, jwt and the standard library.
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _check_mail_bounds(config: AuthConfig) -> None:
    """SMTP deadline and retries, background mail queue size and shutdown grace."""

    def real(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not real(config.smtp_deadline) or not 0 < config.smtp_deadline <= 3600:
        raise ConfigurationError("SMTP_DEADLINE must be more than 0 and at most 3600 seconds.", variable="SMTP_DEADLINE")
    if not whole(config.smtp_retries) or not 0 <= config.smtp_retries <= 10:
        raise ConfigurationError("SMTP_RETRIES must be a whole number from 0 to 10.", variable="SMTP_RETRIES")
    if not whole(config.mail_queue_size) or not 1 <= config.mail_queue_size <= 1_000_000:
        raise ConfigurationError(
            "AUTH_MAIL_QUEUE_SIZE must be a whole number from 1 to 1000000.", variable="AUTH_MAIL_QUEUE_SIZE"
        )
    if not real(config.mail_shutdown_grace) or not 0 <= config.mail_shutdown_grace <= 3600:
        raise ConfigurationError(
            "AUTH_MAIL_SHUTDOWN_GRACE must be between 0 and 3600 seconds.", variable="AUTH_MAIL_SHUTDOWN_GRACE"
        )
