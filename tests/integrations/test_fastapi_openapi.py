"""The router's OpenAPI schema: every route, every documented error, every $ref resolves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _ci import require

require("fastapi")

from fastapi import FastAPI  # noqa: E402

from mindmesh_auth import MindmeshAuth  # noqa: E402
from mindmesh_auth.integrations._http import ROUTES  # noqa: E402
from mindmesh_auth.integrations.fastapi import create_auth_router  # noqa: E402
from mindmesh_auth.testing import FakeClock, Outbox, test_config  # noqa: E402


@pytest.fixture(scope="module")
def schema() -> Iterator[dict[str, Any]]:
    auth = MindmeshAuth(store="memory://", mailer=Outbox(), config=test_config(), clock=FakeClock())
    app = FastAPI(title="test")
    app.include_router(create_auth_router(auth, prefix="/api/auth"))
    yield app.openapi()
    auth.close()


def _resolve(schema: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = schema
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_schema_header(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "test"


def test_every_route_is_listed_with_its_success_and_error_responses(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    listed = {(path, method) for path, item in paths.items() for method in item}
    expected = {(f"/api/auth{spec.path}", spec.method.lower()) for spec in ROUTES}
    assert listed == expected
    for spec in ROUTES:
        operation = paths[f"/api/auth{spec.path}"][spec.method.lower()]
        responses = operation["responses"]
        assert str(spec.status) in responses, spec.name
        for status in spec.errors:
            response = responses[str(status)]
            content_schema = response["content"]["application/json"]["schema"]
            assert content_schema == {"$ref": "#/components/schemas/ErrorBody"}, (spec.name, status)
            assert response["description"]
        if 429 in spec.errors:
            assert "Retry-After" in responses["429"]["headers"]
        if 401 in spec.errors:
            assert "WWW-Authenticate" in responses["401"]["headers"]
        if spec.authenticated:
            assert operation.get("security"), spec.name
        assert operation["operationId"]
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_error_body_schema(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    error_body = components["ErrorBody"]
    assert error_body["required"] == ["error"]
    detail = _resolve(schema, error_body["properties"]["error"]["$ref"])
    assert set(detail["required"]) == {"code", "message"}
    # FastAPI's default validation error model is replaced by ours.
    assert "HTTPValidationError" not in components


def test_every_ref_resolves(schema: dict[str, Any]) -> None:
    refs = set(_refs(schema))
    assert refs
    for ref in refs:
        _resolve(schema, ref)
    schemes = schema["components"]["securitySchemes"]
    for spec in ROUTES:
        operation = schema["paths"][f"/api/auth{spec.path}"][spec.method.lower()]
        for requirement in operation.get("security", []):
            for name in requirement:
                assert schemes[name] == {**schemes[name], "type": "http", "scheme": "bearer"}


def test_request_bodies_are_documented(schema: dict[str, Any]) -> None:
    for spec in ROUTES:
        operation = schema["paths"][f"/api/auth{spec.path}"][spec.method.lower()]
        has_body = spec.method == "POST"
        assert ("requestBody" in operation) == has_body, spec.name


def test_openapi_spec_validator_accepts_the_schema(schema: dict[str, Any]) -> None:
    validator = require("openapi_spec_validator", reason="validates the OpenAPI schema")
    validator.validate(schema)


# ---------------------------------------------------------------------------
# The app's own routes protected by current_user
# ---------------------------------------------------------------------------
def _app_schema(**options: Any) -> dict[str, Any]:
    from fastapi import Depends

    from mindmesh_auth import User
    from mindmesh_auth.integrations.fastapi import install_error_handlers

    auth = MindmeshAuth(store="memory://", mailer=Outbox(), config=test_config(), clock=FakeClock())
    app = FastAPI(title="app")
    router = create_auth_router(auth, **options)
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/notes")
    async def notes(user: User = Depends(router.current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.post("/notes")
    async def add_note(user: User = Depends(router.current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {}

    schema = app.openapi()
    auth.close()
    return schema


def test_current_user_routes_show_the_bearer_lock_and_the_401() -> None:
    schema = _app_schema()
    for method in ("get", "post"):
        operation = schema["paths"]["/notes"][method]
        assert operation["security"] == [{"HTTPBearer": []}]
        response = operation["responses"]["401"]
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert "WWW-Authenticate" in response["headers"]
        assert "403" not in operation["responses"]
    public = schema["paths"]["/public"]["get"]
    assert "security" not in public and "401" not in public["responses"]
    for ref in set(_refs(schema)):
        _resolve(schema, ref)
    validator = require("openapi_spec_validator", reason="validates the OpenAPI schema")
    validator.validate(schema)


def test_cookie_mode_adds_the_cookie_scheme_and_the_csrf_403() -> None:
    from mindmesh_auth.integrations.fastapi import CookieSettings

    schema = _app_schema(cookies=CookieSettings(enabled=True))
    schemes = schema["components"]["securitySchemes"]
    assert schemes["AccessCookie"] == {**schemes["AccessCookie"], "type": "apiKey", "in": "cookie", "name": "__Host-mm_access"}
    get, post = schema["paths"]["/notes"]["get"], schema["paths"]["/notes"]["post"]
    for operation in (get, post):
        assert {name for requirement in operation["security"] for name in requirement} == {"HTTPBearer", "AccessCookie"}
        assert "401" in operation["responses"]
    assert "403" in post["responses"] and "403" not in get["responses"]
    validator = require("openapi_spec_validator", reason="validates the OpenAPI schema")
    validator.validate(schema)


def test_profile_output_is_documented_and_nothing_else() -> None:
    schema = _app_schema(profile_output=("first_name",))
    components = schema["components"]["schemas"]
    me = schema["paths"]["/auth/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    user = _resolve(schema, _resolve(schema, me["$ref"])["properties"]["user"]["$ref"])
    assert set(user["properties"]) == {"id", "email", "email_verified", "blocked", "created_at", "updated_at", "first_name"}
    assert user["additionalProperties"] is False
    verify = schema["paths"]["/auth/verify-otp"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    login_user = _resolve(schema, verify["$ref"])["properties"]["user"]["$ref"]
    assert _resolve(schema, login_user) == user
    plain = _app_schema()["components"]["schemas"]["UserOut"]
    assert set(plain["properties"]) == {"id", "email", "email_verified", "blocked", "created_at", "updated_at"}
    assert plain["additionalProperties"] is False
    assert "role" not in json.dumps(components)
