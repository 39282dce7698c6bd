"""Fixtures shared by the integration tests: a facade on SQLite (Peewee) + Outbox + FakeClock,
and the framework's app on it (``framework``, ``make_client``, ``client``: once per framework)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ci import require

from ._clients import FRAMEWORKS, Client, Env, MakeClient, build_client, sqlite_env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from sqlite_env(tmp_path)


@pytest.fixture
def busy_env(tmp_path: Path) -> Iterator[Env]:
    """One hashing place and no queue: a second hashing call while one runs is refused."""
    yield from sqlite_env(tmp_path, hash_workers=1, hash_queue_limit=0)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_client(env: Env, framework: str) -> MakeClient:
    """``make_client(peer=..., https=..., **options)``: the framework's app on ``env.auth`` built with ``options``."""

    def make(*, auth: Any = None, **options: Any) -> Client:
        return build_client(framework, env.auth if auth is None else auth, **options)

    return make


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    return make_client()
