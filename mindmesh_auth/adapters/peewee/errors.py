"""Driver errors translated to the package's storage errors, in one place.

Classification goes through ONE table, :data:`BY_CODE`: (driver family, driver
error code) -> our error class, in the style of httpx's
``map_httpcore_exceptions``. The code is PostgreSQL's SQLSTATE (psycopg2
``pgcode``; a two-character key is a whole SQLSTATE class), MySQL/MariaDB's
error number (PyMySQL ``args[0]``) or SQLite's result-code name (``sqlite3``
``sqlite_errorname``; an extended name also matches its primary one). SQLite
reports a missing table or column as the generic ``SQLITE_ERROR``: for those
(and for a SQLite-family driver other than ``sqlite3``) the start of the
message is the code (:data:`SQLITE_MESSAGE_CODES`). An error whose code is not
in the table falls back on its DB-API class (:data:`BY_CLASS`): connection-level
classes (``OperationalError``, ``InterfaceError``) -> ``StorageUnavailable``,
every other database error -> ``StorageError``.

Peewee wraps a driver exception in its own class of the same DB-API name and
keeps the original as ``exc.orig`` (also the ``__context__``); the driver's
exception is the one classified.

Messages of the translated errors are generic on purpose: a driver message can
quote statement parameters (hashes, e-mail addresses). The only words taken
from a driver message are the table and column names of a ``SchemaMismatch``,
and only when they look like SQL identifiers. The translated error keeps:

* ``error.driver_error``: ``"<driver exception class> <code>"`` (no message);
* on a ``SchemaMismatch``, ``error.table`` and ``error.column`` (``None`` when
  the driver does not name them);
* no ``__cause__``: the driver's exception is dropped (``raise ... from None``),
  because its message can quote parameters, among them keyed token hashes and
  bcrypt hashes, which must never reach a traceback or a log. The driver class
  and code in ``driver_error`` and the one log line are what is kept.

Every translated error is logged once on the ``mindmesh_auth`` logger (ERROR for
``SchemaMismatch``, WARNING otherwise) with the driver class and code only; the
error is marked so that re-raising it through nested layers never logs it again.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import sqlite3
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

import peewee
from playhouse.pool import MaxConnectionsExceeded

from ...core.errors import (
    DuplicateKeyError,
    SchemaMismatch,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)

__all__ = ["BY_CLASS", "BY_CODE", "SQLITE_MESSAGE_CODES", "report", "translate", "translate_errors", "translated"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("mindmesh_auth")

_LOGGED = "_mindmesh_logged"

# ---------------------------------------------------------------- the table

BY_CODE: dict[tuple[str, str], type[StorageError]] = {
    # PostgreSQL SQLSTATE (psycopg2 ``pgcode``); two characters = a whole class.
    ("postgresql", "40001"): StorageConflict,  # serialization_failure
    ("postgresql", "40P01"): StorageConflict,  # deadlock_detected
    ("postgresql", "55P03"): StorageConflict,  # lock_not_available (lock_timeout, NOWAIT)
    ("postgresql", "42P01"): SchemaMismatch,  # undefined_table
    ("postgresql", "42703"): SchemaMismatch,  # undefined_column
    ("postgresql", "23505"): DuplicateKeyError,  # unique_violation
    ("postgresql", "23"): StorageError,  # other integrity violations: NOT NULL 23502, FK 23503, CHECK 23514...
    ("postgresql", "08"): StorageUnavailable,  # connection_exception
    ("postgresql", "53"): StorageUnavailable,  # insufficient_resources (too many connections, disk full)
    ("postgresql", "57014"): StorageUnavailable,  # query_canceled (statement_timeout)
    ("postgresql", "57P01"): StorageUnavailable,  # admin_shutdown (the backend was terminated)
    ("postgresql", "57P02"): StorageUnavailable,  # crash_shutdown
    ("postgresql", "57P03"): StorageUnavailable,  # cannot_connect_now
    ("postgresql", "57P05"): StorageUnavailable,  # idle_session_timeout
    ("postgresql", "25P03"): StorageUnavailable,  # idle_in_transaction_session_timeout
    # MySQL / MariaDB error numbers (PyMySQL ``args[0]``).
    ("mysql", "1213"): StorageConflict,  # ER_LOCK_DEADLOCK
    ("mysql", "1205"): StorageConflict,  # ER_LOCK_WAIT_TIMEOUT
    ("mysql", "1146"): SchemaMismatch,  # ER_NO_SUCH_TABLE
    ("mysql", "1054"): SchemaMismatch,  # ER_BAD_FIELD_ERROR (unknown column)
    ("mysql", "1062"): DuplicateKeyError,  # ER_DUP_ENTRY
    ("mysql", "1586"): DuplicateKeyError,  # ER_DUP_ENTRY_WITH_KEY_NAME
    ("mysql", "1048"): StorageError,  # ER_BAD_NULL_ERROR (NOT NULL)
    ("mysql", "1364"): StorageError,  # ER_NO_DEFAULT_FOR_FIELD (strict mode NOT NULL)
    ("mysql", "1451"): StorageError,  # ER_ROW_IS_REFERENCED_2 (FK)
    ("mysql", "1452"): StorageError,  # ER_NO_REFERENCED_ROW_2 (FK)
    ("mysql", "1040"): StorageUnavailable,  # ER_CON_COUNT_ERROR (too many connections)
    ("mysql", "1053"): StorageUnavailable,  # ER_SERVER_SHUTDOWN
    ("mysql", "1927"): StorageUnavailable,  # ER_CONNECTION_KILLED (MariaDB)
    ("mysql", "1969"): StorageUnavailable,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    ("mysql", "3024"): StorageUnavailable,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    ("mysql", "2002"): StorageUnavailable,  # CR_CONNECTION_ERROR
    ("mysql", "2003"): StorageUnavailable,  # CR_CONN_HOST_ERROR
    ("mysql", "2006"): StorageUnavailable,  # CR_SERVER_GONE_ERROR
    ("mysql", "2013"): StorageUnavailable,  # CR_SERVER_LOST
    ("mysql", "2055"): StorageUnavailable,  # CR_SERVER_LOST_EXTENDED
    # SQLite result codes (``sqlite_errorname``; SQLITE_BUSY also covers SQLITE_BUSY_SNAPSHOT...).
    ("sqlite", "SQLITE_BUSY"): StorageConflict,  # "database is locked"
    ("sqlite", "SQLITE_LOCKED"): StorageConflict,  # "database table is locked"
    ("sqlite", "SQLITE_CONSTRAINT_UNIQUE"): DuplicateKeyError,
    ("sqlite", "SQLITE_CONSTRAINT_PRIMARYKEY"): DuplicateKeyError,
    ("sqlite", "SQLITE_CONSTRAINT"): StorageError,  # NOT NULL, FOREIGN KEY, CHECK...
    ("sqlite", "SQLITE_CANTOPEN"): StorageUnavailable,
    ("sqlite", "SQLITE_ERROR"): StorageError,  # an SQL error (after the messages below)
    # SQLite errors known by their message only (see SQLITE_MESSAGE_CODES).
    ("sqlite", "no such table"): SchemaMismatch,
    ("sqlite", "no such column"): SchemaMismatch,
    ("sqlite", "has no column named"): SchemaMismatch,
    ("sqlite", "UNIQUE constraint failed"): DuplicateKeyError,
    ("sqlite", "database is locked"): StorageConflict,
    ("sqlite", "database table is locked"): StorageConflict,
}
"""(driver family, code) -> our error class: the one classification table."""

SQLITE_MESSAGE_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"no such table: (?:\w+\.)?(?P<table>\S+)"), "no such table"),
    (re.compile(r"no such column: (?:\w+\.)?(?P<column>\S+)"), "no such column"),
    (re.compile(r"table (?P<table>\S+) has no column named (?P<column>\S+)"), "has no column named"),
    (re.compile(r"UNIQUE constraint failed"), "UNIQUE constraint failed"),
    (re.compile(r"database is locked"), "database is locked"),
    (re.compile(r"database table is locked"), "database table is locked"),
)
"""SQLite messages (from their start) that stand for a code ``SQLITE_ERROR`` does not give."""

_SCHEMA_NAMES: dict[tuple[str, str], tuple[re.Pattern[str], ...]] = {
    ("postgresql", "42P01"): (re.compile(r'relation "(?P<table>[^"]+)" does not exist'),),
    ("postgresql", "42703"): (
        re.compile(r'column "(?P<column>[^"]+)" of relation "(?P<table>[^"]+)" does not exist'),
        re.compile(r'column (?:\w+\.|"\w+"\.)?"?(?P<column>[^"\s]+)"? does not exist'),
    ),
    ("mysql", "1146"): (re.compile(r"Table '(?:\w+\.)?(?P<table>[^']+)' doesn't exist"),),
    ("mysql", "1054"): (re.compile(r"Unknown column '(?:\w+\.)?(?P<column>[^']+)'"),),
    **{("sqlite", code): (pattern,) for pattern, code in SQLITE_MESSAGE_CODES},
}
"""Where a driver message names the missing table/column (identifiers only are kept)."""

_IDENTIFIER = re.compile(r"[^\W\d]\w{0,63}")


def _module(name: str) -> Any:
    """An optional driver module (``None`` if it is not installed)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_PSYCOPG2, _PSYCOPG, _PYMYSQL = _module("psycopg2"), _module("psycopg"), _module("pymysql.err")

# Which driver an exception comes from (by its base class, not by its name).
_FAMILIES: tuple[tuple[type[BaseException], str], ...] = tuple(
    (module.Error if module is not _PYMYSQL else module.MySQLError, family)
    for module, family in ((sqlite3, "sqlite"), (_PSYCOPG2, "postgresql"), (_PSYCOPG, "postgresql"), (_PYMYSQL, "mysql"))
    if module is not None
)


def _dbapi_classes(module: Any) -> tuple[tuple[type[BaseException], type[StorageError]], ...]:
    if module is None:
        return ()
    return (
        (module.OperationalError, StorageUnavailable),
        (module.InterfaceError, StorageUnavailable),
        (module.Error, StorageError),
    )


BY_CLASS: tuple[tuple[type[BaseException], type[StorageError]], ...] = (
    (MaxConnectionsExceeded, StorageUnavailable),  # playhouse.pool: no free connection within its timeout
    (peewee.OperationalError, StorageUnavailable),
    (peewee.InterfaceError, StorageUnavailable),
    (peewee.PeeweeException, StorageError),
    *_dbapi_classes(sqlite3),
    *_dbapi_classes(_PSYCOPG2),
    *_dbapi_classes(_PSYCOPG),
    *_dbapi_classes(_PYMYSQL),
)
"""Fallback for an error whose code is not in :data:`BY_CODE`: its DB-API class (first match wins)."""


# ---------------------------------------------------------------- classification


def _driver_exception(exc: BaseException) -> BaseException:
    """The DB-API exception behind a peewee wrapper (``exc`` itself if none)."""
    if isinstance(exc, peewee.PeeweeException):
        inner = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
        if isinstance(inner, BaseException) and not isinstance(inner, peewee.PeeweeException):
            return inner
    return exc


def _family_and_code(driver: BaseException) -> tuple[str | None, str | None]:
    family = next((name for klass, name in _FAMILIES if isinstance(driver, klass)), None)
    code: object = None
    if family == "postgresql":
        code = getattr(driver, "pgcode", None) or getattr(driver, "sqlstate", None)
    elif family == "mysql":
        code = driver.args[0] if driver.args and isinstance(driver.args[0], int) else None
    elif family == "sqlite":
        code = getattr(driver, "sqlite_errorname", None)
    return family, (str(code) if code is not None else None)


def _message_code(driver: BaseException) -> str | None:
    message = str(driver)
    for pattern, code in SQLITE_MESSAGE_CODES:
        if pattern.match(message):
            return code
    return None


def _lookup(family: str, code: str) -> type[StorageError] | None:
    found = BY_CODE.get((family, code))
    if found is None and family == "postgresql" and len(code) == 5:
        found = BY_CODE.get((family, code[:2]))
    if found is None and family == "sqlite" and code.count("_") > 1:
        found = BY_CODE.get((family, "_".join(code.split("_")[:2])))
    return found


def _classify(exc: BaseException) -> tuple[type[StorageError], str, str | None, str | None] | None:
    """(our class, driver label, family, table code) for a driver/peewee error, else ``None``."""
    driver = _driver_exception(exc)
    family, code = _family_and_code(driver)
    target: type[StorageError] | None = None
    key_family, key_code = family, code
    if family in ("sqlite", None):
        # SQLite's schema errors are SQLITE_ERROR: the message start is the code. Also for
        # SQLite drivers other than sqlite3 (apsw, sqlcipher) and bare peewee errors.
        message_code = _message_code(driver)
        if message_code is not None:
            key_family, key_code = "sqlite", message_code
            target = BY_CODE[(key_family, key_code)]
    if target is None and family is not None and code is not None:
        target = _lookup(family, code)
    if target is None:
        for candidate in (driver, exc):
            target = next((ours for klass, ours in BY_CLASS if isinstance(candidate, klass)), None)
            if target is not None:
                break
    if target is None:
        return None
    label = type(driver).__name__ if code is None else f"{type(driver).__name__} {code}"
    return target, label, key_family, key_code


def _schema_names(driver: BaseException, family: str | None, code: str | None) -> tuple[str | None, str | None]:
    """(table, column) named by the driver's message; only identifier-shaped words are kept."""
    if family is None or code is None:
        return None, None
    message = str(driver.args[1]) if family == "mysql" and len(driver.args) > 1 else str(driver)
    for pattern in _SCHEMA_NAMES.get((family, code), ()):
        found = pattern.search(message)
        if found is not None:
            names = found.groupdict()
            table, column = names.get("table"), names.get("column")
            return (
                table if table is not None and _IDENTIFIER.fullmatch(table) else None,
                column if column is not None and _IDENTIFIER.fullmatch(column) else None,
            )
    return None, None


def _schema_mismatch(table: str | None, column: str | None) -> SchemaMismatch:
    prefix = "The database schema does not match the store: "
    if column is not None:
        where = f"table {table!r} has no column {column!r}" if table else f"column {column!r} does not exist"
        message = (
            f"{prefix}{where}. Run the migration that adds it: `mindmesh-auth migrate` or auth.migrate() "
            "(create_schema() creates missing tables only; it does not add columns)."
        )
    elif table is not None:
        message = f"{prefix}table {table!r} does not exist. Run create_schema() or the migration (`mindmesh-auth migrate`)."
    else:
        message = f"{prefix}a table or column is missing. Run create_schema() or the migration (`mindmesh-auth migrate`)."
    error = SchemaMismatch(message)
    error.table = table  # type: ignore[attr-defined]
    error.column = column  # type: ignore[attr-defined]
    return error


def translate(exc: BaseException) -> StorageError | None:
    """The storage error for a driver/peewee exception, or ``None`` if it is not one.

    Not logged (see :func:`report`); ``driver_error`` is set on the result.
    """
    if isinstance(exc, StorageError):
        return None
    found = _classify(exc)
    if found is None:
        return None
    target, label, family, code = found
    if target is SchemaMismatch:
        table, column = _schema_names(_driver_exception(exc), family, code)
        mapped: StorageError = _schema_mismatch(table, column)
    else:
        mapped = target()
    mapped.driver_error = label  # type: ignore[attr-defined]
    return mapped


def report(error: StorageError) -> None:
    """Log a translated error once (class and code only; never the statement or a parameter)."""
    if getattr(error, _LOGGED, False):
        return
    setattr(error, _LOGGED, True)
    if isinstance(error, SchemaMismatch):
        level = logging.ERROR
    elif isinstance(error, DuplicateKeyError):
        level = logging.DEBUG  # an expected outcome (an address already taken), not a failure
    else:
        level = logging.WARNING
    names = ""
    if isinstance(error, SchemaMismatch):
        table, column = getattr(error, "table", None), getattr(error, "column", None)
        names = "".join(f" {kind}={name}" for kind, name in (("table", table), ("column", column)) if name)
    label = getattr(error, "driver_error", "?")
    log.log(
        level,
        "Storage failure %s from the database driver: %s%s",
        error.code,
        label,
        names,
        extra={"mindmesh_error": error.code, "driver_error": label},
    )


class translate_errors:  # noqa: N801 - used like a function
    """Context manager: re-raise driver errors as ``StorageError`` subclasses (logged once)."""

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
        report(mapped)
        # The driver's message may quote parameters (hashes): keep only its class and code.
        raise mapped from None


_TRANSLATE = translate_errors()


def translated(method: F) -> F:
    """Decorator form of :class:`translate_errors` for repository methods."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _TRANSLATE:
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
