"""The six repositories over MongoDB collections.

Every rule the ports mark *atomic* is one single-document operation with its
guard in the filter (``find_one_and_update``, ``update_one`` +
``modified_count``, ``replace_one`` with ``upsert``). Nothing reads a document
in Python and then writes it back.

Inside a unit of work (``MongoStore.atomic``) every write records how to undo
itself (see ``_unit.py``): the document it replaced is captured by the write
itself (``return_document=BEFORE``, ``find_one_and_replace``,
``find_one_and_delete``), never by a separate read. Each undo is guarded: it
reverts a value only while it still holds what this unit wrote, deletes only
the document this unit created, and re-inserts a deleted document only where
no newer one took its key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import bson
import bson.errors
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError as DriverDuplicateKeyError

from ...core.errors import StorageError, ValidationError
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
    UserRepository,
)
from ._common import from_db, integer, optional_text, optional_to_db, storage_op, text, to_db
from ._unit import UnitOfWork, reinsert, restore_fields, take_all

__all__ = [
    "MongoAudit",
    "MongoOtps",
    "MongoRateLimits",
    "MongoResetTokens",
    "MongoSessions",
    "MongoUsers",
]

Doc = dict[str, Any]
_HIT_ATTEMPTS = 8  # rate-limit hit: bounded retries of the find/restart/insert loop


class _Repo:
    def __init__(self, serial: AbstractContextManager[Any], unit: UnitOfWork | None = None) -> None:
        self._serial = serial
        self._unit = unit if unit is not None else UnitOfWork(serial)


def _upsert(unit: UnitOfWork, c: Collection[Doc], flt: Doc, doc: Doc) -> Doc | None:
    """Replace the document matching ``flt`` with ``doc`` (insert if none). Inside a unit
    the replaced document is returned (``find_one_and_replace``, the same single-document
    write), for the undo; outside one, ``None``."""
    if unit.open:
        return c.find_one_and_replace(dict(flt), dict(doc), upsert=True, return_document=ReturnDocument.BEFORE)
    c.replace_one(dict(flt), dict(doc), upsert=True)
    return None


# -- users -------------------------------------------------------------------
_USER_KEYS = frozenset({"_id", "email", "password_hash", "created_at", "updated_at", "email_verified", "blocked"})


def _check_profile_key(key: object) -> str:
    if (
        type(key) is not str
        or not key
        or key.startswith("$")
        or "." in key
        or "\x00" in key
        or key in CORE_USER_FIELDS
        or key in _USER_KEYS
    ):
        raise ValidationError("A profile field name cannot be stored.", field="profile")
    return key


def _user_doc(user: User) -> Doc:
    if not isinstance(user, User):
        raise ValidationError("user must be a User.", field="user")
    profile = {_check_profile_key(k): v for k, v in user.profile.items()}
    try:
        bson.encode(profile)  # the values must be BSON-encodable; fail before writing
    except (bson.errors.InvalidDocument, OverflowError, TypeError):
        raise ValidationError("A profile value cannot be stored.", field="profile") from None
    return {
        **profile,
        "_id": text(user.id, "user_id"),
        "email": text(user.email, "email"),
        "password_hash": text(user.password_hash, "password_hash"),
        "created_at": to_db(user.created_at, "created_at"),
        "updated_at": to_db(user.updated_at, "updated_at"),
        "email_verified": bool(user.email_verified),
        "blocked": bool(user.blocked),
    }


def _user(doc: Mapping[str, Any]) -> User:
    profile = {k: from_db(v) for k, v in doc.items() if k not in _USER_KEYS}
    return User(
        id=doc["_id"],
        email=doc["email"],
        password_hash=doc["password_hash"],
        created_at=from_db(doc["created_at"]),
        updated_at=from_db(doc["updated_at"]),
        email_verified=bool(doc.get("email_verified", False)),
        blocked=bool(doc.get("blocked", False)),
        profile=profile,
    )


class MongoUsers(_Repo, UserRepository):
    """``_id`` is the user id; every extra key of the document is a profile field."""

    def __init__(self, serial: AbstractContextManager[Any], users: Collection[Doc], unit: UnitOfWork | None = None) -> None:
        super().__init__(serial, unit)
        self._c = users

    @storage_op
    def add(self, user: User) -> User:
        doc = _user_doc(user)
        # Undo: delete exactly the document this call created (harmless if it never ran).
        undo = functools.partial(self._c.delete_one, {"_id": doc["_id"], "email": doc["email"]})
        with self._unit.writing("users.add", undo):
            self._c.insert_one(doc)  # unique _id and unique email: DuplicateKeyError
        return _user(doc)

    @storage_op
    def get(self, user_id: str) -> User | None:
        doc = self._c.find_one({"_id": text(user_id, "user_id")})
        return _user(doc) if doc else None

    @storage_op
    def get_by_email(self, email: str) -> User | None:
        doc = self._c.find_one({"email": text(email, "email")})
        return _user(doc) if doc else None

    def _set(self, label: str, user_id: str, field: str, value: object, now: datetime) -> bool:
        """Set ``field`` (and ``updated_at``); inside a unit, remember the values it replaced."""
        uid, when = text(user_id, "user_id"), to_db(now, "now")
        before = self._c.find_one_and_update(
            {"_id": uid},
            {"$set": {field: value, "updated_at": when}},
            projection={field: True, "updated_at": True},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return False
        self._unit.record(label, functools.partial(self._unset, uid, field, value, when, before))
        return True

    def _unset(self, uid: str, field: str, value: object, when: datetime, before: Doc) -> None:
        """Undo of :meth:`_set`: only while ``field`` still holds the value the unit wrote;
        ``updated_at`` goes back too unless someone has touched the user since."""
        guard = {"_id": uid, field: value}
        if self._c.update_one({**guard, "updated_at": when}, restore_fields(before, (field, "updated_at"))).matched_count:
            return
        self._c.update_one(guard, restore_fields(before, (field,)))

    @storage_op
    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        new = text(password_hash, "password_hash")
        return self._set("users.set_password_hash", user_id, "password_hash", new, now)

    @storage_op
    def set_blocked(self, user_id: str, blocked: bool, now: datetime) -> bool:
        if type(blocked) is not bool:
            raise ValidationError("blocked must be a bool.", field="blocked")
        return self._set("users.set_blocked", user_id, "blocked", blocked, now)

    @storage_op
    def set_email_verified(self, user_id: str, now: datetime) -> bool:
        return self._set("users.set_email_verified", user_id, "email_verified", True, now)

    @storage_op
    def change_email(self, user_id: str, email: str, now: datetime) -> bool:
        uid, address, when = text(user_id, "user_id"), text(email, "email"), to_db(now, "now")
        fields = ("email", "email_verified", "updated_at")
        before = self._c.find_one_and_update(  # the unique email index: DuplicateKeyError
            {"_id": uid},
            {"$set": {"email": address, "email_verified": True, "updated_at": when}},
            projection=dict.fromkeys(fields, True),
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return False
        # Undo: the old address comes back while the user still has the new one.
        self._unit.record(
            "users.change_email",
            functools.partial(self._c.update_one, {"_id": uid, "email": address}, restore_fields(before, fields)),
        )
        return True

    @storage_op
    def delete(self, user_id: str) -> bool:
        doc = self._c.find_one_and_delete({"_id": text(user_id, "user_id")})
        if doc is None:
            return False
        # Undo: the document comes back (unless its address was taken meanwhile).
        self._unit.record("users.delete", functools.partial(reinsert, self._c, [doc]))
        return True

    @storage_op
    def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        limit, offset = integer(limit, "limit"), integer(offset, "offset")
        if limit <= 0 or offset < 0:
            return []  # Mongo reads limit(0) as "no limit"
        cursor = self._c.find({}).sort([("created_at", ASCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
        return [_user(d) for d in cursor]


# -- sessions ------------------------------------------------------------------
def _session(doc: Mapping[str, Any]) -> Session:
    return Session(
        id=doc["_id"],
        user_id=doc["user_id"],
        refresh_hash=doc["refresh_hash"],
        created_at=from_db(doc["created_at"]),
        expires_at=from_db(doc["expires_at"]),
        last_active_at=from_db(doc["last_active_at"]),
        revoked_at=from_db(doc.get("revoked_at")),
        revoke_reason=doc.get("revoke_reason"),
        ip_address=doc.get("ip_address"),
        user_agent=doc.get("user_agent"),
    )


def _retired(doc: Mapping[str, Any]) -> RetiredRefreshToken:
    return RetiredRefreshToken(
        token_hash=doc["_id"],
        session_id=doc["session_id"],
        rotated_at=from_db(doc["rotated_at"]),
        expires_at=from_db(doc["expires_at"]),
    )


_ROTATED_FIELDS = ("last_active_at", "previous_hash", "previous_rotated_at")


class MongoSessions(_Repo, SessionRepository):
    """Sessions (``_id`` = session id) and retired refresh hashes (``_id`` = the hash).

    ``rotate`` is a compare-and-swap on the session document that also records
    ``previous_hash``/``previous_rotated_at`` in the SAME document; the retired
    record is written right after (idempotent upsert). ``get_retired`` reads the
    retired collection and falls back to ``previous_hash``, so a concurrent
    loser, or a crash between the two writes, never hides the latest rotation.
    """

    def __init__(
        self,
        serial: AbstractContextManager[Any],
        sessions: Collection[Doc],
        retired: Collection[Doc],
        users: Collection[Doc],
        unit: UnitOfWork | None = None,
    ) -> None:
        super().__init__(serial, unit)
        self._c = sessions
        self._retired = retired
        self._users = users

    @storage_op
    def add(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise ValidationError("session must be a Session.", field="session")
        doc = {
            "_id": text(session.id, "session_id"),
            "user_id": text(session.user_id, "user_id"),
            "refresh_hash": text(session.refresh_hash, "refresh_hash"),
            "created_at": to_db(session.created_at, "created_at"),
            "expires_at": to_db(session.expires_at, "expires_at"),
            "last_active_at": to_db(session.last_active_at, "last_active_at"),
            "revoked_at": optional_to_db(session.revoked_at, "revoked_at"),
            "revoke_reason": optional_text(session.revoke_reason, "revoke_reason"),
            "ip_address": optional_text(session.ip_address, "ip_address"),
            "user_agent": optional_text(session.user_agent, "user_agent"),
        }
        undo = functools.partial(self._c.delete_one, {"_id": doc["_id"], "user_id": doc["user_id"]})
        with self._unit.writing("sessions.add", undo):
            self._c.insert_one(doc)

    @storage_op
    def get(self, session_id: str) -> Session | None:
        doc = self._c.find_one({"_id": text(session_id, "session_id")})
        return _session(doc) if doc else None

    @storage_op
    def get_with_user(self, session_id: str) -> SessionWithUser | None:
        pipeline: list[Doc] = [
            {"$match": {"_id": text(session_id, "session_id")}},
            {"$limit": 1},
            {"$lookup": {"from": self._users.name, "localField": "user_id", "foreignField": "_id", "as": "user"}},
        ]
        for doc in self._c.aggregate(pipeline):
            users = doc.get("user") or []
            if not users:
                return None
            return SessionWithUser(_session(doc), _user(users[0]))
        return None

    @storage_op
    def get_by_refresh_hash(self, refresh_hash: str) -> Session | None:
        doc = self._c.find_one({"refresh_hash": text(refresh_hash, "refresh_hash")})
        return _session(doc) if doc else None

    @storage_op
    def rotate(self, session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        sid, old, new = text(session_id, "session_id"), text(old_hash, "old_hash"), text(new_hash, "new_hash")
        when = to_db(now, "now")
        # 1. The compare-and-swap: exactly one caller matches this filter.
        before = self._c.find_one_and_update(
            {"_id": sid, "refresh_hash": old, "revoked_at": None, "expires_at": {"$gt": when}},
            {
                "$set": {
                    "refresh_hash": new,
                    "last_active_at": when,
                    "previous_hash": old,
                    "previous_rotated_at": when,
                }
            },
            projection={field: True for field in ("expires_at", "refresh_hash", *_ROTATED_FIELDS)},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return False
        # Inside a unit: swap back (recorded before step 2, which may fail on its own).
        self._unit.record("sessions.rotate", functools.partial(self._unrotate, sid, old, new, when, before))
        # 2. The history record: an idempotent upsert keyed by the hash.
        self._retired.update_one(
            {"_id": old},
            {"$setOnInsert": {"session_id": sid, "rotated_at": when, "expires_at": before["expires_at"]}},
            upsert=True,
        )
        return True

    def _unrotate(self, sid: str, old: str, new: str, when: datetime, before: Doc) -> None:
        """Undo of :meth:`rotate`: compare-and-swap back, only while the hash is still the
        one this unit wrote (a later rotation is never clobbered; a revocation made
        meanwhile stays), then delete the retired record this rotation wrote (matched
        by its ``rotated_at``: harmless if step 2 never ran or its reply was lost)."""
        back = self._c.update_one({"_id": sid, "refresh_hash": new}, restore_fields(before, ("refresh_hash", *_ROTATED_FIELDS)))
        if back.matched_count:
            self._retired.delete_one({"_id": old, "session_id": sid, "rotated_at": when})

    @storage_op
    def get_retired(self, token_hash: str) -> RetiredRefreshToken | None:
        h = text(token_hash, "token_hash")
        doc = self._retired.find_one({"_id": h})
        if doc:
            return _retired(doc)
        # The latest rotation is also on the session itself (written by the CAS).
        session = self._c.find_one({"previous_hash": h}, projection={"previous_rotated_at": True, "expires_at": True})
        if session is None:
            return None
        return RetiredRefreshToken(
            token_hash=h,
            session_id=session["_id"],
            rotated_at=from_db(session["previous_rotated_at"]),
            expires_at=from_db(session["expires_at"]),
        )

    @storage_op
    def revoke(self, session_id: str, now: datetime, reason: str) -> bool:
        result = self._c.update_one(
            {"_id": text(session_id, "session_id"), "revoked_at": None},
            {"$set": {"revoked_at": to_db(now, "now"), "revoke_reason": text(reason, "reason")}},
        )
        return result.modified_count == 1

    @storage_op
    def revoke_all_for_user(self, user_id: str, now: datetime, reason: str) -> int:
        result = self._c.update_many(
            {"user_id": text(user_id, "user_id"), "revoked_at": None},
            {"$set": {"revoked_at": to_db(now, "now"), "revoke_reason": text(reason, "reason")}},
        )
        return int(result.modified_count)

    @storage_op
    def list_for_user(self, user_id: str, *, now: datetime, include_inactive: bool = False) -> list[Session]:
        query: Doc = {"user_id": text(user_id, "user_id")}
        when = to_db(now, "now")
        if not include_inactive:
            query.update({"revoked_at": None, "expires_at": {"$gt": when}})
        cursor = self._c.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return [_session(d) for d in cursor]

    @storage_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        when = to_db(now, "now")
        expired = {"expires_at": {"$lte": when}}
        count = _delete_some(self._c, expired, limit)
        return max(count, _delete_some(self._retired, expired, limit))


def _delete_some(
    collection: Collection[Doc], where: Doc, limit: int | None, sort: list[tuple[str, int]] | None = None
) -> int:
    """``delete_many(where)``, at most ``limit`` documents when given (ids first, then
    one guarded ``delete_many``: a document that stopped matching meanwhile stays)."""
    if limit is None:
        return int(collection.delete_many(where).deleted_count)
    limit = integer(limit, "limit")
    if limit <= 0:  # MongoDB reads limit(0) as "no limit"
        return 0
    cursor = collection.find(where, {"_id": 1})
    if sort:
        cursor = cursor.sort(sort)
    ids = [doc["_id"] for doc in cursor.limit(limit)]
    if not ids:
        return 0
    return int(collection.delete_many({"$and": [{"_id": {"$in": ids}}, where]}).deleted_count)


# -- one-time codes --------------------------------------------------------------
def _otp(doc: Mapping[str, Any]) -> OtpChallenge:
    return OtpChallenge(
        id=doc["id"],
        email=doc["email"],
        purpose=doc["purpose"],
        code_hash=doc["code_hash"],
        created_at=from_db(doc["created_at"]),
        expires_at=from_db(doc["expires_at"]),
        user_id=doc.get("user_id"),
        attempts=int(doc.get("attempts", 0)),
        status=doc.get("status", "pending"),
        consumed_at=from_db(doc.get("consumed_at")),
    )


class MongoOtps(_Repo, OtpRepository):
    """One document per (email, purpose); the challenge id is the ``id`` field (unique).

    The id cannot be ``_id``: ``put`` replaces the (email, purpose) document in
    place, and a replacement may not change ``_id``.
    """

    def __init__(self, serial: AbstractContextManager[Any], otps: Collection[Doc], unit: UnitOfWork | None = None) -> None:
        super().__init__(serial, unit)
        self._c = otps

    @storage_op
    def put(self, challenge: OtpChallenge) -> None:
        if not isinstance(challenge, OtpChallenge):
            raise ValidationError("challenge must be an OtpChallenge.", field="challenge")
        email, purpose = text(challenge.email, "email"), text(challenge.purpose, "purpose")
        doc = {
            "id": text(challenge.id, "challenge_id"),
            "email": email,
            "purpose": purpose,
            "code_hash": text(challenge.code_hash, "code_hash"),
            "created_at": to_db(challenge.created_at, "created_at"),
            "expires_at": to_db(challenge.expires_at, "expires_at"),
            "user_id": optional_text(challenge.user_id, "user_id"),
            "attempts": integer(challenge.attempts, "attempts"),
            "status": text(challenge.status, "status"),
            "consumed_at": optional_to_db(challenge.consumed_at, "consumed_at"),
        }
        try:
            before = _upsert(self._unit, self._c, {"email": email, "purpose": purpose}, doc)
        except DriverDuplicateKeyError:
            # Two upserts raced and both inserted: the loser now finds the winner's document.
            before = _upsert(self._unit, self._c, {"email": email, "purpose": purpose}, doc)
        self._unit.record("otps.put", functools.partial(self._unput, text(challenge.id, "challenge_id"), before))

    def _unput(self, challenge_id: str, before: Doc | None) -> None:
        """Undo of :meth:`put`: the replaced challenge comes back, or the new one goes;
        only while the (email, purpose) slot still holds this unit's challenge."""
        if before is None:
            self._c.delete_one({"id": challenge_id})
        else:
            self._c.replace_one({"id": challenge_id}, {k: v for k, v in before.items() if k != "_id"})

    @storage_op
    def get(self, email: str, purpose: str) -> OtpChallenge | None:
        doc = self._c.find_one({"email": text(email, "email"), "purpose": text(purpose, "purpose")})
        return _otp(doc) if doc else None

    @storage_op
    def mark_sent(self, challenge_id: str) -> bool:
        cid = text(challenge_id, "challenge_id")
        result = self._c.update_one({"id": cid, "status": "pending"}, {"$set": {"status": "sent"}})
        if result.modified_count != 1:
            return False
        undo = functools.partial(self._c.update_one, {"id": cid, "status": "sent"}, {"$set": {"status": "pending"}})
        self._unit.record("otps.mark_sent", undo)
        return True

    @storage_op
    def discard(self, challenge_id: str) -> None:
        doc = self._c.find_one_and_delete({"id": text(challenge_id, "challenge_id")})
        if doc is not None:
            self._unit.record("otps.discard", functools.partial(reinsert, self._c, [doc]))

    @storage_op
    def register_attempt(self, challenge_id: str, now: datetime, max_attempts: int) -> int | None:
        doc = self._c.find_one_and_update(
            {
                "id": text(challenge_id, "challenge_id"),
                "status": "sent",
                "consumed_at": None,
                "expires_at": {"$gt": to_db(now, "now")},
                "attempts": {"$lt": integer(max_attempts, "max_attempts")},
            },
            {"$inc": {"attempts": 1}},
            projection={"attempts": True},
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["attempts"]) if doc else None

    @storage_op
    def consume(self, challenge_id: str, now: datetime) -> bool:
        cid, when = text(challenge_id, "challenge_id"), to_db(now, "now")
        result = self._c.update_one(
            {"id": cid, "consumed_at": None, "expires_at": {"$gt": when}},
            {"$set": {"consumed_at": when}},
        )
        if result.modified_count != 1:
            return False
        undo = functools.partial(self._c.update_one, {"id": cid, "consumed_at": when}, {"$set": {"consumed_at": None}})
        self._unit.record("otps.consume", undo)
        return True

    @storage_op
    def redeem(self, challenge_id: str, now: datetime, max_attempts: int) -> bool:
        cid, when = text(challenge_id, "challenge_id"), to_db(now, "now")
        result = self._c.update_one(
            {
                "id": cid,
                "status": "sent",
                "consumed_at": None,
                "expires_at": {"$gt": when},
                "attempts": {"$lt": integer(max_attempts, "max_attempts")},
            },
            {"$inc": {"attempts": 1}, "$set": {"consumed_at": when}},
        )
        if result.modified_count != 1:
            return False
        # A failed unit gives the code back; the attempt stays counted (as register_attempt's).
        undo = functools.partial(self._c.update_one, {"id": cid, "consumed_at": when}, {"$set": {"consumed_at": None}})
        self._unit.record("otps.redeem", undo)
        return True

    @storage_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        dead = {"$or": [{"expires_at": {"$lte": to_db(now, "now")}}, {"consumed_at": {"$ne": None}}]}
        return _delete_some(self._c, dead, limit)


# -- password reset tokens ----------------------------------------------------------
def _reset(doc: Mapping[str, Any]) -> ResetToken:
    return ResetToken(
        id=doc["id"],
        user_id=doc["user_id"],
        token_hash=doc["_id"],
        created_at=from_db(doc["created_at"]),
        expires_at=from_db(doc["expires_at"]),
        consumed_at=from_db(doc.get("consumed_at")),
    )


class MongoResetTokens(_Repo, ResetTokenRepository):
    """``_id`` is the token hash (so the ``_id_`` index is the unique hash index); ``id`` is a field."""

    def __init__(self, serial: AbstractContextManager[Any], resets: Collection[Doc], unit: UnitOfWork | None = None) -> None:
        super().__init__(serial, unit)
        self._c = resets

    @storage_op
    def put(self, token: ResetToken) -> None:
        """Store ``token``, then supersede: parallel puts for one user leave exactly one
        unconsumed token, the newest by ``(created_at, order)``. ``order`` is an
        ObjectId made here (increasing within a process), so of two puts in the
        same millisecond the later one wins, as it does on every other store.

        1. insert (or replace, for a stored hash) this token;
        2. delete the user's unconsumed tokens older than it;
        3. if an unconsumed token of the user newer than it exists, delete it.

        Every put deletes the older tokens it sees (2), and a put that misses a
        newer one (inserted after its step 2) is deleted by that newer put's
        step 3 check or step 2; only the newest survives. Inside a unit each step
        records its undo (the deleted tokens and a self-deleted token come back)."""
        if not isinstance(token, ResetToken):
            raise ValidationError("token must be a ResetToken.", field="token")
        h, uid = text(token.token_hash, "token_hash"), text(token.user_id, "user_id")
        created = to_db(token.created_at, "created_at")
        order = bson.ObjectId()
        doc = {
            "_id": h,
            "id": text(token.id, "token_id"),
            "user_id": uid,
            "created_at": created,
            "expires_at": to_db(token.expires_at, "expires_at"),
            "consumed_at": optional_to_db(token.consumed_at, "consumed_at"),
            "order": order,
        }
        mine = {"_id": h, "id": doc["id"], "order": order}
        before = _upsert(self._unit, self._c, {"_id": h}, doc)
        self._unit.record("reset_tokens.put", functools.partial(self._unput, mine, before))
        live = {"user_id": uid, "consumed_at": None, "_id": {"$ne": h}}
        older = {
            "$or": [
                {"created_at": {"$lt": created}},
                {"created_at": created, "order": {"$lt": order}},
                {"created_at": created, "order": {"$exists": False}},  # stored before tokens had an order
            ]
        }
        self._delete_all("reset_tokens.put", {**live, **older})
        newer = {"$or": [{"created_at": {"$gt": created}}, {"created_at": created, "order": {"$gt": order}}]}
        if self._c.find_one({**live, **newer}, projection={"_id": True}) is not None:
            superseded = self._c.find_one_and_delete(mine)
            if superseded is not None:
                self._unit.record("reset_tokens.put", functools.partial(reinsert, self._c, [superseded]))

    def _unput(self, mine: Doc, before: Doc | None) -> None:
        """Undo of the store step of :meth:`put`: the new token goes (or the token it
        replaced comes back), only while the hash still holds this unit's token."""
        if before is None:
            self._c.delete_one(mine)
        else:
            self._c.replace_one(mine, before)

    def _delete_all(self, label: str, flt: Doc) -> int:
        """``delete_many``; inside a unit, one document at a time, keeping each for the undo."""
        if not self._unit.open:
            return int(self._c.delete_many(flt).deleted_count)
        deleted: list[Doc] = []
        self._unit.record(label, functools.partial(reinsert, self._c, deleted))  # filled as they go
        take_all(self._c, flt, into=deleted)
        return len(deleted)

    @storage_op
    def get(self, token_hash: str) -> ResetToken | None:
        doc = self._c.find_one({"_id": text(token_hash, "token_hash")})
        return _reset(doc) if doc else None

    @storage_op
    def consume(self, token_hash: str, now: datetime) -> ResetToken | None:
        when = to_db(now, "now")
        h = text(token_hash, "token_hash")
        doc = self._c.find_one_and_update(
            {"_id": h, "consumed_at": None, "expires_at": {"$gt": when}},
            {"$set": {"consumed_at": when}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        undo = functools.partial(self._c.update_one, {"_id": h, "consumed_at": when}, {"$set": {"consumed_at": None}})
        self._unit.record("reset_tokens.consume", undo)
        return _reset(doc)

    @storage_op
    def delete_for_user(self, user_id: str) -> int:
        return self._delete_all("reset_tokens.delete_for_user", {"user_id": text(user_id, "user_id")})

    @storage_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        dead = {"$or": [{"expires_at": {"$lte": to_db(now, "now")}}, {"consumed_at": {"$ne": None}}]}
        return _delete_some(self._c, dead, limit)


# -- rate-limit counters ----------------------------------------------------------------
def _counter(doc: Mapping[str, Any]) -> CounterState:
    return CounterState(int(doc["count"]), from_db(doc["expires_at"]))


class MongoRateLimits(_Repo, RateLimitRepository):
    """``_id`` is the counter key. Never undone by a failed unit: a hit counts on purpose."""

    def __init__(self, serial: AbstractContextManager[Any], counters: Collection[Doc], unit: UnitOfWork | None = None) -> None:
        super().__init__(serial, unit)
        self._c = counters

    @storage_op
    def hit(self, key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        k, when, until = text(key, "key"), to_db(now, "now"), to_db(expires_at, "expires_at")
        n = integer(amount, "amount")
        for _ in range(_HIT_ATTEMPTS):
            # 1. A live counter grows; its expiry is left alone.
            doc = self._c.find_one_and_update(
                {"_id": k, "expires_at": {"$gt": when}}, {"$inc": {"count": n}}, return_document=ReturnDocument.AFTER
            )
            if doc:
                return _counter(doc)
            # 2. An expired counter restarts (guarded: only while it is still expired).
            doc = self._c.find_one_and_update(
                {"_id": k, "expires_at": {"$lte": when}},
                {"$set": {"count": n, "expires_at": until}},
                return_document=ReturnDocument.AFTER,
            )
            if doc:
                return _counter(doc)
            # 3. No counter: create it. A concurrent creator wins the _id; start over.
            try:
                self._c.insert_one({"_id": k, "count": n, "expires_at": until})
            except DriverDuplicateKeyError:
                continue
            return CounterState(n, from_db(until))
        raise StorageError()  # pragma: no cover - only under pathological contention

    @storage_op
    def get(self, key: str, now: datetime) -> CounterState | None:
        doc = self._c.find_one({"_id": text(key, "key"), "expires_at": {"$gt": to_db(now, "now")}})
        return _counter(doc) if doc else None

    @storage_op
    def reset(self, key: str) -> None:
        self._c.delete_one({"_id": text(key, "key")})

    @storage_op
    def purge_expired(self, now: datetime, *, limit: int | None = None) -> int:
        return _delete_some(self._c, {"expires_at": {"$lte": to_db(now, "now")}}, limit)


# -- audit ----------------------------------------------------------------------------
_AUDIT_SEQUENCE = "audit"


def _event(doc: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(
        type=AuditEventType(doc["type"]),
        occurred_at=from_db(doc["occurred_at"]),
        user_id=doc.get("user_id"),
        email=doc.get("email"),
        ip_address=doc.get("ip_address"),
        user_agent=doc.get("user_agent"),
        session_id=doc.get("session_id"),
        reason=doc.get("reason"),
        id=str(doc["_id"]),
    )


class MongoAudit(_Repo, AuditRepository):
    """``_id`` is a sequence number from an ``$inc`` counter document: the append order.

    A failed unit deletes the events it appended; the counter is not wound back,
    so event ids may skip numbers (they stay increasing)."""

    def __init__(
        self,
        serial: AbstractContextManager[Any],
        audit: Collection[Doc],
        sequences: Collection[Doc],
        unit: UnitOfWork | None = None,
    ) -> None:
        super().__init__(serial, unit)
        self._c = audit
        self._seq = sequences

    @storage_op
    def append(self, event: AuditEvent) -> AuditEvent:
        if not isinstance(event, AuditEvent):
            raise ValidationError("event must be an AuditEvent.", field="event")
        doc: Doc = {
            "type": AuditEventType(event.type).value,
            "occurred_at": to_db(event.occurred_at, "occurred_at"),
            "user_id": optional_text(event.user_id, "user_id"),
            "email": optional_text(event.email, "email"),
            "ip_address": optional_text(event.ip_address, "ip_address"),
            "user_agent": optional_text(event.user_agent, "user_agent"),
            "session_id": optional_text(event.session_id, "session_id"),
            "reason": optional_text(event.reason, "reason"),
        }
        doc["_id"] = seq = self._next_seq()
        # Undo: delete the event (its sequence number stays used: ids may have gaps).
        with self._unit.writing("audit.append", functools.partial(self._c.delete_one, {"_id": seq})):
            self._c.insert_one(doc)
        return _event(doc)

    def _next_seq(self) -> int:
        """The next append sequence number: one atomic ``$inc`` on a counter document."""
        for _ in range(2):  # the very first upsert can race another; the loser retries once
            try:
                counter = self._seq.find_one_and_update(
                    {"_id": _AUDIT_SEQUENCE}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DriverDuplicateKeyError:
                continue
            if counter is not None:
                return int(counter["value"])
        raise StorageError()  # pragma: no cover

    @storage_op
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
        query: Doc = {}
        if user_id is not None:
            query["user_id"] = text(user_id, "user_id")
        if email is not None:
            query["email"] = text(email, "email")
        if types is not None:
            if isinstance(types, (str, bytes, Mapping)):
                raise ValidationError("types must be a sequence of event types.", field="types")
            try:
                query["type"] = {"$in": [AuditEventType(t).value for t in types]}
            except (ValueError, TypeError):
                raise ValidationError("Unknown audit event type.", field="types") from None
        bounds: Doc = {}
        if since is not None:
            bounds["$gte"] = to_db(since, "since")
        if until is not None:
            bounds["$lt"] = to_db(until, "until")
        if bounds:
            query["occurred_at"] = bounds
        n = integer(limit, "limit")
        if n <= 0:
            return []  # Mongo reads limit(0) as "no limit"
        cursor = self._c.find(query).sort([("occurred_at", ASCENDING), ("_id", ASCENDING)]).limit(n)
        return [_event(d) for d in cursor]

    @storage_op
    def purge_before(self, cutoff: datetime, *, limit: int | None = None) -> int:
        old = {"occurred_at": {"$lt": to_db(cutoff, "cutoff")}}
        return _delete_some(self._c, old, limit, sort=[("occurred_at", ASCENDING), ("_id", ASCENDING)])
