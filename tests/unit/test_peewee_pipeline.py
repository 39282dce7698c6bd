"""PostgreSQL units send BEGIN and answer-less writes with the next statement.

(``mindmesh_auth/adapters/peewee/_pipeline.py``.) The unit's effect must be
the same as with one request per statement: everything or nothing, in order.
Needs the PostgreSQL test server (see tests/_servers.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import server_url, unique_prefix  # noqa: E402

from mindmesh_auth import MindmeshAuth  # noqa: E402
from mindmesh_auth.adapters.peewee import PeeweeStore  # noqa: E402
from mindmesh_auth.adapters.peewee._pipeline import PipelinedPostgresqlDatabase  # noqa: E402
from mindmesh_auth.core.errors import StorageError  # noqa: E402
from mindmesh_auth.core.models import AuditEvent, AuditEventType, Session, User  # noqa: E402
from mindmesh_auth.testing import Outbox  # noqa: E402
from mindmesh_auth.testing.config import test_config  # noqa: E402

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class Requests:
    """Every request the driver sends (one ``cursor.execute`` each), via the
    database's ``execute_sql`` / ``_execute_cursor`` and peewee's own BEGIN/COMMIT."""

    def __init__(self, db: PipelinedPostgresqlDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        original = peewee.PostgresqlDatabase._execute_cursor
        sent = self.sent

        def spy(this: object, sql: str, params: object, **options: object) -> object:
            sent.append(sql)
            return original(this, sql, params, **options)

        monkeypatch.setattr(peewee.PostgresqlDatabase, "_execute_cursor", spy)
        for name in ("begin", "commit", "rollback"):  # peewee sends these itself
            base = getattr(peewee.PostgresqlDatabase, name)

            def plain(this: object, *args: object, _base: object = base, _name: str = name) -> object:
                sent.append(_name.upper())
                return _base(this, *args)  # type: ignore[operator]

            monkeypatch.setattr(peewee.PostgresqlDatabase, name, plain)


@pytest.fixture
def store() -> Iterator[PeeweeStore]:
    s = PeeweeStore.from_url(server_url("postgres"), table_prefix=unique_prefix())
    s.create_schema()
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def _user(n: int) -> User:
    return User(id=f"user-{n}", email=f"user{n}@example.com", password_hash="hash", created_at=T0, updated_at=T0)


def _session(n: int, user_id: str) -> Session:
    return Session(
        id=f"session-{n}",
        user_id=user_id,
        refresh_hash=f"{n:064x}",
        created_at=T0,
        expires_at=T0 + timedelta(days=1),
        last_active_at=T0,
    )


def _event(reason: str) -> AuditEvent:
    return AuditEvent(id=None, type=AuditEventType.LOGIN_FAILED, occurred_at=T0, reason=reason)


def _reasons(store: PeeweeStore) -> list[str | None]:
    return [e.reason for e in store.audit.query(limit=100)]


def test_a_url_store_on_postgresql_is_pipelined(store: PeeweeStore) -> None:
    assert isinstance(store.database, PipelinedPostgresqlDatabase)


def test_begin_travels_with_the_first_statement_and_deferred_writes_with_commit(
    store: PeeweeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.users.add(_user(1))
    requests = Requests(store.database, monkeypatch)  # type: ignore[arg-type]
    with store.atomic():
        store.sessions.add(_session(1, "user-1"))
        store.audit.append_many([_event("first"), _event("second")])
        store.rate_limits.reset("some-key")
    # Nothing in this unit needs an answer: BEGIN, the three writes and COMMIT are one request.
    assert len(requests.sent) == 1, requests.sent
    assert requests.sent[0].startswith("BEGIN; INSERT") and requests.sent[0].endswith("; COMMIT")
    assert "DELETE" in requests.sent[0]
    assert store.sessions.get("session-1") is not None
    assert sorted(r for r in _reasons(store) if r) == ["first", "second"]


def test_a_unit_of_deferred_writes_only_still_writes_them(store: PeeweeStore) -> None:
    with store.atomic():
        store.audit.append_many([_event("alone")])
    assert _reasons(store) == ["alone"]


def test_a_failing_deferred_write_rolls_the_whole_unit_back(store: PeeweeStore) -> None:
    store.users.add(_user(1))
    db = store.database
    assert isinstance(db, PipelinedPostgresqlDatabase)
    with pytest.raises(StorageError), store.atomic():
        store.sessions.add(_session(1, "user-1"))
        store.audit.append_many([_event("kept?")])
        db.defer("SELECT 1 / 0", ())  # fails with the COMMIT request
    assert store.sessions.get("session-1") is None
    assert _reasons(store) == []
    # The connection is usable afterwards, outside and inside units.
    with store.atomic():
        store.sessions.add(_session(2, "user-1"))
    assert store.sessions.get("session-2") is not None


def test_a_unit_that_fails_before_sending_anything_costs_no_request(
    store: PeeweeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = Requests(store.database, monkeypatch)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), store.atomic():
        raise RuntimeError("before any statement")
    with store.atomic():
        pass
    assert requests.sent == []


def test_a_rolled_back_savepoint_drops_its_queued_writes(store: PeeweeStore) -> None:
    store.users.add(_user(1))
    with store.atomic():
        store.sessions.add(_session(1, "user-1"))
        store.audit.append_many([_event("outer")])
        with pytest.raises(RuntimeError), store.atomic():
            store.audit.append_many([_event("inner")])
            raise RuntimeError("inner unit fails")
    assert store.sessions.get("session-1") is not None
    assert _reasons(store) == ["outer"]


def test_an_apps_own_transaction_begins_at_once(store: PeeweeStore) -> None:
    # Outside the store's units, peewee's BEGIN is sent as usual, so a raw cursor
    # statement of the app runs inside the transaction and rolls back with it.
    db = store.database
    table = store.models.Audit._meta.table_name
    with pytest.raises(RuntimeError), db.atomic():
        db.connection().cursor().execute(
            f'INSERT INTO "{table}" (type, occurred_at, reason) VALUES (%s, %s, %s)', ("LOGIN_FAILED", 0, "raw")
        )
        raise RuntimeError("app rolls back")
    assert _reasons(store) == []


def test_verify_otp_sends_five_requests_and_keeps_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    store = PeeweeStore.from_url(server_url("postgres"), table_prefix=unique_prefix())
    outbox = Outbox()
    auth = MindmeshAuth(store=store, mailer=outbox, config=test_config())
    auth.create_schema()
    try:
        auth.set_context(ip_address="203.0.113.9")
        auth.auth.register("pipe@example.com", "correct horse battery")
        handle = auth.auth.login("pipe@example.com", "correct horse battery").handle
        code = outbox.last_code("pipe@example.com")
        requests = Requests(store.database, monkeypatch)  # type: ignore[arg-type]
        result = auth.auth.verify_otp("pipe@example.com", code, "login", handle=handle)
        # read the code; BEGIN+count the window and the consecutive failures (one upsert of two rows);
        # redeem; read the user; open the session+clear+audit+COMMIT
        # (without the handle: one more, the code's unbound allowance)
        assert len(requests.sent) == 5, requests.sent
        assert requests.sent[-1].startswith("INSERT INTO") and requests.sent[-1].endswith("; COMMIT")
        assert requests.sent[1].startswith("BEGIN; INSERT") and requests.sent[1].count("), (") == 1
        assert not any(sql in ("BEGIN", "COMMIT") for sql in requests.sent)
        monkeypatch.undo()
        assert auth.auth.get_user_from_token(result.access_token).email == "pipe@example.com"
        types = [e.type for e in store.audit.query(limit=20)]
        assert AuditEventType.OTP_VERIFIED in types and AuditEventType.LOGIN_SUCCESS in types
    finally:
        store.drop_schema()
        store.close()
