"""Shared fixtures for the core unit tests: a facade on MemoryStore + Outbox + FakeClock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mindmesh_auth import LoginResult, MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.context import reset_context, set_context
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"


@dataclass
class Env:
    auth: MindmeshAuth
    clock: FakeClock
    outbox: Outbox
    store: MemoryStore

    def login(self, email: str, password: str = PASSWORD) -> LoginResult:
        """Both login steps, reading the code from the outbox."""
        self.auth.auth.login(email, password)
        return self.auth.auth.verify_otp(email, self.outbox.last_code(email))


@pytest.fixture(autouse=True)
def _isolated_request_context() -> Iterator[None]:
    # set_context() lives in a ContextVar of the test thread: never let one test's leak into the next.
    token = set_context()
    yield
    reset_context(token)


@pytest.fixture
def make_env() -> Iterator[Callable[..., Env]]:
    made: list[MindmeshAuth] = []

    def make(templates: Any = None, **overrides: Any) -> Env:
        clock, outbox, store = FakeClock(), Outbox(), MemoryStore()
        auth = MindmeshAuth(store=store, mailer=outbox, config=test_config(**overrides), clock=clock, templates=templates)
        made.append(auth)
        return Env(auth, clock, outbox, store)

    yield make
    for auth in made:
        auth.close()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()
