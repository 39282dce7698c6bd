"""A FastAPI router for the whole auth flow (``pip install "mindmesh-auth[fastapi]"``).

    from fastapi import Depends, FastAPI
    from mindmesh_auth.integrations.fastapi import create_auth_router

    router = create_auth_router(auth)            # MindmeshAuth or AsyncMindmeshAuth
    app = FastAPI()
    app.include_router(router)

    @app.get("/profile")
    async def profile(user: User = Depends(router.current_user)):
        return user.public_dict()

Every call goes through :class:`~mindmesh_auth.aio.AsyncMindmeshAuth`, so bcrypt
and storage work run on its thread pool, never on the event loop. Errors are
mapped inside the router (a custom route class), so the app needs no global
exception handler: ``{"error": {"code": ..., "message": ...}}`` with the status
of the error (see ``docs/integrations.md``). FastAPI's own body validation
failures get the same body shape (status 422).
"""

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from ..aio import AsyncMindmeshAuth
from ..core.errors import AuthError, InvalidOtp, InvalidRefreshToken, InvalidToken, SessionNotFound
from ..core.models import RequestContext, Session, SessionWithUser, User
from ..facade import MindmeshAuth
from ._http import (
    ERROR_DESCRIPTIONS,
    OTP_SEND_BODY,
    RESET_REQUEST_BODY,
    ROUTES,
    CookieSettings,
    CookieSpec,
    ErrorResponse,
    Network,
    RouteSpec,
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
    validation_error_response,
)

__all__ = [
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
# Request and response models (the OpenAPI schema; bodies are built in _http)
# ---------------------------------------------------------------------------
class RegisterRequest(BaseModel):
    email: str
    password: str
    profile: dict[str, str | int | float | bool | None] | None = Field(
        default=None, description="Only the profile fields the app allowed (create_auth_router(profile_fields=...))."
    )


class LoginRequest(BaseModel):
    email: str
    password: str


class VerifyOtpRequest(BaseModel):
    email: str
    code: str = Field(description="The 6-digit code from the e-mail.")


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(default=None, description="Omit when the refresh cookie is enabled and set.")


class OtpSendRequest(BaseModel):
    email: str
    purpose: str = Field(description='A configured purpose other than "login", e.g. "email_verify".')


class OtpVerifyRequest(BaseModel):
    email: str
    code: str
    purpose: str


class PasswordResetRequestRequest(BaseModel):
    email: str


class PasswordResetRequest(BaseModel):
    token: str
    new_password: str


class UserOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # plus the app's profile fields

    id: str
    email: str
    email_verified: bool
    blocked: bool
    created_at: str
    updated_at: str


class UserResponse(BaseModel):
    user: UserOut


class LoginChallengeResponse(BaseModel):
    otp_required: bool


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(default=None, description="Absent when cookies are enabled.")
    token_type: Literal["bearer"]
    expires_in: int
    session_id: str


class LoginResponse(TokenResponse):
    user: UserOut


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


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def _json_error(err: ErrorResponse) -> JSONResponse:
    return JSONResponse(err.body, status_code=err.status, headers=err.headers)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [part for part in first.get("loc", ()) if isinstance(part, str) and part != "body"]
    msg = first.get("msg")
    message = f"The request is not valid: {msg}." if isinstance(msg, str) else "The request is not valid."
    # Never echo the input (it may be a password or a code).
    return _json_error(validation_error_response(loc[-1] if loc else None, message))


class _AuthRoute(APIRoute):
    """Maps ``AuthError`` and body validation errors for this router's routes only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except AuthError as exc:
                return _json_error(error_response(exc))
            except RequestValidationError as exc:
                return _validation_response(exc)

        return route_handler


class AuthHTTPException(HTTPException):
    """Raised by the ``current_user`` dependencies in the app's own routes.

    FastAPI's default handler answers ``{"detail": {"code": ..., "message": ...}}``;
    after :func:`install_error_handlers` it is ``{"error": {...}}`` like the router.
    """

    def __init__(self, err: ErrorResponse) -> None:
        super().__init__(status_code=err.status, detail=err.body["error"], headers=err.headers or None)
        self.response = err


def install_error_handlers(app: FastAPI) -> None:
    """Optional: render ``AuthError`` raised anywhere in the app (and the ``current_user``
    401s) as ``{"error": {...}}``. The router does not need it."""

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


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _as_async(auth: AnyAuth) -> AsyncMindmeshAuth:
    if isinstance(auth, AsyncMindmeshAuth):
        return auth
    if isinstance(auth, MindmeshAuth):
        return AsyncMindmeshAuth(auth)
    raise TypeError("auth must be a MindmeshAuth or an AsyncMindmeshAuth")


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _context(request: Request, networks: tuple[Network, ...]) -> RequestContext:
    ip = client_ip(_peer(request), request.headers.getlist("x-forwarded-for"), networks)
    return RequestContext(ip_address=ip, user_agent=request.headers.get("user-agent"))


def _access_token(request: Request, cookies: CookieSettings | None) -> str | None:
    token = bearer_token(request.headers.get("authorization"))
    if token is None and cookies is not None and cookies.enabled:
        token = request.cookies.get(cookies.access_name) or None
    return token


def _apply_cookies(response: Response, specs: Iterable[CookieSpec]) -> None:
    for c in specs:
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


async def _user_from_request(a: AsyncMindmeshAuth, request: Request, cookies: CookieSettings | None) -> User:
    token = _access_token(request, cookies)
    if token is None:
        raise InvalidToken("Authentication required.")
    user: User = await a.auth.get_user_from_token(token)
    return user


def get_current_user_dependency(auth: AnyAuth, *, cookies: CookieSettings | None = None) -> Callable[[Request], Awaitable[User]]:
    """A dependency for the app's own routes: the ``User`` of the request's access token
    (``Authorization: Bearer``, or the access cookie when ``cookies.enabled``).

    Missing or invalid: 401 with ``WWW-Authenticate: Bearer`` (an :class:`AuthHTTPException`).
    """
    a = _as_async(auth)

    async def dependency(request: Request) -> User:
        try:
            return await _user_from_request(a, request, cookies)
        except AuthError as exc:
            raise AuthHTTPException(error_response(exc)) from None

    return dependency


async def current_user(request: Request) -> User:
    """A dependency using the auth object in ``app.state.mindmesh_auth`` (and the cookie
    settings in ``app.state.mindmesh_auth_cookies``, if any). Prefer ``router.current_user``."""
    state = request.app.state
    bound = getattr(state, "_mindmesh_auth_dependency", None)
    if bound is None:
        auth = getattr(state, "mindmesh_auth", None)
        if auth is None:
            raise RuntimeError("current_user needs app.state.mindmesh_auth (or use router.current_user).")
        bound = get_current_user_dependency(auth, cookies=getattr(state, "mindmesh_auth_cookies", None))
        state._mindmesh_auth_dependency = bound
    user: User = await bound(request)
    return user


class AuthRouter(APIRouter):
    """The router returned by :func:`create_auth_router`."""

    auth: AsyncMindmeshAuth
    cookies: CookieSettings
    current_user: Callable[[Request], Awaitable[User]]


_bearer_scheme = HTTPBearer(auto_error=False, description="The access token from /verify-otp or /refresh.")


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
    tags: list[str] | None = None,
) -> AuthRouter:
    """The auth routes under ``prefix`` (see ``docs/integrations.md``).

    ``trusted_proxies``: IPs/CIDRs of your reverse proxies; only then is
    ``X-Forwarded-For`` read. ``cookies``: :class:`CookieSettings` (off by default).
    ``profile_fields``: profile fields ``/register`` accepts (none by default).
    """
    a = _as_async(auth)
    cookie_settings = cookies or CookieSettings()
    networks = parse_trusted_proxies(trusted_proxies)
    allowed_profile = frozenset(profile_fields)
    config = a.sync.config
    access_age = int(config.access_token_ttl.total_seconds())
    refresh_age = int(config.session_ttl.total_seconds())
    use_cookies = cookie_settings.enabled
    full_prefix = prefix.rstrip("/")

    router = AuthRouter(prefix=full_prefix, route_class=_AuthRoute, tags=list(tags or ["auth"]))
    router.auth = a
    router.cookies = cookie_settings
    router.current_user = get_current_user_dependency(a, cookies=cookie_settings)
    specs = {spec.name: spec for spec in ROUTES}

    def route(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        spec = specs[name]
        if spec.status == 204:
            kwargs.setdefault("response_class", Response)
        return router.api_route(
            spec.path,
            methods=[spec.method],
            name=f"mindmesh_auth.{spec.name}",
            status_code=spec.status,
            summary=spec.summary,
            responses=_responses(spec),
            **kwargs,
        )

    def ctx(request: Request) -> RequestContext:
        return _context(request, networks)

    async def authenticated(
        request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]
    ) -> tuple[User, str]:
        token = _access_token(request, cookie_settings)
        if token is None:
            raise InvalidToken("Authentication required.")
        found: SessionWithUser = await a.auth.authenticate(token)
        return found.user, found.session.id

    Who = Annotated[tuple[User, str], Depends(authenticated)]

    def with_tokens(body: dict[str, Any], access: str, refresh: str) -> JSONResponse:
        response = JSONResponse(body)
        if use_cookies:
            _apply_cookies(
                response,
                token_cookies(
                    cookie_settings,
                    full_prefix,
                    access_token=access,
                    access_max_age=access_age,
                    refresh_token=refresh,
                    refresh_max_age=refresh_age,
                ),
            )
        return response

    def no_content(clear: bool = False) -> Response:
        response = Response(status_code=204)
        if clear and use_cookies:
            _apply_cookies(response, clear_cookies(cookie_settings, full_prefix))
        return response

    @route("register", response_model=UserResponse)
    async def register(body: RegisterRequest, request: Request) -> Response:
        profile = parse_profile(body.profile, allowed_profile)
        user: User = await a.auth.register(body.email, body.password, context=ctx(request), **profile)
        return JSONResponse(user_body(user), status_code=201)

    @route("login", response_model=LoginChallengeResponse)
    async def login(body: LoginRequest, request: Request) -> Response:
        challenge = await a.auth.login(body.email, body.password, context=ctx(request))
        return JSONResponse({"otp_required": bool(challenge.otp_required)})

    @route("verify_otp", response_model=LoginResponse)
    async def verify_otp(body: VerifyOtpRequest, request: Request) -> Response:
        result = await a.auth.verify_otp(body.email, body.code, "login", context=ctx(request))
        return with_tokens(login_body(result, cookies=use_cookies), result.access_token, result.refresh_token)

    @route("refresh", response_model=TokenResponse)
    async def refresh(request: Request, body: RefreshRequest | None = None) -> Response:
        token = body.refresh_token if body is not None else None
        if token is None and use_cookies:
            token = request.cookies.get(cookie_settings.refresh_name) or None
        if token is None:
            raise InvalidRefreshToken()
        pair = await a.auth.refresh(token, context=ctx(request))
        return with_tokens(tokens_body(pair, cookies=use_cookies), pair.access_token, pair.refresh_token)

    @route("logout")
    async def logout(request: Request, who: Who) -> Response:
        await a.auth.logout(who[1], context=ctx(request))
        return no_content(clear=True)

    @route("me", response_model=UserResponse)
    async def me(who: Who) -> Response:
        return JSONResponse(user_body(who[0]))

    @route("otp_send", response_model=AcceptedResponse)
    async def otp_send(body: OtpSendRequest, request: Request) -> Response:
        await a.otp.send(body.email, body.purpose, context=ctx(request))
        return JSONResponse(OTP_SEND_BODY, status_code=202)

    @route("otp_verify", response_model=VerifiedResponse)
    async def otp_verify(body: OtpVerifyRequest, request: Request) -> Response:
        if not await a.otp.verify(body.email, body.code, body.purpose, context=ctx(request)):
            raise InvalidOtp()
        return JSONResponse({"verified": True})

    @route("password_reset_request", response_model=AcceptedResponse)
    async def password_reset_request(body: PasswordResetRequestRequest, request: Request) -> Response:
        await a.password.request_reset(body.email, context=ctx(request))
        return JSONResponse(RESET_REQUEST_BODY, status_code=202)

    @route("password_reset")
    async def password_reset(body: PasswordResetRequest, request: Request) -> Response:
        await a.password.reset(body.token, body.new_password, context=ctx(request))
        return no_content()

    @route("list_sessions", response_model=SessionsResponse)
    async def list_sessions(who: Who) -> Response:
        user, sid = who
        sessions: list[Session] = await a.sessions.list(user.id)
        return JSONResponse({"sessions": [session_body(s, sid) for s in sessions]})

    @route("revoke_session")
    async def revoke_session(session_id: str, request: Request, who: Who) -> Response:
        user, sid = who
        session: Session = await a.sessions.get(session_id)
        if session.user_id != user.id:
            raise SessionNotFound()  # never reveal, never touch another user's session
        await a.sessions.revoke(session.id, context=ctx(request))
        return no_content(clear=session.id == sid)

    return router
