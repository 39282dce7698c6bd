"""The shared storage contract on PeeweeStore over SQLite (a file per test, WAL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore
from mindmesh_auth.testing.contract import StoreContract


class ContractUser(BaseUserModel):
    first_name = peewee.CharField(max_length=100, null=True)
    role = peewee.CharField(max_length=32, null=True)


class TestPeeweeSqlite(StoreContract):
    supports_parallel_connections = True  # one SQLite connection per thread

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[PeeweeStore]:
        store = PeeweeStore.from_url(f"sqlite:///{tmp_path}/auth.db", user_model=ContractUser)
        store.create_schema()
        yield store
        store.close()
