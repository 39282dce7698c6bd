"""``POST /password/change``: a self-service password change over HTTP, once for each framework,
and the route table's ``hashing`` field, which says which routes may run bcrypt.

Every HTTP test runs for FastAPI (router) and Flask (blueprint), on SQLite through the Peewee
store (the ``env`` fixture), except the OpenAPI check, which is FastAPI's alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _ci import require

from mindmesh_auth import AuditEventType, MindmeshAuth
from mindmesh_auth.core.models import LoginResult
from mindmesh_auth.hashing import hashing_operations
from mindmesh_auth.integrations._endpoints import Endpoints, HttpRequest
from mindmesh_auth.integrations._http import ROUTES, CookieSettings
from mindmesh_auth.testing import FakeClock, Outbox, test_config

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
    set_cookies,
    signed_in,
)

EMAIL = "ada@example.com"
NEW = "a brand new passphrase for ada"
WRONG = "not the right password at all"
CHANGE = "/auth/password/change"



def _changed_events(env: Env, user_id: str) -> list[Any]:
    return env.auth.audit.query(user_id=user_id, types=[AuditEventType.PASSWORD_CHANGED])


def _body(current: str = PASSWORD, new: str = NEW) -> dict[str, str]:
    return {"current_password": current, "new_password": new}


def _password_works(client: Client, password: str) -> bool:
    r = client.post("/auth/login", json={"email": EMAIL, "password": password})
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def _assert_unchanged(env: Env, client: Client, user_id: str, *sessions: dict[str, Any]) -> None:
    """Every session still signs the account in, the old password works, the new one does not,
    no notice went out and nothing was audited."""
    for pair in sessions:
        me = client.get("/auth/me", headers=bearer(pair))
        assert me.status_code == 200 and me.json()["user"]["id"] == user_id
    assert _password_works(client, PASSWORD)
    assert not _password_works(client, NEW)
    assert env.outbox.for_address(EMAIL, "password_changed") == []
    assert _changed_events(env, user_id) == []


# ---------------------------------------------------------------------------
# Bearer tokens
# ---------------------------------------------------------------------------
def test_the_right_password_changes_it_keeps_this_session_and_ends_the_others(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    other = login(client, env)  # a second session of the same account
    assert client.get("/auth/me", headers=bearer(other)).status_code == 200

    r = client.post(CHANGE, json=_body(), headers=bearer(tokens))
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["Cache-Control"] == "no-store"
    assert "set-cookie" not in r.headers  # token cookies are off

    me = client.get("/auth/me", headers=bearer(tokens))  # the same token still works
    assert me.status_code == 200 and me.json()["user"]["id"] == user_id
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is None
    assert_error(client.get("/auth/me", headers=bearer(other)), 401, "invalid_token")
    assert env.auth.sessions.get(other["session_id"]).revoked_at is not None
    assert client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200

    assert not _password_works(client, PASSWORD)
    assert login(client, env, password=NEW)["user"]["id"] == user_id
    notices = env.outbox.for_address(EMAIL, "password_changed")
    assert len(notices) == 1
    for secret in (PASSWORD, NEW, tokens["access_token"]):
        assert secret not in notices[0].text
    assert [e.email for e in _changed_events(env, user_id)] == [EMAIL]


def test_a_wrong_current_password_is_422_and_changes_nothing(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    other = login(client, env)
    r = client.post(CHANGE, json=_body(current=WRONG), headers=bearer(tokens))
    error = assert_error(r, 422, "invalid_password")
    assert error["field"] == "current_password"
    for secret in (WRONG, NEW, PASSWORD):
        assert secret not in r.text
    assert r.headers["Cache-Control"] == "no-store"
    _assert_unchanged(env, client, tokens["user"]["id"], tokens, other)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("short", "at least"),
        ("   \t    ", "blank"),
        (EMAIL, "email address"),
        ("x" * 1025, "at most"),
    ],
    ids=["too-short", "blank", "the-address", "too-long"],
)
def test_a_new_password_the_policy_refuses_is_422_and_changes_nothing(env: Env, client: Client, new: str, message: str) -> None:
    tokens = signed_in(client, env)
    other = login(client, env)
    r = client.post(CHANGE, json=_body(new=new), headers=bearer(tokens))
    error = assert_error(r, 422, "invalid_password")
    assert error["field"] == "new_password"
    assert message in error["message"]
    assert PASSWORD not in r.text
    assert not new.strip() or new not in r.text
    _assert_unchanged(env, client, tokens["user"]["id"], tokens, other)


@pytest.mark.parametrize(
    ("current", "new"),
    [(WRONG, "short"), ("x" * 1025, NEW), ("x" * 1025, "y" * 1025)],
    ids=["wrong-current-and-short-new", "too-long-current", "both-too-long"],
)
def test_the_current_password_is_checked_first(env: Env, client: Client, current: str, new: str) -> None:
    """A fault of the current password is reported as such even when the new one is refused too."""
    tokens = signed_in(client, env)
    r = client.post(CHANGE, json=_body(current=current, new=new), headers=bearer(tokens))
    error = assert_error(r, 422, "invalid_password")
    assert error["field"] == "current_password"
    _assert_unchanged(env, client, tokens["user"]["id"], tokens)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not.a.jwt", "Basic " + PASSWORD],
    ids=["no-token", "bad-token", "basic"],
)
def test_without_a_valid_token_it_is_401(env: Env, client: Client, authorization: str | None) -> None:
    tokens = signed_in(client, env)
    headers = {} if authorization is None else {"Authorization": authorization}
    r = client.post(CHANGE, json=_body(), headers=headers)
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_unchanged(env, client, tokens["user"]["id"], tokens)


def test_an_expired_access_token_is_401(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    env.clock.advance(minutes=16)
    assert_error(client.post(CHANGE, json=_body(), headers=bearer(tokens)), 401, "invalid_token")
    assert _password_works(client, PASSWORD) and not _password_works(client, NEW)


@pytest.mark.parametrize(
    ("options", "status", "code", "field"),
    [
        ({}, 422, "invalid_input", "current_password"),
        ({"json": {"new_password": NEW}}, 422, "invalid_input", "current_password"),
        ({"json": {"current_password": PASSWORD}}, 422, "invalid_input", "new_password"),
        ({"json": {"current_password": PASSWORD, "new_password": None}}, 422, "invalid_input", "new_password"),
        ({"json": {"current_password": 12345678, "new_password": NEW}}, 422, "invalid_input", "current_password"),
        ({"json": {"current_password": PASSWORD, "new_password": [NEW]}}, 422, "invalid_input", "new_password"),
        ({"json": {**_body(), "pad": "x" * 70_000}}, 413, "payload_too_large", None),
    ],
    ids=["no-body", "no-current", "no-new", "new-null", "current-number", "new-list", "too-large"],
)
def test_a_bad_body_is_refused_and_changes_nothing(
    env: Env, client: Client, options: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    tokens = signed_in(client, env)
    r = client.post(CHANGE, headers=bearer(tokens), **options)
    error = assert_error(r, status, code)
    assert error.get("field") == field
    assert PASSWORD not in r.text and NEW not in r.text
    _assert_unchanged(env, client, tokens["user"]["id"], tokens)


def test_wrong_current_passwords_count_with_failed_logins_until_429(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    statuses: list[int] = []
    for _ in range(30):
        r = client.post(CHANGE, json=_body(current=WRONG), headers=bearer(tokens))
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {422}
    assert len(statuses) - 1 >= env.auth.config.login_email_limit.count  # the free attempts were granted first
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    # The budget is the account's: the right password now waits as well, and nothing changed.
    assert_error(client.post(CHANGE, json=_body(), headers=bearer(tokens)), 429, "rate_limited")
    assert env.outbox.for_address(EMAIL, "password_changed") == []
    assert _changed_events(env, tokens["user"]["id"]) == []


def test_an_account_deleted_meanwhile_is_401(env: Env, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token was valid when read, the account went before the change ran (an administrator)."""
    tokens = signed_in(client, env)
    original = env.auth.password.change

    def racing(uid: str, *args: Any, **kwargs: Any) -> None:
        env.auth.user.delete(uid)
        original(uid, *args, **kwargs)

    monkeypatch.setattr(env.auth.password, "change", racing)
    assert_error(client.post(CHANGE, json=_body(), headers=bearer(tokens)), 401, "invalid_token")
    assert env.auth.user.get_by_email(EMAIL) is None
    assert env.outbox.for_address(EMAIL, "password_changed") == []


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def test_a_cookie_change_needs_the_csrf_header_and_keeps_the_cookies(env: Env, make_client: MakeClient) -> None:
    client = make_client(cookies=CookieSettings(enabled=True), https=True)
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    other = env.auth.auth.login(EMAIL, PASSWORD)  # a second session, outside the browser
    assert other.handle is not None
    second = env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL), handle=other.handle)
    access, refresh = client.cookie(ACCESS), client.cookie(REFRESH, path="/auth")
    assert access is not None and refresh is not None

    for headers in ({}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", **XRW}):
        r = client.post(CHANGE, json=_body(), headers=headers)
        assert_error(r, 403, "csrf_rejected")
        assert "set-cookie" not in r.headers
    assert env.auth.sessions.get(second.session_id).revoked_at is None
    assert env.outbox.for_address(EMAIL, "password_changed") == []
    assert _changed_events(env, user_id) == []
    assert client.get("/auth/me").status_code == 200  # the cookies still authenticate

    r = client.post(CHANGE, json=_body(), headers=XRW)
    assert r.status_code == 204, r.text
    assert set_cookies(r) == {}  # nothing set, nothing cleared
    assert client.cookie(ACCESS) == access and client.cookie(REFRESH, path="/auth") == refresh
    me = client.get("/auth/me")
    assert me.status_code == 200 and me.json()["user"]["id"] == user_id
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is None
    assert env.auth.sessions.get(second.session_id).revoked_at is not None
    assert len(env.outbox.for_address(EMAIL, "password_changed")) == 1
    assert [e.email for e in _changed_events(env, user_id)] == [EMAIL]


def test_a_wrong_current_password_with_cookies_keeps_them(env: Env, make_client: MakeClient) -> None:
    client = make_client(cookies=CookieSettings(enabled=True), https=True)
    signed_in(client, env)
    r = client.post(CHANGE, json=_body(current=WRONG), headers=XRW)
    assert assert_error(r, 422, "invalid_password")["field"] == "current_password"
    assert "set-cookie" not in r.headers
    assert client.get("/auth/me").status_code == 200
    assert env.outbox.for_address(EMAIL, "password_changed") == []


# ---------------------------------------------------------------------------
# The hashing bound
# ---------------------------------------------------------------------------
def test_a_change_beyond_the_hashing_bound_gets_503_and_changes_nothing(busy_env: Env, framework: str) -> None:
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
        r = client.post(CHANGE, json=_body(), headers=bearer(tokens))
        assert_error(r, 503, "overloaded")
        assert r.headers["Retry-After"] == "1" and r.headers["Cache-Control"] == "no-store"
        assert PASSWORD not in r.text and NEW not in r.text
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 200  # token checks do not wait
    finally:
        release.set()
        thread.join(HANG_GUARD)
        setattr(hasher, "verify", original)  # noqa: B010
    assert answers == [200]
    assert busy_env.outbox.for_address(EMAIL, "password_changed") == []
    r = client.post(CHANGE, json=_body(), headers=bearer(tokens))  # the place is free again
    assert r.status_code == 204, r.text
    assert len(busy_env.outbox.for_address(EMAIL, "password_changed")) == 1


# ---------------------------------------------------------------------------
# OpenAPI (FastAPI)
# ---------------------------------------------------------------------------
def test_the_route_is_documented(env: Env) -> None:
    require("fastapi")
    client = build_client("fastapi", env.auth)
    operation = client.get("/openapi.json").json()["paths"][CHANGE]["post"]
    assert operation.get("security")
    assert set(operation["responses"]) == {"204", "401", "403", "413", "422", "429", "503"}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["current_password", "new_password"]
    assert {schema["properties"][name]["type"] for name in schema["required"]} == {"string"}
    assert operation["requestBody"]["required"] is True


# ---------------------------------------------------------------------------
# The route table's hashing field
# ---------------------------------------------------------------------------
class _Called(Exception):  # noqa: N818  # a marker, not an error
    """Raised by a facade operation stub: the route's endpoint called it."""

    def __init__(self, group: str, name: str) -> None:
        super().__init__(group, name)
        self.operation = (group, name)


def _any_config_hashes() -> dict[str, tuple[str, ...]]:
    """The facade operations that may run bcrypt under some configuration (``otp_hash`` either way)."""
    union: dict[str, set[str]] = {}
    for otp_hash in ("hmac", "bcrypt"):
        for group, names in hashing_operations(test_config(otp_hash=otp_hash)).items():
            union.setdefault(group, set()).update(names)
    return {group: tuple(sorted(names)) for group, names in union.items()}


def _calls_of_every_route(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str] | None]:
    """For each route, the hashing operation its endpoint calls (``None``: none), found by
    running the endpoint with every such operation replaced by a stub that raises ``_Called``.

    Every body member is a string (a profile an empty object) and the request carries the
    access token of a fresh session (``/logout`` ends one), so each endpoint reaches the
    facade call it was written for."""
    outbox, clock = Outbox(), FakeClock()
    auth = MindmeshAuth(store="memory://", mailer=outbox, config=test_config(), clock=clock)
    auth.auth.register(EMAIL, PASSWORD)

    login, verify_otp = auth.auth.login, auth.auth.verify_otp  # before the stubs replace them

    def sign_in() -> LoginResult:
        clock.advance(minutes=11)  # past the code-send window of the previous login
        challenge = login(EMAIL, PASSWORD)
        return verify_otp(EMAIL, outbox.last_code(EMAIL), handle=challenge.handle)

    for group, names in _any_config_hashes().items():
        for name in names:

            def stub(*_args: Any, _op: tuple[str, str] = (group, name), **_kwargs: Any) -> None:
                raise _Called(*_op)

            monkeypatch.setattr(getattr(auth, group), name, stub)
    endpoints = Endpoints(auth, prefix="/auth")
    calls: dict[str, tuple[str, str] | None] = {}
    try:
        for spec in ROUTES:
            result = sign_in()
            members = spec.body or ()
            body = {m.name: ({} if m.kind == "profile" else "x" * 16) for m in members}
            request = HttpRequest(
                body=json.dumps(body).encode() if spec.body is not None else b"",
                method=spec.method,
                content_type="application/json",
                authorization=f"Bearer {result.access_token}",
                path_params={"session_id": result.session_id},
                peer="203.0.113.9",
            )
            try:
                endpoints.handle(spec.name, request)
            except _Called as called:
                calls[spec.name] = called.operation
            else:
                calls[spec.name] = None
    finally:
        auth.close()
    return calls


def test_exactly_the_routes_that_may_hash_say_so_in_the_route_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A route whose endpoint calls an operation of ``hashing_operations(config)`` (for
    ``otp_hash="hmac"`` or ``"bcrypt"``) names it in ``hashing``; no other route sets it.
    The FastAPI router picks the hashing pool from that field alone."""
    calls = _calls_of_every_route(monkeypatch)
    # The stubs were reached: the routes below hash under every config.
    assert {name for name, op in calls.items() if op is not None} >= {"register", "login", "delete_account", "password_change"}
    for spec in ROUTES:
        assert spec.hashing == calls[spec.name], spec.name
    # Each config's hashing routes are among the declared ones, and the code routes hash only with bcrypt codes.
    declared = {spec.name for spec in ROUTES if spec.hashing is not None}
    hashing_by_config: dict[str, set[str]] = {}
    for otp_hash in ("hmac", "bcrypt"):
        operations = hashing_operations(test_config(otp_hash=otp_hash))
        hashing_by_config[otp_hash] = {
            name for name, op in calls.items() if op is not None and op[1] in operations.get(op[0], ())
        }
        assert hashing_by_config[otp_hash] <= declared, otp_hash
    assert hashing_by_config["bcrypt"] == declared
    assert {"otp_send", "otp_verify", "verify_otp", "email_change_confirm"} == declared - hashing_by_config["hmac"]


@pytest.mark.parametrize("otp_hash", ["hmac", "bcrypt"])
def test_the_fastapi_router_runs_exactly_the_hashing_routes_on_the_hashing_pool(otp_hash: str) -> None:
    """The router reads the route table: a route goes to the hashing pool iff its ``hashing``
    operation hashes under this config (the async facade's own rule), every other to the general pool."""
    require("fastapi")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from mindmesh_auth.aio import AsyncMindmeshAuth
    from mindmesh_auth.integrations._endpoints import HttpResponse
    from mindmesh_auth.integrations.fastapi import create_auth_router

    auth = MindmeshAuth(store="memory://", mailer=Outbox(), config=test_config(otp_hash=otp_hash), clock=FakeClock())
    a = AsyncMindmeshAuth(auth)
    pools: dict[str, str] = {}

    def runner(pool: str) -> Callable[..., Any]:
        async def run(_handle: Any, name: str, _request: HttpRequest) -> HttpResponse:
            pools[name] = pool
            return HttpResponse(204)

        return run

    a._call = runner("general")  # type: ignore[method-assign]
    a._call_hashing = runner("hashing")  # type: ignore[method-assign]
    app = FastAPI()
    app.include_router(create_auth_router(a))
    client = TestClient(app)
    try:
        for spec in ROUTES:
            r = client.request(spec.method, "/auth" + spec.path.replace("{session_id}", "s1"))
            assert r.status_code == 204, (spec.name, r.text)
    finally:
        auth.close()
    operations = hashing_operations(auth.config)
    expected = {
        spec.name: "hashing" if spec.hashing is not None and spec.hashing[1] in operations.get(spec.hashing[0], ()) else "general"
        for spec in ROUTES
    }
    assert pools == expected
    assert pools["password_change"] == pools["login"] == pools["delete_account"] == "hashing"
    assert pools["me"] == pools["refresh"] == "general"
    assert pools["verify_otp"] == ("hashing" if otp_hash == "bcrypt" else "general")
