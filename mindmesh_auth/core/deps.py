"""What every service shares: the ports, the config and the helpers built from them."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from .audit import Auditor
from .config import AuthConfig, Limit
from .context import ip_bucket, resolve_context
from .crypto import KeyRing
from .errors import InvalidEmail, StorageConflict, ValidationError
from .hooks import Hooks
from .models import RequestContext
from .passwords import PasswordHasher, PasswordPolicy
from .ports import Clock, Mailer, Randomness, Store
from .rate_limit import RateLimiter
from .system import to_millis
from .templates import MessageTemplates
from .tokens import AccessTokenCodec

__all__ = ["EmailCanonicalizer", "Kernel"]

EmailCanonicalizer = Callable[[str], str]
"""Validates an address and returns its canonical form; raises ``InvalidEmail``."""

_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_EMAIL = 254
UNIT_ATTEMPTS = 3
"""How many times a unit of work runs when the store reports a conflict (deadlock, serialization)."""

T = TypeVar("T")

log = logging.getLogger("mindmesh_auth")

NO_IP_SUBJECT = "none"
NO_IP_WARNING_EVENT = "no_client_ip"
"""``record.mindmesh_auth_event`` of the once-per-facade warning about the shared no-IP bucket."""
"""The subject of the one shared per-kind bucket of requests without a client IP (``login-ip:none``)."""
CONFIG_WEAKNESS_EVENT = "config_weakness"
"""``record.mindmesh_auth_event`` of the warnings logged when a facade starts with weak settings
(``AuthConfig.weaknesses()``: no pepper, previous secrets without or past their expiry)."""


class Kernel:
    def __init__(
        self,
        *,
        store: Store,
        mailer: Mailer,
        config: AuthConfig,
        clock: Clock,
        randomness: Randomness,
        templates: MessageTemplates,
        canonicalize_email: EmailCanonicalizer,
        hooks: Hooks | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks if hooks is not None else Hooks()
        self.mailer = mailer
        self.config = config
        self.clock = clock
        self.rng = randomness
        self.templates = templates
        self._canonicalize = canonicalize_email
        self.keys = KeyRing(
            config.refresh_secret,
            previous=config.previous_refresh_secrets,
            previous_expire_at=config.previous_secrets_expire_at,
        )
        self.hasher = PasswordHasher(config.bcrypt_rounds, config.password_pepper)
        self.policy = PasswordPolicy(config.password_min_length, config.password_max_length)
        self.codec = AccessTokenCodec(
            config.jwt_secret,
            previous=config.previous_jwt_secrets,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            ttl=config.access_token_ttl,
            leeway=config.jwt_leeway,
            kid_salts=(config.refresh_secret, *config.previous_refresh_secrets),
            previous_expire_at=config.previous_secrets_expire_at,
            claims=config.access_token_claims,
            cache_size=config.token_cache_size,
        )
        for advice in config.weaknesses(clock.now()):
            log.warning(advice, extra={"mindmesh_auth_event": CONFIG_WEAKNESS_EVENT})
        self.limiter = RateLimiter(store.rate_limits, lambda name: self.keys.digest("rate_limit", name))
        self.auditor = Auditor(store.audit)
        self._no_ip_warned = False
        self._no_ip_lock = threading.Lock()

    def consume_ip(self, kind: str, limit: Limit, ctx: RequestContext, now: datetime) -> str:
        """Count one event against the client's per-IP budget ``kind:<ip>``; ``RateLimited`` if over it.

        A request without a client IP (a Unix socket, a peer that is not an IP)
        is not exempt: all of them share one bucket per kind, ``kind:none``,
        whose limit is ``limit`` times ``config.no_ip_limit_factor``, so one
        client cannot lock every other one out at once, nor bypass the limit.
        Returns the counter's name (for ``limiter.refund``).
        """
        if ctx.ip_address:
            key = f"{kind}:{ip_bucket(ctx.ip_address)}"
            self.limiter.consume(key, limit, now)
            return key
        self._warn_no_ip()
        shared = Limit(limit.count * self.config.no_ip_limit_factor, limit.window)
        key = f"{kind}:{NO_IP_SUBJECT}"
        self.limiter.consume(key, shared, now)
        return key

    def _warn_no_ip(self) -> None:
        if self._no_ip_warned:
            return
        with self._no_ip_lock:
            if self._no_ip_warned:
                return
            self._no_ip_warned = True
        log.warning(
            "A request without a client IP address was counted by a per-IP rate limit: per-IP limits are shared by "
            "all such requests because the client address is unknown. Configure trusted proxies "
            '(trusted_proxies, with "unix" behind a Unix socket) so the client address is known; '
            "see docs/deployment.md and docs/integrations.md.",
            extra={"mindmesh_auth_event": NO_IP_WARNING_EVENT},
        )

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    def from_the_future(self, moment: datetime, now: datetime) -> bool:
        """Whether a stored time lies after ``now`` by more than ``clock_skew_tolerance``:
        the clock stepped back since it was recorded (or another server's runs ahead),
        so the code, token or window recorded then counts as expired or used."""
        return moment > now + self.config.clock_skew_tolerance

    def unit(self, work: Callable[[], T]) -> T:
        """Run ``work`` as one unit of work (``store.atomic()``): all of its writes or none.

        A ``StorageConflict`` (the backend broke a deadlock or a serialization
        conflict by rolling the unit back) runs the whole unit again, at most
        ``UNIT_ATTEMPTS`` times in all. ``work`` must therefore only read and
        write through the store: no mail, no other network call. The unit's
        audit rows are written together at its end, inside it (``append_many``).
        """
        attempt = 1
        while True:
            try:
                with self.store.atomic(), self.auditor.batch():
                    return work()
            except StorageConflict:
                if attempt >= UNIT_ATTEMPTS:
                    raise
                attempt += 1

    def context(self, explicit: RequestContext | None) -> RequestContext:
        return resolve_context(explicit)

    def email(self, value: object) -> str:
        """Validate and canonicalize an email (strings only, bounded, no controls)."""
        if not isinstance(value, str):
            raise InvalidEmail("The email address must be a string.")
        if not value or len(value) > _MAX_EMAIL:
            raise InvalidEmail()
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or any(c in value for c in ",;<>"):
            raise InvalidEmail()
        return self._canonicalize(value)

    def purpose(self, value: object) -> str:
        if not isinstance(value, str) or not _PURPOSE.fullmatch(value) or value not in self.config.otp_purposes:
            raise ValidationError("Unknown OTP purpose.", field="purpose")
        return value

    def identifier(self, value: object, field: str) -> str:
        if not isinstance(value, str) or not value or len(value) > 64 or not value.isprintable():
            raise ValidationError(f"{field} must be an identifier string.", field=field)
        return value
