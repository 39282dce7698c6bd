"""One delivery lifecycle (issue 11, point 6): a code is stored only once its mail was accepted,
a rejected delivery leaves the delivered code valid, and a failed login delivery spends no send budget."""

from __future__ import annotations

import threading

import pytest

from mindmesh_auth import AuditEventType, DeliveryFailed, DeliveryUncertain, InvalidOtp, RateLimited
from mindmesh_auth.testing import Outbox

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def user(env):
    return env.auth.auth.register(EMAIL, PASSWORD)


def audited(env, *types: AuditEventType) -> list[tuple[AuditEventType, str | None]]:
    return [(e.type, e.reason) for e in env.auth.audit.query(types=list(types), limit=1000)]


# -- replace once accepted ---------------------------------------------------------------


def test_a_rejected_login_resend_keeps_the_delivered_code(env, user) -> None:
    env.auth.auth.login(EMAIL, PASSWORD)
    delivered = env.outbox.last_code(EMAIL)
    env.outbox.fail_next()
    with pytest.raises(DeliveryFailed):
        env.auth.auth.login(EMAIL, PASSWORD)
    current = env.store.otps.get(EMAIL, "login")
    assert current is not None and current.status == "sent"
    assert env.auth.auth.verify_otp(EMAIL, delivered).user.id == user.id
    assert audited(env, AuditEventType.OTP_SENT, AuditEventType.OTP_SEND_FAILED) == [
        (AuditEventType.OTP_SENT, "login"),
        (AuditEventType.OTP_SEND_FAILED, "login"),
    ]


def test_a_rejected_otp_send_resend_keeps_the_delivered_code(env, user) -> None:
    env.auth.otp.send(EMAIL, "email_verify")
    delivered = env.outbox.last_code(EMAIL)
    env.outbox.fail_next()
    assert env.auth.otp.send(EMAIL, "email_verify") is None
    assert len(env.outbox) == 1
    assert env.auth.otp.verify(EMAIL, delivered, "email_verify") is True


def test_a_rejected_first_delivery_stores_no_code(env, user) -> None:
    env.outbox.fail_next()
    with pytest.raises(DeliveryFailed):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert env.store.otps.get(EMAIL, "login") is None


def test_an_accepted_resend_replaces_the_previous_code(env, user) -> None:
    env.auth.auth.login(EMAIL, PASSWORD)
    first = env.outbox.last_code(EMAIL)
    env.auth.auth.login(EMAIL, PASSWORD)
    second = env.outbox.last_code(EMAIL)
    if first != second:  # one in a million they are equal; the replaced challenge is what counts
        with pytest.raises(InvalidOtp):
            env.auth.auth.verify_otp(EMAIL, first)
    assert env.auth.auth.verify_otp(EMAIL, second).user.id == user.id


def test_an_unknown_outcome_keeps_the_new_code_and_reports_it(env, user) -> None:
    env.auth.auth.login(EMAIL, PASSWORD)
    old = env.store.otps.get(EMAIL, "login")
    env.outbox.fail_next(uncertain=True)
    with pytest.raises(DeliveryUncertain):
        env.auth.auth.login(EMAIL, PASSWORD)
    current = env.store.otps.get(EMAIL, "login")
    assert current is not None and old is not None and current.id != old.id and current.status == "sent"
    assert env.auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL)).user.id == user.id
    assert (AuditEventType.OTP_SEND_FAILED, "login:delivery_uncertain") in audited(env, AuditEventType.OTP_SEND_FAILED)


class HeldOutbox(Outbox):
    """Holds each delivery until released, then rejects it (a mail server timing out)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, message) -> None:
        self.entered.set()
        assert self.release.wait(30)
        raise DeliveryFailed()


def test_a_code_is_never_usable_while_its_mail_is_in_flight_and_a_rejection_keeps_the_old(env, user) -> None:
    env.auth.auth.login(EMAIL, PASSWORD)
    delivered = env.store.otps.get(EMAIL, "login")
    held = HeldOutbox()
    env.auth._kernel.mailer = held
    errors: list[BaseException] = []

    def resend() -> None:
        try:
            env.auth.auth.login(EMAIL, PASSWORD)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=resend)
    worker.start()
    assert held.entered.wait(30)
    assert env.store.otps.get(EMAIL, "login") == delivered  # the new code is not stored before its mail is accepted
    held.release.set()
    worker.join(30)
    assert [type(e) for e in errors] == [DeliveryFailed]
    assert env.store.otps.get(EMAIL, "login") == delivered


# -- the send budget -------------------------------------------------------------------


def test_an_outage_during_logins_does_not_use_up_the_send_budget(env, user) -> None:
    limit = env.auth.config.otp_send_limit.count
    env.outbox.fail_next(limit)
    for _ in range(limit):
        with pytest.raises(DeliveryFailed):
            env.auth.auth.login(EMAIL, PASSWORD)
    # The server is back: the budget is whole.
    for _ in range(limit):
        env.auth.auth.login(EMAIL, PASSWORD)
    assert len(env.outbox) == limit
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_unknown_outcomes_spend_the_send_budget(env, user) -> None:
    limit = env.auth.config.otp_send_limit.count
    env.outbox.fail_next(limit, uncertain=True)
    for _ in range(limit):
        with pytest.raises(DeliveryUncertain):
            env.auth.auth.login(EMAIL, PASSWORD)
    with pytest.raises(RateLimited):
        env.auth.auth.login(EMAIL, PASSWORD)


def test_otp_send_counts_requests_not_deliveries(env, user) -> None:
    limit = env.auth.config.otp_send_limit.count
    env.outbox.fail_next(limit)
    for _ in range(limit):
        assert env.auth.otp.send(EMAIL, "email_verify") is None
    with pytest.raises(RateLimited) as info:
        env.auth.otp.send(EMAIL, "email_verify")
    assert 0 < info.value.retry_after <= env.auth.config.otp_send_limit.window.total_seconds()
    assert len(env.outbox) == 0
    assert [r for _, r in audited(env, AuditEventType.OTP_SEND_FAILED)] == ["email_verify"] * limit
    env.clock.advance(env.auth.config.otp_send_limit.window)
    env.auth.otp.send(EMAIL, "email_verify")
    assert len(env.outbox) == 1


def test_each_purpose_has_its_own_send_budget(make_env) -> None:
    env = make_env(otp_purposes=("login", "email_verify", "delete_account"))
    env.auth.auth.register(EMAIL, PASSWORD)
    limit = env.auth.config.otp_send_limit.count
    for _ in range(limit):
        env.auth.otp.send(EMAIL, "email_verify")
    with pytest.raises(RateLimited):
        env.auth.otp.send(EMAIL, "email_verify")
    for _ in range(limit):
        env.auth.otp.send(EMAIL, "delete_account")
        env.auth.auth.login(EMAIL, PASSWORD)
    assert len(env.outbox) == 3 * limit


# -- background delivery of otp.send -------------------------------------------------------


class BlockingOutbox(Outbox):
    """Accepts each message only once released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def send(self, message) -> None:
        assert self.release.wait(30)
        super().send(message)


def test_otp_send_in_the_background_answers_before_the_mail_and_then_delivers(make_env) -> None:
    env = make_env(otp_delivery_in_background=True)
    env.auth.auth.register(EMAIL, PASSWORD)
    outbox = BlockingOutbox()
    env.auth._kernel.mailer = outbox
    assert env.auth.otp.send(EMAIL, "email_verify") is None  # returned while the mail is held
    assert len(outbox) == 0 and env.store.otps.get(EMAIL, "email_verify") is None
    outbox.release.set()
    env.auth.wait_for_background_work(timeout=30)
    assert len(outbox) == 1
    assert env.auth.otp.verify(EMAIL, outbox.last_code(EMAIL), "email_verify") is True


def test_a_background_delivery_failure_is_audited_not_raised(make_env) -> None:
    env = make_env(otp_delivery_in_background=True)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.outbox.fail_next()
    assert env.auth.otp.send(EMAIL, "email_verify") is None
    env.auth.wait_for_background_work(timeout=30)
    assert audited(env, AuditEventType.OTP_SENT, AuditEventType.OTP_SEND_FAILED) == [
        (AuditEventType.OTP_SEND_FAILED, "email_verify")
    ]
    assert env.store.otps.get(EMAIL, "email_verify") is None
