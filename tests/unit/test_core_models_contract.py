"""Value objects: User/profile contract, Session activity, secrets out of repr, UTC millisecond time."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from mindmesh_auth import MindmeshAuth, Session, TokenPair, User
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.models import OtpChallenge, ResetToken, RetiredRefreshToken
from mindmesh_auth.core.system import SystemClock, SystemRandomness
from mindmesh_auth.testing import Outbox, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def make_user(profile: object = None, **changes: object) -> User:
    fields: dict[str, object] = {
        "id": "u1",
        "email": EMAIL,
        "password_hash": "$2b$04$HASH-THAT-MUST-STAY-HIDDEN",
        "created_at": T0,
        "updated_at": T0,
        "profile": profile,
    }
    fields.update(changes)
    return User(**fields)  # type: ignore[arg-type]


# -- User and its profile ----------------------------------------------------------------------


def test_public_dict_is_the_user_without_its_password_hash(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD, first_name="Ada", plan="pro")
    public = user.public_dict()
    assert public == {
        "id": user.id,
        "email": EMAIL,
        "email_verified": False,
        "blocked": False,
        "created_at": "2026-01-01T12:00:00+00:00",
        "updated_at": "2026-01-01T12:00:00+00:00",
        "first_name": "Ada",
        "plan": "pro",
    }
    assert user.password_hash not in json.dumps(public)


def test_public_dict_follows_the_users_state(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.clock.advance(minutes=3)
    env.auth.user.block(user.id)
    env.auth.user.mark_email_verified(user.id)
    public = env.auth.user.get_by_id(user.id).public_dict()
    assert (public["blocked"], public["email_verified"]) == (True, True)
    assert public["created_at"] == "2026-01-01T12:00:00+00:00"
    assert public["updated_at"] == "2026-01-01T12:03:00+00:00"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.__setitem__("plan", "free"),
        lambda p: p.__delitem__("plan"),
        lambda p: p.clear(),
        lambda p: p.pop("plan"),
        lambda p: p.popitem(),
        lambda p: p.setdefault("extra", 1),
        lambda p: p.update(plan="free"),
        lambda p: p.__ior__({"plan": "free"}),
    ],
    ids=["setitem", "delitem", "clear", "pop", "popitem", "setdefault", "update", "ior"],
)
def test_a_profile_given_as_a_plain_dict_becomes_read_only(mutate) -> None:
    given = {"plan": "pro"}
    user = make_user(profile=given)
    with pytest.raises(TypeError, match=r"^User\.profile is read-only$"):
        mutate(user.profile)
    assert dict(user.profile) == {"plan": "pro"}
    given["plan"] = "changed-after-construction"
    assert user.plan == "pro"


def test_a_user_without_profile_has_an_empty_read_only_profile() -> None:
    user = make_user(profile=None)
    assert dict(user.profile) == {}
    assert user.public_dict()["email"] == EMAIL
    with pytest.raises(TypeError):
        user.profile["x"] = 1  # type: ignore[index]


def test_profile_fields_read_as_attributes_but_underscore_names_never_do() -> None:
    user = make_user(profile={"nickname": "ada", "_internal": "hidden"})
    assert user.nickname == "ada"
    with pytest.raises(AttributeError):
        _ = user._internal
    assert not hasattr(user, "_internal")


def test_an_unknown_attribute_error_names_the_attribute() -> None:
    user = make_user(profile={"nickname": "ada"})
    with pytest.raises(AttributeError, match=r"^favourite_colour$"):
        _ = user.favourite_colour
    with pytest.raises(AttributeError, match=r"^_secret$"):
        _ = user._secret


def test_a_user_whose_fields_are_not_set_yet_raises_attribute_error_not_recursion() -> None:
    blank = User.__new__(User)  # what unpickling starts from
    with pytest.raises(AttributeError, match=r"^profile$"):
        _ = blank.profile
    with pytest.raises(AttributeError):
        _ = blank.nickname


def test_users_with_the_same_profile_in_any_order_are_equal_and_hash_equal() -> None:
    first = make_user(profile={"a": 1, "b": 1, "c": "x"})
    second = make_user(profile={"c": "x", "b": 1, "a": 1})
    assert first == second
    assert hash(first) == hash(second)
    assert hash(first.profile) == hash(second.profile)
    assert len({first, second}) == 1


def test_users_with_different_profiles_hash_differently() -> None:
    assert hash(make_user(profile={"plan": "pro"}).profile) != hash(make_user(profile={"plan": "free"}).profile)
    assert hash(make_user(profile={"plan": "pro"})) != hash(make_user(profile={"tier": "pro"}))


def test_deepcopy_keeps_shared_references_shared() -> None:
    tags = ["a", "b"]
    user = make_user(profile={"tags": tags})
    user_copy, tags_copy = copy.deepcopy((user, tags))
    assert user_copy == user
    assert user_copy.profile["tags"] is tags_copy
    assert tags_copy is not tags


def test_a_pickled_user_keeps_a_read_only_profile() -> None:
    user = make_user(profile={"plan": "pro"})
    clone = pickle.loads(pickle.dumps(user))
    assert clone == user and clone.plan == "pro"
    with pytest.raises(TypeError):
        clone.profile["plan"] = "free"


# -- Session.is_active -------------------------------------------------------------------------


def test_a_session_is_active_until_just_before_its_expiry(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    session = env.auth.sessions.get(env.login(EMAIL).session_id)
    assert session.expires_at == session.created_at + timedelta(days=7)
    assert session.is_active(session.created_at)
    assert session.is_active(session.expires_at - timedelta(milliseconds=1))
    assert not session.is_active(session.expires_at)
    assert not session.is_active(session.expires_at + timedelta(days=1))


def test_a_revoked_session_is_inactive_even_before_its_expiry(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.auth.auth.logout(result.session_id)
    session = env.auth.sessions.get(result.session_id)
    assert session.revoked_at is not None
    assert not session.is_active(session.created_at)


# -- secrets never in repr ---------------------------------------------------------------------


def test_reprs_never_show_hashes_or_tokens() -> None:
    secret = "SECRET-VALUE-THAT-MUST-NOT-APPEAR"
    objects = [
        make_user(password_hash=secret),
        Session(id="s1", user_id="u1", refresh_hash=secret, created_at=T0, expires_at=T0, last_active_at=T0),
        OtpChallenge(id="c1", email=EMAIL, purpose="login", code_hash=secret, created_at=T0, expires_at=T0),
        ResetToken(id="r1", user_id="u1", token_hash=secret, created_at=T0, expires_at=T0),
        RetiredRefreshToken(token_hash=secret, session_id="s1", rotated_at=T0, expires_at=T0),
        TokenPair(access_token=secret, refresh_token=secret + "-2", session_id="s1", expires_in=900),
    ]
    for obj in objects:
        assert secret not in repr(obj), type(obj).__name__
        assert secret not in str(obj), type(obj).__name__


def test_a_login_result_repr_hides_both_tokens(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    text = repr(result)
    assert result.access_token not in text and result.refresh_token not in text
    assert result.session_id in text


# -- time: UTC, millisecond precision ----------------------------------------------------------


@pytest.mark.parametrize(("microsecond", "stored"), [(123999, 123000), (999999, 999000), (1000, 1000), (999, 0), (0, 0)])
def test_stored_times_are_truncated_to_the_millisecond(env, microsecond: int, stored: int) -> None:
    env.clock.set(datetime(2026, 3, 4, 5, 6, 7, microsecond, tzinfo=timezone.utc))
    user = env.auth.auth.register(EMAIL, PASSWORD)
    assert user.created_at == datetime(2026, 3, 4, 5, 6, 7, stored, tzinfo=timezone.utc)
    assert env.auth.audit.query()[0].occurred_at == user.created_at


def test_the_system_clock_is_timezone_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_without_a_clock_the_facade_stamps_utc_milliseconds() -> None:
    with MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=test_config()) as auth:
        user = auth.auth.register(EMAIL, PASSWORD)
    assert user.created_at.utcoffset() == timedelta(0)
    assert user.created_at.microsecond % 1000 == 0


@pytest.mark.parametrize("n", [1, 16, 48])
def test_system_randomness_returns_the_requested_number_of_bytes(n: int) -> None:
    randomness = SystemRandomness()
    first, second = randomness.token_bytes(n), randomness.token_bytes(n)
    assert len(first) == len(second) == n
    if n >= 16:
        assert first != second


def test_system_randomness_draws_below_the_bound() -> None:
    randomness = SystemRandomness()
    draws = {randomness.randbelow(3) for _ in range(200)}
    assert draws == {0, 1, 2}
