"""PostgreSQL units of work with fewer round trips.

Inside a unit of work (:class:`~mindmesh_auth.adapters.peewee.store._Unit`)
on PostgreSQL, two kinds of statement need no answer of their own:

* the unit's ``BEGIN``: it is sent in front of the unit's first statement,
  in the same request (``BEGIN; <statement>``);
* writes whose result nobody reads (the audit rows of the unit, clearing a
  counter): they are sent in front of the next statement, or of the
  ``COMMIT``.

psycopg2 sends a request holding several statements in one round trip
(the simple query protocol); the server runs them in order and stops at the
first error, and the cursor holds the last statement's result. The unit's
effect is unchanged: every statement runs in the transaction, in the order
the unit issued it, and an error in a deferred write fails the request it
travels with, so the unit rolls back as a whole. A unit that sent nothing
(its ``BEGIN`` still pending) commits or rolls back without a round trip.

Only the store's own units defer: an app's transaction on the same database
(``database.atomic()`` outside the store) begins and runs as peewee does.
"""

from __future__ import annotations

import threading
from typing import Any

import peewee

__all__ = ["PipelinedPostgresqlDatabase"]


class _Pending(threading.local):
    def __init__(self) -> None:
        self.unit = 0  # depth of the store's units on this thread
        self.sql: list[str] = []
        self.params: list[Any] = []
        self.begin_pending = False


class PipelinedPostgresqlDatabase(peewee.PostgresqlDatabase):  # type: ignore[misc]
    """``PostgresqlDatabase`` whose store units send ``BEGIN`` and answer-less writes
    together with the next statement (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending = _Pending()

    # -- the store's units mark themselves --------------------------------
    def enter_unit(self) -> None:
        self._pending.unit += 1

    def leave_unit(self) -> None:
        pending = self._pending
        pending.unit -= 1
        if pending.unit <= 0:
            pending.unit = 0
            self._discard()

    def deferring(self) -> bool:
        """Whether a write may wait for the next statement (inside a store unit's transaction)."""
        return self._pending.unit > 0 and self.in_transaction()

    def defer(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write whose result is not needed; it is sent before the next statement."""
        self._pending.sql.append(sql)
        self._pending.params.extend(params)

    def _discard(self) -> None:
        pending = self._pending
        pending.sql.clear()
        pending.params.clear()
        pending.begin_pending = False

    def _take(self, sql: str, params: Any) -> tuple[str, Any]:
        pending = self._pending
        if not pending.sql:
            return sql, params
        combined = "; ".join([*pending.sql, sql])
        merged = tuple(pending.params) + tuple(params or ())
        pending.sql.clear()
        pending.params.clear()
        pending.begin_pending = False
        return combined, merged

    # -- peewee's hooks ------------------------------------------------------
    def begin(self, isolation_level: Any = None) -> None:
        pending = self._pending
        if pending.unit > 0 and isolation_level is None and not getattr(self, "_isolation_level", None) and not pending.sql:
            pending.sql.append("BEGIN")
            pending.begin_pending = True
            return
        super().begin(isolation_level)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        pending = self._pending
        if pending.sql:
            if sql.startswith("ROLLBACK TO SAVEPOINT") and not pending.begin_pending:
                # Everything still queued was issued inside this savepoint (its
                # SAVEPOINT statement flushed the queue): it is rolled back unsent.
                pending.sql.clear()
                pending.params.clear()
            else:
                sql, params = self._take(sql, params)
        return super().execute_sql(sql, params)  # type: ignore[no-untyped-call]

    def commit(self) -> None:
        pending = self._pending
        if pending.begin_pending and len(pending.sql) == 1:
            self._discard()  # nothing was sent: nothing to commit
            return
        if not pending.sql:
            super().commit()
            return
        if self.is_closed():
            raise peewee.InterfaceError("Cannot commit, database connection not open.")
        sql, params = self._take("COMMIT", ())
        self._execute_cursor(sql, params)  # type: ignore[attr-defined]

    def rollback(self) -> None:
        pending = self._pending
        never_sent = pending.begin_pending
        self._discard()
        if never_sent:
            return
        super().rollback()

    def _close(self, conn: Any) -> None:
        self._discard()
        super()._close(conn)  # type: ignore[misc]
