"""SmtpMailer and the background mail queue against misbehaving SMTP servers on loopback.

Each server is a small scripted thread on a raw socket: it never answers, drips
one line at a time, refuses the recipient, drops the connection after DATA, or
answers 421. Every call must end within a generous multiple of the configured
deadline (a bound, not a speed figure), retry only where nothing was accepted,
and codes and tokens follow the delivery outcome (SPEC "Failed delivery").
"""

from __future__ import annotations

import email
import email.message
import email.policy
import logging
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mindmesh_auth import AuthConfig, ConfigurationError, DeliveryFailed, DeliveryUncertain, InvalidOtp, MindmeshAuth
from mindmesh_auth.adapters.mail import Outbox
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.adapters.smtp import SmtpMailer
from mindmesh_auth.core.models import AuditEventType
from mindmesh_auth.core.ports import Mailer, OutgoingMessage

SENDER = "Mindmesh <no-reply@example.test>"
PASSWORD = "correct horse battery staple"
JWT_SECRET = "rxKnXH22mvYyisTpeIqcUr6AaRDUDQH3UgOPjHKuL2fwBn-Z"
REFRESH_SECRET = "I4yNTeRRahIRc_3T0EBCkpWPaD-B21xdTm9ucjHoofrxZH4R"
BOUND = 10  # a call must end within BOUND x the configured deadline


# --------------------------------------------------------------------------- a scripted SMTP server


class Misbehaving:
    """An SMTP server on 127.0.0.1 whose behaviour is ``mode``:

    ``silent`` accepts and never sends a byte; ``drip`` sends a never-ending
    multi-line greeting, one line per ``every`` seconds; ``drip_final`` behaves
    until the message was sent, then drips the final reply; ``reject_rcpt``
    answers 550 to RCPT; ``drop_after_data`` reads the whole message, then closes
    without a reply; ``busy`` greets with 421; ``starttls_silent`` accepts STARTTLS, then never answers the
    handshake; ``ok`` accepts the message.
    """

    def __init__(self, mode: str, every: float = 1.0) -> None:
        self.mode = mode
        self.every = every
        self.connections = 0
        self.bodies: list[bytes] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(32)
        self._srv.settimeout(0.1)
        self.port = int(self._srv.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket, line: bytes) -> None:
        while not self._stop.wait(self.every):
            conn.sendall(line)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._talk(conn)
        except OSError:
            pass  # the client went away: that is what these tests provoke

    def _talk(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            self._stop.wait()
            return
        if self.mode == "drip":
            conn.sendall(b"220-mail.example.test\r\n")
            self._drip(conn, b"220-still thinking\r\n")
            return
        if self.mode == "busy":
            conn.sendall(b"421 4.3.2 try later\r\n")
            return
        reader = conn.makefile("rb")
        conn.sendall(b"220 mail.example.test ESMTP\r\n")
        while not self._stop.is_set():
            line = reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-mail.example.test\r\n250 STARTTLS\r\n")
            elif verb == b"STAR":  # STARTTLS accepted, then the handshake never gets an answer
                conn.sendall(b"220 ready\r\n")
                self._stop.wait()
                return
            elif verb == b"RCPT" and self.mode == "reject_rcpt":
                conn.sendall(b"550 5.1.1 no such user\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                body = b""
                while (chunk := reader.readline()) not in (b".\r\n", b""):
                    body += chunk
                with self._lock:
                    self.bodies.append(body)
                if self.mode == "drop_after_data":
                    conn.close()
                    return
                if self.mode == "drip_final":
                    self._drip(conn, b"250-still writing\r\n")
                    return
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                conn.sendall(b"250 OK\r\n")

    def last_text(self) -> str:
        with self._lock:
            assert self.bodies, "the server received no message"
            raw = self.bodies[-1]
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        text = parsed.get_body(preferencelist=("plain",))
        assert text is not None
        return str(text.get_content())

    def last_code(self) -> str:
        match = re.search(r"\b(\d{6})\b", self.last_text())
        assert match is not None
        return match.group(1)

    def last_reset_token(self) -> str:
        match = re.search(r"([A-Za-z0-9_-]{43})", self.last_text())
        assert match is not None
        return match.group(1)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        self._srv.close()
        self._thread.join(timeout=5)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Misbehaving]:
    srv = Misbehaving(*request.param) if isinstance(request.param, tuple) else Misbehaving(request.param)
    try:
        yield srv
    finally:
        srv.close()


def mailer(srv: Misbehaving, *, deadline: float, timeout: float = 30.0, retries: int = 0) -> SmtpMailer:
    # The per-operation timeout is far above the deadline: only the deadline can end these calls.
    return SmtpMailer(
        "127.0.0.1", srv.port, sender=SENDER, security="none", timeout=timeout, deadline=deadline, retries=retries
    )


def message() -> OutgoingMessage:
    return OutgoingMessage(to="alice@example.test", subject="Your code", text="Your code is 123456\n", kind="otp")


def config(**kwargs: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "jwt_secret": JWT_SECRET,
        "refresh_secret": REFRESH_SECRET,
        "bcrypt_rounds": 4,
        "allow_test_email_domains": True,
        "reset_delivery_in_background": False,
    }
    values.update(kwargs)
    return AuthConfig(**values)


def timed_send(m: SmtpMailer) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        m.send(message())
    except DeliveryFailed as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mindmesh_auth"))


# --------------------------------------------------------------------------- the deadline


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_a_server_that_never_answers_fails_within_the_deadline(
    server: Misbehaving, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        error, elapsed = timed_send(mailer(server, deadline=1.0))
    assert type(error) is DeliveryFailed  # nothing was sent: rejected, not uncertain
    assert elapsed < BOUND * 1.0
    assert server.connections == 1  # no hidden retry
    assert "stage=connect" in our_log(caplog) and "deadline" in our_log(caplog)


@pytest.mark.parametrize("server", [("drip", 1.0)], indirect=True)
def test_a_server_dripping_one_line_a_second_cannot_stretch_the_deadline(
    server: Misbehaving, caplog: pytest.LogCaptureFixture
) -> None:
    # Each line arrives well within the 30 s per-operation timeout: only the overall deadline ends it.
    with caplog.at_level(logging.WARNING):
        error, elapsed = timed_send(mailer(server, deadline=1.5))
    assert type(error) is DeliveryFailed
    assert elapsed < BOUND * 1.5
    assert server.connections == 1
    assert "deadline" in our_log(caplog)


@pytest.mark.parametrize("server", [("drip_final", 1.0)], indirect=True)
def test_a_final_reply_that_never_ends_is_an_uncertain_delivery(server: Misbehaving) -> None:
    error, elapsed = timed_send(mailer(server, deadline=1.5, retries=2))
    assert isinstance(error, DeliveryUncertain)
    assert elapsed < BOUND * 1.5
    assert len(server.bodies) == 1  # the message was with the server: never sent again


@pytest.mark.parametrize("server", ["silent", "starttls_silent"], indirect=True)
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_tls_handshake_that_never_completes_ends_within_the_deadline(server: Misbehaving, security: str) -> None:
    m = SmtpMailer("127.0.0.1", server.port, sender=SENDER, security=security, timeout=30.0, deadline=1.0)
    error, elapsed = timed_send(m)
    assert type(error) is DeliveryFailed
    assert elapsed < BOUND * 1.0
    assert server.connections == 1


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_retries_stay_within_the_one_deadline(server: Misbehaving) -> None:
    error, elapsed = timed_send(mailer(server, deadline=1.0, timeout=0.3, retries=10))
    assert type(error) is DeliveryFailed
    assert elapsed < BOUND * 1.0
    assert 2 <= server.connections <= 11  # retried while time was left, never more than configured


# --------------------------------------------------------------------------- outcomes and retries


@pytest.mark.parametrize("server", ["reject_rcpt"], indirect=True)
def test_a_refused_recipient_is_a_rejection_and_is_not_retried(
    server: Misbehaving, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        error, elapsed = timed_send(mailer(server, deadline=2.0, retries=3))
    assert type(error) is DeliveryFailed
    assert elapsed < BOUND * 2.0
    assert server.connections == 1  # 5xx is permanent
    assert server.bodies == []
    assert "stage=rcpt, code=550" in our_log(caplog)
    assert "no such user" not in our_log(caplog) and "alice@example.test" not in our_log(caplog)


@pytest.mark.parametrize("server", ["drop_after_data"], indirect=True)
def test_a_connection_dropped_after_the_message_is_uncertain_and_never_resent(
    server: Misbehaving, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        error, elapsed = timed_send(mailer(server, deadline=2.0, retries=3))
    assert isinstance(error, DeliveryUncertain)
    assert elapsed < BOUND * 2.0
    assert server.connections == 1 and len(server.bodies) == 1  # no duplicate mail
    log = our_log(caplog)
    assert "uncertain" in log and "stage=data" in log
    assert "123456" not in log and "123456" not in str(error)
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("server", ["busy"], indirect=True)
def test_a_temporary_refusal_is_retried_exactly_as_configured(server: Misbehaving) -> None:
    error, elapsed = timed_send(mailer(server, deadline=5.0, retries=2))
    assert type(error) is DeliveryFailed
    assert elapsed < BOUND * 5.0
    assert server.connections == 3  # one attempt plus two retries


@pytest.mark.parametrize("server", ["busy"], indirect=True)
def test_no_retry_by_default(server: Misbehaving) -> None:
    error, _ = timed_send(mailer(server, deadline=5.0))
    assert type(error) is DeliveryFailed
    assert server.connections == 1


@pytest.mark.parametrize("server", ["ok"], indirect=True)
def test_a_well_behaved_server_gets_the_message_once(server: Misbehaving) -> None:
    error, _ = timed_send(mailer(server, deadline=5.0, retries=2))
    assert error is None
    assert server.connections == 1 and len(server.bodies) == 1
    assert server.last_code() == "123456"


def test_the_deadline_and_retries_come_from_the_config() -> None:
    cfg = config(smtp_host="smtp.example.test", smtp_deadline=2.5, smtp_retries=1)
    m = SmtpMailer.from_config(cfg)
    assert (m.deadline, m.retries) == (2.5, 1)
    default = SmtpMailer.from_config(config(smtp_host="smtp.example.test"))
    assert (default.deadline, default.retries) == (30.0, 0)


def test_the_bounds_are_read_from_the_environment() -> None:
    env = {
        "AUTH_JWT_SECRET": JWT_SECRET,
        "AUTH_REFRESH_SECRET": REFRESH_SECRET,
        "SMTP_DEADLINE": "2.5",
        "SMTP_RETRIES": "2",
        "AUTH_MAIL_QUEUE_SIZE": "7",
        "AUTH_MAIL_SHUTDOWN_GRACE": "0.5",
    }
    cfg = AuthConfig.from_mapping(env)
    assert (cfg.smtp_deadline, cfg.smtp_retries, cfg.mail_queue_size, cfg.mail_shutdown_grace) == (2.5, 2, 7, 0.5)
    defaults = AuthConfig.from_mapping({"AUTH_JWT_SECRET": JWT_SECRET, "AUTH_REFRESH_SECRET": REFRESH_SECRET})
    assert (defaults.smtp_deadline, defaults.smtp_retries) == (30.0, 0)
    assert (defaults.mail_queue_size, defaults.mail_shutdown_grace) == (100, 10.0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SMTP_DEADLINE", "0"),
        ("SMTP_DEADLINE", "3601"),
        ("SMTP_RETRIES", "11"),
        ("SMTP_RETRIES", "1.5"),
        ("AUTH_MAIL_QUEUE_SIZE", "0"),
        ("AUTH_MAIL_SHUTDOWN_GRACE", "3601"),
    ],
)
def test_out_of_range_bounds_are_refused_naming_the_variable(variable: str, value: str) -> None:
    env = {"AUTH_JWT_SECRET": JWT_SECRET, "AUTH_REFRESH_SECRET": REFRESH_SECRET, variable: value}
    with pytest.raises(ConfigurationError) as info:
        AuthConfig.from_mapping(env)
    assert info.value.variable == variable


@pytest.mark.parametrize("kwargs", [{"deadline": 0}, {"deadline": -1.0}, {"retries": -1}, {"retries": True}])
def test_bad_mailer_bounds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmtpMailer("smtp.example.test", sender=SENDER, **kwargs)


# --------------------------------------------------------------------------- codes and tokens follow the outcome


def login_setup(srv: Misbehaving, **cfg: Any) -> tuple[MindmeshAuth, MemoryStore]:
    store = MemoryStore()
    auth = MindmeshAuth(store=store, mailer=mailer(srv, deadline=2.0), config=config(**cfg))
    auth.auth.register("carol@example.test", PASSWORD)
    return auth, store


@pytest.mark.parametrize("server", ["drop_after_data"], indirect=True)
def test_login_code_whose_reply_was_lost_is_kept_and_works(server: Misbehaving) -> None:
    auth, store = login_setup(server)
    started = time.monotonic()
    with pytest.raises(DeliveryUncertain):
        auth.auth.login("carol@example.test", PASSWORD)
    assert time.monotonic() - started < BOUND * 2.0
    assert store.otps.get("carol@example.test", "login") is not None

    failed = [e for e in auth.audit.query() if e.type == AuditEventType.OTP_SEND_FAILED]
    assert [e.reason for e in failed] == ["login:delivery_uncertain"]
    code = server.last_code()
    assert all(code not in repr(e) for e in auth.audit.query())

    tokens = auth.auth.verify_otp("carol@example.test", code, "login")  # the copy that arrived works
    assert tokens.access_token and tokens.refresh_token


@pytest.mark.parametrize("server", ["drop_after_data"], indirect=True)
def test_a_later_accepted_code_supersedes_an_uncertain_one(server: Misbehaving) -> None:
    auth, _ = login_setup(server)
    with pytest.raises(DeliveryUncertain):
        auth.auth.login("carol@example.test", PASSWORD)
    first = server.last_code()
    server.mode = "ok"
    auth.auth.login("carol@example.test", PASSWORD)
    second = server.last_code()
    if first != second:  # one in a million the two codes are equal
        with pytest.raises(InvalidOtp):
            auth.auth.verify_otp("carol@example.test", first, "login")
    assert auth.auth.verify_otp("carol@example.test", second, "login").access_token


@pytest.mark.parametrize("server", ["reject_rcpt"], indirect=True)
def test_a_rejected_login_code_is_discarded(server: Misbehaving) -> None:
    auth, store = login_setup(server)
    with pytest.raises(DeliveryFailed) as info:
        auth.auth.login("carol@example.test", PASSWORD)
    assert type(info.value) is DeliveryFailed
    assert store.otps.get("carol@example.test", "login") is None
    reasons = [e.reason for e in auth.audit.query() if e.type == AuditEventType.OTP_SEND_FAILED]
    assert reasons == ["login"]


@pytest.mark.parametrize("server", [("drip", 1.0)], indirect=True)
def test_login_against_a_dripping_server_ends_and_leaves_no_code(server: Misbehaving) -> None:
    store = MemoryStore()
    auth = MindmeshAuth(store=store, mailer=mailer(server, deadline=1.5), config=config())
    auth.auth.register("carol@example.test", PASSWORD)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as info:
        auth.auth.login("carol@example.test", PASSWORD)
    assert time.monotonic() - started < BOUND * 1.5
    assert type(info.value) is DeliveryFailed
    assert store.otps.get("carol@example.test", "login") is None


@pytest.mark.parametrize("server", ["drop_after_data"], indirect=True)
def test_reset_token_whose_reply_was_lost_is_kept_and_works(server: Misbehaving) -> None:
    auth, _ = login_setup(server)
    auth.password.request_reset("carol@example.test")  # returns normally: failures look the same
    token = server.last_reset_token()
    rows = [e for e in auth.audit.query() if e.type == AuditEventType.PASSWORD_RESET_REQUESTED]
    assert [e.reason for e in rows] == ["delivery_uncertain"]
    assert all(token not in repr(e) for e in auth.audit.query())
    server.mode = "ok"  # the password-changed notice goes out normally
    auth.password.reset(token, "a brand new passphrase 42")
    assert auth.auth.login("carol@example.test", "a brand new passphrase 42").otp_required


@pytest.mark.parametrize("server", ["reject_rcpt"], indirect=True)
def test_a_rejected_reset_token_is_discarded(server: Misbehaving) -> None:
    auth, _ = login_setup(server)
    auth.password.request_reset("carol@example.test")  # returns normally: failures look the same
    rows = [e for e in auth.audit.query() if e.type == AuditEventType.PASSWORD_RESET_REQUESTED]
    assert [e.reason for e in rows] == ["delivery_failed"]
    assert server.bodies == []


def test_outbox_simulates_an_uncertain_delivery_for_app_tests() -> None:
    outbox = Outbox()
    auth = MindmeshAuth(store=MemoryStore(), mailer=outbox, config=config())
    auth.auth.register("frank@example.test", PASSWORD)
    outbox.fail_next(1, uncertain=True)
    with pytest.raises(DeliveryUncertain):
        auth.auth.login("frank@example.test", PASSWORD)
    code = outbox.last_code("frank@example.test")  # the copy that "arrived"
    assert auth.auth.verify_otp("frank@example.test", code, "login").access_token
    outbox.fail_next(1)
    with pytest.raises(DeliveryFailed) as info:
        auth.auth.login("frank@example.test", PASSWORD)
    assert type(info.value) is DeliveryFailed
    assert len(outbox.for_address("frank@example.test", "otp")) == 1  # a rejected mail is not kept


# --------------------------------------------------------------------------- the background queue


class GatedMailer(Mailer):
    """Blocks every send until ``release`` is set; counts sends in flight and done."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.sent: list[str] = []

    def send(self, message: OutgoingMessage) -> None:
        with self.lock:
            self.in_flight += 1
        self.release.wait(30)
        with self.lock:
            self.in_flight -= 1
            self.sent.append(message.to)


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_drops_the_job_and_the_caller_sees_no_difference(caplog: pytest.LogCaptureFixture) -> None:
    gate = GatedMailer()
    auth = MindmeshAuth(
        store=MemoryStore(), mailer=gate, config=config(reset_delivery_in_background=True, mail_queue_size=1)
    )
    emails = [f"user{i}@example.test" for i in range(5)]
    for address in emails:
        auth.auth.register(address, PASSWORD)
    try:
        for address in emails[:2]:
            auth.password.request_reset(address)  # returns normally
        wait_until(lambda: gate.in_flight == 2)  # both workers busy
        with caplog.at_level(logging.WARNING):
            for address in emails[2:]:
                auth.password.request_reset(address)  # returns normally, queued or dropped
        assert auth.background_dropped == 2  # one queued, two dropped
        assert "dropped" in our_log(caplog)
        assert not any(address in our_log(caplog) for address in emails)
        gate.release.set()
        auth.wait_for_background_work(timeout=10)
        assert sorted(gate.sent) == sorted(emails[:3])
    finally:
        gate.release.set()
        auth.close()


def test_close_waits_at_most_the_grace_and_reports_what_was_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    gate = GatedMailer()
    grace = 0.5
    auth = MindmeshAuth(
        store=MemoryStore(), mailer=gate, config=config(reset_delivery_in_background=True, mail_shutdown_grace=grace)
    )
    emails = [f"user{i}@example.test" for i in range(4)]
    for address in emails:
        auth.auth.register(address, PASSWORD)
    for address in emails:
        auth.password.request_reset(address)
    wait_until(lambda: gate.in_flight == 2)  # two running, two queued
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING):
            auth.close()
        assert time.monotonic() - started < BOUND * grace
        assert "4 background mail job(s) not sent" in our_log(caplog)
        assert not any(address in our_log(caplog) for address in emails)
        auth.password.request_reset(emails[0])  # after close: dropped, returns normally all the same
        assert auth.background_dropped == 1
    finally:
        gate.release.set()
    wait_until(lambda: gate.in_flight == 0)
    assert len(gate.sent) == 2  # the two running jobs finished; the two queued ones never started


def test_wait_for_background_work_returns_once_the_mail_is_sent() -> None:
    gate = GatedMailer()
    auth = MindmeshAuth(store=MemoryStore(), mailer=gate, config=config(reset_delivery_in_background=True))
    auth.auth.register("erin@example.test", PASSWORD)
    auth.password.request_reset("erin@example.test")
    wait_until(lambda: gate.in_flight == 1)
    auth.wait_for_background_work(timeout=0.2)  # bounded: the mail is still held
    assert gate.sent == []
    gate.release.set()
    auth.wait_for_background_work(timeout=10)
    assert gate.sent == ["erin@example.test"]
    auth.close()


_EXIT_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from mindmesh_auth import AuthConfig, MindmeshAuth
    from mindmesh_auth.adapters.memory import MemoryStore
    from mindmesh_auth.adapters.smtp import SmtpMailer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    port, grace = int(sys.argv[1]), float(sys.argv[2])
    config = AuthConfig(
        jwt_secret=sys.argv[3], refresh_secret=sys.argv[4], bcrypt_rounds=4, allow_test_email_domains=True,
        reset_delivery_in_background=True, mail_shutdown_grace=grace,
    )
    # The SMTP deadline (60 s) is far beyond the grace: only the grace can end this process quickly.
    mailer = SmtpMailer("127.0.0.1", port, sender="no-reply@example.test", security="none", timeout=60, deadline=60)
    auth = MindmeshAuth(store=MemoryStore(), mailer=mailer, config=config)
    for i in range(10):
        auth.auth.register(f"user{i}@example.test", "correct horse battery staple")
    for i in range(10):
        auth.password.request_reset(f"user{i}@example.test")
    print("queued", flush=True)
    """
)


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_a_process_with_queued_mail_exits_within_its_grace(server: Misbehaving) -> None:
    grace = 1.0
    root = Path(__file__).resolve().parents[2]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, str(server.port), str(grace), JWT_SECRET, REFRESH_SECRET],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "queued" in done.stdout
    # Interpreter start, imports and ten registrations included: a generous bound, far below the 60 s deadline.
    assert elapsed < 30
    assert "10 background mail job(s) not sent" in done.stderr
    assert "@example.test" not in done.stderr
