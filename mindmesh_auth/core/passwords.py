"""Password policy and hashing (bcrypt, never truncated).

New hashes are ``mm1$`` + ``bcrypt(base64(HMAC-SHA-384(pepper, NFKC(password))))``:
the pre-hash lets every password up to the policy's maximum count in full,
where bcrypt alone reads only 72 bytes. Plain ``$2a$``/``$2b$``/``$2y$`` hashes
(written by the npm package) still verify, against the password as given,
and are upgraded on the next successful login.

A login must not tell which accounts hold a cheaper hash: a check against a
hash below the configured cost (an imported ``$2b$10$``, or every account after
``bcrypt_rounds`` was raised) or against a malformed one is padded with a sleep
to the time a check at the configured cost takes (the median of the latest such
checks in this process, measured as they happen). A hash above the configured
cost cannot be padded down; it is rehashed at the configured cost on the next
successful login, as a cheaper one is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import statistics
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable

import bcrypt

from .errors import InvalidPassword

__all__ = ["PasswordHasher", "PasswordPolicy"]

_PREFIX = "mm1$"
_LEGACY_PREFIXES = ("$2a$", "$2b$", "$2y$")
_SAMPLES = 16  # configured-cost checks remembered for the padding target


class PasswordPolicy:
    """Length bounds checked before any hashing, plus context words."""

    def __init__(self, min_length: int, max_length: int) -> None:
        self.min_length = min_length
        self.max_length = max_length

    def check_type(self, password: object, *, field: str = "password") -> str:
        """A string within the length bound; ``field`` names the argument in the error."""
        if not isinstance(password, str):
            raise InvalidPassword("The password must be a string.", field=field)
        if len(password) > self.max_length:
            raise InvalidPassword(f"The password must be at most {self.max_length} characters.", field=field)
        return password

    def check_new(self, password: object, *, email: str | None = None, field: str = "password") -> str:
        """Validate a password being set (register, reset, change)."""
        pw = self.check_type(password, field=field)
        normalized = unicodedata.normalize("NFKC", pw)
        if len(normalized) < self.min_length:
            raise InvalidPassword(f"The password must be at least {self.min_length} characters.", field=field)
        if not normalized.strip():
            raise InvalidPassword("The password must not be blank.", field=field)
        if any(unicodedata.category(ch) == "Cc" for ch in normalized):
            raise InvalidPassword("The password must not contain control characters.", field=field)
        if email:
            lowered = normalized.casefold()
            local = email.rpartition("@")[0].casefold()  # the domain never holds an "@"
            if lowered in (email.casefold(), local):
                raise InvalidPassword("The password must not be your email address.", field=field)
        return pw


class PasswordHasher:
    """bcrypt with a keyed pre-hash; cost set by ``rounds``."""

    def __init__(
        self,
        rounds: int,
        pepper: str = "",
        *,
        timer: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rounds = rounds
        self._pepper = pepper.encode("utf-8")
        self._dummy: str | None = None
        self._lock = threading.Lock()
        self._timer = timer
        self._sleep = sleep  # releases the GIL: a padded login costs no CPU
        self._samples: deque[float] = deque(maxlen=_SAMPLES)

    def __repr__(self) -> str:
        return f"PasswordHasher(rounds={self.rounds})"

    def _prehash(self, password: str) -> bytes:
        normalized = unicodedata.normalize("NFKC", password).encode("utf-8")
        return base64.b64encode(hmac.new(self._pepper, normalized, hashlib.sha384).digest())

    def hash(self, password: str) -> str:
        digest = bcrypt.hashpw(self._prehash(password), bcrypt.gensalt(self.rounds))
        return _PREFIX + digest.decode("ascii")

    def verify(self, password: str, stored: str) -> bool:
        """Check ``password`` against a stored hash in the time a check at the configured
        cost takes, whatever the stored hash's cost (see the module docstring)."""
        # Created (and first measured) before the clock starts; a current hash never needs it.
        dummy = None if stored.startswith(_PREFIX) else self.dummy_hash()
        started = self._timer()
        matched, cost = self._check(password, stored, dummy)
        elapsed = self._timer() - started
        if cost == self.rounds:
            self._samples.append(elapsed)
        elif cost is None or cost < self.rounds:
            if not self._samples:
                self.dummy_hash()  # measures the configured cost once
            self._pad(elapsed)
        return matched

    def _check(self, password: str, stored: str, dummy: str | None) -> tuple[bool, int | None]:
        """Whether it matched, and the bcrypt cost of the hash actually checked (``None``: none)."""
        at_cost = self.rounds
        try:
            if stored.startswith(_PREFIX):
                bare = stored[len(_PREFIX) :]
                return bcrypt.checkpw(self._prehash(password), bare.encode("ascii")), _cost_of(bare)
            dummy = dummy if dummy is not None else self.dummy_hash()
            if stored.startswith(_LEGACY_PREFIXES):
                raw = password.encode("utf-8")
                if len(raw) > 72:
                    # The legacy hash could only have seen a truncated password:
                    # spend the same work, then refuse rather than truncate.
                    bcrypt.checkpw(self._prehash(password), dummy[len(_PREFIX) :].encode())
                    return False, at_cost
                return bcrypt.checkpw(raw, stored.encode("ascii")), _cost_of(stored)
        except ValueError:
            return False, None
        bcrypt.checkpw(self._prehash(password), dummy[len(_PREFIX) :].encode("ascii"))
        return False, at_cost

    def _pad(self, elapsed: float) -> None:
        """Sleep until one configured-cost check's time (the median of the latest) has passed."""
        samples = list(self._samples)
        if samples:
            wait = statistics.median(samples) - elapsed
            if wait > 0:
                self._sleep(wait)

    def dummy_hash(self) -> str:
        """A hash of a random value at the same cost, for unknown users."""
        if self._dummy is None:
            with self._lock:
                if self._dummy is None:
                    started = self._timer()
                    self._dummy = self.hash(base64.b64encode(hashlib.sha256(b"mindmesh-dummy").digest()).decode())
                    self._samples.append(self._timer() - started)  # the first measure of the configured cost
        return self._dummy

    def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real verification (no user, blocked user)."""
        dummy = self.dummy_hash()
        started = self._timer()
        bcrypt.checkpw(self._prehash(password), dummy[len(_PREFIX) :].encode("ascii"))
        self._samples.append(self._timer() - started)

    def needs_rehash(self, stored: str) -> bool:
        """Legacy hashes and any cost other than the configured one (lower: it would be
        padded on every login; higher: its logins take longer than an unknown address's)."""
        if not stored.startswith(_PREFIX):
            return True
        return _cost_of(stored[len(_PREFIX) :]) != self.rounds


def _cost_of(bcrypt_hash: str) -> int | None:
    """The cost of a ``$2b$12$...`` hash, or ``None`` when it has none."""
    try:
        return int(bcrypt_hash.split("$")[2])
    except (IndexError, ValueError):
        return None
