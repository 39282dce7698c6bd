"""A small TCP proxy for fault-injection tests (standard library only).

:class:`TcpProxy` listens on ``127.0.0.1:<ephemeral port>`` and forwards every
connection to a target (a real database server). A test points its client at
``proxy.port`` and then breaks the network on purpose:

* :meth:`TcpProxy.drop_all` resets every forwarded connection at once (an RST
  to both ends), as a restarted server, a failover or a NAT timeout does;
* :meth:`TcpProxy.freeze` stops forwarding bytes both ways while every socket
  stays open (a frozen server process, a black-holed route): the client's
  kernel still accepts its writes, nothing ever answers. New connections wait
  in the listen backlog. :meth:`TcpProxy.thaw` resumes forwarding;
* :meth:`TcpProxy.close` stops the proxy and resets what is left.

One daemon thread runs a ``selectors`` loop. It is bounded: at most
``max_connections`` forwarded connections (more are refused), at most
``buffer_limit`` bytes buffered per direction, and it stops by itself after
``max_lifetime`` seconds even if the test never calls :meth:`close`.
The commands are synchronous: when :meth:`drop_all` returns, the sockets are
closed. Use it as a context manager::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        ...
        proxy.drop_all()
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import struct
import threading
import time
from types import TracebackType

__all__ = ["TcpProxy"]

_CLIENT, _UPSTREAM = 0, 1


class _Direction:
    """Bytes read from one socket, waiting to be written to the other."""

    __slots__ = ("buf", "eof", "fin_sent")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.eof = False  # the source sent FIN
        self.fin_sent = False  # and we passed it on (shutdown(SHUT_WR) on the destination)


class _Link:
    """One forwarded connection: ``socks[0]`` the client, ``socks[1]`` the upstream."""

    __slots__ = ("closed", "dirs", "socks")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.socks = (client, upstream)
        # dirs[i]: read from socks[i], written to socks[1 - i].
        self.dirs = (_Direction(), _Direction())
        self.closed = False


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` abruptly: an RST, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forward ``listen_host:<port>`` to ``(target_host, target_port)``; see the module docs."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        max_connections: int = 64,
        buffer_limit: int = 256 * 1024,
        connect_timeout: float = 5.0,
        max_lifetime: float = 300.0,
    ) -> None:
        self.target = (target_host, int(target_port))
        self.max_connections = int(max_connections)
        self.buffer_limit = int(buffer_limit)
        self.connect_timeout = float(connect_timeout)
        self._stop_at = time.monotonic() + float(max_lifetime)
        self._listener = socket.create_server((listen_host, 0), backlog=128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._commands: queue.SimpleQueue[tuple[str, threading.Event]] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._registered: dict[socket.socket, tuple[int, object]] = {}
        self._links: list[_Link] = []
        self._frozen = False
        self._closed = False
        self.accepted = 0
        """Connections accepted and forwarded so far (a reconnect shows up here)."""
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy:{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public API

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def connections(self) -> int:
        """Forwarded connections currently open."""
        return len(self._links)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def drop_all(self) -> None:
        """Reset every forwarded connection (both ends get an RST). New ones are still accepted."""
        self._command("drop_all")

    def freeze(self) -> None:
        """Stop forwarding in both directions; every socket stays open."""
        self._command("freeze")

    def thaw(self) -> None:
        """Resume forwarding (bytes buffered before the freeze go on first)."""
        self._command("thaw")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the proxy: reset every connection and close the listening socket."""
        if self.running:
            self._command("close", timeout)
        self._thread.join(timeout)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def _command(self, name: str, timeout: float = 5.0) -> None:
        if not self.running:
            if name == "close":
                return
            raise RuntimeError("the proxy is not running (closed, or its max_lifetime has passed)")
        done = threading.Event()
        self._commands.put((name, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(timeout) and self.running:
            raise TimeoutError(f"the proxy did not run {name!r} within {timeout} s")

    def _run_commands(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                name, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if name == "drop_all":
                    for link in list(self._links):
                        self._close_link(link, abrupt=True)
                elif name == "freeze":
                    self._frozen = True
                elif name == "thaw":
                    self._frozen = False
                elif name == "close":
                    self._closed = True
            finally:
                done.set()

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            self._set_events(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._closed:
                remaining = self._stop_at - time.monotonic()
                if remaining <= 0:
                    break
                self._set_events(self._listener, 0 if self._frozen else selectors.EVENT_READ, "listen")
                for link in self._links:
                    for side in (_CLIENT, _UPSTREAM):
                        self._set_events(link.socks[side], self._wanted(link, side), (link, side))
                for key, mask in self._selector.select(min(remaining, 60.0)):
                    data = key.data
                    if data == "wake":
                        self._run_commands()
                    elif data == "listen":
                        self._accept()
                    else:
                        link, side = data  # type: ignore[misc]
                        self._service(link, side, mask)
        finally:
            self._shutdown()

    def _wanted(self, link: _Link, side: int) -> int:
        if self._frozen or link.closed:
            return 0
        events = 0
        outgoing, incoming = link.dirs[side], link.dirs[1 - side]
        if not outgoing.eof and len(outgoing.buf) < self.buffer_limit:
            events |= selectors.EVENT_READ
        if incoming.buf:
            events |= selectors.EVENT_WRITE
        return events

    def _set_events(self, sock: socket.socket, events: int, data: object) -> None:
        current = self._registered.get(sock)
        if current is not None and current[0] == events:
            return
        if events == 0:
            if current is not None:
                self._selector.unregister(sock)
                del self._registered[sock]
            return
        if current is None:
            self._selector.register(sock, events, data)
        else:
            self._selector.modify(sock, events, data)
        self._registered[sock] = (events, data)

    def _forget(self, sock: socket.socket) -> None:
        if self._registered.pop(sock, None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self._links) >= self.max_connections:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                _reset(client)  # the target refused: so does the proxy
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links.append(_Link(client, upstream))
            self.accepted += 1

    def _service(self, link: _Link, side: int, mask: int) -> None:
        if link.closed:
            return
        sock, other = link.socks[side], link.socks[1 - side]
        try:
            if mask & selectors.EVENT_WRITE:
                incoming = link.dirs[1 - side]
                if incoming.buf:
                    sent = sock.send(incoming.buf)
                    del incoming.buf[:sent]
                if not incoming.buf and incoming.eof and not incoming.fin_sent:
                    sock.shutdown(socket.SHUT_WR)
                    incoming.fin_sent = True
            if mask & selectors.EVENT_READ:
                outgoing = link.dirs[side]
                data = sock.recv(65536)
                if data:
                    outgoing.buf += data
                else:
                    outgoing.eof = True
                    if not outgoing.buf:
                        other.shutdown(socket.SHUT_WR)
                        outgoing.fin_sent = True
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_link(link, abrupt=True)  # a reset on one side resets the other
            return
        if link.dirs[0].fin_sent and link.dirs[1].fin_sent:
            self._close_link(link, abrupt=False)

    def _close_link(self, link: _Link, *, abrupt: bool) -> None:
        if link.closed:
            return
        link.closed = True
        for sock in link.socks:
            self._forget(sock)
            if abrupt:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        with contextlib.suppress(ValueError):
            self._links.remove(link)

    def _shutdown(self) -> None:
        self._closed = True
        for link in list(self._links):
            self._close_link(link, abrupt=True)
        for sock in (self._listener, self._wake_r):
            self._forget(sock)
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(OSError):
            self._selector.close()
        # Release anyone waiting on a command that will never run now.
        while True:
            try:
                _name, done = self._commands.get_nowait()
            except queue.Empty:
                break
            done.set()
        with contextlib.suppress(OSError):
            self._wake_w.close()
