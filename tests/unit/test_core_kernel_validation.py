"""What every service checks the same way: emails, OTP purposes, identifiers, and the pepper.

The email checks are the kernel's own (before the app's canonicalizer runs), so
some tests plug in a canonicalizer that accepts everything to see them alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from mindmesh_auth import (
    AuditEventType,
    InvalidCredentials,
    InvalidEmail,
    MindmeshAuth,
    UserNotFound,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.errors import StorageConflict, StorageUnavailable
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
PEPPER_A = "pepper-a-Nt4Hc9Vz2Qk7Lw1Ps6Xe3Mb8Rg5Jd0Yu"
PEPPER_B = "pepper-b-Gf2Wy7Ke4Zo9Tr1Bx6Ln3Qs8Vc5Hm0Ja"


@pytest.fixture
def build() -> Iterator[Callable[..., MindmeshAuth]]:
    made: list[MindmeshAuth] = []

    def make(store: MemoryStore | None = None, clock: FakeClock | None = None, **kwargs) -> MindmeshAuth:
        canonicalize = kwargs.pop("canonicalize_email", None)
        mailer = kwargs.pop("mailer", None)
        auth = MindmeshAuth(
            store=store if store is not None else MemoryStore(),
            mailer=mailer if mailer is not None else Outbox(),
            config=test_config(**kwargs),
            clock=clock if clock is not None else FakeClock(),
            canonicalize_email=canonicalize,
        )
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.wait_for_background_work()


@pytest.fixture
def lenient(build) -> MindmeshAuth:
    """A facade whose canonicalizer accepts any string (lowercased): only the kernel's checks remain."""
    return build(canonicalize_email=str.lower)


def accepted(auth: MindmeshAuth, email: object) -> bool:
    try:
        auth.user.get_by_email(email)  # type: ignore[arg-type]
    except InvalidEmail:
        return False
    return True


# -- the pepper -------------------------------------------------------------------------


def test_password_pepper_is_part_of_every_password_hash(build) -> None:
    store, clock = MemoryStore(), FakeClock()
    first = build(store, clock, password_pepper=PEPPER_A)
    first.auth.register(EMAIL, PASSWORD)

    outbox_b = Outbox()
    other_pepper = build(store, clock, mailer=outbox_b, password_pepper=PEPPER_B)
    with pytest.raises(InvalidCredentials):
        other_pepper.auth.login(EMAIL, PASSWORD)
    no_pepper = build(store, clock)
    with pytest.raises(InvalidCredentials):
        no_pepper.auth.login(EMAIL, PASSWORD)

    outbox_a = Outbox()
    same_pepper = build(store, clock, mailer=outbox_a, password_pepper=PEPPER_A)
    same_pepper.auth.login(EMAIL, PASSWORD)
    result = same_pepper.auth.verify_otp(EMAIL, outbox_a.last_code(EMAIL))
    assert result.user.email == EMAIL


def test_password_hash_never_contains_the_pepper(build) -> None:
    auth = build(password_pepper=PEPPER_A)
    user = auth.auth.register(EMAIL, PASSWORD)
    stored = auth.store.users.get(user.id)
    assert stored is not None
    assert PEPPER_A not in stored.password_hash and PASSWORD not in stored.password_hash


def test_bcrypt_rounds_from_the_config_are_used_for_new_hashes(build) -> None:
    auth = build(bcrypt_rounds=5)
    user = auth.auth.register(EMAIL, PASSWORD)
    stored = auth.store.users.get(user.id)
    assert stored is not None and "$05$" in stored.password_hash


def test_password_length_bounds_from_the_config_apply(build) -> None:
    from mindmesh_auth import InvalidPassword

    auth = build(password_min_length=12, password_max_length=20)
    with pytest.raises(InvalidPassword):
        auth.auth.register(EMAIL, "elevenchars")
    with pytest.raises(InvalidPassword):
        auth.auth.register(EMAIL, "x" * 21)
    auth.auth.register(EMAIL, "twelve chars")
    auth.auth.register("bob@example.com", "y" * 20)


# -- emails -------------------------------------------------------------------------------


def test_email_of_254_characters_is_accepted_and_255_refused(lenient) -> None:
    assert accepted(lenient, "a" * 240 + "@example.com" + "xx")  # 254
    assert not accepted(lenient, "a" * 240 + "@example.com" + "xxx")  # 255


def test_real_254_character_address_registers_with_the_default_canonicalizer(build) -> None:
    auth = build()
    address = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(address) == 254
    assert auth.auth.register(address, PASSWORD).email == address
    with pytest.raises(InvalidEmail):
        auth.auth.register("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com", PASSWORD)


def test_empty_email_is_refused_even_by_a_lenient_canonicalizer(lenient) -> None:
    assert not accepted(lenient, "")


@pytest.mark.parametrize("value", [None, 42, b"ada@example.com", ["ada@example.com"]])
def test_non_string_email_is_invalid_email_with_its_own_message(lenient, value) -> None:
    with pytest.raises(InvalidEmail) as info:
        lenient.user.get_by_email(value)
    assert info.value.message == "The email address must be a string."
    assert info.value.field == "email"


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f"])
def test_control_characters_in_an_email_are_refused(lenient, ch) -> None:
    assert not accepted(lenient, f"ada{ch}x@example.com")
    assert not accepted(lenient, f"ada@example.com{ch}")


@pytest.mark.parametrize("ch", [" ", "~", "!", "é", "\u00a0"])
def test_characters_next_to_the_control_ranges_reach_the_canonicalizer(lenient, ch) -> None:
    assert accepted(lenient, f"ada{ch}x@example.com")


@pytest.mark.parametrize("ch", [",", ";", "<", ">"])
def test_list_and_angle_bracket_characters_in_an_email_are_refused(lenient, ch) -> None:
    assert not accepted(lenient, f"ada{ch}bob@example.com")
    assert not accepted(lenient, f"{ch}ada@example.com")


def test_refused_email_has_the_default_message(lenient) -> None:
    for bad in ("", "a\nb@example.com", "a<b@example.com", "a" * 255):
        with pytest.raises(InvalidEmail) as info:
            lenient.user.get_by_email(bad)
        assert info.value.message == "The email address is not valid."


def test_the_canonicalizer_decides_the_stored_form(build) -> None:
    auth = build(canonicalize_email=lambda value: value.strip().lower())
    user = auth.auth.register("  Ada@Example.COM", PASSWORD)
    assert user.email == "ada@example.com"
    assert auth.user.get_by_email("ADA@EXAMPLE.COM ").id == user.id


# -- OTP purposes --------------------------------------------------------------------------


def test_configured_purposes_matching_the_pattern_are_accepted(build) -> None:
    auth = build(otp_purposes=("login", "email_verify", "a" * 32, "z9_x"))
    auth.auth.register(EMAIL, PASSWORD)
    auth.otp.send(EMAIL, "a" * 32)
    auth.otp.send(EMAIL, "z9_x")
    assert [m.data["purpose"] for m in auth.mailer.messages] == ["a" * 32, "z9_x"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("purpose", ["a" * 33, "Upper", "9starts_with_digit", "_underscore", "has-dash", "sp ace", ""])
def test_configured_purposes_outside_the_pattern_are_still_refused(build, purpose) -> None:
    auth = build(otp_purposes=("login", "email_verify", purpose))
    auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(ValidationError) as info:
        auth.otp.send(EMAIL, purpose)
    assert info.value.field == "purpose"
    assert info.value.message == "Unknown OTP purpose."


@pytest.mark.parametrize("purpose", ["password_reset", None, 1, "login\n"])
def test_unconfigured_or_non_string_purpose_is_refused(build, purpose) -> None:
    auth = build()
    with pytest.raises(ValidationError) as info:
        auth.otp.send(EMAIL, purpose)
    assert (info.value.field, info.value.message) == ("purpose", "Unknown OTP purpose.")


def test_verify_otp_checks_the_purpose_too(build) -> None:
    auth = build()
    with pytest.raises(ValidationError) as info:
        auth.auth.verify_otp(EMAIL, "123456", "nope")
    assert info.value.field == "purpose"


# -- identifiers ---------------------------------------------------------------------------


def test_identifier_of_64_characters_is_looked_up_and_65_refused(build) -> None:
    auth = build()
    with pytest.raises(UserNotFound):
        auth.user.get_by_id("u" * 64)
    with pytest.raises(ValidationError) as info:
        auth.user.get_by_id("u" * 65)
    assert not isinstance(info.value, UserNotFound)
    assert info.value.field == "user_id"


@pytest.mark.parametrize("value", ["", None, 12, "a\x00b", "a\nb", "a\u2028b", "\x7f", "tab\t"])
def test_malformed_identifiers_are_refused_with_the_field_name(build, value) -> None:
    auth = build()
    with pytest.raises(ValidationError) as info:
        auth.user.get_by_id(value)
    assert info.value.field == "user_id"
    assert info.value.message == "user_id must be an identifier string."
    with pytest.raises(ValidationError) as info:
        auth.sessions.get(value)
    assert info.value.field == "session_id"
    assert info.value.message == "session_id must be an identifier string."


def test_a_single_printable_character_is_a_valid_identifier(build) -> None:
    auth = build()
    with pytest.raises(UserNotFound):
        auth.user.get_by_id("x")
    with pytest.raises(UserNotFound):
        auth.user.get_by_id("ünïcödé id")


def test_logout_validates_the_session_id(build) -> None:
    auth = build()
    with pytest.raises(ValidationError) as info:
        auth.auth.logout("s" * 65)
    assert info.value.field == "session_id"
    assert auth.auth.logout("s" * 64) is False


# -- units of work ---------------------------------------------------------------------------


class ConflictingStore(MemoryStore):
    """A MemoryStore whose next ``conflicts`` units of work end in a StorageConflict
    (after their writes, which the unit then rolls back), as a database breaking a deadlock would."""

    def __init__(self, conflicts: int, error: type[Exception] = StorageConflict) -> None:
        super().__init__()
        self.conflicts = conflicts
        self.error = error
        self.units_run = 0

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        with super().atomic():
            yield
            self.units_run += 1
            if self.conflicts:
                self.conflicts -= 1
                raise self.error()


def test_a_unit_that_conflicts_twice_succeeds_on_the_third_run(build) -> None:
    store = ConflictingStore(conflicts=0)
    auth = build(store)
    user = auth.auth.register(EMAIL, PASSWORD)
    store.conflicts, store.units_run = 2, 0
    auth.user.block(user.id)
    assert store.units_run == 3
    assert auth.user.get_by_id(user.id).blocked is True
    blocked = auth.audit.query(types=[AuditEventType.ACCOUNT_BLOCKED])
    assert len(blocked) == 1  # the rolled-back runs left no rows behind


def test_a_unit_that_conflicts_three_times_gives_up_with_storage_conflict(build) -> None:
    store = ConflictingStore(conflicts=0)
    auth = build(store)
    user = auth.auth.register(EMAIL, PASSWORD)
    store.conflicts, store.units_run = 3, 0
    with pytest.raises(StorageConflict):
        auth.user.block(user.id)
    assert store.units_run == 3
    assert auth.user.get_by_id(user.id).blocked is False
    assert auth.audit.query(types=[AuditEventType.ACCOUNT_BLOCKED]) == []


def test_a_unit_that_conflicts_more_than_three_times_runs_only_three_times(build) -> None:
    store = ConflictingStore(conflicts=0)
    auth = build(store)
    user = auth.auth.register(EMAIL, PASSWORD)
    store.conflicts, store.units_run = 10, 0
    with pytest.raises(StorageConflict):
        auth.user.mark_email_verified(user.id)
    assert (store.units_run, store.conflicts) == (3, 7)


def test_a_unit_without_conflicts_runs_once_and_returns_its_result(build) -> None:
    store = ConflictingStore(conflicts=0)
    auth = build(store)
    user = auth.auth.register(EMAIL, PASSWORD)
    outbox = auth.mailer
    auth.auth.login(EMAIL, PASSWORD)
    session = auth.auth.verify_otp(EMAIL, outbox.last_code(EMAIL))  # type: ignore[attr-defined]
    store.units_run = 0
    assert auth.sessions.revoke(session.session_id) is True
    assert store.units_run == 1
    assert auth.sessions.revoke_all(user.id) == 0


def test_any_other_storage_error_in_a_unit_is_raised_at_once(build) -> None:
    store = ConflictingStore(conflicts=0, error=StorageUnavailable)
    auth = build(store)
    user = auth.auth.register(EMAIL, PASSWORD)
    store.conflicts, store.units_run = 1, 0
    with pytest.raises(StorageUnavailable):
        auth.user.block(user.id)
    assert store.units_run == 1
    assert auth.user.get_by_id(user.id).blocked is False
