"""Device tokens (mindmesh_auth/core/devices.py): exact bounds, exact errors, rotation expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mindmesh_auth import ValidationError
from mindmesh_auth.core.crypto import KeyRing
from mindmesh_auth.core.devices import DEVICE_TOKEN_MAX_LENGTH, Device, issue_device_token, read_device_token
from mindmesh_auth.testing import SeededRandomness

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
TTL = timedelta(days=90)
SECRET = "dv-cur-Hq7wN2pVx9LkR4mZ8cT3bF6sD1gJyE5u"
OLD_SECRET = "dv-old-Ub3Kd8YsW0aMe5Qj1Xn6Po9Gv2Ci7Ht4"
HASH = "$2b$04$" + "a" * 53  # the account's password hash the token is bound to


def test_a_token_reads_back_as_its_user_and_device() -> None:
    keys = KeyRing(SECRET)
    token = issue_device_token(keys, SeededRandomness(1), "user-1", NOW, TTL, password_hash=HASH)
    device_id = token.split(".")[2]
    assert read_device_token(keys, token, NOW, password_hash=HASH) == Device("user-1", device_id)


def test_a_token_ends_exactly_at_its_expiry() -> None:
    keys = KeyRing(SECRET)
    token = issue_device_token(keys, SeededRandomness(2), "user-1", NOW, TTL, password_hash=HASH)
    until = NOW + TTL
    assert read_device_token(keys, token, until - timedelta(seconds=1), password_hash=HASH) is not None
    assert read_device_token(keys, token, until, password_hash=HASH) is None


def test_the_length_bound_is_inclusive_and_longer_is_a_validation_error() -> None:
    keys = KeyRing(SECRET)
    at_bound = "x" * DEVICE_TOKEN_MAX_LENGTH
    assert read_device_token(keys, at_bound, NOW, password_hash=HASH) is None  # malformed, not an error
    with pytest.raises(ValidationError) as info:
        read_device_token(keys, at_bound + "x", NOW, password_hash=HASH)
    assert info.value.field == "device_token"
    assert info.value.message == "The device token must be a string."


def test_a_non_string_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        read_device_token(KeyRing(SECRET), 12345, NOW, password_hash=HASH)
    assert (info.value.field, info.value.message) == ("device_token", "The device token must be a string.")
    assert read_device_token(KeyRing(SECRET), None, NOW, password_hash=HASH) is None


def test_a_token_of_a_previous_secret_works_until_the_previous_keys_expire() -> None:
    expire_at = NOW + timedelta(days=1)
    token = issue_device_token(KeyRing(OLD_SECRET), SeededRandomness(3), "user-1", NOW, TTL, password_hash=HASH)
    rotated = KeyRing(SECRET, previous=(OLD_SECRET,), previous_expire_at=expire_at)
    assert read_device_token(rotated, token, NOW, password_hash=HASH) is not None
    assert read_device_token(rotated, token, expire_at, password_hash=HASH) is None
    # A forged signature or another account's name is refused.
    user, device, until, signature = token.split(".")[1:]
    assert read_device_token(rotated, f"v2.user-2.{device}.{until}.{signature}", NOW, password_hash=HASH) is None
    assert read_device_token(rotated, f"v2.{user}.{device}.{until}.{'0' * 64}", NOW, password_hash=HASH) is None


def test_a_token_is_bound_to_the_password_hash_it_was_issued_under() -> None:
    keys = KeyRing(SECRET)
    token = issue_device_token(keys, SeededRandomness(4), "user-1", NOW, TTL, password_hash=HASH)
    assert token.startswith("v2.user-1.")
    assert read_device_token(keys, token, NOW, password_hash=HASH) is not None
    assert read_device_token(keys, token, NOW, password_hash=HASH[:-1] + "b") is None  # the password changed
    assert read_device_token(keys, token, NOW, password_hash=None) is None  # no such account
    assert read_device_token(keys, "v1" + token[2:], NOW, password_hash=HASH) is None  # the old format
    with pytest.raises(ValidationError):  # a bad type is refused even when the account is unknown
        read_device_token(keys, 12345, NOW, password_hash=None)
