"""The composition root: ``MindmeshAuth`` wires a store, a mailer and a config."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .core.account import AccountService
from .core.admin import AuditService, SessionService, UserService
from .core.config import AuthConfig
from .core.context import reset_context, set_context
from .core.deps import EmailCanonicalizer, Kernel
from .core.errors import ConfigurationError, ValidationError
from .core.hooks import Hooks
from .core.login import AuthService
from .core.models import RequestContext
from .core.otp import OtpEngine, OtpService
from .core.password_reset import PasswordService
from .core.ports import Clock, Mailer, Randomness, Store
from .core.schema import MigrationPlan, SchemaStatus
from .core.system import SystemClock, SystemRandomness
from .core.templates import MessageTemplate, MessageTemplates
from .hashing import HashingGate, hashing_operations

PURGE_BATCH = 1000
"""Rows deleted per unit of work by ``purge_expired``."""

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .observability import Observer

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
    ``observers`` (``mindmesh_auth.observability``: Prometheus metrics,
    OpenTelemetry spans, structured logs) are off by default: ``docs/observability.md``.
    ``hooks`` (:class:`~mindmesh_auth.core.hooks.Hooks`) call the app's code before a
    registration and after the steps of an account's life: ``docs/hooks.md``.
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
        observers: Sequence[Observer] | None = None,
        hooks: Hooks | None = None,
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
            from .adapters.email_validation import email_canonicalizer

            canonicalize_email = email_canonicalizer(allow_test_domains=config.allow_test_email_domains)
        if not isinstance(templates, MessageTemplates):
            templates = MessageTemplates(templates, app_name=config.app_name)
        if hooks is not None and not isinstance(hooks, Hooks):
            raise ConfigurationError("hooks must be a mindmesh_auth.Hooks.", variable="hooks")
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
            hooks=hooks,
        )
        self._background = _MailQueue(config.mail_queue_size)
        engine = OtpEngine(self._kernel)
        self.auth = AuthService(self._kernel, engine)
        self.otp = OtpService(self._kernel, engine, self._schedule)
        self.password = PasswordService(self._kernel, self._schedule)
        self.user = UserService(self._kernel)
        self.account = AccountService(self._kernel, engine)
        self.sessions = SessionService(self._kernel)
        self.audit = AuditService(self._kernel)
        # At most hash_workers operations that run bcrypt at once, a bounded queue behind them,
        # Overloaded beyond it (docs/performance.md); inside the observers, so they count refusals.
        self.hashing = HashingGate.from_config(config)
        self.hashing.guard_facade(self, hashing_operations(config))
        if observers:  # only then: without observers every service method stays the plain bound method
            from .observability import instrument

            instrument(self, observers)

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
        """Create the tables, collections or indexes (idempotent).

        On tables made by an older release, or lacking a column of the app's
        user model, it raises ``SchemaMismatch`` saying to run :meth:`migrate`."""
        self.store.create_schema()

    def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        """Bring the database to the current schema version (SQL: also add the
        columns of the app's user model the table lacks; MongoDB: sync indexes).
        ``dry_run=True`` returns the statements and changes nothing. See docs/sql.md."""
        if not isinstance(dry_run, bool):
            raise ValidationError("dry_run must be True or False.", field="dry_run")
        return self.store.migrate(dry_run=dry_run)

    def schema_status(self) -> SchemaStatus:
        """The schema version recorded in the database and what :meth:`migrate` would do."""
        return self.store.schema_status()

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
        """Queue a mail job (reset requests, ``otp.send``). A full queue drops the job with a
        warning: the caller's answer is the same either way."""
        ctx = contextvars.copy_context()
        if self._background.submit(lambda: ctx.run(_logged(job)), on_first=self._register_exit):
            return
        log.warning(
            "mindmesh-auth background mail queue is full (%d jobs) or closed: a mail job was dropped",
            self.config.mail_queue_size,
        )

    def _register_exit(self) -> None:
        atexit.register(self._finish_background)

    @property
    def background_dropped(self) -> int:
        """How many background mail jobs were dropped (queue full, or handed over after ``close()``)."""
        return self._background.dropped

    def wait_for_background_work(self, timeout: float | None = 30.0) -> None:
        """Block until mails handed to the background (reset requests) are sent,
        or ``timeout`` seconds passed (``None``: no bound)."""
        self._background.wait(timeout)

    def _finish_background(self) -> None:
        """Wait at most ``mail_shutdown_grace`` for queued mail, then give up on the rest:
        the workers are daemon threads, so they never hold the interpreter's exit."""
        left = self._background.close(self.config.mail_shutdown_grace)
        if left:
            log.warning(
                "mindmesh-auth: %d background mail job(s) not sent within the %.3g s shutdown grace",
                left,
                self.config.mail_shutdown_grace,
            )

    def close(self) -> None:
        """Waits at most ``mail_shutdown_grace`` for queued mail (see above), then closes the store."""
        self._finish_background()
        atexit.unregister(self._finish_background)
        self.store.close()

    def __enter__(self) -> MindmeshAuth:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _MailQueue:
    """A bounded queue of mail jobs served by daemon worker threads (started on first use).

    ``close(grace)`` waits at most ``grace`` seconds, then forgets the jobs not yet
    started and returns how many jobs (queued or running) were not finished.
    """

    WORKERS = 2

    def __init__(self, size: int) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=size)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._unfinished = 0  # queued or running
        self._started = False
        self._closed = False
        self.dropped = 0

    def submit(self, job: Callable[[], None], *, on_first: Callable[[], None]) -> bool:
        with self._lock:
            if self._closed:
                self.dropped += 1
                return False
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                self.dropped += 1
                return False
            self._unfinished += 1
            if not self._started:
                self._started = True
                on_first()
                for n in range(self.WORKERS):
                    threading.Thread(target=self._work, name=f"mindmesh-auth-mail-{n}", daemon=True).start()
        return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            finally:
                with self._lock:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def wait(self, timeout: float | None) -> int:
        """Wait until every job finished or ``timeout`` passed; how many are unfinished."""
        with self._lock:
            self._idle.wait_for(lambda: self._unfinished == 0, timeout)
            return self._unfinished

    def close(self, grace: float) -> int:
        left = self.wait(grace)
        with self._lock:
            self._closed = True
            while True:  # jobs not started yet never start
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
                self._unfinished -= 1
            return left


def _logged(job: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception as exc:  # never leaks to the caller's response
            log.error("mindmesh-auth background job failed: %s", type(exc).__name__)

    return run
