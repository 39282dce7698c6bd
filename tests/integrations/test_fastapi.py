"""The FastAPI router end to end, on SQLite through the Peewee store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("peewee")

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from mindmesh_auth import AuditEventType, MindmeshAuth, User
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.core import errors as error_module
from mindmesh_auth.integrations._http import client_ip
from mindmesh_auth.integrations.fastapi import (
    CookieSettings,
    create_auth_router,
    current_user,
    get_current_user_dependency,
    install_error_handlers,
)
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"
PEER = "203.0.113.10"


class Env:
    def __init__(self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock) -> None:
        self.auth, self.outbox, self.clock = auth, outbox, clock

    def client(
        self,
        *,
        peer: str = PEER,
        base_url: str = "http://testserver",
        extra_routes: Callable[[FastAPI, Any], None] | None = None,
        **router_kwargs: Any,
    ) -> TestClient:
        router = create_auth_router(self.auth, **router_kwargs)
        app = FastAPI()
        app.include_router(router)
        if extra_routes is not None:
            extra_routes(app, router)
        return TestClient(app, client=(peer, 50000), base_url=base_url)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    outbox, clock = Outbox(), FakeClock()
    auth = MindmeshAuth(store=f"sqlite:///{tmp_path}/auth.db", mailer=outbox, config=test_config(), clock=clock)
    auth.create_schema()
    yield Env(auth, outbox, clock)
    auth.close()


@pytest.fixture
def client(env: Env) -> TestClient:
    return env.client()


def register(client: TestClient, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def login(client: TestClient, env: Env, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    assert r.json() == {"otp_required": True}
    r = client.post("/auth/verify-otp", json={"email": email, "code": env.outbox.last_code(email)})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# The flow
# ---------------------------------------------------------------------------
def test_full_flow(env: Env, client: TestClient) -> None:
    user = register(client)["user"]
    assert user["email"] == "ada@example.com" and "password_hash" not in user
    tokens = login(client, env)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert tokens["user"]["id"] == user["id"] and tokens["refresh_token"] and tokens["session_id"]

    r = client.get("/auth/me", headers=bearer(tokens))
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]

    r = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["session_id"] == tokens["session_id"] and fresh["refresh_token"] != tokens["refresh_token"]
    assert "user" not in fresh

    r = client.post("/auth/logout", headers=bearer(fresh))
    assert r.status_code == 204 and r.content == b""
    r = client.get("/auth/me", headers=bearer(fresh))
    assert_error(r, 401, "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_async_facade_is_accepted(env: Env) -> None:
    app = FastAPI()
    app.include_router(create_auth_router(AsyncMindmeshAuth(env.auth)))
    client = TestClient(app, client=(PEER, 1))
    register(client)
    login(client, env)


def test_refresh_token_reuse_is_401_and_revokes(env: Env, client: TestClient) -> None:
    register(client)
    tokens = login(client, env)
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    env.clock.advance(seconds=10)
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401, "refresh_token_reused")
    assert_error(client.post("/auth/refresh", json={}), 401, "invalid_refresh_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")


# ---------------------------------------------------------------------------
# Error statuses
# ---------------------------------------------------------------------------
def test_401_bad_password_bad_token_no_token(env: Env, client: TestClient) -> None:
    register(client)
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": "wrong password!"})
    assert_error(r, 401, "invalid_credentials")
    assert r.headers["www-authenticate"] == "Bearer"
    for headers in ({"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}, {}):
        r = client.get("/auth/me", headers=headers)
        assert_error(r, 401, "invalid_token")
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(client.post("/auth/logout"), 401, "invalid_token")
    assert_error(client.get("/auth/sessions"), 401, "invalid_token")


def test_wrong_code_is_401(env: Env, client: TestClient) -> None:
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    code = env.outbox.last_code("ada@example.com")
    wrong = "000000" if code != "000000" else "111111"
    assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": wrong}), 401, "invalid_otp")


def test_nothing_maps_to_403(env: Env, client: TestClient) -> None:
    """Decision: no error is 403. A blocked account fails like a wrong password (401, no
    enumeration), its tokens stop working (401), another user's session is 404."""
    statuses = {
        cls.status for cls in vars(error_module).values() if isinstance(cls, type) and issubclass(cls, error_module.AuthError)
    }
    assert 403 not in statuses
    user = register(client)["user"]
    tokens = login(client, env)
    env.auth.user.block(user["id"])
    assert_error(client.get("/auth/me", headers=bearer(tokens)), 401, "invalid_token")
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(r, 401, "invalid_credentials")


def test_404_unknown_or_foreign_session_is_never_revoked(env: Env, client: TestClient) -> None:
    register(client, "ada@example.com")
    register(client, "bob@example.com")
    ada = login(client, env, "ada@example.com")
    bob = login(client, env, "bob@example.com")
    r = client.delete("/auth/sessions/00000000-0000-4000-8000-000000000000", headers=bearer(ada))
    assert_error(r, 404, "session_not_found")
    r = client.delete(f"/auth/sessions/{bob['session_id']}", headers=bearer(ada))
    assert_error(r, 404, "session_not_found")
    assert client.get("/auth/me", headers=bearer(bob)).status_code == 200
    assert env.auth.sessions.get(bob["session_id"]).revoked_at is None


def test_409_duplicate_register(client: TestClient) -> None:
    register(client)
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(r, 409, "email_taken")


def test_422_malformed_input_never_echoes_it(env: Env, client: TestClient) -> None:
    assert_error(client.post("/auth/register", json={"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email")
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": "short"})
    err = assert_error(r, 422, "invalid_password")
    assert err["field"] == "password"
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    err = assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": "12ab"}), 422, "invalid_input")
    assert err["field"] == "code"
    # FastAPI's own body validation: same body shape, no input echoed.
    err = assert_error(client.post("/auth/login", json={"email": "ada@example.com"}), 422, "invalid_input")
    assert err["field"] == "password"
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": 12345678})
    assert_error(r, 422, "invalid_input")
    assert "12345678" not in r.text
    r = client.post("/auth/login", content=b'{"email": "x", "password": "secret-pw', headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input")
    assert "secret-pw" not in r.text
    assert_error(client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "login"}), 422, "invalid_input")


def test_429_otp_sends_with_retry_after(env: Env, client: TestClient) -> None:
    register(client)
    for _ in range(3):
        assert client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"}).status_code == 202
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) > 0


def test_429_eleven_logins_from_one_ip(env: Env, client: TestClient) -> None:
    statuses = [
        client.post("/auth/login", json={"email": f"user{i}@example.com", "password": PASSWORD}).status_code for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


def test_503_mail_failure(env: Env, client: TestClient) -> None:
    register(client)
    env.outbox.fail_next()
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(r, 503, "delivery_failed")
    env.outbox.fail_next()
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert_error(r, 503, "delivery_failed")


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def test_cookies_set_refresh_and_clear(env: Env) -> None:
    client = env.client(cookies=CookieSettings(enabled=True), base_url="https://testserver")
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert r.status_code == 200
    assert "refresh_token" not in r.json() and r.json()["access_token"]
    set_cookies = r.headers.get_list("set-cookie")
    assert len(set_cookies) == 2
    for header in set_cookies:
        lowered = header.lower()
        assert "httponly" in lowered and "secure" in lowered and "samesite=lax" in lowered
    access = next(h for h in set_cookies if h.startswith("mm_access="))
    refresh = next(h for h in set_cookies if h.startswith("mm_refresh="))
    assert "Path=/;" in access or access.endswith("Path=/")
    assert "Path=/auth/refresh" in refresh

    # The access cookie authenticates; the refresh cookie refreshes.
    assert client.get("/auth/me").status_code == 200
    r = client.post("/auth/refresh")
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    assert client.get("/auth/me").status_code == 200

    r = client.post("/auth/logout")
    assert r.status_code == 204
    cleared = r.headers.get_list("set-cookie")
    assert len(cleared) == 2 and all("max-age=0" in h.lower() for h in cleared)
    assert not client.cookies.get("mm_access") and not client.cookies.get("mm_refresh")
    assert_error(client.get("/auth/me"), 401, "invalid_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")


def test_cookies_disabled_by_default(env: Env, client: TestClient) -> None:
    register(client)
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert "set-cookie" not in r.headers
    client.cookies.set("mm_access", r.json()["access_token"])
    assert_error(client.get("/auth/me"), 401, "invalid_token")  # cookies are not read unless enabled


# ---------------------------------------------------------------------------
# Client IP
# ---------------------------------------------------------------------------
def _failed_login_ips(env: Env) -> list[str | None]:
    return [e.ip_address for e in env.auth.audit.query(types=[AuditEventType.LOGIN_FAILED])]


def test_forged_x_forwarded_for_is_ignored_by_default(env: Env, client: TestClient) -> None:
    statuses = [
        client.post(
            "/auth/login",
            json={"email": f"user{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
        ).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    ips = _failed_login_ips(env)
    assert len(ips) == 10 and set(ips) == {PEER}
    limited = env.auth.audit.query(types=[AuditEventType.RATE_LIMITED])
    assert [e.ip_address for e in limited] == [PEER]


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(env: Env) -> None:
    client = env.client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    statuses = [
        client.post(
            "/auth/login",
            json={"email": f"user{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": f"6.6.6.6, 198.51.100.{i + 1}, 10.0.0.7"},
        ).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 11
    assert _failed_login_ips(env) == [f"198.51.100.{i + 1}" for i in range(11)]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored_even_with_trusted_proxies(env: Env) -> None:
    client = env.client(peer=PEER, trusted_proxies=["10.0.0.0/8"])
    client.post("/auth/login", json={"email": "x@example.com", "password": PASSWORD}, headers={"X-Forwarded-For": "1.2.3.4"})
    assert _failed_login_ips(env) == [PEER]


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("203.0.113.1", "1.1.1.1", (), "203.0.113.1"),
        ("10.0.0.1", "1.1.1.1", (), "10.0.0.1"),
        ("10.0.0.1", "1.1.1.1", ("10.0.0.0/8",), "1.1.1.1"),
        ("10.0.0.1", "9.9.9.9, 1.1.1.1, 10.0.0.2", ("10.0.0.0/8",), "1.1.1.1"),
        ("10.0.0.1", ["9.9.9.9", "1.1.1.1"], ("10.0.0.0/8",), "1.1.1.1"),
        ("10.0.0.1", "garbage, 10.0.0.2", ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", ("10.0.0.0/8",), "10.0.0.3"),
        ("10.0.0.1", None, ("10.0.0.0/8",), "10.0.0.1"),
        ("203.0.113.1", "1.1.1.1", ("10.0.0.0/8",), "203.0.113.1"),
        ("::1", "2001:db8::1", ("::1",), "2001:db8::1"),
        ("::ffff:10.0.0.1", "[2001:db8::2]:443", ("10.0.0.1",), "2001:db8::2"),
        ("testclient", "1.1.1.1", (), None),
        (None, None, (), None),
    ],
)
def test_client_ip(peer: str | None, xff: Any, trusted: tuple[str, ...], expected: str | None) -> None:
    assert client_ip(peer, xff, trusted) == expected


# ---------------------------------------------------------------------------
# Sessions, reset, OTP purposes, profile
# ---------------------------------------------------------------------------
def test_own_sessions_listing_and_revoke(env: Env, client: TestClient) -> None:
    register(client)
    first = login(client, env)
    second = login(client, env)
    r = client.get("/auth/sessions", headers=bearer(second))
    assert r.status_code == 200
    sessions = r.json()["sessions"]
    assert {s["id"] for s in sessions} == {first["session_id"], second["session_id"]}
    assert [s["current"] for s in sessions if s["id"] == second["session_id"]] == [True]
    assert all(s["ip_address"] == PEER for s in sessions)

    r = client.delete(f"/auth/sessions/{first['session_id']}", headers=bearer(second))
    assert r.status_code == 204
    assert_error(client.get("/auth/me", headers=bearer(first)), 401, "invalid_token")
    assert [s["id"] for s in client.get("/auth/sessions", headers=bearer(second)).json()["sessions"]] == [second["session_id"]]


def test_reset_request_is_identical_for_known_and_unknown_emails(env: Env, client: TestClient) -> None:
    register(client)
    known = client.post("/auth/password/reset-request", json={"email": "ada@example.com"})
    unknown = client.post("/auth/password/reset-request", json={"email": "nobody@example.com"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202

    token = env.outbox.last_reset_token("ada@example.com")
    r = client.post("/auth/password/reset", json={"token": token, "new_password": "a brand new passphrase"})
    assert r.status_code == 204, r.text
    r = client.post("/auth/password/reset", json={"token": token, "new_password": "another passphrase!"})
    assert_error(r, 400, "invalid_reset_token")
    login(client, env, password="a brand new passphrase")


def test_otp_send_and_verify_for_email_verify(env: Env, client: TestClient) -> None:
    register(client)
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert r.status_code == 202
    unknown = client.post("/auth/otp/send", json={"email": "nobody@example.com", "purpose": "email_verify"})
    assert (unknown.status_code, unknown.json()) == (202, r.json())
    code = env.outbox.last_code("ada@example.com")
    wrong = "000000" if code != "000000" else "111111"
    body = {"email": "ada@example.com", "purpose": "email_verify"}
    assert_error(client.post("/auth/otp/verify", json={**body, "code": wrong}), 401, "invalid_otp")
    r = client.post("/auth/otp/verify", json={**body, "code": code})
    assert (r.status_code, r.json()) == (200, {"verified": True})
    tokens = login(client, env)
    assert client.get("/auth/me", headers=bearer(tokens)).json()["user"]["email_verified"] is True


def test_register_profile_fields_are_allow_listed(env: Env) -> None:
    client = env.client(profile_fields=["first_name"])
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "profile": {"role": "admin"}})
    assert_error(r, 422, "invalid_input")
    assert client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD}).status_code == 201
    # The SQLite user table of the fixture has no profile columns: accepting one needs a store that has it.
    memory = MindmeshAuth(store="memory://", mailer=Outbox(), config=test_config(), clock=FakeClock())
    app = FastAPI()
    app.include_router(create_auth_router(memory, profile_fields=["first_name"]))
    client = TestClient(app, client=(PEER, 1))
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "profile": {"first_name": "Ada"}})
    assert r.status_code == 201 and r.json()["user"]["first_name"] == "Ada"


# ---------------------------------------------------------------------------
# The dependency in the app's own routes
# ---------------------------------------------------------------------------
def _profile_routes(app: FastAPI, router: Any) -> None:
    app.state.mindmesh_auth = router.auth

    @app.get("/bound")
    async def bound(user: User = Depends(router.current_user)) -> dict[str, str]:
        return {"id": user.id}

    factory_dep = get_current_user_dependency(router.auth)

    @app.get("/factory")
    async def factory(user: User = Depends(factory_dep)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/module")
    async def module(user: User = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}


def test_current_user_dependencies(env: Env) -> None:
    client = env.client(extra_routes=_profile_routes)
    user = register(client)["user"]
    tokens = login(client, env)
    for path in ("/bound", "/factory", "/module"):
        assert client.get(path, headers=bearer(tokens)).json() == {"id": user["id"]}
        r = client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"detail": {"code": "invalid_token", "message": "Authentication required."}}


def test_install_error_handlers_gives_the_router_shape(env: Env) -> None:
    def extra(app: FastAPI, router: Any) -> None:
        _profile_routes(app, router)
        install_error_handlers(app)

    client = env.client(extra_routes=extra)
    r = client.get("/bound", headers={"Authorization": "Bearer nope"})
    assert_error(r, 401, "invalid_token")


# ---------------------------------------------------------------------------
# Secrets never reach a log
# ---------------------------------------------------------------------------
def test_no_token_code_or_password_in_logs(env: Env, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    code = env.outbox.last_code("ada@example.com")
    tokens = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": code}).json()
    fresh = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.post("/auth/logout", headers=bearer(fresh))
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (PASSWORD, code, tokens["access_token"], tokens["refresh_token"], fresh["refresh_token"]):
        assert secret not in text
