"""Limits that stop attackers but never lock out owners (issue 11, points 1-5).

Driven by the fake clock; races run real threads on the memory store (the same
rules are proven on every backend by the storage contract).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from mindmesh_auth import (
    InvalidCredentials,
    InvalidOtp,
    MindmeshAuth,
    RateLimited,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.core.config import AuthConfig, Limit
from mindmesh_auth.core.errors import ConfigurationError
from mindmesh_auth.core.models import RequestContext
from mindmesh_auth.testing import FakeClock, Outbox, test_config

Env = Any  # conftest.py's Env: auth, clock, outbox, store

PASSWORD = "correct horse battery staple"

EMAIL = "ada@example.test"
NEW_PASSWORD = "a brand new passphrase 42"
STRANGER = RequestContext(ip_address="203.0.113.66")
OWNER = RequestContext(ip_address="198.51.100.7")
PARALLEL_HASHING = {"hash_workers": 32, "hash_queue_limit": 32}  # every racer hashes at once


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def raises(error: type[Exception], call: Callable[[], Any]) -> Exception:
    with pytest.raises(error) as info:
        call()
    return info.value


def reset_password(env: Env, email: str = EMAIL) -> None:
    env.auth.password.request_reset(email)
    env.auth.password.reset(env.outbox.last_reset_token(email), NEW_PASSWORD)


@pytest.fixture
def ada(env: Env) -> Env:
    env.auth.auth.register(EMAIL, PASSWORD)
    return env


# -- 1. per-purpose budgets -------------------------------------------------------------------------


def test_codes_sent_and_guessed_for_another_purpose_never_block_the_login(ada: Env) -> None:
    env = ada
    for _ in range(5):  # past otp_send_limit (3) for email_verify
        try:
            env.auth.otp.send(EMAIL, "email_verify", context=STRANGER)
        except RateLimited:
            pass
    for _ in range(25):  # past otp_account_failure_limit (20) for email_verify
        try:
            env.auth.otp.verify(EMAIL, "000000", "email_verify", context=STRANGER)
        except RateLimited:
            pass
    assert isinstance(
        raises(RateLimited, lambda: env.auth.otp.verify(EMAIL, "000000", "email_verify")), RateLimited
    )  # that purpose's own budget is spent
    challenge = env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    result = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle, context=OWNER)
    assert result.user.email == EMAIL


def test_a_completed_password_reset_clears_every_failure_counter(make_env: Callable[..., Env]) -> None:
    env = make_env(consecutive_failure_limit=3, login_email_limit=Limit(2, timedelta(hours=1)))
    env.auth.auth.register(EMAIL, PASSWORD)
    # email_verify codes: past the consecutive cap.
    for _ in range(3):
        assert env.auth.otp.verify(EMAIL, "000000", "email_verify") is False
    raises(RateLimited, lambda: env.auth.otp.verify(EMAIL, "000000", "email_verify"))
    # Unbound login codes: past the consecutive cap.
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    for _ in range(3):
        raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code)))
    raises(RateLimited, lambda: env.auth.auth.verify_otp(EMAIL, code))
    # Passwords: past the free failures (a delay) and the consecutive cap.
    for _ in range(2):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "not the password"))
    raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD))
    env.clock.advance(seconds=2)
    raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "not the password"))
    env.clock.advance(minutes=1)
    raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD))  # the cap: 3 consecutive failures

    reset_password(env)

    # Everything is back at once, without waiting for any window.
    challenge = env.auth.auth.login(EMAIL, NEW_PASSWORD)
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle).user.email == EMAIL
    assert env.auth.otp.verify(EMAIL, "000000", "email_verify") is False  # counted afresh, not refused
    env.auth.auth.login(EMAIL, NEW_PASSWORD)
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL)).user.email == EMAIL  # unbound too


# -- 2. per-IP login limits count failures ----------------------------------------------------------


def test_successful_logins_from_one_address_are_not_counted(env: Env) -> None:
    office = RequestContext(ip_address="203.0.113.7")
    for i in range(15):
        email = f"u{i}@example.test"
        env.auth.auth.register(email, PASSWORD, context=RequestContext(ip_address=f"198.51.100.{i}"))
        assert env.auth.auth.login(email, PASSWORD, context=office).otp_required
    assert len(env.outbox) == 15


def test_a_spent_address_is_refused_before_any_bcrypt_work(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    attacker = RequestContext(ip_address="203.0.113.9")
    for i in range(10):  # seed default: 10 failures per address per window
        raises(InvalidCredentials, lambda: env.auth.auth.login(f"x{i}@example.test", "guess guess", context=attacker))
    hashes: list[str] = []
    hasher = env.auth._kernel.hasher
    monkeypatch.setattr(hasher, "verify", lambda *a: hashes.append("verify") or True)
    monkeypatch.setattr(hasher, "verify_dummy", lambda *a: hashes.append("dummy"))
    info = raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, context=attacker))
    assert hashes == [] and 0 < info.retry_after <= 15 * 60  # type: ignore[attr-defined]
    env.clock.advance(minutes=15)
    env.auth.auth.login(EMAIL, PASSWORD, context=attacker)
    assert hashes == ["verify"]


def _slow_hasher(env: Env, monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Every password check waits for ``parties`` checks to be in flight (or 0.5 s): a
    design that checks the budget after bcrypt would let them all through."""
    barrier = threading.Barrier(parties)
    hasher = env.auth._kernel.hasher
    real_dummy, real_verify = hasher.verify_dummy, hasher.verify

    def wait() -> None:
        try:
            barrier.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass

    monkeypatch.setattr(hasher, "verify_dummy", lambda pw: (wait(), real_dummy(pw))[1])
    monkeypatch.setattr(hasher, "verify", lambda pw, h: (wait(), real_verify(pw, h))[1])


def _parallel(n: int, call: Callable[[int], Any]) -> list[Any]:
    def run(i: int) -> Any:
        try:
            return call(i)
        except Exception as error:  # noqa: BLE001 - the outcome is what is checked
            return error

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_failures_from_one_address_never_pass_the_limit(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(**PARALLEL_HASHING)
    attacker = RequestContext(ip_address="203.0.113.10")
    _slow_hasher(env, monkeypatch, parties=24)
    outcomes = _parallel(24, lambda i: env.auth.auth.login(f"p{i}@example.test", "guess guess", context=attacker))
    failures = [o for o in outcomes if isinstance(o, InvalidCredentials)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert (len(failures), len(refused)) == (10, 14), sorted({repr(o) for o in outcomes})


# -- 3. the login code is bound to its login --------------------------------------------------------


def test_a_strangers_unbound_guesses_never_block_or_kill_the_owners_code(ada: Env) -> None:
    env = ada
    challenge = env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    code = env.outbox.last_code(EMAIL)
    outcomes = []
    for _ in range(30):  # a stranger who knows only the address
        try:
            env.auth.auth.verify_otp(EMAIL, wrong(code), context=STRANGER)
            outcomes.append("ok")
        except (InvalidOtp, RateLimited) as error:
            outcomes.append(type(error).__name__)
    assert outcomes.count("InvalidOtp") == 20 and outcomes.count("RateLimited") == 10
    assert env.store.otps.get(EMAIL, "login").attempts == 0  # the code's own attempts are untouched
    result = env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle, context=OWNER)
    assert result.user.email == EMAIL


def test_unbound_guesses_are_bounded_per_code_too(ada: Env) -> None:
    env = ada
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    for _ in range(5):  # otp_max_attempts
        raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code)))
    raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, code))  # no more unbound tries on this code
    assert env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle).user.email == EMAIL


def test_a_wrong_or_stale_handle_counts_as_unbound(ada: Env) -> None:
    env = ada
    env.auth.auth.register("bob@example.test", PASSWORD)
    bobs = env.auth.auth.login("bob@example.test", PASSWORD).handle
    stale = env.auth.auth.login(EMAIL, PASSWORD).handle
    env.clock.advance(seconds=1)
    fresh = env.auth.auth.login(EMAIL, PASSWORD).handle
    assert stale != fresh
    code = env.outbox.last_code(EMAIL)
    for handle in (bobs, stale, "f" * 64, "not-a-handle"):
        raises(InvalidOtp, lambda h=handle: env.auth.auth.verify_otp(EMAIL, wrong(code), handle=h))
    assert env.store.otps.get(EMAIL, "login").attempts == 0
    assert env.auth.auth.verify_otp(EMAIL, code, handle=fresh).user.email == EMAIL


def test_the_npm_call_shape_still_completes_a_login(ada: Env) -> None:
    ada.auth.auth.login(EMAIL, PASSWORD)
    assert ada.auth.auth.verify_otp(EMAIL, ada.outbox.last_code(EMAIL), "login").user.email == EMAIL


@pytest.mark.parametrize("handle", [123, b"bytes", "", "x" * 129])
def test_a_malformed_handle_is_a_validation_error_that_counts_nothing(ada: Env, handle: object) -> None:
    ada.auth.auth.login(EMAIL, PASSWORD)
    code = ada.outbox.last_code(EMAIL)
    error = raises(ValidationError, lambda: ada.auth.auth.verify_otp(EMAIL, wrong(code), handle=handle))  # type: ignore[arg-type]
    assert error.field == "handle"  # type: ignore[attr-defined]
    for _ in range(4):  # the unbound per-code allowance is still whole
        raises(InvalidOtp, lambda: ada.auth.auth.verify_otp(EMAIL, wrong(code)))
    assert ada.auth.auth.verify_otp(EMAIL, code).user.email == EMAIL


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_parallel_unbound_guesses_never_spend_a_bound_attempt(make_env: Callable[..., Env], otp_hash: str) -> None:
    env = make_env(otp_hash=otp_hash, **PARALLEL_HASHING)
    env.auth.auth.register(EMAIL, PASSWORD)
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    outcomes = _parallel(12, lambda i: env.auth.auth.verify_otp(EMAIL, wrong(code)))
    assert all(isinstance(o, InvalidOtp) for o in outcomes), outcomes
    assert env.store.otps.get(EMAIL, "login").attempts == 0
    assert env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle).user.email == EMAIL


# -- 4. wrong passwords: growing delays, and known devices are not delayed ---------------------------


def _owner_device(env: Env) -> str:
    challenge = env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    result = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle, context=OWNER)
    assert result.device_token and result.device_token not in repr(result)
    return result.device_token


def test_failures_from_elsewhere_delay_the_account_but_not_a_known_device(ada: Env) -> None:
    env = ada
    device = _owner_device(env)
    for i in range(10):  # login_email_limit: 10 free failures
        raises(
            InvalidCredentials,
            lambda i=i: env.auth.auth.login(EMAIL, "guess guess", context=RequestContext(ip_address=f"203.0.113.{i}")),
        )
    delayed = raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, context=OWNER))
    assert delayed.retry_after == 2  # type: ignore[attr-defined]
    sent = len(env.outbox)
    assert env.auth.auth.login(EMAIL, PASSWORD, context=OWNER, device_token=device).handle
    assert len(env.outbox) == sent + 1


def test_past_the_free_failures_each_delay_doubles_up_to_the_cap(make_env: Callable[..., Env]) -> None:
    env = make_env(login_email_limit=Limit(3, timedelta(hours=6)), login_delay_max=timedelta(seconds=30))
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(3):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess"))
    waits = []
    for _ in range(7):
        wait = raises(RateLimited, lambda: env.auth.auth.login(EMAIL, "guess guess")).retry_after  # type: ignore[attr-defined]
        waits.append(wait)
        env.clock.advance(seconds=wait)
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess"))
    assert waits == [2, 4, 8, 16, 30, 30, 30]
    # The owner's right password waits like anyone without a device token, then works.
    wait = raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD)).retry_after  # type: ignore[attr-defined]
    env.clock.advance(seconds=wait)
    assert env.auth.auth.login(EMAIL, PASSWORD).otp_required


def test_one_attempt_per_delay_even_in_parallel(make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(login_email_limit=Limit(2, timedelta(hours=1)), **PARALLEL_HASHING)
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(2):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess"))
    env.clock.advance(seconds=2)
    _slow_hasher(env, monkeypatch, parties=8)
    outcomes = _parallel(
        8, lambda i: env.auth.auth.login(EMAIL, "guess guess", context=RequestContext(ip_address=f"192.0.2.{i}"))
    )
    assert sum(isinstance(o, InvalidCredentials) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 7, outcomes


def test_a_device_token_of_another_account_forged_or_expired_counts_as_none(ada: Env) -> None:
    env = ada
    env.auth.auth.register("bob@example.test", PASSWORD)
    env.auth.auth.login("bob@example.test", PASSWORD)
    bobs = env.auth.auth.verify_otp("bob@example.test", env.outbox.last_code("bob@example.test")).device_token
    mine = _owner_device(env)
    forged = mine[:-1] + ("0" if mine[-1] != "0" else "1")
    for _ in range(10):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess", context=STRANGER))
    for token in (bobs, forged, "v1.garbage", None):
        raises(RateLimited, lambda t=token: env.auth.auth.login(EMAIL, PASSWORD, device_token=t))
    env.clock.advance(days=91)  # device_token_ttl: 90 days; the account's window has long passed too
    for _ in range(10):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess", context=STRANGER))
    raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, device_token=mine))
    raises(ValidationError, lambda: env.auth.auth.login(EMAIL, PASSWORD, device_token=42))  # type: ignore[arg-type]


def test_a_password_change_or_reset_ends_every_device_token_of_the_account(ada: Env) -> None:
    env = ada
    user_id = env.auth.user.get_by_email(EMAIL).id
    before_change = _owner_device(env)
    env.auth.password.change(user_id, PASSWORD, "a brand new passphrase")
    env.clock.advance(minutes=11)  # the address's code budget
    after_change = _owner_device_with(env, "a brand new passphrase")
    env.auth.password.request_reset(EMAIL)
    env.auth.password.reset(env.outbox.last_reset_token(EMAIL), "another new passphrase")
    for _ in range(10):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess", context=STRANGER))
    for token in (before_change, after_change):  # issued under a password the account no longer has
        raises(RateLimited, lambda t=token: env.auth.auth.login(EMAIL, "another new passphrase", device_token=t))


def _owner_device_with(env: Env, password: str) -> str:
    challenge = env.auth.auth.login(EMAIL, password, context=OWNER)
    return env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle, context=OWNER).device_token


def test_a_devices_own_failures_delay_only_that_device(ada: Env) -> None:
    env = ada
    device = _owner_device(env)
    for _ in range(10):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess", device_token=device))
    raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, device_token=device))
    assert env.auth.auth.login(EMAIL, PASSWORD, context=OWNER).otp_required  # the account's budget is whole


# -- 5. the consecutive-failure cap -----------------------------------------------------------------


def test_a_hundred_consecutive_wrong_login_codes_require_a_password_reset(make_env: Callable[..., Env]) -> None:
    # Windows wide enough that only the cap (default 100, NIST SP 800-63B 5.2.2) can stop the guesses.
    env = make_env(otp_send_limit=Limit(1000, timedelta(minutes=10)))
    env.auth.auth.register(EMAIL, PASSWORD)
    wrong_codes = 0
    while True:
        challenge = env.auth.auth.login(EMAIL, PASSWORD)
        code = env.outbox.last_code(EMAIL)
        try:
            for _ in range(5):
                raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code), handle=challenge.handle))
                wrong_codes += 1
        except RateLimited:
            break
        env.clock.advance(hours=1)  # past otp_account_failure_limit's window
        if wrong_codes > 200:
            pytest.fail("no cap")
    assert wrong_codes == 100
    env.clock.advance(days=30)
    challenge = env.auth.auth.login(EMAIL, PASSWORD)
    error = raises(RateLimited, lambda: env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle))
    assert "reset the password" in str(error)
    reset_password(env)
    challenge = env.auth.auth.login(EMAIL, NEW_PASSWORD)
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=challenge.handle).user.email == EMAIL


def test_a_success_restarts_the_consecutive_count(make_env: Callable[..., Env]) -> None:
    env = make_env(consecutive_failure_limit=4)
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(3):
        challenge = env.auth.auth.login(EMAIL, PASSWORD)
        code = env.outbox.last_code(EMAIL)
        for _ in range(3):
            raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code), handle=challenge.handle))
        env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle)  # 3 failures then a success, thrice


def test_a_strangers_unbound_cap_never_blocks_a_bound_submission(make_env: Callable[..., Env]) -> None:
    env = make_env(
        consecutive_failure_limit=6,
        otp_account_failure_limit=Limit(1000, timedelta(hours=1)),
        otp_send_limit=Limit(10, timedelta(minutes=10)),
    )
    env.auth.auth.register(EMAIL, PASSWORD)
    for _ in range(2):
        env.auth.auth.login(EMAIL, PASSWORD)
        code = env.outbox.last_code(EMAIL)
        for _ in range(3):
            raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code), context=STRANGER))
    raises(RateLimited, lambda: env.auth.auth.verify_otp(EMAIL, "123456", context=STRANGER))  # unbound cap
    challenge = env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    code = env.outbox.last_code(EMAIL)
    assert env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle, context=OWNER).user.email == EMAIL
    # The owner's bound success cleared the unbound cap too.
    env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL)).user.email == EMAIL


def test_consecutive_password_failures_are_capped_until_a_reset(make_env: Callable[..., Env]) -> None:
    env = make_env(consecutive_failure_limit=5, login_email_limit=Limit(100, timedelta(minutes=15)))
    env.auth.auth.register(EMAIL, PASSWORD)
    device = _owner_device(env)
    for _ in range(5):
        raises(InvalidCredentials, lambda: env.auth.auth.login(EMAIL, "guess guess", context=STRANGER))
        env.clock.advance(hours=1)
    raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, context=OWNER))
    env.clock.advance(days=60)
    error = raises(RateLimited, lambda: env.auth.auth.login(EMAIL, PASSWORD, context=OWNER))
    assert "reset the password" in str(error)
    assert env.auth.auth.login(EMAIL, PASSWORD, device_token=device).otp_required  # the owner's device is not capped
    reset_password(env)
    assert env.auth.auth.login(EMAIL, NEW_PASSWORD, context=OWNER).otp_required


@pytest.mark.parametrize("value", [0, 101, True, 50.0])
def test_the_consecutive_cap_is_at_most_one_hundred(value: object) -> None:
    with pytest.raises(ConfigurationError):
        test_config(consecutive_failure_limit=value)


def test_the_defaults_follow_the_issue() -> None:
    fields = {f.name: f.default for f in AuthConfig.__attrs_attrs__}  # type: ignore[attr-defined]
    assert fields["consecutive_failure_limit"] == 100
    assert fields["login_ip_limit"] == Limit(10, timedelta(minutes=15))


# -- secrets and the async facade -------------------------------------------------------------------


def test_handles_and_device_tokens_reach_no_audit_row_and_no_log(ada: Env, caplog: pytest.LogCaptureFixture) -> None:
    env = ada
    caplog.set_level(logging.DEBUG)
    challenge = env.auth.auth.login(EMAIL, PASSWORD, context=OWNER)
    code = env.outbox.last_code(EMAIL)
    raises(InvalidOtp, lambda: env.auth.auth.verify_otp(EMAIL, wrong(code), handle=challenge.handle + "0"))
    result = env.auth.auth.verify_otp(EMAIL, code, handle=challenge.handle, context=OWNER)
    env.auth.auth.login(EMAIL, PASSWORD, device_token=result.device_token)
    secrets = [challenge.handle, result.device_token]
    assert all(secrets)
    rows = " ".join(repr(row) for row in env.auth.audit.query(limit=1000))
    logged = " ".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in secrets:
        assert secret not in rows and secret not in logged
        assert secret not in repr(challenge) + repr(result)


def test_the_async_facade_passes_the_handle_and_the_device_token() -> None:
    async def flow() -> None:
        outbox = Outbox()
        config = test_config(hash_workers=4, hash_queue_limit=16)
        sync = MindmeshAuth(store=MemoryStore(), mailer=outbox, config=config, clock=FakeClock())
        async with AsyncMindmeshAuth(sync, max_workers=4) as auth:
            await auth.auth.register(EMAIL, PASSWORD)
            challenge = await auth.auth.login(EMAIL, PASSWORD)
            code = outbox.last_code(EMAIL)
            with pytest.raises(InvalidOtp):
                await auth.auth.verify_otp(EMAIL, wrong(code), handle=challenge.handle)
            assert sync.store.otps.get(EMAIL, "login").attempts == 1  # bound: the code's own attempt was spent
            result = await auth.auth.verify_otp(EMAIL, code, handle=challenge.handle)
            for _ in range(10):
                with pytest.raises(InvalidCredentials):
                    await auth.auth.login(EMAIL, "guess guess", context=STRANGER)
            with pytest.raises(RateLimited):
                await auth.auth.login(EMAIL, PASSWORD)
            assert (await auth.auth.login(EMAIL, PASSWORD, device_token=result.device_token)).otp_required

    asyncio.run(flow())
