"""A Flask blueprint for the whole auth flow (``pip install "mindmesh-auth[flask]"``).

    from flask import Flask, g
    from mindmesh_auth.integrations.flask import create_auth_blueprint

    bp = create_auth_blueprint(auth)
    app = Flask(__name__)
    app.register_blueprint(bp)

    @app.get("/profile")
    @bp.login_required                 # or make_login_required(auth)
    def profile():
        return g.user.public_dict()

Same routes, JSON bodies and error mapping as the FastAPI router. Errors raised
in the blueprint's views are rendered by a blueprint error handler, so the app
needs no global handler. ``login_required`` is bound to an auth object
explicitly (``make_login_required(auth)`` or ``bp.login_required``); it puts the
user on ``flask.g.user`` (and the session id on ``g.auth_session_id``) and
answers 401 itself otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from ..core.errors import AuthError, InvalidOtp, InvalidRefreshToken, InvalidToken, SessionNotFound, ValidationError
from ..core.models import RequestContext, User
from ..facade import MindmeshAuth
from ._http import (
    OTP_SEND_BODY,
    RESET_REQUEST_BODY,
    ROUTES,
    CookieSettings,
    CookieSpec,
    ErrorResponse,
    Network,
    bearer_token,
    clear_cookies,
    client_ip,
    error_response,
    login_body,
    parse_profile,
    parse_trusted_proxies,
    session_body,
    token_cookies,
    tokens_body,
    user_body,
)

__all__ = ["AuthBlueprint", "CookieSettings", "create_auth_blueprint", "make_login_required"]

P = ParamSpec("P")
R = TypeVar("R")


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error(err: ErrorResponse) -> Response:
    return _json(err.body, err.status, err.headers)


def _apply_cookies(response: Response, specs: Iterable[CookieSpec]) -> None:
    for c in specs:
        response.set_cookie(
            c.name,
            c.value,
            max_age=c.max_age,
            expires=0 if c.max_age == 0 else None,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=c.httponly,
            samesite=c.samesite.title(),
        )


def _access_token(cookies: CookieSettings | None) -> str | None:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None and cookies is not None and cookies.enabled:
        token = request.cookies.get(cookies.access_name) or None
    return token


def _authenticate(auth: MindmeshAuth, cookies: CookieSettings | None) -> tuple[User, str]:
    token = _access_token(cookies)
    if token is None:
        raise InvalidToken("Authentication required.")
    found = auth.auth.authenticate(token)
    return found.user, found.session.id


def make_login_required(
    auth: MindmeshAuth, *, cookies: CookieSettings | None = None
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """A decorator for the app's views: ``g.user`` is the ``User`` of the request's
    access token (``Authorization: Bearer``, or the access cookie when
    ``cookies.enabled``); otherwise a 401 JSON error with ``WWW-Authenticate: Bearer``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                user, sid = _authenticate(auth, cookies)
            except AuthError as exc:
                return _error(error_response(exc))
            g.user = user
            g.auth_session_id = sid
            return view(*args, **kwargs)

        return wrapper

    return decorator


class AuthBlueprint(Blueprint):
    """The blueprint returned by :func:`create_auth_blueprint`."""

    auth: MindmeshAuth
    cookies: CookieSettings
    login_required: Callable[[Callable[..., Any]], Callable[..., Any]]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValidationError(f"The request is not valid: {name} must be a string.", field=name)
    return value


def create_auth_blueprint(
    auth: MindmeshAuth,
    *,
    url_prefix: str = "/auth",
    trusted_proxies: Iterable[str] = (),
    cookies: CookieSettings | None = None,
    profile_fields: Iterable[str] = (),
    name: str = "mindmesh_auth",
) -> AuthBlueprint:
    """The auth routes under ``url_prefix`` (see ``docs/integrations.md``).

    ``trusted_proxies``: IPs/CIDRs of your reverse proxies; only then is
    ``X-Forwarded-For`` read (do not also rewrite ``remote_addr`` with ProxyFix).
    ``cookies``: :class:`CookieSettings` (off by default). ``profile_fields``:
    profile fields ``/register`` accepts (none by default).
    """
    if not isinstance(auth, MindmeshAuth):
        raise TypeError("auth must be a MindmeshAuth (use .sync of an AsyncMindmeshAuth)")
    cookie_settings = cookies or CookieSettings()
    networks: tuple[Network, ...] = parse_trusted_proxies(trusted_proxies)
    allowed_profile = frozenset(profile_fields)
    access_age = int(auth.config.access_token_ttl.total_seconds())
    refresh_age = int(auth.config.session_ttl.total_seconds())
    use_cookies = cookie_settings.enabled
    prefix = url_prefix.rstrip("/")

    bp = AuthBlueprint(name, __name__, url_prefix=prefix)
    bp.auth = auth
    bp.cookies = cookie_settings
    bp.login_required = make_login_required(auth, cookies=cookie_settings)

    def on_auth_error(exc: AuthError) -> Response:
        return _error(error_response(exc))

    bp.register_error_handler(AuthError, on_auth_error)

    def ctx() -> RequestContext:
        ip = client_ip(request.remote_addr, request.headers.getlist("X-Forwarded-For"), networks)
        return RequestContext(ip_address=ip, user_agent=request.headers.get("User-Agent"))

    def with_tokens(body: dict[str, Any], access: str, refresh: str) -> Response:
        response = _json(body)
        if use_cookies:
            specs = token_cookies(
                cookie_settings,
                prefix,
                access_token=access,
                access_max_age=access_age,
                refresh_token=refresh,
                refresh_max_age=refresh_age,
            )
            _apply_cookies(response, specs)
        return response

    def no_content(clear: bool = False) -> Response:
        response = Response(status=204)
        if clear and use_cookies:
            _apply_cookies(response, clear_cookies(cookie_settings, prefix))
        return response

    def register() -> Response:
        body = _body()
        profile = parse_profile(body.get("profile"), allowed_profile)
        user = auth.auth.register(_text(body, "email"), _text(body, "password"), context=ctx(), **profile)
        return _json(user_body(user), 201)

    def login() -> Response:
        body = _body()
        challenge = auth.auth.login(_text(body, "email"), _text(body, "password"), context=ctx())
        return _json({"otp_required": bool(challenge.otp_required)})

    def verify_otp() -> Response:
        body = _body()
        result = auth.auth.verify_otp(_text(body, "email"), _text(body, "code"), "login", context=ctx())
        return with_tokens(login_body(result, cookies=use_cookies), result.access_token, result.refresh_token)

    def refresh() -> Response:
        body = _body()
        token = body.get("refresh_token")
        if token is not None and not isinstance(token, str):
            raise ValidationError("The request is not valid: refresh_token must be a string.", field="refresh_token")
        if token is None and use_cookies:
            token = request.cookies.get(cookie_settings.refresh_name) or None
        if token is None:
            raise InvalidRefreshToken()
        pair = auth.auth.refresh(token, context=ctx())
        return with_tokens(tokens_body(pair, cookies=use_cookies), pair.access_token, pair.refresh_token)

    def logout() -> Response:
        _user, sid = _authenticate(auth, cookie_settings)
        auth.auth.logout(sid, context=ctx())
        return no_content(clear=True)

    def me() -> Response:
        user, _sid = _authenticate(auth, cookie_settings)
        return _json(user_body(user))

    def otp_send() -> Response:
        body = _body()
        auth.otp.send(_text(body, "email"), _text(body, "purpose"), context=ctx())
        return _json(OTP_SEND_BODY, 202)

    def otp_verify() -> Response:
        body = _body()
        if not auth.otp.verify(_text(body, "email"), _text(body, "code"), _text(body, "purpose"), context=ctx()):
            raise InvalidOtp()
        return _json({"verified": True})

    def password_reset_request() -> Response:
        body = _body()
        auth.password.request_reset(_text(body, "email"), context=ctx())
        return _json(RESET_REQUEST_BODY, 202)

    def password_reset() -> Response:
        body = _body()
        auth.password.reset(_text(body, "token"), _text(body, "new_password"), context=ctx())
        return no_content()

    def list_sessions() -> Response:
        user, sid = _authenticate(auth, cookie_settings)
        return _json({"sessions": [session_body(s, sid) for s in auth.sessions.list(user.id)]})

    def revoke_session(session_id: str) -> Response:
        user, sid = _authenticate(auth, cookie_settings)
        session = auth.sessions.get(session_id)
        if session.user_id != user.id:
            raise SessionNotFound()  # never reveal, never touch another user's session
        auth.sessions.revoke(session.id, context=ctx())
        return no_content(clear=session.id == sid)

    views: dict[str, Callable[..., Response]] = {
        "register": register,
        "login": login,
        "verify_otp": verify_otp,
        "refresh": refresh,
        "logout": logout,
        "me": me,
        "otp_send": otp_send,
        "otp_verify": otp_verify,
        "password_reset_request": password_reset_request,
        "password_reset": password_reset,
        "list_sessions": list_sessions,
        "revoke_session": revoke_session,
    }
    for spec in ROUTES:
        rule = spec.path.replace("{", "<").replace("}", ">")
        bp.add_url_rule(rule, endpoint=spec.name, view_func=views[spec.name], methods=[spec.method])
    return bp
