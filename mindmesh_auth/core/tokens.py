"""Access tokens: HS256 JWTs with a fixed algorithm list and required claims.

Claims: ``sub``/``userId`` (user id), ``sid``/``sessionId`` (session id),
``email`` (display only), ``iat``, ``exp``, ``iss``, ``aud``, ``jti``; header
``typ: at+jwt`` and ``kid`` naming the signing key. Expiry is checked against
the injected clock, not the wall clock PyJWT would read. The "lean" shape
(``access_token_claims="lean"``) leaves out the standard duplicates ``sub`` and
``sid`` and keeps the seed's ``userId``/``sessionId``/``email``; the decoder
accepts both shapes.

A bounded cache (``cache_size`` entries, 0 disables it) maps the exact token
string to the claims a full verification produced, usable only inside the
window that verification allows at the injected clock's time: from ``iat``
minus the leeway, until ``exp`` plus the leeway or, for a token under a
previous key or salt, ``previous_expire_at``, whichever comes first. Only
verified tokens enter; the cache belongs to the codec, so a new key set (a new
codec) starts empty. Session checks are the caller's and run on every request.

The ``kid`` is an HMAC of the signing key keyed by a second secret (the
refresh secret, ``kid_salts``), so a token does not let anyone test a guessed
signing key against its ``kid``; every process of a deployment computes the
same one. Tokens minted by earlier versions carry ``_legacy_kid`` and still
verify until they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
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
# The user and session ids are required too: as sub/sid (the full shape) or userId/sessionId (lean).
_REQUIRED = ["exp", "iat", "iss", "aud", "jti"]
CLAIM_SHAPES = ("full", "lean")
_NO_STOP = math.inf


@attrs.frozen
class AccessClaims:
    user_id: str
    session_id: str
    email: str
    issued_at: datetime
    expires_at: datetime


def _legacy_kid(secret: str) -> str:
    # Unsalted: only accepted on tokens minted before the salted kid, never issued.
    return hashlib.sha256(b"mindmesh-auth/kid/" + secret.encode("utf-8")).hexdigest()[:16]


def _kid(secret: str, salt: str) -> str:
    return hmac.new(salt.encode("utf-8"), b"mindmesh-auth/kid/v2/" + secret.encode("utf-8"), hashlib.sha256).hexdigest()[
        :16
    ]


class AccessTokenCodec:
    """Signs with the newest key; verifies with any configured key, chosen by ``kid``.

    ``kid_salts`` (the refresh secret, then its previous secrets) key the
    ``kid``; without them the codec issues the unsalted legacy ``kid``. Previous
    signing keys, and kids made under a previous salt, are ignored from
    ``previous_expire_at`` on.
    """

    def __init__(
        self,
        secret: str,
        *,
        previous: tuple[str, ...] = (),
        issuer: str,
        audience: str,
        ttl: timedelta,
        leeway: timedelta,
        kid_salts: tuple[str, ...] = (),
        previous_expire_at: datetime | None = None,
        claims: str = "full",
        cache_size: int = 0,
    ) -> None:
        if claims not in CLAIM_SHAPES:
            raise ValueError('claims must be "full" or "lean"')
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError("cache_size must be a whole number of at least 0")
        self._lean = claims == "lean"
        # token -> (usable from, usable until (timestamps), claims); written only under _lock.
        self._cache: dict[str, tuple[float, float, AccessClaims]] | None = {} if cache_size else None
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._secret = secret
        self._kid = _kid(secret, kid_salts[0]) if kid_salts else _legacy_kid(secret)
        # kid -> (key, whether it stops at previous_expire_at); the current kid is written last so it wins.
        keys: dict[str, tuple[str, bool]] = {}
        for key, is_previous in reversed([(secret, False), *((old, True) for old in previous)]):
            keys[_legacy_kid(key)] = (key, is_previous)
            for i, salt in reversed(list(enumerate(kid_salts))):
                keys[_kid(key, salt)] = (key, is_previous or i > 0)
        keys[self._kid] = (secret, False)
        self._keys = keys
        self._key_count = 1 + len(previous)
        # With one signing key the header need not be read before verifying (the hot path).
        self._single: str | None = secret if not previous else None
        self._expire_at = previous_expire_at
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
        return f"AccessTokenCodec(issuer={self._issuer!r}, keys={self._key_count})"

    def encode(self, *, user_id: str, session_id: str, email: str, now: datetime, rng: Randomness) -> str:
        iat = int(now.timestamp())
        payload: dict[str, Any] = {} if self._lean else {"sub": user_id, "sid": session_id}
        payload.update(
            userId=user_id,
            sessionId=session_id,
            email=email,
            iat=iat,
            exp=iat + int(self.ttl.total_seconds()),
            iss=self._issuer,
            aud=self._audience,
            jti=random_token(rng, 12),
        )
        return jwt.encode(payload, self._secret, algorithm="HS256", headers={"typ": _TYP, "kid": self._kid})

    def _key_for(self, kid: object, now: datetime) -> str:
        """The signing key a ``kid`` names; ``InvalidToken`` if none does or it has expired."""
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            raise InvalidToken()
        key, stops = entry
        if stops and self._expire_at is not None and now >= self._expire_at:
            raise InvalidToken()
        return key

    def clear_cache(self) -> None:
        """Forget every verified token (the next use of each is verified in full again)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    def cached_count(self) -> int:
        """How many verified tokens the cache holds now (at most ``cache_size``)."""
        return len(self._cache) if self._cache is not None else 0

    def decode(self, token: object, now: datetime) -> AccessClaims:
        """Verify signature, type, issuer, audience and expiry; any failure is ``InvalidToken``.

        A token verified before is answered from the cache while the clock is
        inside the window that verification allowed; outside it, in full again.
        """
        cache = self._cache
        if cache is None:
            return self._verify(token, now)[0]
        if not isinstance(token, str):
            raise InvalidToken()
        entry = cache.get(token)  # a plain dict read: no lock on the hit path
        if entry is not None and entry[0] <= now.timestamp() < entry[1]:
            return entry[2]
        try:
            claims, start, until = self._verify(token, now)
        except InvalidToken:
            if entry is not None:  # outside its window now: verified in full, and refused
                with self._lock:
                    cache.pop(token, None)
            raise
        self._remember(cache, token, (start, until, claims), now.timestamp())
        return claims

    def _remember(self, cache: dict[str, tuple[float, float, AccessClaims]], token: str, entry: Any, ts: float) -> None:
        with self._lock:
            if token not in cache and len(cache) >= self._cache_size:
                # Full: drop what can no longer be used, then the oldest eighth if that was not enough.
                for old in [t for t, (_start, until, _claims) in cache.items() if until <= ts]:
                    del cache[old]
                if len(cache) >= self._cache_size:
                    for old in list(cache)[: max(1, self._cache_size // 8)]:
                        del cache[old]
            cache[token] = entry

    def _stop_of(self, kid: object) -> float:
        """When a token under ``kid`` stops verifying whatever its ``exp`` (previous keys and salts)."""
        entry = self._keys.get(kid) if isinstance(kid, str) else None
        if entry is not None and entry[1] and self._expire_at is not None:
            return self._expire_at.timestamp()
        return _NO_STOP

    def _verify(self, token: object, now: datetime) -> tuple[AccessClaims, float, float]:
        """The claims, and the window (timestamps) in which this verification holds."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidToken()
        try:
            kid: object = None
            key = self._single
            if key is None:  # several signing keys: the header's kid picks one
                kid = jwt.get_unverified_header(token).get("kid")
                key = self._key_for(kid, now)
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
        if header.get("typ") != _TYP:
            raise InvalidToken()
        if self._single is None:
            if header.get("kid") != kid:
                raise InvalidToken()
        else:  # one signing key: the kid is checked on the header decode_complete already parsed
            self._key_for(header.get("kid"), now)
        sub, sid = _ids(payload)
        exp, iat = payload["exp"], payload["iat"]
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
            start, until = iat - self._leeway, min(exp + self._leeway, self._stop_of(header.get("kid")))
        except (OverflowError, ValueError, TypeError, OSError):
            raise InvalidToken() from None
        claims = AccessClaims(
            user_id=sub,
            session_id=sid,
            email=email if isinstance(email, str) else "",
            issued_at=issued_at,
            expires_at=expires_at,
        )
        return claims, start, until


def _ids(payload: dict[str, Any]) -> tuple[str, str]:
    """The user and session ids: ``sub``/``sid`` when either is present (the full shape,
    where ``userId``/``sessionId``, if any, must agree), else ``userId``/``sessionId`` (lean)."""
    if "sub" in payload or "sid" in payload:
        sub, sid = payload.get("sub"), payload.get("sid")
        for name, value in (("userId", sub), ("sessionId", sid)):
            if name in payload and payload[name] != value:
                raise InvalidToken()
    else:
        sub, sid = payload.get("userId"), payload.get("sessionId")
    if not (isinstance(sub, str) and isinstance(sid, str) and sub and sid):
        raise InvalidToken()
    return sub, sid
