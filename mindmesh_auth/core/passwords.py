"""Password policy and hashing (bcrypt, never truncated).

New hashes are ``mm1$`` + ``bcrypt(base64(HMAC-SHA-384(pepper, NFKC(password))))``:
the pre-hash lets every password up to the policy's maximum count in full,
where bcrypt alone reads only 72 bytes. Plain ``$2a$``/``$2b$``/``$2y$`` hashes
(written by the npm package) still verify, against the password as given,
and are upgraded on the next successful login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import unicodedata

import bcrypt

from .errors import InvalidPassword

__all__ = ["PasswordHasher", "PasswordPolicy"]

_PREFIX = "mm1$"
_LEGACY_PREFIXES = ("$2a$", "$2b$", "$2y$")


class PasswordPolicy:
    """Length bounds checked before any hashing, plus context words."""

    def __init__(self, min_length: int, max_length: int) -> None:
        self.min_length = min_length
        self.max_length = max_length

    def check_type(self, password: object) -> str:
        if not isinstance(password, str):
            raise InvalidPassword("The password must be a string.")
        if len(password) > self.max_length:
            raise InvalidPassword(f"The password must be at most {self.max_length} characters.")
        return password

    def check_new(self, password: object, *, email: str | None = None) -> str:
        """Validate a password being set (register, reset, change)."""
        pw = self.check_type(password)
        normalized = unicodedata.normalize("NFKC", pw)
        if len(normalized) < self.min_length:
            raise InvalidPassword(f"The password must be at least {self.min_length} characters.")
        if not normalized.strip():
            raise InvalidPassword("The password must not be blank.")
        if any(unicodedata.category(ch) == "Cc" for ch in normalized):
            raise InvalidPassword("The password must not contain control characters.")
        if email:
            lowered = normalized.casefold()
            local = email.rpartition("@")[0].casefold()  # the domain never holds an "@"
            if lowered in (email.casefold(), local):
                raise InvalidPassword("The password must not be your email address.")
        return pw


class PasswordHasher:
    """bcrypt with a keyed pre-hash; cost set by ``rounds``."""

    def __init__(self, rounds: int, pepper: str = "") -> None:
        self.rounds = rounds
        self._pepper = pepper.encode("utf-8")
        self._dummy: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PasswordHasher(rounds={self.rounds})"

    def _prehash(self, password: str) -> bytes:
        normalized = unicodedata.normalize("NFKC", password).encode("utf-8")
        return base64.b64encode(hmac.new(self._pepper, normalized, hashlib.sha384).digest())

    def hash(self, password: str) -> str:
        digest = bcrypt.hashpw(self._prehash(password), bcrypt.gensalt(self.rounds))
        return _PREFIX + digest.decode("ascii")

    def verify(self, password: str, stored: str) -> bool:
        """Constant-work check of ``password`` against a stored hash."""
        try:
            if stored.startswith(_PREFIX):
                return bcrypt.checkpw(self._prehash(password), stored[len(_PREFIX) :].encode("ascii"))
            if stored.startswith(_LEGACY_PREFIXES):
                raw = password.encode("utf-8")
                if len(raw) > 72:
                    # The legacy hash could only have seen a truncated password:
                    # spend the same work, then refuse rather than truncate.
                    bcrypt.checkpw(self._prehash(password), self.dummy_hash()[len(_PREFIX) :].encode())
                    return False
                return bcrypt.checkpw(raw, stored.encode("ascii"))
        except ValueError:
            return False
        self.verify_dummy(password)
        return False

    def dummy_hash(self) -> str:
        """A hash of a random value at the same cost, for unknown users."""
        if self._dummy is None:
            with self._lock:
                if self._dummy is None:
                    self._dummy = self.hash(base64.b64encode(hashlib.sha256(b"mindmesh-dummy").digest()).decode())
        return self._dummy

    def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real verification (no user, blocked user)."""
        bcrypt.checkpw(self._prehash(password), self.dummy_hash()[len(_PREFIX) :].encode("ascii"))

    def needs_rehash(self, stored: str) -> bool:
        if not stored.startswith(_PREFIX):
            return True
        try:
            cost = int(stored[len(_PREFIX) :].split("$")[2])
        except (IndexError, ValueError):
            return True
        return cost < self.rounds
