"""Driver errors translated to the package's storage errors, in one place.

Messages are generic on purpose: a driver message can quote SQL parameters
(hashes, e-mail addresses), so it is kept only as the ``__cause__``.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

import peewee

from ...core.errors import DuplicateKeyError, StorageError, StorageUnavailable

__all__ = ["translate", "translate_errors", "translated"]

F = TypeVar("F", bound=Callable[..., Any])


def translate(exc: BaseException) -> StorageError | None:
    """The storage error for a driver/peewee exception, or ``None`` if it is not one."""
    if isinstance(exc, StorageError):
        return None
    if isinstance(exc, peewee.IntegrityError | sqlite3.IntegrityError):
        return DuplicateKeyError()
    if isinstance(exc, peewee.OperationalError | peewee.InterfaceError | sqlite3.OperationalError):
        return StorageUnavailable()
    if isinstance(exc, peewee.PeeweeException | sqlite3.Error):
        return StorageError()
    # Raw DB-API errors that escaped peewee's wrapper (e.g. raised while fetching).
    for klass in type(exc).__mro__:
        if klass.__name__ in ("OperationalError", "InterfaceError") and klass.__module__.split(".")[0] in (
            "psycopg2",
            "psycopg",
            "pymysql",
        ):
            return StorageUnavailable()
        if klass.__name__ == "Error" and klass.__module__.split(".")[0] in ("psycopg2", "psycopg", "pymysql"):
            return StorageError()
    return None


class translate_errors:  # noqa: N801 - used like a function
    """Context manager: re-raise driver errors as ``StorageError`` subclasses."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None:
            return False
        mapped = translate(exc)
        if mapped is None:
            return False
        # The driver's message may quote parameters: keep only its type name.
        mapped.driver_error = type(exc).__name__  # type: ignore[attr-defined]
        raise mapped from None


_TRANSLATE = translate_errors()


def translated(method: F) -> F:
    """Decorator form of :class:`translate_errors` for repository methods."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _TRANSLATE:
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
