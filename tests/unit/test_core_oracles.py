"""No account oracles on the paths that take only an address (issue 11, point 7): ``otp.send``,
the reset request and code checks answer and work the same for known, unknown and blocked
accounts, and a login costs the same whatever the cost of the stored hash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bcrypt
import pytest

from mindmesh_auth import AuditEventType, MindmeshAuth, RateLimited
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.passwords import PasswordHasher
from mindmesh_auth.testing import FakeClock, Outbox, test_config

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
KINDS = ("known", "unknown", "blocked")


class _Recorded:
    """A repository whose public calls are written to ``log`` as ``repo.method``."""

    def __init__(self, inner: Any, name: str, log: list[str]) -> None:
        self._inner, self._name, self._log = inner, name, log

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append(f"{self._name}.{attr}")
            return value(*args, **kwargs)

        return call


class Env:
    """A facade whose storage calls are recorded and whose background jobs are held in ``jobs``."""

    def __init__(self, kind: str, **overrides: Any) -> None:
        self.log: list[str] = []
        self.store = MemoryStore()
        for name in ("users", "sessions", "otps", "reset_tokens", "rate_limits", "audit"):
            setattr(self.store, name, _Recorded(getattr(self.store, name), name, self.log))
        self.outbox = Outbox()
        config = test_config(otp_delivery_in_background=True, reset_delivery_in_background=True, **overrides)
        self.auth = MindmeshAuth(store=self.store, mailer=self.outbox, config=config, clock=FakeClock())
        self.jobs: list[Callable[[], None]] = []
        self.auth.otp._schedule = self.jobs.append  # type: ignore[attr-defined]
        self.auth.password._schedule = self.jobs.append  # type: ignore[attr-defined]
        self.user = self.auth.auth.register(EMAIL, PASSWORD)
        if kind == "blocked":
            self.auth.user.block(self.user.id)
        self.address = "nobody@example.com" if kind == "unknown" else EMAIL

    def run(self, call: Callable[[], Any]) -> tuple[str, list[str]]:
        """The outcome (a result's repr or an exception's class) and the storage calls of ``call``."""
        del self.log[:]
        try:
            outcome = repr(call())
        except Exception as exc:  # noqa: BLE001 - the class is the outcome
            outcome = type(exc).__name__
        return outcome, list(self.log)

    def run_jobs(self) -> None:
        jobs, self.jobs[:] = list(self.jobs), []
        for job in jobs:
            job()


@pytest.fixture
def envs() -> Any:
    made = {kind: Env(kind) for kind in KINDS}
    yield made
    for env in made.values():
        env.auth.close()


def test_otp_send_answers_and_works_the_same_for_known_unknown_and_blocked(envs) -> None:
    limit = test_config().otp_send_limit.count
    seen = {}
    for kind, env in envs.items():
        seen[kind] = [env.run(lambda env=env: env.auth.otp.send(env.address, "email_verify")) for _ in range(limit + 1)]
        assert len(env.jobs) == limit  # every admitted request hands the same job over
    assert seen["known"] == seen["unknown"] == seen["blocked"]
    outcomes = [outcome for outcome, _ in seen["known"]]
    assert outcomes == ["None"] * limit + ["RateLimited"]
    assert seen["known"][0][1] == ["rate_limits.hit"]  # the request path never looks the account up
    for kind, env in envs.items():
        env.run_jobs()
        assert len(env.outbox) == (limit if kind == "known" else 0), kind


def test_otp_send_failures_in_the_background_are_audited_and_change_no_answer(envs) -> None:
    env = envs["known"]
    env.outbox.fail_next()
    assert env.run(lambda: env.auth.otp.send(EMAIL, "email_verify")) == envs["unknown"].run(
        lambda: envs["unknown"].auth.otp.send("nobody@example.com", "email_verify")
    )
    env.run_jobs()
    failed = env.auth.audit.query(types=[AuditEventType.OTP_SEND_FAILED])
    assert [(e.user_id, e.email, e.reason) for e in failed] == [(env.user.id, EMAIL, "email_verify")]


def test_a_reset_request_answers_and_works_the_same_for_known_unknown_and_blocked(envs) -> None:
    seen = {kind: env.run(lambda env=env: env.auth.password.request_reset(env.address)) for kind, env in envs.items()}
    assert seen["known"] == seen["unknown"] == seen["blocked"]
    for kind, env in envs.items():
        assert len(env.jobs) == 1
        env.run_jobs()
        assert len(env.outbox) == (1 if kind == "known" else 0), kind  # a blocked account gets no reset mail
    reasons = [e.reason for e in envs["blocked"].auth.audit.query(types=[AuditEventType.PASSWORD_RESET_REQUESTED])]
    assert reasons == ["blocked"]


def test_wrong_codes_count_the_same_for_known_unknown_and_blocked(envs) -> None:
    limit = test_config().otp_account_failure_limit.count
    outcomes = {}
    for kind, env in envs.items():
        outcomes[kind] = [
            env.run(lambda env=env: env.auth.otp.verify(env.address, "000000", "email_verify"))[0] for _ in range(limit + 5)
        ]
    assert outcomes["known"] == outcomes["unknown"] == outcomes["blocked"] == ["False"] * limit + ["RateLimited"] * 5


def test_a_blocked_account_without_a_code_does_the_storage_work_of_an_unknown_address(envs) -> None:
    blocked = envs["blocked"].run(lambda: envs["blocked"].auth.otp.verify(EMAIL, "123456", "email_verify"))
    unknown = envs["unknown"].run(lambda: envs["unknown"].auth.otp.verify("nobody@example.com", "123456", "email_verify"))
    assert blocked == unknown and blocked[0] == "False"


def test_a_blocked_account_right_code_is_refused_like_a_wrong_one(make_env) -> None:
    env = make_env()
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send(EMAIL, "email_verify")
    code = env.outbox.last_code(EMAIL)
    env.auth.user.block(user.id)
    assert env.auth.otp.verify(EMAIL, code, "email_verify") is False
    assert env.auth.user.get_by_id(user.id).email_verified is False
    assert env.auth.audit.query(types=[AuditEventType.OTP_VERIFIED, AuditEventType.EMAIL_VERIFIED]) == []
    reasons = [e.reason for e in env.auth.audit.query(types=[AuditEventType.OTP_FAILED])]
    assert reasons == ["email_verify:blocked"]


def test_otp_send_for_a_blocked_account_sends_nothing_inline_either(make_env) -> None:
    env = make_env()  # test_config(): delivery inline
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.user.block(user.id)
    for _ in range(env.auth.config.otp_send_limit.count):
        assert env.auth.otp.send(EMAIL, "email_verify") is None
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 0


# -- login timing against the stored hash's cost ---------------------------------------------


class FakeBcryptTime:
    """A fake clock that bcrypt advances by 2**cost milliseconds per hash or check, and a sleep that advances it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.extra = 0.0
        self.sleeps: list[float] = []
        real_check, real_hash = bcrypt.checkpw, bcrypt.hashpw

        def checkpw(password: bytes, hashed: bytes) -> bool:
            self._spend(hashed)
            return real_check(password, hashed)

        def hashpw(password: bytes, salt: bytes) -> bytes:
            self._spend(salt)
            return real_hash(password, salt)

        monkeypatch.setattr(bcrypt, "checkpw", checkpw)
        monkeypatch.setattr(bcrypt, "hashpw", hashpw)

    def _spend(self, setting: bytes) -> None:
        parts = setting.split(b"$")
        if len(parts) > 2 and parts[2].isdigit():  # a malformed hash fails in bcrypt at once
            self.now += 2 ** int(parts[2]) / 1000 + self.extra

    def timer(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def duration(self, call: Callable[[], Any]) -> float:
        start = self.now
        call()
        return self.now - start


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBcryptTime:
    return FakeBcryptTime(monkeypatch)


def hashed_at(cost: int) -> str:
    return PasswordHasher(cost).hash(PASSWORD)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(lambda: hashed_at(4), id="current scheme, lower cost"),
        pytest.param(lambda: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(), id="npm $2b$, lower cost"),
        pytest.param(lambda: "mm1$garbage", id="malformed"),
    ],
)
@pytest.mark.parametrize("password", [PASSWORD, "not the password"])
def test_a_cheaper_stored_hash_takes_as_long_as_an_unknown_address(fake, stored, password: str) -> None:
    hasher = PasswordHasher(6, timer=fake.timer, sleep=fake.sleep)
    stored_hash = stored()
    hasher.dummy_hash()
    unknown = fake.duration(lambda: hasher.verify_dummy(password))
    fake.sleeps.clear()
    cheap = fake.duration(lambda: hasher.verify(password, stored_hash))
    assert len(fake.sleeps) == 1 and fake.sleeps[0] > 0
    assert cheap == pytest.approx(unknown)
    assert hasher.needs_rehash(stored_hash) is True


def test_the_first_cheap_check_measures_the_configured_cost_before_padding(fake) -> None:
    hasher = PasswordHasher(6, timer=fake.timer, sleep=fake.sleep)
    stored = hashed_at(4)
    assert hasher.verify(PASSWORD, stored) is True
    # 16 ms of cost-4 work, padded to the 64 ms the dummy hash (cost 6) took to make.
    assert fake.sleeps == [pytest.approx(0.064 - 0.016)]


def test_checks_at_the_configured_cost_are_never_padded(fake) -> None:
    hasher = PasswordHasher(6, timer=fake.timer, sleep=fake.sleep)
    stored = hashed_at(6)
    hasher.verify_dummy(PASSWORD)
    assert hasher.verify(PASSWORD, stored) is True
    assert hasher.verify("not the password", stored) is False
    assert fake.sleeps == []
    assert hasher.needs_rehash(stored) is False


def test_a_costlier_stored_hash_is_not_padded_and_is_rehashed_on_success(fake) -> None:
    hasher = PasswordHasher(5, timer=fake.timer, sleep=fake.sleep)
    stored = hashed_at(6)
    assert hasher.verify(PASSWORD, stored) is True
    assert fake.sleeps == []
    assert hasher.needs_rehash(stored) is True


def test_the_padding_follows_the_median_of_recent_configured_cost_checks(fake) -> None:
    hasher = PasswordHasher(6, timer=fake.timer, sleep=fake.sleep)
    hasher.verify_dummy(PASSWORD)  # 64 ms (and 64 ms to make the dummy)
    fake.extra = 0.1  # the machine got slower: every bcrypt call takes 100 ms more
    for _ in range(5):
        hasher.verify_dummy(PASSWORD)  # 164 ms each: now the median
    took = fake.duration(lambda: hasher.verify(PASSWORD, hashed_at(4)))
    assert took == pytest.approx(0.164 + 0.116)  # making the cost-4 hash (116 ms) + the padded check
