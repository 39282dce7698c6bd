"""Device tokens: a client that has logged in to an account before keeps its own login budget.

OWASP's "device cookies": a successful login hands the client a signed token
naming the account, a random device id and an expiry. A later ``login`` that
presents a valid token for the same account is throttled in that device's own
bucket, so failures that came from elsewhere (a stranger guessing passwords)
never delay or block it. Nothing is stored: the token is an HMAC under the
refresh secret (a previous secret still verifies it during a rotation) over the
account, the device, the expiry and the account's current password hash, so a
password change or reset ends every device token of the account at once (a
device that knew the old password is a stranger to the new one).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import attrs

from .crypto import KeyRing, new_id
from .errors import ValidationError
from .ports import Randomness

__all__ = ["DEVICE_TOKEN_MAX_LENGTH", "Device", "issue_device_token", "read_device_token"]

DEVICE_TOKEN_MAX_LENGTH = 256
_TOKEN = re.compile(r"v2\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})\.([0-9]{1,15})\.([0-9a-f]{64})")


@attrs.frozen
class Device:
    user_id: str
    device_id: str


def issue_device_token(
    keys: KeyRing, rng: Randomness, user_id: str, now: datetime, ttl: timedelta, *, password_hash: str
) -> str:
    """A new token for ``user_id`` (a fresh device id), valid for ``ttl`` and while the
    account's password hash is ``password_hash``."""
    device_id = new_id(rng)
    until = str(int((now + ttl).timestamp()))
    return f"v2.{user_id}.{device_id}.{until}.{keys.digest('device', user_id, device_id, until, password_hash)}"


def read_device_token(keys: KeyRing, token: object, now: datetime, *, password_hash: str | None) -> Device | None:
    """The device a token names, or ``None`` for a token that is forged, expired,
    signed by a secret no longer in force, or issued before the password changed
    (``password_hash`` is the hash of the account the login names; ``None``: no
    account, no device). The login then counts in the account's budget, as
    without a token. A non-string is a ``ValidationError``."""
    if token is None:
        return None
    if not isinstance(token, str) or len(token) > DEVICE_TOKEN_MAX_LENGTH:
        raise ValidationError("The device token must be a string.", field="device_token")
    found = _TOKEN.fullmatch(token)
    if found is None or password_hash is None:
        return None
    user_id, device_id, until, signature = found.groups()
    if int(until) <= now.timestamp():
        return None
    if not keys.matches("device", now, signature, user_id, device_id, until, password_hash):
        return None
    return Device(user_id, device_id)
