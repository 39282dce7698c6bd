"""Access token codec: expiry and issue-time boundaries, claim types, key ids, size limit, decoded claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from mindmesh_auth import InvalidToken, MindmeshAuth
from mindmesh_auth.core.tokens import AccessClaims, AccessTokenCodec
from mindmesh_auth.testing import FakeClock, Outbox, SeededRandomness, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
JWT_SECRET = test_config().jwt_secret
OLD_SECRET = "prev-jwt-Lw3Kx8Vq1Zn6Bt4Ry9Mc2Hd7Sf5Gp0Ej"
OTHER_SECRET = "other-Ow5Ja2Xv8Cn3Mq7Tb1Ks9Yh4Rd6Pg0Fu"


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def sign(payload: dict, secret: str = JWT_SECRET, **headers) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers)


def raw_sign(header: dict, payload: dict, secret: str = JWT_SECRET) -> str:
    """HS256 by hand, for headers PyJWT itself would not write (a non-string kid)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def reissue(token: str, *, secret: str = JWT_SECRET, headers: dict | None = None, drop_kid: bool = False, **changes) -> str:
    """Re-sign the real token's claims with changes, keeping its header (typ, kid) unless told otherwise."""
    header = {k: v for k, v in jwt.get_unverified_header(token).items() if k != "alg"}
    if drop_kid:
        header.pop("kid")
    header.update(headers or {})
    payload = {**claims_of(token), **changes}
    return jwt.encode(payload, secret, algorithm="HS256", headers=header)


def logged_in(make_env, **overrides):
    env = make_env(**overrides)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    return env, user, env.login(EMAIL)


def now_ts(env) -> int:
    return int(env.clock.now().timestamp())


# -- expiry and issue time against the injected clock --------------------------------------------------


def test_token_without_leeway_is_valid_until_just_before_exp_and_refused_at_exp(make_env) -> None:
    env, user, result = logged_in(make_env, jwt_leeway=timedelta(0))
    env.clock.advance(minutes=15, milliseconds=-1)
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    env.clock.advance(milliseconds=1)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_token_with_leeway_is_valid_until_just_before_exp_plus_leeway(make_env) -> None:
    env, user, result = logged_in(make_env, jwt_leeway=timedelta(seconds=20))
    env.clock.advance(minutes=15, seconds=20, milliseconds=-1)
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    env.clock.advance(milliseconds=1)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_access_token_lifetime_follows_the_configuration(make_env) -> None:
    env, _user, result = logged_in(make_env, access_token_ttl=timedelta(minutes=2), jwt_leeway=timedelta(0))
    claims = claims_of(result.access_token)
    assert claims["iat"] == now_ts(env)
    assert claims["exp"] == now_ts(env) + 120
    env.clock.advance(seconds=119)
    env.auth.auth.get_user_from_token(result.access_token)
    env.clock.advance(seconds=1)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


def test_token_issued_now_is_valid_but_one_second_in_the_future_is_not_without_leeway(make_env) -> None:
    env, user, result = logged_in(make_env, jwt_leeway=timedelta(0))
    t = now_ts(env)
    assert env.auth.auth.get_user_from_token(reissue(result.access_token, iat=t, exp=t + 900)).id == user.id
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, iat=t + 1, exp=t + 900))


def test_token_issued_up_to_the_leeway_in_the_future_is_accepted(make_env) -> None:
    env, user, result = logged_in(make_env, jwt_leeway=timedelta(seconds=30))
    t = now_ts(env)
    assert env.auth.auth.get_user_from_token(reissue(result.access_token, iat=t + 30, exp=t + 900)).id == user.id
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, iat=t + 31, exp=t + 900))


def test_tokens_work_with_an_injected_clock_far_ahead_of_the_wall_clock(make_env) -> None:
    env = make_env()
    env.clock.set(datetime(2041, 6, 1, 8, 0, 0, tzinfo=timezone.utc))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    assert env.auth.auth.get_user_from_token(result.access_token).email == EMAIL
    # A not-before claim is judged (if at all) against the injected clock, never the wall clock.
    t = now_ts(env)
    assert env.auth.auth.get_user_from_token(reissue(result.access_token, nbf=t)).email == EMAIL


def test_tokens_work_with_an_injected_clock_far_behind_the_wall_clock(make_env) -> None:
    env = make_env()
    env.clock.set(datetime(2001, 3, 1, 8, 0, 0, tzinfo=timezone.utc))
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    assert env.auth.auth.get_user_from_token(result.access_token).email == EMAIL


# -- claim types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "float"},
        {"iat": "float"},
        {"iat": True},
        {"iat": "1767268800"},
        {"exp": "2000000000"},
        {"sid": ""},
        {"sub": 42},
        {"sid": ["a"]},
        {"sub": None},
    ],
)
def test_token_with_a_mistyped_claim_is_refused(make_env, changes: dict) -> None:
    env, _user, result = logged_in(make_env)
    claims = claims_of(result.access_token)
    if changes.get("exp") == "float":
        changes = {"exp": float(claims["exp"])}
    if changes.get("iat") == "float":
        changes = {"iat": float(claims["iat"])}
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, **changes))


def test_boolean_exp_is_refused_even_where_exp_one_would_pass(make_env) -> None:
    # With a (silly) leeway of 80 years, exp=1 is not expired; True must still not count as a timestamp.
    env, user, result = logged_in(make_env, jwt_leeway=timedelta(days=365 * 80))
    assert env.auth.auth.get_user_from_token(reissue(result.access_token, exp=1)).id == user.id
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, exp=True))


# -- key ids and key rotation --------------------------------------------------------------------------


def rotated_env(make_env):
    return logged_in(make_env, jwt_secret=JWT_SECRET, previous_jwt_secrets=(OLD_SECRET,))


def old_kid() -> str:
    """The kid an earlier deployment signing with OLD_SECRET put in its tokens."""
    clock, outbox = FakeClock(), Outbox()
    old = MindmeshAuth(store="memory://", mailer=outbox, config=test_config(jwt_secret=OLD_SECRET), clock=clock)
    old.auth.register(EMAIL, PASSWORD)
    old.auth.login(EMAIL, PASSWORD)
    token = old.auth.verify_otp(EMAIL, outbox.last_code(EMAIL)).access_token
    old.close()
    return jwt.get_unverified_header(token)["kid"]


def test_token_signed_with_the_previous_key_under_its_kid_is_accepted(make_env) -> None:
    env, user, result = rotated_env(make_env)
    token = reissue(result.access_token, secret=OLD_SECRET, headers={"kid": old_kid()})
    assert env.auth.auth.get_user_from_token(token).id == user.id


def test_token_signed_with_the_current_key_is_accepted_during_rotation(make_env) -> None:
    env, user, result = rotated_env(make_env)
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    assert jwt.get_unverified_header(result.access_token)["kid"] != old_kid()


@pytest.mark.parametrize(
    ("secret", "kid"),
    [
        (OLD_SECRET, "current"),  # previous key, current kid
        (JWT_SECRET, "old"),  # current key, previous kid
        (OTHER_SECRET, "current"),
        (JWT_SECRET, "0123456789abcdef"),
        (JWT_SECRET, None),
        (JWT_SECRET, ["current"]),
        (JWT_SECRET, {"k": 1}),
        (JWT_SECRET, 7),
    ],
)
def test_token_whose_kid_does_not_name_its_signing_key_is_refused_during_rotation(make_env, secret, kid) -> None:
    env, _user, result = rotated_env(make_env)
    current = jwt.get_unverified_header(result.access_token)["kid"]
    value = {"current": current, "old": old_kid()}.get(kid, kid) if isinstance(kid, str) else kid
    if value == ["current"]:
        value = [current]
    token = raw_sign({"alg": "HS256", "typ": "at+jwt", "kid": value}, claims_of(result.access_token), secret)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(token)


def test_token_without_kid_is_refused_during_rotation(make_env) -> None:
    env, _user, result = rotated_env(make_env)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, drop_kid=True))


def test_token_without_kid_is_refused_with_a_single_key(make_env) -> None:
    env, _user, result = logged_in(make_env)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(reissue(result.access_token, drop_kid=True))


def test_token_signed_with_a_previous_key_is_refused_once_that_key_is_dropped(make_env) -> None:
    env, _user, result = logged_in(make_env)
    token = reissue(result.access_token, secret=OLD_SECRET, headers={"kid": old_kid()})
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(token)


def test_token_with_a_malformed_header_is_refused_during_rotation(make_env) -> None:
    env, _user, result = rotated_env(make_env)
    _head, body, sig = result.access_token.split(".")
    for bad_head in ("!!!", "W10", "bnVsbA"):  # not base64, "[]", "null"
        with pytest.raises(InvalidToken):
            env.auth.auth.get_user_from_token(f"{bad_head}.{body}.{sig}")


# -- size ------------------------------------------------------------------------------------------------


def sized_token(token: str, size: int) -> str:
    """A validly signed copy of ``token`` exactly ``size`` characters long (filler in a header and a claim)."""
    for head_pad in range(0, 8):
        for body_pad in range(0, size):
            candidate = reissue(token, headers={"x": "h" * head_pad}, padding="p" * body_pad)
            if len(candidate) == size:
                return candidate
            if len(candidate) > size:
                break
    raise AssertionError(f"no token of {size} characters")


def test_token_of_exactly_4096_characters_is_accepted_and_one_longer_is_refused(make_env) -> None:
    env, user, result = logged_in(make_env)
    assert env.auth.auth.get_user_from_token(sized_token(result.access_token, 4096)).id == user.id
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(sized_token(result.access_token, 4097))


# -- the codec's own contract: decoded claims --------------------------------------------------------------


NOW = datetime(2026, 3, 1, 9, 30, 0, tzinfo=timezone.utc)


def codec(secret: str = JWT_SECRET, **kw) -> AccessTokenCodec:
    values = {"issuer": "iss-a", "audience": "aud-a", "ttl": timedelta(minutes=10), "leeway": timedelta(0), **kw}
    return AccessTokenCodec(secret, **values)


def test_codec_decodes_the_claims_it_encoded() -> None:
    c = codec()
    token = c.encode(user_id="u-1", session_id="s-1", email="ada@example.com", now=NOW, rng=SeededRandomness(1))
    claims = c.decode(token, NOW + timedelta(minutes=3))
    assert claims == AccessClaims(
        user_id="u-1",
        session_id="s-1",
        email="ada@example.com",
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=10),
    )
    assert claims.issued_at.tzinfo is not None and claims.expires_at.utcoffset() == timedelta(0)
    raw = claims_of(token)
    assert (raw["iss"], raw["aud"], raw["userId"], raw["sessionId"]) == ("iss-a", "aud-a", "u-1", "s-1")


def test_codec_timestamps_follow_the_timezone_of_the_clock() -> None:
    c = codec()
    plus_two = timezone(timedelta(hours=2))
    token = c.encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=SeededRandomness(1))
    claims = c.decode(token, NOW.astimezone(plus_two))
    assert claims.issued_at.utcoffset() == timedelta(hours=2)
    assert claims.issued_at == NOW


@pytest.mark.parametrize("email", [None, 5, ["a@b.c"]])
def test_codec_reports_a_missing_or_non_string_email_as_empty(email) -> None:
    c = codec()
    token = c.encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=SeededRandomness(1))
    payload = claims_of(token)
    if email is None:
        del payload["email"]
    else:
        payload["email"] = email
    forged = sign(payload, JWT_SECRET, typ="at+jwt", kid=jwt.get_unverified_header(token)["kid"])
    assert c.decode(forged, NOW).email == ""


def test_codec_refuses_other_issuer_or_audience() -> None:
    token = codec().encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=SeededRandomness(1))
    with pytest.raises(InvalidToken):
        codec(issuer="iss-b").decode(token, NOW)
    with pytest.raises(InvalidToken):
        codec(audience="aud-b").decode(token, NOW)


def test_codec_with_a_too_short_key_refuses_every_token() -> None:
    short = "s" * 16
    c = codec(short)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = c.encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=SeededRandomness(1))
    with pytest.raises(InvalidToken):
        c.decode(token, NOW)


def test_codec_jti_differs_between_tokens_of_the_same_second() -> None:
    c = codec()
    rng = SeededRandomness(3)
    a = c.encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=rng)
    b = c.encode(user_id="u", session_id="s", email="e@example.com", now=NOW, rng=rng)
    assert claims_of(a)["jti"] != claims_of(b)["jti"]


def test_codec_repr_shows_issuer_and_key_count_but_no_secret() -> None:
    c = codec(previous=(OLD_SECRET, OTHER_SECRET))
    text = repr(c)
    assert text == "AccessTokenCodec(issuer='iss-a', keys=3)"
    for secret in (JWT_SECRET, OLD_SECRET, OTHER_SECRET):
        assert secret not in text


def test_hand_signed_token_with_the_right_kid_is_accepted_during_rotation(make_env) -> None:
    # Guards the kid tests above: their tokens fail because of the kid, not the hand signing.
    env, user, result = rotated_env(make_env)
    header = jwt.get_unverified_header(result.access_token)
    token = raw_sign({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}, claims_of(result.access_token))
    assert env.auth.auth.get_user_from_token(token).id == user.id


# A token minted by this version (secret below, 2026-01-01 12:00 UTC). Tokens in flight must keep verifying
# after a deploy: the key id derivation and the claim names are a wire format, not an implementation detail.
PINNED_SECRET = "pinned-wire-format-secret-" + "w" * 32
PINNED_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjMzMWQ0NDA3ZjE0NGM0NDgiLCJ0eXAiOiJhdCtqd3QifQ."
    "eyJzdWIiOiI4ZjJjMGQxZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJzaWQiOiI4ZjJjMGQxZS0wMDAwLTQwMDAtODAwMC0w"
    "MDAwMDAwMDAwMDIiLCJ1c2VySWQiOiI4ZjJjMGQxZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJzZXNzaW9uSWQiOiI4ZjJj"
    "MGQxZS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDIiLCJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSIsImlhdCI6MTc2NzI2ODgwMCwi"
    "ZXhwIjoxNzY3MjY5NzAwLCJpc3MiOiJtaW5kbWVzaC1hdXRoIiwiYXVkIjoibWluZG1lc2gtYXBwIiwianRpIjoiT0xUbVV1Uk5wX0kz"
    "RFo0bSJ9.j5akLRpgFje_25NC9AfVGXMgOEFEVYy8MYDocjQT_1Q"
)


@pytest.mark.parametrize("previous", [(), (OLD_SECRET,)])
def test_a_token_minted_before_a_deploy_still_verifies_after_it(previous) -> None:
    c = AccessTokenCodec(
        PINNED_SECRET,
        previous=previous,
        issuer="mindmesh-auth",
        audience="mindmesh-app",
        ttl=timedelta(minutes=15),
        leeway=timedelta(seconds=30),
    )
    minted = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    claims = c.decode(PINNED_TOKEN, minted + timedelta(minutes=5))
    assert (claims.user_id, claims.session_id, claims.email) == (
        "8f2c0d1e-0000-4000-8000-000000000001",
        "8f2c0d1e-0000-4000-8000-000000000002",
        "ada@example.com",
    )
    assert (claims.issued_at, claims.expires_at) == (minted, minted + timedelta(minutes=15))


# -- the salted kid --------------------------------------------------------------------------------------

SALT = "kid-salt-Rb6Vn1Xq8Lm3Tz5Hk9Wc2Pd7Fs4Gy0J"
OLD_SALT = "kid-salt-Qa2Ze7Mu4Ci9Ow1Ex6Bj3Nt8Kp5Hr0L"


def mint(c: AccessTokenCodec) -> str:
    return c.encode(user_id="u-1", session_id="s-1", email="ada@example.com", now=NOW, rng=SeededRandomness(3))


def test_the_salted_kid_depends_on_the_salt_and_is_not_the_unsalted_hash() -> None:
    unsalted = hashlib.sha256(b"mindmesh-auth/kid/" + JWT_SECRET.encode()).hexdigest()[:16]
    kid = jwt.get_unverified_header(mint(codec(kid_salts=(SALT,))))["kid"]
    assert kid != unsalted
    assert kid == jwt.get_unverified_header(mint(codec(kid_salts=(SALT,))))["kid"]  # stable
    assert kid != jwt.get_unverified_header(mint(codec(kid_salts=(OLD_SALT,))))["kid"]
    assert jwt.get_unverified_header(mint(codec()))["kid"] == unsalted  # no salt: the legacy kid


def test_a_token_with_the_legacy_kid_still_verifies_under_a_salted_codec() -> None:
    legacy = mint(codec())
    assert codec(kid_salts=(SALT,)).decode(legacy, NOW).user_id == "u-1"


def test_a_token_under_a_previous_salt_verifies_until_the_previous_secrets_expire() -> None:
    before = mint(codec(kid_salts=(OLD_SALT,)))
    after = codec(kid_salts=(SALT, OLD_SALT), previous_expire_at=NOW + timedelta(minutes=1))
    assert after.decode(before, NOW).user_id == "u-1"
    with pytest.raises(InvalidToken):
        after.decode(before, NOW + timedelta(minutes=1))
    assert after.decode(mint(after), NOW + timedelta(minutes=1)).user_id == "u-1"  # the current kid never expires


def test_a_previous_signing_key_stops_at_the_expiry_even_under_its_legacy_kid() -> None:
    old_token = mint(codec(OLD_SECRET))
    rotated = codec(previous=(OLD_SECRET,), kid_salts=(SALT,), previous_expire_at=NOW + timedelta(minutes=1))
    assert rotated.decode(old_token, NOW).user_id == "u-1"
    with pytest.raises(InvalidToken):
        rotated.decode(old_token, NOW + timedelta(minutes=1))
