"""What every contract test case shares: the fixtures, the race driver and row builders.

Bindings import :class:`StoreFixtures` (the base of every case, with the
settings a binding may override) from :mod:`mindmesh_auth.testing.contract`;
the helpers here are the suite's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from ...adapters.mail import Outbox
from ...core.models import OtpChallenge, ResetToken, Session, User
from ...core.ports import Store
from ...facade import MindmeshAuth
from ..clock import FakeClock
from ..config import test_config

__all__ = [
    "PASSWORD",
    "T0",
    "StoreFixtures",
    "_assert_profile",
    "_challenge",
    "_parallel",
    "_race",
    "_reset",
    "_session",
    "_user",
]

T = TypeVar("T")
# Far in the future, so a backend's own expiry machinery (MongoDB TTL indexes run
# against the wall clock) never deletes the suite's rows behind the fake clock.
T0 = datetime(2099, 3, 1, 9, 30, 15, 123000, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"
BARRIER_TIMEOUT = 60.0
"""Seconds a race waits for all its threads to start before it fails (instead of hanging)."""


def _race(threads: int, rounds: int, fn: Callable[[int, int], T]) -> list[list[T | BaseException]]:
    """Run ``fn(round, i)`` for ``i`` in ``range(threads)``, once per round; per round, the
    results (or raised exceptions) in thread order.

    In every round the threads wait at a barrier and are released together; the
    same threads serve every round (a backend with a connection per thread opens
    its connections once)."""
    results: list[list[T | BaseException]] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for r in range(rounds):
            barrier = threading.Barrier(threads, timeout=BARRIER_TIMEOUT)

            def run(i: int, r: int = r, barrier: threading.Barrier = barrier) -> T | BaseException:
                barrier.wait()
                try:
                    return fn(r, i)
                except BaseException as exc:  # collected, asserted by the caller
                    return exc

            results.append(list(pool.map(run, range(threads))))
    return results


def _parallel(threads: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """One round of :func:`_race`: ``fn(i)`` in ``threads`` threads released together."""
    return _race(threads, 1, lambda _r, i: fn(i))[0]


def _user(n: int = 1, *, email: str | None = None, at: datetime = T0, **profile: Any) -> User:
    return User(
        id=f"00000000-0000-4000-8000-{n:012d}",
        email=email or f"user{n}@example.com",
        password_hash="mm1$2b$04$" + "x" * 53,
        created_at=at,
        updated_at=at,
        profile=profile,
    )


def _session(n: int, user: User, *, at: datetime = T0, ttl: timedelta = timedelta(days=7), **kw: Any) -> Session:
    values: dict[str, Any] = {
        "id": f"10000000-0000-4000-8000-{n:012d}",
        "user_id": user.id,
        "refresh_hash": f"refresh-hash-{n}",
        "created_at": at,
        "expires_at": at + ttl,
        "last_active_at": at,
    }
    values.update(kw)
    return Session(**values)


def _challenge(n: int = 1, *, email: str = "user1@example.com", purpose: str = "login", **kw: Any) -> OtpChallenge:
    values: dict[str, Any] = {
        "id": f"20000000-0000-4000-8000-{n:012d}",
        "email": email,
        "purpose": purpose,
        "code_hash": f"code-hash-{n}",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=5),
        "user_id": "00000000-0000-4000-8000-000000000001",
    }
    values.update(kw)
    return OtpChallenge(**values)


def _reset(n: int, user_id: str, *, ttl: timedelta = timedelta(hours=1), **kw: Any) -> ResetToken:
    values: dict[str, Any] = {
        "id": f"30000000-0000-4000-8000-{n:012d}",
        "user_id": user_id,
        "token_hash": f"reset-hash-{n}",
        "created_at": T0,
        "expires_at": T0 + ttl,
    }
    values.update(kw)
    return ResetToken(**values)


def _assert_profile(profile: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """``profile`` holds every expected field with an equal value of the same type; any
    other field it holds is ``None`` (a store with columns reports the ones not given)."""
    got = {k: (v, type(v)) for k, v in profile.items() if k in expected}
    assert got == {k: (v, type(v)) for k, v in expected.items()}, dict(profile)
    extra = {k: v for k, v in profile.items() if k not in expected and v is not None}
    assert extra == {}, dict(profile)


class StoreFixtures:
    """The fixtures and settings every contract test case shares.

    A binding overrides the ``store`` fixture (a fresh, empty store per test) and
    may set these class attributes:

    ``race_threads`` (default 20)
        Threads per round of a race case; every round releases them together
        behind a barrier. A backend that gives each thread its own connection
        (Peewee does) proves multi-connection atomicity with them.
    ``race_rounds`` (default 10)
        Rounds of each storage race case, each on a fresh row or key, so a
        read-then-write implementation of an atomic method fails in
        essentially every run.
    ``flow_race_rounds`` (default 3)
        Rounds of each race through the facade, each with a fresh account.
    ``profile_fields`` (default ``{"first_name": "Ada", "role": "admin"}``)
        Profile fields users must store (extra columns, keys or attributes).
    ``profile_value_types`` (default one field each of ``str``, ``int``,
        ``float``, ``bool`` and ``None``)
        Profile values that must round-trip with their type. Every backend must
        store these types; setting it to ``{}`` opts out (the case skips).

    Fixtures: ``store`` (abstract), ``clock`` (a :class:`FakeClock` at ``T0``),
    ``outbox`` (an :class:`Outbox`), ``auth`` (a facade over them with
    :func:`test_config`).
    """

    race_threads: int = 20
    """Threads per round of a race case."""
    race_rounds: int = 10
    """Rounds of each storage race case (a fresh row or key per round)."""
    flow_race_rounds: int = 3
    """Rounds of each race through the facade (a fresh account per round)."""
    profile_fields: dict[str, Any] = {"first_name": "Ada", "role": "admin"}
    """Profile fields a user must store."""
    profile_value_types: dict[str, Any] = {"nickname": "ada", "age": 36, "score": 2.5, "active": True, "note": None}
    """Profile values of each type a backend must round-trip (``{}`` opts out)."""

    # -- fixtures a binding may override ------------------------------------
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("Override the `store` fixture to yield a fresh, empty Store.")

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def outbox(self) -> Outbox:
        return Outbox()

    @pytest.fixture
    def auth(self, store: Store, outbox: Outbox, clock: FakeClock) -> Iterator[MindmeshAuth]:
        facade = MindmeshAuth(store=store, mailer=outbox, config=test_config(), clock=clock)
        yield facade
        facade.wait_for_background_work()

    # -- helpers ----------------------------------------------------------------
    def _rounds(self, fn: Callable[[int, int], T], *, rounds: int | None = None) -> list[list[T | BaseException]]:
        """:func:`_race` with ``race_threads`` threads and ``race_rounds`` rounds (unless given)."""
        return _race(self.race_threads, self.race_rounds if rounds is None else rounds, fn)

    @staticmethod
    def _with_user(store: Store, n: int = 1) -> User:
        user = _user(n)
        store.users.add(user)
        return user
