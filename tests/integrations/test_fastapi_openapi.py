"""The router's OpenAPI schema: every route, every documented error, every $ref resolves."""

from __future__ import annotations

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
        has_body = spec.method == "POST" and spec.name != "logout"
        assert ("requestBody" in operation) == has_body, spec.name


def test_openapi_spec_validator_accepts_the_schema(schema: dict[str, Any]) -> None:
    validator = require("openapi_spec_validator", reason="validates the OpenAPI schema")
    validator.validate(schema)
