"""Fixtures shared by the integration tests: a facade on SQLite (Peewee) + Outbox + FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _ci import require

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.testing import FakeClock, Outbox, test_config

from ._clients import Env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    require("peewee")
    outbox, clock = Outbox(), FakeClock()
    auth = MindmeshAuth(store=f"sqlite:///{tmp_path}/auth.db", mailer=outbox, config=test_config(), clock=clock)
    auth.create_schema()
    yield Env(auth, outbox, clock)
    auth.close()
