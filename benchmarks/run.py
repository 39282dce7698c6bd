"""mindmesh-auth benchmarks: where the time goes, per operation and per backend.

    ./scripts/bench                       # everything reachable, table + JSON
    ./scripts/bench --quick --backends memory,sqlite --skip-scale

Prints tables and writes JSON (``benchmarks/results/latest.json`` by default).
Speed is reported here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import bcrypt
import jwt

from mindmesh_auth import AuthConfig, Limit, MindmeshAuth
from mindmesh_auth.adapters.mail import Outbox
from mindmesh_auth.core.ports import Store

PASSWORD = "correct horse battery staple"
POSTGRES_URL = os.environ.get("MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/mindmesh_test")
MYSQL_URL = os.environ.get("MINDMESH_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mindmesh_test")
UNLIMITED = Limit(10**9, timedelta(hours=1))


def config(rounds: int) -> AuthConfig:
    return AuthConfig(
        jwt_secret=secrets.token_urlsafe(48),
        refresh_secret=secrets.token_urlsafe(48),
        bcrypt_rounds=rounds,
        reset_delivery_in_background=False,
        otp_delivery_in_background=False,  # the operations table measures the whole send; the oracles section turns it on
        otp_send_limit=UNLIMITED,
        otp_account_failure_limit=UNLIMITED,
        login_ip_limit=UNLIMITED,
        register_ip_limit=UNLIMITED,
        login_email_limit=UNLIMITED,
        reset_email_limit=UNLIMITED,
        reset_ip_limit=UNLIMITED,
        # Throughput figures: every core hashes and no call is refused (benchmarks/flood.py measures the bound).
        hash_workers=os.cpu_count() or 1,
        hash_queue_limit=100_000,
    )


# -- measuring --------------------------------------------------------------
def sample(fn: Callable[[], Any], n: int, setup: Callable[[], Any] | None = None, warmup: int = 3) -> list[float]:
    """Seconds per call for ``n`` calls; ``setup`` runs untimed before each call."""
    for _ in range(warmup):
        arg = setup() if setup else None
        fn() if setup is None else fn(arg)  # type: ignore[call-arg]
    out = []
    for _ in range(n):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn() if setup is None else fn(arg)  # type: ignore[call-arg]
        out.append(time.perf_counter() - t0)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "ops_per_s": len(values) / sum(values),
        "p50_ms": pct(values, 50) * 1e3,
        "p99_ms": pct(values, 99) * 1e3,
    }


# -- backends ---------------------------------------------------------------
class Backend:
    def __init__(self, name: str, make: Callable[[], Store], raw: Callable[[Store], Any] | None = None) -> None:
        self.name, self.make, self.raw = name, make, raw


def reachable_backends(names: list[str], prefix: str, tmp: Path) -> tuple[list[Backend], list[str]]:
    found: list[Backend] = []
    skipped: list[str] = []
    for name in names:
        try:
            if name == "memory":
                from mindmesh_auth.adapters.memory import MemoryStore

                found.append(Backend(name, MemoryStore))
            elif name == "sqlite":
                from mindmesh_auth.adapters.peewee import PeeweeStore

                path = tmp / "bench.db"
                found.append(
                    Backend(name, lambda p=path: PeeweeStore.from_url(f"sqlite:///{p}", table_prefix=prefix), raw_sqlite(path))
                )
            elif name == "postgres":
                from mindmesh_auth.adapters.peewee import PeeweeStore

                probe = PeeweeStore.from_url(POSTGRES_URL, table_prefix=prefix)
                probe.database.connect(reuse_if_open=True)
                probe.close()
                found.append(Backend(name, lambda: PeeweeStore.from_url(POSTGRES_URL, table_prefix=prefix), raw_postgres))
            elif name == "mysql":
                from mindmesh_auth.adapters.peewee import PeeweeStore

                probe = PeeweeStore.from_url(MYSQL_URL, table_prefix=prefix)
                probe.database.connect(reuse_if_open=True)
                probe.close()
                found.append(Backend(name, lambda: PeeweeStore.from_url(MYSQL_URL, table_prefix=prefix), raw_mysql))
            elif name == "mongomock":
                import mongomock

                from mindmesh_auth.adapters.mongo import MongoStore

                found.append(Backend(name, lambda: MongoStore(mongomock.MongoClient(tz_aware=True)["bench"])))
            else:
                skipped.append(f"{name}: unknown backend")
        except Exception as exc:  # a backend that is not reachable is reported, not fatal
            skipped.append(f"{name}: {type(exc).__name__}: {exc}")
    return found, skipped


FLOOR_SQL = (
    "SELECT s.user_id, s.revoked_at, s.expires_at, u.blocked FROM {sessions} s "
    "JOIN {users} u ON u.id = s.user_id WHERE s.id = {ph}"
)


def floor_sql(store: Any, ph: str) -> str:
    return FLOOR_SQL.format(sessions=store.table_names["sessions"], users=store.table_names["users"], ph=ph)


def is_pg(store: Any) -> bool:
    from mindmesh_auth.adapters.peewee.models import is_postgres, resolve_database

    return bool(is_postgres(resolve_database(store.database)))


def raw_sqlite(path: Path) -> Callable[[Store], Any]:
    def make(store: Store) -> Any:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        sql = floor_sql(store, "?")
        return lambda sid: conn.execute(sql, (sid,)).fetchone()

    return make


def raw_postgres(store: Store) -> Any:
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"PREPARE mm_floor(text) AS {floor_sql(store, '$1')}")

    def query(sid: str) -> Any:
        cur.execute("EXECUTE mm_floor(%s)", (sid,))
        return cur.fetchone()

    return query


def raw_mysql(store: Store) -> Any:
    from urllib.parse import urlsplit

    import pymysql

    u = urlsplit(MYSQL_URL)
    conn = pymysql.connect(
        host=u.hostname, port=u.port or 3306, user=u.username or "root", password=u.password or "", database=u.path.lstrip("/"),
        autocommit=True,
    )
    cur = conn.cursor()
    sql = floor_sql(store, "%s")

    def query(sid: str) -> Any:
        cur.execute(sql, (sid,))
        return cur.fetchone()

    return query


# -- the per-operation run ----------------------------------------------------
def run_operations(backend: Backend, rounds: int, quick: bool) -> dict[str, Any]:
    store = backend.make()
    store.create_schema()
    outbox = Outbox()
    auth = MindmeshAuth(store=store, mailer=outbox, config=config(rounds))
    k = auth._kernel
    slow_n = 10 if quick else 20
    fast_n = 200 if quick else 2000
    mid_n = 50 if quick else 400
    counter = iter(range(10**9))

    def email() -> str:
        return f"bench{next(counter)}-{uuid.uuid4().hex[:6]}@example.com"

    results: dict[str, Any] = {}
    results["register"] = sample(lambda: auth.auth.register(email(), PASSWORD), slow_n)

    main = email()
    auth.auth.register(main, PASSWORD)
    results["login"] = sample(lambda: auth.auth.login(main, PASSWORD), slow_n)

    def login_and_code() -> tuple[str, str]:
        challenge = auth.auth.login(main, PASSWORD)
        return outbox.last_code(main), challenge.handle

    # With the login's handle, as the HTTP integrations always send it. More samples than the
    # bcrypt-bound operations: each follows a login, and 20 left the median swinging by 0.3 ms.
    results["verify_otp"] = sample(
        lambda arg: auth.auth.verify_otp(main, arg[0], "login", handle=arg[1]), 3 * slow_n, setup=login_and_code
    )
    auth.auth.login(main, PASSWORD)
    login = auth.auth.verify_otp(main, outbox.last_code(main), "login")
    token = login.access_token
    results["get_user_from_token"] = sample(lambda: auth.auth.get_user_from_token(token), fast_n)

    chain = [login.refresh_token]

    def refresh() -> None:
        chain[0] = auth.auth.refresh(chain[0]).refresh_token

    results["refresh"] = sample(refresh, mid_n)
    results["otp_send"] = sample(lambda: auth.otp.send(main, "email_verify"), mid_n)

    def send_and_code() -> str:
        auth.otp.send(main, "email_verify")
        return outbox.last_code(main)

    results["otp_verify"] = sample(lambda code: auth.otp.verify(main, code, "email_verify"), mid_n, setup=send_and_code)
    limit = Limit(10**9, timedelta(minutes=10))
    results["rate_limit_check"] = sample(lambda: k.limiter.consume("bench-key", limit, k.now()), fast_n)
    results["request_reset"] = sample(lambda: auth.password.request_reset(main), mid_n)
    outbox.clear()

    out: dict[str, Any] = {name: summary(v) for name, v in results.items()}
    # bcrypt's share, measured in the same run at the same cost.
    hash_t = sample(lambda: k.hasher.hash(PASSWORD), slow_n)
    stored = k.hasher.hash(PASSWORD)
    verify_t = sample(lambda: k.hasher.verify(PASSWORD, stored), slow_n)
    bcrypt_ms = {"register": pct(hash_t, 50) * 1e3, "login": pct(verify_t, 50) * 1e3}
    for name, row in out.items():
        row["bcrypt_ms"] = bcrypt_ms.get(name, 0.0)
        row["overhead_ms"] = max(0.0, row["p50_ms"] - row["bcrypt_ms"])

    if backend.raw is not None:
        query = backend.raw(store)
        key = jwt.encode  # noqa: F841 - keep the import visible in the floor description
        secret = k.config.jwt_secret
        aud, iss = k.config.jwt_audience, k.config.jwt_issuer
        sid = login.session_id

        def floor() -> None:
            jwt.decode(token, secret, algorithms=["HS256"], audience=aud, issuer=iss, options={"verify_exp": False})
            query(sid)

        floor_t = sample(floor, fast_n)
        decode_t = sample(
            lambda: jwt.decode(token, secret, algorithms=["HS256"], audience=aud, issuer=iss, options={"verify_exp": False}),
            fast_n,
        )
        query_t = sample(lambda: query(sid), fast_n)
        out["floor"] = {
            **summary(floor_t),
            "jwt_decode_p50_ms": pct(decode_t, 50) * 1e3,
            "raw_query_p50_ms": pct(query_t, 50) * 1e3,
            "ratio_get_user_to_floor": out["get_user_from_token"]["p50_ms"] / (pct(floor_t, 50) * 1e3),
        }

    if backend.raw is not None:
        out["token_check"] = token_check(backend, store, auth, login, fast_n)

    # Timing uniformity of failed logins.
    from mindmesh_auth import InvalidCredentials

    def fail(address: str, password: str) -> Callable[[], None]:
        def call() -> None:
            try:
                auth.auth.login(address, password)
            except InvalidCredentials:
                pass

        return call

    unknown = sample(fail("nobody-" + main, PASSWORD), slow_n)
    wrong = sample(fail(main, PASSWORD + "x"), slow_n)
    out["failed_login_timing"] = {
        "unknown_email_p50_ms": statistics.median(unknown) * 1e3,
        "wrong_password_p50_ms": statistics.median(wrong) * 1e3,
        "ratio": statistics.median(unknown) / statistics.median(wrong),
    }
    if hasattr(store, "drop_schema"):
        store.drop_schema()
    auth.close()
    return out


# -- the token check: verified-token cache and token size ------------------------
def seed_claims_token(secret: str, user_id: str, session_id: str, email: str) -> str:
    """A token carrying only what the npm package's token carries: userId, sessionId, email, iat, exp."""
    iat = int(time.time())
    payload = {"userId": user_id, "sessionId": session_id, "email": email, "iat": iat, "exp": iat + 900}
    return jwt.encode(payload, secret, algorithm="HS256")


def token_check(backend: Backend, store: Store, auth: MindmeshAuth, login: Any, n: int) -> dict[str, Any]:
    """get_user_from_token with the cache off and on, full and lean tokens, against the raw floor of a
    seed-claims token (pyjwt.decode + one indexed join through the plain driver). The variants run in
    interleaved rounds so a drift of the machine affects them alike; ratios are of the p50s."""
    assert backend.raw is not None
    cfg = auth._kernel.config
    outbox = Outbox()
    variants_auth = {
        "cache off": MindmeshAuth(store=store, mailer=outbox, config=cfg.with_changes(token_cache_size=0)),
        "cache on": MindmeshAuth(store=store, mailer=outbox, config=cfg.with_changes(token_cache_size=10_000)),
        "lean, cache off": MindmeshAuth(
            store=store, mailer=outbox, config=cfg.with_changes(token_cache_size=0, access_token_claims="lean")
        ),
        "lean, cache on": MindmeshAuth(
            store=store, mailer=outbox, config=cfg.with_changes(token_cache_size=10_000, access_token_claims="lean")
        ),
    }
    user_id, email, sid = login.user.id, login.user.email, login.session_id
    k = auth._kernel
    lean_k = variants_auth["lean, cache off"]._kernel
    full_token = login.access_token
    lean_token = lean_k.codec.encode(user_id=user_id, session_id=sid, email=email, now=k.now(), rng=k.rng)
    seed_token = seed_claims_token(cfg.jwt_secret, user_id, sid, email)
    query = backend.raw(store)
    secret, aud, iss = cfg.jwt_secret, cfg.jwt_audience, cfg.jwt_issuer

    def floor() -> None:
        jwt.decode(seed_token, secret, algorithms=["HS256"])
        query(sid)

    timed: dict[str, Callable[[], Any]] = {"raw floor (seed-claims token)": floor}
    for name, a in variants_auth.items():
        token = lean_token if name.startswith("lean") else full_token
        timed[f"get_user_from_token, {name}"] = lambda a=a, token=token: a.auth.get_user_from_token(token)
    full_codec_off, lean_codec_off = variants_auth["cache off"]._kernel.codec, lean_k.codec
    on_codec = variants_auth["cache on"]._kernel.codec
    sizes: dict[str, Callable[[], Any]] = {
        "seed-claims token, pyjwt.decode": lambda: jwt.decode(seed_token, secret, algorithms=["HS256"]),
        "full token, pyjwt.decode": lambda: jwt.decode(full_token, secret, algorithms=["HS256"], audience=aud, issuer=iss),
        "lean token, pyjwt.decode": lambda: jwt.decode(lean_token, secret, algorithms=["HS256"], audience=aud, issuer=iss),
        "full token, codec.decode": lambda: full_codec_off.decode(full_token, k.now()),
        "lean token, codec.decode": lambda: lean_codec_off.decode(lean_token, k.now()),
        "full token, codec.decode cached": lambda: on_codec.decode(full_token, k.now()),
    }
    length = {"seed-claims": len(seed_token), "full": len(full_token), "lean": len(lean_token)}
    samples: dict[str, list[float]] = {name: [] for name in [*timed, *sizes]}
    rounds = 3
    for _ in range(rounds):
        for name, fn in [*timed.items(), *sizes.items()]:
            samples[name] += sample(fn, max(1, n // rounds))
    floor_ms = pct(samples["raw floor (seed-claims token)"], 50) * 1e3
    checks = {}
    for name in timed:
        row = summary(samples[name])
        row["ratio_to_floor"] = row["p50_ms"] / floor_ms
        checks[name] = row
    decode = {}
    for name in sizes:
        kind = name.split(" token")[0]
        decode[name] = {"chars": length[kind], "p50_us": pct(samples[name], 50) * 1e6}
    for a in variants_auth.values():
        a.close()
    return {"checks": checks, "decode": decode}


def print_token_check(t: dict[str, Any], w: Callable[[str], Any]) -> None:
    w(f"token check{'':<36}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'x floor':>9}\n")
    for name, r in t["checks"].items():
        w(f"  {name:<45}{r['ops_per_s']:>10.0f}{r['p50_ms']:>10.4f}{r['p99_ms']:>10.4f}{r['ratio_to_floor']:>8.2f}x\n")
    w(f"decode time per token size{'':<21}{'chars':>10}{'p50 us':>10}\n")
    for name, r in t["decode"].items():
        w(f"  {name:<45}{r['chars']:>10}{r['p50_us']:>10.1f}\n")


# -- oracles: answers and times that must not depend on the account --------------
class _AcceptAll:
    """aiosmtpd handler: accepts every recipient and message, keeps nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _interleaved(
    a: Callable[[], Any], b: Callable[[], Any], n: int, after: Callable[[], Any] | None = None
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately (the order swapped every round); ``after`` runs untimed after each call."""
    ta: list[float] = []
    tb: list[float] = []
    for i in range(n):
        pair = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for fn, out in pair:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
            if after is not None:
                after()
    return ta, tb


def run_oracles(rounds: int, quick: bool) -> dict[str, Any]:
    """Two account oracles of issue 11, as ratios of interleaved medians (1.00 = indistinguishable):
    a failed login against an account whose stored hash is a cost-10 ``$2b$`` (imported from the npm
    package) vs an unknown address (dummy check at the configured cost); and ``otp.send`` for a known
    vs an unknown address through ``SmtpMailer`` to a real SMTP server (aiosmtpd) on loopback."""
    from aiosmtpd.controller import Controller

    from mindmesh_auth import InvalidCredentials
    from mindmesh_auth.adapters.memory import MemoryStore
    from mindmesh_auth.adapters.smtp import SmtpMailer

    n = 10 if quick else 60
    out: dict[str, Any] = {"iterations": n}
    cheap_cost = 10 if rounds > 10 else max(4, rounds - 1)  # the npm package's cost, below the configured one
    # Login: one account per round (no per-account counter grows), a fresh IP per call.
    store = MemoryStore()
    cfg = config(rounds)
    with MindmeshAuth(store=store, mailer=Outbox(), config=cfg.with_changes(bcrypt_rounds=4)) as setup:
        legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cheap_cost)).decode()
        emails = []
        for i in range(n + 3):
            user = setup.auth.register(f"cheap{i}@example.com", PASSWORD)
            store.users.set_password_hash(user.id, legacy, setup._kernel.now())
            emails.append(user.email)
    with MindmeshAuth(store=store, mailer=Outbox(), config=cfg) as auth:
        known, unknown = iter(emails), iter(f"nobody{i}@example.com" for i in range(n + 3))
        ips = iter(f"198.51.{i // 250}.{i % 250 + 1}" for i in range(4 * n + 12))

        def failed(addresses: Any) -> Callable[[], None]:
            def call() -> None:
                auth.set_context(ip_address=next(ips))
                try:
                    auth.auth.login(next(addresses), "not the password at all")
                except InvalidCredentials:
                    return
                raise AssertionError("a wrong password must be refused")

            return call

        for _ in range(3):  # warm-up (also measures the configured cost once)
            failed(known)()
            failed(unknown)()
        tk, tu = _interleaved(failed(known), failed(unknown), n)
    out["login_cheap_hash_vs_unknown"] = {
        "stored_cost": cheap_cost,
        "configured_cost": rounds,
        "cheap_hash_p50_ms": pct(tk, 50) * 1e3,
        "unknown_p50_ms": pct(tu, 50) * 1e3,
        "ratio": pct(tk, 50) / pct(tu, 50),
    }
    # otp.send through a real SMTP conversation on loopback.
    import socket

    with socket.socket() as probe:  # a free port (aiosmtpd cannot report one it picked itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_AcceptAll(), hostname="127.0.0.1", port=port, ready_timeout=30.0)
    controller.start()
    try:
        mailer = SmtpMailer("127.0.0.1", port, sender="no-reply@example.com", security="none", timeout=10.0)
        store = MemoryStore()
        with MindmeshAuth(store=store, mailer=Outbox(), config=cfg.with_changes(bcrypt_rounds=4)) as setup:
            setup.auth.register("known@example.com", PASSWORD)
        with MindmeshAuth(store=store, mailer=mailer, config=cfg.with_changes(otp_delivery_in_background=True)) as auth:
            auth.set_context(ip_address="198.51.100.7")

            def send(address: str) -> Callable[[], None]:
                return lambda: auth.otp.send(address, "email_verify")

            def settle() -> None:
                auth.wait_for_background_work(timeout=30.0)

            for _ in range(3):
                send("known@example.com")()
                settle()
            tk, tu = _interleaved(send("known@example.com"), send("nobody@example.com"), n * 3, after=settle)
            delivered = len(auth.audit.query(types=["OTP_SENT"], limit=1000))
    finally:
        controller.stop()
    out["otp_send_known_vs_unknown"] = {
        "known_p50_ms": pct(tk, 50) * 1e3,
        "unknown_p50_ms": pct(tu, 50) * 1e3,
        "ratio": pct(tk, 50) / pct(tu, 50),
        "mails_accepted": delivered,
    }
    return out


def print_oracles(o: dict[str, Any], w: Callable[[str], Any]) -> None:
    w(f"\n== oracles (interleaved medians, {o['iterations']} rounds; within 5% means 0.95..1.05) ==\n")
    lg = o["login_cheap_hash_vs_unknown"]
    w(
        f"failed login, stored $2b${lg['stored_cost']:02d}$ vs unknown address (cost {lg['configured_cost']}): "
        f"{lg['cheap_hash_p50_ms']:.2f} ms vs {lg['unknown_p50_ms']:.2f} ms, ratio {lg['ratio']:.3f}\n"
    )
    ot = o["otp_send_known_vs_unknown"]
    w(
        f"otp.send over SMTP (aiosmtpd, loopback), known vs unknown: {ot['known_p50_ms']:.3f} ms vs "
        f"{ot['unknown_p50_ms']:.3f} ms, ratio {ot['ratio']:.3f} ({ot['mails_accepted']} mails accepted)\n"
    )


# -- scale --------------------------------------------------------------------
def fill(store: Any, n: int, now_ms: int) -> list[str]:
    """Bulk-insert ``n`` users with one session each through the plain driver; returns session ids."""
    t_users, t_sessions = store.table_names["users"], store.table_names["sessions"]
    users = []
    sessions = []
    far = now_ms + 7 * 86400 * 1000
    for i in range(n):
        uid, sid = str(uuid.uuid4()), str(uuid.uuid4())
        users.append((uid, f"scale{i}@example.com", "mm1$x", now_ms, now_ms, False, False))
        sessions.append((sid, uid, secrets.token_hex(32), now_ms, far, now_ms, None, None, None, None))
    db = store.database
    conn = db.connection()
    if is_pg(store):
        import io

        cur = conn.cursor()
        for table, rows, cols in (
            (t_users, users, "id,email,password_hash,created_at,updated_at,email_verified,blocked"),
            (
                t_sessions,
                sessions,
                "id,user_id,refresh_hash,created_at,expires_at,last_active_at,revoked_at,revoke_reason,ip_address,user_agent",
            ),
        ):
            buf = io.StringIO()
            for row in rows:
                buf.write("\t".join("\\N" if v is None else ("t" if v is True else "f" if v is False else str(v)) for v in row))
                buf.write("\n")
            buf.seek(0)
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)
        conn.commit()
        cur.execute(f"ANALYZE {t_users}; ANALYZE {t_sessions}")
        conn.commit()
    else:
        with db.atomic():
            conn.executemany(f"INSERT INTO {t_users} VALUES (?,?,?,?,?,?,?)", users)
            conn.executemany(f"INSERT INTO {t_sessions} VALUES (?,?,?,?,?,?,?,?,?,?)", sessions)
        conn.execute("ANALYZE")
    return [s[0] for s in sessions]


def explain(store: Any, sid: str) -> list[str]:
    sql = store.sessions._with_user_sql or store.sessions._build_with_user_sql()
    if is_pg(store):
        cur = store.database.execute_sql("EXPLAIN " + sql, (sid,))
        return [r[0] for r in cur.fetchall()]
    cur = store.database.execute_sql("EXPLAIN QUERY PLAN " + sql, (sid,))
    return [str(r[-1]) for r in cur.fetchall()]


def run_scale(sizes: list[int], rounds: int, tmp: Path, quick: bool) -> dict[str, Any]:
    from mindmesh_auth.adapters.peewee import PeeweeStore

    out: dict[str, Any] = {}
    targets = [("sqlite", None), ("postgres", POSTGRES_URL)]
    for name, url in targets:
        for size in sizes:
            prefix = f"mmbs{uuid.uuid4().hex[:6]}_"
            try:
                store = PeeweeStore.from_url(url or f"sqlite:///{tmp}/scale-{size}.db", table_prefix=prefix)
                store.create_schema()
            except Exception as exc:
                out.setdefault(name, {})[str(size)] = {"skipped": f"{type(exc).__name__}: {exc}"}
                continue
            auth = MindmeshAuth(store=store, mailer=Outbox(), config=config(rounds))
            k = auth._kernel
            t0 = time.perf_counter()
            sids = fill(store, size, int(k.now().timestamp() * 1000))
            fill_s = time.perf_counter() - t0
            picks = random.sample(sids, min(len(sids), 500))
            user_of = dict(
                store.database.execute_sql(
                    f"SELECT id, user_id FROM {store.table_names['sessions']} WHERE id IN "
                    f"({','.join(['%s' if is_pg(store) else '?'] * len(picks))})",
                    picks,
                ).fetchall()
            )
            tokens = [
                k.codec.encode(user_id=user_of[s], session_id=s, email="x@example.com", now=k.now(), rng=k.rng) for s in picks
            ]
            it = iter(tokens * (1 + (200 if quick else 3000) // len(tokens)))
            check = auth.auth.get_user_from_token
            times = sample(lambda check=check, it=it: check(next(it)), 200 if quick else 3000)
            out.setdefault(name, {})[str(size)] = {
                **summary(times),
                "fill_seconds": fill_s,
                "plan": explain(store, picks[0]),
            }
            store.drop_schema()
            auth.close()
    return out


# -- concurrency ----------------------------------------------------------------
def run_concurrency(rounds: int, quick: bool) -> dict[str, Any]:
    from mindmesh_auth.adapters.peewee import PeeweeStore

    prefix = f"mmbc{uuid.uuid4().hex[:6]}_"
    try:
        store = PeeweeStore.from_url(POSTGRES_URL, table_prefix=prefix)
        store.create_schema()
    except Exception as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    outbox = Outbox()
    auth = MindmeshAuth(store=store, mailer=outbox, config=config(rounds))
    emails = [f"conc{i}@example.com" for i in range(8)]
    tokens = []
    for e in emails:
        auth.auth.register(e, PASSWORD)
        auth.auth.login(e, PASSWORD)
        tokens.append(auth.auth.verify_otp(e, outbox.last_code(e), "login").access_token)
    out: dict[str, Any] = {"get_user_from_token": {}, "login": {}}
    duration = 1.0 if quick else 3.0
    for threads in (1, 2, 4, 8):
        for op in ("get_user_from_token", "login"):
            stop = time.perf_counter() + duration
            counts = [0] * threads

            def worker(i: int, op: str = op, stop: float = stop, counts: list[int] = counts) -> None:
                while time.perf_counter() < stop:
                    if op == "login":
                        auth.auth.login(emails[i], PASSWORD)
                    else:
                        auth.auth.get_user_from_token(tokens[i])
                    counts[i] += 1
                store.close()

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(worker, range(threads)))
            out[op][str(threads)] = sum(counts) / duration
            outbox.clear()
    store.drop_schema()
    auth.close()
    return out


# -- report ---------------------------------------------------------------------
OPS = [
    "register",
    "login",
    "verify_otp",
    "get_user_from_token",
    "refresh",
    "otp_send",
    "otp_verify",
    "rate_limit_check",
    "request_reset",
]


def print_report(report: dict[str, Any], stream: Any = sys.stdout) -> None:
    w = stream.write
    w(f"\nmindmesh-auth benchmark: bcrypt cost {report['bcrypt_rounds']}, Python {report['python']}, {report['machine']}\n")
    for name, data in report["operations"].items():
        w(f"\n## {name}\n")
        w(f"{'operation':<22}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'bcrypt ms':>11}{'other ms':>10}\n")
        for op in OPS:
            r = data[op]
            w(f"{op:<22}{r['ops_per_s']:>10.1f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['bcrypt_ms']:>11.2f}{r['overhead_ms']:>10.3f}\n")
        if "floor" in data:
            f = data["floor"]
            w(
                f"floor (pyjwt.decode + raw indexed join): p50 {f['p50_ms']:.3f} ms "
                f"(decode {f['jwt_decode_p50_ms']:.3f} + query {f['raw_query_p50_ms']:.3f}); "
                f"get_user_from_token / floor = {f['ratio_get_user_to_floor']:.2f}x\n"
            )
        if "token_check" in data:
            print_token_check(data["token_check"], w)
        t = data["failed_login_timing"]
        w(
            f"failed login median: unknown email {t['unknown_email_p50_ms']:.2f} ms, wrong password "
            f"{t['wrong_password_p50_ms']:.2f} ms, ratio {t['ratio']:.3f}\n"
        )
    if report.get("scale"):
        w("\n## scale: get_user_from_token with N users and N sessions\n")
        w(f"{'backend':<10}{'rows':>10}{'p50 ms':>10}{'p99 ms':>10}{'fill s':>9}  plan\n")
        for name, sizes in report["scale"].items():
            for size, r in sizes.items():
                if "skipped" in r:
                    w(f"{name:<10}{size:>10}  skipped: {r['skipped']}\n")
                    continue
                plan = " | ".join(r["plan"])
                w(f"{name:<10}{size:>10}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['fill_seconds']:>9.1f}  {plan}\n")
    if report.get("concurrency"):
        c = report["concurrency"]
        w("\n## concurrency on PostgreSQL (operations per second)\n")
        if "skipped" in c:
            w(f"skipped: {c['skipped']}\n")
        else:
            w(f"{'threads':<10}{'get_user_from_token':>22}{'login':>10}\n")
            for t in ("1", "2", "4", "8"):
                w(f"{t:<10}{c['get_user_from_token'][t]:>22.1f}{c['login'][t]:>10.1f}\n")
    if report.get("oracles"):
        print_oracles(report["oracles"], w)
    for s in report.get("skipped", []):
        w(f"skipped backend: {s}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="memory,sqlite,postgres,mysql,mongomock")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--skip-oracles", action="store_true")
    parser.add_argument("--only-oracles", action="store_true", help="run only the account-oracle ratios")
    parser.add_argument("--scale-sizes", default="1000,100000,1000000")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "latest.json"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    prefix = f"mmb{uuid.uuid4().hex[:6]}_"
    report: dict[str, Any] = {
        "bcrypt_rounds": args.bcrypt_rounds,
        "bcrypt_version": bcrypt.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "quick": args.quick,
        "operations": {},
    }
    with tempfile.TemporaryDirectory(prefix="mindmesh-bench-") as tmp:
        if args.only_oracles:
            args.backends, args.skip_scale, args.skip_concurrency = "", True, True
        backends, skipped = reachable_backends([b for b in args.backends.split(",") if b], prefix, Path(tmp))
        report["skipped"] = skipped
        for backend in backends:
            print(f"running {backend.name} ...", file=sys.stderr, flush=True)
            report["operations"][backend.name] = run_operations(backend, args.bcrypt_rounds, args.quick)
        if not args.skip_scale:
            print("running scale ...", file=sys.stderr, flush=True)
            report["scale"] = run_scale([int(s) for s in args.scale_sizes.split(",")], args.bcrypt_rounds, Path(tmp), args.quick)
        if not args.skip_concurrency:
            print("running concurrency ...", file=sys.stderr, flush=True)
            report["concurrency"] = run_concurrency(args.bcrypt_rounds, args.quick)
        if not args.skip_oracles:
            print("running oracles ...", file=sys.stderr, flush=True)
            report["oracles"] = run_oracles(args.bcrypt_rounds, args.quick)
    report["seconds"] = time.perf_counter() - started
    print_report(report)
    print(f"\ntotal {report['seconds']:.0f} s", flush=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"JSON written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
