"""The framework-free endpoint layer on its own: no web framework, plain request and response values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mindmesh_auth import MindmeshAuth, ValidationError
from mindmesh_auth.integrations._endpoints import (
    MAX_BODY_BYTES,
    Endpoints,
    HttpRequest,
    body_schema,
    content_length_over,
    parse_body,
)
from mindmesh_auth.integrations._http import ROUTES, BodyField, CookieSettings
from mindmesh_auth.testing import FakeClock, Outbox, test_config

from ._clients import PASSWORD

EMAIL = "ada@example.com"
ACCESS, REFRESH = "__Host-mm_access", "__Secure-mm_refresh"
MEMBERS = (BodyField("email"), BodyField("note", required=False), BodyField("profile", "profile", required=False))


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def auth(outbox: Outbox) -> Iterator[MindmeshAuth]:
    auth = MindmeshAuth(store="memory://", mailer=outbox, config=test_config(), clock=FakeClock())
    yield auth
    auth.close()


def _json(body: str) -> HttpRequest:
    return HttpRequest(body=body.encode(), content_type="application/json", peer="203.0.113.9")


@pytest.mark.parametrize(
    ("raw", "content_type", "message", "field"),
    [
        (b"{}", None, "The request is not valid: email is required.", "email"),
        (b"", "application/json", "The request is not valid: email is required.", "email"),
        (b'{"email": null}', None, "The request is not valid: email must be a string.", "email"),
        (b'{"email": 1}', None, "The request is not valid: email must be a string.", "email"),
        (b'{"email": "a", "note": []}', None, "The request is not valid: note must be a string.", "note"),
        (b'{"email": "a", "profile": "x"}', None, "The request is not valid: profile must be an object.", "profile"),
        (b"[]", None, "The request body must be a JSON object.", None),
        (b"{", None, "The request body is not valid JSON.", None),
        (b'{"email": Infinity}', None, "The request body is not valid JSON.", None),
        (b"[" * 3000, None, "The request body is not valid JSON.", None),
        (b"{}", "text/plain", "The request body must be JSON (Content-Type: application/json).", None),
        (b" " + b"x" * MAX_BODY_BYTES, None, "The request body is too large.", None),
    ],
)
def test_parse_body_refuses_with_one_message_per_fault(
    raw: bytes, content_type: str | None, message: str, field: str | None
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_body(MEMBERS, raw, content_type)
    assert (info.value.code, info.value.message, info.value.field) == ("invalid_input", message, field)


def test_parse_body_accepts_json_types_ignores_unknown_members_and_nulls_optional_ones() -> None:
    for content_type in (None, "", "application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"):
        body = parse_body(MEMBERS, b'{"email": "a", "note": null, "other": [1]}', content_type)
        assert body == {"email": "a", "note": None, "profile": None}


def test_body_schema_documents_what_the_parser_accepts() -> None:
    schema = body_schema(MEMBERS)
    assert schema["required"] == ["email"]
    assert schema["properties"]["email"] == {"type": "string"}
    assert schema["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_every_route_has_one_endpoint(auth: MindmeshAuth) -> None:
    endpoints = Endpoints(auth, prefix="/auth")
    assert all(callable(getattr(endpoints, spec.name)) for spec in ROUTES)


def test_the_flow_through_plain_values(auth: MindmeshAuth, outbox: Outbox) -> None:
    endpoints = Endpoints(auth, prefix="/auth", cookies=CookieSettings(enabled=True))
    reply = endpoints.handle("register", _json(f'{{"email": "{EMAIL}", "password": "{PASSWORD}"}}'))
    assert reply.status == 201 and reply.body is not None and reply.body["user"]["email"] == EMAIL
    body = endpoints.handle("login", _json(f'{{"email": "{EMAIL}", "password": "{PASSWORD}"}}')).body
    assert body is not None and body["otp_required"] is True and len(body["login_handle"]) == 64
    code = outbox.last_code(EMAIL)
    reply = endpoints.handle("verify_otp", _json(f'{{"email": "{EMAIL}", "code": "{code}"}}'))
    assert reply.status == 200 and reply.body is not None and "refresh_token" not in reply.body
    cookies = {c.name: c for c in reply.cookies}
    assert cookies[REFRESH].path == "/auth" and cookies[ACCESS].path == "/"
    assert cookies[ACCESS].domain is None and cookies[ACCESS].secure and cookies[REFRESH].secure

    # The access cookie authenticates, the refresh cookie refreshes (with the CSRF header).
    jar = {name: c.value for name, c in cookies.items()}
    assert endpoints.handle("me", HttpRequest(cookies=jar)).status == 200
    assert endpoints.handle("refresh", HttpRequest(cookies=jar, method="POST")).status == 403
    reply = endpoints.handle("refresh", HttpRequest(cookies=jar, method="POST", requested_with="fetch"))
    assert reply.status == 200 and {c.name for c in reply.cookies} == {ACCESS, REFRESH}
    jar = {c.name: c.value for c in reply.cookies}

    # Revoking the current session clears the cookies.
    sid = reply.body["session_id"] if reply.body else ""
    request = HttpRequest(cookies=jar, path_params={"session_id": sid}, method="DELETE", requested_with="fetch")
    reply = endpoints.handle("revoke_session", request)
    assert reply.status == 204 and reply.content == b""
    assert {(c.name, c.max_age) for c in reply.cookies} == {(ACCESS, 0), (REFRESH, 0)}


def test_errors_are_answered_not_raised(auth: MindmeshAuth) -> None:
    endpoints = Endpoints(auth, prefix="/auth")
    reply = endpoints.handle("me", HttpRequest())
    assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.content == b'{"error":{"code":"invalid_token","message":"Authentication required."}}'
    reply = endpoints.handle("login", _json('{"email": "a@example.com"}'))
    assert reply.content == (
        b'{"error":{"code":"invalid_input","message":"The request is not valid: password is required.","field":"password"}}'
    )


@pytest.mark.parametrize(
    ("value", "over"),
    [(None, False), ("0", False), ("65536", False), ("65537", True), ("9" * 30, True), ("-1", True), ("12a", True)],
)
def test_content_length_over_the_limit(value: str | None, over: bool) -> None:
    assert content_length_over(value, MAX_BODY_BYTES) is over


def test_body_limit_and_no_store_on_every_answer(auth: MindmeshAuth) -> None:
    endpoints = Endpoints(auth, prefix="/auth", max_body_bytes=32)
    for request in (HttpRequest(body_too_large=True), _json('{"email": "a@example.com", "password": "long enough"}')):
        reply = endpoints.handle("login", request)
        assert reply.status == 413 and reply.body == {
            "error": {"code": "payload_too_large", "message": "The request body is too large."}
        }
        assert reply.headers["Cache-Control"] == "no-store" and reply.headers["Pragma"] == "no-cache"
    assert endpoints.handle("me", HttpRequest()).headers["Cache-Control"] == "no-store"
