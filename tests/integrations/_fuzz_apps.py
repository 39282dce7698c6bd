"""The two apps the schemathesis fuzz test drives, built alike so one OpenAPI document fits both.

Both serve the auth routes under :data:`PREFIX` and two app routes behind the auth
dependency (``/profile``: ``router.current_user`` / ``bp.login_required``; ``/whoami``:
the app-state ``current_user`` / ``make_login_required(auth)``), on a facade over the
memory store with an :class:`Outbox`, a :class:`FakeClock` and every rate limit raised
so the fuzzer is never throttled. The document is the FastAPI app's ``/openapi.json``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.core.config import Limit
from mindmesh_auth.testing import FakeClock, Outbox, test_config

from ._clients import Client, Env, fastapi_client, flask_client, login, register

PREFIX = "/auth"
EMAIL = "fuzz@example.com"
# The app routes (not the router's) that need a bearer token; the router's own are marked by
# ``security`` in the document.
APP_ROUTES = ("/profile", "/whoami")

_UNLIMITED = Limit(1_000_000, timedelta(minutes=1))
LIMITS = {
    name: _UNLIMITED
    for name in (
        "otp_send_limit",
        "otp_account_failure_limit",
        "login_ip_limit",
        "login_email_limit",
        "register_ip_limit",
        "reset_email_limit",
        "reset_ip_limit",
    )
}


def make_env() -> Env:
    outbox, clock = Outbox(), FakeClock()
    auth = MindmeshAuth(store="memory://", mailer=outbox, config=test_config(**LIMITS), clock=clock)
    auth.create_schema()
    return Env(auth, outbox, clock)


def build_fastapi_app(auth: MindmeshAuth) -> Any:
    from fastapi import Depends, FastAPI
    from pydantic import BaseModel

    from mindmesh_auth.core.models import User
    from mindmesh_auth.integrations.fastapi import create_auth_router, current_user, install_error_handlers

    class Profile(BaseModel):
        id: str
        email: str

    class AppErrorDetail(BaseModel):
        code: str
        message: str

    class AppError(BaseModel):
        error: AppErrorDetail

    unauthorized: dict[int | str, dict[str, Any]] = {401: {"model": AppError, "description": "No valid access token."}}

    app = FastAPI(title="mindmesh-auth fuzz", version="0")
    router = create_auth_router(auth, prefix=PREFIX)
    app.include_router(router)
    app.state.mindmesh_auth = auth  # for the app-state ``current_user``
    install_error_handlers(app)  # the dependencies' 401s as {"error": {...}}, like the router

    @app.get("/profile", response_model=Profile, responses=unauthorized)
    async def profile(user: User = Depends(router.current_user)) -> dict[str, str]:
        return {"id": user.id, "email": user.email}

    @app.get("/whoami", response_model=Profile, responses=unauthorized)
    async def whoami(user: User = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id, "email": user.email}

    return app


def build_flask_app(auth: MindmeshAuth) -> Any:
    from flask import Flask, g

    from mindmesh_auth.integrations.flask import create_auth_blueprint, make_login_required

    app = Flask(__name__)
    bp = create_auth_blueprint(auth, url_prefix=PREFIX)
    app.register_blueprint(bp)

    @app.get("/profile")
    @bp.login_required
    def profile() -> dict[str, str]:
        return {"id": g.user.id, "email": g.user.email}

    @app.get("/whoami")
    @make_login_required(auth)
    def whoami() -> dict[str, str]:
        return {"id": g.user.id, "email": g.user.email}

    return app


def openapi_document(app: Any) -> dict[str, Any]:
    """The FastAPI app's ``/openapi.json``, fetched over HTTP as a client would."""
    r = fastapi_client(app).get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class FuzzTarget:
    """One framework's app on a fresh facade, and a way to get live access tokens for it."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.env = make_env()
        self.fastapi_app = build_fastapi_app(self.env.auth)  # always built: it owns the document
        self.app = self.fastapi_app if framework == "fastapi" else build_flask_app(self.env.auth)
        self.client: Client = fastapi_client(self.app) if framework == "fastapi" else flask_client(self.app)
        register(self.client, EMAIL)

    def document(self) -> dict[str, Any]:
        return openapi_document(self.fastapi_app)

    def tokens(self) -> dict[str, Any]:
        """A fresh session's tokens (a new session each time: the fuzzer may log out or revoke)."""
        return login(self.client, self.env, EMAIL)

    def access_token(self) -> str:
        return str(self.tokens()["access_token"])

    def last_code(self) -> str | None:
        try:
            return self.env.outbox.last_code(EMAIL)
        except LookupError:
            return None

    def last_reset_token(self) -> str | None:
        try:
            return self.env.outbox.last_reset_token(EMAIL)
        except LookupError:
            return None

    def close(self) -> None:
        self.env.auth.close()
