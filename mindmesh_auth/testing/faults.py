"""Fault injection for storage: make the k-th write of an operation fail.

:class:`FaultyStore` wraps any :class:`~mindmesh_auth.core.ports.Store` and
counts the calls to its repositories' *write* methods (:data:`WRITE_METHODS`).
Armed with ``fail_at(k)``, the k-th write raises ``StorageUnavailable``:

* ``when="before"``: the write never reaches the store (the statement failed);
* ``when="after"``: the write ran, then the error is raised (the reply was lost).

Units of work (``atomic()``) are the wrapped store's own, so a fault inside a
unit exercises the backend's real rollback or compensation. The contract
suite's fault cases (:class:`FaultContract`) use it on every backend; an app
can use it to test its own error handling::

    store = FaultyStore(MemoryStore())
    auth = MindmeshAuth(store=store, ...)
    store.fail_at(2)               # the second write of the next operation fails
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from ..core.errors import StorageError, StorageUnavailable
from ..core.ports import Store
from ..core.schema import MigrationPlan, SchemaStatus

__all__ = ["WRITE_METHODS", "FaultyStore", "InjectedFault"]

WRITE_METHODS: dict[str, tuple[str, ...]] = {
    "users": ("add", "set_password_hash", "set_blocked", "set_email_verified", "change_email", "delete"),
    "sessions": ("add", "rotate", "revoke", "revoke_all_for_user", "purge_expired"),
    "otps": ("put", "mark_sent", "discard", "register_attempt", "consume", "redeem", "purge_expired"),
    "reset_tokens": ("put", "consume", "delete_for_user", "purge_expired"),
    "rate_limits": ("hit", "hit_many", "reset", "reset_many", "purge_expired"),
    "audit": ("append", "append_many", "purge_before"),
}
"""Every port method that changes stored state, by repository."""


class InjectedFault(StorageUnavailable):
    """The failure :class:`FaultyStore` injects (a ``StorageUnavailable``)."""

    default_message = "Injected storage fault."


class _FaultyRepo:
    def __init__(self, owner: FaultyStore, name: str, inner: Any) -> None:
        self._owner = owner
        self._name = name
        self._inner = inner
        for method in WRITE_METHODS[name]:
            setattr(self, method, self._wrap(method, getattr(inner, method)))

    def _wrap(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        label = f"{self._name}.{method}"

        def write(*args: Any, **kwargs: Any) -> Any:
            when = self._owner._count(label)
            if when == "before":
                raise self._owner._error()
            result = call(*args, **kwargs)
            if when == "after":
                raise self._owner._error()
            return result

        write.__name__ = method
        return write

    def __getattr__(self, attr: str) -> Any:  # reads go straight through
        return getattr(self._inner, attr)


class FaultyStore(Store):
    """A store that fails its k-th write on demand (see the module docstring)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.writes: list[str] = []
        self._fail_at: int | None = None
        self._when: Literal["before", "after"] = "before"
        self._error_type: type[StorageError] = InjectedFault
        self.users = _FaultyRepo(self, "users", inner.users)  # type: ignore[assignment]
        self.sessions = _FaultyRepo(self, "sessions", inner.sessions)  # type: ignore[assignment]
        self.otps = _FaultyRepo(self, "otps", inner.otps)  # type: ignore[assignment]
        self.reset_tokens = _FaultyRepo(self, "reset_tokens", inner.reset_tokens)  # type: ignore[assignment]
        self.rate_limits = _FaultyRepo(self, "rate_limits", inner.rate_limits)  # type: ignore[assignment]
        self.audit = _FaultyRepo(self, "audit", inner.audit)  # type: ignore[assignment]

    def fail_at(
        self, k: int, *, when: Literal["before", "after"] = "before", error: type[StorageError] = InjectedFault
    ) -> None:
        """Make the ``k``-th write from now on (1-based) fail; counting restarts."""
        if k < 1:
            raise ValueError("k counts from 1")
        with self._lock:
            self.writes = []
            self._fail_at, self._when, self._error_type = k, when, error

    def disarm(self) -> None:
        with self._lock:
            self._fail_at = None

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        """Record the writes made inside the block (no fault): ``len()`` of it is the k range."""
        with self._lock:
            self.writes, self._fail_at = [], None
        recorded: list[str] = []
        try:
            yield recorded
        finally:
            with self._lock:
                recorded.extend(self.writes)

    @property
    def fired(self) -> bool:
        """Whether the armed fault has been raised."""
        with self._lock:
            return self._fail_at is not None and len(self.writes) >= self._fail_at

    def _count(self, label: str) -> str | None:
        with self._lock:
            self.writes.append(label)
            if self._fail_at is not None and len(self.writes) == self._fail_at:
                return self._when
            return None

    def _error(self) -> StorageError:
        return self._error_type()

    # the unit of work and the lifecycle are the wrapped store's own
    def atomic(self) -> AbstractContextManager[None]:
        return self.inner.atomic()

    def create_schema(self) -> None:
        self.inner.create_schema()

    def schema_status(self) -> SchemaStatus:
        return self.inner.schema_status()

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        return self.inner.migrate(dry_run=dry_run)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)
