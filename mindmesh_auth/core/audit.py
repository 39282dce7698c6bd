"""Writing audit events: values are cleaned, secrets never passed in."""

from __future__ import annotations

from datetime import datetime

from .models import AuditEvent, AuditEventType, RequestContext
from .ports import AuditRepository

__all__ = ["Auditor", "clean_text"]

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
    def __init__(self, repo: AuditRepository) -> None:
        self._repo = repo

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
        self._repo.append(
            AuditEvent(
                type=type,
                occurred_at=now,
                user_id=user_id,
                email=clean_text(email),
                ip_address=context.ip_address,
                user_agent=clean_text(context.user_agent, 512),
                session_id=session_id,
                reason=reason,
            )
        )
