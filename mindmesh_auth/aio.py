"""An asyncio facade with the same API, keeping bcrypt and storage work off the event loop.

    auth = AsyncMindmeshAuth(MindmeshAuth(store=..., mailer=..., config=...))
    result = await auth.auth.login(email, password)

Every call runs the synchronous facade on a thread pool; the caller's context
(``set_context``) travels with the call. Calls that may run bcrypt (register,
login, password reset and change; the code checks too with ``otp_hash="bcrypt"``)
run on a pool of their own, ``hash_workers`` threads with at most
``hash_queue_limit`` calls waiting (beyond that: ``Overloaded`` at once), so
token checks, refreshes and admin reads never queue behind password hashing
(docs/performance.md, "Password hashing under load").
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, cast

from .core.errors import Overloaded
from .core.models import (
    AuditEvent,
    AuditEventType,
    LoginChallenge,
    LoginResult,
    RequestContext,
    Session,
    SessionWithUser,
    TokenPair,
    User,
)
from .core.schema import MigrationPlan, SchemaStatus
from .facade import MindmeshAuth
from .hashing import hashing_operations

__all__ = ["AsyncAudit", "AsyncAuth", "AsyncMindmeshAuth", "AsyncOtp", "AsyncPassword", "AsyncSessions", "AsyncUsers"]

Runner = Callable[..., Awaitable[Any]]


class _AsyncGroup:
    def __init__(self, group: Any, run: Runner, run_hashing: Runner, hashing: Sequence[str] = ()) -> None:
        self._group = group
        self._run = run
        self._run_hashing = run_hashing
        self._hashing = frozenset(hashing)

    def _runner(self, name: str) -> Runner:
        """The hashing pool for the methods that may run bcrypt, the general pool for the rest."""
        return self._run_hashing if name in self._hashing else self._run

    def __repr__(self) -> str:
        return f"<async {type(self._group).__name__}>"


class AsyncAuth(_AsyncGroup):
    """``auth.auth`` for asyncio."""

    async def register(
        self, email: str, password: str, *, context: RequestContext | None = None, **profile: Any
    ) -> User:
        return cast(User, await self._runner("register")(self._group.register, email, password, context=context, **profile))

    async def login(
        self, email: str, password: str, *, context: RequestContext | None = None, device_token: str | None = None
    ) -> LoginChallenge:
        return cast(
            LoginChallenge,
            await self._runner("login")(self._group.login, email, password, context=context, device_token=device_token),
        )

    async def verify_otp(
        self,
        email: str,
        code: str,
        purpose: str = "login",
        *,
        handle: str | None = None,
        context: RequestContext | None = None,
    ) -> LoginResult:
        return cast(
            LoginResult,
            await self._runner("verify_otp")(self._group.verify_otp, email, code, purpose, handle=handle, context=context),
        )

    async def get_user_from_token(self, access_token: str) -> User:
        return cast(User, await self._run(self._group.get_user_from_token, access_token))

    async def authenticate(self, access_token: str) -> SessionWithUser:
        return cast(SessionWithUser, await self._run(self._group.authenticate, access_token))

    async def refresh(self, refresh_token: str, *, context: RequestContext | None = None) -> TokenPair:
        return cast(TokenPair, await self._run(self._group.refresh, refresh_token, context=context))

    async def logout(self, session_id: str, *, context: RequestContext | None = None) -> bool:
        return cast(bool, await self._run(self._group.logout, session_id, context=context))

    async def logout_by_refresh_token(self, refresh_token: str, *, context: RequestContext | None = None) -> bool:
        return cast(bool, await self._run(self._group.logout_by_refresh_token, refresh_token, context=context))


class AsyncOtp(_AsyncGroup):
    """``auth.otp`` for asyncio."""

    async def send(self, email: str, purpose: str, *, context: RequestContext | None = None) -> None:
        await self._runner("send")(self._group.send, email, purpose, context=context)

    async def verify(self, email: str, code: str, purpose: str, *, context: RequestContext | None = None) -> bool:
        return cast(bool, await self._runner("verify")(self._group.verify, email, code, purpose, context=context))


class AsyncPassword(_AsyncGroup):
    """``auth.password`` for asyncio."""

    async def request_reset(self, email: str, *, context: RequestContext | None = None) -> None:
        await self._run(self._group.request_reset, email, context=context)

    async def reset(self, token: str, new_password: str, *, context: RequestContext | None = None) -> None:
        await self._runner("reset")(self._group.reset, token, new_password, context=context)

    async def change(
        self,
        user_id: str,
        current_password: str,
        new_password: str,
        *,
        keep_session_id: str | None = None,
        context: RequestContext | None = None,
    ) -> None:
        await self._runner("change")(
            self._group.change, user_id, current_password, new_password, keep_session_id=keep_session_id, context=context
        )


class AsyncAccount(_AsyncGroup):
    """``auth.account`` for asyncio."""

    async def delete(self, user_id: str, password: str, *, context: RequestContext | None = None) -> None:
        await self._runner("delete")(self._group.delete, user_id, password, context=context)

    async def request_email_change(
        self, user_id: str, password: str, new_email: str, *, context: RequestContext | None = None
    ) -> None:
        await self._runner("request_email_change")(
            self._group.request_email_change, user_id, password, new_email, context=context
        )

    async def confirm_email_change(
        self, user_id: str, new_email: str, code: str, *, context: RequestContext | None = None
    ) -> User:
        return cast(
            User,
            await self._runner("confirm_email_change")(
                self._group.confirm_email_change, user_id, new_email, code, context=context
            ),
        )


class AsyncUsers(_AsyncGroup):
    """``auth.user`` for asyncio."""

    async def create(
        self,
        email: str,
        password: str,
        *,
        email_verified: bool = False,
        context: RequestContext | None = None,
        **profile: Any,
    ) -> User:
        return cast(
            User,
            await self._runner("create")(
                self._group.create, email, password, email_verified=email_verified, context=context, **profile
            ),
        )

    async def get_by_id(self, user_id: str) -> User:
        return cast(User, await self._run(self._group.get_by_id, user_id))

    async def get_by_email(self, email: str) -> User | None:
        return cast("User | None", await self._run(self._group.get_by_email, email))

    async def list(self, *, limit: int = 100, offset: int = 0) -> list[User]:
        return cast("list[User]", await self._run(self._group.list, limit=limit, offset=offset))

    async def block(self, user_id: str, *, context: RequestContext | None = None) -> None:
        await self._run(self._group.block, user_id, context=context)

    async def unblock(self, user_id: str, *, context: RequestContext | None = None) -> None:
        await self._run(self._group.unblock, user_id, context=context)

    async def mark_email_verified(self, user_id: str, *, context: RequestContext | None = None) -> None:
        await self._run(self._group.mark_email_verified, user_id, context=context)

    async def delete(self, user_id: str, *, context: RequestContext | None = None) -> None:
        await self._run(self._group.delete, user_id, context=context)


class AsyncSessions(_AsyncGroup):
    """``auth.sessions`` for asyncio."""

    async def list(self, user_id: str, *, include_inactive: bool = False) -> list[Session]:
        return cast("list[Session]", await self._run(self._group.list, user_id, include_inactive=include_inactive))

    async def get(self, session_id: str) -> Session:
        return cast(Session, await self._run(self._group.get, session_id))

    async def revoke(
        self, session_id: str, *, user_id: str | None = None, context: RequestContext | None = None
    ) -> bool:
        return cast(bool, await self._run(self._group.revoke, session_id, user_id=user_id, context=context))

    async def revoke_all(self, user_id: str, *, context: RequestContext | None = None) -> int:
        return cast(int, await self._run(self._group.revoke_all, user_id, context=context))


class AsyncAudit(_AsyncGroup):
    """``auth.audit`` for asyncio."""

    async def query(
        self,
        *,
        user_id: str | None = None,
        email: str | None = None,
        types: Sequence[AuditEventType | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        return cast(
            "list[AuditEvent]",
            await self._run(
                self._group.query, user_id=user_id, email=email, types=types, since=since, until=until, limit=limit
            ),
        )


class AsyncMindmeshAuth:
    """``await auth.auth.login(...)``, ``await auth.otp.send(...)``, ... on thread pools.

    ``max_workers`` sizes the general pool (token checks, refresh, logout,
    admin calls; default: the pool size of
    :class:`concurrent.futures.ThreadPoolExecutor`). The calls that may run
    bcrypt use a second pool sized by the facade's hashing gate
    (``config.hash_workers``, default one less than the CPU count); when
    ``hash_workers + hash_queue_limit`` of them are already running or
    waiting, the next one raises ``Overloaded`` without waiting.
    """

    def __init__(self, sync: MindmeshAuth, *, max_workers: int | None = None) -> None:
        self.sync = sync
        gate = sync.hashing
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mindmesh-auth")
        self._hash_executor = ThreadPoolExecutor(max_workers=gate.workers, thread_name_prefix="mindmesh-auth-hash")
        self._hash_capacity = gate.capacity
        self._hash_retry_after = gate.retry_after
        self._hash_lock = threading.Lock()
        self._hash_pending = 0
        ops = self._hashing_ops = hashing_operations(sync.config)
        self.auth = AsyncAuth(sync.auth, self._call, self._call_hashing, ops.get("auth", ()))
        self.otp = AsyncOtp(sync.otp, self._call, self._call_hashing, ops.get("otp", ()))
        self.password = AsyncPassword(sync.password, self._call, self._call_hashing, ops.get("password", ()))
        self.account = AsyncAccount(sync.account, self._call, self._call_hashing, ops.get("account", ()))
        self.user = AsyncUsers(sync.user, self._call, self._call_hashing, ops.get("user", ()))
        self.sessions = AsyncSessions(sync.sessions, self._call, self._call_hashing)
        self.audit = AsyncAudit(sync.audit, self._call, self._call_hashing)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(ctx.run, fn, *args, **kwargs))

    async def _call_hashing(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn`` on the hashing pool; ``Overloaded`` at once if the pool's queue is at its bound.

        A call counts from its submission until its thread is done with it (or
        it is cancelled before it started), so a caller that gave up waiting
        does not free a place while its hash still runs."""
        with self._hash_lock:
            if self._hash_pending >= self._hash_capacity:
                self.sync.hashing.note_refused()
                raise Overloaded(retry_after=self._hash_retry_after)
            self._hash_pending += 1
        ctx = contextvars.copy_context()
        try:
            future: Future[Any] = self._hash_executor.submit(ctx.run, fn, *args, **kwargs)
        except BaseException:
            self._hash_done()
            raise
        future.add_done_callback(self._hash_done)
        return await asyncio.wrap_future(future)

    def _hash_done(self, _future: object = None) -> None:
        with self._hash_lock:
            self._hash_pending -= 1

    def _call_for(self, group: str, name: str) -> Runner:
        """The runner for ``sync.<group>.<name>``: the hashing pool if that operation may run bcrypt."""
        return self._call_hashing if name in self._hashing_ops.get(group, ()) else self._call

    @property
    def hashing_pending(self) -> int:
        """Calls on the hashing pool now, running or waiting."""
        return self._hash_pending

    def set_context(self, ip_address: str | None = None, user_agent: str | None = None) -> None:
        """Set the client IP and user agent for the current task."""
        self.sync.set_context(ip_address, user_agent)

    async def purge_expired(self) -> dict[str, int]:
        result: dict[str, int] = await self._call(self.sync.purge_expired)
        return result

    async def create_schema(self) -> None:
        await self._call(self.sync.create_schema)

    async def migrate(self, *, dry_run: bool = False) -> MigrationPlan:
        plan: MigrationPlan = await self._call(self.sync.migrate, dry_run=dry_run)
        return plan

    async def schema_status(self) -> SchemaStatus:
        status: SchemaStatus = await self._call(self.sync.schema_status)
        return status

    async def aclose(self) -> None:
        await self._call(self.sync.close)
        self._executor.shutdown(wait=False)
        self._hash_executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncMindmeshAuth:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
