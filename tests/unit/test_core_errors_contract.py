"""The error contract an HTTP layer relies on: stable codes, status hints, hierarchy, messages."""

from __future__ import annotations

import pytest

import mindmesh_auth
from mindmesh_auth import (
    AuthError,
    ConfigurationError,
    DeliveryFailed,
    DeliveryUncertain,
    DuplicateKeyError,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidEmail,
    InvalidOtp,
    InvalidPassword,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidToken,
    NotFound,
    Overloaded,
    RateLimited,
    RefreshTokenReused,
    SchemaMismatch,
    SessionNotFound,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    UserNotFound,
    ValidationError,
)

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"

# (class, code, status, direct parent)
CONTRACT: list[tuple[type[AuthError], str, int, type[Exception]]] = [
    (AuthError, "auth_error", 400, Exception),
    (ConfigurationError, "configuration_error", 500, AuthError),
    (ValidationError, "invalid_input", 422, AuthError),
    (InvalidEmail, "invalid_email", 422, ValidationError),
    (InvalidPassword, "invalid_password", 422, ValidationError),
    (InvalidCredentials, "invalid_credentials", 401, AuthError),
    (EmailAlreadyRegistered, "email_taken", 409, AuthError),
    (InvalidToken, "invalid_token", 401, AuthError),
    (InvalidRefreshToken, "invalid_refresh_token", 401, InvalidToken),
    (RefreshTokenReused, "refresh_token_reused", 401, InvalidRefreshToken),
    (InvalidOtp, "invalid_otp", 401, AuthError),
    (InvalidResetToken, "invalid_reset_token", 400, AuthError),
    (RateLimited, "rate_limited", 429, AuthError),
    (Overloaded, "overloaded", 503, AuthError),
    (DeliveryFailed, "delivery_failed", 503, AuthError),
    (DeliveryUncertain, "delivery_uncertain", 503, DeliveryFailed),
    (NotFound, "not_found", 404, AuthError),
    (UserNotFound, "user_not_found", 404, NotFound),
    (SessionNotFound, "session_not_found", 404, NotFound),
    (StorageError, "storage_error", 503, AuthError),
    (DuplicateKeyError, "duplicate_key", 409, StorageError),
    (StorageUnavailable, "storage_unavailable", 503, StorageError),
    (StorageConflict, "storage_conflict", 503, StorageError),
    (SchemaMismatch, "schema_mismatch", 500, StorageError),
]
# Classes that take no required argument.
SIMPLE = [cls for cls, *_ in CONTRACT if cls not in (ConfigurationError, RateLimited)]


@pytest.mark.parametrize(("cls", "code", "status", "parent"), CONTRACT, ids=[c[0].__name__ for c in CONTRACT])
def test_every_error_has_its_stable_code_status_and_parent(
    cls: type[AuthError], code: str, status: int, parent: type[Exception]
) -> None:
    assert cls.code == code
    assert cls.status == status
    assert cls.__bases__ == (parent,)
    assert issubclass(cls, AuthError)


def test_every_exported_error_is_in_the_contract() -> None:
    exported = {
        obj
        for name in mindmesh_auth.__all__
        if isinstance(obj := getattr(mindmesh_auth, name), type) and issubclass(obj, AuthError)
    }
    assert exported == {cls for cls, *_ in CONTRACT}


def test_codes_are_unique() -> None:
    codes = [code for _, code, _, _ in CONTRACT]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", SIMPLE, ids=[c.__name__ for c in SIMPLE])
def test_an_error_raised_without_a_message_carries_its_default_message(cls: type[AuthError]) -> None:
    error = cls()
    assert str(error) == error.message == cls.default_message
    assert cls.default_message and cls.default_message.endswith(".")


@pytest.mark.parametrize("cls", SIMPLE, ids=[c.__name__ for c in SIMPLE])
def test_an_explicit_message_replaces_the_default(cls: type[AuthError]) -> None:
    error = cls("Something specific happened.")
    assert str(error) == error.message == "Something specific happened."


def test_the_root_error_has_a_generic_default_message() -> None:
    assert AuthError().message == "Authentication error."
    assert AuthError("").message == "Authentication error."


def test_configuration_error_keeps_its_message_and_the_variable_at_fault() -> None:
    error = ConfigurationError("SMTP_PORT must be between 1 and 65535.", variable="SMTP_PORT")
    assert (error.message, error.variable) == ("SMTP_PORT must be between 1 and 65535.", "SMTP_PORT")
    assert ConfigurationError("No mailer.").variable is None


def test_validation_error_keeps_its_message_and_field() -> None:
    error = ValidationError("The code must be exactly 6 digits.", field="code")
    assert (error.message, error.field) == ("The code must be exactly 6 digits.", "code")
    plain = ValidationError()
    assert (plain.message, plain.field) == ("Invalid input.", None)


@pytest.mark.parametrize(("cls", "field"), [(InvalidEmail, "email"), (InvalidPassword, "password")])
def test_email_and_password_errors_name_their_field_with_or_without_a_message(cls: type[ValidationError], field: str) -> None:
    assert cls().field == field
    custom = cls("Custom reason.")
    assert (custom.field, custom.message) == (field, "Custom reason.")


@pytest.mark.parametrize(("given", "expected"), [(30, 30), (2, 2), (1, 1), (0, 1), (-5, 1), (2.9, 2)])
def test_retry_after_is_whole_seconds_and_at_least_one(given: float, expected: int) -> None:
    error = RateLimited(given)  # type: ignore[arg-type]
    assert error.retry_after == expected
    assert isinstance(error.retry_after, int)


@pytest.mark.parametrize(("given", "expected"), [(30, 30), (1, 1), (0, 1), (-5, 1), (2.9, 2)])
def test_overloaded_carries_whole_seconds_to_wait_at_least_one(given: float, expected: int) -> None:
    error = Overloaded(retry_after=given)  # type: ignore[arg-type]
    assert error.retry_after == expected
    assert isinstance(error.retry_after, int)
    assert Overloaded().retry_after == 1


def test_rate_limited_keeps_a_custom_message_or_uses_its_default() -> None:
    assert RateLimited(5).message == "Too many requests. Try again later."
    assert RateLimited(5, "Slow down.").message == "Slow down."


# -- the same contract seen through the facade -------------------------------------------------


def test_a_malformed_email_is_an_invalid_email_naming_the_email_field(env) -> None:
    with pytest.raises(InvalidEmail) as info:
        env.auth.auth.register("not-an-email", PASSWORD)
    assert (info.value.code, info.value.field, info.value.status) == ("invalid_email", "email", 422)
    assert info.value.message == "The email address is not valid."


def test_a_non_string_email_is_an_invalid_email_with_its_own_message(env) -> None:
    with pytest.raises(InvalidEmail) as info:
        env.auth.auth.register(42, PASSWORD)  # type: ignore[arg-type]
    assert info.value.field == "email"
    assert info.value.message == "The email address must be a string."


def test_a_too_short_password_names_the_password_field_and_never_echoes_it(env) -> None:
    with pytest.raises(InvalidPassword) as info:
        env.auth.auth.register(EMAIL, "Sh0rt!")
    assert (info.value.code, info.value.field) == ("invalid_password", "password")
    assert info.value.message == "The password must be at least 8 characters."
    assert "Sh0rt!" not in str(info.value) and "Sh0rt!" not in repr(info.value)


def test_a_wrong_password_error_never_contains_the_password(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(InvalidCredentials) as info:
        env.auth.auth.login(EMAIL, "a wrong but long passphrase")
    assert info.value.message == "Invalid email or password."
    assert "wrong" not in str(info.value) and "wrong" not in repr(info.value)


def test_a_duplicate_registration_is_email_taken(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    with pytest.raises(EmailAlreadyRegistered) as info:
        env.auth.auth.register(EMAIL, PASSWORD)
    assert (info.value.code, info.value.status) == ("email_taken", 409)
    assert info.value.message == "An account with this email already exists."
