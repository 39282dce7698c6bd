"""Audit rows are safe to print: control characters are escaped and lengths capped.

Values reach the audit log through the request context (user agent) and the
email of a request (an app may plug in a lenient email canonicalizer, so the
audit log cannot count on the address being clean).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mindmesh_auth import AuditEventType, MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.core.models import RequestContext
from mindmesh_auth.testing import FakeClock, Outbox, test_config


@pytest.fixture
def lenient() -> Iterator[MindmeshAuth]:
    """A facade whose canonicalizer accepts any string the kernel lets through."""
    auth = MindmeshAuth(
        store=MemoryStore(), mailer=Outbox(), config=test_config(), clock=FakeClock(), canonicalize_email=lambda v: v
    )
    yield auth
    auth.close()


def audited_user_agent(env, user_agent: str) -> str | None:
    env.auth.password.request_reset("nobody@example.com", context=RequestContext(user_agent=user_agent))
    return env.auth.audit.query(types=[AuditEventType.PASSWORD_RESET_REQUESTED])[-1].user_agent


def audited_email(auth: MindmeshAuth, email: str) -> str | None:
    auth.password.request_reset(email)
    return auth.audit.query(types=[AuditEventType.PASSWORD_RESET_REQUESTED])[-1].email


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("nul\x00", "nul\\x00"),
        ("\x1fus", "\\x1fus"),
        ("del\x7f", "del\\x7f"),
        ("c1\x80", "c1\\x80"),
        ("nel\x85", "nel\\x85"),
        ("c1\x9f", "c1\\x9f"),
        ("line\u2028sep", "line\\u2028sep"),
        ("para\u2029sep", "para\\u2029sep"),
    ],
)
def test_control_characters_in_the_user_agent_are_escaped(env, raw, shown) -> None:
    assert audited_user_agent(env, raw) == shown


@pytest.mark.parametrize("kept", ["Mozilla/5.0 (X11)", "space and ~tilde", "nbsp\xa0é", "\u2027\u202a", "日本語"])
def test_printable_characters_in_the_user_agent_are_kept_as_they_are(env, kept) -> None:
    assert audited_user_agent(env, kept) == kept


def test_user_agent_cap_of_512_applies_after_escaping(env) -> None:
    assert audited_user_agent(env, "\x00" * 127 + "abcdef") == "\\x00" * 127 + "abcd"
    assert audited_user_agent(env, "\x00" * 200) == "\\x00" * 128


def test_an_escape_sequence_is_never_cut_in_half(env) -> None:
    shown = audited_user_agent(env, "a" + "\x00" * 200)
    assert shown == "a" + "\\x00" * 127
    assert len(shown) == 509


def test_plain_user_agent_of_512_characters_is_kept_whole(env) -> None:
    assert audited_user_agent(env, "u" * 512) == "u" * 512


def test_missing_user_agent_and_ip_stay_empty(env) -> None:
    env.auth.password.request_reset("nobody@example.com")
    row = env.auth.audit.query()[-1]
    assert (row.user_agent, row.ip_address) == (None, None)


def test_ip_address_is_recorded_in_its_normal_form(env) -> None:
    env.auth.password.request_reset("nobody@example.com", context=RequestContext(ip_address="::ffff:192.0.2.1"))
    assert env.auth.audit.query()[-1].ip_address == "192.0.2.1"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("c1\x85@example.com", "c1\\x85@example.com"),
        ("ls\u2028@example.com", "ls\\u2028@example.com"),
        ("x\x9f\x80@example.com", "x\\x9f\\x80@example.com"),
    ],
)
def test_controls_in_an_email_are_escaped_in_the_audit_row(lenient, raw, shown) -> None:
    assert audited_email(lenient, raw) == shown


def test_email_cap_of_320_applies_after_escaping(lenient) -> None:
    assert audited_email(lenient, "\x85" * 80 + "a" * 10 + "@x") == "\\x85" * 80
    assert audited_email(lenient, "b" + "\x85" * 80 + "@x") == "b" + "\\x85" * 79
    assert audited_email(lenient, "c" * 4 + "\x85" * 79 + "d" * 50) == "c" * 4 + "\\x85" * 79


def test_clean_email_is_recorded_unchanged(lenient) -> None:
    address = "plain+tag@example.com"
    assert audited_email(lenient, address) == address
