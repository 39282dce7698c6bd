"""Access tokens: HS256 JWTs with a fixed algorithm list and required claims.

Claims: ``sub``/``userId`` (user id), ``sid``/``sessionId`` (session id),
``email`` (display only), ``iat``, ``exp``, ``iss``, ``aud``, ``jti``; header
``typ: at+jwt`` and ``kid`` naming the signing key. Expiry is checked against
the injected clock, not the wall clock PyJWT would read.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import attrs
import jwt

from .crypto import random_token
from .errors import InvalidToken
from .ports import Randomness

__all__ = ["AccessClaims", "AccessTokenCodec"]

_ALGORITHMS = ["HS256"]
_TYP = "at+jwt"
_REQUIRED = ["exp", "iat", "sub", "sid", "iss", "aud", "jti"]


@attrs.frozen
class AccessClaims:
    user_id: str
    session_id: str
    email: str
    issued_at: datetime
    expires_at: datetime


def _kid(secret: str) -> str:
    return hashlib.sha256(b"mindmesh-auth/kid/" + secret.encode("utf-8")).hexdigest()[:16]


class AccessTokenCodec:
    """Signs with the newest key; verifies with any configured key, chosen by ``kid``."""

    def __init__(
        self,
        secret: str,
        *,
        previous: tuple[str, ...] = (),
        issuer: str,
        audience: str,
        ttl: timedelta,
        leeway: timedelta,
    ) -> None:
        self._secret = secret
        self._kid = _kid(secret)
        self._keys = {_kid(s): s for s in (secret, *previous)}
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl
        self._leeway = leeway.total_seconds()
        self._options: Any = {
            "require": _REQUIRED,
            "verify_exp": False,  # checked below against the injected clock
            "verify_iat": False,
            "verify_nbf": False,
            "enforce_minimum_key_length": True,
        }

    def __repr__(self) -> str:
        return f"AccessTokenCodec(issuer={self._issuer!r}, keys={len(self._keys)})"

    def encode(self, *, user_id: str, session_id: str, email: str, now: datetime, rng: Randomness) -> str:
        iat = int(now.timestamp())
        payload = {
            "sub": user_id,
            "sid": session_id,
            "userId": user_id,
            "sessionId": session_id,
            "email": email,
            "iat": iat,
            "exp": iat + int(self.ttl.total_seconds()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": random_token(rng, 12),
        }
        return jwt.encode(payload, self._secret, algorithm="HS256", headers={"typ": _TYP, "kid": self._kid})

    def decode(self, token: object, now: datetime) -> AccessClaims:
        """Verify signature, type, issuer, audience and expiry; any failure is ``InvalidToken``."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidToken()
        try:
            kid: object = self._kid
            key: str | None = self._secret
            if len(self._keys) > 1:
                kid = jwt.get_unverified_header(token).get("kid")
                key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidToken()
            complete = jwt.decode_complete(
                token,
                key,
                algorithms=_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        header, payload = complete["header"], complete["payload"]
        if header.get("typ") != _TYP or header.get("kid") != kid:
            raise InvalidToken()
        sub, sid, exp, iat = payload["sub"], payload["sid"], payload["exp"], payload["iat"]
        if not (isinstance(sub, str) and isinstance(sid, str) and sub and sid):
            raise InvalidToken()
        if not (isinstance(exp, int) and isinstance(iat, int)) or isinstance(exp, bool) or isinstance(iat, bool):
            raise InvalidToken()
        ts = now.timestamp()
        email = payload.get("email")
        try:
            # A correctly signed token can still carry absurd times (10**20, -10**20, 10**400):
            # float arithmetic and datetime conversion overflow; that is a bad token, not a 500.
            if ts >= exp + self._leeway or iat > ts + self._leeway:
                raise InvalidToken()
            issued_at = datetime.fromtimestamp(iat, now.tzinfo)
            expires_at = datetime.fromtimestamp(exp, now.tzinfo)
        except (OverflowError, ValueError, TypeError, OSError):
            raise InvalidToken() from None
        return AccessClaims(
            user_id=sub,
            session_id=sid,
            email=email if isinstance(email, str) else "",
            issued_at=issued_at,
            expires_at=expires_at,
        )
