"""``POST /account/email`` and ``POST /account/email/confirm``: the e-mail change over HTTP,
once for each framework.

Every test runs for FastAPI (router) and Flask (blueprint), on SQLite through the Peewee
store (the ``env`` fixture), except the OpenAPI check, which is FastAPI's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ci import require

from mindmesh_auth import AuditEventType
from mindmesh_auth.core.errors import UserNotFound
from mindmesh_auth.integrations._http import CookieSettings

from ._clients import (
    ACCESS,
    HANG_GUARD,
    PASSWORD,
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
    signed_in,
    sqlite_env,
)

EMAIL = "ada@example.com"
NEW = "ada.new@example.com"
WRONG = "not the right password at all"
REQUEST = "/auth/account/email"
CONFIRM = "/auth/account/email/confirm"



def _changed_events(env: Env, user_id: str) -> list[Any]:
    return env.auth.audit.query(user_id=user_id, types=[AuditEventType.EMAIL_CHANGED])


def _other_code(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _request(client: Client, tokens: dict[str, Any] | None, new_email: str = NEW, password: str = PASSWORD) -> Any:
    headers = bearer(tokens) if tokens is not None else XRW
    return client.post(REQUEST, json={"password": password, "new_email": new_email}, headers=headers)


def _confirm(client: Client, tokens: dict[str, Any] | None, code: str, new_email: str = NEW) -> Any:
    headers = bearer(tokens) if tokens is not None else XRW
    return client.post(CONFIRM, json={"new_email": new_email, "code": code}, headers=headers)


def _assert_unchanged(env: Env, client: Client, tokens: dict[str, Any]) -> None:
    """The account still has its old address, and the new one no account."""
    me = client.get("/auth/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["user"]["email"] == EMAIL
    assert env.auth.user.get_by_email(NEW) is None
    assert env.outbox.for_address(EMAIL, "email_changed") == []
    assert _changed_events(env, tokens["user"]["id"]) == []


# ---------------------------------------------------------------------------
# Bearer tokens
# ---------------------------------------------------------------------------
def test_the_whole_flow_moves_the_account_to_the_new_address(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    user_id = tokens["user"]["id"]
    assert tokens["user"]["email_verified"] is False
    before_old = len(env.outbox.for_address(EMAIL))

    r = _request(client, tokens)
    assert r.status_code == 202, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.json()["status"] == "accepted" and set(r.json()) == {"status", "message"}
    code = env.outbox.last_code(NEW)  # the code went to the NEW address
    assert code not in r.text and PASSWORD not in r.text
    assert len(env.outbox.for_address(EMAIL)) == before_old  # nothing to the old one yet
    _assert_unchanged(env, client, tokens)  # nothing changes before the confirmation

    r = _confirm(client, tokens, code)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert "set-cookie" not in r.headers
    user = r.json()["user"]
    assert user["id"] == user_id and user["email"] == NEW and user["email_verified"] is True
    assert code not in r.text

    me = client.get("/auth/me", headers=bearer(tokens))  # the same token, the stored user
    assert me.status_code == 200 and me.json() == r.json()

    assert_error(client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}), 401, "invalid_credentials")
    assert login(client, env, NEW)["user"]["id"] == user_id
    notices = env.outbox.for_address(EMAIL, "email_changed")
    assert len(notices) == 1 and NEW in notices[0].text
    assert code not in notices[0].text and PASSWORD not in notices[0].text
    assert [e.email for e in _changed_events(env, user_id)] == [NEW]

    # The code was spent: it does not work a second time.
    assert_error(_confirm(client, tokens, code), 401, "invalid_otp")


def test_a_wrong_password_is_422_and_sends_no_code(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    r = _request(client, tokens, password=WRONG)
    error = assert_error(r, 422, "invalid_password")
    assert error["field"] == "password"
    assert WRONG not in r.text and PASSWORD not in r.text and NEW not in r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert env.outbox.for_address(NEW) == []
    _assert_unchanged(env, client, tokens)


def test_the_accounts_own_address_is_422(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    sent = len(env.outbox.messages)
    error = assert_error(_request(client, tokens, new_email=EMAIL), 422, "invalid_input")
    assert error["field"] == "new_email"
    r = _request(client, tokens, new_email="not-an-address")
    assert assert_error(r, 422, "invalid_email")["field"] == "new_email"  # named after the body member
    assert "not-an-address" not in r.text
    r = _confirm(client, tokens, "123456", new_email="not-an-address")
    assert assert_error(r, 422, "invalid_email")["field"] == "new_email"
    assert len(env.outbox.messages) == sent  # no code went anywhere
    me = client.get("/auth/me", headers=bearer(tokens))
    assert me.json()["user"]["email"] == EMAIL


def test_a_wrong_code_is_401_and_changes_nothing(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    assert _request(client, tokens).status_code == 202
    code = env.outbox.last_code(NEW)

    r = _confirm(client, tokens, _other_code(code))
    assert_error(r, 401, "invalid_otp")
    assert r.headers["WWW-Authenticate"] == "Bearer"  # not invalid_token: the access token is fine
    _assert_unchanged(env, client, tokens)
    assert login(client, env, EMAIL)["user"]["email"] == EMAIL  # the old address still signs in

    # A code for another address does not move the account there either.
    assert_error(_confirm(client, tokens, code, new_email="eve@example.com"), 401, "invalid_otp")
    assert env.auth.user.get_by_email("eve@example.com") is None

    # The right code still works after one wrong attempt.
    r = _confirm(client, tokens, code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == NEW


def test_an_address_taken_meanwhile_is_409_and_the_account_keeps_its_own(env: Env, client: Client) -> None:
    tokens = signed_in(client, env)
    assert _request(client, tokens).status_code == 202
    code = env.outbox.last_code(NEW)
    other_id = register(client, NEW)["user"]["id"]  # someone registers the address before the confirmation

    r = _confirm(client, tokens, code)
    assert_error(r, 409, "email_taken")
    assert code not in r.text
    me = client.get("/auth/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["user"]["email"] == EMAIL
    found = env.auth.user.get_by_email(NEW)
    assert found is not None and found.id == other_id
    assert env.outbox.for_address(EMAIL, "email_changed") == []
    assert _changed_events(env, tokens["user"]["id"]) == []
    assert login(client, env, EMAIL)["user"]["id"] == tokens["user"]["id"]


@pytest.mark.parametrize("path", [REQUEST, CONFIRM], ids=["request", "confirm"])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not.a.jwt", "Basic " + PASSWORD],
    ids=["no-token", "bad-token", "basic"],
)
def test_without_a_valid_token_it_is_401(env: Env, client: Client, path: str, authorization: str | None) -> None:
    tokens = signed_in(client, env)
    assert _request(client, tokens).status_code == 202
    code = env.outbox.last_code(NEW)
    sent = len(env.outbox.messages)
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"password": PASSWORD, "new_email": NEW} if path == REQUEST else {"new_email": NEW, "code": code}
    r = client.post(path, json=body, headers=headers)
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(env.outbox.messages) == sent
    _assert_unchanged(env, client, tokens)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (REQUEST, {"new_email": NEW}, "password"),
        (REQUEST, {"password": PASSWORD}, "new_email"),
        (REQUEST, {"password": PASSWORD, "new_email": ["x"]}, "new_email"),
        (CONFIRM, {"new_email": NEW}, "code"),
        (CONFIRM, {"code": "123456"}, "new_email"),
        (CONFIRM, {"new_email": NEW, "code": 123456}, "code"),
    ],
    ids=[
        "request-no-password",
        "request-no-email",
        "request-email-list",
        "confirm-no-code",
        "confirm-no-email",
        "confirm-code-number",
    ],
)
def test_a_bad_body_is_422(env: Env, client: Client, path: str, body: dict[str, Any], field: str) -> None:
    tokens = signed_in(client, env)
    r = client.post(path, json=body, headers=bearer(tokens))
    assert assert_error(r, 422, "invalid_input")["field"] == field
    assert PASSWORD not in r.text
    assert env.outbox.for_address(NEW) == []
    _assert_unchanged(env, client, tokens)


def test_an_account_deleted_meanwhile_is_401(env: Env, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token was valid when read, the account went before the request ran (an administrator)."""
    tokens = signed_in(client, env)
    original = env.auth.account.request_email_change

    def racing(uid: str, password: str, new_email: str, **kwargs: Any) -> None:
        env.auth.user.delete(uid)
        original(uid, password, new_email, **kwargs)

    monkeypatch.setattr(env.auth.account, "request_email_change", racing)
    r = _request(client, tokens)
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert env.outbox.for_address(NEW) == []


def test_a_confirmation_for_an_account_deleted_meanwhile_is_401(
    env: Env, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion discarded the pending code: the confirmation finds none (401 ``invalid_otp``)."""
    tokens = signed_in(client, env)
    assert _request(client, tokens).status_code == 202
    code = env.outbox.last_code(NEW)
    original = env.auth.account.confirm_email_change

    def racing(uid: str, new_email: str, entered: str, **kwargs: Any) -> Any:
        env.auth.user.delete(uid)
        return original(uid, new_email, entered, **kwargs)

    monkeypatch.setattr(env.auth.account, "confirm_email_change", racing)
    assert_error(_confirm(client, tokens, code), 401, "invalid_otp")
    assert env.auth.user.get_by_email(NEW) is None and env.auth.user.get_by_email(EMAIL) is None


def test_a_user_not_found_from_the_confirmation_is_401_invalid_token(
    env: Env, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = signed_in(client, env)

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise UserNotFound()

    monkeypatch.setattr(env.auth.account, "confirm_email_change", gone)
    r = _confirm(client, tokens, "123456")
    assert_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------
def test_cookie_requests_need_the_csrf_header(env: Env, make_client: MakeClient) -> None:
    client = make_client(cookies=CookieSettings(enabled=True), https=True)
    tokens = signed_in(client, env)
    assert client.cookie(ACCESS) is not None
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", **XRW}

    for headers in ({}, cross_site):
        r = client.post(REQUEST, json={"password": PASSWORD, "new_email": NEW}, headers=headers)
        assert_error(r, 403, "csrf_rejected")
        assert "set-cookie" not in r.headers
    assert env.outbox.for_address(NEW) == []

    r = _request(client, None)  # the cookie and the CSRF header
    assert r.status_code == 202, r.text
    code = env.outbox.last_code(NEW)

    for headers in ({}, cross_site):
        r = client.post(CONFIRM, json={"new_email": NEW, "code": code}, headers=headers)
        assert_error(r, 403, "csrf_rejected")
    assert client.get("/auth/me").json()["user"]["email"] == EMAIL
    assert env.auth.user.get_by_email(NEW) is None

    r = _confirm(client, None, code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == NEW
    assert "set-cookie" not in r.headers  # the session and its cookies stay
    assert client.get("/auth/me").json()["user"]["email"] == NEW
    assert env.auth.sessions.get(tokens["session_id"]).revoked_at is None


# ---------------------------------------------------------------------------
# The hashing bound
# ---------------------------------------------------------------------------
@pytest.fixture(params=["hmac", "bcrypt"])
def busy_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """One hashing place and no queue: a second hashing call while one runs is refused."""
    yield from sqlite_env(tmp_path, hash_workers=1, hash_queue_limit=0, otp_hash=request.param)


def test_a_request_beyond_the_hashing_bound_gets_503(busy_env: Env, framework: str) -> None:
    """The request checks a password: refused with 503 while the hashing pool is full. The
    confirmation hashes only with bcrypt codes: then it is refused too, else it goes through."""
    client = build_client(framework, busy_env.auth)
    tokens = signed_in(client, busy_env)
    assert _request(client, tokens).status_code == 202
    code = busy_env.outbox.last_code(NEW)
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
    bcrypt_codes = busy_env.auth.config.otp_hash == "bcrypt"
    try:
        thread.start()
        assert entered.wait(HANG_GUARD)  # the one hashing place is taken
        sent = len(busy_env.outbox.messages)
        r = _request(client, tokens, new_email="ada.other@example.com")
        assert_error(r, 503, "overloaded")
        assert r.headers["Retry-After"] == "1" and r.headers["Cache-Control"] == "no-store"
        assert PASSWORD not in r.text
        assert len(busy_env.outbox.messages) == sent
        r = _confirm(client, tokens, code)
        if bcrypt_codes:
            assert_error(r, 503, "overloaded")
        else:
            assert r.status_code == 200, r.text  # no hash to wait for
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 200  # token checks do not wait
    finally:
        release.set()
        thread.join(HANG_GUARD)
        setattr(hasher, "verify", original)  # noqa: B010
    assert answers == [200]
    if bcrypt_codes:  # the place is free again
        r = _confirm(client, tokens, code)
        assert r.status_code == 200, r.text
    assert busy_env.auth.user.get_by_email(NEW) is not None


# ---------------------------------------------------------------------------
# OpenAPI (FastAPI)
# ---------------------------------------------------------------------------
def test_the_routes_are_documented(env: Env) -> None:
    require("fastapi")
    client = build_client("fastapi", env.auth)
    document = client.get("/openapi.json").json()

    def ref_name(operation: dict[str, Any], status: str) -> str:
        return str(operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]

    request = document["paths"][REQUEST]["post"]
    assert request.get("security")
    assert set(request["responses"]) == {"202", "401", "403", "413", "422", "429", "503"}
    schema = request["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["password", "new_email"]
    assert request["requestBody"]["required"] is True
    assert ref_name(request, "202") == "AcceptedResponse"

    confirm = document["paths"][CONFIRM]["post"]
    assert confirm.get("security")
    assert set(confirm["responses"]) == {"200", "401", "403", "409", "413", "422", "429", "503"}
    schema = confirm["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["new_email", "code"]
    assert ref_name(confirm, "200") == ref_name(document["paths"]["/auth/me"]["get"], "200")
