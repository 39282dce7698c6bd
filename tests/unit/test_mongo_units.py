"""MongoStore units of work by compensation (``MongoStore.atomic``), on mongomock.

A unit that writes and then raises must leave the store as it was (compared
through the repositories' reads AND the raw documents), except for what is
kept on purpose: revocations, rate-limit hits and counted OTP attempts.
Nested blocks are savepoints; units are per thread; a fault injected after
the k-th write of a unit (``FaultyStore``) is undone with the rest.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
import pymongo.errors
import pytest

from mindmesh_auth.adapters.mongo import MongoStore
from mindmesh_auth.core.errors import DuplicateKeyError, StorageUnavailable
from mindmesh_auth.core.models import AuditEvent, AuditEventType, OtpChallenge, ResetToken, Session, User
from mindmesh_auth.testing.faults import FaultyStore

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1, microseconds=456789)  # sub-millisecond on purpose: BSON truncates it
NOW_MS = NOW.replace(microsecond=NOW.microsecond // 1000 * 1000)  # NOW as stored
FAR = datetime(2999, 1, 1, tzinfo=timezone.utc)  # beyond any TTL monitor
ADA = "00000000-0000-4000-8000-000000000001"
BOB = "00000000-0000-4000-8000-000000000002"
CAROL = "00000000-0000-4000-8000-000000000003"
S1 = "10000000-0000-4000-8000-000000000001"
S2 = "10000000-0000-4000-8000-000000000002"
S3 = "10000000-0000-4000-8000-000000000003"
C_LOGIN = "20000000-0000-4000-8000-000000000001"
C_VERIFY = "20000000-0000-4000-8000-000000000002"
C_NEW = "20000000-0000-4000-8000-000000000003"
EMAILS = ("ada@example.com", "bob@example.com", "carol@example.com")
PURPOSES = ("login", "verify_email")
REFRESH = ("refresh-1", "refresh-2", "refresh-3", "refresh-4", "refresh-new", "refresh-bob")
RESETS = ("reset-live", "reset-used", "reset-new", "reset-bob")
KEYS = ("login:ada", "login:bob")
SEQUENCES = "mm_auth_sequences"  # the audit counter is not wound back (ids may have gaps)


class Boom(Exception):
    """The failure the test block raises after its writes."""


@pytest.fixture
def db() -> Iterator[Any]:
    client = mongomock.MongoClient(tz_aware=True)
    yield client["mm_units"]
    client.close()


@pytest.fixture
def store(db: Any) -> MongoStore:
    s = MongoStore(db)
    s.create_schema()
    _seed(s)
    return s


def _user(uid: str, email: str, *, blocked: bool = False, email_verified: bool = False, **profile: Any) -> User:
    return User(
        id=uid,
        email=email,
        password_hash=f"hash-{email}",
        created_at=T0,
        updated_at=T0,
        blocked=blocked,
        email_verified=email_verified,
        profile=profile,
    )


def _seed(store: MongoStore) -> None:
    store.users.add(_user(ADA, "ada@example.com", nickname="ada"))
    store.users.add(_user(BOB, "bob@example.com", blocked=True, email_verified=True))
    store.sessions.add(Session(S1, ADA, "refresh-1", T0, FAR, T0, ip_address="192.0.2.1"))
    store.sessions.add(Session(S2, ADA, "refresh-bob", T0, FAR, T0))
    store.otps.put(OtpChallenge(C_LOGIN, "ada@example.com", "login", "code-1", T0, FAR, ADA, status="sent"))
    store.otps.put(OtpChallenge(C_VERIFY, "ada@example.com", "verify_email", "code-2", T0, FAR, ADA))
    store.reset_tokens.put(ResetToken("r-used", ADA, "reset-used", T0, FAR))
    assert store.reset_tokens.consume("reset-used", T0) is not None
    store.reset_tokens.put(ResetToken("r-live", ADA, "reset-live", T0, FAR))
    store.reset_tokens.put(ResetToken("r-bob", BOB, "reset-bob", T0, FAR))
    store.rate_limits.hit("login:ada", T0, FAR)
    store.audit.append(AuditEvent(AuditEventType.LOGIN_SUCCESS, T0, user_id=ADA, email="ada@example.com"))


def _reads(store: MongoStore) -> dict[str, Any]:
    """Everything the repositories can tell about the seeded (and the tests') keys."""
    users = store.users.list(limit=1000)
    return {
        "users": users,
        "by_id": {uid: store.users.get(uid) for uid in (ADA, BOB, CAROL)},
        "by_email": {e: store.users.get_by_email(e) for e in EMAILS},
        "sessions": {uid: store.sessions.list_for_user(uid, now=T0, include_inactive=True) for uid in (ADA, BOB, CAROL)},
        "session": {sid: store.sessions.get(sid) for sid in (S1, S2, S3)},
        "by_refresh": {h: store.sessions.get_by_refresh_hash(h) for h in REFRESH},
        "retired": {h: store.sessions.get_retired(h) for h in REFRESH},
        "otps": {(e, p): store.otps.get(e, p) for e in EMAILS for p in PURPOSES},
        "resets": {h: store.reset_tokens.get(h) for h in RESETS},
        "counters": {k: store.rate_limits.get(k, T0) for k in KEYS},
        "audit": store.audit.query(limit=1000),
    }


def _raw(db: Any) -> dict[str, list[dict[str, Any]]]:
    """Every stored document (but the audit counter), in a stable order."""
    return {
        name: copy.deepcopy(sorted(db[name].find(), key=lambda d: repr(d["_id"])))
        for name in sorted(db.list_collection_names())
        if name != SEQUENCES
    }


def _state(store: MongoStore, db: Any) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    return _reads(store), _raw(db)


def _fail_after(store: Any, writes: Callable[[Any], object]) -> None:
    """Run ``writes`` in a unit that then raises; the very same exception must come out."""
    boom = Boom()
    with pytest.raises(Boom) as caught, store.atomic():
        writes(store)
        raise boom
    assert caught.value is boom


def _in_other_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread (outside this thread's unit) and return its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result(timeout=30)


# ---------------------------------------------------------------------------
# Every write method, alone and as the core combines them: undone exactly
# ---------------------------------------------------------------------------
def _register(s: MongoStore) -> None:
    s.users.add(_user(CAROL, "carol@example.com", nickname="c"))
    s.audit.append(AuditEvent(AuditEventType.REGISTRATION_SUCCESS, NOW, user_id=CAROL, email="carol@example.com"))


def _set_all(s: MongoStore) -> None:
    assert s.users.set_password_hash(ADA, "hash-new", NOW)
    assert s.users.set_blocked(ADA, True, NOW + timedelta(seconds=1))
    assert s.users.set_email_verified(ADA, NOW + timedelta(seconds=2))
    assert s.users.set_password_hash(ADA, "hash-newer", NOW + timedelta(seconds=3))


def _rotate_twice(s: MongoStore) -> None:
    assert s.sessions.rotate(S1, "refresh-1", "refresh-2", NOW)
    assert s.sessions.rotate(S1, "refresh-2", "refresh-3", NOW + timedelta(seconds=1))


def _refresh(s: MongoStore) -> None:
    assert s.sessions.rotate(S1, "refresh-1", "refresh-2", NOW)
    s.audit.append(AuditEvent(AuditEventType.SESSION_REFRESHED, NOW, user_id=ADA, session_id=S1))


def _verify_otp(s: MongoStore) -> None:
    assert s.otps.consume(C_LOGIN, NOW)
    s.audit.append(AuditEvent(AuditEventType.OTP_VERIFIED, NOW, user_id=ADA))
    s.sessions.add(Session(S3, ADA, "refresh-new", NOW, FAR, NOW))
    s.audit.append(AuditEvent(AuditEventType.LOGIN_SUCCESS, NOW, user_id=ADA, session_id=S3))


def _otp_send(s: MongoStore) -> None:
    s.otps.put(OtpChallenge(C_NEW, "ada@example.com", "login", "code-new", NOW, FAR, ADA))
    assert s.otps.mark_sent(C_NEW)
    s.otps.discard(C_NEW)


def _reset_request(s: MongoStore) -> None:
    s.reset_tokens.put(ResetToken("r-new", ADA, "reset-new", NOW, FAR))
    assert s.reset_tokens.get("reset-live") is None  # superseded
    assert s.reset_tokens.consume("reset-new", NOW) is not None


def _password_reset_without_revocation(s: MongoStore) -> None:
    assert s.reset_tokens.consume("reset-live", NOW) is not None
    assert s.users.set_password_hash(ADA, "hash-new", NOW)
    assert s.reset_tokens.delete_for_user(ADA) == 2
    s.audit.append(AuditEvent(AuditEventType.PASSWORD_RESET_COMPLETED, NOW, user_id=ADA))


WRITES: dict[str, Callable[[MongoStore], object]] = {
    "users.add": lambda s: s.users.add(_user(CAROL, "carol@example.com", nickname="c")),
    "users.set_password_hash": lambda s: s.users.set_password_hash(ADA, "hash-new", NOW),
    "users.set_blocked": lambda s: s.users.set_blocked(ADA, True, NOW),
    "users.set_blocked(unblock)": lambda s: s.users.set_blocked(BOB, False, NOW),
    "users.set_blocked(idempotent)": lambda s: s.users.set_blocked(BOB, True, NOW),
    "users.set_email_verified": lambda s: s.users.set_email_verified(ADA, NOW),
    "users.set_* stacked": _set_all,
    "sessions.add": lambda s: s.sessions.add(Session(S3, ADA, "refresh-new", NOW, FAR, NOW)),
    "sessions.rotate": lambda s: s.sessions.rotate(S1, "refresh-1", "refresh-2", NOW),
    "sessions.rotate twice": _rotate_twice,
    "otps.put(replace)": lambda s: s.otps.put(OtpChallenge(C_NEW, "ada@example.com", "login", "code-new", NOW, FAR, ADA)),
    "otps.put(new)": lambda s: s.otps.put(OtpChallenge(C_NEW, "carol@example.com", "login", "code-new", NOW, FAR)),
    "otps.put(same id again)": lambda s: s.otps.put(OtpChallenge(C_LOGIN, "ada@example.com", "login", "x", NOW, FAR, ADA)),
    "otps.mark_sent": lambda s: s.otps.mark_sent(C_VERIFY),
    "otps.consume": lambda s: s.otps.consume(C_LOGIN, NOW),
    "otps.discard": lambda s: s.otps.discard(C_LOGIN),
    "otps send flow": _otp_send,
    "reset_tokens.put": lambda s: s.reset_tokens.put(ResetToken("r-new", ADA, "reset-new", NOW, FAR)),
    "reset_tokens.put(same hash)": lambda s: s.reset_tokens.put(ResetToken("r-again", ADA, "reset-live", NOW, FAR)),
    "reset_tokens.consume": lambda s: s.reset_tokens.consume("reset-live", NOW),
    "reset_tokens.delete_for_user": lambda s: s.reset_tokens.delete_for_user(ADA),
    "reset request flow": _reset_request,
    "audit.append": lambda s: s.audit.append(AuditEvent(AuditEventType.LOGOUT, NOW, user_id=ADA)),
    "register": _register,
    "refresh": _refresh,
    "verify_otp": _verify_otp,
    "password reset (no live session)": _password_reset_without_revocation,
}


@pytest.mark.parametrize("writes", WRITES.values(), ids=WRITES.keys())
def test_a_failed_unit_leaves_the_store_as_it_was(store: MongoStore, db: Any, writes: Callable[[MongoStore], object]) -> None:
    before = _state(store, db)
    _fail_after(store, lambda s: (writes(s), _assert_changed(s, db, before)))
    assert _state(store, db) == before
    assert not store._unit.open


def _assert_changed(store: MongoStore, db: Any, before: Any) -> None:
    # Read inside the unit, by the unit's own thread: its writes are visible before the end.
    assert _state(store, db) != before


@pytest.mark.parametrize("writes", WRITES.values(), ids=WRITES.keys())
def test_a_unit_that_ends_normally_keeps_every_write(db: Any, writes: Callable[[MongoStore], object]) -> None:
    plain, unit = MongoStore(db, collection_prefix="plain_"), MongoStore(db, collection_prefix="unit_")
    for s in (plain, unit):
        s.create_schema()
        _seed(s)
    writes(plain)
    with unit.atomic():
        writes(unit)
    assert _reads(unit) == _reads(plain)


def test_units_can_fail_one_after_another(store: MongoStore, db: Any) -> None:
    _fail_after(store, _verify_otp)
    before = _state(store, db)
    _fail_after(store, lambda s: s.audit.append(AuditEvent(AuditEventType.LOGOUT, NOW)))
    assert _state(store, db) == before


# ---------------------------------------------------------------------------
# Kept on purpose: revocations, rate-limit hits, counted attempts
# ---------------------------------------------------------------------------
def test_revocations_stay(store: MongoStore, db: Any) -> None:
    before = _reads(store)

    def block(s: MongoStore) -> None:
        assert s.sessions.revoke_all_for_user(ADA, NOW, "blocked") == 2
        assert s.users.set_blocked(ADA, True, NOW)
        s.audit.append(AuditEvent(AuditEventType.ACCOUNT_BLOCKED, NOW, user_id=ADA))

    _fail_after(store, block)
    after = _reads(store)
    sessions = after.pop("sessions")[ADA]
    assert {x.id for x in sessions} == {S1, S2}
    assert all(x.revoked_at == NOW_MS and x.revoke_reason == "blocked" for x in sessions)
    assert after["by_id"][ADA] == before["by_id"][ADA]  # not blocked
    assert after["audit"] == before["audit"]


def test_a_revoked_session_created_in_the_unit_is_still_removed(store: MongoStore) -> None:
    def login_then_logout(s: MongoStore) -> None:
        s.sessions.add(Session(S3, ADA, "refresh-new", NOW, FAR, NOW))
        assert s.sessions.revoke(S3, NOW, "logout")

    _fail_after(store, login_then_logout)
    assert store.sessions.get(S3) is None


def test_password_reset_keeps_the_revocations_and_undoes_the_rest(store: MongoStore) -> None:
    before = _reads(store)

    def reset(s: MongoStore) -> None:
        assert s.reset_tokens.consume("reset-live", NOW) is not None
        assert s.sessions.revoke_all_for_user(ADA, NOW, "password_reset") == 2
        assert s.users.set_password_hash(ADA, "hash-new", NOW)
        assert s.reset_tokens.delete_for_user(ADA) == 2
        s.audit.append(AuditEvent(AuditEventType.PASSWORD_RESET_COMPLETED, NOW, user_id=ADA))

    _fail_after(store, reset)
    after = _reads(store)
    assert all(x.revoked_at is not None for x in after["sessions"][ADA])
    for key in ("users", "by_id", "by_email", "otps", "resets", "counters", "audit"):
        assert after[key] == before[key], key
    token = store.reset_tokens.get("reset-live")
    assert token is not None and token.consumed_at is None  # usable again: the reset can be retried


def test_rate_limit_hits_and_counted_attempts_stay(store: MongoStore) -> None:
    def failed_verify(s: MongoStore) -> None:
        assert s.rate_limits.hit("login:ada", NOW, FAR).count == 2
        assert s.rate_limits.hit("login:bob", NOW, FAR).count == 1
        assert s.otps.register_attempt(C_LOGIN, NOW, 5) == 1
        assert s.otps.consume(C_LOGIN, NOW)

    _fail_after(store, failed_verify)
    ada, bob = store.rate_limits.get("login:ada", T0), store.rate_limits.get("login:bob", T0)
    assert ada is not None and ada.count == 2
    assert bob is not None and bob.count == 1
    challenge = store.otps.get("ada@example.com", "login")
    assert challenge is not None and challenge.attempts == 1 and challenge.consumed_at is None


def test_purges_are_not_undone(store: MongoStore) -> None:
    def purge(s: MongoStore) -> None:
        assert s.reset_tokens.purge_expired(T0) == 1  # the consumed token
        assert s.otps.consume(C_LOGIN, NOW)

    _fail_after(store, purge)
    assert store.reset_tokens.get("reset-used") is None
    challenge = store.otps.get("ada@example.com", "login")
    assert challenge is not None and challenge.consumed_at is None


# ---------------------------------------------------------------------------
# Nesting: savepoints
# ---------------------------------------------------------------------------
def test_an_inner_failure_caught_by_the_outer_block_keeps_the_outer_writes(store: MongoStore) -> None:
    with store.atomic():
        store.users.add(_user(CAROL, "carol@example.com"))
        with pytest.raises(Boom), store.atomic():
            assert store.users.set_blocked(CAROL, True, NOW)
            store.sessions.add(Session(S3, CAROL, "refresh-new", NOW, FAR, NOW))
            raise Boom
        assert store.users.set_email_verified(CAROL, NOW)
    carol = store.users.get(CAROL)
    assert carol is not None and carol.email_verified and not carol.blocked
    assert store.sessions.get(S3) is None
    assert not store._unit.open


def test_an_inner_block_that_ended_is_undone_with_the_outer_one(store: MongoStore, db: Any) -> None:
    before = _state(store, db)

    def nested(s: MongoStore) -> None:
        s.users.add(_user(CAROL, "carol@example.com"))
        with s.atomic():
            s.sessions.add(Session(S3, CAROL, "refresh-new", NOW, FAR, NOW))
            with s.atomic():
                assert s.sessions.rotate(S3, "refresh-new", "refresh-4", NOW)
        s.audit.append(AuditEvent(AuditEventType.LOGIN_SUCCESS, NOW, user_id=CAROL))

    _fail_after(store, nested)
    assert _state(store, db) == before


def test_writes_outside_any_unit_are_never_undone(store: MongoStore) -> None:
    store.users.add(_user(CAROL, "carol@example.com"))  # no unit open: nothing recorded
    _fail_after(store, lambda s: s.users.set_blocked(CAROL, True, NOW))
    carol = store.users.get(CAROL)
    assert carol is not None and not carol.blocked


# ---------------------------------------------------------------------------
# Threads: each has its own units
# ---------------------------------------------------------------------------
def test_two_threads_units_do_not_mix(store: MongoStore) -> None:
    a_wrote, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def a() -> None:  # writes, waits for b's whole unit, then fails
        try:
            with pytest.raises(Boom), store.atomic():
                store.users.add(_user(CAROL, "carol@example.com"))
                a_wrote.set()
                assert b_done.wait(timeout=30)
                raise Boom
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    def b() -> None:  # writes inside a's unit's lifetime, ends normally
        try:
            assert a_wrote.wait(timeout=30)
            assert not store._unit.open
            with store.atomic():
                assert store.users.set_blocked(ADA, True, NOW)
                store.audit.append(AuditEvent(AuditEventType.ACCOUNT_BLOCKED, NOW, user_id=ADA))
            store.sessions.add(Session(S3, ADA, "refresh-new", NOW, FAR, NOW))  # outside any unit
        except BaseException as exc:
            errors.append(exc)
        finally:
            b_done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert store.users.get(CAROL) is None  # a's write undone
    ada = store.users.get(ADA)
    assert ada is not None and ada.blocked  # b's writes kept
    assert [e.type for e in store.audit.query(user_id=ADA)][-1] == AuditEventType.ACCOUNT_BLOCKED
    assert store.sessions.get(S3) is not None


def test_many_threads_failing_and_succeeding_units_at_once(store: MongoStore) -> None:
    n = 8
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        uid, email = f"00000000-0000-4000-8000-{100 + i:012d}", f"user{i}@example.com"
        barrier.wait(timeout=30)
        try:
            with store.atomic():
                store.users.add(_user(uid, email))
                store.audit.append(AuditEvent(AuditEventType.REGISTRATION_SUCCESS, NOW, user_id=uid))
                if i % 2:
                    raise Boom
        except Boom:
            pass

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(worker, range(n)))
    kept = {u.email for u in store.users.list(limit=100)} - {"ada@example.com", "bob@example.com"}
    assert kept == {f"user{i}@example.com" for i in range(0, n, 2)}
    audited = {e.user_id for e in store.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS])}
    assert audited == {f"00000000-0000-4000-8000-{100 + i:012d}" for i in range(0, n, 2)}


# ---------------------------------------------------------------------------
# Undo guards: a later change by someone else is never clobbered
# ---------------------------------------------------------------------------
def test_undo_leaves_a_value_someone_else_wrote_since(store: MongoStore) -> None:
    def writes(s: MongoStore) -> None:
        assert s.users.set_password_hash(ADA, "hash-mine", NOW)
        assert _in_other_thread(lambda: s.users.set_password_hash(ADA, "hash-theirs", NOW + timedelta(seconds=5)))
        assert s.users.set_blocked(BOB, False, NOW)
        assert _in_other_thread(lambda: s.users.set_email_verified(BOB, NOW + timedelta(seconds=5)))

    _fail_after(store, writes)
    ada, bob = store.users.get(ADA), store.users.get(BOB)
    assert ada is not None and ada.password_hash == "hash-theirs"
    # bob: the flag this unit wrote goes back; updated_at stays theirs (touched since).
    assert bob is not None and bob.blocked and bob.updated_at == NOW_MS + timedelta(seconds=5)


def test_undo_of_a_rotation_never_clobbers_a_later_rotation(store: MongoStore) -> None:
    def writes(s: MongoStore) -> None:
        assert s.sessions.rotate(S1, "refresh-1", "refresh-2", NOW)
        assert _in_other_thread(lambda: s.sessions.rotate(S1, "refresh-2", "refresh-3", NOW + timedelta(seconds=1)))

    _fail_after(store, writes)
    assert store.sessions.get_by_refresh_hash("refresh-3") is not None
    # both older hashes stay retired: a reuse of either is still detected
    assert store.sessions.get_retired("refresh-1") is not None
    assert store.sessions.get_retired("refresh-2") is not None


def test_undo_of_a_rotation_keeps_a_revocation_made_meanwhile(store: MongoStore) -> None:
    def writes(s: MongoStore) -> None:
        assert s.sessions.rotate(S1, "refresh-1", "refresh-2", NOW)
        assert _in_other_thread(lambda: s.sessions.revoke(S1, NOW, "logout"))

    _fail_after(store, writes)
    session = store.sessions.get(S1)
    assert session is not None and session.refresh_hash == "refresh-1" and session.revoke_reason == "logout"
    assert store.sessions.get_retired("refresh-1") is None


def test_undo_of_an_otp_put_leaves_a_newer_challenge(store: MongoStore) -> None:
    newer = OtpChallenge("20000000-0000-4000-8000-000000000009", "ada@example.com", "login", "theirs", NOW_MS, FAR, ADA)

    def writes(s: MongoStore) -> None:
        s.otps.put(OtpChallenge(C_NEW, "ada@example.com", "login", "mine", NOW, FAR, ADA))
        _in_other_thread(lambda: s.otps.put(newer))

    _fail_after(store, writes)
    assert store.otps.get("ada@example.com", "login") == newer


def test_undo_of_a_discard_leaves_a_newer_challenge(store: MongoStore, caplog: pytest.LogCaptureFixture) -> None:
    newer = OtpChallenge("20000000-0000-4000-8000-000000000009", "ada@example.com", "login", "theirs", NOW_MS, FAR, ADA)

    def writes(s: MongoStore) -> None:
        s.otps.discard(C_LOGIN)
        _in_other_thread(lambda: s.otps.put(newer))

    caplog.set_level(logging.DEBUG, logger="mindmesh_auth")
    _fail_after(store, writes)
    assert store.otps.get("ada@example.com", "login") == newer
    assert [r for r in caplog.records if r.name == "mindmesh_auth"] == []  # superseded: not an undo failure


def test_undo_of_a_consume_leaves_a_state_someone_else_wrote_since(store: MongoStore) -> None:
    theirs = NOW_MS + timedelta(minutes=1)

    def writes(s: MongoStore) -> None:
        assert s.otps.consume(C_LOGIN, NOW)
        assert s.reset_tokens.consume("reset-live", NOW) is not None
        _in_other_thread(
            lambda: s.otps.put(OtpChallenge(C_LOGIN, "ada@example.com", "login", "c", T0, FAR, ADA, consumed_at=theirs))
        )
        _in_other_thread(lambda: s.reset_tokens.put(ResetToken("r-live", ADA, "reset-live", T0, FAR, consumed_at=theirs)))

    _fail_after(store, writes)
    challenge, token = store.otps.get("ada@example.com", "login"), store.reset_tokens.get("reset-live")
    assert challenge is not None and challenge.consumed_at == theirs
    assert token is not None and token.consumed_at == theirs


def test_an_undone_consume_can_be_consumed_again_by_anyone(store: MongoStore) -> None:
    _fail_after(store, lambda s: s.otps.consume(C_LOGIN, NOW))
    assert _in_other_thread(lambda: store.otps.consume(C_LOGIN, NOW))


# ---------------------------------------------------------------------------
# Writes that fail part-way, lost replies and injected faults
# ---------------------------------------------------------------------------
class _Wrap:
    """A collection whose named method runs (``after``) or not, then raises ``error``."""

    def __init__(self, real: Any, method: str, error: Exception, *, run: bool) -> None:
        self._real, self._method, self._error, self._run = real, method, error, run

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._run:
                attr(*args, **kwargs)
            raise self._error

        return call


@pytest.mark.parametrize(
    ("repo", "attr", "method", "writes"),
    [
        ("users", "_c", "insert_one", WRITES["users.add"]),
        ("sessions", "_c", "insert_one", WRITES["sessions.add"]),
        ("audit", "_c", "insert_one", WRITES["audit.append"]),
        ("sessions", "_retired", "update_one", WRITES["sessions.rotate"]),
    ],
    ids=["users.add", "sessions.add", "audit.append", "sessions.rotate(retired record)"],
)
def test_a_write_whose_reply_was_lost_is_undone(
    store: MongoStore, db: Any, repo: str, attr: str, method: str, writes: Any
) -> None:
    before = _state(store, db)
    target = getattr(store, repo)
    real = getattr(target, attr)
    setattr(target, attr, _Wrap(real, method, pymongo.errors.AutoReconnect("lost"), run=True))
    try:
        with pytest.raises(StorageUnavailable), store.atomic():
            writes(store)
    finally:
        setattr(target, attr, real)
    assert _state(store, db) == before


def test_a_refused_insert_undoes_nothing_of_anyone_else(store: MongoStore, db: Any) -> None:
    before = _state(store, db)
    with pytest.raises(DuplicateKeyError), store.atomic():
        store.users.add(_user(CAROL, "ada@example.com"))  # ada's email: refused
    with pytest.raises(DuplicateKeyError), store.atomic():
        store.users.add(_user(ADA, "carol@example.com"))  # ada's id: refused
    assert _state(store, db) == before


def test_a_reset_token_put_that_fails_after_superseding_puts_them_back(store: MongoStore, db: Any) -> None:
    before = _state(store, db)
    real = store.reset_tokens._c
    store.reset_tokens._c = _Wrap(real, "find_one_and_replace", pymongo.errors.AutoReconnect("x"), run=False)  # type: ignore[assignment]
    try:
        with pytest.raises(StorageUnavailable), store.atomic():
            store.reset_tokens.put(ResetToken("r-new", ADA, "reset-new", NOW, FAR))
    finally:
        store.reset_tokens._c = real
    assert _state(store, db) == before


def test_a_delete_for_user_that_fails_part_way_puts_back_what_it_deleted(store: MongoStore, db: Any) -> None:
    before = _state(store, db)
    real = store.reset_tokens._c
    calls = {"n": 0}

    class SecondDeleteFails:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def find_one_and_delete(self, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise pymongo.errors.AutoReconnect("lost")
            return real.find_one_and_delete(*args, **kwargs)

    store.reset_tokens._c = SecondDeleteFails()  # type: ignore[assignment]
    try:
        with pytest.raises(StorageUnavailable), store.atomic():
            store.reset_tokens.delete_for_user(ADA)
    finally:
        store.reset_tokens._c = real
    assert calls["n"] == 2
    assert _state(store, db) == before


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_injected_fault_at_any_write_of_a_unit_is_undone(db: Any, when: Any) -> None:
    inner = MongoStore(db)
    inner.create_schema()
    _seed(inner)
    faulty = FaultyStore(inner)

    def operation(s: Any) -> None:
        with s.atomic():
            _verify_otp(s)
            _refresh(s)
            _reset_request(s)
            _set_all(s)
            _register(s)

    counted = MongoStore(db, collection_prefix="count_")
    counted.create_schema()
    _seed(counted)
    counter = FaultyStore(counted)
    with counter.recording() as writes:
        operation(counter)
    n = len(writes)
    assert n == 14, writes

    before = _state(inner, db)
    for k in range(1, n + 1):
        faulty.fail_at(k, when=when)
        with pytest.raises(StorageUnavailable):
            operation(faulty)
        assert faulty.fired
        assert _state(inner, db) == before, f"k={k}"
    faulty.disarm()
    operation(faulty)  # and with no fault, the whole unit lands
    assert _state(inner, db) != before


# ---------------------------------------------------------------------------
# An undo that fails: logged once, without secrets; the others still run
# ---------------------------------------------------------------------------
def test_a_failing_undo_is_logged_once_with_the_class_only(store: MongoStore, caplog: pytest.LogCaptureFixture) -> None:
    real = store.users._c
    boom = Boom()
    caplog.set_level(logging.DEBUG, logger="mindmesh_auth")
    with pytest.raises(Boom) as caught, store.atomic():
        assert store.users.set_password_hash(ADA, "secret-hash-value", NOW)
        store.audit.append(AuditEvent(AuditEventType.PASSWORD_CHANGED, NOW, user_id=ADA, email="ada@example.com"))
        store.otps.discard(C_LOGIN)
        store.users._c = _Wrap(real, "update_one", pymongo.errors.AutoReconnect("ada@example.com secret-hash-value"), run=False)  # type: ignore[assignment]
        raise boom
    store.users._c = real
    assert caught.value is boom  # the block's exception, not the undo's
    records = [r for r in caplog.records if r.name == "mindmesh_auth"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR and record.exc_info is None
    message = record.getMessage()
    assert "users.set_password_hash (AutoReconnect)" in message and "1 of its 3 writes" in message
    for secret in ("ada@example.com", "secret-hash-value", ADA):
        assert secret not in message
    # the other undo actions ran
    assert [e.type for e in store.audit.query()] == [AuditEventType.LOGIN_SUCCESS]
    assert store.otps.get("ada@example.com", "login") is not None
    ada = store.users.get(ADA)
    assert ada is not None and ada.password_hash == "secret-hash-value"  # the one that could not be undone


def test_a_unit_that_succeeds_logs_nothing(store: MongoStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mindmesh_auth")
    _fail_after(store, _verify_otp)
    with store.atomic():
        _verify_otp(store)
    assert [r for r in caplog.records if r.name == "mindmesh_auth"] == []
