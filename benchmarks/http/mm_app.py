"""mindmesh-auth's FastAPI router for the HTTP benchmark: ``/auth/me`` plus an app route using ``current_user``.

Served by :mod:`benchmarks.http.serve` as ``mm_app:create_app`` (a factory: each
uvicorn worker process builds its own store and facade). Settings come from the
environment, set by :mod:`benchmarks.http.run_http`:

    MMB_DATABASE_URL     sqlite:////abs/path.db or postgresql://...
    MMB_JWT_SECRET       the access-token secret (the benchmark draws it per run)
    MMB_REFRESH_SECRET   the refresh-token secret
    MMB_PEPPER           the password pepper
    MMB_TABLE_PREFIX     table prefix (default ``mmhttp_``)
"""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from mindmesh_auth import AuthConfig, MindmeshAuth, User
from mindmesh_auth.adapters.mail import Outbox
from mindmesh_auth.adapters.peewee import PeeweeStore
from mindmesh_auth.integrations.fastapi import create_auth_router, install_error_handlers

TABLE_PREFIX = "mmhttp_"


def make_auth(
    url: str, jwt_secret: str, refresh_secret: str, pepper: str, *, table_prefix: str = TABLE_PREFIX
) -> tuple[MindmeshAuth, Outbox]:
    """The facade the server and the benchmark's token minting share (same database, same secrets).

    The server never sends mail (only ``/me`` is measured); the outbox lets the
    benchmark read the login code when it mints a token through the library.
    """
    config = AuthConfig(jwt_secret=jwt_secret, refresh_secret=refresh_secret, password_pepper=pepper, bcrypt_rounds=10)
    outbox = Outbox()
    store = PeeweeStore.from_url(url, table_prefix=table_prefix)
    return MindmeshAuth(store=store, mailer=outbox, config=config), outbox


def create_app() -> FastAPI:
    env = os.environ
    auth, _outbox = make_auth(
        env["MMB_DATABASE_URL"],
        env["MMB_JWT_SECRET"],
        env["MMB_REFRESH_SECRET"],
        env["MMB_PEPPER"],
        table_prefix=env.get("MMB_TABLE_PREFIX", TABLE_PREFIX),
    )
    router = create_auth_router(auth)
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/app/me")
    async def app_me(user: Annotated[User, Depends(router.current_user)]) -> dict[str, Any]:
        return {"id": user.id, "email": user.email}

    return app
