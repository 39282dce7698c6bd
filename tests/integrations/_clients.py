"""One small client shim over FastAPI's (httpx) and Flask's (werkzeug) test clients.

The HTTP API (``mindmesh_auth/integrations/_http.py``) is served by both integrations;
the tests of that shared behaviour run through :func:`build_client` for each framework.
Helpers (``register``, ``login``, ``bearer``, ``assert_error``) work on the shim.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from _ci import require

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.testing import FakeClock, Outbox, test_config

FRAMEWORKS = ("fastapi", "flask")
PASSWORD = "correct horse battery staple"
PEER = "203.0.113.10"


class Env:
    def __init__(self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock) -> None:
        self.auth, self.outbox, self.clock = auth, outbox, clock


class Reply:
    """The parts of a response the tests read, the same for both frameworks."""

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return _json.loads(self.content)

    def header_list(self, name: str) -> list[str]:
        getlist = getattr(self.headers, "get_list", None) or self.headers.getlist
        return list(getlist(name))


class Client:
    """``get``/``post``/``delete`` plus cookie access over a framework's test client."""

    def __init__(self, framework: str, native: Any, base_url: str) -> None:
        self.framework, self.native, self.base_url = framework, native, base_url
        self.notes: list[str] = []

    @property
    def app(self) -> Any:
        """The framework's application object."""
        return self.native.app if self.framework == "fastapi" else self.native.application

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if self.framework == "fastapi":
            r = self.native.request(method, path, json=json, content=content, headers=headers)
            return Reply(r.status_code, r.headers, r.content)
        r = self.native.open(path, method=method, json=json, data=content, headers=headers, base_url=self.base_url)
        return Reply(r.status_code, r.headers, r.data)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def cookie(self, name: str, path: str = "/") -> str | None:
        """The value the client holds for cookie ``name`` on ``path`` (None when it has none)."""
        if self.framework == "fastapi":
            return self.native.cookies.get(name, path=path) or None  # type: ignore[no-any-return]
        cookie = self.native.get_cookie(name, path=path)
        return cookie.value if cookie is not None and cookie.value else None

    def set_cookie(self, name: str, value: str) -> None:
        if self.framework == "fastapi":
            self.native.cookies.set(name, value)
        else:
            self.native.set_cookie(name, value)


def fastapi_client(app: Any, *, peer: str | None = PEER, https: bool = False) -> Client:
    """``peer=None``: no client address in the ASGI scope, as uvicorn gives for ``--uds``."""
    from fastapi.testclient import TestClient

    base_url = "https://testserver" if https else "http://testserver"
    address: Any = None if peer is None else (peer, 50000)
    return Client("fastapi", TestClient(app, client=address, base_url=base_url), base_url)


def flask_client(app: Any, *, peer: str | None = PEER, https: bool = False) -> Client:
    """``peer=None``: an empty ``REMOTE_ADDR``, as a WSGI server on a Unix socket gives."""
    native = app.test_client()
    native.environ_base["REMOTE_ADDR"] = "" if peer is None else peer
    # The scheme goes in each request's base URL: werkzeug overrides environ_base's wsgi.url_scheme.
    return Client("flask", native, "https://localhost" if https else "http://localhost")


def build_client(framework: str, auth: Any, *, peer: str | None = PEER, https: bool = False, **options: Any) -> Client:
    """An app serving the auth routes of ``framework`` built with ``options``, and a client on it.

    The app also has its own routes guarded by the router's ``current_user`` (FastAPI) or the
    blueprint's ``login_required`` (Flask): ``GET /app/notes`` lists ``client.notes`` and
    ``POST /app/notes`` appends the caller's user id to it (a state change the CSRF tests watch).
    """
    notes: list[str] = []
    if framework == "fastapi":
        from fastapi import Depends, FastAPI

        from mindmesh_auth import User
        from mindmesh_auth.integrations.fastapi import create_auth_router, install_error_handlers

        app = FastAPI()
        router = create_auth_router(auth, **options)
        app.include_router(router)
        install_error_handlers(app)  # the app's own routes answer {"error": {...}} too

        @app.get("/app/notes")
        async def list_notes(user: User = Depends(router.current_user)) -> dict[str, Any]:
            return {"notes": notes}

        @app.post("/app/notes")
        async def add_note(user: User = Depends(router.current_user)) -> dict[str, Any]:
            notes.append(user.id)
            return {"notes": notes}

        client = fastapi_client(app, peer=peer, https=https)
    else:
        from flask import Flask, g

        from mindmesh_auth.integrations.flask import create_auth_blueprint

        flask_app = Flask(__name__)
        bp = create_auth_blueprint(auth, **options)
        flask_app.register_blueprint(bp)

        @flask_app.get("/app/notes")
        @bp.login_required
        def list_notes() -> dict[str, Any]:
            return {"notes": notes}

        @flask_app.post("/app/notes")
        @bp.login_required
        def add_note() -> dict[str, Any]:
            notes.append(g.user.id)
            return {"notes": notes}

        client = flask_client(flask_app, peer=peer, https=https)
    client.notes = notes
    return client


def register(client: Client, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def login(client: Client, env: Env, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    challenge = r.json()
    assert challenge["otp_required"] is True and set(challenge) == {"otp_required", "login_handle"}
    r = client.post(
        "/auth/verify-otp",
        json={"email": email, "code": env.outbox.last_code(email), "login_handle": challenge["login_handle"]},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


MakeClient = Callable[..., Client]
"""The ``make_client`` fixture: ``make_client(peer=..., https=..., **options)``."""


def sqlite_env(tmp_path: Path, **overrides: Any) -> Iterator[Env]:
    """A facade on a fresh SQLite file with ``test_config(**overrides)``; closed after."""
    require("peewee")
    outbox, clock = Outbox(), FakeClock()
    config = test_config(**overrides)
    auth = MindmeshAuth(store=f"sqlite:///{tmp_path}/auth.db", mailer=outbox, config=config, clock=clock)
    auth.create_schema()
    yield Env(auth, outbox, clock)
    auth.close()


def signed_in(client: Client, env: Env, email: str = "ada@example.com") -> dict[str, Any]:
    """Register ``email`` and log it in: the tokens (and ``user``) /verify-otp answered."""
    register(client, email)
    return login(client, env, email)


ACCESS, REFRESH = "__Host-mm_access", "__Secure-mm_refresh"
"""The auth cookies' names (with cookies enabled)."""
XRW = {"X-Requested-With": "fetch"}
"""The header the CSRF check accepts from a cookie-authenticated script."""
HANG_GUARD = 10.0
"""Seconds; only reached if a call waits for something that never comes."""


def set_cookies(r: Any) -> dict[str, dict[str, str]]:
    """``Set-Cookie`` headers by cookie name: ``{"": value, attribute (lower case): value or ""}``."""
    out: dict[str, dict[str, str]] = {}
    for header in r.header_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attrs = {"": value}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            attrs[key.lower()] = val
        out[name] = attrs
    return out


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_error(r: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]
