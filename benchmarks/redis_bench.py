"""Rate-limit counters at login volume: PostgreSQL vs Redis.

    ./scripts/bench --redis                         # 3 s per backend and thread count
    ./scripts/bench --redis --seconds 1 --threads 1,4

Each "login" does the rate-limit work a password login does before bcrypt
(``auth.login``): one hit on the client's IP bucket (``login-ip``: a few hot
keys, many logins share an address), one hit on the address's failure counter
(``login-fail``: one key per address, from a pool of ``--accounts``), and, as
after a right password, the reset of that counter. The counters are the store's
own repository calls (``store.rate_limits``), on PostgreSQL (``PeeweeStore``,
one connection per thread) and on Redis (``RedisRateLimits``, one Lua script
per hit). Printed: logins per second and per-login p50/p99 latency, for each
thread count, and the SQL statements the Redis counters keep off the database.

PostgreSQL: ``MINDMESH_TEST_POSTGRES_URL`` (default the loopback test database);
Redis: ``MINDMESH_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). A
server that does not answer is reported as skipped. Each run uses a table prefix
and a key prefix of its own and deletes them at the end. Speed is reported
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mindmesh_auth.core.ports import RateLimitRepository

POSTGRES_URL = os.environ.get("MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/mindmesh_test")
REDIS_URL = os.environ.get("MINDMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WINDOW = timedelta(minutes=15)
STATEMENTS_PER_LOGIN = 3  # two hits and one reset: each a statement (and a commit) on SQL


@contextmanager
def postgres_counters() -> Iterator[RateLimitRepository]:
    from mindmesh_auth.adapters.peewee import PeeweeStore

    store = PeeweeStore.from_url(POSTGRES_URL, table_prefix=f"mmb_{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    try:
        yield store.rate_limits
    finally:
        store.drop_schema()
        store.close()


@contextmanager
def redis_counters() -> Iterator[RateLimitRepository]:
    from mindmesh_auth.adapters.redis import RedisRateLimits

    counters = RedisRateLimits.from_url(REDIS_URL, prefix=f"mmb:{uuid.uuid4().hex}:")
    counters.ping()
    try:
        yield counters
    finally:
        keys = list(counters.client.scan_iter(match=counters.prefix + "*", count=1000))
        if keys:
            counters.client.unlink(*keys)
        counters.close()


BACKENDS: dict[str, Callable[[], Any]] = {"postgres": postgres_counters, "redis": redis_counters}


def one_login(counters: RateLimitRepository, rng: random.Random, accounts: int, ips: int) -> None:
    now = datetime.now(timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    ip_key = f"login-ip:{rng.randrange(ips):064x}"
    fail_key = f"login-fail:{rng.randrange(accounts):064x}"
    counters.hit(ip_key, now, now + WINDOW)
    counters.hit(fail_key, now, now + WINDOW)
    counters.reset(fail_key)


def measure(counters: RateLimitRepository, threads: int, seconds: float, accounts: int, ips: int) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        rng = random.Random(i)
        mine = latencies[i]
        start.wait()
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                one_login(counters, rng, accounts, ips)
                mine.append(time.perf_counter() - t0)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = sorted(x for xs in latencies for x in xs)
    return {
        "threads": threads,
        "logins": len(flat),
        "logins_per_s": len(flat) / elapsed,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": flat[min(len(flat) - 1, round(0.99 * (len(flat) - 1)))] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per backend and thread count")
    parser.add_argument("--threads", default="1,4,8", help="comma-separated thread counts")
    parser.add_argument("--accounts", type=int, default=100_000, help="distinct addresses (failure counters)")
    parser.add_argument("--ips", type=int, default=50, help="distinct IP buckets (hot counters)")
    parser.add_argument("--backends", default="postgres,redis")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "redis.json"))
    args = parser.parse_args(argv)
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    results: dict[str, Any] = {}
    print(f"rate-limit work of one login (2 hits + 1 reset), {args.seconds:g} s per row")
    print(f"{'backend':10} {'threads':>7} {'logins/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        try:
            with BACKENDS[name]() as counters:
                rows = [measure(counters, n, args.seconds, args.accounts, args.ips) for n in threads]
        except Exception as exc:  # a server that does not answer: reported, the others still run
            print(f"{name:10} skipped ({type(exc).__name__})")
            results[name] = {"skipped": type(exc).__name__}
            continue
        results[name] = rows
        for row in rows:
            print(f"{name:10} {row['threads']:>7} {row['logins_per_s']:>10.0f} {row['p50_ms']:>9.3f} {row['p99_ms']:>9.3f}")
    pg, rd = results.get("postgres"), results.get("redis")
    if isinstance(pg, list) and isinstance(rd, list):
        for a, b in zip(pg, rd, strict=True):
            print(
                f"{a['threads']} thread(s): Redis {b['logins_per_s'] / a['logins_per_s']:.1f}x the logins/s; "
                f"{STATEMENTS_PER_LOGIN} SQL statements per login kept off PostgreSQL "
                f"({STATEMENTS_PER_LOGIN * a['logins_per_s']:.0f}/s at PostgreSQL's own rate)"
            )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"when": datetime.now(timezone.utc).isoformat(), "args": vars(args), "results": results}
    path.write_text(json.dumps(report, indent=2))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
