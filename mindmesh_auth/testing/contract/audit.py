"""The contract of :class:`~mindmesh_auth.core.ports.AuditRepository`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from ...core.models import AuditEvent, AuditEventType
from ...core.ports import Store
from ._support import T0, StoreFixtures

__all__ = ["AuditRepositoryContract"]


def _event(type: AuditEventType, at: datetime = T0, **kw: Any) -> AuditEvent:
    return AuditEvent(type=type, occurred_at=at, **kw)


class AuditRepositoryContract(StoreFixtures):
    """The audit log: ids, round trips, ``occurred_at`` order with ties in append
    order, filters and purges."""

    def test_audit_append_assigns_ids_and_round_trips(self, store: Store) -> None:
        event = _event(
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
            store.audit.append(_event(kind))
        store.audit.append(_event(AuditEventType.LOGIN_SUCCESS, at=T0 - timedelta(seconds=1)))
        assert [e.type for e in store.audit.query()] == [AuditEventType.LOGIN_SUCCESS, *kinds]

    def test_audit_append_many_keeps_the_given_order_after_earlier_rows(self, store: Store) -> None:
        store.audit.append(_event(AuditEventType.LOGOUT, user_id="u0"))
        batch = [_event(AuditEventType.OTP_VERIFIED, user_id=f"u{n}", reason=f"r{n}") for n in range(1, 11)]
        store.audit.append_many(batch)
        store.audit.append_many([])
        got = store.audit.query()
        assert [attrs.evolve(e, id=None) for e in got[1:]] == batch
        assert got[0].user_id == "u0" and len({e.id for e in got}) == 11 and None not in {e.id for e in got}

    def test_audit_filters(self, store: Store) -> None:
        store.audit.append(_event(AuditEventType.LOGIN_FAILED, T0, user_id="u1", email="a@example.com"))
        store.audit.append(_event(AuditEventType.LOGIN_SUCCESS, T0 + timedelta(minutes=1), user_id="u1"))
        store.audit.append(_event(AuditEventType.LOGIN_FAILED, T0 + timedelta(minutes=2), user_id="u2"))
        assert len(store.audit.query(user_id="u1")) == 2
        assert len(store.audit.query(email="a@example.com")) == 1
        assert len(store.audit.query(types=[AuditEventType.LOGIN_FAILED])) == 2
        assert len(store.audit.query(since=T0 + timedelta(minutes=1))) == 2
        assert len(store.audit.query(until=T0 + timedelta(minutes=1))) == 1
        assert [e.user_id for e in store.audit.query(limit=2)] == ["u1", "u1"]

    def test_audit_purge_before(self, store: Store) -> None:
        store.audit.append(_event(AuditEventType.LOGOUT, T0))
        store.audit.append(_event(AuditEventType.LOGOUT, T0 + timedelta(days=40)))
        assert store.audit.purge_before(T0 + timedelta(days=30)) == 1
        assert len(store.audit.query()) == 1

    def test_audit_purge_with_a_limit_deletes_the_oldest_first(self, store: Store) -> None:
        for n in (3, 1, 5, 2, 4):
            store.audit.append(_event(AuditEventType.LOGOUT, T0 + timedelta(seconds=n)))
        assert store.audit.purge_before(T0 + timedelta(seconds=10), limit=2) == 2
        assert [e.occurred_at for e in store.audit.query()] == [T0 + timedelta(seconds=n) for n in (3, 4, 5)]
