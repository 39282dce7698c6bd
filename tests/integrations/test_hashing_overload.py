"""Both integrations answer 503 ``overloaded`` with ``Retry-After`` when the hashing queue is full,
and keep answering token checks (``/auth/me``) meanwhile."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _ci import require

from mindmesh_auth import MindmeshAuth

from ._clients import (
    FRAMEWORKS,
    HANG_GUARD,
    PASSWORD,
    Env,
    assert_error,
    bearer,
    build_client,
    fastapi_client,
    flask_client,
    login,
)


def _hold_verify(auth: MindmeshAuth) -> tuple[threading.Event, threading.Event, Any]:
    hasher = auth._kernel.hasher
    original = hasher.verify
    entered, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(HANG_GUARD), "never released"
        return original(*args, **kwargs)

    setattr(hasher, "verify", held)  # noqa: B010  # a method replaced on the instance
    return entered, release, original


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_login_beyond_the_hashing_bound_gets_503_with_retry_after_while_me_answers(busy_env: Env, framework: str) -> None:
    require(framework)
    client = build_client(framework, busy_env.auth)
    for email in ("ada@example.com", "bob@example.com", "cy@example.com"):
        busy_env.auth.auth.register(email, PASSWORD)
    tokens = login(client, busy_env)
    other = fastapi_client(client.app) if framework == "fastapi" else flask_client(client.app)
    entered, release, original = _hold_verify(busy_env.auth)
    answers: list[int] = []
    body = {"email": "bob@example.com", "password": PASSWORD}
    thread = threading.Thread(target=lambda: answers.append(other.post("/auth/login", json=body).status_code))
    try:
        thread.start()
        assert entered.wait(HANG_GUARD)  # the one hashing place is taken
        r = client.post("/auth/login", json={"email": "cy@example.com", "password": PASSWORD})
        error = assert_error(r, 503, "overloaded")
        assert r.headers["Retry-After"] == "1"
        assert r.headers["Cache-Control"] == "no-store"
        assert PASSWORD not in r.text and "cy@example.com" not in error["message"]
        r = client.post("/auth/register", json={"email": "dee@example.com", "password": PASSWORD})
        assert_error(r, 503, "overloaded")
        me = client.get("/auth/me", headers=bearer(tokens))  # token checks do not wait for the hash
        assert me.status_code == 200 and me.json()["user"]["email"] == "ada@example.com"
        assert not release.is_set() and answers == []
    finally:
        release.set()
        thread.join(HANG_GUARD)
        setattr(busy_env.auth._kernel.hasher, "verify", original)  # noqa: B010
    assert answers == [200]
    assert busy_env.outbox.for_address("cy@example.com") == []  # the refused login did nothing
    assert busy_env.auth.user.get_by_email("dee@example.com") is None
    r = client.post("/auth/login", json={"email": "cy@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
