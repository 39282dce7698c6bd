"""Schema versions and migrations of the Peewee store's tables.

The version of the store's own layout is one row (``id`` 1) of the
``<prefix>schema_version`` table. :func:`plan` compares a database with the
store's models and lists what :func:`migrate` does, in this order:

1. the versioned steps (:data:`STEPS`) above the recorded version, each taking
   the layout from ``version - 1`` to ``version``;
2. tables that do not exist yet (with their indexes), the version table among them;
3. columns of the models (the app's user model's own columns too) that the
   tables lack, added with ``playhouse.migrate``: a nullable column as is, a
   NOT NULL column with a default in one statement on SQLite (``ADD COLUMN ...
   DEFAULT``) and as add, fill, ``SET NOT NULL``/``MODIFY`` on PostgreSQL and
   MariaDB;
4. indexes of the models that do not exist;
5. the version record, written last (when the version changes).

A database with no version record but the store's tables is the layout of the
releases before versions were recorded (version ``None``); its baseline step
changes nothing. PostgreSQL and SQLite run everything in one transaction (all
or nothing). MySQL/MariaDB commit every DDL statement on its own: each part is
planned from the tables as they are, so a migration that stopped half-way is
finished by running it again, and the version is recorded only after the rest
succeeded.

A future step is a function of :class:`Inspector` returning :class:`Change` s;
it must look at the tables first (a step can meet a table that does not exist
yet, which part 2 then creates in its new layout).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import peewee
from playhouse.migrate import Operation, SchemaMigrator

from ...core.errors import ConfigurationError, SchemaMismatch, StorageConflict
from ...core.schema import SCHEMA_VERSION, MigrationPlan, SchemaStatus
from .models import Models, is_mysql, is_postgres, is_sqlite, to_ms

__all__ = [
    "STEPS",
    "Change",
    "Inspector",
    "Step",
    "check_current",
    "create",
    "migrate",
    "plan",
    "record_version",
    "schema_lock",
    "status",
]

_ROW_ID = 1

Build = Callable[[SchemaMigrator], Any]
"""Makes a change's statements with the given migrator: playhouse operations,
contexts or nodes (or lists of them); called once to run, once to print."""


@dataclass(frozen=True)
class Change:
    """One thing a migration does: ``description`` in words, ``build`` its SQL.

    ``problem`` is set when the change cannot be made (nothing runs then)."""

    description: str
    build: Build
    problem: str | None = None


@dataclass(frozen=True)
class Step:
    """The change from version ``version - 1`` to ``version``."""

    version: int
    description: str
    changes: Callable[[Inspector], list[Change]]


STEPS: tuple[Step, ...] = (
    Step(1, "baseline: the layout of the releases before the version was recorded", lambda _inspector: []),
)
"""Every versioned step, in order; the last one's version is ``SCHEMA_VERSION``."""

assert STEPS[-1].version == SCHEMA_VERSION and [s.version for s in STEPS] == list(range(1, SCHEMA_VERSION + 1))


@dataclass
class Inspector:
    """What the database has (read once per plan): tables, their columns and indexes."""

    database: Any
    models: Models
    tables: set[str] = field(default_factory=set)
    _columns: dict[str, set[str]] = field(default_factory=dict)
    _indexes: dict[str, set[tuple[tuple[str, ...], bool]]] = field(default_factory=dict)

    @classmethod
    def read(cls, database: Any, models: Models) -> Inspector:
        return cls(database, models, {t.lower() for t in database.get_tables()})

    def all(self) -> list[Any]:
        """The store's models (peewee models: typed ``Any``), the version record last."""
        return list(self.models.all())

    def has_table(self, model: Any) -> bool:
        return str(model._meta.table_name).lower() in self.tables

    def columns(self, model: Any) -> set[str]:
        table = model._meta.table_name
        if table not in self._columns:
            self._columns[table] = {c.name.lower() for c in self.database.get_columns(table)}
        return self._columns[table]

    def indexes(self, model: Any) -> set[tuple[tuple[str, ...], bool]]:
        table = model._meta.table_name
        if table not in self._indexes:
            self._indexes[table] = {
                (tuple(c.lower() for c in index.columns), bool(index.unique)) for index in self.database.get_indexes(table)
            }
        return self._indexes[table]

    @property
    def store_tables_exist(self) -> bool:
        """Some table of the store exists (the version record aside)."""
        return any(self.has_table(m) for m in self.models.all() if m is not self.models.Version)

    def version(self) -> int | None:
        """The recorded version (``None``: no version table, or no row in it)."""
        if not self.has_table(self.models.Version):
            return None
        V = self.models.Version  # noqa: N806
        row = self.database.execute(V.select(V.version).where(V.id == _ROW_ID)).fetchone()
        return None if row is None else int(row[0])


# ---------------------------------------------------------------- planning


def _missing_tables(inspector: Inspector) -> list[Change]:
    changes = []
    for model in inspector.all():
        if inspector.has_table(model):
            continue
        schema = model._schema

        def build(_m: SchemaMigrator, schema: Any = schema) -> list[Any]:
            return [schema._create_table(safe=True), *schema._create_indexes(safe=True)]

        what = " (the schema version record)" if model is inspector.models.Version else ""
        indexes = " with its indexes" if model._meta.fields_to_index() else ""
        changes.append(Change(f"create table {model._meta.table_name}{what}{indexes}", build))
    return changes


def _add_column(database: Any, model: Any, column: Any) -> Change:
    table = model._meta.table_name
    name = column.column_name
    description = f"add column {name} to table {table}"
    if column.primary_key:
        return Change(description, lambda _m: [], problem=f"table {table} lacks its primary key column {name}")
    default = column.default
    if not column.null and default is None:
        return Change(
            description,
            lambda _m: [],
            problem=(
                f"column {name} of table {table} is NOT NULL without a default: the existing rows would have no value. "
                "Give the field a default (or null=True), or add the column yourself"
            ),
        )
    if column.null:

        def nullable(m: SchemaMigrator) -> Any:
            return m.alter_add_column(table, name, column.clone())

        return Change(description, nullable)

    # A callable default is called once: every existing row gets that value (and the
    # printed statements are the ones that run).
    fill = column.db_value(default() if callable(default) else default)

    if is_sqlite(database):
        # SQLite adds a NOT NULL column in one statement when it has a constant default
        # (it cannot change a column's constraints without rebuilding the table).
        def with_default(m: SchemaMigrator) -> Any:
            ctx = m.make_context()
            return (
                ctx.literal("ALTER TABLE ")
                .sql(peewee.Entity(table))
                .literal(" ADD COLUMN ")
                .sql(column.ddl(ctx))
                .literal(" DEFAULT ")
                .sql(peewee.ValueLiterals(peewee.Value(fill, converter=False)))
            )

        return Change(description, with_default)

    def add_fill_constrain(m: SchemaMigrator) -> list[Any]:
        steps: list[Any] = [m.alter_add_column(table, name, column.clone())]
        ctx = m.make_context()
        steps.append(ctx.sql(model.update({column: peewee.Value(fill, converter=False)})))
        if is_mysql(database):
            modify = m.make_context()
            steps.append(modify.literal("ALTER TABLE ").sql(peewee.Entity(table)).literal(" MODIFY ").sql(column.ddl(modify)))
        else:
            steps.append(m.add_not_null(table, name))
        return steps

    return Change(f"{description} (existing rows get the default)", add_fill_constrain)


def _missing_columns(inspector: Inspector) -> list[Change]:
    changes = []
    for model in inspector.all():
        if not inspector.has_table(model):
            continue
        present = inspector.columns(model)
        for column in model._meta.sorted_fields:
            if column.column_name.lower() not in present:
                changes.append(_add_column(inspector.database, model, column))
    return changes


def _missing_indexes(inspector: Inspector) -> list[Change]:
    changes = []
    for model in inspector.all():
        if not inspector.has_table(model):
            continue
        present = inspector.indexes(model)
        for index in model._meta.fields_to_index():
            columns = tuple(str(f.column_name).lower() for f in index._expressions if isinstance(f, peewee.Field))
            if (columns, bool(index._unique)) in present:
                continue
            kind = "unique index" if index._unique else "index"

            def build(_m: SchemaMigrator, model: Any = model, index: Any = index) -> Any:
                return model._schema._create_index(index, safe=False)

            changes.append(Change(f"create {kind} {index._name} on {model._meta.table_name}({', '.join(columns)})", build))
    return changes


def _version_change(inspector: Inspector, current: int | None, now: datetime) -> Change:
    V = inspector.models.Version  # noqa: N806
    at = to_ms(now)
    if inspector.has_table(V) and current is not None:

        def update(m: SchemaMigrator) -> Any:
            query = V.update({V.version: SCHEMA_VERSION, V.updated_at: at}).where(V.id == _ROW_ID)
            return m.make_context().sql(query)

        return Change(f"record schema version {SCHEMA_VERSION}", update)

    def insert(m: SchemaMigrator) -> Any:
        query = V.insert({V.id: _ROW_ID, V.version: SCHEMA_VERSION, V.updated_at: at}).on_conflict_ignore()
        return m.make_context().sql(query.as_rowcount())

    return Change(f"record schema version {SCHEMA_VERSION}", insert)


def _steps_above(current: int | None) -> list[Step]:
    return [step for step in STEPS if step.version > (current or 0)]


def _too_new(current: int | None) -> str | None:
    if current is not None and current > SCHEMA_VERSION:
        return (
            f"the database has schema version {current}, newer than this package's {SCHEMA_VERSION}: "
            "upgrade mindmesh-auth (a migration never goes back)"
        )
    return None


def _sync(inspector: Inspector) -> list[Change]:
    return [*_missing_tables(inspector), *_missing_columns(inspector), *_missing_indexes(inspector)]


def _changes(inspector: Inspector, current: int | None, now: datetime) -> list[Change]:
    changes: list[Change] = []
    for step in _steps_above(current):
        changes.extend(step.changes(inspector))
    changes.extend(_sync(inspector))
    if current != SCHEMA_VERSION:
        changes.append(_version_change(inspector, current, now))
    return changes


# ---------------------------------------------------------------- statements


def _migrators(database: Any) -> tuple[SchemaMigrator, SchemaMigrator]:
    """(the migrator whose statements run, one whose statements carry their values as literals, to print)."""
    printing = SchemaMigrator.from_database(database)
    printing.make_context = functools.partial(database.get_sql_context, value_literals=True)  # type: ignore[method-assign]
    return SchemaMigrator.from_database(database), printing


def _flatten(migrator: SchemaMigrator, result: Any, out: list[tuple[str, tuple[Any, ...]]]) -> None:
    if isinstance(result, Operation):
        _flatten(migrator, result.fn(result.migrator, *result.args, **result.kwargs), out)
    elif isinstance(result, list | tuple):
        for item in result:
            _flatten(migrator, item, out)
    elif isinstance(result, peewee.Context):
        sql, params = result.query()
        out.append((sql, tuple(params)))
    elif isinstance(result, peewee.Node):
        sql, params = migrator.make_context().sql(result).query()
        out.append((sql, tuple(params)))
    elif result is not None:
        raise TypeError(f"A migration change built {type(result).__name__}, not SQL.")


def _statements(change: Change, migrator: SchemaMigrator) -> list[tuple[str, tuple[Any, ...]]]:
    out: list[tuple[str, tuple[Any, ...]]] = []
    _flatten(migrator, change.build(migrator), out)
    return out


def _printed(database: Any, changes: Iterable[Change]) -> list[str]:
    _running, printing = _migrators(database)
    lines = []
    for change in changes:
        for sql, params in _statements(change, printing):
            lines.append(sql if not params else f"{sql} -- parameters: {list(params)!r}")
    return lines


# ---------------------------------------------------------------- the public functions


def _now() -> datetime:
    return datetime.now(UTC)


def status(database: Any, models: Models) -> SchemaStatus:
    inspector = Inspector.read(database, models)
    current = inspector.version()
    too_new = _too_new(current)
    if too_new is not None:
        return SchemaStatus(current=current, expected=SCHEMA_VERSION, pending=(too_new,))
    pending = []
    for change in _changes(inspector, current, _now()):
        pending.append(change.description + (f" (cannot: {change.problem})" if change.problem else ""))
    return SchemaStatus(current=current, expected=SCHEMA_VERSION, pending=tuple(pending))


def _refuse(changes: Iterable[Change]) -> None:
    problems = [c.problem for c in changes if c.problem]
    if problems:
        raise ConfigurationError("Cannot migrate: " + "; ".join(problems) + ". Nothing was changed.", variable="user_model")


def plan(database: Any, models: Models) -> MigrationPlan:
    """What :func:`migrate` would run now (nothing is changed)."""
    inspector = Inspector.read(database, models)
    current = inspector.version()
    too_new = _too_new(current)
    if too_new is not None:
        raise SchemaMismatch(f"Cannot migrate: {too_new}.")
    changes = _changes(inspector, current, _now())
    _refuse(changes)
    return MigrationPlan(current, SCHEMA_VERSION, tuple(_printed(database, changes)), applied=False)


def migrate(database: Any, models: Models) -> MigrationPlan:
    """Bring the tables to :data:`SCHEMA_VERSION` and the models' columns and indexes.

    One transaction on PostgreSQL and SQLite; statement by statement (each
    committed by the server) on MySQL/MariaDB, the version recorded last.
    """
    printed: list[str] = []
    with schema_lock(database, models):
        if is_postgres(database):
            # The store's own bound on statements (statement_timeout) is for requests,
            # not for a migration that may rewrite a large table.
            database.execute_sql("SET LOCAL statement_timeout = 0")
        inspector = Inspector.read(database, models)
        current = inspector.version()
        too_new = _too_new(current)
        if too_new is not None:
            raise SchemaMismatch(f"Cannot migrate: {too_new}.")
        now = _now()
        planned = _changes(inspector, current, now)
        _refuse(planned)
        running, _printing = _migrators(database)
        steps = [change for step in _steps_above(current) for change in step.changes(inspector)]
        for change in steps:
            _run(database, change, running, printed)
        if steps:  # the steps changed the tables: plan the rest from what is there now
            inspector = Inspector.read(database, models)
            later = _sync(inspector)
            _refuse(later)
        else:
            later = _sync(inspector)
        for change in later:
            _run(database, change, running, printed)
        if current != SCHEMA_VERSION:
            _run(database, _version_change(Inspector.read(database, models), current, now), running, printed)
    return MigrationPlan(current, SCHEMA_VERSION, tuple(printed), applied=True)


LOCK_WAIT = 60.0
"""Seconds :func:`schema_lock` waits for another process's schema work before ``StorageConflict``."""


@contextlib.contextmanager
def schema_lock(database: Any, models: Models, *, wait: float | None = None) -> Iterator[None]:
    """One process at a time creates or migrates a store's tables (per version table).

    A transaction holding the lock on PostgreSQL (``pg_try_advisory_xact_lock``)
    and SQLite (``BEGIN IMMEDIATE``); on MySQL/MariaDB a named lock
    (``GET_LOCK``) around statements that commit on their own. The lock is
    polled, never waited for inside one statement, so the store's statement
    timeouts do not end the wait; after ``wait`` seconds (:data:`LOCK_WAIT`)
    it raises ``StorageConflict``. On SQLite each attempt waits the
    connection's busy timeout, and a locked database is tried again until the
    same deadline (several instances creating one file's tables queue up).
    """
    name = "mindmesh_auth:" + str(models.Version._meta.table_name)
    digest = hashlib.sha256(name.encode()).digest()
    deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)

    def acquire(try_once: Callable[[], bool]) -> None:
        pause = 0.01
        while not try_once():
            if time.monotonic() >= deadline:
                raise StorageConflict("Another process is creating or migrating the schema; try again when it is done.")
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    if is_sqlite(database):
        with contextlib.ExitStack() as stack:
            while True:
                try:
                    stack.enter_context(database.atomic("IMMEDIATE"))
                    break
                except peewee.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
            yield
        return
    if is_postgres(database):
        key = int.from_bytes(digest[:8], "big", signed=True)
        with database.atomic():
            acquire(lambda: bool(database.execute_sql("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]))
            yield
        return
    lock = name if len(name) <= 64 else "mindmesh_auth:" + digest.hex()[:40]  # MySQL: lock names up to 64 characters
    acquire(lambda: database.execute_sql("SELECT GET_LOCK(%s, 0)", (lock,)).fetchone()[0] == 1)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a lost connection released it already
            database.execute_sql("SELECT RELEASE_LOCK(%s)", (lock,))


def _run(database: Any, change: Change, migrator: SchemaMigrator, printed: list[str]) -> None:
    printed.extend(_printed(database, [change]))
    for sql, params in _statements(change, migrator):
        database.execute_sql(sql, params)


def check_current(database: Any, models: Models) -> None:
    """For ``create_schema()``: raise ``SchemaMismatch`` unless the database is
    empty or at :data:`SCHEMA_VERSION` with every column of the models
    (missing tables and indexes are ``create_schema()``'s own work)."""
    inspector = Inspector.read(database, models)
    current = inspector.version()
    too_new = _too_new(current)
    if too_new is not None:
        raise SchemaMismatch(f"The database schema cannot be used: {too_new}.")
    if current is None and not inspector.store_tables_exist:
        return  # an empty database: create_schema() makes the current layout
    reasons = []
    if current is None:
        reasons.append("it records no schema version (made by a release before versions were recorded)")
    elif current < SCHEMA_VERSION:
        reasons.append(f"it is at schema version {current}, this package needs {SCHEMA_VERSION}")
    reasons.extend(change.description for change in _missing_columns(inspector))
    if reasons:
        raise SchemaMismatch(
            "The database schema is older than the store: "
            + "; ".join(reasons)
            + ". Run `mindmesh-auth migrate` (or auth.migrate()) to upgrade it; "
            "`mindmesh-auth migrate --dry-run` prints the SQL first."
        )


def create(database: Any, models: Models) -> None:
    """``create_schema()``: under :func:`schema_lock`, check the tables are current
    (:func:`check_current`), then create what is missing, the version record first
    (an app instance starting at the same time never sees the tables without it)."""
    with schema_lock(database, models):
        check_current(database, models)
        database.create_tables([models.Version], safe=True)
        record_version(database, models)
        database.create_tables(models.all(), safe=True)


def record_version(database: Any, models: Models) -> None:
    """For ``create_schema()`` on an empty database: record :data:`SCHEMA_VERSION` (if no row yet)."""
    inspector = Inspector.read(database, models)
    current = inspector.version()
    if current is None:
        running, _printing = _migrators(database)
        for sql, params in _statements(_version_change(inspector, current, _now()), running):
            database.execute_sql(sql, params)
