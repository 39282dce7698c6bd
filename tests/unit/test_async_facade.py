"""The asyncio facade: same API, work off the event loop, context per task."""

from __future__ import annotations

import asyncio
import time

import pytest

from mindmesh_auth import InvalidCredentials, MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery"


def make(rounds: int = 4) -> tuple[AsyncMindmeshAuth, Outbox]:
    outbox = Outbox()
    sync = MindmeshAuth(store=MemoryStore(), mailer=outbox, config=test_config(bcrypt_rounds=rounds), clock=FakeClock())
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


def test_many_concurrent_logins_complete_while_the_loop_stays_responsive() -> None:
    async def scenario() -> tuple[int, float, int]:
        auth, _ = make(rounds=10)  # real bcrypt work, ~50 ms per check
        users = [f"user{i}@example.com" for i in range(16)]
        for email in users:
            await auth.auth.register(email, PASSWORD)
        ticks = 0
        worst_gap = 0.0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks, worst_gap
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                worst_gap = max(worst_gap, now - last)
                last = now
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        results = await asyncio.gather(*(auth.auth.login(email, PASSWORD) for email in users))
        done.set()
        await beat
        await auth.aclose()
        return sum(r.otp_required for r in results), worst_gap, ticks

    completed, worst_gap, ticks = asyncio.run(scenario())
    assert completed == 16
    # 16 bcrypt checks at cost 10 take far longer than one 5 ms tick: had they run on the
    # loop, the heartbeat could not have ticked until they were all done.
    assert ticks >= 10, (ticks, worst_gap)


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
        public = {m for m, _ in inspect.getmembers(sync_group, callable) if not m.startswith("_")}
        missing = {m for m in public if not inspect.iscoroutinefunction(getattr(async_group, m, None))}
        assert not missing, (name, missing)
