"""Peewee connections that heal and calls that end.

Against the real servers (tests/_servers.py), some of them through
:class:`mindmesh_auth.testing.tcp_proxy.TcpProxy` to break the network on
purpose; the shared servers themselves are never stopped. Covered:

* the PostgreSQL token check after ``DISCARD ALL`` / ``DEALLOCATE ALL`` on the
  store's own connection, and the plain-query option;
* a connection the server (or the network) closed while idle: the next read
  AND the next write succeed on a new connection;
* a connection lost during a call: a read is retried once, a write that may
  have reached the server is not (``StorageUnavailable``);
* a frozen server: ``StorageUnavailable`` within a small multiple of
  ``statement_timeout`` (driver timeouts or the watchdog), then recovery.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import peewee
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import server_url, unique_prefix  # noqa: E402

from mindmesh_auth.adapters.peewee import PeeweeStore  # noqa: E402
from mindmesh_auth.core.errors import ConfigurationError, StorageError, StorageUnavailable  # noqa: E402
from mindmesh_auth.core.models import AuditEvent, AuditEventType, Session, User  # noqa: E402
from mindmesh_auth.testing.tcp_proxy import TcpProxy  # noqa: E402

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)
DEADLINE = 10.0  # seconds: the most any wait in this file may take

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
MYSQL = pytest.param("mysql", marks=pytest.mark.mysql)
SERVER_ENGINES = [POSTGRES, MYSQL]


def _user(n: int) -> User:
    return User(id=f"user-{n}", email=f"user{n}@example.com", password_hash="hash", created_at=T0, updated_at=T0)


def _session(n: int, user: int = 1) -> Session:
    return Session(f"s{n}", f"user-{user}", f"h{n}", T0, T0 + timedelta(days=1), T0)


def _event(reason: str) -> AuditEvent:
    return AuditEvent(type=AuditEventType.LOGIN_FAILED, occurred_at=T0, email="user1@example.com", reason=reason)


def _wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds (a deadline, not a guess at how long it takes)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"{what}: not within {deadline} s"
        time.sleep(0.01)  # poll interval


# ---------------------------------------------------------------- fixtures


def _via(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{proxy.host}:{proxy.port}" if userinfo else f"{proxy.host}:{proxy.port}"
    return parts._replace(netloc=netloc).geturl()


@pytest.fixture
def proxy_to() -> Iterator[Callable[[str], TcpProxy]]:
    """A TcpProxy in front of the engine's server (host and port from server_url)."""
    made: list[TcpProxy] = []

    def make(engine: str) -> TcpProxy:
        target = urlsplit(server_url(engine))
        default_port = 5432 if engine == "postgres" else 3306
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or default_port, max_lifetime=120)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def make_store() -> Iterator[Callable[..., PeeweeStore]]:
    """Stores with their own tables; dropped afterwards over a direct (unproxied) connection."""
    made: list[tuple[str, str, PeeweeStore]] = []

    def make(engine: str, url: str | None = None, **options: Any) -> PeeweeStore:
        prefix = options.setdefault("table_prefix", unique_prefix())
        store = PeeweeStore.from_url(url or server_url(engine), **options)
        made.append((engine, prefix, store))
        store.create_schema()
        return store

    yield make
    for engine, prefix, store in made:
        with contextlib.suppress(StorageError):
            store.close()
        cleaner = PeeweeStore.from_url(server_url(engine), table_prefix=prefix)
        cleaner.drop_schema()
        cleaner.close()


def _driver_socket(store: PeeweeStore) -> int:
    conn = store.database.connection()
    return int(conn.fileno()) if hasattr(conn, "fileno") else int(conn._sock.fileno())


def _wait_until_readable(store: PeeweeStore) -> None:
    """Wait until the store's idle connection has something to read (a goodbye: FIN, RST,
    a FATAL message; or a notification), so the test does not race the network."""
    poller = select.poll()
    poller.register(_driver_socket(store), select.POLLIN)
    _wait_for(lambda: bool(poller.poll(0)), "the server's message reached the client")


def _backend_id(database: Any, engine: str) -> int:
    sql = "SELECT pg_backend_pid()" if engine == "postgres" else "SELECT CONNECTION_ID()"
    return int(database.execute_sql(sql).fetchone()[0])


@contextlib.contextmanager
def _admin(engine: str) -> Iterator[peewee.Database]:
    """A direct connection of our own (kills, locks, inspection)."""
    database = PeeweeStore.from_url(server_url(engine)).database
    try:
        yield database
    finally:
        with contextlib.suppress(Exception):
            database.close()


def _kill(admin: peewee.Database, engine: str, backend: int) -> None:
    if engine == "postgres":
        kill, alive = "SELECT pg_terminate_backend(%s)", "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
    else:
        kill, alive = "KILL %s", "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    admin.execute_sql(kill, (backend,))
    _wait_for(lambda: admin.execute_sql(alive, (backend,)).fetchone()[0] == 0, f"backend {backend} gone")


def _waiting_on_lock(admin: peewee.Database, engine: str, backend: int) -> bool:
    if engine == "postgres":
        row = admin.execute_sql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone()
        return row is not None and row[0] == "Lock"
    row = admin.execute_sql("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = %s", (backend,)).fetchone()
    return row is not None and "lock" in str(row[0] or "").lower()


@contextlib.contextmanager
def _table_locked(admin: peewee.Database, engine: str, table: str) -> Iterator[None]:
    """Hold an exclusive lock on ``table`` (reads and writes of others wait) until the block ends.
    On PostgreSQL ``admin`` is in a transaction meanwhile: inspect from another connection
    (pg_stat_activity is a snapshot within a transaction)."""
    if engine == "postgres":
        admin.execute_sql("BEGIN")
        admin.execute_sql(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        try:
            yield
        finally:
            admin.execute_sql("ROLLBACK")
    else:
        admin.execute_sql(f"LOCK TABLES `{table}` WRITE")
        try:
            yield
        finally:
            admin.execute_sql("UNLOCK TABLES")


class _Worker:
    """Runs ``call`` in a thread on the store, after publishing the thread's backend id."""

    def __init__(self, store: PeeweeStore, engine: str, call: Callable[[], Any]) -> None:
        self.backend: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(store, engine, call), daemon=True)
        self._thread.start()
        assert self._started.wait(DEADLINE), "worker did not start"

    def _run(self, store: PeeweeStore, engine: str, call: Callable[[], Any]) -> None:
        try:
            self.backend = _backend_id(store.database, engine)
            self._started.set()
            self.result = call()
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self._started.set()
            with contextlib.suppress(StorageError):
                store.close()

    def join(self) -> None:
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "worker still running"


# ---------------------------------------------------------------- the proxy itself


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()
    thread.join(DEADLINE)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_proxy_forwards_both_ways(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy, socket.create_connection(proxy.address, timeout=DEADLINE) as client:
        payload = bytes(range(256)) * 1024  # more than one recv
        client.sendall(payload)
        assert _recv_exactly(client, len(payload)) == payload
        assert proxy.accepted == 1 and proxy.connections == 1


def test_proxy_drop_all_resets_every_connection(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy:
        clients = [socket.create_connection(proxy.address, timeout=DEADLINE) for _ in range(3)]
        for client in clients:
            client.sendall(b"ping")
            assert _recv_exactly(client, 4) == b"ping"
        proxy.drop_all()
        assert proxy.connections == 0
        for client in clients:
            with pytest.raises(ConnectionResetError):
                client.recv(1)  # an RST, not a clean EOF
            client.close()
        with socket.create_connection(proxy.address, timeout=DEADLINE) as again:  # still accepting
            again.sendall(b"pong")
            assert _recv_exactly(again, 4) == b"pong"


def test_proxy_freeze_holds_bytes_until_thaw(echo: tuple[str, int]) -> None:
    with TcpProxy(*echo) as proxy, socket.create_connection(proxy.address, timeout=DEADLINE) as client:
        client.sendall(b"one")
        assert _recv_exactly(client, 3) == b"one"
        proxy.freeze()
        client.sendall(b"two")  # accepted by the kernel, never answered while frozen
        assert select.select([client], [], [], 0.3)[0] == []  # nothing comes back in a 0.3 s window
        assert proxy.connections == 1  # the socket stayed open
        proxy.thaw()
        assert _recv_exactly(client, 3) == b"two"


def test_proxy_close_and_lifetime_stop_it(echo: tuple[str, int]) -> None:
    proxy = TcpProxy(*echo)
    client = socket.create_connection(proxy.address, timeout=DEADLINE)
    proxy.close()
    assert not proxy.running
    try:
        data = client.recv(1)
    except ConnectionResetError:
        data = b""
    assert data == b""  # reset (or closed): the link is gone
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(proxy.address, timeout=DEADLINE).close()
    short = TcpProxy(*echo, max_lifetime=0.2)
    _wait_for(lambda: not short.running, "the proxy stops by itself")
    with pytest.raises(RuntimeError):
        short.freeze()


# ---------------------------------------------------------------- options and URLs (no server)


def test_url_options_are_the_stores_and_set_driver_timeouts() -> None:
    pg = PeeweeStore.from_url(
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable&statement_timeout=2.5&prepared_token_check=false"
    )
    assert pg.statement_timeout == 2.5 and pg.prepared_token_check is False
    params = pg.database.connect_params
    assert params["sslmode"] == "disable"
    assert "statement_timeout" not in params and "prepared_token_check" not in params
    assert params["connect_timeout"] == 3 and params["tcp_user_timeout"] == 2500
    assert params["options"] == "-c statement_timeout=2500" and params["keepalives"] == 1

    # Values the URL gives win; server_timeout=false leaves `options` alone (PgBouncer).
    pg = PeeweeStore.from_url("postgresql://postgres@127.0.0.1/test?connect_timeout=9&server_timeout=false")
    assert pg.statement_timeout == 5.0 and pg.prepared_token_check is True
    assert pg.database.connect_params["connect_timeout"] == 9 and "options" not in pg.database.connect_params

    my = PeeweeStore.from_url("mysql://root@127.0.0.1:3306/test?statement_timeout=1.5&read_timeout=4")
    params = my.database.connect_params
    assert params["connect_timeout"] == 1.5 and params["write_timeout"] == 1.5 and params["read_timeout"] == 4
    assert "statement_timeout" not in params

    # No bound at all: no driver timeouts, no watchdog. Keyword options win over the URL.
    off = PeeweeStore.from_url("mysql://root@127.0.0.1/test?statement_timeout=0", prepared_token_check=False)
    assert off.statement_timeout is None and "read_timeout" not in off.database.connect_params
    assert PeeweeStore.from_url("postgresql://p@h/test?statement_timeout=none").statement_timeout is None
    assert PeeweeStore.from_url("postgresql://p@h/test?statement_timeout=9", statement_timeout=1).statement_timeout == 1

    sqlite = PeeweeStore.from_url("sqlite:///:memory:?statement_timeout=3")
    assert sqlite.statement_timeout == 3 and "statement_timeout" not in sqlite.database.connect_params


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://p@h/test?statement_timeout=soon",
        "postgresql://p@h/test?statement_timeout=-1",
        "mysql://p@h/test?prepared_token_check=maybe",
        "mysql://p@h/test?server_timeout=2",
    ],
)
def test_bad_store_options_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        PeeweeStore.from_url(url)


def test_constructor_options_are_checked() -> None:
    db = peewee.SqliteDatabase(":memory:")
    assert PeeweeStore(db, statement_timeout=None).statement_timeout is None
    assert PeeweeStore(db, statement_timeout=0).statement_timeout is None
    with pytest.raises(ConfigurationError):
        PeeweeStore(db, statement_timeout=float("inf"))
    with pytest.raises(ConfigurationError):
        PeeweeStore(db, prepared_token_check="sometimes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- PostgreSQL prepared token check


def _token_check_sql(store: PeeweeStore, session_id: str) -> list[str]:
    seen: list[str] = []
    store.database.query_hooks.append(lambda event: seen.append(event.sql))
    try:
        assert store.sessions.get_with_user(session_id) is not None
    finally:
        store.database.query_hooks.clear()
    return seen


@pytest.mark.postgres
@pytest.mark.parametrize("reset", ["DISCARD ALL", "DEALLOCATE ALL"])
def test_token_check_survives_losing_its_prepared_statement(reset: str, make_store) -> None:
    store = make_store("postgres")
    store.users.add(_user(1))
    store.sessions.add(_session(1))
    assert store.sessions.get_with_user("s1") is not None  # prepared on this connection
    backend = _backend_id(store.database, "postgres")
    store.database.execute_sql(reset)  # on the store's OWN connection, as a pooler's reset query does
    results = [store.sessions.get_with_user("s1") for _ in range(5)]
    assert all(r is not None and r.user.id == "user-1" for r in results)  # 5 of 5
    assert _backend_id(store.database, "postgres") == backend  # same connection, re-prepared
    assert all(sql.startswith("EXECUTE ") for sql in _token_check_sql(store, "s1"))  # still prepared: one statement


@pytest.mark.postgres
def test_lost_prepared_statement_inside_a_transaction_raises(make_store) -> None:
    store = make_store("postgres")
    store.users.add(_user(1))
    store.sessions.add(_session(1))
    assert store.sessions.get_with_user("s1") is not None
    with store.database.atomic():
        store.database.execute_sql("DEALLOCATE ALL")
        with pytest.raises(StorageError):
            store.sessions.get_with_user("s1")  # the transaction is aborted: nothing to retry in it
    assert store.sessions.get_with_user("s1") is not None  # outside: re-prepared


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["url", "keyword"])
def test_plain_token_check_option(how: str, make_store) -> None:
    url = server_url("postgres")
    if how == "url":
        store = make_store("postgres", url + ("&" if "?" in url else "?") + "prepared_token_check=false")
    else:
        store = make_store("postgres", prepared_token_check=False)
    assert store.prepared_token_check is False
    store.users.add(_user(1))
    store.sessions.add(_session(1))
    seen = _token_check_sql(store, "s1")
    assert len(seen) == 1 and "JOIN" in seen[0].upper() and not seen[0].startswith("EXECUTE")
    store.database.execute_sql("DISCARD ALL")
    assert store.sessions.get_with_user("s1") is not None
    assert store.database.execute_sql("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0


@pytest.mark.postgres
def test_idle_connection_with_a_pending_notification_is_kept(make_store) -> None:
    # An app that LISTENs on the same connection: a NOTIFY waiting in the socket is no goodbye.
    store = make_store("postgres")
    store.users.add(_user(1))
    store.database.execute_sql("LISTEN mm_auth_healing_test")
    backend = _backend_id(store.database, "postgres")
    with _admin("postgres") as admin:
        admin.execute_sql("NOTIFY mm_auth_healing_test")
    _wait_until_readable(store)  # i.e. readable: the notification arrived
    assert store.users.get("user-1") is not None
    assert _backend_id(store.database, "postgres") == backend


# ---------------------------------------------------------------- lost connections


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_next_read_and_write_heal_after_the_network_drops_every_connection(engine: str, make_store, proxy_to) -> None:
    proxy = proxy_to(engine)
    store = make_store(engine, _via(proxy, server_url(engine)))
    store.users.add(_user(1))
    store.sessions.add(_session(1))
    assert proxy.accepted == 1

    proxy.drop_all()
    _wait_until_readable(store)
    assert store.sessions.get_with_user("s1") is not None  # a read: healed, no StorageUnavailable
    assert proxy.accepted == 2

    proxy.drop_all()
    _wait_until_readable(store)
    store.audit.append(_event("after-drop"))  # a write: healed before it was sent
    assert proxy.accepted == 3
    assert [e.reason for e in store.audit.query()] == ["after-drop"]  # exactly once


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_write_after_the_server_killed_the_idle_connection_succeeds_once(engine: str, make_store) -> None:
    store = make_store(engine)
    store.users.add(_user(1))
    backend = _backend_id(store.database, engine)
    with _admin(engine) as admin:
        _kill(admin, engine, backend)
    _wait_until_readable(store)
    store.audit.append(_event("after-kill"))
    assert [e.reason for e in store.audit.query()] == ["after-kill"]
    assert _backend_id(store.database, engine) != backend


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_read_lost_during_the_call_is_retried_once(engine: str, make_store) -> None:
    store = make_store(engine)
    store.users.add(_user(1))
    with _admin(engine) as admin, _admin(engine) as locker:
        with _table_locked(locker, engine, store.table_names["users"]):
            worker = _Worker(store, engine, lambda: store.users.get("user-1"))
            assert worker.backend is not None
            _wait_for(lambda: _waiting_on_lock(admin, engine, worker.backend), "the read reached the server")
            _kill(admin, engine, worker.backend)  # the connection dies under the read
        worker.join()  # the retry waited for the lock, then read
    assert worker.error is None, repr(worker.error)
    assert worker.result is not None and worker.result.id == "user-1"


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_write_lost_after_it_reached_the_server_is_not_retried(engine: str, make_store) -> None:
    store = make_store(engine)
    with _admin(engine) as admin, _admin(engine) as locker:
        with _table_locked(locker, engine, store.table_names["audit_events"]):
            worker = _Worker(store, engine, lambda: store.audit.append(_event("maybe")))
            assert worker.backend is not None
            _wait_for(lambda: _waiting_on_lock(admin, engine, worker.backend), "the write reached the server")
            _kill(admin, engine, worker.backend)
        worker.join()
    # Unsure whether it ran: raised, not sent again (a retry would have inserted it once the lock went).
    assert isinstance(worker.error, StorageUnavailable), repr(worker.error)
    assert store.audit.query() == []


# ---------------------------------------------------------------- calls that end


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_frozen_server_is_unavailable_within_the_bound_then_recovers(engine: str, make_store, proxy_to) -> None:
    proxy = proxy_to(engine)
    store = make_store(engine, _via(proxy, server_url(engine)), statement_timeout=1)
    store.users.add(_user(1))
    store.sessions.add(_session(1))
    proxy.freeze()
    try:
        for call in (lambda: store.sessions.get_with_user("s1"), lambda: store.users.set_blocked("user-1", True, T0)):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                call()
            assert time.monotonic() - started < DEADLINE  # ~1-2 s; 10 s is the generous bound
    finally:
        proxy.thaw()
    assert store.sessions.get_with_user("s1") is not None  # a new connection, now answered
    assert store.users.get("user-1").blocked is False  # the frozen write never ran


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_connecting_to_a_frozen_server_is_bounded(engine: str, make_store, proxy_to) -> None:
    proxy = proxy_to(engine)
    store = make_store(engine, _via(proxy, server_url(engine)), statement_timeout=1)
    store.users.add(_user(1))
    store.close()  # the next call connects
    proxy.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.users.get("user-1")
        assert time.monotonic() - started < DEADLINE  # libpq's connect_timeout is 2 s at least
    finally:
        proxy.thaw()
    assert store.users.get("user-1") is not None


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_app_database_without_driver_timeouts_is_bounded_by_the_watchdog(engine: str, proxy_to) -> None:
    # The app's own Database: the store sets no driver option on it, only the watchdog bounds the wait.
    proxy = proxy_to(engine)
    target = urlsplit(server_url(engine))
    db: peewee.Database
    if engine == "postgres":
        db = peewee.PostgresqlDatabase(target.path.lstrip("/"), host=proxy.host, port=proxy.port, user=target.username)
    else:
        db = peewee.MySQLDatabase(
            target.path.lstrip("/"), host=proxy.host, port=proxy.port, user=target.username, password=target.password or ""
        )
    store = PeeweeStore(db, table_prefix=unique_prefix(), statement_timeout=1)
    assert not {"read_timeout", "tcp_user_timeout", "options"} & set(db.connect_params)
    try:
        store.create_schema()
        store.users.add(_user(1))
        proxy.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                store.users.get("user-1")
            assert time.monotonic() - started < DEADLINE  # the watchdog fires at 2 s
        finally:
            proxy.thaw()
        assert store.users.get("user-1") is not None
    finally:
        store.drop_schema()
        store.close()


@pytest.mark.postgres
def test_slow_but_live_postgres_cancels_the_statement_and_keeps_the_connection(make_store) -> None:
    store = make_store("postgres", statement_timeout=1)
    store.users.add(_user(1))
    backend = _backend_id(store.database, "postgres")
    with _admin("postgres") as admin, _table_locked(admin, "postgres", store.table_names["users"]):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.users.get("user-1")  # waits on the lock until the server's statement_timeout
        assert time.monotonic() - started < DEADLINE
    assert store.users.get("user-1") is not None
    assert _backend_id(store.database, "postgres") == backend  # cancelled by the server, not the watchdog


@pytest.mark.mysql
def test_slow_but_live_mysql_is_unavailable_within_the_bound(make_store) -> None:
    store = make_store("mysql", statement_timeout=1)
    store.users.add(_user(1))
    with _admin("mysql") as admin, _table_locked(admin, "mysql", store.table_names["users"]):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.users.get("user-1")  # PyMySQL's read_timeout
        assert time.monotonic() - started < DEADLINE
    assert store.users.get("user-1") is not None
