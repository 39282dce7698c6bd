"""No password, code, token or secret ever shows in audit rows, logs, errors or reprs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from mindmesh_auth import AuditEventType, AuthError, RequestContext
from mindmesh_auth.core.crypto import KeyRing

PASSWORD = "Pa55word-that-must-never-leak"
NEW_PASSWORD = "N3w-passphrase-that-must-never-leak"
CHANGED_PASSWORD = "Ch4nged-passphrase-never-leak"
EMAIL = "ada@example.com"
SMTP_PASS = "smtp-password-never-leaks"


def test_whole_flow_leaks_no_secret_anywhere(make_env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = make_env(smtp_password=SMTP_PASS, smtp_host="smtp.example.test")
    auth = env.auth
    secrets: set[str] = {PASSWORD, NEW_PASSWORD, CHANGED_PASSWORD, auth.config.jwt_secret, auth.config.refresh_secret, SMTP_PASS}
    seen: list[str] = []
    errors: list[BaseException] = []

    def expect_error(call: Callable[[], Any]) -> None:
        try:
            call()
        except AuthError as exc:
            errors.append(exc)
        else:  # pragma: no cover - the flow below only calls failing things here
            pytest.fail(f"expected an error from {call}")

    user = auth.auth.register(EMAIL, PASSWORD, first_name="Ada")
    seen += [repr(user), str(user)]
    expect_error(lambda: auth.auth.register(EMAIL, PASSWORD))
    expect_error(lambda: auth.auth.register("bob@example.com", "short"))
    expect_error(lambda: auth.auth.login(EMAIL, PASSWORD + "-wrong"))
    expect_error(lambda: auth.auth.login("nobody@example.com", PASSWORD))

    challenge = auth.auth.login(EMAIL, PASSWORD)
    seen.append(repr(challenge))
    code = env.outbox.last_code(EMAIL)
    secrets.add(code)
    stored_challenge = env.store.otps.get(EMAIL, "login")
    seen.append(repr(stored_challenge))
    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    secrets.add(wrong_code)
    expect_error(lambda: auth.auth.verify_otp(EMAIL, wrong_code))
    expect_error(lambda: auth.auth.verify_otp(EMAIL, code + "0"))
    result = auth.auth.verify_otp(EMAIL, code)
    secrets |= {result.access_token, result.refresh_token}
    seen += [repr(result), str(result), repr(result.user)]
    expect_error(lambda: auth.auth.verify_otp(EMAIL, code))

    seen.append(repr(auth.auth.get_user_from_token(result.access_token)))
    expect_error(lambda: auth.auth.get_user_from_token(result.access_token[:-3] + "abc"))
    env.clock.advance(seconds=5)
    pair = auth.auth.refresh(result.refresh_token)
    secrets |= {pair.access_token, pair.refresh_token}
    seen += [repr(pair), str(pair)]
    session = auth.sessions.get(pair.session_id)
    seen.append(repr(session))

    auth.otp.send(EMAIL, "email_verify")
    verify_code = env.outbox.last_code(EMAIL)
    secrets.add(verify_code)
    assert auth.otp.verify(EMAIL, verify_code, "email_verify") is True

    auth.password.request_reset(EMAIL)
    reset_token = env.outbox.last_reset_token(EMAIL)
    secrets.add(reset_token)
    reset_row = env.store.reset_tokens.get(KeyRing(auth.config.refresh_secret).digest("reset", reset_token))
    seen.append(repr(reset_row))
    expect_error(lambda: auth.password.reset(reset_token, "short"))
    expect_error(lambda: auth.password.reset(reset_token[:-1] + ("A" if reset_token[-1] != "A" else "B"), NEW_PASSWORD))
    auth.password.reset(reset_token, NEW_PASSWORD)
    expect_error(lambda: auth.password.reset(reset_token, NEW_PASSWORD))
    expect_error(lambda: auth.auth.refresh(pair.refresh_token))  # revoked by the reset
    expect_error(lambda: auth.auth.refresh(result.refresh_token))  # reuse of a rotated token

    env.clock.advance(minutes=11)
    second = env.login(EMAIL, NEW_PASSWORD)
    secrets |= {second.access_token, second.refresh_token, env.outbox.last_code(EMAIL)}
    expect_error(lambda: auth.password.change(user.id, PASSWORD, CHANGED_PASSWORD))
    auth.password.change(user.id, NEW_PASSWORD, CHANGED_PASSWORD, keep_session_id=second.session_id)
    auth.auth.logout(second.session_id)
    env.outbox.fail_next()
    expect_error(lambda: auth.auth.login(EMAIL, CHANGED_PASSWORD))

    seen += [repr(auth.config), str(auth.config), repr(auth), repr(env.store), repr(env.outbox)]
    seen += [repr(m) for m in env.outbox.messages]
    for exc in errors:
        seen += [str(exc), repr(exc), exc.message, repr(exc.args)]
    for event in auth.audit.query(limit=10000):
        seen.append(repr(event))
        seen += [str(v) for v in attrs.asdict(event).values()]
    for record in caplog.records:
        seen += [record.getMessage(), repr(record.args), str(record.exc_info)]

    assert len(errors) >= 15
    assert {type(e).__name__ for e in errors} >= {"InvalidCredentials", "InvalidOtp", "InvalidPassword", "InvalidResetToken"}
    assert len(secrets) >= 14
    for text in seen:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:200]!r}"
    # Password hashes must not show either.
    stored = env.store.users.get(user.id)
    assert stored.password_hash not in repr(stored)


def test_control_characters_in_the_user_agent_are_escaped_in_the_audit_row(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(ip_address="203.0.113.5", user_agent="evil\r\nInjected: 1"))
    with env.auth.context(ip_address="203.0.113.5", user_agent="ua\x00nul\x1b[31mred\u2028sep"):
        env.auth.auth.login(EMAIL, PASSWORD)
    registered = env.auth.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS])[0]
    assert "\r" not in registered.user_agent and "\n" not in registered.user_agent
    assert registered.user_agent == "evil\\x0d\\x0aInjected: 1"
    sent = env.auth.audit.query(types=[AuditEventType.OTP_SENT])[0]
    assert not any(ord(ch) < 0x20 or ch == "\u2028" for ch in sent.user_agent)
    assert sent.user_agent.startswith("ua\\x00nul\\x1b[31mred")


def test_oversized_user_agent_is_capped_in_the_audit_row(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(user_agent="U" * 10_000))
    event = env.auth.audit.query()[0]
    assert event.user_agent is not None and len(event.user_agent) <= 512


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        # LINE SEPARATOR: 1 character stored as 6; 85 whole escapes fit in 512 (510), an 86th would not.
        ("\u2028" * 10_000, "\\u2028" * 85),
        # C1 NEL: 1 character stored as 4; exactly 128 escapes fill the 512.
        ("\x85" * 10_000, "\\x85" * 128),
        # Mixed: 85 x "ab\\x85" (510) + "ab" (512); the next escape would exceed, it is not cut in half.
        ("ab\x85" * 5_000, "ab\\x85" * 85 + "ab"),
    ],
    ids=["u2028", "c1-nel", "mixed"],
)
def test_oversized_escaped_user_agent_is_capped_after_escaping(env, user_agent: str, expected: str) -> None:
    env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(user_agent=user_agent))
    stored = env.auth.audit.query()[0].user_agent
    assert stored is not None and len(stored) <= 512
    assert not any(0x80 <= ord(ch) <= 0x9F for ch in stored)  # C1 controls are escaped, never raw
    assert not any(ord(ch) < 0x20 or ch in "\u2028\u2029" for ch in stored)
    assert stored == expected
