"""Prometheus metrics (the ``metrics`` extra: prometheus-client).

Metrics (labels carry operation names, outcomes, message kinds, error classes
and audit event types only; never an address, IP, id or secret):

* ``mindmesh_auth_operations_total{operation,outcome}``
* ``mindmesh_auth_operation_duration_seconds{operation}`` (histogram)
* ``mindmesh_auth_deliveries_total{kind,outcome}``
* ``mindmesh_auth_delivery_duration_seconds{kind}`` (histogram)
* ``mindmesh_auth_storage_errors_total{error}``
* ``mindmesh_auth_audit_events_total{type}``
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from ..core.errors import StorageError
from ..core.models import AuditEventType
from ..core.ports import OutgoingMessage
from . import OK, F, Observer, Send, error_class, outcome_of

__all__ = ["DURATION_BUCKETS", "PrometheusObserver"]

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from a sub-millisecond token check to a slow bcrypt login or SMTP delivery."""


class _Metrics:
    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.operations = Counter(
            "mindmesh_auth_operations_total",
            "mindmesh-auth operations by outcome (ok or the error code).",
            ["operation", "outcome"],
            registry=registry,
        )
        self.operation_duration = Histogram(
            "mindmesh_auth_operation_duration_seconds",
            "Duration of mindmesh-auth operations, refusals and failures included.",
            ["operation"],
            buckets=self.buckets,
            registry=registry,
        )
        self.deliveries = Counter(
            "mindmesh_auth_deliveries_total",
            "Mail deliveries by message kind and outcome (ok or the error code).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            "mindmesh_auth_delivery_duration_seconds",
            "Duration of mail deliveries by message kind.",
            ["kind"],
            buckets=self.buckets,
            registry=registry,
        )
        self.storage_errors = Counter(
            "mindmesh_auth_storage_errors_total",
            "Storage errors raised by mindmesh-auth operations, by error class.",
            ["error"],
            registry=registry,
        )
        self.audit_events = Counter(
            "mindmesh_auth_audit_events_total",
            "Audit rows written, by event type.",
            ["type"],
            registry=registry,
        )


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _metrics(registry: CollectorRegistry, buckets: Sequence[float]) -> _Metrics:
    # One set of collectors per registry: several facades (or observers) on one
    # registry share them instead of failing on a duplicate metric name.
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = _Metrics(registry, buckets)
        elif found.buckets != tuple(buckets):
            from ..core.errors import ConfigurationError

            raise ConfigurationError(
                "This registry already holds mindmesh-auth histograms with other buckets.", variable="buckets"
            )
        return found


class PrometheusObserver(Observer):
    """Counts and times every operation and delivery; counts storage errors and audit events.

    ``registry`` defaults to prometheus-client's global ``REGISTRY`` (what its
    ``start_http_server`` and ``make_wsgi_app``/``make_asgi_app`` expose).
    Observers and facades sharing a registry share its metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._m = _metrics(self.registry, buckets)

    def wrap_operation(self, operation: str, call: F) -> F:
        m = self._m
        ok = m.operations.labels(operation, OK)
        duration = m.operation_duration.labels(operation)
        operations = m.operations
        storage_errors = m.storage_errors
        clock = time.perf_counter

        @functools.wraps(call)
        def observed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                result = call(*args, **kwargs)
            except Exception as exc:
                duration.observe(clock() - start)
                operations.labels(operation, outcome_of(exc)).inc()
                if isinstance(exc, StorageError):
                    storage_errors.labels(error_class(exc)).inc()
                raise
            duration.observe(clock() - start)
            ok.inc()
            return result

        return observed  # type: ignore[return-value]

    def wrap_delivery(self, send: Send) -> Send:
        m = self._m
        clock = time.perf_counter

        @functools.wraps(send)
        def observed(message: OutgoingMessage) -> None:
            kind = message.kind
            start = clock()
            try:
                send(message)
            except Exception as exc:
                m.delivery_duration.labels(kind).observe(clock() - start)
                m.deliveries.labels(kind, outcome_of(exc)).inc()
                raise
            m.delivery_duration.labels(kind).observe(clock() - start)
            m.deliveries.labels(kind, OK).inc()

        return observed

    def audit_event(self, type: AuditEventType) -> None:
        self._m.audit_events.labels(type.value).inc()
