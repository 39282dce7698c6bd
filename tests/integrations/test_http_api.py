"""The HTTP API of ``integrations/_http.py`` end to end, once for each framework that serves it.

Every test taking ``client``/``make_client`` runs for FastAPI (router) and Flask (blueprint),
on SQLite through the Peewee store. What only one framework has lives in ``test_fastapi.py``
and ``test_flask.py``.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from mindmesh_auth import AuditEventType, ConfigurationError, Limit, MindmeshAuth
from mindmesh_auth.core import errors as error_module
from mindmesh_auth.integrations._http import CookieSettings, client_ip, parse_trusted_proxies
from mindmesh_auth.testing import FakeClock, Outbox, test_config

from ._clients import (
    ACCESS,
    PASSWORD,
    PEER,
    REFRESH,
    XRW,
    Client,
    Env,
    MakeClient,
    assert_error,
    bearer,
    login,
    register,
    set_cookies,
)


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
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in", "session_id", "user", "device_token"}
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
    """Decision: no core error is 403 (the only 403 is the CSRF check of cookie mode, in the
    HTTP layer). A blocked account fails like a wrong password (401, no enumeration), its
    tokens stop working (401), another user's session is 404."""
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
    # otp/send takes only an address: a failed delivery is audited, and the answer is the
    # one an unknown address gets (no account oracle).
    r = client.post("/auth/otp/send", json={"email": "ada@example.com", "purpose": "email_verify"})
    unknown = client.post("/auth/otp/send", json={"email": "nobody@example.com", "purpose": "email_verify"})
    assert (r.status_code, r.json()) == (unknown.status_code, unknown.json()) == (202, unknown.json())


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def _cookie_client(env: Env, make_client: MakeClient, **settings: Any) -> tuple[Client, dict[str, Any]]:
    """A client logged in with cookies enabled (``settings`` for :class:`CookieSettings`)."""
    https = settings.get("secure", True)
    client = make_client(cookies=CookieSettings(enabled=True, **settings), https=https)
    register(client)
    return client, login(client, env)


@pytest.mark.parametrize("samesite", [None, "strict"], ids=["default-lax", "strict"])
def test_cookies_set_refresh_and_clear(env: Env, make_client: MakeClient, samesite: str | None) -> None:
    """``None``: the default (lax). Names, prefixes and attributes, read from the Set-Cookie headers."""
    cookies = CookieSettings(enabled=True) if samesite is None else CookieSettings(enabled=True, samesite=samesite)  # type: ignore[arg-type]
    client = make_client(cookies=cookies, https=True)
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    assert r.status_code == 200
    assert "refresh_token" not in r.json() and r.json()["access_token"]
    cookies_set = set_cookies(r)
    # The login cookie (sent back, it bound the code) is cleared; the device cookie is new.
    assert set(cookies_set) == {ACCESS, REFRESH, "__Host-mm_login", "__Host-mm_device"}
    assert cookies_set["__Host-mm_login"]["max-age"] == "0"
    for attrs in cookies_set.values():
        assert "httponly" in attrs and "secure" in attrs and "domain" not in attrs
        assert attrs["samesite"].lower() == (samesite or "lax")  # Starlette writes "lax", Werkzeug "Lax"
    assert cookies_set[ACCESS]["path"] == "/" and cookies_set[ACCESS]["max-age"] == "900"
    assert cookies_set[REFRESH]["path"] == "/auth"  # /refresh and /logout receive it, the app's routes never do
    assert client.cookie(ACCESS) is not None and client.cookie(REFRESH, path="/auth") is not None

    # The access cookie authenticates; the refresh cookie refreshes (a state change: the CSRF header is needed).
    assert client.get("/auth/me").status_code == 200
    assert_error(client.post("/auth/refresh"), 403, "csrf_rejected")
    r = client.post("/auth/refresh", headers=XRW)
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json() and set(set_cookies(r)) == {ACCESS, REFRESH}
    assert client.get("/auth/me").status_code == 200

    r = client.post("/auth/logout", headers=XRW)
    assert r.status_code == 204
    cleared = set_cookies(r)
    assert set(cleared) == {ACCESS, REFRESH} and all(c["max-age"] == "0" for c in cleared.values())
    assert cleared[ACCESS]["path"] == "/" and cleared[REFRESH]["path"] == "/auth"
    assert client.cookie(ACCESS) is None and client.cookie(REFRESH, path="/auth") is None
    assert_error(client.get("/auth/me"), 401, "invalid_token")
    assert_error(client.post("/auth/refresh", headers=XRW), 401, "invalid_refresh_token")


def test_cookies_without_secure_drop_the_prefixes_for_local_http(env: Env, make_client: MakeClient) -> None:
    client, _ = _cookie_client(env, make_client, secure=False)
    r = client.post("/auth/refresh", headers=XRW)
    assert r.status_code == 200, r.text
    cookies_set = set_cookies(r)
    assert set(cookies_set) == {"mm_access", "mm_refresh"}
    assert all("secure" not in attrs and "httponly" in attrs for attrs in cookies_set.values())
    assert client.get("/auth/me").status_code == 200


@pytest.mark.parametrize(
    "settings",
    [
        {"secure": False, "access_name": "__Host-x"},
        {"secure": False, "refresh_name": "__Secure-y"},
        {"access_name": "__Host-x", "path": "/app"},
        {"access_name": "__Host-x", "domain": "example.com"},
        {"refresh_name": "__Host-y"},
        {"allowed_origins": ("evil.example",)},
        {"access_name": "same", "refresh_name": "same"},
    ],
)
def test_cookie_settings_refuse_broken_prefixes_and_origins(settings: dict[str, Any]) -> None:
    with pytest.raises(error_module.ConfigurationError):
        CookieSettings(enabled=True, **settings)


def test_cookie_defaults_follow_path_and_domain() -> None:
    assert CookieSettings(enabled=True, domain="example.com").access_name == "__Secure-mm_access"
    assert CookieSettings(enabled=True, allowed_origins=("https://App.Example:8443/",)).allowed_origins == (
        "https://app.example:8443",
    )


EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}


def test_cross_site_cookie_requests_are_refused_and_change_nothing(env: Env, make_client: MakeClient) -> None:
    client, tokens = _cookie_client(env, make_client)
    refresh_before = client.cookie(REFRESH, path="/auth")
    sid = tokens["session_id"]
    body = b'{"refresh_token": null}'
    for method, path in (
        ("POST", "/auth/refresh"),
        ("POST", "/auth/logout"),
        ("POST", "/app/notes"),
        ("DELETE", f"/auth/sessions/{sid}"),
    ):
        for headers in (EVIL, {**EVIL, **XRW}):
            r = client.request(method, path, content=body, headers=headers)
            assert_error(r, 403, "csrf_rejected")
            assert "set-cookie" not in r.headers, path
    # Nothing changed: same refresh cookie, session live, no note written.
    assert client.cookie(REFRESH, path="/auth") == refresh_before
    assert env.auth.sessions.get(sid).revoked_at is None
    assert client.notes == []
    # Safe methods are not state changes: reading works cross-site.
    assert client.get("/app/notes", headers=EVIL).status_code == 200
    assert client.get("/auth/me", headers=EVIL).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", **XRW},
        {"Sec-Fetch-Site": "cross-site", **XRW},
        {"Origin": "null", **XRW},
        {"Origin": "http://{host}", **XRW},  # the same host over plain http is another origin
        {"Sec-Fetch-Site": "same-origin"},  # no custom header
        {},
    ],
    ids=["foreign-origin", "cross-site-fetch", "null-origin", "http-downgrade", "no-header", "nothing"],
)
def test_each_csrf_rule_refuses_on_its_own(env: Env, make_client: MakeClient, headers: dict[str, str]) -> None:
    client, _ = _cookie_client(env, make_client)
    host = client.base_url.split("://", 1)[1]
    headers = {name: value.replace("{host}", host) for name, value in headers.items()}
    assert_error(client.post("/app/notes", headers=headers), 403, "csrf_rejected")
    assert_error(client.post("/auth/refresh", headers=headers), 403, "csrf_rejected")
    assert client.notes == []


def test_same_origin_cookie_requests_with_the_header_work(env: Env, make_client: MakeClient) -> None:
    client, tokens = _cookie_client(env, make_client)
    same = {"Origin": client.base_url, "Sec-Fetch-Site": "same-origin", **XRW}
    r = client.post("/app/notes", headers=same)
    assert r.status_code == 200, r.text
    assert client.notes == [tokens["user"]["id"]]
    assert client.post("/auth/refresh", headers=same).status_code == 200
    assert client.post("/app/notes", headers=XRW).status_code == 200  # no Origin (older browsers, same-origin GET-like)
    assert client.post("/auth/logout", headers={**same, "Sec-Fetch-Site": "same-site"}).status_code == 204
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is not None


def test_allowed_origins_admit_a_listed_front_end(env: Env, make_client: MakeClient) -> None:
    client, _ = _cookie_client(env, make_client, allowed_origins=("https://app.example",))
    headers = {"Origin": "https://app.example", "Sec-Fetch-Site": "same-site", **XRW}
    assert client.post("/app/notes", headers=headers).status_code == 200
    assert_error(client.post("/app/notes", headers={**headers, "Origin": "https://evil.example"}), 403, "csrf_rejected")


def test_bearer_requests_are_exempt_from_the_csrf_check(env: Env, make_client: MakeClient) -> None:
    client, tokens = _cookie_client(env, make_client)
    r = client.post("/app/notes", headers={**EVIL, **bearer(tokens)})
    assert r.status_code == 200, r.text
    r = client.delete(f"/auth/sessions/{tokens['session_id']}", headers={**EVIL, **bearer(tokens)})
    assert r.status_code == 204


def test_logout_after_the_access_token_expired_uses_the_refresh_cookie(env: Env, make_client: MakeClient) -> None:
    client, tokens = _cookie_client(env, make_client)
    env.clock.advance(minutes=16)
    assert_error(client.get("/auth/me"), 401, "invalid_token")  # the access cookie is still sent, but expired
    r = client.post("/auth/logout", headers=XRW)
    assert r.status_code == 204, r.text
    cleared = set_cookies(r)
    assert set(cleared) == {ACCESS, REFRESH} and all(c["max-age"] == "0" for c in cleared.values())
    assert client.cookie(ACCESS) is None and client.cookie(REFRESH, path="/auth") is None
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is not None


def test_logout_after_the_access_token_expired_uses_the_body_refresh_token(env: Env, client: Client) -> None:
    register(client)
    tokens = login(client, env)
    env.clock.advance(minutes=16)
    r = client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens))
    assert r.status_code == 204, r.text
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is not None
    assert_error(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    # Nothing valid: 401, as before (bearer mode is unchanged).
    assert_error(client.post("/auth/logout", json={"refresh_token": "x" * 128}), 401, "invalid_token")


def test_logout_with_nothing_valid_still_clears_the_cookies(env: Env, make_client: MakeClient) -> None:
    client, _ = _cookie_client(env, make_client)
    assert client.post("/auth/logout", headers=XRW).status_code == 204
    client.set_cookie(ACCESS, "garbage")
    r = client.post("/auth/logout", headers=XRW)
    assert_error(r, 401, "invalid_token")
    cleared = set_cookies(r)
    assert set(cleared) == {ACCESS, REFRESH} and all(c["max-age"] == "0" for c in cleared.values())


def test_cookies_disabled_by_default(env: Env, client: Client) -> None:
    register(client)
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": env.outbox.last_code("ada@example.com")})
    # No token cookie; only the login-binding cookies (docs/integrations.md), and the device token in the body.
    assert set(set_cookies(r)) == {"__Host-mm_login", "__Host-mm_device"}
    assert r.json()["device_token"] and "refresh_token" in r.json()
    client.set_cookie(ACCESS, r.json()["access_token"])
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
        # "unix": a peer that is not an IP is the trusted proxy in front of a Unix socket
        (None, "1.1.1.1", ("unix",), "1.1.1.1"),
        ("", "1.1.1.1", ("unix",), "1.1.1.1"),
        ("testclient", "1.1.1.1", ("UNIX",), "1.1.1.1"),
        (None, "1.1.1.1", ("10.0.0.0/8",), None),
        (None, None, ("unix",), None),
        (None, "", ("unix",), None),
        (None, "1.1.1.1, garbage", ("unix",), None),
        (None, "9.9.9.9, 1.1.1.1", ("unix",), "1.1.1.1"),
        (None, "9.9.9.9, 1.1.1.1, 10.0.0.2", ("unix", "10.0.0.0/8"), "1.1.1.1"),
        (None, ["9.9.9.9", "[2001:db8::2]:443"], ("unix",), "2001:db8::2"),
        (None, "10.0.0.3, 10.0.0.2", ("unix", "10.0.0.0/8"), "10.0.0.3"),
        # "unix" trusts no IP peer
        ("203.0.113.1", "1.1.1.1", ("unix",), "203.0.113.1"),
        ("127.0.0.1", "1.1.1.1", ("unix",), "127.0.0.1"),
    ],
)
def test_client_ip(peer: str | None, xff: Any, trusted: tuple[str, ...], expected: str | None) -> None:
    assert client_ip(peer, xff, trusted) == expected


def test_parse_trusted_proxies_keeps_unix_as_a_literal_entry() -> None:
    parsed = parse_trusted_proxies(["10.0.0.0/8", " Unix ", "unix", "::1"])
    assert parsed == (ipaddress.ip_network("10.0.0.0/8"), "unix", ipaddress.ip_network("::1"))
    assert parse_trusted_proxies("unix") == ("unix",)


@pytest.mark.parametrize("entry", ["unix:/run/app.sock", "unixx", "localhost", ""])
def test_parse_trusted_proxies_refuses_other_names(entry: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_trusted_proxies([entry])
    assert info.value.variable == "trusted_proxies"
    assert '"unix"' in str(info.value)


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8",), ("unix",)], ids=["none", "ip-only", "unix"])
def test_a_request_without_a_peer_ip_takes_the_forwarded_address_only_when_unix_is_trusted(
    env: Env, make_client: MakeClient, trusted: tuple[str, ...]
) -> None:
    client = make_client(peer=None, trusted_proxies=list(trusted))
    r = client.post(
        "/auth/login",
        json={"email": "x@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "9.9.9.9, 198.51.100.23"},
    )
    assert r.status_code == 401
    assert _failed_login_ips(env) == (["198.51.100.23"] if "unix" in trusted else [None])


def test_requests_without_a_peer_ip_share_one_login_bucket(make_client: MakeClient) -> None:
    config = test_config(login_ip_limit=Limit(2, timedelta(minutes=15)), no_ip_limit_factor=2)
    memory = MindmeshAuth(store="memory://", mailer=Outbox(), config=config, clock=FakeClock())
    try:
        client = make_client(auth=memory, peer=None)  # X-Forwarded-For from an untrusted socket peer is ignored
        statuses = _eleven_failed_logins(client, lambda i: f"198.51.100.{i + 1}")
        assert statuses == [401] * 4 + [429] * 7
        limited = memory.audit.query(types=[AuditEventType.RATE_LIMITED])
        assert len(limited) == 7 and {e.ip_address for e in limited} == {None}
    finally:
        memory.close()


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
    client = make_client(auth=memory, profile_fields=["first_name"], profile_output=["first_name"])
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


# ---------------------------------------------------------------------------
# Caching and body size
# ---------------------------------------------------------------------------
def _assert_no_store(r: Any) -> None:
    assert r.headers.get("cache-control") == "no-store", r.headers
    assert r.headers.get("pragma") == "no-cache"


def test_every_auth_response_is_no_store(env: Env, client: Client) -> None:
    replies = [client.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})]
    replies.append(client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}))
    code = env.outbox.last_code("ada@example.com")
    replies.append(client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": code}))
    tokens = replies[-1].json()
    replies.append(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))
    fresh = replies[-1].json()
    replies += [
        client.get("/auth/me", headers=bearer(fresh)),
        client.get("/auth/sessions", headers=bearer(fresh)),
        client.get("/auth/me"),  # an error
        client.post("/auth/login", content=b"x" * 70_000),  # the 413
        client.post("/auth/logout", headers=bearer(fresh)),
    ]
    assert [r.status_code for r in replies] == [201, 200, 200, 200, 200, 200, 401, 413, 204]
    for r in replies:
        _assert_no_store(r)


def test_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client()
    r = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "pad": "x" * 70_000})
    err = assert_error(r, 413, "payload_too_large")
    assert "field" not in err
    small = make_client(max_body_bytes=128)
    assert_error(small.post("/auth/login", json={"email": "ada@example.com", "password": "p" * 200}), 413, "payload_too_large")
    large = make_client(max_body_bytes=200_000)
    r = large.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "pad": "x" * 70_000})
    assert_error(r, 401, "invalid_credentials")  # read and parsed: the limit is the router's


class _CountingStream(io.RawIOBase):
    """A request body of ``total`` bytes that counts how much the app read."""

    def __init__(self, total: int) -> None:
        self.total, self.consumed = total, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.total - self.consumed)
        buffer[:n] = b"x" * n
        self.consumed += n
        return n


def _send_huge_body(client: Client, total: int, *, announce_length: bool) -> tuple[int, bytes, int]:
    """POST ``total`` bytes to /auth/login, streamed; (status, body, bytes the app consumed)."""
    path = "/auth/login"
    if client.framework == "fastapi":
        import asyncio

        chunk = 64 * 1024
        consumed = 0
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal consumed
            size = min(chunk, total - consumed)
            consumed += size
            return {"type": "http.request", "body": b"x" * size, "more_body": consumed < total}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
        if announce_length:
            headers.append((b"content-length", str(total).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": (PEER, 50000),
            "server": ("testserver", 80),
        }
        asyncio.run(client.app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, body, consumed
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    stream = _CountingStream(total)
    environ = EnvironBuilder(path, method="POST", content_type="application/json").get_environ()
    environ.update({"wsgi.input": stream, "REMOTE_ADDR": PEER})
    environ.pop("CONTENT_LENGTH", None)
    if announce_length:
        environ["CONTENT_LENGTH"] = str(total)
    else:
        environ["wsgi.input_terminated"] = True  # chunked: the server marks the end of the stream
    app_iter, status_line, _headers = run_wsgi_app(client.app, environ)
    body = b"".join(app_iter)
    return int(status_line.split()[0]), body, stream.consumed


@pytest.mark.parametrize("announce_length", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_body_is_refused_without_being_read(client: Client, announce_length: bool) -> None:
    total = 200 * 1024 * 1024
    status, body, consumed = _send_huge_body(client, total, announce_length=announce_length)
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    if announce_length:
        assert consumed <= 64 * 1024  # refused on the header (at most one chunk handed over by the server)
    else:
        assert consumed <= 2 * 64 * 1024 + 1  # read only up to the limit + 1


# ---------------------------------------------------------------------------
# What the user object shows
# ---------------------------------------------------------------------------
CORE_USER_KEYS = {"id", "email", "email_verified", "blocked", "created_at", "updated_at"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [((), set()), (("first_name",), {"first_name"}), (("first_name", "role", "nickname"), {"first_name", "role"})],
    ids=["default-none", "first-name", "listed-role"],
)
def test_user_object_carries_only_the_listed_profile_fields(
    make_client: MakeClient, output: tuple[str, ...], expected: set[str]
) -> None:
    outbox = Outbox()
    memory = MindmeshAuth(store="memory://", mailer=outbox, config=test_config(), clock=FakeClock())
    memory.auth.register(
        "ada@example.com", PASSWORD, first_name="Ada", role="admin", totp_secret="JBSWY3DPEHPK3PXP", internal_note="vip"
    )
    client = make_client(auth=memory, profile_output=output, profile_fields=["first_name"])
    client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    r = client.post("/auth/verify-otp", json={"email": "ada@example.com", "code": outbox.last_code("ada@example.com")})
    assert r.status_code == 200, r.text
    tokens = r.json()
    me = client.get("/auth/me", headers=bearer(tokens)).json()["user"]
    registered = client.post("/auth/register", json={"email": "bob@example.com", "password": PASSWORD}).json()["user"]
    for user in (tokens["user"], me):
        assert set(user) == CORE_USER_KEYS | expected
        assert "JBSWY3DPEHPK3PXP" not in r.text and "vip" not in json.dumps(me)
    assert set(registered) == CORE_USER_KEYS  # bob has no profile fields at all
    memory.close()
