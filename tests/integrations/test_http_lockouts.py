"""The login handle and the device token over HTTP, on FastAPI and Flask (issue 11, points 3 and 4)."""

from __future__ import annotations

from typing import Any

from mindmesh_auth.integrations._http import CookieSettings

from ._clients import PASSWORD, Env, MakeClient, assert_error, register

EMAIL = "ada@example.com"
LOGIN_COOKIE, DEVICE_COOKIE = "__Host-mm_login", "__Host-mm_device"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _set_cookie_names(r: Any) -> dict[str, str]:
    out = {}
    for header in r.header_list("set-cookie"):
        name, _, rest = header.partition("=")
        out[name] = rest.split(";", 1)[0].strip('"')  # Starlette writes an empty value as ""
    return out


def test_login_returns_the_handle_in_the_body_and_an_httponly_cookie(env: Env, make_client: MakeClient) -> None:
    client = make_client(https=True)
    register(client)
    r = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text
    handle = r.json()["login_handle"]
    [header] = [h for h in r.header_list("set-cookie") if h.startswith(f"{LOGIN_COOKIE}=")]
    lowered = header.lower()
    assert f"{LOGIN_COOKIE}={handle}" in header and "httponly" in lowered and "secure" in lowered
    assert "path=/" in lowered and "domain" not in lowered and "max-age=300" in lowered  # otp_ttl
    assert client.cookie(LOGIN_COOKIE) == handle


def test_a_strangers_guesses_without_the_handle_never_block_the_owner(env: Env, make_client: MakeClient) -> None:
    owner = make_client(https=True)
    stranger = make_client(https=True, peer="203.0.113.99")
    register(owner)
    assert owner.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).status_code == 200
    code = env.outbox.last_code(EMAIL)
    statuses = [
        stranger.post("/auth/verify-otp", json={"email": EMAIL, "code": _wrong(code)}).status_code for _ in range(25)
    ]
    assert statuses.count(401) == 20 and statuses.count(429) == 5
    # The owner's client sends the handle in its login cookie only (no body member): bound, accepted.
    r = owner.post("/auth/verify-otp", json={"email": EMAIL, "code": code})
    assert r.status_code == 200, r.text
    cookies = _set_cookie_names(r)
    assert cookies[LOGIN_COOKIE] == "" and cookies[DEVICE_COOKIE]  # the login cookie cleared, a device cookie set


def test_the_handle_in_the_body_binds_without_cookies(env: Env, make_client: MakeClient) -> None:
    client, stranger = make_client(), make_client(peer="203.0.113.98")  # plain HTTP: __Host- cookies are not kept
    register(client)
    handle = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["login_handle"]
    code = env.outbox.last_code(EMAIL)
    for _ in range(21):
        stranger.post("/auth/verify-otp", json={"email": EMAIL, "code": _wrong(code)})
    assert_error(stranger.post("/auth/verify-otp", json={"email": EMAIL, "code": code}), 429, "rate_limited")
    r = client.post("/auth/verify-otp", json={"email": EMAIL, "code": code, "login_handle": handle})
    assert r.status_code == 200, r.text
    assert r.json()["device_token"]


def test_the_device_cookie_keeps_the_owner_in_while_strangers_fail(env: Env, make_client: MakeClient) -> None:
    owner = make_client(https=True, cookies=CookieSettings(enabled=True))
    stranger = make_client(https=True, peer="203.0.113.97")
    other_browser = make_client(https=True, peer="198.51.100.23")
    register(owner)
    owner.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    r = owner.post("/auth/verify-otp", json={"email": EMAIL, "code": env.outbox.last_code(EMAIL)})
    assert r.status_code == 200, r.text
    assert "device_token" not in r.json()  # with token cookies on, the device cookie carries it
    [header] = [h for h in r.header_list("set-cookie") if h.startswith(f"{DEVICE_COOKIE}=")]
    lowered = header.lower()
    assert "httponly" in lowered and "secure" in lowered and "path=/" in lowered and "max-age=7776000" in lowered
    assert owner.cookie(DEVICE_COOKIE)
    for _ in range(10):
        r = stranger.post("/auth/login", json={"email": EMAIL, "password": "a wrong password"})
        assert r.status_code == 401, r.text
    # A browser that never logged in waits; the owner's browser (device cookie) does not.
    assert_error(other_browser.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}), 429, "rate_limited")
    r = owner.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_a_device_token_in_the_body_works_for_cookieless_clients(env: Env, make_client: MakeClient) -> None:
    client, stranger = make_client(), make_client(peer="203.0.113.96")
    register(client)
    handle = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["login_handle"]
    body = client.post(
        "/auth/verify-otp", json={"email": EMAIL, "code": env.outbox.last_code(EMAIL), "login_handle": handle}
    ).json()
    device = body["device_token"]
    for _ in range(10):
        stranger.post("/auth/login", json={"email": EMAIL, "password": "a wrong password"})
    app = make_client()  # a client that keeps no cookies at all: only the body carries the token
    assert_error(app.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}), 429, "rate_limited")
    r = app.post("/auth/login", json={"email": EMAIL, "password": PASSWORD, "device_token": device})
    assert r.status_code == 200, r.text
    assert_error(app.post("/auth/login", json={"email": EMAIL, "password": PASSWORD, "device_token": 7}), 422, "invalid_input")
