"""Schema versions and ``migrate()``: SQL stores on SQLite, PostgreSQL and MariaDB,
MongoDB index sync (mongomock), the memory store, and private SQLite files.

"The previous layout" is the tables the releases before versions were recorded
made: the store's tables, built from its model classes, without the version table.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mongomock
import peewee
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import server_url, unique_prefix  # noqa: E402

from mindmesh_auth import MindmeshAuth  # noqa: E402
from mindmesh_auth.adapters.memory import MemoryStore  # noqa: E402
from mindmesh_auth.adapters.mongo import MongoStore  # noqa: E402
from mindmesh_auth.adapters.peewee import BaseUserModel, PeeweeStore  # noqa: E402
from mindmesh_auth.adapters.peewee import migrations as sql_migrations  # noqa: E402
from mindmesh_auth.aio import AsyncMindmeshAuth  # noqa: E402
from mindmesh_auth.core.errors import ConfigurationError, SchemaMismatch, StorageConflict  # noqa: E402
from mindmesh_auth.core.models import User  # noqa: E402
from mindmesh_auth.core.ports import Store  # noqa: E402
from mindmesh_auth.core.schema import SCHEMA_VERSION, MigrationPlan, SchemaStatus  # noqa: E402
from mindmesh_auth.testing import Outbox, test_config  # noqa: E402

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


class NicknameUser(BaseUserModel):
    nickname = peewee.CharField(max_length=64, null=True)


class RoleUser(BaseUserModel):
    nickname = peewee.CharField(max_length=64, null=True)
    role = peewee.CharField(max_length=32, default="member", index=True)


class StrictUser(BaseUserModel):
    tenant_id = peewee.IntegerField()  # NOT NULL, no default: cannot be added to existing rows


def _user(n: int, **profile: Any) -> User:
    return User(
        id=f"user-{n}",
        email=f"user{n}@example.com",
        password_hash="hash",
        created_at=T0,
        updated_at=T0,
        profile=profile,
    )


SERVER_ENGINES = [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=["sqlite", *SERVER_ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Stores:
    """Stores on one database sharing one table prefix (the tables are dropped at the end)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.made: list[PeeweeStore] = []

    def store(self, **options: Any) -> PeeweeStore:
        store = PeeweeStore.from_url(self.url, table_prefix=self.prefix, **options)
        self.made.append(store)
        return store

    def previous_layout(self, **options: Any) -> PeeweeStore:
        """A store over the layout the releases before versions were recorded made."""
        store = self.store(**options)
        tables = [m for m in store.models.all() if m is not store.models.Version]
        store.database.create_tables(tables, safe=False)
        return store

    def tables(self) -> set[str]:
        return {t for t in self.made[0].database.get_tables() if t.startswith(self.prefix)}

    def columns(self, key: str) -> set[str]:
        store = self.made[0]
        return {c.name for c in store.database.get_columns(store.table_names[key])}

    def cleanup(self) -> None:
        for store in self.made:
            store.close()
        if self.made:
            cleaner = PeeweeStore.from_url(self.url, table_prefix=self.prefix, user_model=RoleUser)
            cleaner.drop_schema()
            cleaner.close()


@pytest.fixture
def stores(engine: str, tmp_path: Path) -> Iterator[Stores]:
    url = f"sqlite:///{tmp_path}/auth.db" if engine == "sqlite" else server_url(engine)
    made = Stores(url)
    yield made
    made.cleanup()


def _profile(user: User | None) -> dict[str, Any]:
    assert user is not None
    return dict(user.profile)


def _version_row(store: PeeweeStore) -> tuple[int, int] | None:
    V = store.models.Version  # noqa: N806
    return store.database.execute(V.select(V.id, V.version)).fetchone()  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the previous layout


def test_the_previous_layout_is_upgraded_and_its_rows_kept(stores: Stores) -> None:
    old = stores.previous_layout()
    old.users.add(_user(1))
    status = old.schema_status()
    assert status.current is None and status.expected == SCHEMA_VERSION
    assert any("schema_version" in line for line in status.pending)
    assert stores.prefix + "schema_version" not in stores.tables()

    plan = old.migrate()

    assert plan.applied and plan.from_version is None and plan.to_version == SCHEMA_VERSION
    assert any("CREATE TABLE" in s and "schema_version" in s for s in plan.statements)
    assert _version_row(old) == (1, SCHEMA_VERSION)
    assert old.schema_status() == SchemaStatus(current=SCHEMA_VERSION, expected=SCHEMA_VERSION, pending=())
    assert old.schema_status().up_to_date
    assert old.users.get("user-1") is not None  # the data survived
    old.create_schema()  # current now: no error


def test_create_schema_on_the_previous_layout_says_to_migrate_and_changes_nothing(stores: Stores) -> None:
    old = stores.previous_layout()
    before = stores.tables()
    with pytest.raises(SchemaMismatch) as info:
        old.create_schema()
    message = str(info.value)
    assert "mindmesh-auth migrate" in message and "auth.migrate()" in message
    assert "no schema version" in message
    assert stores.tables() == before


def test_create_schema_on_an_empty_database_records_the_version(stores: Stores) -> None:
    store = stores.store()
    assert store.schema_status().current is None  # nothing there yet
    store.create_schema()
    assert _version_row(store) == (1, SCHEMA_VERSION)
    assert store.schema_status().up_to_date
    store.create_schema()  # idempotent
    assert store.migrate().statements == ()


def test_migrate_on_an_empty_database_creates_everything(stores: Stores) -> None:
    store = stores.store(user_model=RoleUser)
    plan = store.migrate()
    assert plan.from_version is None and plan.applied
    assert set(store.table_names.values()) <= stores.tables()
    assert store.schema_status().up_to_date
    assert store.users.add(_user(1, nickname="n")).profile == {"nickname": "n", "role": "member"}


def test_an_older_recorded_version_is_outdated(stores: Stores) -> None:
    store = stores.store()
    store.create_schema()
    V = store.models.Version  # noqa: N806
    V.update(version=0).execute()
    assert store.schema_status().current == 0
    with pytest.raises(SchemaMismatch) as info:
        store.create_schema()
    assert "schema version 0" in str(info.value) and "mindmesh-auth migrate" in str(info.value)
    plan = store.migrate()
    assert plan.from_version == 0 and plan.to_version == SCHEMA_VERSION
    assert len(plan.statements) == 1 and "UPDATE" in plan.statements[0]
    assert _version_row(store) == (1, SCHEMA_VERSION)


def test_a_newer_recorded_version_is_refused(stores: Stores) -> None:
    store = stores.store()
    store.create_schema()
    V = store.models.Version  # noqa: N806
    V.update(version=SCHEMA_VERSION + 1).execute()
    status = store.schema_status()
    assert status.current == SCHEMA_VERSION + 1 and not status.up_to_date
    assert "newer" in status.pending[0]
    for call in (store.create_schema, store.migrate, lambda: store.migrate(dry_run=True)):
        with pytest.raises(SchemaMismatch, match="upgrade mindmesh-auth"):
            call()
    assert _version_row(store) == (1, SCHEMA_VERSION + 1)


# ---------------------------------------------------------------- the app's own columns


def test_an_added_model_column_is_created_by_migrate(stores: Stores) -> None:
    base = stores.store()
    base.create_schema()
    base.users.add(_user(1))
    app = stores.store(user_model=NicknameUser)

    with pytest.raises(SchemaMismatch) as startup:
        app.create_schema()
    assert "nickname" in str(startup.value) and "mindmesh-auth migrate" in str(startup.value)
    with pytest.raises(SchemaMismatch) as call:  # without the migration, a call says what to run
        app.users.add(_user(2, nickname="bob"))
    assert "mindmesh-auth migrate" in str(call.value)
    assert "nickname" not in stores.columns("users")

    assert app.schema_status().pending == (f"add column nickname to table {stores.prefix}users",)
    plan = app.migrate()

    assert plan.from_version == SCHEMA_VERSION and plan.applied
    assert len(plan.statements) == 1 and "ADD COLUMN" in plan.statements[0] and "nickname" in plan.statements[0]
    assert _version_row(app) == (1, SCHEMA_VERSION)
    assert "nickname" in stores.columns("users")
    assert _profile(app.users.get("user-1")) == {"nickname": None}
    added = app.users.add(_user(2, nickname="bob"))
    assert _profile(app.users.get_by_email(added.email)) == {"nickname": "bob"}
    assert app.schema_status().up_to_date
    app.create_schema()  # no longer outdated


def test_register_and_read_back_through_the_facade_after_migrate(stores: Stores) -> None:
    stores.store().create_schema()
    store = stores.store(user_model=NicknameUser)
    auth = MindmeshAuth(store=store, mailer=Outbox(), config=test_config())
    assert auth.schema_status().pending
    assert auth.migrate(dry_run=True).applied is False
    assert auth.migrate().applied is True
    user = auth.auth.register("ada@example.com", PASSWORD, nickname="ada")
    assert auth.user.get_by_id(user.id).profile == {"nickname": "ada"}


def test_the_async_facade_migrates_too(stores: Stores) -> None:
    stores.store().create_schema()
    auth = AsyncMindmeshAuth(MindmeshAuth(store=stores.store(user_model=NicknameUser), mailer=Outbox(), config=test_config()))

    async def run() -> tuple[SchemaStatus, MigrationPlan, MigrationPlan, SchemaStatus]:
        try:
            return await auth.schema_status(), await auth.migrate(dry_run=True), await auth.migrate(), await auth.schema_status()
        finally:
            await auth.aclose()

    before, dry, done, after = asyncio.run(run())
    assert len(before.pending) == 1 and not dry.applied and done.applied
    assert done.statements == dry.statements and after.up_to_date


def test_a_not_null_column_with_a_default_fills_the_existing_rows(stores: Stores) -> None:
    base = stores.store()
    base.create_schema()
    base.users.add(_user(1))
    app = stores.store(user_model=RoleUser)
    plan = app.migrate()
    joined = " ".join(plan.statements)
    assert "'member'" in joined  # the default, printed as a literal
    assert any("INDEX" in s and "role" in s for s in plan.statements)
    assert _profile(app.users.get("user-1")) == {"nickname": None, "role": "member"}
    role = next(c for c in app.database.get_columns(app.table_names["users"]) if c.name == "role")
    assert role.null is False
    assert (("role",), False) in {(tuple(i.columns), i.unique) for i in app.database.get_indexes(app.table_names["users"])}
    with pytest.raises(peewee.IntegrityError):  # the database itself refuses NULL
        app.database.execute_sql(f"UPDATE {app.table_names['users']} SET role = NULL")
    assert app.migrate().statements == ()


def test_a_not_null_column_without_a_default_is_refused_and_nothing_changes(stores: Stores) -> None:
    base = stores.store()
    base.create_schema()
    app = stores.store(user_model=StrictUser)
    assert any("cannot" in line for line in app.schema_status().pending)
    for dry_run in (True, False):
        with pytest.raises(ConfigurationError, match=r"tenant_id.*NOT NULL without a default"):
            app.migrate(dry_run=dry_run)
    assert "tenant_id" not in stores.columns("users")


def test_dry_run_returns_the_statements_and_changes_nothing(stores: Stores) -> None:
    old = stores.previous_layout()
    app = stores.store(user_model=RoleUser)
    tables, columns, status = stores.tables(), stores.columns("users"), app.schema_status()

    dry = app.migrate(dry_run=True)

    assert isinstance(dry, MigrationPlan) and dry.applied is False
    assert dry.from_version is None and dry.to_version == SCHEMA_VERSION
    assert len(dry.statements) >= 4  # version table, two columns (one in several statements), index, version row
    assert stores.tables() == tables and stores.columns("users") == columns
    assert app.schema_status() == status
    assert old.schema_status().current is None
    real = app.migrate()
    # The same statements ran (the recorded time aside).
    assert [s for s in real.statements if "schema_version" not in s] == [s for s in dry.statements if "schema_version" not in s]


def test_migrate_twice_is_a_no_op(stores: Stores) -> None:
    stores.previous_layout()
    app = stores.store(user_model=NicknameUser)
    first = app.migrate()
    assert first.statements
    second = app.migrate()
    assert second == MigrationPlan(SCHEMA_VERSION, SCHEMA_VERSION, (), applied=True)
    assert app.migrate(dry_run=True).statements == ()


def test_a_missing_index_is_created(stores: Stores) -> None:
    store = stores.store()
    store.create_schema()
    table = store.table_names["sessions"]
    index = next(i for i in store.database.get_indexes(table) if tuple(i.columns) == ("user_id",))
    if store.is_mysql:
        store.database.execute_sql(f"DROP INDEX {index.name} ON {table}")
    else:
        store.database.execute_sql(f"DROP INDEX {index.name}")
    assert store.schema_status().pending == (f"create index {index.name} on {table}(user_id)",)
    plan = store.migrate()
    assert len(plan.statements) == 1 and "CREATE INDEX" in plan.statements[0]
    assert any(tuple(i.columns) == ("user_id",) for i in store.database.get_indexes(table))


def test_drop_schema_drops_the_version_table_too(stores: Stores) -> None:
    store = stores.store()
    store.create_schema()
    assert stores.prefix + "schema_version" in stores.tables()
    store.drop_schema()
    assert stores.tables() == set()


def test_app_instances_starting_together_on_an_empty_database_all_succeed(stores: Stores) -> None:
    starting = [stores.store() for _ in range(4)]
    barrier = threading.Barrier(len(starting))
    failures: list[BaseException] = []

    def start(store: PeeweeStore) -> None:
        barrier.wait()
        try:
            store.create_schema()
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=start, args=(store,)) for store in starting]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert starting[0].schema_status().up_to_date
    assert _version_row(starting[0]) == (1, SCHEMA_VERSION)


def test_schema_work_waits_for_the_lock_and_gives_up_with_storage_conflict(
    stores: Stores, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = stores.previous_layout()
    if engine == "sqlite":  # SQLite's own wait for the write lock is the URL's timeout
        other = PeeweeStore.from_url(stores.url + "?timeout=0.3", table_prefix=stores.prefix)
        stores.made.append(other)
    else:
        other = stores.store()
    monkeypatch.setattr(sql_migrations, "LOCK_WAIT", 0.3)
    with sql_migrations.schema_lock(holder.database, holder.models):
        for call in (other.migrate, other.create_schema):
            with pytest.raises(StorageConflict):
                call()
    assert other.schema_status().current is None  # nothing was done meanwhile
    assert other.migrate().applied and other.schema_status().up_to_date


def test_the_version_table_name_can_be_overridden(stores: Stores) -> None:
    store = stores.store(table_names={"schema_version": stores.prefix + "meta"})
    store.create_schema()
    assert stores.prefix + "meta" in stores.tables() and stores.prefix + "schema_version" not in stores.tables()
    assert store.schema_status().current == SCHEMA_VERSION
    store.drop_schema()
    assert stores.tables() == set()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_failed_migration_changes_nothing_where_ddl_is_transactional(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    stores.previous_layout()
    app = stores.store(user_model=RoleUser)

    def broken(inspector: sql_migrations.Inspector, current: int | None, now: datetime) -> sql_migrations.Change:
        return sql_migrations.Change("a failing last step", lambda m: m.sql("SELECT * FROM no_such_table_here"))

    monkeypatch.setattr(sql_migrations, "_version_change", broken)
    with pytest.raises(SchemaMismatch):
        app.migrate()
    monkeypatch.undo()
    assert {"nickname", "role"}.isdisjoint(stores.columns("users"))  # the added columns were rolled back
    assert stores.prefix + "schema_version" not in stores.tables()  # so was the new table
    assert app.migrate().applied and {"nickname", "role"} <= stores.columns("users")


@pytest.mark.parametrize("engine", [pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_migration_stopped_half_way_on_mariadb_is_finished_by_running_it_again(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores.previous_layout()
    app = stores.store(user_model=RoleUser)

    def broken(inspector: sql_migrations.Inspector, current: int | None, now: datetime) -> sql_migrations.Change:
        return sql_migrations.Change("a failing last step", lambda m: m.sql("SELECT * FROM no_such_table_here"))

    monkeypatch.setattr(sql_migrations, "_version_change", broken)
    with pytest.raises(SchemaMismatch):
        app.migrate()
    monkeypatch.undo()
    # MariaDB committed each DDL statement: the table and columns are there, no version was recorded.
    assert {"nickname", "role"} <= stores.columns("users")
    assert app.schema_status().current is None
    plan = app.migrate()
    assert plan.applied and len(plan.statements) == 1 and "schema_version" in plan.statements[0]
    assert _version_row(app) == (1, SCHEMA_VERSION)
    assert app.schema_status().up_to_date


# ---------------------------------------------------------------- MongoDB and memory


@pytest.fixture
def mongo_db() -> Iterator[Any]:
    client: Any = mongomock.MongoClient(tz_aware=True)
    yield client["mm_migrations"]
    client.close()


def _index_names(store: MongoStore, logical: str) -> set[str]:
    return set(store.database[store.collection_names[logical]].index_information())


def test_mongo_index_sync_creates_missing_indexes(mongo_db: Any) -> None:
    store = MongoStore(mongo_db)
    status = store.schema_status()
    assert status.current == SCHEMA_VERSION and any("email_unique" in line for line in status.pending)
    dry = store.migrate(dry_run=True)
    assert dry.applied is False and dry.statements == status.pending
    assert "email_unique" not in _index_names(store, "users")

    plan = store.migrate()

    assert plan.applied and plan.statements == dry.statements
    assert {"email_unique", "created_at_id"} <= _index_names(store, "users")
    assert "expires_at_ttl" in _index_names(store, "sessions")
    assert store.schema_status().up_to_date
    assert store.migrate().statements == ()


def test_mongo_index_sync_recreates_an_index_whose_options_changed(mongo_db: Any) -> None:
    MongoStore(mongo_db).create_schema()
    store = MongoStore(mongo_db, ttl_indexes=False)  # the app turned the TTL indexes off
    pending = store.schema_status().pending
    sessions = store.collection_names["sessions"]
    assert f'{sessions}.dropIndex("expires_at_ttl")' in pending
    assert any(line.startswith(f"{sessions}.createIndex") and '"expires_at"' in line for line in pending)
    store.migrate()
    info = store.database[sessions].index_information()
    assert "expires_at_ttl" not in info and "expireAfterSeconds" not in info["expires_at"]
    assert store.schema_status().up_to_date


def test_mongo_index_sync_leaves_the_apps_own_indexes_alone(mongo_db: Any) -> None:
    store = MongoStore(mongo_db)
    store.create_schema()
    users = store.database[store.collection_names["users"]]
    users.create_index([("tenant", 1)], name="app_tenant")
    assert store.schema_status().up_to_date
    assert store.migrate().statements == ()
    assert "app_tenant" in users.index_information()


def test_the_memory_store_and_the_port_default_are_always_current() -> None:
    class PluginStore(Store):  # a store that does not override the hooks
        pass

    for store in (MemoryStore(), PluginStore()):
        assert store.schema_status() == SchemaStatus(SCHEMA_VERSION, SCHEMA_VERSION, ())
        assert store.migrate() == MigrationPlan(SCHEMA_VERSION, SCHEMA_VERSION, (), applied=True)
        assert store.migrate(dry_run=True).applied is False


# ---------------------------------------------------------------- private SQLite files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which gives SQLite's own files 0644
    try:
        store = PeeweeStore.from_url(f"sqlite:///{tmp_path}/auth.db")
        store.create_schema()
        store.users.add(_user(1))
        db = tmp_path / "auth.db"
        wal, shm = tmp_path / "auth.db-wal", tmp_path / "auth.db-shm"
        assert wal.exists() and shm.exists()  # WAL mode: open while the connection is
        assert {_mode(db), _mode(wal), _mode(shm)} == {0o600}
        store.close()
        # An app's own SqliteDatabase gets the same treatment.
        own = PeeweeStore(peewee.SqliteDatabase(str(tmp_path / "own.db")))
        own.create_schema()
        assert _mode(tmp_path / "own.db") == 0o600
        own.close()
    finally:
        os.umask(old_umask)


def test_an_existing_sqlite_file_keeps_its_mode(tmp_path: Path) -> None:
    existing = tmp_path / "shared.db"
    existing.touch(mode=0o640)
    existing.chmod(0o640)
    store = PeeweeStore.from_url(f"sqlite:///{existing}")
    store.create_schema()
    assert _mode(existing) == 0o640
    store.close()


def test_sqlite_schema_work_outwaits_the_busy_timeout_until_the_lock_wait(tmp_path: Path) -> None:
    """Instances starting together on one SQLite file queue up for the schema lock for up to
    LOCK_WAIT, even when the busy timeout is shorter than the others' work (a loaded machine)."""
    url = f"sqlite:///{tmp_path}/auth.db"
    holder = PeeweeStore.from_url(url)
    waiter = PeeweeStore.from_url(url + "?timeout=0.2")
    outcome: list[object] = []

    def start() -> None:
        try:
            waiter.create_schema()
            outcome.append("created")
        except BaseException as exc:  # reported below
            outcome.append(exc)

    try:
        with sql_migrations.schema_lock(holder.database, holder.models):
            thread = threading.Thread(target=start)
            thread.start()
            time.sleep(1.0)  # five busy timeouts
            assert outcome == []  # still waiting
        thread.join(timeout=30)
        assert outcome == ["created"]
        assert waiter.schema_status().up_to_date
    finally:
        waiter.close()
        holder.close()
