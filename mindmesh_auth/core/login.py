"""``auth.auth``: register, two-step login, token check, refresh rotation, logout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .crypto import KeyRing, new_id, random_token
from .deps import Kernel
from .devices import issue_device_token, read_device_token
from .errors import (
    DuplicateKeyError,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidOtp,
    InvalidRefreshToken,
    InvalidToken,
    RateLimited,
    RefreshTokenReused,
    ValidationError,
)
from .models import (
    CORE_USER_FIELDS,
    AuditEventType,
    LoginChallenge,
    LoginResult,
    OtpChallenge,
    RequestContext,
    Session,
    SessionWithUser,
    TokenPair,
    User,
)
from .otp import STREAK_WINDOW, OtpEngine

__all__ = [
    "REFRESH_TOKEN_LENGTH",
    "AuthService",
    "add_new_user",
    "admit_password_attempt",
    "check_new_user",
    "login_counter_names",
]

REFRESH_TOKEN_BYTES = 96
REFRESH_TOKEN_LENGTH = 128  # characters, as in the npm package
_REFRESH = re.compile(r"[A-Za-z0-9_-]{128}")
_PROFILE_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")


class AuthService:
    def __init__(self, k: Kernel, engine: OtpEngine) -> None:
        self._k = k
        self._otp = engine

    # -- registration -------------------------------------------------
    def register(
        self, email: str, password: str, *, context: RequestContext | None = None, **profile: Any
    ) -> User:
        """Create an account. Extra keyword arguments are the app's profile fields."""
        k = self._k
        ctx = k.context(context)
        canonical, extras = check_new_user(k, email, password, profile)
        now = k.now()
        # bcrypt makes registration expensive: bound it per client IP (ASVS 15.2.2).
        try:
            k.consume_ip("register-ip", k.config.register_ip_limit, ctx, now)
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=canonical, reason="register")
            raise
        if k.hooks.before_register is not None:
            try:
                k.hooks.before_register(canonical, dict(extras))
            except ValidationError:
                k.auditor.record(AuditEventType.REGISTRATION_FAILED, now, ctx, email=canonical, reason="refused_by_app")
                raise
        return add_new_user(k, canonical, password, extras, ctx, now)

    # -- login ----------------------------------------------------------
    def login(
        self,
        email: str,
        password: str,
        *,
        context: RequestContext | None = None,
        device_token: str | None = None,
    ) -> LoginChallenge:
        """Step one: check the password and e-mail a login code.

        Unknown email, wrong password and blocked account fail identically
        (``InvalidCredentials``), with the same bcrypt work. The returned
        challenge's ``handle`` binds the code to this login (``verify_otp(...,
        handle=...)``). ``device_token`` (from an earlier ``LoginResult``) of this
        account counts the attempt in that device's own budget, which failures
        from elsewhere never spend (docs/security.md "Budgets").
        """
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        k.policy.check_type(password)
        now = k.now()
        user = k.store.users.get_by_email(canonical)
        device = read_device_token(k.keys, device_token, now, password_hash=user.password_hash if user else None)
        subject = canonical
        if device is not None and user is not None and device.user_id == user.id:
            mine = f"device:{device.user_id}:{device.device_id}"
            capped = k.limiter.peek(f"login-streak:{mine}", now)
            if capped is None or capped.count < k.config.consecutive_failure_limit:
                subject = mine  # a device at its own cap falls back to the account's budget
        try:
            # Counted before bcrypt (atomic under races); a success gives it back.
            ip_key = k.consume_ip("login-ip", k.config.login_ip_limit, ctx, now)
            try:
                admit_password_attempt(k, subject, now)
            except RateLimited:
                k.limiter.refund(ip_key, now)  # refused before any password check: not a failure
                raise
        except RateLimited:
            k.auditor.record(AuditEventType.RATE_LIMITED, now, ctx, email=canonical, reason="login")
            raise
        if user is None:
            k.hasher.verify_dummy(password)
            ok = False
        else:
            ok = k.hasher.verify(password, user.password_hash)
        if not ok or user is None or user.blocked:
            reason = "blocked" if ok else "invalid_credentials"
            k.auditor.record(
                AuditEventType.LOGIN_FAILED, now, ctx, user_id=user.id if user else None, email=canonical, reason=reason
            )
            raise InvalidCredentials()
        k.limiter.refund(ip_key, now)
        k.limiter.clear_many(_login_counters(subject))
        if k.hasher.needs_rehash(user.password_hash):
            k.store.users.set_password_hash(user.id, k.hasher.hash(password), now)
        self._otp.issue(user, "login", ctx)
        challenge = k.store.otps.get(canonical, "login")
        return LoginChallenge(otp_required=True, handle=self._otp.handle_for(challenge) if challenge else None)

    def verify_otp(
        self,
        email: str,
        code: str,
        purpose: str = "login",
        *,
        handle: str | None = None,
        context: RequestContext | None = None,
    ) -> LoginResult:
        """Step two: a correct login code opens a new session and returns its tokens.

        ``handle`` is ``LoginChallenge.handle`` of the login that sent the code.
        Without it (the npm call shape) the submission is *unbound*: it counts
        in a budget of its own and never spends the bound login's attempts."""
        k = self._k
        ctx = k.context(context)
        canonical = k.email(email)
        if k.purpose(purpose) != "login":
            raise ValidationError(
                "This endpoint completes a login only; codes for other purposes are checked by the one-time code endpoint.",
                field="purpose",
            )
        entered = self._otp.parse_code(code)
        if handle is not None and (not isinstance(handle, str) or not 0 < len(handle) <= 128):
            raise ValidationError("The login handle must be the string login() returned.", field="handle")
        refresh_token = random_token(k.rng, REFRESH_TOKEN_BYTES)
        session_id = new_id(k.rng)

        def open_session(challenge: OtpChallenge) -> tuple[User | None, datetime]:
            # Runs in the unit that consumes the code: the session and its audit
            # rows exist together with the consumed code, or none of them does.
            now = k.now()
            user = k.store.users.get(challenge.user_id) if challenge.user_id else None
            if user is None or user.blocked:
                return None, now  # the code is still spent; the failure is audited outside
            k.auditor.record(AuditEventType.OTP_VERIFIED, now, ctx, user_id=user.id, email=canonical, reason="login")
            k.store.sessions.add(
                Session(
                    id=session_id,
                    user_id=user.id,
                    refresh_hash=k.keys.digest("refresh", refresh_token),
                    created_at=now,
                    expires_at=now + k.config.session_ttl,
                    last_active_at=now,
                    ip_address=ctx.ip_address,
                    user_agent=ctx.user_agent,
                )
            )
            k.auditor.record(AuditEventType.LOGIN_SUCCESS, now, ctx, user_id=user.id, email=canonical, session_id=session_id)
            return user, now

        outcome = self._otp.check(canonical, entered, "login", ctx, on_success=open_session, handle=handle, bindable=True)
        if outcome is None:
            k.auditor.record(AuditEventType.LOGIN_FAILED, k.now(), ctx, email=canonical, reason="invalid_otp")
            raise InvalidOtp()
        challenge, (user, now) = outcome
        if user is None:
            k.auditor.record(
                AuditEventType.LOGIN_FAILED, now, ctx, user_id=challenge.user_id, email=canonical, reason="blocked"
            )
            raise InvalidOtp()
        access = k.codec.encode(user_id=user.id, session_id=session_id, email=user.email, now=now, rng=k.rng)
        k.hooks.after("login", user, session_id)
        return LoginResult(
            access_token=access,
            refresh_token=refresh_token,
            user=user,
            session_id=session_id,
            expires_in=int(k.config.access_token_ttl.total_seconds()),
            device_token=issue_device_token(
                k.keys, k.rng, user.id, now, k.config.device_token_ttl, password_hash=user.password_hash
            ),
        )

    # -- the hot path ----------------------------------------------------
    def get_user_from_token(self, access_token: str) -> User:
        """The user of a valid access token whose session is live. One storage round trip."""
        return self.authenticate(access_token).user

    def authenticate(self, access_token: str) -> SessionWithUser:
        """The live session and user of a valid access token (what ``get_user_from_token``
        checks, with the session too: for logout or "this device" markers). One round trip."""
        k = self._k
        now = k.clock.now()
        claims = k.codec.decode(access_token, now)
        found = k.store.sessions.get_with_user(claims.session_id)
        if found is None:
            raise InvalidToken()
        session, user = found.session, found.user
        if (
            session.user_id != claims.user_id
            or session.revoked_at is not None
            or now >= session.expires_at
            or user.blocked
            or self._idle(session, now)
        ):
            raise InvalidToken()
        return found

    def _idle(self, session: Session, now: datetime) -> bool:
        idle = self._k.config.session_idle_timeout
        return idle is not None and now >= session.last_active_at + idle

    # -- refresh ----------------------------------------------------------
    def refresh(self, refresh_token: str, *, context: RequestContext | None = None) -> TokenPair:
        """Rotate the refresh token (compare-and-swap) and mint a new access token.

        A rotated token presented again revokes its session (``RefreshTokenReused``),
        except within the configured grace period, where it returns the same
        successor, and within ``refresh_race_window`` (a concurrent duplicate),
        where it is refused without revoking.
        """
        k = self._k
        ctx = k.context(context)
        if not isinstance(refresh_token, str) or not _REFRESH.fullmatch(refresh_token):
            raise InvalidRefreshToken()
        now = k.now()
        # The hash under the current refresh secret; on a miss, under a previous one (a rotation).
        token_hash, session = k.keys.find("refresh", now, refresh_token, k.store.sessions.get_by_refresh_hash)
        if session is not None:
            user = self._usable(session, now)
            successor = self._successor(refresh_token)
            live: Session = session

            def rotate() -> bool:
                # The rotation and its audit row commit together: a failure leaves
                # the presented token current, so the client's retry is no replay.
                # Never stamped earlier than the session's last activity (the clock may have stepped back).
                stamp = max(now, live.last_active_at)
                if not k.store.sessions.rotate(live.id, token_hash, k.keys.digest("refresh", successor), stamp):
                    return False
                k.auditor.record(
                    AuditEventType.SESSION_REFRESHED, now, ctx, user_id=user.id, email=user.email, session_id=live.id
                )
                return True

            if k.unit(rotate):
                return self._pair(user, session.id, successor, now)
        _, retired = k.keys.find("refresh", now, refresh_token, k.store.sessions.get_retired)
        if retired is None:
            raise InvalidRefreshToken()
        # A rotation recorded after `now` (the clock stepped back) is no race and no grace: reuse.
        age = timedelta.max if k.from_the_future(retired.rotated_at, now) else now - retired.rotated_at
        grace = k.config.refresh_grace_period
        if grace and age <= grace:
            current = k.store.sessions.get(retired.session_id)
            # The successor was derived and stored under the secret current at that rotation.
            for ring in (k.keys, *k.keys.older(now)):
                successor = self._successor(refresh_token, ring)
                if current is not None and current.refresh_hash == ring.digest("refresh", successor):
                    user = self._usable(current, now)
                    return self._pair(user, current.id, successor, now)
        window = k.config.refresh_race_window
        if window and age <= window:  # a zero window is fully strict: even an immediate replay revokes
            raise InvalidRefreshToken()
        if k.store.sessions.revoke(retired.session_id, now, "refresh_reuse"):
            owner = k.store.sessions.get(retired.session_id)
            k.auditor.record(
                AuditEventType.REFRESH_REUSE_DETECTED,
                now,
                ctx,
                user_id=owner.user_id if owner else None,
                session_id=retired.session_id,
            )
        raise RefreshTokenReused()

    def _successor(self, refresh_token: str, ring: KeyRing | None = None) -> str:
        if self._k.config.refresh_grace_period:
            # Deterministic, so a repeat inside the grace period gets the same token.
            return (ring or self._k.keys).derive_token("successor", refresh_token, REFRESH_TOKEN_BYTES)
        return random_token(self._k.rng, REFRESH_TOKEN_BYTES)

    def _usable(self, session: Session, now: datetime) -> User:
        user = self._k.store.users.get(session.user_id)
        if user is None or user.blocked or not session.is_active(now) or self._idle(session, now):
            raise InvalidRefreshToken()
        return user

    def _pair(self, user: User, session_id: str, refresh_token: str, now: datetime) -> TokenPair:
        k = self._k
        return TokenPair(
            access_token=k.codec.encode(user_id=user.id, session_id=session_id, email=user.email, now=now, rng=k.rng),
            refresh_token=refresh_token,
            session_id=session_id,
            expires_in=int(k.config.access_token_ttl.total_seconds()),
        )

    # -- logout -------------------------------------------------------------
    def logout(self, session_id: str, *, context: RequestContext | None = None) -> bool:
        """Revoke the session. Idempotent: ``True`` only for the call that revoked it."""
        k = self._k
        ctx = k.context(context)
        sid = k.identifier(session_id, "session_id")
        now = k.now()

        def end() -> bool:
            if not k.store.sessions.revoke(sid, now, "logout"):
                return False
            session = k.store.sessions.get(sid)
            k.auditor.record(AuditEventType.LOGOUT, now, ctx, user_id=session.user_id if session else None, session_id=sid)
            return True

        return k.unit(end)

    def logout_by_refresh_token(self, refresh_token: str, *, context: RequestContext | None = None) -> bool:
        """Revoke the session whose *current* refresh token this is: a logout once the
        access token has expired. Nothing is rotated. ``InvalidRefreshToken`` when no
        session holds it (malformed, rotated away, or unknown); otherwise as :meth:`logout`."""
        k = self._k
        if not isinstance(refresh_token, str) or not _REFRESH.fullmatch(refresh_token):
            raise InvalidRefreshToken()
        _, session = k.keys.find("refresh", k.now(), refresh_token, k.store.sessions.get_by_refresh_hash)
        if session is None:
            raise InvalidRefreshToken()
        return self.logout(session.id, context=context)


def admit_password_attempt(k: Kernel, subject: str, now: datetime) -> None:
    """Count one password attempt in ``subject``'s budget, or refuse it (``RateLimited``).

    The first ``login_email_limit.count`` attempts of a window are free; the
    last of them opens a delay of ``login_delay_base`` and each attempt past
    them is let through only once the delay has passed, opening the next one,
    twice as long, up to ``login_delay_max`` (a "gate" counter admits exactly
    one caller per delay, even under races). ``consecutive_failure_limit``
    attempts without a success close the budget until a success (another
    device) or a password reset. All counted before bcrypt; a success clears them."""
    fail, gate, streak = _login_counters(subject)
    limit = k.config.login_email_limit
    state = k.limiter.count(fail, limit.window, now)
    if state.count >= limit.count:
        # The last free attempt opens the first gate; each admitted attempt past it
        # opens the next one, twice as long.
        steps = state.count - limit.count
        delay = k.config.login_delay_max
        if steps < 32:
            delay = min(k.config.login_delay_base * (2**steps), delay)
        opened = k.limiter.count(gate, delay, now)
        if state.count > limit.count and opened.count > 1:
            k.limiter.refund(fail, now)
            # At most one delay: a gate ending further ahead was opened before the clock stepped back.
            raise RateLimited(retry_after=min(_seconds_until(opened.expires_at, now), _seconds_until(now + delay, now)))
    run = k.limiter.count(streak, STREAK_WINDOW, now)
    if run.count > k.config.consecutive_failure_limit:
        raise RateLimited(
            retry_after=_seconds_until(run.expires_at, now),
            message="Too many consecutive failed logins: reset the password to continue.",
        )


def _login_counters(subject: str) -> tuple[str, str, str]:
    """The password-failure counters of an account (its address) or of one device."""
    return f"login-fail:{subject}", f"login-gate:{subject}", f"login-streak:{subject}"


def login_counter_names(email: str) -> tuple[str, ...]:
    """The account's password-failure counters (what a completed password reset clears)."""
    return _login_counters(email)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


def check_new_user(k: Kernel, email: str, password: str, profile: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The canonical address and the profile fields of a new account, or a ``ValidationError``
    (address, password policy, profile field names): what registration and ``auth.user.create`` check."""
    canonical = k.email(email)
    k.policy.check_new(password, email=canonical)
    return canonical, _check_profile(profile)


def add_new_user(
    k: Kernel,
    canonical: str,
    password: str,
    extras: dict[str, Any],
    ctx: RequestContext,
    now: datetime,
    *,
    email_verified: bool = False,
    reason: str | None = None,
) -> User:
    """Hash the password and store the account with its ``REGISTRATION_SUCCESS`` row (``reason``)
    in one unit, then run the ``after_register`` hook. A taken address: ``REGISTRATION_FAILED``
    (``email_taken``) and ``EmailAlreadyRegistered``."""
    user = User(
        id=new_id(k.rng),
        email=canonical,
        password_hash=k.hasher.hash(password),
        created_at=now,
        updated_at=now,
        email_verified=email_verified,
        profile=extras,
    )

    def create() -> User:
        stored = k.store.users.add(user)
        k.auditor.record(AuditEventType.REGISTRATION_SUCCESS, now, ctx, user_id=stored.id, email=canonical, reason=reason)
        return stored

    try:
        created = k.unit(create)
    except DuplicateKeyError:
        # A failure row: written outside the (rolled back) unit, kept on purpose.
        k.auditor.record(AuditEventType.REGISTRATION_FAILED, now, ctx, email=canonical, reason="email_taken")
        raise EmailAlreadyRegistered() from None
    k.hooks.after("register", created)
    return created


def _check_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    for key in profile:
        if not _PROFILE_KEY.fullmatch(key) or key in CORE_USER_FIELDS:
            raise ValidationError(f"Profile field {key!r} is not allowed.", field=key)
    return dict(profile)
