"""The verified-token cache and the lean token shape.

The cache may answer only what a full verification would answer at the same
clock time: every rule below is checked against the injected clock, and "the
cache answered" is proven by counting PyJWT's signature checks.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from mindmesh_auth import ConfigurationError, InvalidToken
from mindmesh_auth.core.config import AuthConfig
from mindmesh_auth.core.tokens import AccessClaims, AccessTokenCodec
from mindmesh_auth.testing import SeededRandomness, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
JWT_SECRET = test_config().jwt_secret
OLD_SECRET = "prev-jwt-Lw3Kx8Vq1Zn6Bt4Ry9Mc2Hd7Sf5Gp0Ej"
OTHER_SECRET = "other-Ow5Ja2Xv8Cn3Mq7Tb1Ks9Yh4Rd6Pg0Fu"
SALT = "kid-salt-Rb6Vn1Xq8Lm3Tz5Hk9Wc2Pd7Fs4Gy0J"
OLD_SALT = "kid-salt-Qa2Ze7Mu4Ci9Ow1Ex6Bj3Nt8Kp5Hr0L"
NOW = datetime(2026, 3, 1, 9, 30, 0, tzinfo=timezone.utc)
TTL = timedelta(minutes=10)


def codec(secret: str = JWT_SECRET, **kw) -> AccessTokenCodec:
    values = {"issuer": "iss-a", "audience": "aud-a", "ttl": TTL, "leeway": timedelta(0), "cache_size": 100, **kw}
    return AccessTokenCodec(secret, **values)


def mint(c: AccessTokenCodec, *, at: datetime = NOW, seed: int = 3, user: str = "u-1", session: str = "s-1") -> str:
    return c.encode(user_id=user, session_id=session, email=EMAIL, now=at, rng=SeededRandomness(seed))


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """Every token PyJWT verifies (a cache hit adds nothing)."""
    seen: list[str] = []
    real = jwt.decode_complete

    def counting(token, *args, **kwargs):
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode_complete", counting)
    return seen


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# -- hits and misses ----------------------------------------------------------------------------------


def test_a_verified_token_is_answered_from_the_cache_with_the_same_claims(verifications) -> None:
    c = codec()
    token = mint(c)
    first = c.decode(token, NOW)
    assert len(verifications) == 1 and c.cached_count() == 1
    again = c.decode(token, NOW + timedelta(minutes=5))
    assert again == first == AccessClaims("u-1", "s-1", EMAIL, NOW, NOW + TTL)
    assert len(verifications) == 1


def test_a_codec_without_a_cache_verifies_every_time(verifications) -> None:
    c = codec(cache_size=0)
    token = mint(c)
    for _ in range(3):
        assert c.decode(token, NOW).user_id == "u-1"
    assert len(verifications) == 3 and c.cached_count() == 0


def test_the_cache_is_keyed_by_the_exact_token_string(verifications) -> None:
    c = codec()
    token = mint(c)
    c.decode(token, NOW)
    for variant in (token + " ", " " + token, token[:-1], token.upper()):
        with pytest.raises(InvalidToken):
            c.decode(variant, NOW)
    assert c.cached_count() == 1


@pytest.mark.parametrize("value", [None, 42, b"token", ["a"], {"a": 1}, ""])
def test_a_value_that_is_not_a_token_is_refused_and_cached_nowhere(value) -> None:
    c = codec()
    with pytest.raises(InvalidToken):
        c.decode(value, NOW)
    assert c.cached_count() == 0


def test_a_forged_or_failed_token_never_enters_the_cache(verifications) -> None:
    c = codec()
    good = mint(c)
    forged = mint(codec(OTHER_SECRET))
    foreign_audience = mint(codec(audience="aud-b"))
    tampered = jwt.encode({**claims_of(good), "sub": "u-2"}, OTHER_SECRET, algorithm="HS256", headers={"typ": "at+jwt"})
    for bad in (forged, foreign_audience, tampered):
        for _ in range(2):  # refused in full both times: nothing was remembered
            with pytest.raises(InvalidToken):
                c.decode(bad, NOW)
    assert c.cached_count() == 0
    assert len(verifications) == 6


def test_an_expired_token_does_not_enter_the_cache() -> None:
    c = codec()
    token = mint(c)
    with pytest.raises(InvalidToken):
        c.decode(token, NOW + TTL)
    assert c.cached_count() == 0


# -- the window: expiry, issue time, leeway -------------------------------------------------------------


@pytest.mark.parametrize("leeway", [timedelta(0), timedelta(seconds=30)])
def test_a_cached_token_is_refused_from_its_expiry_plus_the_leeway_on(verifications, leeway) -> None:
    c = codec(leeway=leeway)
    token = mint(c)
    c.decode(token, NOW)
    last = NOW + TTL + leeway - timedelta(microseconds=1)
    assert c.decode(token, last).user_id == "u-1"
    assert len(verifications) == 1  # still the cache
    with pytest.raises(InvalidToken):
        c.decode(token, NOW + TTL + leeway)
    assert c.cached_count() == 0  # dropped once it is past use
    with pytest.raises(InvalidToken):
        c.decode(token, NOW + TTL + leeway + timedelta(hours=1))


def test_an_uncached_codec_and_a_cached_one_agree_at_every_second_around_the_bounds() -> None:
    cached, plain = codec(leeway=timedelta(seconds=5)), codec(leeway=timedelta(seconds=5), cache_size=0)
    token = mint(plain)
    cached.decode(token, NOW)

    def outcome(c: AccessTokenCodec, at: datetime) -> object:
        try:
            return c.decode(token, at)
        except InvalidToken:
            return "refused"

    moments = [NOW + TTL + timedelta(seconds=s) for s in range(-3, 8)] + [NOW - timedelta(seconds=s) for s in range(8)]
    for at in moments:
        assert outcome(cached, at) == outcome(plain, at), at
    assert outcome(cached, NOW + TTL + timedelta(seconds=5)) == "refused"
    assert outcome(cached, NOW - timedelta(seconds=6)) == "refused"


def test_a_cached_token_is_refused_when_the_clock_is_set_back_before_its_issue_time(verifications) -> None:
    c = codec()
    token = mint(c)
    c.decode(token, NOW)
    with pytest.raises(InvalidToken):
        c.decode(token, NOW - timedelta(seconds=1))
    assert len(verifications) == 2  # the cache did not answer outside its window


# -- keys: previous keys and salts stop at their expiry even when cached -----------------------------------


def test_a_cached_token_under_a_previous_signing_key_stops_at_the_previous_key_expiry(verifications) -> None:
    old_token = mint(codec(OLD_SECRET))
    rotated = codec(previous=(OLD_SECRET,), kid_salts=(SALT,), previous_expire_at=NOW + timedelta(minutes=1))
    assert rotated.decode(old_token, NOW).user_id == "u-1"
    assert rotated.decode(old_token, NOW + timedelta(seconds=59)).user_id == "u-1"
    assert len(verifications) == 1
    with pytest.raises(InvalidToken):  # its exp is 9 minutes later: the key's end wins
        rotated.decode(old_token, NOW + timedelta(minutes=1))
    current = mint(rotated)
    rotated.decode(current, NOW)
    assert rotated.decode(current, NOW + timedelta(minutes=5)).user_id == "u-1"  # the current key does not stop


def test_a_cached_token_under_a_previous_kid_salt_stops_at_the_previous_secrets_expiry() -> None:
    before = mint(codec(kid_salts=(OLD_SALT,)))
    after = codec(kid_salts=(SALT, OLD_SALT), previous_expire_at=NOW + timedelta(minutes=1))
    assert after.decode(before, NOW).user_id == "u-1"
    with pytest.raises(InvalidToken):
        after.decode(before, NOW + timedelta(minutes=1))


def test_a_token_cached_by_one_key_set_is_not_known_to_a_codec_with_other_keys(verifications) -> None:
    first = codec(kid_salts=(SALT,))
    token = mint(first)
    first.decode(token, NOW)
    rekeyed = codec(OTHER_SECRET, kid_salts=(SALT,))
    assert rekeyed.cached_count() == 0
    with pytest.raises(InvalidToken):
        rekeyed.decode(token, NOW)


def test_clear_cache_forgets_every_token(verifications) -> None:
    c = codec()
    tokens = [mint(c, seed=i) for i in range(5)]
    for t in tokens:
        c.decode(t, NOW)
    c.clear_cache()
    assert c.cached_count() == 0
    c.decode(tokens[0], NOW)
    assert len(verifications) == 6


# -- the bound ------------------------------------------------------------------------------------------


def test_the_cache_never_holds_more_than_its_size(verifications) -> None:
    c = codec(cache_size=8)
    tokens = [mint(c, seed=i, session=f"s-{i}") for i in range(50)]
    for t in tokens:
        assert c.decode(t, NOW).session_id == f"s-{tokens.index(t)}"
        assert c.cached_count() <= 8
    assert c.cached_count() >= 1
    before = len(verifications)
    assert c.decode(tokens[-1], NOW).session_id == "s-49"  # the newest one is kept
    assert len(verifications) == before


def test_a_full_cache_drops_expired_entries_before_live_ones() -> None:
    c = codec(cache_size=4)
    old = [mint(c, seed=i) for i in range(3)]
    for t in old:
        c.decode(t, NOW)
    later = NOW + TTL + timedelta(minutes=1)
    keeper = mint(c, at=later, seed=10)
    c.decode(keeper, later)
    assert c.cached_count() == 4
    c.decode(mint(c, at=later, seed=11), later)
    assert c.cached_count() == 2  # the three expired ones went, both live ones stayed


def test_concurrent_hits_and_evictions_answer_correctly() -> None:
    c = codec(cache_size=16)
    tokens = [mint(c, seed=i, session=f"s-{i}") for i in range(64)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for round_ in range(30):
                for i in range(offset, offset + 64, 3):
                    j = i % 64
                    assert c.decode(tokens[j], NOW + timedelta(seconds=round_)).session_id == f"s-{j}"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert c.cached_count() <= 16


def test_a_hit_needs_no_lock_and_an_insert_waits_for_it() -> None:
    # The locking discipline itself: while the codec's lock is held, a hit still answers
    # and a new token's insert waits; an insert made without the lock would finish at once.
    c = codec()
    cached, fresh = mint(c, seed=1), mint(c, seed=2, session="s-2")
    c.decode(cached, NOW)
    results: dict[str, str] = {}

    def run(name: str, token: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.__setitem__(name, c.decode(token, NOW).session_id), daemon=True)
        thread.start()
        return thread

    with c._lock:
        hit = run("hit", cached)
        hit.join(timeout=10)
        assert results.get("hit") == "s-1"
        insert = run("insert", fresh)
        insert.join(timeout=0.3)
        assert insert.is_alive() and c.cached_count() == 1
    insert.join(timeout=10)
    assert results.get("insert") == "s-2" and c.cached_count() == 2


@pytest.mark.parametrize("kw", [{"cache_size": -1}, {"cache_size": True}, {"cache_size": 1.5}, {"claims": "tiny"}])
def test_the_codec_refuses_a_bad_cache_size_or_claim_shape(kw) -> None:
    with pytest.raises(ValueError):
        codec(**kw)


# -- through the facade: the session check still runs on every call --------------------------------------


def logged_in(make_env, **overrides):
    env = make_env(**overrides)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    return env, user, env.login(EMAIL)


def test_the_cache_is_on_by_default_in_the_facade(make_env, verifications) -> None:
    env, user, result = logged_in(make_env)
    assert env.auth._kernel.config.token_cache_size == 10_000
    for _ in range(3):
        assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    assert verifications.count(result.access_token) == 1


def test_revocation_is_immediate_even_for_a_cached_token(make_env, verifications) -> None:
    env, _user, result = logged_in(make_env)
    env.auth.auth.get_user_from_token(result.access_token)
    env.auth.auth.logout(result.session_id)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)
    assert verifications.count(result.access_token) == 1  # the cache answered; the session check refused


def test_blocking_is_immediate_even_for_a_cached_token(make_env) -> None:
    env, user, result = logged_in(make_env)
    env.auth.auth.get_user_from_token(result.access_token)
    env.auth.user.block(user.id)
    with pytest.raises(InvalidToken):
        env.auth.auth.authenticate(result.access_token)


def test_a_cached_token_is_refused_through_the_facade_once_it_expires(make_env) -> None:
    env, _user, result = logged_in(make_env, jwt_leeway=timedelta(0))
    env.auth.auth.get_user_from_token(result.access_token)
    env.clock.advance(minutes=15)
    with pytest.raises(InvalidToken):
        env.auth.auth.get_user_from_token(result.access_token)


# -- the lean shape ---------------------------------------------------------------------------------------


def test_the_lean_token_keeps_the_seed_claims_and_leaves_out_sub_and_sid() -> None:
    lean, full = codec(claims="lean"), codec()
    lean_token, full_token = mint(lean), mint(full)
    raw = claims_of(lean_token)
    assert "sub" not in raw and "sid" not in raw
    assert (raw["userId"], raw["sessionId"], raw["email"]) == ("u-1", "s-1", EMAIL)
    assert {"iat", "exp", "iss", "aud", "jti"} <= set(raw)
    assert jwt.get_unverified_header(lean_token)["typ"] == "at+jwt"
    assert len(lean_token) < len(full_token)
    full_raw = claims_of(full_token)
    assert (full_raw["sub"], full_raw["sid"], full_raw["userId"], full_raw["sessionId"]) == ("u-1", "s-1", "u-1", "s-1")


def test_either_shape_decodes_to_the_same_claims_under_either_setting() -> None:
    lean, full = codec(claims="lean", cache_size=0), codec(cache_size=0)
    for token in (mint(lean), mint(full)):
        for c in (lean, full):
            assert c.decode(token, NOW) == AccessClaims("u-1", "s-1", EMAIL, NOW, NOW + TTL)


def sign(payload: dict) -> str:
    kid = jwt.get_unverified_header(mint(codec()))["kid"]
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256", headers={"typ": "at+jwt", "kid": kid})


@pytest.mark.parametrize(
    "change",
    [
        {"drop": ("sub",)},
        {"drop": ("sid",)},
        {"drop": ("sub", "sid", "userId")},
        {"drop": ("sub", "sid", "sessionId")},
        {"set": {"userId": "u-2"}},
        {"set": {"sessionId": "s-2"}},
        {"drop": ("sub", "sid"), "set": {"userId": 7}},
        {"drop": ("sub", "sid"), "set": {"sessionId": ""}},
    ],
)
def test_a_token_of_neither_shape_or_with_disagreeing_ids_is_refused(change) -> None:
    payload = claims_of(mint(codec()))
    for name in change.get("drop", ()):
        payload.pop(name)
    payload.update(change.get("set", {}))
    c = codec()
    with pytest.raises(InvalidToken):
        c.decode(sign(payload), NOW)
    assert c.cached_count() == 0


def test_the_facade_issues_and_accepts_lean_tokens(make_env) -> None:
    env, user, result = logged_in(make_env, access_token_claims="lean")
    assert "sub" not in claims_of(result.access_token)
    assert env.auth.auth.get_user_from_token(result.access_token).id == user.id
    refreshed = env.auth.auth.refresh(result.refresh_token)
    assert "sid" not in claims_of(refreshed.access_token)
    assert env.auth.auth.get_user_from_token(refreshed.access_token).id == user.id


# -- configuration ----------------------------------------------------------------------------------------


def env_vars(**extra: str) -> dict[str, str]:
    config = test_config()
    return {"AUTH_JWT_SECRET": config.jwt_secret, "AUTH_REFRESH_SECRET": config.refresh_secret, **extra}


def test_defaults_are_a_cache_of_ten_thousand_and_the_full_shape() -> None:
    config = AuthConfig.from_mapping(env_vars())
    assert (config.token_cache_size, config.access_token_claims) == (10_000, "full")


def test_the_environment_sets_the_cache_size_and_the_claim_shape() -> None:
    config = AuthConfig.from_mapping(env_vars(AUTH_TOKEN_CACHE_SIZE="0", AUTH_ACCESS_TOKEN_CLAIMS="Lean"))
    assert (config.token_cache_size, config.access_token_claims) == (0, "lean")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_TOKEN_CACHE_SIZE", "-1"),
        ("AUTH_TOKEN_CACHE_SIZE", "many"),
        ("AUTH_TOKEN_CACHE_SIZE", "2000000"),
        ("AUTH_ACCESS_TOKEN_CLAIMS", "short"),
    ],
)
def test_a_bad_cache_size_or_claim_shape_in_the_environment_is_refused(name, value) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AuthConfig.from_mapping(env_vars(**{name: value}))
    assert caught.value.variable == name


@pytest.mark.parametrize("kw", [{"token_cache_size": 1.5}, {"token_cache_size": True}, {"access_token_claims": "none"}])
def test_a_bad_cache_size_or_claim_shape_in_code_is_refused(kw) -> None:
    with pytest.raises(ConfigurationError):
        test_config(**kw)
