"""What every Mongo repository shares: one error translator, input guards, UTC times.

* :func:`storage_op` wraps every public repository method. It is the ONE place
  where driver errors become the package's typed errors (with generic
  messages: a driver message may quote the duplicate key, i.e. an email), and
  where calls on a mongomock database are serialised (see ``MongoStore``).
* :func:`text` is the one guard that keeps anything but a plain ``str`` out of
  a query filter (``{"$ne": None}``, ``{"$gt": ""}``, lists, ``None``...).
* :func:`to_db` / :func:`from_db` keep every datetime timezone-aware UTC, on
  the way in and on the way out, whether or not the client is ``tz_aware``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import bson.errors
import pymongo.errors

from ...core.errors import DuplicateKeyError, StorageError, StorageUnavailable, ValidationError

__all__ = ["from_db", "integer", "optional_text", "storage_op", "text", "to_db", "translate_errors"]

P = ParamSpec("P")
R = TypeVar("R")


class _Serialised(Protocol):
    _serial: AbstractContextManager[Any]


S = TypeVar("S", bound=_Serialised)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Driver errors -> ``DuplicateKeyError`` / ``StorageUnavailable`` / ``StorageError``."""
    try:
        yield
    except pymongo.errors.DuplicateKeyError:
        raise DuplicateKeyError() from None
    except pymongo.errors.ConnectionFailure:
        # AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError are ConnectionFailures.
        raise StorageUnavailable() from None
    except pymongo.errors.PyMongoError:
        raise StorageError() from None
    except bson.errors.InvalidDocument:
        raise ValidationError("A value cannot be stored in MongoDB.") from None


def storage_op(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Decorate a public repository method: serialise (mongomock only) and translate errors."""

    @functools.wraps(fn)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._serial, translate_errors():
            return fn(self, *args, **kwargs)

    return wrapper


def text(value: object, field: str) -> str:
    """The value if it is exactly a ``str``; else ``ValidationError`` before any query runs."""
    if type(value) is not str:
        raise ValidationError(f"{field} must be a string.", field=field)
    return value


def optional_text(value: object, field: str) -> str | None:
    return None if value is None else text(value, field)


def integer(value: object, field: str) -> int:
    if type(value) is not int:
        raise ValidationError(f"{field} must be an integer.", field=field)
    return value


def to_db(value: object, field: str) -> datetime:
    """An aware datetime, as UTC, for a document or a filter."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{field} must be a timezone-aware datetime.", field=field)
    return value.astimezone(timezone.utc)


def optional_to_db(value: object, field: str) -> datetime | None:
    return None if value is None else to_db(value, field)


def from_db(value: Any) -> Any:
    """A datetime read back from the driver as aware UTC (naive means UTC in BSON)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    return value
