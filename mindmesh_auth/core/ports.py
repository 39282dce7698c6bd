"""Ports: what the core needs from storage, mail, time and randomness.

Storage rules every repository method keeps (the shared contract suite,
``mindmesh_auth.testing.StoreContract``, proves them for every adapter):

* **Atomic** (said per method): the method's effect is decided and made in one
  indivisible step against every other caller, on any connection or process:
  one conditional statement, one transaction with the row locks it needs, or
  one single-document operation. Never read, decide in Python, then write.
  Methods not marked atomic are single writes or reads with no race to lose.
* **Time is the caller's.** Expiry is decided only by the ``now`` passed in
  (``expires_at <= now`` is expired); a backend's own clock or native TTL may
  only clean up rows the port already treats as expired, never decide.
* **Datetimes** crossing a port are timezone-aware UTC with millisecond
  precision; adapters return them the same way.
* **Values are valid.** The core validates and canonicalizes what it passes
  (emails, ids, hashes, limits); an adapter need not check them again, only
  store and compare them exactly (binary, case-sensitive).
* **Fresh keys.** The ids, refresh hashes and token hashes the core passes to
  ``add``, ``put`` and ``rotate`` are new random values; what a store does with
  one that collides with another row (refuse it with ``DuplicateKeyError``,
  or not check) is left open, and the contract does not test it. Limits and
  offsets are never negative.
* **Units of work**: see :meth:`Store.atomic`. A method called inside a unit
  takes part in it; outside one it commits alone.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import attrs

from .models import (
    AuditEvent,
    AuditEventType,
    OtpChallenge,
    ResetToken,
    RetiredRefreshToken,
    Session,
    SessionWithUser,
    User,
)
from .schema import SCHEMA_VERSION, MigrationPlan, SchemaStatus

__all__ = [
    "AuditRepository",
    "Clock",
    "CounterState",
    "Mailer",
    "OtpRepository",
    "OutgoingMessage",
    "Randomness",
    "RateLimitRepository",
    "ResetTokenRepository",
    "SessionRepository",
    "Store",
    "UserRepository",
]


class Clock(abc.ABC):
    """The source of the current time."""

    @abc.abstractmethod
    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""


class Randomness(abc.ABC):
    """The source of secrets and identifiers. Production uses ``secrets``."""

    @abc.abstractmethod
    def token_bytes(self, n: int) -> bytes:
        """Return ``n`` bytes from a CSPRNG."""

    @abc.abstractmethod
    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)`` from a CSPRNG."""


class UserRepository(abc.ABC):
    """Users, keyed by id and by canonical email (unique, compared in binary)."""

    @abc.abstractmethod
    def add(self, user: User) -> User:
        """Insert ``user``. Atomic against every other ``add``: of parallel adds of one
        email exactly one succeeds; the others raise ``DuplicateKeyError`` and store nothing.

        Returns the stored user (``profile`` holding the extras the backend kept).
        Profile values of type ``str``, ``int``, ``float``, ``bool`` and ``None``
        come back equal (a profile field the backend has but the user was not
        given may come back as ``None``); other types are the backend's choice.
        Raises ``ValidationError`` for profile keys the backend cannot store.
        """

    @abc.abstractmethod
    def get(self, user_id: str) -> User | None:
        """The user with this id, or ``None``."""

    @abc.abstractmethod
    def get_by_email(self, email: str) -> User | None:
        """The user whose canonical email equals ``email`` exactly (binary), or ``None``."""

    @abc.abstractmethod
    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        """Replace the password hash. Returns whether the user exists."""

    @abc.abstractmethod
    def set_blocked(self, user_id: str, blocked: bool, now: datetime) -> bool:
        """Set the blocked flag. Idempotent. Returns whether the user exists."""

    @abc.abstractmethod
    def set_email_verified(self, user_id: str, now: datetime) -> bool:
        """Mark the email verified. Idempotent. Returns whether the user exists."""

    @abc.abstractmethod
    def change_email(self, user_id: str, email: str, now: datetime) -> bool:
        """Give the user the canonical ``email``, marked verified (``updated_at = now``).
        Returns whether the user exists. Atomic against :meth:`add` and other
        changes: an address another user holds raises ``DuplicateKeyError`` and
        changes nothing; of parallel changes of two users to one address exactly
        one succeeds. The old address is free afterwards."""

    @abc.abstractmethod
    def delete(self, user_id: str) -> bool:
        """Delete the user. Atomic: ``True`` only for the call that deleted it; an unknown
        (or already deleted) id gives ``False``. Afterwards :meth:`get`,
        :meth:`get_by_email` and ``sessions.get_with_user`` find nothing and the
        address can be added again. The user's sessions, codes and reset tokens
        are left to the caller (the core revokes and discards them in the same unit)."""

    @abc.abstractmethod
    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        """At most ``limit`` users after skipping ``offset``, ordered by ``created_at`` then ``id``."""


class SessionRepository(abc.ABC):
    """Sessions and the retired refresh-token hashes used for reuse detection."""

    @abc.abstractmethod
    def add(self, session: Session) -> None:
        """Insert a new session. Atomic: ``id`` and ``refresh_hash`` are each unique;
        a duplicate of either raises ``DuplicateKeyError`` and stores nothing."""

    @abc.abstractmethod
    def get(self, session_id: str) -> Session | None:
        """The session with this id, or ``None``."""

    @abc.abstractmethod
    def get_with_user(self, session_id: str) -> SessionWithUser | None:
        """The session and its user, or ``None`` if either is missing: the token check's
        one storage call on every request. SQL does it as one join and MongoDB as one
        ``$lookup``; a key-value store may make two reads (a blocked flag or a
        revocation committed before the call must be seen)."""

    @abc.abstractmethod
    def get_by_refresh_hash(self, refresh_hash: str) -> Session | None:
        """The session whose *current* refresh hash equals ``refresh_hash``."""

    @abc.abstractmethod
    def rotate(
        self, session_id: str, old_hash: str, new_hash: str, now: datetime
    ) -> bool:
        """Compare-and-swap the refresh hash. Atomic.

        Succeeds (returns ``True``) for exactly one caller, and only if the
        session's current hash is ``old_hash``, it is not revoked and
        ``now < expires_at``. On success, in the same transaction: the hash
        becomes ``new_hash``, ``last_active_at`` becomes ``now`` and
        ``old_hash`` is recorded as a :class:`RetiredRefreshToken`.
        """

    @abc.abstractmethod
    def get_retired(self, token_hash: str) -> RetiredRefreshToken | None:
        """The retired refresh token with this hash, or ``None``."""

    @abc.abstractmethod
    def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        """Revoke one session (``revoked_at = now``, ``revoke_reason = reason``). Atomic
        and idempotent: ``True`` only for the call that revoked it; an already revoked
        or unknown session is left as it is and gives ``False``."""

    @abc.abstractmethod
    def revoke_all_for_user(self, user_id: str, now: datetime, reason: str) -> int:
        """Revoke every *unrevoked* session of the user (``revoked_at`` is ``None``),
        expired or not; returns how many it revoked. Already revoked ones keep their
        time and reason. Atomic: one conditional update (a session is revoked, and
        counted, by one caller only)."""

    @abc.abstractmethod
    def list_for_user(self, user_id: str, *, now: datetime, include_inactive: bool = False) -> list[Session]:
        """A user's sessions, newest first (``created_at`` then ``id``, descending);
        only *active* ones (unrevoked and ``now < expires_at``) unless ``include_inactive``."""

    @abc.abstractmethod
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        """Delete sessions (and their retired hashes) whose ``expires_at <= now``.

        With ``limit``, at most that many sessions and at most that many retired
        hashes (``expires_at <= now``) go: a bounded batch, short locks on big
        tables. Returns the larger of the two counts, so a caller that repeats
        while it gets ``limit`` drains both."""


class OtpRepository(abc.ABC):
    """One-time-code challenges; at most one per (email, purpose).

    The core puts a challenge only once its mail was accepted (or its outcome is
    unknown), already ``sent``: a rejected mail never replaces the code the user
    holds. ``pending``, :meth:`mark_sent` and :meth:`discard` stay part of the
    contract for stores written against it and for other callers."""

    @abc.abstractmethod
    def put(self, challenge: OtpChallenge) -> None:
        """Store ``challenge``, replacing any challenge for the same (email, purpose).
        Atomic: after parallel puts for one (email, purpose) exactly one of their
        challenges remains, and the replaced ones are dead to every other method."""

    @abc.abstractmethod
    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        """The current challenge for (email, purpose), or ``None``."""

    @abc.abstractmethod
    def mark_sent(self, challenge_id: str) -> bool:
        """Flip ``pending`` to ``sent``. Atomic: ``True`` for exactly one caller, only
        while the challenge with this id exists and is ``pending``; ``False`` if it was
        superseded or discarded meanwhile, or is already ``sent``."""

    @abc.abstractmethod
    def discard(self, challenge_id: str) -> None:
        """Delete the challenge with this id, if it still exists (a failed delivery leaves
        no usable code); never a newer challenge that replaced it."""

    @abc.abstractmethod
    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        """Count one verification attempt. Atomic.

        Increments ``attempts`` only if the challenge with this id exists, is
        ``sent``, unconsumed, ``now < expires_at`` and ``attempts < max_attempts``;
        returns the new count, or ``None`` when the challenge is dead.
        """

    @abc.abstractmethod
    def consume(self, challenge_id: str, now: datetime) -> bool:
        """Mark consumed. Atomic: ``True`` for exactly one caller, only if unconsumed and unexpired."""

    def redeem(self, challenge_id: str, now: datetime, max_attempts: int) -> bool:
        """Count one attempt and consume, as one step: ``True`` for exactly one caller,
        only if the challenge with this id exists, is ``sent``, unconsumed,
        ``now < expires_at`` and ``attempts < max_attempts`` (then ``attempts`` is
        one more and ``consumed_at`` is ``now``); ``False`` otherwise.

        The core calls it, inside a unit of work, for a code it has already found
        right. The default is :meth:`register_attempt` then :meth:`consume`
        (correct in a unit; an attempt may stay counted on a challenge that a
        parallel caller consumed in between); SQL and document stores do it in
        one conditional update."""
        return self.register_attempt(challenge_id, now, max_attempts) is not None and self.consume(challenge_id, now)

    @abc.abstractmethod
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        """Delete challenges whose ``expires_at <= now`` or that are consumed
        (at most ``limit`` of them when given); returns how many."""


class ResetTokenRepository(abc.ABC):
    """Password reset tokens; a newer token for a user supersedes older ones."""

    @abc.abstractmethod
    def put(self, token: ResetToken) -> None:
        """Store ``token`` and delete the user's other unconsumed tokens (a stored token
        with the same ``token_hash`` is replaced). Atomic: after parallel puts for one
        user exactly one of their tokens remains unconsumed. SQL locks the user's row
        for it; MongoDB inserts first, then deletes the older ones and yields to a newer one."""

    @abc.abstractmethod
    def get(self, token_hash: str) -> ResetToken | None:
        """The token with this hash (consumed or not), or ``None``."""

    @abc.abstractmethod
    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        """Consume the token with this hash. Atomic: returns it for exactly one
        caller, only if unconsumed and ``now < expires_at``; else ``None``."""

    @abc.abstractmethod
    def delete_for_user(self, user_id: str) -> int:
        """Delete every reset token of the user; returns how many."""

    @abc.abstractmethod
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        """Delete tokens whose ``expires_at <= now`` or that are consumed
        (at most ``limit`` of them when given); returns how many."""


@attrs.frozen
class CounterState:
    count: int
    expires_at: datetime


class RateLimitRepository(abc.ABC):
    """Counters for rate limits, keyed by an opaque string."""

    @abc.abstractmethod
    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        """Add ``amount`` to the counter ``key`` and return its new state. Atomic.

        If the counter does not exist or has expired (``expires_at <= now``),
        it restarts at ``amount`` with the given ``expires_at``. Otherwise the
        count grows and its expiry is left unchanged. ``amount`` may be zero (a
        read of a live counter) or negative (a refund); the core passes
        ``expires_at=now`` with those, so a counter they restart is already expired.
        """

    def hit_many(self, hits: Sequence[tuple[str, datetime]], now: datetime) -> list[CounterState]:
        """:meth:`hit` (``amount=1``) on each ``(key, expires_at)`` in the given order;
        their new states, in the same order. Keys are distinct. Each counter is
        atomic on its own (as with separate hits, not across them).

        The core counts one event in several counters at once with it, so a store
        can do it in one round trip. The default hits them one at a time."""
        return [self.hit(key, now, expires_at) for key, expires_at in hits]

    @abc.abstractmethod
    def reset(self, key: str) -> None:
        """Delete the counter ``key``."""

    def reset_many(self, keys: Sequence[str]) -> None:
        """:meth:`reset` each of ``keys`` (a store may do it in one statement). The default
        resets them one at a time."""
        for key in keys:
            self.reset(key)

    @abc.abstractmethod
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        """Delete counters whose ``expires_at <= now`` (at most ``limit`` when given); returns how many."""


class AuditRepository(abc.ABC):
    """The append-only audit log."""

    @abc.abstractmethod
    def append(self, event: AuditEvent) -> AuditEvent:
        """Store the event; returns it with its store-assigned ``id`` (unique among the
        stored events; the id of a purged event may be given again, as SQLite does)."""

    def append_many(self, events: Sequence[AuditEvent]) -> None:
        """Store several events, in the given order, as :meth:`append` would one by one.

        The core calls it once at the end of a unit of work with the unit's rows,
        so a store can write them in one statement. The default appends them
        one at a time (correct, inside the unit, for every store)."""
        for event in events:
            self.append(event)

    @abc.abstractmethod
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
        """Matching events ordered by ``occurred_at`` (oldest first), events with the
        same time in append order; at most ``limit``. Filters combine with AND.

        ``since`` is inclusive, ``until`` exclusive.
        """

    @abc.abstractmethod
    def purge_before(self, cutoff: datetime, *, limit: int | None = None) -> int:
        """Delete events with ``occurred_at < cutoff`` (at most ``limit``, oldest first, when given);
        returns how many."""


class Store(abc.ABC):
    """A storage backend: the six repositories over one database."""

    users: UserRepository
    sessions: SessionRepository
    otps: OtpRepository
    reset_tokens: ResetTokenRepository
    rate_limits: RateLimitRepository
    audit: AuditRepository

    def atomic(self) -> AbstractContextManager[None]:
        """A unit of work: the repository calls made inside the block take effect
        together or not at all.

        On a normal exit every write of the block is kept; when the block raises,
        none of them is (the exception propagates). Units nest: an inner block is
        part of the outer one. A unit holds no lock on anything outside the store
        and never spans a network call other than the store's own (the core never
        mails inside one).

        A backend with transactions runs the block as one transaction and raises
        ``StorageConflict`` for a deadlock or serialization failure (the core
        retries the whole unit a bounded number of times). A backend without them
        undoes the block's writes itself (compensation), except the writes that
        are safe or meant to stay: revocations, rate-limit hits, counted attempts
        (``register_attempt``) and purges. The default runs the block with no
        unit at all: every write commits alone. Every shipped store overrides it,
        and the contract suite's fault cases fail for a store that does not.
        """
        return contextlib.nullcontext()

    def create_schema(self) -> None:  # noqa: B027 - optional hook
        """Create tables, collections or indexes. Idempotent. Default: nothing to do."""

    def schema_status(self) -> SchemaStatus:
        """The schema version recorded in the database and what :meth:`migrate`
        would do (``pending``, in words; empty when up to date). Reads only.
        Default: a store with no schema of its own is always current."""
        return SchemaStatus(current=SCHEMA_VERSION, expected=SCHEMA_VERSION, pending=())

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        """Bring the database to :data:`~mindmesh_auth.core.schema.SCHEMA_VERSION`
        (and, on SQL, add the columns of the app's user model that the table
        lacks); ``dry_run=True`` returns the statements and changes nothing.
        Idempotent: a second run does nothing. Default: nothing to do."""
        return MigrationPlan(SCHEMA_VERSION, SCHEMA_VERSION, (), applied=not dry_run)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing to do."""


@attrs.frozen
class OutgoingMessage:
    """A rendered e-mail. ``kind`` names the template (``otp``, ``password_reset``...)."""

    to: str
    subject: str
    text: str = attrs.field(repr=False)
    html: str | None = attrs.field(repr=False, default=None)
    kind: str = "notice"
    data: dict[str, Any] = attrs.field(repr=False, factory=dict)


class Mailer(abc.ABC):
    """Delivers messages. Raises ``DeliveryFailed`` (and nothing else) on failure."""

    @abc.abstractmethod
    def send(self, message: OutgoingMessage) -> None:
        """Deliver ``message`` or raise ``DeliveryFailed``."""
