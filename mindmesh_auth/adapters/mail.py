"""Mailers that need no server: a console mailer (development) and an outbox (tests)."""

from __future__ import annotations

import re
import sys
import threading
from typing import TextIO

from ..core.ports import Mailer, OutgoingMessage

__all__ = ["ConsoleMailer", "Outbox"]


class ConsoleMailer(Mailer):
    """Prints each message's text to a stream (stdout by default). Development only:
    it shows codes and tokens on the terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, message: OutgoingMessage) -> None:
        out = self._stream or sys.stdout
        out.write(f"--- mail to {message.to}: {message.subject}\n{message.text}---\n")
        out.flush()


class Outbox(Mailer):
    """Keeps messages in memory for app tests. Thread-safe.

    ``fail_next(n)`` makes the next ``n`` sends raise ``DeliveryFailed`` (nothing
    kept); ``fail_next(n, uncertain=True)`` keeps each message (it "arrived") and
    raises ``DeliveryUncertain``, as when a server took a mail but its reply was lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[OutgoingMessage] = []
        self._failures = 0
        self._uncertain = False

    def send(self, message: OutgoingMessage) -> None:
        from ..core.errors import DeliveryFailed, DeliveryUncertain

        with self._lock:
            if self._failures:
                self._failures -= 1
                if self._uncertain:
                    self._messages.append(message)
                    raise DeliveryUncertain()
                raise DeliveryFailed()
            self._messages.append(message)

    def fail_next(self, n: int = 1, *, uncertain: bool = False) -> None:
        with self._lock:
            self._failures = n
            self._uncertain = uncertain

    @property
    def messages(self) -> list[OutgoingMessage]:
        with self._lock:
            return list(self._messages)

    def __len__(self) -> int:
        return len(self.messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def for_address(self, email: str, kind: str | None = None) -> list[OutgoingMessage]:
        return [m for m in self.messages if m.to == email and (kind is None or m.kind == kind)]

    def last(self, email: str | None = None, kind: str | None = None) -> OutgoingMessage:
        found = [m for m in self.messages if (email is None or m.to == email) and (kind is None or m.kind == kind)]
        if not found:
            raise LookupError(f"no {kind or ''} message for {email or 'anyone'}")
        return found[-1]

    def last_code(self, email: str) -> str:
        """The code in the newest one-time-code mail to ``email``."""
        match = re.search(r"\b(\d{6})\b", self.last(email, "otp").text)
        if match is None:
            raise LookupError("no code in the message")
        return match.group(1)

    def last_reset_token(self, email: str) -> str:
        """The token in the newest password-reset mail to ``email``."""
        match = re.search(r"([A-Za-z0-9_-]{43})", self.last(email, "password_reset").text)
        if match is None:
            raise LookupError("no token in the message")
        return match.group(1)
