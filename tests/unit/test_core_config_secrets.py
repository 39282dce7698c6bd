"""Secrets that refuse weak settings, the previous-secret fallback of the refresh secret, expiry of
previous keys, and the salted ``kid``."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from mindmesh_auth import (
    AuthConfig,
    ConfigurationError,
    InvalidOtp,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidToken,
    MindmeshAuth,
    RefreshTokenReused,
)
from mindmesh_auth.core.config import MAX_CHARACTER_RUN, MIN_SECRET_LENGTH
from mindmesh_auth.core.crypto import PREVIOUS_SECRETS_EXPIRED_EVENT
from mindmesh_auth.core.deps import CONFIG_WEAKNESS_EVENT
from mindmesh_auth.testing import Outbox, test_config

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase 42"

# Random, fixed for the tests.
JWT = "Hq7wN2pVx9LkR4mZ8cT3bF6sD1gJyE5uAo0Ci"
REFRESH = "Ub3Kd8YsW0aMe5Qj1Xn6Po9Gv2Ci7Ht4Lz3Rf"
OTHER = "Ew5Tz1Kp8Qm3Va6Xs9Nh2Lc7Rb4Jy0Gd5Fu"
PEPPER = "Pk9Ra4Lx1Wc6Ze3Ym8Qt2Hv5Ns7Bj0Dg4Io"
NEW_REFRESH = "Nf6Gq1Xw8Ub3Ks5Tp9Lr2Ym7Hd4Cz0Ja6Ve"

README_SECRETS = ("use-a-long-random-secret-of-32+-chars-1", "use-another-long-random-secret-32+-ch-2")
FASTAPI_EXAMPLE_SECRETS = (
    "example-jwt-secret-change-me-0123456789abcdef",
    "example-refresh-secret-change-me-0123456789",
)


def config(**changes: object) -> AuthConfig:
    values: dict[str, object] = {"jwt_secret": JWT, "refresh_secret": REFRESH, "bcrypt_rounds": 4}
    values.update(changes)
    return AuthConfig(**values)  # type: ignore[arg-type]


def refused(**changes: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        config(**changes)
    for value in changes.values():
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and len(text) >= 8:  # shorter ones can occur in any sentence
                assert text not in str(info.value)  # the message names the variable, never the value
    return info.value


# -- the values the issue lists are refused ---------------------------------------------------------


@pytest.mark.parametrize("field", ["jwt_secret", "refresh_secret"])
@pytest.mark.parametrize("weak", ["a" * 32, "a" * 64, "ab" * 16, "abcdefghij" * 4, "0123456789" * 4])
def test_low_variety_secrets_are_refused(field: str, weak: str) -> None:
    error = refused(**{field: weak})
    assert error.variable == ("AUTH_JWT_SECRET" if field == "jwt_secret" else "AUTH_REFRESH_SECRET")
    assert "not random enough" in str(error) or "placeholder" in str(error)


def test_a_long_run_of_one_character_is_refused_even_in_an_otherwise_random_secret() -> None:
    base = "Kq2Wm9Bv4Zs1Hn6Tc3Rf8Lj5Gp0YeXo"
    assert config(jwt_secret=base + "x" * MAX_CHARACTER_RUN).jwt_secret.endswith("x" * MAX_CHARACTER_RUN)
    error = refused(jwt_secret=base + "x" * (MAX_CHARACTER_RUN + 1))
    assert error.variable == "AUTH_JWT_SECRET"
    assert "long run of one character" in str(error)


@pytest.mark.parametrize("example", README_SECRETS + FASTAPI_EXAMPLE_SECRETS)
@pytest.mark.parametrize("field", ["jwt_secret", "refresh_secret"])
def test_the_documented_example_secrets_are_refused(example: str, field: str) -> None:
    assert len(example) >= MIN_SECRET_LENGTH  # long enough: refused for being an example, not for length
    error = refused(**{field: example})
    assert "placeholder" in str(error)


@pytest.mark.parametrize(
    "example",
    [
        "use-a-long-random-secret-of-32+-chars-7",  # another digit suffix
        "USE-A-LONG-RANDOM-SECRET-OF-32+-CHARS-1",
        "  use_a_long_random_secret_of_32_chars_2  ",
    ],
)
def test_variants_of_the_readme_secret_are_refused(example: str) -> None:
    assert "placeholder" in str(refused(jwt_secret=example))


def test_the_readme_example_secrets_do_not_start_a_config_from_the_environment() -> None:
    env = {"AUTH_JWT_SECRET": README_SECRETS[0], "AUTH_REFRESH_SECRET": README_SECRETS[1]}
    for allow_weak in (False, True):  # the test-only switch does not lift the secret checks
        with pytest.raises(ConfigurationError) as info:
            AuthConfig.from_mapping(env, allow_weak_settings=allow_weak)
        assert info.value.variable == "AUTH_JWT_SECRET"


@pytest.mark.parametrize(
    "padded",
    [
        "changeme" + " " * 24,
        "changeme" + "-" * 24,
        "changeme" * 4,
        "  CHANGE_ME  " + "=" * 30,
        "your-secret-key-here-padded-to-length",
        "changeme-12345678901234567890123456",
        "secret-secret-secret-secret-secret!",
        "my-super-secret-jwt-key-changeme-1234",
    ],
)
def test_padded_placeholders_are_refused(padded: str) -> None:
    assert len(padded.encode()) >= MIN_SECRET_LENGTH
    assert refused(jwt_secret=padded).variable == "AUTH_JWT_SECRET"


def test_a_placeholder_word_inside_an_otherwise_random_secret_is_accepted() -> None:
    secret = "secret-Zq8vT3nLp0XwYc7RbK2mHs5dFg"
    assert config(jwt_secret=secret).jwt_secret == secret


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"refresh_secret": JWT[:-1] + "X"}, "AUTH_REFRESH_SECRET"),  # one character apart
        ({"refresh_secret": JWT.upper()}, "AUTH_REFRESH_SECRET"),  # differs by case
        ({"refresh_secret": JWT.swapcase()}, "AUTH_REFRESH_SECRET"),
        ({"refresh_secret": JWT + "!"}, "AUTH_REFRESH_SECRET"),  # one character added
        ({"refresh_secret": JWT[1:] + "Q"}, "AUTH_REFRESH_SECRET"),  # shifted
        ({"previous_jwt_secrets": (REFRESH,)}, "AUTH_JWT_PREVIOUS_SECRETS"),  # previous JWT key = refresh secret
        ({"previous_jwt_secrets": (JWT,)}, "AUTH_JWT_PREVIOUS_SECRETS"),  # previous = current
        ({"previous_jwt_secrets": (JWT[:-2] + "zz",)}, "AUTH_JWT_PREVIOUS_SECRETS"),
        ({"previous_refresh_secrets": (JWT,)}, "AUTH_REFRESH_PREVIOUS_SECRETS"),
        ({"previous_refresh_secrets": (REFRESH.lower(),)}, "AUTH_REFRESH_PREVIOUS_SECRETS"),
        ({"previous_jwt_secrets": (OTHER,), "previous_refresh_secrets": (OTHER,)}, "AUTH_REFRESH_PREVIOUS_SECRETS"),
        ({"previous_jwt_secrets": (OTHER, OTHER[:-1] + "q")}, "AUTH_JWT_PREVIOUS_SECRETS"),
        ({"password_pepper": JWT}, "AUTH_PASSWORD_PEPPER"),
        ({"password_pepper": REFRESH[:-1] + "x"}, "AUTH_PASSWORD_PEPPER"),
    ],
)
def test_equal_or_near_duplicate_secrets_are_refused(changes: dict, variable: str) -> None:
    error = refused(**changes)
    assert error.variable == variable
    assert variable in str(error)
    assert "differ" in str(error) or "nearly equal" in str(error)


def test_distinct_random_secrets_everywhere_are_accepted() -> None:
    cfg = config(previous_jwt_secrets=(OTHER,), previous_refresh_secrets=(NEW_REFRESH,), password_pepper=PEPPER)
    assert (cfg.previous_jwt_secrets, cfg.previous_refresh_secrets, cfg.password_pepper) == (
        (OTHER,),
        (NEW_REFRESH,),
        PEPPER,
    )


@pytest.mark.parametrize("alphabet", ["0123456789abcdef", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"])
def test_generated_secrets_pass_the_checks(alphabet: str) -> None:
    rng = random.Random(1234)  # fixed seed: the same 300 secrets every run
    for _ in range(300):
        jwt_secret = "".join(rng.choice(alphabet) for _ in range(32))
        refresh_secret = "".join(rng.choice(alphabet) for _ in range(32))
        assert config(jwt_secret=jwt_secret, refresh_secret=refresh_secret).jwt_secret == jwt_secret


# -- the pepper ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pepper", ["x", "pepper", "Pk9Ra4Lx1Wc6Ze3Ym8Qt2Hv5Ns7Bj0D"])  # the last is 31 bytes
def test_a_pepper_shorter_than_32_bytes_is_refused(pepper: str) -> None:
    assert len(pepper.encode()) < 32
    error = refused(password_pepper=pepper)
    assert error.variable == "AUTH_PASSWORD_PEPPER"
    assert "too short" in str(error) or "placeholder" in str(error)


@pytest.mark.parametrize("pepper", ["changeme" * 4, "p" * 40, "pepper-pepper-pepper-pepper-pepper"])
def test_a_weak_pepper_is_refused(pepper: str) -> None:
    assert refused(password_pepper=pepper).variable == "AUTH_PASSWORD_PEPPER"


def test_a_pepper_from_the_environment_is_checked_like_a_secret() -> None:
    env = {"AUTH_JWT_SECRET": JWT, "AUTH_REFRESH_SECRET": REFRESH, "AUTH_PASSWORD_PEPPER": "p"}
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(env, allow_weak_settings=True)
    assert info.value.variable == "AUTH_PASSWORD_PEPPER"
    env["AUTH_PASSWORD_PEPPER"] = PEPPER
    assert AuthConfig.from_mapping(env, allow_weak_settings=True).password_pepper == PEPPER


def test_no_pepper_is_allowed_but_recommended() -> None:
    advice = config().weaknesses()
    assert any("AUTH_PASSWORD_PEPPER" in line for line in advice)
    assert not any("AUTH_PASSWORD_PEPPER" in line for line in config(password_pepper=PEPPER).weaknesses())


def test_a_facade_without_a_pepper_logs_the_recommendation(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
        MindmeshAuth(store="memory://", mailer=Outbox(), config=config()).close()
    lines = [r.getMessage() for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == CONFIG_WEAKNESS_EVENT]
    assert len(lines) == 1 and "AUTH_PASSWORD_PEPPER" in lines[0]
    assert JWT not in lines[0] and REFRESH not in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
        MindmeshAuth(store="memory://", mailer=Outbox(), config=config(password_pepper=PEPPER)).close()
    assert not [r for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == CONFIG_WEAKNESS_EVENT]


def test_weaknesses_advise_an_expiry_for_previous_secrets_and_never_show_a_secret() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    without = config(previous_jwt_secrets=(OTHER,), password_pepper=PEPPER).weaknesses(now)
    assert len(without) == 1 and "AUTH_PREVIOUS_SECRETS_EXPIRE_AT" in without[0]
    expiring = config(
        previous_jwt_secrets=(OTHER,), password_pepper=PEPPER, previous_secrets_expire_at=now + timedelta(days=1)
    )
    assert expiring.weaknesses(now) == []
    past = expiring.weaknesses(now + timedelta(days=2))
    assert len(past) == 1 and "has passed" in past[0]
    for line in without + past + config().weaknesses(now):
        assert not any(secret in line for secret in (JWT, REFRESH, OTHER, PEPPER))


# -- reading the rotation settings from the environment ------------------------------------------------


def test_previous_refresh_secrets_and_their_expiry_are_read_from_the_environment() -> None:
    env = {
        "AUTH_JWT_SECRET": JWT,
        "AUTH_REFRESH_SECRET": REFRESH,
        "AUTH_REFRESH_PREVIOUS_SECRETS": f" {NEW_REFRESH} ,, {OTHER} ",
        "AUTH_PREVIOUS_SECRETS_EXPIRE_AT": "2026-02-01T00:00:00Z",
    }
    cfg = AuthConfig.from_mapping(env)
    assert cfg.previous_refresh_secrets == (NEW_REFRESH, OTHER)
    assert cfg.previous_secrets_expire_at == datetime(2026, 2, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", ["2026-02-01T00:00:00", "next tuesday", "2026-13-01T00:00:00Z"])
def test_an_expiry_without_timezone_or_not_a_date_is_refused(value: str) -> None:
    env = {"AUTH_JWT_SECRET": JWT, "AUTH_REFRESH_SECRET": REFRESH, "AUTH_PREVIOUS_SECRETS_EXPIRE_AT": value}
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(env)
    assert info.value.variable == "AUTH_PREVIOUS_SECRETS_EXPIRE_AT"


# -- rotating the refresh secret -----------------------------------------------------------------------


@pytest.fixture
def rotation(make_env) -> Iterator:
    """An app under the old refresh secret, and ``rotate(**changes)`` opening the same store
    under a new one with the old secret as previous (as a redeploy would)."""
    env = make_env(password_pepper=PEPPER)
    old = env.auth.config
    opened: list[MindmeshAuth] = []

    def rotate(**changes: object) -> MindmeshAuth:
        values: dict[str, object] = {"refresh_secret": NEW_REFRESH, "previous_refresh_secrets": (old.refresh_secret,)}
        values.update(changes)
        auth = MindmeshAuth(store=env.store, mailer=env.outbox, config=old.with_changes(**values), clock=env.clock)
        opened.append(auth)
        return auth

    yield env, rotate
    for auth in opened:
        auth.close()


def test_a_refresh_token_from_before_the_rotation_still_refreshes(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    auth = rotate()
    second = auth.auth.refresh(first.refresh_token)
    assert auth.auth.get_user_from_token(second.access_token).email == EMAIL
    # The successor is stored under the new secret: it still works once the old one is gone.
    after = rotate(previous_refresh_secrets=())
    assert after.auth.refresh(second.refresh_token).session_id == first.session_id


def test_a_refresh_token_from_before_the_rotation_can_log_out(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    assert rotate().auth.logout_by_refresh_token(first.refresh_token) is True
    assert env.auth.sessions.get(first.session_id).revoked_at is not None


def test_a_replayed_refresh_token_from_before_the_rotation_is_still_detected(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    env.auth.auth.refresh(first.refresh_token)  # rotated under the old secret
    env.clock.advance(minutes=1)
    with pytest.raises(RefreshTokenReused):
        rotate().auth.refresh(first.refresh_token)
    assert env.auth.sessions.get(first.session_id).revoked_at is not None


def test_a_grace_replay_across_the_rotation_gets_the_same_successor(rotation) -> None:
    env, rotate = rotation
    grace = {"refresh_grace_period": timedelta(seconds=10), "refresh_race_window": timedelta(0)}
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    before = MindmeshAuth(store=env.store, mailer=env.outbox, config=env.auth.config.with_changes(**grace), clock=env.clock)
    try:
        second = before.auth.refresh(first.refresh_token)
    finally:
        before.close()
    env.clock.advance(seconds=3)
    again = rotate(**grace).auth.refresh(first.refresh_token)
    assert again.refresh_token == second.refresh_token
    assert env.auth.sessions.get(first.session_id).revoked_at is None


def test_a_login_code_from_before_the_rotation_still_verifies(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    result = rotate().auth.verify_otp(EMAIL, code)
    assert result.user.email == EMAIL


def test_a_purpose_code_from_before_the_rotation_still_verifies(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.otp.send(EMAIL, "email_verify")
    assert rotate().otp.verify(EMAIL, env.outbox.last_code(EMAIL), "email_verify") is True


def test_a_reset_link_from_before_the_rotation_still_works(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    token = env.outbox.last_reset_token(EMAIL)
    auth = rotate()
    auth.password.reset(token, NEW_PASSWORD)
    auth.auth.login(EMAIL, NEW_PASSWORD)  # the new password is in force


def test_without_the_previous_secret_everything_issued_before_stops_working(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.auth.password.request_reset(EMAIL)
    token = env.outbox.last_reset_token(EMAIL)
    auth = rotate(previous_refresh_secrets=())
    with pytest.raises(InvalidRefreshToken):
        auth.auth.refresh(first.refresh_token)
    with pytest.raises(InvalidOtp):
        auth.auth.verify_otp(EMAIL, code)
    with pytest.raises(InvalidResetToken):
        auth.password.reset(token, NEW_PASSWORD)


def test_previous_refresh_secrets_stop_working_at_their_expiry_with_one_warning(rotation, caplog) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    env.auth.auth.login(EMAIL, PASSWORD)
    code = env.outbox.last_code(EMAIL)
    env.auth.password.request_reset(EMAIL)
    token = env.outbox.last_reset_token(EMAIL)
    auth = rotate(previous_secrets_expire_at=env.clock.now() + timedelta(minutes=2))
    env.clock.advance(minutes=2)
    with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
        with pytest.raises(InvalidRefreshToken):
            auth.auth.refresh(first.refresh_token)
        with pytest.raises(InvalidOtp):
            auth.auth.verify_otp(EMAIL, code)
        with pytest.raises(InvalidResetToken):
            auth.password.reset(token, NEW_PASSWORD)
    expired = [r for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == PREVIOUS_SECRETS_EXPIRED_EVENT]
    assert len(expired) == 1
    assert REFRESH not in expired[0].getMessage() and NEW_REFRESH not in expired[0].getMessage()
    assert env.auth.sessions.get(first.session_id).revoked_at is None  # refused, not treated as reuse


def test_previous_refresh_secrets_work_until_just_before_their_expiry(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    first = env.login(EMAIL)
    auth = rotate(previous_secrets_expire_at=env.clock.now() + timedelta(minutes=2))
    env.clock.advance(minutes=2, milliseconds=-1)
    assert auth.auth.refresh(first.refresh_token).session_id == first.session_id


# -- previous JWT keys expire too ---------------------------------------------------------------------


def test_a_token_signed_with_a_previous_jwt_key_is_refused_after_the_expiry(make_env) -> None:
    old_jwt = OTHER
    env = make_env(jwt_secret=old_jwt)
    env.auth.auth.register(EMAIL, PASSWORD)
    token = env.login(EMAIL).access_token
    rotated = env.auth.config.with_changes(
        jwt_secret=JWT, previous_jwt_secrets=(old_jwt,), previous_secrets_expire_at=env.clock.now() + timedelta(minutes=5)
    )
    auth = MindmeshAuth(store=env.store, mailer=env.outbox, config=rotated, clock=env.clock)
    try:
        assert auth.auth.get_user_from_token(token).email == EMAIL
        env.clock.advance(minutes=5)
        with pytest.raises(InvalidToken):
            auth.auth.get_user_from_token(token)
        assert auth.auth.get_user_from_token(auth.auth.refresh(env.login(EMAIL).refresh_token).access_token)
    finally:
        auth.close()


# -- the kid ---------------------------------------------------------------------------------------------


def kid_of(cfg: AuthConfig) -> str:
    outbox = Outbox()
    auth = MindmeshAuth(store="memory://", mailer=outbox, config=cfg)
    try:
        auth.auth.register(EMAIL, PASSWORD)
        auth.auth.login(EMAIL, PASSWORD)
        token = auth.auth.verify_otp(EMAIL, outbox.last_code(EMAIL)).access_token
    finally:
        auth.close()
    return str(jwt.get_unverified_header(token)["kid"])


def test_the_kid_cannot_be_tested_against_a_guessed_signing_key_alone() -> None:
    cfg = test_config()
    kid = kid_of(cfg)
    unsalted = hashlib.sha256(b"mindmesh-auth/kid/" + cfg.jwt_secret.encode()).hexdigest()[:16]
    assert kid != unsalted
    # Same signing key, another deployment's refresh secret: another kid.
    assert kid_of(test_config(refresh_secret=NEW_REFRESH)) != kid


def test_every_process_of_a_deployment_computes_the_same_kid() -> None:
    assert kid_of(test_config()) == kid_of(test_config())


def test_an_access_token_from_before_a_refresh_secret_rotation_still_verifies(rotation) -> None:
    env, rotate = rotation
    env.auth.auth.register(EMAIL, PASSWORD)
    token = env.login(EMAIL).access_token
    auth = rotate(previous_secrets_expire_at=env.clock.now() + timedelta(minutes=5))
    assert auth.auth.get_user_from_token(token).email == EMAIL
    env.clock.advance(minutes=5)  # its kid was made under the previous refresh secret, now expired
    with pytest.raises(InvalidToken):
        auth.auth.get_user_from_token(token)
