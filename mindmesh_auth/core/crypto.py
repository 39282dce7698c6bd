"""Small, reviewable crypto helpers: keyed hashes, random tokens, one comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from .ports import Randomness

__all__ = [
    "PREVIOUS_SECRETS_EXPIRED_EVENT",
    "KeyRing",
    "constant_time_equals",
    "new_id",
    "random_digits",
    "random_token",
]

T = TypeVar("T")

log = logging.getLogger("mindmesh_auth")

PREVIOUS_SECRETS_EXPIRED_EVENT = "previous_secrets_expired"
"""``record.mindmesh_auth_event`` of the once-per-facade warning that previous secrets are past their expiry."""


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """The one comparison used for secrets."""
    if isinstance(a, str):
        a = a.encode("utf-8")
    if isinstance(b, str):
        b = b.encode("utf-8")
    return hmac.compare_digest(a, b)


def random_token(rng: Randomness, n_bytes: int) -> str:
    """URL-safe token from ``n_bytes`` random bytes (no padding)."""
    return base64.urlsafe_b64encode(rng.token_bytes(n_bytes)).rstrip(b"=").decode("ascii")


def new_id(rng: Randomness) -> str:
    """A random UUID4 string (identifiers, not secrets)."""
    return str(uuid.UUID(bytes=rng.token_bytes(16), version=4))


def random_digits(rng: Randomness, n: int) -> str:
    """``n`` decimal digits, leading zeros kept."""
    return f"{rng.randbelow(10**n):0{n}d}"


class KeyRing:
    """Purpose-separated HMAC-SHA256 keys derived from one server secret.

    ``previous`` secrets (newest first) are the keys of a rotation: digests made
    under them are still found (:meth:`find`, :meth:`matches`) until
    ``previous_expire_at``; from then on they are ignored. New digests always use
    the current secret.
    """

    def __init__(
        self, secret: str, *, previous: tuple[str, ...] = (), previous_expire_at: datetime | None = None
    ) -> None:
        root = secret.encode("utf-8")
        self._keys = {
            purpose: hmac.new(root, f"mindmesh-auth/{purpose}/v1".encode(), hashlib.sha256).digest()
            for purpose in ("refresh", "otp", "reset", "successor", "rate_limit", "login_handle", "device")
        }
        self._previous = tuple(KeyRing(old) for old in previous)
        self._expire_at = previous_expire_at
        self._expiry_logged = False

    def __repr__(self) -> str:
        return "KeyRing(<redacted>)"

    def digest(self, purpose: str, *parts: str) -> str:
        """Hex HMAC-SHA256 of the parts under the key for ``purpose``."""
        mac = hmac.new(self._keys[purpose], digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode("utf-8")
            mac.update(len(data).to_bytes(4, "big"))
            mac.update(data)
        return mac.hexdigest()

    def older(self, now: datetime) -> tuple[KeyRing, ...]:
        """The rings of the previous secrets still in force at ``now`` (none after their expiry)."""
        if not self._previous:
            return ()
        if self._expire_at is not None and now >= self._expire_at:
            if not self._expiry_logged:
                self._expiry_logged = True
                log.warning(
                    "AUTH_REFRESH_PREVIOUS_SECRETS have expired (AUTH_PREVIOUS_SECRETS_EXPIRE_AT) and are ignored; "
                    "remove them from the configuration.",
                    extra={"mindmesh_auth_event": PREVIOUS_SECRETS_EXPIRED_EVENT},
                )
            return ()
        return self._previous

    def find(self, purpose: str, now: datetime, value: str, get: Callable[[str], T | None]) -> tuple[str, T | None]:
        """``get`` the record stored under the digest of ``value``: the current key's
        digest first and, only on a miss, each previous key's (so the usual case
        costs one lookup). Returns the digest that found it (the current digest
        when none did) and the record or ``None``."""
        current = self.digest(purpose, value)
        found = get(current)
        if found is not None:
            return current, found
        for ring in self.older(now):
            old = ring.digest(purpose, value)
            found = get(old)
            if found is not None:
                return old, found
        return current, None

    def matches(self, purpose: str, now: datetime, stored: str, *parts: str) -> bool:
        """Whether ``stored`` is the digest of ``parts`` under the current key or a previous one."""
        if constant_time_equals(self.digest(purpose, *parts), stored):
            return True
        return any(constant_time_equals(ring.digest(purpose, *parts), stored) for ring in self.older(now))

    def derive_token(self, purpose: str, seed: str, n_bytes: int) -> str:
        """A deterministic URL-safe token of ``n_bytes`` derived from ``seed``."""
        out = b""
        counter = 0
        while len(out) < n_bytes:
            counter += 1
            out += hmac.new(
                self._keys[purpose], counter.to_bytes(4, "big") + seed.encode("utf-8"), hashlib.sha512
            ).digest()
        return base64.urlsafe_b64encode(out[:n_bytes]).rstrip(b"=").decode("ascii")
