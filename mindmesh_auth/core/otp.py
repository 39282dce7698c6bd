"""One-time codes: issue (rate-limited, mailed) and verify (atomic attempts, one-time)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from .crypto import constant_time_equals, new_id, random_digits
from .deps import Kernel
from .errors import DeliveryFailed, RateLimited, ValidationError
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
        expected = self.k.keys.digest("otp", challenge.id, challenge.purpose, challenge.email, code)
        return constant_time_equals(expected, challenge.code_hash)

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

        The attempt is counted, and a failure audited, outside any unit of work
        (kept on purpose). Consuming the code and ``on_success`` (which only
        touches the store) run as one unit: if it fails, the code is not spent.
        """
        k = self.k
        now = k.now()
        fail_key = f"otp-fail:{email}"
        # Counted before checking (atomic); a success clears it. New codes do not.
        try:
            k.limiter.consume(fail_key, k.config.otp_account_failure_limit, now)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=email, reason="otp_verify")
            raise
        challenge = k.store.otps.get(email, purpose)
        reason = "no_challenge"
        if challenge is not None:
            reason = "expired_or_used"
            if k.store.otps.register_attempt(challenge.id, now, k.config.otp_max_attempts) is not None:
                reason = "wrong_code"
                if self._matches(challenge, code):
                    reason = "already_used"
                    found: OtpChallenge = challenge

                    def finish() -> tuple[OtpChallenge, T] | None:
                        if not k.store.otps.consume(found.id, now):
                            return None
                        result = on_success(found)
                        k.limiter.clear(fail_key)
                        return found, result

                    outcome = k.unit(finish)
                    if outcome is not None:
                        return outcome
        k.auditor.record(
            AuditEventType.OTP_FAILED,
            now,
            ctx,
            user_id=challenge.user_id if challenge else None,
            email=email,
            reason=f"{purpose}:{reason}",
        )
        return None


class OtpService:
    """``auth.otp``: purpose-scoped codes (``email_verify`` and app purposes)."""

    def __init__(self, k: Kernel, engine: OtpEngine) -> None:
        self._k = k
        self._engine = engine

    def _purpose(self, purpose: object) -> str:
        p = self._k.purpose(purpose)
        if p == "login":
            raise ValidationError('Login codes are issued by auth.login(), not otp.send().', field="purpose")
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
