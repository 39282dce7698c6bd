"""A small browser app on mindmesh-auth: FastAPI router in cookie mode, SQLite, real SMTP mail.

Pages (server-rendered HTML; the forms call the JSON API under ``/auth`` with ``fetch``):

    /register  ->  /login  ->  /verify (the 6-digit code from the mail)  ->  /me  ->  /sessions

Configuration comes from the environment (``AuthConfig.from_env()``, see
``docs/configuration.md``): ``AUTH_JWT_SECRET``, ``AUTH_REFRESH_SECRET``,
``SMTP_HOST``/``SMTP_PORT``/``SMTP_SECURITY``..., and ``AUTH_DATABASE_URL``
(default ``sqlite:///mindmesh-example.db``). Run it with
``python examples/fastapi_app/app.py`` (see ``README.md`` next to this file).
"""

import html
import os
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from mindmesh_auth import AuthConfig, MindmeshAuth, User
from mindmesh_auth.integrations.fastapi import AuthHTTPException, CookieSettings, create_auth_router, install_error_handlers

DEFAULT_DATABASE_URL = "sqlite:///mindmesh-example.db"

# The JSON API is called from these few lines of inline JS. The router refuses
# cookie-authenticated POST/DELETE requests without CSRF_HEADER (docs/integrations.md).
SCRIPT = """
const CSRF_HEADER = "X-Requested-With";
const CSRF_VALUE = "fetch";

async function api(method, path, body) {
  const headers = {[CSRF_HEADER]: CSRF_VALUE};
  const init = {method, headers, credentials: "same-origin"};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  return {ok: response.ok, status: response.status, data: text ? JSON.parse(text) : null};
}

function showError(result) {
  const box = document.getElementById("error");
  box.textContent = (result.data && result.data.error) ? result.data.error.message : "Request failed (" + result.status + ").";
  box.hidden = false;
}

function onSubmit(formId, handler) {
  document.getElementById(formId).addEventListener("submit", async (event) => {
    event.preventDefault();
    document.getElementById("error").hidden = true;
    await handler(Object.fromEntries(new FormData(event.target)));
  });
}
"""

STYLE = """
body { font-family: sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
label { display: block; margin: .5rem 0; }
input { display: block; padding: .3rem; width: 20rem; }
button { margin-top: .5rem; padding: .3rem 1rem; }
#error { color: #b00020; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; }
nav a { margin-right: 1rem; }
"""


def page(title: str, body: str, script: str = "", status: int = 200) -> HTMLResponse:
    content = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{html.escape(title)} - Mindmesh example</title><style>{STYLE}</style></head>
<body>
<nav>
  <a href="/">Home</a><a href="/register">Register</a><a href="/login">Log in</a>
  <a href="/me">Me</a><a href="/sessions">Sessions</a>
</nav>
<h1>{html.escape(title)}</h1>
<p id="error" role="alert" hidden></p>
{body}
<script>{SCRIPT}
{script}</script>
</body>
</html>"""
    return HTMLResponse(content, status_code=status, headers={"Cache-Control": "no-store"})


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The example app; ``environ`` replaces the process environment (tests pass their own)."""
    config = AuthConfig.from_env() if environ is None else AuthConfig.from_mapping(environ)
    auth = MindmeshAuth(store=config.database_url or DEFAULT_DATABASE_URL, config=config)  # SmtpMailer from SMTP_*
    auth.create_schema()

    # Secure cookies: browsers accept them over HTTPS, and on http://localhost for development.
    router = create_auth_router(auth, cookies=CookieSettings(enabled=True))
    app = FastAPI(title="mindmesh-auth example")
    app.include_router(router)
    app.state.mindmesh_auth = auth  # for admin scripts and tests

    def not_signed_in() -> HTMLResponse:
        # The access cookie lives ACCESS_TOKEN_MINUTES; the refresh cookie (sent only to
        # the /auth API) a whole session. Try /auth/refresh once, then show the page again.
        script = """
(async () => {
  const url = new URL(window.location.href);
  if (!url.searchParams.has("refreshed")) {
    const result = await api("POST", "/auth/refresh", {});
    if (result.ok) {
      url.searchParams.set("refreshed", "1");
      return window.location.replace(url.href);
    }
  }
  document.body.dataset.refresh = "failed";
})();"""
        body = '<p id="signed-out">You are not signed in. <a href="/login">Log in</a>.</p>'
        return page("Not signed in", body, script, status=401)

    # The app's own routes answer errors in the router's shape ({"error": {...}}) and
    # document their 401; the pages below then turn a 401 into an HTML page instead.
    install_error_handlers(app)
    as_json = app.exception_handlers[AuthHTTPException]

    @app.exception_handler(AuthHTTPException)
    async def signed_out(request: Request, exc: Exception) -> Response:
        # router.current_user (the access cookie) refused the request: the HTML page, not JSON.
        assert isinstance(exc, AuthHTTPException)
        if exc.status_code == 401:
            return not_signed_in()
        return await as_json(request, exc)  # e.g. the CSRF check's 403

    SignedIn = Annotated[User, Depends(router.current_user)]

    @app.get("/", response_class=HTMLResponse)
    async def home() -> Response:
        return page("Mindmesh example", '<p><a href="/register">Create an account</a> or <a href="/login">log in</a>.</p>')

    @app.get("/register", response_class=HTMLResponse)
    async def register_page() -> Response:
        form = """
<form id="register-form">
  <label>Email <input name="email" type="email" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="new-password" minlength="8" required></label>
  <button type="submit">Create account</button>
</form>
<p id="registered" hidden>Account created. <a href="/login">Log in</a>.</p>"""
        script = """
onSubmit("register-form", async (fields) => {
  const result = await api("POST", "/auth/register", fields);
  if (!result.ok) return showError(result);
  document.getElementById("register-form").hidden = true;
  document.getElementById("registered").hidden = false;
});"""
        return page("Register", form, script)

    @app.get("/login", response_class=HTMLResponse)
    async def login_page() -> Response:
        form = """
<form id="login-form">
  <label>Email <input name="email" type="email" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>"""
        script = """
onSubmit("login-form", async (fields) => {
  const result = await api("POST", "/auth/login", fields);
  if (!result.ok) return showError(result);
  window.location.assign("/verify?email=" + encodeURIComponent(fields.email));
});"""
        return page("Log in", form, script)

    @app.get("/verify", response_class=HTMLResponse)
    async def verify_page(email: str = "") -> Response:
        form = f"""
<p>We sent a 6-digit code to <strong id="code-email">{html.escape(email)}</strong>.</p>
<form id="verify-form">
  <input name="email" type="hidden" value="{html.escape(email, quote=True)}">
  <label>Code
    <input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required>
  </label>
  <button type="submit">Verify</button>
</form>"""
        script = """
onSubmit("verify-form", async (fields) => {
  const result = await api("POST", "/auth/verify-otp", fields);
  if (!result.ok) return showError(result);
  window.location.assign("/me");
});"""
        return page("Enter your code", form, script)

    @app.get("/me", response_class=HTMLResponse)
    async def me_page(user: SignedIn) -> Response:
        body = f"""
<p>Signed in as <strong id="me-email">{html.escape(user.email)}</strong>.</p>
<p><a href="/sessions">My sessions</a></p>
<button id="logout" type="button">Log out</button>"""
        script = """
document.getElementById("logout").addEventListener("click", async () => {
  const result = await api("POST", "/auth/logout");
  if (!result.ok) return showError(result);
  window.location.assign("/me");
});"""
        return page("Me", body, script)

    @app.get("/sessions", response_class=HTMLResponse)
    async def sessions_page(user: SignedIn) -> Response:
        body = """
<table id="sessions">
  <thead><tr><th>Created</th><th>Last active</th><th>IP</th><th>Browser</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<p id="session-count"></p>
<p><a href="/me">Back</a></p>"""
        script = """
async function load() {
  const result = await api("GET", "/auth/sessions");
  if (result.status === 401) return window.location.assign("/me");
  if (!result.ok) return showError(result);
  const rows = document.querySelector("#sessions tbody");
  rows.replaceChildren();
  for (const s of result.data.sessions) {
    const row = document.createElement("tr");
    row.dataset.sessionId = s.id;
    row.className = s.current ? "session current" : "session";
    for (const text of [s.created_at, s.last_active_at, s.ip_address || "", s.user_agent || ""]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const cell = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = s.current ? "Revoke (this browser)" : "Revoke";
    button.addEventListener("click", async () => {
      const revoked = await api("DELETE", "/auth/sessions/" + encodeURIComponent(s.id));
      if (!revoked.ok) return showError(revoked);
      await load();
    });
    cell.append(button);
    row.append(cell);
    rows.append(row);
  }
  const n = result.data.sessions.length;
  document.getElementById("session-count").textContent = n + (n === 1 ? " active session" : " active sessions");
}
load();"""
        return page("My sessions", body, script)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    return app


if __name__ == "__main__":
    import uvicorn

    host = os.environ.get("HOST", "localhost")
    port = int(os.environ.get("PORT", "8000"))
    print(f"open http://{host}:{port}/register")
    uvicorn.run(create_app(), host=host, port=port)
