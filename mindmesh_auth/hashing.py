"""The bound on password hashing (docs/performance.md, "Password hashing under load").

bcrypt is meant to be slow: a flood of logins would otherwise keep every
thread busy hashing and leave token checks waiting behind it. A
:class:`HashingGate` lets at most ``hash_workers`` operations that run bcrypt
(register, login, password reset and change; the code checks too with
``otp_hash="bcrypt"``) proceed at once and at most ``hash_queue_limit`` more
wait for their turn. A call beyond that is refused at once with
:class:`~mindmesh_auth.core.errors.Overloaded` (HTTP 503 with ``Retry-After``),
before it reads or writes anything.

The gate wraps whole operations, not single bcrypt calls, so a refusal never
lands in the middle of one (after a password was checked and before the
session was written, say).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .core.errors import Overloaded

if TYPE_CHECKING:
    from .core.config import AuthConfig

__all__ = ["RETRY_AFTER", "HashingGate", "default_hash_workers", "hashing_operations"]

F = TypeVar("F", bound=Callable[..., Any])

RETRY_AFTER = 1
"""Seconds a refused caller is told to wait: a queue at its bound drains in about
``hash_queue_limit / hash_workers`` hash times, well under a second at cost 12 with the default bound."""

QUEUE_FACTOR = 4
"""``hash_queue_limit`` defaults to this many times ``hash_workers``."""


def default_hash_workers() -> int:
    """One less than the CPU count, at least one: a core stays free for the event loop,
    token checks and the database while logins hash (docs/performance.md)."""
    return max(1, (os.cpu_count() or 1) - 1)


def hashing_operations(config: AuthConfig) -> dict[str, tuple[str, ...]]:
    """The facade's methods that may run bcrypt, by group (``auth``, ``otp``, ``password``, ``account``, ``user``)."""
    operations: dict[str, tuple[str, ...]] = {
        "auth": ("register", "login"),
        "password": ("reset", "change"),
        "account": ("delete", "request_email_change"),
        "user": ("create",),
    }
    if config.otp_hash == "bcrypt":
        operations["auth"] += ("verify_otp",)
        operations["account"] += ("confirm_email_change",)
        operations["otp"] = ("send", "verify")
    return operations


class HashingGate:
    """At most ``workers`` guarded calls at once, at most ``queue_limit`` more waiting.

    A call that finds ``workers + queue_limit`` calls already admitted raises
    ``Overloaded`` without waiting; an admitted call waits its turn on a semaphore.
    Thread-safe; one gate per facade.
    """

    def __init__(self, workers: int, queue_limit: int, *, retry_after: int = RETRY_AFTER) -> None:
        if workers < 1 or queue_limit < 0:
            raise ValueError("workers must be at least 1 and queue_limit at least 0")
        self.workers = workers
        self.queue_limit = queue_limit
        self.retry_after = retry_after
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0
        self.refused = 0

    @classmethod
    def from_config(cls, config: AuthConfig) -> HashingGate:
        workers = config.hash_workers or default_hash_workers()
        limit = config.hash_queue_limit
        return cls(workers, QUEUE_FACTOR * workers if limit is None else limit)

    def __repr__(self) -> str:
        return f"HashingGate(workers={self.workers}, queue_limit={self.queue_limit}, admitted={self._admitted})"

    @property
    def capacity(self) -> int:
        """Calls running or waiting at most."""
        return self.workers + self.queue_limit

    @property
    def admitted(self) -> int:
        """Calls running or waiting now."""
        return self._admitted

    def admit(self) -> None:
        """Count one more call, or raise ``Overloaded`` if ``capacity`` calls are already in."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.refused += 1
                raise Overloaded(retry_after=self.retry_after)
            self._admitted += 1

    def note_refused(self) -> None:
        """Count a call refused in front of the gate (the async facade's hashing pool)."""
        with self._lock:
            self.refused += 1

    def leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """``with gate.slot():`` admit (or raise ``Overloaded``), wait for a free worker slot, run."""
        self.admit()
        try:
            with self._slots:
                yield
        finally:
            self.leave()

    def guard(self, call: F) -> F:
        """``call`` run inside :meth:`slot`."""

        @functools.wraps(call)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self.slot():
                return call(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    def guard_facade(self, facade: Any, operations: dict[str, tuple[str, ...]]) -> None:
        """Replace each named group of ``facade`` by a shallow copy whose ``operations`` are guarded.

        The original group stays unguarded, so a method calling another one of
        its group never waits for a second slot while holding one."""
        for group, names in operations.items():
            guarded = copy.copy(getattr(facade, group))
            for name in names:
                setattr(guarded, name, self.guard(getattr(guarded, name)))
            setattr(facade, group, guarded)
