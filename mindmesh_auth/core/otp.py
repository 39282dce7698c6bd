"""One-time codes: issue (rate-limited, mailed) and verify (atomic attempts, one-time)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
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

    def charge(self, email: str, purpose: str, ctx: RequestContext, *, user_id: str | None = None) -> str:
        """Count one send request against ``otp-send:<purpose>:<email>`` (each purpose
        has its own budget); ``RateLimited`` (audited) when over ``otp_send_limit``.
        Returns the counter's name (for :meth:`refund`)."""
        k = self.k
        now = k.now()
        key = f"otp-send:{purpose}:{email}"
        try:
            k.limiter.consume(key, k.config.otp_send_limit, now)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, user_id=user_id, email=email, reason="otp_send")
            raise
        return key

    def refund(self, key: str) -> None:
        """Give back one send counted by :meth:`charge` (a rejected delivery); never
        adds room to a later window (see ``RateLimiter.refund``)."""
        self.k.limiter.refund(key, self.k.now())

    def issue(self, user: User, purpose: str, ctx: RequestContext, *, to: str | None = None) -> None:
        """Charge the send budget and deliver (the login path: the caller hears of a
        failed delivery). A rejected delivery (``DeliveryFailed``) refunds the
        charge: a mail outage does not use up the budget; an unknown outcome
        (``DeliveryUncertain``) stays counted. ``to``: another address than the
        user's own (an e-mail change proves the new one), charged and keyed by it."""
        key = self.charge(to or user.email, purpose, ctx, user_id=user.id)
        try:
            self.deliver(user, purpose, ctx, to=to)
        except DeliveryUncertain:
            raise
        except DeliveryFailed:
            self.refund(key)
            raise

    def deliver(self, user: User, purpose: str, ctx: RequestContext, *, to: str | None = None) -> None:
        """Create a code for (email, purpose) and mail it (to ``to`` if given, else the
        user's address); the code is stored only once the mail was handed over.

        Accepted: the code is stored as sent, replacing the previous one (one
        atomic ``put``), with ``OTP_SENT``. Rejected (``DeliveryFailed``): nothing
        is stored, the previous code (if any) stays valid, ``OTP_SEND_FAILED`` is
        audited and the error raised. Unknown outcome (``DeliveryUncertain``): the
        code is stored as sent (a copy that arrives must work), ``OTP_SEND_FAILED``
        with reason ``<purpose>:delivery_uncertain``, and the error raised.
        """
        k = self.k
        address = to or user.email
        now = k.now()
        code = random_digits(k.rng, CODE_DIGITS)
        challenge_id = new_id(k.rng)
        challenge = OtpChallenge(
            id=challenge_id,
            email=address,
            purpose=purpose,
            code_hash=self._hash(challenge_id, purpose, address, code),
            created_at=now,
            expires_at=now + k.config.otp_ttl,
            user_id=user.id,
            status="sent",
        )
        message = k.templates.render(
            "otp",
            to=address,
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
                k.store.otps.put(challenge)
                k.auditor.record(
                    AuditEventType.OTP_SEND_FAILED, now, ctx, user_id=user.id, email=address,
                    reason=f"{purpose}:delivery_uncertain",
                )

            k.unit(kept)
            raise
        except DeliveryFailed:
            # Never stored: the code the user may already hold stays the current one.
            k.auditor.record(
                AuditEventType.OTP_SEND_FAILED, now, ctx, user_id=user.id, email=address, reason=purpose
            )
            raise

        def sent() -> None:
            k.store.otps.put(challenge)
            k.auditor.record(AuditEventType.OTP_SENT, now, ctx, user_id=user.id, email=address, reason=purpose)

        k.unit(sent)

    def check(
        self,
        email: str,
        code: str,
        purpose: str,
        ctx: RequestContext,
        *,
        on_success: Callable[[OtpChallenge], T],
        handle: str | None = None,
        bindable: bool = False,
    ) -> tuple[OtpChallenge, T] | None:
        """Verify and consume: ``(challenge, on_success(challenge))`` for exactly one correct caller.

        Every call is counted before anything is said about the code, in the
        budgets of its purpose (``otp-fail:<purpose>:``, a window, and
        ``otp-streak:<purpose>:``, the consecutive-failure cap; a success for the
        purpose clears both, a password reset clears every one). With
        ``bindable`` (login codes) a submission without the login's ``handle``
        (or with a wrong one) is *unbound*: it counts only in the unbound budgets
        (``otp-fail-unbound:``, ``otp-streak-unbound:``, at most
        ``otp_max_attempts`` per code) and never spends the code's own attempts,
        so a stranger who knows only the address cannot block or kill the code
        of the login that carries the handle. A counted attempt stays counted
        and a failure is audited outside any unit (kept on purpose). Consuming
        the code and ``on_success`` are one unit with the clearing of the
        counters: if it fails, the code is not spent.
        """
        k = self.k
        now = k.now()
        budget = _Budget.of(email, purpose)
        try:
            if k.config.otp_hash == "bcrypt":
                outcome = self._check_slow(email, code, purpose, now, budget, on_success, handle, bindable)
            else:
                outcome = self._check_keyed(email, code, purpose, now, budget, on_success, handle, bindable)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=email, reason="otp_verify")
            raise
        if isinstance(outcome, _Miss):
            k.auditor.record(
                AuditEventType.OTP_FAILED, now, ctx, user_id=outcome.user_id, email=email, reason=f"{purpose}:{outcome.reason}"
            )
            return None
        return outcome

    def handle_for(self, challenge: OtpChallenge) -> str:
        """The handle that binds ``challenge`` to the login that asked for it (derived, not stored)."""
        return self.k.keys.digest("login_handle", challenge.id)

    def _bound(self, challenge: OtpChallenge | None, handle: str | None, bindable: bool, now: datetime) -> bool:
        if not bindable:
            return True  # purpose codes have no handle: every submission is in the purpose's budget
        if challenge is None or handle is None:
            return False
        return self.k.keys.matches("login_handle", now, handle, challenge.id)

    def _count(self, budget: _Budget, bound: bool, challenge: OtpChallenge | None, now: datetime) -> bool:
        """Count one submission in its budgets (``RateLimited`` past the window or the
        consecutive cap). ``False`` when an unbound submission is past the code's own
        unbound allowance (the code stays good for the bound login)."""
        k = self.k
        window, streak = budget.of_kind(bound)
        limit = k.config.otp_account_failure_limit
        # Both counters in one round trip where the store can (counted before the code is looked at).
        counted, state = k.limiter.count_many([(window, limit.window), (streak, STREAK_WINDOW)], now)
        if counted.count > limit.count:
            k.limiter.refund(streak, now)  # refused, not a failed attempt at the code: not in the streak
            k.limiter.enforce(counted, limit, now)
        if state.count > k.config.consecutive_failure_limit:
            advice = "reset the password" if bound else "log in again and send the code with the login's handle"
            raise RateLimited(
                retry_after=max(1, int((state.expires_at - now).total_seconds())),
                message=f"Too many consecutive wrong codes: {advice} to continue.",
            )
        if bound or challenge is None:
            return True
        per_code = k.limiter.count(f"otp-code-unbound:{challenge.id}", k.config.otp_ttl, now)
        return per_code.count <= k.config.otp_max_attempts

    def _refused(self, challenge: OtpChallenge | None, allowed: bool, now: datetime) -> _Miss | None:
        """Why a counted submission goes no further before its code is looked at: no
        code, a code from the future (the clock stepped back), or an unbound
        submission past the code's unbound allowance. ``None``: go on."""
        if challenge is None:
            return _Miss("no_challenge", None)
        if self.k.from_the_future(challenge.created_at, now):
            # Created after now: the clock stepped back since; a code never lives longer
            # than its ttl on the forward clock.
            return _Miss("expired_or_used", challenge.user_id)
        if not allowed:
            return _Miss("unbound_attempts_used", challenge.user_id)
        return None

    def _check_keyed(
        self,
        email: str,
        code: str,
        purpose: str,
        now: datetime,
        budget: _Budget,
        on_success: Callable[[OtpChallenge], T],
        handle: str | None,
        bindable: bool,
    ) -> tuple[OtpChallenge, T] | _Miss:
        """Keyed-hash codes: the comparison is cheap, so it runs first and the rest is ONE
        unit (one commit). The unit counts before it looks at the comparison: a
        rate-limited caller gets the same statements whether its code was right.
        Every verify takes its row locks in the same order (the account's counters,
        then the challenge), so parallel verifies queue instead of deadlocking."""
        k = self.k
        challenge = k.store.otps.get(email, purpose)
        right = challenge is not None and self._matches(challenge, code)
        bound = self._bound(challenge, handle, bindable, now)

        def attempt() -> tuple[OtpChallenge, T] | _Miss:
            allowed = self._count(budget, bound, challenge, now)
            refused = self._refused(challenge, allowed, now)
            if refused is not None:
                return refused
            assert challenge is not None  # _refused answers a missing one
            if right:  # counted and consumed in one step
                if not k.store.otps.redeem(challenge.id, now, k.config.otp_max_attempts):
                    return _Miss("expired_or_used", challenge.user_id)
                return self._succeed(challenge, budget.cleared_by(bound), on_success)
            if not bound:
                return _Miss("wrong_code_unbound", challenge.user_id)  # the code's own attempts are not spent
            if k.store.otps.register_attempt(challenge.id, now, k.config.otp_max_attempts) is None:
                return _Miss("expired_or_used", challenge.user_id)
            return _Miss("wrong_code", challenge.user_id)

        return k.unit(attempt)

    def _check_slow(
        self,
        email: str,
        code: str,
        purpose: str,
        now: datetime,
        budget: _Budget,
        on_success: Callable[[OtpChallenge], T],
        handle: str | None,
        bindable: bool,
    ) -> tuple[OtpChallenge, T] | _Miss:
        """bcrypt codes: the attempts are committed before the slow comparison (no
        lock is held while hashing, and a rate-limited caller costs no hash); the
        right code is then consumed in a unit of its own."""
        k = self.k
        challenge = k.store.otps.get(email, purpose)
        bound = self._bound(challenge, handle, bindable, now)
        allowed = self._count(budget, bound, challenge, now)
        refused = self._refused(challenge, allowed, now)
        if refused is not None:
            return refused
        assert challenge is not None  # _refused answers a missing one
        if bound and k.store.otps.register_attempt(challenge.id, now, k.config.otp_max_attempts) is None:
            return _Miss("expired_or_used", challenge.user_id)
        if not self._matches(challenge, code):
            return _Miss("wrong_code" if bound else "wrong_code_unbound", challenge.user_id)
        found = challenge

        def finish() -> tuple[OtpChallenge, T] | _Miss:
            if not k.store.otps.consume(found.id, now):
                return _Miss("already_used", found.user_id)
            return self._succeed(found, budget.cleared_by(bound), on_success)

        return k.unit(finish)

    def _succeed(
        self, challenge: OtpChallenge, keys: tuple[str, ...], on_success: Callable[[OtpChallenge], T]
    ) -> tuple[OtpChallenge, T]:
        """A success clears the windows and consecutive counts of :meth:`_Budget.cleared_by`."""
        result = on_success(challenge)
        self.k.limiter.clear_many(keys)
        return challenge, result


STREAK_WINDOW = timedelta(days=3650)
"""The window of the consecutive-failure counters: in effect never (cleared by a success or a password reset)."""


@attrs.frozen
class _Budget:
    """The failure counters of one (address, purpose)."""

    fail: str
    streak: str
    fail_unbound: str
    streak_unbound: str

    @classmethod
    def of(cls, email: str, purpose: str) -> _Budget:
        return cls(
            f"otp-fail:{purpose}:{email}",
            f"otp-streak:{purpose}:{email}",
            f"otp-fail-unbound:{purpose}:{email}",
            f"otp-streak-unbound:{purpose}:{email}",
        )

    def of_kind(self, bound: bool) -> tuple[str, str]:
        return (self.fail, self.streak) if bound else (self.fail_unbound, self.streak_unbound)

    def cleared_by(self, bound: bool) -> tuple[str, ...]:
        """A bound success clears every counter of the purpose (the owner is back); an
        unbound one only the unbound counters (the bound ones hold guesses by password holders)."""
        return self.all() if bound else (self.fail_unbound, self.streak_unbound)

    def all(self) -> tuple[str, ...]:
        return (self.fail, self.streak, self.fail_unbound, self.streak_unbound)


def failure_counter_names(email: str, purposes: tuple[str, ...]) -> list[str]:
    """Every code-failure counter of an address (what a completed password reset clears)."""
    return [key for purpose in purposes for key in _Budget.of(email, purpose).all()]


@attrs.frozen
class _Miss:
    """Why a verify failed (the audit reason) and whose challenge it was."""

    reason: str
    user_id: str | None


class OtpService:
    """``auth.otp``: purpose-scoped codes (``email_verify`` and app purposes).

    The paths that take only an address answer the same for known, unknown and
    blocked accounts: ``send`` counts the request, then hands the delivery to
    ``schedule`` (the facade's bounded background queue when
    ``otp_delivery_in_background``); ``verify`` counts every attempt the same way
    and refuses a blocked account's right code like a wrong one."""

    def __init__(self, k: Kernel, engine: OtpEngine, schedule: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._k = k
        self._engine = engine
        self._schedule = schedule

    def _purpose(self, purpose: object) -> str:
        p = self._k.purpose(purpose)
        if p == "login":
            raise ValidationError("Login codes are sent and checked by the login endpoints, not by this one.", field="purpose")
        return p

    def send(self, email: str, purpose: str, *, context: RequestContext | None = None) -> None:
        """Count the request against the send budget of (purpose, email), then mail a
        code if the address belongs to an active account. Known, unknown and blocked
        addresses get the same answer (``None`` or ``RateLimited``); a failed
        delivery is audited (``OTP_SEND_FAILED``), never raised."""
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        p = self._purpose(purpose)
        self._engine.charge(canonical, p, ctx)  # every request counts, whoever it is for

        def delivery() -> None:
            self._deliver(canonical, p, ctx)

        if k.config.otp_delivery_in_background and self._schedule is not None:
            self._schedule(delivery)
        else:
            delivery()

    def _deliver(self, email: str, purpose: str, ctx: RequestContext) -> None:
        user = self._k.store.users.get_by_email(email)
        if user is None or user.blocked:
            return
        try:
            self._engine.deliver(user, purpose, ctx)
        except DeliveryFailed:
            pass  # audited as OTP_SEND_FAILED; the caller's answer is the same for every address

    def verify(self, email: str, code: str, purpose: str, *, context: RequestContext | None = None) -> bool:
        """``True`` once for the right code; ``email_verify`` codes also mark the email verified.

        A blocked account is counted and answered like an unknown address: its
        right code is refused (``False``, audited ``OTP_FAILED`` with reason
        ``<purpose>:blocked``) and its attempts count like any other."""
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        p = self._purpose(purpose)
        entered = self._engine.parse_code(code)

        def verified(challenge: OtpChallenge) -> bool:
            now = k.now()
            owner = k.store.users.get(challenge.user_id) if challenge.user_id is not None else None
            if owner is not None and owner.blocked:
                k.auditor.record(AuditEventType.OTP_FAILED, now, ctx, user_id=owner.id, email=canonical, reason=f"{p}:blocked")
                return False
            k.auditor.record(AuditEventType.OTP_VERIFIED, now, ctx, user_id=challenge.user_id, email=canonical, reason=p)
            if p == "email_verify" and challenge.user_id is not None:
                k.store.users.set_email_verified(challenge.user_id, now)
                k.auditor.record(AuditEventType.EMAIL_VERIFIED, now, ctx, user_id=challenge.user_id, email=canonical)
            return True

        outcome = self._engine.check(canonical, entered, p, ctx, on_success=verified)
        return outcome is not None and outcome[1]
