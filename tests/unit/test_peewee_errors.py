"""PeeweeStore units of work and honest storage errors.

Runs on SQLite always, and on PostgreSQL / MariaDB when they answer (see
tests/_servers.py for the URLs and the skip/fail rule). Faults on the servers
are real (deadlocks, a busy SQLite file, a dropped column) or go through a small
TCP proxy of our own; the shared servers themselves are never stopped.
"""

from __future__ import annotations

import logging
import select
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import peewee
import pymysql
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import server_url, unique_prefix  # noqa: E402

from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore, translate_errors  # noqa: E402
from mindmesh_auth.adapters.peewee.errors import translate  # noqa: E402
from mindmesh_auth.core.errors import (  # noqa: E402
    ConfigurationError,
    DuplicateKeyError,
    SchemaMismatch,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from mindmesh_auth.core.models import AuditEvent, AuditEventType, Session, User  # noqa: E402
from mindmesh_auth.testing.faults import FaultyStore, InjectedFault  # noqa: E402
from mindmesh_auth.wiring import store_from_url  # noqa: E402

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)
CANARY_EMAIL = "leak-canary-7f3a@example.com"
CANARY_HASH = "hash-canary-91b2c4"
CANARIES = (CANARY_EMAIL, "leak-canary", CANARY_HASH, "canary")

Logged = Callable[[], list[logging.LogRecord]]


class AppUser(BaseUserModel):
    first_name = peewee.CharField(max_length=100, null=True)


class StrictUser(BaseUserModel):
    tenant_id = peewee.IntegerField()  # NOT NULL


class LaxUser(BaseUserModel):
    tenant_id = peewee.IntegerField(null=True)  # the app thinks it may be NULL


def _user(n: int, email: str | None = None, password_hash: str = "hash", **profile: object) -> User:
    return User(
        id=f"user-{n}",
        email=email or f"user{n}@example.com",
        password_hash=password_hash,
        created_at=T0,
        updated_at=T0,
        profile=profile,
    )


def _session(sid: str, user_id: str = "user-1", refresh_hash: str | None = None) -> Session:
    return Session(sid, user_id, refresh_hash or f"old-{sid}", T0, T0 + timedelta(days=1), T0)


def _audit(user_id: str = "user-1") -> AuditEvent:
    return AuditEvent(type=AuditEventType.LOGIN_SUCCESS, occurred_at=T0, user_id=user_id)


SERVER_ENGINES = [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=["sqlite", *SERVER_ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    # A test for some engines only parametrizes ``engine`` itself (overriding this fixture).
    return str(request.param)


class Stores:
    """Stores on one database: each with its own table prefix, or a twin on another's tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[tuple[PeeweeStore, bool]] = []

    def store(self, *, create: bool = True, url: str | None = None, **options: Any) -> PeeweeStore:
        options.setdefault("table_prefix", unique_prefix())
        store = PeeweeStore.from_url(url or self.url, **options)
        if create:
            store.create_schema()
        self.made.append((store, True))
        return store

    def twin(self, store: PeeweeStore, *, url: str | None = None, **options: Any) -> PeeweeStore:
        """Another store (its own connection) on ``store``'s tables."""
        twin = PeeweeStore.from_url(url or self.url, table_names=dict(store.table_names), **options)
        self.made.append((twin, False))
        return twin

    def cleanup(self) -> None:
        for store, _owner in self.made:
            store.close()
        for store, owner in self.made:
            if owner:
                store.drop_schema()
                store.close()


def _url(engine: str, tmp_path: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/auth.db"
    return server_url(engine)


@pytest.fixture
def stores(engine: str, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(_url(engine, tmp_path))
    yield made
    made.cleanup()


@pytest.fixture
def storage_log(caplog: pytest.LogCaptureFixture) -> Iterator[Logged]:
    """A function returning the storage-failure records of the ``mindmesh_auth`` logger so far (DEBUG and up)."""
    with caplog.at_level(logging.DEBUG, logger="mindmesh_auth"):
        yield lambda: [r for r in caplog.records if r.name == "mindmesh_auth" and r.msg.startswith("Storage failure")]


def _assert_clean(record: logging.LogRecord) -> None:
    """A log record carries no statement parameter and no driver message."""
    text = repr(record.__dict__) + record.getMessage()
    for canary in CANARIES:
        assert canary not in text
    assert record.exc_info is None
    assert "INSERT" not in text and "SELECT" not in text


def _assert_clean_error(error: BaseException) -> None:
    for canary in CANARIES:
        assert canary not in str(error)
        assert canary not in repr(error)
        assert canary not in str(getattr(error, "driver_error", ""))


# ---------------------------------------------------------------- units of work


def test_a_raising_unit_keeps_none_of_its_writes(stores: Stores) -> None:
    store = stores.store()
    reader = stores.twin(store)
    with pytest.raises(RuntimeError, match="boom"):
        with store.atomic():
            store.users.add(_user(1))  # its own atomic() is a savepoint of the unit: not committed
            store.sessions.add(_session("s1"))
            store.audit.append(_audit())
            assert store.users.get("user-1") is not None  # the unit sees its own writes
            assert reader.users.get("user-1") is None  # nobody else does yet
            raise RuntimeError("boom")
    assert store.users.get("user-1") is None
    assert store.sessions.get("s1") is None
    assert store.audit.query(user_id="user-1") == []
    assert reader.users.get("user-1") is None


def test_a_completed_unit_keeps_all_its_writes(stores: Stores) -> None:
    store = stores.store()
    reader = stores.twin(store)
    with store.atomic():
        store.users.add(_user(1))
        store.sessions.add(_session("s1"))
        assert reader.sessions.get("s1") is None
    assert reader.users.get("user-1") is not None
    assert reader.sessions.get("s1") is not None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_write_that_ran_but_failed_after_rolls_back_the_whole_unit(stores: Stores, k: int) -> None:
    store = stores.store()
    faulty = FaultyStore(store)
    faulty.fail_at(k, when="after")
    with pytest.raises(InjectedFault):
        with faulty.atomic():
            faulty.users.add(_user(1))
            faulty.sessions.add(_session("s1"))
            faulty.audit.append(_audit())
    assert faulty.fired
    assert store.users.get("user-1") is None
    assert store.sessions.get("s1") is None
    assert store.audit.query(user_id="user-1") == []
    # The store is usable afterwards (no transaction left open).
    store.users.add(_user(2))
    assert stores.twin(store).users.get("user-2") is not None


def test_a_nested_unit_is_a_savepoint(stores: Stores) -> None:
    store = stores.store()
    with store.atomic():
        store.users.add(_user(1))
        with pytest.raises(RuntimeError), store.atomic():
            store.users.add(_user(2))
            store.sessions.add(_session("s2", "user-2"))
            raise RuntimeError("inner")
        store.sessions.add(_session("s1"))
    reader = stores.twin(store)
    assert reader.users.get("user-1") is not None and reader.sessions.get("s1") is not None
    assert reader.users.get("user-2") is None and reader.sessions.get("s2") is None


def test_a_storage_error_inside_a_unit_rolls_it_back_and_is_logged_once(stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    store.users.add(_user(1, CANARY_EMAIL))
    with pytest.raises(DuplicateKeyError) as info:
        with store.atomic():
            store.sessions.add(_session("s1"))
            with store.atomic():
                store.users.add(_user(2, CANARY_EMAIL, CANARY_HASH))  # translated (and logged) here
    assert store.sessions.get("s1") is None
    assert len(storage_log()) == 1  # not again by the two units it went through
    _assert_clean(storage_log()[0])
    _assert_clean_error(info.value)


def test_a_driver_error_raised_in_a_unit_is_translated_when_it_leaves(stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    users = store.table_names["users"]
    with pytest.raises(SchemaMismatch) as info:
        with store.atomic():
            store.users.add(_user(1))
            store.database.execute_sql(f"SELECT no_such_column FROM {users} WHERE email = 'canary'")  # noqa: S608
    assert "no_such_column" in str(info.value)
    assert info.value.__cause__ is None  # the driver's message may quote parameters
    assert store.users.get("user-1") is None
    assert len(storage_log()) == 1 and storage_log()[0].levelno == logging.ERROR
    _assert_clean(storage_log()[0])


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_error_at_commit_is_translated_and_nothing_is_kept(engine: str, stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    db, users = store.database, store.table_names["users"]
    aux = users + "_aux"
    # A deferred foreign key is checked at COMMIT only.
    db.execute_sql(
        f"CREATE TABLE {aux} (id INTEGER PRIMARY KEY, user_id VARCHAR(128) REFERENCES {users} (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    try:
        with pytest.raises(StorageError) as info:
            with store.atomic():
                store.users.add(_user(1))
                db.execute_sql(f"INSERT INTO {aux} (id, user_id) VALUES (1, 'ghost-canary')")  # noqa: S608
                assert store.users.get("user-1") is not None  # everything ran: only COMMIT fails
        assert type(info.value) is StorageError  # a foreign key is not a duplicate key
        assert store.users.get("user-1") is None
        assert db.execute_sql(f"SELECT COUNT(*) FROM {aux}").fetchone()[0] == 0  # noqa: S608
        assert len(storage_log()) == 1
        _assert_clean(storage_log()[0])
        _assert_clean_error(info.value)
        store.users.add(_user(2))  # the connection is usable again
    finally:
        db.execute_sql(f"DROP TABLE {aux}")


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_unique_violation_at_commit_is_a_duplicate_key(engine: str, stores: Stores) -> None:
    store = stores.store()
    db, users = store.database, store.table_names["users"]
    aux = users + "_aux"
    db.execute_sql(f"CREATE TABLE {aux} (v TEXT, CONSTRAINT {aux}_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)")
    try:
        with pytest.raises(DuplicateKeyError):
            with store.atomic():
                store.users.add(_user(1))
                db.execute_sql(f"INSERT INTO {aux} (v) VALUES ('canary'), ('canary')")  # noqa: S608
        assert store.users.get("user-1") is None
    finally:
        db.execute_sql(f"DROP TABLE {aux}")


class CutOnCommit:
    """A TCP proxy in front of a database server that, once armed, drops the
    connection (both ways) instead of forwarding a COMMIT."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            if self._stop.is_set():  # the wake-up connection of close()
                client.close()
                return
            upstream = socket.create_connection(self._upstream)
            self._sockets += [client, upstream]
            pump = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            pump.start()
            self._threads.append(pump)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self.armed.is_set() and b"COMMIT" in data.upper():
                        self.armed.clear()
                        self.cut.set()
                        return  # the COMMIT never reaches the server
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def close(self) -> None:
        self._stop.set()
        socket.create_connection(("127.0.0.1", self.port)).close()  # wakes the blocked accept()
        self._threads[0].join(timeout=5)
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_a_connection_lost_at_commit_is_unavailable_and_the_store_recovers(
    engine: str, stores: Stores, storage_log: Logged
) -> None:
    direct = stores.store()
    parts = urlsplit(stores.url)
    proxy = CutOnCommit(parts.hostname or "127.0.0.1", parts.port or (5432 if engine == "postgres" else 3306))
    try:
        store = stores.twin(direct, url=proxy.url(stores.url))
        store.users.add(_user(1))  # through the proxy, committed
        with pytest.raises(StorageUnavailable):
            with store.atomic():
                store.users.set_password_hash("user-1", CANARY_HASH, T0)
                store.sessions.add(_session("s1"))
                proxy.armed.set()
        assert proxy.cut.is_set()
        assert direct.users.get("user-1").password_hash == "hash"  # the COMMIT never arrived
        assert direct.sessions.get("s1") is None
        assert store.users.get("user-1") is not None  # the dead connection was dropped: a new one works
        assert len(storage_log()) == 1
        _assert_clean(storage_log()[0])
        store.close()
    finally:
        proxy.close()


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_the_deadlock_victim_gets_storage_conflict_and_keeps_nothing(engine: str, stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    store.users.add(_user(1))
    store.sessions.add(_session("s1"))
    store.sessions.add(_session("s2"))
    both_hold_their_first_row = threading.Barrier(2, timeout=30)
    outcome: dict[str, object] = {}

    def work(name: str, first: str, second: str) -> None:
        try:
            with store.atomic():
                # rotate() has its own atomic(): a savepoint of this unit (on MariaDB the
                # deadlock rolls the whole transaction back, savepoint included).
                assert store.sessions.rotate(first, f"old-{first}", f"{name}-{first}", T0)
                both_hold_their_first_row.wait()
                assert store.sessions.rotate(second, f"old-{second}", f"{name}-{second}", T0)
            outcome[name] = "committed"
        except BaseException as exc:  # recorded for the main thread's assertions
            outcome[name] = exc
        finally:
            store.close()

    threads = [
        threading.Thread(target=work, args=("a", "s1", "s2")),
        threading.Thread(target=work, args=("b", "s2", "s1")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the deadlock was not broken within 60 s"
    committed = [name for name, result in outcome.items() if result == "committed"]
    victims = [name for name, result in outcome.items() if isinstance(result, StorageConflict)]
    assert len(committed) == 1 and len(victims) == 1, outcome
    winner, victim = committed[0], victims[0]
    assert store.sessions.get("s1").refresh_hash == f"{winner}-s1"
    assert store.sessions.get("s2").refresh_hash == f"{winner}-s2"
    assert store.sessions.get_by_refresh_hash(f"{victim}-s1") is None
    assert store.sessions.get_by_refresh_hash(f"{victim}-s2") is None
    code = "40P01" if engine == "postgres" else "1213"
    assert getattr(outcome[victim], "driver_error", "").endswith(code)
    assert len(storage_log()) == 1 and code in storage_log()[0].getMessage()
    assert "storage_conflict" in storage_log()[0].getMessage()


def test_sqlite_busy_is_storage_conflict(tmp_path: Path, storage_log: Logged) -> None:
    timeout = 0.3
    path = tmp_path / "busy.db"
    store = PeeweeStore.from_url(f"sqlite:///{path}?timeout={timeout}")
    store.create_schema()
    assert store.database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == int(timeout * 1000)
    holder = sqlite3.connect(str(path), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # holds the write lock
        attempts = [
            lambda: store.users.add(_user(1)),  # its own BEGIN IMMEDIATE
            lambda: store.sessions.add(_session("s1")),  # a single INSERT
            lambda: store.atomic().__enter__(),  # a unit cannot even begin
        ]
        for attempt in attempts:
            started = time.monotonic()
            with pytest.raises(StorageConflict) as info:
                attempt()
            assert time.monotonic() - started < 5 * timeout + 1.0
            assert info.value.driver_error.endswith("SQLITE_BUSY")
        assert len(storage_log()) == len(attempts)
        assert all("SQLITE_BUSY" in r.getMessage() for r in storage_log())
        holder.execute("ROLLBACK")
        store.users.add(_user(1))  # free again
        assert store.users.get("user-1") is not None
    finally:
        holder.close()
        store.close()


def test_sqlite_default_busy_timeout_is_unchanged(tmp_path: Path) -> None:
    store = PeeweeStore.from_url(f"sqlite:///{tmp_path}/default.db")
    store.create_schema()
    assert store.database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    store.close()
    with pytest.raises(ConfigurationError):
        PeeweeStore.from_url(f"sqlite:///{tmp_path}/x.db?timeout=soon")


# ---------------------------------------------------------------- schema mismatch


def _schema_code(engine: str) -> str:
    return {"sqlite": "SQLITE_ERROR", "postgres": "42703", "mysql": "1054"}[engine]


def test_an_app_user_column_missing_from_the_table_is_a_schema_mismatch(engine: str, stores: Stores, storage_log: Logged) -> None:
    base = stores.store()  # the table has the core columns only
    base.users.add(_user(1, CANARY_EMAIL, CANARY_HASH))
    app = stores.twin(base, user_model=AppUser)  # the app added first_name, with no migration
    with pytest.raises(SchemaMismatch) as info:
        app.users.add(_user(2, "canary2@example.com", CANARY_HASH, first_name="canary"))
    error = info.value
    assert error.status == 500 and error.code == "schema_mismatch"
    assert "'first_name'" in str(error) and "migration" in str(error)
    assert error.column == "first_name"
    if engine != "mysql":  # PostgreSQL and SQLite also name the table of an INSERT
        assert error.table == base.table_names["users"]
    _assert_clean_error(error)
    with pytest.raises(SchemaMismatch) as read:
        app.users.get_by_email(CANARY_EMAIL)
    assert read.value.column == "first_name"
    assert len(storage_log()) == 2
    for record in storage_log():
        assert record.levelno == logging.ERROR
        assert _schema_code(engine) in record.getMessage() and "column=first_name" in record.getMessage()
        _assert_clean(record)


def test_a_dropped_column_is_a_schema_mismatch_naming_it(engine: str, stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    store.users.add(_user(1, CANARY_EMAIL))
    store.database.execute_sql(f"ALTER TABLE {store.table_names['users']} DROP COLUMN blocked")
    with pytest.raises(SchemaMismatch) as info:
        store.users.get_by_email(CANARY_EMAIL)
    assert info.value.column == "blocked" and "'blocked'" in str(info.value)
    _assert_clean_error(info.value)
    assert len(storage_log()) == 1 and storage_log()[0].levelno == logging.ERROR
    assert _schema_code(engine) in storage_log()[0].getMessage()
    _assert_clean(storage_log()[0])


def test_a_missing_table_is_a_schema_mismatch(engine: str, stores: Stores, storage_log: Logged) -> None:
    store = stores.store(create=False)
    with pytest.raises(SchemaMismatch) as info:
        store.users.get_by_email(CANARY_EMAIL)
    assert info.value.table == store.table_names["users"]
    assert "create_schema()" in str(info.value)
    _assert_clean_error(info.value)
    code = {"sqlite": "SQLITE_ERROR", "postgres": "42P01", "mysql": "1146"}[engine]
    assert len(storage_log()) == 1 and code in storage_log()[0].getMessage()
    _assert_clean(storage_log()[0])


# ---------------------------------------------------------------- integrity


def test_a_duplicate_email_is_a_duplicate_key(engine: str, stores: Stores, storage_log: Logged) -> None:
    store = stores.store()
    store.users.add(_user(1, CANARY_EMAIL))
    with pytest.raises(DuplicateKeyError) as info:
        store.users.add(_user(2, CANARY_EMAIL, CANARY_HASH))
    error = info.value
    _assert_clean_error(error)
    code = {"sqlite": "SQLITE_CONSTRAINT_UNIQUE", "postgres": "23505", "mysql": "1062"}[engine]
    assert error.driver_error.endswith(code)
    assert error.__cause__ is None and error.__suppress_context__  # the driver's message quotes the hash
    assert len(storage_log()) == 1 and storage_log()[0].levelno == logging.DEBUG  # expected outcome, not a failure
    assert code in storage_log()[0].getMessage()
    _assert_clean(storage_log()[0])


def test_a_not_null_violation_is_not_a_duplicate_key(engine: str, stores: Stores, storage_log: Logged) -> None:
    strict = stores.store(user_model=StrictUser)  # tenant_id NOT NULL in the table
    lax = stores.twin(strict, user_model=LaxUser)
    with pytest.raises(StorageError) as info:
        lax.users.add(_user(1, CANARY_EMAIL, CANARY_HASH, tenant_id=None))
    assert type(info.value) is StorageError
    code = {"sqlite": "SQLITE_CONSTRAINT_NOTNULL", "postgres": "23502", "mysql": "1048"}[engine]
    assert info.value.driver_error.endswith(code)
    _assert_clean_error(info.value)
    assert len(storage_log()) == 1
    _assert_clean(storage_log()[0])


# ---------------------------------------------------------------- the table, without a server


def _wrapped(driver_error: Exception) -> peewee.PeeweeException:
    """What peewee's ``__exception_wrapper__`` makes of a driver error."""
    wrapper = {
        pymysql.err.OperationalError: peewee.OperationalError,
        pymysql.err.IntegrityError: peewee.IntegrityError,
        pymysql.err.ProgrammingError: peewee.ProgrammingError,
        pymysql.err.InterfaceError: peewee.InterfaceError,
    }.get(type(driver_error), peewee.OperationalError)
    return wrapper(driver_error, *driver_error.args)


def _pg_error(base: type[Exception], code: str) -> Exception:
    """A psycopg2 error carrying ``pgcode`` (set by the server on real ones)."""
    fake = type(base.__name__, (base,), {"pgcode": code})
    return fake("message quoting 'canary'")


def _pg(name: str) -> type[Exception]:
    import psycopg2.errors

    return getattr(psycopg2.errors, name)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (pymysql.err.OperationalError(1213, "Deadlock found; 'canary'"), StorageConflict),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), StorageConflict),
        (pymysql.err.OperationalError(2013, "Lost connection to server"), StorageUnavailable),
        (pymysql.err.OperationalError(2006, "Server has gone away"), StorageUnavailable),
        (pymysql.err.OperationalError(1054, "Unknown column 't1.tenant_id' in 'SELECT'"), SchemaMismatch),
        (pymysql.err.ProgrammingError(1146, "Table 'db.mm_users' doesn't exist"), SchemaMismatch),
        (pymysql.err.IntegrityError(1062, "Duplicate entry 'canary' for key 'email'"), DuplicateKeyError),
        (pymysql.err.IntegrityError(1048, "Column 'tenant_id' cannot be null"), StorageError),
        (pymysql.err.IntegrityError(1452, "Cannot add or update a child row"), StorageError),
        (pymysql.err.ProgrammingError(1064, "syntax error near 'canary'"), StorageError),
        (pymysql.err.InterfaceError(0, ""), StorageUnavailable),
    ],
)
def test_mysql_errors_are_classified_by_error_number(driver_error: Exception, expected: type[Exception]) -> None:
    for raised in (_wrapped(driver_error), driver_error):  # wrapped by peewee, or escaped raw
        mapped = translate(raised)
        assert type(mapped) is expected
        _assert_clean_error(mapped)


@pytest.mark.parametrize(
    ("base", "code", "expected"),
    [
        ("SerializationFailure", "40001", StorageConflict),
        ("DeadlockDetected", "40P01", StorageConflict),
        ("LockNotAvailable", "55P03", StorageConflict),
        ("UndefinedTable", "42P01", SchemaMismatch),
        ("UndefinedColumn", "42703", SchemaMismatch),
        ("UniqueViolation", "23505", DuplicateKeyError),
        ("NotNullViolation", "23502", StorageError),
        ("ForeignKeyViolation", "23503", StorageError),
        ("CheckViolation", "23514", StorageError),
        ("QueryCanceled", "57014", StorageUnavailable),
        ("AdminShutdown", "57P01", StorageUnavailable),
        ("TooManyConnections", "53300", StorageUnavailable),
        ("SyntaxError", "42601", StorageError),
    ],
)
def test_postgres_errors_are_classified_by_sqlstate(base: str, code: str, expected: type[Exception]) -> None:
    driver_error = _pg_error(_pg(base), code)
    mapped = translate(peewee.DatabaseError(driver_error, *driver_error.args))
    assert type(mapped) is expected
    assert mapped.driver_error == f"{base} {code}"
    _assert_clean_error(mapped)


def test_sqlite_errors_are_classified_by_result_code_and_message() -> None:
    busy = sqlite3.OperationalError("database is locked")
    assert type(translate(peewee.OperationalError(busy, *busy.args))) is StorageConflict
    snapshot = sqlite3.OperationalError("some busy condition")
    snapshot.sqlite_errorname = "SQLITE_BUSY_SNAPSHOT"  # type: ignore[attr-defined]
    assert type(translate(snapshot)) is StorageConflict  # an extended code matches its primary one
    fk = sqlite3.IntegrityError("FOREIGN KEY constraint failed")
    fk.sqlite_errorname = "SQLITE_CONSTRAINT_FOREIGNKEY"  # type: ignore[attr-defined]
    assert type(translate(fk)) is StorageError
    syntax = sqlite3.OperationalError('near "canary": syntax error')
    syntax.sqlite_errorname = "SQLITE_ERROR"  # type: ignore[attr-defined]
    assert type(translate(syntax)) is StorageError  # an SQL error, not an unreachable database
    # A bare peewee error (no driver error behind it): SQLite's messages still apply.
    assert type(translate(peewee.IntegrityError("UNIQUE constraint failed: t.email"))) is DuplicateKeyError
    assert type(translate(peewee.IntegrityError("NOT NULL constraint failed: t.v"))) is StorageError
    assert translate(KeyError("not a database error")) is None
    assert translate(StorageError()) is None  # already ours


def test_identifiers_only_are_taken_from_a_driver_message() -> None:
    odd = pymysql.err.OperationalError(1054, "Unknown column 'leak-canary@example.com' in 'SELECT'")
    mapped = translate(odd)
    assert isinstance(mapped, SchemaMismatch)
    assert mapped.column is None  # not an identifier: not repeated
    _assert_clean_error(mapped)


def test_an_error_is_logged_once_through_nested_translators(storage_log: Logged) -> None:
    driver_error = pymysql.err.OperationalError(1213, "Deadlock found; 'canary'")
    with pytest.raises(StorageConflict) as info:
        with translate_errors(), translate_errors():
            raise _wrapped(driver_error)
    assert info.value.driver_error == "OperationalError 1213"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(storage_log()) == 1 and storage_log()[0].levelno == logging.WARNING
    _assert_clean(storage_log()[0])


# ---------------------------------------------------------------- missing drivers


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "psycopg2", "postgres"),
        ("postgres://postgres@127.0.0.1:5432/test", "psycopg2", "postgres"),
        ("mysql://root@127.0.0.1:3306/test", "pymysql", "mysql"),
        ("mariadb://root@127.0.0.1:3306/test", "pymysql", "mysql"),
        ("mongodb://127.0.0.1:27017/test", "pymongo", "mongo"),
        ("sqlite:///auth.db", "peewee", "peewee"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # ``import module`` now raises ImportError
    with pytest.raises(ConfigurationError) as info:
        store_from_url(url)
    assert f"pip install 'mindmesh-auth[{extra}]'" in str(info.value)
    assert info.value.variable == "AUTH_DATABASE_URL"
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "psycopg2", "postgres"),
        ("mysql://root@127.0.0.1:3306/test", "pymysql", "mysql"),
    ],
)
def test_peewee_store_from_url_checks_the_driver_too(url: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match=rf"mindmesh-auth\[{extra}\]"):
        PeeweeStore.from_url(url)
