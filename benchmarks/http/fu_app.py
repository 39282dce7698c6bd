"""fastapi-users for the HTTP benchmark: JWT strategy, bearer transport, SQLAlchemy async, ``/users/me``.

The setup of fastapi-users' own documentation (``FastAPIUsers`` with a
``JWTStrategy``, ``SQLAlchemyUserDatabase`` on ``aiosqlite`` or ``asyncpg``),
plus an app route using ``current_user(active=True)``. Served by
:mod:`benchmarks.http.serve` as ``fu_app:create_app``; environment:

    FUB_DATABASE_URL   sqlite+aiosqlite:////abs/path.db or postgresql+asyncpg://...
    FUB_JWT_SECRET     the JWT secret (the benchmark draws it per run)

``python fu_app.py init`` creates the table once, before the workers start.
"""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

TABLE = "fub_user"


class Base(DeclarativeBase):
    pass


class UserTable(SQLAlchemyBaseUserTableUUID, Base):
    __tablename__ = TABLE


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


def create_app() -> FastAPI:
    url = os.environ["FUB_DATABASE_URL"]
    secret = os.environ["FUB_JWT_SECRET"]
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncGenerator[AsyncSession, None]:
        async with sessions() as session:
            yield session

    async def get_user_db(session: Annotated[AsyncSession, Depends(get_session)]) -> AsyncGenerator[Any, None]:
        yield SQLAlchemyUserDatabase(session, UserTable)

    class UserManager(UUIDIDMixin, BaseUserManager[UserTable, uuid.UUID]):
        reset_password_token_secret = secret
        verification_token_secret = secret

    async def get_user_manager(user_db: Annotated[Any, Depends(get_user_db)]) -> AsyncGenerator[UserManager, None]:
        yield UserManager(user_db)

    def get_jwt_strategy() -> JWTStrategy[UserTable, uuid.UUID]:
        return JWTStrategy(secret=secret, lifetime_seconds=900)

    transport = BearerTransport(tokenUrl="auth/jwt/login")
    backend = AuthenticationBackend(name="jwt", transport=transport, get_strategy=get_jwt_strategy)
    users = FastAPIUsers[UserTable, uuid.UUID](get_user_manager, [backend])
    current_active_user = users.current_user(active=True)

    app = FastAPI()
    app.include_router(users.get_auth_router(backend), prefix="/auth/jwt")
    app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")
    app.include_router(users.get_users_router(UserRead, UserUpdate), prefix="/users")

    @app.get("/app/me")
    async def app_me(user: Annotated[UserTable, Depends(current_active_user)]) -> dict[str, Any]:
        return {"id": str(user.id), "email": user.email}

    return app


async def init(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


if __name__ == "__main__":
    if sys.argv[1:] != ["init"]:
        sys.exit("usage: FUB_DATABASE_URL=... python fu_app.py init")
    asyncio.run(init(os.environ["FUB_DATABASE_URL"]))
