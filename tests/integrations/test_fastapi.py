"""What only the FastAPI router has: the async facade, the ``current_user`` dependencies and
``install_error_handlers``. The HTTP API it shares with Flask is tested in ``test_http_api.py``."""

from __future__ import annotations

from typing import Any

from _ci import require

require("fastapi")
require("peewee")

from fastapi import Depends, FastAPI  # noqa: E402

from mindmesh_auth import User  # noqa: E402
from mindmesh_auth.aio import AsyncMindmeshAuth  # noqa: E402
from mindmesh_auth.integrations.fastapi import (  # noqa: E402
    create_auth_router,
    current_user,
    get_current_user_dependency,
    install_error_handlers,
)

from ._clients import Client, Env, assert_error, bearer, fastapi_client, login, register  # noqa: E402


def _client(env: Env, *, auth: Any = None, extra: bool = False, error_handlers: bool = False) -> Client:
    router = create_auth_router(env.auth if auth is None else auth)
    app = FastAPI()
    app.include_router(router)
    if extra:
        _profile_routes(app, router)
    if error_handlers:
        install_error_handlers(app)
    return fastapi_client(app)


def test_async_facade_is_accepted(env: Env) -> None:
    client = _client(env, auth=AsyncMindmeshAuth(env.auth))
    register(client)
    login(client, env)


# ---------------------------------------------------------------------------
# The dependency in the app's own routes
# ---------------------------------------------------------------------------
def _profile_routes(app: FastAPI, router: Any) -> None:
    app.state.mindmesh_auth = router.auth

    @app.get("/bound")
    async def bound(user: User = Depends(router.current_user)) -> dict[str, str]:
        return {"id": user.id}

    factory_dep = get_current_user_dependency(router.auth)

    @app.get("/factory")
    async def factory(user: User = Depends(factory_dep)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/module")
    async def module(user: User = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}


def test_current_user_dependencies(env: Env) -> None:
    client = _client(env, extra=True)
    user = register(client)["user"]
    tokens = login(client, env)
    for path in ("/bound", "/factory", "/module"):
        assert client.get(path, headers=bearer(tokens)).json() == {"id": user["id"]}
        r = client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"detail": {"code": "invalid_token", "message": "Authentication required."}}


def test_install_error_handlers_gives_the_router_shape(env: Env) -> None:
    client = _client(env, extra=True, error_handlers=True)
    r = client.get("/bound", headers={"Authorization": "Bearer nope"})
    assert_error(r, 401, "invalid_token")
