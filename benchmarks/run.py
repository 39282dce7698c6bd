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
        otp_send_limit=UNLIMITED,
        otp_account_failure_limit=UNLIMITED,
        login_ip_limit=UNLIMITED,
        register_ip_limit=UNLIMITED,
        login_email_limit=UNLIMITED,
        reset_email_limit=UNLIMITED,
        reset_ip_limit=UNLIMITED,
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

    def login_and_code() -> str:
        auth.auth.login(main, PASSWORD)
        return outbox.last_code(main)

    results["verify_otp"] = sample(lambda code: auth.auth.verify_otp(main, code, "login"), slow_n, setup=login_and_code)
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
    for s in report.get("skipped", []):
        w(f"skipped backend: {s}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="memory,sqlite,postgres,mysql,mongomock")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
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
        backends, skipped = reachable_backends(args.backends.split(","), prefix, Path(tmp))
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
