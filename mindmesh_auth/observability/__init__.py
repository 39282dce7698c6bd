"""Optional observability: metrics, traces and structured logs of every operation.

    from mindmesh_auth.observability import LogObserver, OtelObserver, PrometheusObserver

    auth = MindmeshAuth(store=..., observers=[PrometheusObserver(), OtelObserver(), LogObserver()])

Without ``observers`` nothing here is imported and every service method is the
plain bound method: the token check costs nothing extra. With observers, each
public method of each service group (``auth.auth``, ``auth.otp``,
``auth.password``, ``auth.user``, ``auth.sessions``, ``auth.audit``) is wrapped
once, at construction; so are the mailer (deliveries, by message kind), the
background reset delivery and the audit writer (event types). The wrappers see
the operation's name, its outcome (``"ok"`` or the typed error's ``code``) and
its duration, never its arguments or result: no address, code, token or
password reaches a metric label, a span or a log record.

``PrometheusObserver`` needs the ``metrics`` extra (prometheus-client),
``OtelObserver`` the ``otel`` extra (opentelemetry-api); ``LogObserver`` needs
nothing. See ``docs/observability.md``.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.errors import AuthError, ConfigurationError, StorageError
from ..core.models import AuditEventType
from ..core.ports import Mailer, OutgoingMessage

if TYPE_CHECKING:
    from ..facade import MindmeshAuth
    from .logs import LogObserver
    from .otel import OtelObserver
    from .prometheus import PrometheusObserver

__all__ = [
    "GROUPS",
    "RESET_DELIVERY_OPERATION",
    "LogObserver",
    "ObservedMailer",
    "Observer",
    "OtelObserver",
    "PrometheusObserver",
    "error_class",
    "instrument",
    "is_failure",
    "outcome_of",
]

F = TypeVar("F", bound=Callable[..., Any])
Send = Callable[[OutgoingMessage], None]

GROUPS = ("auth", "otp", "password", "account", "user", "sessions", "audit")
"""The facade's service groups; an operation is named ``<group>.<method>`` (``auth.login``)."""

RESET_DELIVERY_OPERATION = "password.reset_delivery"
"""The background part of ``password.request_reset`` (token and mail), when it runs in the background."""

OK = "ok"
UNEXPECTED = "error"
"""The outcome of an exception that is not an :class:`~mindmesh_auth.core.errors.AuthError` (a bug)."""

log = logging.getLogger("mindmesh_auth")


class Observer:
    """Something told about operations, deliveries and audit events.

    Subclasses override what they need; each default changes nothing. A
    ``wrap_*`` method is called once per operation at construction and returns
    the callable the facade will expose: it must call ``call`` exactly once with
    the same arguments, return its result and re-raise its exception unchanged.
    """

    def wrap_operation(self, operation: str, call: F) -> F:
        """Wrap one service method (``operation`` is ``"auth.login"``, ...)."""
        return call

    def wrap_delivery(self, send: Send) -> Send:
        """Wrap the mailer's ``send`` (a message's ``kind`` may be read; never its address or text)."""
        return send

    def audit_event(self, type: AuditEventType) -> None:
        """An audit row of this type was written."""


def outcome_of(exc: BaseException) -> str:
    """The outcome label of a failed call: the typed error's ``code``, else ``"error"``."""
    return exc.code if isinstance(exc, AuthError) else UNEXPECTED


def is_failure(exc: BaseException) -> bool:
    """A failure of the service (storage, delivery, configuration, a bug), not a refusal of the caller's input."""
    return not isinstance(exc, AuthError) or exc.status >= 500


def error_class(exc: StorageError) -> str:
    """The storage error's class as the core names it (a subclass such as an injected
    fault counts as its core parent), so the label set stays the core's own."""
    for cls in type(exc).__mro__:
        if cls.__module__ == StorageError.__module__:
            return cls.__name__
    return StorageError.__name__  # pragma: no cover - every StorageError has a core class in its MRO


class ObservedMailer(Mailer):
    """The mailer the services use when observers are given: ``inner.send`` wrapped by each observer."""

    def __init__(self, inner: Mailer, observers: Sequence[Observer]) -> None:
        self.inner = inner
        send: Send = inner.send
        for observer in reversed(observers):
            send = observer.wrap_delivery(send)
        self._send = send

    def send(self, message: OutgoingMessage) -> None:
        self._send(message)

    def __repr__(self) -> str:
        return f"ObservedMailer({self.inner!r})"


def instrument(facade: MindmeshAuth, observers: Sequence[Observer]) -> None:
    """Wire ``observers`` into a facade (called by ``MindmeshAuth(observers=...)``).

    Each service group becomes a shallow copy of itself whose public methods are
    the observers' wrappers around the original's bound methods: a method that
    calls another one of its group (``get_user_from_token`` calls
    ``authenticate``) runs on the original, so it is counted once.
    """
    if isinstance(observers, Observer) or not isinstance(observers, Iterable):
        observers = [observers]  # type: ignore[list-item]  # reported below, unless it is one Observer
    observers = list(observers)
    for observer in observers:
        if not isinstance(observer, Observer):
            raise ConfigurationError(
                "observers must be a list of mindmesh_auth.observability.Observer instances "
                "(PrometheusObserver, OtelObserver, LogObserver or a subclass).",
                variable="observers",
            )
    if not observers:
        return
    kernel = facade._kernel
    kernel.mailer = ObservedMailer(kernel.mailer, observers)
    kernel.auditor.observer = _audit_fanout(observers)
    password = facade.password
    schedule: Callable[[Callable[[], None]], None] = password._schedule
    background = _wrap(RESET_DELIVERY_OPERATION, observers)

    def observed_schedule(job: Callable[[], None]) -> None:
        schedule(background(job))

    password._schedule = observed_schedule
    for group in GROUPS:
        setattr(facade, group, _observed_group(getattr(facade, group), group, observers))


def _wrap(operation: str, observers: Sequence[Observer]) -> Callable[[F], F]:
    def wrap(call: F) -> F:
        for observer in reversed(observers):
            call = observer.wrap_operation(operation, call)
        return call

    return wrap


def _observed_group(service: Any, group: str, observers: Sequence[Observer]) -> Any:
    observed = copy.copy(service)
    for name, _ in inspect.getmembers(type(service), inspect.isfunction):
        if not name.startswith("_"):
            setattr(observed, name, _wrap(f"{group}.{name}", observers)(getattr(service, name)))
    return observed


def _audit_fanout(observers: Sequence[Observer]) -> Callable[[AuditEventType], None]:
    def observe(event_type: AuditEventType) -> None:
        for observer in observers:
            try:
                observer.audit_event(event_type)
            except Exception as exc:  # the row is written: a metrics failure must not fail the operation
                log.warning(
                    "An observer failed on an audit event: %s",
                    type(exc).__name__,
                    extra={"mindmesh_auth_event": "observer_failed"},
                )

    return observe


def __getattr__(name: str) -> Any:  # the observers import their optional libraries only when asked for
    if name == "PrometheusObserver":
        from .prometheus import PrometheusObserver

        return PrometheusObserver
    if name == "OtelObserver":
        from .otel import OtelObserver

        return OtelObserver
    if name == "LogObserver":
        from .logs import LogObserver

        return LogObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
