"""An SMTP mailer built on the ``emails`` library.

Security modes (``security=``):

* ``"starttls"`` (default, port 587): plain connection upgraded with STARTTLS
  (``emails`` option ``tls=True``); the upgrade is mandatory, a server without
  STARTTLS fails the delivery.
* ``"tls"`` (port 465): implicit TLS from the first byte (``emails`` option ``ssl=True``).
* ``"none"``: no encryption (a local relay only).

``emails`` 1.x calls ``smtplib``'s ``starttls()`` and ``SMTP_SSL`` without an
SSL context, which means *no certificate verification*. This module plugs its
own connection classes into ``emails``' documented extension points
(``SMTPBackend.connection_cls`` / ``connection_ssl_cls``) so that every TLS
handshake uses a verifying context: ``ssl.create_default_context()`` unless the
caller passes ``ssl_context`` (e.g. one trusting a test certificate).

Every failure raises :class:`DeliveryFailed` with a generic message: never the
password, the body (it holds one-time codes) or the server's reply text.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.utils import getaddresses, make_msgid
from typing import TYPE_CHECKING, Any

from emails.backend.smtp.backend import SMTPBackend
from emails.backend.smtp.client import SMTPClientWithResponse, SMTPClientWithResponse_SSL
from emails.message import html as build_message

from ..core.errors import ConfigurationError, DeliveryFailed
from ..core.ports import Mailer, OutgoingMessage

if TYPE_CHECKING:
    from ..core.config import AuthConfig

__all__ = ["SmtpMailer"]

logger = logging.getLogger(__name__)

_SECURITY_MODES = ("starttls", "tls", "none")


class _StartTlsClient(SMTPClientWithResponse):  # type: ignore[misc]
    """``emails``' client, but STARTTLS uses our verifying SSL context."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self._mindmesh_ssl_context: ssl.SSLContext | None = kwargs.pop("ssl_context", None)
        super().__init__(parent, **kwargs)  # type: ignore[no-untyped-call]

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        return super().starttls(context=self._mindmesh_ssl_context)  # type: ignore[no-any-return]


class _ImplicitTlsClient(SMTPClientWithResponse_SSL):  # type: ignore[misc]
    """``emails``' implicit-TLS client, but with our verifying SSL context.

    The upstream class first connects through ``SMTP_SSL.__init__`` (without a
    context) and then connects again; here ``SMTP_SSL`` is only initialised
    (no host, so no connection) to hold the context, and the one connection is
    made by ``SMTPClientWithResponse.__init__``.
    """

    def __init__(self, **kwargs: Any) -> None:
        context = kwargs.pop("ssl_context", None) or ssl.create_default_context()
        smtplib.SMTP_SSL.__init__(
            self,
            local_hostname=kwargs.get("local_hostname"),
            timeout=kwargs.get("timeout", SMTPBackend.DEFAULT_SOCKET_TIMEOUT),
            context=context,
        )
        SMTPClientWithResponse.__init__(self, **kwargs)  # type: ignore[no-untyped-call]


class _Backend(SMTPBackend):  # type: ignore[misc]
    connection_cls = _StartTlsClient
    connection_ssl_cls = _ImplicitTlsClient


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
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise ValueError("SmtpMailer needs a host.")
        if security not in _SECURITY_MODES:
            raise ValueError('security must be "starttls", "tls" or "none".')
        if not sender or _has_control_chars(sender):
            raise ValueError("Invalid sender address.")
        if timeout <= 0:
            raise ValueError("timeout must be positive.")
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.user = user or None
        self._password = password
        self.security = security
        self.timeout = float(timeout)
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
        )

    def __repr__(self) -> str:
        return (
            f"SmtpMailer(host={self.host!r}, port={self.port!r}, security={self.security!r}, "
            f"user={self.user!r}, password={'<redacted>' if self._password else None})"
        )

    def _backend(self) -> _Backend:
        return _Backend(
            host=self.host,
            port=self.port,
            ssl=self.security == "tls",
            tls=self.security == "starttls",
            user=self.user,
            password=self._password,
            timeout=self.timeout,
            ssl_context=self._ssl_context,
            fail_silently=True,
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
        sender_domain = self.sender.rpartition("@")[2].strip(" >") or None
        msg = build_message(
            html=message.html,
            text=message.text,
            subject=message.subject,
            mail_from=self.sender,
            message_id=make_msgid(domain=sender_domain),
        )
        failure: str | None = None
        try:
            with self._backend() as backend:
                response = msg.send(to=(None, message.to), smtp=backend)
        except Exception as exc:  # emails raises for some failures, returns a response for others
            failure = type(exc).__name__
        else:
            if response is None or not response.success:
                error = getattr(response, "error", None)
                failure = (
                    f"{type(error).__name__ if error else 'no response'}, "
                    f"stage={getattr(response, 'last_command', None)}, "
                    f"code={getattr(response, 'status_code', None)}"
                )
        if failure is not None:
            # Only the exception class, SMTP stage and numeric code: no reply text, body or secret.
            logger.warning("SMTP delivery via %s:%s failed (%s)", self.host, self.port, failure)
            raise DeliveryFailed()
