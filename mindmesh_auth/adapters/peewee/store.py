"""The Peewee store: the ports over the app's own ``peewee.Database``.

Every method marked *atomic* in :mod:`mindmesh_auth.core.ports` is a single
conditional statement (checked through its affected-row count) or one
transaction; nothing is read in Python and then written back.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import math
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import unquote_plus, urlsplit

import attrs
import peewee
from playhouse import db_url

from ...core.errors import ConfigurationError, StorageConflict, StorageError, StorageUnavailable, ValidationError
from ...core.models import (
    CORE_USER_FIELDS,
    AuditEvent,
    AuditEventType,
    OtpChallenge,
    ResetToken,
    RetiredRefreshToken,
    Session,
    SessionWithUser,
    User,
)
from ...core.ports import (
    AuditRepository,
    CounterState,
    OtpRepository,
    RateLimitRepository,
    ResetTokenRepository,
    SessionRepository,
    Store,
    UserRepository,
)
from ...core.schema import MigrationPlan, SchemaStatus
from ...wiring import require_driver
from . import migrations
from ._pipeline import PipelinedPostgresqlDatabase
from .errors import _family_and_code, log, report, translate, translate_errors
from .models import (
    CORE_USER_COLUMNS,
    BaseUserModel,
    Models,
    build_models,
    from_ms,
    is_mysql,
    is_postgres,
    is_sqlite,
    resolve_database,
    resolve_table_names,
    to_ms,
)

__all__ = ["PeeweeStore"]

F = TypeVar("F", bound=Callable[..., Any])

SQLITE_PRAGMAS = {"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1}

_TRANSLATE = translate_errors()

_log = logging.getLogger("mindmesh_auth")

# ---------------------------------------------------------------- connections that heal

DEFAULT_STATEMENT_TIMEOUT = 5.0
"""Seconds a call waits on a PostgreSQL/MySQL server before it gets ``StorageUnavailable``."""

_READ_METHODS = frozenset(
    {"get", "get_by_email", "get_with_user", "get_by_refresh_hash", "get_retired", "list", "list_for_user", "query"}
)
"""Port methods that only read. Every other repository method counts as a write."""

# The server ended the session: SQLSTATE (plus the whole class 08, connection_exception) ...
_PG_GONE = frozenset({"57P01", "57P02", "57P03", "57P05"})
# ... or MySQL/MariaDB error numbers: gone away, lost, lost (extended), server shutdown,
# connection killed (MariaDB), client interaction timeout (MySQL 8.0.24+).
_MYSQL_GONE = frozenset({2006, 2013, 2055, 1053, 1927, 4031})
_UPSERT_ATTEMPTS = 12
"""How many times :meth:`PeeweeOtps.put` runs a deadlocked upsert outside a transaction (MySQL/MariaDB)."""
_UPSERT_BACKOFF = 0.002
"""Seconds: the n-th retry waits a random time up to n times this (parallel callers spread out)."""
# What PostgreSQL may send on an idle connection that is not a goodbye:
# NotificationResponse (LISTEN/NOTIFY), NoticeResponse, ParameterStatus.
_PG_ASYNC_MESSAGES = frozenset({b"A", b"N", b"S"})
_POLL = getattr(select, "poll", None)
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _driver_exception(exc: BaseException) -> BaseException:
    """The DB-API exception behind a peewee wrapper or a translated ``StorageError``."""
    seen = 0
    while seen < 4:
        seen += 1
        if isinstance(exc, peewee.PeeweeException):
            inner = getattr(exc, "orig", None) or exc.__context__
        elif isinstance(exc, StorageError):
            inner = exc.__cause__ or exc.__context__
        else:
            return exc
        if not isinstance(inner, BaseException):
            return exc
        exc = inner
    return exc


def _dbapi_class(driver: BaseException) -> str | None:
    for klass in type(driver).__mro__:
        if klass.__name__ in ("OperationalError", "InterfaceError"):
            return klass.__name__
    return None


def _sqlstate(exc: BaseException) -> str | None:
    family, code = _family_and_code(_driver_exception(exc))
    return code if family == "postgresql" else None


def _mysql_errno(driver: BaseException) -> int | None:
    family, code = _family_and_code(driver)
    return int(code) if family == "mysql" and code is not None else None


def _timed_out(driver: BaseException) -> bool:
    """The driver gave up waiting (a socket timeout), as opposed to the server closing the connection."""
    exc: BaseException | None = driver
    for _ in range(4):
        if exc is None:
            return False
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _closed_locally(conn: Any) -> bool:
    """The driver already knows this connection is closed (no I/O needed)."""
    closed = getattr(conn, "closed", None)  # psycopg2 (int), psycopg (bool)
    if isinstance(closed, bool | int) and closed:
        return True
    status = getattr(conn, "get_transaction_status", None)  # psycopg2 (libpq's local state)
    if callable(status):
        try:
            return bool(status() == 4)  # TRANSACTION_STATUS_UNKNOWN: the connection is bad
        except Exception:
            return True
    return hasattr(conn, "_sock") and conn._sock is None  # PyMySQL


def _driver_in_transaction(conn: Any) -> bool:
    """The driver's local state says a transaction is open (one peewee does not track:
    an app's raw ``BEGIN``). No I/O."""
    status = getattr(conn, "get_transaction_status", None)  # psycopg2
    if callable(status):
        try:
            return status() in (1, 2, 3)  # ACTIVE, INTRANS, INERROR
        except Exception:
            return False
    server_status = getattr(conn, "server_status", None)  # PyMySQL, from the last OK packet
    return isinstance(server_status, int) and bool(server_status & 1)  # SERVER_STATUS_IN_TRANS


def _socket_fd(conn: Any) -> int | None:
    """The connection's socket descriptor, or ``None`` if the driver does not tell."""
    try:
        if callable(getattr(conn, "fileno", None)):  # psycopg2, psycopg
            fd = conn.fileno()
        else:
            sock = getattr(conn, "_sock", None)  # PyMySQL
            fd = sock.fileno() if sock is not None else None
    except Exception:
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _peer_closed(conn: Any, postgres: bool) -> bool:
    """Whether the server has closed (or is closing) this *idle* connection: one
    non-blocking ``poll`` of its socket, no round trip.

    An idle connection has nothing to read. If it does, the server has said
    goodbye (EOF, a reset, or a FATAL error such as ``pg_terminate_backend``'s)
    unless it is one of PostgreSQL's asynchronous messages (a NOTIFY for an app
    that LISTENs on this connection), which is left for the driver.
    """
    if _closed_locally(conn):
        return True
    fd = _socket_fd(conn)
    if fd is None:
        return False
    if _POLL is not None:
        poller = _POLL()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        try:
            events = poller.poll(0)
        except OSError:
            return True
        if not events:
            return False
        hung_up = bool(events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL))
    else:  # no poll() (Windows)
        try:
            readable, _writable, failed = select.select([fd], [], [fd], 0)
        except (OSError, ValueError):
            return False
        if not readable and not failed:
            return False
        hung_up = bool(failed)
    if hung_up or not postgres:
        return True  # MySQL/MariaDB send nothing unasked on an idle connection but a goodbye
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return True
    try:
        head = sock.recv(1, socket.MSG_PEEK | _MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.detach()  # the driver owns the descriptor
    return head not in _PG_ASYNC_MESSAGES


def _connection_lost(conn: Any, exc: BaseException) -> bool:
    """The call failed because the connection is gone (not a timeout, not an SQL error)."""
    driver = _driver_exception(exc)
    if _dbapi_class(driver) is None or _timed_out(driver):
        return False
    if _closed_locally(conn):
        return True
    state = _sqlstate(driver)
    if state is not None and (state in _PG_GONE or state.startswith("08")):
        return True
    return _mysql_errno(driver) in _MYSQL_GONE


def _never_sent(exc: BaseException) -> bool:
    """The failure shows the statement never reached the server (so even a write can be sent again)."""
    driver = _driver_exception(exc)
    kind = _dbapi_class(driver)
    if kind == "InterfaceError":
        # psycopg2 "connection already closed", PyMySQL InterfaceError(0, ''): raised before sending.
        return True
    if _mysql_errno(driver) == 2006 and not _timed_out(driver):
        # PyMySQL raises 2006 only when sending failed: the server did not get the whole packet,
        # and it never runs a partial one.
        return isinstance(driver.__context__, OSError)
    return False


def _shutdown_fd(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class _Watchdog:
    """Ends calls that wait on a server too long (one daemon thread per process).

    A call arms it with its connection's socket and a deadline. If the call is
    still running at the deadline, the socket is shut down: the driver's blocked
    read returns at once with a lost-connection error (closing it from another
    thread is the one thing that works against a frozen server or a black-holed
    route: a cancel request would go through the same dead path). The armed
    socket is a duplicate descriptor, held only while the call runs, so a
    descriptor number reused after the driver closed its own can never be hit.
    Arming costs a ``dup``, a ``close`` and a lock, no I/O. The thread starts on
    first use and ends after a minute without calls. Where a socket cannot be
    duplicated as a descriptor (Windows), calls are not armed: the driver's own
    timeouts are then the only bound.
    """

    IDLE_EXIT = 60.0

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=self._after_fork)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._armed: dict[int, tuple[float, int]] = {}
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf

    def _after_fork(self) -> None:
        for _deadline, fd in self._armed.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reset()

    def arm(self, fd: int, seconds: float) -> int | None:
        try:
            dup = os.dup(fd)
        except OSError:
            return None
        deadline = time.monotonic() + seconds
        with self._cond:
            token = next(self._tokens)
            self._armed[token] = (deadline, dup)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mindmesh-auth-sql-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """``True`` if the call ended in time, ``False`` if the watchdog had to end it."""
        with self._cond:
            entry = self._armed.pop(token, None)
        if entry is None:
            return False
        os.close(entry[1])
        return True

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        _shutdown_fd(fd)
                        os.close(fd)
                        _log.warning("A database call outlived its statement_timeout; its connection was closed.")
                if self._armed:
                    self._wake_at = min(deadline for deadline, _fd in self._armed.values())
                    self._cond.wait(self._wake_at - now)
                else:
                    self._wake_at = math.inf
                    if not self._cond.wait(self.IDLE_EXIT) and not self._armed:
                        self._thread = None
                        return


_WATCHDOG = _Watchdog()


def _op(method: F) -> F:
    """Repository method wrapper: one place for error translation, connection
    healing and the bounded wait (see :meth:`PeeweeStore._call`), and the
    store-wide lock used only for a shared in-memory SQLite database."""
    write = method.__name__ not in _READ_METHODS

    @functools.wraps(method)
    def wrapper(self: _Repo, *args: Any, **kwargs: Any) -> Any:
        store = self._store
        try:
            with store._guard, _TRANSLATE:
                return store._call(functools.partial(method, self, *args, **kwargs), write)
        except StorageUnavailable:
            store._after_failure()
            raise

    return wrapper  # type: ignore[return-value]


def _ms_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)


# ---------------------------------------------------------------- statements compiled once


class _Slot:
    """Where a compiled statement takes a call's value: ``values[name]``, converted as peewee would."""

    __slots__ = ("convert", "name")

    def __init__(self, name: str, convert: Callable[[Any], Any] | None) -> None:
        self.name = name
        self.convert = convert


class _P(peewee.Value):  # type: ignore[misc]
    """A named parameter of a statement compiled once (see :meth:`_Repo._run`).

    Its value is converted as peewee converts a literal in the same place: by
    ``column``'s ``db_value`` if given (insert and update values), otherwise by
    the converter in effect where it stands (the compared column's)."""

    def __init__(self, name: str, column: peewee.Field | None = None) -> None:
        super().__init__(None, converter=False)
        self.name = name
        self.column = column

    def __sql__(self, ctx: Any) -> Any:
        convert = self.column.db_value if self.column is not None else ctx.state.converter
        return ctx.value(_Slot(self.name, convert), converter=False)


def _row_params(columns: Sequence[peewee.Field]) -> dict[Any, _P]:
    """An insert row of parameters, one per column, named after the field."""
    return {c: _P(c.name, c) for c in columns}


class _Statement:
    """A query's SQL, compiled once for one database, and how to bind a call's values to it."""

    __slots__ = ("binds", "database", "sql")

    def __init__(self, database: peewee.Database, query: peewee.Query) -> None:
        sql, params = database.get_sql_context().sql(query).query()  # type: ignore[no-untyped-call]
        self.database = database
        self.sql: str = sql
        self.binds: tuple[Any, ...] = tuple(params)

    def params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (values[b.name] if b.convert is None else b.convert(values[b.name])) if type(b) is _Slot else b for b in self.binds
        )


class _Repo:
    def __init__(self, store: PeeweeStore) -> None:
        self._store = store
        self._m: Models = store.models
        self._db = store.database

    # Queries run through ``Database.execute``: raw driver values (epoch
    # integers), no per-row model machinery.
    def _all(self, query: peewee.Query) -> list[Any]:
        return list(self._db.execute(query).fetchall())

    def _first(self, query: peewee.Query) -> Any:
        return self._db.execute(query).fetchone()

    def _run(self, key: str, build: Callable[[], peewee.Query], /, **values: Any) -> Any:
        """Execute ``build()``'s query with its :class:`_P` parameters set from
        ``values``; returns the cursor. The SQL is generated once per store and
        database (``key`` names it), not on every call."""
        db = resolve_database(self._db)
        statements = self._store._statements
        statement = statements.get(key)
        if statement is None or statement.database is not db:
            assert db is not None
            statement = statements[key] = _Statement(db, build())
        return self._db.execute_sql(statement.sql, statement.params(values))

    def _run_unanswered(self, key: str, build: Callable[[], peewee.Query], /, **values: Any) -> None:
        """:meth:`_run` for a write whose result nobody reads: inside a unit on
        PostgreSQL it travels with the unit's next statement (see ``_pipeline``)."""
        db = resolve_database(self._db)
        if isinstance(db, PipelinedPostgresqlDatabase) and db.deferring():
            statement = self._store._statements.get(key)
            if statement is None or statement.database is not db:
                statement = self._store._statements[key] = _Statement(db, build())
            db.defer(statement.sql, statement.params(values))
            return
        self._run(key, build, **values)

    def _in_transaction(self) -> bool:
        """Whether this thread's connection is inside a transaction (peewee's or the app's raw one)."""
        db: Any = resolve_database(self._db)
        return bool(db is not None and (db.in_transaction() or _driver_in_transaction(db.connection())))

    def _delete(self, model: Any, where: Any, limit: int | None, order: tuple[Any, ...] = ()) -> int:
        """``DELETE ... WHERE where``; with ``limit``, at most that many rows (in ``order``):
        ``DELETE ... LIMIT`` on MySQL/MariaDB (which refuse LIMIT in an IN subquery),
        ``DELETE ... WHERE pk = ANY(ARRAY(SELECT pk ... LIMIT))`` on PostgreSQL,
        ``DELETE ... WHERE pk IN (SELECT pk ... LIMIT)`` on SQLite."""
        if limit is None:
            return int(model.delete().where(where).execute())
        pk = model._meta.primary_key
        if self._store.is_mysql:
            return int(model.delete().where(where).order_by(*(order or (pk,))).limit(limit).execute())
        doomed = model.select(pk).where(where).order_by(*(order or (pk,))).limit(limit)
        if is_postgres(resolve_database(self._db)):
            # ``pk = ANY(ARRAY(SELECT ...))``: the batch's keys are computed first and looked
            # up in the primary key; with ``pk IN (SELECT ...)`` the planner may scan the
            # whole table once per batch (a hash semi-join) when many rows match ``where``.
            keys = peewee.NodeList((peewee.SQL("ARRAY"), doomed))
            return int(model.delete().where(where & (pk == peewee.fn.ANY(keys))).execute())
        return int(model.delete().where(where & pk.in_(doomed)).execute())

    def _purge_spent(self, model: Any, now: datetime, limit: int | None) -> int:
        """Delete expired rows, then consumed ones, at most ``limit`` in all: two
        statements, each a range of its own index (``expires_at``, ``consumed_at``);
        one ``expires_at <= now OR consumed_at IS NOT NULL`` scanned the whole table."""
        expired = self._delete(model, model.expires_at <= to_ms(now), limit, order=(model.expires_at,))
        if limit is not None and expired >= limit:
            return expired
        rest = None if limit is None else limit - expired
        return expired + self._delete(model, model.consumed_at.is_null(False), rest, order=(model.consumed_at,))


# ---------------------------------------------------------------- users


class PeeweeUsers(_Repo, UserRepository):
    def __init__(self, store: PeeweeStore) -> None:
        super().__init__(store)
        U = self._m.User  # noqa: N806
        self._extras = {f.name: f for f in self._m.user_extra_fields}
        self._columns = [getattr(U, name) for name in CORE_USER_COLUMNS] + list(self._m.user_extra_fields)

    # Row <-> User ------------------------------------------------------
    def from_row(self, row: Sequence[Any], offset: int = 0) -> User:
        extras = self._m.user_extra_fields
        n = len(CORE_USER_COLUMNS)
        profile = {f.name: f.python_value(row[offset + n + i]) for i, f in enumerate(extras)}
        return User(
            id=row[offset],
            email=row[offset + 1],
            password_hash=row[offset + 2],
            created_at=from_ms(row[offset + 3]),
            updated_at=from_ms(row[offset + 4]),
            email_verified=bool(row[offset + 5]),
            blocked=bool(row[offset + 6]),
            profile=profile,
        )

    def _fetch_one(self, key: str, column: peewee.Field, value: str) -> User | None:
        U = self._m.User  # noqa: N806
        row = self._run(key, lambda: U.select(*self._columns).where(column == _P("value")), value=value).fetchone()
        return self.from_row(row) if row is not None else None

    # Port --------------------------------------------------------------
    @_op
    def add(self, user: User) -> User:
        row: dict[str, Any] = {
            "id": user.id,
            "email": user.email,
            "password_hash": user.password_hash,
            "created_at": to_ms(user.created_at),
            "updated_at": to_ms(user.updated_at),
            "email_verified": bool(user.email_verified),
            "blocked": bool(user.blocked),
        }
        for key, value in user.profile.items():
            if key in CORE_USER_FIELDS or key not in self._extras:
                raise ValidationError(f"The user model has no profile field {key!r}.", field=key)
            row[key] = value
        for name, field in self._extras.items():
            if name not in row and not field.null and field.default is None:
                raise ValidationError(f"The profile field {name!r} is required.", field=name)
        U = self._m.User  # noqa: N806
        with self._store.atomic():
            U.insert(row).as_rowcount().execute()
            stored = self._fetch_one("users.by_id", U.id, user.id)
        assert stored is not None
        return stored

    @_op
    def get(self, user_id: str) -> User | None:
        return self._fetch_one("users.by_id", self._m.User.id, user_id)

    @_op
    def get_by_email(self, email: str) -> User | None:
        return self._fetch_one("users.by_email", self._m.User.email, email)

    def _update(self, user_id: str, changes: dict[str, Any]) -> bool:
        U = self._m.User  # noqa: N806
        n = U.update(changes).where(U.id == user_id).execute()
        if n:
            return True
        # MySQL reports *changed* rows unless CLIENT.FOUND_ROWS is set: a
        # no-op update of an existing row is still a success.
        return bool(U.select(U.id).where(U.id == user_id).exists())

    @_op
    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        U = self._m.User  # noqa: N806
        return self._update(user_id, {U.password_hash: password_hash, U.updated_at: to_ms(now)})

    @_op
    def set_blocked(self, user_id: str, blocked: bool, now: datetime) -> bool:
        U = self._m.User  # noqa: N806
        return self._update(user_id, {U.blocked: bool(blocked), U.updated_at: to_ms(now)})

    @_op
    def set_email_verified(self, user_id: str, now: datetime) -> bool:
        U = self._m.User  # noqa: N806
        return self._update(user_id, {U.email_verified: True, U.updated_at: to_ms(now)})

    @_op
    def change_email(self, user_id: str, email: str, now: datetime) -> bool:
        U = self._m.User  # noqa: N806
        # The unique index on email decides a race: IntegrityError -> DuplicateKeyError.
        return self._update(user_id, {U.email: email, U.email_verified: True, U.updated_at: to_ms(now)})

    @_op
    def delete(self, user_id: str) -> bool:
        U = self._m.User  # noqa: N806
        return bool(U.delete().where(U.id == user_id).execute() == 1)

    @_op
    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        U = self._m.User  # noqa: N806
        if limit <= 0:
            return []
        query = U.select(*self._columns).order_by(U.created_at, U.id).limit(limit).offset(max(0, offset))
        return [self.from_row(r) for r in self._all(query)]


# ---------------------------------------------------------------- sessions


class PeeweeSessions(_Repo, SessionRepository):
    def __init__(self, store: PeeweeStore, users: PeeweeUsers) -> None:
        super().__init__(store)
        self._users = users
        S = self._m.Session  # noqa: N806
        self._columns = [
            S.id,
            S.user_id,
            S.refresh_hash,
            S.created_at,
            S.expires_at,
            S.last_active_at,
            S.revoked_at,
            S.revoke_reason,
            S.ip_address,
            S.user_agent,
        ]
        self._with_user_sql: str | None = None
        # PostgreSQL: the hot-path join is a server-side prepared statement,
        # prepared once per connection (planning it costs more than running it).
        self._pg_statement: str | None = None
        self._pg_prepare = ""
        self._pg_execute = ""
        self._prepared_on = threading.local()

    @staticmethod
    def from_row(r: Sequence[Any]) -> Session:
        return Session(
            id=r[0],
            user_id=r[1],
            refresh_hash=r[2],
            created_at=from_ms(r[3]),
            expires_at=from_ms(r[4]),
            last_active_at=from_ms(r[5]),
            revoked_at=_ms_or_none(r[6]),
            revoke_reason=r[7],
            ip_address=r[8],
            user_agent=r[9],
        )

    def _one(self, key: str, column: peewee.Field, value: str) -> Session | None:
        S = self._m.Session  # noqa: N806
        row = self._run(key, lambda: S.select(*self._columns).where(column == _P("value")).limit(1), value=value).fetchone()
        return self.from_row(row) if row is not None else None

    @_op
    def add(self, session: Session) -> None:
        S = self._m.Session  # noqa: N806
        # Nothing reads its result: inside a unit on PostgreSQL it travels with the next statement
        # (a duplicate fails that request, so the unit still rolls back as a whole).
        self._run_unanswered(
            "sessions.add",
            lambda: S.insert(_row_params(self._columns)).as_rowcount(),
            id=session.id,
            user_id=session.user_id,
            refresh_hash=session.refresh_hash,
            created_at=to_ms(session.created_at),
            expires_at=to_ms(session.expires_at),
            last_active_at=to_ms(session.last_active_at),
            revoked_at=None if session.revoked_at is None else to_ms(session.revoked_at),
            revoke_reason=session.revoke_reason,
            ip_address=session.ip_address,
            user_agent=session.user_agent,
        )

    @_op
    def get(self, session_id: str) -> Session | None:
        return self._one("sessions.by_id", self._m.Session.id, session_id)

    def _build_with_user_sql(self) -> str:
        S, U = self._m.Session, self._m.User  # noqa: N806
        query = S.select(*self._columns, *self._users._columns).join(U, on=(U.id == S.user_id)).where(S.id == "?")
        sql, _params = query.sql()
        if self._store.prepared_token_check and is_postgres(resolve_database(self._db)):
            name = "mm_auth_with_user_" + hashlib.sha256(str(sql).encode()).hexdigest()[:16]
            self._pg_prepare = f"PREPARE {name} (text) AS " + str(sql).replace("%s", "$1")
            self._pg_execute = f"EXECUTE {name} (%s)"
            self._pg_statement = name
        self._with_user_sql = str(sql)
        return self._with_user_sql

    def _fetch_prepared(self, session_id: str) -> Any:
        db = self._db
        conn = db.connection()
        if getattr(self._prepared_on, "conn", None) is not conn:
            found = db.execute_sql("SELECT 1 FROM pg_prepared_statements WHERE name = %s", (self._pg_statement,))
            if found.fetchone() is None:
                db.execute_sql(self._pg_prepare)
            self._prepared_on.conn = conn
        try:
            return db.execute_sql(self._pg_execute, (session_id,)).fetchone()
        except peewee.PeeweeException as exc:
            # 26000 invalid_sql_statement_name: the statement is gone from this
            # connection (DISCARD ALL / DEALLOCATE ALL, a pooler's reset query).
            # Inside a transaction the failure has aborted it: nothing to retry.
            if _sqlstate(exc) != "26000" or db.in_transaction():
                raise
        self._prepared_on.conn = None
        db.execute_sql(self._pg_prepare)
        self._prepared_on.conn = conn
        return db.execute_sql(self._pg_execute, (session_id,)).fetchone()

    @_op
    def get_with_user(self, session_id: str) -> SessionWithUser | None:
        # The hot path: one pre-compiled JOIN, executed with one parameter
        # (a prepared statement on PostgreSQL).
        sql = self._with_user_sql or self._build_with_user_sql()
        if self._pg_statement is not None:
            row = self._fetch_prepared(session_id)
        else:
            row = self._db.execute_sql(sql, (session_id,)).fetchone()
        if row is None:
            return None
        return SessionWithUser(self.from_row(row), self._users.from_row(row, 10))

    @_op
    def get_by_refresh_hash(self, refresh_hash: str) -> Session | None:
        return self._one("sessions.by_refresh_hash", self._m.Session.refresh_hash, refresh_hash)

    @_op
    def rotate(self, session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        S, R = self._m.Session, self._m.Retired  # noqa: N806
        now_ms = to_ms(now)
        with self._store.atomic():
            # Compare-and-swap: only the caller whose UPDATE matched wins.
            n = self._run(
                "sessions.rotate",
                lambda: S.update(
                    {S.refresh_hash: _P("new", S.refresh_hash), S.last_active_at: _P("now", S.last_active_at)}
                ).where((S.id == _P("id")) & (S.refresh_hash == _P("old")) & S.revoked_at.is_null() & (S.expires_at > _P("now"))),
                id=session_id,
                old=old_hash,
                new=new_hash,
                now=now_ms,
            ).rowcount
            if n != 1:
                return False
            # The retired hash takes the session's expiry straight from the row.
            self._run(
                "sessions.retire",
                lambda: R.insert_from(
                    S.select(_P("old"), S.id, _P("now"), S.expires_at).where(S.id == _P("id")),
                    [R.token_hash, R.session_id, R.rotated_at, R.expires_at],
                ).as_rowcount(),
                id=session_id,
                old=old_hash,
                now=now_ms,
            )
            return True

    @_op
    def get_retired(self, token_hash: str) -> RetiredRefreshToken | None:
        R = self._m.Retired  # noqa: N806
        row = self._first(
            R.select(R.token_hash, R.session_id, R.rotated_at, R.expires_at).where(R.token_hash == token_hash).limit(1)
        )
        if row is None:
            return None
        h, sid, rotated, expires = row
        return RetiredRefreshToken(h, sid, from_ms(rotated), from_ms(expires))

    @_op
    def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        S = self._m.Session  # noqa: N806
        n = self._run(
            "sessions.revoke",
            lambda: S.update({S.revoked_at: _P("now", S.revoked_at), S.revoke_reason: _P("reason", S.revoke_reason)}).where(
                (S.id == _P("id")) & S.revoked_at.is_null()
            ),
            id=session_id,
            now=to_ms(now),
            reason=reason,
        ).rowcount
        return bool(n == 1)

    @_op
    def revoke_all_for_user(self, user_id: str, now: datetime, reason: str) -> int:
        S = self._m.Session  # noqa: N806
        return int(
            S.update({S.revoked_at: to_ms(now), S.revoke_reason: reason})
            .where((S.user_id == user_id) & S.revoked_at.is_null())
            .execute()
        )

    @_op
    def list_for_user(self, user_id: str, *, now: datetime, include_inactive: bool = False) -> list[Session]:
        S = self._m.Session  # noqa: N806
        where = S.user_id == user_id
        if not include_inactive:
            where &= S.revoked_at.is_null() & (S.expires_at > to_ms(now))
        query = S.select(*self._columns).where(where).order_by(S.created_at.desc(), S.id.desc())
        return [self.from_row(r) for r in self._all(query)]

    @_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        S, R = self._m.Session, self._m.Retired  # noqa: N806
        now_ms = to_ms(now)
        with self._store.atomic():
            # Oldest expiry first: each batch is a range of the expires_at index
            # (no sort of the table, no scan of live rows; see docs/growth.md).
            retired = self._delete(R, R.expires_at <= now_ms, limit, order=(R.expires_at,))
            return max(self._delete(S, S.expires_at <= now_ms, limit, order=(S.expires_at,)), retired)


# ---------------------------------------------------------------- otp


class PeeweeOtps(_Repo, OtpRepository):
    def __init__(self, store: PeeweeStore) -> None:
        super().__init__(store)
        O = self._m.Otp  # noqa: N806, E741
        self._columns = [
            O.id,
            O.email,
            O.purpose,
            O.code_hash,
            O.created_at,
            O.expires_at,
            O.user_id,
            O.attempts,
            O.status,
            O.consumed_at,
        ]

    @staticmethod
    def from_row(r: Sequence[Any]) -> OtpChallenge:
        return OtpChallenge(
            id=r[0],
            email=r[1],
            purpose=r[2],
            code_hash=r[3],
            created_at=from_ms(r[4]),
            expires_at=from_ms(r[5]),
            user_id=r[6],
            attempts=int(r[7]),
            status=r[8],
            consumed_at=_ms_or_none(r[9]),
        )

    @_op
    def put(self, challenge: OtpChallenge) -> None:
        """One upsert on the (email, purpose) unique key: the new challenge replaces
        the old row in place (its primary key ``id`` included).

        On MySQL/MariaDB, parallel ``INSERT ... ON DUPLICATE KEY UPDATE`` of one
        key that change the primary key deadlock one another (InnoDB's next-key
        locks on both unique indexes). A deadlocked upsert changed nothing, so
        outside a transaction it runs again after a short random wait (up to
        ``n * 2 ms`` before the n-th retry), at most :data:`_UPSERT_ATTEMPTS`
        times; inside one, the deadlock has rolled the whole transaction back and
        ``StorageConflict`` propagates (the core retries the unit)."""
        O = self._m.Otp  # noqa: N806, E741

        def upsert() -> Any:
            replaced = [c for c in self._columns if c.name not in ("email", "purpose")]
            query = O.insert(_row_params(self._columns))
            if self._store.is_mysql:
                return query.on_conflict(preserve=replaced).as_rowcount()  # ON DUPLICATE KEY UPDATE
            return query.on_conflict(conflict_target=[O.email, O.purpose], preserve=replaced).as_rowcount()

        values: dict[str, Any] = {
            "id": challenge.id,
            "email": challenge.email,
            "purpose": challenge.purpose,
            "code_hash": challenge.code_hash,
            "created_at": to_ms(challenge.created_at),
            "expires_at": to_ms(challenge.expires_at),
            "user_id": challenge.user_id,
            "attempts": int(challenge.attempts),
            "status": challenge.status,
            "consumed_at": None if challenge.consumed_at is None else to_ms(challenge.consumed_at),
        }
        attempts = _UPSERT_ATTEMPTS if self._store.is_mysql else 1
        for attempt in range(1, attempts + 1):
            try:
                self._run("otps.put", upsert, **values)
                return
            except peewee.OperationalError as exc:
                # Through the one classification table: a deadlock is a StorageConflict.
                if attempt == attempts or not isinstance(translate(exc), StorageConflict) or self._in_transaction():
                    raise
            time.sleep(random.uniform(0, _UPSERT_BACKOFF * attempt))  # noqa: S311 - jitter, not a secret

    @_op
    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        O = self._m.Otp  # noqa: N806, E741
        row = self._run(
            "otps.get",
            lambda: O.select(*self._columns).where((O.email == _P("email")) & (O.purpose == _P("purpose"))).limit(1),
            email=email,
            purpose=purpose,
        ).fetchone()
        return self.from_row(row) if row is not None else None

    @_op
    def mark_sent(self, challenge_id: str) -> bool:
        O = self._m.Otp  # noqa: N806, E741
        n = self._run(
            "otps.mark_sent",
            lambda: O.update({O.status: "sent"}).where((O.id == _P("id")) & (O.status == "pending")),
            id=challenge_id,
        ).rowcount
        return bool(n == 1)

    @_op
    def discard(self, challenge_id: str) -> None:
        O = self._m.Otp  # noqa: N806, E741
        self._run("otps.discard", lambda: O.delete().where(O.id == _P("id")), id=challenge_id)

    @_op
    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        O = self._m.Otp  # noqa: N806, E741
        values = {"id": challenge_id, "now": to_ms(now), "max": int(max_attempts)}

        def increment() -> Any:
            return O.update({O.attempts: O.attempts + 1}).where(
                (O.id == _P("id"))
                & (O.status == "sent")
                & O.consumed_at.is_null()
                & (O.expires_at > _P("now"))
                & (O.attempts < _P("max"))
            )

        if self._store.supports_returning:
            # One statement: the conditional increment returns the new count.
            row = self._run("otps.attempt_returning", lambda: increment().returning(O.attempts), **values).fetchone()
            return int(row[0]) if row is not None else None
        with self._store.atomic():
            if self._run("otps.attempt", increment, **values).rowcount != 1:
                return None
            # Same transaction: our row lock is held, the count is ours.
            row = self._run("otps.attempts", lambda: O.select(O.attempts).where(O.id == _P("id")), id=challenge_id).fetchone()
            return int(row[0])

    @_op
    def consume(self, challenge_id: str, now: datetime) -> bool:
        O = self._m.Otp  # noqa: N806, E741
        n = self._run(
            "otps.consume",
            lambda: O.update({O.consumed_at: _P("now", O.consumed_at)}).where(
                (O.id == _P("id")) & O.consumed_at.is_null() & (O.expires_at > _P("now"))
            ),
            id=challenge_id,
            now=to_ms(now),
        ).rowcount
        return bool(n == 1)

    @_op
    def redeem(self, challenge_id: str, now: datetime, max_attempts: int) -> bool:
        O = self._m.Otp  # noqa: N806, E741
        n = self._run(
            "otps.redeem",
            lambda: O.update({O.attempts: O.attempts + 1, O.consumed_at: _P("now", O.consumed_at)}).where(
                (O.id == _P("id"))
                & (O.status == "sent")
                & O.consumed_at.is_null()
                & (O.expires_at > _P("now"))
                & (O.attempts < _P("max"))
            ),
            id=challenge_id,
            now=to_ms(now),
            max=int(max_attempts),
        ).rowcount
        return bool(n == 1)

    @_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        O = self._m.Otp  # noqa: N806, E741
        return self._purge_spent(O, now, limit)


# ---------------------------------------------------------------- reset tokens


class PeeweeResetTokens(_Repo, ResetTokenRepository):
    def __init__(self, store: PeeweeStore) -> None:
        super().__init__(store)
        T = self._m.Reset  # noqa: N806
        self._columns = [T.id, T.user_id, T.token_hash, T.created_at, T.expires_at, T.consumed_at]

    @staticmethod
    def from_row(r: Sequence[Any]) -> ResetToken:
        return ResetToken(
            id=r[0],
            user_id=r[1],
            token_hash=r[2],
            created_at=from_ms(r[3]),
            expires_at=from_ms(r[4]),
            consumed_at=_ms_or_none(r[5]),
        )

    @_op
    def put(self, token: ResetToken) -> None:
        """Delete the user's unconsumed tokens (and any token with this hash), then
        insert, in one transaction that first locks the user's row
        (``SELECT ... FOR UPDATE``): parallel puts for one user queue on that lock,
        so exactly one unconsumed token remains. Without it, under READ COMMITTED
        (PostgreSQL) each DELETE misses the rows the others are inserting and every
        token stays; on MySQL/MariaDB the DELETEs' gap locks deadlock. SQLite needs
        no lock: ``BEGIN IMMEDIATE`` already serialises writers."""
        T, U = self._m.Reset, self._m.User  # noqa: N806
        with self._store.atomic():
            if not is_sqlite(resolve_database(self._db)):
                self._run(
                    "reset_tokens.lock_user",
                    lambda: U.select(U.id).where(U.id == _P("user_id")).for_update(),
                    user_id=token.user_id,
                ).fetchall()
            self._run(
                "reset_tokens.replace",
                lambda: T.delete().where(
                    ((T.user_id == _P("user_id")) & T.consumed_at.is_null()) | (T.token_hash == _P("token_hash"))
                ),
                user_id=token.user_id,
                token_hash=token.token_hash,
            )
            self._run(
                "reset_tokens.put",
                lambda: T.insert(_row_params(self._columns)).as_rowcount(),
                id=token.id,
                user_id=token.user_id,
                token_hash=token.token_hash,
                created_at=to_ms(token.created_at),
                expires_at=to_ms(token.expires_at),
                consumed_at=None if token.consumed_at is None else to_ms(token.consumed_at),
            )

    @_op
    def get(self, token_hash: str) -> ResetToken | None:
        row = self._by_hash(token_hash)
        return self.from_row(row) if row is not None else None

    def _by_hash(self, token_hash: str) -> Any:
        T = self._m.Reset  # noqa: N806
        select = lambda: T.select(*self._columns).where(T.token_hash == _P("hash")).limit(1)  # noqa: E731
        return self._run("reset_tokens.get", select, hash=token_hash).fetchone()

    @_op
    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        T = self._m.Reset  # noqa: N806
        values = {"hash": token_hash, "now": to_ms(now)}

        def update() -> Any:
            return T.update({T.consumed_at: _P("now", T.consumed_at)}).where(
                (T.token_hash == _P("hash")) & T.consumed_at.is_null() & (T.expires_at > _P("now"))
            )

        if self._store.supports_returning:
            row = self._run("reset_tokens.consume_returning", lambda: update().returning(*self._columns), **values).fetchone()
            return self.from_row(row) if row is not None else None
        with self._store.atomic():
            if self._run("reset_tokens.consume", update, **values).rowcount != 1:
                return None
            row = self._by_hash(token_hash)
            return self.from_row(row) if row is not None else None

    @_op
    def delete_for_user(self, user_id: str) -> int:
        T = self._m.Reset  # noqa: N806
        return int(
            self._run(
                "reset_tokens.delete_for_user", lambda: T.delete().where(T.user_id == _P("user_id")), user_id=user_id
            ).rowcount
        )

    @_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        T = self._m.Reset  # noqa: N806
        return self._purge_spent(T, now, limit)


# ---------------------------------------------------------------- rate limits


class PeeweeRateLimits(_Repo, RateLimitRepository):
    @_op
    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        C = self._m.Counter  # noqa: N806
        values = {"key": key, "now": to_ms(now), "expires_at": to_ms(expires_at), "amount": int(amount)}

        def upsert() -> Any:
            expired = C.expires_at <= _P("now")
            # Order matters on MySQL (assignments run left to right and see earlier
            # ones): ``count`` is computed first, from the *old* expires_at.
            update = {
                C.count: peewee.Case(None, [(expired, _P("amount", C.count))], C.count + _P("amount", C.count)),
                C.expires_at: peewee.Case(None, [(expired, _P("expires_at", C.expires_at))], C.expires_at),
            }
            query = C.insert(
                {C.key: _P("key", C.key), C.count: _P("amount", C.count), C.expires_at: _P("expires_at", C.expires_at)}
            )
            if self._store.is_mysql:
                return query.on_conflict(update=update)
            return query.on_conflict(conflict_target=[C.key], update=update)

        if self._store.supports_returning:  # PostgreSQL, SQLite 3.35+
            returning = lambda: upsert().returning(C.count, C.expires_at)  # noqa: E731
            count, exp = self._run("rate_limits.hit_returning", returning, **values).fetchone()
        else:  # MySQL/MariaDB, SQLite older than 3.35
            with self._store.atomic():
                self._run("rate_limits.hit", lambda: upsert().as_rowcount(), **values)
                # Same transaction: the row stays locked by our upsert.
                select = lambda: C.select(C.count, C.expires_at).where(C.key == _P("key"))  # noqa: E731
                count, exp = self._run("rate_limits.read", select, key=key).fetchone()
        return CounterState(int(count), from_ms(exp))

    def hit_many(self, hits: Sequence[tuple[str, datetime]], now: datetime) -> list[CounterState]:
        """One multi-row upsert ``RETURNING`` the counters (PostgreSQL, SQLite 3.35+);
        elsewhere, or for one counter, one :meth:`hit` each."""
        keys = [key for key, _ in hits]
        if len(hits) < 2 or len(set(keys)) != len(keys) or not self._store.supports_returning:
            return super().hit_many(hits, now)
        return self._hit_many(hits, now)

    @_op
    def _hit_many(self, hits: Sequence[tuple[str, datetime]], now: datetime) -> list[CounterState]:
        C = self._m.Counter  # noqa: N806
        n = len(hits)
        values: dict[str, Any] = {"now": to_ms(now)}
        for i, (key, expires_at) in enumerate(hits):
            values.update({f"key{i}": key, f"count{i}": 1, f"expires_at{i}": to_ms(expires_at)})

        def upsert() -> Any:
            expired = C.expires_at <= _P("now")
            # Each row's own new values are EXCLUDED's; the CASEs read the stored row (as in hit).
            update = {
                C.count: peewee.Case(None, [(expired, peewee.EXCLUDED.count)], C.count + peewee.EXCLUDED.count),
                C.expires_at: peewee.Case(None, [(expired, peewee.EXCLUDED.expires_at)], C.expires_at),
            }
            rows = [{c: _P(f"{c.name}{i}", c) for c in (C.key, C.count, C.expires_at)} for i in range(n)]
            query = C.insert_many(rows).on_conflict(conflict_target=[C.key], update=update)
            return query.returning(C.key, C.count, C.expires_at)

        cursor = self._run(f"rate_limits.hit_many.{n}", upsert, **values)
        states = {key: CounterState(int(count), from_ms(exp)) for key, count, exp in cursor}
        return [states[key] for key, _ in hits]

    @_op
    def get(self, key: str, now: datetime) -> CounterState | None:
        C = self._m.Counter  # noqa: N806
        row = self._run(
            "rate_limits.get",
            lambda: C.select(C.count, C.expires_at).where((C.key == _P("key")) & (C.expires_at > _P("now"))).limit(1),
            key=key,
            now=to_ms(now),
        ).fetchone()
        return CounterState(int(row[0]), from_ms(row[1])) if row is not None else None

    @_op
    def reset(self, key: str) -> None:
        C = self._m.Counter  # noqa: N806
        self._run_unanswered("rate_limits.reset", lambda: C.delete().where(C.key == _P("key")), key=key)

    @_op
    def reset_many(self, keys: Sequence[str]) -> None:
        C = self._m.Counter  # noqa: N806
        n = len(keys)
        if n == 0:
            return
        self._run_unanswered(
            f"rate_limits.reset_many.{n}",
            lambda: C.delete().where(C.key.in_([_P(f"key{i}") for i in range(n)])),
            **{f"key{i}": key for i, key in enumerate(keys)},
        )

    @_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        C = self._m.Counter  # noqa: N806
        return self._delete(C, C.expires_at <= to_ms(now), limit, order=(C.expires_at,))


# ---------------------------------------------------------------- audit

_AUDIT_ROWS = 8
"""Rows per INSERT of :meth:`PeeweeAudit.append_many` (a unit writes a handful)."""


class PeeweeAudit(_Repo, AuditRepository):
    def __init__(self, store: PeeweeStore) -> None:
        super().__init__(store)
        A = self._m.Audit  # noqa: N806
        self._columns = [
            A.id,
            A.type,
            A.occurred_at,
            A.user_id,
            A.email,
            A.ip_address,
            A.user_agent,
            A.session_id,
            A.reason,
        ]

    @_op
    def append(self, event: AuditEvent) -> AuditEvent:
        A = self._m.Audit  # noqa: N806
        # As peewee's own insert: the new id from RETURNING where the engine
        # has it (PostgreSQL), else from the cursor.
        returning = bool(resolve_database(self._db).returning_clause)  # type: ignore[union-attr]

        def insert() -> Any:
            query = A.insert(_row_params(self._columns[1:]))
            return query.returning(A.id) if returning else query

        cursor = self._run(
            "audit.append_returning" if returning else "audit.append",
            insert,
            type=AuditEventType(event.type).value,
            occurred_at=to_ms(event.occurred_at),
            user_id=event.user_id,
            email=event.email,
            ip_address=event.ip_address,
            user_agent=event.user_agent,
            session_id=event.session_id,
            reason=event.reason,
        )
        new_id = cursor.fetchone()[0] if returning else cursor.lastrowid
        return attrs.evolve(event, id=str(new_id))

    @_op
    def append_many(self, events: Sequence[AuditEvent]) -> None:
        """One multi-row INSERT per :data:`_AUDIT_ROWS` events (ids ascend in the given order)."""
        A = self._m.Audit  # noqa: N806
        columns = self._columns[1:]
        for start in range(0, len(events), _AUDIT_ROWS):
            chunk = events[start : start + _AUDIT_ROWS]
            n = len(chunk)
            values: dict[str, Any] = {}
            for i, event in enumerate(chunk):
                values.update(
                    {
                        f"type{i}": AuditEventType(event.type).value,
                        f"occurred_at{i}": to_ms(event.occurred_at),
                        f"user_id{i}": event.user_id,
                        f"email{i}": event.email,
                        f"ip_address{i}": event.ip_address,
                        f"user_agent{i}": event.user_agent,
                        f"session_id{i}": event.session_id,
                        f"reason{i}": event.reason,
                    }
                )
            self._run_unanswered(
                f"audit.append_many.{n}",
                lambda n=n: A.insert_many([{c: _P(f"{c.name}{i}", c) for c in columns} for i in range(n)]),  # type: ignore[misc]
                **values,
            )

    @_op
    def query(
        self,
        *,
        user_id: str | None = None,
        email: str | None = None,
        types: Sequence[AuditEventType] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        A = self._m.Audit  # noqa: N806
        if limit <= 0:
            return []
        conditions = []
        if user_id is not None:
            conditions.append(A.user_id == user_id)
        if email is not None:
            conditions.append(A.email == email)
        if types is not None:
            values = sorted({AuditEventType(t).value for t in types})
            if not values:
                return []
            conditions.append(A.type.in_(values))
        if since is not None:
            conditions.append(A.occurred_at >= to_ms(since))
        if until is not None:
            conditions.append(A.occurred_at < to_ms(until))
        query = A.select(*self._columns)
        if conditions:
            query = query.where(*conditions)
        query = query.order_by(A.occurred_at, A.id).limit(limit)
        return [
            AuditEvent(
                id=str(r[0]),
                type=r[1],
                occurred_at=from_ms(r[2]),
                user_id=r[3],
                email=r[4],
                ip_address=r[5],
                user_agent=r[6],
                session_id=r[7],
                reason=r[8],
            )
            for r in self._all(query)
        ]

    @_op
    def purge_before(self, cutoff: datetime, *, limit: int | None = None) -> int:
        A = self._m.Audit  # noqa: N806
        return self._delete(A, A.occurred_at < to_ms(cutoff), limit, order=(A.occurred_at, A._meta.primary_key))


# ---------------------------------------------------------------- store


_URL_OPTIONS = frozenset({"statement_timeout", "prepared_token_check", "server_timeout"})


def _statement_timeout(value: Any) -> float | None:
    """Seconds (> 0), or ``None`` for no bound (also from ``0``, ``"none"``, ``"off"``)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "null", "off", "false"):
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            "statement_timeout must be a number of seconds (0 or none: no bound).", variable="AUTH_DATABASE_URL"
        )
    return float(value) or None


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false.", variable="AUTH_DATABASE_URL")


def _store_options_from_url(url: str) -> tuple[str, dict[str, Any]]:
    """Take the store's own query-string arguments out of ``url`` (the rest is left as written)."""
    if not isinstance(url, str) or "?" not in url:
        return url, {}
    base, _, query = url.partition("?")
    query, hash_mark, fragment = query.partition("#")
    kept: list[str] = []
    found: dict[str, str] = {}
    for piece in query.split("&"):
        key, _, value = piece.partition("=")
        name = unquote_plus(key)
        if name in _URL_OPTIONS:
            found[name] = unquote_plus(value)
        elif piece:
            kept.append(piece)
    if not found:
        return url, {}
    options: dict[str, Any] = {}
    if "statement_timeout" in found:
        options["statement_timeout"] = _statement_timeout(found["statement_timeout"])
    for name in ("prepared_token_check", "server_timeout"):
        if name in found:
            options[name] = _flag(name, found[name])
    rest = "&".join(kept)
    return base + ("?" + rest if rest else "") + hash_mark + fragment, options


def _apply_driver_timeouts(db: peewee.Database, seconds: float, *, server_side: bool) -> None:
    """The driver's own bounds for a database opened by :meth:`PeeweeStore.from_url`
    (values the URL gives win)."""
    params = db.connect_params
    if isinstance(db, peewee.PostgresqlDatabase):
        ms = max(1, int(seconds * 1000))
        params.setdefault("connect_timeout", max(2, math.ceil(seconds)))  # libpq: whole seconds, 2 at least
        # Unacknowledged data (a black-holed route) ends the connection; keepalives
        # find a dead peer of an idle connection, so the next call heals it first.
        params.setdefault("tcp_user_timeout", ms)
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 30)
        params.setdefault("keepalives_interval", 10)
        params.setdefault("keepalives_count", 3)
        if server_side and "options" not in params:
            # A live but slow server cancels the statement itself (57014), keeping the connection.
            params["options"] = f"-c statement_timeout={ms}"
    elif isinstance(db, peewee.MySQLDatabase):
        for key in ("connect_timeout", "read_timeout", "write_timeout"):
            params.setdefault(key, seconds)


class PeeweeStore(Store):
    """The six repositories over one ``peewee.Database`` the app owns.

    ``database`` is a ``SqliteDatabase``, ``PostgresqlDatabase``,
    ``MySQLDatabase`` (or MariaDB) or a ``DatabaseProxy`` to one of them.

    Tables (``table_prefix`` defaults to ``"mm_auth_"``; any name can be
    overridden with ``table_names={"users": "accounts", ...}``):

    ============================ ==========================================
    key                          default table
    ============================ ==========================================
    ``users``                    ``mm_auth_users``
    ``sessions``                 ``mm_auth_sessions``
    ``retired_refresh_tokens``   ``mm_auth_retired_refresh_tokens``
    ``otp_challenges``           ``mm_auth_otp_challenges``
    ``reset_tokens``             ``mm_auth_reset_tokens``
    ``rate_limits``              ``mm_auth_rate_limits``
    ``audit_events``             ``mm_auth_audit_events``
    ============================ ==========================================

    ``user_model`` is the app's subclass of :class:`BaseUserModel` with extra
    columns; they round-trip through ``User.profile``. The store binds its own
    subclass of it to ``database`` and the users table name, leaving the app's
    class untouched.

    Datetimes are stored as BIGINT epoch milliseconds (UTC). Identifier, hash
    and e-mail columns compare in binary on every engine (a binary, no-pad
    utf8mb4 collation on MySQL/MariaDB). Sessions reference users by id without
    a foreign key, as the reference (memory) store does.

    Atomic operations are conditional UPDATEs judged by their affected-row
    count. ``from_url`` opens MySQL with ``CLIENT.FOUND_ROWS`` (matched rows);
    with your own ``MySQLDatabase`` the counts are *changed* rows, which is the
    same for every conditional update here (each one changes the row it
    matches), and the user setters fall back to an existence check.

    Connections: peewee keeps one connection per thread and opens it on first
    use. :meth:`close` closes the *calling* thread's connection; a worker
    thread that used the store should call :meth:`close` before it ends (its
    connection is otherwise released only when the thread's state is garbage
    collected). Use ``playhouse.pool`` databases if you need a bounded pool.
    ``sqlite:///:memory:`` URLs get one connection shared by all threads
    under a store-wide lock (an in-memory database exists per connection);
    :meth:`close` discards that database.

    Connections that heal (PostgreSQL, MySQL/MariaDB; see ``docs/sql.md``):
    before a call outside a transaction, a connection the server has closed
    while it sat idle (a kill, ``wait_timeout``, ``idle_session_timeout``, a
    restart, a proxy reset) is noticed locally (one ``poll`` of its socket, no
    round trip) and replaced. If the connection is lost during the call and no
    transaction was open, a read runs once more on a new connection; a write
    does only when the failure shows the statement never reached the server.
    Otherwise the call raises ``StorageUnavailable`` and the next call
    reconnects.

    ``statement_timeout`` (seconds, default 5; ``None`` for no bound) bounds
    how long a call waits on the server: a watchdog closes the connection of a
    call still running ``statement_timeout`` (plus up to one second of grace)
    after it started, so the caller gets ``StorageUnavailable`` even from a
    frozen server. :meth:`from_url` also sets the driver's own timeouts from it.
    ``prepared_token_check=False`` runs the PostgreSQL token check as a plain
    parameterised query instead of a server-side prepared statement (for
    PgBouncer in transaction mode: its prepared-statement tracking covers
    protocol-level statements, not SQL PREPARE).
    """

    def __init__(
        self,
        database: peewee.Database | peewee.DatabaseProxy,
        *,
        user_model: type[BaseUserModel] | None = None,
        table_prefix: str = "mm_auth_",
        table_names: dict[str, str] | None = None,
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT,
        prepared_token_check: bool = True,
    ) -> None:
        if not isinstance(database, peewee.Database | peewee.DatabaseProxy):
            raise ConfigurationError("PeeweeStore needs a peewee.Database or DatabaseProxy.")
        self.database = database
        self.statement_timeout = _statement_timeout(statement_timeout)
        self.prepared_token_check = _flag("prepared_token_check", prepared_token_check)
        # The watchdog fires after the driver's and the server's own timeouts had their chance.
        limit = self.statement_timeout
        self._watchdog_after = None if limit is None else limit + min(1.0, limit)
        self.table_names = resolve_table_names(table_prefix, table_names)
        self.models = build_models(database, self.table_names, user_model)
        _private_sqlite_file(database)
        self._guard: Any = contextlib.nullcontext()
        self._returning: bool | None = None
        self._statements: dict[str, _Statement] = {}  # see _Repo._run
        self.users = PeeweeUsers(self)
        self.sessions = PeeweeSessions(self, self.users)
        self.otps = PeeweeOtps(self)
        self.reset_tokens = PeeweeResetTokens(self)
        self.rate_limits = PeeweeRateLimits(self)
        self.audit = PeeweeAudit(self)

    # Construction -------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> PeeweeStore:
        """A store over a database opened from ``url``.

        ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
        ``sqlite:///:memory:``, ``postgresql://user:pw@host:5432/db``,
        ``mysql://user:pw@host:3306/db`` (also ``mariadb://``; PyMySQL,
        utf8mb4). Query-string arguments go to the driver, except the store's
        own: ``statement_timeout`` (seconds; ``0`` or ``none``: no bound),
        ``prepared_token_check`` (``true``/``false``) and ``server_timeout``
        (``false``: do not ask PostgreSQL to cancel slow statements itself,
        for a PgBouncer that refuses the ``options`` startup parameter).
        ``options`` go to :class:`PeeweeStore` (``user_model``,
        ``table_prefix``, ``table_names``, ``statement_timeout``,
        ``prepared_token_check``) and win over the URL.

        The store owns a database opened from a URL, so it also sets the
        driver's timeouts from ``statement_timeout`` unless the URL gives them:
        PyMySQL ``connect_timeout``, ``read_timeout`` and ``write_timeout``;
        libpq ``connect_timeout`` (whole seconds, at least 2),
        ``tcp_user_timeout``, TCP keepalives and ``options=-c
        statement_timeout=...`` (unless the URL has ``options``).
        """
        url, from_query = _store_options_from_url(url)
        server_timeout = from_query.pop("server_timeout", True)
        for key, value in from_query.items():
            options.setdefault(key, value)
        database, shared_memory = _database_from_url(url)
        store = cls(database, **options)
        if shared_memory:
            store._guard = threading.RLock()
        if store.statement_timeout is not None:
            _apply_driver_timeouts(database, store.statement_timeout, server_side=server_timeout)
        return store

    # Engine facts ---------------------------------------------------------
    @property
    def is_mysql(self) -> bool:
        return is_mysql(self.database)

    @property
    def supports_returning(self) -> bool:
        if self._returning is None:
            db = resolve_database(self.database)
            if is_postgres(db):
                self._returning = True
            elif is_sqlite(db):
                self._returning = tuple(db.server_version) >= (3, 35, 0)  # type: ignore[union-attr]
            else:
                self._returning = False
        return self._returning

    def atomic(self) -> AbstractContextManager[None]:
        """The unit of work (see :meth:`Store.atomic`): one transaction, or a
        savepoint when it runs inside another unit or an app transaction.

        The repositories' own multi-statement methods use it too, so inside a
        unit they become savepoints of the unit's transaction. A block that
        raises is rolled back (to its savepoint when nested) and its error
        propagates, translated if it is a driver error; a driver error at
        BEGIN or COMMIT is translated too (peewee rolls back a failed COMMIT).
        If the rollback itself fails (a lost connection; on MySQL/MariaDB a
        deadlock has already rolled the whole transaction back, savepoints
        included), the block's own error is the one raised. Deadlocks and
        serialization failures raise ``StorageConflict``: the whole unit can
        be retried.

        SQLite takes the write lock up front (``BEGIN IMMEDIATE``) so a
        transaction never has to upgrade a read lock (which WAL can refuse);
        a writer that waited ``busy_timeout`` for it gets ``StorageConflict``.
        On a shared ``sqlite:///:memory:`` database the store-wide lock is held
        for the whole unit.
        """
        return _Unit(self)

    def _after_failure(self) -> None:
        """After a failure (outside any transaction), drop this thread's
        connection if the driver knows it is dead, so the next call reconnects.
        Local checks only: no ping (it would wait on a frozen server again)."""
        db = self._server_database()
        if db is None or db.in_transaction() or db.is_closed():
            return
        try:
            conn = db.connection()
        except Exception:
            return
        if _closed_locally(conn):
            self._drop_connection(db)

    # Connections that heal -------------------------------------------------
    def _server_database(self) -> Any:
        """The concrete PostgreSQL/MySQL database (``None`` for SQLite or an uninitialised proxy)."""
        db = resolve_database(self.database)
        return None if db is None or isinstance(db, peewee.SqliteDatabase) else db

    def _call(self, fn: Callable[[], Any], write: bool) -> Any:
        """Run one repository call: heal the connection, bound the wait, retry once.

        * Outside a transaction, a connection the server closed while it was
          idle is noticed before anything is sent (:func:`_peer_closed`) and
          replaced: the statement certainly did not run, so this is safe for
          writes too.
        * The watchdog ends the call ``statement_timeout`` (+ grace) after it
          started. A call it ended (or a driver timeout) is never retried.
        * If the connection is lost during the call (it closed between the
          check and the send) and no transaction was open, the call runs once
          more on a new connection: a read always, a write only when the error
          shows the statement never reached the server. Inside a transaction
          nothing is retried: the transaction is gone with its connection.
        """
        db = self._server_database()
        if db is None:
            return fn()
        in_transaction = db.in_transaction()
        conn = self._ready_connection(db, heal=not in_transaction)
        outside = not in_transaction and conn is not None and not _driver_in_transaction(conn)
        token = self._arm(conn)
        try:
            return fn()
        except Exception as exc:
            overdue = token is not None and not _WATCHDOG.disarm(token)
            token = None
            if overdue or not outside or not db.autoconnect or not _connection_lost(conn, exc):
                raise
            if write and not _never_sent(exc):
                raise
            _log.info("A database connection was lost before the call was sent or answered; retrying it once.")
        finally:
            if token is not None:
                _WATCHDOG.disarm(token)
        self._drop_connection(db)
        conn = self._ready_connection(db, heal=False)
        token = self._arm(conn)
        try:
            return fn()
        finally:
            if token is not None:
                _WATCHDOG.disarm(token)

    def _ready_connection(self, db: Any, *, heal: bool) -> Any:
        """This thread's driver connection, opened if needed (bounded by the
        driver's connect timeout) and, with ``heal``, replaced if the server
        has closed it. ``None`` if it is closed and the database does not autoconnect."""
        if db.is_closed():
            if not db.autoconnect:
                return None
            db.connect()
            return db.connection()
        conn = db.connection()
        if heal and _peer_closed(conn, isinstance(db, peewee.PostgresqlDatabase)):
            _log.info("The server closed an idle database connection; reconnecting before the call.")
            self._drop_connection(db)
            if not db.autoconnect:
                return None
            db.connect()
            conn = db.connection()
        return conn

    @staticmethod
    def _drop_connection(db: Any) -> None:
        """Close this thread's connection without waiting on the server (a
        pooled connection is closed, not returned to the pool)."""
        if db.in_transaction() or db.is_closed():
            return
        manual_close = getattr(db, "manual_close", None)  # playhouse.pool
        with contextlib.suppress(Exception):
            if callable(manual_close):
                manual_close()
            else:
                db.close()

    def _arm(self, conn: Any) -> int | None:
        if conn is None or self._watchdog_after is None:
            return None
        fd = _socket_fd(conn)
        return None if fd is None else _WATCHDOG.arm(fd, self._watchdog_after)

    def _heal_connection(self) -> None:
        """For a unit of work, before its BEGIN: outside a transaction, replace
        a connection the server closed while idle (as every call does)."""
        db = self._server_database()
        if db is not None and not db.in_transaction():
            self._ready_connection(db, heal=True)

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[None]:
        """Bound a statement sent outside the repositories (a unit's BEGIN,
        COMMIT, ROLLBACK) by ``statement_timeout``, as every call is."""
        db = self._server_database()
        token = self._arm(db.connection()) if db is not None and not db.is_closed() else None
        try:
            yield
        finally:
            if token is not None:
                _WATCHDOG.disarm(token)

    # Lifecycle -----------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables and indexes if they do not exist (idempotent), and
        record the schema version on an empty database.

        Raises ``SchemaMismatch`` (nothing changed) when the tables are older
        than the store: no version recorded (a release before versions were
        recorded), an older version, or a column of the models (the app's user
        model's too) missing from its table. :meth:`migrate` upgrades them.
        """
        with self._guard, _TRANSLATE:
            db = self._concrete_database()
            migrations.create(db, self.models)

    def schema_status(self) -> SchemaStatus:
        """The recorded schema version and what :meth:`migrate` would do (reads only)."""
        with self._guard, _TRANSLATE:
            return migrations.status(self._concrete_database(), self.models)

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        """Bring the tables to the current schema version, add the columns of the
        models that the tables lack (the app's user model's own columns too) and
        create missing tables and indexes; record the version last.

        ``dry_run=True`` returns the statements that would run and changes
        nothing. One transaction on PostgreSQL and SQLite (all or nothing); on
        MySQL/MariaDB each DDL statement commits on its own, and running
        ``migrate`` again finishes a migration that stopped half-way. A column
        that is NOT NULL without a default cannot be added to existing rows:
        ``ConfigurationError``, nothing changed. Run it from one process at a time
        (a deploy step), not from every app instance.
        """
        with self._guard, _TRANSLATE:
            db = self._concrete_database()
            if dry_run:
                return migrations.plan(db, self.models)
            return migrations.migrate(db, self.models)

    def _concrete_database(self) -> peewee.Database:
        db = resolve_database(self.database)
        if db is None:
            raise ConfigurationError("The store's DatabaseProxy is not initialised.")
        return db

    def drop_schema(self) -> None:
        """Drop the store's tables (tests and tear-down only)."""
        with self._guard, _TRANSLATE:
            self.database.drop_tables(self.models.all(), safe=True)

    def close(self) -> None:
        """Close the calling thread's connection (no-op if none is open)."""
        db = resolve_database(self.database)
        if db is None:
            return
        with self._guard, _TRANSLATE:
            if not db.is_closed():
                db.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[None]:
        """Open a connection for a block of work and close it after (for worker threads)."""
        with self._guard, _TRANSLATE:
            ctx = self.database.connection_context()
            with ctx:
                yield


class _Unit:
    """:meth:`PeeweeStore.atomic`: peewee's ``atomic()`` (a transaction, or a
    savepoint when nested) with the store's lock and error translation."""

    __slots__ = ("_outermost", "_pipelined", "_store", "_tx")

    def __init__(self, store: PeeweeStore) -> None:
        self._store = store
        self._tx: Any = None
        self._outermost = False
        self._pipelined: PipelinedPostgresqlDatabase | None = None

    def __enter__(self) -> None:
        store = self._store
        db = store.database
        store._guard.__enter__()
        try:
            self._outermost = db.transaction_depth() == 0
            tx = db.atomic("IMMEDIATE") if is_sqlite(db) else db.atomic()
            concrete = resolve_database(db)
            self._pipelined = concrete if isinstance(concrete, PipelinedPostgresqlDatabase) else None
            if self._pipelined is not None:
                self._pipelined.enter_unit()
            try:
                # BEGIN (or SAVEPOINT) can fail too: busy, lost connection.
                with _TRANSLATE:
                    if self._outermost:
                        store._heal_connection()
                    with store._bounded():
                        tx.__enter__()
            except StorageUnavailable:
                if self._outermost:
                    store._after_failure()
                raise
        except BaseException:
            if self._pipelined is not None:
                self._pipelined.leave_unit()
            store._guard.__exit__(None, None, None)
            raise
        self._tx = tx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        store = self._store
        error = exc
        try:
            try:
                with store._bounded():
                    self._tx.__exit__(exc_type, exc, tb)  # COMMIT / RELEASE, or ROLLBACK (TO SAVEPOINT)
            except Exception as failure:
                if exc is None:
                    error = failure  # COMMIT failed (and peewee rolled back)
                else:
                    # The rollback failed while the block was failing: keep the block's error.
                    lost = translate(failure)
                    label = getattr(lost, "driver_error", type(failure).__name__)
                    log.debug("Rollback after a failed unit of work also failed: %s", label)
                    if self._outermost and isinstance(lost, StorageUnavailable):
                        store._after_failure()
        finally:
            self._tx = None
            if self._pipelined is not None:
                self._pipelined.leave_unit()
            store._guard.__exit__(None, None, None)
        if error is None:
            return False
        mapped = translate(error)
        if self._outermost and isinstance(mapped or error, StorageUnavailable):
            store._after_failure()
        if mapped is None:
            if error is exc:
                return False  # the block's own error (or an already translated one) propagates
            raise error
        report(mapped)
        raise mapped from None


def _private_sqlite_file(database: Any) -> None:
    """Create a SQLite database file that does not exist yet readable by its owner only (0600).

    SQLite creates a file with mode 0644 (less the umask) and gives the ``-wal``
    and ``-shm`` files the main file's mode, so the three stay private. An
    existing file is left as it is; in-memory, temporary and ``file:`` URI
    databases have no file to create. If the file cannot be created here (no
    such folder), opening the database reports it.
    """
    db = resolve_database(database)
    if not isinstance(db, peewee.SqliteDatabase):
        return
    name = db.database
    if not isinstance(name, str | os.PathLike):
        return
    path = os.fspath(name)
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists (left as it is), or cannot be made here
        return
    os.close(fd)


def _database_from_url(url: str) -> tuple[peewee.Database, bool]:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("The database URL must look like scheme://...", variable="AUTH_DATABASE_URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("sqlite", "sqlite3"):
        kwargs = db_url.parse("sqlite" + url[len(scheme) :])
        name = kwargs.pop("database") or ":memory:"
        timeout = kwargs.setdefault("timeout", 10)
        if name == ":memory:":
            # One connection shared by every thread (guarded by the store's
            # lock): a private in-memory database exists per connection.
            kwargs.setdefault("check_same_thread", False)
            db = peewee.SqliteDatabase(name, pragmas={"foreign_keys": 1}, thread_safe=False, **kwargs)
            return db, True
        # ``?timeout=`` (seconds) is how long a writer waits for the write lock
        # (then StorageConflict); the pragma must agree or it would override it.
        try:
            busy_ms = max(0, int(float(timeout) * 1000))
        except (TypeError, ValueError):
            raise ConfigurationError("The SQLite timeout must be a number of seconds.", variable="AUTH_DATABASE_URL") from None
        return peewee.SqliteDatabase(name, pragmas={**SQLITE_PRAGMAS, "busy_timeout": busy_ms}, **kwargs), False
    if scheme in ("postgres", "postgresql"):
        require_driver(scheme, "psycopg2", "postgres")
        kwargs = db_url.parse("postgresql" + url[len(scheme) :])
        name = kwargs.pop("database")
        if not name:
            raise ConfigurationError("The PostgreSQL URL names no database.", variable="AUTH_DATABASE_URL")
        return PipelinedPostgresqlDatabase(name, **kwargs), False
    if scheme in ("mysql", "mariadb"):
        require_driver(scheme, "pymysql", "mysql")
        from pymysql.constants import CLIENT

        kwargs = db_url.parse("mysql" + url[len(scheme) :], unquote_password=True, unquote_user=True)
        name = kwargs.pop("database")
        if not name:
            raise ConfigurationError("The MySQL URL names no database.", variable="AUTH_DATABASE_URL")
        if "passwd" in kwargs:
            kwargs["password"] = kwargs.pop("passwd")
        kwargs.setdefault("charset", "utf8mb4")
        # Affected-row counts report matched rows, not only changed ones.
        kwargs["client_flag"] = int(kwargs.get("client_flag", 0)) | CLIENT.FOUND_ROWS
        return peewee.MySQLDatabase(name, mariadb=True if scheme == "mariadb" else None, **kwargs), False
    raise ConfigurationError(f"Unsupported database URL scheme {scheme!r}.", variable="AUTH_DATABASE_URL")
