"""An asyncio facade with the same API, keeping bcrypt and storage work off the event loop.

    auth = AsyncMindmeshAuth(MindmeshAuth(store=..., mailer=..., config=...))
    result = await auth.auth.login(email, password)

Every call runs the synchronous facade in a bounded thread pool; the caller's
context (``set_context``) travels with the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .facade import MindmeshAuth

__all__ = ["AsyncMindmeshAuth"]

_GROUPS = ("auth", "otp", "password", "user", "sessions", "audit")


class _AsyncGroup:
    def __init__(self, group: object, run: Callable[..., Awaitable[Any]]) -> None:
        self._group = group
        self._run = run

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        target = getattr(self._group, name)
        if name.startswith("_") or not callable(target):
            raise AttributeError(name)

        @functools.wraps(target)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(target, *args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"<async {type(self._group).__name__}>"


class AsyncMindmeshAuth:
    """``await auth.auth.login(...)``, ``await auth.otp.send(...)``, ... on a thread pool.

    ``max_workers`` bounds concurrent bcrypt and database work (default: the
    pool size of :class:`concurrent.futures.ThreadPoolExecutor`).
    """

    auth: Any
    otp: Any
    password: Any
    user: Any
    sessions: Any
    audit: Any

    def __init__(self, sync: MindmeshAuth, *, max_workers: int | None = None) -> None:
        self.sync = sync
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mindmesh-auth")
        for name in _GROUPS:
            setattr(self, name, _AsyncGroup(getattr(sync, name), self._call))

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(ctx.run, fn, *args, **kwargs))

    def set_context(self, ip_address: str | None = None, user_agent: str | None = None) -> None:
        """Set the client IP and user agent for the current task."""
        self.sync.set_context(ip_address, user_agent)

    async def purge_expired(self) -> dict[str, int]:
        result: dict[str, int] = await self._call(self.sync.purge_expired)
        return result

    async def create_schema(self) -> None:
        await self._call(self.sync.create_schema)

    async def aclose(self) -> None:
        await self._call(self.sync.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncMindmeshAuth:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
