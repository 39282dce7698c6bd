"""A small HTTP/1.1 keep-alive load generator on asyncio streams.

    python load.py http://127.0.0.1:8001/auth/me --header "Authorization: Bearer ..." -c 16 -d 10

``connections`` clients each send one request at a time on their own keep-alive
connection (``TCP_NODELAY`` on, as every HTTP client library sets it) for
``warmup + duration`` seconds; only the responses that arrive after the warm-up
count. Reports requests per second, p50 and p99 latency and errors (a status
other than 2xx, or a connection that failed: it is reopened).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, of the counted responses

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        del values["latencies"]
        return {**values, "rps": round(self.rps, 1)}


def merge(results: list[LoadResult]) -> LoadResult:
    """One result for several runs of the same route: counts and time added, percentiles over all responses."""
    latencies = [v for r in results for v in r.latencies]
    statuses: dict[int, int] = {}
    for r in results:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return LoadResult(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        errors=sum(r.errors for r in results),
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        statuses=statuses,
        latencies=latencies,
    )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked body); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run_load(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    connections: int = 16,
    duration: float = 10.0,
    warmup: float = 1.0,
) -> LoadResult:
    """Drive ``GET url`` from ``connections`` keep-alive connections; see the module docstring."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("url must be http://host[:port]/path")
    host, port = parts.hostname, parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def client() -> None:
        nonlocal failures
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < stop_at:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    sock = writer.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sent = time.perf_counter()
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), timeout=max(1.0, stop_at - sent + 5.0))
                done = time.perf_counter()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                if time.perf_counter() >= measure_from:
                    failures += 1
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
                continue
            if sent >= measure_from and done <= stop_at:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    errors = failures + sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return LoadResult(
        requests=len(latencies),
        seconds=duration,
        errors=errors,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        statuses=statuses,
        latencies=latencies,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    load = run_load(args.url, headers=headers, connections=args.connections, duration=args.duration, warmup=args.warmup)
    result = asyncio.run(load)
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
