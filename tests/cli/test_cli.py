"""The ``mindmesh-auth`` command line, run as a real subprocess (``python -m mindmesh_auth``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ci import require

require("click")
require("peewee")

from mindmesh_auth import (  # noqa: E402
    AuditEventType,
    AuthConfig,
    InvalidCredentials,
    InvalidRefreshToken,
    MindmeshAuth,
    RateLimited,
)
from mindmesh_auth.testing import Outbox  # noqa: E402

JWT_SECRET = "cli-jwt-Vb4Nx9Kq2Wm7Tz1Hr6Lc3Fp8Ds5Gj0Ya"  # 40 characters
REFRESH_SECRET = "cli-rfr-Ep7Su2Ho9Ci4Mw1Ky6Qa3Zt8Xn5Bf0Ld"
PASSWORD = "correct horse battery staple"
PEPPER = "cli-ppr-Wq3Ez8Rt1Yu6Io4Pa9Sd2Fg7Hj5Kl0Zx"  # a configured app has one (else every command warns)

_DROP = ("AUTH_", "DATABASE_URL", "SMTP_", "OTP_", "SESSION_DAYS", "ACCESS_TOKEN_MINUTES", "MINDMESH_AUTH_DEBUG")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    # Cost 10: the lowest bcrypt cost the policy accepts from the environment (docs/configuration.md).
    env.update(AUTH_JWT_SECRET=JWT_SECRET, AUTH_REFRESH_SECRET=REFRESH_SECRET, AUTH_BCRYPT_ROUNDS="10")
    env.update(AUTH_PASSWORD_PEPPER=PEPPER)
    env.update(extra)
    return env


class Cli:
    """Runs ``python -m mindmesh_auth --database-url sqlite:///... ARGS`` in a clean folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder}/auth.db"
        self.runs = 0

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, db: bool = True
    ) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        argv = [sys.executable, "-m", "mindmesh_auth", *(["--database-url", self.url] if db else []), *args]
        return subprocess.run(
            argv,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=env if env is not None else _env(),
            cwd=self.folder,  # no stray .env file
            timeout=60,
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        proc = self(*args, input=input)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, code: int = 1, input: str | None = None, env: dict[str, str] | None = None) -> str:
        proc = self(*args, input=input, env=env)
        assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        return lines[0]

    def create_user(self, email: str, *extra: str) -> str:
        out = self.ok("users", "create", email, "--password-stdin", *extra, input=PASSWORD + "\n")
        user_id = out.strip()
        assert re.fullmatch(r"\S+", user_id), out
        return user_id

    def api(self) -> tuple[MindmeshAuth, Outbox]:
        """The Python API on the same SQLite file (to make sessions)."""
        outbox = Outbox()
        config = AuthConfig(jwt_secret=JWT_SECRET, refresh_secret=REFRESH_SECRET, password_pepper=PEPPER, bcrypt_rounds=4)
        return MindmeshAuth(store=self.url, mailer=outbox, config=config), outbox


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    runner = Cli(tmp_path_factory.mktemp("cli"))
    first = runner.ok("init")
    second = runner("init", db=False, env=_env(DATABASE_URL=runner.url))  # idempotent; URL from the environment
    assert first.count("\n") == 1 and "schema ready" in first and runner.url in first
    assert second.returncode == 0 and second.stdout == first, second.stderr
    yield runner
    assert runner.runs <= 40  # each start costs ~0.3 s: group assertions instead of adding runs


def _login(cli: Cli, email: str, times: int = 1) -> list[str]:
    auth, outbox = cli.api()
    try:
        sessions = []
        for _ in range(times):
            auth.auth.login(email, PASSWORD)
            sessions.append(auth.auth.verify_otp(email, outbox.last_code(email), "login").session_id)
        return sessions
    finally:
        auth.close()


# -- help, usage and configuration errors -------------------------------------

COMMANDS = [
    "",
    "init",
    "purge-expired",
    "doctor",
    "demo",
    "audit",
    "users",
    "users create",
    "users show",
    "users list",
    "users block",
    "users unblock",
    "users verify-email",
    "users delete",
    "sessions",
    "sessions list",
    "sessions revoke",
    "sessions revoke-all",
]

_HELP_LOOP = """
import sys
from mindmesh_auth.cli import main
for line in sys.stdin.read().splitlines():
    print("@@@ " + line, flush=True)
    status = main([*line.split(), "--help"])
    print("@@@ status=%d" % status, flush=True)
"""


def test_help_on_every_command_needs_no_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in _env().items() if k not in ("AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET")}
    # One interpreter walks every command's --help through main(), the console-script entry.
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_LOOP], input="\n".join(COMMANDS), capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    chunks = proc.stdout.split("@@@ ")[1:]
    assert len(chunks) == 2 * len(COMMANDS)
    for command, (head, status) in zip(COMMANDS, zip(chunks[::2], chunks[1::2], strict=True), strict=True):
        text = head.split("\n", 1)[1]
        assert status.strip() == "status=0", command
        assert text.startswith(f"Usage: mindmesh-auth {command}".rstrip()), (command, text)
        assert "--help" in text and "Traceback" not in text
    top = chunks[0]
    for command in ("init", "users", "sessions", "audit", "purge-expired", "demo"):
        assert f"  {command} " in top


def test_usage_and_configuration_errors(cli: Cli) -> None:
    line = cli.fails("frobnicate", code=2)
    assert line.startswith("Error: ") and "frobnicate" in line

    no_jwt = {k: v for k, v in _env().items() if k != "AUTH_JWT_SECRET"}
    line = cli.fails("users", "list", env=no_jwt)
    assert line.startswith("error: configuration_error:") and "AUTH_JWT_SECRET" in line

    proc = cli("init", db=False)  # no URL anywhere
    assert proc.returncode == 1 and proc.stderr.startswith("error: configuration_error:")
    assert "AUTH_DATABASE_URL" in proc.stderr


# -- users ----------------------------------------------------------------------


def test_users_lifecycle_is_reflected_in_show_json(cli: Cli) -> None:
    user_id = cli.create_user("ada@example.com")
    shown = cli.json("users", "show", user_id)
    assert shown["id"] == user_id and shown["email"] == "ada@example.com"
    assert shown["blocked"] is False and shown["email_verified"] is False
    assert "password_hash" not in shown and "$2" not in json.dumps(shown)
    created = shown["created_at"]
    assert created.endswith("+00:00")

    assert "verified the email" in cli.ok("users", "verify-email", "ada@example.com")
    assert cli.ok("users", "block", "ADA@example.com").strip() == f"blocked user {user_id} <ada@example.com>"
    shown = cli.json("users", "show", "ada@example.com")
    assert shown["blocked"] is True and shown["email_verified"] is True and shown["created_at"] == created

    assert "unblocked user" in cli.ok("users", "unblock", user_id)
    text = cli.ok("users", "show", "ada@example.com")
    assert re.search(r"^email\s+ada@example\.com$", text, re.M)
    assert re.search(r"^email_verified\s+yes$", text, re.M)
    assert re.search(r"^blocked\s+no$", text, re.M)
    assert "$2" not in text and "password" not in text


def test_users_delete_by_email_and_by_id(tmp_path: Path) -> None:
    cli = Cli(tmp_path)  # its own database: the module's runs are budgeted
    cli.ok("init")
    auth, outbox = cli.api()
    try:
        ada = auth.auth.register("ada@example.com", PASSWORD)
        bob = auth.auth.register("bob@example.com", PASSWORD)
        keep = auth.auth.register("keep@example.com", PASSWORD)
        auth.auth.login("bob@example.com", PASSWORD)
        bob_session = auth.auth.verify_otp("bob@example.com", outbox.last_code("bob@example.com"), "login")
    finally:
        auth.close()

    by_email = cli("users", "delete", "ADA@example.com")
    assert by_email.returncode == 0, by_email.stderr
    assert by_email.stdout == f"deleted user {ada.id} <ada@example.com>\n"
    # The CLI sends no mail: the account_deleted notice is shown on stderr only.
    assert "mail to ada@example.com" in by_email.stderr and "deleted" in by_email.stderr
    assert "Traceback" not in by_email.stderr
    assert cli.ok("users", "delete", bob.id) == f"deleted user {bob.id} <bob@example.com>\n"

    assert cli.fails("users", "show", "ada@example.com") == "error: user_not_found: User not found."
    assert cli.fails("users", "delete", bob.id) == "error: user_not_found: User not found."
    assert cli.fails("users", "delete", "nobody@example.com") == "error: user_not_found: User not found."
    assert [u["id"] for u in cli.json("users", "list")] == [keep.id]
    again = cli.create_user("ada@example.com")  # the address is free again
    assert again != ada.id

    auth, _ = cli.api()
    try:
        [session] = auth.sessions.list(bob.id, include_inactive=True)
        assert session.id == bob_session.session_id and session.revoked_at is not None
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(bob_session.refresh_token)
        deleted = auth.audit.query(types=[AuditEventType.ACCOUNT_DELETED])
        assert [(e.user_id, e.email, e.reason, e.user_agent) for e in deleted] == [
            (ada.id, "ada@example.com", "admin", "mindmesh-auth cli"),
            (bob.id, "bob@example.com", "admin", "mindmesh-auth cli"),
        ]
        assert auth.user.get_by_id(keep.id).email == "keep@example.com"
    finally:
        auth.close()


def test_users_create_list_and_errors(cli: Cli) -> None:
    user_id = cli.create_user("verified@example.com", "--verified")
    cli.create_user("second@example.com")
    everyone = cli.json("users", "list", "--limit", "1000")
    mine = [u for u in everyone if u["id"] == user_id]
    assert len(mine) == 1 and mine[0]["email_verified"] is True
    assert len(everyone) >= 2 and all("password_hash" not in u for u in everyone)
    assert cli.json("users", "list", "--limit", "1", "--offset", "1") == [everyone[1]]

    table = cli.ok("users", "list").splitlines()
    assert table[0].split() == ["ID", "EMAIL", "VERIFIED", "BLOCKED", "CREATED"]
    at = table[0].index("EMAIL")  # aligned columns
    assert all(row[at - 2 : at] == "  " and row[at] != " " for row in table[1:])
    assert any(row.split()[1:3] == ["verified@example.com", "yes"] for row in table[1:])

    line = cli.fails("users", "create", "verified@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert line == "error: email_taken: An account with this email already exists."
    # The default SQL user model has no extra columns: the store refuses the field.
    line = cli.fails("users", "create", "f@example.com", "--password-stdin", "--field", "nickname=Ada", input=PASSWORD + "\n")
    assert line.startswith("error: invalid_input:") and "nickname" in line
    # stdin is a pipe, not a terminal: no prompt on it.
    line = cli.fails("users", "create", "f@example.com", code=2)
    assert "--password-stdin" in line
    assert cli.fails("users", "show", "nobody@example.com") == "error: user_not_found: User not found."
    # Past the offset every backend takes: a typed error, not a driver's OverflowError.
    line = cli.fails("users", "list", "--offset", str(2**63))
    assert line == "error: invalid_input: offset must be a whole number from 0 to 2147483647."


def test_users_create_is_an_admin_creation_off_the_public_registration_bucket(tmp_path: Path) -> None:
    cli = Cli(tmp_path)  # its own database: the module's runs are budgeted
    cli.ok("init")
    # Requests without an address share one bucket: register_ip_limit (20 an hour) times the factor.
    env = _env(AUTH_NO_IP_LIMIT_FACTOR="1")
    config = AuthConfig(
        jwt_secret=JWT_SECRET, refresh_secret=REFRESH_SECRET, password_pepper=PEPPER, bcrypt_rounds=4, no_ip_limit_factor=1
    )
    auth = MindmeshAuth(store=cli.url, mailer=Outbox(), config=config)
    try:
        bucket = config.register_ip_limit.count
        for i in range(bucket - 1):
            auth.auth.register(f"public{i}@example.com", PASSWORD)

        def create(email: str, *extra: str) -> str:
            proc = cli("users", "create", email, "--password-stdin", *extra, input=PASSWORD + "\n", env=env)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout.strip()

        verified = create("ops@example.com", "--verified")
        plain = create("plain@example.com")
        auth.auth.register("last@example.com", PASSWORD)  # the bucket's last place was left to the public
        with pytest.raises(RateLimited):
            auth.auth.register("refused@example.com", PASSWORD)
        late = create("late@example.com")  # a spent bucket does not stop an administrator

        assert (auth.user.get_by_id(verified).email_verified, auth.user.get_by_id(plain).email_verified) == (True, False)
        assert auth.user.get_by_id(late).email == "late@example.com"
        rows = auth.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS], limit=1000)
        assert [(r.user_id, r.reason, r.user_agent) for r in rows if r.reason] == [
            (verified, "admin", "mindmesh-auth cli"),
            (plain, "admin", "mindmesh-auth cli"),
            (late, "admin", "mindmesh-auth cli"),
        ]
        assert len(rows) == bucket + 3
        assert [r.reason for r in auth.audit.query(types=[AuditEventType.RATE_LIMITED])] == ["register"]
    finally:
        auth.close()


# -- sessions -------------------------------------------------------------------


def test_sessions_list_and_revoke(cli: Cli) -> None:
    user_id = cli.create_user("sessions@example.com")
    first, second, third = _login(cli, "sessions@example.com", times=3)

    table = cli.ok("sessions", "list", "sessions@example.com").splitlines()
    assert table[0].split()[:2] == ["ID", "STATUS"]
    assert {first, second, third} <= {row.split()[0] for row in table[1:]}
    assert all(row.split()[1] == "active" for row in table[1:])

    assert cli.ok("sessions", "revoke", first).strip() == f"revoked session {first}"
    assert cli.fails("sessions", "revoke", "no-such-session") == "error: session_not_found: Session not found."

    live = cli.json("sessions", "list", user_id)
    assert {s["id"] for s in live} == {second, third}
    assert all(s["status"] == "active" and s["revoked_at"] is None for s in live)
    assert all("refresh_hash" not in s for s in live)

    assert cli.ok("sessions", "revoke-all", "sessions@example.com").strip() == "revoked 2 sessions of sessions@example.com"
    everything = cli.json("sessions", "list", "sessions@example.com", "--all")
    assert {s["id"]: s["status"] for s in everything} == {first: "revoked", second: "revoked", third: "revoked"}
    assert all(s["revoked_at"] and s["revoked_at"].endswith("+00:00") for s in everything)


# -- audit ----------------------------------------------------------------------


def test_audit_filters(cli: Cli) -> None:
    user_id = cli.create_user("audit@example.com")
    cli.ok("users", "block", user_id)

    events = cli.json("audit", "--user", "audit@example.com", "--type", "ACCOUNT_BLOCKED", "--type", "registration_success")
    assert [e["type"] for e in events] == ["REGISTRATION_SUCCESS", "ACCOUNT_BLOCKED"]
    assert all(e["user_id"] == user_id for e in events)
    assert events[1]["user_agent"] == "mindmesh-auth cli"
    when = events[0]["occurred_at"]
    assert when.endswith("+00:00")

    # Naive datetimes are UTC; --until is exclusive of later events.
    by_id = cli.json("audit", "--user", user_id, "--since", when[:-6], "--until", "2999-01-01T00:00:00", "--limit", "1")
    assert len(by_id) == 1 and by_id[0]["type"] == "REGISTRATION_SUCCESS"

    table = cli.ok("audit", "--user", user_id)
    header, *rows = table.splitlines()
    assert header.split()[:3] == ["ID", "TIME", "TYPE"]
    assert [r.split()[3] for r in rows] == ["REGISTRATION_SUCCESS", "ACCOUNT_BLOCKED"]
    assert cli.ok("audit", "--since", "2999-01-01").strip() == "no audit events"

    line = cli.fails("audit", "--since", "yesterday", code=2)
    assert line.startswith("Error: ") and "--since" in line


# -- maintenance ------------------------------------------------------------------


def test_purge_expired_prints_counts_per_table(cli: Cli) -> None:
    cli.create_user("purge@example.com")
    _login(cli, "purge@example.com")
    proc = cli("purge-expired")
    assert proc.returncode == 0, proc.stderr
    assert "purging expired rows" in proc.stderr
    match = re.fullmatch(
        r"purged (\d+) expired rows: sessions=(\d+), otp_challenges=(\d+), reset_tokens=(\d+), rate_limits=(\d+)\n",
        proc.stdout,
    )
    assert match, proc.stdout
    total, *counts = (int(g) for g in match.groups())
    assert total == sum(counts)


def test_demo_runs_every_step_without_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in _env().items() if k not in ("AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET")}
    env["AUTH_DATABASE_URL"] = "sqlite:////nonexistent/never-used.db"  # demo ignores the environment's URL
    proc = subprocess.run(
        [sys.executable, "-m", "mindmesh_auth", "demo", "--database-url", f"sqlite:///{tmp_path}/demo.db"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    steps = ["1. register", "2. login", "3. verify the code", "4. get the user", "5. refresh", "6. logout",
             "7. delete the demo account", "audit log"]
    positions = [out.index(f"== {step}") for step in steps]
    assert positions == sorted(positions)
    assert "mail to ada@example.com" in out
    assert "replaying the old refresh token is refused" in out
    assert out.rstrip().endswith("demo complete")
    assert (tmp_path / "demo.db").exists()
    assert "correct horse battery staple" not in out  # no published password

    registered = re.search(r"^    user (\S+) <ada@example\.com>$", out, re.M)
    assert registered, out
    ada_id = registered.group(1)
    assert f"deleted user {ada_id}" in out and "account was deleted" in out  # the notice mail is shown

    # The demo account is deleted: nothing is left to log into; the audit log keeps its events.
    config = AuthConfig(jwt_secret=JWT_SECRET, refresh_secret=REFRESH_SECRET, bcrypt_rounds=4)
    with MindmeshAuth(store=f"sqlite:///{tmp_path}/demo.db", mailer=Outbox(), config=config) as auth:
        assert auth.user.list() == []
        with pytest.raises(InvalidCredentials):
            auth.auth.login("ada@example.com", "correct horse battery staple")
        [deleted] = auth.audit.query(types=[AuditEventType.ACCOUNT_DELETED])
        assert deleted.user_id == ada_id and deleted.reason == "admin"
        assert {s.revoked_at is not None for s in auth.sessions.list(ada_id, include_inactive=True)} == {True}
        real = auth.auth.register("real@example.com", PASSWORD)
        events = len(auth.audit.query(limit=10000))

    # A database that holds users is refused, and left as it was.
    again = subprocess.run(
        [sys.executable, "-m", "mindmesh_auth", "--database-url", f"sqlite:///{tmp_path}/demo.db", "demo"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert again.returncode == 1 and again.stdout == ""
    [line] = again.stderr.strip().splitlines()
    assert line.startswith("error: configuration_error: The demo refuses sqlite:///") and "already holds users" in line
    with MindmeshAuth(store=f"sqlite:///{tmp_path}/demo.db", mailer=Outbox(), config=config) as auth:
        assert [u.id for u in auth.user.list()] == [real.id]
        assert len(auth.audit.query(limit=10000)) == events


def test_demo_refuses_an_application_database_and_writes_nothing(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.ok("init")
    user_id = cli.create_user("real@example.com")
    env = {k: v for k, v in _env().items() if k not in ("AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET")}
    line = cli.fails("demo", env=env)
    assert line.startswith("error: configuration_error: The demo refuses") and "already holds users" in line
    assert [u["id"] for u in cli.json("users", "list")] == [user_id]  # no demo account added


def test_cli_redacts_secret_query_parameters() -> None:
    from mindmesh_auth.cli import _redact_url

    url = ("postgresql://app:pw-in-netloc@db:5432/auth?sslmode=require&password=q-secret-1&PWD=q-secret-2"
           "&sslpassword=q-secret-3&api_key=q-secret-4&token=q-secret-5&client_secret=q-secret-6&pass=q-secret-7"
           "&application_name=web")
    shown = _redact_url(url)
    assert not re.search(r"pw-in-netloc|q-secret-\d", shown), shown
    assert shown == (
        "postgresql://app:***@db:5432/auth?sslmode=require&password=***&PWD=***&sslpassword=***&api_key=***"
        "&token=***&client_secret=***&pass=***&application_name=web"
    )
    assert _redact_url(None) == "-"


def test_a_password_in_the_query_string_is_never_echoed(tmp_path: Path) -> None:
    # A PostgreSQL database of this test's own (trust authentication takes any password).
    from _servers import ensure_database, server_url

    from mindmesh_auth.adapters.peewee import PeeweeStore

    base = server_url("postgres")
    own = base.rsplit("/", 1)[0] + "/mindmesh_test_cli_redact"
    ensure_database("postgres", own)
    store = PeeweeStore.from_url(own)
    store.drop_schema()
    store.close()
    secret = "Query-Pa55-9d1e7"
    url = f"{own}?password={secret}&application_name=mm-cli-test"
    env = {k: v for k, v in _env().items() if k not in ("AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET")}
    try:
        demo = subprocess.run([sys.executable, "-m", "mindmesh_auth", "--database-url", url, "demo"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert demo.returncode == 0, demo.stderr
        assert "password=***&application_name=mm-cli-test" in demo.stdout.splitlines()[0]
        init = Cli(tmp_path)
        init.url = url
        out = init.ok("init")
        assert "password=***" in out
        init.create_user("real@example.com")  # the demo deleted its account: a user makes it refuse
        refused = subprocess.run([sys.executable, "-m", "mindmesh_auth", "--database-url", url, "demo"],
                                 capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert refused.returncode == 1 and "password=***" in refused.stderr
        for proc_out in (demo.stdout, demo.stderr, refused.stdout, refused.stderr, out):
            assert secret not in proc_out
    finally:
        store = PeeweeStore.from_url(own)
        store.drop_schema()
        store.close()


def test_user_model_option_lets_fields_reach_the_apps_columns(tmp_path: Path) -> None:
    cli = Cli(tmp_path)  # its own database: the users table is created with the app's columns
    (cli.folder / "appmodels.py").write_text(
        "import peewee\n"
        "from mindmesh_auth.adapters.peewee import BaseUserModel\n\n"
        "class AppUser(BaseUserModel):\n"
        "    first_name = peewee.CharField(null=True)\n"
        "    role = peewee.CharField(default='member')\n"
    )
    env = _env(PYTHONPATH=str(cli.folder), AUTH_USER_MODEL="appmodels:AppUser")
    for args in (("init",), ("users", "create", "ada@example.com", "--password-stdin", "--field", "first_name=Ada")):
        proc = cli(*args, input=PASSWORD + "\n", env=env)
        assert proc.returncode == 0, proc.stderr
    proc = cli("users", "show", "ada@example.com", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["first_name"] == "Ada" and shown["role"] == "member"
    line = cli.fails("users", "list", env=_env(PYTHONPATH=str(cli.folder), AUTH_USER_MODEL="appmodels:Missing"))
    assert line.startswith("error: configuration_error:") and "appmodels:Missing" in line
