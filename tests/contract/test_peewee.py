"""The shared storage contract on PeeweeStore: SQLite (a file per test, WAL),
PostgreSQL and MariaDB/MySQL (real servers, one connection per thread).

Servers: ``MINDMESH_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``MINDMESH_TEST_MYSQL_URL``
(default ``mysql://root@127.0.0.1:3306/test``). Each server test gets its own
table prefix; its tables are dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest
from _servers import server_url, unique_prefix

from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore
from mindmesh_auth.testing.contract import StoreContract


class ContractUser(BaseUserModel):
    """Holds the suite's profile fields (``StoreContract.profile_fields`` and
    ``StoreContract.profile_value_types``), every one nullable."""

    first_name = peewee.CharField(max_length=100, null=True)
    role = peewee.CharField(max_length=32, null=True)
    nickname = peewee.CharField(max_length=100, null=True)
    age = peewee.IntegerField(null=True)
    score = peewee.FloatField(null=True)
    active = peewee.BooleanField(null=True)
    note = peewee.TextField(null=True)


class TestPeeweeSqlite(StoreContract):
    # One writer at a time (a file lock), and a waiting writer's busy handler backs
    # off up to 100 ms: with 20 connections a round takes up to a second.
    race_threads = 8

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[PeeweeStore]:
        store = PeeweeStore.from_url(f"sqlite:///{tmp_path}/auth.db", user_model=ContractUser)
        store.create_schema()
        yield store
        store.close()


class _ServerContract(StoreContract):
    engine: str

    @pytest.fixture
    def store(self) -> Iterator[PeeweeStore]:
        store = PeeweeStore.from_url(server_url(self.engine), user_model=ContractUser, table_prefix=unique_prefix())
        store.create_schema()
        try:
            yield store
        finally:
            store.drop_schema()
            store.close()


@pytest.mark.postgres
class TestPeeweePostgres(_ServerContract):
    engine = "postgres"


@pytest.mark.mysql
class TestPeeweeMysql(_ServerContract):
    engine = "mysql"
