"""``POST /account/delete``: self-service account deletion over HTTP, once for each framework.

Every test runs for FastAPI (router) and Flask (blueprint), on SQLite through the Peewee
store (the ``env`` fixture), except the OpenAPI check, which is FastAPI's alone.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _ci import require

from mindmesh_auth import AuditEventType
from mindmesh_auth.integrations._http import CookieSettings

from ._clients import (
    ACCESS,
    HANG_GUARD,
    PASSWORD,
    REFRESH,
    XRW,
    Client,
    Env,
    MakeClient,
    assert_error,
    bearer,
    build_client,
    fastapi_client,
    flask_client,
    login,
    register,
    set_cookies,
    signed_in,
)

EMAIL = "ada@example.com"
WRONG = "not the right password at all"
DELETE = "/auth/account/delete"



def _deleted_events(env: Env, user_id: str) -> list[Any]:
    return env.auth.audit.query(user_id=user_id, types=[AuditEventType.ACCOUNT_DELETED])


# ---------------------------------------------------------------------------
# Bearer tokens
# ---------------------------------------------------------------------------
def test_the_right_password_deletes_the_account_and_ends_every_session(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    other = login(client, env)  # a second session of the same account
    assert client.get("/auth/me", headers=bearer(other)).status_code == 200

    r = client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens))
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["Cache-Control"] == "no-store"
    assert "set-cookie" not in r.headers  # token cookies are off

    assert env.auth.user.get_by_email(EMAIL) is None
    for pair in (tokens, other):
        assert_error(client.get("/auth/me", headers=bearer(pair)), 401, "invalid_token")
        r = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r.status_code == 401, r.text
        assert "access_token" not in r.text
    notices = env.outbox.for_address(EMAIL, "account_deleted")
    assert len(notices) == 1
    assert PASSWORD not in notices[0].text and tokens["access_token"] not in notices[0].text
    events = _deleted_events(env, user_id)
    assert [(e.reason, e.email) for e in events] == [("self", EMAIL)]

    # The address is free again: a new account, a new id.
    again = register(client)["user"]
    assert again["email"] == EMAIL and again["id"] != user_id
    assert login(client, env)["user"]["id"] == again["id"]


def test_a_wrong_password_is_422_and_changes_nothing(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    r = client.post(DELETE, json={"password": WRONG}, headers=bearer(tokens))
    error = assert_error(r, 422, "invalid_password")
    assert error["field"] == "password"
    assert WRONG not in r.text and PASSWORD not in r.text
    assert r.headers["Cache-Control"] == "no-store"

    me = client.get("/auth/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["user"]["id"] == user_id
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    assert env.auth.user.get_by_email(EMAIL) is not None
    assert env.outbox.for_address(EMAIL, "account_deleted") == []
    assert _deleted_events(env, user_id) == []


def test_the_password_is_checked_against_the_tokens_account(env: Env, client: Client) -> None:
    """Another account's password with one's own token deletes nothing: the token names the account."""
    register(client)
    bob_id = register(client, "bob@example.com")["user"]["id"]
    env.auth.password.change(bob_id, PASSWORD, "a different passphrase for bob")
    bob = login(client, env, "bob@example.com", "a different passphrase for bob")
    assert_error(client.post(DELETE, json={"password": PASSWORD}, headers=bearer(bob)), 422, "invalid_password")
    assert env.auth.user.get_by_email(EMAIL) is not None and env.auth.user.get_by_email("bob@example.com") is not None

    r = client.post(DELETE, json={"password": "a different passphrase for bob"}, headers=bearer(bob))
    assert r.status_code == 204, r.text
    assert env.auth.user.get_by_email("bob@example.com") is None
    assert env.auth.user.get_by_email(EMAIL) is not None  # only the token's account went


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not.a.jwt", "Basic " + PASSWORD],
    ids=["no-token", "bad-token", "basic"],
)
def test_without_a_valid_token_it_is_401(env: Env, client: Client, authorization: str | None) -> None:
    signed_in(client, env)
    headers = {} if authorization is None else {"Authorization": authorization}
    r = client.post(DELETE, json={"password": PASSWORD}, headers=headers)
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert env.auth.user.get_by_email(EMAIL) is not None
    assert env.outbox.for_address(EMAIL, "account_deleted") == []


def test_an_expired_access_token_is_401(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    env.clock.advance(minutes=16)
    assert_error(client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens)), 401, "invalid_token")
    assert env.auth.user.get_by_email(EMAIL) is not None


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        ({}, 422, "invalid_input"),
        ({"json": {}}, 422, "invalid_input"),
        ({"json": {"password": None}}, 422, "invalid_input"),
        ({"json": {"password": 12345678}}, 422, "invalid_input"),
        ({"json": {"password": [PASSWORD]}}, 422, "invalid_input"),
        ({"json": {"password": PASSWORD, "pad": "x" * 70_000}}, 413, "payload_too_large"),
    ],
    ids=["no-body", "empty-object", "null", "number", "list", "too-large"],
)
def test_a_bad_body_is_refused_and_changes_nothing(
    env: Env, client: Client, options: dict[str, Any], status: int, code: str
) -> None:
    tokens = signed_in(client, env)
    r = client.post(DELETE, headers=bearer(tokens), **options)
    error = assert_error(r, status, code)
    if status == 422:
        assert error["field"] == "password"
    assert PASSWORD not in r.text
    assert env.auth.user.get_by_email(EMAIL) is not None
    assert client.get("/auth/me", headers=bearer(tokens)).status_code == 200


def test_wrong_passwords_count_with_failed_logins_until_429(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    statuses: list[int] = []
    for _ in range(30):
        r = client.post(DELETE, json={"password": WRONG}, headers=bearer(tokens))
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {422}
    assert len(statuses) - 1 >= env.auth.config.login_email_limit.count  # the free attempts were granted first
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    # The budget is the account's: the right password now waits as well, and nothing was deleted.
    assert_error(client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens)), 429, "rate_limited")
    assert env.auth.user.get_by_email(EMAIL) is not None


def test_an_account_deleted_meanwhile_is_401(env: Env, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token was valid when read, the account went before the deletion ran (an administrator)."""
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    original = env.auth.account.delete

    def racing(uid: str, password: str, **kwargs: Any) -> None:
        env.auth.user.delete(uid)
        original(uid, password, **kwargs)

    monkeypatch.setattr(env.auth.account, "delete", racing)
    assert_error(client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens)), 401, "invalid_token")
    assert [e.reason for e in _deleted_events(env, user_id)] == ["admin"]


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def test_cookie_deletion_needs_the_csrf_header_and_clears_the_cookies(env: Env, make_client: MakeClient) -> None:
    client = make_client(cookies=CookieSettings(enabled=True), https=True)
    tokens = signed_in(client, env)
    assert client.cookie(ACCESS) is not None and client.cookie(REFRESH, path="/auth") is not None

    for headers in ({}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", **XRW}):
        r = client.post(DELETE, json={"password": PASSWORD}, headers=headers)
        assert_error(r, 403, "csrf_rejected")
        assert "set-cookie" not in r.headers
    assert env.auth.user.get_by_email(EMAIL) is not None
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is None
    assert client.get("/auth/me").status_code == 200  # the cookies still authenticate

    r = client.post(DELETE, json={"password": PASSWORD}, headers=XRW)
    assert r.status_code == 204, r.text
    cleared = set_cookies(r)
    assert set(cleared) == {ACCESS, REFRESH} and all(c["max-age"] == "0" for c in cleared.values())
    assert cleared[ACCESS]["path"] == "/" and cleared[REFRESH]["path"] == "/auth"
    assert client.cookie(ACCESS) is None and client.cookie(REFRESH, path="/auth") is None
    assert env.auth.user.get_by_email(EMAIL) is None
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is not None
    assert len(env.outbox.for_address(EMAIL, "account_deleted")) == 1


def test_a_wrong_password_with_cookies_keeps_them(env: Env, make_client: MakeClient) -> None:
    client = make_client(cookies=CookieSettings(enabled=True), https=True)
    signed_in(client, env)
    r = client.post(DELETE, json={"password": WRONG}, headers=XRW)
    assert_error(r, 422, "invalid_password")
    assert "set-cookie" not in r.headers
    assert client.get("/auth/me").status_code == 200
    assert env.auth.user.get_by_email(EMAIL) is not None


# ---------------------------------------------------------------------------
# The hashing bound
# ---------------------------------------------------------------------------
def test_a_deletion_beyond_the_hashing_bound_gets_503_and_deletes_nothing(busy_env: Env, framework: str) -> None:
    client = build_client(framework, busy_env.auth)
    tokens = signed_in(client, busy_env)
    busy_env.auth.auth.register("bob@example.com", PASSWORD)
    other = fastapi_client(client.app) if framework == "fastapi" else flask_client(client.app)
    hasher = busy_env.auth._kernel.hasher
    original = hasher.verify
    entered, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(HANG_GUARD), "never released"
        return original(*args, **kwargs)

    answers: list[int] = []
    body = {"email": "bob@example.com", "password": PASSWORD}
    thread = threading.Thread(target=lambda: answers.append(other.post("/auth/login", json=body).status_code))
    setattr(hasher, "verify", held)  # noqa: B010  # a method replaced on the instance
    try:
        thread.start()
        assert entered.wait(HANG_GUARD)  # the one hashing place is taken
        r = client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens))
        assert_error(r, 503, "overloaded")
        assert r.headers["Retry-After"] == "1" and r.headers["Cache-Control"] == "no-store"
        assert PASSWORD not in r.text
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 200  # token checks do not wait
    finally:
        release.set()
        thread.join(HANG_GUARD)
        setattr(hasher, "verify", original)  # noqa: B010
    assert answers == [200]
    assert busy_env.auth.user.get_by_email(EMAIL) is not None
    assert busy_env.outbox.for_address(EMAIL, "account_deleted") == []
    r = client.post(DELETE, json={"password": PASSWORD}, headers=bearer(tokens))  # the place is free again
    assert r.status_code == 204, r.text
    assert busy_env.auth.user.get_by_email(EMAIL) is None


# ---------------------------------------------------------------------------
# OpenAPI (FastAPI)
# ---------------------------------------------------------------------------
def test_the_route_is_documented(env: Env) -> None:
    require("fastapi")
    client = build_client("fastapi", env.auth)
    operation = client.get("/openapi.json").json()["paths"][DELETE]["post"]
    assert operation.get("security")
    assert set(operation["responses"]) == {"204", "401", "403", "413", "422", "429", "503"}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["password"] and schema["properties"]["password"]["type"] == "string"
    assert operation["requestBody"]["required"] is True
