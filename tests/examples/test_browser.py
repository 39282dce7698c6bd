"""The example app (examples/fastapi_app) in a real browser: Debian's chromium through Playwright.

register -> login -> the 6-digit code from a real SMTP delivery (aiosmtpd) -> "me"
-> sessions (list, revoke another browser's session) -> log out -> "me" refused.

A screenshot of every step lands in ``$MINDMESH_SCREENSHOTS`` (kept) or in the
test's ``tmp_path / "screenshots"``; the folder is printed (``pytest -s`` shows it).
Locally a missing chromium or playwright skips; under ``CI`` it fails.
"""

from __future__ import annotations

import email
import email.policy
import importlib.util
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _ci import require, skip_or_fail

sync_api = require("playwright.sync_api", reason="the browser test drives chromium through Playwright")
uvicorn = require("uvicorn", reason="the browser test serves the example app")
aiosmtpd_controller = require("aiosmtpd.controller", reason="the browser test reads the code from a real SMTP delivery")
require("fastapi")
require("emails")
require("peewee")

expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = ROOT / "examples" / "fastapi_app" / "app.py"
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
MAIL_DEADLINE = 15.0  # seconds
CODE = re.compile(r"\b(\d{6})\b")


# ---------------------------------------------------------------------------
# SMTP: an aiosmtpd server that keeps every message
# ---------------------------------------------------------------------------
class Capture:
    """aiosmtpd handler: stores each delivered message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def code_after(self, seen: int, to: str) -> str:
        """The code in the first message to ``to`` after the first ``seen`` messages (polled, with a deadline)."""
        deadline = time.monotonic() + MAIL_DEADLINE
        while time.monotonic() < deadline:
            with self._lock:
                fresh = [m for m in self.messages[seen:] if to in str(m["To"])]
            if fresh:
                part = fresh[0].get_body(preferencelist=("plain",))
                assert part is not None, "the mail has no text part"
                found = CODE.search(part.get_content())
                assert found, "no 6-digit code in the mail"
                return found.group(1)
            threading.Event().wait(0.05)
        raise AssertionError(f"no mail to {to} within {MAIL_DEADLINE} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Capture, int]]:
    capture = Capture()
    port = free_port()
    controller = aiosmtpd_controller.Controller(capture, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield capture, port
    finally:
        controller.stop()


# ---------------------------------------------------------------------------
# The example app, served by uvicorn on a free port
# ---------------------------------------------------------------------------
@dataclass
class Served:
    url: str
    app: Any


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mindmesh_example_fastapi_app", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def served(tmp_path: Path, smtp: tuple[Capture, int]) -> Iterator[Served]:
    _, smtp_port = smtp
    environ = {
        "AUTH_JWT_SECRET": "browser-jwt-Yq3Fv8Lm1Xc6Tn4Kd9Wb2Rs7Hp5Gz0Ue",
        "AUTH_REFRESH_SECRET": "browser-rfr-Jw6Ct1Pz8Mh3Bv5Qx9Ng2Ka7Ls4Dy0Ro",
        "AUTH_BCRYPT_ROUNDS": "10",
        "AUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'example.db'}",
        "AUTH_APP_NAME": "Mindmesh example",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "Mindmesh example <no-reply@localhost>",
    }
    app = load_example().create_app(environ)
    # Listening before the thread starts: the browser's first request waits in the backlog.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://localhost:{port}", app)  # localhost: a secure context, Secure cookies work
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------
@pytest.fixture
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        skip_or_fail("chromium is not on PATH (apt-get install chromium; .ci/run and scripts/setup install it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ["MINDMESH_SCREENSHOTS"]) if os.environ.get("MINDMESH_SCREENSHOTS") else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def new_page(browser: Any, url: str, errors: list[str]) -> Any:
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def log_in(page: Any, smtp: Capture) -> None:
    """Password, then the code from the mail, ending on "me"."""
    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    seen = smtp.count()
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/verify\?email="))
    expect(page.locator("#code-email")).to_have_text(EMAIL)
    page.get_by_label("Code").fill(smtp.code_after(seen, EMAIL))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/me$"))
    expect(page.locator("#me-email")).to_have_text(EMAIL)


def test_the_whole_flow_in_a_browser(browser: Any, served: Served, smtp: tuple[Capture, int], screenshots: Path) -> None:
    capture, _ = smtp
    errors: list[str] = []
    page = new_page(browser, served.url, errors)

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)

    # 1. register
    page.goto("/register")
    expect(page.get_by_role("heading", name="Register")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#registered")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    shot(page, "01-registered")

    # 2. login: the password step sends the code by mail
    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    seen = capture.count()
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/verify\?email="))
    expect(page.locator("#code-email")).to_have_text(EMAIL)
    shot(page, "02-code-requested")

    # 3. the code from the SMTP delivery; a wrong one is refused first
    code = capture.code_after(seen, EMAIL)
    page.get_by_label("Code").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#error")).to_be_visible()
    shot(page, "03-wrong-code")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()

    # 4. "me": the user's email; the tokens are httpOnly Secure cookies, out of reach of JS
    expect(page).to_have_url(re.compile(r"/me$"))
    expect(page.locator("#me-email")).to_have_text(EMAIL)
    cookies = page.context.cookies()
    assert cookies and all(c["httpOnly"] and c["secure"] for c in cookies), cookies
    assert page.evaluate("document.cookie") == ""
    shot(page, "04-me")

    # 5. the access cookie is gone (expired): the refresh cookie, sent only to the auth API, signs in again
    # (the device cookie, __Host- so path "/", lets this browser's later logins skip the delays
    # that failures from elsewhere cause: docs/security.md)
    access = [c for c in cookies if c["path"] == "/" and c["name"] != "__Host-mm_device"]
    device = [c for c in cookies if c["name"] == "__Host-mm_device"]
    assert len(access) == 1 and len(device) == 1, cookies
    assert all(c["path"].startswith("/auth") for c in cookies if c not in access + device), cookies
    page.context.clear_cookies(name=access[0]["name"])
    page.goto("/me")
    expect(page).to_have_url(re.compile(r"/me\?refreshed=1$"))
    expect(page.locator("#me-email")).to_have_text(EMAIL)
    assert any(c["name"] == access[0]["name"] for c in page.context.cookies())
    shot(page, "05-me-after-refresh")

    # 6. sessions: exactly one, this browser's
    page.get_by_role("link", name="My sessions").click()
    expect(page).to_have_url(re.compile(r"/sessions$"))
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.locator("#session-count")).to_have_text("1 active session")
    shot(page, "06-one-session")

    # 7. a second browser logs in: two sessions
    other = new_page(browser, served.url, errors)
    log_in(other, capture)
    shot(other, "07-second-browser-me")
    page.reload()
    expect(rows).to_have_count(2)
    expect(page.locator("#session-count")).to_have_text("2 active sessions")
    shot(page, "08-two-sessions")

    # 8. revoke the other browser's session: one left, and that browser is signed out
    page.locator("#sessions tbody tr:not(.current)").get_by_role("button", name="Revoke").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.locator("#session-count")).to_have_text("1 active session")
    shot(page, "09-other-revoked")
    response = other.goto("/me")
    assert response is not None and response.status == 401
    expect(other.locator("body")).to_have_attribute("data-refresh", "failed")  # the revoked session does not refresh
    expect(other.locator("#signed-out")).to_be_visible()
    expect(other.locator("#me-email")).to_have_count(0)
    shot(other, "10-second-browser-refused")

    # 9. log out: the cookies are cleared and "me" is refused
    page.goto("/me")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("body")).to_have_attribute("data-refresh", "failed")
    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#me-email")).to_have_count(0)
    # the session cookies are gone; the device cookie stays (it grants no access, it only
    # spares this browser the delays of failures from elsewhere at its next login)
    assert [c["name"] for c in page.context.cookies()] == ["__Host-mm_device"]
    shot(page, "11-logged-out")
    response = page.goto("/me")
    assert response is not None and response.status == 401
    expect(page.locator("body")).to_have_attribute("data-refresh", "failed")
    response = page.goto("/sessions")
    assert response is not None and response.status == 401
    expect(page.locator("body")).to_have_attribute("data-refresh", "failed")
    expect(page.locator("#signed-out")).to_be_visible()
    shot(page, "12-sessions-refused")

    # Both sessions are gone on the server too.
    auth = served.app.state.mindmesh_auth
    user = auth.user.get_by_email(EMAIL)
    assert user is not None
    assert auth.sessions.list(user.id) == []
    assert errors == [], errors
    assert (screenshots / "12-sessions-refused.png").stat().st_size > 0
