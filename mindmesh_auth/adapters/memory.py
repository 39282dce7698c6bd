"""In-memory storage: the reference implementation of the ports.

Thread-safe (one lock around every check-and-set); per-process, so each
worker process has its own users and its own rate limits. For app tests and
development.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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

__all__ = ["MemoryStore"]


class _Repo:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock


class MemoryUsers(_Repo, UserRepository):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self._by_id: dict[str, User] = {}
        self._by_email: dict[str, str] = {}

    def add(self, user: User) -> User:
        with self._lock:
            if user.email in self._by_email or user.id in self._by_id:
                raise DuplicateKeyError()
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
            self._by_id[user_id] = attrs.evolve(user, **changes)
            return True

    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        return self._update(user_id, password_hash=password_hash, updated_at=now)

    def set_blocked(self, user_id: str, blocked: bool, now: datetime) -> bool:
        return self._update(user_id, blocked=blocked, updated_at=now)

    def set_email_verified(self, user_id: str, now: datetime) -> bool:
        return self._update(user_id, email_verified=True, updated_at=now)

    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        with self._lock:
            ordered = sorted(self._by_id.values(), key=lambda u: (u.created_at, u.id))
        return ordered[offset : offset + limit]


class MemorySessions(_Repo, SessionRepository):
    def __init__(self, lock: threading.RLock, users: MemoryUsers) -> None:
        super().__init__(lock)
        self._users = users
        self._by_id: dict[str, Session] = {}
        self._by_refresh: dict[str, str] = {}
        self._retired: dict[str, RetiredRefreshToken] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            if session.id in self._by_id or session.refresh_hash in self._by_refresh:
                raise DuplicateKeyError()
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

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            dead = [s for s in self._by_id.values() if s.expires_at <= now]
            for s in dead:
                del self._by_id[s.id]
                self._by_refresh.pop(s.refresh_hash, None)
            for h in [h for h, r in self._retired.items() if r.expires_at <= now]:
                del self._retired[h]
            return len(dead)


class MemoryOtps(_Repo, OtpRepository):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self._by_key: dict[tuple[str, str], OtpChallenge] = {}

    def _find(self, challenge_id: str) -> OtpChallenge | None:
        for c in self._by_key.values():
            if c.id == challenge_id:
                return c
        return None

    def _replace(self, challenge: OtpChallenge) -> None:
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

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            dead = [k for k, c in self._by_key.items() if c.expires_at <= now or c.consumed_at is not None]
            for k in dead:
                del self._by_key[k]
            return len(dead)


class MemoryResetTokens(_Repo, ResetTokenRepository):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self._by_hash: dict[str, ResetToken] = {}

    def put(self, token: ResetToken) -> None:
        with self._lock:
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
            self._by_hash[token_hash] = used
            return used

    def delete_for_user(self, user_id: str) -> int:
        with self._lock:
            dead = [h for h, t in self._by_hash.items() if t.user_id == user_id]
            for h in dead:
                del self._by_hash[h]
            return len(dead)

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            dead = [h for h, t in self._by_hash.items() if t.expires_at <= now or t.consumed_at is not None]
            for h in dead:
                del self._by_hash[h]
            return len(dead)


class MemoryRateLimits(_Repo, RateLimitRepository):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self._counters: dict[str, CounterState] = {}

    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        with self._lock:
            state = self._counters.get(key)
            if state is None or state.expires_at <= now:
                state = CounterState(amount, expires_at)
            else:
                state = CounterState(state.count + amount, state.expires_at)
            self._counters[key] = state
            return state

    def get(self, key: str, now: datetime) -> CounterState | None:
        with self._lock:
            state = self._counters.get(key)
            return state if state is not None and state.expires_at > now else None

    def reset(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            dead = [k for k, s in self._counters.items() if s.expires_at <= now]
            for k in dead:
                del self._counters[k]
            return len(dead)


class MemoryAudit(_Repo, AuditRepository):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self._events: list[AuditEvent] = []
        self._ids = itertools.count(1)

    def append(self, event: AuditEvent) -> AuditEvent:
        with self._lock:
            stored = attrs.evolve(event, id=str(next(self._ids)))
            self._events.append(stored)
            return stored

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

    def purge_before(self, cutoff: datetime) -> int:
        with self._lock:
            before = len(self._events)
            self._events = [e for e in self._events if e.occurred_at >= cutoff]
            return before - len(self._events)


class MemoryStore(Store):
    """Every repository in process memory, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        lock = threading.RLock()
        self.users = MemoryUsers(lock)
        self.sessions = MemorySessions(lock, self.users)
        self.otps = MemoryOtps(lock)
        self.reset_tokens = MemoryResetTokens(lock)
        self.rate_limits = MemoryRateLimits(lock)
        self.audit = MemoryAudit(lock)
