"""The composition root: ``MindmeshAuth`` wires a store, a mailer and a config."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .core.admin import AuditService, SessionService, UserService
from .core.config import AuthConfig
from .core.context import reset_context, set_context
from .core.deps import EmailCanonicalizer, Kernel
from .core.errors import ConfigurationError, ValidationError
from .core.login import AuthService
from .core.models import RequestContext
from .core.otp import OtpEngine, OtpService
from .core.password_reset import PasswordService
from .core.ports import Clock, Mailer, Randomness, Store
from .core.system import SystemClock, SystemRandomness
from .core.templates import MessageTemplate, MessageTemplates

PURGE_BATCH = 1000
"""Rows deleted per unit of work by ``purge_expired``."""

__all__ = ["MindmeshAuth"]

log = logging.getLogger("mindmesh_auth")


class MindmeshAuth:
    """The package's entry point, with the npm package's groups.

    ``auth.auth`` (register, login, verify_otp, get_user_from_token, refresh,
    logout), ``auth.otp``, ``auth.password``, ``auth.user``, plus
    ``auth.sessions``, ``auth.audit`` and :meth:`purge_expired`.

    ``store`` is a :class:`~mindmesh_auth.core.ports.Store` or a URL
    (``sqlite:///auth.db``, ``postgresql://...``, ``mysql://...``,
    ``mongodb://...``, ``memory://``, or the scheme of an installed store
    plugin: ``docs/plugins.md``). Without ``mailer``, SMTP is used when
    ``config.smtp_host`` is set. Safe to share between threads and tasks.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        mailer: Mailer | None = None,
        config: AuthConfig | None = None,
        *,
        clock: Clock | None = None,
        randomness: Randomness | None = None,
        templates: MessageTemplates | dict[str, MessageTemplate] | None = None,
        canonicalize_email: EmailCanonicalizer | None = None,
    ) -> None:
        if config is None:
            config = AuthConfig.from_env()
        if not isinstance(config, AuthConfig):
            raise ConfigurationError("config must be an AuthConfig.", variable="config")
        if store is None:
            store = config.database_url
        if store is None:
            raise ConfigurationError(
                "No store: pass store= (a Store or a URL) or set AUTH_DATABASE_URL.", variable="AUTH_DATABASE_URL"
            )
        if isinstance(store, str):
            from .wiring import store_from_url

            store = store_from_url(store)
        if mailer is None:
            if not config.smtp_host:
                raise ConfigurationError("No mailer: pass mailer= or set SMTP_HOST.", variable="SMTP_HOST")
            from .adapters.smtp import SmtpMailer

            mailer = SmtpMailer.from_config(config)
        if canonicalize_email is None:
            from .adapters.email_validation import canonicalize_email as default_canonicalize

            canonicalize_email = default_canonicalize
        if not isinstance(templates, MessageTemplates):
            templates = MessageTemplates(templates, app_name=config.app_name)
        self.config = config
        self.store = store
        self.mailer = mailer
        self._kernel = Kernel(
            store=store,
            mailer=mailer,
            config=config,
            clock=clock or SystemClock(),
            randomness=randomness or SystemRandomness(),
            templates=templates,
            canonicalize_email=canonicalize_email,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._pending: set[Future[None]] = set()
        engine = OtpEngine(self._kernel)
        self.auth = AuthService(self._kernel, engine)
        self.otp = OtpService(self._kernel, engine)
        self.password = PasswordService(self._kernel, self._schedule)
        self.user = UserService(self._kernel)
        self.sessions = SessionService(self._kernel)
        self.audit = AuditService(self._kernel)

    def __repr__(self) -> str:
        return f"MindmeshAuth(store={type(self.store).__name__}, mailer={type(self.mailer).__name__})"

    # -- context ------------------------------------------------------------
    def set_context(self, ip_address: str | None = None, user_agent: str | None = None) -> None:
        """Set the client IP and user agent for the current thread or asyncio task."""
        set_context(ip_address, user_agent)

    @contextlib.contextmanager
    def context(self, ip_address: str | None = None, user_agent: str | None = None) -> Iterator[RequestContext]:
        """``with auth.context(ip_address=...):`` scoped form of :meth:`set_context`."""
        token = set_context(ip_address, user_agent)
        try:
            from .core.context import current_context

            yield current_context()
        finally:
            reset_context(token)

    # -- maintenance --------------------------------------------------------
    def create_schema(self) -> None:
        """Create the tables, collections or indexes (idempotent)."""
        self.store.create_schema()

    def purge_expired(self, *, batch_size: int = PURGE_BATCH) -> dict[str, int]:
        """Delete expired sessions, codes, reset tokens, counters (and old audit rows
        when ``audit_retention`` is set). Returns the counts.

        Rows go in batches of at most ``batch_size``, each batch its own unit of
        work, so no table is locked for long however much there is to delete."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValidationError("batch_size must be 1..100000.", field="batch_size")
        k = self._kernel
        now = k.now()
        store = k.store

        def drain(purge: Callable[[], int]) -> int:
            total = 0
            while True:
                deleted = k.unit(purge)
                total += deleted
                if deleted < batch_size:
                    return total

        counts = {
            "sessions": drain(lambda: store.sessions.purge_expired(now, limit=batch_size)),
            "otp_challenges": drain(lambda: store.otps.purge_expired(now, limit=batch_size)),
            "reset_tokens": drain(lambda: store.reset_tokens.purge_expired(now, limit=batch_size)),
            "rate_limits": drain(lambda: store.rate_limits.purge_expired(now, limit=batch_size)),
        }
        retention = self.config.audit_retention
        if retention is not None:
            counts["audit_events"] = drain(lambda: store.audit.purge_before(now - retention, limit=batch_size))
        return counts

    # -- background delivery ------------------------------------------------
    def _schedule(self, job: Callable[[], None]) -> None:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mindmesh-auth-mail")
                atexit.register(self.wait_for_background_work)
            ctx = contextvars.copy_context()
            future: Future[None] = self._executor.submit(ctx.run, _logged(job))
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)

    def wait_for_background_work(self, timeout: float | None = 30.0) -> None:
        """Block until mails handed to the background (reset requests) are sent."""
        for future in list(self._pending):
            with contextlib.suppress(Exception):
                future.result(timeout=timeout)

    def close(self) -> None:
        self.wait_for_background_work()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.store.close()

    def __enter__(self) -> MindmeshAuth:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _logged(job: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception as exc:  # never leaks to the caller's response
            log.error("mindmesh-auth background job failed: %s", type(exc).__name__)

    return run
