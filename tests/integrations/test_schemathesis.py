"""Fuzz every route of both integrations with schemathesis against ONE OpenAPI document.

The document is the FastAPI app's ``/openapi.json``. The FastAPI app is driven through
ASGI (``schemathesis.openapi.from_asgi``); the Flask app through WSGI with the same
document (``schemathesis.openapi.from_dict`` on the FastAPI app's document, then the
schema's ``app`` pointed at the Flask app: schemathesis picks its transport from the app).
Both mount the router/blueprint under the same prefix, so the paths match.

For every documented operation and both frameworks: never a 5xx, and every response
conforms to the document (status code documented, content type, body schema, headers).
Authenticated operations get a live bearer token (a fresh login per example, since the
fuzzer may log out or revoke) on three examples out of four; the fourth keeps what
schemathesis generated, so the 401 answers are fuzzed too. Every other example with a
JSON body gets values the app accepts (the known account, codes and reset tokens from
the Outbox), so the success responses are schema-checked as well as the errors.

Bounded for CI: ``MINDMESH_FUZZ_EXAMPLES`` examples per operation (default 25),
``deadline=None``, derandomized without the example database under ``CI``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from _ci import in_ci, require

require("fastapi")
require("flask")
require("httpx")
schemathesis = require("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ._clients import PASSWORD  # noqa: E402
from ._fuzz_apps import APP_ROUTES, EMAIL, PREFIX, FuzzTarget  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("MINDMESH_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


# Built at import: schemathesis parametrizes a test per operation at collection time.
# (``schemathesis.pytest.from_fixture`` would defer this to a fixture, but its LazySchema
# writes ``Function._nodeid``, which pytest 9.2 no longer has.)
TARGETS = {framework: FuzzTarget(framework) for framework in ("fastapi", "flask")}

# The FastAPI app through ASGI, its document fetched from ``/openapi.json``.
fastapi_schema = schemathesis.openapi.from_asgi("/openapi.json", TARGETS["fastapi"].app)
# The Flask app through WSGI, with the FastAPI app's document (same prefix, same paths).
flask_schema = schemathesis.openapi.from_dict(TARGETS["flask"].document())
flask_schema.app = TARGETS["flask"].app


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    for target in TARGETS.values():
        target.close()


@pytest.fixture(params=sorted(TARGETS))
def fuzz_target(request: pytest.FixtureRequest) -> FuzzTarget:
    return TARGETS[request.param]


def test_the_document_covers_every_route_and_the_current_user_routes(fuzz_target: FuzzTarget) -> None:
    from mindmesh_auth.integrations._http import ROUTES

    paths = fuzz_target.document()["paths"]
    listed = {(path, method.upper()) for path, item in paths.items() for method in item}
    expected = {(f"{PREFIX}{spec.path}", spec.method) for spec in ROUTES} | {(route, "GET") for route in APP_ROUTES}
    assert listed == expected


def _needs_token(case: Any) -> bool:
    raw = case.operation.definition.raw
    return bool(raw.get("security")) or case.operation.path in APP_ROUTES


_examples = itertools.count()


def _authorize(case: Any, target: FuzzTarget) -> None:
    """A live bearer token on three examples out of four of an authenticated operation."""
    if not _needs_token(case) or next(_examples) % 4 == 3:
        return
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {target.access_token()}"
    case.headers = headers


_rewrites = itertools.count()


def _realistic(case: Any, target: FuzzTarget) -> None:
    """On every other example with a JSON object body (or a session id), put in values the app accepts.

    Random strings never make a valid e-mail, code or token, so without this the success
    responses (and their schemas) of the unauthenticated routes would never be checked.
    The known account is ``EMAIL``/``PASSWORD``; codes and reset tokens come from the Outbox.
    """
    route = case.operation.path.removeprefix(PREFIX)
    if route == "/sessions/{session_id}":
        if next(_rewrites) % 2 == 0:  # a live session of the user (the bearer's own or another)
            case.path_parameters = {**(case.path_parameters or {}), "session_id": target.tokens()["session_id"]}
        return
    if not isinstance(case.body, dict):
        return
    n = next(_rewrites)
    if n % 2:
        return
    body = dict(case.body)
    if route == "/register":
        body["email"] = f"fuzz-{n}@example.com" if n % 4 == 0 else EMAIL  # new account, or 409
        if not (isinstance(body.get("password"), str) and 8 <= len(body["password"]) <= 64):
            body["password"] = PASSWORD
    elif route == "/login":
        body.update(email=EMAIL, password=PASSWORD)
    elif route == "/verify-otp":
        target.client.post(f"{PREFIX}/login", json={"email": EMAIL, "password": PASSWORD})
        body.update(email=EMAIL, code=target.last_code())
    elif route == "/refresh":
        body["refresh_token"] = target.tokens()["refresh_token"]
    elif route == "/otp/send":
        body.update(email=EMAIL, purpose="email_verify")
    elif route == "/otp/verify":
        target.client.post(f"{PREFIX}/otp/send", json={"email": EMAIL, "purpose": "email_verify"})
        body.update(email=EMAIL, purpose="email_verify", code=target.last_code())
    elif route == "/password/reset-request":
        body["email"] = EMAIL
    elif route == "/password/reset":
        target.client.post(f"{PREFIX}/password/reset-request", json={"email": EMAIL})
        body.update(token=target.last_reset_token(), new_password=PASSWORD)  # the same password: logins still work
    else:
        return
    case.body = body


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=in_ci(),
    database=None if in_ci() else settings.default.database,
    suppress_health_check=list(HealthCheck),
)


@FUZZ_SETTINGS
@fastapi_schema.parametrize()
def test_fastapi_operation_conforms_to_the_document(case: Any) -> None:
    _realistic(case, TARGETS["fastapi"])
    _authorize(case, TARGETS["fastapi"])
    case.call_and_validate(checks=CHECKS)


@FUZZ_SETTINGS
@flask_schema.parametrize()
def test_flask_operation_conforms_to_the_document(case: Any) -> None:
    _realistic(case, TARGETS["flask"])
    _authorize(case, TARGETS["flask"])
    case.call_and_validate(checks=CHECKS)
