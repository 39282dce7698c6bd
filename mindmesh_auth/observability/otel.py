"""OpenTelemetry spans (the ``otel`` extra: opentelemetry-api; bring your own SDK and exporter).

* one span per operation, ``mindmesh_auth.<operation>`` (``mindmesh_auth.auth.login``),
  with ``mindmesh_auth.operation`` and ``mindmesh_auth.outcome`` (``ok`` or the
  error code), ``error.type`` (the error code) on a refusal or failure, and
  ``mindmesh_auth.storage_error`` (the error class) on a storage error;
* one span per delivery, ``mindmesh_auth.deliver``, with ``mindmesh_auth.message_kind``
  and ``mindmesh_auth.outcome``;
* one span event ``mindmesh_auth.audit`` (``mindmesh_auth.audit_type``) per audit row
  written, on the span current at the time (the operation's).

The span status is ERROR only for failures of the service (storage, delivery, a
bug: ``is_failure``); a refused input (wrong password, expired token, rate
limit) is an expected answer and leaves it unset. No argument, result,
exception message or traceback is recorded: no address, code or token.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

from ..core.errors import StorageError
from ..core.models import AuditEventType
from ..core.ports import OutgoingMessage
from . import OK, UNEXPECTED, F, Observer, Send, error_class, is_failure, outcome_of

__all__ = ["DELIVERY_SPAN", "SPAN_PREFIX", "OtelObserver"]

SPAN_PREFIX = "mindmesh_auth."
DELIVERY_SPAN = "mindmesh_auth.deliver"
OUTCOME = "mindmesh_auth.outcome"


def _version() -> str:
    from .. import __version__

    return __version__


class OtelObserver(Observer):
    """Traces every operation and delivery. ``tracer_provider`` defaults to the global one."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("mindmesh_auth", _version(), tracer_provider=tracer_provider)

    def wrap_operation(self, operation: str, call: F) -> F:
        tracer = self._tracer
        name = SPAN_PREFIX + operation
        attributes = {"mindmesh_auth.operation": operation}

        @functools.wraps(call)
        def observed(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(
                name, attributes=attributes, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    result = call(*args, **kwargs)
                except Exception as exc:
                    _failed(span, exc)
                    raise
                span.set_attribute(OUTCOME, OK)
                return result

        return observed  # type: ignore[return-value]

    def wrap_delivery(self, send: Send) -> Send:
        tracer = self._tracer

        @functools.wraps(send)
        def observed(message: OutgoingMessage) -> None:
            with tracer.start_as_current_span(
                DELIVERY_SPAN,
                attributes={"mindmesh_auth.message_kind": message.kind},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    send(message)
                except Exception as exc:
                    _failed(span, exc)
                    raise
                span.set_attribute(OUTCOME, OK)

        return observed

    def audit_event(self, type: AuditEventType) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("mindmesh_auth.audit", {"mindmesh_auth.audit_type": type.value})


def _failed(span: Span, exc: Exception) -> None:
    outcome = outcome_of(exc)
    span.set_attribute(OUTCOME, outcome)
    span.set_attribute("error.type", outcome if outcome != UNEXPECTED else type(exc).__name__)
    if isinstance(exc, StorageError):
        span.set_attribute("mindmesh_auth.storage_error", error_class(exc))
    if is_failure(exc):
        span.set_status(Status(StatusCode.ERROR, outcome))
