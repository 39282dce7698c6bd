"""Deliberately broken variants of the memory store, one per atomic rule of the ports.

Each variant swaps one repository of :class:`MemoryStore` for a subclass whose
method reads under the store's lock, RELEASES the lock, waits a storage round
trip (:data:`ROUND_TRIP`), then writes under the lock: what an adapter that
reads in Python and writes back does. Called one at a time, every variant
behaves exactly as the memory store; only parallel callers see the gap.
Nothing forces an interleaving: the contract's race cases must find it.

``tests/contract/test_broken_variants.py`` proves the contract suite fails each one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import attrs

from mindmesh_auth.adapters.memory import (
    MemoryOtps,
    MemoryRateLimits,
    MemoryResetTokens,
    MemorySessions,
    MemoryStore,
    MemoryUsers,
)
from mindmesh_auth.core.errors import DuplicateKeyError
from mindmesh_auth.core.models import OtpChallenge, ResetToken, RetiredRefreshToken, Session, User
from mindmesh_auth.core.ports import CounterState

ROUND_TRIP = 0.001
"""Seconds between a variant's read and its write: one storage round trip."""


def _round_trip() -> None:
    time.sleep(ROUND_TRIP)


# -- users ---------------------------------------------------------------------------
class CheckThenInsertUsers(MemoryUsers):
    """``users.add``: looks for the email, then inserts."""

    def add(self, user: User) -> User:
        with self._lock:
            taken = user.email in self._by_email or user.id in self._by_id
        if taken:
            raise DuplicateKeyError()
        _round_trip()
        with self._lock:
            self._write()
            self._by_id[user.id] = user
            self._by_email[user.email] = user.id
        return user


class ReadThenDeleteUsers(MemoryUsers):
    """``users.delete``: looks the user up, then deletes it."""

    def delete(self, user_id: str) -> bool:
        with self._lock:
            user = self._by_id.get(user_id)
        if user is None:
            return False
        _round_trip()
        with self._lock:
            self._write()
            self._by_id.pop(user_id, None)
            self._by_email.pop(user.email, None)
        return True


class CheckThenSetEmailUsers(MemoryUsers):
    """``users.change_email``: looks for the address, then moves the user to it."""

    def change_email(self, user_id: str, email: str, now: datetime) -> bool:
        with self._lock:
            user = self._by_id.get(user_id)
            taken = self._by_email.get(email, user_id) != user_id
        if user is None:
            return False
        if taken:
            raise DuplicateKeyError()
        _round_trip()
        with self._lock:
            self._write()
            self._by_email.pop(user.email, None)
            self._by_email[email] = user_id
            self._by_id[user_id] = attrs.evolve(user, email=email, email_verified=True, updated_at=now)
        return True


# -- sessions --------------------------------------------------------------------------
class CheckThenInsertSessions(MemorySessions):
    """``sessions.add``: looks for the id and the refresh hash, then inserts."""

    def add(self, session: Session) -> None:
        with self._lock:
            taken = session.id in self._by_id or session.refresh_hash in self._by_refresh
        if taken:
            raise DuplicateKeyError()
        _round_trip()
        with self._lock:
            self._write()
            self._by_id[session.id] = session
            self._by_refresh[session.refresh_hash] = session.id


class ReadThenWriteRotation(MemorySessions):
    """``sessions.rotate``: reads the session and checks the hash, then swaps it."""

    def rotate(self, session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        with self._lock:
            session = self._by_id.get(session_id)
        if session is None or session.refresh_hash != old_hash or session.revoked_at is not None or now >= session.expires_at:
            return False
        _round_trip()
        with self._lock:
            self._write()
            self._by_refresh.pop(old_hash, None)
            self._by_refresh[new_hash] = session_id
            self._by_id[session_id] = attrs.evolve(session, refresh_hash=new_hash, last_active_at=now)
            self._retired[old_hash] = RetiredRefreshToken(old_hash, session_id, now, session.expires_at)
        return True


class ReadThenWriteRevocation(MemorySessions):
    """``sessions.revoke``: reads the session and checks it is live, then revokes it."""

    def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        with self._lock:
            session = self._by_id.get(session_id)
        if session is None or session.revoked_at is not None:
            return False
        _round_trip()
        with self._lock:
            self._write()
            self._by_id[session_id] = attrs.evolve(session, revoked_at=now, revoke_reason=reason)
        return True


# -- one-time codes -------------------------------------------------------------------------
class TwoStepPutOtps(MemoryOtps):
    """``otps.put``: deletes the (email, purpose) challenge, then inserts the new one,
    in a table that (like one without the unique index) keys rows by challenge id."""

    @staticmethod
    def _key(challenge: OtpChallenge) -> tuple[str, str]:
        return (challenge.email, f"{challenge.purpose}\x00{challenge.id}")

    def _replace(self, challenge: OtpChallenge) -> None:
        self._write()
        self._by_key[self._key(challenge)] = challenge

    def _matching(self, email: str, purpose: str) -> list[tuple[str, str]]:
        return [k for k, c in self._by_key.items() if (c.email, c.purpose) == (email, purpose)]

    def put(self, challenge: OtpChallenge) -> None:
        with self._lock:
            self._write()
            for key in self._matching(challenge.email, challenge.purpose):
                del self._by_key[key]
        _round_trip()
        with self._lock:
            self._replace(challenge)

    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        with self._lock:
            keys = self._matching(email, purpose)
            return self._by_key[keys[-1]] if keys else None

    def discard(self, challenge_id: str) -> None:
        with self._lock:
            c = self._find(challenge_id)
            if c is not None:
                self._write()
                del self._by_key[self._key(c)]


class _ReadThenWriteOtps(MemoryOtps):
    def _read_then_write(self, challenge_id: str, live: Callable[[OtpChallenge], bool], change: dict[str, object]) -> bool:
        with self._lock:
            c = self._find(challenge_id)
        if c is None or not live(c):
            return False
        _round_trip()
        with self._lock:
            self._replace(attrs.evolve(c, **change))
        return True


class ReadThenWriteMarkSent(_ReadThenWriteOtps):
    """``otps.mark_sent``: reads the status, then writes ``sent``."""

    def mark_sent(self, challenge_id: str) -> bool:
        return self._read_then_write(challenge_id, lambda c: c.status == "pending", {"status": "sent"})


def _attemptable(now: datetime, max_attempts: int) -> Callable[[OtpChallenge], bool]:
    return lambda c: c.status == "sent" and c.consumed_at is None and now < c.expires_at and c.attempts < max_attempts


class ReadThenWriteAttempts(MemoryOtps):
    """``otps.register_attempt``: reads the count, then writes it plus one."""

    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        with self._lock:
            c = self._find(challenge_id)
        if c is None or not _attemptable(now, max_attempts)(c):
            return None
        _round_trip()
        with self._lock:
            self._replace(attrs.evolve(c, attempts=c.attempts + 1))
        return c.attempts + 1


class ReadThenWriteConsume(_ReadThenWriteOtps):
    """``otps.consume``: reads ``consumed_at``, then sets it."""

    def consume(self, challenge_id: str, now: datetime) -> bool:
        return self._read_then_write(challenge_id, lambda c: c.consumed_at is None and now < c.expires_at, {"consumed_at": now})


class ReadThenWriteRedeem(MemoryOtps):
    """``otps.redeem``: reads the challenge and checks it, then counts and consumes."""

    def redeem(self, challenge_id: str, now: datetime, max_attempts: int) -> bool:
        with self._lock:
            c = self._find(challenge_id)
        if c is None or not _attemptable(now, max_attempts)(c):
            return False
        _round_trip()
        with self._lock:
            self._replace(attrs.evolve(c, attempts=c.attempts + 1, consumed_at=now))
        return True


# -- reset tokens -------------------------------------------------------------------------
class TwoStepPutResetTokens(MemoryResetTokens):
    """``reset_tokens.put``: deletes the user's unconsumed tokens, then inserts."""

    def put(self, token: ResetToken) -> None:
        with self._lock:
            self._write()
            for h in [h for h, t in self._by_hash.items() if t.user_id == token.user_id and t.consumed_at is None]:
                del self._by_hash[h]
        _round_trip()
        with self._lock:
            self._write()
            self._by_hash[token.token_hash] = token


class ReadThenWriteResetConsume(MemoryResetTokens):
    """``reset_tokens.consume``: reads the token and checks it, then marks it used."""

    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        with self._lock:
            t = self._by_hash.get(token_hash)
        if t is None or t.consumed_at is not None or now >= t.expires_at:
            return None
        _round_trip()
        used = attrs.evolve(t, consumed_at=now)
        with self._lock:
            self._write()
            self._by_hash[token_hash] = used
        return used


# -- rate limits --------------------------------------------------------------------------
class GetThenSetRateLimits(MemoryRateLimits):
    """``rate_limits.hit``: gets the counter, then sets it to the new count."""

    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        with self._lock:
            state = self._counters.get(key)
        if state is None or state.expires_at <= now:
            state = CounterState(amount, expires_at)
        else:
            state = CounterState(state.count + amount, state.expires_at)
        _round_trip()
        with self._lock:
            self._write()
            self._counters[key] = state
        return state


# -- the variants ---------------------------------------------------------------------------
def _with(**repos: Callable[[MemoryStore, threading.RLock], object]) -> Callable[[], MemoryStore]:
    def build() -> MemoryStore:
        store = MemoryStore()
        for name, make in repos.items():
            setattr(store, name, make(store, store._lock))
        if "users" in repos:
            store.sessions._users = store.users  # type: ignore[assignment]
        return store

    return build


VARIANTS: dict[str, Callable[[], MemoryStore]] = {
    "users.add": _with(users=lambda s, lock: CheckThenInsertUsers(lock, s._unit)),
    "users.delete": _with(users=lambda s, lock: ReadThenDeleteUsers(lock, s._unit)),
    "users.change_email": _with(users=lambda s, lock: CheckThenSetEmailUsers(lock, s._unit)),
    "sessions.add": _with(sessions=lambda s, lock: CheckThenInsertSessions(lock, s.users, s._unit)),
    "sessions.rotate": _with(sessions=lambda s, lock: ReadThenWriteRotation(lock, s.users, s._unit)),
    "sessions.revoke": _with(sessions=lambda s, lock: ReadThenWriteRevocation(lock, s.users, s._unit)),
    "otps.put": _with(otps=lambda s, lock: TwoStepPutOtps(lock, s._unit)),
    "otps.mark_sent": _with(otps=lambda s, lock: ReadThenWriteMarkSent(lock, s._unit)),
    "otps.register_attempt": _with(otps=lambda s, lock: ReadThenWriteAttempts(lock, s._unit)),
    "otps.consume": _with(otps=lambda s, lock: ReadThenWriteConsume(lock, s._unit)),
    "otps.redeem": _with(otps=lambda s, lock: ReadThenWriteRedeem(lock, s._unit)),
    "reset_tokens.put": _with(reset_tokens=lambda s, lock: TwoStepPutResetTokens(lock, s._unit)),
    "reset_tokens.consume": _with(reset_tokens=lambda s, lock: ReadThenWriteResetConsume(lock, s._unit)),
    "rate_limits.hit": _with(rate_limits=lambda s, lock: GetThenSetRateLimits(lock, s._unit)),
}
"""Rule (``repository.method``) -> a factory of a fresh memory store broken on that rule."""
