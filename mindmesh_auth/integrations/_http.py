"""Framework-free HTTP pieces shared by the FastAPI router and the Flask blueprint.

- :data:`ROUTES`: the route table (method, path, success status, documented errors, body members).
- :func:`error_response`: ``AuthError`` -> (status, JSON body, headers).
- :func:`client_ip`: the client address, honouring ``X-Forwarded-For`` only from trusted proxies
  (IPs, CIDRs, and ``"unix"`` for the proxy in front of a Unix socket).
- :class:`CookieSettings`: optional httpOnly cookies for the tokens, and :func:`check_csrf`,
  the cross-site rule for requests that carry them.
- :data:`NO_STORE`: the caching headers of every auth response.
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
from typing import Any, Final, Literal

from ..core.errors import AuthError, ConfigurationError, InvalidToken, Overloaded, RateLimited, ValidationError
from ..core.models import LoginResult, Session, TokenPair, User

__all__ = [
    "CSRF_HEADER",
    "EMAIL_CHANGE_BODY",
    "ERROR_DESCRIPTIONS",
    "NO_STORE",
    "OTP_SEND_BODY",
    "RESET_REQUEST_BODY",
    "ROUTES",
    "SAFE_METHODS",
    "UNIX_PEER",
    "BodyField",
    "CookieSettings",
    "CookieSpec",
    "CsrfRejected",
    "ErrorResponse",
    "Network",
    "PayloadTooLarge",
    "RouteSpec",
    "TrustedProxy",
    "bearer_token",
    "check_csrf",
    "clear_cookies",
    "client_ip",
    "device_cookie",
    "error_response",
    "login_body",
    "login_cookie",
    "parse_profile",
    "parse_trusted_proxies",
    "public_user",
    "session_body",
    "token_cookies",
    "tokens_body",
    "user_body",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNIX_PEER: Final = "unix"
"""The ``trusted_proxies`` entry that trusts a peer that is not an IP address (a proxy on a Unix socket)."""
TrustedProxy = Network | Literal["unix"]


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
    ``hashing``: the facade group and method the endpoint calls that may run
    bcrypt (``("auth", "login")``); whether it does follows
    :func:`~mindmesh_auth.hashing.hashing_operations`, and then the FastAPI
    router runs the route on the async facade's hashing pool. ``None``: the
    route never hashes a password or a code.
    """

    name: str
    method: str
    path: str
    status: int
    errors: tuple[int, ...]
    summary: str
    authenticated: bool = False
    body: tuple[BodyField, ...] | None = None
    hashing: tuple[str, str] | None = None


_EMAIL = BodyField("email")
_PASSWORD = BodyField("password")

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "register",
        "POST",
        "/register",
        201,
        (409, 413, 422, 503),
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
        hashing=("auth", "register"),
    ),
    RouteSpec(
        "login",
        "POST",
        "/login",
        200,
        (401, 413, 422, 429, 503),
        "Check the password and e-mail a login code",
        body=(
            _EMAIL,
            _PASSWORD,
            BodyField(
                "device_token",
                required=False,
                description="The device_token an earlier /verify-otp returned; omit when the device cookie is set.",
            ),
        ),
        hashing=("auth", "login"),
    ),
    RouteSpec(
        "verify_otp",
        "POST",
        "/verify-otp",
        200,
        (401, 413, 422, 429, 503),
        "Complete the login with the e-mailed code",
        body=(
            _EMAIL,
            BodyField("code", description="The 6-digit code from the e-mail."),
            BodyField(
                "login_handle",
                required=False,
                description="The login_handle /login returned; omit when the login cookie is set.",
            ),
        ),
        hashing=("auth", "verify_otp"),
    ),
    RouteSpec(
        "refresh",
        "POST",
        "/refresh",
        200,
        (401, 403, 413, 422, 503),
        "Rotate the refresh token, get a new access token",
        body=(BodyField("refresh_token", required=False, description="Omit when the refresh cookie is enabled and set."),),
    ),
    RouteSpec(
        "logout",
        "POST",
        "/logout",
        204,
        (401, 403, 413, 422, 503),
        "Revoke the current session",
        authenticated=True,
        body=(
            BodyField(
                "refresh_token",
                required=False,
                description="Finds the session when the access token has expired; omit when the refresh cookie is set.",
            ),
        ),
    ),
    RouteSpec("me", "GET", "/me", 200, (401, 413, 503), "The current user", authenticated=True),
    RouteSpec(
        "otp_send",
        "POST",
        "/otp/send",
        202,
        (413, 422, 429, 503),
        "E-mail a one-time code for a purpose",
        body=(_EMAIL, BodyField("purpose", description='A configured purpose other than "login", e.g. "email_verify".')),
        hashing=("otp", "send"),
    ),
    RouteSpec(
        "otp_verify",
        "POST",
        "/otp/verify",
        200,
        (401, 413, 422, 429, 503),
        "Check a one-time code for a purpose",
        body=(_EMAIL, BodyField("code"), BodyField("purpose")),
        hashing=("otp", "verify"),
    ),
    RouteSpec(
        "password_reset_request",
        "POST",
        "/password/reset-request",
        202,
        (413, 422, 503),
        "E-mail a password reset token",
        body=(_EMAIL,),
    ),
    RouteSpec(
        "password_reset",
        "POST",
        "/password/reset",
        204,
        (400, 413, 422, 503),
        "Set a new password with a reset token",
        body=(BodyField("token"), BodyField("new_password")),
        hashing=("password", "reset"),
    ),
    RouteSpec("list_sessions", "GET", "/sessions", 200, (401, 413, 503), "The current user's live sessions", authenticated=True),
    RouteSpec(
        "revoke_session",
        "DELETE",
        "/sessions/{session_id}",
        204,
        (401, 403, 404, 413, 422, 503),
        "Revoke one of the current user's sessions",
        authenticated=True,
    ),
    RouteSpec(
        "delete_account",
        "POST",
        "/account/delete",
        204,
        (401, 403, 413, 422, 429, 503),
        "Delete the current user's account, given its password",
        authenticated=True,
        body=(BodyField("password", description="The account's current password."),),
        hashing=("account", "delete"),
    ),
    RouteSpec(
        "email_change_request",
        "POST",
        "/account/email",
        202,
        (401, 403, 413, 422, 429, 503),
        "E-mail a code to a new address for the current user's account, given its password",
        authenticated=True,
        body=(
            BodyField("password", description="The account's current password."),
            BodyField("new_email", description="The address to move the account to; the code goes there."),
        ),
        hashing=("account", "request_email_change"),
    ),
    RouteSpec(
        "email_change_confirm",
        "POST",
        "/account/email/confirm",
        200,
        (401, 403, 409, 413, 422, 429, 503),
        "Move the current user's account to the new address with the code mailed there",
        authenticated=True,
        body=(
            BodyField("new_email", description="The address /account/email sent the code to."),
            BodyField("code", description="The 6-digit code from the e-mail."),
        ),
        hashing=("account", "confirm_email_change"),
    ),
    RouteSpec(
        "password_change",
        "POST",
        "/password/change",
        204,
        (401, 403, 413, 422, 429, 503),
        "Change the current user's password, given the current one; the other sessions end",
        authenticated=True,
        body=(
            BodyField("current_password", description="The account's current password."),
            BodyField("new_password", description="The password to set; the password policy applies."),
        ),
        hashing=("password", "change"),
    ),
)

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid or expired password reset token (`invalid_reset_token`).",
    401: "Invalid credentials, token, refresh token or code (`invalid_credentials`, `invalid_token`, "
    "`invalid_refresh_token`, `refresh_token_reused`, `invalid_otp`).",
    403: "A cookie-authenticated request failed the cross-site check (`csrf_rejected`): cross-site "
    "`Sec-Fetch-Site`, an `Origin` not allowed, or no `X-Requested-With` header. Only when cookies are enabled.",
    404: "Unknown session, or a session of another user (`session_not_found`).",
    409: "The email (or the new address of an e-mail change) already has an account (`email_taken`).",
    413: "The request body is larger than the configured limit (`payload_too_large`, 64 KiB by default).",
    422: "Malformed input (`invalid_input`, `invalid_email`, `invalid_password`), or a wrong password where the "
    "current one is asked for (`invalid_password`).",
    429: "Rate limited (`rate_limited`); the `Retry-After` header gives the seconds to wait.",
    503: "Mail delivery or storage failed (`delivery_failed`, `storage_error`, `storage_unavailable`), or too many "
    "password hashes are queued (`overloaded`, on the routes that hash; `Retry-After` gives the seconds to wait).",
}

RESET_REQUEST_BODY: dict[str, str] = {
    "status": "accepted",
    "message": "If the address has an account, a password reset message is on its way.",
}
OTP_SEND_BODY: dict[str, str] = {
    "status": "accepted",
    "message": "If the address has an account, a code is on its way.",
}
EMAIL_CHANGE_BODY: dict[str, str] = {
    "status": "accepted",
    "message": "A code is on its way to the new address.",
}


NO_STORE: dict[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Sent on every response of the auth routes: they carry tokens, user data or session lists."""


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
class CsrfRejected(AuthError):
    """A cookie-authenticated, state-changing request that may come from another site (403)."""

    code = "csrf_rejected"
    status = 403
    default_message = "Cross-site request refused."


class PayloadTooLarge(AuthError):
    """The request body is over the configured limit (413); it was not read in full."""

    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


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
    if isinstance(exc, (RateLimited, Overloaded)):
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


def parse_trusted_proxies(values: Iterable[str | Network] | str) -> tuple[TrustedProxy, ...]:
    """IPs and CIDRs (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``) as networks; ``ConfigurationError`` if malformed.

    The literal entry ``"unix"`` (:data:`UNIX_PEER`) is kept as is: it trusts a
    connection whose peer is not an IP address, i.e. the proxy in front of a
    Unix socket.
    """
    if isinstance(values, str):
        values = [values]
    entries: list[TrustedProxy] = []
    for value in values:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            entries.append(value)
            continue
        if isinstance(value, str) and value.strip().lower() == UNIX_PEER:
            if UNIX_PEER not in entries:
                entries.append(UNIX_PEER)
            continue
        try:
            entries.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            message = f'trusted_proxies: {value!r} is not an IP address, a CIDR or "unix".'
            raise ConfigurationError(message, variable="trusted_proxies") from None
    return tuple(entries)


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
    trusted hops; the first untrusted address is the client.

    A peer that is not an IP address (a Unix socket) gives ``None``, unless
    ``trusted_proxies`` holds ``"unix"``: the peer is then the trusted proxy in
    front of the socket, and the header is walked by the same rule (``None``
    when it is missing or its last entry is not an address).
    """
    entries = parse_trusted_proxies(trusted_proxies)
    networks = [entry for entry in entries if not isinstance(entry, str)]
    peer = _parse_address(peer_ip)
    client: _Address | None = peer
    if peer is None:
        if UNIX_PEER not in entries or not forwarded_for:
            return None
    elif not networks or not _trusted(peer, networks) or not forwarded_for:
        return str(peer)
    headers = [forwarded_for] if isinstance(forwarded_for, str) else list(forwarded_for)
    hops = [part for header in headers for part in header.split(",")]
    for hop in reversed(hops):
        addr = _parse_address(hop)
        if addr is None:
            break  # garbage left of a trusted hop: stop at the last address we could trust
        client = addr
        if not _trusted(addr, networks):
            break
    return None if client is None else str(client)


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
_ORIGIN = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-Requested-With"
"""The header a cookie-authenticated unsafe request must carry (any non-empty value).

Browsers only let a page add a custom header to a cross-origin request after a
CORS preflight, which the app does not grant to other sites; a plain HTML form
or a ``text/plain`` fetch cannot carry it.
"""


def _origin(value: str) -> str:
    match = _ORIGIN.fullmatch(value.strip().rstrip("/"))
    if match is None:
        raise ConfigurationError(
            f"cookies.allowed_origins: {value!r} is not an origin like https://app.example.", variable="cookies"
        )
    return f"{match.group(1).lower()}://{match.group(2).lower()}{match.group(3) or ''}"


@dataclass(frozen=True)
class CookieSettings:
    """Token cookies (off by default: tokens travel in JSON bodies and the ``Authorization`` header).

    When enabled, ``/verify-otp`` and ``/refresh`` set two httpOnly cookies:

    - the access token, named ``__Host-mm_access`` (``Secure``, ``Path=/``, no
      ``Domain``: the browser refuses it from any other origin or path), sent to
      every route of the app;
    - the refresh token, named ``__Secure-mm_refresh``, scoped to the auth prefix
      (``refresh_path``, default ``<prefix>``) so ``/refresh`` and ``/logout``
      receive it and the rest of the app never does.

    ``secure=False`` (local HTTP development only) drops the ``__Host-`` and
    ``__Secure-`` prefixes and the ``Secure`` attribute. Explicit names are
    checked against their prefix's rules. Response bodies omit
    ``refresh_token``.

    CSRF: state-changing requests authenticated by these cookies must pass
    :func:`check_csrf` (``allowed_origins``: extra origins besides the request's
    own, e.g. ``("https://app.example",)`` behind a TLS-terminating proxy).

    Whether or not the token cookies are enabled, two more httpOnly cookies
    carry what binds a login to its client (``Path=/``, no ``Domain``):
    ``__Host-mm_login`` (``login_name``), the handle ``/login`` returns, for
    ``/verify-otp``, cleared by it; ``__Host-mm_device`` (``device_name``), the
    device token a successful ``/verify-otp`` issues, sent back to ``/login``
    so failures from elsewhere do not delay this client (docs/security.md).
    ``secure=False`` names them ``mm_login`` and ``mm_device``.
    """

    enabled: bool = False
    access_name: str = ""  # "": the default name (see above)
    refresh_name: str = ""
    secure: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    refresh_path: str | None = None
    domain: str | None = None
    allowed_origins: tuple[str, ...] = ()
    login_name: str = ""  # "": __Host-mm_login (mm_login without secure)
    device_name: str = ""  # "": __Host-mm_device (mm_device without secure)

    def __post_init__(self) -> None:
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError('cookies.samesite must be "lax", "strict" or "none".', variable="cookies")
        if self.samesite == "none" and not self.secure:
            raise ConfigurationError('cookies.samesite="none" requires secure=True.', variable="cookies")
        host_ok = self.secure and self.path == "/" and not self.domain
        if not self.access_name:
            default = "__Host-mm_access" if host_ok else "__Secure-mm_access" if self.secure else "mm_access"
            object.__setattr__(self, "access_name", default)
        if not self.refresh_name:
            object.__setattr__(self, "refresh_name", "__Secure-mm_refresh" if self.secure else "mm_refresh")
        if not self.login_name:
            object.__setattr__(self, "login_name", "__Host-mm_login" if self.secure else "mm_login")
        if not self.device_name:
            object.__setattr__(self, "device_name", "__Host-mm_device" if self.secure else "mm_device")
        names = (self.access_name, self.refresh_name, self.login_name, self.device_name)
        if len(set(names)) != len(names):
            raise ConfigurationError("cookies need four different names.", variable="cookies")
        for name in (self.login_name, self.device_name):
            if name.startswith("__Host-") and not self.secure:
                raise ConfigurationError(
                    f"cookies: {name!r} (a __Host- name) requires secure=True.", variable="cookies"
                )
        if not self.access_name or not self.refresh_name or self.access_name == self.refresh_name:
            raise ConfigurationError("cookies need two different, non-empty names.", variable="cookies")
        for name in (self.access_name, self.refresh_name):
            if name.startswith(("__Host-", "__Secure-")) and not self.secure:
                raise ConfigurationError(
                    f"cookies: {name!r} (a __Host- or __Secure- name) requires secure=True.", variable="cookies"
                )
        if self.refresh_name.startswith("__Host-"):
            raise ConfigurationError(
                "cookies: the refresh cookie is path-scoped and cannot be a __Host- cookie.", variable="cookies"
            )
        if self.access_name.startswith("__Host-") and not host_ok:
            raise ConfigurationError("cookies: a __Host- cookie requires path='/' and no domain.", variable="cookies")
        origins = (self.allowed_origins,) if isinstance(self.allowed_origins, str) else self.allowed_origins
        object.__setattr__(self, "allowed_origins", tuple(_origin(o) for o in origins))

    def refresh_cookie_path(self, prefix: str) -> str:
        return self.refresh_path or prefix.rstrip("/") or "/"


def check_csrf(
    settings: CookieSettings,
    *,
    method: str,
    origin: str | None,
    fetch_site: str | None,
    requested_with: str | None,
    own_origin: str | None,
) -> None:
    """``CsrfRejected`` (403) unless a cookie-authenticated request is safe to act on.

    Call it only for requests whose credentials come from the cookies (a
    ``Authorization: Bearer`` request is exempt: no other site can make a
    browser send that header). Safe methods pass. An unsafe request is refused
    when ``Sec-Fetch-Site`` is ``cross-site``, when ``Origin`` is present and is
    neither the request's own origin (``own_origin``, ``scheme://host``) nor one
    of ``settings.allowed_origins``, or when it lacks the :data:`CSRF_HEADER`.
    """
    if method.upper() in SAFE_METHODS:
        return
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        raise CsrfRejected()
    if origin is not None:
        try:
            normalized = _origin(origin)
        except ConfigurationError:
            raise CsrfRejected() from None  # "null" (sandboxed or privacy-redirected) and garbage
        allowed = set(settings.allowed_origins)
        if own_origin:
            try:
                allowed.add(_origin(own_origin))
            except ConfigurationError:
                pass
        if normalized not in allowed:
            raise CsrfRejected()
    if not requested_with or not requested_with.strip():
        raise CsrfRejected()


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


def _domain(settings: CookieSettings, name: str) -> str | None:
    return None if name.startswith("__Host-") else settings.domain


def token_cookies(
    settings: CookieSettings,
    prefix: str,
    *,
    access_token: str,
    access_max_age: int,
    refresh_token: str,
    refresh_max_age: int,
) -> list[CookieSpec]:
    common: dict[str, Any] = {"secure": settings.secure, "samesite": settings.samesite}
    access, refresh = settings.access_name, settings.refresh_name
    return [
        CookieSpec(access, access_token, access_max_age, settings.path, _domain(settings, access), **common),
        CookieSpec(
            refresh, refresh_token, refresh_max_age, settings.refresh_cookie_path(prefix), _domain(settings, refresh), **common
        ),
    ]


def login_cookie(settings: CookieSettings, value: str, max_age: int) -> CookieSpec:
    """The login handle's cookie (``max_age=0`` and ``""`` clear it); host-only, ``Path=/``."""
    return CookieSpec(settings.login_name, value, max_age, "/", None, settings.secure, settings.samesite)


def device_cookie(settings: CookieSettings, token: str, max_age: int) -> CookieSpec:
    """The device token's cookie; host-only, ``Path=/``."""
    return CookieSpec(settings.device_name, token, max_age, "/", None, settings.secure, settings.samesite)


def clear_cookies(settings: CookieSettings, prefix: str) -> list[CookieSpec]:
    common: dict[str, Any] = {"secure": settings.secure, "samesite": settings.samesite}
    access, refresh = settings.access_name, settings.refresh_name
    return [
        CookieSpec(access, "", 0, settings.path, _domain(settings, access), **common),
        CookieSpec(refresh, "", 0, settings.refresh_cookie_path(prefix), _domain(settings, refresh), **common),
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


def public_user(user: User, output: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The user as a client sees it: the core fields plus only the profile fields in ``output``.

    A profile can hold anything the app stores on its users (a role, a TOTP
    secret, internal notes); nothing of it leaves the server unless listed.
    """
    body = user.public_dict()
    core = {"id", "email", "email_verified", "blocked", "created_at", "updated_at"}
    return {key: value for key, value in body.items() if key in core or (key in output and key in user.profile)}


def user_body(user: User, output: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {"user": public_user(user, output)}


def _token_fields(access: str, refresh: str, session_id: str, expires_in: int, cookies: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": expires_in, "session_id": session_id}
    if not cookies:
        body["refresh_token"] = refresh
    return body


def login_body(result: LoginResult, *, cookies: bool, output: frozenset[str] = frozenset()) -> dict[str, Any]:
    body = _token_fields(result.access_token, result.refresh_token, result.session_id, result.expires_in, cookies)
    body["user"] = public_user(result.user, output)
    if not cookies and result.device_token:
        body["device_token"] = result.device_token  # like refresh_token: in the body unless cookies are on
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
