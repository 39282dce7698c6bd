"""SmtpMailer against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mindmesh_auth import AuthConfig, DeliveryFailed, MindmeshAuth
from mindmesh_auth.adapters.memory import MemoryStore
from mindmesh_auth.adapters.smtp import SmtpMailer
from mindmesh_auth.core.models import AuditEventType
from mindmesh_auth.core.ports import OutgoingMessage

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the _ci helper
from _ci import skip_or_fail  # noqa: E402

SENDER = "Mindmesh <no-reply@example.test>"
USER = "mailer-user"
PASSWORD = "s3cret-Pa55word-xyz"
SERVER_SECRET_TEXT = "internal-relay-7f3a9 says no"


# --------------------------------------------------------------------------- server helpers


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    login: bytes | None


@dataclass
class Recorder:
    refuse_rcpt: bool = False
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.refuse_rcpt:
            return f"550 5.1.1 {SERVER_SECRET_TEXT}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), msg, getattr(session, "login_data", None))
            )
        return "250 Message accepted"

    def last(self) -> Received:
        with self.lock:
            assert self.messages, "the server received no message"
            return self.messages[-1]

    def last_code(self) -> str:
        body = self.last().message.get_body(preferencelist=("plain",))
        assert body is not None
        match = re.search(r"\b(\d{6})\b", body.get_content())
        assert match is not None
        return match.group(1)


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    recorder: Recorder
    port: int


def start_server(**kwargs: Any) -> tuple[Controller, Server]:
    recorder = Recorder()
    last_error: Exception | None = None
    for _ in range(5):  # another process may grab the free port before we bind it
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, ready_timeout=30.0, **kwargs)
        try:
            controller.start()
        except Exception as exc:
            last_error = exc
            continue
        return controller, Server(recorder, port)
    raise RuntimeError(f"could not start the SMTP server: {last_error!r}")


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is not available (install the openssl package; .ci/run does)")
    d = tmp_path_factory.mktemp("smtp-cert")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="session")
def server_ctx(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert_files)
    return ctx


@pytest.fixture(scope="session")
def client_ctx(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_files[0]))


@pytest.fixture
def plain_server() -> Iterator[Server]:
    controller, server = start_server()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(server_ctx: ssl.SSLContext) -> Iterator[Server]:
    controller, server = start_server(
        tls_context=server_ctx, require_starttls=True, authenticator=authenticator, auth_require_tls=True
    )
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def implicit_tls_server(server_ctx: ssl.SSLContext) -> Iterator[Server]:
    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; here the whole connection is TLS.
    controller, server = start_server(ssl_context=server_ctx, authenticator=authenticator, auth_require_tls=False)
    try:
        yield server
    finally:
        controller.stop()


def plain_mailer(server: Server, **kwargs: Any) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", server.port, sender=SENDER, security="none", timeout=10.0, **kwargs)


def otp_message(to: str = "alice@example.test") -> OutgoingMessage:
    return OutgoingMessage(
        to=to,
        subject="Your code",
        text="Your code is 123456\n",
        html="<p>Your code is <b>123456</b></p>",
        kind="otp",
    )


def config(**kwargs: Any) -> AuthConfig:
    return AuthConfig(
        jwt_secret="rxKnXH22mvYyisTpeIqcUr6AaRDUDQH3UgOPjHKuL2fwBn-Z",
        refresh_secret="I4yNTeRRahIRc_3T0EBCkpWPaD-B21xdTm9ucjHoofrxZH4R",
        bcrypt_rounds=4,
        allow_test_email_domains=True,
        **kwargs,
    )


# --------------------------------------------------------------------------- delivery


def test_plain_delivery_carries_recipient_subject_text_and_html(plain_server: Server) -> None:
    plain_mailer(plain_server).send(otp_message())

    got = plain_server.recorder.last()
    assert got.rcpt_tos == ["alice@example.test"]
    assert got.mail_from == "no-reply@example.test"
    assert got.message["To"] == "alice@example.test"
    assert got.message["Subject"] == "Your code"
    assert "no-reply@example.test" in got.message["From"]
    assert got.message["Message-ID"]
    text = got.message.get_body(preferencelist=("plain",))
    html = got.message.get_body(preferencelist=("html",))
    assert text is not None and "Your code is 123456" in text.get_content()
    assert html is not None and "<b>123456</b>" in html.get_content()


def test_text_only_message(plain_server: Server) -> None:
    plain_mailer(plain_server).send(OutgoingMessage(to="bob@example.test", subject="Hi", text="Hello Bob\n"))

    got = plain_server.recorder.last()
    assert got.rcpt_tos == ["bob@example.test"]
    assert got.message.get_body(preferencelist=("html",)) is None
    text = got.message.get_body(preferencelist=("plain",))
    assert text is not None and "Hello Bob" in text.get_content()


def test_starttls_with_login(starttls_server: Server, client_ctx: ssl.SSLContext) -> None:
    mailer = SmtpMailer(
        "127.0.0.1",
        starttls_server.port,
        sender=SENDER,
        user=USER,
        password=PASSWORD,
        security="starttls",
        timeout=10.0,
        ssl_context=client_ctx,
    )
    mailer.send(otp_message())

    got = starttls_server.recorder.last()
    assert got.login == USER.encode()
    assert got.rcpt_tos == ["alice@example.test"]
    assert got.message["Subject"] == "Your code"


def test_starttls_verifies_the_certificate_by_default(starttls_server: Server) -> None:
    # No ssl_context: the system trust store does not know the self-signed certificate.
    mailer = SmtpMailer(
        "127.0.0.1", starttls_server.port, sender=SENDER, user=USER, password=PASSWORD, timeout=10.0
    )
    with pytest.raises(DeliveryFailed):
        mailer.send(otp_message())
    assert starttls_server.recorder.messages == []


def test_starttls_required_server_refuses_plain_login(starttls_server: Server) -> None:
    mailer = plain_mailer(starttls_server, user=USER, password=PASSWORD)
    with pytest.raises(DeliveryFailed):
        mailer.send(otp_message())
    assert starttls_server.recorder.messages == []


def test_implicit_tls_delivery(implicit_tls_server: Server, client_ctx: ssl.SSLContext) -> None:
    mailer = SmtpMailer(
        "127.0.0.1",
        implicit_tls_server.port,
        sender=SENDER,
        user=USER,
        password=PASSWORD,
        security="tls",
        timeout=10.0,
        ssl_context=client_ctx,
    )
    mailer.send(otp_message())

    got = implicit_tls_server.recorder.last()
    assert got.login == USER.encode()
    assert got.rcpt_tos == ["alice@example.test"]


def test_implicit_tls_verifies_the_certificate_by_default(implicit_tls_server: Server) -> None:
    mailer = SmtpMailer("127.0.0.1", implicit_tls_server.port, sender=SENDER, security="tls", timeout=10.0)
    with pytest.raises(DeliveryFailed):
        mailer.send(otp_message())
    assert implicit_tls_server.recorder.messages == []


# --------------------------------------------------------------------------- failures


def test_wrong_password_fails_without_leaking_it(starttls_server: Server, client_ctx: ssl.SSLContext) -> None:
    wrong = "Wr0ng-passw0rd-q9z"
    mailer = SmtpMailer(
        "127.0.0.1",
        starttls_server.port,
        sender=SENDER,
        user=USER,
        password=wrong,
        timeout=10.0,
        ssl_context=client_ctx,
    )
    with pytest.raises(DeliveryFailed) as info:
        mailer.send(otp_message())

    exc = info.value
    assert wrong not in str(exc) and wrong not in repr(exc)
    assert "123456" not in str(exc)
    assert exc.__cause__ is None and exc.__context__ is None
    assert wrong not in repr(mailer) and "<redacted>" in repr(mailer)
    assert starttls_server.recorder.messages == []


def test_starttls_is_never_downgraded(plain_server: Server) -> None:
    # The server offers no STARTTLS: the mailer must fail, not send in clear.
    mailer = SmtpMailer("127.0.0.1", plain_server.port, sender=SENDER, user=USER, password=PASSWORD, timeout=10.0)
    with pytest.raises(DeliveryFailed):
        mailer.send(otp_message())
    assert plain_server.recorder.messages == []


def test_recipient_refused(plain_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    plain_server.recorder.refuse_rcpt = True
    with caplog.at_level("DEBUG"), pytest.raises(DeliveryFailed) as info:
        plain_mailer(plain_server).send(otp_message())
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mindmesh_auth"))
    assert SERVER_SECRET_TEXT not in ours
    assert "123456" not in ours
    assert "stage=rcpt, code=550" in ours  # refused at RCPT, not earlier
    assert SERVER_SECRET_TEXT not in str(info.value)
    assert "550" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert plain_server.recorder.messages == []


def test_no_server_listening_fails_quickly() -> None:
    # "Quickly" without a stopwatch: one connection attempt, bounded by the configured
    # timeout, refused, and no retry loop behind it.
    port = free_port()  # closed again: nothing listens there
    mailer = SmtpMailer("127.0.0.1", port, sender=SENDER, security="starttls", timeout=2.0)
    attempts: list[tuple[Any, Any, str]] = []  # (address, timeout, outcome)
    real_connect = socket.create_connection

    def connect(address: Any, timeout: Any = None, *rest: Any) -> socket.socket:
        try:
            sock = real_connect(address, timeout, *rest)
        except OSError as exc:
            attempts.append((address, timeout, type(exc).__name__))
            raise
        attempts.append((address, timeout, "connected"))
        return sock

    with mock.patch.object(smtplib.socket, "create_connection", connect), pytest.raises(DeliveryFailed):
        mailer.send(otp_message())
    assert attempts == [(("127.0.0.1", port), 2.0, "ConnectionRefusedError")]


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("alice@example.test\r\nBcc: eve@evil.test", "Your code"),
        ("alice@example.test\nBcc: eve@evil.test", "Your code"),
        ("alice@example.test, eve@evil.test", "Your code"),
        ("alice@example.test", "Your code\r\nBcc: eve@evil.test"),
        ("alice@example.test", "Your code\nX-Injected: 1"),
    ],
)
def test_header_injection_is_rejected_before_connecting(to: str, subject: str) -> None:
    # A live server is there, so a mailer that did connect would deliver: nothing must arrive.
    controller, server = start_server()
    try:
        with pytest.raises(DeliveryFailed):
            plain_mailer(server).send(OutgoingMessage(to=to, subject=subject, text="code 123456"))
        assert server.recorder.messages == []
    finally:
        controller.stop()


def test_repr_hides_password() -> None:
    mailer = SmtpMailer("smtp.example.test", 587, sender=SENDER, user=USER, password=PASSWORD)
    assert PASSWORD not in repr(mailer)
    assert "smtp.example.test" in repr(mailer)


def test_invalid_security_mode() -> None:
    with pytest.raises(ValueError):
        SmtpMailer("smtp.example.test", sender=SENDER, security="ssl")


# --------------------------------------------------------------------------- configuration


def test_from_config_maps_settings() -> None:
    cfg = config(
        smtp_host="smtp.example.test",
        smtp_port=465,
        smtp_user=USER,
        smtp_password=PASSWORD,
        smtp_from=SENDER,
        smtp_security="tls",
        smtp_timeout=3.5,
    )
    mailer = SmtpMailer.from_config(cfg)
    assert mailer.host == "smtp.example.test"
    assert mailer.port == 465
    assert mailer.user == USER
    assert mailer.sender == SENDER
    assert mailer.security == "tls"
    assert mailer.timeout == 3.5
    assert PASSWORD not in repr(mailer)


def test_from_config_defaults() -> None:
    mailer = SmtpMailer.from_config(config(smtp_host="mail.example.test"))
    assert (mailer.port, mailer.security, mailer.user, mailer.timeout) == (587, "starttls", None, 10.0)


def test_from_config_delivers(plain_server: Server) -> None:
    cfg = config(smtp_host="127.0.0.1", smtp_port=plain_server.port, smtp_security="none", smtp_from=SENDER)
    SmtpMailer.from_config(cfg).send(otp_message())
    assert plain_server.recorder.last().rcpt_tos == ["alice@example.test"]


# --------------------------------------------------------------------------- end to end


def test_end_to_end_login_code_over_smtp(starttls_server: Server, client_ctx: ssl.SSLContext) -> None:
    mailer = SmtpMailer(
        "127.0.0.1",
        starttls_server.port,
        sender=SENDER,
        user=USER,
        password=PASSWORD,
        timeout=10.0,
        ssl_context=client_ctx,
    )
    auth = MindmeshAuth(store=MemoryStore(), mailer=mailer, config=config())
    email_addr = "carol@example.test"
    auth.auth.register(email_addr, "correct horse battery staple")
    auth.auth.login(email_addr, "correct horse battery staple")

    got = starttls_server.recorder.last()
    assert got.rcpt_tos == [email_addr]
    code = starttls_server.recorder.last_code()
    tokens = auth.auth.verify_otp(email_addr, code, "login")
    assert tokens.access_token
    assert tokens.refresh_token


def test_end_to_end_refused_delivery_leaves_no_code(plain_server: Server) -> None:
    store = MemoryStore()
    auth = MindmeshAuth(store=store, mailer=plain_mailer(plain_server), config=config())
    email_addr = "dave@example.test"
    auth.auth.register(email_addr, "correct horse battery staple")
    plain_server.recorder.refuse_rcpt = True

    with pytest.raises(DeliveryFailed):
        auth.auth.login(email_addr, "correct horse battery staple")

    assert store.otps.get(email_addr, "login") is None
    assert any(e.type == AuditEventType.OTP_SEND_FAILED for e in auth.audit.query())
