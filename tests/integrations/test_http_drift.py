"""Both frameworks answer the same bad request with the same status and the same bytes.

Each case goes to the FastAPI router and to the Flask blueprint, built on one
facade (so one access token works for both). The status, the JSON body (byte
for byte), the content type and the ``WWW-Authenticate`` header must match,
and each case pins what the answer is. No answer may echo the input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _ci import require

from ._clients import PASSWORD, Client, Env, build_client

SECRET = "s3cret-VALUE"  # put in bad inputs: must never come back
EMAIL = "ada@example.com"
JSON_TYPE = {"content-type": "application/json"}


def _raw(body: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": content_type} if content_type else {}}


def _bearer(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": token}}


# (id, method, path, request options (``{token}`` and ``{session}`` are filled in), status, code, field)
CASES: list[tuple[str, str, str, dict[str, Any], int, str, str | None]] = [
    # -- body shape
    ("no-body", "POST", "/auth/register", {}, 422, "invalid_input", "email"),
    ("empty-body-with-json-type", "POST", "/auth/login", _raw(b""), 422, "invalid_input", "email"),
    ("whitespace-body", "POST", "/auth/login", _raw(b"  \n "), 422, "invalid_input", "email"),
    ("empty-object", "POST", "/auth/login", {"json": {}}, 422, "invalid_input", "email"),
    ("not-json", "POST", "/auth/login", _raw(b'{"email": "x", "password": "' + SECRET.encode()), 422, "invalid_input", None),
    ("not-json-no-type", "POST", "/auth/login", _raw(b"email=" + SECRET.encode(), None), 422, "invalid_input", None),
    (
        "form-type",
        "POST",
        "/auth/login",
        _raw(b"password=" + SECRET.encode(), "application/x-www-form-urlencoded"),
        422,
        "invalid_input",
        None,
    ),
    (
        "text-plain-json",
        "POST",
        "/auth/login",
        _raw(json.dumps({"email": EMAIL, "password": SECRET}).encode(), "text/plain"),
        422,
        "invalid_input",
        None,
    ),
    ("not-utf8", "POST", "/auth/login", _raw(b"\xff\xfe{\x00"), 422, "invalid_input", None),
    ("nan", "POST", "/auth/login", _raw(b'{"email": NaN, "password": "x"}'), 422, "invalid_input", None),
    ("json-array", "POST", "/auth/login", {"json": ["a", SECRET]}, 422, "invalid_input", None),
    ("json-string", "POST", "/auth/login", {"json": SECRET}, 422, "invalid_input", None),
    ("json-number", "POST", "/auth/login", _raw(b"12345"), 422, "invalid_input", None),
    ("json-null", "POST", "/auth/login", _raw(b"null"), 422, "invalid_input", None),
    ("deep-nesting", "POST", "/auth/login", _raw(b"[" * 5000 + b"]" * 5000), 422, "invalid_input", None),
    (
        "too-large",
        "POST",
        "/auth/login",
        {"json": {"email": EMAIL, "password": SECRET, "pad": "x" * 70_000}},
        413,
        "payload_too_large",
        None,
    ),
    (
        "charset-param-is-json",
        "POST",
        "/auth/login",
        _raw(b"{}", "application/json; charset=utf-8"),
        422,
        "invalid_input",
        "email",
    ),
    # -- members
    ("missing-password", "POST", "/auth/login", {"json": {"email": EMAIL}}, 422, "invalid_input", "password"),
    (
        "password-number",
        "POST",
        "/auth/login",
        {"json": {"email": EMAIL, "password": 12345678}},
        422,
        "invalid_input",
        "password",
    ),
    ("password-null", "POST", "/auth/register", {"json": {"email": EMAIL, "password": None}}, 422, "invalid_input", "password"),
    ("password-bool", "POST", "/auth/register", {"json": {"email": EMAIL, "password": True}}, 422, "invalid_input", "password"),
    (
        "email-nested",
        "POST",
        "/auth/register",
        {"json": {"email": {"email": SECRET}, "password": PASSWORD}},
        422,
        "invalid_input",
        "email",
    ),
    (
        "password-list",
        "POST",
        "/auth/register",
        {"json": {"email": EMAIL, "password": [SECRET]}},
        422,
        "invalid_input",
        "password",
    ),
    (
        "profile-list",
        "POST",
        "/auth/register",
        {"json": {"email": EMAIL, "password": PASSWORD, "profile": [SECRET]}},
        422,
        "invalid_input",
        "profile",
    ),
    (
        "profile-not-allowed",
        "POST",
        "/auth/register",
        {"json": {"email": EMAIL, "password": PASSWORD, "profile": {"role": SECRET}}},
        422,
        "invalid_input",
        "profile",
    ),
    (
        "unknown-member-ignored",
        "POST",
        "/auth/register",
        {"json": {"email": "not-an-email", "password": PASSWORD, "x": SECRET}},
        422,
        "invalid_email",
        "email",
    ),
    ("code-missing", "POST", "/auth/verify-otp", {"json": {"email": EMAIL}}, 422, "invalid_input", "code"),
    ("purpose-number", "POST", "/auth/otp/send", {"json": {"email": EMAIL, "purpose": 1}}, 422, "invalid_input", "purpose"),
    ("purpose-login", "POST", "/auth/otp/send", {"json": {"email": EMAIL, "purpose": "login"}}, 422, "invalid_input", "purpose"),
    (
        "otp-verify-missing-purpose",
        "POST",
        "/auth/otp/verify",
        {"json": {"email": EMAIL, "code": "123456"}},
        422,
        "invalid_input",
        "purpose",
    ),
    (
        "reset-request-missing-email",
        "POST",
        "/auth/password/reset-request",
        {"json": {"mail": EMAIL}},
        422,
        "invalid_input",
        "email",
    ),
    (
        "reset-missing-new-password",
        "POST",
        "/auth/password/reset",
        {"json": {"token": SECRET}},
        422,
        "invalid_input",
        "new_password",
    ),
    ("refresh-token-number", "POST", "/auth/refresh", {"json": {"refresh_token": 5}}, 422, "invalid_input", "refresh_token"),
    (
        "refresh-token-object",
        "POST",
        "/auth/refresh",
        {"json": {"refresh_token": {"t": SECRET}}},
        422,
        "invalid_input",
        "refresh_token",
    ),
    ("refresh-no-body", "POST", "/auth/refresh", {}, 401, "invalid_refresh_token", None),
    ("refresh-token-null", "POST", "/auth/refresh", {"json": {"refresh_token": None}}, 401, "invalid_refresh_token", None),
    # -- too-long strings (the core's bounds, the same answer through both)
    (
        "long-email",
        "POST",
        "/auth/register",
        {"json": {"email": "a" * 5000 + "@example.com", "password": PASSWORD}},
        422,
        "invalid_email",
        "email",
    ),
    (
        "long-password",
        "POST",
        "/auth/register",
        {"json": {"email": EMAIL, "password": SECRET * 1000}},
        422,
        "invalid_password",
        "password",
    ),
    ("long-code", "POST", "/auth/verify-otp", {"json": {"email": EMAIL, "code": "1" * 5000}}, 422, "invalid_input", "code"),
    (
        "long-purpose",
        "POST",
        "/auth/otp/send",
        {"json": {"email": EMAIL, "purpose": "p" * 5000}},
        422,
        "invalid_input",
        "purpose",
    ),
    (
        "long-refresh-token",
        "POST",
        "/auth/refresh",
        {"json": {"refresh_token": SECRET * 1000}},
        401,
        "invalid_refresh_token",
        None,
    ),
    (
        "long-reset-token",
        "POST",
        "/auth/password/reset",
        {"json": {"token": SECRET * 1000, "new_password": PASSWORD}},
        400,
        "invalid_reset_token",
        None,
    ),
    # -- access tokens
    ("me-no-token", "GET", "/auth/me", {}, 401, "invalid_token", None),
    ("me-bad-token", "GET", "/auth/me", _bearer("Bearer not.a.jwt"), 401, "invalid_token", None),
    ("me-basic", "GET", "/auth/me", _bearer("Basic " + SECRET), 401, "invalid_token", None),
    ("me-empty-bearer", "GET", "/auth/me", _bearer("Bearer "), 401, "invalid_token", None),
    ("me-long-bearer", "GET", "/auth/me", _bearer("Bearer " + "a" * 9000), 401, "invalid_token", None),
    ("logout-no-token", "POST", "/auth/logout", {}, 401, "invalid_token", None),
    ("sessions-bad-token", "GET", "/auth/sessions", _bearer("Bearer " + SECRET), 401, "invalid_token", None),
    ("delete-account-no-token", "POST", "/auth/account/delete", {"json": {"password": SECRET}}, 401, "invalid_token", None),
    (
        "delete-account-password-number",
        "POST",
        "/auth/account/delete",
        {"json": {"password": 12345678}, **_bearer("{token}")},
        422,
        "invalid_input",
        "password",
    ),
    (
        "delete-account-wrong-password",
        "POST",
        "/auth/account/delete",
        {"json": {"password": SECRET}, **_bearer("{token}")},
        422,
        "invalid_password",
        "password",
    ),
    (
        "email-change-no-token",
        "POST",
        "/auth/account/email",
        {"json": {"password": SECRET, "new_email": "new@example.com"}},
        401,
        "invalid_token",
        None,
    ),
    (
        "email-change-new-email-number",
        "POST",
        "/auth/account/email",
        {"json": {"password": SECRET, "new_email": 12345678}, **_bearer("{token}")},
        422,
        "invalid_input",
        "new_email",
    ),
    (
        "email-change-bad-new-email",
        "POST",
        "/auth/account/email",
        {"json": {"password": SECRET, "new_email": SECRET}, **_bearer("{token}")},
        422,
        "invalid_email",
        "new_email",
    ),
    (
        "email-change-wrong-password",
        "POST",
        "/auth/account/email",
        {"json": {"password": SECRET, "new_email": "new@example.com"}, **_bearer("{token}")},
        422,
        "invalid_password",
        "password",
    ),
    (
        "email-confirm-no-token",
        "POST",
        "/auth/account/email/confirm",
        {"json": {"new_email": "new@example.com", "code": "123456"}},
        401,
        "invalid_token",
        None,
    ),
    (
        "email-confirm-code-missing",
        "POST",
        "/auth/account/email/confirm",
        {"json": {"new_email": "new@example.com"}, **_bearer("{token}")},
        422,
        "invalid_input",
        "code",
    ),
    (
        "email-confirm-long-code",
        "POST",
        "/auth/account/email/confirm",
        {"json": {"new_email": "new@example.com", "code": "1" * 5000}, **_bearer("{token}")},
        422,
        "invalid_input",
        "code",
    ),
    (
        "email-confirm-no-code-pending",
        "POST",
        "/auth/account/email/confirm",
        {"json": {"new_email": "new@example.com", "code": "123456"}, **_bearer("{token}")},
        401,
        "invalid_otp",
        None,
    ),
    (
        "password-change-no-token",
        "POST",
        "/auth/password/change",
        {"json": {"current_password": SECRET, "new_password": SECRET}},
        401,
        "invalid_token",
        None,
    ),
    (
        "password-change-current-number",
        "POST",
        "/auth/password/change",
        {"json": {"current_password": 12345678, "new_password": SECRET}, **_bearer("{token}")},
        422,
        "invalid_input",
        "current_password",
    ),
    (
        "password-change-wrong-current",
        "POST",
        "/auth/password/change",
        {"json": {"current_password": SECRET, "new_password": PASSWORD + "!"}, **_bearer("{token}")},
        422,
        "invalid_password",
        "current_password",
    ),
    (
        "password-change-long-current",
        "POST",
        "/auth/password/change",
        {"json": {"current_password": SECRET * 1000, "new_password": PASSWORD + "!"}, **_bearer("{token}")},
        422,
        "invalid_password",
        "current_password",
    ),
    (
        "password-change-short-new",
        "POST",
        "/auth/password/change",
        {"json": {"current_password": PASSWORD, "new_password": "s3cret"}, **_bearer("{token}")},
        422,
        "invalid_password",
        "new_password",
    ),
    # -- the session id path parameter
    ("revoke-no-token", "DELETE", "/auth/sessions/{session}", {}, 401, "invalid_token", None),
    ("revoke-long-id", "DELETE", "/auth/sessions/" + "s" * 65, _bearer("{token}"), 422, "invalid_input", "session_id"),
    ("revoke-unprintable-id", "DELETE", "/auth/sessions/a%00b", _bearer("{token}"), 422, "invalid_input", "session_id"),
    (
        "revoke-unknown-id",
        "DELETE",
        "/auth/sessions/00000000-0000-4000-8000-000000000000",
        _bearer("{token}"),
        404,
        "session_not_found",
        None,
    ),
]


@pytest.fixture
def clients(env: Env) -> dict[str, Client]:
    for framework in ("fastapi", "flask"):
        require(framework)
    return {framework: build_client(framework, env.auth) for framework in ("fastapi", "flask")}


@pytest.fixture
def fill(env: Env) -> Callable[[str], str]:
    env.auth.auth.register("bob@example.com", PASSWORD)
    env.auth.auth.login("bob@example.com", PASSWORD)
    result = env.auth.auth.verify_otp("bob@example.com", env.outbox.last_code("bob@example.com"))
    values = {"{token}": f"Bearer {result.access_token}", "{session}": result.session_id}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    return fill


@pytest.mark.parametrize(
    ("method", "path", "options", "status", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_requests_get_identical_answers(
    clients: dict[str, Client],
    fill: Callable[[str], str],
    method: str,
    path: str,
    options: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    options = dict(options)
    if "headers" in options:
        options["headers"] = {name: fill(value) for name, value in options["headers"].items()}
    replies = {name: client.request(method, fill(path), **options) for name, client in clients.items()}
    fastapi, flask = replies["fastapi"], replies["flask"]
    assert (fastapi.status_code, fastapi.content) == (flask.status_code, flask.content)
    assert fastapi.headers.get("content-type") == flask.headers.get("content-type") == "application/json"
    assert fastapi.headers.get("www-authenticate") == flask.headers.get("www-authenticate")
    assert fastapi.headers.get("cache-control") == flask.headers.get("cache-control") == "no-store"
    error = fastapi.json()["error"]
    assert (fastapi.status_code, error["code"], error.get("field")) == (status, code, field)
    assert set(error) <= {"code", "message", "field"}
    assert SECRET.encode() not in fastapi.content and b"12345678" not in fastapi.content
