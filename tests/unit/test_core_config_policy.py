"""Settings read from the environment or a ``.env`` file must meet the security policy.

A stray ``.env`` once set bcrypt cost 4, a 1-character password minimum and
million-day sessions without a word; ``from_env(environ={})`` read it too.
Now: ``.env`` is read only when no mapping is given (or a file is passed
explicitly), reading it is logged by path and variable names, and values
weaker than the policy are refused naming the variable unless the caller passes
``allow_weak_settings=True`` in code. Email addresses at special-use domains
(``.test``...) are refused unless the config allows test domains.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, MindmeshAuth, ValidationError
from mindmesh_auth.adapters.email_validation import canonicalize_email, canonicalize_test_email
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.config import (
    POLICY_MAX_ACCESS_TOKEN_TTL,
    POLICY_MAX_SESSION_TTL,
    POLICY_MIN_BCRYPT_ROUNDS,
    POLICY_MIN_PASSWORD_LENGTH,
)
from mindmesh_auth.core.errors import InvalidEmail
from mindmesh_auth.testing import Outbox, test_config

JWT = "Vd8kQ2mZr7TxW4pLc9NbF3hJs6Ag1YeUo5Ri0Kw"  # random, fixed for the tests
REFRESH = "p3Hq_Xn8Lt2Gz6Mb9Wc4Rv1Ky7Sd5Fj0Ae-Ti"
SECRETS = {"AUTH_JWT_SECRET": JWT, "AUTH_REFRESH_SECRET": REFRESH}
PASSWORD = "correct horse battery staple"

# Every weak value (the refusal must name its variable), with the field and value it means.
WEAK_VALUES = [
    ("AUTH_BCRYPT_ROUNDS", "4", "bcrypt_rounds", 4),
    ("AUTH_BCRYPT_ROUNDS", "9", "bcrypt_rounds", 9),
    ("AUTH_PASSWORD_MIN_LENGTH", "1", "password_min_length", 1),
    ("AUTH_PASSWORD_MIN_LENGTH", "7", "password_min_length", 7),
    ("SESSION_DAYS", "1000000", "session_ttl", timedelta(days=1_000_000)),
    ("SESSION_DAYS", "30.5", "session_ttl", timedelta(days=30, hours=12)),
    ("ACCESS_TOKEN_MINUTES", "61", "access_token_ttl", timedelta(minutes=61)),
    ("ACCESS_TOKEN_MINUTES", "1440", "access_token_ttl", timedelta(days=1)),
]
WEAK = [(variable, value) for variable, value, _, _ in WEAK_VALUES]
# Values at the policy's bounds are accepted.
AT_THE_BOUND = [
    ("AUTH_BCRYPT_ROUNDS", "10", "bcrypt_rounds", 10),
    ("AUTH_PASSWORD_MIN_LENGTH", "8", "password_min_length", 8),
    ("SESSION_DAYS", "30", "session_ttl", timedelta(days=30)),
    ("ACCESS_TOKEN_MINUTES", "60", "access_token_ttl", timedelta(minutes=60)),
]


@pytest.fixture(autouse=True)
def _empty_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("AUTH_", "SMTP_", "OTP_", "SESSION_DAYS", "ACCESS_TOKEN_MINUTES", "DATABASE_URL")):
            monkeypatch.delenv(name)


def write_dotenv(folder: Path, **variables: str) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    return path


def refused_from_env(**variables: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ={**SECRETS, **variables})
    return info.value


# -- the issue's reproduction -----------------------------------------------------------------


def test_a_weak_dotenv_is_not_read_when_a_mapping_is_given(tmp_path: Path) -> None:
    write_dotenv(tmp_path, **SECRETS, AUTH_BCRYPT_ROUNDS="4", AUTH_PASSWORD_MIN_LENGTH="1", SESSION_DAYS="1000000")
    config = AuthConfig.from_env(environ=SECRETS)
    assert (config.bcrypt_rounds, config.password_min_length, config.session_ttl) == (12, 8, timedelta(days=7))
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ={})  # the file's secrets are not used either
    assert info.value.variable == "AUTH_JWT_SECRET"


@pytest.mark.parametrize(
    ("variable", "value"), [("AUTH_BCRYPT_ROUNDS", "4"), ("AUTH_PASSWORD_MIN_LENGTH", "1"), ("SESSION_DAYS", "1000000")]
)
def test_each_weak_value_in_the_working_directory_dotenv_is_refused_by_name(tmp_path: Path, variable: str, value: str) -> None:
    write_dotenv(tmp_path, **SECRETS, **{variable: value})
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env()
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable} must be ")
    assert "allow_weak_settings=True" in str(info.value)


def test_the_issue_dotenv_with_every_weak_value_is_refused(tmp_path: Path) -> None:
    write_dotenv(tmp_path, **SECRETS, AUTH_BCRYPT_ROUNDS="4", AUTH_PASSWORD_MIN_LENGTH="1", SESSION_DAYS="1000000")
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env()
    assert info.value.variable in {"AUTH_BCRYPT_ROUNDS", "AUTH_PASSWORD_MIN_LENGTH", "SESSION_DAYS"}


# -- each weak setting, by name ---------------------------------------------------------------


def test_the_policy_bounds_are_the_documented_ones() -> None:
    assert POLICY_MIN_BCRYPT_ROUNDS == 10
    assert POLICY_MIN_PASSWORD_LENGTH == 8
    assert POLICY_MAX_SESSION_TTL == timedelta(days=30)
    assert POLICY_MAX_ACCESS_TOKEN_TTL == timedelta(minutes=60)


@pytest.mark.parametrize(("variable", "value"), WEAK)
def test_a_weak_value_from_the_environment_is_refused_naming_the_variable(variable: str, value: str) -> None:
    error = refused_from_env(**{variable: value})
    assert error.variable == variable
    assert str(error).startswith(f"{variable} must be ")
    assert str(error).endswith("when read from the environment; allow_weak_settings=True lifts this in tests only.")


@pytest.mark.parametrize(("variable", "value"), WEAK)
def test_a_weak_value_is_refused_by_from_mapping_too(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping({**SECRETS, variable: value})
    assert info.value.variable == variable


@pytest.mark.parametrize(("variable", "value"), WEAK)
def test_a_weak_value_from_an_explicit_env_file_is_refused(tmp_path: Path, variable: str, value: str) -> None:
    (tmp_path / "conf").mkdir()
    dotenv = write_dotenv(tmp_path / "conf", **{variable: value})
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ=SECRETS, env_file=dotenv)
    assert info.value.variable == variable


def test_the_messages_state_each_bound() -> None:
    assert str(refused_from_env(AUTH_BCRYPT_ROUNDS="9")).startswith("AUTH_BCRYPT_ROUNDS must be at least 10 ")
    assert str(refused_from_env(AUTH_PASSWORD_MIN_LENGTH="7")).startswith("AUTH_PASSWORD_MIN_LENGTH must be at least 8 ")
    assert str(refused_from_env(SESSION_DAYS="31")).startswith("SESSION_DAYS must be at most 30 days ")
    assert str(refused_from_env(ACCESS_TOKEN_MINUTES="61")).startswith("ACCESS_TOKEN_MINUTES must be at most 60 minutes ")


@pytest.mark.parametrize(("variable", "value", "field", "expected"), AT_THE_BOUND)
def test_a_value_at_the_policy_bound_is_accepted(variable: str, value: str, field: str, expected: object) -> None:
    assert getattr(AuthConfig.from_env(environ={**SECRETS, variable: value}), field) == expected


@pytest.mark.parametrize(("variable", "value"), [("AUTH_REFRESH_GRACE_SECONDS", "31"), ("OTP_EXPIRY_MINUTES", "11")])
def test_refresh_grace_and_otp_expiry_above_their_caps_are_refused_even_in_test_mode(variable: str, value: str) -> None:
    # Their caps are field bounds: no code path, not even allow_weak_settings, goes past them.
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ={**SECRETS, variable: value}, allow_weak_settings=True)
    assert info.value.variable == variable


# -- the explicit test mode -------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "field", "expected"), WEAK_VALUES)
def test_allow_weak_settings_accepts_each_weak_value(variable: str, value: str, field: str, expected: object) -> None:
    config = AuthConfig.from_env(environ={**SECRETS, variable: value}, allow_weak_settings=True)
    assert getattr(config, field) == expected
    assert getattr(AuthConfig.from_mapping({**SECRETS, variable: value}, allow_weak_settings=True), field) == expected


def test_allow_weak_settings_applies_to_the_dotenv_too(tmp_path: Path) -> None:
    write_dotenv(tmp_path, **SECRETS, AUTH_BCRYPT_ROUNDS="4", AUTH_PASSWORD_MIN_LENGTH="1", SESSION_DAYS="1000000")
    config = AuthConfig.from_env(allow_weak_settings=True)
    assert (config.bcrypt_rounds, config.password_min_length, config.session_ttl) == (4, 1, timedelta(days=1_000_000))


@pytest.mark.parametrize(
    "switch",
    [
        {"AUTH_TEST_MODE": "1"},
        {"AUTH_ALLOW_WEAK_SETTINGS": "1"},
        {"ALLOW_WEAK_SETTINGS": "true"},
        {"allow_weak_settings": "True"},
        {"MINDMESH_AUTH_TEST_MODE": "1"},
    ],
)
def test_nothing_in_a_dotenv_or_the_environment_switches_the_test_mode_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch: dict[str, str]
) -> None:
    write_dotenv(tmp_path, **SECRETS, **switch, AUTH_BCRYPT_ROUNDS="4")
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env()
    assert info.value.variable == "AUTH_BCRYPT_ROUNDS"
    for name, value in switch.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env()
    assert info.value.variable == "AUTH_BCRYPT_ROUNDS"


def test_keyword_overrides_and_direct_construction_stay_the_callers_choice() -> None:
    assert AuthConfig.from_env(environ=SECRETS, bcrypt_rounds=4).bcrypt_rounds == 4
    # A weak variable replaced by an override is not the value in use: nothing to refuse.
    config = AuthConfig.from_env(environ={**SECRETS, "AUTH_BCRYPT_ROUNDS": "4"}, bcrypt_rounds=12)
    assert config.bcrypt_rounds == 12
    direct = AuthConfig(jwt_secret=JWT, refresh_secret=REFRESH, bcrypt_rounds=4, password_min_length=1)
    assert (direct.bcrypt_rounds, direct.password_min_length) == (4, 1)
    assert direct.with_changes(session_ttl=timedelta(days=365)).session_ttl == timedelta(days=365)


def test_a_weak_value_and_an_unrelated_override_is_still_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ={**SECRETS, "SESSION_DAYS": "365"}, app_name="Acme")
    assert info.value.variable == "SESSION_DAYS"


# -- reading .env is logged, by path and names only -------------------------------------------


def dotenv_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == "config.dotenv_read"]


def test_reading_a_dotenv_logs_its_path_and_the_names_it_set_never_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pasted = "Ze5Lx0Qv8Hn3Wj6Ct1Pb9Ks4Gm7Dr2Ay"  # a secret pasted on a line of its own: no name, not used
    path = tmp_path / ".env"
    path.write_text(f"{pasted}\nAUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET={REFRESH}\nAUTH_APP_NAME=Acme Notes\n")
    monkeypatch.setenv("AUTH_APP_NAME", "From Process")  # the environment wins: the file did not set it
    caplog.set_level(logging.INFO, logger="mindmesh_auth")
    config = AuthConfig.from_env()
    assert config.app_name == "From Process"
    [record] = dotenv_records(caplog)
    assert record.name == "mindmesh_auth"
    assert record.levelno == logging.INFO
    assert record.path == str(path)  # type: ignore[attr-defined]
    assert record.variables == ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET"]  # type: ignore[attr-defined]
    message = record.getMessage()
    assert str(path) in message and "AUTH_JWT_SECRET, AUTH_REFRESH_SECRET" in message
    for value in (JWT, REFRESH, pasted, "Acme Notes"):
        assert value not in caplog.text
        assert value not in repr(record.__dict__)


def test_no_dotenv_record_when_no_file_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_dotenv(tmp_path, **SECRETS)
    caplog.set_level(logging.DEBUG, logger="mindmesh_auth")
    AuthConfig.from_env(environ=SECRETS)  # a mapping: the file is not read
    AuthConfig.from_env(environ=SECRETS, env_file=None)
    AuthConfig.from_env(environ=SECRETS, env_file=tmp_path / "missing.env")
    assert dotenv_records(caplog) == []
    AuthConfig.from_env(environ={}, env_file=".env")
    assert [r.variables for r in dotenv_records(caplog)] == [sorted(SECRETS)]  # type: ignore[attr-defined]


# -- email addresses at special-use domains ---------------------------------------------------


@pytest.fixture
def production() -> Iterator[MindmeshAuth]:
    config = AuthConfig(jwt_secret=JWT, refresh_secret=REFRESH, bcrypt_rounds=4, reset_delivery_in_background=False)
    assert config.allow_test_email_domains is False  # the default
    with MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=config) as auth:
        yield auth


@pytest.fixture
def testing() -> Iterator[MindmeshAuth]:
    with MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=test_config()) as auth:
        yield auth


@pytest.mark.parametrize("email", ["a@b.test", "ada@example.test", "a@b.invalid", "a@host.localhost", "a@b.local"])
def test_production_register_refuses_a_special_use_domain_and_stores_nothing(production: MindmeshAuth, email: str) -> None:
    with pytest.raises(ValidationError) as info:
        production.auth.register(email, PASSWORD)
    assert isinstance(info.value, InvalidEmail)
    assert info.value.field == "email"
    assert production.store.users.get_by_email(email) is None


def test_production_still_accepts_ordinary_and_documentation_domains(production: MindmeshAuth) -> None:
    for email in ("ada@example.com", "bob@example.org", "Carol@Sub.Example.NET"):
        user = production.auth.register(email, PASSWORD)
        assert user.email == email.split("@")[0].lower() + "@" + email.split("@")[1].lower()


def test_the_test_config_accepts_a_dot_test_address(testing: MindmeshAuth) -> None:
    assert test_config().allow_test_email_domains is True
    assert testing.auth.register("a@b.test", PASSWORD).email == "a@b.test"
    with pytest.raises(InvalidEmail):  # other special-use names stay refused
        testing.auth.register("a@b.invalid", PASSWORD)


def test_the_remembered_canonical_forms_do_not_leak_between_modes() -> None:
    assert canonicalize_test_email("Cache@Example.TEST") == "cache@example.test"
    with pytest.raises(InvalidEmail):
        canonicalize_email("Cache@Example.TEST")
    assert canonicalize_test_email("Cache@Example.TEST") == "cache@example.test"
    assert canonicalize_email("Ada@Example.COM") == canonicalize_test_email("Ada@Example.COM") == "ada@example.com"


# -- the CLI reads the working directory's .env through from_env ------------------------------


def test_the_cli_refuses_a_weak_dotenv_instead_of_creating_a_cost_4_user(tmp_path: Path) -> None:
    write_dotenv(tmp_path, **SECRETS, AUTH_BCRYPT_ROUNDS="4")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DATABASE_URL", "SMTP_", "MINDMESH_"))}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mindmesh_auth",
            "--database-url",
            f"sqlite:///{tmp_path}/auth.db",
            "users",
            "create",
            "ada@example.com",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "AUTH_BCRYPT_ROUNDS must be at least 10" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert JWT not in proc.stderr + proc.stdout and PASSWORD not in proc.stderr + proc.stdout
