"""``mindmesh-auth doctor``: a good setup passes; each broken one is named.

The command runs in-process (``mindmesh_auth.cli.main``) against a SQLite
file and a real SMTP server (aiosmtpd) on loopback; the per-server checks
(clock, MariaDB collation) run the doctor's functions on PostgreSQL and
MariaDB with a table prefix of their own.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _ci import require, skip_or_fail

require("click")
require("peewee")
require("aiosmtpd")

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from mindmesh_auth import AuthConfig, MindmeshAuth  # noqa: E402
from mindmesh_auth import doctor as doc  # noqa: E402
from mindmesh_auth.cli import main  # noqa: E402
from mindmesh_auth.testing import Outbox, test_config  # noqa: E402

JWT_SECRET = "Jx7-qP2vLr9tZk4mWc8nYb3hGd6sFa1e"  # 32 characters, random-looking
REFRESH_SECRET = "uT5yR8eW2qA9sD4fG7hJ1kL3zX6cV0bN"
PEPPER = "pE4rN7cK2wQ9tY5uI8oP1aS6dF3gH0jL"
SMTP_USER = "doctor-user"
SMTP_PASS = "Smtp-Pa55-4f8e2c9d"
SECRETS = (JWT_SECRET, REFRESH_SECRET, PEPPER, SMTP_PASS)

_DROP = ("AUTH_", "DATABASE_URL", "SMTP_", "OTP_", "SESSION_DAYS", "ACCESS_TOKEN_MINUTES", "MINDMESH_AUTH_DEBUG",
         "SSL_CERT_FILE", "SSL_CERT_DIR")


# -- SMTP server ----------------------------------------------------------------------------


@dataclass
class Recorder:
    messages: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (SMTP_USER.encode(), SMTP_PASS.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Smtp:
    port: int
    recorder: Recorder


def _start(**kwargs: Any) -> tuple[Controller, Smtp]:
    recorder = Recorder()
    error: Exception | None = None
    for _ in range(5):  # another process may take the free port first
        port = _free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=30.0,
                                authenticator=_authenticator, **kwargs)
        try:
            controller.start()
        except Exception as exc:
            error = exc
            continue
        return controller, Smtp(port, recorder)
    raise RuntimeError(f"could not start the SMTP server: {error!r}")


@pytest.fixture
def plain_smtp() -> Iterator[Smtp]:
    controller, smtp = _start(auth_require_tls=False)
    try:
        yield smtp
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is not available")
    folder = tmp_path_factory.mktemp("doctor-cert")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture
def starttls_smtp(cert_files: tuple[Path, Path]) -> Iterator[Smtp]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_files)
    controller, smtp = _start(tls_context=context, require_starttls=True, auth_require_tls=True)
    try:
        yield smtp
    finally:
        controller.stop()


@pytest.fixture
def implicit_tls_smtp(cert_files: tuple[Path, Path]) -> Iterator[Smtp]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_files)
    controller, smtp = _start(ssl_context=context, auth_require_tls=False)
    try:
        yield smtp
    finally:
        controller.stop()


# -- running the command ---------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    def line(self, name: str) -> str:
        """The output line of check ``name``."""
        found = [ln for ln in self.out.splitlines() if ln.split()[1:2] == [name]]
        assert len(found) == 1, (name, self.out)
        return found[0]

    def status(self, name: str) -> str:
        return self.line(name).split()[0]


class Doctor:
    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder}/auth.db"
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def env(self, **values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, value)

    def __call__(self, *args: str, url: str | None = None) -> Run:
        self._capsys.readouterr()
        code = main(["--database-url", url or self.url, "doctor", *args])
        captured = self._capsys.readouterr()
        run = Run(code, captured.out, captured.err)
        for secret in SECRETS:  # whatever happened, no secret reaches the terminal
            assert secret not in run.out and secret not in run.err
        return run


@pytest.fixture
def doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Doctor:
    import os

    for name in list(os.environ):
        if name.startswith(_DROP):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    d = Doctor(tmp_path, monkeypatch, capsys)
    d.env(AUTH_JWT_SECRET=JWT_SECRET, AUTH_REFRESH_SECRET=REFRESH_SECRET, AUTH_PASSWORD_PEPPER=PEPPER)
    assert main(["--database-url", d.url, "init"]) == 0
    return d


def _good_smtp(d: Doctor, smtp: Smtp) -> None:
    d.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), SMTP_SECURITY="none", SMTP_USER=SMTP_USER,
          SMTP_PASS=SMTP_PASS, SMTP_FROM="Mindmesh <no-reply@example.test>")


# -- a good setup ------------------------------------------------------------------------------


def test_a_good_setup_passes_every_check_and_sends_the_test_mail(doctor: Doctor, plain_smtp: Smtp) -> None:
    _good_smtp(doctor, plain_smtp)
    run = doctor("--send-test-mail", "ops@example.test", "--strict")

    assert run.code == 0, run.out
    names = [ln.split()[1] for ln in run.out.splitlines()[:-1]]
    for expected in ("config", "config.secrets", "config.pepper", "config.bcrypt", "database", "database.schema",
                     "database.indexes", "clock", "smtp.connect", "smtp.tls", "smtp.login", "smtp.test_mail"):
        assert expected in names, run.out
    statuses = {name: run.status(name) for name in names}
    assert set(statuses.values()) == {"ok"}, run.out
    assert run.out.splitlines()[-1] == "0 problems, 0 warnings: ready"
    [(rcpt, content)] = plain_smtp.recorder.messages
    assert rcpt == ["ops@example.test"]
    assert "mindmesh-auth test mail" in str(email.message_from_bytes(content, policy=email.policy.default)["Subject"])


def test_json_output_lists_every_check(doctor: Doctor, plain_smtp: Smtp) -> None:
    _good_smtp(doctor, plain_smtp)
    run = doctor("--json")
    data = json.loads(run.out)
    assert run.code == 0 and data["ok"] is True and data["failures"] == 0 and data["warnings"] == 0
    assert {c["status"] for c in data["checks"]} <= {"ok", "skip"}
    assert {c["name"] for c in data["checks"]} >= {"config", "database", "clock", "smtp.login"}
    assert plain_smtp.recorder.messages == []  # no test mail unless asked


# -- broken configurations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTH_JWT_SECRET": "changeme"}, "AUTH_JWT_SECRET"),
        ({"AUTH_REFRESH_SECRET": "short-but-not-32"}, "AUTH_REFRESH_SECRET"),
        ({"AUTH_JWT_SECRET": None}, "AUTH_JWT_SECRET"),
        ({"AUTH_REFRESH_SECRET": JWT_SECRET}, "AUTH_REFRESH_SECRET"),  # equal secrets
    ],
)
def test_a_bad_secret_fails_naming_the_variable(
    doctor: Doctor, plain_smtp: Smtp, env: dict[str, str | None], variable: str
) -> None:
    _good_smtp(doctor, plain_smtp)
    doctor.env(**env)
    run = doctor()
    assert run.code == 1
    assert run.status("config") == "FAIL" and variable in run.line("config"), run.out
    # The rest is still checked, with throw-away secrets.
    assert run.status("database") == "ok" and run.status("smtp.login") == "ok"
    assert run.out.splitlines()[-1].startswith("1 problem,")


def test_a_configuration_that_cannot_load_at_all_skips_the_rest(doctor: Doctor) -> None:
    doctor.env(AUTH_JWT_SECRET="changeme", SMTP_PORT="not-a-number")
    run = doctor()
    assert run.code == 1
    assert run.status("config") == "FAIL" and run.status("database") == "skip" and run.status("smtp") == "skip"


def test_a_missing_pepper_is_a_loud_warning(doctor: Doctor, plain_smtp: Smtp) -> None:
    _good_smtp(doctor, plain_smtp)
    doctor.env(AUTH_PASSWORD_PEPPER=None)
    run = doctor()
    assert run.code == 0  # a warning alone passes...
    assert run.status("config.pepper") == "warn"
    assert "AUTH_PASSWORD_PEPPER is NOT SET" in run.line("config.pepper")
    assert run.out.count("AUTH_PASSWORD_PEPPER") == 1  # said once, not again by the config's advice
    assert run.out.splitlines()[-1] == "0 problems, 1 warning: review the warnings"
    assert doctor("--strict").code == 1  # ...unless --strict


def test_config_advice_names_cheap_bcrypt_clear_text_smtp_and_weak_or_shared_secrets() -> None:
    config = AuthConfig(jwt_secret=JWT_SECRET, refresh_secret=REFRESH_SECRET, password_pepper=PEPPER,
                        bcrypt_rounds=12, smtp_host="mail.example.com", smtp_security="none", smtp_user="u")
    by_name = {r.name: r for r in doc.check_config_advice(config)}
    assert by_name["config.smtp"].status == "warn" and "mail.example.com" in by_name["config.smtp"].message
    assert "SMTP login" in by_name["config.smtp"].message
    assert by_name["config.bcrypt"].status == "ok" and by_name["config.pepper"].status == "ok"

    cheap = config.with_changes(bcrypt_rounds=10, smtp_host="127.0.0.1")
    by_name = {r.name: r for r in doc.check_config_advice(cheap)}
    assert by_name["config.bcrypt"].status == "warn" and "AUTH_BCRYPT_ROUNDS is 10" in by_name["config.bcrypt"].message
    assert "config.smtp" not in by_name  # clear text on loopback is fine

    # Configs built in code may bypass from_env's policy: the doctor still names weak and shared secrets.
    weak = SimpleNamespace(jwt_secret="ab" * 20, refresh_secret=REFRESH_SECRET, previous_jwt_secrets=(),
                           password_pepper=REFRESH_SECRET, bcrypt_rounds=12, smtp_host=None, smtp_security="starttls",
                           smtp_user=None)
    results = [r for r in doc.check_config_advice(weak) if r.name == "config.secrets"]  # type: ignore[arg-type]
    assert {r.status for r in results} == {"fail"}
    text = " ".join(r.message for r in results)
    assert "AUTH_JWT_SECRET looks weak" in text
    assert "AUTH_REFRESH_SECRET and AUTH_PASSWORD_PEPPER have the same value" in text
    assert all(s not in text for s in ("ab" * 20, REFRESH_SECRET))


# -- broken databases ------------------------------------------------------------------------------


def test_an_unreachable_database_fails(doctor: Doctor) -> None:
    run = doctor(url=f"postgresql://postgres:{SMTP_PASS}@127.0.0.1:{_free_port()}/nowhere")
    assert run.code == 1
    assert run.status("database") == "FAIL" and "storage_unavailable" in run.line("database")
    assert "postgresql://postgres:***@127.0.0.1" in run.line("database")  # the password is redacted
    assert run.status("database.schema") == "skip"


def test_a_database_without_tables_says_to_run_init(doctor: Doctor) -> None:
    run = doctor(url=f"sqlite:///{doctor.folder}/empty.db")
    assert run.code == 1
    assert run.status("database") == "FAIL" and "mindmesh-auth init" in run.line("database")


def test_a_missing_unique_index_fails_naming_it(doctor: Doctor) -> None:
    db = sqlite3.connect(doctor.folder / "auth.db")
    try:
        names = [row[1] for row in db.execute("PRAGMA index_list('mm_auth_users')") if row[2]]  # unique ones
        email_index = [n for n in names if [r[2] for r in db.execute(f"PRAGMA index_info('{n}')")] == ["email"]]
        assert len(email_index) == 1
        db.execute(f'DROP INDEX "{email_index[0]}"')
        db.commit()
    finally:
        db.close()
    run = doctor()
    assert run.code == 1
    assert run.status("database.indexes") == "FAIL"
    assert "mm_auth_users(email) unique" in run.line("database.indexes")
    assert doctor.folder.joinpath("auth.db").exists()
    assert main(["--database-url", doctor.url, "init"]) == 0  # init repairs it
    assert doctor().status("database.indexes") == "ok"


def test_an_outdated_schema_says_to_migrate(doctor: Doctor, monkeypatch: pytest.MonkeyPatch) -> None:
    from mindmesh_auth.core import schema

    real = MindmeshAuth.schema_status

    def outdated(self: Any) -> Any:
        got = real(self)
        return schema.SchemaStatus(current=got.expected - 1, expected=got.expected, pending=("next",))

    monkeypatch.setattr(MindmeshAuth, "schema_status", outdated)
    run = doctor()
    assert run.code == 1
    assert run.status("database.schema") == "FAIL"
    assert "mindmesh-auth migrate" in run.line("database.schema") and "pending" in run.line("database.schema")


def test_a_database_without_a_recorded_schema_version_says_to_migrate(doctor: Doctor) -> None:
    db = sqlite3.connect(doctor.folder / "auth.db")
    try:
        db.execute("DELETE FROM mm_auth_schema_version")  # as a database made before versions were recorded
        db.commit()
    finally:
        db.close()
    run = doctor()
    assert run.code == 1
    assert run.status("database.schema") == "FAIL" and "no schema version recorded" in run.line("database.schema")
    assert "mindmesh-auth migrate" in run.line("database.schema")
    assert main(["--database-url", doctor.url, "migrate"]) == 0
    assert doctor().status("database.schema") == "ok"


def test_check_schema_version_statuses() -> None:
    def auth(**status: Any) -> Any:
        return SimpleNamespace(schema_status=lambda: SimpleNamespace(**status))

    assert doc.check_schema_version(auth(current=3, expected=3, pending=())).status == "ok"
    never = doc.check_schema_version(auth(current=None, expected=3, pending=("0001", "0002", "0003")))
    assert never.status == "fail" and "no schema version recorded" in never.message
    behind = doc.check_schema_version(auth(current=2, expected=3, pending=("0003_add_x",)))
    assert behind.status == "fail" and "0003_add_x" in behind.message and "expects 3" in behind.message
    assert doc.check_schema_version(SimpleNamespace()).status == "skip"


def test_mongo_indexes_are_checked() -> None:
    mongomock = require("mongomock")
    from mindmesh_auth.adapters.mongo import MongoStore

    store = MongoStore(mongomock.MongoClient(tz_aware=True)["mm_doctor"])
    with MindmeshAuth(store=store, mailer=Outbox(), config=test_config()) as auth:
        auth.create_schema()
        assert doc.check_indexes(auth).status == "ok"
        store.database[store.collection_names["sessions"]].drop_index("refresh_hash_unique")
        result = doc.check_indexes(auth)
        assert result.status == "fail" and "mm_auth_sessions(refresh_hash) unique" in result.message


# -- the clock ---------------------------------------------------------------------------------------


def test_clock_skew_and_an_impossible_clock() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    close = doc.check_clock(None, now=lambda: now, database_time=lambda: now - timedelta(seconds=3))
    assert close.status == "ok"
    skewed = doc.check_clock(None, now=lambda: now, database_time=lambda: now - timedelta(minutes=2))
    assert skewed.status == "warn" and "120 s" in skewed.message
    ahead = doc.check_clock(None, now=lambda: now, database_time=lambda: now + timedelta(seconds=31))
    assert ahead.status == "warn"
    past = doc.check_clock(None, now=lambda: datetime(2001, 1, 1, tzinfo=timezone.utc))
    assert past.status == "fail" and "2001-01-01" in past.message


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_clock_compares_with_the_database_server(kind: str) -> None:
    from _servers import server_url, unique_prefix

    from mindmesh_auth.adapters.peewee import PeeweeStore

    store = PeeweeStore.from_url(server_url(kind), table_prefix=unique_prefix())
    with MindmeshAuth(store=store, mailer=Outbox(), config=test_config()) as auth:
        real = datetime.now(timezone.utc)
        assert doc.check_clock(auth).status == "ok"
        result = doc.check_clock(auth, now=lambda: real + timedelta(minutes=5))
        assert result.status == "warn" and "differ by" in result.message


def test_mariadb_email_column_must_compare_in_binary() -> None:
    from _servers import server_url, unique_prefix

    from mindmesh_auth.adapters.peewee import PeeweeStore

    store = PeeweeStore.from_url(server_url("mysql"), table_prefix=unique_prefix())
    with MindmeshAuth(store=store, mailer=Outbox(), config=test_config()) as auth:
        auth.create_schema()
        try:
            good = doc.check_mysql_email_collation(auth)
            assert good is not None and good.status == "ok" and "_bin" in good.message
            table = store.models.User._meta.table_name
            store.database.execute_sql(
                f"ALTER TABLE `{table}` MODIFY email VARCHAR(320) CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_general_ci NOT NULL"
            )
            bad = doc.check_mysql_email_collation(auth)
            assert bad is not None and bad.status == "fail"
            assert "utf8mb4_general_ci" in bad.message and f"{table}.email" in bad.message
        finally:
            store.drop_schema()


def test_the_collation_check_applies_to_mysql_only(doctor: Doctor) -> None:
    with MindmeshAuth(store=doctor.url, mailer=Outbox(), config=test_config()) as auth:
        assert doc.check_mysql_email_collation(auth) is None


# -- broken SMTP -------------------------------------------------------------------------------------


def test_an_unreachable_smtp_server_fails(doctor: Doctor) -> None:
    doctor.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(_free_port()), SMTP_SECURITY="none")
    run = doctor()
    assert run.code == 1
    assert run.status("smtp.connect") == "FAIL" and "127.0.0.1" in run.line("smtp.connect")
    assert "ConnectionRefusedError" in run.line("smtp.connect")


def test_starttls_with_an_untrusted_certificate_fails(doctor: Doctor, starttls_smtp: Smtp) -> None:
    doctor.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(starttls_smtp.port), SMTP_SECURITY="starttls",
               SMTP_USER=SMTP_USER, SMTP_PASS=SMTP_PASS)
    run = doctor()
    assert run.code == 1
    assert run.status("smtp.connect") == "ok"
    assert run.status("smtp.tls") == "FAIL" and "certificate not verified" in run.line("smtp.tls")
    assert "smtp.login" not in run.out  # never logs in over an unverified connection


def test_starttls_with_a_trusted_certificate_and_login_passes(
    doctor: Doctor, starttls_smtp: Smtp, cert_files: tuple[Path, Path]
) -> None:
    doctor.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(starttls_smtp.port), SMTP_SECURITY="starttls",
               SMTP_USER=SMTP_USER, SMTP_PASS=SMTP_PASS, SSL_CERT_FILE=str(cert_files[0]))
    run = doctor("--send-test-mail", "ops@example.test")
    assert run.code == 0, run.out
    assert [run.status(n) for n in ("smtp.connect", "smtp.tls", "smtp.login", "smtp.test_mail")] == ["ok"] * 4
    assert len(starttls_smtp.recorder.messages) == 1


def test_a_wrong_smtp_password_fails_the_login(doctor: Doctor, plain_smtp: Smtp) -> None:
    _good_smtp(doctor, plain_smtp)
    doctor.env(SMTP_PASS="Wrong-" + SMTP_PASS)
    run = doctor()
    assert run.code == 1
    assert run.status("smtp.login") == "FAIL" and "SMTP_PASS" in run.line("smtp.login")
    assert "Wrong-" not in run.out + run.err


def test_no_smtp_host_is_a_warning(doctor: Doctor) -> None:
    run = doctor()
    assert run.code == 0 and run.status("smtp") == "warn" and "SMTP_HOST" in run.line("smtp")


def test_the_smtp_checks_end_within_their_bound_on_a_silent_server(doctor: Doctor) -> None:
    # A server that accepts the connection and never greets: the connect check times out, bounded.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        doctor.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(silent.getsockname()[1]), SMTP_SECURITY="none",
                   SMTP_TIMEOUT="1")
        started = datetime.now(timezone.utc)
        run = doctor()
        elapsed = datetime.now(timezone.utc) - started
    assert run.status("smtp.connect") == "FAIL" and "timed out" in run.line("smtp.connect")
    assert elapsed < timedelta(seconds=10)  # 10x the configured 1 s


def test_implicit_tls_is_verified(doctor: Doctor, implicit_tls_smtp: Smtp, cert_files: tuple[Path, Path]) -> None:
    doctor.env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(implicit_tls_smtp.port), SMTP_SECURITY="tls",
               SMTP_USER=SMTP_USER, SMTP_PASS=SMTP_PASS)
    untrusted = doctor()
    assert untrusted.code == 1
    assert untrusted.status("smtp.tls") == "FAIL" and "certificate not verified" in untrusted.line("smtp.tls")
    assert "smtp.login" not in untrusted.out

    doctor.env(SSL_CERT_FILE=str(cert_files[0]))
    trusted = doctor()
    assert trusted.code == 0, trusted.out
    assert [trusted.status(n) for n in ("smtp.connect", "smtp.tls", "smtp.login")] == ["ok"] * 3
    assert "implicit TLS" in trusted.line("smtp.tls")


def test_no_test_mail_after_an_smtp_failure_nor_to_a_bad_address(doctor: Doctor, plain_smtp: Smtp) -> None:
    _good_smtp(doctor, plain_smtp)
    doctor.env(SMTP_PASS="Wrong-" + SMTP_PASS)
    run = doctor("--send-test-mail", "ops@example.test")
    assert run.status("smtp.login") == "FAIL" and run.status("smtp.test_mail") == "skip"

    doctor.env(SMTP_PASS=SMTP_PASS)
    run = doctor("--send-test-mail", "not an address")
    assert run.code == 1 and run.status("smtp.test_mail") == "FAIL"
    assert "not an address a test mail can be sent to" in run.line("smtp.test_mail")
    assert plain_smtp.recorder.messages == []
