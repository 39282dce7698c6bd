"""The HTTP API of ``integrations/_http.py`` end to end, once for each framework that serves it.

Every test taking ``client``/``make_client`` runs for FastAPI (router) and Flask (blueprint),
on SQLite through the Peewee store. What only one framework has lives in ``test_fastapi.py``
and ``test_flask.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from _ci import require

from mindmesh_auth import AuditEventType, MindmeshAuth
from mindmesh_auth.core import errors as error_module
from mindmesh_auth.integrations._http import CookieSettings, client_ip
from mindmesh_auth.testing import FakeClock, Outbox, test_config

from ._clients import FRAMEWORKS, PASSWORD, PEER, Client, Env, assert_error, bearer, build_client, login, register

MakeClient = Callable[..., Client]


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_client(env: Env, framework: str) -> MakeClient:
    """``make_client(peer=..., https=..., **options)``: the framework's app on ``env.auth`` built with ``options``."""

    def make(*, auth: Any = None, **options: Any) -> Client:
        return build_client(framework, env.auth if auth is None else auth, **options)

    return make


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    return make_client()


# ---------------------------------------------------------------------------
# The flow
# ---------------------------------------------------------------------------
def test_full_flow(env: Env, client: Client) -> None:
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


def test_refresh_token_reuse_is_401_and_revokes(env: Env, client: Client) -> None:
    register(client)
    tokens = login(client, env)
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    env.clock.advance(seconds=10)
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401, "refresh_token_reused")
    assert_error(client.post("/auth/refresh", json={}), 401, "invalid_refresh_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")
    assert_error(client.post("/auth/refresh", json={"refresh_token": 5}), 422, "invalid_input")


def test_bodies_have_the_documented_keys(env: Env, client: Client) -> None:
    register(client)
    tokens = login(client, env)
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in", "session_id", "user"}
    session = client.get("/auth/sessions", headers=bearer(tokens)).json()["sessions"][0]
    assert set(session) == {"id", "created_at", "expires_at", "last_active_at", "ip_address", "user_agent", "current"}


# ---------------------------------------------------------------------------
# Error statuses
# ---------------------------------------------------------------------------
def test_401_bad_password_bad_token_no_token(env: Env, client: Client) -> None:
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


def test_wrong_code_is_401(env: Env, client: Client) -> None:
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    code = env.outbox.last_code("ada@example.com")
    wrong = "000000" if code != "000000" else "111111"
    assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": wrong}), 401, "invalid_otp")


def test_no_error_class_maps_to_403() -> None:
    """Decision: no error is 403. A blocked account fails like a wrong password (401, no
    enumeration), its tokens stop working (401), another user's session is 404."""
    statuses = {
        cls.status for cls in vars(error_module).values() if isinstance(cls, type) and issubclass(cls, error_module.AuthError)
    }
    assert 403 not in statuses


def test_blocked_user_is_401_not_403(env: Env, client: Client) -> None:
    user = register(client)["user"]
    tokens = login(client, env)
    env.auth.user.block(user["id"])
    assert_error(client.get("/auth/me", headers=bearer(tokens)), 401, "invalid_token")
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(r, 401, "invalid_credentials")


def test_404_unknown_or_foreign_session_is_never_revoked(env: Env, client: Client) -> None:
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


def test_409_duplicate_register(client: Client) -> None:
    register(client)
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(r, 409, "email_taken")


def test_422_malformed_input_never_echoes_it(env: Env, client: Client) -> None:
    assert_error(client.post("/auth/register", json={"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email")
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": "short"})
    err = assert_error(r, 422, "invalid_password")
    assert err["field"] == "password"
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    err = assert_error(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": "12ab"}), 422, "invalid_input")
    assert err["field"] == "code"
    # Body validation (FastAPI's own, the blueprint's checks): same body shape, no input echoed.
    err = assert_error(client.post("/auth/login", json={"email": "ada@example.com"}), 422, "invalid_input")
    assert err["field"] == "password"
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": 12345678})
    assert_error(r, 422, "invalid_input")
    assert "12345678" not in r.text
    r = client.post("/auth/login", content=b'{"email": "x", "password": "secret-pw', headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input")
    assert "secret-pw" not in r.text
    assert_error(client.post("/auth/login", json=["a", "b"]), 422, "invalid_input")
    assert_error(client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "login"}), 422, "invalid_input")


def test_429_otp_sends_with_retry_after(env: Env, client: Client) -> None:
    register(client)
    for _ in range(3):
        assert client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"}).status_code == 202
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) > 0


def test_429_eleven_logins_from_one_ip(client: Client) -> None:
    statuses = [
        client.post("/auth/login", json={"email": f"user{i}@example.com", "password": PASSWORD}).status_code for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


def test_503_mail_failure(env: Env, client: Client) -> None:
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
@pytest.mark.parametrize("samesite", [None, "strict"], ids=["default-lax", "strict"])
def test_cookies_set_refresh_and_clear(env: Env, make_client: MakeClient, samesite: str | None) -> None:
    """``None``: the default (lax)."""
    cookies = CookieSettings(enabled=True) if samesite is None else CookieSettings(enabled=True, samesite=samesite)  # type: ignore[arg-type]
    client = make_client(cookies=cookies, https=True)
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert r.status_code == 200
    assert "refresh_token" not in r.json() and r.json()["access_token"]
    set_cookies = r.header_list("set-cookie")
    assert len(set_cookies) == 2
    for header in set_cookies:
        assert "HttpOnly" in header and "Secure" in header and "SameSite=" in header
        assert f"samesite={samesite or 'lax'}" in header.lower()  # Starlette writes "lax", Werkzeug "Lax"
    access = next(h for h in set_cookies if h.startswith("mm_access="))
    refresh = next(h for h in set_cookies if h.startswith("mm_refresh="))
    assert "Path=/;" in access or access.endswith("Path=/")
    assert "Path=/auth/refresh" in refresh
    assert client.cookie("mm_access") is not None and client.cookie("mm_refresh", path="/auth/refresh") is not None

    # The access cookie authenticates; the refresh cookie refreshes.
    assert client.get("/auth/me").status_code == 200
    r = client.post("/auth/refresh")
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    assert client.get("/auth/me").status_code == 200

    r = client.post("/auth/logout")
    assert r.status_code == 204
    cleared = r.header_list("set-cookie")
    assert len(cleared) == 2 and all("Max-Age=0" in h for h in cleared)
    assert client.cookie("mm_access") is None and client.cookie("mm_refresh", path="/auth/refresh") is None
    assert_error(client.get("/auth/me"), 401, "invalid_token")
    assert_error(client.post("/auth/refresh"), 401, "invalid_refresh_token")


def test_cookies_disabled_by_default(env: Env, client: Client) -> None:
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert "set-cookie" not in r.headers
    client.set_cookie("mm_access", r.json()["access_token"])
    assert_error(client.get("/auth/me"), 401, "invalid_token")  # cookies are not read unless enabled


# ---------------------------------------------------------------------------
# Client IP
# ---------------------------------------------------------------------------
def _failed_login_ips(env: Env) -> list[str | None]:
    return [e.ip_address for e in env.auth.audit.query(types=[AuditEventType.LOGIN_FAILED])]


def _eleven_failed_logins(client: Client, xff: Callable[[int], str]) -> list[int]:
    return [
        client.post(
            "/auth/login",
            json={"email": f"user{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": xff(i)},
        ).status_code
        for i in range(11)
    ]


def test_forged_x_forwarded_for_is_ignored_by_default(env: Env, client: Client) -> None:
    statuses = _eleven_failed_logins(client, lambda i: f"198.51.100.{i + 1}")
    assert statuses == [401] * 10 + [429]
    ips = _failed_login_ips(env)
    assert len(ips) == 10 and set(ips) == {PEER}
    limited = env.auth.audit.query(types=[AuditEventType.RATE_LIMITED])
    assert [e.ip_address for e in limited] == [PEER]


@pytest.mark.parametrize("trailing_proxy", ["", ", 10.0.0.7"], ids=["client-last", "trusted-proxy-last"])
def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(env: Env, make_client: MakeClient, trailing_proxy: str) -> None:
    client = make_client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    statuses = _eleven_failed_logins(client, lambda i: f"6.6.6.6, 198.51.100.{i + 1}{trailing_proxy}")
    assert statuses == [401] * 11
    assert _failed_login_ips(env) == [f"198.51.100.{i + 1}" for i in range(11)]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored_even_with_trusted_proxies(env: Env, make_client: MakeClient) -> None:
    client = make_client(peer=PEER, trusted_proxies=["10.0.0.0/8"])
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
def test_own_sessions_listing_and_revoke(env: Env, client: Client) -> None:
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


def test_reset_request_is_identical_for_known_and_unknown_emails(env: Env, client: Client) -> None:
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


def test_otp_send_and_verify_for_email_verify(env: Env, client: Client) -> None:
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


def test_register_profile_fields_are_allow_listed(make_client: MakeClient) -> None:
    client = make_client(profile_fields=["first_name"])
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "profile": {"role": "admin"}})
    assert_error(r, 422, "invalid_input")
    assert client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD}).status_code == 201
    # The SQLite user table of the fixture has no profile columns: accepting one needs a store that has it.
    memory = MindmeshAuth(store="memory://", mailer=Outbox(), config=test_config(), clock=FakeClock())
    client = make_client(auth=memory, profile_fields=["first_name"])
    r = client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "profile": {"first_name": "Ada"}})
    assert r.status_code == 201 and r.json()["user"]["first_name"] == "Ada"


# ---------------------------------------------------------------------------
# Secrets never reach a log
# ---------------------------------------------------------------------------
def test_no_token_code_or_password_in_logs(env: Env, client: Client, caplog: pytest.LogCaptureFixture) -> None:
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
