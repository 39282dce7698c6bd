"""``MongoStore``: the storage port over the app's own MongoDB database."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from ...core.errors import ConfigurationError
from ...core.ports import Store
from ._common import translate_errors
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
        self.users = MongoUsers(serial, c["users"])
        self.sessions = MongoSessions(serial, c["sessions"], c["retired_tokens"], c["users"])
        self.otps = MongoOtps(serial, c["otps"])
        self.reset_tokens = MongoResetTokens(serial, c["reset_tokens"])
        self.rate_limits = MongoRateLimits(serial, c["rate_limits"])
        self.audit = MongoAudit(serial, c["audit"], c["sequences"])
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

    # -- schema ------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create the indexes (collections appear on first write). Idempotent."""
        self.ensure_indexes()

    def ensure_indexes(self) -> None:
        """Create every index the repositories use. Idempotent (``create_index`` is)."""
        c = self._collections
        with translate_errors():
            c["users"].create_index([("email", ASCENDING)], unique=True, name="email_unique")
            c["users"].create_index([("created_at", ASCENDING), ("_id", ASCENDING)], name="created_at_id")

            c["sessions"].create_index([("refresh_hash", ASCENDING)], unique=True, name="refresh_hash_unique")
            c["sessions"].create_index([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_id_created_at")
            c["sessions"].create_index([("previous_hash", ASCENDING)], sparse=True, name="previous_hash")

            c["otps"].create_index([("email", ASCENDING), ("purpose", ASCENDING)], unique=True, name="email_purpose_unique")
            c["otps"].create_index([("id", ASCENDING)], unique=True, name="id_unique")

            c["reset_tokens"].create_index([("user_id", ASCENDING)], name="user_id")

            c["audit"].create_index([("occurred_at", ASCENDING), ("_id", ASCENDING)], name="occurred_at_seq")
            c["audit"].create_index(
                [("user_id", ASCENDING), ("occurred_at", ASCENDING), ("_id", ASCENDING)], name="user_id_occurred_at"
            )
            c["audit"].create_index(
                [("email", ASCENDING), ("occurred_at", ASCENDING), ("_id", ASCENDING)], name="email_occurred_at"
            )

            for logical in ("sessions", "retired_tokens", "otps", "reset_tokens", "rate_limits"):
                if self.ttl_indexes:
                    c[logical].create_index([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0)
                else:
                    c[logical].create_index([("expires_at", ASCENDING)], name="expires_at")

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
