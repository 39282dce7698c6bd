"""``purge_expired`` on big tables: PostgreSQL, MariaDB (and SQLite).

    ./scripts/bench --purge                                  # 1M rows, PostgreSQL and MariaDB
    ./scripts/bench --purge --rows 50000 --engines sqlite,postgres,mysql

Each run fills, through the plain driver (PostgreSQL ``COPY``, multi-row
``INSERT`` elsewhere), ``--rows`` expired sessions and ``--rows`` retired
refresh tokens, a tenth as many live ones of each (the purge must step over
them), and ``--side-rows`` codes, reset tokens and counters (half expired,
a quarter of the codes and tokens consumed). Expiry times are random, so the
expiry index is not in primary-key order.

Printed per engine: the fill time and table sizes (bytes per row, indexes
included), the plan of every purge statement (``EXPLAIN`` of the statements
``purge_expired`` runs, captured in a rolled-back transaction), the total purge
time and the per-batch p50/p99/max, and the latency (p50/p99) of a token check,
a refresh and a login (password + code, new session) measured by three threads
first on their own, then while the purge runs on the same database.

URLs: ``MINDMESH_TEST_POSTGRES_URL``, ``MINDMESH_TEST_MYSQL_URL`` (defaults: the
loopback test databases). Every run uses a table prefix of its own and drops its
tables at the end. Speed is reported here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.adapters.peewee import PeeweeStore
from mindmesh_auth.adapters.peewee.models import is_mysql, is_postgres
from mindmesh_auth.core.config import Limit
from mindmesh_auth.facade import PURGE_BATCH
from mindmesh_auth.testing import Outbox, test_config

POSTGRES_URL = os.environ.get("MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/mindmesh_test")
MYSQL_URL = os.environ.get("MINDMESH_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mindmesh_test")
UNLIMITED = Limit(10**9, timedelta(hours=1))
DAY_MS = 86_400_000
PASSWORD = "purge bench password 1"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def ms_summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 3),
        "p99_ms": round(pct(values, 99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3) if values else float("nan"),
    }


# -- filling -----------------------------------------------------------------
def bulk_insert(store: PeeweeStore, key: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]], chunk: int = 5000) -> None:
    """Insert ``rows`` into the store's ``key`` table: ``COPY`` on PostgreSQL, multi-row INSERT elsewhere."""
    table = store.table_names[key]
    db = store.database
    conn = db.connection()
    cols = ",".join(columns)
    if is_postgres(db):
        cur = conn.cursor()
        while True:
            buf = io.StringIO()
            n = 0
            for row in rows:
                buf.write("\t".join("\\N" if v is None else str(v) for v in row))
                buf.write("\n")
                n += 1
                if n == chunk * 20:
                    break
            if n == 0:
                break
            buf.seek(0)
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)
            conn.commit()
        cur.execute(f"ANALYZE {table}")
        conn.commit()
        return
    mark = "%s" if is_mysql(db) else "?"
    one = "(" + ",".join([mark] * len(columns)) + ")"
    while True:
        batch = [r for _, r in zip(range(chunk if is_mysql(db) else 200), rows, strict=False)]
        if not batch:
            break
        with db.atomic():
            db.execute_sql(f"INSERT INTO {table} ({cols}) VALUES " + ",".join([one] * len(batch)), [v for r in batch for v in r])
    db.execute_sql(f"ANALYZE TABLE {table}" if is_mysql(db) else f"ANALYZE {table}")


def fill(store: PeeweeStore, rows: int, side_rows: int, now_ms: int) -> float:
    rng = random.Random(7)
    live = rows // 10

    def expiry(i: int, total: int) -> int:
        # Expired rows: up to 30 days ago; the last tenth of each table: 1..30 days ahead.
        if i < total - live:
            return now_ms - rng.randrange(1_000, 30 * DAY_MS)
        return now_ms + rng.randrange(DAY_MS, 30 * DAY_MS)

    total = rows + live
    t0 = time.perf_counter()
    bulk_insert(
        store,
        "sessions",
        ("id", "user_id", "refresh_hash", "created_at", "expires_at", "last_active_at", "ip_address", "user_agent"),
        (
            (f"s{i:035x}", f"u{i % 50_000:035x}", f"{i:064x}", now_ms - 40 * DAY_MS, expiry(i, total), now_ms, "203.0.113.7", UA)
            for i in range(total)
        ),
    )
    bulk_insert(
        store,
        "retired_refresh_tokens",
        ("token_hash", "session_id", "rotated_at", "expires_at"),
        ((f"r{i:063x}", f"s{i:035x}", now_ms - 35 * DAY_MS, expiry(i, total)) for i in range(total)),
    )
    half = side_rows // 2

    def side_expiry(i: int) -> int:
        return now_ms - rng.randrange(1_000, DAY_MS) if i < half else now_ms + rng.randrange(60_000, 3_600_000)

    bulk_insert(
        store,
        "otp_challenges",
        ("id", "email", "purpose", "code_hash", "created_at", "expires_at", "user_id", "attempts", "status", "consumed_at"),
        (
            (
                f"o{i:035x}",
                f"side{i}@example.com",
                "login",
                f"{i:064x}",
                now_ms,
                side_expiry(i),
                f"u{i:035x}",
                0,
                "sent",
                now_ms if i % 4 == 3 else None,
            )
            for i in range(side_rows)
        ),
    )
    bulk_insert(
        store,
        "reset_tokens",
        ("id", "user_id", "token_hash", "created_at", "expires_at", "consumed_at"),
        (
            (f"t{i:035x}", f"u{i:035x}", f"{i:064x}", now_ms, side_expiry(i), now_ms if i % 4 == 3 else None)
            for i in range(side_rows)
        ),
    )
    bulk_insert(
        store,
        "rate_limits",
        ("`key`" if is_mysql(store.database) else '"key"', "count", "expires_at"),
        ((f"login-ip:{i}", 1, side_expiry(i)) for i in range(side_rows)),
    )
    return time.perf_counter() - t0


def table_bytes(store: PeeweeStore) -> dict[str, dict[str, float]]:
    """Bytes on disk per row (data and indexes) of each filled table, where the engine says."""
    db = store.database
    out: dict[str, dict[str, float]] = {}
    for key in ("sessions", "retired_refresh_tokens", "otp_challenges", "reset_tokens", "rate_limits"):
        table = store.table_names[key]
        count = db.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if is_postgres(db):
            data, total = db.execute_sql(
                "SELECT pg_table_size(%s::regclass), pg_total_relation_size(%s::regclass)", (table, table)
            ).fetchone()
        elif is_mysql(db):
            data, index = db.execute_sql(
                "SELECT data_length, index_length FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_name = %s",
                (table,),
            ).fetchone()
            total = data + index
        else:
            continue
        if count:
            out[key] = {
                "rows": count,
                "data_bytes_per_row": round(data / count, 1),
                "total_bytes_per_row": round(total / count, 1),
            }
    return out


# -- plans -------------------------------------------------------------------
def purge_plans(store: PeeweeStore, auth: MindmeshAuth, batch: int) -> dict[str, list[str]]:
    """EXPLAIN of each statement one purge batch runs (captured, then rolled back)."""
    db = store.database
    captured: list[tuple[str, Any]] = []
    original = db.execute_sql

    def capture(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql.lstrip().upper().startswith("DELETE"):
            captured.append((sql, params))
        return original(sql, params, *args, **kwargs)

    now = auth._kernel.now()
    db.execute_sql = capture  # type: ignore[method-assign]
    try:
        with db.atomic() as tx:
            store.sessions.purge_expired(now, limit=batch)
            store.otps.purge_expired(now, limit=batch)
            store.reset_tokens.purge_expired(now, limit=batch)
            # Nothing expired a year ago: the statement for consumed rows runs.
            store.otps.purge_expired(now - timedelta(days=365), limit=batch)
            store.reset_tokens.purge_expired(now - timedelta(days=365), limit=batch)
            store.rate_limits.purge_expired(now, limit=batch)
            tx.rollback()
    finally:
        del db.execute_sql
    plans: dict[str, list[str]] = {}
    for sql, params in captured:
        if sql in plans:
            continue
        if is_postgres(db):
            lines = [r[0] for r in db.execute_sql("EXPLAIN " + sql, params).fetchall()]
        elif is_mysql(db):
            cur = db.execute_sql("EXPLAIN " + sql, params)
            names = [d[0] for d in cur.description]
            lines = [
                " ".join(f"{k}={v}" for k, v in zip(names, r, strict=True) if k in ("table", "type", "key", "rows", "Extra"))
                for r in cur.fetchall()
            ]
        else:
            lines = [str(r[-1]) for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
        plans[sql] = lines
    return plans


# -- probes ------------------------------------------------------------------
class Probes:
    """Three threads: token checks, refreshes, logins (password + code); latencies per phase."""

    def __init__(self, auth: MindmeshAuth, outbox: Outbox, accounts: int = 20) -> None:
        self.auth, self.outbox = auth, outbox
        auth.set_context(ip_address="203.0.113.9")
        self.emails = [f"probe{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(accounts)]
        for email in self.emails:
            auth.auth.register(email, PASSWORD)
        self.logins = [self._login(e) for e in self.emails]
        self.refresh_tokens = [r.refresh_token for r in self.logins]
        self.stop = threading.Event()
        self.times: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}

    def _login(self, email: str) -> Any:
        self.auth.auth.login(email, PASSWORD)
        return self.auth.auth.verify_otp(email, self.outbox.last_code(email), "login")

    def _loop(self, name: str, op: Callable[[int], None]) -> None:
        self.auth.set_context(ip_address="203.0.113.9")  # per thread
        times = self.times.setdefault(name, [])
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                op(i)
            except Exception:
                self.errors[name] = self.errors.get(name, 0) + 1
            times.append(time.perf_counter() - t0)
            i += 1
            time.sleep(0.002)  # leave the purge its share of 2 cores

    def _check(self, i: int) -> None:
        self.auth.auth.get_user_from_token(self.logins[i % len(self.logins)].access_token)

    def _refresh(self, i: int) -> None:
        k = i % len(self.refresh_tokens)
        self.refresh_tokens[k] = self.auth.auth.refresh(self.refresh_tokens[k]).refresh_token

    def _new_login(self, i: int) -> None:
        self._login(self.emails[i % len(self.emails)])

    def run(self, during: Callable[[], Any]) -> tuple[Any, dict[str, dict[str, float]]]:
        self.stop.clear()
        self.times, self.errors = {}, {}
        threads = [
            threading.Thread(target=self._loop, args=(name, op), daemon=True)
            for name, op in (("token_check", self._check), ("refresh", self._refresh), ("login", self._new_login))
        ]
        for t in threads:
            t.start()
        try:
            result = during()
        finally:
            self.stop.set()
            for t in threads:
                t.join()
        stats = {name: {**ms_summary(v), "errors": self.errors.get(name, 0)} for name, v in self.times.items()}
        return result, stats


# -- one engine --------------------------------------------------------------
def run_engine(name: str, url: str, rows: int, side_rows: int, batch: int, baseline_s: float) -> dict[str, Any]:
    store = PeeweeStore.from_url(url, table_prefix=f"mmpg{uuid.uuid4().hex[:8]}_")
    store.create_schema()
    outbox = Outbox()
    config = test_config(
        login_ip_limit=UNLIMITED,
        login_email_limit=UNLIMITED,
        otp_send_limit=UNLIMITED,
        otp_account_failure_limit=UNLIMITED,
        register_ip_limit=UNLIMITED,
        password_pepper=secrets.token_urlsafe(48),
    )
    auth = MindmeshAuth(store=store, mailer=outbox, config=config)
    out: dict[str, Any] = {"rows": rows, "side_rows": side_rows, "batch_size": batch}
    try:
        now_ms = int(auth._kernel.now().timestamp() * 1000)
        out["fill_seconds"] = round(fill(store, rows, side_rows, now_ms), 1)
        out["bytes"] = table_bytes(store)
        out["plans"] = purge_plans(store, auth, batch)
        probes = Probes(auth, outbox)
        _, out["baseline"] = probes.run(lambda: time.sleep(baseline_s))

        ends: list[float] = []
        sessions = store.sessions
        inner = sessions.purge_expired

        def timed(*args: Any, **kwargs: Any) -> int:
            try:
                return inner(*args, **kwargs)
            finally:
                ends.append(time.perf_counter())

        sessions.purge_expired = timed  # type: ignore[method-assign]

        def purge() -> tuple[dict[str, int], float, float]:
            t0 = time.perf_counter()
            counts = auth.purge_expired(batch_size=batch)
            return counts, t0, time.perf_counter()

        (counts, start, end), out["during_purge"] = probes.run(purge)
        del sessions.purge_expired
        batches = [b - a for a, b in zip([start, *ends], ends, strict=False)]
        tenth = max(1, len(batches) // 10)
        out["purge"] = {
            "counts": counts,
            "seconds": round(end - start, 2),
            "session_batches": ms_summary(batches),
            # Whether a batch gets slower as the purge goes on (dead index entries left by earlier batches).
            "first_tenth_p50_ms": ms_summary(batches[:tenth])["p50_ms"],
            "last_tenth_p50_ms": ms_summary(batches[-tenth:])["p50_ms"],
        }
    finally:
        store.drop_schema()
        auth.close()
    return out


def print_report(report: dict[str, Any], stream: Any = sys.stdout) -> None:
    for engine, r in report.items():
        print(f"\n== {engine}", file=stream)
        if "skipped" in r:
            print(f"  skipped: {r['skipped']}", file=stream)
            continue
        print(
            f"  rows {r['rows']} expired sessions + {r['rows']} retired tokens, batch {r['batch_size']}, "
            f"fill {r['fill_seconds']} s",
            file=stream,
        )
        for table, b in r["bytes"].items():
            print(
                f"  {table:<24} {b['rows']:>9} rows  {b['data_bytes_per_row']:>7} B/row data  "
                f"{b['total_bytes_per_row']:>7} B/row with indexes",
                file=stream,
            )
        for sql, plan in r["plans"].items():
            print(f"  plan: {sql[:110]}", file=stream)
            for line in plan:
                print(f"      {line}", file=stream)
        p = r["purge"]
        print(f"  purge: {p['seconds']} s total, counts {p['counts']}", file=stream)
        sb = p["session_batches"]
        print(
            f"  session+retired batches: {sb['n']}  p50 {sb['p50_ms']} ms  p99 {sb['p99_ms']} ms  max {sb['max_ms']} ms",
            file=stream,
        )
        print(f"  batch p50, first tenth {p['first_tenth_p50_ms']} ms, last tenth {p['last_tenth_p50_ms']} ms", file=stream)
        for op in ("token_check", "refresh", "login"):
            b, d = r["baseline"].get(op, {}), r["during_purge"].get(op, {})
            print(
                f"  {op:<12} alone p50 {b.get('p50_ms')} p99 {b.get('p99_ms')} ms (n={b.get('n')})  |  during purge "
                f"p50 {d.get('p50_ms')} p99 {d.get('p99_ms')} max {d.get('max_ms')} ms (n={d.get('n')}, "
                f"errors {d.get('errors')})",
                file=stream,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired sessions (and as many retired tokens)")
    parser.add_argument("--side-rows", type=int, default=100_000, help="codes, reset tokens and counters each")
    parser.add_argument("--batch", type=int, default=PURGE_BATCH, help="purge_expired batch_size")
    parser.add_argument("--engines", default="postgres,mysql", help="comma list of sqlite, postgres, mysql")
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mindmesh-purge-") as tmp:
        urls = {"postgres": POSTGRES_URL, "mysql": MYSQL_URL, "sqlite": f"sqlite:///{tmp}/purge.db"}
        for engine in args.engines.split(","):
            try:
                report[engine] = run_engine(engine, urls[engine], args.rows, args.side_rows, args.batch, args.baseline_seconds)
            except Exception as exc:  # an engine that does not answer is reported, the others still run
                report[engine] = {"skipped": f"{type(exc).__name__}: {exc}"}
            print_report({engine: report[engine]})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
