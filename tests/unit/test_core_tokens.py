"""Access tokens (HS256 JWT, claims, forgery) and refresh tokens (rotation, reuse, grace, expiry)."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import jwt
import pytest

from mindmesh_auth import (
    AuditEventType,
    ConfigurationError,
    InvalidRefreshToken,
    InvalidToken,
    MindmeshAuth,
    RefreshTokenReused,
)
from mindmesh_auth.testing import test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
JWT_SECRET = test_config().jwt_secret
OTHER_SECRET = "other-Ow5Ja2Xv8Cn3Mq7Tb1Ks9Yh4Rd6Pg0Fu"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


@pytest.fixture
def result(env, user):
    return env.login(EMAIL)


def claims_of(token: str, secret: str = JWT_SECRET) -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"], audience="mindmesh-app", options={"verify_exp": False})


def forge(env, result, *, drop: tuple[str, ...] = (), secret: str = JWT_SECRET, algorithm: str = "HS256", **changes):
    """Re-sign the real token's claims (minus ``drop``, plus ``changes``) with the real header."""
    header = jwt.get_unverified_header(result.access_token)
    payload = {k: v for k, v in claims_of(result.access_token).items() if k not in drop}
    header_changes = changes.pop("headers", {})
    payload.update(changes)
    headers = {"typ": header["typ"], "kid": header["kid"], **header_changes}
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


def test_access_token_carries_seed_and_standard_claims(env, user, result) -> None:
    header = jwt.get_unverified_header(result.access_token)
    assert header["alg"] == "HS256"
    assert header["typ"] == "at+jwt"
    claims = claims_of(result.access_token)
    assert claims["userId"] == claims["sub"] == user.id
    assert claims["sessionId"] == claims["sid"] == result.session_id
    assert claims["email"] == EMAIL
    assert claims["iss"] == "mindmesh-auth"
    assert claims["aud"] == "mindmesh-app"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == int(env.clock.now().timestamp())
    assert claims["jti"]
    assert "password" not in json.dumps(claims).lower()


def test_valid_access_token_returns_the_user(env, user, result) -> None:
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id


def test_access_token_is_valid_within_the_leeway_and_expired_after(env, result) -> None:
    env.clock.advance(minutes=15, seconds=29)
    env.auth.auth.get_user_from_token(result.access_token)
    env.clock.advance(seconds=2)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_access_token_issued_in_the_future_is_refused(env, result) -> None:
    future = forge(env, result, iat=int(env.clock.now().timestamp()) + 3600, exp=int(env.clock.now().timestamp()) + 4000)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(future)


def _tamper_payload(token: str, **changes) -> str:
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    new_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{new_body}.{sig}"


def test_tampered_payload_is_refused(env, user, result) -> None:
    other = env.auth.auth.register("eve@example.com", PASSWORD)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(_tamper_payload(result.access_token, sub=other.id, userId=other.id))
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(_tamper_payload(result.access_token, exp=2_000_000_000))


def test_wrong_signature_is_refused(env, result) -> None:
    head, body, sig = result.access_token.split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(f"{head}.{body}.{flipped}")
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(f"{head}.{body}.")


def test_alg_none_token_is_refused(env, result) -> None:
    header = jwt.get_unverified_header(result.access_token)
    unsigned = jwt.encode(claims_of(result.access_token), None, algorithm="none", headers={"typ": "at+jwt", "kid": header["kid"]})
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(unsigned)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_signed_with_another_hmac_algorithm_is_refused(env, result, algorithm: str) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, algorithm=algorithm))


def test_token_signed_with_another_secret_is_refused(env, result) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, secret=OTHER_SECRET))


def test_forge_helper_produces_an_accepted_token_when_nothing_changes(env, user, result) -> None:
    # Guards the forgery tests below: they fail because of their change, not the helper.
    assert env.auth.auth.get_user_from_token(forge(env, result)).id == user.id


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "sid", "iss", "aud", "jti"])
def test_token_missing_a_required_claim_is_refused(env, result, claim: str) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, drop=(claim,)))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"aud": "another-app"},
        {"sub": ""},
        {"sid": 12345},
        {"exp": "never"},
        {"exp": True},
        {"headers": {"typ": "JWT"}},
        {"headers": {"typ": "rt+jwt"}},
        {"headers": {"kid": "0000000000000000"}},
    ],
)
def test_token_with_wrong_claims_or_foreign_type_is_refused(env, result, changes: dict) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, **changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": 10**20},
        {"exp": 10**400},
        {"exp": -(10**20)},
        {"exp": -1},
        {"iat": -(10**20)},
        {"iat": -(10**400)},
        {"iat": "yesterday"},
        {"exp": 2.5e9},
        {"exp": 10**20, "iat": -(10**20)},
    ],
    ids=[
        "exp-1e20",
        "exp-1e400",
        "exp-negative-huge",
        "exp-negative",
        "iat-negative-huge",
        "iat-1e400",
        "iat-string",
        "exp-float",
        "both-absurd",
    ],
)
def test_signed_token_with_absurd_times_is_invalid_token_not_a_crash(env, result, changes: dict) -> None:
    """A correctly signed token whose exp/iat overflow datetime (or float) arithmetic is a plain InvalidToken."""
    token = forge(env, result, **changes)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(token)
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(token)


def test_token_without_typ_header_is_refused(env, result) -> None:
    token = jwt.encode(claims_of(result.access_token), JWT_SECRET, algorithm="HS256")  # default typ "JWT"
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(token)


def test_token_for_a_session_of_another_user_is_refused(env, user, result) -> None:
    other = env.auth.auth.register("eve@example.com", PASSWORD)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, sub=other.id, userId=other.id))


@pytest.mark.parametrize("token", [None, 123, b"abc.def.ghi", {"token": "x"}, "", "not-a-jwt", "a.b.c", "x" * 5000])
def test_non_string_malformed_or_huge_token_is_refused(env, token) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(token)


def test_huge_but_validly_signed_token_is_refused(env, result) -> None:
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(forge(env, result, padding="p" * 5000))


def test_token_signed_with_a_previous_secret_verifies_during_rotation(make_env) -> None:
    old_env = make_env()
    old_env.auth.auth.register(EMAIL, PASSWORD)
    old_token = old_env.login(EMAIL).access_token
    new_secret = "rotated-jwt-Ie7Fk2Wn9Bs4Qt1Gv6Zp3Xl8Ca5Dm0"
    rotated = old_env.auth.config.with_changes(jwt_secret=new_secret, previous_jwt_secrets=(JWT_SECRET,))
    auth = MindmeshAuth(store=old_env.store, mailer=old_env.outbox, config=rotated, clock=old_env.clock)
    assert auth.auth.get_user_from_token(old_token).email == EMAIL
    unrotated = MindmeshAuth(
        store=old_env.store,
        mailer=old_env.outbox,
        config=old_env.auth.config.with_changes(jwt_secret=new_secret),
        clock=old_env.clock,
    )
    with pytest.raises(InvalidToken):
        unrotated.auth.get_user_from_token(old_token)


def test_rotated_config_signs_new_tokens_with_the_new_secret(make_env) -> None:
    new_secret = "rotated-jwt-Ie7Fk2Wn9Bs4Qt1Gv6Zp3Xl8Ca5Dm0"
    env = make_env(jwt_secret=new_secret, previous_jwt_secrets=(JWT_SECRET,))
    env.auth.auth.register(EMAIL, PASSWORD)
    token = env.login(EMAIL).access_token
    assert claims_of(token, new_secret)["email"] == EMAIL
    with pytest.raises(jwt.InvalidSignatureError):
        claims_of(token, JWT_SECRET)


def test_logout_makes_the_access_token_useless_immediately(env, user, result) -> None:
    assert env.auth.auth.logout(result.session_id) is True
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(result.refresh_token)


def test_blocking_makes_the_access_token_useless_immediately(env, user, result) -> None:
    env.auth.user.block(user.id)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)
    env.auth.user.unblock(user.id)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_session_absolute_expiry_kills_access_and_refresh(env, result) -> None:
    env.clock.advance(days=7, minutes=-5)
    pair = env.auth.auth.refresh(result.refresh_token)  # refresh never extends the session
    env.clock.advance(minutes=5)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(pair.access_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(pair.refresh_token)


def test_session_days_configures_the_absolute_expiry(make_env) -> None:
    env = make_env(session_ttl=timedelta(days=1))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.clock.advance(days=1)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(result.refresh_token)


def test_idle_timeout_kills_refresh_after_the_idle_period(make_env) -> None:
    env = make_env(session_idle_timeout=timedelta(hours=1))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.clock.advance(minutes=59)
    pair = env.auth.auth.refresh(result.refresh_token)  # activity resets the idle clock
    env.clock.advance(minutes=59)
    pair = env.auth.auth.refresh(pair.refresh_token)
    env.clock.advance(minutes=14)
    env.auth.auth.get_user_from_token(pair.access_token)
    env.clock.advance(minutes=47)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(pair.refresh_token)


def test_idle_timeout_kills_the_access_token_of_an_idle_session(make_env) -> None:
    env = make_env(session_idle_timeout=timedelta(minutes=10))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.clock.advance(minutes=10)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_refresh_token_is_128_url_safe_characters(env, result) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{128}", result.refresh_token)
    pair = env.auth.auth.refresh(result.refresh_token)
    assert re.fullmatch(r"[A-Za-z0-9_-]{128}", pair.refresh_token)


def test_refresh_rotates_and_the_old_token_then_fails(env, user, result) -> None:
    env.clock.advance(seconds=30)
    pair = env.auth.auth.refresh(result.refresh_token)
    assert pair.refresh_token != result.refresh_token
    assert pair.session_id == result.session_id
    assert pair.expires_in == 900
    assert env.auth.auth.get_user_from_token(pair.access_token).id == user.id
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(result.refresh_token)
    refreshed = env.auth.audit.query(types=[AuditEventType.SESSION_REFRESHED])
    assert [(e.user_id, e.session_id) for e in refreshed] == [(user.id, result.session_id)]


def test_refresh_token_is_stored_only_as_a_keyed_hash(env, result) -> None:
    session = env.store.sessions.get(result.session_id)
    assert result.refresh_token not in session.refresh_hash
    assert result.refresh_token not in repr(session)


def test_replay_after_the_race_window_is_reuse_and_revokes_the_session(env, user, result) -> None:
    pair = env.auth.auth.refresh(result.refresh_token)
    env.clock.advance(seconds=3)
    with pytest.raises(RefreshTokenReused) as info:
        env.auth.auth.refresh(result.refresh_token)
    assert info.value.code == "refresh_token_reused"
    reuse = env.auth.audit.query(types=[AuditEventType.REFRESH_REUSE_DETECTED])
    assert [(e.user_id, e.session_id) for e in reuse] == [(user.id, result.session_id)]
    assert env.auth.sessions.get(result.session_id).revoked_at is not None
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(pair.access_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(pair.refresh_token)


def test_replay_within_the_race_window_is_refused_without_revoking(env, user, result) -> None:
    pair = env.auth.auth.refresh(result.refresh_token)
    env.clock.advance(seconds=2)
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(result.refresh_token)
    assert type(info.value) is InvalidRefreshToken
    assert env.auth.sessions.get(result.session_id).revoked_at is None
    assert env.auth.audit.query(types=[AuditEventType.REFRESH_REUSE_DETECTED]) == []
    assert env.auth.auth.refresh(pair.refresh_token).session_id == result.session_id


def test_grace_period_returns_the_same_successor_then_detects_reuse(make_env) -> None:
    env = make_env(refresh_grace_period=timedelta(seconds=10))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    first = env.auth.auth.refresh(result.refresh_token)
    env.clock.advance(seconds=9)
    second = env.auth.auth.refresh(result.refresh_token)
    assert second.refresh_token == first.refresh_token
    assert second.session_id == first.session_id
    env.auth.auth.get_user_from_token(second.access_token)
    env.clock.advance(seconds=2)  # 11 s after the rotation
    with pytest.raises(RefreshTokenReused):
        env.auth.auth.refresh(result.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(first.refresh_token)


def test_grace_period_successor_differs_per_session(make_env) -> None:
    env = make_env(refresh_grace_period=timedelta(seconds=10))
    env.auth.auth.register(EMAIL, PASSWORD)
    a = env.login(EMAIL)
    b = env.login(EMAIL)
    assert env.auth.auth.refresh(a.refresh_token).refresh_token != env.auth.auth.refresh(b.refresh_token).refresh_token


def test_grace_period_above_30_seconds_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        test_config(refresh_grace_period=timedelta(seconds=31))


@pytest.mark.parametrize(
    "token",
    ["short", "A" * 127, "A" * 129, "!" * 128, "A" * 127 + "=", "A" * 127 + "\n", None, {"t": 1}, 12, b"A" * 128, "\uff21" * 128],
)
def test_malformed_refresh_token_is_invalid_refresh_token(env, result, token) -> None:
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh(token)
    assert type(info.value) is InvalidRefreshToken
    assert env.auth.sessions.get(result.session_id).revoked_at is None


def test_unknown_well_formed_refresh_token_is_invalid_refresh_token(env, result) -> None:
    with pytest.raises(InvalidRefreshToken) as info:
        env.auth.auth.refresh("A" * 128)
    assert type(info.value) is InvalidRefreshToken


def test_blocked_user_cannot_refresh(env, user, result) -> None:
    env.auth.user.block(user.id)
    with pytest.raises(InvalidRefreshToken):
        env.auth.auth.refresh(result.refresh_token)
