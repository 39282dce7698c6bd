"""Account lifecycle hooks: before_register can refuse; after_* run once the unit committed,
with the user as it is after the operation, and cannot undo it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from mindmesh_auth import (
    AuditEventType,
    ConfigurationError,
    EmailAlreadyRegistered,
    Hooks,
    MindmeshAuth,
    User,
    ValidationError,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.testing import FakeClock, Outbox, test_config

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase"
EMAIL = "ada@example.com"


class Recorder:
    """Every hook call, with what the store held at that moment (the unit had committed?)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.calls: list[tuple[str, Any]] = []
        self.in_unit: list[bool] = []

    def hooks(self, **overrides: Any) -> Hooks:
        def record(name: str) -> Any:
            def hook(*args: Any) -> None:
                self.in_unit.append(bool(self.store._unit.frames))  # an assert here would be swallowed
                self.calls.append((name, args))

            return hook

        names = ("after_register", "after_login", "after_password_change", "after_email_change", "after_delete")
        return Hooks(**{**{n: record(n) for n in names}, **overrides})


def make(hooks: Hooks | None = None, recorder: Recorder | None = None) -> tuple[MindmeshAuth, Outbox, Recorder]:
    store = MemoryStore() if recorder is None else recorder.store
    recorder = recorder or Recorder(store)
    outbox = Outbox()
    auth = MindmeshAuth(
        store=store, mailer=outbox, config=test_config(), clock=FakeClock(), hooks=hooks or recorder.hooks()
    )
    return auth, outbox, recorder


def login(auth: MindmeshAuth, outbox: Outbox, email: str = EMAIL, password: str = PASSWORD) -> Any:
    challenge = auth.auth.login(email, password)
    return auth.auth.verify_otp(email, outbox.last_code(email), handle=challenge.handle)


def test_after_hooks_see_each_step_of_an_accounts_life_after_it_committed() -> None:
    store = MemoryStore()
    recorder = Recorder(store)
    seen_in_store: list[tuple[str, object]] = []

    def after_register(user: User) -> None:
        recorder.in_unit.append(bool(store._unit.frames))
        seen_in_store.append(("register", store.users.get(user.id)))

    def after_delete(user: User) -> None:
        recorder.in_unit.append(bool(store._unit.frames))
        seen_in_store.append(("delete", store.users.get(user.id)))

    auth, outbox, _ = make(recorder.hooks(after_register=after_register, after_delete=after_delete), recorder)
    user = auth.auth.register(EMAIL, PASSWORD)
    session = login(auth, outbox)
    auth.password.change(user.id, PASSWORD, NEW_PASSWORD)
    auth.account.request_email_change(user.id, NEW_PASSWORD, "ada.new@example.com")
    auth.account.confirm_email_change(user.id, "ada.new@example.com", outbox.last_code("ada.new@example.com"))
    auth.account.delete(user.id, NEW_PASSWORD)

    assert recorder.in_unit == [False] * 5  # every hook ran after its unit, none inside one
    names = [name for name, _ in recorder.calls]
    assert names == ["after_login", "after_password_change", "after_email_change"]
    (_, (logged_in, session_id)), (_, (changed,)), (_, (moved, old)) = recorder.calls
    assert (logged_in.id, session_id) == (user.id, session.session_id)
    assert changed.id == user.id
    assert (moved.email, moved.email_verified, old) == ("ada.new@example.com", True, EMAIL)
    # after_register saw the stored user, after_delete saw it gone: both ran after their unit.
    assert seen_in_store[0][0] == "register" and isinstance(seen_in_store[0][1], User)
    assert seen_in_store[1] == ("delete", None)


def test_no_after_hook_runs_for_an_operation_that_failed() -> None:
    auth, _outbox, recorder = make()
    user = auth.auth.register(EMAIL, PASSWORD)
    recorder.calls.clear()
    with pytest.raises(ValidationError):
        auth.password.change(user.id, "not the password at all", NEW_PASSWORD)
    with pytest.raises(ValidationError):
        auth.account.delete(user.id, "not the password at all")
    with pytest.raises(EmailAlreadyRegistered):
        auth.auth.register(EMAIL, PASSWORD)
    assert recorder.calls == []


def test_before_register_refuses_with_a_validation_error_and_nothing_is_stored() -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []

    def only_our_domain(email: str, profile: Mapping[str, Any]) -> None:
        seen.append((email, profile))
        if not email.endswith("@example.org"):
            raise ValidationError("Registrations are open to example.org only.", field="email")

    auth, _outbox, _recorder = make(Hooks(before_register=only_our_domain))
    with pytest.raises(ValidationError) as refused:
        auth.auth.register("Ada@Example.com", PASSWORD)
    assert refused.value.message == "Registrations are open to example.org only."
    assert auth.user.get_by_email("ada@example.com") is None
    [failed] = auth.audit.query(types=[AuditEventType.REGISTRATION_FAILED])
    assert failed.reason == "refused_by_app"
    assert seen == [("ada@example.com", {})]  # the canonical address, never the password
    assert auth.auth.register("bob@example.org", PASSWORD).email == "bob@example.org"


def test_an_after_hook_that_raises_is_logged_and_the_operation_still_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    def broken(user: User) -> None:
        raise RuntimeError(f"secret detail {PASSWORD}")

    auth, _outbox, _ = make(Hooks(after_register=broken))
    with caplog.at_level(logging.ERROR, logger="mindmesh_auth"):
        user = auth.auth.register(EMAIL, PASSWORD)
    assert auth.user.get_by_id(user.id).email == EMAIL
    [record] = [r for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == "hook_failed"]
    assert record.mindmesh_hook == "after_register"  # type: ignore[attr-defined]
    assert record.getMessage() == "The after_register hook raised RuntimeError; the operation had already completed"


def test_hooks_must_be_callables_in_a_hooks_object() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Hooks(after_delete="not callable")  # type: ignore[arg-type]
    assert (caught.value.variable, caught.value.message) == ("hooks.after_delete", "hooks.after_delete must be callable.")
    with pytest.raises(ConfigurationError):
        MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=test_config(), hooks={"after_delete": print})  # type: ignore[arg-type]
