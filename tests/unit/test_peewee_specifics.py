"""PeeweeStore specifics the shared contract does not cover.

Runs on SQLite always, and on PostgreSQL / MariaDB when they answer
(see tests/_servers.py for the URLs and the skip/fail rule).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import server_url, unique_prefix  # noqa: E402

from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore, translate_errors  # noqa: E402
from mindmesh_auth.adapters.peewee.models import from_ms, to_ms  # noqa: E402
from mindmesh_auth.core.errors import (  # noqa: E402
    ConfigurationError,
    DuplicateKeyError,
    StorageError,
    StorageUnavailable,
    ValidationError,
)
from mindmesh_auth.core.models import Session, User  # noqa: E402
from mindmesh_auth.wiring import store_from_url  # noqa: E402

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)


class AppUser(BaseUserModel):
    first_name = peewee.CharField(max_length=100, null=True)
    role = peewee.CharField(max_length=32, default="member")
    tenant_id = peewee.IntegerField(null=True)
    is_staff = peewee.BooleanField(default=False)


class StrictUser(BaseUserModel):
    tenant_id = peewee.IntegerField()  # NOT NULL, no default


def _user(n: int, email: str | None = None, **profile: object) -> User:
    return User(
        id=f"user-{n}",
        email=email or f"user{n}@example.com",
        password_hash="hash",
        created_at=T0,
        updated_at=T0,
        profile=profile,
    )


def _url(engine: str, tmp_path: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/auth.db"
    return server_url(engine)


SERVER_ENGINES = [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=["sqlite", *SERVER_ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    # A test that only applies to some engines parametrizes ``engine`` itself (overriding
    # this fixture), so no case is generated, and skipped, for an engine it does not apply to.
    return str(request.param)


@pytest.fixture
def make_store(engine: str, tmp_path: Path) -> Iterator:
    made: list[PeeweeStore] = []

    def make(**options: object) -> PeeweeStore:
        options.setdefault("table_prefix", unique_prefix())
        store = PeeweeStore.from_url(_url(engine, tmp_path), **options)
        store.create_schema()
        made.append(store)
        return store

    yield make
    for store in made:
        store.drop_schema()
        store.close()


# ---------------------------------------------------------------- binary email


def test_email_is_compared_in_binary(make_store) -> None:
    store = make_store()
    store.users.add(_user(1, "Alice@x.com"))
    store.users.add(_user(2, "alice@x.com"))  # case differs: a second row
    store.users.add(_user(3, "alicé@x.com"))  # accent differs: a third row
    store.users.add(_user(4, "alice@x.com "))  # trailing space differs: a fourth row
    assert store.users.get_by_email("Alice@x.com").id == "user-1"
    assert store.users.get_by_email("alice@x.com").id == "user-2"
    assert store.users.get_by_email("alicé@x.com").id == "user-3"
    assert store.users.get_by_email("alice@x.com ").id == "user-4"
    assert store.users.get_by_email("ALICE@x.com") is None
    with pytest.raises(DuplicateKeyError):
        store.users.add(_user(5, "alice@x.com"))


def test_ids_and_hashes_are_compared_in_binary(make_store) -> None:
    store = make_store()
    store.users.add(_user(1))
    store.sessions.add(Session("Sess-A", "user-1", "Hash-A", T0, T0 + timedelta(days=1), T0))
    assert store.sessions.get("sess-a") is None
    assert store.sessions.get_by_refresh_hash("hash-a") is None
    store.rate_limits.hit("Key", T0, T0 + timedelta(minutes=1))
    assert store.rate_limits.hit("key", T0, T0 + timedelta(minutes=1)).count == 1


@pytest.mark.parametrize("engine", [pytest.param("mysql", marks=pytest.mark.mysql)])
def test_mysql_email_column_has_a_binary_collation(engine: str, make_store) -> None:
    store = make_store()
    row = store.database.execute_sql(
        "SELECT COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = 'email'",
        (store.table_names["users"],),
    ).fetchone()
    assert row is not None and row[0].endswith("_bin")


# ---------------------------------------------------------------- extensible users


def test_extra_user_fields_round_trip(make_store) -> None:
    store = make_store(user_model=AppUser)
    added = store.users.add(_user(1, first_name="Ada", role="admin", tenant_id=7, is_staff=True))
    expected = {"first_name": "Ada", "role": "admin", "tenant_id": 7, "is_staff": True}
    assert dict(added.profile) == expected
    assert dict(store.users.get("user-1").profile) == expected
    assert dict(store.users.get_by_email("user1@example.com").profile) == expected
    assert [dict(u.profile) for u in store.users.list()] == [expected]
    store.sessions.add(Session("s1", "user-1", "h1", T0, T0 + timedelta(days=1), T0))
    both = store.sessions.get_with_user("s1")
    assert both is not None and dict(both.user.profile) == expected
    assert both.user.first_name == "Ada"
    # Missing extras come back with the column default.
    plain = store.users.add(_user(2))
    assert dict(plain.profile) == {"first_name": None, "role": "member", "tenant_id": None, "is_staff": False}


def test_unknown_or_core_profile_keys_are_rejected(make_store) -> None:
    store = make_store(user_model=AppUser)
    with pytest.raises(ValidationError) as info:
        store.users.add(_user(1, nickname="x"))
    assert info.value.field == "nickname"
    with pytest.raises(ValidationError):
        store.users.add(_user(2, password_hash="sneaky"))
    assert store.users.list() == []


def test_base_user_model_takes_no_profile(make_store) -> None:
    store = make_store()
    with pytest.raises(ValidationError):
        store.users.add(_user(1, first_name="Ada"))


def test_required_extra_field_missing_is_a_validation_error(make_store) -> None:
    store = make_store(user_model=StrictUser)
    with pytest.raises(ValidationError) as info:
        store.users.add(_user(1))
    assert info.value.field == "tenant_id"
    assert dict(store.users.add(_user(2, tenant_id=3)).profile) == {"tenant_id": 3}


def test_app_user_model_is_not_mutated(tmp_path: Path) -> None:
    table_before = AppUser._meta.table_name
    db1 = peewee.SqliteDatabase(str(tmp_path / "one.db"))
    db2 = peewee.SqliteDatabase(str(tmp_path / "two.db"))
    s1 = PeeweeStore(db1, user_model=AppUser)
    s2 = PeeweeStore(db2, user_model=AppUser, table_names={"users": "accounts"})
    assert AppUser._meta.database is None and AppUser._meta.table_name == table_before
    assert s1.models.User._meta.database is db1 and s2.models.User._meta.database is db2
    assert s2.models.User._meta.table_name == "accounts"
    s1.create_schema()
    s2.create_schema()
    s1.users.add(_user(1, role="a"))
    s2.users.add(_user(1, role="b"))  # same id, other database: no clash
    assert s1.users.get("user-1").role == "a" and s2.users.get("user-1").role == "b"
    assert "accounts" in db2.get_tables() and "accounts" not in db1.get_tables()
    s1.close()
    s2.close()


def test_user_model_must_subclass_the_base(tmp_path: Path) -> None:
    class Other(peewee.Model):
        name = peewee.CharField()

    with pytest.raises(ConfigurationError):
        PeeweeStore(peewee.SqliteDatabase(":memory:"), user_model=Other)  # type: ignore[arg-type]


# ---------------------------------------------------------------- schema and names


def test_create_schema_is_idempotent(make_store) -> None:
    store = make_store(user_model=AppUser)
    store.users.add(_user(1))
    store.create_schema()
    store.create_schema()
    assert store.users.get("user-1") is not None


def test_table_names_can_be_overridden(make_store, engine: str) -> None:
    prefix = unique_prefix()
    store = make_store(table_prefix=prefix, table_names={"users": f"{prefix}accounts", "audit_events": f"{prefix}log"})
    tables = set(store.database.get_tables())
    assert {f"{prefix}accounts", f"{prefix}log", f"{prefix}sessions", f"{prefix}otp_challenges"} <= tables
    assert f"{prefix}users" not in tables
    store.users.add(_user(1))
    assert store.users.get("user-1") is not None


def test_unknown_table_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        PeeweeStore(peewee.SqliteDatabase(":memory:"), table_names={"people": "x"})


def test_expected_indexes_exist(make_store) -> None:
    store = make_store()
    db, names = store.database, store.table_names

    def indexed(key: str) -> list[tuple[tuple[str, ...], bool]]:
        return [(tuple(i.columns), i.unique) for i in db.get_indexes(names[key])]

    assert (("email",), True) in indexed("users")
    assert (("refresh_hash",), True) in indexed("sessions")
    assert (("user_id",), False) in indexed("sessions")
    assert (("email", "purpose"), True) in indexed("otp_challenges")
    assert (("token_hash",), True) in indexed("reset_tokens")
    assert (("user_id",), False) in indexed("reset_tokens")
    assert (("occurred_at", "id"), False) in indexed("audit_events")
    assert (("user_id",), False) in indexed("audit_events")


def test_times_are_stored_as_epoch_milliseconds(make_store) -> None:
    store = make_store()
    store.users.add(_user(1))
    U = store.models.User  # noqa: N806
    raw = store.database.execute(U.select(U.created_at).where(U.id == "user-1")).fetchone()[0]
    assert isinstance(raw, int) and raw == to_ms(T0)
    assert from_ms(raw) == T0 and from_ms(raw).tzinfo is not None


def test_naive_datetimes_are_refused(make_store) -> None:
    store = make_store()
    with pytest.raises(ValidationError):
        store.rate_limits.hit("k", datetime(2026, 1, 1), datetime(2026, 1, 2))  # noqa: DTZ001


# ---------------------------------------------------------------- hot path


def test_get_with_user_is_one_query(make_store) -> None:
    store = make_store(user_model=AppUser)
    store.users.add(_user(1))
    store.sessions.add(Session("s1", "user-1", "h1", T0, T0 + timedelta(days=1), T0))
    store.sessions.get_with_user("s1")  # compile once
    seen: list[str] = []
    store.database.query_hooks.append(lambda event: seen.append(event.sql))
    try:
        assert store.sessions.get_with_user("s1") is not None
        assert store.sessions.get_with_user("missing") is None
    finally:
        store.database.query_hooks.clear()
    assert len(seen) == 2
    if isinstance(store.database, peewee.PostgresqlDatabase):
        # A server-side prepared statement of the join, prepared once per connection.
        assert all(sql.startswith("EXECUTE mm_auth_with_user_") for sql in seen)
    else:
        assert all("JOIN" in sql.upper() for sql in seen)


# ---------------------------------------------------------------- errors


def test_duplicate_key_message_holds_no_parameters(make_store) -> None:
    store = make_store()
    store.users.add(_user(1, "secret-looking@example.com"))
    with pytest.raises(DuplicateKeyError) as info:
        store.users.add(_user(2, "secret-looking@example.com"))
    assert "secret-looking" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_driver_errors_map_to_storage_errors() -> None:
    with pytest.raises(DuplicateKeyError), translate_errors():
        raise peewee.IntegrityError("UNIQUE constraint failed: x (hash-123)")
    with pytest.raises(StorageUnavailable), translate_errors():
        raise peewee.OperationalError("server closed the connection")
    with pytest.raises(StorageUnavailable), translate_errors():
        raise peewee.InterfaceError("connection already closed")
    with pytest.raises(StorageError) as info, translate_errors():
        raise peewee.ProgrammingError("syntax error near 'hash-123'")
    assert type(info.value) is StorageError and "hash-123" not in str(info.value)
    with pytest.raises(KeyError), translate_errors():
        raise KeyError("not a database error")


def test_missing_table_is_a_storage_error(tmp_path: Path) -> None:
    store = PeeweeStore.from_url(f"sqlite:///{tmp_path}/empty.db")  # no create_schema()
    with pytest.raises(StorageError):
        store.users.get("user-1")
    store.close()


def test_unreachable_server_is_storage_unavailable() -> None:
    store = PeeweeStore.from_url("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageUnavailable):
        store.users.get("user-1")
    store = PeeweeStore.from_url("mysql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageUnavailable):
        store.users.get("user-1")


# ---------------------------------------------------------------- URLs and connections


def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = store_from_url("sqlite:///relative.db")
    assert isinstance(relative, PeeweeStore) and relative.database.database == "relative.db"
    relative.create_schema()
    assert (tmp_path / "relative.db").exists()
    db = relative.database
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    relative.close()

    absolute = store_from_url(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////tmp/... form
    assert absolute.database.database == f"{tmp_path}/abs.db"
    absolute.create_schema()
    assert (tmp_path / "abs.db").exists()
    absolute.close()


def test_sqlite_memory_url_is_shared_by_threads() -> None:
    store = store_from_url("sqlite:///:memory:")
    store.create_schema()
    store.users.add(_user(1))
    found: list[object] = []
    worker = threading.Thread(target=lambda: found.append(store.users.get("user-1")))
    worker.start()
    worker.join()
    assert found and found[0] is not None
    store.close()


def test_server_urls_build_the_right_databases() -> None:
    pg = PeeweeStore.from_url("postgresql://postgres@127.0.0.1:5432/test")
    assert isinstance(pg.database, peewee.PostgresqlDatabase) and pg.database.database == "test"
    assert pg.database.connect_params["user"] == "postgres" and pg.database.connect_params["port"] == 5432
    my = PeeweeStore.from_url("mysql://root:p%40ss@127.0.0.1:3306/test")
    assert isinstance(my.database, peewee.MySQLDatabase)
    params = my.database.connect_params
    assert params["charset"] == "utf8mb4" and params["password"] == "p@ss" and params["user"] == "root"
    assert isinstance(PeeweeStore.from_url("mariadb://root@127.0.0.1/test").database, peewee.MySQLDatabase)
    with pytest.raises(ConfigurationError):
        PeeweeStore.from_url("oracle://x@y/z")


def test_database_proxy_is_accepted(tmp_path: Path) -> None:
    proxy = peewee.DatabaseProxy()
    store = PeeweeStore(proxy, user_model=AppUser)
    proxy.initialize(peewee.SqliteDatabase(str(tmp_path / "proxied.db")))
    store.create_schema()
    store.users.add(_user(1, first_name="Ada"))
    store.sessions.add(Session("s1", "user-1", "h1", T0, T0 + timedelta(days=1), T0))
    assert store.sessions.get_with_user("s1").user.first_name == "Ada"
    assert store.rate_limits.hit("k", T0, T0 + timedelta(minutes=1)).count == 1
    store.close()


def test_worker_threads_get_their_own_connections_and_close_them(make_store) -> None:
    store = make_store()
    store.users.add(_user(1))
    main_conn = store.database.connection()
    seen: list[object] = []

    def work() -> None:
        try:
            store.users.get("user-1")
            seen.append(store.database.connection())
        finally:
            store.close()
            seen.append(store.database.is_closed())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen[0] is not main_conn and seen[1] is True
    assert not store.database.is_closed()  # the main thread's connection is untouched


@pytest.mark.parametrize("engine", SERVER_ENGINES)
def test_lost_server_connection_heals_on_the_next_call(engine: str, make_store) -> None:
    # The server closed the idle connection: the next call notices it before sending
    # anything and runs on a new connection (tests/unit/test_peewee_healing.py has the rest).
    store = make_store()
    store.users.add(_user(1))
    if engine == "postgres":
        pid = store.database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        kill, still_there = "SELECT pg_terminate_backend(%s)", "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
    else:
        pid = store.database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
        kill, still_there = "KILL %s", "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    killer = PeeweeStore.from_url(server_url(engine)).database
    try:
        killer.execute_sql(kill, (int(pid),))
        # The kill is asynchronous: wait until the server has dropped the connection.
        deadline = time.monotonic() + 10.0
        while killer.execute_sql(still_there, (int(pid),)).fetchone()[0]:
            assert time.monotonic() < deadline, f"{engine}: connection {pid} still alive 10 s after it was killed"
            time.sleep(0.01)  # poll interval, not a synchronisation guess
    finally:
        killer.close()
    assert store.users.get("user-1") is not None  # healed: no StorageUnavailable
    new_pid = store.database.execute_sql("SELECT pg_backend_pid()" if engine == "postgres" else "SELECT CONNECTION_ID()")
    assert new_pid.fetchone()[0] != pid


def test_prepared_token_check_survives_a_connection_pool_shared_by_threads() -> None:
    # A pooled connection moves between threads: the statement prepared on it by
    # one thread must be found, not prepared twice, by the next.
    from urllib.parse import urlsplit

    from playhouse.pool import PooledPostgresqlDatabase

    url = urlsplit(server_url("postgres"))
    db = PooledPostgresqlDatabase(
        url.path.lstrip("/"),
        host=url.hostname,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        max_connections=1,
        timeout=10,
    )
    store = PeeweeStore(db, table_prefix=unique_prefix())
    store.create_schema()
    try:
        store.users.add(_user(1))
        store.sessions.add(Session("s1", "user-1", "h1", T0, T0 + timedelta(days=1), T0))
        db.close()  # back to the pool, for the threads below
        found: list[object] = []

        def check() -> None:
            with db.connection_context():
                found.append(store.sessions.get_with_user("s1"))

        for _ in range(3):
            worker = threading.Thread(target=check)
            worker.start()
            worker.join()
        assert len(found) == 3 and all(f is not None for f in found)
    finally:
        store.drop_schema()
        db.close_all()
