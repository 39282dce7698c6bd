"""The shared storage contract on PeeweeStore over a real MariaDB/MySQL server.

``MINDMESH_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``).
Each test gets its own table prefix; its tables are dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import peewee
import pytest
from _servers import server_url, unique_prefix

from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore
from mindmesh_auth.testing.contract import StoreContract


class ContractUser(BaseUserModel):
    first_name = peewee.CharField(max_length=100, null=True)
    role = peewee.CharField(max_length=32, null=True)


@pytest.mark.mysql
class TestPeeweeMysql(StoreContract):
    supports_parallel_connections = True  # one server connection per thread

    @pytest.fixture
    def store(self) -> Iterator[PeeweeStore]:
        store = PeeweeStore.from_url(server_url("mysql"), user_model=ContractUser, table_prefix=unique_prefix())
        store.create_schema()
        try:
            yield store
        finally:
            store.drop_schema()
            store.close()
