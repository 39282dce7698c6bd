"""Start uvicorn with N worker processes for the HTTP benchmark.

    python serve.py mm_app:create_app --port 8001 --workers 2
    python serve.py mm_app:create_app --port 8001 --workers 2 --stock   # uvicorn.run(), as `uvicorn --workers 2`

Why not plain ``uvicorn --workers N``: with ``--workers`` > 1 uvicorn's
``Config.bind_socket()`` opens the listening socket as ``socket.socket(family=AF_INET)``,
whose ``proto`` is 0. asyncio turns on ``TCP_NODELAY`` for an accepted connection
only when ``sock.proto == IPPROTO_TCP`` (``asyncio.base_events._set_nodelay``), and
an accepted socket inherits the listening socket's ``proto``. So in multi-process
mode every connection keeps Nagle's algorithm on; uvicorn writes a response's
head and body in two ``send`` calls, the body waits for the ACK of the head, and
the client delays that ACK (Linux: ~40 ms): a p50 of ~44 ms whatever the app.
A single worker binds through ``loop.create_server(host, port)``, whose sockets
come from ``getaddrinfo`` with ``proto=IPPROTO_TCP``, and is not affected.

This launcher opens the listening socket with ``proto=IPPROTO_TCP`` itself and
hands it to uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``), so
both worker counts run with ``TCP_NODELAY`` as a single uvicorn process does.
``--stock`` keeps uvicorn's own binding, to reproduce the delay.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", help="module:factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--stock", action="store_true", help="let uvicorn bind (shows the Nagle delay with --workers > 1)")
    args = parser.parse_args(argv)
    options: dict[str, object] = {"factory": True, "log_level": "warning", "access_log": False}
    if args.stock:
        uvicorn.run(args.app, host=args.host, port=args.port, workers=args.workers, **options)  # type: ignore[arg-type]
        return
    config = uvicorn.Config(args.app, host=args.host, port=args.port, workers=args.workers, **options)  # type: ignore[arg-type]
    sock = listening_socket(args.host, args.port, config.backlog)
    if args.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
