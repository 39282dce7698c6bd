"""The storage contract suite: every rule a backend must hold, proven identically.

Bind it to a backend in a few lines::

    import pytest
    from mindmesh_auth.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            store = MyStore(...)
            store.create_schema()
            yield store          # a FRESH, EMPTY store for every test
            store.close()

The store must accept the profile fields named in ``profile_fields`` on
users (extra columns, keys or attributes). Race cases run with
``race_threads`` threads; a backend that gives each thread its own connection
(Peewee does) proves multi-connection atomicity with them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import pytest

from ..adapters.mail import Outbox
from ..core.config import Limit
from ..core.errors import (
    DuplicateKeyError,
    InvalidOtp,
    InvalidRefreshToken,
    InvalidToken,
    RateLimited,
)
from ..core.models import (
    AuditEvent,
    AuditEventType,
    OtpChallenge,
    ResetToken,
    Session,
    User,
)
from ..core.ports import Store
from ..facade import MindmeshAuth
from .clock import FakeClock
from .config import test_config
from .fault_cases import FaultContract

__all__ = ["StoreContract"]

T = TypeVar("T")
# Far in the future, so a backend's own expiry machinery (MongoDB TTL indexes run
# against the wall clock) never deletes the suite's rows behind the fake clock.
T0 = datetime(2099, 3, 1, 9, 30, 15, 123000, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def _parallel(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``fn(i)`` in ``n`` threads released together; results or exceptions."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return fn(i)
        except BaseException as exc:  # collected, asserted by the caller
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def _user(n: int = 1, *, email: str | None = None, at: datetime = T0, **profile: Any) -> User:
    return User(
        id=f"00000000-0000-4000-8000-{n:012d}",
        email=email or f"user{n}@example.com",
        password_hash="mm1$2b$04$" + "x" * 53,
        created_at=at,
        updated_at=at,
        profile=profile,
    )


def _session(n: int, user: User, *, at: datetime = T0, ttl: timedelta = timedelta(days=7), **kw: Any) -> Session:
    return Session(
        id=f"10000000-0000-4000-8000-{n:012d}",
        user_id=user.id,
        refresh_hash=f"refresh-hash-{n}",
        created_at=at,
        expires_at=at + ttl,
        last_active_at=at,
        **kw,
    )


def _challenge(n: int = 1, *, email: str = "user1@example.com", purpose: str = "login", **kw: Any) -> OtpChallenge:
    values: dict[str, Any] = {
        "id": f"20000000-0000-4000-8000-{n:012d}",
        "email": email,
        "purpose": purpose,
        "code_hash": f"code-hash-{n}",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=5),
        "user_id": "00000000-0000-4000-8000-000000000001",
    }
    values.update(kw)
    return OtpChallenge(**values)


def _reset(n: int, user_id: str, *, ttl: timedelta = timedelta(hours=1)) -> ResetToken:
    return ResetToken(
        id=f"30000000-0000-4000-8000-{n:012d}",
        user_id=user_id,
        token_hash=f"reset-hash-{n}",
        created_at=T0,
        expires_at=T0 + ttl,
    )


class StoreContract(FaultContract):
    """The shared suite. Subclasses override the ``store`` fixture (see module doc).

    It includes :class:`~mindmesh_auth.testing.fault_cases.FaultContract`: every
    operation all or nothing when any storage write fails (``store.atomic()``).
    """

    race_threads: int = 20
    profile_fields: dict[str, Any] = {"first_name": "Ada", "role": "admin"}

    # -- fixtures a binding may override ------------------------------------
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("Override the `store` fixture to yield a fresh, empty Store.")

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def outbox(self) -> Outbox:
        return Outbox()

    @pytest.fixture
    def auth(self, store: Store, outbox: Outbox, clock: FakeClock) -> Iterator[MindmeshAuth]:
        facade = MindmeshAuth(store=store, mailer=outbox, config=test_config(), clock=clock)
        yield facade
        facade.wait_for_background_work()

    def _logged_in(self, auth: MindmeshAuth, outbox: Outbox, email: str = "ada@example.com") -> Any:
        auth.auth.register(email, PASSWORD)
        auth.auth.login(email, PASSWORD)
        return auth.auth.verify_otp(email, outbox.last_code(email), "login")

    # ======================================================================
    # Users
    # ======================================================================
    def test_user_round_trips_with_aware_utc_times(self, store: Store) -> None:
        user = _user(1)
        store.users.add(user)
        got = store.users.get(user.id)
        assert got is not None
        assert (got.id, got.email, got.password_hash) == (user.id, user.email, user.password_hash)
        assert got.created_at == T0 and got.created_at.utcoffset() == timedelta(0)
        assert (got.email_verified, got.blocked) == (False, False)

    def test_user_profile_fields_round_trip(self, store: Store) -> None:
        user = _user(1, **self.profile_fields)
        returned = store.users.add(user)
        assert dict(returned.profile) == self.profile_fields
        got = store.users.get(user.id)
        assert got is not None and dict(got.profile) == self.profile_fields
        by_email = store.users.get_by_email(user.email)
        assert by_email is not None and dict(by_email.profile) == self.profile_fields

    def test_user_lookup_by_email_is_exact(self, store: Store) -> None:
        store.users.add(_user(1, email="alice@example.com"))
        assert store.users.get_by_email("alice@example.com") is not None
        assert store.users.get_by_email("ALICE@example.com") is None
        assert store.users.get_by_email("alice@example.com ") is None
        assert store.users.get_by_email("nobody@example.com") is None

    def test_duplicate_email_raises_duplicate_key(self, store: Store) -> None:
        store.users.add(_user(1, email="same@example.com"))
        with pytest.raises(DuplicateKeyError):
            store.users.add(_user(2, email="same@example.com"))
        assert len(store.users.list()) == 1

    def test_emails_differing_in_case_or_accent_are_distinct(self, store: Store) -> None:
        store.users.add(_user(1, email="elise@example.com"))
        store.users.add(_user(2, email="Elise@example.com"))
        store.users.add(_user(3, email="\u00e9lise@example.com"))
        got = store.users.get_by_email("\u00e9lise@example.com")
        assert got is not None and got.id == _user(3).id
        got = store.users.get_by_email("elise@example.com")
        assert got is not None and got.id == _user(1).id

    def test_unknown_user_is_none(self, store: Store) -> None:
        assert store.users.get("00000000-0000-4000-8000-999999999999") is None

    def test_user_updates_change_fields_and_report_existence(self, store: Store) -> None:
        user = _user(1)
        store.users.add(user)
        later = T0 + timedelta(minutes=1)
        assert store.users.set_password_hash(user.id, "mm1$new", later) is True
        assert store.users.set_blocked(user.id, True, later) is True
        assert store.users.set_blocked(user.id, True, later) is True  # idempotent
        assert store.users.set_email_verified(user.id, later) is True
        got = store.users.get(user.id)
        assert got is not None
        assert (got.password_hash, got.blocked, got.email_verified, got.updated_at) == ("mm1$new", True, True, later)
        missing = "00000000-0000-4000-8000-999999999999"
        assert store.users.set_password_hash(missing, "x", later) is False
        assert store.users.set_blocked(missing, True, later) is False
        assert store.users.set_email_verified(missing, later) is False

    def test_users_list_in_creation_order_with_paging(self, store: Store) -> None:
        for n in (3, 1, 2):
            store.users.add(_user(n, at=T0 + timedelta(seconds=n)))
        assert [u.id for u in store.users.list()] == [_user(n).id for n in (1, 2, 3)]
        assert [u.id for u in store.users.list(limit=1, offset=1)] == [_user(2).id]

    def test_parallel_registration_of_one_email_creates_one_user(self, store: Store) -> None:
        results = _parallel(self.race_threads, lambda i: store.users.add(_user(100 + i, email="race@example.com")))
        assert sum(isinstance(r, User) for r in results) == 1
        assert all(isinstance(r, (User, DuplicateKeyError)) for r in results), results
        assert store.users.get_by_email("race@example.com") is not None

    # ======================================================================
    # Sessions and refresh rotation
    # ======================================================================
    def _with_user(self, store: Store) -> User:
        user = _user(1)
        store.users.add(user)
        return user

    def test_session_round_trips(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user, ip_address="203.0.113.9", user_agent="pytest/1")
        store.sessions.add(session)
        got = store.sessions.get(session.id)
        assert got == session

    def test_get_with_user_returns_both_in_one_call(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        found = store.sessions.get_with_user(_session(1, user).id)
        assert found is not None
        assert found.session.id == _session(1, user).id and found.user.id == user.id
        assert found.user.email == user.email
        assert store.sessions.get_with_user("10000000-0000-4000-8000-999999999999") is None

    def test_get_with_user_sees_blocking_at_once(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        store.users.set_blocked(user.id, True, T0)
        found = store.sessions.get_with_user(_session(1, user).id)
        assert found is not None and found.user.blocked is True

    def test_lookup_by_current_refresh_hash(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        got = store.sessions.get_by_refresh_hash("refresh-hash-1")
        assert got is not None and got.id == _session(1, user).id
        assert store.sessions.get_by_refresh_hash("refresh-hash-unknown") is None

    def test_rotate_swaps_hash_and_retires_the_old_one(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user)
        store.sessions.add(session)
        later = T0 + timedelta(minutes=3)
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-1b", later) is True
        assert store.sessions.get_by_refresh_hash("refresh-hash-1") is None
        current = store.sessions.get_by_refresh_hash("refresh-hash-1b")
        assert current is not None and current.last_active_at == later
        assert current.expires_at == session.expires_at  # refresh never extends the absolute lifetime
        retired = store.sessions.get_retired("refresh-hash-1")
        assert retired is not None
        assert (retired.session_id, retired.rotated_at) == (session.id, later)
        assert store.sessions.get_retired("refresh-hash-1b") is None

    def test_rotate_is_a_compare_and_swap(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user)
        store.sessions.add(session)
        assert store.sessions.rotate(session.id, "wrong-hash", "refresh-hash-x", T0) is False
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-2", T0) is True
        assert store.sessions.rotate(session.id, "refresh-hash-1", "refresh-hash-3", T0) is False
        got = store.sessions.get(session.id)
        assert got is not None and got.refresh_hash == "refresh-hash-2"

    def test_rotate_refuses_revoked_and_expired_sessions(self, store: Store) -> None:
        user = self._with_user(store)
        revoked, expiring = _session(1, user), _session(2, user, ttl=timedelta(hours=1))
        store.sessions.add(revoked)
        store.sessions.add(expiring)
        store.sessions.revoke(revoked.id, T0, "logout")
        assert store.sessions.rotate(revoked.id, "refresh-hash-1", "n1", T0) is False
        assert store.sessions.rotate(expiring.id, "refresh-hash-2", "n2", T0 + timedelta(hours=1)) is False
        assert store.sessions.rotate(expiring.id, "refresh-hash-2", "n2", T0 + timedelta(minutes=59)) is True

    def test_parallel_rotation_of_one_token_has_one_winner(self, store: Store) -> None:
        user = self._with_user(store)
        session = _session(1, user)
        store.sessions.add(session)
        results = _parallel(
            self.race_threads, lambda i: store.sessions.rotate(session.id, "refresh-hash-1", f"successor-{i}", T0)
        )
        assert results.count(True) == 1, results
        assert results.count(False) == self.race_threads - 1, results
        winner = results.index(True)
        got = store.sessions.get(session.id)
        assert got is not None and got.refresh_hash == f"successor-{winner}"

    def test_revoke_is_atomic_and_idempotent(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        sid = _session(1, user).id
        assert store.sessions.revoke(sid, T0, "logout") is True
        assert store.sessions.revoke(sid, T0 + timedelta(seconds=1), "logout") is False
        got = store.sessions.get(sid)
        assert got is not None and got.revoked_at == T0 and got.revoke_reason == "logout"
        assert store.sessions.revoke("10000000-0000-4000-8000-999999999999", T0, "logout") is False

    def test_parallel_revocations_report_one_revoker(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user))
        results = _parallel(self.race_threads, lambda i: store.sessions.revoke(_session(1, user).id, T0, "x"))
        assert results.count(True) == 1, results

    def test_revoke_all_touches_only_that_users_live_sessions(self, store: Store) -> None:
        alice, bob = _user(1), _user(2)
        store.users.add(alice)
        store.users.add(bob)
        for n in (1, 2, 3):
            store.sessions.add(_session(n, alice))
        store.sessions.add(_session(4, bob))
        store.sessions.revoke(_session(3, alice).id, T0, "logout")
        assert store.sessions.revoke_all_for_user(alice.id, T0, "blocked") == 2
        assert store.sessions.revoke_all_for_user(alice.id, T0, "blocked") == 0
        bob_session = store.sessions.get(_session(4, bob).id)
        assert bob_session is not None and bob_session.revoked_at is None

    def test_list_sessions_newest_first_and_active_only_by_default(self, store: Store) -> None:
        user = self._with_user(store)
        for n in (1, 2, 3):
            store.sessions.add(_session(n, user, at=T0 + timedelta(minutes=n)))
        store.sessions.revoke(_session(2, user).id, T0, "logout")
        now = T0 + timedelta(hours=1)
        assert [s.id for s in store.sessions.list_for_user(user.id, now=now)] == [
            _session(3, user).id,
            _session(1, user).id,
        ]
        everything = store.sessions.list_for_user(user.id, now=now, include_inactive=True)
        assert [s.id for s in everything] == [_session(n, user).id for n in (3, 2, 1)]
        expired_now = T0 + timedelta(days=8)
        assert store.sessions.list_for_user(user.id, now=expired_now) == []

    def test_purge_removes_expired_sessions_and_their_retired_hashes(self, store: Store) -> None:
        user = self._with_user(store)
        store.sessions.add(_session(1, user, ttl=timedelta(hours=1)))
        store.sessions.add(_session(2, user, ttl=timedelta(days=7)))
        store.sessions.rotate(_session(1, user).id, "refresh-hash-1", "refresh-hash-1b", T0)
        assert store.sessions.purge_expired(T0 + timedelta(hours=2)) == 1
        assert store.sessions.get(_session(1, user).id) is None
        assert store.sessions.get_retired("refresh-hash-1") is None
        assert store.sessions.get(_session(2, user).id) is not None

    # ======================================================================
    # One-time codes
    # ======================================================================
    def test_challenge_round_trips(self, store: Store) -> None:
        challenge = _challenge(1)
        store.otps.put(challenge)
        assert store.otps.get(challenge.email, "login") == challenge
        assert store.otps.get(challenge.email, "email_verify") is None

    def test_new_challenge_supersedes_same_email_and_purpose_only(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        store.otps.put(_challenge(2, purpose="email_verify"))
        store.otps.put(_challenge(3))
        current = store.otps.get("user1@example.com", "login")
        assert current is not None and current.id == _challenge(3).id and current.attempts == 0
        other = store.otps.get("user1@example.com", "email_verify")
        assert other is not None and other.id == _challenge(2).id
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None  # superseded code is dead

    def test_mark_sent_flips_pending_once(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        assert store.otps.mark_sent(_challenge(1).id) is True
        assert store.otps.mark_sent(_challenge(1).id) is False
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.status == "sent"
        assert store.otps.mark_sent(_challenge(9).id) is False

    def test_pending_challenge_cannot_be_attempted(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None

    def test_attempts_count_up_to_the_cap_then_the_code_is_dead(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        cid = _challenge(1).id
        assert [store.otps.register_attempt(cid, T0, 5) for _ in range(7)] == [1, 2, 3, 4, 5, None, None]
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.attempts == 5

    def test_attempt_after_expiry_is_refused(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        expiry = _challenge(1).expires_at
        assert store.otps.register_attempt(_challenge(1).id, expiry, 5) is None
        assert store.otps.register_attempt(_challenge(1).id, expiry - timedelta(milliseconds=1), 5) == 1

    def test_consume_succeeds_once_and_not_after_expiry(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        store.otps.put(_challenge(2, email="user2@example.com", status="sent"))
        assert store.otps.consume(_challenge(1).id, T0) is True
        assert store.otps.consume(_challenge(1).id, T0) is False
        assert store.otps.register_attempt(_challenge(1).id, T0, 5) is None
        assert store.otps.consume(_challenge(2).id, T0 + timedelta(minutes=5)) is False

    def test_redeem_counts_an_attempt_and_consumes_once(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        cid = _challenge(1).id
        assert store.otps.register_attempt(cid, T0, 5) == 1
        assert store.otps.redeem(cid, T0 + timedelta(seconds=1), 5) is True
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.attempts == 2 and got.consumed_at == T0 + timedelta(seconds=1)
        assert store.otps.redeem(cid, T0, 5) is False
        assert store.otps.consume(cid, T0) is False
        assert store.otps.register_attempt(cid, T0, 5) is None

    def test_redeem_refuses_a_dead_challenge_and_changes_nothing(self, store: Store) -> None:
        store.otps.put(_challenge(1))  # pending: never sent
        store.otps.put(_challenge(2, email="b@example.com", status="sent"))
        store.otps.put(_challenge(3, email="c@example.com", status="sent"))
        store.otps.put(_challenge(4, email="d@example.com", status="sent"))
        assert [store.otps.register_attempt(_challenge(3).id, T0, 2) for _ in range(2)] == [1, 2]
        assert store.otps.consume(_challenge(4).id, T0) is True
        expiry = _challenge(2).expires_at
        assert store.otps.redeem(_challenge(1).id, T0, 5) is False
        assert store.otps.redeem(_challenge(2).id, expiry, 5) is False  # expired at expires_at
        assert store.otps.redeem(_challenge(3).id, T0, 2) is False  # out of attempts
        assert store.otps.redeem(_challenge(4).id, T0, 5) is False  # consumed
        assert store.otps.redeem(_challenge(9).id, T0, 5) is False  # unknown
        expected = {"user1@example.com": (0, None), "b@example.com": (0, None), "c@example.com": (2, None), "d@example.com": (0, T0)}
        for email, (attempts, consumed_at) in expected.items():
            got = store.otps.get(email, "login")
            assert got is not None and (got.attempts, got.consumed_at) == (attempts, consumed_at), email
        assert store.otps.redeem(_challenge(2).id, expiry - timedelta(milliseconds=1), 5) is True

    def test_parallel_redemption_has_one_winner(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        results = _parallel(self.race_threads, lambda i: store.otps.redeem(_challenge(1).id, T0, 1_000))
        assert results.count(True) == 1, results
        got = store.otps.get("user1@example.com", "login")
        assert got is not None and got.consumed_at == T0

    def test_discard_removes_the_challenge(self, store: Store) -> None:
        store.otps.put(_challenge(1))
        store.otps.discard(_challenge(1).id)
        assert store.otps.get("user1@example.com", "login") is None
        store.otps.discard(_challenge(1).id)  # no error when already gone

    def test_purge_removes_expired_and_consumed_challenges(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        store.otps.put(_challenge(2, email="b@example.com", status="sent"))
        store.otps.put(_challenge(3, email="c@example.com", expires_at=T0 + timedelta(minutes=30)))
        store.otps.consume(_challenge(2).id, T0)
        assert store.otps.purge_expired(T0 + timedelta(minutes=10)) == 2
        assert store.otps.get("c@example.com", "login") is not None

    def test_parallel_attempts_never_exceed_the_cap(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        results = _parallel(50, lambda i: store.otps.register_attempt(_challenge(1).id, T0, 5))
        counted = [r for r in results if r is not None]
        assert sorted(counted) == [1, 2, 3, 4, 5], results  # type: ignore[type-var]

    def test_parallel_consumption_has_one_winner(self, store: Store) -> None:
        store.otps.put(_challenge(1, status="sent"))
        results = _parallel(self.race_threads, lambda i: store.otps.consume(_challenge(1).id, T0))
        assert results.count(True) == 1, results

    # ======================================================================
    # Reset tokens
    # ======================================================================
    def test_reset_token_consumed_once(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        got = store.reset_tokens.get("reset-hash-1")
        assert got is not None and got.user_id == user.id and got.consumed_at is None
        used = store.reset_tokens.consume("reset-hash-1", T0)
        assert used is not None and used.user_id == user.id
        assert store.reset_tokens.consume("reset-hash-1", T0) is None
        assert store.reset_tokens.consume("reset-hash-unknown", T0) is None

    def test_expired_reset_token_is_not_consumed(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        assert store.reset_tokens.consume("reset-hash-1", T0 + timedelta(hours=1)) is None

    def test_newer_reset_token_supersedes_older_ones(self, store: Store) -> None:
        user = self._with_user(store)
        other = _user(2)
        store.users.add(other)
        store.reset_tokens.put(_reset(1, user.id))
        store.reset_tokens.put(_reset(2, other.id))
        store.reset_tokens.put(_reset(3, user.id))
        assert store.reset_tokens.consume("reset-hash-1", T0) is None
        assert store.reset_tokens.get("reset-hash-2") is not None
        assert store.reset_tokens.consume("reset-hash-3", T0) is not None

    def test_delete_reset_tokens_for_user(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        assert store.reset_tokens.delete_for_user(user.id) == 1
        assert store.reset_tokens.get("reset-hash-1") is None

    def test_parallel_reset_consumption_has_one_winner(self, store: Store) -> None:
        user = self._with_user(store)
        store.reset_tokens.put(_reset(1, user.id))
        results = _parallel(self.race_threads, lambda i: store.reset_tokens.consume("reset-hash-1", T0))
        assert sum(isinstance(r, ResetToken) for r in results) == 1, results

    def test_purge_removes_expired_and_used_reset_tokens(self, store: Store) -> None:
        a, b = _user(1), _user(2)
        store.users.add(a)
        store.users.add(b)
        store.reset_tokens.put(_reset(1, a.id, ttl=timedelta(minutes=10)))
        store.reset_tokens.put(_reset(2, b.id, ttl=timedelta(hours=2)))
        assert store.reset_tokens.purge_expired(T0 + timedelta(hours=1)) == 1
        assert store.reset_tokens.get("reset-hash-2") is not None

    # ======================================================================
    # Rate-limit counters
    # ======================================================================
    def test_counter_counts_within_its_window(self, store: Store) -> None:
        end = T0 + timedelta(minutes=10)
        assert store.rate_limits.hit("k", T0, end).count == 1
        state = store.rate_limits.hit("k", T0 + timedelta(minutes=1), T0 + timedelta(minutes=11))
        assert (state.count, state.expires_at) == (2, end)  # the window does not slide
        assert store.rate_limits.hit("k", T0, end, amount=3).count == 5
        other = store.rate_limits.hit("other", T0, end)
        assert other.count == 1

    def test_expired_counter_restarts(self, store: Store) -> None:
        store.rate_limits.hit("k", T0, T0 + timedelta(minutes=10))
        store.rate_limits.hit("k", T0, T0 + timedelta(minutes=10))
        later = T0 + timedelta(minutes=10)
        state = store.rate_limits.hit("k", later, later + timedelta(minutes=10))
        assert (state.count, state.expires_at) == (1, later + timedelta(minutes=10))

    def test_counter_get_and_reset(self, store: Store) -> None:
        assert store.rate_limits.get("k", T0) is None
        store.rate_limits.hit("k", T0, T0 + timedelta(minutes=10))
        state = store.rate_limits.get("k", T0)
        assert state is not None and state.count == 1
        assert store.rate_limits.get("k", T0 + timedelta(minutes=10)) is None
        store.rate_limits.reset("k")
        assert store.rate_limits.get("k", T0) is None
        store.rate_limits.reset("never-existed")

    def test_parallel_hits_count_exactly(self, store: Store) -> None:
        n = 50
        results = _parallel(n, lambda i: store.rate_limits.hit("hot", T0, T0 + timedelta(minutes=10)).count)
        assert sorted(results) == list(range(1, n + 1)), results  # type: ignore[type-var]
        state = store.rate_limits.get("hot", T0)
        assert state is not None and state.count == n

    def test_purge_removes_expired_counters(self, store: Store) -> None:
        store.rate_limits.hit("a", T0, T0 + timedelta(minutes=1))
        store.rate_limits.hit("b", T0, T0 + timedelta(hours=1))
        assert store.rate_limits.purge_expired(T0 + timedelta(minutes=5)) == 1
        assert store.rate_limits.get("b", T0 + timedelta(minutes=5)) is not None

    # ======================================================================
    # Audit log
    # ======================================================================
    def _event(self, type: AuditEventType, at: datetime = T0, **kw: Any) -> AuditEvent:
        return AuditEvent(type=type, occurred_at=at, **kw)

    def test_audit_append_assigns_ids_and_round_trips(self, store: Store) -> None:
        event = self._event(
            AuditEventType.LOGIN_FAILED,
            user_id="u1",
            email="a@example.com",
            ip_address="198.51.100.7",
            user_agent="ua",
            session_id="s1",
            reason="invalid_credentials",
        )
        stored = store.audit.append(event)
        assert stored.id is not None
        (got,) = store.audit.query()
        assert got == stored
        assert attrs.evolve(got, id=None) == event

    def test_audit_keeps_append_order_for_equal_times(self, store: Store) -> None:
        kinds = [AuditEventType.OTP_SENT, AuditEventType.OTP_FAILED, AuditEventType.OTP_VERIFIED, AuditEventType.LOGOUT]
        for kind in kinds:
            store.audit.append(self._event(kind))
        store.audit.append(self._event(AuditEventType.LOGIN_SUCCESS, at=T0 - timedelta(seconds=1)))
        assert [e.type for e in store.audit.query()] == [AuditEventType.LOGIN_SUCCESS, *kinds]

    def test_audit_filters(self, store: Store) -> None:
        store.audit.append(self._event(AuditEventType.LOGIN_FAILED, T0, user_id="u1", email="a@example.com"))
        store.audit.append(self._event(AuditEventType.LOGIN_SUCCESS, T0 + timedelta(minutes=1), user_id="u1"))
        store.audit.append(self._event(AuditEventType.LOGIN_FAILED, T0 + timedelta(minutes=2), user_id="u2"))
        assert len(store.audit.query(user_id="u1")) == 2
        assert len(store.audit.query(email="a@example.com")) == 1
        assert len(store.audit.query(types=[AuditEventType.LOGIN_FAILED])) == 2
        assert len(store.audit.query(since=T0 + timedelta(minutes=1))) == 2
        assert len(store.audit.query(until=T0 + timedelta(minutes=1))) == 1
        assert [e.user_id for e in store.audit.query(limit=2)] == ["u1", "u1"]

    def test_audit_purge_before(self, store: Store) -> None:
        store.audit.append(self._event(AuditEventType.LOGOUT, T0))
        store.audit.append(self._event(AuditEventType.LOGOUT, T0 + timedelta(days=40)))
        assert store.audit.purge_before(T0 + timedelta(days=30)) == 1
        assert len(store.audit.query()) == 1

    def test_purges_with_a_limit_delete_bounded_batches(self, store: Store) -> None:
        user = self._with_user(store)
        for n in range(1, 6):
            store.sessions.add(_session(n, user, ttl=timedelta(hours=1)))
            store.rate_limits.hit(f"key-{n}", T0, T0 + timedelta(minutes=1))
            store.audit.append(self._event(AuditEventType.LOGOUT, T0 + timedelta(seconds=n)))
        for n in range(1, 4):
            store.sessions.rotate(_session(n, user).id, f"refresh-hash-{n}", f"refresh-hash-{n}b", T0)
        store.reset_tokens.put(_reset(1, user.id, ttl=timedelta(minutes=1)))
        store.otps.put(_challenge(1))
        store.otps.put(_challenge(2, email="user2@example.com"))
        store.otps.put(_challenge(3, email="user3@example.com"))
        later = T0 + timedelta(days=1)
        assert store.sessions.purge_expired(later, limit=2) == 2
        assert store.sessions.purge_expired(later, limit=2) == 2
        assert store.sessions.purge_expired(later, limit=2) == 1
        assert store.sessions.purge_expired(later, limit=2) == 0
        assert all(store.sessions.get_retired(f"refresh-hash-{n}") is None for n in range(1, 4))
        assert [store.rate_limits.purge_expired(later, limit=3) for _ in range(3)] == [3, 2, 0]
        assert [store.otps.purge_expired(later, limit=2) for _ in range(3)] == [2, 1, 0]
        assert store.reset_tokens.purge_expired(later, limit=1) == 1
        # the oldest audit rows go first
        assert store.audit.purge_before(T0 + timedelta(seconds=10), limit=2) == 2
        assert [e.occurred_at for e in store.audit.query()] == [T0 + timedelta(seconds=n) for n in (3, 4, 5)]

    def test_purge_expired_drains_every_table_in_batches(self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock) -> None:
        for n in range(5):
            self._logged_in(auth, outbox, f"user{n}@example.com")
        clock.advance(days=8)
        counts = auth.purge_expired(batch_size=2)
        assert counts["sessions"] == 5
        assert counts["otp_challenges"] == 5
        assert auth.purge_expired(batch_size=2) == {"sessions": 0, "otp_challenges": 0, "reset_tokens": 0, "rate_limits": 0}

    # ======================================================================
    # The rules end to end, through the facade, on this store
    # ======================================================================
    def test_whole_flow_on_this_store(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        user = auth.auth.register("Ada@Example.com", PASSWORD, **self.profile_fields)
        assert user.email == "ada@example.com" and dict(user.profile) == self.profile_fields
        assert dict(auth.user.get_by_id(user.id).profile) == self.profile_fields
        assert auth.auth.login("ada@example.com", PASSWORD).otp_required is True
        result = auth.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
        assert auth.auth.get_user_from_token(result.access_token).id == user.id
        pair = auth.auth.refresh(result.refresh_token)
        assert auth.auth.get_user_from_token(pair.access_token).id == user.id
        assert auth.auth.logout(pair.session_id) is True
        assert auth.auth.logout(pair.session_id) is False
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(pair.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(pair.refresh_token)

    def test_fifty_parallel_wrong_codes_count_at_most_five_attempts(
        self, outbox: Outbox, store: Store, clock: FakeClock
    ) -> None:
        # A high per-account cap, so only the per-code cap is under test.
        config = test_config(otp_account_failure_limit=Limit(1000, timedelta(hours=1)))
        auth = MindmeshAuth(store=store, mailer=outbox, config=config, clock=clock)
        auth.auth.register("ada@example.com", PASSWORD)
        auth.auth.login("ada@example.com", PASSWORD)
        right = outbox.last_code("ada@example.com")
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        results = _parallel(50, lambda i: auth.auth.verify_otp("ada@example.com", wrong, "login"))
        assert all(isinstance(r, InvalidOtp) for r in results), results
        challenge = store.otps.get("ada@example.com", "login")
        assert challenge is not None and challenge.attempts == 5
        with pytest.raises(InvalidOtp):  # the code is dead, even when right
            auth.auth.verify_otp("ada@example.com", right, "login")

    def test_twenty_parallel_correct_codes_open_one_session(
        self, auth: MindmeshAuth, outbox: Outbox, store: Store
    ) -> None:
        user = auth.auth.register("ada@example.com", PASSWORD)
        auth.auth.login("ada@example.com", PASSWORD)
        code = outbox.last_code("ada@example.com")
        results = _parallel(self.race_threads, lambda i: auth.auth.verify_otp("ada@example.com", code, "login"))
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert all(isinstance(r, InvalidOtp) for r in results if isinstance(r, BaseException)), results
        assert len(store.sessions.list_for_user(user.id, now=T0 + timedelta(seconds=1))) == 1

    def test_twenty_parallel_refreshes_leave_one_live_successor(
        self, auth: MindmeshAuth, outbox: Outbox, store: Store
    ) -> None:
        login = self._logged_in(auth, outbox)
        results = _parallel(self.race_threads, lambda i: auth.auth.refresh(login.refresh_token))
        pairs = [r for r in results if not isinstance(r, BaseException)]
        assert len(pairs) == 1, results
        assert all(isinstance(r, InvalidRefreshToken) for r in results if isinstance(r, BaseException)), results
        session = store.sessions.get(login.session_id)
        assert session is not None and session.revoked_at is None
        assert auth.auth.get_user_from_token(pairs[0].access_token).email == "ada@example.com"
        assert auth.auth.refresh(pairs[0].refresh_token).session_id == login.session_id

    def test_parallel_refreshes_in_grace_period_share_one_successor(
        self, store: Store, outbox: Outbox, clock: FakeClock
    ) -> None:
        auth = MindmeshAuth(
            store=store, mailer=outbox, config=test_config(refresh_grace_period=timedelta(seconds=10)), clock=clock
        )
        login = self._logged_in(auth, outbox)
        results = _parallel(self.race_threads, lambda i: auth.auth.refresh(login.refresh_token))
        assert not any(isinstance(r, BaseException) for r in results), results
        assert len({r.refresh_token for r in results}) == 1  # type: ignore[union-attr]
        session = store.sessions.get(login.session_id)
        assert session is not None and session.revoked_at is None

    def test_replayed_refresh_token_revokes_the_session(
        self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock, store: Store
    ) -> None:
        login = self._logged_in(auth, outbox)
        pair = auth.auth.refresh(login.refresh_token)
        clock.advance(seconds=30)
        with pytest.raises(InvalidRefreshToken) as caught:
            auth.auth.refresh(login.refresh_token)
        assert caught.value.code == "refresh_token_reused"
        session = store.sessions.get(login.session_id)
        assert session is not None and session.revoked_at is not None
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(pair.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(pair.refresh_token)

    def test_thirty_parallel_otp_sends_send_three_mails(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        auth.auth.register("ada@example.com", PASSWORD)
        results = _parallel(30, lambda i: auth.otp.send("ada@example.com", "email_verify"))
        assert len(outbox.for_address("ada@example.com", "otp")) == 3
        assert sum(isinstance(r, RateLimited) for r in results) == 27, results

    def test_blocking_revokes_every_session_at_once(self, auth: MindmeshAuth, outbox: Outbox) -> None:
        login = self._logged_in(auth, outbox)
        auth.user.block(login.user.id)
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(login.access_token)
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(login.refresh_token)
        assert auth.sessions.list(login.user.id) == []

    def test_password_reset_revokes_sessions_and_is_one_time(
        self, auth: MindmeshAuth, outbox: Outbox
    ) -> None:
        login = self._logged_in(auth, outbox)
        auth.password.request_reset("ada@example.com")
        token = outbox.last_reset_token("ada@example.com")
        results = _parallel(10, lambda i: auth.password.reset(token, f"brand new password {i}"))
        assert sum(r is None for r in results) == 1, results
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(login.access_token)
        assert auth.sessions.list(login.user.id) == []
