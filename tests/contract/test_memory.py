from collections.abc import Iterator

import pytest

from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        yield MemoryStore()
