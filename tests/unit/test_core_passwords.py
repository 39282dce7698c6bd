"""Password policy and hashing: bounds, types, no truncation, NFKC, legacy npm hashes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import bcrypt
import pytest

from mindmesh_auth import AuditEventType, InvalidCredentials, InvalidPassword, User
from mindmesh_auth.core import passwords as passwords_module

PASSWORD = "correct horse battery staple"


def register(env, email: str = "ada@example.com", password: str = PASSWORD) -> User:
    return env.auth.auth.register(email, password)


@contextmanager
def bcrypt_calls() -> Iterator[list[str]]:
    """Every bcrypt hash or check the core makes inside the block, by name (calls go through)."""
    calls: list[str] = []

    def observed(name: str):
        real = getattr(passwords_module.bcrypt, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    with (
        mock.patch.object(passwords_module.bcrypt, "hashpw", observed("hashpw")),
        mock.patch.object(passwords_module.bcrypt, "checkpw", observed("checkpw")),
    ):
        yield calls


def test_password_shorter_than_8_is_refused_by_default(env) -> None:
    with pytest.raises(InvalidPassword):
        register(env, password="1234567")
    assert env.auth.user.get_by_email("ada@example.com") is None


def test_password_of_8_characters_is_accepted_by_default(env) -> None:
    register(env, password="12345678")
    assert env.login("ada@example.com", "12345678").user.email == "ada@example.com"


def test_minimum_length_is_configurable(make_env) -> None:
    env = make_env(password_min_length=12)
    with pytest.raises(InvalidPassword):
        register(env, password="elevenchars")
    register(env, password="twelve chars")


def test_password_of_1024_characters_is_accepted(env) -> None:
    register(env, password="p" * 1024)
    assert env.login("ada@example.com", "p" * 1024).user.email == "ada@example.com"


def test_huge_password_is_refused_before_hashing_on_register(env) -> None:
    with bcrypt_calls() as calls:
        with pytest.raises(InvalidPassword):
            register(env, password="p" * 10_000)
        assert calls == []  # refused before any bcrypt work
        register(env, email="bob@example.com")
        assert calls == ["hashpw"]  # the observer does see a real registration's hash
    assert env.auth.user.get_by_email("ada@example.com") is None


def test_huge_password_is_refused_before_hashing_on_login(env) -> None:
    register(env)
    with bcrypt_calls() as calls:
        with pytest.raises(InvalidPassword):
            env.auth.auth.login("ada@example.com", "p" * 1025)
        assert calls == []  # no check against the stored hash, not even a dummy one
        # Not even counted as a failed login: the input was refused before any check.
        assert env.auth.audit.query(types=[AuditEventType.LOGIN_FAILED]) == []
        assert len(env.outbox) == 0
        with pytest.raises(InvalidCredentials):
            env.auth.auth.login("ada@example.com", "p" * 1024)
        assert calls == ["checkpw"]  # the observer does see a real check


@pytest.mark.parametrize("bad", [b"correct horse battery", None, {"password": "x" * 10}, ["x" * 10], 12345678])
def test_non_string_password_is_invalid_password_on_register(env, bad) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.auth.register("ada@example.com", bad)
    assert env.auth.user.get_by_email("ada@example.com") is None


@pytest.mark.parametrize("bad", [b"correct horse battery staple", None, {"p": 1}, [PASSWORD]])
def test_non_string_password_is_invalid_password_on_login(env, bad) -> None:
    register(env)
    with pytest.raises(InvalidPassword):
        env.auth.auth.login("ada@example.com", bad)
    assert len(env.outbox) == 0


@pytest.mark.parametrize("bad", ["        ", "password\x00with-nul", "line\nbreak-pass"])
def test_blank_or_control_character_passwords_are_refused(env, bad: str) -> None:
    with pytest.raises(InvalidPassword):
        register(env, password=bad)


def test_passwords_longer_than_72_bytes_are_not_truncated(env) -> None:
    common = "a" * 80
    registered, other = common + "X" * 20, common + "Y" * 20
    register(env, password=registered)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("ada@example.com", other)
    assert env.login("ada@example.com", registered).user.email == "ada@example.com"


def test_multibyte_passwords_differing_after_byte_72_are_not_truncated(env) -> None:
    common = "é" * 40  # 80 bytes in UTF-8
    register(env, password=common + "1")
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("ada@example.com", common + "2")


@pytest.mark.parametrize("password", ["pässwörd-ünïcödé", "🔐🔑🗝️ emoji secret 🙈", "密码是很长的密码啊", "Ελληνικά-κωδικός"])
def test_unicode_and_emoji_passwords_work(env, password: str) -> None:
    register(env, password=password)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("ada@example.com", password + "!")
    assert env.login("ada@example.com", password).user.email == "ada@example.com"


def test_nfkc_ligature_password_logs_in_with_plain_letters(env) -> None:
    register(env, password="\ufb01nancial-plan-2024")  # "ﬁ" ligature
    assert env.login("ada@example.com", "financial-plan-2024").user.email == "ada@example.com"


def test_nfkc_plain_password_logs_in_with_the_ligature(env) -> None:
    register(env, password="financial-plan-2024")
    assert env.login("ada@example.com", "\ufb01nancial-plan-2024").user.email == "ada@example.com"


def test_nfkc_composed_and_decomposed_accents_are_the_same_password(env) -> None:
    register(env, password="caf\u00e9-au-lait")
    assert env.login("ada@example.com", "cafe\u0301-au-lait").user.email == "ada@example.com"


def test_new_hashes_use_the_prefixed_prehash_format(env) -> None:
    user = register(env)
    assert user.password_hash.startswith("mm1$$2")
    assert PASSWORD not in user.password_hash


def _legacy_user(env, password_hash: str, email: str = "legacy@example.com") -> User:
    now = env.clock.now()
    user = User(id=str(uuid.uuid4()), email=email, password_hash=password_hash, created_at=now, updated_at=now)
    return env.store.users.add(user)


@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
def test_legacy_npm_bcrypt_hash_logs_in_and_is_upgraded(env, prefix: bytes) -> None:
    legacy = bcrypt.hashpw(b"password123", bcrypt.gensalt(4, prefix=prefix)).decode()
    assert legacy.startswith("$" + prefix.decode() + "$")
    user = _legacy_user(env, legacy)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("legacy@example.com", "password124")
    assert env.store.users.get(user.id).password_hash == legacy  # a failure upgrades nothing
    result = env.login("legacy@example.com", "password123")
    assert result.user.id == user.id
    upgraded = env.store.users.get(user.id).password_hash
    assert upgraded.startswith("mm1$")
    # The upgraded hash still accepts the same password and still refuses others.
    env.clock.advance(minutes=11)
    assert env.login("legacy@example.com", "password123").user.id == user.id
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("legacy@example.com", "password124")


def test_legacy_hash_set_with_set_password_hash_works(env) -> None:
    user = register(env)
    legacy = bcrypt.hashpw(b"password123", bcrypt.gensalt(4, prefix=b"2a")).decode()
    env.store.users.set_password_hash(user.id, legacy, env.clock.now())
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("ada@example.com", PASSWORD)
    assert env.login("ada@example.com", "password123").user.id == user.id
    assert env.store.users.get(user.id).password_hash.startswith("mm1$")


def test_legacy_hash_refuses_passwords_longer_than_72_bytes_instead_of_truncating(env) -> None:
    long_password = "b" * 100
    legacy = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(4, prefix=b"2b")).decode()
    _legacy_user(env, legacy)
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("legacy@example.com", long_password)


def test_garbage_stored_hash_fails_closed(env) -> None:
    _legacy_user(env, "not-a-hash-at-all")
    with pytest.raises(InvalidCredentials):
        env.auth.auth.login("legacy@example.com", "anything-at-all")


@pytest.mark.parametrize("password", ["alice.smith", "ALICE.SMITH", "alice.smith@example.com"])
def test_password_equal_to_the_email_or_its_local_part_is_refused(env, password: str) -> None:
    with pytest.raises(InvalidPassword):
        env.auth.auth.register("alice.smith@example.com", password)
    assert env.auth.user.get_by_email("alice.smith@example.com") is None


def test_password_change_also_refuses_the_email_local_part(env) -> None:
    user = env.auth.auth.register("alice.smith@example.com", PASSWORD)
    with pytest.raises(InvalidPassword):
        env.auth.password.change(user.id, PASSWORD, "alice.smith")
