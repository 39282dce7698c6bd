"""A model-based check of a storage backend against the reference store.

:class:`ModelContract` holds one test, ``test_model_based_check``. A Hypothesis
state machine drives random sequences of port calls against two stores at once,
the backend under test (the ``store`` fixture) and a
:class:`~mindmesh_auth.adapters.memory.MemoryStore`, and compares every answer:
return values (strictly: same types, every field, aware UTC datetimes),
exceptions (same class, e.g. ``DuplicateKeyError`` from both) and the state read
back through the ports' read methods.

Rules (see :data:`RULES`): moves of the clock; ``users`` add (duplicate emails
and ids included), set_password_hash, set_blocked, set_email_verified, change_email, delete, list;
``sessions`` add (duplicate ids and refresh hashes included), rotate (with the
current or a wrong old hash), revoke, revoke_all_for_user, list_for_user (both
modes), purge_expired (with and without a limit); ``otps`` put, mark_sent,
discard, register_attempt, consume, redeem, purge_expired; ``reset_tokens``
put, consume, delete_for_user, purge_expired; ``rate_limits`` hit, reset,
purge_expired; ``audit`` append, append_many, query (every filter), purge_before;
and one rule that reads everything back. Every write then reads back through
the ports what it may have changed (``users.get``/``get_by_email``,
``sessions.get``/``get_with_user``/``get_by_refresh_hash``/``get_retired``,
``otps.get``, ``reset_tokens.get``, ``audit.query``), and so does the end of
every example. Counters have no read method (``RateLimitRepository.get`` is
not called): they show through ``hit``'s returned state and purge counts.

Design
======

One ``store`` serves the whole test, while Hypothesis runs many examples (and
replays them while it shrinks a failure). Every example starts from a state
equivalent to an empty store:

* **Drained repositories.** Each example first purges everything from the
  backend with a far-future ``now`` (sessions and their retired hashes, codes,
  reset tokens, counters, audit events), then checks that a second purge finds
  nothing and that the audit log reads back empty. Purge counts and unfiltered
  audit queries are then exact.
* **Namespaced users.** Users cannot be deleted through the port, so every
  identifier, email, hash and key an example makes starts with the example's
  own namespace (``m<n>.``), and the reference is a fresh ``MemoryStore`` per
  example. ``users.list`` pages over every user the backend holds: the check
  reads the backend's whole list, compares this namespace's users in it with
  the reference's list (the port's order: ``created_at``, then ``id`` in
  code-point order as in the reference), and checks that the page asked for is
  that window of the whole list.

Time: every ``now`` is passed explicitly, so the clock is the machine's own
``now``: UTC, millisecond precision, starting in 2099 (a MongoDB TTL index runs
on the wall clock) and only moving forward, by random steps (0 ms to 3 days) or
to exactly one millisecond before, at or after a deadline the machine created.

What legitimately differs, and how the check handles it:

* Audit ids are assigned by each store. The check learns a one-to-one map
  between the reference's ids and the backend's (from ``append``'s return, or
  positionally the first time a query shows an event ``append_many`` wrote) and
  compares events through it: ids are ``str``, distinct among the events that
  exist, and stable. The port promises nothing about their order, nor that a
  deleted event's id is never given again (SQLite's is: rowid ``max + 1``).
* ``list_for_user`` is "newest first": sessions created at the same instant may
  come in any order (compared as a set within each instant).
* ``purge_expired(limit=...)`` does not say *which* expired rows go. When the
  reference's count shows the limit was reached (more rows may have been
  eligible), both stores purge again without a limit at the same ``now`` (the
  counts of both passes compared): the states are equal again, and a row
  deleted that should not have been still shows in the reads that follow.
* ``audit.purge_before(limit=...)`` deletes the oldest first; among events of
  the same instant the port names no order, so when the limit splits such a
  group both stores then delete the rest of that group (counts compared).

``audit.query`` is compared exactly (the port's order: ``occurred_at``, then
append order); some appends are dated a little before ``now`` to exercise it.

The inputs stay where the port defines the outcome, as the core's do: a
challenge id, a reset-token id and a rotated-in refresh hash are always new; a
new session's refresh hash is new or another session's live one (a duplicate),
never a rotated-away one; a purge's limit is ``None`` or positive. Emails, user ids,
session ids, reset-token hashes and counter keys come from small pools (with
case and accent variants), so duplicates, replacements and supersessions
happen often.

Running it
==========

``model_examples`` examples of ``model_steps`` steps (class attributes a binding
may change); ``MINDMESH_MODEL_EXAMPLES`` and ``MINDMESH_MODEL_STEPS`` override
them. Hypothesis deadlines are off (storage timing varies) and its example
database is not used (``database=None``: nothing is written under the working
directory). A failure prints the shrunk sequence of calls and a
``@reproduce_failure(version, blob)`` line: set ``MINDMESH_MODEL_REPRODUCE`` to
that line (or to its two arguments, ``"6.100.0 AXic..."``) to replay exactly
that example. The check suppresses no health check; when ``CI`` is set,
Hypothesis's own ``ci`` profile applies (derandomized: the same examples on every
run until the machine changes; ``too_slow`` suppressed).

Hypothesis is imported when the test runs, not with this module; without it the
test is skipped, or fails when ``CI`` is set.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import attrs
import pytest

from ...adapters.memory import MemoryStore
from ...core.errors import AuthError
from ...core.models import AuditEvent, AuditEventType, OtpChallenge, ResetToken, Session, User
from ...core.ports import Store

__all__ = ["ModelContract", "ModelMismatch"]

UTC = timezone.utc
MS = timedelta(milliseconds=1)
T0 = datetime(2099, 1, 1, 8, 0, 0, 0, tzinfo=UTC)
FAR = datetime(2999, 1, 1, tzinfo=UTC)  # beyond every time an example reaches: the drain purges all
ALL = 1_000_000  # "every row" for list and query limits

# -- the pools (labels; the machine prefixes them with the example's namespace) -------------
USERS = ("uA", "ua", "u_b", "u-b")  # case and punctuation: code-point order differs from linguistic order
NO_USER = "u?"
LOCALS = ("ada", "Ada", "élise", "elise", "bob")  # emails: case and accent variants, compared in binary
PASSWORDS = ("mm1$hash-one", "mm1$hash-two")
SESSIONS = ("s1", "s2", "s3")
NO_SESSION = "s?"
PURPOSES = ("login", "verify_email")
RESET_HASHES = ("r1", "r2", "r3")
NO_RESET = "r?"
KEYS = ("k1", "K1", "k2")  # counter keys: a case variant, compared in binary
REASONS = ("logout", "admin")
STEP_MS = (0, 1, 999, 1000, 60_000, 3_600_000, 86_400_000)
MAX_STEP_MS = 3 * 86_400_000
SESSION_TTL_MS = (1, 1000, 3_600_000, 86_400_000, 7 * 86_400_000)
OTP_TTL_MS = (1, 1000, 300_000, 3_600_000)
RESET_TTL_MS = (1, 1000, 3_600_000, 86_400_000)
WINDOW_MS = (0, 1, 1000, 60_000, 3_600_000)
LIMITS = (None, 0, 1, 2, 3)
A, B, C = AuditEventType.LOGIN_SUCCESS, AuditEventType.LOGIN_FAILED, AuditEventType.OTP_SENT
TYPE_SETS: tuple[tuple[AuditEventType, ...] | None, ...] = (None, (), (A,), (B, C), (A, B, C))
# (type, user, email, session, reason): a few shapes of audit rows, so filters match some of them
EVENTS: tuple[tuple[AuditEventType, str | None, str | None, str | None, str | None], ...] = (
    (A, "uA", "ada", "s1", None),
    (A, "ua", "Ada", "s2", None),
    (B, None, "ada", None, "bad_password"),
    (B, "u_b", "élise", None, "blocked"),
    (C, "uA", "ada", None, None),
    (C, None, None, None, None),
)


class ModelMismatch(AssertionError):
    """The backend answered differently from the reference store."""


# -- arguments: described by plain values, turned into Hypothesis strategies when the test runs --
@attrs.frozen
class Choice:
    """One of ``values``."""

    values: tuple[Any, ...]


@attrs.frozen
class Ints:
    """An integer in ``[low, high]``."""

    low: int
    high: int


@attrs.frozen
class Either:
    """A value of one of ``options``."""

    options: tuple[Arg, ...]


@attrs.frozen
class ListOf:
    """A list of ``low`` to ``high`` values of ``element``."""

    element: Arg
    low: int
    high: int


Arg = Choice | Ints | Either | ListOf


def _choice(*values: Any) -> Choice:
    return Choice(tuple(values))


def _strategy(arg: Arg, st: Any) -> Any:
    """The Hypothesis strategy for ``arg`` (``st`` is ``hypothesis.strategies``)."""
    if isinstance(arg, Choice):
        return st.sampled_from(arg.values)
    if isinstance(arg, Ints):
        return st.integers(arg.low, arg.high)
    if isinstance(arg, Either):
        return st.one_of(*(_strategy(option, st) for option in arg.options))
    return st.lists(_strategy(arg.element, st), min_size=arg.low, max_size=arg.high)


PICK = Ints(0, 7)  # an index into a list the machine keeps, counted from its newest end (modulo its length)
NUDGE = _choice(-1, 0, 1)  # milliseconds around a time picked from the state
LIVE = _choice(True, True, True, False)  # a challenge in its slot now, or any challenge handed out
USER = Choice((*USERS, NO_USER))
EMAIL = Choice(LOCALS)
SESSION = Choice((*SESSIONS, NO_SESSION))
LIMIT = Choice(LIMITS)

# rule name -> its arguments: every rule is a method of ``_Machine`` of the same name.
RULES: dict[str, dict[str, Arg]] = {
    # clock
    "tick": {"ms": Either((Choice(STEP_MS), Ints(0, MAX_STEP_MS)))},
    "tick_to_deadline": {"pick": PICK, "nudge": NUDGE},
    "tick_to_next_deadline": {},
    # users
    "add_user": {"user": Choice(USERS), "email": EMAIL, "password": Choice(PASSWORDS)},
    "set_password_hash": {"user": USER, "password": Choice(PASSWORDS)},
    "set_blocked": {"user": USER, "blocked": _choice(False, True)},
    "set_email_verified": {"user": USER},
    "delete_user": {"user": USER},
    "change_email": {"user": USER, "email": EMAIL},
    "list_users": {"limit": _choice(0, 1, 2, 3, 100), "window": Ints(0, 5)},
    # sessions
    "add_session": {
        "session": Choice(SESSIONS),
        "user": USER,
        "reuse_hash_of": Choice((None, *SESSIONS)),
        "ttl": Choice(SESSION_TTL_MS),
        "revoked": _choice(False, False, False, True),
        "client": _choice(None, ("127.0.0.1", "agent/1")),
    },
    "rotate": {"session": SESSION, "old": _choice("current", "current", "current", "other")},
    "revoke": {"session": SESSION, "reason": Choice(REASONS)},
    "revoke_all_for_user": {"user": USER, "reason": Choice(REASONS)},
    "list_sessions": {"user": USER, "include_inactive": _choice(False, True)},
    "purge_sessions": {"limit": LIMIT},
    # one-time codes
    "put_otp": {
        "email": EMAIL,
        "purpose": Choice(PURPOSES),
        "ttl": Choice(OTP_TTL_MS),
        "user": Choice((None, *USERS)),
        "status": _choice("pending", "sent"),
        "attempts": _choice(0, 2),
        "consumed": _choice(False, False, True),  # a consumed code is a dead end: rarer
    },
    "mark_sent": {"pick": PICK, "live": LIVE},
    "discard": {"pick": PICK, "live": LIVE},
    "register_attempt": {"pick": PICK, "live": LIVE, "max_attempts": _choice(1, 2, 3)},
    "consume_otp": {"pick": PICK, "live": LIVE},
    "redeem": {"pick": PICK, "live": LIVE, "max_attempts": _choice(1, 2, 3)},
    "purge_otps": {"limit": LIMIT},
    # password reset tokens
    "put_reset": {
        "user": USER,
        "token": Choice(RESET_HASHES),
        "ttl": Choice(RESET_TTL_MS),
        "consumed": _choice(False, False, True),
    },
    "consume_reset": {"token": Choice((*RESET_HASHES, NO_RESET))},
    "delete_resets_for_user": {"user": USER},
    "purge_resets": {"limit": LIMIT},
    # rate limits
    "hit": {"key": Choice(KEYS), "window": Choice(WINDOW_MS), "amount": _choice(1, 2, 3)},
    "reset_counter": {"key": Choice(KEYS)},
    "purge_counters": {"limit": LIMIT},
    # audit
    "append_event": {"event": Choice(EVENTS), "back": _choice(0, 1, 1000)},
    "append_events": {"events": ListOf(Choice(EVENTS), 0, 3), "back": _choice(0, 1, 1000)},
    "query_audit": {
        # None (no filter) weighs more: most combinations of filters match nothing
        "user": Choice((None, None, None, *USERS)),
        "email": Choice((None, None, None, *LOCALS)),
        "types": Choice((None, None, *TYPE_SETS)),
        "since": Either((_choice(None), PICK)),
        "until": Either((_choice(None), PICK)),
        "nudge": NUDGE,
        "limit": _choice(1, 2, 100),
    },
    "purge_audit": {"cutoff": PICK, "nudge": NUDGE, "limit": LIMIT},
    # everything at once
    "check_everything": {},
}


# -- comparing answers --------------------------------------------------------------------
@attrs.frozen
class _Outcome:
    value: Any = None
    error: Exception | None = None


def _attempt(call: Callable[[], Any]) -> _Outcome:
    try:
        return _Outcome(call())
    except Exception as exc:  # compared with the reference's outcome
        return _Outcome(error=exc)


def _show(value: Any) -> str:
    """A value with every field, the ``repr=False`` ones too (the machine's hashes are fakes)."""
    if attrs.has(type(value)):
        fields = ", ".join(f"{a.name}={_show(getattr(value, a.name))}" for a in attrs.fields(type(value)))
        return f"{type(value).__name__}({fields})"
    if isinstance(value, list | tuple):
        inner = ", ".join(_show(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") if value.utcoffset() == timedelta(0) else repr(value)
    return repr(value)


def _difference(expected: Any, got: Any, where: str = "") -> str | None:
    """Where ``got`` differs from ``expected`` (strictly: types, every field, aware UTC times)."""
    if isinstance(expected, datetime) or isinstance(got, datetime):
        if not (isinstance(expected, datetime) and isinstance(got, datetime)):
            return f"{where}: {_show(got)} instead of {_show(expected)}"
        if got.tzinfo is None or got.utcoffset() != timedelta(0):
            return f"{where}: {got!r} is not timezone-aware UTC"
        return None if got == expected else f"{where}: {_show(got)} instead of {_show(expected)}"
    if type(got) is not type(expected):
        return f"{where}: {type(got).__name__} {_show(got)} instead of {type(expected).__name__} {_show(expected)}"
    if attrs.has(type(expected)):
        for field in attrs.fields(type(expected)):
            found = _difference(getattr(expected, field.name), getattr(got, field.name), f"{where}.{field.name}")
            if found:
                return found
        return None
    if isinstance(expected, list | tuple):
        if len(got) != len(expected):
            return f"{where}: {len(got)} items instead of {len(expected)}: {_show(got)} instead of {_show(expected)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            found = _difference(e, g, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, Mapping):
        if where.endswith(".profile"):
            # A profile field the backend has but the user was not given may come back as None.
            got = {k: v for k, v in got.items() if k in expected or v is not None}
        if set(got) != set(expected):
            return f"{where}: keys {sorted(got)} instead of {sorted(expected)}"
        for key in expected:
            found = _difference(expected[key], got[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    return None if got == expected else f"{where}: {_show(got)} instead of {_show(expected)}"


def _newest_first(expected: Any, got: Any) -> tuple[Any, Any]:
    """For "newest first" lists: sessions of the same instant may come in any order.

    When the backend's list is ordered by ``created_at`` (newest first), both
    lists are put in one canonical order (``created_at`` descending, then ``id``)
    for the strict comparison; otherwise they are compared as they are."""
    if not isinstance(got, list) or not all(isinstance(s, Session) for s in got):
        return expected, got
    if any(a.created_at < b.created_at for a, b in itertools.pairwise(got)):
        return expected, got

    def canonical(sessions: list[Session]) -> list[Session]:
        return sorted(sorted(sessions, key=lambda s: s.id), key=lambda s: s.created_at, reverse=True)

    return canonical(expected), canonical(got)


# -- the machine ----------------------------------------------------------------------------
class _Machine:
    """The rules (one method per entry of :data:`RULES`) over a backend and a reference.

    Plain Python: Hypothesis turns it into a ``RuleBasedStateMachine`` (see
    :func:`_hypothesis_machine`). A new instance is one example: it drains the
    backend, takes a new namespace and a fresh reference store. Every write
    reads back, through the ports, what it may have changed.
    """

    def __init__(self, store: Store, profile: Mapping[str, Any], namespaces: Iterator[int]) -> None:
        super().__init__()
        self.store = store
        self.ref: Store = MemoryStore()
        self.ns = f"m{next(namespaces)}."
        self.profile = dict(profile)
        self.now = T0
        self.failed = False
        self._serial = itertools.count(1)
        self.refresh_hashes: list[str] = []  # every refresh hash handed out, oldest first
        self.otp_ids: list[str] = []  # every challenge id handed out, oldest first
        self.otp_slot: dict[str, tuple[str, str]] = {}  # challenge id -> (email, purpose)
        self.deadlines: list[datetime] = []
        self.audit_ids: dict[str, str] = {}  # reference id -> backend id
        self.audit_back: dict[str, str] = {}  # backend id -> reference id
        self._drain()

    # naming ------------------------------------------------------------------------------
    def _id(self, label: str) -> str:
        return self.ns + label

    def _email(self, local: str) -> str:
        return f"{local}@{self.ns}example.com"

    def _fresh(self, kind: str) -> str:
        return f"{self.ns}{kind}{next(self._serial)}"

    def _recent(self, items: Sequence[str], pick: int, missing: str) -> str:
        """``items[-1 - pick]`` (modulo the length), or ``missing`` when there are none."""
        return items[-1 - pick % len(items)] if items else self._id(missing)

    # comparing ---------------------------------------------------------------------------
    def _fail(self, message: str) -> NoReturn:
        self.failed = True
        raise ModelMismatch(f"{message}\n  (namespace {self.ns!r}, now {_show(self.now)})")

    def _both(
        self,
        label: str,
        call: Callable[[Store], Any],
        *,
        normalise: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    ) -> Any:
        """Run ``call`` on the reference, then on the backend; both must answer alike.

        Returns the reference's answer. ``normalise(expected, got)`` maps both
        answers before the strict comparison (when both returned)."""
        expected = _attempt(lambda: call(self.ref))
        got = _attempt(lambda: call(self.store))
        if expected.error is not None and not isinstance(expected.error, AuthError):
            raise expected.error  # the machine misused the port: not a finding about the backend
        if expected.error is not None or got.error is not None:
            if expected.error is None or got.error is None or type(got.error) is not type(expected.error):
                self._fail(
                    f"{label}: the backend {self._outcome(got)}; the reference {self._outcome(expected)}"
                )
            return None
        want, have = expected.value, got.value
        if normalise is not None:
            want, have = normalise(want, have)
        found = _difference(want, have, label)
        if found:
            self._fail(f"{found}\n  backend:   {_show(have)}\n  reference: {_show(want)}")
        return expected.value

    @staticmethod
    def _outcome(outcome: _Outcome) -> str:
        if outcome.error is not None:
            return f"raised {type(outcome.error).__name__}: {outcome.error}"
        return f"returned {_show(outcome.value)}"

    def _drain(self) -> None:
        """Empty every repository but users (see the module doc), and check it is empty."""
        store = self.store
        purges: list[tuple[str, Callable[[], int]]] = [
            ("sessions", lambda: store.sessions.purge_expired(FAR)),
            ("otps", lambda: store.otps.purge_expired(FAR)),
            ("reset_tokens", lambda: store.reset_tokens.purge_expired(FAR)),
            ("rate_limits", lambda: store.rate_limits.purge_expired(FAR)),
            ("audit", lambda: store.audit.purge_before(FAR)),
        ]
        for _name, purge in purges:
            purge()
        for name, purge in purges:
            left = purge()
            if left != 0:
                self._fail(f"{name}: a second purge with a far-future time deleted {left} more rows")
        if store.audit.query(limit=ALL) != []:
            self._fail("audit: events are left after purge_before(far future)")

    # clock -------------------------------------------------------------------------------
    def tick(self, ms: int) -> None:
        self.now += ms * MS

    def _tick_to(self, pick: int, nudge: int) -> None:
        ahead = sorted({d for d in self.deadlines if d + nudge * MS > self.now})
        if ahead:
            self.now = ahead[pick % len(ahead)] + nudge * MS

    # (a rule never calls another rule: on the Hypothesis machine a rule is a wrapper)
    def tick_to_deadline(self, pick: int, nudge: int) -> None:
        self._tick_to(pick, nudge)

    def tick_to_next_deadline(self) -> None:
        self._tick_to(0, 0)

    # users -------------------------------------------------------------------------------
    def _read_user(self, user_id: str, email: str | None = None) -> None:
        self._both("users.get", lambda s: s.users.get(user_id))
        if email is not None:
            self._both("users.get_by_email", lambda s: s.users.get_by_email(email))

    def add_user(self, user: str, email: str, password: str) -> None:
        new = User(
            id=self._id(user),
            email=self._email(email),
            password_hash=password,
            created_at=self.now,
            updated_at=self.now,
            profile=self.profile,
        )
        self._both("users.add", lambda s: s.users.add(new))
        self._read_user(new.id, new.email)

    def _read_email(self, email: str) -> None:
        address = self._email(email)
        self._both("users.get_by_email", lambda s: s.users.get_by_email(address))

    def set_password_hash(self, user: str, password: str) -> None:
        uid, now = self._id(user), self.now
        self._both("users.set_password_hash", lambda s: s.users.set_password_hash(uid, password, now))
        self._read_user(uid)

    def set_blocked(self, user: str, blocked: bool) -> None:
        uid, now = self._id(user), self.now
        self._both("users.set_blocked", lambda s: s.users.set_blocked(uid, blocked, now))
        self._read_user(uid)

    def set_email_verified(self, user: str) -> None:
        uid, now = self._id(user), self.now
        self._both("users.set_email_verified", lambda s: s.users.set_email_verified(uid, now))
        self._read_user(uid)

    def change_email(self, user: str, email: str) -> None:
        uid, address, now = self._id(user), self._email(email), self.now
        before = self.ref.users.get(uid)
        self._both("users.change_email", lambda s: s.users.change_email(uid, address, now))
        self._read_user(uid, address)
        if before is not None:
            self._read_email_address(before.email)

    def _read_email_address(self, address: str) -> None:
        self._both("users.get_by_email", lambda s: s.users.get_by_email(address))

    def delete_user(self, user: str) -> None:
        uid = self._id(user)
        before = self.ref.users.get(uid)
        self._both("users.delete", lambda s: s.users.delete(uid))
        self._read_user(uid, before.email if before is not None else None)

    def _read_user_list(self) -> list[User]:
        """The backend's whole user list (other examples' users too), once this namespace's
        users in it are the reference's list, in the same order."""
        everyone = _attempt(lambda: self.store.users.list(limit=ALL))
        if everyone.error is not None or not isinstance(everyone.value, list):
            self._fail(f"users.list: the backend {self._outcome(everyone)}")
        whole: list[User] = everyone.value
        mine = [u for u in whole if isinstance(u, User) and u.id.startswith(self.ns)]
        found = _difference(self.ref.users.list(limit=ALL), mine, "users.list (this example's users, in order)")
        if found:
            self._fail(found)
        return whole

    def list_users(self, limit: int, window: int) -> None:
        """A page is its window of the whole list; the window starts around this example's users."""
        whole = self._read_user_list()
        first = next((i for i, u in enumerate(whole) if isinstance(u, User) and u.id.startswith(self.ns)), len(whole))
        offset = max(0, first - 1 + window)
        page = _attempt(lambda: self.store.users.list(limit=limit, offset=offset))
        if page.error is not None:
            self._fail(f"users.list(limit={limit}, offset={offset}): the backend {self._outcome(page)}")
        found = _difference(whole[offset : offset + limit], page.value, f"users.list(limit={limit}, offset={offset})")
        if found:
            self._fail(found)

    # sessions ----------------------------------------------------------------------------
    def _current_hash(self, session_id: str) -> str | None:
        session = self.ref.sessions.get(session_id)
        return session.refresh_hash if session is not None else None

    def _read_session(self, session_id: str) -> None:
        self._both("sessions.get", lambda s: s.sessions.get(session_id))
        self._both("sessions.get_with_user", lambda s: s.sessions.get_with_user(session_id))

    def _read_sessions(self) -> None:
        """Every session of the pool and every refresh hash handed out."""
        for label in (*SESSIONS, NO_SESSION):
            self._read_session(self._id(label))
        for h in self.refresh_hashes:
            self._read_hash(h)

    def _read_hash(self, refresh_hash: str) -> None:
        self._both("sessions.get_by_refresh_hash", lambda s: s.sessions.get_by_refresh_hash(refresh_hash))
        self._both("sessions.get_retired", lambda s: s.sessions.get_retired(refresh_hash))

    def add_session(
        self, session: str, user: str, reuse_hash_of: str | None, ttl: int, revoked: bool, client: tuple[str, str] | None
    ) -> None:
        sid, now = self._id(session), self.now
        # A refresh hash is new, or the live hash of another session (a duplicate); never a
        # rotated-away one (the core's hashes are random: it never hands one out twice).
        taken = self._current_hash(self._id(reuse_hash_of)) if reuse_hash_of is not None else None
        refresh_hash = taken or self._fresh("h")
        new = Session(
            id=sid,
            user_id=self._id(user),
            refresh_hash=refresh_hash,
            created_at=now,
            expires_at=now + ttl * MS,
            last_active_at=now,
            revoked_at=now if revoked else None,
            revoke_reason="admin" if revoked else None,
            ip_address=client[0] if client else None,
            user_agent=client[1] if client else None,
        )
        self._both("sessions.add", lambda s: s.sessions.add(new))
        if refresh_hash not in self.refresh_hashes:
            self.refresh_hashes.append(refresh_hash)
        self.deadlines.append(new.expires_at)
        self._read_session(sid)
        self._read_hash(refresh_hash)

    def rotate(self, session: str, old: str) -> None:
        """``old`` is the session's current hash, or ("other", or no such session) the
        hash handed out before the newest: a rotated-away or another session's one."""
        sid, now = self._id(session), self.now
        current = self._current_hash(sid)
        if old == "current" and current is not None:
            old_hash = current
        else:
            old_hash = self._recent(self.refresh_hashes, 1, "h?")
        new_hash = self._fresh("h")
        self.refresh_hashes.append(new_hash)
        self._both("sessions.rotate", lambda s: s.sessions.rotate(sid, old_hash, new_hash, now))
        self._read_session(sid)
        self._read_hash(old_hash)
        self._read_hash(new_hash)

    def revoke(self, session: str, reason: str) -> None:
        sid, now = self._id(session), self.now
        self._both("sessions.revoke", lambda s: s.sessions.revoke(sid, now, reason))
        self._read_session(sid)

    def revoke_all_for_user(self, user: str, reason: str) -> None:
        uid, now = self._id(user), self.now
        self._both("sessions.revoke_all_for_user", lambda s: s.sessions.revoke_all_for_user(uid, now, reason))
        self._list_sessions(uid, include_inactive=True)

    def list_sessions(self, user: str, include_inactive: bool) -> None:
        self._list_sessions(self._id(user), include_inactive=include_inactive)

    def _list_sessions(self, user_id: str, *, include_inactive: bool) -> None:
        now = self.now
        self._both(
            f"sessions.list_for_user(include_inactive={include_inactive})",
            lambda s: s.sessions.list_for_user(user_id, now=now, include_inactive=include_inactive),
            normalise=_newest_first,
        )

    def purge_sessions(self, limit: int | None) -> None:
        now = self.now
        count = self._both(f"sessions.purge_expired(limit={limit})", lambda s: s.sessions.purge_expired(now, limit=limit))
        if limit is not None and count == limit:  # which rows went is the store's choice: finish the purge
            self._both("sessions.purge_expired (rest)", lambda s: s.sessions.purge_expired(now))
        self._read_sessions()

    # one-time codes ----------------------------------------------------------------------
    def _read_otp(self, challenge_id: str) -> None:
        slot = self.otp_slot.get(challenge_id)
        if slot is not None:
            email, purpose = slot
            self._both("otps.get", lambda s: s.otps.get(email, purpose))

    def put_otp(
        self, email: str, purpose: str, ttl: int, user: str | None, status: str, attempts: int, consumed: bool
    ) -> None:
        now = self.now
        challenge = OtpChallenge(
            id=self._fresh("c"),
            email=self._email(email),
            purpose=purpose,
            code_hash=self._fresh("code"),
            created_at=now,
            expires_at=now + ttl * MS,
            user_id=self._id(user) if user is not None else None,
            attempts=attempts,
            status=status,
            consumed_at=now if consumed else None,
        )
        self.otp_ids.append(challenge.id)
        self.otp_slot[challenge.id] = (challenge.email, purpose)
        self.deadlines.append(challenge.expires_at)
        self._both("otps.put", lambda s: s.otps.put(challenge))
        self._read_otp(challenge.id)

    def _read_slots(self) -> None:
        for local in LOCALS:
            for purpose in PURPOSES:
                self._read_slot(local, purpose)

    def _read_slot(self, email: str, purpose: str) -> None:
        address = self._email(email)
        self._both("otps.get", lambda s: s.otps.get(address, purpose))

    def _challenge(self, pick: int, live: bool) -> str:
        """A challenge id: one in its slot now (the reference's), or any one handed out
        (superseded, discarded, purged); a made-up one when there is none."""
        if live:
            current = [c.id for c in (self.ref.otps.get(e, p) for e, p in sorted(set(self.otp_slot.values()))) if c]
            if current:
                return current[pick % len(current)]
        return self._recent(self.otp_ids, pick, "c?")

    def mark_sent(self, pick: int, live: bool) -> None:
        cid = self._challenge(pick, live)
        self._both("otps.mark_sent", lambda s: s.otps.mark_sent(cid))
        self._read_otp(cid)

    def discard(self, pick: int, live: bool) -> None:
        cid = self._challenge(pick, live)
        self._both("otps.discard", lambda s: s.otps.discard(cid))
        self._read_otp(cid)

    def register_attempt(self, pick: int, live: bool, max_attempts: int) -> None:
        cid, now = self._challenge(pick, live), self.now
        self._both("otps.register_attempt", lambda s: s.otps.register_attempt(cid, now, max_attempts))
        self._read_otp(cid)

    def consume_otp(self, pick: int, live: bool) -> None:
        cid, now = self._challenge(pick, live), self.now
        self._both("otps.consume", lambda s: s.otps.consume(cid, now))
        self._read_otp(cid)

    def redeem(self, pick: int, live: bool, max_attempts: int) -> None:
        cid, now = self._challenge(pick, live), self.now
        self._both("otps.redeem", lambda s: s.otps.redeem(cid, now, max_attempts))
        self._read_otp(cid)

    def purge_otps(self, limit: int | None) -> None:
        now = self.now
        count = self._both(f"otps.purge_expired(limit={limit})", lambda s: s.otps.purge_expired(now, limit=limit))
        if limit is not None and count == limit:
            self._both("otps.purge_expired (rest)", lambda s: s.otps.purge_expired(now))
        self._read_slots()

    # password reset tokens ---------------------------------------------------------------
    def _read_resets(self) -> None:
        for label in RESET_HASHES:
            self._read_reset(label)

    def put_reset(self, user: str, token: str, ttl: int, consumed: bool) -> None:
        now = self.now
        new = ResetToken(
            id=self._fresh("t"),
            user_id=self._id(user),
            token_hash=self._id(token),
            created_at=now,
            expires_at=now + ttl * MS,
            consumed_at=now if consumed else None,
        )
        self.deadlines.append(new.expires_at)
        self._both("reset_tokens.put", lambda s: s.reset_tokens.put(new))
        self._read_resets()

    def _read_reset(self, token: str) -> None:
        h = self._id(token)
        self._both("reset_tokens.get", lambda s: s.reset_tokens.get(h))

    def consume_reset(self, token: str) -> None:
        h, now = self._id(token), self.now
        self._both("reset_tokens.consume", lambda s: s.reset_tokens.consume(h, now))
        self._both("reset_tokens.get", lambda s: s.reset_tokens.get(h))

    def delete_resets_for_user(self, user: str) -> None:
        uid = self._id(user)
        self._both("reset_tokens.delete_for_user", lambda s: s.reset_tokens.delete_for_user(uid))
        self._read_resets()

    def purge_resets(self, limit: int | None) -> None:
        now = self.now
        count = self._both(
            f"reset_tokens.purge_expired(limit={limit})", lambda s: s.reset_tokens.purge_expired(now, limit=limit)
        )
        if limit is not None and count == limit:
            self._both("reset_tokens.purge_expired (rest)", lambda s: s.reset_tokens.purge_expired(now))
        self._read_resets()

    # rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: int, amount: int) -> None:
        k, now = self._id(key), self.now
        expires_at = now + window * MS
        self.deadlines.append(expires_at)
        self._both("rate_limits.hit", lambda s: s.rate_limits.hit(k, now, expires_at, amount))

    def reset_counter(self, key: str) -> None:
        k = self._id(key)
        self._both("rate_limits.reset", lambda s: s.rate_limits.reset(k))

    def purge_counters(self, limit: int | None) -> None:
        now = self.now
        count = self._both(
            f"rate_limits.purge_expired(limit={limit})", lambda s: s.rate_limits.purge_expired(now, limit=limit)
        )
        if limit is not None and count == limit:
            self._both("rate_limits.purge_expired (rest)", lambda s: s.rate_limits.purge_expired(now))

    # audit -------------------------------------------------------------------------------
    def _event(self, shape: tuple[AuditEventType, str | None, str | None, str | None, str | None], back: int) -> AuditEvent:
        kind, user, email, session, reason = shape
        return AuditEvent(
            type=kind,
            occurred_at=self.now - back * MS,
            user_id=self._id(user) if user is not None else None,
            email=self._email(email) if email is not None else None,
            ip_address="127.0.0.1" if session is not None else None,
            user_agent="agent/1" if session is not None else None,
            session_id=self._id(session) if session is not None else None,
            reason=reason,
        )

    def _bind(self, ref_id: str | None, backend_id: object) -> None:
        """Record that the backend's ``backend_id`` is the reference's ``ref_id`` (one to one)."""
        if ref_id is None or not isinstance(backend_id, str):
            self._fail(f"audit: the backend's event id is {backend_id!r} (a str is expected)")
        known = self.audit_ids.get(ref_id)
        if known == backend_id:
            return
        if known is not None:
            self._fail(f"audit: the backend gives an event id {backend_id!r}; it gave the same event {known!r} before")
        if backend_id in self.audit_back:
            self._fail(f"audit: the backend gives the id {backend_id!r} to two events")
        self.audit_ids[ref_id] = backend_id
        self.audit_back[backend_id] = ref_id

    def _map_events(self, expected: Any, got: Any) -> tuple[Any, Any]:
        """Backend events with the reference's ids (learned positionally for events
        not seen yet: those ``append_many`` wrote)."""
        if not isinstance(got, list) or not all(isinstance(e, AuditEvent) for e in got):
            return expected, got
        for want, have in zip(expected, got, strict=False):
            if have.id not in self.audit_back and want.id not in self.audit_ids:
                if attrs.evolve(want, id=None) == attrs.evolve(have, id=None):
                    self._bind(want.id, have.id)
        mapped = [
            attrs.evolve(e, id=self.audit_back.get(e.id, f"unknown backend id {e.id!r}") if isinstance(e.id, str) else e.id)
            for e in got
        ]
        return expected, mapped

    def _read_audit(self) -> list[AuditEvent]:
        events: list[AuditEvent] = self._both("audit.query()", lambda s: s.audit.query(limit=ALL), normalise=self._map_events)
        return events

    def append_event(
        self, event: tuple[AuditEventType, str | None, str | None, str | None, str | None], back: int
    ) -> None:
        row = self._event(event, back)
        expected = _attempt(lambda: self.ref.audit.append(row))
        got = _attempt(lambda: self.store.audit.append(row))
        if expected.error is not None or got.error is not None or not isinstance(got.value, AuditEvent):
            self._fail(f"audit.append: the backend {self._outcome(got)}; the reference {self._outcome(expected)}")
        self._bind(expected.value.id, got.value.id)
        found = _difference(expected.value, attrs.evolve(got.value, id=expected.value.id), "audit.append")
        if found:
            self._fail(found)

    def append_events(
        self, events: list[tuple[AuditEventType, str | None, str | None, str | None, str | None]], back: int
    ) -> None:
        rows = [self._event(shape, back) for shape in events]
        self._both("audit.append_many", lambda s: s.audit.append_many(rows))
        self._read_audit()

    def _event_time(self, pick: int, nudge: int) -> datetime:
        times = sorted({e.occurred_at for e in self.ref.audit.query(limit=ALL)})
        return (times[pick % len(times)] if times else self.now) + nudge * MS

    def query_audit(
        self,
        user: str | None,
        email: str | None,
        types: tuple[AuditEventType, ...] | None,
        since: int | None,
        until: int | None,
        nudge: int,
        limit: int,
    ) -> None:
        filters: dict[str, Any] = {
            "user_id": self._id(user) if user is not None else None,
            "email": self._email(email) if email is not None else None,
            "types": list(types) if types is not None else None,
            "since": self._event_time(since, nudge) if since is not None else None,
            "until": self._event_time(until, -nudge) if until is not None else None,
            "limit": limit,
        }
        label = "audit.query(" + ", ".join(f"{k}={_show(v)}" for k, v in filters.items() if v is not None) + ")"
        self._both(label, lambda s: s.audit.query(**filters), normalise=self._map_events)

    def purge_audit(self, cutoff: int, nudge: int, limit: int | None) -> None:
        before = self._event_time(cutoff, nudge)
        old = [e for e in self.ref.audit.query(limit=ALL) if e.occurred_at < before]
        # Oldest first; among events at the same instant the port names no order.
        split = limit is not None and 0 < limit < len(old) and old[limit - 1].occurred_at == old[limit].occurred_at
        self._both(f"audit.purge_before({_show(before)}, limit={limit})", lambda s: s.audit.purge_before(before, limit=limit))
        if split and limit is not None:
            rest = old[limit].occurred_at + MS
            self._both("audit.purge_before (rest of the instant)", lambda s: s.audit.purge_before(rest))
        # The port does not say a deleted event's id is never given again (a SQLite rowid
        # is: max + 1): ids are one to one among the events that exist.
        live = {e.id for e in self.ref.audit.query(limit=ALL)}
        self.audit_ids = {r: b for r, b in self.audit_ids.items() if r in live}
        self.audit_back = {b: r for r, b in self.audit_ids.items()}
        self._read_audit()

    # everything --------------------------------------------------------------------------
    def check_everything(self) -> None:
        self._check_everything()

    def _check_everything(self) -> None:
        """Read back all the state the ports show (every pool entry, both list modes...)."""
        for label in (*USERS, NO_USER):
            self._read_user(self._id(label))
        for local in LOCALS:
            self._read_email(local)
        self._read_user_list()
        self._read_sessions()
        for label in (*USERS, NO_USER):
            for include_inactive in (False, True):
                self._list_sessions(self._id(label), include_inactive=include_inactive)
        self._read_slots()
        self._read_resets()
        self._read_audit()

    def teardown(self) -> None:
        if not self.failed:  # after a failed step the state differs anyway: keep the first report
            self._check_everything()


def _step(method: Callable[..., None]) -> Callable[..., None]:
    """A rule: ``failed`` stays set when it does not complete (whatever it raised)."""

    @functools.wraps(method)
    def step(machine: _Machine, *args: Any, **kwargs: Any) -> None:
        machine.failed = True
        method(machine, *args, **kwargs)
        machine.failed = False

    return step


@functools.cache
def _hypothesis_machine(stateful: Any, st: Any) -> type:
    """``_Machine`` as a Hypothesis ``RuleBasedStateMachine``: one rule per :data:`RULES` entry."""
    rules = {
        name: stateful.rule(**{arg: _strategy(spec, st) for arg, spec in args.items()})(_step(getattr(_Machine, name)))
        for name, args in RULES.items()
    }
    return type("ModelMachine", (_Machine, stateful.RuleBasedStateMachine), {**rules, "__module__": __name__})


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _replay_arguments(value: str) -> tuple[str, str] | None:
    """(version, blob) from ``MINDMESH_MODEL_REPRODUCE``: the two arguments Hypothesis printed,
    either bare (``6.100.0 AXic...``) or as printed (``@reproduce_failure('6.100.0', b'AXic...')``)."""
    quoted = re.findall(r"'([^']*)'", value)
    parts = quoted if len(quoted) == 2 else value.split()
    if not parts:
        return None
    if len(parts) != 2:
        raise ValueError(f"MINDMESH_MODEL_REPRODUCE needs a version and a blob, got {value!r}")
    return parts[0], parts[1]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def _import_hypothesis() -> tuple[Any, Any, Any]:
    """(hypothesis, hypothesis.stateful, hypothesis.strategies); a missing Hypothesis skips
    the test locally and fails it under CI (no skip holes)."""
    try:
        return (
            importlib.import_module("hypothesis"),
            importlib.import_module("hypothesis.stateful"),
            importlib.import_module("hypothesis.strategies"),
        )
    except ModuleNotFoundError as exc:
        error = str(exc)
    message = f"the model-based check needs Hypothesis ({error}); pip install hypothesis"
    if _in_ci():
        pytest.fail(f"{message} (CI is set: a skip here would hide untested code)", pytrace=False)
    pytest.skip(message)


class ModelContract:
    """The model-based check, as a pytest test-case mixin (see the module doc).

    Bind it like :class:`~mindmesh_auth.testing.StoreContract`: a subclass whose
    ``store`` fixture yields a fresh, empty store. Users are added with the
    profile ``profile_fields``, which the store must accept.
    """

    profile_fields: dict[str, Any] = {"first_name": "Ada", "role": "admin"}
    model_examples: int = 30
    model_steps: int = 100

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("Override the `store` fixture to yield a fresh, empty Store.")

    def test_model_based_check(self, store: Store) -> None:
        hypothesis, stateful, st = _import_hypothesis()
        machine = _hypothesis_machine(stateful, st)
        namespaces = itertools.count(1)
        profile = dict(self.profile_fields)

        def one_example() -> Any:
            return machine(store, profile, namespaces)

        factory: Callable[[], Any] = one_example
        replay = _replay_arguments(os.environ.get("MINDMESH_MODEL_REPRODUCE", ""))
        if replay is not None:
            version, blob = replay
            factory = hypothesis.reproduce_failure(version, blob.encode())(one_example)
        stateful.run_state_machine_as_test(
            factory,
            settings=hypothesis.settings(
                max_examples=_env_int("MINDMESH_MODEL_EXAMPLES", self.model_examples),
                stateful_step_count=_env_int("MINDMESH_MODEL_STEPS", self.model_steps),
                deadline=None,
                database=None,
                print_blob=True,
            ),
        )
