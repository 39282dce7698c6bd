"""/auth/me latency while a flood of logins hashes passwords (one uvicorn worker, SQLite).

    ./scripts/bench --flood                          # 200 logins from 20 addresses, bcrypt cost 12
    ./scripts/bench --flood --logins 60 --addresses 20 --probes 100

Starts a FastAPI app (the package's router over ``AsyncMindmeshAuth``) in a
child process on one uvicorn worker with a SQLite store, then measures
``GET /auth/me`` for an already logged-in user: first idle, then while
``--logins`` concurrent ``POST /auth/login`` requests (from ``--addresses``
client addresses, sent as ``X-Forwarded-For`` from a trusted proxy) run.
Prints p50/p99 of both phases, their ratio (the target is at most 2x), and
how the logins were answered (200, 503 ``overloaded`` with ``Retry-After``, ...).
Rate limits are lifted in this app, so every login spends a bcrypt verification.
Speed is reported here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, where benchmarks/http
# would shadow the standard library's ``http`` (used by httpx and starlette).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

PASSWORD = "correct horse battery staple"
READER = "reader@example.test"


def _flood_email(n: int) -> str:
    return f"flood{n}@example.test"


# -- the server (child process) -------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    import uvicorn
    from fastapi import FastAPI

    from mindmesh_auth import AuthConfig, Limit, MindmeshAuth
    from mindmesh_auth.adapters.mail import Outbox
    from mindmesh_auth.aio import AsyncMindmeshAuth
    from mindmesh_auth.integrations.fastapi import create_auth_router

    unlimited = Limit(10**9, timedelta(hours=1))
    overrides: dict[str, Any] = {}
    if args.hash_workers:
        overrides["hash_workers"] = args.hash_workers
    if args.hash_queue_limit is not None:
        overrides["hash_queue_limit"] = args.hash_queue_limit
    config = AuthConfig(
        jwt_secret=secrets.token_urlsafe(32),
        refresh_secret=secrets.token_urlsafe(32),
        password_pepper=secrets.token_urlsafe(48),
        bcrypt_rounds=args.rounds,
        allow_test_email_domains=True,
        login_ip_limit=unlimited,
        login_email_limit=unlimited,
        register_ip_limit=unlimited,
        otp_send_limit=unlimited,
        **overrides,
    )
    outbox = Outbox()
    sync = MindmeshAuth(store=f"sqlite:///{args.db}", mailer=outbox, config=config)
    sync.create_schema()
    sync.set_context(ip_address="127.0.0.1")
    # The users (cost ``rounds`` hashes), and the reader's access token, before the server answers.
    for n in range(args.addresses):
        sync.auth.register(_flood_email(n), PASSWORD)
    sync.auth.register(READER, PASSWORD)
    sync.auth.login(READER, PASSWORD)
    token = sync.auth.verify_otp(READER, outbox.last_code(READER)).access_token
    Path(args.token_file).write_text(token)
    app = FastAPI()
    app.include_router(create_auth_router(AsyncMindmeshAuth(sync), trusted_proxies=["127.0.0.1"]))
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning", access_log=False)


# -- the client ----------------------------------------------------------------
def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def _probe(client: Any, token: str, stop: asyncio.Event, count: int | None, interval: float) -> list[float]:
    """Open loop: one ``/auth/me`` request every ``interval`` seconds, whether or not the last one was answered."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one() -> float:
        started = time.perf_counter()
        response = await client.get("/auth/me", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"/auth/me answered {response.status_code}")
        return (time.perf_counter() - started) * 1000

    tasks: list[asyncio.Task[float]] = []
    while not stop.is_set() and (count is None or len(tasks) < count):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(interval)
    return list(await asyncio.gather(*tasks))


async def _login(client: Any, n: int, addresses: int) -> tuple[str, float]:
    started = time.perf_counter()
    response = await client.post(
        "/auth/login",
        json={"email": _flood_email(n % addresses), "password": PASSWORD},
        headers={"X-Forwarded-For": f"203.0.113.{n % addresses + 1}"},
    )
    status = str(response.status_code)
    if response.status_code in (429, 503):
        code = response.json().get("error", {}).get("code", "?")
        status += f" {code} (Retry-After {response.headers.get('retry-after', '-')})"
    return status, (time.perf_counter() - started) * 1000


def _flood(base_url: str, logins: int, addresses: int, conn: Any) -> None:
    """The flood, in a process of its own: its client work (200 connections at once)
    must not delay the probes' event loop, or the probes measure the load generator."""
    import httpx

    async def run() -> tuple[list[tuple[str, float]], float]:
        limits = httpx.Limits(max_connections=logins + 10, max_keepalive_connections=logins + 10)
        async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as flood:
            conn.send("ready")
            started = time.perf_counter()
            answers = await asyncio.gather(*(_login(flood, n, addresses) for n in range(logins)))
            return answers, time.perf_counter() - started

    conn.send(asyncio.run(run()))
    conn.close()


async def measure(base_url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing

    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=300) as prober:
        idle = await _probe(prober, token, asyncio.Event(), args.probes, args.interval)
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        flooder = context.Process(target=_flood, args=(base_url, args.logins, args.addresses, sender))
        flooder.start()
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, receiver.recv) == "ready"
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(prober, token, stop, None, args.interval))
        logins, flood_seconds = await loop.run_in_executor(None, receiver.recv)
        await loop.run_in_executor(None, flooder.join)
        stop.set()
        during = await probe
    return {
        "idle": idle,
        "during": during,
        "logins": logins,
        "flood_seconds": flood_seconds,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, token_file: Path, child: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the server exited with {child.returncode}")
        if token_file.exists() and token_file.stat().st_size:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logins", type=int, default=200, help="concurrent logins in the flood (default 200)")
    parser.add_argument("--addresses", type=int, default=20, help="client addresses and users of the flood (default 20)")
    parser.add_argument("--rounds", type=int, default=12, help="bcrypt cost (default 12)")
    parser.add_argument("--probes", type=int, default=100, help="idle /auth/me requests (default 100)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between two /auth/me requests (default 0.02)")
    parser.add_argument("--hash-workers", type=int, default=0, help="AuthConfig.hash_workers (default: the config's)")
    parser.add_argument("--hash-queue-limit", type=int, default=None, help="AuthConfig.hash_queue_limit")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    if args.logins < 1 or args.addresses < 1 or args.probes < 2:
        parser.error("--logins and --addresses must be at least 1, --probes at least 2")

    with tempfile.TemporaryDirectory(prefix="mindmesh-flood-") as tmp:
        port = _free_port()
        token_file = Path(tmp) / "token"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            f"--port={port}",
            f"--db={Path(tmp) / 'auth.db'}",
            f"--token-file={token_file}",
            f"--rounds={args.rounds}",
            f"--addresses={args.addresses}",
            f"--hash-workers={args.hash_workers}",
        ]
        if args.hash_queue_limit is not None:
            command.append(f"--hash-queue-limit={args.hash_queue_limit}")
        child = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        try:
            _wait_ready(port, token_file, child, time.monotonic() + 60 + args.addresses * 2)
            result = asyncio.run(measure(f"http://127.0.0.1:{port}", token_file.read_text(), args))
        finally:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    idle, during = result["idle"], result["during"]
    statuses = Counter(status for status, _ in result["logins"])
    ok = [ms for status, ms in result["logins"] if status == "200"]
    figures = {
        "logins": args.logins,
        "addresses": args.addresses,
        "bcrypt_rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "idle_p50_ms": _percentile(idle, 50),
        "idle_p99_ms": _percentile(idle, 99),
        "flood_p50_ms": _percentile(during, 50),
        "flood_p99_ms": _percentile(during, 99),
        "flood_probes": len(during),
        "flood_seconds": result["flood_seconds"],
        "login_statuses": dict(statuses),
        "login_ok_p50_ms": _percentile(ok, 50) if ok else None,
    }
    figures["p50_ratio"] = figures["flood_p50_ms"] / figures["idle_p50_ms"]
    figures["p99_ratio"] = figures["flood_p99_ms"] / figures["idle_p99_ms"]
    print(f"{args.logins} concurrent logins from {args.addresses} addresses, bcrypt cost {args.rounds}, "
          f"{os.cpu_count()} CPUs, one uvicorn worker, SQLite")
    print(f"{'/auth/me':<22}{'p50 ms':>12}{'p99 ms':>12}{'requests':>10}")
    print(f"{'idle':<22}{figures['idle_p50_ms']:>12.2f}{figures['idle_p99_ms']:>12.2f}{len(idle):>10}")
    print(f"{'during the flood':<22}{figures['flood_p50_ms']:>12.2f}{figures['flood_p99_ms']:>12.2f}{len(during):>10}")
    print(f"{'ratio (target <= 2x)':<22}{figures['p50_ratio']:>11.1f}x{figures['p99_ratio']:>11.1f}x")
    print(f"flood lasted {result['flood_seconds']:.1f} s; logins answered: "
          + ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items())))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
