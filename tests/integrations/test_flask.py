"""The Flask blueprint end to end, on SQLite through the Peewee store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("peewee")

from flask import Flask, g
from flask.testing import FlaskClient

from mindmesh_auth import AuditEventType, MindmeshAuth
from mindmesh_auth.integrations.flask import (
    AuthBlueprint,
    CookieSettings,
    create_auth_blueprint,
    make_login_required,
)
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"
PEER = "203.0.113.10"


class Env:
    def __init__(self, auth: MindmeshAuth, outbox: Outbox, clock: FakeClock) -> None:
        self.auth, self.outbox, self.clock = auth, outbox, clock

    def app(self, **kwargs: Any) -> tuple[Flask, AuthBlueprint]:
        bp = create_auth_blueprint(self.auth, **kwargs)
        app = Flask(__name__)
        app.register_blueprint(bp)
        return app, bp

    def client(self, *, peer: str = PEER, scheme: str = "http", **kwargs: Any) -> FlaskClient:
        app, _bp = self.app(**kwargs)
        client = app.test_client()
        client.environ_base.update({"REMOTE_ADDR": peer, "wsgi.url_scheme": scheme})
        return client


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    outbox, clock = Outbox(), FakeClock()
    auth = MindmeshAuth(store=f"sqlite:///{tmp_path}/auth.db", mailer=outbox, config=test_config(), clock=clock)
    auth.create_schema()
    yield Env(auth, outbox, clock)
    auth.close()


@pytest.fixture
def client(env: Env) -> FlaskClient:
    return env.client()


def register(client: FlaskClient, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()  # type: ignore[no-any-return]


def login(client: FlaskClient, env: Env, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
    r = client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json() == {"otp_required": True}
    r = client.post("/auth/verify-otp", json={"email": email, "code": env.outbox.last_code(email)})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()  # type: ignore[no-any-return]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# The flow
# ---------------------------------------------------------------------------
def test_full_flow(env: Env, client: FlaskClient) -> None:
    user = register(client)["user"]
    assert user["email"] == "ada@example.com" and "password_hash" not in user
    tokens = login(client, env)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert tokens["user"]["id"] == user["id"] and tokens["refresh_token"] and tokens["session_id"]

    r = client.get("/auth/me", headers=bearer(tokens))
    assert r.status_code == 200 and r.get_json()["user"]["id"] == user["id"]

    r = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    fresh = r.get_json()
    assert fresh["session_id"] == tokens["session_id"] and fresh["refresh_token"] != tokens["refresh_token"]

    r = client.post("/auth/logout", headers=bearer(fresh))
    assert r.status_code == 204 and r.data == b""
    r = client.get("/auth/me", headers=bearer(fresh))
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_refresh_token_reuse_and_missing(env: Env, client: FlaskClient) -> None:
    register(client)
    tokens = login(client, env)
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    env.clock.advance(seconds=10)
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401, "refresh_token_reused")
    assert_error(client.post("/auth/refresh", json={}), 401, "invalid_refresh_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")
    assert_error(client.post("/auth/refresh", json={"refresh_token": 5}), 422, "invalid_input")


# ---------------------------------------------------------------------------
# Error statuses
# ---------------------------------------------------------------------------
def test_401_bad_password_bad_token_no_token(env: Env, client: FlaskClient) -> None:
    register(client)
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": "wrong password!"})
    assert_error(r, 401, "invalid_credentials")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    for headers in ({"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}, {}):
        r = client.get("/auth/me", headers=headers)
        assert_error(r, 401, "invalid_token")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.post("/auth/logout"), 401, "invalid_token")
    assert_error(client.get("/auth/sessions"), 401, "invalid_token")


def test_wrong_code_is_401(env: Env, client: FlaskClient) -> None:
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    code = env.outbox.last_code("ada@example.com")
    wrong = "000000" if code != "000000" else "111111"
    assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": wrong}), 401, "invalid_otp")


def test_blocked_user_is_401_not_403(env: Env, client: FlaskClient) -> None:
    """Decision: nothing maps to 403 (see the FastAPI suite)."""
    user = register(client)["user"]
    tokens = login(client, env)
    env.auth.user.block(user["id"])
    assert_error(client.get("/auth/me", headers=bearer(tokens)), 401, "invalid_token")
    assert_error(client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}), 401, "invalid_credentials")


def test_404_unknown_or_foreign_session_is_never_revoked(env: Env, client: FlaskClient) -> None:
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


def test_409_duplicate_register(client: FlaskClient) -> None:
    register(client)
    assert_error(client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD}), 409, "email_taken")


def test_422_malformed_input_never_echoes_it(env: Env, client: FlaskClient) -> None:
    assert_error(client.post("/auth/register", json={"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email")
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": "short"})
    err = assert_error(r, 422, "invalid_password")
    assert err["field"] == "password"
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    err = assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": "12ab"}), 422, "invalid_input")
    assert err["field"] == "code"
    err = assert_error(client.post("/auth/login", json={"email": "ada@example.com"}), 422, "invalid_input")
    assert err["field"] == "password"
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": 12345678})
    assert_error(r, 422, "invalid_input")
    assert b"12345678" not in r.data
    r = client.post("/auth/login", data=b'{"email": "x", "password": "secret-pw', content_type="application/json")
    assert_error(r, 422, "invalid_input")
    assert b"secret-pw" not in r.data
    assert_error(client.post("/auth/login", json=["a", "b"]), 422, "invalid_input")
    assert_error(client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "login"}), 422, "invalid_input")


def test_429_otp_sends_with_retry_after(env: Env, client: FlaskClient) -> None:
    register(client)
    for _ in range(3):
        assert client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"}).status_code == 202
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0


def test_429_eleven_logins_from_one_ip(client: FlaskClient) -> None:
    statuses = [
        client.post("/auth/login", json={"email": f"user{i}@example.com", "password": PASSWORD}).status_code for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


def test_503_mail_failure(env: Env, client: FlaskClient) -> None:
    register(client)
    env.outbox.fail_next()
    assert_error(client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}), 503, "delivery_failed")
    env.outbox.fail_next()
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert_error(r, 503, "delivery_failed")


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def test_cookies_set_refresh_and_clear(env: Env) -> None:
    client = env.client(cookies=CookieSettings(enabled=True, samesite="strict"), scheme="https")
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert r.status_code == 200
    assert "refresh_token" not in r.get_json() and r.get_json()["access_token"]
    set_cookies = r.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 2
    for header in set_cookies:
        assert "HttpOnly" in header and "Secure" in header and "SameSite=Strict" in header
    refresh = next(h for h in set_cookies if h.startswith("mm_refresh="))
    assert "Path=/auth/refresh" in refresh
    assert client.get_cookie("mm_refresh", path="/auth/refresh") is not None

    assert client.get("/auth/me").status_code == 200
    r = client.post("/auth/refresh")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert "refresh_token" not in r.get_json()
    assert client.get("/auth/me").status_code == 200

    r = client.post("/auth/logout")
    assert r.status_code == 204
    cleared = r.headers.getlist("Set-Cookie")
    assert len(cleared) == 2 and all("Max-Age=0" in h for h in cleared)
    assert client.get_cookie("mm_access") is None and client.get_cookie("mm_refresh", path="/auth/refresh") is None
    assert_error(client.get("/auth/me"), 401, "invalid_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")


# ---------------------------------------------------------------------------
# Client IP
# ---------------------------------------------------------------------------
def _failed_login_ips(env: Env) -> list[str | None]:
    return [e.ip_address for e in env.auth.audit.query(types=[AuditEventType.LOGIN_FAILED])]


def test_forged_x_forwarded_for_is_ignored_by_default(env: Env, client: FlaskClient) -> None:
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


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(env: Env) -> None:
    client = env.client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    statuses = [
        client.post(
            "/auth/login",
            json={"email": f"user{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": f"6.6.6.6, 198.51.100.{i + 1}"},
        ).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 11
    assert _failed_login_ips(env) == [f"198.51.100.{i + 1}" for i in range(11)]


# ---------------------------------------------------------------------------
# Sessions, reset, OTP purposes
# ---------------------------------------------------------------------------
def test_own_sessions_listing_and_revoke(env: Env, client: FlaskClient) -> None:
    register(client)
    first = login(client, env)
    second = login(client, env)
    sessions = client.get("/auth/sessions", headers=bearer(second)).get_json()["sessions"]
    assert {s["id"] for s in sessions} == {first["session_id"], second["session_id"]}
    assert [s["current"] for s in sessions if s["id"] == second["session_id"]] == [True]
    assert all(s["ip_address"] == PEER for s in sessions)
    assert client.delete(f"/auth/sessions/{first['session_id']}", headers=bearer(second)).status_code == 204
    assert_error(client.get("/auth/me", headers=bearer(first)), 401, "invalid_token")
    remaining = client.get("/auth/sessions", headers=bearer(second)).get_json()["sessions"]
    assert [s["id"] for s in remaining] == [second["session_id"]]


def test_reset_request_is_identical_for_known_and_unknown_emails(env: Env, client: FlaskClient) -> None:
    register(client)
    known = client.post("/auth/password/reset-request", json={"email": "ada@example.com"})
    unknown = client.post("/auth/password/reset-request", json={"email": "nobody@example.com"})
    assert (known.status_code, known.get_json()) == (unknown.status_code, unknown.get_json())
    assert known.status_code == 202
    token = env.outbox.last_reset_token("ada@example.com")
    assert client.post("/auth/password/reset", json={"token": token, "new_password": "a brand new passphrase"}).status_code == 204
    r = client.post("/auth/password/reset", json={"token": token, "new_password": "another passphrase!"})
    assert_error(r, 400, "invalid_reset_token")
    login(client, env, password="a brand new passphrase")


def test_otp_send_and_verify_for_email_verify(env: Env, client: FlaskClient) -> None:
    register(client)
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert r.status_code == 202
    unknown = client.post("/auth/otp/send", json={"email": "nobody@example.com", "purpose": "email_verify"})
    assert (unknown.status_code, unknown.get_json()) == (202, r.get_json())
    code = env.outbox.last_code("ada@example.com")
    wrong = "000000" if code != "000000" else "111111"
    body = {"email": "ada@example.com", "purpose": "email_verify"}
    assert_error(client.post("/auth/otp/verify", json={**body, "code": wrong}), 401, "invalid_otp")
    r = client.post("/auth/otp/verify", json={**body, "code": code})
    assert (r.status_code, r.get_json()) == (200, {"verified": True})
    tokens = login(client, env)
    assert client.get("/auth/me", headers=bearer(tokens)).get_json()["user"]["email_verified"] is True


def test_bodies_match_the_fastapi_router(env: Env, client: FlaskClient) -> None:
    """Same keys as the FastAPI router answers (checked there against the same builders)."""
    register(client)
    tokens = login(client, env)
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in", "session_id", "user"}
    session = client.get("/auth/sessions", headers=bearer(tokens)).get_json()["sessions"][0]
    assert set(session) == {"id", "created_at", "expires_at", "last_active_at", "ip_address", "user_agent", "current"}


# ---------------------------------------------------------------------------
# login_required in the app's own views
# ---------------------------------------------------------------------------
def test_login_required_sets_g_user(env: Env) -> None:
    app, bp = env.app()
    login_required = make_login_required(env.auth)

    @app.get("/bound")
    @bp.login_required
    def bound() -> dict[str, str]:
        return {"id": g.user.id, "sid": g.auth_session_id}

    @app.get("/factory")
    @login_required
    def factory() -> dict[str, str]:
        return {"id": g.user.id, "sid": g.auth_session_id}

    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = PEER
    user = register(client)["user"]
    tokens = login(client, env)
    for path in ("/bound", "/factory"):
        assert client.get(path, headers=bearer(tokens)).get_json() == {"id": user["id"], "sid": tokens["session_id"]}
        r = client.get(path)
        assert_error(r, 401, "invalid_token")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_token_code_or_password_in_logs(env: Env, client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    code = env.outbox.last_code("ada@example.com")
    tokens = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": code}).get_json()
    fresh = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).get_json()
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.post("/auth/logout", headers=bearer(fresh))
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (PASSWORD, code, tokens["access_token"], tokens["refresh_token"], fresh["refresh_token"]):
        assert secret not in text
