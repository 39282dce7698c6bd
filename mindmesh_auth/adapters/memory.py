"""In-memory storage: the reference implementation of the ports.

Thread-safe (one lock around every check-and-set); per-process, so each
worker process has its own users and its own rate limits. For app tests and
development.

Units of work (:meth:`MemoryStore.atomic`) hold the store's lock for the whole
block, so other threads wait for it, and undo its writes when it raises: each
repository saves its state the first time it is written inside a unit
(copy on first write), and a failing block puts the saved states back. Nested
blocks behave like savepoints.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs

from ..core.errors import DuplicateKeyError
from ..core.models import (
    AuditEvent,
    AuditEventType,
    OtpChallenge,
    ResetToken,
    RetiredRefreshToken,
    Session,
    SessionWithUser,
    User,
)
from ..core.ports import (
    AuditRepository,
    CounterState,
    OtpRepository,
    RateLimitRepository,
    ResetTokenRepository,
    SessionRepository,
    Store,
    UserRepository,
)
from ..core.schema import SCHEMA_VERSION, MigrationPlan, SchemaStatus

__all__ = ["MemoryStore"]

T = TypeVar("T")


def _first(items: list[T], limit: int | None) -> list[T]:
    return items if limit is None else items[:limit]


class _Unit:
    """The open units of work of one store: a stack of frames, each mapping a
    repository to the state it had before the frame first wrote to it."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: list[dict[int, tuple[_Repo, Any]]] = []


class _Repo:
    _STATE: tuple[str, ...] = ()

    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        self._lock = lock
        self._unit = unit if unit is not None else _Unit()

    def _write(self) -> None:
        """Called (under the lock) before every change: saves the state for a rollback."""
        frames = self._unit.frames
        if frames and id(self) not in frames[-1]:
            frames[-1][id(self)] = (self, self._snapshot())

    def _snapshot(self) -> Any:
        return {name: copy.copy(getattr(self, name)) for name in self._STATE}

    def _restore(self, state: Any) -> None:
        for name, value in state.items():
            setattr(self, name, value)


class MemoryUsers(_Repo, UserRepository):
    _STATE = ("_by_id", "_by_email")

    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._by_id: dict[str, User] = {}
        self._by_email: dict[str, str] = {}

    def add(self, user: User) -> User:
        with self._lock:
            if user.email in self._by_email or user.id in self._by_id:
                raise DuplicateKeyError()
            self._write()
            self._by_id[user.id] = user
            self._by_email[user.email] = user.id
            return user

    def get(self, user_id: str) -> User | None:
        with self._lock:
            return self._by_id.get(user_id)

    def get_by_email(self, email: str) -> User | None:
        with self._lock:
            uid = self._by_email.get(email)
            return self._by_id.get(uid) if uid is not None else None

    def _update(self, user_id: str, **changes: Any) -> bool:
        with self._lock:
            user = self._by_id.get(user_id)
            if user is None:
                return False
            self._write()
            self._by_id[user_id] = attrs.evolve(user, **changes)
            return True

    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        return self._update(user_id, password_hash=password_hash, updated_at=now)

    def set_blocked(self, user_id: str, blocked: bool, now: datetime) -> bool:
        return self._update(user_id, blocked=blocked, updated_at=now)

    def set_email_verified(self, user_id: str, now: datetime) -> bool:
        return self._update(user_id, email_verified=True, updated_at=now)

    def change_email(self, user_id: str, email: str, now: datetime) -> bool:
        with self._lock:
            user = self._by_id.get(user_id)
            if user is None:
                return False
            owner = self._by_email.get(email)
            if owner is not None and owner != user_id:
                raise DuplicateKeyError()
            self._write()
            del self._by_email[user.email]
            self._by_email[email] = user_id
            self._by_id[user_id] = attrs.evolve(user, email=email, email_verified=True, updated_at=now)
            return True

    def delete(self, user_id: str) -> bool:
        with self._lock:
            user = self._by_id.get(user_id)
            if user is None:
                return False
            self._write()
            del self._by_id[user_id]
            del self._by_email[user.email]
            return True

    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        with self._lock:
            ordered = sorted(self._by_id.values(), key=lambda u: (u.created_at, u.id))
        return ordered[offset : offset + limit]


class MemorySessions(_Repo, SessionRepository):
    _STATE = ("_by_id", "_by_refresh", "_retired")

    def __init__(self, lock: threading.RLock, users: MemoryUsers, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._users = users
        self._by_id: dict[str, Session] = {}
        self._by_refresh: dict[str, str] = {}
        self._retired: dict[str, RetiredRefreshToken] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            if session.id in self._by_id or session.refresh_hash in self._by_refresh:
                raise DuplicateKeyError()
            self._write()
            self._by_id[session.id] = session
            self._by_refresh[session.refresh_hash] = session.id

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._by_id.get(session_id)

    def get_with_user(self, session_id: str) -> SessionWithUser | None:
        with self._lock:
            session = self._by_id.get(session_id)
            user = self._users.get(session.user_id) if session else None
            return SessionWithUser(session, user) if session and user else None

    def get_by_refresh_hash(self, refresh_hash: str) -> Session | None:
        with self._lock:
            sid = self._by_refresh.get(refresh_hash)
            return self._by_id.get(sid) if sid else None

    def rotate(self, session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        with self._lock:
            session = self._by_id.get(session_id)
            if (
                session is None
                or session.refresh_hash != old_hash
                or session.revoked_at is not None
                or now >= session.expires_at
            ):
                return False
            self._write()
            del self._by_refresh[old_hash]
            self._by_refresh[new_hash] = session_id
            self._by_id[session_id] = attrs.evolve(session, refresh_hash=new_hash, last_active_at=now)
            self._retired[old_hash] = RetiredRefreshToken(old_hash, session_id, now, session.expires_at)
            return True

    def get_retired(self, token_hash: str) -> RetiredRefreshToken | None:
        with self._lock:
            return self._retired.get(token_hash)

    def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None or session.revoked_at is not None:
                return False
            self._write()
            self._by_id[session_id] = attrs.evolve(session, revoked_at=now, revoke_reason=reason)
            return True

    def revoke_all_for_user(self, user_id: str, now: datetime, reason: str) -> int:
        with self._lock:
            ids = [s.id for s in self._by_id.values() if s.user_id == user_id and s.revoked_at is None]
            for sid in ids:
                self.revoke(sid, now, reason)
            return len(ids)

    def list_for_user(self, user_id: str, *, now: datetime, include_inactive: bool = False) -> list[Session]:
        with self._lock:
            found = [
                s
                for s in self._by_id.values()
                if s.user_id == user_id and (include_inactive or s.is_active(now))
            ]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        with self._lock:
            dead = _first([s for s in self._by_id.values() if s.expires_at <= now], limit)
            self._write()
            for s in dead:
                del self._by_id[s.id]
                self._by_refresh.pop(s.refresh_hash, None)
            retired = _first([h for h, r in self._retired.items() if r.expires_at <= now], limit)
            for h in retired:
                del self._retired[h]
            return max(len(dead), len(retired))


class MemoryOtps(_Repo, OtpRepository):
    _STATE = ("_by_key",)

    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._by_key: dict[tuple[str, str], OtpChallenge] = {}

    def _find(self, challenge_id: str) -> OtpChallenge | None:
        for c in self._by_key.values():
            if c.id == challenge_id:
                return c
        return None

    def _replace(self, challenge: OtpChallenge) -> None:
        self._write()
        self._by_key[(challenge.email, challenge.purpose)] = challenge

    def put(self, challenge: OtpChallenge) -> None:
        with self._lock:
            self._replace(challenge)

    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        with self._lock:
            return self._by_key.get((email, purpose))

    def mark_sent(self, challenge_id: str) -> bool:
        with self._lock:
            c = self._find(challenge_id)
            if c is None or c.status != "pending":
                return False
            self._replace(attrs.evolve(c, status="sent"))
            return True

    def discard(self, challenge_id: str) -> None:
        with self._lock:
            c = self._find(challenge_id)
            if c is not None:
                self._write()
                del self._by_key[(c.email, c.purpose)]

    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        with self._lock:
            c = self._find(challenge_id)
            if (
                c is None
                or c.status != "sent"
                or c.consumed_at is not None
                or now >= c.expires_at
                or c.attempts >= max_attempts
            ):
                return None
            self._replace(attrs.evolve(c, attempts=c.attempts + 1))
            return c.attempts + 1

    def consume(self, challenge_id: str, now: datetime) -> bool:
        with self._lock:
            c = self._find(challenge_id)
            if c is None or c.consumed_at is not None or now >= c.expires_at:
                return False
            self._replace(attrs.evolve(c, consumed_at=now))
            return True

    def redeem(self, challenge_id: str, now: datetime, max_attempts: int) -> bool:
        with self._lock:
            c = self._find(challenge_id)
            if (
                c is None
                or c.status != "sent"
                or c.consumed_at is not None
                or now >= c.expires_at
                or c.attempts >= max_attempts
            ):
                return False
            self._replace(attrs.evolve(c, attempts=c.attempts + 1, consumed_at=now))
            return True

    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        with self._lock:
            dead = _first([k for k, c in self._by_key.items() if c.expires_at <= now or c.consumed_at is not None], limit)
            self._write()
            for k in dead:
                del self._by_key[k]
            return len(dead)


class MemoryResetTokens(_Repo, ResetTokenRepository):
    _STATE = ("_by_hash",)

    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._by_hash: dict[str, ResetToken] = {}

    def put(self, token: ResetToken) -> None:
        with self._lock:
            self._write()
            for h in [h for h, t in self._by_hash.items() if t.user_id == token.user_id and t.consumed_at is None]:
                del self._by_hash[h]
            self._by_hash[token.token_hash] = token

    def get(self, token_hash: str) -> ResetToken | None:
        with self._lock:
            return self._by_hash.get(token_hash)

    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        with self._lock:
            t = self._by_hash.get(token_hash)
            if t is None or t.consumed_at is not None or now >= t.expires_at:
                return None
            used = attrs.evolve(t, consumed_at=now)
            self._write()
            self._by_hash[token_hash] = used
            return used

    def delete_for_user(self, user_id: str) -> int:
        with self._lock:
            dead = [h for h, t in self._by_hash.items() if t.user_id == user_id]
            self._write()
            for h in dead:
                del self._by_hash[h]
            return len(dead)

    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        with self._lock:
            dead = _first([h for h, t in self._by_hash.items() if t.expires_at <= now or t.consumed_at is not None], limit)
            self._write()
            for h in dead:
                del self._by_hash[h]
            return len(dead)


class MemoryRateLimits(_Repo, RateLimitRepository):
    _STATE = ("_counters",)

    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._counters: dict[str, CounterState] = {}

    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        with self._lock:
            state = self._counters.get(key)
            if state is None or state.expires_at <= now:
                state = CounterState(amount, expires_at)
            else:
                state = CounterState(state.count + amount, state.expires_at)
            self._write()
            self._counters[key] = state
            return state

    def get(self, key: str, now: datetime) -> CounterState | None:
        with self._lock:
            state = self._counters.get(key)
            return state if state is not None and state.expires_at > now else None

    def reset(self, key: str) -> None:
        with self._lock:
            self._write()
            self._counters.pop(key, None)

    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        with self._lock:
            dead = _first([k for k, s in self._counters.items() if s.expires_at <= now], limit)
            self._write()
            for k in dead:
                del self._counters[k]
            return len(dead)


class MemoryAudit(_Repo, AuditRepository):
    def __init__(self, lock: threading.RLock, unit: _Unit | None = None) -> None:
        super().__init__(lock, unit)
        self._events: list[AuditEvent] = []
        self._ids = itertools.count(1)

    def append(self, event: AuditEvent) -> AuditEvent:
        with self._lock:
            stored = attrs.evolve(event, id=str(next(self._ids)))
            self._write()
            self._events.append(stored)
            return stored

    def append_many(self, events: Sequence[AuditEvent]) -> None:
        with self._lock:
            stored = [attrs.evolve(event, id=str(next(self._ids))) for event in events]
            self._write()
            self._events.extend(stored)

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
        with self._lock:
            events = list(self._events)
        out = [
            e
            for e in events
            if (user_id is None or e.user_id == user_id)
            and (email is None or e.email == email)
            and (types is None or e.type in types)
            and (since is None or e.occurred_at >= since)
            and (until is None or e.occurred_at < until)
        ]
        out.sort(key=lambda e: e.occurred_at)  # stable: ties keep append order
        return out[:limit]

    # Append-only between purges, and a purge replaces the list: the list
    # object and its length are enough to undo (no copy of the whole log).
    def _snapshot(self) -> Any:
        return (self._events, len(self._events))

    def _restore(self, state: Any) -> None:
        events, length = state
        self._events = events[:length]

    def purge_before(self, cutoff: datetime, *, limit: int | None = None) -> int:
        with self._lock:
            self._write()
            old = sorted((e for e in self._events if e.occurred_at < cutoff), key=lambda e: e.occurred_at)
            doomed = {id(e) for e in _first(old, limit)}
            self._events = [e for e in self._events if id(e) not in doomed]
            return len(doomed)


class MemoryStore(Store):
    """Every repository in process memory, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        lock = threading.RLock()
        self._lock = lock
        self._unit = unit = _Unit()
        self.users = MemoryUsers(lock, unit)
        self.sessions = MemorySessions(lock, self.users, unit)
        self.otps = MemoryOtps(lock, unit)
        self.reset_tokens = MemoryResetTokens(lock, unit)
        self.rate_limits = MemoryRateLimits(lock, unit)
        self.audit = MemoryAudit(lock, unit)

    def schema_status(self) -> SchemaStatus:
        """Always current: the memory store has no schema to migrate."""
        return SchemaStatus(current=SCHEMA_VERSION, expected=SCHEMA_VERSION, pending=())

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        """Nothing to migrate (no statements)."""
        return MigrationPlan(SCHEMA_VERSION, SCHEMA_VERSION, (), applied=not dry_run)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """All or nothing: the block's writes are undone if it raises (a nested
        block is a savepoint). Other threads wait until the block ends."""
        with self._lock:
            frames = self._unit.frames
            frames.append({})
            try:
                yield
            except BaseException:
                for repo, state in reversed(list(frames.pop().values())):
                    repo._restore(state)
                raise
            else:
                done = frames.pop()
                if frames:  # merge into the enclosing block: its rollback undoes these writes too
                    for key, saved in done.items():
                        frames[-1].setdefault(key, saved)
