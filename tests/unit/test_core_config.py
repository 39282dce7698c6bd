"""AuthConfig from the seed's variables: from_mapping, from_env, .env files, refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing import Outbox

JWT = "cfg-jwt-Pk3Wd8Zr1Nv6Hx4Ts9Lb2Qm7Fc5Ye0Ga"  # random, fixed for the tests
REFRESH = "cfg-rfr-Bu6Ej1Xo9Ks4Vn7Ra2Mi8Tw3Hy5Lc0Qd"
SMTP_PASS = "smtp-Pa55word-that-must-not-show"


def seed_env(**changes: str | None) -> dict[str, str]:
    env = {
        "AUTH_JWT_SECRET": JWT,
        "AUTH_REFRESH_SECRET": REFRESH,
        "SMTP_HOST": "smtp.example.test",
        "SMTP_PORT": "2525",
        "SMTP_USER": "mailer",
        "SMTP_PASS": SMTP_PASS,
        "SMTP_FROM": "Mindmesh <no-reply@example.test>",
        "OTP_EXPIRY_MINUTES": "3",
        "SESSION_DAYS": "14",
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_from_mapping_reads_every_seed_variable() -> None:
    config = AuthConfig.from_mapping(seed_env())
    assert config.jwt_secret == JWT
    assert config.refresh_secret == REFRESH
    assert config.smtp_host == "smtp.example.test"
    assert config.smtp_port == 2525
    assert config.smtp_user == "mailer"
    assert config.smtp_password == SMTP_PASS
    assert config.smtp_from == "Mindmesh <no-reply@example.test>"
    assert config.otp_ttl == timedelta(minutes=3)
    assert config.session_ttl == timedelta(days=14)


def test_defaults_follow_the_seed_when_optional_variables_are_absent() -> None:
    config = AuthConfig.from_mapping({"AUTH_JWT_SECRET": JWT, "AUTH_REFRESH_SECRET": REFRESH})
    assert config.otp_ttl == timedelta(minutes=5)
    assert config.session_ttl == timedelta(days=7)
    assert config.access_token_ttl == timedelta(minutes=15)
    assert config.smtp_port == 587
    assert config.smtp_host is None


def test_smtp_port_465_implies_implicit_tls() -> None:
    assert AuthConfig.from_mapping(seed_env(SMTP_PORT="465")).smtp_security == "tls"
    assert AuthConfig.from_mapping(seed_env(SMTP_PORT="587")).smtp_security == "starttls"


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET"])
@pytest.mark.parametrize("value", [None, ""])
def test_missing_secret_is_a_configuration_error_naming_the_variable(variable: str, value: str | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(**{variable: value}))
    assert info.value.variable == variable
    assert variable in str(info.value)


@pytest.mark.parametrize("variable", ["AUTH_JWT_SECRET", "AUTH_REFRESH_SECRET"])
def test_secret_shorter_than_32_characters_is_refused_naming_the_variable(variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(**{variable: "x" * 31}))
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert "x" * 31 not in str(info.value)


def test_random_secret_of_exactly_32_characters_is_accepted() -> None:
    jwt_secret, refresh_secret = "Zq8vT3nLp0XwYc7RbK2mHs5dFg9JtA4e", "h7WmQ2xP9rLk4VtZ8cN3bF6sD1gJyE5u"
    config = AuthConfig.from_mapping(seed_env(AUTH_JWT_SECRET=jwt_secret, AUTH_REFRESH_SECRET=refresh_secret))
    assert len(jwt_secret) == len(refresh_secret) == 32
    assert (config.jwt_secret, config.refresh_secret) == (jwt_secret, refresh_secret)


@pytest.mark.parametrize("placeholder", ["your-secret-key-here", "  YOUR-SECRET-KEY-HERE  ", "changeme"])
def test_placeholder_secret_from_the_seed_env_example_is_refused(placeholder: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(AUTH_JWT_SECRET=placeholder))
    assert info.value.variable == "AUTH_JWT_SECRET"
    assert "AUTH_JWT_SECRET" in str(info.value)


def test_placeholder_padded_to_32_characters_is_refused() -> None:
    padded = "your-secret-key-here" + "-padded-to-length"
    assert len(padded) >= 32
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(AUTH_JWT_SECRET=padded))
    assert info.value.variable == "AUTH_JWT_SECRET"
    assert padded not in str(info.value)


def test_equal_jwt_and_refresh_secrets_are_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(AUTH_REFRESH_SECRET=JWT))
    assert info.value.variable == "AUTH_REFRESH_SECRET"
    assert "AUTH_JWT_SECRET" in str(info.value) and "AUTH_REFRESH_SECRET" in str(info.value)


def test_from_env_reads_the_dotenv_file(tmp_path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"AUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET='{REFRESH}'\nSMTP_HOST=mail.from-dotenv.test\nSESSION_DAYS=3\n"
    )
    config = AuthConfig.from_env(environ={}, env_file=dotenv)
    assert config.jwt_secret == JWT
    assert config.refresh_secret == REFRESH
    assert config.smtp_host == "mail.from-dotenv.test"
    assert config.session_ttl == timedelta(days=3)


def test_process_environment_wins_over_the_dotenv_file(tmp_path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET={REFRESH}\nSMTP_HOST=from-file.test\nOTP_EXPIRY_MINUTES=2\n")
    config = AuthConfig.from_env(environ={"SMTP_HOST": "from-environ.test", "OTP_EXPIRY_MINUTES": "4"}, env_file=dotenv)
    assert config.smtp_host == "from-environ.test"
    assert config.otp_ttl == timedelta(minutes=4)
    assert config.jwt_secret == JWT  # still taken from the file


def test_overrides_win_over_environment_and_dotenv(tmp_path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AUTH_JWT_SECRET={JWT}\nAUTH_REFRESH_SECRET={REFRESH}\n")
    config = AuthConfig.from_env(environ={"SMTP_HOST": "env.test"}, env_file=dotenv, smtp_host="override.test")
    assert config.smtp_host == "override.test"


def test_from_env_with_no_dotenv_and_empty_environment_names_the_missing_secret(tmp_path) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_env(environ={}, env_file=tmp_path / "does-not-exist.env")
    assert info.value.variable == "AUTH_JWT_SECRET"


@pytest.mark.parametrize("minutes", ["11", "60", "0"])
def test_otp_expiry_outside_1_to_10_minutes_is_refused(minutes: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(OTP_EXPIRY_MINUTES=minutes))
    assert info.value.variable == "OTP_EXPIRY_MINUTES"
    assert "OTP_EXPIRY_MINUTES" in str(info.value)


def test_otp_expiry_of_10_minutes_is_accepted() -> None:
    assert AuthConfig.from_mapping(seed_env(OTP_EXPIRY_MINUTES="10")).otp_ttl == timedelta(minutes=10)


@pytest.mark.parametrize(("variable", "value"), [("SESSION_DAYS", "seven"), ("SMTP_PORT", "smtp"), ("OTP_EXPIRY_MINUTES", "5m")])
def test_non_numeric_value_is_a_configuration_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(**{variable: value}))
    assert info.value.variable == variable
    assert variable in str(info.value)


@pytest.mark.parametrize("variable", ["SESSION_DAYS", "OTP_EXPIRY_MINUTES"])
def test_negative_durations_are_refused(variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(**{variable: "-1"}))
    assert info.value.variable == variable


def test_repr_of_config_never_shows_the_secrets_or_the_smtp_password() -> None:
    config = AuthConfig.from_mapping(seed_env())
    for text in (repr(config), str(config)):
        assert JWT not in text
        assert REFRESH not in text
        assert SMTP_PASS not in text


def test_repr_of_facade_never_shows_the_secrets() -> None:
    config = AuthConfig.from_mapping(seed_env())
    auth = MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=config)
    assert JWT not in repr(auth) and REFRESH not in repr(auth) and SMTP_PASS not in repr(auth)


def test_key_rotation_variable_rejects_a_short_previous_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(AUTH_JWT_PREVIOUS_SECRETS="short"))
    assert info.value.variable == "AUTH_JWT_PREVIOUS_SECRETS"


def test_key_rotation_variable_is_a_comma_separated_list() -> None:
    old1, old2 = "old1-Dx7Kq2Wm9Bv4Zs1Hn6Tc3Rf8Lj5Gp0Ye", "old2-Mu4Ra9Ct2Xw7Fe1Jb6Sn3Kz8Vq5Ho0Pi"
    config = AuthConfig.from_mapping(seed_env(AUTH_JWT_PREVIOUS_SECRETS=f"{old1}, {old2}"))
    assert config.previous_jwt_secrets == (old1, old2)


def test_config_is_frozen() -> None:
    config = AuthConfig.from_mapping(seed_env())
    with pytest.raises(AttributeError):
        config.jwt_secret = "z" * 40  # type: ignore[misc]


@pytest.mark.parametrize(("variable", "value"), [("SESSION_DAYS", "nan"), ("SESSION_DAYS", "inf"), ("OTP_EXPIRY_MINUTES", "nan")])
def test_non_finite_duration_is_a_configuration_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(**{variable: value}))
    assert info.value.variable == variable


def test_absurdly_large_session_days_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(SESSION_DAYS="1e10"))
    assert info.value.variable == "SESSION_DAYS"


@pytest.mark.parametrize("port", ["0", "99999"])
def test_smtp_port_outside_1_to_65535_is_refused(port: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(seed_env(SMTP_PORT=port))
    assert info.value.variable == "SMTP_PORT"
