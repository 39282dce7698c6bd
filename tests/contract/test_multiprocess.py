"""Many app servers on one database: the critical races run from several processes at once.

Every worker is its own process (``multiprocessing``, spawn context) with its own
:class:`~mindmesh_auth.adapters.peewee.PeeweeStore` and
:class:`~mindmesh_auth.MindmeshAuth` on the same PostgreSQL or MariaDB tables (one
table prefix, passed to every process) and the same secrets (drawn once per run
by the parent and passed to every process: keyed hashes of refresh tokens, codes
and counter keys must agree between servers). Every process's clock is the same
fixed :class:`~mindmesh_auth.testing.FakeClock`: servers with synchronised clocks.

In each round the parent prepares a fresh account (or counter), sends every
worker the same task, the workers wait at a ``multiprocessing.Barrier`` and run
it together, and the parent checks the outcome with a checker that returns the
violations it finds (an empty list is a pass):

* refresh rotation: the same refresh token from every process: one new pair,
  the others ``invalid_refresh_token`` and the session live (inside
  ``refresh_race_window``); with a zero window, the others
  ``refresh_token_reused`` and the session revoked once, the new pair dead;
* code verification: the same right login code from every process (keyed-hash
  and bcrypt codes): one session opened, the others ``invalid_otp``;
* rate-limit counters: every process hits one counter ``HITS`` times: the
  count is ``PROCESSES * HITS`` and exactly ``limit`` calls got through.

The same checkers must report violations against a store that is broken in the
children (``BROKEN``: a method that reads, waits :data:`GAP` and writes back
without a lock), which proves that the processes really overlap and that the
assertions would fail on a racy implementation. ``MINDMESH_MULTIPROCESS_ROUNDS``
sets the rounds per race (default 5).

One more test covers the per-process connection pool of ``docs/many-servers.md``:
a call that finds the pool exhausted gets ``StorageUnavailable``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from typing import Any

import pytest
from _servers import server_url, unique_prefix

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.adapters.mail import Outbox
from mindmesh_auth.adapters.peewee import PeeweeStore
from mindmesh_auth.core.config import AuthConfig, Limit
from mindmesh_auth.core.errors import AuthError, InvalidRefreshToken, InvalidToken, RateLimited, StorageUnavailable
from mindmesh_auth.core.models import AuditEventType
from mindmesh_auth.core.ports import CounterState
from mindmesh_auth.testing import FakeClock
from mindmesh_auth.testing.config import test_config

PROCESSES = 4
"""Worker processes (app servers) per race."""
ROUNDS = int(os.environ.get("MINDMESH_MULTIPROCESS_ROUNDS", "5"))
"""Rounds of each race, each on a fresh account or counter."""
HITS = 6
"""Counter hits per process per round of the rate-limit race."""
LIMIT = 9
"""The limit of the rate-limit race (below ``PROCESSES * HITS``)."""
GAP = 0.1
"""Seconds a broken variant waits between its read and its write (a slow round trip)."""
TIMEOUT = 30.0
"""Seconds a worker waits at the barrier, and the parent for a worker's answer, before failing."""
T0 = datetime(2099, 3, 1, 9, 30, 15, 123000, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"

_ROOMY = Limit(1_000_000, timedelta(hours=1))
_LIMITS = (
    "otp_send_limit",
    "otp_account_failure_limit",
    "login_ip_limit",
    "login_email_limit",
    "register_ip_limit",
    "reset_email_limit",
    "reset_ip_limit",
)
_PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": {"refresh_race_window": timedelta(0)},
    "bcrypt": {"otp_hash": "bcrypt"},
}
"""Config profiles a task names: the same in every process."""

ENGINES = [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]


def _secrets() -> dict[str, str]:
    """Fresh secrets for one run: drawn once by the parent, passed to every worker."""
    return {name: secrets.token_urlsafe(32) for name in ("jwt_secret", "refresh_secret", "password_pepper")}


def _config(profile: str, run_secrets: dict[str, str]) -> AuthConfig:
    """``test_config`` with the run's secrets, every rate limit roomy, and the profile's changes."""
    values: dict[str, Any] = dict.fromkeys(_LIMITS, _ROOMY)
    values.update(_PROFILES[profile])
    return test_config(**run_secrets, **values)


# -- deliberately broken variants (applied in the children only) --------------------------------
def _break_rotation(store: PeeweeStore) -> None:
    """``sessions.rotate`` reads the session, checks it in Python, waits, then swaps by id."""
    S, R = store.models.Session, store.models.Retired  # noqa: N806

    def rotate(session_id: str, old_hash: str, new_hash: str, now: datetime) -> bool:
        row = S.select(S.refresh_hash, S.revoked_at, S.expires_at).where(S.id == session_id).tuples().first()
        if row is None or row[0] != old_hash or row[1] is not None or now >= row[2]:
            return False
        time.sleep(GAP)
        S.update({S.refresh_hash: new_hash, S.last_active_at: now}).where(S.id == session_id).execute()
        R.insert(token_hash=old_hash, session_id=session_id, rotated_at=now, expires_at=row[2]).on_conflict_ignore().execute()
        return True

    store.sessions.rotate = rotate  # type: ignore[method-assign]


def _otp_read_then_write(store: PeeweeStore, *, count: bool) -> Callable[..., bool]:
    O = store.models.Otp  # noqa: N806, E741

    def spend(challenge_id: str, now: datetime, max_attempts: int | None = None) -> bool:
        row = O.select(O.consumed_at, O.expires_at, O.attempts, O.status).where(O.id == challenge_id).tuples().first()
        if row is None or row[0] is not None or now >= row[1]:
            return False
        if count and (row[3] != "sent" or max_attempts is None or row[2] >= max_attempts):
            return False
        time.sleep(GAP)
        changes: dict[Any, Any] = {O.consumed_at: now}
        if count:
            changes[O.attempts] = row[2] + 1
        O.update(changes).where(O.id == challenge_id).execute()
        return True

    return spend


def _break_consume(store: PeeweeStore) -> None:
    """``otps.consume`` (bcrypt codes) reads ``consumed_at``, waits, then sets it."""
    store.otps.consume = _otp_read_then_write(store, count=False)  # type: ignore[method-assign]


def _break_redeem_and_units(store: PeeweeStore) -> None:
    """``otps.redeem`` (keyed-hash codes) reads the challenge, waits, then counts and
    consumes; and units are no transactions. (A racy ``redeem`` alone is not enough:
    each verification's unit starts by hitting the account's counter, whose row lock
    queues the verifications of one account until each commits.)"""
    store.otps.redeem = _otp_read_then_write(store, count=True)  # type: ignore[method-assign]
    store.atomic = contextlib.nullcontext  # type: ignore[method-assign,assignment]


def _break_counter(store: PeeweeStore) -> None:
    """``rate_limits.hit`` reads the counter, waits, then writes the new count."""
    C = store.models.Counter  # noqa: N806

    def hit(key: str, now: datetime, expires_at: datetime, amount: int = 1) -> CounterState:
        row = C.select(C.count, C.expires_at).where(C.key == key).tuples().first()
        state = CounterState(amount, expires_at) if row is None or row[1] <= now else CounterState(row[0] + amount, row[1])
        time.sleep(GAP / 10)
        update = {C.count: state.count, C.expires_at: state.expires_at}
        query = C.insert(key=key, count=state.count, expires_at=state.expires_at)
        if store.is_mysql:
            query.on_conflict(update=update).execute()
        else:
            query.on_conflict(conflict_target=[C.key], update=update).execute()
        return state

    store.rate_limits.hit = hit  # type: ignore[method-assign]


BROKEN: dict[str, Callable[[PeeweeStore], None]] = {
    "sessions.rotate": _break_rotation,
    "otps.consume": _break_consume,
    "otps.redeem+units": _break_redeem_and_units,
    "rate_limits.hit": _break_counter,
}
"""Variant -> what it breaks in each child's store."""


# -- the worker processes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    """What every worker needs to reach the same tables with the same secrets."""

    url: str
    table_prefix: str
    secrets: dict[str, str]
    broken: str | None = None


def _outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """``("ok", value)``, or ``("error", class name, code)`` for an :class:`AuthError`,
    or ``("crash", class name)`` for anything else (no message: it could quote a value)."""
    try:
        return ("ok", fn())
    except AuthError as exc:
        return ("error", type(exc).__name__, exc.code)
    except Exception as exc:
        return ("crash", type(exc).__name__)


def _task_refresh(auth: MindmeshAuth, refresh_token: str) -> tuple[str, str, str]:
    pair = auth.auth.refresh(refresh_token)
    return pair.session_id, pair.refresh_token, pair.access_token


def _task_verify(auth: MindmeshAuth, email: str, code: str) -> str:
    return auth.auth.verify_otp(email, code, "login").session_id


def _task_hits(auth: MindmeshAuth, name: str, limit: int, hits: int) -> tuple[int, int]:
    limiter = auth._kernel.limiter
    allowed = refused = 0
    for _ in range(hits):
        try:
            limiter.consume(name, Limit(limit, timedelta(hours=1)), auth._kernel.now())
            allowed += 1
        except RateLimited:
            refused += 1
    return allowed, refused


_TASKS: dict[str, Callable[..., Any]] = {"refresh": _task_refresh, "verify": _task_verify, "hits": _task_hits}


def _serve(spec: _Spec, barrier: Any, conn: Connection) -> None:
    """A worker: build the store and the facades, say ready, then for every task
    ``(name, profile, args)`` wait at the barrier, run it and send its outcome."""
    store: PeeweeStore | None = None
    facades: dict[str, MindmeshAuth] = {}
    try:
        store = PeeweeStore.from_url(spec.url, table_prefix=spec.table_prefix)
        if spec.broken is not None:
            BROKEN[spec.broken](store)
        store.users.get("warm-up")  # opens this process's connection before the first race
        conn.send(("ready", os.getpid()))
        while (message := conn.recv()) is not None:
            name, profile, args = message
            if profile not in facades:
                config = _config(profile, spec.secrets)
                facades[profile] = MindmeshAuth(store=store, mailer=Outbox(), config=config, clock=FakeClock(T0))
            barrier.wait()
            conn.send(_outcome(lambda: _TASKS[name](facades[profile], *args)))
    except Exception as exc:
        conn.send(("crash", type(exc).__name__))
    finally:
        if store is not None:
            store.close()
        conn.close()


class Cluster:
    """``PROCESSES`` worker processes on one database, plus the parent's own facades on it."""

    def __init__(self, engine: str, broken: str | None = None) -> None:
        self.engine = engine
        self.spec = _Spec(
            url=server_url(engine),
            table_prefix=unique_prefix(),
            secrets=_secrets(),
            broken=broken,
        )
        self.store = PeeweeStore.from_url(self.spec.url, table_prefix=self.spec.table_prefix)
        self.outbox = Outbox()
        self._facades: dict[str, MindmeshAuth] = {}
        self._workers: list[tuple[Any, Connection]] = []

    def auth(self, profile: str = "default") -> MindmeshAuth:
        """The parent's facade for ``profile`` (same store tables, secrets and clock as the workers')."""
        if profile not in self._facades:
            config = _config(profile, self.spec.secrets)
            self._facades[profile] = MindmeshAuth(store=self.store, mailer=self.outbox, config=config, clock=FakeClock(T0))
        return self._facades[profile]

    def start(self) -> None:
        self.store.create_schema()
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES, timeout=TIMEOUT)
        for _ in range(PROCESSES):
            parent_end, child_end = ctx.Pipe()
            process = ctx.Process(target=_serve, args=(self.spec, barrier, child_end), daemon=True)
            process.start()
            child_end.close()
            self._workers.append((process, parent_end))
        ready = [self._receive(conn) for _process, conn in self._workers]
        assert all(r[0] == "ready" for r in ready), f"workers did not start: {ready}"
        pids = {r[1] for r in ready}
        assert len(pids) == PROCESSES and os.getpid() not in pids, f"not {PROCESSES} separate processes: {pids}"

    @staticmethod
    def _receive(conn: Connection) -> tuple[Any, ...]:
        if not conn.poll(TIMEOUT):
            raise AssertionError(f"a worker did not answer within {TIMEOUT} s")
        result: tuple[Any, ...] = conn.recv()
        return result

    def race(self, task: str, profile: str, *args: Any) -> list[tuple[Any, ...]]:
        """Every worker runs ``task`` at once; their outcomes, in worker order."""
        for _process, conn in self._workers:
            conn.send((task, profile, args))
        return [self._receive(conn) for _process, conn in self._workers]

    def stop(self) -> None:
        for process, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process, conn in self._workers:
            process.join(TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join(TIMEOUT)
            conn.close()
        self._workers.clear()
        for facade in self._facades.values():
            facade.wait_for_background_work()
        try:
            self.store.drop_schema()
        finally:
            self.store.close()


@contextlib.contextmanager
def _cluster(engine: str, broken: str | None = None) -> Iterator[Cluster]:
    cluster = Cluster(engine, broken)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=ENGINES)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """One set of workers per engine, shared by the race tests (a fresh account or key per round)."""
    with _cluster(request.param) as running:
        yield running


# -- the races and their checkers ----------------------------------------------------------------
def _login(cluster: Cluster, profile: str, email: str) -> tuple[str, str]:
    """Register ``email`` and ask for a login code (through the parent); (user id, code)."""
    auth = cluster.auth(profile)
    user = auth.auth.register(email, PASSWORD)
    auth.auth.login(email, PASSWORD)
    return user.id, cluster.outbox.last_code(email)


def _email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.test"


def _codes(results: list[tuple[Any, ...]]) -> list[str]:
    """The outcomes for a message: ``ok``, an error code or ``crash: <class>``, never a token."""
    return [r[0] if r[0] == "ok" else r[2] if r[0] == "error" else f"crash: {r[1]}" for r in results]


def _audit_count(auth: MindmeshAuth, user_id: str, event: AuditEventType) -> int:
    return len(auth.audit.query(user_id=user_id, types=[event], limit=1000))


def refresh_violations(cluster: Cluster, profile: str = "default") -> list[str]:
    """One round of the refresh race; what went wrong (empty: nothing)."""
    email = _email("refresh")
    user_id, code = _login(cluster, profile, email)
    start = cluster.auth(profile).auth.verify_otp(email, code, "login")
    results = cluster.race("refresh", profile, start.refresh_token)
    return _check_refresh(cluster, profile, user_id, start.session_id, results)


def _check_refresh(cluster: Cluster, profile: str, user_id: str, session_id: str, results: list[tuple[Any, ...]]) -> list[str]:
    auth = cluster.auth(profile)
    strict = profile == "strict"
    problems: list[str] = []
    pairs = [r[1] for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] != "ok"]
    if len(pairs) != 1:
        problems.append(f"{len(pairs)} new pairs issued for one refresh token (expected 1): {_codes(results)}")
    loser = (
        ("error", "RefreshTokenReused", "refresh_token_reused")
        if strict
        else ("error", "InvalidRefreshToken", "invalid_refresh_token")
    )
    if any(r != loser for r in refused):
        problems.append(f"the other processes did not all get {loser[2]}: {_codes(results)}")
    refreshed = _audit_count(auth, user_id, AuditEventType.SESSION_REFRESHED)
    if refreshed != 1:
        problems.append(f"{refreshed} SESSION_REFRESHED rows for one rotation")
    session = cluster.store.sessions.get(session_id)
    if session is None:
        return [*problems, "the session is gone"]
    if strict:
        # The zero window: every duplicate is a replay. The session is revoked exactly once,
        # and the pair the winner got is dead too.
        if session.revoked_at is None or session.revoke_reason != "refresh_reuse":
            problems.append(f"the replayed session is not revoked for reuse: {session.revoked_at}, {session.revoke_reason}")
        detected = _audit_count(auth, user_id, AuditEventType.REFRESH_REUSE_DETECTED)
        if detected != 1:
            problems.append(f"{detected} REFRESH_REUSE_DETECTED rows (expected 1)")
        for _sid, refresh_token, access_token in pairs:
            with contextlib.suppress(InvalidToken):
                auth.auth.get_user_from_token(access_token)
                problems.append("an access token of the revoked session still works")
            with contextlib.suppress(InvalidRefreshToken):
                auth.auth.refresh(refresh_token)
                problems.append("a refresh token of the revoked session still works")
        return problems
    if session.revoked_at is not None:
        problems.append(f"the session was revoked ({session.revoke_reason}) by a concurrent duplicate")
    working = 0
    for sid, refresh_token, access_token in pairs:
        try:
            ok = auth.auth.get_user_from_token(access_token).id == user_id and sid == session_id
            ok = ok and auth.auth.refresh(refresh_token).session_id == session_id
            working += ok
        except AuthError:
            pass
    if pairs and working != 1:
        problems.append(f"{working} of the issued pairs work (expected exactly 1)")
    return problems


def verify_violations(cluster: Cluster, profile: str = "default") -> list[str]:
    """One round of the code race; what went wrong (empty: nothing)."""
    email = _email("verify")
    user_id, code = _login(cluster, profile, email)
    results = cluster.race("verify", profile, email, code)
    problems: list[str] = []
    winners = [r[1] for r in results if r[0] == "ok"]
    if len(winners) != 1:
        problems.append(f"{len(winners)} sessions opened with one code (expected 1): {_codes(results)}")
    if any(r != ("error", "InvalidOtp", "invalid_otp") for r in results if r[0] != "ok"):
        problems.append(f"the other processes did not all get invalid_otp: {_codes(results)}")
    live = cluster.store.sessions.list_for_user(user_id, now=T0)
    if [s.id for s in live] != winners[:1] or len(winners) != 1:
        problems.append(f"{len(live)} live sessions for the account (expected the winner's only)")
    opened = _audit_count(cluster.auth(profile), user_id, AuditEventType.LOGIN_SUCCESS)
    if opened != 1:
        problems.append(f"{opened} LOGIN_SUCCESS rows (expected 1)")
    challenge = cluster.store.otps.get(email, "login")
    if challenge is None or challenge.consumed_at is None:
        problems.append("the code is not spent")
    return problems


def counter_violations(cluster: Cluster) -> list[str]:
    """One round of the counter race; what went wrong (empty: nothing)."""
    name = f"mp-test:{uuid.uuid4().hex}"
    results = cluster.race("hits", "default", name, LIMIT, HITS)
    problems: list[str] = []
    crashed = [r for r in results if r[0] != "ok"]
    if crashed:
        return [f"hits failed: {_codes(crashed)}"]
    allowed = sum(r[1][0] for r in results)
    refused = sum(r[1][1] for r in results)
    total = PROCESSES * HITS
    if allowed != LIMIT or refused != total - LIMIT:
        problems.append(f"{allowed} hits allowed and {refused} refused (expected {LIMIT} and {total - LIMIT})")
    limiter = cluster.auth()._kernel.limiter
    state = cluster.store.rate_limits.get(limiter.stored_key(name), T0)
    count = None if state is None else state.count
    if count != total:
        problems.append(f"the counter holds {count} after {total} hits")
    return problems


def _rounds(check: Callable[[], list[str]]) -> list[list[str]]:
    return [check() for _ in range(ROUNDS)]


# -- the tests ----------------------------------------------------------------------------------------
def test_one_refresh_token_from_every_process_rotates_once(cluster: Cluster) -> None:
    for problems in _rounds(lambda: refresh_violations(cluster)):
        assert problems == []


def test_with_no_race_window_the_duplicates_revoke_the_session_once(cluster: Cluster) -> None:
    for problems in _rounds(lambda: refresh_violations(cluster, "strict")):
        assert problems == []


@pytest.mark.parametrize("profile", ["default", "bcrypt"], ids=["keyed-codes", "bcrypt-codes"])
def test_one_right_code_from_every_process_opens_one_session(cluster: Cluster, profile: str) -> None:
    for problems in _rounds(lambda: verify_violations(cluster, profile)):
        assert problems == []


def test_every_process_hitting_one_counter_is_counted_exactly(cluster: Cluster) -> None:
    for problems in _rounds(lambda: counter_violations(cluster)):
        assert problems == []


# -- a pool per process ----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_a_call_that_finds_the_process_pool_exhausted_gets_storage_unavailable(engine: str) -> None:
    # docs/many-servers.md: one bounded pool per process. A call that waited the pool's
    # ``timeout`` for a free connection gets the typed error (503), not peewee's ValueError.
    from playhouse import db_url
    from playhouse.pool import PooledDatabase

    url = server_url(engine)
    scheme, rest = url.split("://", 1)
    db = db_url.connect(f"{scheme}+pool://{rest}?max_connections=1&timeout=1")
    assert isinstance(db, PooledDatabase)
    store = PeeweeStore(database=db, table_prefix=unique_prefix())
    store.create_schema()
    try:
        assert store.users.get("nobody") is None  # this thread now holds the only connection
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                store.users.get("nobody")
                outcome.append(None)
            except BaseException as exc:  # asserted below
                outcome.append(exc)
            finally:
                db.close()  # a thread gives its connection back before it ends

        worker = threading.Thread(target=call)
        worker.start()
        worker.join(TIMEOUT)
        assert len(outcome) == 1 and isinstance(outcome[0], StorageUnavailable), outcome
        db.close()  # back to the pool: the next thread gets it
        worker = threading.Thread(target=call)
        worker.start()
        worker.join(TIMEOUT)
        assert outcome[1] is None
    finally:
        with contextlib.suppress(Exception):
            db.close()
        store.drop_schema()
        db.close_all()


# variant -> the checker of the race it must lose
_CHECKERS: dict[str, Callable[[Cluster], list[str]]] = {
    "sessions.rotate": refresh_violations,
    "otps.consume": lambda cluster: verify_violations(cluster, "bcrypt"),
    "otps.redeem+units": verify_violations,
    "rate_limits.hit": counter_violations,
}


def test_every_broken_variant_has_a_checker() -> None:
    assert set(_CHECKERS) == set(BROKEN)


@pytest.mark.parametrize("variant", sorted(BROKEN))
@pytest.mark.parametrize("engine", ENGINES)
def test_the_checkers_catch_a_racy_store_in_the_workers(engine: str, variant: str) -> None:
    with _cluster(engine, broken=variant) as broken:
        caught = [bool(problems) for problems in _rounds(lambda: _CHECKERS[variant](broken))]
    assert all(caught), f"{variant}: the race went unnoticed in {caught.count(False)} of {ROUNDS} rounds"
