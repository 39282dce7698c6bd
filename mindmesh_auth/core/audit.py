"""Writing audit events: values are cleaned, secrets never passed in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import attrs

from .models import AuditEvent, AuditEventType, RequestContext
from .ports import AuditRepository

__all__ = ["AuditObserver", "Auditor", "clean_text"]

AuditObserver = Callable[[AuditEventType], None]
"""Told the type of each audit row once it is written (metrics); never the row itself."""

_MAX = 320


def clean_text(value: str | None, limit: int = _MAX) -> str | None:
    """Escape control characters (CR, LF, NUL...) and cap the length (log injection).

    The cap applies to the escaped result: at most ``limit`` characters are returned,
    and an escape sequence is never cut in half (the text stops before it instead).
    """
    if value is None:
        return None
    out = []
    size = 0
    for ch in value[:limit]:  # each character yields at least one: no more are ever needed
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch in "\u2028\u2029":
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        else:
            piece = ch
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


class Auditor:
    """Writes audit rows; inside :meth:`batch` (a unit of work) it collects them and
    writes them together at the end of the unit (one statement on SQL), in order."""

    def __init__(self, repo: AuditRepository, observer: AuditObserver | None = None) -> None:
        self._repo = repo
        self._local = threading.local()
        self._latest: datetime | None = None  # the latest occurred_at written (time only moves forward)
        self._latest_lock = threading.Lock()
        self.observer: AuditObserver = observer or _ignore
        """Called with each written row's type (``observability``); a no-op by default."""

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the rows recorded in the block (this thread only) and append them
        when it ends normally; drop them when it raises. A nested batch is part of
        the outer one (its rows are dropped if it raises, kept otherwise)."""
        pending: list[AuditEvent] | None = getattr(self._local, "pending", None)
        if pending is not None:
            mark = len(pending)
            try:
                yield
            except BaseException:
                del pending[mark:]
                raise
            return
        rows: list[AuditEvent] = []
        self._local.pending = rows
        try:
            yield
        finally:
            self._local.pending = None
        if rows:
            self._repo.append_many([self._forward(row) for row in rows])
            for row in rows:
                self.observer(row.type)

    def record(
        self,
        type: AuditEventType,
        now: datetime,
        context: RequestContext,
        *,
        user_id: str | None = None,
        email: str | None = None,
        session_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        event = AuditEvent(
            type=type,
            occurred_at=now,
            user_id=user_id,
            email=clean_text(email),
            ip_address=context.ip_address,
            user_agent=clean_text(context.user_agent, 512),
            session_id=session_id,
            reason=reason,
        )
        pending: list[AuditEvent] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(event)
        else:
            self._repo.append(self._forward(event))
            self.observer(type)

    def _forward(self, event: AuditEvent) -> AuditEvent:
        """The event stamped no earlier than the latest row this auditor wrote: after the
        clock steps back, ``occurred_at`` order stays the order the rows were written in."""
        with self._latest_lock:
            if self._latest is not None and event.occurred_at < self._latest:
                return attrs.evolve(event, occurred_at=self._latest)
            self._latest = event.occurred_at
            return event


def _ignore(type: AuditEventType) -> None:
    """The default :attr:`Auditor.observer`: nothing to tell."""
