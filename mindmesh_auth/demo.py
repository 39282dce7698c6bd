"""The whole flow on a fresh SQLite file, printing each step and the mail.

Run with ``python -m mindmesh_auth.demo [--database-url sqlite:///path.db]``.
A given database must hold no users yet (the demo refuses it otherwise); the
demo account gets a random password that is never shown, and is deleted at
the end, so it can never be logged into.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from typing import TextIO

from .adapters.mail import Outbox
from .core.config import AuthConfig
from .core.errors import AuthError, ConfigurationError
from .core.ports import OutgoingMessage
from .facade import MindmeshAuth
from .wiring import redact_url

__all__ = ["main", "run_demo"]


class _ShowingOutbox(Outbox):
    """Keeps each mail (to read the code) and prints it, as a mail client would."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out

    def send(self, message: OutgoingMessage) -> None:
        super().send(message)
        body = "\n".join("    | " + line for line in message.text.rstrip().splitlines())
        self._out.write(f"    mail to {message.to}: {message.subject!r}\n{body}\n")


def run_demo(database_url: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if database_url is None:
        folder = tempfile.mkdtemp(prefix="mindmesh-demo-")
        database_url = f"sqlite:///{os.path.join(folder, 'auth.db')}"
    config = AuthConfig(
        # Demo-only secrets; an app reads them from AUTH_JWT_SECRET / AUTH_REFRESH_SECRET.
        jwt_secret=secrets.token_urlsafe(48),
        refresh_secret=secrets.token_urlsafe(48),
        password_pepper=secrets.token_urlsafe(48),  # throw-away too: the demo runs without warnings
        bcrypt_rounds=10,
        reset_delivery_in_background=False,
    )
    outbox = _ShowingOutbox(out)
    # A random password: the account must not be a known login in the database the demo was pointed at.
    email, password = "ada@example.com", secrets.token_urlsafe(24)

    def step(title: str) -> None:
        out.write(f"\n== {title}\n")

    with MindmeshAuth(store=database_url, mailer=outbox, config=config) as auth:
        auth.create_schema()  # idempotent: a database with users already has its tables
        _refuse_a_database_with_users(auth, database_url)
        auth.set_context(ip_address="127.0.0.1", user_agent="mindmesh-auth demo")
        out.write(f"mindmesh-auth demo on {redact_url(database_url)}\n")

        step("1. register")
        user = auth.auth.register(email, password)
        out.write(f"    user {user.id} <{user.email}>\n")

        step("2. login (password, then a code is e-mailed)")
        challenge = auth.auth.login(email, password)
        out.write(f"    otp_required={challenge.otp_required}\n")

        step("3. verify the code from the mail")
        code = outbox.last_code(email)
        result = auth.auth.verify_otp(email, code, "login")
        out.write(f"    session {result.session_id}; access token {len(result.access_token)} chars, "
                  f"refresh token {len(result.refresh_token)} chars, expires in {result.expires_in}s\n")

        step("4. get the user from the access token")
        me = auth.auth.get_user_from_token(result.access_token)
        out.write(f"    authenticated as {me.email}\n")

        step("5. refresh (rotation)")
        pair = auth.auth.refresh(result.refresh_token)
        out.write(f"    new tokens for session {pair.session_id}\n")
        try:
            auth.auth.refresh(result.refresh_token)
        except AuthError as exc:
            out.write(f"    replaying the old refresh token is refused: {exc.code}\n")

        step("6. logout")
        auth.auth.logout(pair.session_id)
        try:
            auth.auth.get_user_from_token(pair.access_token)
        except AuthError as exc:
            out.write(f"    the access token is now refused: {exc.code}\n")

        step("7. delete the demo account (it can never be logged into)")
        auth.user.delete(user.id)
        out.write(f"    deleted user {user.id}\n")

        step("audit log")
        for event in auth.audit.query(user_id=user.id):
            out.write(f"    {event.occurred_at:%H:%M:%S} {event.type:<22} {event.reason or ''}\n")
    out.write("\ndemo complete\n")
    return 0


def _refuse_a_database_with_users(auth: MindmeshAuth, database_url: str) -> None:
    """Raise :class:`ConfigurationError` (before any row is written) when the database already holds a user."""
    if auth.user.list(limit=1):
        raise ConfigurationError(
            f"The demo refuses {redact_url(database_url)}: it already holds users. "
            "Run the demo without --database-url (a fresh temporary SQLite file) or on an empty database.",
            variable="database_url",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindmesh_auth.demo", description=__doc__)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.database_url)
    except AuthError as exc:
        sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
