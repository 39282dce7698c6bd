"""Framework-free HTTP pieces shared by the FastAPI router and the Flask blueprint.

- :data:`ROUTES`: the route table (method, path, success status, documented errors, body members).
- :func:`error_response`: ``AuthError`` -> (status, JSON body, headers).
- :func:`client_ip`: the client address, honouring ``X-Forwarded-For`` only from trusted proxies.
- :class:`CookieSettings`: optional httpOnly cookies for the tokens.
- JSON body builders, so both frameworks answer with identical bodies.

Nothing here logs; no body or header built here ever contains a password or a
one-time code, and tokens appear only in the success bodies and cookies meant to
carry them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import AuthError, ConfigurationError, InvalidToken, RateLimited, ValidationError
from ..core.models import LoginResult, Session, TokenPair, User

__all__ = [
    "ERROR_DESCRIPTIONS",
    "OTP_SEND_BODY",
    "RESET_REQUEST_BODY",
    "ROUTES",
    "BodyField",
    "CookieSettings",
    "CookieSpec",
    "ErrorResponse",
    "Network",
    "RouteSpec",
    "bearer_token",
    "clear_cookies",
    "client_ip",
    "error_response",
    "login_body",
    "parse_profile",
    "parse_trusted_proxies",
    "session_body",
    "token_cookies",
    "tokens_body",
    "user_body",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# ---------------------------------------------------------------------------
# Route table
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BodyField:
    """One member of a route's JSON body.

    ``kind="string"``: a JSON string. ``kind="profile"``: a JSON object of scalars
    (the allow-list is the app's). An optional member may also be ``null``.
    """

    name: str
    kind: Literal["string", "profile"] = "string"
    required: bool = True
    description: str | None = None


@dataclass(frozen=True)
class RouteSpec:
    """One route: ``path`` is relative to the prefix, in ``{param}`` syntax.

    ``body``: the JSON body's members (``None``: the route reads no body).
    """

    name: str
    method: str
    path: str
    status: int
    errors: tuple[int, ...]
    summary: str
    authenticated: bool = False
    body: tuple[BodyField, ...] | None = None


_EMAIL = BodyField("email")
_PASSWORD = BodyField("password")

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "register",
        "POST",
        "/register",
        201,
        (409, 422, 503),
        "Create an account",
        body=(
            _EMAIL,
            _PASSWORD,
            BodyField(
                "profile",
                "profile",
                required=False,
                description="Only the profile fields the app allowed (profile_fields=...).",
            ),
        ),
    ),
    RouteSpec(
        "login",
        "POST",
        "/login",
        200,
        (401, 422, 429, 503),
        "Check the password and e-mail a login code",
        body=(_EMAIL, _PASSWORD),
    ),
    RouteSpec(
        "verify_otp",
        "POST",
        "/verify-otp",
        200,
        (401, 422, 429, 503),
        "Complete the login with the e-mailed code",
        body=(_EMAIL, BodyField("code", description="The 6-digit code from the e-mail.")),
    ),
    RouteSpec(
        "refresh",
        "POST",
        "/refresh",
        200,
        (401, 422, 503),
        "Rotate the refresh token, get a new access token",
        body=(BodyField("refresh_token", required=False, description="Omit when the refresh cookie is enabled and set."),),
    ),
    RouteSpec("logout", "POST", "/logout", 204, (401, 503), "Revoke the current session", authenticated=True),
    RouteSpec("me", "GET", "/me", 200, (401, 503), "The current user", authenticated=True),
    RouteSpec(
        "otp_send",
        "POST",
        "/otp/send",
        202,
        (422, 429, 503),
        "E-mail a one-time code for a purpose",
        body=(_EMAIL, BodyField("purpose", description='A configured purpose other than "login", e.g. "email_verify".')),
    ),
    RouteSpec(
        "otp_verify",
        "POST",
        "/otp/verify",
        200,
        (401, 422, 429, 503),
        "Check a one-time code for a purpose",
        body=(_EMAIL, BodyField("code"), BodyField("purpose")),
    ),
    RouteSpec(
        "password_reset_request",
        "POST",
        "/password/reset-request",
        202,
        (422, 503),
        "E-mail a password reset token",
        body=(_EMAIL,),
    ),
    RouteSpec(
        "password_reset",
        "POST",
        "/password/reset",
        204,
        (400, 422, 503),
        "Set a new password with a reset token",
        body=(BodyField("token"), BodyField("new_password")),
    ),
    RouteSpec("list_sessions", "GET", "/sessions", 200, (401, 503), "The current user's live sessions", authenticated=True),
    RouteSpec(
        "revoke_session",
        "DELETE",
        "/sessions/{session_id}",
        204,
        (401, 404, 422, 503),
        "Revoke one of the current user's sessions",
        authenticated=True,
    ),
)

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid or expired password reset token (`invalid_reset_token`).",
    401: "Invalid credentials, token, refresh token or code (`invalid_credentials`, `invalid_token`, "
    "`invalid_refresh_token`, `refresh_token_reused`, `invalid_otp`).",
    404: "Unknown session, or a session of another user (`session_not_found`).",
    409: "The email already has an account (`email_taken`).",
    422: "Malformed input (`invalid_input`, `invalid_email`, `invalid_password`).",
    429: "Rate limited (`rate_limited`); the `Retry-After` header gives the seconds to wait.",
    503: "Mail delivery or storage failed (`delivery_failed`, `storage_error`, `storage_unavailable`).",
}

RESET_REQUEST_BODY: dict[str, str] = {
    "status": "accepted",
    "message": "If the address has an account, a password reset message is on its way.",
}
OTP_SEND_BODY: dict[str, str] = {
    "status": "accepted",
    "message": "If the address has an account, a code is on its way.",
}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(exc: AuthError) -> ErrorResponse:
    """Map an ``AuthError`` by its ``status`` and ``code``.

    The core's messages never contain a secret; a 5xx other than 503 (e.g. a
    ``ConfigurationError`` at request time) gets a generic message.
    """
    status = exc.status if 400 <= exc.status <= 599 else 500
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if isinstance(exc, InvalidToken) else "Bearer"
    if status >= 500 and status != 503:
        return ErrorResponse(status, _error_body("internal_error", "Internal server error."), headers)
    field = exc.field if isinstance(exc, ValidationError) else None
    return ErrorResponse(status, _error_body(exc.code, exc.message, field), headers)


# ---------------------------------------------------------------------------
# Client IP
# ---------------------------------------------------------------------------
def _parse_address(value: object) -> _Address | None:
    """An IP from a peer address or an X-Forwarded-For entry (``[v6]:port`` and ``v4:port`` tolerated)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_trusted_proxies(values: Iterable[str | Network] | str) -> tuple[Network, ...]:
    """IPs and CIDRs (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``) as networks; ``ConfigurationError`` if malformed."""
    if isinstance(values, str):
        values = [values]
    networks: list[Network] = []
    for value in values:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(value)
            continue
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            message = f"trusted_proxies: {value!r} is not an IP address or CIDR."
            raise ConfigurationError(message, variable="trusted_proxies") from None
    return tuple(networks)


def _trusted(addr: _Address, networks: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def client_ip(
    peer_ip: str | None,
    forwarded_for: str | Sequence[str] | None,
    trusted_proxies: Iterable[str | Network] = (),
) -> str | None:
    """The client's IP address as far as it can be trusted.

    Without trusted proxies (the default) this is the connection's peer address
    and ``X-Forwarded-For`` is ignored: any client can send that header, so
    honouring it would let an attacker pick the IP that rate limits and audit
    rows see. With ``trusted_proxies`` and a peer inside them, the header is
    walked from the right (the entry the nearest proxy appended) skipping
    trusted hops; the first untrusted address is the client. ``None`` when the
    peer is not an IP address (e.g. a Unix socket).
    """
    peer = _parse_address(peer_ip)
    if peer is None:
        return None
    networks = parse_trusted_proxies(trusted_proxies)
    if not networks or not _trusted(peer, networks) or not forwarded_for:
        return str(peer)
    headers = [forwarded_for] if isinstance(forwarded_for, str) else list(forwarded_for)
    hops = [part for header in headers for part in header.split(",")]
    client = peer
    for hop in reversed(hops):
        addr = _parse_address(hop)
        if addr is None:
            break  # garbage left of a trusted hop: stop at the last address we could trust
        client = addr
        if not _trusted(addr, networks):
            break
    return str(client)


# ---------------------------------------------------------------------------
# Tokens in requests
# ---------------------------------------------------------------------------
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/=-]+) *")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not authorization or len(authorization) > 8192:
        return None
    match = _BEARER.fullmatch(authorization)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CookieSettings:
    """Token cookies (off by default: tokens travel in JSON bodies and the ``Authorization`` header).

    When enabled, login and refresh set two httpOnly cookies: the access token
    (``path``, default ``/``, so the app's routes receive it) and the refresh token
    on a narrow path (``refresh_path``, default ``<prefix>/refresh``) so it is only
    ever sent to the refresh endpoint. Response bodies then omit ``refresh_token``.
    ``samesite="none"`` requires ``secure=True`` and CSRF protection in the app.
    """

    enabled: bool = False
    access_name: str = "mm_access"
    refresh_name: str = "mm_refresh"
    secure: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    refresh_path: str | None = None
    domain: str | None = None

    def __post_init__(self) -> None:
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError('cookies.samesite must be "lax", "strict" or "none".', variable="cookies")
        if self.samesite == "none" and not self.secure:
            raise ConfigurationError('cookies.samesite="none" requires secure=True.', variable="cookies")
        if not self.access_name or not self.refresh_name or self.access_name == self.refresh_name:
            raise ConfigurationError("cookies need two different, non-empty names.", variable="cookies")

    def refresh_cookie_path(self, prefix: str) -> str:
        return self.refresh_path or f"{prefix.rstrip('/')}/refresh"


@dataclass(frozen=True)
class CookieSpec:
    """One ``Set-Cookie``; ``value=""`` with ``max_age=0`` clears it."""

    name: str
    value: str
    max_age: int
    path: str
    domain: str | None
    secure: bool
    samesite: Literal["lax", "strict", "none"]
    httponly: bool = True


def token_cookies(
    settings: CookieSettings,
    prefix: str,
    *,
    access_token: str,
    access_max_age: int,
    refresh_token: str,
    refresh_max_age: int,
) -> list[CookieSpec]:
    common: dict[str, Any] = {"domain": settings.domain, "secure": settings.secure, "samesite": settings.samesite}
    return [
        CookieSpec(settings.access_name, access_token, access_max_age, settings.path, **common),
        CookieSpec(settings.refresh_name, refresh_token, refresh_max_age, settings.refresh_cookie_path(prefix), **common),
    ]


def clear_cookies(settings: CookieSettings, prefix: str) -> list[CookieSpec]:
    common: dict[str, Any] = {"domain": settings.domain, "secure": settings.secure, "samesite": settings.samesite}
    return [
        CookieSpec(settings.access_name, "", 0, settings.path, **common),
        CookieSpec(settings.refresh_name, "", 0, settings.refresh_cookie_path(prefix), **common),
    ]


# ---------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------
_SCALARS = (str, int, float, bool, type(None))


def parse_profile(profile: object, allowed: frozenset[str]) -> dict[str, Any]:
    """The register body's ``profile``: only the app's allow-listed fields, JSON scalars only.

    Accepting arbitrary profile fields from a public endpoint would let anyone set
    e.g. ``role`` on their own account, so nothing is accepted unless allowed.
    """
    if profile is None:
        return {}
    if not isinstance(profile, Mapping):
        raise ValidationError("profile must be an object.", field="profile")
    out: dict[str, Any] = {}
    for key, value in profile.items():
        if not isinstance(key, str) or key not in allowed:
            raise ValidationError("This profile field is not accepted.", field="profile")
        if not isinstance(value, _SCALARS):
            raise ValidationError("Profile values must be strings, numbers, booleans or null.", field="profile")
        out[key] = value
    return out


def user_body(user: User) -> dict[str, Any]:
    return {"user": user.public_dict()}


def _token_fields(access: str, refresh: str, session_id: str, expires_in: int, cookies: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": expires_in, "session_id": session_id}
    if not cookies:
        body["refresh_token"] = refresh
    return body


def login_body(result: LoginResult, *, cookies: bool) -> dict[str, Any]:
    body = _token_fields(result.access_token, result.refresh_token, result.session_id, result.expires_in, cookies)
    body["user"] = result.user.public_dict()
    return body


def tokens_body(pair: TokenPair, *, cookies: bool) -> dict[str, Any]:
    return _token_fields(pair.access_token, pair.refresh_token, pair.session_id, pair.expires_in, cookies)


def session_body(session: Session, current_session_id: str | None) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": session.created_at.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "last_active_at": session.last_active_at.isoformat(),
        "ip_address": session.ip_address,
        "user_agent": session.user_agent,
        "current": session.id == current_session_id,
    }
