"""Structured log records of operations, deliveries and audit events (standard library only).

Every record carries ``record.mindmesh_auth_event`` (the event name) and the
fields below as attributes (``extra=``), for a JSON formatter or a log shipper:

==================  =========  ===============================================
event               level      attributes
==================  =========  ===============================================
operation_ok        DEBUG      operation, outcome ("ok"), duration_ms
operation_refused   INFO       operation, outcome (the error code), duration_ms
operation_failed    WARNING    operation, outcome (code or "error"), error_class, duration_ms
delivery_ok         DEBUG      message_kind, outcome, duration_ms
delivery_failed     WARNING    message_kind, outcome, error_class, duration_ms
audit_event         see below  audit_type
==================  =========  ===============================================

``audit_event`` is WARNING for ``REFRESH_REUSE_DETECTED``, INFO for
``RATE_LIMITED`` and ``OTP_SEND_FAILED``, DEBUG otherwise. No record holds an
argument, a result or an exception message: no address, IP, code, token or
password.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from ..core.models import AuditEventType
from ..core.ports import OutgoingMessage
from . import OK, F, Observer, Send, is_failure, outcome_of

__all__ = ["AUDIT_LEVELS", "EVENTS_LOGGER", "LogObserver"]

EVENTS_LOGGER = "mindmesh_auth.events"
"""The default logger: a child of ``mindmesh_auth``."""

AUDIT_LEVELS: dict[AuditEventType, int] = {
    AuditEventType.REFRESH_REUSE_DETECTED: logging.WARNING,
    AuditEventType.RATE_LIMITED: logging.INFO,
    AuditEventType.OTP_SEND_FAILED: logging.INFO,
}
"""Levels of ``audit_event`` records; other types are DEBUG."""


class LogObserver(Observer):
    """Logs one record per operation, delivery and audit row on ``logger`` (default ``mindmesh_auth.events``)."""

    def __init__(self, logger: logging.Logger | str | None = None) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or EVENTS_LOGGER)
        self.logger = logger

    def wrap_operation(self, operation: str, call: F) -> F:
        logger = self.logger
        clock = time.perf_counter

        @functools.wraps(call)
        def observed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                result = call(*args, **kwargs)
            except Exception as exc:
                _log_failure(logger, "operation", {"operation": operation}, exc, clock() - start)
                raise
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "mindmesh_auth %s: ok",
                    operation,
                    extra={
                        "mindmesh_auth_event": "operation_ok",
                        "operation": operation,
                        "outcome": OK,
                        "duration_ms": _ms(clock() - start),
                    },
                )
            return result

        return observed  # type: ignore[return-value]

    def wrap_delivery(self, send: Send) -> Send:
        logger = self.logger
        clock = time.perf_counter

        @functools.wraps(send)
        def observed(message: OutgoingMessage) -> None:
            kind = message.kind
            start = clock()
            try:
                send(message)
            except Exception as exc:
                _log_failure(logger, "delivery", {"message_kind": kind}, exc, clock() - start)
                raise
            logger.debug(
                "mindmesh_auth delivery (%s message): ok",
                kind,
                extra={
                    "mindmesh_auth_event": "delivery_ok",
                    "message_kind": kind,
                    "outcome": OK,
                    "duration_ms": _ms(clock() - start),
                },
            )

        return observed

    def audit_event(self, type: AuditEventType) -> None:
        self.logger.log(
            AUDIT_LEVELS.get(type, logging.DEBUG),
            "mindmesh_auth audit event %s",
            type.value,
            extra={"mindmesh_auth_event": "audit_event", "audit_type": type.value},
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _log_failure(logger: logging.Logger, what: str, fields: dict[str, str], exc: Exception, seconds: float) -> None:
    outcome = outcome_of(exc)
    subject = fields.get("operation") or f"delivery ({fields['message_kind']} message)"
    extra: dict[str, Any] = {"outcome": outcome, "duration_ms": _ms(seconds), **fields}
    if is_failure(exc):
        extra["mindmesh_auth_event"] = f"{what}_failed"
        extra["error_class"] = type(exc).__name__
        logger.warning("mindmesh_auth %s failed: %s (%s)", subject, outcome, type(exc).__name__, extra=extra)
    else:
        extra["mindmesh_auth_event"] = f"{what}_refused"
        logger.info("mindmesh_auth %s refused: %s", subject, outcome, extra=extra)
