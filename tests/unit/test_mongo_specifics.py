"""MongoStore specifics the shared contract cannot see: query-operator injection,
indexes, profile keys, UTC normalisation, error translation, URL wiring and the
non-atomic steps' recovery paths. All through mongomock (no server needed)."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
import pymongo.errors
import pytest

from mindmesh_auth import AuthConfig, MindmeshAuth
from mindmesh_auth.adapters.mail import Outbox
from mindmesh_auth.adapters.mongo import MongoStore
from mindmesh_auth.core.errors import (
    ConfigurationError,
    DuplicateKeyError,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidToken,
    StorageError,
    StorageUnavailable,
    ValidationError,
)
from mindmesh_auth.core.models import AuditEvent, AuditEventType, OtpChallenge, ResetToken, Session, User
from mindmesh_auth.wiring import store_from_url

T0 = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=timezone.utc)
FAR = datetime(2999, 1, 1, tzinfo=timezone.utc)  # beyond any TTL monitor
UID = "00000000-0000-4000-8000-000000000001"
SID = "10000000-0000-4000-8000-000000000001"
CID = "20000000-0000-4000-8000-000000000001"
PASSWORD = "correct horse battery"
OPERATORS: list[Any] = [{"$ne": None}, {"$gt": ""}, ["x"], {"$regex": ".*"}]
NOT_STRINGS: list[Any] = [*OPERATORS, None, 1, b"x"]


@pytest.fixture
def db() -> Iterator[Any]:
    client = mongomock.MongoClient(tz_aware=True)
    yield client["mm_unit"]
    client.close()


@pytest.fixture
def store(db: Any) -> MongoStore:
    s = MongoStore(db)
    s.create_schema()
    return s


def _user(n: int = 1, email: str = "ada@example.com", **profile: Any) -> User:
    return User(
        id=f"00000000-0000-4000-8000-{n:012d}",
        email=email,
        password_hash="hash",
        created_at=T0,
        updated_at=T0,
        profile=profile,
    )


def _seed(store: MongoStore) -> None:
    """One of everything, so an injected ``{"$ne": None}`` would have something to match."""
    store.users.add(_user())
    store.sessions.add(Session(SID, UID, "refresh-1", T0, FAR, T0))
    store.otps.put(OtpChallenge(CID, "ada@example.com", "login", "code-1", T0, FAR, UID, status="sent"))
    store.reset_tokens.put(ResetToken("30000000-0000-4000-8000-000000000001", UID, "reset-1", T0, FAR))
    store.rate_limits.hit("k", T0, FAR)
    store.audit.append(AuditEvent(AuditEventType.LOGOUT, T0, user_id=UID, email="ada@example.com"))


def _snapshot(db: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: copy.deepcopy(sorted(db[name].find(), key=repr)) for name in sorted(db.list_collection_names())}


class _NoQueries:
    """Stands in for a collection: any use fails the test (the guard must run first)."""

    def __getattr__(self, name: str) -> Any:
        def query(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"a query ran: {name}")

        return query


def _forbid_queries(store: MongoStore) -> None:
    for repo in (store.users, store.sessions, store.otps, store.reset_tokens, store.rate_limits, store.audit):
        for attr in ("_c", "_retired", "_users", "_seq"):
            if hasattr(repo, attr):
                setattr(repo, attr, _NoQueries())


# ---------------------------------------------------------------------------
# Only strings reach a filter: every repository entry point, before any query
# ---------------------------------------------------------------------------
Call = Callable[[MongoStore, Any], object]

REPOSITORY_CALLS: dict[str, Call] = {
    "users.get": lambda s, x: s.users.get(x),
    "users.get_by_email": lambda s, x: s.users.get_by_email(x),
    "users.set_password_hash(user_id)": lambda s, x: s.users.set_password_hash(x, "h", T0),
    "users.set_password_hash(hash)": lambda s, x: s.users.set_password_hash(UID, x, T0),
    "users.set_blocked": lambda s, x: s.users.set_blocked(x, True, T0),
    "users.set_email_verified": lambda s, x: s.users.set_email_verified(x, T0),
    "users.add(email)": lambda s, x: s.users.add(_user(2, email=x)),
    "sessions.get": lambda s, x: s.sessions.get(x),
    "sessions.get_with_user": lambda s, x: s.sessions.get_with_user(x),
    "sessions.get_by_refresh_hash": lambda s, x: s.sessions.get_by_refresh_hash(x),
    "sessions.rotate(session_id)": lambda s, x: s.sessions.rotate(x, "refresh-1", "n", T0),
    "sessions.rotate(old_hash)": lambda s, x: s.sessions.rotate(SID, x, "n", T0),
    "sessions.rotate(new_hash)": lambda s, x: s.sessions.rotate(SID, "refresh-1", x, T0),
    "sessions.get_retired": lambda s, x: s.sessions.get_retired(x),
    "sessions.revoke": lambda s, x: s.sessions.revoke(x, T0, "logout"),
    "sessions.revoke(reason)": lambda s, x: s.sessions.revoke(SID, T0, x),
    "sessions.revoke_all_for_user": lambda s, x: s.sessions.revoke_all_for_user(x, T0, "blocked"),
    "sessions.list_for_user": lambda s, x: s.sessions.list_for_user(x, now=T0),
    "otps.get(email)": lambda s, x: s.otps.get(x, "login"),
    "otps.get(purpose)": lambda s, x: s.otps.get("ada@example.com", x),
    "otps.mark_sent": lambda s, x: s.otps.mark_sent(x),
    "otps.discard": lambda s, x: s.otps.discard(x),
    "otps.register_attempt": lambda s, x: s.otps.register_attempt(x, T0, 5),
    "otps.consume": lambda s, x: s.otps.consume(x, T0),
    "otps.put(email)": lambda s, x: s.otps.put(OtpChallenge(CID, x, "login", "c", T0, FAR)),
    "otps.put(purpose)": lambda s, x: s.otps.put(OtpChallenge(CID, "ada@example.com", x, "c", T0, FAR)),
    "reset_tokens.get": lambda s, x: s.reset_tokens.get(x),
    "reset_tokens.consume": lambda s, x: s.reset_tokens.consume(x, T0),
    "reset_tokens.delete_for_user": lambda s, x: s.reset_tokens.delete_for_user(x),
    "reset_tokens.put(user_id)": lambda s, x: s.reset_tokens.put(ResetToken("r", x, "reset-2", T0, FAR)),
    "reset_tokens.put(hash)": lambda s, x: s.reset_tokens.put(ResetToken("r", UID, x, T0, FAR)),
    "rate_limits.hit": lambda s, x: s.rate_limits.hit(x, T0, FAR),
    "rate_limits.get": lambda s, x: s.rate_limits.get(x, T0),
    "rate_limits.reset": lambda s, x: s.rate_limits.reset(x),
}

# None is a legal "no filter" here, so only operator objects are tested.
OPTIONAL_CALLS: dict[str, Call] = {
    "audit.query(user_id)": lambda s, x: s.audit.query(user_id=x),
    "audit.query(email)": lambda s, x: s.audit.query(email=x),
    "audit.append(user_id)": lambda s, x: s.audit.append(AuditEvent(AuditEventType.LOGOUT, T0, user_id=x)),
}


@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
@pytest.mark.parametrize("call", REPOSITORY_CALLS.values(), ids=REPOSITORY_CALLS.keys())
def test_repository_rejects_non_strings_before_any_query(store: MongoStore, db: Any, call: Call, value: Any) -> None:
    _seed(store)
    before = _snapshot(db)
    _forbid_queries(store)
    with pytest.raises(ValidationError):
        call(store, value)
    assert _snapshot(db) == before


@pytest.mark.parametrize("value", OPERATORS, ids=repr)
@pytest.mark.parametrize("call", OPTIONAL_CALLS.values(), ids=OPTIONAL_CALLS.keys())
def test_optional_filters_reject_operator_objects(store: MongoStore, db: Any, call: Call, value: Any) -> None:
    _seed(store)
    before = _snapshot(db)
    _forbid_queries(store)
    with pytest.raises(ValidationError):
        call(store, value)
    assert _snapshot(db) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.otps.register_attempt(CID, T0, {"$gt": 0}),
        lambda s: s.otps.register_attempt(CID, {"$gt": ""}, 5),
        lambda s: s.rate_limits.hit("k", T0, FAR, amount={"$gt": 0}),
        lambda s: s.rate_limits.get("k", T0.replace(tzinfo=None)),
        lambda s: s.sessions.revoke(SID, "2026-01-01", "x"),
        lambda s: s.users.set_blocked(UID, {"$ne": None}, T0),
        lambda s: s.users.list(limit={"$gt": 0}),
        lambda s: s.audit.query(types={"$ne": None}),
        lambda s: s.audit.query(since={"$gt": ""}),
    ],
    ids=["max_attempts", "now-dict", "amount", "naive-now", "now-str", "blocked", "limit", "types", "since"],
)
def test_non_string_arguments_are_typed_too(store: MongoStore, db: Any, call: Callable[[MongoStore], object]) -> None:
    _seed(store)
    before = _snapshot(db)
    _forbid_queries(store)
    with pytest.raises(ValidationError):
        call(store)
    assert _snapshot(db) == before


def test_string_that_looks_like_an_operator_is_just_a_string(store: MongoStore) -> None:
    _seed(store)
    assert store.users.get_by_email('{"$ne": null}') is None
    assert store.users.get("$ne") is None
    assert store.sessions.get_by_refresh_hash("$where") is None


# ---------------------------------------------------------------------------
# ... and through the facade: every entry point that takes such a value
# ---------------------------------------------------------------------------
@pytest.fixture
def auth(db: Any) -> Iterator[tuple[MindmeshAuth, Outbox]]:
    outbox = Outbox()
    config = AuthConfig(
        jwt_secret="Ms5Qe8Wt2Ry7Ui4Op1As6Df3Gh9Jk0Lz", refresh_secret="Xc4Vb7Nm2Qw9Er5Ty8Ui1Op6As3Df0Gh", bcrypt_rounds=4
    )
    facade = MindmeshAuth(store=MongoStore(db), mailer=outbox, config=config)
    facade.create_schema()
    facade.auth.register("ada@example.com", PASSWORD)
    facade.auth.login("ada@example.com", PASSWORD)
    facade.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
    facade.auth.login("ada@example.com", PASSWORD)  # leave a live login code behind
    facade.password.request_reset("ada@example.com")
    facade.wait_for_background_work()
    yield facade, outbox
    facade.close()


Entry = Callable[[MindmeshAuth, Any], object]
REJECTED = (ValidationError, InvalidToken)

FACADE_CALLS: dict[str, tuple[Entry, type[Exception] | tuple[type[Exception], ...]]] = {
    "auth.register(email)": (lambda a, x: a.auth.register(x, PASSWORD), REJECTED),
    "auth.register(password)": (lambda a, x: a.auth.register("bob@example.com", x), REJECTED),
    "auth.login(email)": (lambda a, x: a.auth.login(x, PASSWORD), REJECTED),
    "auth.login(password)": (lambda a, x: a.auth.login("ada@example.com", x), REJECTED),
    "auth.verify_otp(email)": (lambda a, x: a.auth.verify_otp(x, "123456", "login"), REJECTED),
    "auth.verify_otp(code)": (lambda a, x: a.auth.verify_otp("ada@example.com", x, "login"), REJECTED),
    "auth.verify_otp(purpose)": (lambda a, x: a.auth.verify_otp("ada@example.com", "123456", x), REJECTED),
    "auth.refresh": (lambda a, x: a.auth.refresh(x), InvalidRefreshToken),
    "auth.get_user_from_token": (lambda a, x: a.auth.get_user_from_token(x), InvalidToken),
    "auth.logout": (lambda a, x: a.auth.logout(x), REJECTED),
    "otp.send(email)": (lambda a, x: a.otp.send(x, "email_verify"), REJECTED),
    "otp.send(purpose)": (lambda a, x: a.otp.send("ada@example.com", x), REJECTED),
    "otp.verify(email)": (lambda a, x: a.otp.verify(x, "123456", "email_verify"), REJECTED),
    "otp.verify(code)": (lambda a, x: a.otp.verify("ada@example.com", x, "email_verify"), REJECTED),
    "otp.verify(purpose)": (lambda a, x: a.otp.verify("ada@example.com", "123456", x), REJECTED),
    "password.request_reset": (lambda a, x: a.password.request_reset(x), REJECTED),
    # A malformed reset token is reported like any invalid one (InvalidResetToken).
    "password.reset(token)": (lambda a, x: a.password.reset(x, "a brand new password"), InvalidResetToken),
    "password.reset(password)": (lambda a, x: a.password.reset("A" * 64, x), (*REJECTED, InvalidResetToken)),
    "user.get_by_id": (lambda a, x: a.user.get_by_id(x), REJECTED),
    "user.block": (lambda a, x: a.user.block(x), REJECTED),
    "user.unblock": (lambda a, x: a.user.unblock(x), REJECTED),
    "user.mark_email_verified": (lambda a, x: a.user.mark_email_verified(x), REJECTED),
    "sessions.list": (lambda a, x: a.sessions.list(x), REJECTED),
    "sessions.revoke": (lambda a, x: a.sessions.revoke(x), REJECTED),
}


@pytest.mark.parametrize("value", OPERATORS, ids=repr)
@pytest.mark.parametrize("entry", FACADE_CALLS.keys())
def test_facade_rejects_operator_objects_and_changes_nothing(
    auth: tuple[MindmeshAuth, Outbox], db: Any, entry: str, value: Any
) -> None:
    facade, outbox = auth
    call, expected = FACADE_CALLS[entry]
    before, mails = _snapshot(db), len(outbox)
    with pytest.raises(expected):
        call(facade, value)
    facade.wait_for_background_work()
    assert _snapshot(db) == before
    assert len(outbox) == mails


# ---------------------------------------------------------------------------
# Indexes
# ---------------------------------------------------------------------------
def _indexes(db: Any, name: str) -> dict[str, dict[str, Any]]:
    return {ix["name"]: dict(ix) for ix in db[name].list_indexes()}


def test_indexes_exist_with_unique_flags_and_ttl(store: MongoStore, db: Any) -> None:
    store.ensure_indexes()  # idempotent
    names = store.collection_names
    users = _indexes(db, names["users"])
    assert users["email_unique"]["unique"] is True and dict(users["email_unique"]["key"]) == {"email": 1}
    sessions = _indexes(db, names["sessions"])
    assert sessions["refresh_hash_unique"]["unique"] is True
    assert list(dict(sessions["user_id_created_at"]["key"])) == ["user_id", "created_at"]
    assert not sessions["user_id_created_at"].get("unique")
    otps = _indexes(db, names["otps"])
    assert otps["email_purpose_unique"]["unique"] is True
    assert dict(otps["email_purpose_unique"]["key"]) == {"email": 1, "purpose": 1}
    assert otps["id_unique"]["unique"] is True
    assert dict(_indexes(db, names["reset_tokens"])["user_id"]["key"]) == {"user_id": 1}
    audit = _indexes(db, names["audit"])
    assert dict(audit["occurred_at_seq"]["key"]) == {"occurred_at": 1, "_id": 1}
    assert list(dict(audit["user_id_occurred_at"]["key"])) == ["user_id", "occurred_at", "_id"]
    for logical in ("sessions", "retired_tokens", "otps", "reset_tokens", "rate_limits"):
        ttl = _indexes(db, names[logical])["expires_at_ttl"]
        assert ttl["expireAfterSeconds"] == 0 and dict(ttl["key"]) == {"expires_at": 1}, logical
    for logical in ("users", "audit", "sequences"):
        assert all("expireAfterSeconds" not in ix for ix in _indexes(db, names[logical]).values())


def test_ttl_indexes_can_be_left_out(db: Any) -> None:
    store = MongoStore(db, ttl_indexes=False)
    store.create_schema()
    for logical in ("sessions", "retired_tokens", "otps", "reset_tokens", "rate_limits"):
        indexes = _indexes(db, store.collection_names[logical])
        assert "expires_at" in indexes
        assert all("expireAfterSeconds" not in ix for ix in indexes.values())


def test_collection_names_are_prefixed_and_overridable(db: Any) -> None:
    store = MongoStore(db, collection_prefix="app_", collection_names={"users": "accounts"})
    store.users.add(_user())
    assert store.collection_names["users"] == "accounts"
    assert store.collection_names["sessions"] == "app_sessions"
    assert db["accounts"].count_documents({}) == 1
    with pytest.raises(ConfigurationError):
        MongoStore(db, collection_names={"nope": "x"})
    with pytest.raises(ConfigurationError):
        MongoStore(db, collection_names={"users": "same", "sessions": "same"})


# ---------------------------------------------------------------------------
# Users: profile as extra keys
# ---------------------------------------------------------------------------
def test_profile_fields_round_trip_through_register_and_get_by_id(auth: tuple[MindmeshAuth, Outbox], db: Any) -> None:
    facade, _ = auth
    user = facade.auth.register("grace@example.com", PASSWORD, first_name="Grace", role="admin", age=85)
    assert dict(user.profile) == {"first_name": "Grace", "role": "admin", "age": 85}
    got = facade.user.get_by_id(user.id)
    assert dict(got.profile) == {"first_name": "Grace", "role": "admin", "age": 85}
    assert got.first_name == "Grace"
    raw = db["mm_auth_users"].find_one({"_id": user.id})
    assert raw["first_name"] == "Grace" and raw["email"] == "grace@example.com"
    assert "id" not in raw and "profile" not in raw


@pytest.mark.parametrize("key", ["$set", "a.b", "_id", "email", "password_hash", "id", "profile", ""])
def test_profile_keys_mongo_cannot_store_are_rejected(store: MongoStore, db: Any, key: str) -> None:
    with pytest.raises(ValidationError):
        store.users.add(_user(**{key: 1}))
    assert db["mm_auth_users"].count_documents({}) == 0


def test_profile_values_bson_cannot_encode_are_rejected(store: MongoStore, db: Any) -> None:
    with pytest.raises(ValidationError):
        store.users.add(_user(tags={"a", "b"}))
    assert db["mm_auth_users"].count_documents({}) == 0


# ---------------------------------------------------------------------------
# Time: aware UTC on every path, whatever the client's tz_aware
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("tz_aware", [True, False])
def test_datetimes_come_back_aware_utc(tz_aware: bool) -> None:
    store = MongoStore(mongomock.MongoClient(tz_aware=tz_aware)["mm_tz"], ttl_indexes=False)
    store.create_schema()
    plus_two = timezone(timedelta(hours=2))
    store.users.add(_user(when=T0))
    store.sessions.add(Session(SID, UID, "refresh-1", T0.astimezone(plus_two), FAR, T0))
    store.rate_limits.hit("k", T0, T0 + timedelta(minutes=1))
    store.audit.append(AuditEvent(AuditEventType.LOGOUT, T0))
    user = store.users.get(UID)
    session = store.sessions.get(SID)
    counter = store.rate_limits.get("k", T0)
    (event,) = store.audit.query()
    assert user is not None and session is not None and counter is not None
    for value in (user.created_at, user.profile["when"], session.created_at, counter.expires_at, event.occurred_at):
        assert value.tzinfo is timezone.utc, value
    assert session.created_at == T0
    assert store.rate_limits.get("k", T0 + timedelta(minutes=1)) is None


def test_microseconds_are_truncated_to_milliseconds_by_bson(store: MongoStore) -> None:
    store.users.add(User(UID, "ada@example.com", "h", T0.replace(microsecond=123456), T0))
    got = store.users.get(UID)
    assert got is not None and got.created_at.microsecond == 123000


# ---------------------------------------------------------------------------
# Audit order and ids
# ---------------------------------------------------------------------------
def test_audit_ids_are_increasing_strings(store: MongoStore) -> None:
    ids = [store.audit.append(AuditEvent(AuditEventType.LOGOUT, T0)).id for _ in range(12)]
    assert all(isinstance(i, str) for i in ids)
    assert [int(i) for i in ids] == list(range(1, 13))  # type: ignore[arg-type]
    assert [e.id for e in store.audit.query()] == ids


# ---------------------------------------------------------------------------
# Driver errors: translated in one place, with generic messages
# ---------------------------------------------------------------------------
class _Raising:
    def __init__(self, exc: Exception) -> None:
        self._exc = exc

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self._exc

        return fail


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (pymongo.errors.DuplicateKeyError('E11000 dup key: { email: "ada@example.com" }', 11000), DuplicateKeyError),
        (pymongo.errors.ServerSelectionTimeoutError("ada@example.com unreachable"), StorageUnavailable),
        (pymongo.errors.AutoReconnect("ada@example.com"), StorageUnavailable),
        (pymongo.errors.ConnectionFailure("ada@example.com"), StorageUnavailable),
        (pymongo.errors.OperationFailure("ada@example.com bad"), StorageError),
        (pymongo.errors.PyMongoError("ada@example.com"), StorageError),
    ],
)
def test_driver_errors_are_translated_with_generic_messages(
    store: MongoStore, driver_error: Exception, expected: type[Exception]
) -> None:
    store.users._c = _Raising(driver_error)  # type: ignore[assignment]
    with pytest.raises(expected) as caught:
        store.users.get_by_email("ada@example.com")
    assert type(caught.value) is expected
    assert "ada@example.com" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__ is True


def test_duplicate_user_id_or_email_is_duplicate_key(store: MongoStore) -> None:
    store.users.add(_user(1, email="a@example.com"))
    with pytest.raises(DuplicateKeyError):
        store.users.add(_user(1, email="b@example.com"))
    with pytest.raises(DuplicateKeyError):
        store.users.add(_user(2, email="a@example.com"))


# ---------------------------------------------------------------------------
# The non-single-document steps and their recovery
# ---------------------------------------------------------------------------
def test_rotation_survives_a_failed_retired_record_write(store: MongoStore) -> None:
    store.users.add(_user())
    store.sessions.add(Session(SID, UID, "refresh-1", T0, FAR, T0))
    real = store.sessions._retired
    store.sessions._retired = _Raising(pymongo.errors.AutoReconnect("lost"))  # type: ignore[assignment]
    with pytest.raises(StorageUnavailable):
        store.sessions.rotate(SID, "refresh-1", "refresh-2", T0 + timedelta(seconds=1))
    store.sessions._retired = real
    # The compare-and-swap happened; the rotation is still visible for reuse detection.
    assert store.sessions.get_by_refresh_hash("refresh-2") is not None
    retired = store.sessions.get_retired("refresh-1")
    assert retired is not None
    assert (retired.session_id, retired.rotated_at, retired.expires_at) == (SID, T0 + timedelta(seconds=1), FAR)


def test_retired_records_are_idempotent_and_kept_for_older_rotations(store: MongoStore, db: Any) -> None:
    store.users.add(_user())
    store.sessions.add(Session(SID, UID, "h1", T0, FAR, T0))
    assert store.sessions.rotate(SID, "h1", "h2", T0)
    assert store.sessions.rotate(SID, "h2", "h3", T0 + timedelta(seconds=1))
    assert {d["_id"] for d in db["mm_auth_retired_refresh_tokens"].find()} == {"h1", "h2"}
    first = store.sessions.get_retired("h1")
    assert first is not None and first.rotated_at == T0
    assert store.sessions.get_retired("h3") is None


def test_rate_limit_hit_loops_when_a_concurrent_creator_wins(store: MongoStore, db: Any) -> None:
    collection = db["mm_auth_rate_limits"]

    class RacingInsert:
        def __getattr__(self, name: str) -> Any:
            return getattr(collection, name)

        def insert_one(self, doc: dict[str, Any]) -> Any:
            collection.insert_one({"_id": doc["_id"], "count": 4, "expires_at": FAR})  # the other process
            return collection.insert_one(doc)  # -> DuplicateKeyError, then retry from the top

    store.rate_limits._c = RacingInsert()  # type: ignore[assignment]
    state = store.rate_limits.hit("k", T0, T0 + timedelta(minutes=1))
    assert (state.count, state.expires_at) == (5, FAR)


def test_expired_counter_restarts_in_place(store: MongoStore, db: Any) -> None:
    start = FAR  # in the future of the wall clock, which mongomock's TTL emulation uses
    store.rate_limits.hit("k", start, start + timedelta(minutes=1), amount=7)
    later = start + timedelta(minutes=2)
    state = store.rate_limits.hit("k", later, later + timedelta(minutes=1))
    assert (state.count, state.expires_at) == (1, later + timedelta(minutes=1))
    assert db["mm_auth_rate_limits"].count_documents({}) == 1


def test_otp_put_retries_once_when_a_concurrent_upsert_wins(store: MongoStore, db: Any) -> None:
    collection = db["mm_auth_otp_challenges"]
    calls = {"n": 0}

    class RacingUpsert:
        def __getattr__(self, name: str) -> Any:
            return getattr(collection, name)

        def replace_one(self, flt: dict[str, Any], doc: dict[str, Any], upsert: bool = False) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                collection.insert_one({**doc, "id": "other", "code_hash": "theirs"})
                raise pymongo.errors.DuplicateKeyError("E11000", 11000)
            return collection.replace_one(flt, doc, upsert=upsert)

    store.otps._c = RacingUpsert()  # type: ignore[assignment]
    store.otps.put(OtpChallenge(CID, "ada@example.com", "login", "mine", T0, FAR))
    got = store.otps.get("ada@example.com", "login")
    assert got is not None and (got.id, got.code_hash) == (CID, "mine") and calls["n"] == 2
    assert collection.count_documents({}) == 1


class _ServerLikeCollection:
    """A mongomock collection that runs each call atomically (one lock), as a server
    runs a single-document operation, and yields after it, so the steps of parallel
    calls interleave. The store's own serialising lock must be off."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = attr(*args, **kwargs)
            time.sleep(0.0005)
            return result

        return call


def test_parallel_reset_token_puts_leave_one_when_their_steps_interleave(store: MongoStore, db: Any) -> None:
    store.reset_tokens._c = _ServerLikeCollection(db["mm_auth_reset_tokens"])  # type: ignore[assignment]
    store.reset_tokens._serial = contextlib.nullcontext()
    threads, rounds = 12, 10
    for r in range(rounds):
        barrier = threading.Barrier(threads)

        def put(i: int, r: int = r, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.reset_tokens.put(ResetToken(f"t{r}-{i}", f"u{r}", f"h{r}-{i}", T0, FAR))

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, range(threads)))
        live = db["mm_auth_reset_tokens"].count_documents({"user_id": f"u{r}", "consumed_at": None})
        assert live == 1, f"round {r}: {live} unconsumed tokens of one user"


def test_reset_token_put_in_the_same_millisecond_keeps_the_later_one(store: MongoStore) -> None:
    store.reset_tokens.put(ResetToken("t-b", UID, "h-b", T0, FAR))
    store.reset_tokens.put(ResetToken("t-a", UID, "h-a", T0, FAR))  # a smaller id, put later
    assert store.reset_tokens.get("h-b") is None
    assert store.reset_tokens.consume("h-a", T0) is not None


# ---------------------------------------------------------------------------
# URL wiring
# ---------------------------------------------------------------------------
def test_mongomock_url_gives_a_working_store() -> None:
    store = store_from_url("mongomock://demo_db")
    assert isinstance(store, MongoStore) and store.database.name == "demo_db"
    store.create_schema()
    store.users.add(_user())
    assert store.users.get(UID) is not None
    store.close()
    assert isinstance(store_from_url("mongomock://"), MongoStore)


def test_facade_accepts_a_mongomock_url() -> None:
    outbox = Outbox()
    config = AuthConfig(
        jwt_secret="Ms5Qe8Wt2Ry7Ui4Op1As6Df3Gh9Jk0Lz", refresh_secret="Xc4Vb7Nm2Qw9Er5Ty8Ui1Op6As3Df0Gh", bcrypt_rounds=4
    )
    with MindmeshAuth(store="mongomock://facade_demo", mailer=outbox, config=config) as facade:
        facade.create_schema()
        user = facade.auth.register("ada@example.com", PASSWORD, nickname="ada")
        assert facade.user.get_by_id(user.id).nickname == "ada"


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("mongodb://127.0.0.1:1/appdb", "appdb"),
        ("mongodb://127.0.0.1:1/", "mindmesh_auth"),
        ("mongodb://127.0.0.1:1", "mindmesh_auth"),
        ("mongodb://user:pw@127.0.0.1:1/other?authSource=admin", "other"),
    ],
)
def test_mongodb_url_picks_the_database_and_a_tz_aware_client(url: str, database: str) -> None:
    store = store_from_url(url)  # the client connects lazily: no server needed here
    try:
        assert isinstance(store, MongoStore) and store.database.name == database
        assert store.database.client.codec_options.tz_aware is True
    finally:
        store.close()


def test_unreachable_server_is_storage_unavailable() -> None:
    store = MongoStore.from_url("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=50&connectTimeoutMS=50")
    try:
        with pytest.raises(StorageUnavailable):
            store.users.get(UID)
    finally:
        store.close()


@pytest.mark.parametrize("url", ["mongodb://", "mongodb://host:notaport/db", "redis://x"])
def test_bad_mongodb_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        MongoStore.from_url(url)


def test_given_database_is_not_closed(store: MongoStore, db: Any) -> None:
    store.close()
    db["probe"].insert_one({"ok": 1})
    assert db["probe"].count_documents({}) == 1
