"""The Peewee store: the ports over the app's own ``peewee.Database``.

Every method marked *atomic* in :mod:`mindmesh_auth.core.ports` is a single
conditional statement (checked through its affected-row count) or one
transaction; nothing is read in Python and then written back.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
import peewee
from playhouse import db_url

from ...core.errors import ConfigurationError, StorageUnavailable, ValidationError
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
from .errors import translate_errors
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


def _op(method: F) -> F:
    """Repository method wrapper: one place for error translation (and the
    store-wide lock used only for a shared in-memory SQLite database)."""

    @functools.wraps(method)
    def wrapper(self: _Repo, *args: Any, **kwargs: Any) -> Any:
        store = self._store
        try:
            with store._guard, _TRANSLATE:
                return method(self, *args, **kwargs)
        except StorageUnavailable:
            store._after_failure()
            raise

    return wrapper  # type: ignore[return-value]


def _ms_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)


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


# ---------------------------------------------------------------- users


class PeeweeUsers(_Repo, UserRepository):
    def __init__(self, store: PeeweeStore) -> None:
        super().__init__(store)
        U = self._m.User  # noqa: N806
        self._extras = {f.name: f for f in self._m.user_extra_fields}
        self._columns = [getattr(U, name) for name in CORE_USER_COLUMNS] + list(self._m.user_extra_fields)
        self._sql: dict[str, str] = {}

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

    def _compiled(self, key: str, build: Callable[[], peewee.Query]) -> str:
        sql = self._sql.get(key)
        if sql is None:
            sql, _params = build().sql()
            self._sql[key] = sql
        return str(sql)

    def _fetch_one(self, key: str, column: peewee.Field, value: str) -> User | None:
        U = self._m.User  # noqa: N806
        sql = self._compiled(key, lambda: U.select(*self._columns).where(column == "?"))
        row = self._db.execute_sql(sql, (value,)).fetchone()
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
            stored = self._fetch_one("by_id", U.id, user.id)
        assert stored is not None
        return stored

    @_op
    def get(self, user_id: str) -> User | None:
        return self._fetch_one("by_id", self._m.User.id, user_id)

    @_op
    def get_by_email(self, email: str) -> User | None:
        return self._fetch_one("by_email", self._m.User.email, email)

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

    def _one(self, where: Any) -> Session | None:
        row = self._first(self._m.Session.select(*self._columns).where(where).limit(1))
        return self.from_row(row) if row is not None else None

    @_op
    def add(self, session: Session) -> None:
        S = self._m.Session  # noqa: N806
        S.insert(
            {
                S.id: session.id,
                S.user_id: session.user_id,
                S.refresh_hash: session.refresh_hash,
                S.created_at: to_ms(session.created_at),
                S.expires_at: to_ms(session.expires_at),
                S.last_active_at: to_ms(session.last_active_at),
                S.revoked_at: None if session.revoked_at is None else to_ms(session.revoked_at),
                S.revoke_reason: session.revoke_reason,
                S.ip_address: session.ip_address,
                S.user_agent: session.user_agent,
            }
        ).as_rowcount().execute()

    @_op
    def get(self, session_id: str) -> Session | None:
        return self._one(self._m.Session.id == session_id)

    def _build_with_user_sql(self) -> str:
        S, U = self._m.Session, self._m.User  # noqa: N806
        query = S.select(*self._columns, *self._users._columns).join(U, on=(U.id == S.user_id)).where(S.id == "?")
        sql, _params = query.sql()
        if is_postgres(resolve_database(self._db)):
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
        return self._one(self._m.Session.refresh_hash == refresh_hash)

    @_op
    def rotate(self, session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        S, R = self._m.Session, self._m.Retired  # noqa: N806
        now_ms = to_ms(now)
        with self._store.atomic():
            # Compare-and-swap: only the caller whose UPDATE matched wins.
            n = (
                S.update({S.refresh_hash: new_hash, S.last_active_at: now_ms})
                .where((S.id == session_id) & (S.refresh_hash == old_hash) & S.revoked_at.is_null() & (S.expires_at > now_ms))
                .execute()
            )
            if n != 1:
                return False
            # The retired hash takes the session's expiry straight from the row.
            source = S.select(peewee.Value(old_hash), S.id, peewee.Value(now_ms), S.expires_at).where(S.id == session_id)
            R.insert_from(source, [R.token_hash, R.session_id, R.rotated_at, R.expires_at]).as_rowcount().execute()
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
        n = (
            S.update({S.revoked_at: to_ms(now), S.revoke_reason: reason})
            .where((S.id == session_id) & S.revoked_at.is_null())
            .execute()
        )
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
    def purge_expired(self, now: datetime) -> int:
        S, R = self._m.Session, self._m.Retired  # noqa: N806
        now_ms = to_ms(now)
        with self._store.atomic():
            R.delete().where(R.expires_at <= now_ms).execute()
            return int(S.delete().where(S.expires_at <= now_ms).execute())


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
        O = self._m.Otp  # noqa: N806, E741
        row = {
            O.id: challenge.id,
            O.email: challenge.email,
            O.purpose: challenge.purpose,
            O.code_hash: challenge.code_hash,
            O.created_at: to_ms(challenge.created_at),
            O.expires_at: to_ms(challenge.expires_at),
            O.user_id: challenge.user_id,
            O.attempts: int(challenge.attempts),
            O.status: challenge.status,
            O.consumed_at: None if challenge.consumed_at is None else to_ms(challenge.consumed_at),
        }
        replaced = [c for c in self._columns if c.name not in ("email", "purpose")]
        # One upsert on the (email, purpose) unique key: the new challenge
        # replaces the old row in place.
        if self._store.is_mysql:
            query = O.insert(row).on_conflict(preserve=replaced)  # ON DUPLICATE KEY UPDATE
        else:
            query = O.insert(row).on_conflict(conflict_target=[O.email, O.purpose], preserve=replaced)
        query.as_rowcount().execute()

    @_op
    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        O = self._m.Otp  # noqa: N806, E741
        row = self._first(O.select(*self._columns).where((O.email == email) & (O.purpose == purpose)).limit(1))
        return self.from_row(row) if row is not None else None

    @_op
    def mark_sent(self, challenge_id: str) -> bool:
        O = self._m.Otp  # noqa: N806, E741
        n = O.update({O.status: "sent"}).where((O.id == challenge_id) & (O.status == "pending")).execute()
        return bool(n == 1)

    @_op
    def discard(self, challenge_id: str) -> None:
        O = self._m.Otp  # noqa: N806, E741
        O.delete().where(O.id == challenge_id).execute()

    @_op
    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        O = self._m.Otp  # noqa: N806, E741
        query = O.update({O.attempts: O.attempts + 1}).where(
            (O.id == challenge_id)
            & (O.status == "sent")
            & O.consumed_at.is_null()
            & (O.expires_at > to_ms(now))
            & (O.attempts < int(max_attempts))
        )
        if self._store.supports_returning:
            # One statement: the conditional increment returns the new count.
            row = self._first(query.returning(O.attempts))
            return int(row[0]) if row is not None else None
        with self._store.atomic():
            if query.execute() != 1:
                return None
            # Same transaction: our row lock is held, the count is ours.
            return int(self._first(O.select(O.attempts).where(O.id == challenge_id))[0])

    @_op
    def consume(self, challenge_id: str, now: datetime) -> bool:
        O = self._m.Otp  # noqa: N806, E741
        n = (
            O.update({O.consumed_at: to_ms(now)})
            .where((O.id == challenge_id) & O.consumed_at.is_null() & (O.expires_at > to_ms(now)))
            .execute()
        )
        return bool(n == 1)

    @_op
    def purge_expired(self, now: datetime) -> int:
        O = self._m.Otp  # noqa: N806, E741
        return int(O.delete().where((O.expires_at <= to_ms(now)) | O.consumed_at.is_null(False)).execute())


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
        T = self._m.Reset  # noqa: N806
        with self._store.atomic():
            T.delete().where(
                ((T.user_id == token.user_id) & T.consumed_at.is_null()) | (T.token_hash == token.token_hash)
            ).execute()
            T.insert(
                {
                    T.id: token.id,
                    T.user_id: token.user_id,
                    T.token_hash: token.token_hash,
                    T.created_at: to_ms(token.created_at),
                    T.expires_at: to_ms(token.expires_at),
                    T.consumed_at: None if token.consumed_at is None else to_ms(token.consumed_at),
                }
            ).as_rowcount().execute()

    @_op
    def get(self, token_hash: str) -> ResetToken | None:
        T = self._m.Reset  # noqa: N806
        row = self._first(T.select(*self._columns).where(T.token_hash == token_hash).limit(1))
        return self.from_row(row) if row is not None else None

    @_op
    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        T = self._m.Reset  # noqa: N806
        now_ms = to_ms(now)
        query = T.update({T.consumed_at: now_ms}).where(
            (T.token_hash == token_hash) & T.consumed_at.is_null() & (T.expires_at > now_ms)
        )
        if self._store.supports_returning:
            row = self._first(query.returning(*self._columns))
            return self.from_row(row) if row is not None else None
        with self._store.atomic():
            if query.execute() != 1:
                return None
            row = self._first(T.select(*self._columns).where(T.token_hash == token_hash).limit(1))
            return self.from_row(row) if row is not None else None

    @_op
    def delete_for_user(self, user_id: str) -> int:
        T = self._m.Reset  # noqa: N806
        return int(T.delete().where(T.user_id == user_id).execute())

    @_op
    def purge_expired(self, now: datetime) -> int:
        T = self._m.Reset  # noqa: N806
        return int(T.delete().where((T.expires_at <= to_ms(now)) | T.consumed_at.is_null(False)).execute())


# ---------------------------------------------------------------- rate limits


class PeeweeRateLimits(_Repo, RateLimitRepository):
    @_op
    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        C = self._m.Counter  # noqa: N806
        now_ms, exp_ms, amount = to_ms(now), to_ms(expires_at), int(amount)
        expired = C.expires_at <= now_ms
        # Order matters on MySQL (assignments run left to right and see earlier
        # ones): ``count`` is computed first, from the *old* expires_at.
        update = {
            C.count: peewee.Case(None, [(expired, amount)], C.count + amount),
            C.expires_at: peewee.Case(None, [(expired, exp_ms)], C.expires_at),
        }
        row = {C.key: key, C.count: amount, C.expires_at: exp_ms}
        if self._store.is_mysql:
            with self._store.atomic():
                C.insert(row).on_conflict(update=update).as_rowcount().execute()
                # Same transaction: the row stays locked by our upsert.
                count, exp = self._first(C.select(C.count, C.expires_at).where(C.key == key))
        else:
            query = C.insert(row).on_conflict(conflict_target=[C.key], update=update)
            if self._store.supports_returning:
                count, exp = self._first(query.returning(C.count, C.expires_at))
            else:  # SQLite older than 3.35
                with self._store.atomic():
                    query.as_rowcount().execute()
                    count, exp = self._first(C.select(C.count, C.expires_at).where(C.key == key))
        return CounterState(int(count), from_ms(exp))

    @_op
    def get(self, key: str, now: datetime) -> CounterState | None:
        C = self._m.Counter  # noqa: N806
        row = self._first(C.select(C.count, C.expires_at).where((C.key == key) & (C.expires_at > to_ms(now))).limit(1))
        return CounterState(int(row[0]), from_ms(row[1])) if row is not None else None

    @_op
    def reset(self, key: str) -> None:
        C = self._m.Counter  # noqa: N806
        C.delete().where(C.key == key).execute()

    @_op
    def purge_expired(self, now: datetime) -> int:
        C = self._m.Counter  # noqa: N806
        return int(C.delete().where(C.expires_at <= to_ms(now)).execute())


# ---------------------------------------------------------------- audit


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
        new_id = A.insert(
            {
                A.type: AuditEventType(event.type).value,
                A.occurred_at: to_ms(event.occurred_at),
                A.user_id: event.user_id,
                A.email: event.email,
                A.ip_address: event.ip_address,
                A.user_agent: event.user_agent,
                A.session_id: event.session_id,
                A.reason: event.reason,
            }
        ).execute()
        return attrs.evolve(event, id=str(new_id))

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
    def purge_before(self, cutoff: datetime) -> int:
        A = self._m.Audit  # noqa: N806
        return int(A.delete().where(A.occurred_at < to_ms(cutoff)).execute())


# ---------------------------------------------------------------- store


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
    :meth:`close` discards that database. After a lost server connection the
    failing call raises ``StorageUnavailable`` and the dead connection is
    dropped, so the next call reconnects.
    """

    supports_parallel_connections = True

    def __init__(
        self,
        database: peewee.Database | peewee.DatabaseProxy,
        *,
        user_model: type[BaseUserModel] | None = None,
        table_prefix: str = "mm_auth_",
        table_names: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(database, peewee.Database | peewee.DatabaseProxy):
            raise ConfigurationError("PeeweeStore needs a peewee.Database or DatabaseProxy.")
        self.database = database
        self.table_names = resolve_table_names(table_prefix, table_names)
        self.models = build_models(database, self.table_names, user_model)
        self._guard: Any = contextlib.nullcontext()
        self._returning: bool | None = None
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
        utf8mb4). Query-string arguments go to the driver. ``options`` go to
        :class:`PeeweeStore` (``user_model``, ``table_prefix``, ``table_names``).
        """
        database, shared_memory = _database_from_url(url)
        store = cls(database, **options)
        if shared_memory:
            store._guard = threading.RLock()
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

    def atomic(self) -> Any:
        """One transaction (a savepoint inside an app transaction).

        SQLite takes the write lock up front (``BEGIN IMMEDIATE``) so a
        transaction never has to upgrade a read lock (which WAL can refuse).
        """
        if is_sqlite(self.database):
            return self.database.atomic("IMMEDIATE")
        return self.database.atomic()

    def _after_failure(self) -> None:
        """After a lost connection (outside any transaction), drop the dead
        connection so the next call reconnects."""
        db = resolve_database(self.database)
        if db is None or is_sqlite(db) or db.in_transaction() or db.is_closed():
            return
        try:
            usable = db.is_connection_usable()
        except Exception:
            usable = False
        if not usable:
            with contextlib.suppress(Exception):
                db.close()
            with contextlib.suppress(Exception):
                db.dispose()

    # Lifecycle -----------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables and indexes if they do not exist (idempotent)."""
        with self._guard, _TRANSLATE:
            self.database.create_tables(self.models.all(), safe=True)

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


def _database_from_url(url: str) -> tuple[peewee.Database, bool]:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("The database URL must look like scheme://...", variable="AUTH_DATABASE_URL")
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme in ("sqlite", "sqlite3"):
            kwargs = db_url.parse("sqlite" + url[len(scheme) :])
            name = kwargs.pop("database") or ":memory:"
            kwargs.setdefault("timeout", 10)
            if name == ":memory:":
                # One connection shared by every thread (guarded by the store's
                # lock): a private in-memory database exists per connection.
                kwargs.setdefault("check_same_thread", False)
                db = peewee.SqliteDatabase(name, pragmas={"foreign_keys": 1}, thread_safe=False, **kwargs)
                return db, True
            return peewee.SqliteDatabase(name, pragmas=dict(SQLITE_PRAGMAS), **kwargs), False
        if scheme in ("postgres", "postgresql"):
            kwargs = db_url.parse("postgresql" + url[len(scheme) :])
            name = kwargs.pop("database")
            if not name:
                raise ConfigurationError("The PostgreSQL URL names no database.", variable="AUTH_DATABASE_URL")
            return peewee.PostgresqlDatabase(name, **kwargs), False
        if scheme in ("mysql", "mariadb"):
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
    except ImportError as exc:
        raise ConfigurationError(f"The driver for {scheme!r} is not installed.", variable="AUTH_DATABASE_URL") from exc
    raise ConfigurationError(f"Unsupported database URL scheme {scheme!r}.", variable="AUTH_DATABASE_URL")
