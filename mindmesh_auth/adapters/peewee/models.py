"""Peewee models, built per store by :func:`build_models`.

Nothing here is bound to a database at import time: :func:`build_models`
creates fresh model classes bound to the store's database and table names,
so two stores on two databases (or two prefixes) coexist, and an app's user
model subclass is never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee

from ...core.errors import ConfigurationError, ValidationError

__all__ = [
    "TABLE_KEYS",
    "BaseUserModel",
    "BinaryCharField",
    "EpochMillisField",
    "Models",
    "UserModel",
    "build_models",
    "from_ms",
    "is_mysql",
    "is_postgres",
    "is_sqlite",
    "mysql_binary_collation",
    "resolve_database",
    "to_ms",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

TABLE_KEYS = (
    "users",
    "sessions",
    "retired_refresh_tokens",
    "otp_challenges",
    "reset_tokens",
    "rate_limits",
    "audit_events",
    "schema_version",
)


def to_ms(value: datetime) -> int:
    """Aware datetime -> integer epoch milliseconds (UTC), exact (no float)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError("Datetimes must be timezone-aware.")
    return (value - EPOCH) // _MS


def from_ms(value: int) -> datetime:
    """Integer epoch milliseconds -> aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=int(value))


def resolve_database(database: Any) -> peewee.Database | None:
    """The concrete database behind a ``DatabaseProxy`` (``None`` if uninitialised)."""
    while isinstance(database, peewee.DatabaseProxy):
        database = database.obj
    return database  # type: ignore[no-any-return]


def is_mysql(database: Any) -> bool:
    return isinstance(resolve_database(database), peewee.MySQLDatabase)


def is_sqlite(database: Any) -> bool:
    return isinstance(resolve_database(database), peewee.SqliteDatabase)


def is_postgres(database: Any) -> bool:
    return isinstance(resolve_database(database), peewee.PostgresqlDatabase)


class EpochMillisField(peewee.BigIntegerField):
    """A datetime stored as BIGINT epoch milliseconds (UTC).

    Integers compare correctly on every engine (SQLite compares datetime text
    lexicographically, MySQL drops sub-second precision by default).
    """

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return to_ms(value)
        return value

    def python_value(self, value: Any) -> Any:
        return None if value is None else from_ms(value)


class BinaryCharField(peewee.CharField):
    """A VARCHAR compared in binary on every engine.

    SQLite (BINARY) and PostgreSQL (deterministic collations) already compare
    bytes for equality; MySQL/MariaDB default to a case- and accent-insensitive
    collation, so the column gets a binary one there (see
    :func:`mysql_binary_collation`: ``utf8mb4_nopad_bin`` on MariaDB,
    ``utf8mb4_0900_bin`` on MySQL 8, ``utf8mb4_bin`` on older servers).
    """

    def ddl(self, ctx: Any) -> Any:
        node = super().ddl(ctx)
        model = getattr(self, "model", None)
        database = resolve_database(model._meta.database) if model is not None else None
        if isinstance(database, peewee.MySQLDatabase) and not self.collation:
            node = peewee.NodeList([node, peewee.SQL(f"COLLATE {mysql_binary_collation(database)}")])
        return node


def mysql_binary_collation(database: peewee.MySQLDatabase) -> str:
    """The binary utf8mb4 collation without trailing-space padding, if the server has one.

    ``utf8mb4_bin`` is PAD SPACE ('a' = 'a '); MariaDB 10.2+ has
    ``utf8mb4_nopad_bin`` and MySQL 8.0.17+ ``utf8mb4_0900_bin`` (NO PAD).
    """
    if database.server_version is None:
        database.connection()  # type: ignore[no-untyped-call]  # connecting records the server version
    version = tuple(database.server_version or (0,))
    mariadb = bool(getattr(database, "mariadb", False)) or version >= (10,)
    if mariadb and version >= (10, 2):
        return "utf8mb4_nopad_bin"
    if not mariadb and version >= (8, 0, 17):
        return "utf8mb4_0900_bin"
    return "utf8mb4_bin"


class BaseUserModel(peewee.Model):
    """The core user columns. Subclass it to add your own columns.

    Example::

        class AppUser(BaseUserModel):
            first_name = peewee.CharField(null=True)
            role = peewee.CharField(default="member")

        store = PeeweeStore(db, user_model=AppUser)

    Every extra field is a ``User.profile`` key (by field name). The store
    builds its own subclass of ``AppUser`` bound to its database and users
    table; ``AppUser`` itself is left untouched. Do not give extra fields the
    names of core fields.
    """

    id = BinaryCharField(max_length=128, primary_key=True)
    email = BinaryCharField(max_length=320, unique=True)
    password_hash = peewee.CharField(max_length=255)
    created_at = EpochMillisField()
    updated_at = EpochMillisField()
    email_verified = peewee.BooleanField(default=False)
    blocked = peewee.BooleanField(default=False)


UserModel = BaseUserModel

CORE_USER_COLUMNS = ("id", "email", "password_hash", "created_at", "updated_at", "email_verified", "blocked")


@dataclass(frozen=True)
class Models:
    # Typed ``Any``: peewee models carry their columns as dynamic attributes.
    User: Any
    Session: Any
    Retired: Any
    Otp: Any
    Reset: Any
    Counter: Any
    Audit: Any
    user_extra_fields: tuple[Any, ...]
    Version: Any = None

    def all(self) -> list[type[peewee.Model]]:
        """Every table of the store, the schema version record last."""
        return [self.User, self.Session, self.Retired, self.Otp, self.Reset, self.Counter, self.Audit, self.Version]


def resolve_table_names(table_prefix: str, table_names: dict[str, str] | None) -> dict[str, str]:
    names = {key: f"{table_prefix}{key}" for key in TABLE_KEYS}
    unknown = set(table_names or ()) - set(TABLE_KEYS)
    if unknown:
        raise ConfigurationError(f"Unknown table key(s) {sorted(unknown)}; expected some of {list(TABLE_KEYS)}.")
    names.update(table_names or {})
    return names


def build_models(database: Any, names: dict[str, str], user_model: type[BaseUserModel] | None = None) -> Models:
    """Fresh model classes bound to ``database`` and ``names`` (see :data:`TABLE_KEYS`)."""
    base_user = user_model or BaseUserModel
    if not (isinstance(base_user, type) and issubclass(base_user, BaseUserModel)):
        raise ConfigurationError("user_model must be a subclass of mindmesh_auth.adapters.peewee.BaseUserModel.")

    def meta(table: str, **extra: Any) -> type:
        return type("Meta", (), {"database": database, "table_name": table, "legacy_table_names": False, **extra})

    # Re-bind by subclassing: ModelBase deep-copies every field into the new
    # class, so the app's model keeps its own database and table name.
    User: Any = type(  # noqa: N806
        base_user.__name__,
        (base_user,),
        {"Meta": meta(names["users"]), "__module__": base_user.__module__},
    )
    for name in CORE_USER_COLUMNS:
        if name not in User._meta.fields:
            raise ConfigurationError(f"user_model lost the core field {name!r}.")
    extras = tuple(f for n, f in User._meta.fields.items() if n not in CORE_USER_COLUMNS)

    class Session(peewee.Model):
        id = BinaryCharField(max_length=128, primary_key=True)
        user_id = BinaryCharField(max_length=128, index=True)
        refresh_hash = BinaryCharField(max_length=128, unique=True)
        created_at = EpochMillisField()
        expires_at = EpochMillisField(index=True)
        last_active_at = EpochMillisField()
        revoked_at = EpochMillisField(null=True)
        revoke_reason = peewee.CharField(max_length=255, null=True)
        ip_address = peewee.CharField(max_length=64, null=True)
        user_agent = peewee.TextField(null=True)

        Meta = meta(names["sessions"])

    class Retired(peewee.Model):
        token_hash = BinaryCharField(max_length=128, primary_key=True)
        session_id = BinaryCharField(max_length=128, index=True)
        rotated_at = EpochMillisField()
        expires_at = EpochMillisField(index=True)

        Meta = meta(names["retired_refresh_tokens"])

    class Otp(peewee.Model):
        id = BinaryCharField(max_length=128, primary_key=True)
        email = BinaryCharField(max_length=320)
        purpose = BinaryCharField(max_length=64)
        code_hash = BinaryCharField(max_length=128)
        created_at = EpochMillisField()
        expires_at = EpochMillisField(index=True)
        user_id = BinaryCharField(max_length=128, null=True)
        attempts = peewee.IntegerField(default=0)
        status = BinaryCharField(max_length=16)
        consumed_at = EpochMillisField(null=True, index=True)  # purge_expired

        Meta = meta(names["otp_challenges"], indexes=((("email", "purpose"), True),))

    class Reset(peewee.Model):
        id = BinaryCharField(max_length=128, primary_key=True)
        user_id = BinaryCharField(max_length=128, index=True)
        token_hash = BinaryCharField(max_length=128, unique=True)
        created_at = EpochMillisField()
        expires_at = EpochMillisField(index=True)
        consumed_at = EpochMillisField(null=True, index=True)  # purge_expired

        Meta = meta(names["reset_tokens"])

    class Counter(peewee.Model):
        key = BinaryCharField(max_length=255, primary_key=True)
        count = peewee.BigIntegerField()
        expires_at = EpochMillisField(index=True)

        Meta = meta(names["rate_limits"])

    class Audit(peewee.Model):
        id = peewee.BigAutoField()
        type = BinaryCharField(max_length=64)
        occurred_at = EpochMillisField()
        user_id = BinaryCharField(max_length=128, null=True, index=True)
        email = BinaryCharField(max_length=320, null=True, index=True)
        ip_address = peewee.CharField(max_length=64, null=True)
        user_agent = peewee.TextField(null=True)
        session_id = BinaryCharField(max_length=128, null=True)
        reason = peewee.TextField(null=True)

        Meta = meta(names["audit_events"], indexes=((("occurred_at", "id"), False),))

    class Version(peewee.Model):
        """The schema version record: one row (``id`` 1), see :mod:`.migrations`."""

        id = peewee.IntegerField(primary_key=True)
        version = peewee.IntegerField()
        updated_at = EpochMillisField()

        Meta = meta(names["schema_version"])

    return Models(User, Session, Retired, Otp, Reset, Counter, Audit, extras, Version)
