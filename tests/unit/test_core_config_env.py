"""AuthConfig.from_env: every variable it reads, its unit, its default, and every refusal.

Each test runs in an empty temporary directory, so a stray ``.env`` in the
working directory is never read unless the test writes one. Values weaker than
the policy for environment settings (tests/unit/test_core_config_policy.py) are
loaded with ``allow_weak_settings=True`` where a test needs them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, Limit
from mindmesh_auth.testing import test_config

JWT = "za8THsCcB2cmoNMypSO0X57qxfAEA9BuB2Zai8jB"  # random, fixed for the tests
REFRESH = "Xz3_wKi49ZJVREPr_LyFKHLOyuC-a0nUngoi9bj2"
SECRETS = {"AUTH_JWT_SECRET": JWT, "AUTH_REFRESH_SECRET": REFRESH}

OPTIONAL_VARIABLES = (
    "AUTH_JWT_PREVIOUS_SECRETS",
    "OTP_EXPIRY_MINUTES",
    "SESSION_DAYS",
    "ACCESS_TOKEN_MINUTES",
    "AUTH_REFRESH_GRACE_SECONDS",
    "AUTH_BCRYPT_ROUNDS",
    "AUTH_PASSWORD_MIN_LENGTH",
    "AUTH_PASSWORD_PEPPER",
    "AUTH_OTP_HASH",
    "AUTH_NO_IP_LIMIT_FACTOR",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASS",
    "SMTP_FROM",
    "SMTP_SECURITY",
    "SMTP_TIMEOUT",
    "AUTH_APP_NAME",
    "AUTH_RESET_URL",
    "AUTH_DATABASE_URL",
    "DATABASE_URL",
)
NUMERIC_VARIABLES = (
    "OTP_EXPIRY_MINUTES",
    "SESSION_DAYS",
    "ACCESS_TOKEN_MINUTES",
    "AUTH_REFRESH_GRACE_SECONDS",
    "AUTH_BCRYPT_ROUNDS",
    "AUTH_PASSWORD_MIN_LENGTH",
    "AUTH_NO_IP_LIMIT_FACTOR",
    "SMTP_PORT",
    "SMTP_TIMEOUT",
)
INTEGER_VARIABLES = ("AUTH_BCRYPT_ROUNDS", "AUTH_PASSWORD_MIN_LENGTH", "AUTH_NO_IP_LIMIT_FACTOR", "SMTP_PORT")


@pytest.fixture(autouse=True)
def _empty_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(**variables: str) -> AuthConfig:
    return AuthConfig.from_env(environ={**SECRETS, **variables})


def load_weak(**variables: str) -> AuthConfig:
    return AuthConfig.from_env(environ={**SECRETS, **variables}, allow_weak_settings=True)


def refused(**variables: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        load(**variables)
    return info.value


def refused_config(**fields: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        test_config(**fields)
    return info.value


# -- every variable lands in its field, in its unit -------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("OTP_EXPIRY_MINUTES", "2.5", "otp_ttl", timedelta(seconds=150)),
        ("SESSION_DAYS", "0.5", "session_ttl", timedelta(hours=12)),
        ("SESSION_DAYS", "30", "session_ttl", timedelta(days=30)),
        ("ACCESS_TOKEN_MINUTES", "20", "access_token_ttl", timedelta(minutes=20)),
        ("ACCESS_TOKEN_MINUTES", "0.5", "access_token_ttl", timedelta(seconds=30)),
        ("AUTH_REFRESH_GRACE_SECONDS", "12", "refresh_grace_period", timedelta(seconds=12)),
        ("AUTH_REFRESH_GRACE_SECONDS", "2.5", "refresh_grace_period", timedelta(milliseconds=2500)),
        ("AUTH_BCRYPT_ROUNDS", "10", "bcrypt_rounds", 10),
        ("AUTH_PASSWORD_MIN_LENGTH", "15", "password_min_length", 15),
        ("AUTH_PASSWORD_PEPPER", "Qm4vT9zK2pLw7RxN5cHd8Jf3Bg6Ys1Ua", "password_pepper", "Qm4vT9zK2pLw7RxN5cHd8Jf3Bg6Ys1Ua"),
        ("AUTH_OTP_HASH", "bcrypt", "otp_hash", "bcrypt"),
        ("AUTH_OTP_HASH", "hmac", "otp_hash", "hmac"),
        ("AUTH_NO_IP_LIMIT_FACTOR", "3", "no_ip_limit_factor", 3),
        ("SMTP_HOST", "smtp.example.test", "smtp_host", "smtp.example.test"),
        ("SMTP_PORT", "2525", "smtp_port", 2525),
        ("SMTP_USER", "mailer", "smtp_user", "mailer"),
        ("SMTP_PASS", "smtp-password", "smtp_password", "smtp-password"),
        ("SMTP_FROM", "Acme <no-reply@acme.test>", "smtp_from", "Acme <no-reply@acme.test>"),
        ("SMTP_SECURITY", "none", "smtp_security", "none"),
        ("SMTP_SECURITY", "TLS", "smtp_security", "tls"),
        ("SMTP_SECURITY", "StartTLS", "smtp_security", "starttls"),
        ("SMTP_TIMEOUT", "2.5", "smtp_timeout", 2.5),
        ("SMTP_TIMEOUT", "30", "smtp_timeout", 30.0),
        ("AUTH_APP_NAME", "Acme Notes", "app_name", "Acme Notes"),
        ("AUTH_RESET_URL", "https://app.example/reset#token={token}", "reset_url", "https://app.example/reset#token={token}"),
        ("AUTH_DATABASE_URL", "sqlite:///auth.db", "database_url", "sqlite:///auth.db"),
        ("DATABASE_URL", "postgresql://db.example/app", "database_url", "postgresql://db.example/app"),
    ],
)
def test_variable_arrives_in_its_field_in_its_unit(variable: str, value: str, field: str, expected: object) -> None:
    config = load(**{variable: value})
    assert getattr(config, field) == expected
    assert type(getattr(config, field)) is type(expected)


@pytest.mark.parametrize("variable", INTEGER_VARIABLES)
def test_integer_variable_with_a_fraction_is_not_a_number(variable: str) -> None:
    error = refused(**{variable: "12.5"})
    assert error.variable == variable
    assert str(error) == f"{variable} must be a number."


def test_previous_jwt_secrets_are_split_on_commas_and_blank_entries_dropped() -> None:
    old1, old2 = "old1-Dx7Kq2Wm9Bv4Zs1Hn6Tc3Rf8Lj5Gp0Ye", "old2-Mu4Ra9Ct2Xw7Fe1Jb6Sn3Kz8Vq5Ho0Pi"
    config = load(AUTH_JWT_PREVIOUS_SECRETS=f" {old1} ,, {old2}, ")
    assert config.previous_jwt_secrets == (old1, old2)


def test_documented_defaults_apply_when_no_optional_variable_is_set() -> None:
    config = load()
    assert config.jwt_secret == JWT and config.refresh_secret == REFRESH
    assert config.previous_jwt_secrets == ()
    assert config.otp_ttl == timedelta(minutes=5)
    assert config.session_ttl == timedelta(days=7)
    assert config.access_token_ttl == timedelta(minutes=15)
    assert config.refresh_grace_period == timedelta(0)
    assert config.bcrypt_rounds == 12
    assert config.password_min_length == 8
    assert config.password_max_length == 1024
    assert config.password_pepper == ""
    assert config.otp_hash == "hmac"
    assert config.no_ip_limit_factor == 10
    assert config.smtp_host is None
    assert config.smtp_port == 587
    assert config.smtp_user is None
    assert config.smtp_password is None
    assert config.smtp_from == "mindmesh-auth <no-reply@localhost>"
    assert config.smtp_security == "starttls"
    assert config.smtp_timeout == 10.0
    assert config.app_name == "Mindmesh"
    assert config.reset_url is None
    assert config.database_url is None


def test_an_empty_variable_counts_as_unset() -> None:
    assert load(**dict.fromkeys(OPTIONAL_VARIABLES, "")) == load()


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET"])
def test_an_empty_secret_is_reported_as_not_set(variable: str) -> None:
    error = refused(**{variable: ""})
    assert error.variable == variable
    assert str(error) == f"{variable} is not set."


def test_auth_database_url_wins_over_database_url() -> None:
    config = load(AUTH_DATABASE_URL="sqlite:///auth.db", DATABASE_URL="postgresql://db.example/app")
    assert config.database_url == "sqlite:///auth.db"


# -- SMTP port 465 and SMTP_SECURITY -----------------------------------------------------------


def test_smtp_port_465_without_smtp_security_means_implicit_tls() -> None:
    config = load(SMTP_PORT="465")
    assert (config.smtp_port, config.smtp_security) == (465, "tls")


@pytest.mark.parametrize("security", ["starttls", "none"])
def test_explicit_smtp_security_wins_over_the_port_465_default(security: str) -> None:
    assert load(SMTP_PORT="465", SMTP_SECURITY=security).smtp_security == security


@pytest.mark.parametrize("port", ["25", "587", "2525"])
def test_other_smtp_ports_keep_starttls(port: str) -> None:
    assert load(SMTP_PORT=port).smtp_security == "starttls"


def test_unknown_smtp_security_is_refused_naming_the_variable() -> None:
    error = refused(SMTP_SECURITY="ssl")
    assert error.variable == "SMTP_SECURITY"
    assert str(error) == 'SMTP_SECURITY must be "starttls", "tls" or "none".'


@pytest.mark.parametrize("port", ["1", "65535"])
def test_smtp_port_bounds_are_accepted(port: str) -> None:
    assert load(SMTP_PORT=port).smtp_port == int(port)


@pytest.mark.parametrize("port", ["0", "65536"])
def test_smtp_port_one_past_the_bounds_is_refused(port: str) -> None:
    error = refused(SMTP_PORT=port)
    assert error.variable == "SMTP_PORT"
    assert str(error) == "SMTP_PORT must be between 1 and 65535."


# -- numbers: not a number, not finite, out of range -------------------------------------------


@pytest.mark.parametrize("variable", NUMERIC_VARIABLES)
@pytest.mark.parametrize("value", ["abc", "1,5", "five"])
def test_non_numeric_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    error = refused(**{variable: value})
    assert error.variable == variable
    assert str(error) == f"{variable} must be a number."
    assert value not in str(error)


@pytest.mark.parametrize("variable", NUMERIC_VARIABLES)
@pytest.mark.parametrize("value", ["-1", "1000001"])
def test_number_outside_0_to_1000000_is_refused_naming_the_variable(variable: str, value: str) -> None:
    error = refused(**{variable: value})
    assert error.variable == variable
    assert str(error) == f"{variable} must be a number between 0 and 1000000."


@pytest.mark.parametrize("variable", [v for v in NUMERIC_VARIABLES if v not in INTEGER_VARIABLES])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e7"])
def test_non_finite_or_huge_fractional_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    error = refused(**{variable: value})
    assert error.variable == variable
    assert str(error) == f"{variable} must be a number between 0 and 1000000."


def test_the_number_range_includes_both_ends() -> None:
    assert load(AUTH_REFRESH_GRACE_SECONDS="0").refresh_grace_period == timedelta(0)
    assert load(SMTP_TIMEOUT="0").smtp_timeout == 0.0
    assert load(SMTP_TIMEOUT="1000000").smtp_timeout == 1_000_000.0
    assert load_weak(SESSION_DAYS="1000000").session_ttl == timedelta(days=1_000_000)


def test_just_above_the_number_range_is_refused() -> None:
    error = refused(SMTP_TIMEOUT="1000000.5")
    assert error.variable == "SMTP_TIMEOUT"
    assert str(error) == "SMTP_TIMEOUT must be a number between 0 and 1000000."


# -- each field's own bounds: exact bounds accepted, one past refused --------------------------


@pytest.mark.parametrize("rounds", ["4", "31"])
def test_bcrypt_rounds_bounds_are_accepted(rounds: str) -> None:
    assert load_weak(AUTH_BCRYPT_ROUNDS=rounds).bcrypt_rounds == int(rounds)


@pytest.mark.parametrize("rounds", ["3", "32"])
def test_bcrypt_rounds_one_past_the_bounds_is_refused(rounds: str) -> None:
    error = refused(AUTH_BCRYPT_ROUNDS=rounds)
    assert error.variable == "AUTH_BCRYPT_ROUNDS"
    assert str(error) == "bcrypt_rounds must be between 4 and 31."


@pytest.mark.parametrize("length", ["1", "1024"])
def test_password_min_length_from_1_up_to_the_max_length_is_accepted(length: str) -> None:
    assert load_weak(AUTH_PASSWORD_MIN_LENGTH=length).password_min_length == int(length)


@pytest.mark.parametrize("length", ["0", "1025"])
def test_password_min_length_below_1_or_above_the_max_length_is_refused(length: str) -> None:
    error = refused(AUTH_PASSWORD_MIN_LENGTH=length)
    assert error.variable == "AUTH_PASSWORD_MIN_LENGTH"
    assert str(error) == "AUTH_PASSWORD_MIN_LENGTH must be at least 1 and at most password_max_length."


def test_password_max_length_up_to_4096_is_accepted_and_may_equal_the_min_length() -> None:
    assert test_config(password_max_length=4096).password_max_length == 4096
    config = test_config(password_min_length=20, password_max_length=20)
    assert (config.password_min_length, config.password_max_length) == (20, 20)


def test_password_max_length_above_4096_is_refused_naming_the_field() -> None:
    error = refused_config(password_max_length=4097)
    assert error.variable == "password_max_length"
    assert str(error) == "password_max_length must be at most 4096."


def test_unknown_otp_hash_is_refused_naming_the_variable() -> None:
    error = refused(AUTH_OTP_HASH="sha256")
    assert error.variable == "AUTH_OTP_HASH"
    assert str(error) == 'otp_hash must be "hmac" or "bcrypt".'


@pytest.mark.parametrize(("minutes", "expected"), [("10", timedelta(minutes=10)), ("1", timedelta(minutes=1))])
def test_otp_expiry_within_1_to_10_minutes_is_accepted(minutes: str, expected: timedelta) -> None:
    assert load(OTP_EXPIRY_MINUTES=minutes).otp_ttl == expected


@pytest.mark.parametrize("minutes", ["0", "10.5"])
def test_otp_expiry_of_zero_or_above_10_minutes_is_refused(minutes: str) -> None:
    error = refused(OTP_EXPIRY_MINUTES=minutes)
    assert error.variable == "OTP_EXPIRY_MINUTES"
    assert str(error) == "OTP_EXPIRY_MINUTES must be between 1 and 10."


@pytest.mark.parametrize("seconds", ["0", "30"])
def test_refresh_grace_period_from_0_to_30_seconds_is_accepted(seconds: str) -> None:
    assert load(AUTH_REFRESH_GRACE_SECONDS=seconds).refresh_grace_period == timedelta(seconds=int(seconds))


def test_refresh_grace_period_above_30_seconds_is_refused() -> None:
    error = refused(AUTH_REFRESH_GRACE_SECONDS="30.5")
    assert error.variable == "AUTH_REFRESH_GRACE_SECONDS"
    assert str(error) == "The refresh grace period must be between 0 and 30 seconds."


def test_negative_refresh_grace_period_is_refused() -> None:
    error = refused_config(refresh_grace_period=timedelta(seconds=-1))
    assert error.variable == "AUTH_REFRESH_GRACE_SECONDS"


def test_zero_session_days_is_refused_naming_session_days() -> None:
    error = refused(SESSION_DAYS="0")
    assert error.variable == "SESSION_DAYS"
    assert str(error) == "SESSION_DAYS must be positive."


def test_zero_access_token_minutes_is_refused_naming_access_token_minutes() -> None:
    error = refused(ACCESS_TOKEN_MINUTES="0")
    assert error.variable == "ACCESS_TOKEN_MINUTES"
    assert str(error) == "ACCESS_TOKEN_MINUTES must be positive."


def test_the_smallest_positive_lifetimes_are_accepted() -> None:
    config = test_config(session_ttl=timedelta(microseconds=1), access_token_ttl=timedelta(microseconds=1))
    assert config.session_ttl == config.access_token_ttl == timedelta(microseconds=1)


def test_otp_max_attempts_of_one_is_accepted_and_zero_refused() -> None:
    assert test_config(otp_max_attempts=1).otp_max_attempts == 1
    error = refused_config(otp_max_attempts=0)
    assert error.variable == "otp_max_attempts"
    assert str(error) == "otp_max_attempts must be positive."


# -- no_ip_limit_factor ------------------------------------------------------------------------


def test_no_ip_limit_factor_of_one_is_accepted() -> None:
    assert test_config(no_ip_limit_factor=1).no_ip_limit_factor == 1
    assert load(AUTH_NO_IP_LIMIT_FACTOR="1").no_ip_limit_factor == 1


@pytest.mark.parametrize("factor", [0, -1, 2.5, True, "10", None])
def test_no_ip_limit_factor_below_one_or_not_an_integer_is_refused_naming_it(factor: object) -> None:
    error = refused_config(no_ip_limit_factor=factor)
    assert error.variable == "AUTH_NO_IP_LIMIT_FACTOR"
    assert "no_ip_limit_factor" in str(error) and "AUTH_NO_IP_LIMIT_FACTOR" in str(error)


def test_no_ip_limit_factor_of_zero_from_the_environment_is_refused_naming_the_variable() -> None:
    error = refused(AUTH_NO_IP_LIMIT_FACTOR="0")
    assert error.variable == "AUTH_NO_IP_LIMIT_FACTOR"


# -- otp_purposes ------------------------------------------------------------------------------


def test_otp_purposes_may_be_just_login_or_add_app_purposes() -> None:
    assert test_config(otp_purposes=("login",)).otp_purposes == ("login",)
    assert test_config(otp_purposes=("login", "email_verify", "delete_account")).otp_purposes[-1] == "delete_account"


@pytest.mark.parametrize("purposes", [(), ("email_verify",), ("LOGIN", "email_verify")])
def test_otp_purposes_without_login_are_refused(purposes: tuple[str, ...]) -> None:
    error = refused_config(otp_purposes=purposes)
    assert error.variable == "otp_purposes"
    assert str(error) == 'otp_purposes must include "login".'


# -- Limit -------------------------------------------------------------------------------------


def test_a_limit_of_one_event_per_tiny_window_is_valid() -> None:
    limit = Limit(1, timedelta(microseconds=1))
    assert (limit.count, limit.window) == (1, timedelta(microseconds=1))


@pytest.mark.parametrize(
    ("count", "window"),
    [(0, timedelta(minutes=1)), (-1, timedelta(minutes=1)), (1, timedelta(0)), (1, timedelta(seconds=-1))],
)
def test_a_limit_needs_a_positive_count_and_window(count: int, window: timedelta) -> None:
    with pytest.raises(ConfigurationError) as info:
        Limit(count, window)
    assert str(info.value) == "A rate limit needs a positive count and window."


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET"])
def test_a_secret_missing_from_the_environment_is_reported_as_not_set(variable: str) -> None:
    environ = {k: v for k, v in SECRETS.items() if k != variable}
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ=environ)
    assert info.value.variable == variable
    assert str(info.value) == f"{variable} is not set."


@pytest.mark.parametrize(("field", "variable"), [("jwt_secret", "AUTH_JWT_SECRET"), ("refresh_secret", "AUTH_REFRESH_SECRET")])
def test_a_secret_that_is_not_a_string_is_reported_as_not_set(field: str, variable: str) -> None:
    error = refused_config(**{field: None})
    assert error.variable == variable
    assert str(error) == f"{variable} is not set."


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET", "AUTH_JWT_PREVIOUS_SECRETS"])
@pytest.mark.parametrize(
    "placeholder", ["your-secret-key-here", "your-refresh-secret-here", "changeme", "secret", " Secret ", "CHANGEME"]
)
def test_placeholder_secrets_are_refused_as_placeholders(variable: str, placeholder: str) -> None:
    error = refused(**{variable: placeholder})
    assert error.variable == variable
    assert str(error) == f"{variable} is a placeholder value; set a random secret."


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET", "AUTH_JWT_PREVIOUS_SECRETS"])
def test_a_short_secret_is_refused_with_a_hint_to_generate_one(variable: str) -> None:
    short = "k" * 31
    error = refused(**{variable: short})
    assert error.variable == variable
    message = str(error)
    assert message.startswith(f"{variable} is too short: use at least 32 random characters ")
    assert message.endswith('(for example: python -c "import secrets; print(secrets.token_urlsafe(48))").')
    assert short not in message


def test_a_previous_secret_of_exactly_32_characters_is_accepted() -> None:
    previous = "Cz7Mw2Hq9Xv4Bn1Ks6Ft3Lr8Jd5Gy0Pe"  # 32 characters
    assert load(AUTH_JWT_PREVIOUS_SECRETS=previous).previous_jwt_secrets == (previous,)


def test_equal_secrets_are_refused_with_a_message_naming_both() -> None:
    error = refused(AUTH_REFRESH_SECRET=JWT)
    assert error.variable == "AUTH_REFRESH_SECRET"
    assert str(error) == "AUTH_JWT_SECRET and AUTH_REFRESH_SECRET must differ."
    assert JWT not in str(error)


# -- where from_env reads from -----------------------------------------------------------------


def test_from_env_reads_dot_env_in_the_working_directory_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*OPTIONAL_VARIABLES, *SECRETS):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / ".env").write_text(f"AUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET={REFRESH}\nAUTH_APP_NAME=From Dotenv\n")
    config = AuthConfig.from_env()
    assert (config.jwt_secret, config.app_name) == (JWT, "From Dotenv")


def test_from_env_with_a_mapping_does_not_read_dot_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_APP_NAME=From Dotenv\nSMTP_HOST=smtp.from-dotenv.test\n")
    config = AuthConfig.from_env(environ=SECRETS)
    assert (config.app_name, config.smtp_host) == ("Mindmesh", None)
    (tmp_path / ".env").write_text(f"AUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET={REFRESH}\n")
    with pytest.raises(ConfigurationError) as info:  # a .env holding the secrets does not supply them either
        AuthConfig.from_env(environ={})
    assert info.value.variable == "AUTH_JWT_SECRET"


def test_from_env_with_a_mapping_reads_an_env_file_passed_explicitly(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_APP_NAME=From Dotenv\n")
    assert AuthConfig.from_env(environ=SECRETS, env_file=".env").app_name == "From Dotenv"
    assert AuthConfig.from_env(environ=SECRETS, env_file=tmp_path / ".env").app_name == "From Dotenv"


def test_from_env_ignores_dot_env_when_env_file_is_none(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_APP_NAME=From Dotenv\nSMTP_HOST=smtp.from-dotenv.test\n")
    config = AuthConfig.from_env(environ=SECRETS, env_file=None)
    assert (config.app_name, config.smtp_host) == ("Mindmesh", None)


def test_from_env_reads_the_process_environment_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*OPTIONAL_VARIABLES, *SECRETS):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AUTH_APP_NAME", "From Process")
    monkeypatch.setenv("ACCESS_TOKEN_MINUTES", "7")
    config = AuthConfig.from_env()
    assert config.app_name == "From Process"
    assert config.access_token_ttl == timedelta(minutes=7)


def test_keyword_overrides_win_over_the_environment() -> None:
    config = AuthConfig.from_env(environ={**SECRETS, "AUTH_APP_NAME": "From Env"}, app_name="From Code")
    assert config.app_name == "From Code"


def test_with_changes_validates_the_new_values() -> None:
    config = load()
    assert config.with_changes(bcrypt_rounds=5).bcrypt_rounds == 5
    with pytest.raises(ConfigurationError) as info:
        config.with_changes(bcrypt_rounds=3)
    assert info.value.variable == "AUTH_BCRYPT_ROUNDS"
