"""Small, reviewable crypto helpers: keyed hashes, random tokens, one comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from .ports import Randomness

__all__ = ["KeyRing", "constant_time_equals", "new_id", "random_digits", "random_token"]


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
    """Purpose-separated HMAC-SHA256 keys derived from one server secret."""

    def __init__(self, secret: str) -> None:
        root = secret.encode("utf-8")
        self._keys = {
            purpose: hmac.new(root, f"mindmesh-auth/{purpose}/v1".encode(), hashlib.sha256).digest()
            for purpose in ("refresh", "otp", "reset", "successor", "rate_limit")
        }

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
