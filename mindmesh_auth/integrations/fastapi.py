"""A FastAPI router for the whole auth flow (``pip install "mindmesh-auth[fastapi]"``).

    from fastapi import Depends, FastAPI
    from mindmesh_auth.integrations.fastapi import create_auth_router

    router = create_auth_router(auth)            # MindmeshAuth or AsyncMindmeshAuth
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)                  # the app's own routes: {"error": ...}, 401 in OpenAPI

    @app.get("/profile")
    async def profile(user: User = Depends(router.current_user)):
        return user.public_dict()

Only binding code lives here: the endpoints themselves (body parsing, tokens,
cookies, error mapping) are written once in :mod:`._endpoints` and shared with
the Flask blueprint, so both answer byte-identical bodies. Each route runs its
endpoint on a thread pool of :class:`~mindmesh_auth.aio.AsyncMindmeshAuth`
(the routes that hash a password on its bounded hashing pool), so bcrypt and
storage work never block the event loop nor hold up token checks. Errors of the auth
routes are answered by the endpoint layer; :func:`install_error_handlers` gives
the app's own routes (``current_user``) the same error shape and documents
their 401 (see ``docs/integrations.md``).
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..aio import AsyncMindmeshAuth
from ..core.errors import AuthError, InvalidToken, Overloaded
from ..core.models import User
from ..facade import MindmeshAuth
from ._endpoints import (
    MAX_BODY_BYTES,
    Endpoints,
    HttpRequest,
    HttpResponse,
    access_token,
    body_schema,
    content_length_over,
    csrf_guard,
)
from ._http import ERROR_DESCRIPTIONS, NO_STORE, ROUTES, CookieSettings, ErrorResponse, RouteSpec, error_response

__all__ = [
    "AUTH_RESPONSES",
    "AuthHTTPException",
    "AuthRouter",
    "CookieSettings",
    "create_auth_router",
    "current_user",
    "get_current_user_dependency",
    "install_error_handlers",
]

AnyAuth = AsyncMindmeshAuth | MindmeshAuth


# ---------------------------------------------------------------------------
# Response models (the OpenAPI schema only; bodies are built in _endpoints)
# ---------------------------------------------------------------------------
class UserOut(BaseModel):
    """The core fields; a router with ``profile_output`` documents a subclass listing those fields."""

    model_config = ConfigDict(extra="forbid")

    id: str
    email: str
    email_verified: bool
    blocked: bool
    created_at: str
    updated_at: str


class UserResponse(BaseModel):
    user: UserOut


_DEVICE_TOKEN = "Absent when cookies are enabled (then the device cookie carries it); send it to /login next time."


class LoginChallengeResponse(BaseModel):
    otp_required: bool
    login_handle: str | None = Field(
        default=None, description="Send it to /verify-otp (or keep the login cookie): it binds the code to this login."
    )


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(default=None, description="Absent when cookies are enabled.")
    token_type: Literal["bearer"]
    expires_in: int
    session_id: str


class LoginResponse(TokenResponse):
    user: UserOut
    device_token: str | None = Field(default=None, description=_DEVICE_TOKEN)


class AcceptedResponse(BaseModel):
    status: str
    message: str


class VerifiedResponse(BaseModel):
    verified: bool


class SessionOut(BaseModel):
    id: str
    created_at: str
    expires_at: str
    last_active_at: str
    ip_address: str | None
    user_agent: str | None
    current: bool


class SessionsResponse(BaseModel):
    sessions: list[SessionOut]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    "register": UserResponse,
    "login": LoginChallengeResponse,
    "verify_otp": LoginResponse,
    "refresh": TokenResponse,
    "me": UserResponse,
    "otp_send": AcceptedResponse,
    "otp_verify": VerifiedResponse,
    "password_reset_request": AcceptedResponse,
    "list_sessions": SessionsResponse,
    "email_change_request": AcceptedResponse,
    "email_change_confirm": UserResponse,
}


_Scalar = str | int | float | bool | None


def _response_models(output: frozenset[str]) -> dict[str, type[BaseModel]]:
    """The response models of a router whose users carry the ``profile_output`` fields."""
    if not output:
        return RESPONSE_MODELS
    names = sorted(output)
    suffix = "_".join(names)
    fields: dict[str, Any] = {f"profile_{i}": (_Scalar, Field(default=None, alias=name)) for i, name in enumerate(names)}
    user_out: type[BaseModel] = create_model(f"UserOut_{suffix}", __base__=UserOut, **fields)
    user_response: type[BaseModel] = create_model(f"UserResponse_{suffix}", user=(user_out, ...))
    login_response: type[BaseModel] = create_model(
        f"LoginResponse_{suffix}",
        __base__=TokenResponse,
        user=(user_out, ...),
        device_token=(str | None, Field(default=None, description=_DEVICE_TOKEN)),
    )
    return {
        **RESPONSE_MODELS,
        "register": user_response,
        "me": user_response,
        "email_change_confirm": user_response,
        "verify_otp": login_response,
    }


# ---------------------------------------------------------------------------
# Errors and OpenAPI
# ---------------------------------------------------------------------------
def _json_error(err: ErrorResponse) -> Response:
    return _write(HttpResponse(err.status, err.body, err.headers))


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "Missing, invalid or expired access token (`invalid_token`).",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    },
}
"""``responses=AUTH_RESPONSES`` documents the 401 of a route using ``current_user`` by hand;
:func:`install_error_handlers` adds it to every such route of the app."""


class AuthHTTPException(HTTPException):
    """Raised by the ``current_user`` dependencies in the app's own routes.

    FastAPI's default handler answers ``{"detail": {"code": ..., "message": ...}}``;
    after :func:`install_error_handlers` it is ``{"error": {...}}`` like the router.
    """

    def __init__(self, err: ErrorResponse) -> None:
        super().__init__(status_code=err.status, detail=err.body["error"], headers=err.headers or None)
        self.response = err


_BEARER_SCHEME = "HTTPBearer"
_COOKIE_SCHEME = "AccessCookie"


def _document_protected_routes(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so every operation secured by the ``current_user`` schemes lists the 401
    (and the 403 of the CSRF check for unsafe methods when the cookie scheme is declared)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorBody" not in components:
            model = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model.pop("$defs", {}))
            components["ErrorBody"] = model
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                schemes = {name for requirement in operation.get("security", []) for name in requirement}
                if not schemes & {_BEARER_SCHEME, _COOKIE_SCHEME}:
                    continue
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "401",
                    {
                        **ref,
                        "description": AUTH_RESPONSES[401]["description"],
                        "headers": AUTH_RESPONSES[401]["headers"],
                    },
                )
                if _COOKIE_SCHEME in schemes and method.upper() not in ("GET", "HEAD", "OPTIONS", "TRACE"):
                    responses.setdefault("403", {**ref, "description": ERROR_DESCRIPTIONS[403]})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """The one call for the app's own routes: render the ``current_user`` 401/403 and any
    ``AuthError`` they let escape as ``{"error": {...}}``, and document the 401 (and the
    CSRF 403) of every route protected by ``current_user`` in ``app.openapi()``.
    The router's own routes do not need it."""
    _document_protected_routes(app)

    async def on_auth_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthHTTPException)
        return _json_error(exc.response)

    async def on_auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        return _json_error(error_response(exc))

    app.add_exception_handler(AuthHTTPException, on_auth_http)
    app.add_exception_handler(AuthError, on_auth_error)


def _responses(spec: RouteSpec) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status in spec.errors:
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
        elif status == 401:
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
        responses[status] = entry
    return responses


def _openapi_extra(spec: RouteSpec) -> dict[str, Any]:
    """The request body and path parameters, documented from the route table (the endpoint reads them)."""
    extra: dict[str, Any] = {}
    if spec.body is not None:
        extra["requestBody"] = {
            "required": any(member.required for member in spec.body),
            "content": {"application/json": {"schema": body_schema(spec.body)}},
        }
    params = [part[1:-1] for part in spec.path.split("/") if part.startswith("{") and part.endswith("}")]
    if params:
        extra["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    return extra


# ---------------------------------------------------------------------------
# Binding: FastAPI request -> HttpRequest, HttpResponse -> FastAPI response
# ---------------------------------------------------------------------------
def _as_async(auth: AnyAuth) -> AsyncMindmeshAuth:
    if isinstance(auth, AsyncMindmeshAuth):
        return auth
    if isinstance(auth, MindmeshAuth):
        return AsyncMindmeshAuth(auth)
    raise TypeError("auth must be a MindmeshAuth or an AsyncMindmeshAuth")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is known to exceed ``limit``: a larger ``Content-Length``
    is refused before anything is read; otherwise the stream is read up to ``limit + 1`` bytes."""
    if content_length_over(request.headers.get("content-length"), limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _own_origin(request: Request) -> str | None:
    host = request.headers.get("host")
    return f"{request.url.scheme}://{host}" if host else None


def _headers_only(request: Request) -> HttpRequest:
    headers = request.headers
    return HttpRequest(
        method=request.method,
        authorization=headers.get("authorization"),
        cookies=request.cookies,
        origin=headers.get("origin"),
        fetch_site=headers.get("sec-fetch-site"),
        requested_with=headers.get("x-requested-with"),
        own_origin=_own_origin(request),
    )


async def _read(request: Request, limit: int = MAX_BODY_BYTES) -> HttpRequest:
    headers = request.headers
    body = await _read_body(request, limit)
    return HttpRequest(
        body=body or b"",
        body_too_large=body is None,
        method=request.method,
        origin=headers.get("origin"),
        fetch_site=headers.get("sec-fetch-site"),
        requested_with=headers.get("x-requested-with"),
        own_origin=_own_origin(request),
        content_type=headers.get("content-type"),
        authorization=headers.get("authorization"),
        cookies=request.cookies,
        path_params=request.path_params,
        peer=request.client.host if request.client else None,
        forwarded_for=tuple(headers.getlist("x-forwarded-for")),
        user_agent=headers.get("user-agent"),
    )


def _write(reply: HttpResponse) -> Response:
    media_type = "application/json" if reply.body is not None else None
    response = Response(reply.content, status_code=reply.status, headers=dict(reply.headers), media_type=media_type)
    for c in reply.cookies:
        response.set_cookie(
            c.name,
            c.value,
            max_age=c.max_age,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=c.httponly,
            samesite=c.samesite,
        )
    return response


_bearer_scheme = HTTPBearer(auto_error=False, description="The access token from /verify-otp or /refresh.")
_Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


def _resolver(auth: AnyAuth, cookies: CookieSettings | None) -> Callable[[Request], Awaitable[User]]:
    a = _as_async(auth)

    async def resolve(request: Request) -> User:
        try:
            csrf_guard(_headers_only(request), cookies)
            token = access_token(request.headers.get("authorization"), request.cookies, cookies)
            if token is None:
                raise InvalidToken("Authentication required.")
            user: User = await a.auth.get_user_from_token(token)
            return user
        except AuthError as exc:
            raise AuthHTTPException(error_response(exc)) from None

    return resolve


def get_current_user_dependency(auth: AnyAuth, *, cookies: CookieSettings | None = None) -> Callable[..., Awaitable[User]]:
    """A dependency for the app's own routes: the ``User`` of the request's access token
    (``Authorization: Bearer``, or the access cookie when ``cookies.enabled``).

    Missing or invalid: 401 with ``WWW-Authenticate: Bearer`` (an :class:`AuthHTTPException`).
    A cookie-authenticated request with an unsafe method must pass the CSRF check
    (``Sec-Fetch-Site``, ``Origin``, ``X-Requested-With``): otherwise 403 ``csrf_rejected``.
    The OpenAPI document shows the bearer scheme (and the cookie scheme when
    cookies are on) on every route using it.
    """
    resolve = _resolver(auth, cookies)

    if cookies is None or not cookies.enabled:

        async def dependency(request: Request, _credentials: _Bearer) -> User:
            return await resolve(request)

        return dependency

    cookie_scheme = APIKeyCookie(
        name=cookies.access_name,
        scheme_name=_COOKIE_SCHEME,
        auto_error=False,
        description="The access token cookie set by /verify-otp and /refresh.",
    )

    async def cookie_dependency(
        request: Request, _credentials: _Bearer, _cookie: Annotated[str | None, Depends(cookie_scheme)]
    ) -> User:
        return await resolve(request)

    return cookie_dependency


async def current_user(request: Request, _credentials: _Bearer) -> User:
    """A dependency using the auth object in ``app.state.mindmesh_auth`` (and the cookie
    settings in ``app.state.mindmesh_auth_cookies``, if any). Prefer ``router.current_user``."""
    state = request.app.state
    bound = getattr(state, "_mindmesh_auth_dependency", None)
    if bound is None:
        auth = getattr(state, "mindmesh_auth", None)
        if auth is None:
            raise RuntimeError("current_user needs app.state.mindmesh_auth (or use router.current_user).")
        bound = _resolver(auth, getattr(state, "mindmesh_auth_cookies", None))
        state._mindmesh_auth_dependency = bound
    user: User = await bound(request)
    return user


class AuthRouter(APIRouter):
    """The router returned by :func:`create_auth_router`."""

    auth: AsyncMindmeshAuth
    cookies: CookieSettings
    current_user: Callable[..., Awaitable[User]]


def _view(a: AsyncMindmeshAuth, endpoints: Endpoints, spec: RouteSpec) -> Callable[..., Awaitable[Response]]:
    name = spec.name
    # A route whose endpoint calls an operation that may run bcrypt (``spec.hashing``) uses the
    # async facade's hashing pool when the config makes it hash, so token checks never queue
    # behind it (docs/performance.md).
    call = a._call_for(*spec.hashing) if spec.hashing is not None else a._call

    async def run(request: Request) -> Response:
        # One of the async facade's pools (with the task's context vars): one hop per request.
        try:
            reply: HttpResponse = await call(endpoints.handle, name, await _read(request, endpoints.max_body_bytes))
        except Overloaded as exc:  # the hashing pool's queue is full: refused before the endpoint ran
            err = error_response(exc)
            reply = HttpResponse(err.status, err.body, {**err.headers, **NO_STORE})
        return _write(reply)

    if not spec.authenticated:
        return run

    async def run_authenticated(request: Request, _credentials: _Bearer) -> Response:
        return await run(request)  # the dependency only documents the bearer scheme

    return run_authenticated


# ---------------------------------------------------------------------------
# The router
# ---------------------------------------------------------------------------
def create_auth_router(
    auth: AnyAuth,
    *,
    prefix: str = "/auth",
    trusted_proxies: Iterable[str] = (),
    cookies: CookieSettings | None = None,
    profile_fields: Iterable[str] = (),
    profile_output: Iterable[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    tags: list[str] | None = None,
) -> AuthRouter:
    """The auth routes under ``prefix`` (see ``docs/integrations.md``).

    ``trusted_proxies``: IPs/CIDRs of your reverse proxies, and ``"unix"`` for
    one in front of a Unix socket (``uvicorn --uds``); only then is
    ``X-Forwarded-For`` read. ``cookies``: :class:`CookieSettings` (off by default).
    ``profile_fields``: profile fields ``/register`` accepts (none by default).
    ``profile_output``: profile fields the user object in responses carries
    (none by default). ``max_body_bytes``: larger request bodies are answered
    413 before they are read in full (64 KiB by default).
    """
    a = _as_async(auth)
    cookie_settings = cookies or CookieSettings()
    full_prefix = prefix.rstrip("/")
    endpoints = Endpoints(
        a.sync,
        prefix=full_prefix,
        cookies=cookie_settings,
        trusted_proxies=trusted_proxies,
        profile_fields=profile_fields,
        profile_output=profile_output,
        max_body_bytes=max_body_bytes,
    )
    models = _response_models(endpoints.profile_output)

    router = AuthRouter(prefix=full_prefix, tags=list(tags or ["auth"]))
    router.auth = a
    router.cookies = cookie_settings
    router.current_user = get_current_user_dependency(a, cookies=cookie_settings)
    for spec in ROUTES:
        router.add_api_route(
            spec.path,
            _view(a, endpoints, spec),
            methods=[spec.method],
            name=f"mindmesh_auth.{spec.name}",
            status_code=spec.status,
            summary=spec.summary,
            response_model=models.get(spec.name),
            response_class=Response if spec.status == 204 else JSONResponse,
            responses=_responses(spec),
            openapi_extra=_openapi_extra(spec),
        )
    return router
