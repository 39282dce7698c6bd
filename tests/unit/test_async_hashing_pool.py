"""Token checks never wait behind password hashing; the hashing queue is bounded (``Overloaded``).

A "slow bcrypt" is the facade's own hasher with ``verify`` (or ``hash``) held on an
event until the test releases it: every ordering below is decided by events, and
the only time bounds are hang guards far above any real wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, MindmeshAuth, Overloaded
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.core.models import AuditEventType
from mindmesh_auth.hashing import HashingGate, default_hash_workers, hashing_operations
from mindmesh_auth.testing import test_config

PASSWORD = "correct horse battery staple"
HANG_GUARD = 10.0  # seconds; only reached if a call waits for something that never comes


class Held:
    """Holds every call of ``hasher.<method>`` until :meth:`release`; counts the calls that entered."""

    def __init__(self, auth: MindmeshAuth, method: str = "verify") -> None:
        self._hasher = auth._kernel.hasher
        self._method = method
        self._original = getattr(self._hasher, method)
        self._released = threading.Event()
        self._cond = threading.Condition()
        self.entered = 0
        setattr(self._hasher, method, self._held)

    def _held(self, *args: Any, **kwargs: Any) -> Any:
        with self._cond:
            self.entered += 1
            self._cond.notify_all()
        if not self._released.wait(HANG_GUARD):
            raise AssertionError("the held hasher was never released")
        return self._original(*args, **kwargs)

    def wait_entered(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.entered >= n, HANG_GUARD), f"{n} hash call(s) never started"

    async def until_entered(self, n: int) -> None:
        await asyncio.to_thread(self.wait_entered, n)

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        self._released.set()

    def restore(self) -> None:
        self.release()
        setattr(self._hasher, self._method, self._original)


MakeEnv = Callable[..., Any]  # the make_env fixture of conftest.py
Hold = Callable[..., Held]


@pytest.fixture
def hold() -> Iterator[Hold]:
    made: list[Held] = []

    def make(auth: MindmeshAuth, method: str = "verify") -> Held:
        held = Held(auth, method)
        made.append(held)
        return held

    yield make
    for held in made:
        held.restore()


def _users(env: Any, n: int) -> list[str]:
    emails = [f"user{i}@example.test" for i in range(n)]
    for email in emails:
        env.auth.auth.register(email, PASSWORD)
    return emails


# -- the async facade ----------------------------------------------------------
def test_token_checks_complete_while_every_hashing_thread_is_busy(make_env: MakeEnv, hold: Hold) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=2)
    reader, *flood = _users(env, 4)
    token = env.login(reader).access_token
    held = hold(env.auth)

    async def scenario() -> None:
        # A general pool of ONE thread: were logins run on it, the token check would wait behind them.
        a = AsyncMindmeshAuth(env.auth, max_workers=1)
        logins = [asyncio.create_task(a.auth.login(email, PASSWORD)) for email in flood]
        await held.until_entered(1)  # one hash running, two queued: the hashing pool is saturated
        user = await asyncio.wait_for(a.auth.get_user_from_token(token), HANG_GUARD)
        session = await asyncio.wait_for(a.auth.authenticate(token), HANG_GUARD)
        listed = await asyncio.wait_for(a.sessions.list(user.id), HANG_GUARD)
        assert user.email == reader
        assert session.user.id == user.id and [s.id for s in listed] == [session.session.id]
        assert not held.released and held.entered == 1  # all of it answered while the hashes still wait
        assert not any(task.done() for task in logins)
        assert a.hashing_pending == 3
        held.release()
        challenges = await asyncio.wait_for(asyncio.gather(*logins), HANG_GUARD)
        assert all(c.otp_required for c in challenges)
        assert all(env.outbox.last_code(email) for email in flood)  # each login mailed its code
        assert a.hashing_pending == 0
        await a.aclose()

    asyncio.run(scenario())


def test_a_call_beyond_the_queue_bound_is_refused_at_once_and_changes_nothing(make_env: MakeEnv, hold: Hold) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=2)
    *admitted, refused = _users(env, 4)
    held = hold(env.auth)
    mails_before = len(env.outbox)

    async def scenario() -> None:
        a = AsyncMindmeshAuth(env.auth)
        logins = [asyncio.create_task(a.auth.login(email, PASSWORD)) for email in admitted]
        await held.until_entered(1)
        with pytest.raises(Overloaded) as caught:
            await a.auth.login(refused, PASSWORD)  # 1 running + 2 waiting = the bound: refused, not queued
        assert caught.value.status == 503 and caught.value.code == "overloaded"
        assert caught.value.retry_after >= 1
        with pytest.raises(Overloaded):
            await a.auth.register("new@example.test", PASSWORD)  # the same pool and bound
        assert held.entered == 1 and not held.released
        assert env.auth.hashing.refused == 2
        held.release()
        await asyncio.wait_for(asyncio.gather(*logins), HANG_GUARD)
        assert a.hashing_pending == 0
        # Nothing was done for the refused calls: no code mailed, no audit row, no account.
        assert env.outbox.for_address(refused) == []
        assert await a.user.get_by_email("new@example.test") is None
        events = await a.audit.query(email=refused, types=[AuditEventType.LOGIN_FAILED])
        assert events == []
        assert len(env.outbox) == mails_before + len(admitted)
        # The places are free again.
        await asyncio.wait_for(a.auth.login(refused, PASSWORD), HANG_GUARD)
        assert env.outbox.last_code(refused)
        await a.aclose()

    asyncio.run(scenario())


def test_a_queued_call_cancelled_before_it_started_frees_its_place(make_env: MakeEnv, hold: Hold) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=1)
    first, second, third = _users(env, 3)
    held = hold(env.auth)

    async def scenario() -> None:
        a = AsyncMindmeshAuth(env.auth)
        running = asyncio.create_task(a.auth.login(first, PASSWORD))
        await held.until_entered(1)
        queued = asyncio.create_task(a.auth.login(second, PASSWORD))
        await asyncio.sleep(0)  # let it submit
        assert a.hashing_pending == 2
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert a.hashing_pending == 1  # never started: its place is back at once
        again = asyncio.create_task(a.auth.login(third, PASSWORD))
        await asyncio.sleep(0)
        assert a.hashing_pending == 2
        held.release()
        await asyncio.wait_for(asyncio.gather(running, again), HANG_GUARD)
        assert env.outbox.last_code(first) and env.outbox.last_code(third)
        assert env.outbox.for_address(second) == []  # the cancelled login never ran
        await a.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(("otp_hash", "on_hashing_pool"), [("hmac", False), ("bcrypt", True)])
def test_code_checks_use_the_hashing_pool_only_when_codes_are_bcrypt_hashes(
    make_env: MakeEnv, hold: Hold, otp_hash: str, on_hashing_pool: bool
) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=0, otp_hash=otp_hash)
    reader, busy = _users(env, 2)
    env.auth.auth.login(reader, PASSWORD)
    code = env.outbox.last_code(reader)
    held = hold(env.auth)

    async def scenario() -> None:
        a = AsyncMindmeshAuth(env.auth)
        login = asyncio.create_task(a.auth.login(busy, PASSWORD))
        await held.until_entered(1)  # the one hashing place is taken
        if on_hashing_pool:
            with pytest.raises(Overloaded):
                await a.auth.verify_otp(reader, code)
            with pytest.raises(Overloaded):
                await a.otp.verify(reader, code, "login")
        else:
            result = await asyncio.wait_for(a.auth.verify_otp(reader, code), HANG_GUARD)
            assert result.user.email == reader
        held.release()
        await asyncio.wait_for(login, HANG_GUARD)
        await a.aclose()

    asyncio.run(scenario())


# -- the synchronous facade (threads of a WSGI server) ------------------------
def test_the_sync_facade_refuses_beyond_the_bound_and_keeps_answering_token_checks(make_env: MakeEnv, hold: Hold) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=1)
    reader, first, second = _users(env, 3)
    token = env.login(reader).access_token
    held = hold(env.auth)
    results: dict[str, Any] = {}

    def login(email: str) -> None:
        results[email] = env.auth.auth.login(email, PASSWORD)

    threads = [threading.Thread(target=login, args=(email,)) for email in (first, second)]
    threads[0].start()
    held.wait_entered(1)
    threads[1].start()  # waits for the one slot
    _wait_for(lambda: env.auth.hashing.admitted == 2)
    with pytest.raises(Overloaded) as caught:
        env.auth.auth.register("late@example.test", PASSWORD)
    assert caught.value.retry_after >= 1
    assert env.auth.hashing.refused == 1
    assert env.auth.auth.get_user_from_token(token).email == reader  # not gated
    assert env.auth.user.get_by_email("late@example.test") is None  # the refused register wrote nothing
    assert held.entered == 1
    held.release()
    for thread in threads:
        thread.join(HANG_GUARD)
    assert sorted(results) == sorted([first, second])
    assert env.auth.hashing.admitted == 0
    assert env.auth.auth.register("late@example.test", PASSWORD).email == "late@example.test"


def test_password_change_and_reset_are_gated(make_env: MakeEnv, hold: Hold) -> None:
    env = make_env(hash_workers=1, hash_queue_limit=0)
    owner, busy = _users(env, 2)
    user = env.auth.user.get_by_email(owner)
    assert user is not None
    env.auth.password.request_reset(owner)
    reset_token = env.outbox.last_reset_token(owner)
    held = hold(env.auth)
    thread = threading.Thread(target=env.auth.auth.login, args=(busy, PASSWORD))
    thread.start()
    held.wait_entered(1)
    with pytest.raises(Overloaded):
        env.auth.password.change(user.id, PASSWORD, "another long passphrase")
    with pytest.raises(Overloaded):
        env.auth.password.reset(reset_token, "another long passphrase")
    held.release()
    thread.join(HANG_GUARD)
    env.auth.password.reset(reset_token, "another long passphrase")  # the token was not used up by the refusal
    env.auth.auth.login(owner, "another long passphrase")


def test_observers_see_the_refusal(hold: Hold) -> None:
    from mindmesh_auth.adapters.memory import MemoryStore
    from mindmesh_auth.observability import Observer
    from mindmesh_auth.testing import Outbox

    seen: list[tuple[str, str]] = []

    class Recorder(Observer):
        def wrap_operation(self, operation: str, call: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return call(*args, **kwargs)
                except Exception as exc:
                    seen.append((operation, type(exc).__name__))
                    raise

            return wrapped

    auth = MindmeshAuth(
        store=MemoryStore(), mailer=Outbox(), config=test_config(hash_workers=1, hash_queue_limit=0), observers=[Recorder()]
    )
    auth.auth.register("busy@example.test", PASSWORD)
    held = hold(auth)
    thread = threading.Thread(target=auth.auth.login, args=("busy@example.test", PASSWORD))
    thread.start()
    held.wait_entered(1)
    with pytest.raises(Overloaded):
        auth.auth.login("busy@example.test", PASSWORD)
    held.release()
    thread.join(HANG_GUARD)
    auth.close()
    assert seen == [("auth.login", "Overloaded")]


def _wait_for(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(HANG_GUARD / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition never became true")


# -- the gate and its settings --------------------------------------------------
def test_the_gate_counts_admitted_calls_and_refuses_at_capacity() -> None:
    gate = HashingGate(2, 1)
    assert gate.capacity == 3
    for _ in range(3):
        gate.admit()
    with pytest.raises(Overloaded):
        gate.admit()
    assert (gate.admitted, gate.refused) == (3, 1)
    gate.leave()
    gate.admit()
    assert gate.admitted == 3


def test_a_guarded_call_that_raises_gives_its_place_back() -> None:
    gate = HashingGate(1, 0)

    def broken() -> None:
        raise ValueError("boom")

    guarded = gate.guard(broken)
    for _ in range(3):
        with pytest.raises(ValueError):
            guarded()
    assert gate.admitted == 0


def test_defaults_leave_a_core_free_and_queue_four_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_hash_workers() == 7
    gate = HashingGate.from_config(test_config(hash_queue_limit=None))
    assert (gate.workers, gate.queue_limit) == (7, 28)
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert default_hash_workers() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert HashingGate.from_config(test_config(hash_queue_limit=0)).capacity == 1
    explicit = HashingGate.from_config(test_config(hash_workers=3, hash_queue_limit=5))
    assert (explicit.workers, explicit.queue_limit) == (3, 5)


def test_settings_come_from_the_environment() -> None:
    base = test_config()
    env = {"AUTH_JWT_SECRET": base.jwt_secret, "AUTH_REFRESH_SECRET": base.refresh_secret}
    config = AuthConfig.from_mapping(
        {**env, "AUTH_HASH_WORKERS": "3", "AUTH_HASH_QUEUE_LIMIT": "0"}, allow_weak_settings=True
    )
    assert (config.hash_workers, config.hash_queue_limit) == (3, 0)
    assert AuthConfig.from_mapping(env, allow_weak_settings=True).hash_workers is None


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("hash_workers", 0, "AUTH_HASH_WORKERS"),
        ("hash_workers", 1025, "AUTH_HASH_WORKERS"),
        ("hash_workers", True, "AUTH_HASH_WORKERS"),
        ("hash_workers", 2.0, "AUTH_HASH_WORKERS"),
        ("hash_queue_limit", -1, "AUTH_HASH_QUEUE_LIMIT"),
        ("hash_queue_limit", 100_001, "AUTH_HASH_QUEUE_LIMIT"),
        ("hash_queue_limit", "4", "AUTH_HASH_QUEUE_LIMIT"),
    ],
)
def test_out_of_range_settings_are_refused(field: str, value: object, variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        test_config(**{field: value})
    assert caught.value.variable == variable


def test_the_gated_operations_follow_the_code_hash() -> None:
    assert hashing_operations(test_config()) == {
        "auth": ("register", "login"),
        "password": ("reset", "change"),
        "account": ("delete", "request_email_change"),
        "user": ("create",),
    }
    assert hashing_operations(test_config(otp_hash="bcrypt")) == {
        "auth": ("register", "login", "verify_otp"),
        "password": ("reset", "change"),
        "account": ("delete", "request_email_change", "confirm_email_change"),
        "user": ("create",),
        "otp": ("send", "verify"),
    }
