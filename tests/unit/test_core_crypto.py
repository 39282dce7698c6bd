"""Crypto helpers: code range, token encoding, ids, the secret comparison, purpose-separated keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

import pytest

from mindmesh_auth import MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.crypto import KeyRing, constant_time_equals, new_id, random_digits, random_token
from mindmesh_auth.core.ports import Randomness
from mindmesh_auth.testing import FakeClock, Outbox, SeededRandomness, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
SECRET = "crypto-test-Ux6Nv1Qb8Ke3Wz5Lr9Tm2Yf7Hs4Dj0Pa"
PURPOSES = ("refresh", "otp", "reset", "successor")
URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


class RecordingRandomness(SeededRandomness):
    """Seeded randomness that remembers each ``randbelow`` bound and can force its next results."""

    def __init__(self, forced: list[int] | None = None) -> None:
        super().__init__(7)
        self.bounds: list[int] = []
        self.forced = list(forced or [])

    def randbelow(self, n: int) -> int:
        self.bounds.append(n)
        if self.forced:
            return self.forced.pop(0)
        return super().randbelow(n)


class FixedBytes(Randomness):
    """Hands out the given bytes (repeated/truncated to the requested length)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requested: list[int] = []

    def token_bytes(self, n: int) -> bytes:
        self.requested.append(n)
        return (self.data * (n // len(self.data) + 1))[:n]

    def randbelow(self, n: int) -> int:
        raise AssertionError("not used")


def unpad_b64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def purpose_key(secret: str, purpose: str) -> bytes:
    """The documented key derivation: HMAC-SHA256(secret, "mindmesh-auth/<purpose>/v1")."""
    return hmac.new(secret.encode(), f"mindmesh-auth/{purpose}/v1".encode(), hashlib.sha256).digest()


# -- random_digits: the whole code space ------------------------------------------


def test_random_digits_draws_below_ten_to_the_number_of_digits() -> None:
    rng = RecordingRandomness()
    random_digits(rng, 6)
    random_digits(rng, 3)
    assert rng.bounds == [1_000_000, 1_000]


@pytest.mark.parametrize(("drawn", "expected"), [(0, "000000"), (42, "000042"), (60, "000060"), (999_999, "999999")])
def test_random_digits_keeps_leading_zeros_and_covers_the_top_of_the_range(drawn: int, expected: str) -> None:
    assert random_digits(RecordingRandomness(forced=[drawn]), 6) == expected


def test_login_codes_are_drawn_from_the_full_six_digit_range() -> None:
    rng = RecordingRandomness()
    outbox = Outbox()
    with MindmeshAuth(store=MemoryStore(), mailer=outbox, config=test_config(), clock=FakeClock(), randomness=rng) as auth:
        auth.auth.register(EMAIL, PASSWORD)
        rng.bounds.clear()
        auth.auth.login(EMAIL, PASSWORD)
        assert rng.bounds == [1_000_000]
        code = outbox.last_code(EMAIL)
        assert re.fullmatch(r"[0-9]{6}", code)


def test_the_largest_possible_login_code_is_mailed_and_accepted() -> None:
    rng = RecordingRandomness()
    outbox = Outbox()
    with MindmeshAuth(store=MemoryStore(), mailer=outbox, config=test_config(), clock=FakeClock(), randomness=rng) as auth:
        user = auth.auth.register(EMAIL, PASSWORD)
        rng.forced = [999_999]
        auth.auth.login(EMAIL, PASSWORD)
        assert outbox.last_code(EMAIL) == "999999"
        assert auth.auth.verify_otp(EMAIL, "999999").user.id == user.id


# -- random_token / new_id --------------------------------------------------------


def test_random_token_is_url_safe_unpadded_and_round_trips_to_the_random_bytes() -> None:
    data = bytes([0xFB, 0xEF, 0xBE, 0x00, 0x00, 0x17, 0xFF])
    rng = FixedBytes(data)
    token = random_token(rng, 7)
    assert rng.requested == [7]
    assert URLSAFE.fullmatch(token)
    assert "=" not in token and "+" not in token and "/" not in token
    assert unpad_b64(token) == data


@pytest.mark.parametrize("data", [b"\x00\x00\x17", b"\x00\x00\x17\x00\x00\x17", b"\xff\xff\xd7"])
def test_random_token_keeps_every_character_of_the_encoding(data: bytes) -> None:
    # These bytes encode to tokens ending in "X" / "-X": nothing but padding may be stripped.
    token = random_token(FixedBytes(data), len(data))
    assert len(token) == len(data) * 4 // 3
    assert unpad_b64(token) == data


def test_random_token_length_follows_the_number_of_bytes() -> None:
    assert len(random_token(FixedBytes(b"\x01"), 96)) == 128
    assert len(random_token(FixedBytes(b"\x01"), 32)) == 43
    assert len(random_token(FixedBytes(b"\x01"), 1)) == 2


def test_new_id_is_a_version_4_uuid_made_from_sixteen_random_bytes() -> None:
    rng = FixedBytes(bytes(range(16)))
    value = new_id(rng)
    assert rng.requested == [16]
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert new_id(FixedBytes(bytes(range(1, 17)))) != value
    assert new_id(FixedBytes(bytes(range(16)))) == value


# -- constant_time_equals -----------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("", "", True),
        ("é-secret", "é-secret", True),
        ("é-secret", "e-secret", False),
        ("é", b"\xc3\xa9", True),
        (b"\xc3\xa9", "é", True),
        (b"raw", b"raw", True),
        (b"raw", "RAW", False),
    ],
)
def test_constant_time_equals_compares_text_as_utf8(a, b, equal: bool) -> None:
    assert constant_time_equals(a, b) is equal


# -- KeyRing: purpose separation and the stored format -------------------------


def test_keyring_repr_hides_the_secret() -> None:
    ring = KeyRing(SECRET)
    assert repr(ring) == "KeyRing(<redacted>)"
    assert str(ring) == "KeyRing(<redacted>)"
    assert SECRET not in repr(ring)


def test_digest_of_the_same_parts_differs_for_every_purpose() -> None:
    ring = KeyRing(SECRET)
    digests = {ring.digest(purpose, "same", "parts") for purpose in PURPOSES}
    assert len(digests) == len(PURPOSES)


def test_digest_is_a_deterministic_hex_sha256_depending_on_the_secret() -> None:
    a, b = KeyRing(SECRET), KeyRing(SECRET)
    value = a.digest("otp", "x")
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert b.digest("otp", "x") == value
    assert KeyRing(SECRET + "!").digest("otp", "x") != value


def test_digest_keeps_the_boundaries_between_parts() -> None:
    ring = KeyRing(SECRET)
    assert ring.digest("otp", "ab", "c") != ring.digest("otp", "a", "bc")
    assert ring.digest("otp", "abc") != ring.digest("otp", "ab", "c")
    assert ring.digest("otp", "", "abc") != ring.digest("otp", "abc")


def test_digest_refuses_an_unknown_purpose() -> None:
    with pytest.raises(KeyError):
        KeyRing(SECRET).digest("session", "x")


def test_digest_format_is_hmac_sha256_of_length_prefixed_utf8_parts() -> None:
    # Stored refresh hashes and code hashes depend on this exact format: a change
    # would sign everyone out on upgrade and kill every pending code.
    ring = KeyRing(SECRET)
    message = b"\x00\x00\x00\x02ab" + b"\x00\x00\x00\x02\xc3\xa9" + b"\x00\x00\x00\x00"
    expected = hmac.new(purpose_key(SECRET, "refresh"), message, hashlib.sha256).hexdigest()
    assert ring.digest("refresh", "ab", "é", "") == expected


def test_derive_token_format_is_counter_mode_hmac_sha512_of_the_seed() -> None:
    # Successor tokens must come out the same in every process and release that sees
    # the retry of a refresh inside the grace period.
    ring = KeyRing(SECRET)
    key = purpose_key(SECRET, "successor")
    blocks = b"".join(
        hmac.new(key, counter.to_bytes(4, "big") + "séed".encode(), hashlib.sha512).digest() for counter in (1, 2)
    )
    expected = base64.urlsafe_b64encode(blocks[:96]).rstrip(b"=").decode()
    assert ring.derive_token("successor", "séed", 96) == expected


def test_derive_token_is_deterministic_and_separated_by_purpose_seed_and_secret() -> None:
    ring = KeyRing(SECRET)
    token = ring.derive_token("successor", "seed", 96)
    assert ring.derive_token("successor", "seed", 96) == token
    assert KeyRing(SECRET).derive_token("successor", "seed", 96) == token
    assert ring.derive_token("successor", "seed2", 96) != token
    assert ring.derive_token("refresh", "seed", 96) != token
    assert KeyRing(SECRET + "!").derive_token("successor", "seed", 96) != token


def test_short_derived_tokens_still_depend_on_the_seed() -> None:
    ring = KeyRing(SECRET)
    tokens = {ring.derive_token("successor", f"seed-{i}", 3) for i in range(20)}
    assert len(tokens) == 20


@pytest.mark.parametrize(("n_bytes", "length"), [(96, 128), (64, 86), (65, 87), (32, 43), (3, 4), (1, 2)])
def test_derived_token_is_url_safe_unpadded_and_exactly_n_bytes(n_bytes: int, length: int) -> None:
    ring = KeyRing(SECRET)
    for i in range(40):
        token = ring.derive_token("successor", f"seed-{i}", n_bytes)
        assert URLSAFE.fullmatch(token)
        assert len(token) == length
        assert len(unpad_b64(token)) == n_bytes


def test_derived_token_never_repeats_a_block() -> None:
    raw = unpad_b64(KeyRing(SECRET).derive_token("successor", "seed", 128))
    assert raw[:64] != raw[64:]
