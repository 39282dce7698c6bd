"""The HTTP benchmark's own parts: the load generator and the launcher's listening socket.

The comparison itself (uvicorn workers, fastapi-users) is not run here: it needs the
``bench`` extra and minutes of CPU; its figures are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _bench_module(name: str) -> ModuleType:
    """A module of benchmarks/http/ under a unique name (the directory is not put on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"mindmesh_http_bench_{name}", ROOT / "benchmarks" / "http" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_load = _bench_module("load")
LoadResult = _load.LoadResult
merge = _load.merge
percentile = _load.percentile
run_load = _load.run_load
listening_socket = _bench_module("serve").listening_socket


class TinyServer:
    """HTTP/1.1 keep-alive: ``/ok`` 200 (Content-Length), ``/chunked`` 200 (chunked), else 500."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.authorization: set[str] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                self.requests += 1
                path = head[0].split(" ")[1]
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "authorization":
                        self.authorization.add(value.strip())
                if path == "/ok":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
                    writer.write(b'{"ok":true}')
                elif path == "/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    writer.write(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def drive(path: str, connections: int = 3) -> tuple[TinyServer, LoadResult]:
    tiny = TinyServer()
    server = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_load(
            f"http://127.0.0.1:{port}{path}",
            headers={"Authorization": "Bearer abc"},
            connections=connections,
            duration=0.4,
            warmup=0.1,
        )
    return tiny, result


def test_load_counts_successes_over_keep_alive_connections() -> None:
    tiny, result = asyncio.run(drive("/ok"))
    assert result.requests > 3 and result.errors == 0
    assert result.statuses == {200: result.requests}
    assert tiny.connections == 3  # one keep-alive connection per client, never reopened
    assert tiny.requests >= result.requests  # warm-up requests are sent but not counted
    assert tiny.authorization == {"Bearer abc"}
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.rps == result.requests / 0.4


def test_load_reads_chunked_bodies_and_stays_in_step() -> None:
    tiny, result = asyncio.run(drive("/chunked", connections=2))
    assert result.requests > 2 and result.errors == 0
    assert tiny.connections == 2


def test_load_counts_error_statuses() -> None:
    _tiny, result = asyncio.run(drive("/boom"))
    assert result.requests > 0
    assert result.statuses == {500: result.requests}
    assert result.errors == result.requests


def test_load_counts_refused_connections_as_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = asyncio.run(run_load(f"http://127.0.0.1:{port}/ok", connections=1, duration=0.2, warmup=0.0))
    assert result.requests == 0 and result.errors > 0


def test_merge_adds_counts_and_takes_percentiles_over_all_responses() -> None:
    fast = LoadResult(requests=3, seconds=1.0, errors=0, p50_ms=1.0, p99_ms=1.0, statuses={200: 3}, latencies=[0.001] * 3)
    slow = LoadResult(requests=1, seconds=2.0, errors=1, p50_ms=9.0, p99_ms=9.0, statuses={500: 1}, latencies=[0.009])
    merged = merge([fast, slow])
    assert (merged.requests, merged.seconds, merged.errors) == (4, 3.0, 1)
    assert merged.statuses == {200: 3, 500: 1}
    assert merged.p50_ms == 1.0 and merged.p99_ms == 9.0
    assert "latencies" not in merged.as_dict() and merged.as_dict()["rps"] == round(4 / 3.0, 1)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


async def nodelay_of_accepted(sock: socket.socket) -> int:
    seen: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    async with server:
        _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    return seen[0]


def test_launcher_socket_gets_nodelay_where_uvicorn_multiprocess_binding_does_not() -> None:
    """The cause of the ~44 ms p50 with ``uvicorn --workers N`` (docs/performance.md, "HTTP end to end")."""
    ours = listening_socket("127.0.0.1", 0, 16)
    assert ours.proto == socket.IPPROTO_TCP
    assert asyncio.run(nodelay_of_accepted(ours)) != 0

    stock = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket() opens it
    stock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stock.bind(("127.0.0.1", 0))
    stock.listen(16)
    assert stock.proto == 0
    assert asyncio.run(nodelay_of_accepted(stock)) == 0  # asyncio leaves Nagle on: head and body wait for an ACK
