"""With the root logger at DEBUG, Peewee's query log keeps the SQL text and drops the parameters."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindmesh_auth import AuthConfig, MindmeshAuth
from mindmesh_auth.adapters.peewee import _logging
from mindmesh_auth.testing import Outbox

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _config() -> AuthConfig:
    return AuthConfig(
        jwt_secret=secrets.token_urlsafe(48),
        refresh_secret=secrets.token_urlsafe(48),
        password_pepper=secrets.token_urlsafe(48),
        bcrypt_rounds=4,
        reset_delivery_in_background=False,
    )


def _text(record: logging.LogRecord) -> str:
    """Everything a handler could write for the record."""
    return " ".join([logging.Formatter().format(record), repr(record.msg), repr(record.args)])


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # the root logger, as an app turning on DEBUG would
    yield caplog


def _flow(tmp_path: Path) -> tuple[list[str], MindmeshAuth]:
    """Register, log in, verify the code, refresh; returns the secrets that went through the store."""
    outbox = Outbox()
    auth = MindmeshAuth(store=f"sqlite:///{tmp_path / 'auth.db'}", mailer=outbox, config=_config())
    auth.create_schema()
    auth.set_context(ip_address="203.0.113.7", user_agent="pytest")
    auth.auth.register(EMAIL, PASSWORD)
    auth.auth.login(EMAIL, PASSWORD)
    code = outbox.last_code(EMAIL)
    result = auth.auth.verify_otp(EMAIL, code, "login")
    tokens = auth.auth.refresh(result.refresh_token)
    return [PASSWORD, code, result.refresh_token, tokens.refresh_token, result.access_token], auth


def test_debug_log_has_sql_but_no_hash_password_or_code(
    tmp_path: Path, debug_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_logging.OPT_OUT_VARIABLE, raising=False)
    plain, auth = _flow(tmp_path)
    try:
        records = debug_log.records
        peewee = [r for r in records if r.name == "peewee"]
        assert any('INSERT INTO "mm_auth_users"' in _text(r) and "params redacted>" in _text(r) for r in peewee)
        assert any('"mm_auth_sessions"' in _text(r) for r in peewee)
        for record in records:
            text = _text(record)
            assert "$2b$" not in text, record.name
            assert not HEX64.search(text), (record.name, record.msg)
            for value in plain:
                assert value not in text, record.name
        for record in peewee:
            assert EMAIL not in _text(record)
    finally:
        auth.close()


def test_opt_out_lets_the_parameters_through(
    tmp_path: Path, debug_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The filter, not something else, keeps them out: with the opt-out the same flow logs the hash.
    monkeypatch.setenv(_logging.OPT_OUT_VARIABLE, "1")
    _plain, auth = _flow(tmp_path)
    try:
        peewee = [_text(r) for r in debug_log.records if r.name == "peewee"]
        assert any("$2b$" in text for text in peewee)
        assert any(EMAIL in text for text in peewee)
    finally:
        auth.close()


def test_filter_keeps_the_record_shape_and_leaves_other_records_alone() -> None:
    redact = _logging.RedactSqlParameters()

    def record(msg: object) -> logging.LogRecord:
        return logging.LogRecord("peewee", logging.DEBUG, __file__, 1, msg, (), None)

    query = record(("SELECT 1 WHERE a = ? AND b = ?", ["secret-a", "secret-b"]))
    assert redact.filter(query) is True
    assert query.msg == ("SELECT 1 WHERE a = ? AND b = ?", "<2 params redacted>")

    empty = record(("SELECT 1", []))
    redact.filter(empty)
    assert empty.msg == ("SELECT 1", [])

    text = record("Connection %s was closed")
    redact.filter(text)
    assert text.msg == "Connection %s was closed"


def test_installed_once_on_the_peewee_logger() -> None:
    _logging.install()
    _logging.install()
    filters = [f for f in logging.getLogger("peewee").filters if isinstance(f, _logging.RedactSqlParameters)]
    assert len(filters) == 1
