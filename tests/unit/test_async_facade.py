"""The asyncio facade: same API, work off the event loop, context per task."""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

import pytest

from mindmesh_auth import InvalidCredentials, MindmeshAuth, SessionNotFound
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.core import passwords as passwords_module
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery"


def make(rounds: int = 4) -> tuple[AsyncMindmeshAuth, Outbox]:
    outbox = Outbox()
    # 4 threads for password hashing (logins, registrations), room for 16 more to wait; 4 for the rest.
    config = test_config(bcrypt_rounds=rounds, hash_workers=4, hash_queue_limit=16)
    sync = MindmeshAuth(store=MemoryStore(), mailer=outbox, config=config, clock=FakeClock())
    return AsyncMindmeshAuth(sync, max_workers=4), outbox


def test_whole_flow_through_the_async_facade() -> None:
    async def flow() -> None:
        auth, outbox = make()
        async with auth:
            user = await auth.auth.register("ada@example.com", PASSWORD)
            assert (await auth.auth.login("ada@example.com", PASSWORD)).otp_required
            result = await auth.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
            assert (await auth.auth.get_user_from_token(result.access_token)).id == user.id
            pair = await auth.auth.refresh(result.refresh_token)
            assert await auth.auth.logout(pair.session_id) is True
            with pytest.raises(InvalidCredentials):
                await auth.auth.login("ada@example.com", "wrong password here")

    asyncio.run(flow())


def test_the_async_facade_revokes_only_the_owners_session() -> None:
    async def flow() -> None:
        auth, outbox = make()
        async with auth:
            await auth.auth.register("ada@example.com", PASSWORD)
            bob = await auth.auth.register("bob@example.com", PASSWORD)
            await auth.auth.login("ada@example.com", PASSWORD)
            ada = await auth.auth.verify_otp("ada@example.com", outbox.last_code("ada@example.com"), "login")
            with pytest.raises(SessionNotFound):
                await auth.sessions.revoke(ada.session_id, user_id=bob.id)
            assert (await auth.auth.get_user_from_token(ada.access_token)).id == ada.user.id
            assert await auth.sessions.revoke(ada.session_id, user_id=ada.user.id) is True

    asyncio.run(flow())


def test_many_concurrent_logins_complete_while_the_loop_stays_responsive() -> None:
    # No stopwatch: each password check is held inside bcrypt until a coroutine on the
    # event loop lets it go. Had the checks run on the loop, that coroutine could never
    # run (the held check would time out); off the loop, all 4 workers are inside a check
    # at once while the loop keeps serving the releaser.
    workers, users = 4, [f"user{i}@example.com" for i in range(16)]
    real_checkpw = passwords_module.bcrypt.checkpw
    release = threading.Event()
    held_on_loop_thread: list[bool] = []
    lock = threading.Lock()
    inside = 0

    async def scenario() -> tuple[int, int]:
        nonlocal inside
        auth, _ = make()
        for email in users:
            await auth.auth.register(email, PASSWORD)
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        all_inside = asyncio.Event()
        peak = 0

        def held_checkpw(password: bytes, hashed: bytes) -> bool:
            nonlocal inside, peak
            held_on_loop_thread.append(threading.get_ident() == loop_thread)
            with lock:
                inside += 1
                peak = max(peak, inside)
                if inside == workers:
                    loop.call_soon_threadsafe(all_inside.set)
            try:
                if not release.wait(timeout=10):
                    release.set()  # fail once, without holding the other checks as well
                    raise AssertionError("the event loop never released the password check: it was blocked")
                return bool(real_checkpw(password, hashed))
            finally:
                with lock:
                    inside -= 1

        async def releaser() -> None:
            await all_inside.wait()  # runs only if the loop is free while the checks are held
            release.set()

        with mock.patch.object(passwords_module.bcrypt, "checkpw", held_checkpw):
            freed = asyncio.create_task(releaser())
            results = await asyncio.gather(*(auth.auth.login(email, PASSWORD) for email in users))
            await freed
        await auth.aclose()
        return sum(r.otp_required for r in results), peak

    try:
        completed, peak = asyncio.run(scenario())
    finally:
        release.set()  # never leave a worker thread waiting
    assert completed == 16
    assert peak == workers  # the pool's 4 workers were all inside a check at once...
    assert len(held_on_loop_thread) == 16 and not any(held_on_loop_thread)  # ...none on the loop's thread


def test_context_is_per_task() -> None:
    async def scenario() -> list[str | None]:
        auth, _ = make()
        await auth.auth.register("ada@example.com", PASSWORD)

        async def attempt(ip: str) -> None:
            auth.set_context(ip_address=ip)
            with pytest.raises(InvalidCredentials):
                await auth.auth.login("ada@example.com", "wrong password here")

        await asyncio.gather(attempt("203.0.113.1"), attempt("203.0.113.2"))
        events = await auth.audit.query(types=["LOGIN_FAILED"])
        await auth.aclose()
        return sorted(e.ip_address for e in events)

    assert asyncio.run(scenario()) == ["203.0.113.1", "203.0.113.2"]


def test_async_groups_offer_every_public_method_of_the_sync_groups() -> None:
    import inspect

    auth, _ = make()
    for name in ("auth", "otp", "password", "user", "sessions", "audit"):
        sync_group, async_group = getattr(auth.sync, name), getattr(auth, name)
        # Names with "\u01c1" are the mutation tester's trampolines (./scripts/mutation), not API.
        public = {m for m, _ in inspect.getmembers(sync_group, callable) if not m.startswith("_") and "\u01c1" not in m}
        missing = {m for m in public if not inspect.iscoroutinefunction(getattr(async_group, m, None))}
        assert not missing, (name, missing)
