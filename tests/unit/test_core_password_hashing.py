"""Password hashes: broken stored hashes fail closed, the 72-byte legacy boundary, rehash on login."""

from __future__ import annotations

import uuid
from unittest import mock

import bcrypt
import pytest

from mindmesh_auth import AuditEventType, InvalidCredentials, InvalidPassword, MindmeshAuth, User
from mindmesh_auth.core import passwords as passwords_module
from mindmesh_auth.core.passwords import PasswordHasher
from mindmesh_auth.testing import test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def add_user(env, password_hash: str, email: str = EMAIL) -> User:
    now = env.clock.now()
    user = User(id=str(uuid.uuid4()), email=email, password_hash=password_hash, created_at=now, updated_at=now)
    return env.store.users.add(user)


def stored_hash(env, user: User) -> str:
    return env.store.users.get(user.id).password_hash


def legacy_hash(password: str | bytes, rounds: int = 4, prefix: bytes = b"2b") -> str:
    raw = password.encode() if isinstance(password, str) else password
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds, prefix=prefix)).decode()


def rebuilt(env, **overrides) -> MindmeshAuth:
    """A second facade on the same store and clock (a redeploy with another config)."""
    auth = MindmeshAuth(store=env.store, mailer=env.outbox, config=test_config(**overrides), clock=env.clock)
    return auth


def cost_of(password_hash: str) -> int:
    assert password_hash.startswith("mm1$$2b$")
    return int(password_hash.split("$")[3])


# -- stored hashes with a valid prefix and a broken body ---------------------------


@pytest.mark.parametrize(
    "broken",
    [
        "$2b$04$tooshort",
        "$2a$04$tooshort",
        "$2y$04$",
        "mm1$$2b$04$tooshort",
        "mm1$$2b$04$",
        "mm1$",
        "mm1$not-bcrypt-at-all",
    ],
)
@pytest.mark.parametrize("password", [PASSWORD, "tooshort", ""])
def test_a_broken_stored_hash_refuses_every_password(env, broken: str, password: str) -> None:
    user = add_user(env, broken)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, password)
    assert len(env.outbox) == 0
    failed = env.auth.audit.query(types=[AuditEventType.LOGIN_FAILED])
    assert [(e.user_id, e.reason) for e in failed] == [(user.id, "invalid_credentials")]
    assert stored_hash(env, user) == broken  # nothing is "upgraded" from a failed check


def test_a_broken_hash_set_on_an_existing_account_locks_the_old_password_out(env) -> None:
    user = env.auth.auth.register(EMAIL, PASSWORD)
    env.store.users.set_password_hash(user.id, "$2b$04$tooshort", env.clock.now())
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, PASSWORD)


# -- legacy (npm) hashes: bcrypt reads 72 bytes, never more ------------------------


@pytest.mark.parametrize("password", ["a" * 72, "é" * 36, "x" * 70 + "é"])
def test_a_legacy_hash_of_a_password_of_exactly_72_bytes_logs_in(env, password: str) -> None:
    assert len(password.encode()) == 72
    user = add_user(env, legacy_hash(password))
    assert env.login(EMAIL, password).user.id == user.id
    assert stored_hash(env, user).startswith("mm1$")


def test_a_legacy_hash_refuses_a_73_byte_password_even_if_its_first_72_bytes_match(env) -> None:
    password = "a" * 72
    user = add_user(env, legacy_hash(password))
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, password + "a")
    assert stored_hash(env, user).startswith("$2b$")
    assert env.login(EMAIL, password).user.id == user.id


def test_a_73_byte_password_is_refused_even_by_a_bcrypt_that_truncates_silently(env) -> None:
    # bcrypt 4.x (inside our supported range) truncates to 72 bytes instead of raising:
    # the 72-byte cut-off must then be ours, not the library's.
    real_checkpw = bcrypt.checkpw

    def truncating_checkpw(password: bytes, hashed: bytes) -> bool:
        return real_checkpw(password[:72], hashed)

    password = "a" * 72
    user = add_user(env, legacy_hash(password))
    with mock.patch.object(passwords_module.bcrypt, "checkpw", truncating_checkpw):
        for longer in (password + "a", password + "aa", password + "a" * 100):
            with pytest.raises(InvalidCredentials):
                env.auth.auth.login(EMAIL, longer)
        assert env.login(EMAIL, password).user.id == user.id
    assert stored_hash(env, user).startswith("mm1$")


def test_a_legacy_hash_refuses_a_password_of_73_bytes_made_by_a_multibyte_character(env) -> None:
    password = "a" * 71 + "é"  # 73 bytes
    user = add_user(env, legacy_hash(password.encode()[:72]))
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login(EMAIL, password)
    assert stored_hash(env, user).startswith("$2b$")


# -- upgrades on a successful login ------------------------------------------------


@pytest.mark.parametrize("legacy_rounds", [4, 5, 6])
def test_a_legacy_hash_is_upgraded_to_the_prefixed_format_at_the_configured_cost(make_env, legacy_rounds: int) -> None:
    env = make_env(bcrypt_rounds=5)
    user = add_user(env, legacy_hash("password123", rounds=legacy_rounds))
    env.login(EMAIL, "password123")
    upgraded = stored_hash(env, user)
    assert cost_of(upgraded) == 5
    env.clock.advance(minutes=11)
    assert env.login(EMAIL, "password123").user.id == user.id
    assert stored_hash(env, user) == upgraded


def test_raising_bcrypt_rounds_upgrades_a_hash_on_its_next_login(make_env) -> None:
    env = make_env(bcrypt_rounds=4)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    assert cost_of(stored_hash(env, user)) == 4
    with rebuilt(env, bcrypt_rounds=5) as auth:
        auth.auth.login(EMAIL, PASSWORD)
        upgraded = stored_hash(env, user)
        assert cost_of(upgraded) == 5
        assert auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL)).user.id == user.id


def test_a_hash_at_the_configured_cost_is_not_rehashed(make_env) -> None:
    env = make_env(bcrypt_rounds=5)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    original = stored_hash(env, user)
    assert cost_of(original) == 5
    env.login(EMAIL, PASSWORD)
    assert stored_hash(env, user) == original


def test_lowering_bcrypt_rounds_rehashes_at_the_configured_cost(make_env) -> None:
    # A costlier hash than configured makes its logins slower than an unknown address's
    # (an account oracle, issue 11): the next successful login rehashes it at the configured cost.
    env = make_env(bcrypt_rounds=5)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    original = stored_hash(env, user)
    with rebuilt(env, bcrypt_rounds=4) as auth:
        auth.auth.login(EMAIL, PASSWORD)
        assert stored_hash(env, user) != original and cost_of(stored_hash(env, user)) == 4
        assert auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL)).user.id == user.id


def test_a_failed_login_never_rehashes(make_env) -> None:
    env = make_env(bcrypt_rounds=4)
    user = env.auth.auth.register(EMAIL, PASSWORD)
    original = stored_hash(env, user)
    with rebuilt(env, bcrypt_rounds=5) as auth:
        with pytest.raises(InvalidCredentials):
            auth.auth.login(EMAIL, PASSWORD + "!")
        assert stored_hash(env, user) == original


@pytest.mark.parametrize("stored", ["mm1$", "mm1$$2b$", "mm1$$2b$xx$abc", "mm1$garbage", "$2b$04$abc", "plain"])
def test_needs_rehash_upgrades_any_hash_it_cannot_read_the_cost_of(stored: str) -> None:
    assert PasswordHasher(4).needs_rehash(stored) is True


def test_needs_rehash_compares_the_cost_with_the_configured_rounds() -> None:
    stored = PasswordHasher(5).hash("password123")
    assert PasswordHasher(6).needs_rehash(stored) is True
    assert PasswordHasher(5).needs_rehash(stored) is False
    # A higher stored cost is rehashed down too: its logins would take longer than an unknown address's.
    assert PasswordHasher(4).needs_rehash(stored) is True


def test_password_hasher_repr_shows_the_cost_but_not_the_pepper() -> None:
    hasher = PasswordHasher(5, pepper="pepper-value-xyz")
    assert "5" in repr(hasher)
    assert "pepper-value-xyz" not in repr(hasher)


def test_a_hasher_without_a_pepper_is_the_unpeppered_hasher() -> None:
    stored = PasswordHasher(4, pepper="").hash("password123")
    assert PasswordHasher(4).verify("password123", stored) is True
    assert PasswordHasher(4, pepper="x").verify("password123", stored) is False


# -- the policy's user-visible messages ------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (None, "The password must be a string."),
        (b"bytes-password", "The password must be a string."),
        ("p" * 1025, "The password must be at most 1024 characters."),
        ("1234567", "The password must be at least 8 characters."),
        ("          ", "The password must not be blank."),
        ("password\x07bell", "The password must not contain control characters."),
        ("ada@example.com", "The password must not be your email address."),
        ("ADA", "The password must be at least 8 characters."),
    ],
)
def test_register_explains_why_a_password_is_refused(env, password, message: str) -> None:
    with pytest.raises(InvalidPassword) as info:
        env.auth.auth.register(EMAIL, password)
    assert info.value.message == message


def test_the_length_messages_follow_the_configured_bounds(make_env) -> None:
    env = make_env(password_min_length=10, password_max_length=20)
    with pytest.raises(InvalidPassword) as info:
        env.auth.auth.register(EMAIL, "123456789")
    assert info.value.message == "The password must be at least 10 characters."
    with pytest.raises(InvalidPassword) as info:
        env.auth.auth.register(EMAIL, "x" * 21)
    assert info.value.message == "The password must be at most 20 characters."
    env.auth.auth.register(EMAIL, "x" * 20)


def test_login_refuses_a_non_string_password_with_the_same_message(env) -> None:
    with pytest.raises(InvalidPassword) as info:
        env.auth.auth.login(EMAIL, 12345678)
    assert info.value.message == "The password must be a string."


def test_the_local_part_rule_uses_everything_before_the_last_at_sign(make_env) -> None:
    # An app's own canonicalizer may accept quoted local parts, which can hold an "@".
    env = make_env()
    with MindmeshAuth(
        store=env.store,
        mailer=env.outbox,
        config=test_config(),
        clock=env.clock,
        canonicalize_email=lambda value: value.lower(),
    ) as auth:
        with pytest.raises(InvalidPassword) as info:
            auth.auth.register('"firstname@lastname"@example.com', '"FirstName@LastName"')
        assert info.value.message == "The password must not be your email address."
        auth.auth.register('"firstname@lastname"@example.com', '"firstname')
