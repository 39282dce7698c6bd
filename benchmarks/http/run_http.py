"""HTTP end to end: mindmesh-auth's FastAPI router against fastapi-users, same server, workers and database.

    ./scripts/bench --http                              # sqlite and postgres, 1 and 2 workers, 10 s per route
    ./scripts/bench --http --backends sqlite --workers 2 --duration 5
    ./scripts/bench --http --stock-uvicorn              # uvicorn's own binding (the ~44 ms Nagle delay)

For each backend and worker count both apps run under uvicorn (``serve.py``),
each with a token for its own user: ours is minted through the library on the
same database with the server's secrets (login, then the code from an outbox),
fastapi-users' through its ``/auth/register`` and ``/auth/jwt/login``. Each
route is checked once (200, the right user), then driven by ``load.py`` in turn
(ours and theirs interleaved, in ``--rounds`` rounds whose figures are
merged) and one table is printed; JSON goes to
``benchmarks/results/http-latest.json``. Needs the ``bench`` extra
(``pip install -e ".[bench]"``: fastapi-users, SQLAlchemy, aiosqlite, asyncpg, uvicorn).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
POSTGRES_URL = os.environ.get("MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/mindmesh_test")
PASSWORD = "correct horse battery staple"

# (app, route) in the order they are driven within a cell: ours and theirs alternate.
ROUTES = [("mindmesh", "/auth/me"), ("fastapi-users", "/users/me"), ("mindmesh", "/app/me"), ("fastapi-users", "/app/me")]


def drop_postgres_tables() -> None:
    """Remove the benchmark's tables (ours: prefix ``mmhttp_``; fastapi-users': ``fub_user``) from the test database."""
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND (tablename LIKE 'mmhttp\\_%' OR tablename = 'fub_user')"
            )
            names = [row[0] for row in cur.fetchall()]
            if names:
                cur.execute("DROP TABLE IF EXISTS " + ", ".join(f'"{n}"' for n in names) + " CASCADE")
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def urls(backend: str, tmp: Path) -> tuple[str, str]:
    """(ours, fastapi-users') URLs of the same database."""
    if backend == "sqlite":
        path = tmp / "http-bench.db"
        return f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}"
    if backend == "postgres":
        rest = POSTGRES_URL.split("://", 1)[1]
        return POSTGRES_URL, f"postgresql+asyncpg://{rest}"
    raise SystemExit(f"unknown backend {backend!r} (sqlite, postgres)")


class Server:
    def __init__(self, app: str, workers: int, env: dict[str, str], stock: bool) -> None:
        self.port = free_port()
        cmd = [sys.executable, str(HERE / "serve.py"), app, "--port", str(self.port), "--workers", str(workers)]
        if stock:
            cmd.append("--stock")
        full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=HERE)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                httpx.get(self.base + "/openapi.json", timeout=2.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not answer within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mint_ours(url: str, env: dict[str, str]) -> tuple[str, str]:
    from mm_app import make_auth

    from mindmesh_auth import RequestContext

    auth, outbox = make_auth(url, env["MMB_JWT_SECRET"], env["MMB_REFRESH_SECRET"], env["MMB_PEPPER"])
    context = RequestContext(ip_address="127.0.0.1", user_agent="mindmesh-http-bench")
    try:
        auth.create_schema()
        email = f"http-{uuid.uuid4().hex[:10]}@example.com"
        auth.auth.register(email, PASSWORD, context=context)
        auth.auth.login(email, PASSWORD, context=context)
        token = auth.auth.verify_otp(email, outbox.last_code(email), "login", context=context).access_token
        return email, token
    finally:
        auth.close()


def mint_theirs(base: str) -> tuple[str, str]:
    email = f"http-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base, timeout=30.0) as client:
        client.post("/auth/register", json={"email": email, "password": PASSWORD}).raise_for_status()
        reply = client.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
        reply.raise_for_status()
        return email, reply.json()["access_token"]


def check(base: str, route: str, token: str, email: str) -> None:
    reply = httpx.get(base + route, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    body = reply.json()
    got = body.get("email") or body.get("user", {}).get("email")
    if reply.status_code != 200 or got != email:
        raise RuntimeError(f"{base}{route}: status {reply.status_code}, expected the benchmark user")


def run_cell(backend: str, workers: int, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from load import LoadResult, merge, run_load

    ours_url, theirs_url = urls(backend, tmp)
    env = {
        "MMB_DATABASE_URL": ours_url,
        "MMB_JWT_SECRET": secrets.token_urlsafe(32),
        "MMB_REFRESH_SECRET": secrets.token_urlsafe(32),
        "MMB_PEPPER": secrets.token_urlsafe(32),
        "FUB_DATABASE_URL": theirs_url,
        "FUB_JWT_SECRET": secrets.token_urlsafe(32),
    }
    email, token = mint_ours(ours_url, env)  # also creates our tables before the workers start
    subprocess.run([sys.executable, str(HERE / "fu_app.py"), "init"], env={**os.environ, **env}, check=True, cwd=HERE)
    servers = {
        "mindmesh": Server("mm_app:create_app", workers, env, args.stock_uvicorn),
        "fastapi-users": Server("fu_app:create_app", workers, env, args.stock_uvicorn),
    }
    rows: list[dict[str, Any]] = []
    try:
        for server in servers.values():
            server.wait_ready()
        their_email, their_token = mint_theirs(servers["fastapi-users"].base)
        creds = {"mindmesh": (email, token), "fastapi-users": (their_email, their_token)}
        for app, route in ROUTES:
            check(servers[app].base, route, creds[app][1], creds[app][0])
        runs: dict[tuple[str, str], list[LoadResult]] = {key: [] for key in ROUTES}
        for _round in range(args.rounds):  # ours and theirs alternate, round after round
            for app, route in ROUTES:
                load = run_load(
                    servers[app].base + route,
                    headers={"Authorization": f"Bearer {creds[app][1]}"},
                    connections=args.connections,
                    duration=args.duration / args.rounds,
                    warmup=args.warmup,
                )
                runs[(app, route)].append(asyncio.run(load))
        for app, route in ROUTES:
            result = merge(runs[(app, route)])
            row = {"backend": backend, "workers": workers, "app": app, "route": route, **result.as_dict()}
            rows.append(row)
            print(
                f"  {backend:8} {workers}w {app:14} {route:10} {result.rps:8.0f}/s "
                f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms errors {result.errors}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()
    return rows


def print_table(rows: list[dict[str, Any]], stream: Any = sys.stdout) -> None:
    print("\n## HTTP end to end: GET with a bearer token (requests/s, latency in ms)\n", file=stream)
    print("| backend | workers | app | route | req/s | p50 | p99 | errors |", file=stream)
    print("|---|---|---|---|---|---|---|---|", file=stream)
    for r in rows:
        print(
            f"| {r['backend']} | {r['workers']} | {r['app']} | `{r['route']}` | {r['rps']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |",
            file=stream,
        )
    print("\n| backend | workers | ours / fastapi-users (req/s) |", file=stream)
    print("|---|---|---|", file=stream)
    cells = sorted({(r["backend"], r["workers"]) for r in rows}, key=lambda c: (c[0], c[1]))
    for backend, workers in cells:
        cell = [r for r in rows if (r["backend"], r["workers"]) == (backend, workers)]
        parts = []
        for ours_route, their_route in (("/auth/me", "/users/me"), ("/app/me", "/app/me")):
            ours = next(r for r in cell if r["app"] == "mindmesh" and r["route"] == ours_route)
            theirs = next(r for r in cell if r["app"] == "fastapi-users" and r["route"] == their_route)
            ratio = ours["rps"] / theirs["rps"] if theirs["rps"] else float("inf")
            parts.append(f"`{ours_route}` vs `{their_route}` {ratio:.2f}x")
        print(f"| {backend} | {workers} | {'; '.join(parts)} |", file=stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma-separated")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per route (all rounds)")
    parser.add_argument("--rounds", type=int, default=2, help="the duration is split over this many interleaved rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds driven before each measured round")
    parser.add_argument("--stock-uvicorn", action="store_true", help="let uvicorn bind (shows the ~44 ms delay with 2 workers)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "http-latest.json"))
    args = parser.parse_args(argv)
    try:
        import fastapi_users  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        print('The HTTP comparison needs the bench extra: .venv/bin/pip install -e ".[bench]"', file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mm-http-bench-") as tmp:
        for backend in backends:
            if backend == "postgres":
                try:
                    drop_postgres_tables()  # each run starts from empty tables
                except Exception as exc:
                    print(f"note: postgres skipped ({type(exc).__name__})", file=sys.stderr)
                    continue
            try:
                for workers in worker_counts:
                    rows.extend(run_cell(backend, workers, args, Path(tmp)))
            finally:
                if backend == "postgres":
                    drop_postgres_tables()
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nrun {report['date']}, {os.cpu_count()} CPUs, {args.connections} connections,", end=" ")
    print(f"{args.duration:g} s per route in {args.rounds} rounds")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
