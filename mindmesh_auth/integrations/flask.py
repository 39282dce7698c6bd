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

Only binding code lives here: the endpoints themselves (body parsing, tokens,
cookies, error mapping) are written once in :mod:`._endpoints` and shared with
the FastAPI router, so both answer byte-identical bodies. Errors are answered
by the endpoint layer, so the app needs no error handler. ``login_required`` is bound to an auth object
explicitly (``make_login_required(auth)`` or ``bp.login_required``); it puts the
user on ``flask.g.user`` (and the session id on ``g.auth_session_id``) and
answers 401 itself otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, g, request

from ..core.errors import AuthError
from ..facade import MindmeshAuth
from ._endpoints import MAX_BODY_BYTES, Endpoints, HttpRequest, HttpResponse, authenticate_request, content_length_over
from ._http import ROUTES, CookieSettings, error_response

__all__ = ["AuthBlueprint", "CookieSettings", "create_auth_blueprint", "make_login_required"]

P = ParamSpec("P")
R = TypeVar("R")


_CHUNK = 64 * 1024


def _read_body(limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to exceed ``limit``: a larger ``Content-Length``
    is refused before anything is read; otherwise the stream is read up to ``limit + 1`` bytes."""
    if content_length_over(request.headers.get("Content-Length"), limit):
        return None
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def _headers_only(path_params: dict[str, str] | None = None) -> HttpRequest:
    headers = request.headers
    return HttpRequest(
        method=request.method,
        origin=headers.get("Origin"),
        fetch_site=headers.get("Sec-Fetch-Site"),
        requested_with=headers.get("X-Requested-With"),
        own_origin=request.host_url.rstrip("/"),
        authorization=headers.get("Authorization"),
        cookies=request.cookies,
        path_params=path_params or {},
    )


def _read(path_params: dict[str, str], limit: int = MAX_BODY_BYTES) -> HttpRequest:
    headers = request.headers
    body = _read_body(limit)
    return HttpRequest(
        body=body or b"",
        body_too_large=body is None,
        method=request.method,
        origin=headers.get("Origin"),
        fetch_site=headers.get("Sec-Fetch-Site"),
        requested_with=headers.get("X-Requested-With"),
        own_origin=request.host_url.rstrip("/"),
        content_type=headers.get("Content-Type"),
        authorization=headers.get("Authorization"),
        cookies=request.cookies,
        path_params=path_params,
        peer=request.remote_addr,
        forwarded_for=tuple(headers.getlist("X-Forwarded-For")),
        user_agent=headers.get("User-Agent"),
    )


def _write(reply: HttpResponse) -> Response:
    mimetype = "application/json" if reply.body is not None else None
    response = Response(reply.content, status=reply.status, headers=dict(reply.headers), mimetype=mimetype)
    for c in reply.cookies:
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
    return response


def make_login_required(
    auth: MindmeshAuth, *, cookies: CookieSettings | None = None
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """A decorator for the app's views: ``g.user`` is the ``User`` of the request's
    access token (``Authorization: Bearer``, or the access cookie when
    ``cookies.enabled``); otherwise a 401 JSON error with ``WWW-Authenticate: Bearer``.
    A cookie-authenticated request with an unsafe method must pass the CSRF check
    (``Sec-Fetch-Site``, ``Origin``, ``X-Requested-With``): otherwise 403 ``csrf_rejected``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                found = authenticate_request(auth, _headers_only(), cookies)
            except AuthError as exc:
                err = error_response(exc)
                return _write(HttpResponse(err.status, err.body, err.headers))
            g.user = found.user
            g.auth_session_id = found.session.id
            return view(*args, **kwargs)

        return wrapper

    return decorator


class AuthBlueprint(Blueprint):
    """The blueprint returned by :func:`create_auth_blueprint`."""

    auth: MindmeshAuth
    cookies: CookieSettings
    login_required: Callable[[Callable[..., Any]], Callable[..., Any]]


def _view(endpoints: Endpoints, name: str) -> Callable[..., Response]:
    def view(**path_params: str) -> Response:
        return _write(endpoints.handle(name, _read(path_params, endpoints.max_body_bytes)))

    return view


def create_auth_blueprint(
    auth: MindmeshAuth,
    *,
    url_prefix: str = "/auth",
    trusted_proxies: Iterable[str] = (),
    cookies: CookieSettings | None = None,
    profile_fields: Iterable[str] = (),
    profile_output: Iterable[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    name: str = "mindmesh_auth",
) -> AuthBlueprint:
    """The auth routes under ``url_prefix`` (see ``docs/integrations.md``).

    ``trusted_proxies``: IPs/CIDRs of your reverse proxies, and ``"unix"`` for
    one in front of a Unix socket; only then is ``X-Forwarded-For`` read (do not also rewrite ``remote_addr`` with ProxyFix).
    ``cookies``: :class:`CookieSettings` (off by default). ``profile_fields``:
    profile fields ``/register`` accepts (none by default). ``profile_output``:
    profile fields the user object in responses carries (none by default).
    ``max_body_bytes``: larger request bodies are answered 413 before they are
    read in full (64 KiB by default).
    """
    if not isinstance(auth, MindmeshAuth):
        raise TypeError("auth must be a MindmeshAuth (use .sync of an AsyncMindmeshAuth)")
    cookie_settings = cookies or CookieSettings()
    prefix = url_prefix.rstrip("/")
    endpoints = Endpoints(
        auth,
        prefix=prefix,
        cookies=cookie_settings,
        trusted_proxies=trusted_proxies,
        profile_fields=profile_fields,
        profile_output=profile_output,
        max_body_bytes=max_body_bytes,
    )

    bp = AuthBlueprint(name, __name__, url_prefix=prefix)
    bp.auth = auth
    bp.cookies = cookie_settings
    bp.login_required = make_login_required(auth, cookies=cookie_settings)
    for spec in ROUTES:
        rule = spec.path.replace("{", "<").replace("}", ">")
        bp.add_url_rule(rule, endpoint=spec.name, view_func=_view(endpoints, spec.name), methods=[spec.method])
    return bp
