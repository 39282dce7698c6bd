"""Every HTTP endpoint, written once and framework-free.

The FastAPI router and the Flask blueprint only bind these: they read the
framework's request into an :class:`HttpRequest`, call
:meth:`Endpoints.handle` with the route's name from :data:`~._http.ROUTES`, and
write the :class:`HttpResponse` back (status, JSON bytes, headers, cookies).
Everything else is decided here, once:

- the JSON body: one parser for every route, driven by the route's
  :class:`~._http.BodyField` members, so the same bad input gets the same
  ``{"error": {...}}`` body (never echoing the input) from both frameworks;
- the access token (``Authorization: Bearer``, then the access cookie when
  cookies are on), the refresh-cookie fallback, and which cookies to set or clear;
- the client context (client IP through the trusted proxies, user agent);
- the mapping of every ``AuthError`` to its status, body and headers.

Endpoints run on the synchronous facade. The Flask blueprint calls
:meth:`Endpoints.handle` directly; the FastAPI router runs the same call on the
async facade's thread pool, so bcrypt and storage work stay off the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..core.errors import (
    AuthError,
    InvalidOtp,
    InvalidRefreshToken,
    InvalidToken,
    UserNotFound,
    ValidationError,
)
from ..core.models import RequestContext, SessionWithUser
from ..facade import MindmeshAuth
from ._http import (
    EMAIL_CHANGE_BODY,
    NO_STORE,
    OTP_SEND_BODY,
    RESET_REQUEST_BODY,
    ROUTES,
    BodyField,
    CookieSettings,
    CookieSpec,
    Network,
    PayloadTooLarge,
    bearer_token,
    check_csrf,
    clear_cookies,
    client_ip,
    device_cookie,
    error_response,
    login_body,
    login_cookie,
    parse_profile,
    parse_trusted_proxies,
    session_body,
    token_cookies,
    tokens_body,
    user_body,
)

__all__ = [
    "MAX_BODY_BYTES",
    "Endpoints",
    "HttpRequest",
    "HttpResponse",
    "access_token",
    "authenticate",
    "authenticate_request",
    "body_schema",
    "content_length_over",
    "parse_body",
]

MAX_BODY_BYTES = 64 * 1024
"""The default body limit: larger bodies are answered 413 before they are read in full
(no route needs more than a few hundred bytes). ``max_body_bytes=`` on the factories changes it."""

CSRF_ROUTES = frozenset(
    {
        "refresh",
        "logout",
        "revoke_session",
        "delete_account",
        "email_change_request",
        "email_change_confirm",
        "password_change",
    }
)
"""The auth routes that change state with the credentials the cookies carry."""

Body = dict[str, Any]

"""The message of the ``InvalidPassword`` ``password.change`` raises for a wrong current password."""


# ---------------------------------------------------------------------------
# Request and response values
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpRequest:
    """What an endpoint reads from a request, filled in by the framework binding.

    ``body`` is the raw body (``b""`` when there is none), ``body_too_large`` set
    instead when the binding stopped reading it at the limit; ``peer`` the
    connection's peer address; ``forwarded_for`` every ``X-Forwarded-For`` header,
    in order; ``origin``, ``fetch_site`` (``Sec-Fetch-Site``), ``requested_with``
    (``X-Requested-With``) and ``own_origin`` (``scheme://host`` of the request)
    feed the CSRF check of cookie-authenticated requests.
    """

    body: bytes = b""
    body_too_large: bool = False
    method: str = "GET"
    content_type: str | None = None
    authorization: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    peer: str | None = None
    forwarded_for: tuple[str, ...] = ()
    user_agent: str | None = None
    origin: str | None = None
    fetch_site: str | None = None
    requested_with: str | None = None
    own_origin: str | None = None


def content_length_over(value: str | None, limit: int) -> bool:
    """Whether a ``Content-Length`` header announces more than ``limit`` bytes (a malformed one counts as over)."""
    if value is None:
        return False
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        return True
    return int(text) > limit


@dataclass(frozen=True)
class HttpResponse:
    """What the binding writes back: ``body`` ``None`` means no content."""

    status: int
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: tuple[CookieSpec, ...] = ()

    @property
    def content(self) -> bytes:
        """The JSON body as sent: compact, keys in the order the body was built, UTF-8."""
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------
# The body parser
# ---------------------------------------------------------------------------
def _invalid(message: str, name: str | None = None) -> NoReturn:
    raise ValidationError(message, field=name)


def _reject_constant(_name: str) -> NoReturn:
    raise ValueError("not JSON")  # NaN and Infinity are not JSON


def _is_json(content_type: str | None) -> bool:
    if not content_type or not content_type.strip():
        return True  # no declared type: the body is read as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parse_body(members: Iterable[BodyField], raw: bytes, content_type: str | None = None, *, limit: int = MAX_BODY_BYTES) -> Body:
    """The route's body members, checked; ``ValidationError`` (422 ``invalid_input``) otherwise.

    An empty body is an empty object. Members not declared are ignored. An
    optional member that is absent or ``null`` is ``None``. Messages name the
    member, never its value.
    """
    data: object = {}
    if raw.strip():
        if not _is_json(content_type):
            _invalid("The request body must be JSON (Content-Type: application/json).")
        if len(raw) > limit:
            _invalid("The request body is too large.")
        try:
            data = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            _invalid("The request body is not valid JSON.")
    if not isinstance(data, dict):
        _invalid("The request body must be a JSON object.")
    out: Body = {}
    for member in members:
        value = data.get(member.name)
        if value is None:
            if member.required:
                verb = "must be a string" if member.name in data else "is required"
                _invalid(f"The request is not valid: {member.name} {verb}.", member.name)
        elif member.kind == "string" and not isinstance(value, str):
            _invalid(f"The request is not valid: {member.name} must be a string.", member.name)
        elif member.kind == "profile" and not isinstance(value, dict):
            _invalid(f"The request is not valid: {member.name} must be an object.", member.name)
        out[member.name] = value
    return out


_SCALAR_SCHEMA = {"anyOf": [{"type": t} for t in ("string", "number", "boolean", "null")]}


def body_schema(members: Iterable[BodyField]) -> dict[str, Any]:
    """The JSON Schema of a body that :func:`parse_body` accepts (for the OpenAPI document)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for member in members:
        schema: dict[str, Any] = (
            {"type": "string"} if member.kind == "string" else {"type": "object", "additionalProperties": _SCALAR_SCHEMA}
        )
        if not member.required:
            schema = {"anyOf": [schema, {"type": "null"}]}
        else:
            required.append(member.name)
        if member.description:
            schema["description"] = member.description
        properties[member.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------
def access_token(authorization: str | None, cookies: Mapping[str, str], settings: CookieSettings | None) -> str | None:
    """The request's access token: the bearer header, else the access cookie when cookies are on."""
    token = bearer_token(authorization)
    if token is None and settings is not None and settings.enabled:
        token = cookies.get(settings.access_name) or None
    return token


def authenticate(
    auth: MindmeshAuth, authorization: str | None, cookies: Mapping[str, str], settings: CookieSettings | None
) -> SessionWithUser:
    """The user and session of the request's access token; ``InvalidToken`` (401) otherwise."""
    token = access_token(authorization, cookies, settings)
    if token is None:
        raise InvalidToken("Authentication required.")
    return auth.auth.authenticate(token)


def cookie_credentials(request: HttpRequest, settings: CookieSettings | None) -> bool:
    """Whether the request's credentials come from the token cookies (no bearer header, a cookie present)."""
    if settings is None or not settings.enabled or bearer_token(request.authorization) is not None:
        return False
    return bool(request.cookies.get(settings.access_name) or request.cookies.get(settings.refresh_name))


def csrf_guard(request: HttpRequest, settings: CookieSettings | None, method: str | None = None) -> None:
    """``CsrfRejected`` (403) for a cookie-authenticated unsafe request that fails :func:`check_csrf`.

    ``method``: the route's method (default: the request's)."""
    if settings is not None and cookie_credentials(request, settings):
        check_csrf(
            settings,
            method=method or request.method,
            origin=request.origin,
            fetch_site=request.fetch_site,
            requested_with=request.requested_with,
            own_origin=request.own_origin,
        )


def authenticate_request(auth: MindmeshAuth, request: HttpRequest, settings: CookieSettings | None) -> SessionWithUser:
    """For the app's own routes: the CSRF check (cookie credentials, unsafe method), then :func:`authenticate`."""
    csrf_guard(request, settings)
    return authenticate(auth, request.authorization, request.cookies, settings)


# ---------------------------------------------------------------------------
# The endpoints
# ---------------------------------------------------------------------------
Endpoint = Callable[[HttpRequest, Body], HttpResponse]


class Endpoints:
    """The routes of :data:`~._http.ROUTES` over one synchronous facade and its HTTP settings.

    ``handle(name, request)`` never raises an ``AuthError``: it answers it.
    """

    def __init__(
        self,
        auth: MindmeshAuth,
        *,
        prefix: str,
        cookies: CookieSettings | None = None,
        trusted_proxies: Iterable[str | Network] = (),
        profile_fields: Iterable[str] = (),
        profile_output: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
            raise TypeError("max_body_bytes must be a positive int")
        if isinstance(profile_output, str) or isinstance(profile_fields, str):
            raise TypeError("profile_fields and profile_output are collections of names, not one string")
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.profile_output = frozenset(profile_output)
        self.prefix = prefix.rstrip("/")
        self.cookies = cookies or CookieSettings()
        self.networks = parse_trusted_proxies(trusted_proxies)  # IP networks and "unix"
        self.profile_fields = frozenset(profile_fields)
        self._access_age = int(auth.config.access_token_ttl.total_seconds())
        self._refresh_age = int(auth.config.session_ttl.total_seconds())
        self._login_age = int(auth.config.otp_ttl.total_seconds())
        self._device_age = int(auth.config.device_token_ttl.total_seconds())
        self._routes: dict[str, tuple[tuple[BodyField, ...] | None, Endpoint]] = {
            spec.name: (spec.body, getattr(self, spec.name)) for spec in ROUTES
        }
        self._methods = {spec.name: spec.method for spec in ROUTES}

    def handle(self, name: str, request: HttpRequest) -> HttpResponse:
        """Run route ``name`` for ``request``; an ``AuthError`` becomes its error response.

        Order: the body limit (413), the CSRF check of cookie-authenticated
        state-changing routes (403), the body, the endpoint. Every answer is
        ``Cache-Control: no-store``.
        """
        members, endpoint = self._routes[name]
        try:
            if request.body_too_large or len(request.body) > self.max_body_bytes:
                raise PayloadTooLarge()
            if name in CSRF_ROUTES:
                csrf_guard(request, self.cookies, self._methods[name])
            body = (
                parse_body(members, request.body, request.content_type, limit=self.max_body_bytes) if members is not None else {}
            )
            reply = endpoint(request, body)
        except AuthError as exc:
            err = error_response(exc)
            reply = HttpResponse(err.status, err.body, err.headers, self._clear_on_error(name, exc))
        return HttpResponse(reply.status, reply.body, {**reply.headers, **NO_STORE}, reply.cookies)

    def _clear_on_error(self, name: str, exc: AuthError) -> tuple[CookieSpec, ...]:
        """``/logout`` clears the cookies even when nothing valid was presented (not when the CSRF check refused it)."""
        if name == "logout" and isinstance(exc, InvalidToken) and self.cookies.enabled:
            return tuple(clear_cookies(self.cookies, self.prefix))
        return ()

    # -- helpers --------------------------------------------------------------
    def context(self, request: HttpRequest) -> RequestContext:
        ip = client_ip(request.peer, request.forwarded_for, self.networks)
        return RequestContext(ip_address=ip, user_agent=request.user_agent)

    def _who(self, request: HttpRequest) -> SessionWithUser:
        return authenticate(self.auth, request.authorization, request.cookies, self.cookies)

    def _with_tokens(self, body: Body, access: str, refresh: str) -> HttpResponse:
        if not self.cookies.enabled:
            return HttpResponse(200, body)
        specs = token_cookies(
            self.cookies,
            self.prefix,
            access_token=access,
            access_max_age=self._access_age,
            refresh_token=refresh,
            refresh_max_age=self._refresh_age,
        )
        return HttpResponse(200, body, cookies=tuple(specs))

    def _no_content(self, *, clear: bool = False) -> HttpResponse:
        if clear and self.cookies.enabled:
            return HttpResponse(204, cookies=tuple(clear_cookies(self.cookies, self.prefix)))
        return HttpResponse(204)

    # -- routes (one method per ROUTES name) ------------------------------------
    def register(self, request: HttpRequest, body: Body) -> HttpResponse:
        profile = parse_profile(body["profile"], self.profile_fields)
        user = self.auth.auth.register(body["email"], body["password"], context=self.context(request), **profile)
        return HttpResponse(201, user_body(user, self.profile_output))

    def login(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The device token (body, else the device cookie) goes to the core; the login
        handle comes back in the body and in the login cookie (whichever the client keeps)."""
        device = body.get("device_token") or request.cookies.get(self.cookies.device_name) or None
        challenge = self.auth.auth.login(
            body["email"], body["password"], context=self.context(request), device_token=device
        )
        reply: Body = {"otp_required": bool(challenge.otp_required)}
        if challenge.handle is None:
            return HttpResponse(200, reply)
        reply["login_handle"] = challenge.handle
        return HttpResponse(200, reply, cookies=(login_cookie(self.cookies, challenge.handle, self._login_age),))

    def verify_otp(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The handle from the body, else the login cookie; a success sets the device
        cookie and clears the login cookie."""
        handle = body.get("login_handle") or request.cookies.get(self.cookies.login_name) or None
        result = self.auth.auth.verify_otp(
            body["email"], body["code"], "login", handle=handle, context=self.context(request)
        )
        reply = self._with_tokens(
            login_body(result, cookies=self.cookies.enabled, output=self.profile_output),
            result.access_token,
            result.refresh_token,
        )
        extra = [login_cookie(self.cookies, "", 0)]
        if result.device_token:
            extra.append(device_cookie(self.cookies, result.device_token, self._device_age))
        return HttpResponse(reply.status, reply.body, reply.headers, (*reply.cookies, *extra))

    def refresh(self, request: HttpRequest, body: Body) -> HttpResponse:
        token = body["refresh_token"]
        if token is None and self.cookies.enabled:
            token = request.cookies.get(self.cookies.refresh_name) or None
        if token is None:
            raise InvalidRefreshToken()
        pair = self.auth.auth.refresh(token, context=self.context(request))
        return self._with_tokens(tokens_body(pair, cookies=self.cookies.enabled), pair.access_token, pair.refresh_token)

    def logout(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The access token's session; once that token has expired, the session of the
        refresh token (body, else the refresh cookie). Nothing valid: 401, cookies cleared."""
        try:
            session_id = self._who(request).session.id
        except InvalidToken:
            token = body.get("refresh_token")
            if token is None and self.cookies.enabled:
                token = request.cookies.get(self.cookies.refresh_name) or None
            try:
                self.auth.auth.logout_by_refresh_token(token, context=self.context(request))  # type: ignore[arg-type]
            except InvalidRefreshToken:
                raise InvalidToken() from None
            return self._no_content(clear=True)
        self.auth.auth.logout(session_id, context=self.context(request))
        return self._no_content(clear=True)

    def me(self, request: HttpRequest, body: Body) -> HttpResponse:
        return HttpResponse(200, user_body(self._who(request).user, self.profile_output))

    def otp_send(self, request: HttpRequest, body: Body) -> HttpResponse:
        self.auth.otp.send(body["email"], body["purpose"], context=self.context(request))
        return HttpResponse(202, dict(OTP_SEND_BODY))

    def otp_verify(self, request: HttpRequest, body: Body) -> HttpResponse:
        if not self.auth.otp.verify(body["email"], body["code"], body["purpose"], context=self.context(request)):
            raise InvalidOtp()
        return HttpResponse(200, {"verified": True})

    def password_reset_request(self, request: HttpRequest, body: Body) -> HttpResponse:
        self.auth.password.request_reset(body["email"], context=self.context(request))
        return HttpResponse(202, dict(RESET_REQUEST_BODY))

    def password_reset(self, request: HttpRequest, body: Body) -> HttpResponse:
        self.auth.password.reset(body["token"], body["new_password"], context=self.context(request))
        return self._no_content()

    def list_sessions(self, request: HttpRequest, body: Body) -> HttpResponse:
        who = self._who(request)
        sessions = self.auth.sessions.list(who.user.id)
        return HttpResponse(200, {"sessions": [session_body(s, who.session.id) for s in sessions]})

    def revoke_session(self, request: HttpRequest, body: Body) -> HttpResponse:
        who = self._who(request)
        session_id = request.path_params.get("session_id", "")
        self.auth.sessions.revoke(session_id, user_id=who.user.id, context=self.context(request))
        return self._no_content(clear=session_id == who.session.id)

    def delete_account(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The access token's user, with the password: the account and every session end; cookies cleared.
        An account already gone (deleted in parallel) is a 401, as its token now is."""
        who = self._who(request)
        try:
            self.auth.account.delete(who.user.id, body["password"], context=self.context(request))
        except UserNotFound:
            raise InvalidToken() from None
        return self._no_content(clear=True)

    def email_change_request(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The access token's user, with the password: a code goes to the new address; the
        account is unchanged until :meth:`email_change_confirm`. An account already gone is a 401."""
        who = self._who(request)
        try:
            self.auth.account.request_email_change(
                who.user.id, body["password"], body["new_email"], context=self.context(request)
            )
        except UserNotFound:
            raise InvalidToken() from None
        return HttpResponse(202, dict(EMAIL_CHANGE_BODY))

    def email_change_confirm(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The access token's user moves to the new address with the code mailed there;
        the answer is the updated user, as ``/me`` renders it. Sessions and cookies stay."""
        who = self._who(request)
        try:
            user = self.auth.account.confirm_email_change(
                who.user.id, body["new_email"], body["code"], context=self.context(request)
            )
        except UserNotFound:
            raise InvalidToken() from None
        return HttpResponse(200, user_body(user, self.profile_output))

    def password_change(self, request: HttpRequest, body: Body) -> HttpResponse:
        """The access token's user, with the current password: the new one is set, every
        other session ends, this one (and its cookies) stays. An account already gone is a 401."""
        who = self._who(request)
        try:
            self.auth.password.change(
                who.user.id,
                body["current_password"],
                body["new_password"],
                keep_session_id=who.session.id,
                context=self.context(request),
            )
        except UserNotFound:
            raise InvalidToken() from None
        return self._no_content()
