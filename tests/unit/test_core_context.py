"""Request context: per thread, per asyncio task, per call, scoped; it lands in the audit rows."""

from __future__ import annotations

import asyncio
import threading

from mindmesh_auth import AuditEventType, RequestContext
from mindmesh_auth.core.context import current_context

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def test_set_context_is_per_thread(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5", user_agent="main-thread")
    seen: dict[str, RequestContext] = {}

    def other() -> None:
        seen["other"] = current_context()
        env.auth.auth.register("thread@example.com", PASSWORD)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["other"].ip_address is None and seen["other"].user_agent is None
    assert current_context().ip_address == "203.0.113.5"
    row = env.auth.audit.query(email="thread@example.com")[0]
    assert row.ip_address is None and row.user_agent is None


def test_set_context_is_per_asyncio_task(env) -> None:
    async def request(ip: str, email: str, started: asyncio.Event, other_started: asyncio.Event) -> str | None:
        env.auth.set_context(ip_address=ip)
        started.set()
        await other_started.wait()  # both tasks have now set their context
        await asyncio.to_thread(env.auth.auth.register, email, PASSWORD)
        return current_context().ip_address

    async def main() -> tuple[str | None, str | None, str | None]:
        a_started, b_started = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(request("192.0.2.1", "a@example.com", a_started, b_started))
        b = asyncio.create_task(request("2001:db8::2", "b@example.com", b_started, a_started))
        ip_a, ip_b = await asyncio.gather(a, b)
        return ip_a, ip_b, current_context().ip_address

    ip_a, ip_b, outer = asyncio.run(main())
    assert (ip_a, ip_b, outer) == ("192.0.2.1", "2001:db8::2", None)
    assert env.auth.audit.query(email="a@example.com")[0].ip_address == "192.0.2.1"
    assert env.auth.audit.query(email="b@example.com")[0].ip_address == "2001:db8::2"


def test_per_call_context_wins_over_set_context(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5", user_agent="from-set-context")
    env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(ip_address="198.51.100.9", user_agent="per-call"))
    row = env.auth.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS])[0]
    assert (row.ip_address, row.user_agent) == ("198.51.100.9", "per-call")


def test_per_call_context_is_normalised(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD, context=RequestContext(ip_address=" ::ffff:192.0.2.7 "))
    assert env.auth.audit.query()[0].ip_address == "192.0.2.7"


def test_context_manager_restores_the_previous_value(env) -> None:
    env.auth.set_context(ip_address="203.0.113.5")
    with env.auth.context(ip_address="198.51.100.1", user_agent="inner") as ctx:
        assert ctx == RequestContext(ip_address="198.51.100.1", user_agent="inner")
        env.auth.auth.register(EMAIL, PASSWORD)
    assert current_context() == RequestContext(ip_address="203.0.113.5")
    env.auth.auth.login(EMAIL, PASSWORD)
    rows = env.auth.audit.query(types=[AuditEventType.REGISTRATION_SUCCESS, AuditEventType.OTP_SENT])
    assert [(r.type, r.ip_address, r.user_agent) for r in rows] == [
        (AuditEventType.REGISTRATION_SUCCESS, "198.51.100.1", "inner"),
        (AuditEventType.OTP_SENT, "203.0.113.5", None),
    ]


def test_context_manager_restores_even_when_the_body_raises(env) -> None:
    try:
        with env.auth.context(ip_address="198.51.100.1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert current_context() == RequestContext()


def test_ip_and_user_agent_land_in_every_audit_row_of_a_flow(env) -> None:
    env.auth.set_context(ip_address="2001:DB8::1", user_agent="Browser/1.0")
    env.auth.auth.register(EMAIL, PASSWORD)
    result = env.login(EMAIL)
    env.auth.auth.refresh(result.refresh_token)
    env.auth.auth.logout(result.session_id)
    rows = env.auth.audit.query()
    assert {r.type for r in rows} >= {
        AuditEventType.REGISTRATION_SUCCESS,
        AuditEventType.OTP_SENT,
        AuditEventType.LOGIN_SUCCESS,
        AuditEventType.SESSION_REFRESHED,
        AuditEventType.LOGOUT,
    }
    assert {(r.ip_address, r.user_agent) for r in rows} == {("2001:db8::1", "Browser/1.0")}
    session = env.auth.sessions.get(result.session_id)
    assert (session.ip_address, session.user_agent) == ("2001:db8::1", "Browser/1.0")
