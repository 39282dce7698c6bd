"""One-time codes: issue (rate-limited, mailed) and verify (atomic attempts, one-time)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import attrs
import bcrypt

from .crypto import new_id, random_digits
from .deps import Kernel
from .errors import DeliveryFailed, DeliveryUncertain, RateLimited, ValidationError
from .models import AuditEventType, OtpChallenge, RequestContext, User

__all__ = ["OtpEngine", "OtpService"]

T = TypeVar("T")

_CODE = re.compile(r"[0-9]{6}")
CODE_DIGITS = 6


class OtpEngine:
    """The rules shared by login codes and purpose-scoped codes."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def _hash(self, challenge_id: str, purpose: str, email: str, code: str) -> str:
        if self.k.config.otp_hash == "bcrypt":
            rounds = max(4, min(self.k.config.bcrypt_rounds, 10))
            return bcrypt.hashpw(code.encode("ascii"), bcrypt.gensalt(rounds)).decode("ascii")
        return self.k.keys.digest("otp", challenge_id, purpose, email, code)

    def _matches(self, challenge: OtpChallenge, code: str) -> bool:
        if self.k.config.otp_hash == "bcrypt" and challenge.code_hash.startswith("$2"):
            return bcrypt.checkpw(code.encode("ascii"), challenge.code_hash.encode("ascii"))
        # Under the current refresh secret or, during a rotation, a previous one.
        return self.k.keys.matches(
            "otp", self.k.now(), challenge.code_hash, challenge.id, challenge.purpose, challenge.email, code
        )

    @staticmethod
    def parse_code(code: object) -> str:
        """Exactly six ASCII digits; anything else is a ``ValidationError`` that counts nothing."""
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise ValidationError("The code must be exactly 6 digits.", field="code")
        return code

    def issue(self, user: User, purpose: str, ctx: RequestContext) -> None:
        """Create a code for (email, purpose), superseding the last one, and mail it."""
        k = self.k
        now = k.now()
        try:
            k.limiter.consume(f"otp-send:{user.email}", k.config.otp_send_limit, now)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, user_id=user.id, email=user.email, reason="otp_send")
            raise
        code = random_digits(k.rng, CODE_DIGITS)
        challenge_id = new_id(k.rng)
        challenge = OtpChallenge(
            id=challenge_id,
            email=user.email,
            purpose=purpose,
            code_hash=self._hash(challenge_id, purpose, user.email, code),
            created_at=now,
            expires_at=now + k.config.otp_ttl,
            user_id=user.id,
        )
        k.store.otps.put(challenge)
        message = k.templates.render(
            "otp",
            to=user.email,
            code=code,
            purpose=purpose,
            minutes=str(int(k.config.otp_ttl.total_seconds() // 60)),
        )
        try:
            k.mailer.send(message)
        except DeliveryUncertain:
            # The server may have taken the mail: the code is kept as sent (a copy
            # that arrives must work) and the caller still hears of the failure.
            def kept() -> None:
                k.store.otps.mark_sent(challenge_id)
                k.auditor.record(
                    AuditEventType.OTP_SEND_FAILED, now, ctx, user_id=user.id, email=user.email,
                    reason=f"{purpose}:delivery_uncertain",
                )

            k.unit(kept)
            raise
        except DeliveryFailed:
            k.store.otps.discard(challenge_id)
            k.auditor.record(
                AuditEventType.OTP_SEND_FAILED, now, ctx, user_id=user.id, email=user.email, reason=purpose
            )
            raise

        def sent() -> None:
            k.store.otps.mark_sent(challenge_id)
            k.auditor.record(AuditEventType.OTP_SENT, now, ctx, user_id=user.id, email=user.email, reason=purpose)

        k.unit(sent)

    def check(
        self,
        email: str,
        code: str,
        purpose: str,
        ctx: RequestContext,
        *,
        on_success: Callable[[OtpChallenge], T],
    ) -> tuple[OtpChallenge, T] | None:
        """Verify and consume: ``(challenge, on_success(challenge))`` for exactly one correct caller.

        Every call counts one attempt against the account (``otp-fail:``, cleared
        only by a success) and one against the challenge, before anything is
        said about the code. A counted attempt stays counted and a failure is
        audited outside any unit (kept on purpose). Consuming the code and
        ``on_success`` (which only touches the store) are one unit with the
        clearing of the counter: if it fails, the code is not spent.
        """
        k = self.k
        now = k.now()
        fail_key = f"otp-fail:{email}"
        try:
            if k.config.otp_hash == "bcrypt":
                outcome = self._check_slow(email, code, purpose, now, fail_key, on_success)
            else:
                outcome = self._check_keyed(email, code, purpose, now, fail_key, on_success)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=email, reason="otp_verify")
            raise
        if isinstance(outcome, _Miss):
            k.auditor.record(
                AuditEventType.OTP_FAILED, now, ctx, user_id=outcome.user_id, email=email, reason=f"{purpose}:{outcome.reason}"
            )
            return None
        return outcome

    def _check_keyed(
        self, email: str, code: str, purpose: str, now: datetime, fail_key: str, on_success: Callable[[OtpChallenge], T]
    ) -> tuple[OtpChallenge, T] | _Miss:
        """Keyed-hash codes: the comparison is cheap, so it runs first and the rest is ONE
        unit (one commit). The unit counts before it looks at the comparison: a
        rate-limited caller gets the same statements whether its code was right.
        Every verify takes its row locks in the same order (the account's counter,
        then the challenge), so parallel verifies queue instead of deadlocking."""
        k = self.k
        challenge = k.store.otps.get(email, purpose)
        right = challenge is not None and self._matches(challenge, code)

        def attempt() -> tuple[OtpChallenge, T] | _Miss:
            k.limiter.consume(fail_key, k.config.otp_account_failure_limit, now)
            if challenge is None:
                return _Miss("no_challenge", None)
            if right:  # counted and consumed in one step
                if not k.store.otps.redeem(challenge.id, now, k.config.otp_max_attempts):
                    return _Miss("expired_or_used", challenge.user_id)
                return self._succeed(challenge, fail_key, on_success)
            if k.store.otps.register_attempt(challenge.id, now, k.config.otp_max_attempts) is None:
                return _Miss("expired_or_used", challenge.user_id)
            return _Miss("wrong_code", challenge.user_id)

        return k.unit(attempt)

    def _check_slow(
        self, email: str, code: str, purpose: str, now: datetime, fail_key: str, on_success: Callable[[OtpChallenge], T]
    ) -> tuple[OtpChallenge, T] | _Miss:
        """bcrypt codes: both attempts are committed before the slow comparison (no
        lock is held while hashing, and a rate-limited caller costs no hash); the
        right code is then consumed in a unit of its own."""
        k = self.k
        k.limiter.consume(fail_key, k.config.otp_account_failure_limit, now)
        challenge = k.store.otps.get(email, purpose)
        if challenge is None:
            return _Miss("no_challenge", None)
        if k.store.otps.register_attempt(challenge.id, now, k.config.otp_max_attempts) is None:
            return _Miss("expired_or_used", challenge.user_id)
        if not self._matches(challenge, code):
            return _Miss("wrong_code", challenge.user_id)
        found = challenge

        def finish() -> tuple[OtpChallenge, T] | _Miss:
            if not k.store.otps.consume(found.id, now):
                return _Miss("already_used", found.user_id)
            return self._succeed(found, fail_key, on_success)

        return k.unit(finish)

    def _succeed(self, challenge: OtpChallenge, fail_key: str, on_success: Callable[[OtpChallenge], T]) -> tuple[OtpChallenge, T]:
        result = on_success(challenge)
        self.k.limiter.clear(fail_key)
        return challenge, result


@attrs.frozen
class _Miss:
    """Why a verify failed (the audit reason) and whose challenge it was."""

    reason: str
    user_id: str | None


class OtpService:
    """``auth.otp``: purpose-scoped codes (``email_verify`` and app purposes)."""

    def __init__(self, k: Kernel, engine: OtpEngine) -> None:
        self._k = k
        self._engine = engine

    def _purpose(self, purpose: object) -> str:
        p = self._k.purpose(purpose)
        if p == "login":
            raise ValidationError("Login codes are sent and checked by the login endpoints, not by this one.", field="purpose")
        return p

    def send(self, email: str, purpose: str, *, context: RequestContext | None = None) -> None:
        """Mail a code for ``purpose``. Unknown emails succeed silently (no enumeration)."""
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        p = self._purpose(purpose)
        user = k.store.users.get_by_email(canonical)
        if user is None or user.blocked:
            k.limiter.consume(f"otp-send:{canonical}", k.config.otp_send_limit, k.now())
            return
        self._engine.issue(user, p, ctx)

    def verify(self, email: str, code: str, purpose: str, *, context: RequestContext | None = None) -> bool:
        """``True`` once for the right code; ``email_verify`` codes also mark the email verified."""
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        p = self._purpose(purpose)
        entered = self._engine.parse_code(code)
        user = k.store.users.get_by_email(canonical)
        if user is not None and user.blocked:
            k.auditor.record(AuditEventType.OTP_FAILED, k.now(), ctx, user_id=user.id, email=canonical, reason=f"{p}:blocked")
            return False

        def verified(challenge: OtpChallenge) -> None:
            now = k.now()
            k.auditor.record(AuditEventType.OTP_VERIFIED, now, ctx, user_id=challenge.user_id, email=canonical, reason=p)
            if p == "email_verify" and challenge.user_id is not None:
                k.store.users.set_email_verified(challenge.user_id, now)
                k.auditor.record(AuditEventType.EMAIL_VERIFIED, now, ctx, user_id=challenge.user_id, email=canonical)

        return self._engine.check(canonical, entered, p, ctx, on_success=verified) is not None
