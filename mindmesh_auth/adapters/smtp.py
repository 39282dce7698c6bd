"""An SMTP mailer: ``smtplib`` for the conversation, ``emails`` to build the message.

Security modes (``security=``):

* ``"starttls"`` (default, port 587): plain connection upgraded with STARTTLS;
  the upgrade is mandatory, a server without STARTTLS fails the delivery.
* ``"tls"`` (port 465): implicit TLS from the first byte.
* ``"none"``: no encryption (a local relay only).

Every TLS handshake uses a verifying context: ``ssl.create_default_context()``
unless the caller passes ``ssl_context`` (e.g. one trusting a test certificate).

Bounded time. ``timeout`` bounds each socket operation; ``deadline`` bounds the
whole :meth:`SmtpMailer.send` (connect, greeting, EHLO, STARTTLS, AUTH,
MAIL/RCPT/DATA, the final reply, and any retry). Each operation gets the
smaller of the two as its socket timeout, and a watchdog shuts the socket down
when the deadline passes, so a server that drips one line (or one byte) at a
time cannot stretch a delivery. No operation starts after the deadline.

No hidden retries. ``retries`` (default 0) extra attempts are made only for
failures where nothing was accepted (connection, TLS handshake, a dropped
connection or timeout before the message was sent, a 4xx reply) and only while
the deadline has time left; never after a 5xx reply, an authentication or
certificate failure, or once the whole message was sent.

Outcomes: delivered (returns); rejected (:class:`DeliveryFailed`); unknown
(:class:`DeliveryUncertain`: the whole message was sent but the final reply
never came, because the connection dropped or the deadline passed; the
server may have taken it, so it is not sent again).

Every failure is raised with a generic message and logged with the exception
class, the SMTP stage and the numeric reply code only: never the password, the
body (it holds one-time codes), the recipient or the server's reply text.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
import threading
import time
from email.utils import getaddresses, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any, cast

from emails.message import html as build_message
from emails.utils import DNS_NAME, sanitize_email

from ..core.errors import ConfigurationError, DeliveryFailed, DeliveryUncertain
from ..core.ports import Mailer, OutgoingMessage

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from ..core.config import AuthConfig

__all__ = ["SmtpMailer"]

logger = logging.getLogger(__name__)

_SECURITY_MODES = ("starttls", "tls", "none")


class _DeadlinePassed(TimeoutError):
    """No time left for the next SMTP operation."""


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` whose every socket operation ends by one deadline.

    Implicit TLS is handled here too (``implicit_tls``), with the caller's
    verifying context, so one class covers the three security modes.
    """

    def __init__(
        self,
        *,
        deadline_at: float,
        timeout: float,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
    ) -> None:
        self._deadline_at = deadline_at
        self._op_timeout = timeout
        self._tls_context = tls_context
        self._implicit_tls = implicit_tls
        self._watch_lock = threading.Lock()
        self._watched: socket.socket | None = None
        self._awaiting_body = False
        self.expired = False
        self.body_sent = False
        # No host: nothing is connected yet. local_hostname as ``emails`` used it (looked up once).
        super().__init__(local_hostname=DNS_NAME.get_fqdn(), timeout=timeout)

    # -- time ---------------------------------------------------------------
    def step_timeout(self) -> float:
        """The socket timeout for the next operation; raises once the deadline passed."""
        remaining = self._deadline_at - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise _DeadlinePassed("SMTP delivery deadline passed")
        return min(self._op_timeout, remaining)

    def out_of_time(self) -> bool:
        """The deadline passed (or is a clock tick away: a socket timeout set to the
        remaining time may end a hair before it)."""
        return self.expired or self._deadline_at - time.monotonic() <= 0.05

    def _watch(self, sock: socket.socket) -> None:
        with self._watch_lock:
            self._watched = sock

    def expire(self) -> None:
        """Watchdog: the deadline passed; end whatever operation is blocked."""
        with self._watch_lock:
            self.expired = True
            sock = self._watched
            if sock is not None:
                # The plain socket call also works under TLS (it only needs the descriptor);
                # an already closed socket has nothing left to end.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # -- socket and TLS -----------------------------------------------------
    def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((host, port), self.step_timeout(), self.source_address)
        self._watch(sock)
        if self._implicit_tls:
            return self.handshake(sock, host)  # closes the connection itself when it fails
        return sock

    def handshake(self, sock: socket.socket, host: str) -> ssl.SSLSocket:
        """TLS handshake under the deadline (the watchdog sees the TLS socket first)."""
        context = self._tls_context or ssl.create_default_context()
        try:
            tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        self._watch(tls)
        try:
            tls.settimeout(self.step_timeout())
            tls.do_handshake()
        except BaseException:
            tls.close()  # it owns the connection now: smtplib never sees it
            raise
        return tls

    def upgrade(self, host: str) -> None:
        """STARTTLS with our verifying context and the handshake under the deadline."""
        self.starttls(context=cast(ssl.SSLContext, _HandshakeOnly(self, host)))

    # -- reads and writes ---------------------------------------------------
    def send(self, s: ReadableBuffer | str) -> None:
        body = self._awaiting_body
        self._awaiting_body = False
        if self.sock is not None:
            self.sock.settimeout(self.step_timeout())
        super().send(s)
        if body:  # the whole message, with its final ".", is with the server
            self.body_sent = True

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is not None:
            self.sock.settimeout(self.step_timeout())
        code, reply = super().getreply()
        self._awaiting_body = code == 354  # only DATA is answered with 354
        return code, reply


class _HandshakeOnly:
    """What ``smtplib.SMTP.starttls`` needs of a context: ``wrap_socket``."""

    def __init__(self, client: _Client, host: str) -> None:
        self._client = client
        self._host = host

    def wrap_socket(self, sock: socket.socket, **_: Any) -> ssl.SSLSocket:
        return self._client.handshake(sock, self._host)


class _Failed(Exception):
    """One attempt's failure: only class name, stage and reply code (no text)."""

    def __init__(self, kind: str, stage: str, code: int | None, *, retryable: bool, uncertain: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.stage = stage
        self.code = code
        self.retryable = retryable
        self.uncertain = uncertain

    def describe(self) -> str:
        return f"{self.kind}, stage={self.stage}, code={self.code}"


def _has_control_chars(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


class SmtpMailer(Mailer):
    """Sends each message over a fresh SMTP connection (thread-safe)."""

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        user: str | None = None,
        password: str | None = None,
        security: str = "starttls",
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise ValueError("SmtpMailer needs a host.")
        if security not in _SECURITY_MODES:
            raise ValueError('security must be "starttls", "tls" or "none".')
        if not sender or _has_control_chars(sender):
            raise ValueError("Invalid sender address.")
        if not timeout > 0:
            raise ValueError("timeout must be positive.")
        if not deadline > 0:
            raise ValueError("deadline must be positive.")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be a whole number, at least 0.")
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.user = user or None
        self._password = password
        self.security = security
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.retries = retries
        if ssl_context is None and security != "none":
            ssl_context = ssl.create_default_context()
        self._ssl_context = ssl_context

    @classmethod
    def from_config(cls, config: AuthConfig) -> SmtpMailer:
        if not config.smtp_host:
            raise ConfigurationError("SMTP_HOST is not set.", variable="SMTP_HOST")
        return cls(
            config.smtp_host,
            config.smtp_port,
            sender=config.smtp_from,
            user=config.smtp_user,
            password=config.smtp_password,
            security=config.smtp_security,
            timeout=config.smtp_timeout,
            deadline=config.smtp_deadline,
            retries=config.smtp_retries,
        )

    def __repr__(self) -> str:
        return (
            f"SmtpMailer(host={self.host!r}, port={self.port!r}, security={self.security!r}, "
            f"user={self.user!r}, password={'<redacted>' if self._password else None})"
        )

    @staticmethod
    def _check_headers(message: OutgoingMessage) -> None:
        to = message.to
        if not isinstance(to, str) or not to or _has_control_chars(to):
            raise DeliveryFailed("Invalid recipient address.")
        parsed = getaddresses([to])
        if len(parsed) != 1 or parsed[0][1] != to or to.count("@") != 1:
            raise DeliveryFailed("Invalid recipient address.")
        if not isinstance(message.subject, str) or _has_control_chars(message.subject):
            raise DeliveryFailed("Invalid subject.")

    def send(self, message: OutgoingMessage) -> None:
        self._check_headers(message)
        deadline_at = time.monotonic() + self.deadline
        sender_domain = self.sender.rpartition("@")[2].strip(" >") or None
        payload: bytes = build_message(
            html=message.html,
            text=message.text,
            subject=message.subject,
            mail_from=self.sender,
            mail_to=(None, message.to),
            message_id=make_msgid(domain=sender_domain),
        ).as_bytes()
        envelope_from = sanitize_email(parseaddr(self.sender)[1])
        envelope_to = sanitize_email(message.to)
        failure: _Failed | None = None
        for _attempt in range(1 + self.retries):
            failure = self._attempt(deadline_at, envelope_from, envelope_to, payload)
            if failure is None:
                return
            if not failure.retryable or time.monotonic() >= deadline_at:
                break
        assert failure is not None
        # Only the exception class, SMTP stage and numeric code: no reply text, body, address or secret.
        if failure.uncertain:
            logger.warning("SMTP delivery via %s:%s uncertain (%s)", self.host, self.port, failure.describe())
            raise DeliveryUncertain()
        logger.warning("SMTP delivery via %s:%s failed (%s)", self.host, self.port, failure.describe())
        raise DeliveryFailed()

    def _attempt(self, deadline_at: float, envelope_from: str, envelope_to: str, payload: bytes) -> _Failed | None:
        """One connection: ``None`` when the server accepted the message."""
        client = _Client(
            deadline_at=deadline_at,
            timeout=self.timeout,
            tls_context=self._ssl_context,
            implicit_tls=self.security == "tls",
        )
        watchdog = threading.Timer(max(0.0, deadline_at - time.monotonic()), client.expire)
        watchdog.daemon = True
        watchdog.start()
        stage = "connect"
        try:
            code, _ = client.connect(self.host, self.port)  # reads the greeting
            if code != 220:
                return _Failed("SMTPConnectError", stage, code, retryable=400 <= code < 500, uncertain=False)
            stage = "ehlo"
            client.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                stage = "starttls"
                client.upgrade(self.host)  # raises when the server offers no STARTTLS: never downgraded
                stage = "ehlo"
                client.ehlo_or_helo_if_needed()
            if self.user:
                stage = "auth"
                client.login(self.user, self._password or "")
            stage = "mail"
            code, _ = client.mail(envelope_from)
            if code != 250:
                return _Failed("SMTPSenderRefused", stage, code, retryable=400 <= code < 500, uncertain=False)
            stage = "rcpt"
            code, _ = client.rcpt(envelope_to)
            if code not in (250, 251):
                return _Failed("SMTPRecipientsRefused", stage, code, retryable=400 <= code < 500, uncertain=False)
            stage = "data"
            code, _ = client.data(payload)
            if code != 250:
                return _Failed("SMTPDataError", stage, code, retryable=400 <= code < 500, uncertain=False)
            stage = "quit"
            with contextlib.suppress(Exception):  # accepted: say goodbye without waiting for the reply
                client.putcmd("quit")
            return None
        except Exception as exc:  # smtplib, ssl and socket errors; nothing of them is kept
            return _classify(exc, stage, client)
        finally:
            watchdog.cancel()
            with contextlib.suppress(Exception):
                client.close()


def _classify(exc: Exception, stage: str, client: _Client) -> _Failed:
    out_of_time = client.out_of_time()
    kind = "deadline" if out_of_time else type(exc).__name__
    code = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else None
    if client.body_sent:
        return _Failed(kind, stage, code, retryable=False, uncertain=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        retryable = 400 <= exc.smtp_code < 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
    else:
        permanent = isinstance(exc, (ssl.SSLCertVerificationError, smtplib.SMTPNotSupportedError, UnicodeError))
        retryable = not permanent and isinstance(exc, (OSError, smtplib.SMTPServerDisconnected))
    return _Failed(kind, stage, code, retryable=retryable and not out_of_time, uncertain=False)
