"""``MongoStore``: the storage port over the app's own MongoDB database."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import OperationFailure

from ...core.errors import ConfigurationError
from ...core.ports import Store
from ...core.schema import SCHEMA_VERSION, MigrationPlan, SchemaStatus
from ._common import translate_errors
from ._unit import UnitOfWork
from .repositories import MongoAudit, MongoOtps, MongoRateLimits, MongoResetTokens, MongoSessions, MongoUsers

__all__ = ["DEFAULT_COLLECTIONS", "DEFAULT_DATABASE", "MongoStore"]

DEFAULT_DATABASE = "mindmesh_auth"

DEFAULT_COLLECTIONS: Mapping[str, str] = {
    "users": "users",
    "sessions": "sessions",
    "retired_tokens": "retired_refresh_tokens",
    "otps": "otp_challenges",
    "reset_tokens": "reset_tokens",
    "rate_limits": "rate_limits",
    "audit": "audit_events",
    "sequences": "sequences",
}

# One lock for every store over a mongomock database: mongomock runs
# find-then-write in Python, so it is not atomic across threads (a real server is).
_MONGOMOCK_LOCK = threading.RLock()


@attrs.frozen
class _IndexSpec:
    """An index the store wants: on the logical collection ``collection``."""

    collection: str
    keys: tuple[tuple[str, int], ...]
    name: str
    unique: bool = False
    sparse: bool = False
    expire_after: int | None = None

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.unique:
            options["unique"] = True
        if self.sparse:
            options["sparse"] = True
        if self.expire_after is not None:
            options["expireAfterSeconds"] = self.expire_after
        return options

    def matches(self, info: Mapping[str, Any]) -> bool:
        """Whether an existing index (``index_information()`` entry) is this one."""
        keys = tuple((str(k), int(d)) for k, d in info.get("key", ()))
        expire = info.get("expireAfterSeconds")
        return (
            keys == self.keys
            and bool(info.get("unique", False)) == self.unique
            and bool(info.get("sparse", False)) == self.sparse
            and (None if expire is None else int(expire)) == self.expire_after
        )


@attrs.frozen
class _IndexOp:
    collection: str  # logical
    collection_name: str
    action: str  # "create" or "drop"
    name: str
    spec: _IndexSpec | None

    def describe(self) -> str:
        if self.action == "drop":
            return f"{self.collection_name}.dropIndex({json.dumps(self.name)})"
        assert self.spec is not None
        keys = "{" + ", ".join(f"{json.dumps(k)}: {d}" for k, d in self.spec.keys) + "}"
        options = json.dumps({"name": self.name, **self.spec.options()})
        return f"{self.collection_name}.createIndex({keys}, {options})"


_OUR_INDEX_NAMES = frozenset(
    {
        "email_unique",
        "created_at_id",
        "refresh_hash_unique",
        "user_id_created_at",
        "previous_hash",
        "email_purpose_unique",
        "id_unique",
        "user_id",
        "occurred_at_seq",
        "user_id_occurred_at",
        "email_occurred_at",
        "expires_at_ttl",
        "expires_at",
    }
)
"""Every index name the store has ever created: index sync may drop these (and no other)."""


def _is_mongomock(database: Any) -> bool:
    return type(database).__module__.split(".")[0] == "mongomock"


class MongoStore(Store):
    """The six repositories over collections of one MongoDB database.

    ``database`` is a :class:`pymongo.database.Database` the app owns (a
    ``mongomock`` database works too). The store never closes a database it was
    given; :meth:`from_url` makes a store that owns (and closes) its client.

    Collections (logical name -> default name, each prefixed with
    ``collection_prefix``, default ``mm_auth_``):

    ==================  ==========================  ==============================================
    ``users``           ``mm_auth_users``           ``_id`` = user id; extra keys = profile
    ``sessions``        ``mm_auth_sessions``        ``_id`` = session id
    ``retired_tokens``  ``mm_auth_retired_refresh_  ``_id`` = retired refresh-token hash
                        tokens``
    ``otps``            ``mm_auth_otp_challenges``  one document per (email, purpose)
    ``reset_tokens``    ``mm_auth_reset_tokens``    ``_id`` = reset-token hash
    ``rate_limits``     ``mm_auth_rate_limits``     ``_id`` = counter key
    ``audit``           ``mm_auth_audit_events``    ``_id`` = append sequence number
    ``sequences``       ``mm_auth_sequences``       the audit sequence counter
    ==================  ==========================  ==============================================

    ``collection_names`` maps logical names to full names (no prefix added),
    e.g. ``{"users": "accounts"}``.

    ``ttl_indexes=False`` skips the TTL indexes (then run
    ``MindmeshAuth.purge_expired()`` on a schedule). Every rule checks expiry on
    read either way: MongoDB's TTL monitor deletes late (about once a minute).

    **Units of work (``atomic()``) by compensation.** MongoDB has multi-document
    transactions only on replica sets and mongomock has none, so the store does
    not use them: every write made inside a unit records how to undo itself
    (from the document the write itself returned as it was *before*, or from the
    guard it wrote under), and when the block raises, the undo actions run newest
    first, then the exception propagates. Each undo is guarded: it reverts a
    value only while it still holds what the unit wrote, deletes only what the
    unit created, and re-inserts a deleted document only where no newer one took
    its key (a later change by someone else is never clobbered). Undo is best
    effort: undo actions that fail (the server went away) are logged in one
    record per rolled-back block on the ``mindmesh_auth`` logger, with the
    writes' names and the exception classes only, and the others still run.
    Outside a unit nothing is recorded; inside one, ``reset_tokens.put`` and
    ``delete_for_user`` delete one document per round trip, to keep each.

    What a failed unit undoes: ``users.add`` (deleted), ``users.set_*`` (previous
    value and ``updated_at`` back), ``sessions.add`` (deleted),
    ``sessions.rotate`` (swapped back, its retired record deleted), ``otps.put``
    (the replaced challenge restored, or the new one deleted),
    ``otps.mark_sent``/``consume`` (flipped back), ``otps.discard`` (re-inserted),
    ``reset_tokens.put`` (the new token deleted, the superseded ones re-inserted),
    ``reset_tokens.consume`` (un-consumed), ``reset_tokens.delete_for_user``
    (re-inserted), ``audit.append`` (deleted; its sequence number stays used, so
    event ids may have gaps). What it keeps, on purpose:

    * revocations (``sessions.revoke``, ``revoke_all_for_user``): a revoked
      session is always safe to keep, so a failed logout-everywhere or password
      reset never leaves a session alive;
    * rate-limit hits and ``otps.register_attempt``: counted attempts stay
      counted, or a failing operation would be a free retry for a guesser;
    * purges (``purge_*``): they run outside units.

    Differences from a transaction, by design: there is **no isolation** (other
    threads and processes see a unit's writes before it ends, and may act on
    them), and a unit covers the calls made by its own thread (a store is shared
    by threads; each thread has its own units). A unit that dies without an
    exception (process killed, power lost) runs no undo and **leaves the writes
    made so far**; so does a write whose reply was lost when that write is an
    update (an insert whose reply was lost is still undone). The core orders
    each operation's writes so that such a partial state is safe: the
    security-relevant write comes first (sessions are revoked before a password
    is replaced, a reset token is consumed before it is acted on), so a crash
    can leave a user logged out or a token spent, never an old session alive
    after a reset. A replica-set transaction path is not built.
    """

    def __init__(
        self,
        database: Database[Any],
        *,
        collection_prefix: str = "mm_auth_",
        collection_names: Mapping[str, str] | None = None,
        ttl_indexes: bool = True,
    ) -> None:
        if not isinstance(collection_prefix, str):
            raise ConfigurationError("collection_prefix must be a string.", variable="collection_prefix")
        overrides = dict(collection_names or {})
        unknown = set(overrides) - set(DEFAULT_COLLECTIONS)
        if unknown:
            raise ConfigurationError(f"Unknown collection names: {', '.join(sorted(unknown))}.", variable="collection_names")
        names = {logical: collection_prefix + name for logical, name in DEFAULT_COLLECTIONS.items()}
        names.update(overrides)
        if any(not isinstance(n, str) or not n or "$" in n or "\x00" in n for n in names.values()):
            raise ConfigurationError("Collection names must be non-empty strings.", variable="collection_names")
        if len(set(names.values())) != len(names):
            raise ConfigurationError("Collection names must be distinct.", variable="collection_names")
        self.database = database
        self.collection_names: Mapping[str, str] = names
        self.ttl_indexes = bool(ttl_indexes)
        self._client: Any = None  # set by from_url: a client this store owns
        serial: contextlib.AbstractContextManager[Any] = _MONGOMOCK_LOCK if _is_mongomock(database) else contextlib.nullcontext()
        c = {logical: database[name] for logical, name in names.items()}
        self._unit = unit = UnitOfWork(serial)
        self.users = MongoUsers(serial, c["users"], unit)
        self.sessions = MongoSessions(serial, c["sessions"], c["retired_tokens"], c["users"], unit)
        self.otps = MongoOtps(serial, c["otps"], unit)
        self.reset_tokens = MongoResetTokens(serial, c["reset_tokens"], unit)
        self.rate_limits = MongoRateLimits(serial, c["rate_limits"], unit)
        self.audit = MongoAudit(serial, c["audit"], c["sequences"], unit)
        self._collections = c

    def __repr__(self) -> str:
        return f"MongoStore(database={self.database.name!r})"

    # -- construction from a URL ------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MongoStore:
        """``mongodb://host/dbname`` or ``mongodb+srv://...`` (database from the path, default
        ``mindmesh_auth``; client ``tz_aware=True``), or ``mongomock://dbname`` (an
        in-process fake, for tests and demos). The store owns and closes the client."""
        if not isinstance(url, str):
            raise ConfigurationError("The MongoDB URL must be a string.", variable="AUTH_DATABASE_URL")
        scheme = urlsplit(url).scheme.lower()
        client: Any
        if scheme == "mongomock":
            try:
                import mongomock
            except ImportError as exc:  # pragma: no cover - depends on the dev extra
                raise ConfigurationError(
                    "mongomock:// needs mongomock: pip install mongomock", variable="AUTH_DATABASE_URL"
                ) from exc
            parts = urlsplit(url)
            name = unquote(parts.netloc or parts.path.lstrip("/")) or DEFAULT_DATABASE
            client = mongomock.MongoClient(tz_aware=True)
            database = client[name]
        elif scheme in ("mongodb", "mongodb+srv"):
            from pymongo import MongoClient
            from pymongo.errors import PyMongoError

            try:
                client = MongoClient(url, tz_aware=True)  # connects lazily: no I/O here
                database = client.get_default_database(default=DEFAULT_DATABASE)
            except (PyMongoError, ValueError, TypeError):
                # pymongo rejects malformed URLs (InvalidURI, ConfigurationError, ValueError).
                raise ConfigurationError("The MongoDB URL is not valid.", variable="AUTH_DATABASE_URL") from None
        else:
            raise ConfigurationError(f"Not a MongoDB URL scheme: {scheme!r}.", variable="AUTH_DATABASE_URL")
        store = cls(database, **kwargs)
        store._client = client
        return store

    # -- units of work -------------------------------------------------------------
    def atomic(self) -> AbstractContextManager[None]:
        """A unit of work by compensation (see the class docstring): when the block
        raises, the writes it made are undone, newest first, and the exception
        propagates. Nested blocks are savepoints. Per thread."""
        return self._unit.atomic()

    # -- schema ------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the indexes (collections appear on first write). Idempotent."""
        self.ensure_indexes()

    def _index_specs(self) -> list[_IndexSpec]:
        """Every index the repositories use, by logical collection."""
        specs = [
            _IndexSpec("users", (("email", ASCENDING),), "email_unique", unique=True),
            _IndexSpec("users", (("created_at", ASCENDING), ("_id", ASCENDING)), "created_at_id"),
            _IndexSpec("sessions", (("refresh_hash", ASCENDING),), "refresh_hash_unique", unique=True),
            _IndexSpec("sessions", (("user_id", ASCENDING), ("created_at", DESCENDING)), "user_id_created_at"),
            _IndexSpec("sessions", (("previous_hash", ASCENDING),), "previous_hash", sparse=True),
            _IndexSpec("otps", (("email", ASCENDING), ("purpose", ASCENDING)), "email_purpose_unique", unique=True),
            _IndexSpec("otps", (("id", ASCENDING),), "id_unique", unique=True),
            _IndexSpec("reset_tokens", (("user_id", ASCENDING),), "user_id"),
            _IndexSpec("audit", (("occurred_at", ASCENDING), ("_id", ASCENDING)), "occurred_at_seq"),
            _IndexSpec("audit", (("user_id", ASCENDING), ("occurred_at", ASCENDING), ("_id", ASCENDING)), "user_id_occurred_at"),
            _IndexSpec("audit", (("email", ASCENDING), ("occurred_at", ASCENDING), ("_id", ASCENDING)), "email_occurred_at"),
        ]
        for logical in ("sessions", "retired_tokens", "otps", "reset_tokens", "rate_limits"):
            if self.ttl_indexes:
                specs.append(_IndexSpec(logical, (("expires_at", ASCENDING),), "expires_at_ttl", expire_after=0))
            else:
                specs.append(_IndexSpec(logical, (("expires_at", ASCENDING),), "expires_at"))
        return specs

    def ensure_indexes(self) -> None:
        """Create every index the repositories use. Idempotent (``create_index`` is)."""
        c = self._collections
        with translate_errors():
            for spec in self._index_specs():
                c[spec.collection].create_index(list(spec.keys), name=spec.name, **spec.options())

    # -- index sync (migrate) ------------------------------------------------------
    def _index_operations(self) -> list[_IndexOp]:
        """What :meth:`migrate` does: drop the store's own indexes that are not
        as wanted (other options, or a TTL index that ``ttl_indexes`` no longer
        wants), then create the missing ones. Indexes the store did not name are
        left alone."""
        ours = _OUR_INDEX_NAMES
        ops: list[_IndexOp] = []
        by_collection: dict[str, list[_IndexSpec]] = {}
        for spec in self._index_specs():
            by_collection.setdefault(spec.collection, []).append(spec)
        with translate_errors():
            for logical, specs in by_collection.items():
                collection = self._collections[logical]
                existing = collection.index_information()
                dropped: set[str] = set()
                for spec in specs:
                    have = existing.get(spec.name)
                    if have is not None and spec.matches(have):
                        continue
                    if have is not None:
                        ops.append(_IndexOp(logical, collection.name, "drop", spec.name, spec))
                        dropped.add(spec.name)
                    for name, info in existing.items():
                        same_keys = [tuple(k) for k in info.get("key", ())] == list(spec.keys)
                        if name != spec.name and name in ours and name not in dropped and same_keys:
                            ops.append(_IndexOp(logical, collection.name, "drop", name, None))
                            dropped.add(name)
                    ops.append(_IndexOp(logical, collection.name, "create", spec.name, spec))
        return ops

    def schema_status(self) -> SchemaStatus:
        """MongoDB records no schema version (documents carry their own fields);
        ``pending`` lists the index operations :meth:`migrate` would run."""
        pending = tuple(op.describe() for op in self._index_operations())
        return SchemaStatus(current=SCHEMA_VERSION, expected=SCHEMA_VERSION, pending=pending)

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        """Index sync: create missing indexes, re-create the store's own indexes whose
        options changed (``ttl_indexes`` switched, say). ``dry_run=True`` lists the
        operations and changes nothing. Each operation is idempotent: running it
        again finishes a sync that stopped half-way."""
        ops = self._index_operations()
        statements = tuple(op.describe() for op in ops)
        if not dry_run:
            with translate_errors():
                for op in ops:
                    collection = self._collections[op.collection]
                    if op.action == "drop":
                        with contextlib.suppress(OperationFailure):  # already gone (a rerun)
                            collection.drop_index(op.name)
                    else:
                        assert op.spec is not None
                        collection.create_index(list(op.spec.keys), name=op.spec.name, **op.spec.options())
        return MigrationPlan(SCHEMA_VERSION, SCHEMA_VERSION, statements, applied=not dry_run)

    # -- lifecycle -----------------------------------------------------------------
    def drop(self) -> None:
        """Drop every collection of this store (tests and tear-downs only)."""
        with translate_errors():
            for collection in self._collections.values():
                collection.drop()

    def close(self) -> None:
        """Close the client if this store made it (``from_url``); a given database is left open."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
