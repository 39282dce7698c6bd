"""Observability: Prometheus metrics, OpenTelemetry spans and structured logs of every operation."""

from __future__ import annotations

import asyncio
import collections
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from mindmesh_auth import (
    AuditEventType,
    ConfigurationError,
    DeliveryFailed,
    InvalidOtp,
    Limit,
    MindmeshAuth,
    RateLimited,
    RefreshTokenReused,
    StorageUnavailable,
)
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.aio import AsyncMindmeshAuth
from mindmesh_auth.core import audit as audit_module
from mindmesh_auth.core.login import AuthService
from mindmesh_auth.hashing import hashing_operations
from mindmesh_auth.observability import GROUPS, RESET_DELIVERY_OPERATION, Observer
from mindmesh_auth.observability.logs import LogObserver
from mindmesh_auth.observability.otel import OtelObserver
from mindmesh_auth.observability.prometheus import PrometheusObserver
from mindmesh_auth.testing import FakeClock, Outbox, test_config
from mindmesh_auth.testing.faults import FaultyStore

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
STRANGER = "mallory@example.com"
IP = "203.0.113.7"
_STANDARD_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@dataclass
class Observed:
    auth: MindmeshAuth
    outbox: Outbox
    clock: FakeClock
    store: FaultyStore
    registry: CollectorRegistry
    spans: InMemorySpanExporter
    secrets: list[str] = field(default_factory=list)

    def samples(self, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``metric`` (a sample name), by its sorted labels."""
        found: dict[tuple[tuple[str, str], ...], float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == metric:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def counts(self, metric: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {tuple(dict(key)[name] for name in labels): value for key, value in self.samples(metric).items() if value}


def make(registry: CollectorRegistry | None = None, **overrides: Any) -> Observed:
    registry = registry or CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock, outbox, store = FakeClock(), Outbox(), FaultyStore(MemoryStore())
    auth = MindmeshAuth(
        store=store,
        mailer=outbox,
        config=test_config(**overrides),
        clock=clock,
        observers=[PrometheusObserver(registry=registry), OtelObserver(tracer_provider=provider), LogObserver()],
    )
    return Observed(auth, outbox, clock, store, registry, exporter)


@pytest.fixture
def observed(caplog: pytest.LogCaptureFixture) -> Iterator[Observed]:
    caplog.set_level(logging.DEBUG, logger="mindmesh_auth")
    env = make(login_email_limit=Limit(1, timedelta(minutes=15)))
    yield env
    env.auth.close()


def run_scenario(env: Observed) -> dict[str, Any]:
    """register, login, a wrong code, verify, token check, refresh, a replayed refresh token,
    a rate-limited login, a failed delivery and a storage fault; returns what was issued."""
    auth, outbox = env.auth, env.outbox
    auth.set_context(ip_address=IP)
    user = auth.auth.register(EMAIL, PASSWORD)
    auth.auth.login(EMAIL, PASSWORD)
    code = outbox.last_code(EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(InvalidOtp):
        auth.auth.verify_otp(EMAIL, wrong)
    result = auth.auth.verify_otp(EMAIL, code)
    assert auth.auth.get_user_from_token(result.access_token).id == user.id
    pair = auth.auth.refresh(result.refresh_token)
    env.clock.advance(timedelta(seconds=3))  # past refresh_race_window: a replay now revokes
    with pytest.raises(RefreshTokenReused):
        auth.auth.refresh(result.refresh_token)
    with pytest.raises(Exception) as first:
        auth.auth.login(STRANGER, "a wrong password, surely")
    assert first.value.code == "invalid_credentials"
    with pytest.raises(RateLimited):
        auth.auth.login(STRANGER, "a wrong password, surely")
    outbox.fail_next(1)
    with pytest.raises(DeliveryFailed):
        auth.auth.login(EMAIL, PASSWORD)
    auth.auth.login(EMAIL, PASSWORD)  # a fresh session to log out of, under a storage fault
    other = auth.auth.verify_otp(EMAIL, outbox.last_code(EMAIL))
    env.store.fail_at(1)
    with pytest.raises(StorageUnavailable):
        auth.auth.logout(other.session_id)
    env.store.disarm()
    env.secrets += [
        EMAIL,
        STRANGER,
        PASSWORD,
        "a wrong password, surely",
        IP,
        user.id,
        code,
        outbox.last_code(EMAIL),
        result.access_token,
        result.refresh_token,
        result.session_id,
        pair.access_token,
        pair.refresh_token,
        other.access_token,
        other.refresh_token,
        other.session_id,
    ]
    return {"user": user, "result": result, "other": other}


def test_operations_move_the_right_counters(observed: Observed) -> None:
    run_scenario(observed)
    assert observed.counts("mindmesh_auth_operations_total", "operation", "outcome") == {
        ("auth.register", "ok"): 1,
        ("auth.login", "ok"): 2,
        ("auth.login", "invalid_credentials"): 1,
        ("auth.login", "rate_limited"): 1,
        ("auth.login", "delivery_failed"): 1,
        ("auth.verify_otp", "invalid_otp"): 1,
        ("auth.verify_otp", "ok"): 2,
        ("auth.get_user_from_token", "ok"): 1,  # counted once: authenticate ran inside it, unobserved
        ("auth.refresh", "ok"): 1,
        ("auth.refresh", "refresh_token_reused"): 1,
        ("auth.logout", "storage_unavailable"): 1,
    }
    # Every call was timed: each operation's histogram count is its number of calls, refusals included.
    calls: collections.Counter[str] = collections.Counter()
    for (operation, _), value in observed.counts("mindmesh_auth_operations_total", "operation", "outcome").items():
        calls[operation] += int(value)
    histogram = observed.counts("mindmesh_auth_operation_duration_seconds_count", "operation")
    assert histogram == {(operation,): float(n) for operation, n in calls.items()}
    assert all(value > 0 for value in observed.counts("mindmesh_auth_operation_duration_seconds_sum", "operation").values())
    # The injected fault counts under its core class, not the test helper's subclass.
    assert observed.counts("mindmesh_auth_storage_errors_total", "error") == {("StorageUnavailable",): 1}


def test_deliveries_and_audit_events_match_the_outbox_and_the_audit_log(observed: Observed) -> None:
    run_scenario(observed)
    sent = collections.Counter(message.kind for message in observed.outbox.messages)
    expected = {(kind, "ok"): float(n) for kind, n in sent.items()}
    expected[("otp", "delivery_failed")] = 1
    assert observed.counts("mindmesh_auth_deliveries_total", "kind", "outcome") == expected
    assert observed.counts("mindmesh_auth_delivery_duration_seconds_count", "kind") == {
        (kind,): float(n + (kind == "otp")) for kind, n in sent.items()
    }
    rows = observed.auth.audit.query(limit=1000)
    written = collections.Counter(str(row.type) for row in rows)
    assert observed.counts("mindmesh_auth_audit_events_total", "type") == {(t,): float(n) for t, n in written.items()}
    for alarm in (AuditEventType.REFRESH_REUSE_DETECTED, AuditEventType.RATE_LIMITED, AuditEventType.OTP_SEND_FAILED):
        assert written[str(alarm)] == 1


def test_spans_name_each_operation_and_its_outcome(observed: Observed) -> None:
    run_scenario(observed)
    spans = observed.spans.get_finished_spans()
    operations = collections.Counter(
        (s.name, s.attributes["mindmesh_auth.outcome"]) for s in spans if s.name != "mindmesh_auth.deliver"
    )
    metrics = observed.counts("mindmesh_auth_operations_total", "operation", "outcome")
    assert operations == {("mindmesh_auth." + op, outcome): int(n) for (op, outcome), n in metrics.items()}
    by_outcome = {s.attributes["mindmesh_auth.outcome"]: s for s in spans if s.name.startswith("mindmesh_auth.auth.")}
    # A refusal names its code and is not an error of the service; a storage failure is.
    reused = by_outcome["refresh_token_reused"]
    assert reused.attributes["error.type"] == "refresh_token_reused"
    assert reused.status.status_code is StatusCode.UNSET
    assert [e.attributes["mindmesh_auth.audit_type"] for e in reused.events] == ["REFRESH_REUSE_DETECTED"]
    failed = by_outcome["storage_unavailable"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["mindmesh_auth.storage_error"] == "StorageUnavailable"
    assert "error.type" not in by_outcome["ok"].attributes
    deliveries = [s for s in spans if s.name == "mindmesh_auth.deliver"]
    assert collections.Counter(s.attributes["mindmesh_auth.outcome"] for s in deliveries) == {
        "ok": len(observed.outbox.messages),
        "delivery_failed": 1,
    }
    # Each delivery is a child of the operation that sent it.
    parents = {s.context.span_id: s for s in spans}
    assert {parents[s.parent.span_id].name for s in deliveries if s.parent} == {"mindmesh_auth.auth.login"}
    assert all(s.parent is not None for s in deliveries)


def test_log_records_name_event_operation_and_outcome(observed: Observed, caplog: pytest.LogCaptureFixture) -> None:
    run_scenario(observed)
    events = [r for r in caplog.records if hasattr(r, "mindmesh_auth_event")]
    assert all(r.name.startswith("mindmesh_auth") for r in events)
    ops = [(r.mindmesh_auth_event, r.operation, r.outcome, r.levelno) for r in events if hasattr(r, "operation")]
    assert ("operation_ok", "auth.get_user_from_token", "ok", logging.DEBUG) in ops
    assert ("operation_refused", "auth.verify_otp", "invalid_otp", logging.INFO) in ops
    assert ("operation_refused", "auth.login", "rate_limited", logging.INFO) in ops
    assert ("operation_failed", "auth.login", "delivery_failed", logging.WARNING) in ops
    assert ("operation_failed", "auth.logout", "storage_unavailable", logging.WARNING) in ops
    metrics = observed.counts("mindmesh_auth_operations_total", "operation", "outcome")
    assert collections.Counter((op, outcome) for _, op, outcome, _ in ops) == {k: int(v) for k, v in metrics.items()}
    audit = {(r.audit_type, r.levelno) for r in events if r.mindmesh_auth_event == "audit_event"}
    assert ("REFRESH_REUSE_DETECTED", logging.WARNING) in audit
    assert ("RATE_LIMITED", logging.INFO) in audit
    failed_delivery = [r for r in events if r.mindmesh_auth_event == "delivery_failed"]
    assert [(r.message_kind, r.outcome, r.levelno) for r in failed_delivery] == [("otp", "delivery_failed", logging.WARNING)]


def test_no_secret_or_personal_data_reaches_a_label_span_or_log(observed: Observed, caplog: pytest.LogCaptureFixture) -> None:
    run_scenario(observed)
    texts: list[str] = []
    for family in observed.registry.collect():
        for sample in family.samples:
            texts += list(sample.labels.values())
    for span in observed.spans.get_finished_spans():
        texts += [span.name, str(span.status.description)]
        texts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            texts += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
    records = [r for r in caplog.records if r.name.startswith("mindmesh_auth")]
    assert any(hasattr(r, "mindmesh_auth_event") for r in records)
    for record in records:
        texts.append(record.getMessage())
        texts += [f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_FIELDS]
    assert len(texts) > 50
    assert len(observed.secrets) == 16 and all(observed.secrets)
    leaks = [(secret, text) for secret in observed.secrets for text in texts if secret in text]
    assert leaks == []


def test_without_observers_the_service_methods_are_the_plain_bound_methods() -> None:
    outbox = Outbox()
    auth = MindmeshAuth(store=MemoryStore(), mailer=outbox, config=test_config(), clock=FakeClock())
    try:
        check = auth.auth.get_user_from_token
        assert type(auth.auth) is AuthService
        assert check.__func__ is AuthService.get_user_from_token  # no wrapper on the hot path
        assert check.__self__ is auth.auth
        gated = hashing_operations(auth.config)  # only the hashing gate wraps (docs/performance.md)
        for group in GROUPS:
            wrapped = sorted(name for name in vars(getattr(auth, group)) if not name.startswith("_"))
            assert wrapped == sorted(gated.get(group, ())), group
        assert auth._kernel.mailer is outbox
        assert auth._kernel.auditor.observer is audit_module._ignore
    finally:
        auth.close()
    # Nor is any of this imported: the optional libraries stay out of an app that does not ask.
    probe = (
        "import sys\n"
        "from mindmesh_auth import MindmeshAuth\n"
        "from mindmesh_auth.adapters.memory import MemoryStore\n"
        "from mindmesh_auth.testing import Outbox, test_config\n"
        "MindmeshAuth(store=MemoryStore(), mailer=Outbox(), config=test_config()).close()\n"
        "loaded = [m for m in ('mindmesh_auth.observability', 'prometheus_client', 'opentelemetry') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_with_prometheus_alone_the_token_check_is_one_wrapper_around_the_bound_method() -> None:
    registry = CollectorRegistry()
    auth = MindmeshAuth(
        store=MemoryStore(), mailer=Outbox(), config=test_config(), observers=[PrometheusObserver(registry=registry)]
    )
    try:
        check = auth.auth.get_user_from_token
        assert not hasattr(check, "__func__")  # a wrapper...
        inner = check.__wrapped__  # type: ignore[attr-defined]
        assert inner.__func__ is AuthService.get_user_from_token  # ...of the plain bound method, once
        assert inner.__self__ is not auth.auth  # the original service: its own inner calls are not observed
        assert isinstance(auth.auth, AuthService)
        with pytest.raises(Exception) as info:
            check("not a token")
        assert info.value.code == "invalid_token"
        assert (
            registry.get_sample_value(
                "mindmesh_auth_operations_total", {"operation": "auth.get_user_from_token", "outcome": "invalid_token"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "mindmesh_auth_operations_total", {"operation": "auth.authenticate", "outcome": "invalid_token"}
            )
            is None
        )
    finally:
        auth.close()


def test_background_reset_delivery_is_an_operation_of_its_own() -> None:
    env = make(reset_delivery_in_background=True)
    try:
        env.auth.auth.register(EMAIL, PASSWORD)
        env.auth.password.request_reset(EMAIL)
        env.auth.wait_for_background_work()
        ops = env.counts("mindmesh_auth_operations_total", "operation", "outcome")
        assert ops[("password.request_reset", "ok")] == 1
        assert ops[(RESET_DELIVERY_OPERATION, "ok")] == 1
        assert env.counts("mindmesh_auth_deliveries_total", "kind", "outcome") == {("password_reset", "ok"): 1}
        spans = {s.name: s for s in env.spans.get_finished_spans()}
        job, request = spans["mindmesh_auth." + RESET_DELIVERY_OPERATION], spans["mindmesh_auth.password.request_reset"]
        assert job.parent is not None and job.parent.span_id == request.context.span_id  # the caller's trace goes along
        assert spans["mindmesh_auth.deliver"].parent.span_id == job.context.span_id  # type: ignore[union-attr]
        # A background failure is counted too (the caller had long returned).
        env.store.fail_at(3)  # two rate-limit hits in the caller's thread, then the token's write in the background
        env.auth.password.request_reset(EMAIL)
        env.auth.wait_for_background_work()
        env.store.disarm()
        ops = env.counts("mindmesh_auth_operations_total", "operation", "outcome")
        assert ops[(RESET_DELIVERY_OPERATION, "storage_unavailable")] == 1
        assert env.counts("mindmesh_auth_storage_errors_total", "error") == {("StorageUnavailable",): 1}
    finally:
        env.auth.close()


def test_async_facade_calls_are_observed() -> None:
    env = make()

    async def scenario() -> None:
        auth = AsyncMindmeshAuth(env.auth, max_workers=2)
        await auth.auth.register(EMAIL, PASSWORD)
        await auth.auth.login(EMAIL, PASSWORD)
        result = await auth.auth.verify_otp(EMAIL, env.outbox.last_code(EMAIL))
        await auth.auth.get_user_from_token(result.access_token)
        with pytest.raises(InvalidOtp):
            await auth.auth.verify_otp(EMAIL, "123456")
        await auth.aclose()

    asyncio.run(scenario())
    assert env.counts("mindmesh_auth_operations_total", "operation", "outcome") == {
        ("auth.register", "ok"): 1,
        ("auth.login", "ok"): 1,
        ("auth.verify_otp", "ok"): 1,
        ("auth.verify_otp", "invalid_otp"): 1,
        ("auth.get_user_from_token", "ok"): 1,
    }
    assert {s.name for s in env.spans.get_finished_spans()} >= {"mindmesh_auth.auth.get_user_from_token"}


def test_facades_on_one_registry_share_its_metrics() -> None:
    registry = CollectorRegistry()
    first = make(registry=registry)
    second = make(registry=registry)
    try:
        first.auth.auth.register(EMAIL, PASSWORD)
        second.auth.auth.register(EMAIL, PASSWORD)
        assert registry.get_sample_value("mindmesh_auth_operations_total", {"operation": "auth.register", "outcome": "ok"}) == 2
        with pytest.raises(ConfigurationError) as info:
            PrometheusObserver(registry=registry, buckets=(0.1, 1.0))
        assert info.value.variable == "buckets"
    finally:
        first.auth.close()
        second.auth.close()


@pytest.mark.parametrize("bad", [["prometheus"], [object()], "prometheus", 42])
def test_observers_must_be_observers(bad: Any) -> None:
    store = MemoryStore()
    with pytest.raises(ConfigurationError) as info:
        MindmeshAuth(store=store, mailer=Outbox(), config=test_config(), observers=bad)
    assert info.value.variable == "observers"
    store.close()


def test_a_failing_observer_does_not_fail_an_audited_operation(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Observer):
        def audit_event(self, type: AuditEventType) -> None:
            raise RuntimeError("metrics backend down")

    store = MemoryStore()
    auth = MindmeshAuth(store=store, mailer=Outbox(), config=test_config(), observers=[Broken()])
    try:
        with caplog.at_level(logging.WARNING, logger="mindmesh_auth"):
            user = auth.auth.register(EMAIL, PASSWORD)
        assert auth.user.get_by_id(user.id).email == EMAIL
        told = [r for r in caplog.records if getattr(r, "mindmesh_auth_event", None) == "observer_failed"]
        assert len(told) == len(auth.audit.query()) >= 1  # once per row written
        assert all("RuntimeError" in r.getMessage() and "backend down" not in r.getMessage() for r in told)
    finally:
        auth.close()


def test_documented_example_runs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"observability.md[{index}]", "exec"), namespace)
    assert "mindmesh_auth_operations_total" in str(namespace["exposition"])


def test_ok_series_exist_from_start_up() -> None:
    registry = CollectorRegistry()
    auth = MindmeshAuth(
        store=MemoryStore(), mailer=Outbox(), config=test_config(), observers=[PrometheusObserver(registry=registry)]
    )
    try:
        for operation in ("auth.login", "auth.get_user_from_token", "otp.send", "sessions.revoke_all", "audit.query"):
            assert registry.get_sample_value("mindmesh_auth_operations_total", {"operation": operation, "outcome": "ok"}) == 0
            assert registry.get_sample_value("mindmesh_auth_operation_duration_seconds_count", {"operation": operation}) == 0
    finally:
        auth.close()
